//! SimHash LSH (Charikar 2002): random hyperplanes, several tables,
//! query-directed multi-probe (Lv et al., VLDB 2007) and optional exact
//! re-ranking — the LSH organisation Think-in-Memory stores its memories in.
//!
//! Each table hashes a vector to an `n_bits`-bit code, bit `b` being the sign
//! of `<plane_b, x - mean>` (the mean is learnt by [`VectorIndex::train`];
//! untrained, the planes pass through the origin as in faiss `IndexLSH`).
//! Two ways to find candidates:
//!
//! - **buckets** (tables of at most 32 bits, `n_probes >= 1`): each table maps a
//!   code to its slots; a query probes its own bucket and the `n_probes - 1`
//!   next most likely ones, flipping the bits whose projections were closest
//!   to zero first;
//! - **Hamming scan** (wider tables, or `n_probes == 0`): every code is
//!   compared with the query's code, summing Hamming distances over tables;
//!   with 4 tables of 64 bits this is faiss `IndexLSH(d, 256)`. The scan is
//!   blocked: a chunk of codes is compared with every query of a batch group
//!   while it is in cache (AVX2 nibble-table popcount for 256-bit codes).
//!
//! Candidates are ranked by summed Hamming distance, ties by slot: a
//! reservoir (faiss-style top-n with a threshold) keeps the best `k`, or the
//! best `rerank` when `rerank > 0`, which are then re-scored with the exact
//! metric.

use std::collections::BinaryHeap;

use memarena_core::rng::Rng;
use memarena_core::{Error, FxHashMap, Result};
use serde::Deserialize;

use crate::index::{
    Engine, SearchParams, VectorIndex, buckets_bytes, in_range, rows, scan_tenant, store_delegates,
    unlink_bucket, use_exact_filter,
};
use crate::metric::{Metric, dot};
use crate::persist::{Reader, Writer, encode};
use crate::simd::kernels;
use crate::store::Store;
use crate::tenant::Tenants;
use crate::topk::{Reservoir, Scratch, TopK};

/// Codes per chunk of the blocked Hamming scan (32 KiB of 256-bit codes).
const SCAN_CHUNK: usize = 1024;

/// Widest table that keeps bucket maps.
pub const MAX_BUCKET_BITS: usize = 32;

/// Build parameters of [`SimHash`] (`kind: simhash`), deserialized from
/// every field the Python `Config` sends.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimHashConfig {
    /// Bits per table (1..=64). Tables of more than 32 bits are searched by Hamming scan.
    pub n_bits: usize,
    /// Number of tables (1..=64).
    pub n_tables: usize,
    /// Seed of the hyperplanes.
    pub seed: u64,
}

/// The defaults equal the Python `SimHash.Config` defaults (the user-facing
/// source; `tests/unit/retrieval/test_core_defaults.py` checks them).
impl Default for SimHashConfig {
    fn default() -> Self {
        SimHashConfig {
            n_bits: 16,
            n_tables: 16,
            seed: 0,
        }
    }
}

impl SimHashConfig {
    /// Range checks; errors name the key (`index.n_bits`).
    pub fn validate(&self) -> Result<()> {
        in_range("n_bits", self.n_bits, 1, 64)?;
        in_range("n_tables", self.n_tables, 1, 64)
    }
}

/// SimHash LSH index. See the module documentation.
#[derive(Clone, Debug)]
pub struct SimHash {
    store: Store,
    cfg: SimHashConfig,
    /// `n_tables * n_bits` hyperplanes of `dim` values.
    planes: Vec<f32>,
    /// Per hyperplane: `<plane, mean>` (0 until trained).
    offsets: Vec<f32>,
    trained: bool,
    /// `n_slots * n_tables` codes, slot-major.
    codes: Vec<u64>,
    /// Per table: code -> slots (only when `n_bits <= MAX_BUCKET_BITS`).
    buckets: Vec<FxHashMap<u64, Vec<u32>>>,
}

