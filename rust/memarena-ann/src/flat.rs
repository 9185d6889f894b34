//! Exact brute-force search: the ground truth every other index is measured against.

use memarena_core::Result;

use crate::gemm;
use crate::index::{Engine, SearchParams, VectorIndex, scan_tenant, store_delegates};
use crate::metric::{Metric, norm_sq};
use crate::persist::{Reader, Writer, encode};
use crate::simd;
use crate::store::Store;
use crate::tenant::Tenants;
use crate::topk::{Reservoir, Scratch, TopK, key_score, score_key};

/// Exact index: scores every live vector (or, for a filtered query, every
/// vector of the tenant).
#[derive(Clone, Debug)]
pub struct Flat {
    store: Store,
}

impl Flat {
    /// An empty flat index.
    pub fn new(metric: Metric, dim: usize) -> Self {
        Flat {
            store: Store::new(metric, dim, true),
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let store = Store::read(r)?;
        if !store.keep_vectors {
            return Err(r.err("flat index without vectors"));
        }
        Ok(Flat { store })
    }
}

impl Engine for Flat {
    fn store(&self) -> &Store {
        &self.store
    }

    fn search_one(
        &self,
        q: &[f32],
        _k: usize,
        _p: &SearchParams,
        tenant: Option<u32>,
        s: &mut Scratch,
        top: &mut TopK,
    ) {
        match tenant {
            Some(t) => scan_tenant(self, q, t, s, top),
            None => {
                let mut sc = std::mem::take(&mut s.f32s);
                for (b, block) in self.store.data.chunks(BLOCK * self.store.dim).enumerate() {
                    self.scan_block(q, block, b * BLOCK, &mut sc, top);
                }
                s.f32s = sc;
            }
        }
    }

    /// Groups of [`GEMM_MIN_QUERIES`] or more: [`Flat::gemm_group`] (a
    /// blocked matrix product selects, the scan kernel re-scores). Smaller
    /// groups: a cache-blocked scan, each block of vectors scored against
    /// every query of the group while it is in cache. Both give exactly the
    /// one-query path's results.
    fn search_block(
        &self,
        qs: &[f32],
        k: usize,
        _p: &SearchParams,
        s: &mut Scratch,
        tops: &mut [TopK],
    ) -> bool {
        if tops.len() >= GEMM_MIN_QUERIES && self.store.dim > 0 {
            self.gemm_group(qs, k, s, tops);
            return true;
        }
        let dim = self.store.dim;
        let sc = &mut s.f32s;
        for (b, block) in self.store.data.chunks(BLOCK * dim).enumerate() {
            for (q, top) in qs.chunks_exact(dim).zip(tops.iter_mut()) {
                self.scan_block(q, block, b * BLOCK, sc, top);
            }
        }
        true
    }

