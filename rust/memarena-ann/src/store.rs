//! The part every index shares: external ids, the slot map, tombstones,
//! tenant sets and (optionally) the vectors themselves.
//!
//! A *slot* is the dense internal number of a vector (0, 1, 2, ... in order
//! of insertion); callers only ever see their own `u64` ids.
//!
//! Invariants (checked by [`Store::check`] after loading):
//! - `ids.len() == deleted.len() == n_slots`, `tenant_offsets.len() == n_slots + 1`;
//! - `id_map` maps exactly the live slots' ids to their slots (live ids are unique);
//! - `data.len() == n_slots * dim` when vectors are kept, else 0;
//! - `tenant_slots[t]` lists every slot (live or not) whose set contains `t`, ascending.

use std::borrow::Cow;

use memarena_core::{Error, FxHashMap, Result};

use crate::metric::{Metric, norm_sq, normalize};
use crate::persist::{Reader, Writer};
use crate::tenant::Tenants;

/// The largest id an index stores: results hand ids back as `i64`, with -1
/// for a missing result.
pub const MAX_ID: u64 = i64::MAX as u64;

/// Ids, tombstones, tenants and vectors of an index.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    pub(crate) dim: usize,
    pub(crate) metric: Metric,
    pub(crate) keep_vectors: bool,
    pub(crate) data: Vec<f32>,
    pub(crate) ids: Vec<u64>,
    pub(crate) deleted: Vec<bool>,
    pub(crate) n_deleted: usize,
    pub(crate) id_map: FxHashMap<u64, u32>,
    pub(crate) tenant_offsets: Vec<u64>,
    pub(crate) tenant_values: Vec<u32>,
    /// Derived: tenant -> slots (ascending, including deleted ones).
    pub(crate) tenant_slots: FxHashMap<u32, Vec<u32>>,
    /// Derived: tenant -> number of live slots.
    pub(crate) tenant_live: FxHashMap<u32, usize>,
    /// Derived (only when vectors are kept): for each tenant with at most
    /// `block_max` slots, a contiguous copy of its vectors in the order of
    /// `tenant_slots[t]`, so an exact tenant scan reads one block (what
    /// per-tenant partitioning does); counted in the tenant's memory.
    pub(crate) tenant_blocks: FxHashMap<u32, TenantBlock>,
    /// Tenants with at most this many slots (live or not) keep a
    /// [`TenantBlock`]; 0 keeps none (no vector copies, exact tenant scans
    /// gather the rows from `data`). Default [`TENANT_BLOCK_MAX`].
    pub(crate) block_max: usize,
}

/// Default of [`Store::block_max`].
pub(crate) const TENANT_BLOCK_MAX: usize = 16384;

/// A tenant's vectors, contiguous, with their squared norms.
#[derive(Clone, Debug, Default)]
pub(crate) struct TenantBlock {
    pub(crate) data: Vec<f32>,
    pub(crate) norms: Vec<f32>,
}

impl Store {
    pub(crate) fn new(metric: Metric, dim: usize, keep_vectors: bool) -> Self {
        Store {
            dim,
            metric,
            keep_vectors,
            data: Vec::new(),
            ids: Vec::new(),
            deleted: Vec::new(),
            n_deleted: 0,
            id_map: FxHashMap::default(),
            tenant_offsets: vec![0],
            tenant_values: Vec::new(),
            tenant_slots: FxHashMap::default(),
            tenant_live: FxHashMap::default(),
            tenant_blocks: FxHashMap::default(),
            block_max: TENANT_BLOCK_MAX,
        }
    }