impl SimHash {
    /// An empty index with seeded Gaussian hyperplanes.
    pub fn new(metric: Metric, dim: usize, cfg: SimHashConfig) -> Result<Self> {
        if cfg.n_bits == 0 || cfg.n_bits > 64 || cfg.n_tables == 0 || cfg.n_tables > 64 {
            return Err(Error::invalid(
                "simhash",
                "n_bits and n_tables must be in 1..=64",
            ));
        }
        let mut rng = Rng::seed_from_u64(cfg.seed);
        let n_planes = cfg.n_bits * cfg.n_tables;
        let planes = (0..n_planes * dim).map(|_| rng.normal() as f32).collect();
        let with_buckets = cfg.n_bits <= MAX_BUCKET_BITS;
        Ok(SimHash {
            store: Store::new(metric, dim, true),
            offsets: vec![0.0; n_planes],
            planes,
            trained: false,
            codes: Vec::new(),
            buckets: if with_buckets {
                vec![FxHashMap::default(); cfg.n_tables]
            } else {
                Vec::new()
            },
            cfg,
        })
    }

    /// The build parameters.
    pub fn config(&self) -> &SimHashConfig {
        &self.cfg
    }

    /// Projections of `x` (minus the offsets) into `proj` and codes into `codes`.
    fn hash(&self, x: &[f32], proj: &mut Vec<f32>, codes: &mut Vec<u64>) {
        let dim = self.store.dim;
        codes.clear();
        // Every plane's inner product with `x` in one blocked call (a row's
        // value does not depend on the others, so adds, loads and queries
        // hash alike).
        let n_planes = self.offsets.len();
        assert_eq!(self.planes.len(), n_planes * dim, "one plane per offset");
        proj.clear();
        proj.resize(n_planes, 0.0);
        (kernels().dot_block)(x, 1, &self.planes, proj);
        for (v, &o) in proj.iter_mut().zip(&self.offsets) {
            *v -= o;
        }
        for pt in proj.chunks_exact(self.cfg.n_bits) {
            let mut code = 0u64;
            for (b, &v) in pt.iter().enumerate() {
                if v > 0.0 {
                    code |= 1 << b;
                }
            }
            codes.push(code);
        }
    }

    /// Blocked Hamming scan of every code against the group's query codes
    /// (`qc`, `res.len()` codes of `n_tables` words): each chunk of codes is
    /// scored for all queries while it is in cache, and a slot enters a
    /// query's reservoir only if it beats the reservoir's threshold (the
    /// tenant and liveness check runs only for those).
    fn scan_codes(
        &self,
        qc: &[u64],
        tenant: Option<u32>,
        dist: &mut Vec<u16>,
        res: &mut [Reservoir],
    ) {
        let st = &self.store;
        let nt = self.cfg.n_tables;
        let n = st.n_slots();
        let g = res.len();
        let plain = tenant.is_none() && st.n_deleted == 0;
        if dist.len() < g * SCAN_CHUNK {
            dist.resize(g * SCAN_CHUNK, 0);
        }
        let hamming_block = kernels().hamming_block;
        for start in (0..n).step_by(SCAN_CHUNK) {
            let m = SCAN_CHUNK.min(n - start);
            hamming_block(
                &self.codes[start * nt..(start + m) * nt],
                qc,
                g,
                &mut dist[..g * m],
            );
            for (r, row) in res.iter_mut().zip(dist.chunks_exact(m)) {
                // Runs of 16 distances are skipped with one vectorised test
                // when none can reach the threshold's distance.
                for (c, run) in row.chunks(16).enumerate() {
                    let limit = (r.threshold() >> 32).min(u16::MAX as u64) as u16;
                    if !run.iter().fold(false, |any, &h| any | (h <= limit)) {
                        continue;
                    }
                    for (i, &h) in run.iter().enumerate() {
                        let slot = (start + c * 16 + i) as u32;
                        let key = (h as u64) << 32 | slot as u64;
                        if key < r.threshold() && (plain || st.allows(slot, tenant)) {
                            r.push(key);
                        }
                    }
                }
            }
        }
    }

