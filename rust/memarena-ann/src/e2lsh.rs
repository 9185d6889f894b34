//! E2LSH (Datar et al. 2004): p-stable (Gaussian) projections for L2.
//!
//! Table `t` hashes `x` to the tuple `floor((<a_i, x> + b_i) / w)` for
//! `i < k`; `L` tables are kept. Multi-probe (Lv et al. 2007) also visits the
//! buckets one step away in the coordinates whose projections fell closest to
//! a bucket boundary. Candidates are re-scored with the exact metric (all of
//! them, or the first `rerank` found).
//!
//! The bucket width only makes sense relative to the data's distance scale
//! (a width far below the near-neighbour distance puts every neighbour in
//! another bucket). By default (`w = 0`) the width is derived from the data:
//! `w = w_scale * r`, where `r` is the median distance from a sample point to
//! its nearest other sample point (up to [`SCALE_SAMPLE`] points, seeded), so
//! the same defaults work for unit vectors and for raw features. `train`
//! measures it; an untrained index measures it on its first `add` batch.

use memarena_core::rng::{Rng, mix64};
use memarena_core::{Error, FxHashMap, Result};
use serde::Deserialize;

use crate::index::{
    Engine, SearchParams, VectorIndex, buckets_bytes, in_range, in_range_f32, rows, scan_tenant,
    store_delegates, unlink_bucket, use_exact_filter,
};
use crate::metric::{Metric, dot, l2_sq};
use crate::persist::{Reader, Writer, encode};
use crate::simhash::probe_sets;
use crate::store::Store;
use crate::tenant::Tenants;
use crate::topk::{Scratch, TopK};

/// Build parameters of [`E2Lsh`] (`kind: e2lsh`), deserialized from
/// every field the Python `Config` sends.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct E2LshConfig {
    /// Projections concatenated per table (1..=32).
    pub k: usize,
    /// Number of tables (1..=256).
    pub l: usize,
    /// Bucket width in units of the data; 0 (the default) derives it from
    /// the data as `w_scale` times the sampled near-neighbour distance.
    pub w: f32,
    /// With `w = 0`: the bucket width as a multiple of the data's
    /// near-neighbour distance scale (> 0).
    pub w_scale: f32,
    /// Seed of the projections, offsets and the scale sample.
    pub seed: u64,
}

/// Points sampled to measure the near-neighbour distance scale.
pub const SCALE_SAMPLE: usize = 512;

impl Default for E2LshConfig {
    fn default() -> Self {
        E2LshConfig {
            k: 16,
            l: 16,
            w: 0.0,
            w_scale: 4.0,
            seed: 0,
        }
    }
}

impl E2LshConfig {
    /// Range checks; errors name the key (`index.k`).
    pub fn validate(&self) -> Result<()> {
        in_range("k", self.k, 1, 32)?;
        in_range("l", self.l, 1, 256)?;
        in_range_f32("w", self.w, 0.0, 1e9)?;
        in_range_f32("w_scale", self.w_scale, 1e-6, 1e6)
    }
}