    /// Sets [`Store::block_max`] and rebuilds the tenant blocks for it.
    pub(crate) fn set_block_max(&mut self, block_max: usize) {
        if block_max == self.block_max {
            return;
        }
        self.block_max = block_max;
        self.tenant_blocks.clear();
        let mut ts: Vec<u32> = self.tenant_slots.keys().copied().collect();
        ts.sort_unstable();
        for t in ts {
            let slots = std::mem::take(self.tenant_slots.get_mut(&t).expect("listed tenant"));
            if slots.len() <= block_max {
                for (i, &slot) in slots.iter().enumerate() {
                    self.block_append(t, slot, i + 1);
                }
            }
            self.tenant_slots.insert(t, slots);
        }
    }

    /// Reads [`Store::block_max`], written by an index at the end of its
    /// payload ([`Reader::trailing_u64`]: the default in files from before
    /// it), and rebuilds the tenant blocks for it; returns it.
    pub(crate) fn read_block_max(&mut self, r: &mut Reader<'_>) -> Result<usize> {
        let m = r.trailing_u64("tenant_block_max", TENANT_BLOCK_MAX as u64)?;
        if m > u32::MAX as u64 {
            return Err(r.err(format!("tenant_block_max {m} is out of range")));
        }
        self.set_block_max(m as usize);
        Ok(m as usize)
    }

    /// Records `slot`, the `n`-th slot of tenant `t`, in `t`'s block,
    /// dropping the block for good once the tenant outgrows it.
    fn block_append(&mut self, t: u32, slot: u32, n: usize) {
        if !self.keep_vectors {
            return;
        }
        if n > self.block_max {
            self.tenant_blocks.remove(&t);
            return;
        }
        let v = &self.data[slot as usize * self.dim..(slot as usize + 1) * self.dim];
        let b = self.tenant_blocks.entry(t).or_default();
        b.data.extend_from_slice(v);
        b.norms.push(norm_sq(v));
    }

    pub(crate) fn reset(&mut self) {
        let block_max = self.block_max;
        *self = Store::new(self.metric, self.dim, self.keep_vectors);
        self.block_max = block_max;
    }