    /// Fills `top` from a reservoir of `(hamming << 32 | slot)` keys: by
    /// Hamming distance, or re-scored with the exact metric when `rerank > 0`
    /// (one gather call over the candidates, whose rows it prefetches ahead;
    /// the same kernel as one call per row, so the same scores).
    fn finish_candidates(
        &self,
        q: &[f32],
        p: &SearchParams,
        r: &mut Reservoir,
        top: &mut TopK,
        slots: &mut Vec<u32>,
        scores: &mut Vec<f32>,
    ) {
        // `top` does not depend on the order of offers, so the kept keys
        // need no sort.
        let keys = r.finish_unordered();
        if p.rerank == 0 {
            for &key in keys {
                top.push((key >> 32) as f32, key as u32);
            }
            return;
        }
        slots.clear();
        slots.extend(keys.iter().map(|&key| key as u32));
        scores.resize(slots.len(), 0.0);
        let st = &self.store;
        st.metric.score_at(q, &st.data, slots, scores);
        for (&slot, &score) in slots.iter().zip(scores.iter()) {
            top.push(score, slot);
        }
    }

    /// Whether a query is answered by the Hamming scan (else by buckets).
    fn scans(&self, p: &SearchParams) -> bool {
        self.buckets.is_empty() || p.n_probes == 0
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let store = Store::read(r)?;
        let n_bits = r.u32("n_bits")? as usize;
        let n_tables = r.u32("n_tables")? as usize;
        let seed = r.u64("seed")?;
        let trained = r.u8("trained")? == 1;
        let offsets = r.f32s("offsets")?;
        if !(1..=64).contains(&n_bits) || !(1..=64).contains(&n_tables) || !store.keep_vectors {
            return Err(r.err("bad simhash configuration"));
        }
        let cfg = SimHashConfig {
            n_bits,
            n_tables,
            seed,
        };
        let mut idx = SimHash::new(store.metric, store.dim, cfg)?;
        if offsets.len() != idx.offsets.len() {
            return Err(r.err("offset count does not match n_bits * n_tables"));
        }
        idx.offsets = offsets;
        idx.trained = trained;
        idx.store = store;
        idx.rehash_all();
        Ok(idx)
    }

    fn rehash_all(&mut self) {
        self.codes.clear();
        self.buckets.iter_mut().for_each(|b| b.clear());
        let (mut proj, mut codes) = (Vec::new(), Vec::new());
        for slot in 0..self.store.n_slots() as u32 {
            self.hash(self.store.vector(slot), &mut proj, &mut codes);
            self.insert_codes(slot, &codes);
        }
    }

    fn insert_codes(&mut self, slot: u32, codes: &[u64]) {
        self.codes.extend_from_slice(codes);
        for (t, b) in self.buckets.iter_mut().enumerate() {
            b.entry(codes[t]).or_default().push(slot);
        }
    }
}

/// Query-directed probe sequence (Lv et al. 2007): given per-candidate
/// perturbation scores sorted ascending, emits up to `n` sets (as bitmasks
/// over the sorted positions) in increasing total score, skipping sets that
/// `valid` rejects. The empty set (the query's own bucket) is not emitted.
pub(crate) fn probe_sets(
    sorted_scores: &[f32],
    n: usize,
    valid: impl Fn(u64) -> bool,
    out: &mut Vec<u64>,
) {
    out.clear();
    let m = sorted_scores.len().min(64);
    if m == 0 || n == 0 {
        return;
    }
    // Min-heap on (score bits, mask, max position); scores are >= 0 so their
    // bit patterns order like the floats.
    let mut heap = BinaryHeap::new();
    let key = |s: f32| std::cmp::Reverse(s.max(0.0).to_bits());
    heap.push((key(sorted_scores[0]), std::cmp::Reverse(1u64), 0usize));
    let mut guard = 0usize;
    while let Some((std::cmp::Reverse(sb), std::cmp::Reverse(mask), j)) = heap.pop() {
        let s = f32::from_bits(sb);
        if valid(mask) {
            out.push(mask);
            if out.len() >= n {
                return;
            }
        }
        guard += 1;
        if guard > 64 * n + 1024 {
            return;
        }
        if j + 1 < m {
            // shift: replace the max element j by j + 1
            let shifted = (mask & !(1 << j)) | (1 << (j + 1));
            heap.push((
                key(s - sorted_scores[j] + sorted_scores[j + 1]),
                std::cmp::Reverse(shifted),
                j + 1,
            ));
            // expand: add j + 1
            heap.push((
                key(s + sorted_scores[j + 1]),
                std::cmp::Reverse(mask | (1 << (j + 1))),
                j + 1,
            ));
        }
    }
}