    fn block_group(&self) -> usize {
        GEMM_GROUP
    }
}

impl Flat {
    /// Scores one block of stored vectors (first slot `base`) in one
    /// dispatched call and offers the live ones that beat the threshold.
    fn scan_block(&self, q: &[f32], block: &[f32], base: usize, sc: &mut Vec<f32>, top: &mut TopK) {
        let st = &self.store;
        let n = block.len() / st.dim;
        if sc.len() < n {
            sc.resize(n, 0.0);
        }
        st.metric.score_many(q, block, sc);
        for (i, &d) in sc[..n].iter().enumerate() {
            let slot = base + i;
            if d <= top.threshold() && !st.deleted[slot] {
                top.push(d, slot as u32);
            }
        }
    }
}

/// Vectors per cache block of the batched scan (64 KiB at dim 128).
const BLOCK: usize = 128;

/// Queries per group of a batch (faiss blocks 4096): each pass over the
/// stored vectors serves this many queries, and the packed group (384 KiB
/// at dim 384) and a score tile still fit a 1 MiB L2. 256 measured 8% (dim
/// 384) to 17% (dim 128) faster than 128 on one Zen 4 core.
const GEMM_GROUP: usize = 256;
/// The smallest group searched by GEMM (faiss: `distance_compute_blas_threshold = 20`).
const GEMM_MIN_QUERIES: usize = 20;
/// Stored vectors per GEMM block (faiss `distance_compute_blas_database_bs = 1024`;
/// 256 keeps a 256-query score tile at 256 KiB).
const GEMM_ROWS: usize = 256;

impl Flat {
    /// Exact top-`k` of a group of queries through a blocked GEMM.
    ///
    /// Each block of `GEMM_ROWS` vectors is multiplied with the group
    /// ([`gemm::QueryPanel::dots`], the group packed once); a query keeps its best `2k + 32` approximate
    /// scores (`-<q, x>`, or `|x|^2 + |q|^2 - 2 <q, x>` for L2). Approximate and
    /// scan scores differ by at most `e = 2 * dot_error_bound` (for L2 with
    /// norms `|q| + max |x|`), so every vector of the exact top-`k` has an
    /// approximate score within `2e` of the `k`-th approximate one: those are
    /// re-scored by the scan's kernel and offered to `top` (which orders by
    /// `(score, slot)` whatever the arrival order). A query whose kept list
    /// ends inside that window (many near-ties) is scanned instead. Either
    /// way the result is the scan's, bit for bit.
    fn gemm_group(&self, qs: &[f32], k: usize, s: &mut Scratch, tops: &mut [TopK]) {
        let st = &self.store;
        let dim = st.dim;
        let g = tops.len();
        let l2 = st.metric == Metric::L2;
        let cap = 2 * k + 32;
        let mut approx = std::mem::take(&mut s.reservoirs);
        approx.resize_with(g, Reservoir::default);
        approx.iter_mut().for_each(|r| r.reset(cap));
        // `thr[j]`: the score of `approx[j]`'s threshold key, at all times
        // (every key the reservoir takes has a score `<= thr[j]`).
        let mut thr = vec![f32::INFINITY; g];
        let mut hits = vec![0u16; g.div_ceil(16)];
        let qn: Vec<f32> = qs.chunks_exact(dim).map(norm_sq).collect();
        let panel = gemm::QueryPanel::new(qs, g, dim);
        let w = panel.width();
        let mut tile = std::mem::take(&mut s.f32s);
        let mut xn = std::mem::take(&mut s.scores);
        tile.resize(w * GEMM_ROWS, 0.0);
        xn.resize(GEMM_ROWS, 0.0);
        let mut max_xn = 0.0f32;
        for (b, block) in st.data.chunks(GEMM_ROWS * dim).enumerate() {
            let nb = block.len() / dim;
            let base = b * GEMM_ROWS;
            panel.dots(block, nb, &mut tile[..nb * w]);
            for (x, n) in block.chunks_exact(dim).zip(xn.iter_mut()) {
                *n = norm_sq(x);
                max_xn = max_xn.max(*n);
            }
            let dead = &st.deleted[base..base + nb];
            for (i, row) in tile.chunks_exact(w).take(nb).enumerate() {
                if dead[i] {
                    continue;
                }
                let row = (&row[..g], xn[i], (base + i) as u32);
                offer_row(row, &qn, l2, &mut thr, &mut approx, &mut hits);
            }
        }
        let mut one = [0.0f32; 1];
        let mut items = std::mem::take(&mut s.pairs);
        for (j, (top, cand)) in tops.iter_mut().zip(approx.iter_mut()).enumerate() {
            let q = &qs[j * dim..(j + 1) * dim];
            let (qnorm, m) = (qn[j].sqrt(), max_xn.sqrt());
            let e = 2.0
                * if l2 {
                    gemm::dot_error_bound(dim, qnorm + m, qnorm + m)
                } else {
                    gemm::dot_error_bound(dim, qnorm, m)
                };
            let keys = cand.finish_unordered();
            items.clear();
            items.extend(
                keys.iter()
                    .map(|&key| (key_score((key >> 32) as u32), key as u32)),
            );
            items.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let tau = if items.len() >= k {
                items[k - 1].0
            } else {
                f32::INFINITY
            };
            let limit = tau + 2.0 * e;
            // NaN-safe: an overflowing bound also falls back to the scan.
            if items.len() >= cap && not_above(items[cap - 1].0, limit) {
                for (b, block) in st.data.chunks(BLOCK * dim).enumerate() {
                    self.scan_block(q, block, b * BLOCK, &mut tile, top);
                }
                continue;
            }
            for &(_, slot) in items.iter().take_while(|c| not_above(c.0, limit)) {
                let x = &st.data[slot as usize * dim..(slot as usize + 1) * dim];
                st.metric.score_many(q, x, &mut one);
                top.push(one[0], slot);
            }
        }
        s.f32s = tile;
        s.scores = xn;
        s.pairs = items;
        s.reservoirs = approx;
    }
}

impl VectorIndex for Flat {
    store_delegates!();

    fn kind(&self) -> &'static str {
        "flat"
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
        self.store.add_rows(data, ids, tenants.as_ref())?;
        Ok(())
    }

    fn delete(&mut self, ids: &[u64]) -> Result<usize> {
        Ok(self.store.delete(ids).len())
    }

    fn reset(&mut self) {
        self.store.reset();
    }

    fn memory_bytes(&self) -> usize {
        self.store.memory_bytes()
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.store.write(&mut w);
        encode(self.kind(), &w.buf)
    }
}

