//! E2LSH (Datar et al. 2004): p-stable (Gaussian) projections for L2.
//!
//! Table `t` hashes `x` to the tuple `floor((<a_i, x> + b_i) / w)` for
//! `i < k`; `L` tables are kept. Multi-probe (Lv et al. 2007) also visits the
//! buckets one step away in the coordinates whose projections fell closest to
//! a bucket boundary. Candidates are re-scored with the exact metric (all of
//! them, or the first `rerank` found).

use memarena_core::rng::{Rng, mix64};
use memarena_core::{Error, FxHashMap, Result};

use crate::index::{
    Engine, Params, SearchParams, VectorIndex, scan_tenant, store_delegates, use_exact_filter,
};
use crate::metric::{Metric, dot};
use crate::persist::{Reader, Writer, encode};
use crate::simhash::probe_sets;
use crate::store::Store;
use crate::tenant::Tenants;
use crate::topk::{Scratch, TopK};

/// Build parameters of [`E2Lsh`].
#[derive(Clone, Debug, PartialEq)]
pub struct E2LshConfig {
    /// Projections concatenated per table (1..=32).
    pub k: usize,
    /// Number of tables (1..=256).
    pub l: usize,
    /// Bucket width, in units of the data (> 0).
    pub w: f32,
    /// Seed of the projections and offsets.
    pub seed: u64,
}

impl Default for E2LshConfig {
    fn default() -> Self {
        E2LshConfig {
            k: 8,
            l: 16,
            w: 4.0,
            seed: 0,
        }
    }
}

impl E2LshConfig {
    /// Parameter names for [`crate::build`].
    pub const NAMES: [&'static str; 4] = ["k", "l", "w", "seed"];

    /// Reads `k`, `l`, `w`, `seed` over the defaults.
    pub fn from_params(pairs: &[(&str, f64)]) -> Result<Self> {
        let mut p = Params::new("e2lsh", pairs, &Self::NAMES)?;
        let d = Self::default();
        let c = E2LshConfig {
            k: p.usize("k", d.k, 1, 32)?,
            l: p.usize("l", d.l, 1, 256)?,
            w: p.f64("w", d.w as f64, 1e-9, 1e9)? as f32,
            seed: p.u64("seed", d.seed)?,
        };
        p.finish()?;
        Ok(c)
    }
}

/// E2LSH index. See the module documentation.
#[derive(Clone, Debug)]
pub struct E2Lsh {
    store: Store,
    cfg: E2LshConfig,
    /// `l * k` projections of `dim` values.
    proj: Vec<f32>,
    /// `l * k` offsets in `[0, w)`.
    offs: Vec<f32>,
    /// Per table: bucket key -> slots.
    tables: Vec<FxHashMap<u64, Vec<u32>>>,
    /// `n_slots * l` bucket keys (for deletes).
    keys: Vec<u64>,
}

fn key_of(h: &[i32]) -> u64 {
    h.iter().fold(0x51_7C_C1_B7_27_22_0A_95u64, |acc, &x| {
        mix64(acc ^ (x as u32 as u64))
    })
}

impl E2Lsh {
    /// An empty index with seeded projections.
    pub fn new(metric: Metric, dim: usize, cfg: E2LshConfig) -> Result<Self> {
        if !(1..=32).contains(&cfg.k) || cfg.l == 0 || !(cfg.w > 0.0 && cfg.w.is_finite()) {
            return Err(Error::invalid("e2lsh", "need 1 <= k <= 32, l >= 1, w > 0"));
        }
        let mut rng = Rng::seed_from_u64(cfg.seed);
        let m = cfg.k * cfg.l;
        let proj = (0..m * dim).map(|_| rng.normal() as f32).collect();
        let offs = (0..m).map(|_| (rng.uniform() as f32) * cfg.w).collect();
        Ok(E2Lsh {
            store: Store::new(metric, dim, true),
            tables: vec![FxHashMap::default(); cfg.l],
            keys: Vec::new(),
            proj,
            offs,
            cfg,
        })
    }

    /// The build parameters.
    pub fn config(&self) -> &E2LshConfig {
        &self.cfg
    }

    /// Real-valued bucket coordinates `(<a, x> + b) / w` of all tables.
    fn coords(&self, x: &[f32], out: &mut Vec<f32>) {
        let dim = self.store.dim;
        out.clear();
        for i in 0..self.cfg.k * self.cfg.l {
            out.push((dot(&self.proj[i * dim..(i + 1) * dim], x) + self.offs[i]) / self.cfg.w);
        }
    }

    fn insert(&mut self, slot: u32, v: &[f32], buf: &mut Vec<f32>, h: &mut Vec<i32>) {
        self.coords(v, buf);
        let k = self.cfg.k;
        for t in 0..self.cfg.l {
            h.clear();
            h.extend(buf[t * k..(t + 1) * k].iter().map(|c| c.floor() as i32));
            let key = key_of(h);
            self.keys.push(key);
            self.tables[t].entry(key).or_default().push(slot);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let store = Store::read(r)?;
        let k = r.u32("k")? as usize;
        let l = r.u32("l")? as usize;
        let w = r.f32("w")?;
        let seed = r.u64("seed")?;
        let ok = store.keep_vectors
            && (1..=32).contains(&k)
            && (1..=256).contains(&l)
            && w > 0.0
            && w.is_finite();
        if !ok {
            return Err(r.err("bad e2lsh configuration"));
        }
        let mut idx = E2Lsh::new(store.metric, store.dim, E2LshConfig { k, l, w, seed })?;
        idx.store = store;
        let (mut buf, mut h) = (Vec::new(), Vec::new());
        for slot in 0..idx.store.n_slots() as u32 {
            let v = idx.store.vector(slot).to_vec();
            idx.insert(slot, &v, &mut buf, &mut h);
        }
        for slot in 0..idx.store.n_slots() as u32 {
            if !idx.store.is_live(slot) {
                idx.unlink(slot);
            }
        }
        Ok(idx)
    }

    fn unlink(&mut self, slot: u32) {
        let l = self.cfg.l;
        for t in 0..l {
            let key = self.keys[slot as usize * l + t];
            if let Some(list) = self.tables[t].get_mut(&key) {
                list.retain(|&x| x != slot);
                if list.is_empty() {
                    self.tables[t].remove(&key);
                }
            }
        }
    }
}

impl Engine for E2Lsh {
    fn store(&self) -> &Store {
        &self.store
    }

