//! SimHash LSH (Charikar 2002): random hyperplanes, several tables,
//! query-directed multi-probe (Lv et al., VLDB 2007) and optional exact
//! re-ranking — the LSH organisation Think-in-Memory stores its memories in.
//!
//! Each table hashes a vector to an `n_bits`-bit code, bit `b` being the sign
//! of `<plane_b, x> - threshold_b`. Untrained, every threshold is 0 (the
//! planes pass through the origin, as in faiss `IndexLSH`);
//! [`VectorIndex::train`] sets each threshold to the median projection of the
//! training vectors (faiss `IndexLSH`'s `train_thresholds`), so every bit
//! splits the training data in half.
//!
//! The hyperplanes ([`Planes`]) are by default orthonormal: blocks of `dim`
//! orthonormal directions, each block the Gram-Schmidt orthonormalisation of
//! a seeded Gaussian matrix, i.e. a random rotation as faiss `IndexLSH`
//! (`rotate_data = true`) applies; `Planes::Gaussian`, independent Gaussian
//! hyperplanes, is what indexes saved before this choice existed use.
//! Orthonormal bits are decorrelated on anisotropic data (embeddings whose
//! mean is far from 0 and whose variance sits in few directions), so codes
//! rank neighbours better at the same width (a test in
//! `tests/simhash_planes.rs` shows it).
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
use crate::metric::Metric;
use crate::persist::{Reader, Writer, encode};
use crate::simd::kernels;
use crate::store::Store;
use crate::tenant::Tenants;
use crate::topk::{Reservoir, Scratch, TopK};

/// Codes per chunk of the blocked Hamming scan (32 KiB of 256-bit codes).
const SCAN_CHUNK: usize = 1024;

/// Widest table that keeps bucket maps.
pub const MAX_BUCKET_BITS: usize = 32;

/// How the hyperplanes of a [`SimHash`] are drawn from its seed.
#[derive(Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Planes {
    /// Blocks of `dim` orthonormal unit directions (a random rotation per
    /// block), as faiss `IndexLSH(d, nbits, rotate_data=true)`.
    #[default]
    Orthonormal,
    /// Independent standard Gaussian hyperplanes (not normalised): the
    /// planes of every index saved before [`Planes`] existed.
    Gaussian,
}

/// The config name (`orthonormal`, `gaussian`), as configs spell it.
impl std::fmt::Debug for Planes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Planes::Orthonormal => "orthonormal",
            Planes::Gaussian => "gaussian",
        })
    }
}

impl Planes {
    /// Code in the persisted payload (absent = `Gaussian`, files from before).
    fn code(self) -> u64 {
        match self {
            Planes::Gaussian => 0,
            Planes::Orthonormal => 1,
        }
    }
}

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
    /// How the hyperplanes are drawn (`"orthonormal"` or `"gaussian"`).
    pub planes: Planes,
}