/// Offers one stored row's approximate scores to the group's lists: `dots[j]
/// = <q_j, x>` becomes `-dots[j]`, or `|x|^2 + |q_j|^2 - 2 dots[j]` for L2
/// (`x2`, `qn[j]`), and enters list `j` if it is `<= thr[j]`. The test runs
/// 16 queries at a time ([`simd::Kernels::row_hits`]); nearly every chunk
/// misses, so the lists are touched only for hits. A query's push changes
/// only its own threshold, so the masks stay exact while the hits are
/// offered: the same lists as offering every score one by one. The lists
/// are [`Reservoir`]s of `(score_key << 32) | slot` (an offer is an append,
/// a cut to the best `cap` now and then): far cheaper than a sorted insert.
///
/// Invariant (kept): `thr[j]` is the score of `tops[j]`'s threshold key
/// (infinite while it has none), so the filter passes every key it takes.
fn offer_row(
    row: (&[f32], f32, u32),
    qn: &[f32],
    l2: bool,
    thr: &mut [f32],
    tops: &mut [Reservoir],
    hits: &mut [u16],
) {
    let (dots, x2, slot) = row;
    (simd::kernels().row_hits)(dots, qn, thr, x2, l2, hits);
    for (c, &h) in hits.iter().enumerate() {
        let mut h = u32::from(h);
        while h != 0 {
            let j = 16 * c + h.trailing_zeros() as usize;
            h &= h - 1;
            let sc = if l2 {
                x2 + qn[j] - 2.0 * dots[j]
            } else {
                -dots[j]
            };
            let r = &mut tops[j];
            r.push(u64::from(score_key(sc)) << 32 | u64::from(slot));
            thr[j] = match r.threshold() {
                u64::MAX => f32::INFINITY,
                t => key_score((t >> 32) as u32),
            };
        }
    }
}

/// `x <= limit`, or either is NaN: "not provably above the bound" (a NaN falls back to the exact path).
fn not_above(x: f32, limit: f32) -> bool {
    x.partial_cmp(&limit) != Some(std::cmp::Ordering::Greater)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::VectorIndex;
    use memarena_core::rng::Rng;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// A GEMM-searched batch (groups of 20+ queries) gives exactly what
        /// each query gets alone from the scan: ids, order and distances,
        /// with exact duplicates (ties), near-duplicates, deletes, every
        /// metric and k beyond the live count.
        #[test]
        fn gemm_batches_equal_single_query_scans(
            n in 1usize..1300,
            dim in 1usize..48,
            nq in 20usize..70,
            k in 1usize..40,
            metric in prop::sample::select(vec![Metric::L2, Metric::InnerProduct, Metric::Cosine]),
            scale in prop::sample::select(vec![1e-3f32, 1.0, 1e3]),
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::seed_from_u64(seed);
            let mut data: Vec<f32> = (0..n * dim).map(|_| scale * rng.normal() as f32).collect();
            // duplicates and near-duplicates of earlier rows
            for i in (1..n).step_by(7) {
                let j = rng.below(i as u64) as usize;
                let jitter = if i % 2 == 0 { 0.0 } else { 1e-6 * scale };
                for d in 0..dim {
                    data[i * dim + d] = data[j * dim + d] + jitter;
                }
            }
            let mut idx = Flat::new(metric, dim);
            let ids: Vec<u64> = (0..n as u64).map(|i| i * 5 + 2).collect();
            idx.add(&data, &ids).unwrap();
            let dead: Vec<u64> = ids.iter().copied().filter(|i| i % 3 == 0).collect();
            idx.delete(&dead).unwrap();
            // queries: fresh draws and copies of stored rows (exact ties)
            let qs: Vec<f32> = (0..nq)
                .flat_map(|j| {
                    let r = (j * 13) % n;
                    let copy = j % 3 == 0;
                    let row = data[r * dim..(r + 1) * dim].to_vec();
                    (0..dim)
                        .map(|d| if copy { row[d] } else { scale * rng.normal() as f32 })
                        .collect::<Vec<_>>()
                })
                .collect();
            let one = SearchParams { threads: 1, ..SearchParams::default() };
            let batch = idx.search(&qs, k, &one, None).unwrap();
            for j in 0..nq {
                let r = idx.search(&qs[j * dim..(j + 1) * dim], k, &one, None).unwrap();
                prop_assert_eq!(&r.ids[..], batch.row_ids(j), "query {}", j);
                prop_assert_eq!(&r.distances[..], batch.row_distances(j), "query {}", j);
            }
        }
    }

    /// Far more tied vectors than the GEMM keeps (`2k + 32`): the query
    /// falls back to the scan and still matches it, ties broken by slot.
    #[test]
    fn all_tied_vectors_fall_back_to_the_scan() {
        let (n, dim, k) = (700, 8, 10);
        let mut data = vec![0.5f32; n * dim];
        data[(n - 1) * dim..].fill(1.0); // one clear winner (the query itself), at the last slot
        for metric in [Metric::L2, Metric::InnerProduct] {
            let mut idx = Flat::new(metric, dim);
            let ids: Vec<u64> = (0..n as u64).collect();
            idx.add(&data, &ids).unwrap();
            let qs = vec![1.0f32; 30 * dim];
            let one = SearchParams {
                threads: 1,
                ..SearchParams::default()
            };
            let batch = idx.search(&qs, k, &one, None).unwrap();
            let alone = idx.search(&qs[..dim], k, &one, None).unwrap();
            let want: Vec<i64> = std::iter::once(n as i64 - 1)
                .chain(0..k as i64 - 1)
                .collect();
            for j in 0..30 {
                assert_eq!(batch.row_ids(j), &want[..], "{metric:?}");
                assert_eq!(batch.row_distances(j), &alone.distances[..]);
            }
        }
    }
}