/// E2LSH index. See the module documentation.
#[derive(Clone, Debug)]
pub struct E2Lsh {
    store: Store,
    cfg: E2LshConfig,
    /// The bucket width in use: `cfg.w`, or measured from the data (0 until then).
    w: f32,
    /// `l * k` projections of `dim` values.
    proj: Vec<f32>,
    /// `l * k` offsets as fractions of a bucket, in `[0, 1)`.
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
        let ok = (1..=32).contains(&cfg.k)
            && cfg.l >= 1
            && cfg.w >= 0.0
            && cfg.w.is_finite()
            && cfg.w_scale > 0.0
            && cfg.w_scale.is_finite();
        if !ok {
            return Err(Error::invalid(
                "e2lsh",
                "need 1 <= k <= 32, l >= 1, w >= 0 (0: from the data), w_scale > 0",
            ));
        }
        let mut rng = Rng::seed_from_u64(cfg.seed);
        let m = cfg.k * cfg.l;
        let proj = (0..m * dim).map(|_| rng.normal() as f32).collect();
        let offs = (0..m).map(|_| rng.uniform() as f32).collect();
        Ok(E2Lsh {
            store: Store::new(metric, dim, true),
            tables: vec![FxHashMap::default(); cfg.l],
            keys: Vec::new(),
            w: cfg.w,
            proj,
            offs,
            cfg,
        })
    }

    /// The bucket width in use (0 while it is still to be measured).
    pub fn width(&self) -> f32 {
        self.w
    }

    /// Sets the width to `w_scale` times the median nearest-neighbour
    /// distance within a seeded sample of `data` (stored-form rows).
    fn fit_width(&mut self, data: &[f32]) {
        let dim = self.store.dim;
        let n = data.len() / dim;
        let m = n.min(SCALE_SAMPLE);
        let mut rng = Rng::seed_from_u64(self.cfg.seed ^ 0xE2_15_C0_DE);
        // a seeded partial Fisher-Yates shuffle picks m distinct rows
        let mut rows: Vec<usize> = (0..n).collect();
        for i in 0..m {
            let j = i + rng.below((n - i) as u64) as usize;
            rows.swap(i, j);
        }
        let row = |i: usize| &data[rows[i] * dim..(rows[i] + 1) * dim];
        let mut nn: Vec<f32> = (0..m)
            .map(|i| {
                (0..m)
                    .filter(|&j| j != i)
                    .map(|j| l2_sq(row(i), row(j)))
                    .filter(|&d| d > 0.0)
                    .fold(f32::INFINITY, f32::min)
            })
            .filter(|d| d.is_finite())
            .collect();
        let r = if nn.is_empty() {
            1.0 // one point, or only duplicates: any positive width will do
        } else {
            let mid = nn.len() / 2;
            nn.select_nth_unstable_by(mid, f32::total_cmp);
            nn[mid].sqrt()
        };
        self.w = (self.cfg.w_scale * r).max(f32::MIN_POSITIVE);
    }

    /// The build parameters.
    pub fn config(&self) -> &E2LshConfig {
        &self.cfg
    }

    /// Real-valued bucket coordinates `(<a, x> + b) / w` of all tables.
    fn coords(&self, x: &[f32], out: &mut Vec<f32>) {
        let dim = self.store.dim;
        out.clear();
        let inv_w = 1.0 / self.w;
        for i in 0..self.cfg.k * self.cfg.l {
            out.push(dot(&self.proj[i * dim..(i + 1) * dim], x) * inv_w + self.offs[i]);
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
        let cfg_w = r.f32("w")?;
        let w_scale = r.f32("w_scale")?;
        let w = r.f32("width")?;
        let seed = r.u64("seed")?;
        let finite = |x: f32| x.is_finite() && x >= 0.0;
        let ok = store.keep_vectors
            && (1..=32).contains(&k)
            && (1..=256).contains(&l)
            && finite(cfg_w)
            && finite(w_scale)
            && w_scale > 0.0
            && finite(w)
            && (w > 0.0 || store.n_slots() == 0)
            && (cfg_w == 0.0 || cfg_w == w);
        if !ok {
            return Err(r.err("bad e2lsh configuration"));
        }
        let cfg = E2LshConfig {
            k,
            l,
            w: cfg_w,
            w_scale,
            seed,
        };
        let mut idx = E2Lsh::new(store.metric, store.dim, cfg)?;
        idx.w = w;
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
        for (t, table) in self.tables.iter_mut().enumerate() {
            unlink_bucket(table, self.keys[slot as usize * l + t], slot);
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
            scan_tenant(self, q, t, s, top);
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

    fn is_trained(&self) -> bool {
        self.w > 0.0
    }

    /// Measures the bucket width from `data` when it is derived from the
    /// data (`w = 0`); a no-op with a fixed width.
    fn train(&mut self, data: &[f32]) -> Result<()> {
        let n = rows(data, self.store.dim, "training vectors")?;
        if self.cfg.w > 0.0 {
            return Ok(());
        }
        if self.store.n_slots() > 0 {
            return Err(Error::invalid(
                "train",
                "the index already holds vectors; reset() first",
            ));
        }
        if n == 0 {
            return Err(Error::invalid("training vectors", "none given"));
        }
        let data = self.store.prepare(data);
        self.fit_width(&data);
        Ok(())
    }

    fn add_with_tenants(
        &mut self,
        data: &[f32],
        ids: &[u64],
        tenants: Option<Tenants<'_>>,
    ) -> Result<()> {
        let (data, n) = self.store.begin_add(data, ids, tenants.as_ref())?;
        if self.w == 0.0 && !data.is_empty() {
            self.fit_width(&data);
        }
        let (mut buf, mut h) = (Vec::new(), Vec::new());
        let dim = self.store.dim;
        for i in 0..n {
            // Stoppable between two vectors (see `memarena_core::cancel`).
            memarena_core::cancel::check()?;
            let slot = self.store.push_row(&data, ids, tenants.as_ref(), i);
            self.insert(slot, &data[i * dim..(i + 1) * dim], &mut buf, &mut h);
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

    /// Removes every vector; a measured width is kept (as trained state).
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
            + buckets_bytes(&self.tables)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.store.write(&mut w);
        w.u32(self.cfg.k as u32);
        w.u32(self.cfg.l as u32);
        w.f32(self.cfg.w);
        w.f32(self.cfg.w_scale);
        w.f32(self.w);
        w.u64(self.cfg.seed);
        encode(self.kind(), &w.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{gaussian_mixture, ground_truth, recall_at_k};

    /// The defaults derive the width from the data, so they reach the same
    /// recall whatever the data's scale (a fixed width cannot).
    #[test]
    fn default_width_follows_the_data_scale() {
        let ds = gaussian_mixture(4000, 50, 32, 16, 0.5, 3).unwrap();
        let ids: Vec<u64> = (0..4000).collect();
        let p = SearchParams {
            n_probes: 16,
            threads: 1,
            ..Default::default()
        };
        let mut recalls = Vec::new();
        for scale in [0.01f32, 1.0, 100.0] {
            let base: Vec<f32> = ds.base.iter().map(|x| x * scale).collect();
            let queries: Vec<f32> = ds.queries.iter().map(|x| x * scale).collect();
            let truth = ground_truth(&base, &queries, 32, 10, Metric::L2).unwrap();
            let mut idx = E2Lsh::new(Metric::L2, 32, E2LshConfig::default()).unwrap();
            assert!(!idx.is_trained());
            idx.add(&base, &ids).unwrap(); // measures the width on the first batch
            assert!(idx.is_trained() && idx.width() > 0.0);
            let r = idx.search(&queries, 10, &p, None).unwrap();
            recalls.push(recall_at_k(&r.ids, 10, &truth, 10));
        }
        assert!(recalls.iter().all(|&r| r >= 0.9), "{recalls:?}");
        assert!((recalls[0] - recalls[2]).abs() < 0.05, "{recalls:?}");
    }

    #[test]
    fn train_measures_the_width_and_a_fixed_width_is_kept() {
        let ds = gaussian_mixture(600, 1, 8, 4, 0.5, 1).unwrap();
        let mut auto = E2Lsh::new(Metric::L2, 8, E2LshConfig::default()).unwrap();
        auto.train(&ds.base).unwrap();
        let w = auto.width();
        assert!(w > 0.0);
        let cfg = E2LshConfig {
            w: 2.5,
            ..Default::default()
        };
        let mut fixed = E2Lsh::new(Metric::L2, 8, cfg).unwrap();
        fixed.train(&ds.base).unwrap();
        assert_eq!(fixed.width(), 2.5);
        // the measured width survives a round trip through the file format
        auto.add(&ds.base, &(0..600).collect::<Vec<u64>>()).unwrap();
        let back = crate::from_bytes(&auto.to_bytes()).unwrap();
        let q = &ds.queries;
        let p = SearchParams::default();
        assert_eq!(
            back.search(q, 5, &p, None).unwrap(),
            auto.search(q, 5, &p, None).unwrap()
        );
        // training after vectors were added is refused
        assert!(auto.train(&ds.base).is_err());
    }
}