/// The defaults equal the Python `SimHash.Config` defaults (the user-facing
/// source; `tests/unit/retrieval/test_core_defaults.py` checks them).
impl Default for SimHashConfig {
    fn default() -> Self {
        SimHashConfig {
            n_bits: 16,
            n_tables: 16,
            seed: 0,
            planes: Planes::Orthonormal,
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
    /// Per hyperplane: the threshold its projection is compared with (0
    /// until trained; then the median projection of the training data, or,
    /// in files saved before, `<plane, mean>`).
    offsets: Vec<f32>,
    trained: bool,
    /// `n_slots * n_tables` codes, slot-major.
    codes: Vec<u64>,
    /// Per table: code -> slots (only when `n_bits <= MAX_BUCKET_BITS`).
    buckets: Vec<FxHashMap<u64, Vec<u32>>>,
}

impl SimHash {
    /// An empty index with seeded hyperplanes ([`SimHashConfig::planes`]).
    pub fn new(metric: Metric, dim: usize, cfg: SimHashConfig) -> Result<Self> {
        if cfg.n_bits == 0 || cfg.n_bits > 64 || cfg.n_tables == 0 || cfg.n_tables > 64 {
            return Err(Error::invalid(
                "simhash",
                "n_bits and n_tables must be in 1..=64",
            ));
        }
        let n_planes = cfg.n_bits * cfg.n_tables;
        let planes = match cfg.planes {
            Planes::Gaussian => {
                let mut rng = Rng::seed_from_u64(cfg.seed);
                (0..n_planes * dim).map(|_| rng.normal() as f32).collect()
            }
            Planes::Orthonormal => orthonormal_planes(n_planes, dim, cfg.seed),
        };
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
        // Appended when the planes are not Gaussian (absent in files saved
        // before `Planes` existed, whose planes are Gaussian).
        let planes = match r.trailing_u64("planes", Planes::Gaussian.code())? {
            0 => Planes::Gaussian,
            1 => Planes::Orthonormal,
            other => return Err(r.err(format!("unknown simhash planes code {other}"))),
        };
        if !(1..=64).contains(&n_bits) || !(1..=64).contains(&n_tables) || !store.keep_vectors {
            return Err(r.err("bad simhash configuration"));
        }
        let cfg = SimHashConfig {
            n_bits,
            n_tables,
            seed,
            planes,
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

/// Seeded orthonormal hyperplanes: `n_planes` rows of `dim` values, in
/// blocks of `dim` rows (the last block shorter), each block orthonormal
/// (modified Gram-Schmidt, in f64 and twice, of standard Gaussian rows) and
/// the blocks independent.
///
/// For `n_planes <= dim` this is faiss's `RandomRotationMatrix(d, nbits)`
/// that `IndexLSH(d, nbits, rotate_data=true)` applies (the QR of a Gaussian
/// matrix: Gram-Schmidt of Gaussian rows is Haar-distributed as well);
/// faiss/VectorTransform.cpp, `RandomRotationMatrix::init`:
///
/// ```text
/// if (d_out <= d_in) {
///     A.resize(d_out * d_in);
///     float* q = A.data();
///     float_randn(q, d_out * d_in, seed);
///     matrix_qr(d_in, d_out, q);
/// } else {
///     // use tight-frame transformation
///     A.resize(d_out * d_out);
///     ...
///     matrix_qr(d_out, d_out, q);
///     // remove columns
/// ```
///
/// For more bits than dimensions faiss keeps `d_in` columns of a `d_out`
/// rotation (a tight frame, rows not of unit norm); here each further block
/// of `dim` bits is another independent rotation, so every plane is a unit
/// vector and each block of `dim` bits is exactly decorrelated.
pub fn orthonormal_planes(n_planes: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n_planes * dim);
    let mut block: Vec<Vec<f64>> = Vec::with_capacity(dim.min(n_planes));
    for _ in 0..n_planes {
        if block.len() == dim {
            block.clear();
        }
        let row = loop {
            let mut g: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
            for _ in 0..2 {
                for b in &block {
                    let c: f64 = g.iter().zip(b).map(|(x, y)| x * y).sum();
                    g.iter_mut().zip(b).for_each(|(x, y)| *x -= c * y);
                }
            }
            let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
            // A Gaussian row in the span of the block has probability 0;
            // draw again if rounding ever makes it nearly so.
            if norm > 1e-6 {
                g.iter_mut().for_each(|x| *x /= norm);
                break g;
            }
        };
        out.extend(row.iter().map(|&x| x as f32));
        block.push(row);
    }
    assert_eq!(out.len(), n_planes * dim, "one row per plane");
    out
}

/// Per plane (rows of `dim` values in `planes`), the median of the
/// projections of the rows of `data`: the mean of the two middle values
/// when the count is even, as faiss `train_thresholds`. Projections are
/// computed by the kernel that hashes (so a vector's bit is the comparison
/// of exactly the value the median was taken over), a group of planes at
/// a time to bound the buffer.
pub(crate) fn median_thresholds(planes: &[f32], dim: usize, data: &[f32]) -> Result<Vec<f32>> {
    assert!(
        dim > 0 && planes.len().is_multiple_of(dim),
        "planes are rows of dim"
    );
    let n_planes = planes.len() / dim;
    let n = data.len() / dim;
    assert!(n > 0 && data.len() == n * dim, "data is n >= 1 rows of dim");
    // At most 16 Mi projections (64 MiB) at once.
    let group = ((16usize << 20) / n).clamp(1, n_planes);
    let dot_block = kernels().dot_block;
    let mut out = Vec::with_capacity(n_planes);
    let mut proj = vec![0.0f32; group];
    let mut cols: Vec<Vec<f32>> = Vec::new();
    for p0 in (0..n_planes).step_by(group) {
        let g = group.min(n_planes - p0);
        let rows = &planes[p0 * dim..(p0 + g) * dim];
        cols.clear();
        cols.resize_with(g, || Vec::with_capacity(n));
        for x in data.chunks_exact(dim) {
            memarena_core::cancel::check()?;
            (dot_block)(x, 1, rows, &mut proj[..g]);
            for (c, &v) in cols.iter_mut().zip(&proj[..g]) {
                c.push(v);
            }
        }
        for c in &mut cols {
            out.push(median(c));
        }
    }
    Ok(out)
}

/// The median of `v` (reordered): the middle value, or the mean of the two
/// middle values when `v.len()` is even. `v` is not empty.
fn median(v: &mut [f32]) -> f32 {
    let n = v.len();
    let (_, &mut hi, _) = v.select_nth_unstable_by(n / 2, f32::total_cmp);
    if n % 2 == 1 {
        return hi;
    }
    // The largest of the lower half is the other middle value.
    let lo = v[..n / 2]
        .iter()
        .copied()
        .max_by(f32::total_cmp)
        .expect("n >= 2");
    ((lo as f64 + hi as f64) / 2.0) as f32
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

    /// Sets each hyperplane's threshold to the median projection of `data`
    /// (re-hashing any vectors already added), so that every bit splits the
    /// training vectors in half (within one vector when projections tie
    /// nowhere).
    ///
    /// faiss `IndexLSH::train` with `train_thresholds` (faiss/IndexLSH.cpp):
    ///
    /// ```text
    /// std::nth_element(xi, xi + n / 2, xi + n);
    /// float median = xi[n / 2];
    /// if (n % 2 == 0) {
    ///     std::nth_element(xi, xi + n / 2 - 1, xi + n);
    ///     median = (median + xi[n / 2 - 1]) / 2;
    /// }
    /// thresholds[i] = median;
    /// ```
    ///
    /// Earlier builds centred the planes on the mean (`<plane, mean>`): on
    /// anisotropic data a projection's mean is not its median (the
    /// distribution is skewed by the directions the data concentrates in),
    /// so bits stayed unbalanced, and the balance they did gain shrank the
    /// buckets a query probes without making them more precise.
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
        self.offsets = median_thresholds(&self.planes, dim, &data)?;
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
        // Gaussian planes write nothing more, so their files keep the bytes
        // of the format before `Planes` (and load in older builds).
        if self.cfg.planes != Planes::Gaussian {
            w.u64(self.cfg.planes.code());
        }
        encode(self.kind(), &w.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{IndexConfig, build, from_bytes};
    use memarena_core::rng::Rng;
    use proptest::prelude::*;

    fn gaussian_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::seed_from_u64(seed);
        (0..n * dim).map(|_| rng.normal() as f32).collect()
    }

    fn config(planes: Planes) -> SimHashConfig {
        SimHashConfig {
            n_bits: 12,
            n_tables: 5,
            seed: 3,
            planes,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Every block of `dim` planes is orthonormal: |R R^T - I| small.
        #[test]
        fn orthonormal_planes_are_blocks_of_rotations(
            dim in 1usize..40, n_planes in 1usize..120, seed in any::<u64>()
        ) {
            let p = orthonormal_planes(n_planes, dim, seed);
            prop_assert_eq!(p.len(), n_planes * dim);
            for block in p.chunks(dim * dim) {
                let rows: Vec<&[f32]> = block.chunks_exact(dim).collect();
                for (i, a) in rows.iter().enumerate() {
                    for (j, b) in rows.iter().enumerate() {
                        let d: f64 = a.iter().zip(*b).map(|(x, y)| *x as f64 * *y as f64).sum();
                        let want = if i == j { 1.0 } else { 0.0 };
                        prop_assert!((d - want).abs() < 1e-5, "dim {} rows {} {}: {}", dim, i, j, d);
                    }
                }
            }
            // Seeded: the same seed gives the same planes.
            prop_assert_eq!(orthonormal_planes(n_planes, dim, seed), p);
        }

        /// After `train`, each bit is 1 for half the training vectors
        /// (within one), whichever planes.
        #[test]
        fn median_thresholds_split_every_bit_in_half(
            n in 1usize..300, dim in 1usize..24, seed in any::<u64>(), gaussian in any::<bool>(),
            shift in -3.0f32..3.0,
        ) {
            let planes = if gaussian { Planes::Gaussian } else { Planes::Orthonormal };
            let cfg = SimHashConfig { n_bits: 7, n_tables: 3, seed, planes };
            let mut idx = SimHash::new(Metric::L2, dim, cfg).unwrap();
            // Off-centre data: untrained, most bits would be unbalanced.
            let data: Vec<f32> = gaussian_rows(n, dim, seed ^ 1).iter().map(|x| x + shift).collect();
            idx.train(&data).unwrap();
            let ids: Vec<u64> = (0..n as u64).collect();
            idx.add(&data, &ids).unwrap();
            for t in 0..3 {
                for b in 0..7 {
                    let ones = (0..n).filter(|&s| idx.codes[s * 3 + t] >> b & 1 == 1).count();
                    prop_assert!(
                        (ones as f64 - n as f64 / 2.0).abs() <= 1.0,
                        "table {} bit {}: {} of {} ones", t, b, ones, n
                    );
                }
            }
        }

        /// Saved indexes load with the same planes, thresholds and results,
        /// and re-serialize to the same bytes; Gaussian planes write the
        /// format of before the choice existed (no trailing planes code).
        #[test]
        fn persistence_round_trips_both_planes(seed in any::<u64>(), train in any::<bool>()) {
            let data = gaussian_rows(200, 6, seed);
            let ids: Vec<u64> = (0..200).collect();
            let queries = gaussian_rows(5, 6, seed ^ 2);
            let p = SearchParams { n_probes: 3, rerank: 20, ..SearchParams::default() };
            let mut sizes = Vec::new();
            for planes in [Planes::Gaussian, Planes::Orthonormal] {
                let mut idx = build(Metric::L2, 6, &IndexConfig::SimHash(SimHashConfig { seed, ..config(planes) })).unwrap();
                if train {
                    idx.train(&data).unwrap();
                }
                idx.add(&data, &ids).unwrap();
                let bytes = idx.to_bytes();
                let back = from_bytes(&bytes).unwrap();
                prop_assert_eq!(back.to_bytes(), bytes.clone());
                prop_assert_eq!(
                    back.search(&queries, 5, &p, None).unwrap(),
                    idx.search(&queries, 5, &p, None).unwrap()
                );
                sizes.push(bytes.len());
            }
            prop_assert_eq!(sizes[1], sizes[0] + 8);
        }
    }

    #[test]
    fn a_payload_without_the_planes_code_loads_as_gaussian() {
        let data = gaussian_rows(100, 6, 1);
        let ids: Vec<u64> = (0..100).collect();
        let mut old = SimHash::new(Metric::L2, 6, config(Planes::Gaussian)).unwrap();
        old.add(&data, &ids).unwrap();
        let bytes = old.to_bytes();
        let back = from_bytes(&bytes).unwrap();
        let p = SearchParams {
            n_probes: 0,
            rerank: 0,
            ..SearchParams::default()
        };
        let q = gaussian_rows(4, 6, 9);
        assert_eq!(
            back.search(&q, 10, &p, None).unwrap(),
            old.search(&q, 10, &p, None).unwrap()
        );
        // The same payload with an unknown planes code appended is an error
        // naming its offset. Header: magic, version, kind, payload length.
        let header = 8 + 4 + 1 + "simhash".len() + 8;
        let mut payload = bytes[header..bytes.len() - 4].to_vec();
        payload.extend_from_slice(&7u64.to_le_bytes());
        let e = from_bytes(&encode("simhash", &payload))
            .unwrap_err()
            .to_string();
        assert!(e.contains("planes code 7") && e.contains("byte"), "{e}");
    }

    #[test]
    fn median_is_the_middle_or_the_mean_of_the_two_middles() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [5.0]), 5.0);
    }

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