    pub(crate) fn n_slots(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn live(&self) -> usize {
        self.ids.len() - self.n_deleted
    }

    #[inline]
    pub(crate) fn is_live(&self, slot: u32) -> bool {
        !self.deleted[slot as usize]
    }

    #[inline]
    pub(crate) fn vector(&self, slot: u32) -> &[f32] {
        let s = slot as usize * self.dim;
        &self.data[s..s + self.dim]
    }

    #[inline]
    pub(crate) fn tenants_of(&self, slot: u32) -> &[u32] {
        let s = slot as usize;
        &self.tenant_values[self.tenant_offsets[s] as usize..self.tenant_offsets[s + 1] as usize]
    }

    /// True if `slot` is live and readable by `tenant` (any live slot when `None`).
    #[inline]
    pub(crate) fn allows(&self, slot: u32, tenant: Option<u32>) -> bool {
        !self.deleted[slot as usize]
            && match tenant {
                None => true,
                Some(t) => self.tenants_of(slot).contains(&t),
            }
    }

    pub(crate) fn tenant_count(&self, tenant: u32) -> usize {
        self.tenant_live.get(&tenant).copied().unwrap_or(0)
    }

    /// Validates an add batch; returns the number of rows.
    pub(crate) fn check_add(
        &self,
        data: &[f32],
        ids: &[u64],
        tenants: Option<&Tenants<'_>>,
    ) -> Result<usize> {
        if !data.len().is_multiple_of(self.dim) {
            return Err(Error::invalid(
                "vectors",
                format!(
                    "length {} is not a multiple of dim {}",
                    data.len(),
                    self.dim
                ),
            ));
        }
        let n = data.len() / self.dim;
        if ids.len() != n {
            return Err(Error::invalid(
                "ids",
                format!("{} ids for {n} vectors", ids.len()),
            ));
        }
        if let Some(t) = tenants
            && t.len() != n
        {
            return Err(Error::invalid(
                "tenants",
                format!("{} tenant rows for {n} vectors", t.len()),
            ));
        }
        // Results carry ids as i64 with -1 marking "no result": a larger id
        // would come back negative (2^64 - 1 as -1), so it is refused here.
        if let Some(i) = ids.iter().position(|&id| id > MAX_ID) {
            return Err(Error::invalid(
                "ids",
                format!(
                    "id {} (row {i}) is above {MAX_ID} (2^63 - 1): search results carry ids as int64, -1 marking no result",
                    ids[i]
                ),
            ));
        }
        if let Some(i) = data.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(
                "vectors",
                format!("row {} has a non-finite value", i / self.dim),
            ));
        }
        let mut seen = FxHashMap::default();
        for (row, &id) in ids.iter().enumerate() {
            if self.id_map.contains_key(&id) {
                return Err(Error::invalid(
                    "ids",
                    format!("id {id} (row {row}) is already in the index"),
                ));
            }
            if let Some(prev) = seen.insert(id, row) {
                return Err(Error::invalid(
                    "ids",
                    format!("id {id} appears twice (rows {prev} and {row})"),
                ));
            }
        }
        if self.ids.len() + n > u32::MAX as usize {
            return Err(Error::invalid(
                "vectors",
                "an index holds at most 2^32 - 1 slots",
            ));
        }
        Ok(n)
    }

    /// The vectors in stored form (unit length for cosine).
    pub(crate) fn prepare<'a>(&self, data: &'a [f32]) -> Cow<'a, [f32]> {
        if self.metric == Metric::Cosine {
            let mut v = data.to_vec();
            v.chunks_exact_mut(self.dim).for_each(normalize);
            Cow::Owned(v)
        } else {
            Cow::Borrowed(data)
        }
    }

    /// Checks an add batch, prepares it ([`Store::prepare`]) and appends
    /// every row with its tenants; returns the prepared rows and the slot of
    /// the first (row `i` is slot `first + i`).
    pub(crate) fn add_rows<'a>(
        &mut self,
        data: &'a [f32],
        ids: &[u64],
        tenants: Option<&Tenants<'_>>,
    ) -> Result<(Cow<'a, [f32]>, u32)> {
        let (data, n) = self.begin_add(data, ids, tenants)?;
        let first = self.n_slots() as u32;
        for i in 0..n {
            self.push_row(&data, ids, tenants, i);
        }
        Ok((data, first))
    }

    /// Checks an add batch, makes room for it and prepares it
    /// ([`Store::prepare`]), appending nothing; returns the prepared rows
    /// and their number. The index then appends row `i` with
    /// [`Store::push_row`] and links it in before the next, so that a stop
    /// request between two rows leaves every appended row indexed.
    pub(crate) fn begin_add<'a>(
        &mut self,
        data: &'a [f32],
        ids: &[u64],
        tenants: Option<&Tenants<'_>>,
    ) -> Result<(Cow<'a, [f32]>, usize)> {
        let n = self.check_add(data, ids, tenants)?;
        self.reserve_rows(n)?;
        Ok((self.prepare(data), n))
    }

    /// Appends row `i` of a batch that [`Store::begin_add`] prepared
    /// (`data`) and checked (`ids`, `tenants`); returns its slot.
    pub(crate) fn push_row(
        &mut self,
        data: &[f32],
        ids: &[u64],
        tenants: Option<&Tenants<'_>>,
        i: usize,
    ) -> u32 {
        let v = &data[i * self.dim..(i + 1) * self.dim];
        self.push(v, ids[i], tenants.map_or(&[][..], |t| t.row(i)))
    }

    /// Room for `n` more rows, allocated fallibly: a batch the allocator
    /// refuses is an error naming `vectors`, never an allocation abort.
    fn reserve_rows(&mut self, n: usize) -> Result<()> {
        use memarena_core::fallible::{checked_len, try_reserve_amortized as reserve};
        if self.keep_vectors {
            reserve(
                &mut self.data,
                checked_len(n, self.dim, "vectors")?,
                "vectors",
            )?;
        }
        reserve(&mut self.ids, n, "vectors")?;
        reserve(&mut self.deleted, n, "vectors")?;
        reserve(&mut self.tenant_offsets, n, "vectors")?;
        self.id_map
            .try_reserve(n)
            .map_err(|_| Error::invalid("vectors", format!("{n} more ids cannot be allocated")))
    }

    /// Appends one checked, prepared vector; returns its slot.
    pub(crate) fn push(&mut self, vector: &[f32], id: u64, tenants: &[u32]) -> u32 {
        let slot = self.ids.len() as u32;
        if self.keep_vectors {
            self.data.extend_from_slice(vector);
        }
        self.ids.push(id);
        self.deleted.push(false);
        self.id_map.insert(id, slot);
        let start = self.tenant_values.len();
        self.tenant_values.extend_from_slice(tenants);
        self.tenant_values[start..].sort_unstable();
        let mut end = start;
        for i in start..self.tenant_values.len() {
            if i == start || self.tenant_values[i] != self.tenant_values[end - 1] {
                self.tenant_values[end] = self.tenant_values[i];
                end += 1;
            }
        }
        self.tenant_values.truncate(end);
        self.tenant_offsets.push(end as u64);
        for i in start..end {
            let t = self.tenant_values[i];
            let list = self.tenant_slots.entry(t).or_default();
            list.push(slot);
            let n = list.len();
            *self.tenant_live.entry(t).or_default() += 1;
            self.block_append(t, slot, n);
        }
        slot
    }

    /// Tombstones the given ids; returns the slots removed (unknown ids are skipped).
    pub(crate) fn delete(&mut self, ids: &[u64]) -> Vec<u32> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(slot) = self.id_map.remove(id) {
                self.deleted[slot as usize] = true;
                self.n_deleted += 1;
                let s = slot as usize;
                for i in self.tenant_offsets[s] as usize..self.tenant_offsets[s + 1] as usize {
                    let t = self.tenant_values[i];
                    if let Some(c) = self.tenant_live.get_mut(&t) {
                        *c -= 1;
                    }
                }
                out.push(slot);
            }
        }
        out
    }

    /// Heap bytes held (ids, map, tombstones, tenants, vectors).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.data.capacity() * 4
            + self.ids.capacity() * 8
            + self.deleted.capacity()
            + self.id_map.capacity() * 16
            + self.tenant_offsets.capacity() * 8
            + self.tenant_values.capacity() * 4
            + self
                .tenant_slots
                .values()
                .map(|v| v.capacity() * 4 + 32)
                .sum::<usize>()
            + self.tenant_live.capacity() * 16
            + self
                .tenant_blocks
                .values()
                .map(|b| (b.data.capacity() + b.norms.capacity()) * 4 + 64)
                .sum::<usize>()
    }

    /// Bytes attributable to one tenant: its share of the tenant sets and its slot list.
    pub(crate) fn tenant_memory_bytes(&self, tenant: u32) -> usize {
        self.tenant_slots
            .get(&tenant)
            .map_or(0, |v| v.capacity() * 4 + 32 + v.len() * 4 + 16)
            + self.tenant_block_bytes(tenant)
    }

    /// Bytes of the tenant's contiguous vector block (0 without one).
    pub(crate) fn tenant_block_bytes(&self, tenant: u32) -> usize {
        self.tenant_blocks
            .get(&tenant)
            .map_or(0, |b| (b.data.capacity() + b.norms.capacity()) * 4 + 64)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u32(self.dim as u32);
        w.u8(self.metric.code());
        w.u8(self.keep_vectors as u8);
        w.u64s(&self.ids);
        w.bools(&self.deleted);
        w.u64s(&self.tenant_offsets);
        w.u32s(&self.tenant_values);
        w.f32s(&self.data);
    }

    /// Reads and validates a store; rebuilds the derived maps (tenant blocks
    /// for the default [`TENANT_BLOCK_MAX`]: an index with another
    /// [`Store::block_max`] sets it once its own parameters are read).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Store> {
        let dim = r.u32("dim")? as usize;
        if dim == 0 {
            return Err(r.err("dim is 0"));
        }
        let metric =
            Metric::from_code(r.u8("metric")?).ok_or_else(|| r.err("unknown metric code"))?;
        let keep = match r.u8("keep_vectors")? {
            0 => false,
            1 => true,
            _ => return Err(r.err("keep_vectors is not a boolean")),
        };
        let ids = r.u64s("ids")?;
        let deleted = r.bools("tombstones")?;
        let tenant_offsets = r.u64s("tenant offsets")?;
        let tenant_values = r.u32s("tenant ids")?;
        let data = r.f32s("vectors")?;
        let n = ids.len();
        if deleted.len() != n || tenant_offsets.len() != n + 1 {
            return Err(r.err(format!(
                "{n} ids but {} tombstones and {} tenant offsets",
                deleted.len(),
                tenant_offsets.len()
            )));
        }
        if tenant_offsets[0] != 0
            || tenant_offsets.windows(2).any(|w| w[0] > w[1])
            || tenant_offsets[n] != tenant_values.len() as u64
        {
            return Err(r.err("tenant offsets are not a valid CSR index"));
        }
        let want = if keep { n.checked_mul(dim) } else { Some(0) };
        if want != Some(data.len()) {
            return Err(r.err(format!(
                "{} vector values for {n} slots of dim {dim}",
                data.len()
            )));
        }
        let mut s = Store::new(metric, dim, keep);
        s.data = data;
        s.ids = ids;
        s.deleted = deleted;
        s.tenant_offsets = tenant_offsets;
        s.tenant_values = tenant_values;
        for slot in 0..n {
            if s.deleted[slot] {
                s.n_deleted += 1;
            } else if s.id_map.insert(s.ids[slot], slot as u32).is_some() {
                return Err(r.err(format!("live id {} appears twice", s.ids[slot])));
            }
            let (a, b) = (
                s.tenant_offsets[slot] as usize,
                s.tenant_offsets[slot + 1] as usize,
            );
            if s.tenant_values[a..b].windows(2).any(|w| w[0] >= w[1]) {
                return Err(r.err(format!(
                    "tenant set of slot {slot} is not strictly increasing"
                )));
            }
            for i in a..b {
                let t = s.tenant_values[i];
                let list = s.tenant_slots.entry(t).or_default();
                list.push(slot as u32);
                let n = list.len();
                if !s.deleted[slot] {
                    *s.tenant_live.entry(t).or_default() += 1;
                }
                s.block_append(t, slot as u32, n);
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_blocks_mirror_small_tenants_only() {
        let mut st = Store::new(Metric::L2, 2, true);
        for i in 0..TENANT_BLOCK_MAX + 1 {
            let tenants: &[u32] = if i % 100 == 0 { &[0, 1] } else { &[0] };
            st.push(&[i as f32, 1.0], i as u64, tenants);
        }
        // tenant 0 outgrew its block; tenant 1's block follows its slot list
        assert!(!st.tenant_blocks.contains_key(&0));
        let b = &st.tenant_blocks[&1];
        let slots = &st.tenant_slots[&1];
        assert_eq!(b.norms.len(), slots.len());
        for (r, &slot) in slots.iter().enumerate() {
            assert_eq!(&b.data[r * 2..r * 2 + 2], st.vector(slot));
            assert_eq!(b.norms[r], norm_sq(st.vector(slot)));
        }
        // rebuilt the same way on load
        let mut w = Writer::default();
        st.write(&mut w);
        let back = Store::read(&mut Reader::new(&w.buf, 0, "<t>".into())).unwrap();
        assert!(!back.tenant_blocks.contains_key(&0));
        assert_eq!(back.tenant_blocks[&1].data, b.data);
        assert!(st.tenant_memory_bytes(1) > b.data.len() * 4);
    }
}