    fn search_one(
        &self,
        q: &[f32],
        _k: usize,
        p: &SearchParams,
        tenant: Option<u32>,
        s: &mut Scratch,
        top: &mut TopK,
    ) {
        let st = &self.store;
        if let Some(t) = tenant
            && use_exact_filter(st, t, p)
        {
            scan_tenant(self, q, t, top);
            return;
        }
        let mut c = std::mem::take(&mut s.f32s);
        self.coords(q, &mut c);
        s.begin_visits(st.n_slots());
        let k = self.cfg.k;
        let budget = if p.rerank == 0 { usize::MAX } else { p.rerank };
        let mut scored = 0usize;
        let mut h = vec![0i32; k];
        let mut cand: Vec<(f32, usize, i32)> = Vec::with_capacity(2 * k);
        let mut sorted = Vec::with_capacity(2 * k);
        let mut sets = Vec::new();
        'tables: for t in 0..self.cfg.l {
            let ct = &c[t * k..(t + 1) * k];
            for (hi, x) in h.iter_mut().zip(ct) {
                *hi = x.floor() as i32;
            }
            sets.clear();
            sets.push(u64::MAX); // sentinel: the query's own bucket
            if p.n_probes > 1 {
                cand.clear();
                for (i, x) in ct.iter().enumerate() {
                    let f = x - x.floor();
                    cand.push((f * f, i, -1));
                    cand.push(((1.0 - f) * (1.0 - f), i, 1));
                }
                cand.sort_by(|a, b| a.0.total_cmp(&b.0));
                sorted.clear();
                sorted.extend(cand.iter().map(|x| x.0));
                let cand_ref = &cand;
                let valid = |mask: u64| {
                    // a set may not move one coordinate both ways
                    let mut used = 0u64;
                    for (pos, &(_, i, _)) in cand_ref.iter().enumerate() {
                        if mask >> pos & 1 == 1 {
                            if used >> i & 1 == 1 {
                                return false;
                            }
                            used |= 1 << i;
                        }
                    }
                    true
                };
                let mut extra = Vec::new();
                probe_sets(&sorted, p.n_probes - 1, valid, &mut extra);
                sets.extend(extra);
            }
            for &set in &sets {
                let key = if set == u64::MAX {
                    key_of(&h)
                } else {
                    let mut hp = h.clone();
                    for (pos, &(_, i, d)) in cand.iter().enumerate() {
                        if set >> pos & 1 == 1 {
                            hp[i] += d;
                        }
                    }
                    key_of(&hp)
                };
                if let Some(list) = self.tables[t].get(&key) {
                    for &slot in list {
                        if s.visit(slot) && st.allows(slot, tenant) {
                            top.push(st.metric.score(q, st.vector(slot)), slot);
                            scored += 1;
                            if scored >= budget {
                                break 'tables;
                            }
                        }
                    }
                }
            }
        }
        s.f32s = c;
    }
}

impl VectorIndex for E2Lsh {
    store_delegates!();

    fn kind(&self) -> &'static str {
        "e2lsh"
    }

    fn train(&mut self, _data: &[f32]) -> Result<()> {
        Ok(())
    }

    fn add_with_tenants(
        &mut self,
        data: &[f32],
        ids: &[u64],
        tenants: Option<Tenants<'_>>,
    ) -> Result<()> {
        let n = self.store.check_add(data, ids, tenants.as_ref())?;
        let data = self.store.prepare(data);
        let dim = self.store.dim;
        let (mut buf, mut h) = (Vec::new(), Vec::new());
        for i in 0..n {
            let v = &data[i * dim..(i + 1) * dim];
            let t = tenants.as_ref().map_or(&[][..], |t| t.row(i));
            let slot = self.store.push(v, ids[i], t);
            self.insert(slot, v, &mut buf, &mut h);
        }
        Ok(())
    }

    fn delete(&mut self, ids: &[u64]) -> Result<usize> {
        let slots = self.store.delete(ids);
        for &slot in &slots {
            self.unlink(slot);
        }
        Ok(slots.len())
    }

    fn reset(&mut self) {
        self.store.reset();
        self.keys.clear();
        self.tables.iter_mut().for_each(|t| t.clear());
    }

    fn memory_bytes(&self) -> usize {
        self.store.memory_bytes()
            + self.proj.capacity() * 4
            + self.offs.capacity() * 4
            + self.keys.capacity() * 8
            + self
                .tables
                .iter()
                .map(|b| b.capacity() * 40 + b.values().map(|v| v.capacity() * 4).sum::<usize>())
                .sum::<usize>()
    }

    fn tenant_memory_bytes(&self, tenant: u32) -> usize {
        self.store.tenant_memory_bytes(tenant)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.store.write(&mut w);
        w.u32(self.cfg.k as u32);
        w.u32(self.cfg.l as u32);
        w.f32(self.cfg.w);
        w.u64(self.cfg.seed);
        encode(self.kind(), &w.buf)
    }
}