impl Engine for SimHash {
    fn store(&self) -> &Store {
        &self.store
    }

    fn search_one(
        &self,
        q: &[f32],
        k: usize,
        p: &SearchParams,
        tenant: Option<u32>,
        s: &mut Scratch,
        top: &mut TopK,
    ) {
        let st = &self.store;
        if let Some(t) = tenant
            && use_exact_filter(st, t, p)
        {
            scan_tenant(self, q, t, s, top);
            return;
        }
        let mut proj = std::mem::take(&mut s.f32s);
        let mut qc = std::mem::take(&mut s.u64s);
        let mut res = std::mem::take(&mut s.reservoirs);
        self.hash(q, &mut proj, &mut qc);
        res.resize_with(1, Default::default);
        res[0].reset(if p.rerank == 0 { k } else { p.rerank });
        if self.scans(p) {
            self.scan_codes(&qc, tenant, &mut s.u16s, &mut res[..1]);
        } else {
            s.slots.clear();
            s.begin_visits(st.n_slots());
            let plain = tenant.is_none() && st.n_deleted == 0;
            let nb = self.cfg.n_bits;
            let mut order: Vec<usize> = (0..nb).collect();
            let mut masks = Vec::new();
            let mut sorted = Vec::with_capacity(nb);
            for (t, buckets) in self.buckets.iter().enumerate() {
                let pr = &proj[t * nb..(t + 1) * nb];
                masks.clear();
                masks.push(0u64);
                if p.n_probes > 1 {
                    order.sort_by(|&a, &b| pr[a].abs().total_cmp(&pr[b].abs()));
                    sorted.clear();
                    sorted.extend(order.iter().map(|&i| pr[i] * pr[i]));
                    let mut sets = Vec::new();
                    probe_sets(&sorted, p.n_probes - 1, |_| true, &mut sets);
                    for set in sets {
                        let mut flip = 0u64;
                        for (pos, &bit) in order.iter().enumerate() {
                            if set >> pos & 1 == 1 {
                                flip |= 1 << bit;
                            }
                        }
                        masks.push(flip);
                    }
                }
                for &flip in &masks {
                    if let Some(list) = buckets.get(&(qc[t] ^ flip)) {
                        for &slot in list {
                            if s.visit(slot) && (plain || st.allows(slot, tenant)) {
                                s.slots.push(slot);
                            }
                        }
                    }
                }
            }
            s.u16s.resize(s.slots.len(), 0);
            (kernels().hamming_at)(&self.codes, &s.slots, &qc, &mut s.u16s);
            for (&slot, &h) in s.slots.iter().zip(&s.u16s) {
                res[0].push((h as u64) << 32 | slot as u64);
            }
        }
        let mut scores = std::mem::take(&mut s.scores);
        self.finish_candidates(q, p, &mut res[0], top, &mut s.slots, &mut scores);
        s.scores = scores;
        s.f32s = proj;
        s.u64s = qc;
        s.reservoirs = res;
    }

    /// The Hamming scan for a group of queries at once (codes read once per
    /// group); the same reservoirs and ranking as [`Engine::search_one`].
    fn search_block(
        &self,
        qs: &[f32],
        k: usize,
        p: &SearchParams,
        s: &mut Scratch,
        tops: &mut [TopK],
    ) -> bool {
        if !self.scans(p) {
            return false;
        }
        let dim = self.store.dim;
        let g = tops.len();
        let (mut proj, mut one) = (std::mem::take(&mut s.f32s), std::mem::take(&mut s.u64s));
        let mut res = std::mem::take(&mut s.reservoirs);
        let mut qc = Vec::with_capacity(g * self.cfg.n_tables);
        for q in qs.chunks_exact(dim) {
            self.hash(q, &mut proj, &mut one);
            qc.extend_from_slice(&one);
        }
        res.resize_with(g, Default::default);
        res.iter_mut()
            .for_each(|r| r.reset(if p.rerank == 0 { k } else { p.rerank }));
        self.scan_codes(&qc, None, &mut s.u16s, &mut res[..g]);
        for ((q, r), top) in qs
            .chunks_exact(dim)
            .zip(res.iter_mut())
            .zip(tops.iter_mut())
        {
            self.finish_candidates(q, p, r, top, &mut s.slots, &mut s.scores);
        }
        s.f32s = proj;
        s.u64s = one;
        s.reservoirs = res;
        true
    }

    fn report(&self, score: f32, p: &SearchParams) -> f32 {
        if p.rerank == 0 {
            score
        } else {
            self.store.metric.report(score)
        }
    }
}

impl VectorIndex for SimHash {
    store_delegates!();

    fn kind(&self) -> &'static str {
        "simhash"
    }

    fn is_trained(&self) -> bool {
        true
    }

    /// Centres the hyperplanes on the mean of `data` (re-hashing any vectors
    /// already added).
    fn train(&mut self, data: &[f32]) -> Result<()> {
        let dim = self.store.dim;
        let n = rows(data, dim, "training vectors")?;
        if n == 0 {
            return Err(Error::invalid(
                "training vectors",
                "need at least one vector",
            ));
        }
        let data = self.store.prepare(data);
        let mut mean = vec![0.0f64; dim];
        for v in data.chunks_exact(dim) {
            mean.iter_mut().zip(v).for_each(|(m, x)| *m += *x as f64);
        }
        let mean: Vec<f32> = mean.iter().map(|m| (*m / n as f64) as f32).collect();
        for (i, o) in self.offsets.iter_mut().enumerate() {
            *o = dot(&self.planes[i * dim..(i + 1) * dim], &mean);
        }
        self.trained = true;
        self.rehash_all();
        Ok(())
    }

    fn add_with_tenants(
        &mut self,
        data: &[f32],
        ids: &[u64],
        tenants: Option<Tenants<'_>>,
    ) -> Result<()> {
        let (data, n) = self.store.begin_add(data, ids, tenants.as_ref())?;
        let (mut proj, mut codes) = (Vec::new(), Vec::new());
        let dim = self.store.dim;
        for i in 0..n {
            // Stoppable between two vectors (see `memarena_core::cancel`).
            memarena_core::cancel::check()?;
            self.hash(&data[i * dim..(i + 1) * dim], &mut proj, &mut codes);
            let slot = self.store.push_row(&data, ids, tenants.as_ref(), i);
            self.insert_codes(slot, &codes);
        }
        Ok(())
    }

    fn delete(&mut self, ids: &[u64]) -> Result<usize> {
        let slots = self.store.delete(ids);
        let nt = self.cfg.n_tables;
        for &slot in &slots {
            for (t, b) in self.buckets.iter_mut().enumerate() {
                unlink_bucket(b, self.codes[slot as usize * nt + t], slot);
            }
        }
        Ok(slots.len())
    }

    fn reset(&mut self) {
        self.store.reset();
        self.codes.clear();
        self.buckets.iter_mut().for_each(|b| b.clear());
    }

    fn memory_bytes(&self) -> usize {
        self.store.memory_bytes()
            + self.planes.capacity() * 4
            + self.offsets.capacity() * 4
            + self.codes.capacity() * 8
            + buckets_bytes(&self.buckets)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.store.write(&mut w);
        w.u32(self.cfg.n_bits as u32);
        w.u32(self.cfg.n_tables as u32);
        w.u64(self.cfg.seed);
        w.u8(self.trained as u8);
        w.f32s(&self.offsets);
        encode(self.kind(), &w.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sets_come_in_increasing_score() {
        let scores = [0.1f32, 0.2, 0.4, 0.8, 1.6];
        let mut out = Vec::new();
        probe_sets(&scores, 10, |_| true, &mut out);
        let total = |m: u64| {
            (0..5)
                .filter(|i| m >> i & 1 == 1)
                .map(|i| scores[i])
                .sum::<f32>()
        };
        assert_eq!(out.len(), 10);
        assert_eq!(out[0], 0b1);
        for w in out.windows(2) {
            assert!(total(w[0]) <= total(w[1]) + 1e-6);
        }
        let mut dedup = out.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), out.len());
    }
}
