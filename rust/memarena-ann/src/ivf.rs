//! Inverted-file indexes: `ivf` (k-means lists, faiss `IndexIVFFlat`) and
//! `spann` (SPANN, NeurIPS'21: balanced clustering, boundary replication and
//! query-aware list pruning).
//!
//! Training learns `nlist` centroids. Each added vector goes to the list of
//! its nearest centroid; with `replicas > 1` it is also copied into up to
//! `replicas - 1` further lists whose centroid is within `(1 + replica_epsilon)`
//! of the nearest one's distance, subject to SPANN's RNG rule (a list is
//! skipped when an already chosen centroid is closer to it than the vector
//! is), so vectors on cluster boundaries are found from either side. A list
//! keeps its vectors contiguously, so a probe is a linear scan (one tiled
//! block kernel per list). A batch group's centroid scores come from one
//! blocked matrix product, `|q|^2 + |c|^2 - 2 q.c` with stored centroid norms
//! (faiss computes them with BLAS), and training and assignment use the same
//! kernel over blocks of points.
//!
//! Deletes are tombstones: a deleted vector stays in its lists (skipped by
//! every scan) until the index is rebuilt.

use memarena_core::config::required;
use memarena_core::{Error, Result};
use serde::Deserialize;

use crate::index::{
    Engine, SearchParams, VectorIndex, in_range, in_range_f32, rows, scan_tenant, store_delegates,
    use_exact_filter,
};
use crate::kmeans;
use crate::metric::{Metric, l2_sq, norm_sq};
use crate::persist::{Reader, Writer, encode};
use crate::simd::kernels;
use crate::store::Store;
use crate::tenant::Tenants;
use crate::topk::{Scratch, TopK};

/// The structure parameters of an [`Ivf`] as it runs and is stored (the
/// `ivf` and `spann` kinds are two presets of it, built from
/// [`IvfBuildConfig`] and [`SpannBuildConfig`]).
#[derive(Clone, Debug, PartialEq)]
pub struct IvfConfig {
    /// Number of lists.
    pub nlist: usize,
    /// Lloyd iterations of the training k-means.
    pub kmeans_iters: usize,
    /// Seed of the k-means sample and initialisation.
    pub seed: u64,
    /// Capacity-constrained (balanced) clustering.
    pub balanced: bool,
    /// Lists a vector may be stored in (1 = no replication).
    pub replicas: usize,
    /// Boundary replication tolerance on the distance ratio to the nearest centroid.
    pub replica_epsilon: f32,
    /// Training points used at most (a seeded sample); 0 = the default,
    /// [`DEFAULT_TRAIN_POINTS_PER_LIST`] per list (`ivf`) or 64 per list
    /// (`spann`, whose balanced assignment sorts the whole sample).
    pub max_train_points: usize,
}

/// Build parameters of an `ivf` index (`kind: ivf`: plain k-means lists, no
/// replication), deserialized from every field the Python `Config` sends.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvfBuildConfig {
    /// Number of lists.
    pub nlist: usize,
    /// Lloyd iterations of the training k-means.
    pub kmeans_iters: usize,
    /// Seed of the k-means sample and initialisation.
    pub seed: u64,
    /// Training points used at most (a seeded sample); `None`:
    /// [`DEFAULT_TRAIN_POINTS_PER_LIST`] per list.
    #[serde(deserialize_with = "required")]
    pub max_train_points: Option<usize>,
}

/// Training points per list an `ivf` samples by default: faiss's
/// `ClusteringParameters::max_points_per_centroid`, which `IndexIVFFlat`'s
/// coarse quantizer uses (faiss `Clustering.cpp`: "max_points_per_centroid(256)";
/// "if (nx > k * max_points_per_centroid) { ... subsample_training_set").
/// faiss trains that quantizer with `cp.niter = 10` (`Level1Quantizer`:
/// "here we set a low # iterations because this is typically used for large
/// clusterings"), as `kmeans_iters` defaults here. With 64 points per list
/// (the old default) the lists of 100k vectors and nlist 1024 came out
/// coarser than faiss's and cost 0.01-0.03 recall@10 at nprobe 1-8.
pub const DEFAULT_TRAIN_POINTS_PER_LIST: usize = 256;

/// The Rust defaults (256 lists; the Python side picks `nlist` from the data).
impl Default for IvfBuildConfig {
    fn default() -> Self {
        IvfBuildConfig {
            nlist: 256,
            kmeans_iters: 10,
            seed: 0,
            max_train_points: None,
        }
    }
}

impl IvfBuildConfig {
    /// Range checks; errors name the key (`index.nlist`).
    pub fn validate(&self) -> Result<()> {
        in_range("nlist", self.nlist, 1, 1 << 24)?;
        in_range("kmeans_iters", self.kmeans_iters, 1, 1000)?;
        if let Some(m) = self.max_train_points {
            in_range("max_train_points", m, 1, usize::MAX >> 1)?;
        }
        Ok(())
    }
}

impl From<IvfBuildConfig> for IvfConfig {
    fn from(c: IvfBuildConfig) -> Self {
        IvfConfig {
            nlist: c.nlist,
            kmeans_iters: c.kmeans_iters,
            seed: c.seed,
            balanced: false,
            replicas: 1,
            replica_epsilon: 0.0,
            max_train_points: c.max_train_points.unwrap_or(0),
        }
    }
}

/// Build parameters of a `spann` index (`kind: spann`: balanced lists with
/// boundary replication), deserialized from every field the Python
/// `Config` sends.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpannBuildConfig {
    /// Number of lists.
    pub nlist: usize,
    /// Lloyd iterations of the training k-means.
    pub kmeans_iters: usize,
    /// Seed of the k-means sample and initialisation.
    pub seed: u64,
    /// Training points used at most (a seeded sample); `None`: `64 * nlist`.
    #[serde(deserialize_with = "required")]
    pub max_train_points: Option<usize>,
    /// Lists a vector may be stored in (1 = no replication).
    pub replicas: usize,
    /// Boundary replication tolerance on the distance ratio to the nearest centroid.
    pub replica_epsilon: f32,
}

/// The Rust defaults (256 lists; the Python side picks `nlist` from the data).
impl Default for SpannBuildConfig {
    fn default() -> Self {
        SpannBuildConfig {
            nlist: 256,
            kmeans_iters: 10,
            seed: 0,
            max_train_points: None,
            replicas: 4,
            replica_epsilon: 0.1,
        }
    }
}

impl SpannBuildConfig {
    /// Range checks; errors name the key (`index.replicas`).
    pub fn validate(&self) -> Result<()> {
        in_range("nlist", self.nlist, 1, 1 << 24)?;
        in_range("kmeans_iters", self.kmeans_iters, 1, 1000)?;
        if let Some(m) = self.max_train_points {
            in_range("max_train_points", m, 1, usize::MAX >> 1)?;
        }
        in_range("replicas", self.replicas, 1, 16)?;
        in_range_f32("replica_epsilon", self.replica_epsilon, 0.0, 100.0)
    }
}

impl From<SpannBuildConfig> for IvfConfig {
    fn from(c: SpannBuildConfig) -> Self {
        IvfConfig {
            nlist: c.nlist,
            kmeans_iters: c.kmeans_iters,
            seed: c.seed,
            balanced: true,
            replicas: c.replicas,
            replica_epsilon: c.replica_epsilon,
            max_train_points: c.max_train_points.unwrap_or(0),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct List {
    slots: Vec<u32>,
    data: Vec<f32>,
    /// Squared norms of the rows of `data` (derived, not stored), so an L2
    /// scan is one inner-product pass: `|q|^2 + |x|^2 - 2 q.x`.
    norms: Vec<f32>,
}

/// IVF / SPANN index. See the module documentation.
#[derive(Clone, Debug)]
pub struct Ivf {
    store: Store,
    cfg: IvfConfig,
    centroids: Vec<f32>,
    /// Squared norms of the centroids (derived, not stored).
    cnorms: Vec<f32>,
    lists: Vec<List>,
    /// Per slot: (list, position) of one copy of its vector.
    loc: Vec<(u32, u32)>,
}

impl Ivf {
    /// An untrained index.
    pub fn new(metric: Metric, dim: usize, cfg: IvfConfig) -> Result<Self> {
        if cfg.nlist == 0 || cfg.replicas == 0 {
            return Err(Error::invalid(
                "ivf",
                "nlist and replicas must be at least 1",
            ));
        }
        Ok(Ivf {
            store: Store::new(metric, dim, false),
            cfg,
            centroids: Vec::new(),
            cnorms: Vec::new(),
            lists: Vec::new(),
            loc: Vec::new(),
        })
    }

    /// The build parameters.
    pub fn config(&self) -> &IvfConfig {
        &self.cfg
    }

    /// Live entries per list (replicas included), for balance statistics.
    pub fn list_sizes(&self) -> Vec<usize> {
        self.lists
            .iter()
            .map(|l| l.slots.iter().filter(|&&s| self.store.is_live(s)).count())
            .collect()
    }

    fn set_centroids(&mut self, centroids: Vec<f32>) {
        self.cnorms = centroids
            .chunks_exact(self.store.dim)
            .map(norm_sq)
            .collect();
        self.centroids = centroids;
    }

    /// Centroid scores of a group of queries (`qs`, stored form) into
    /// `out` (query-major, `nlist` each), as one blocked matrix product:
    /// `|q|^2 + |c|^2 - 2 q.c` for L2, `-q.c` otherwise. A query's row does
    /// not depend on the other queries of the group.
    fn coarse(&self, qs: &[f32], out: &mut Vec<f32>) {
        let dim = self.store.dim;
        let g = qs.len() / dim;
        let nl = self.lists.len();
        out.clear();
        out.resize(g * nl, 0.0);
        (kernels().dot_block)(qs, g, &self.centroids, out);
        for (q, row) in qs.chunks_exact(dim).zip(out.chunks_exact_mut(nl.max(1))) {
            if self.store.metric == Metric::L2 {
                let qn = norm_sq(q);
                for (x, &cn) in row.iter_mut().zip(&self.cnorms) {
                    *x = qn + cn - 2.0 * *x;
                }
            } else {
                row.iter_mut().for_each(|x| *x = -*x);
            }
        }
    }

    fn centroid(&self, c: usize) -> &[f32] {
        let d = self.store.dim;
        &self.centroids[c * d..(c + 1) * d]
    }

    /// The lists a vector goes to, given its nearest centroids (ascending).
    fn choose_lists(&self, near: &[(f32, u32)], out: &mut Vec<u32>) {
        out.clear();
        let d1 = near[0].0.max(0.0).sqrt();
        out.push(near[0].1);
        for &(d, c) in &near[1..] {
            if out.len() >= self.cfg.replicas {
                break;
            }
            let dj = d.max(0.0).sqrt();
            if dj > (1.0 + self.cfg.replica_epsilon) * d1 {
                break;
            }
            // RNG rule: skip c if a chosen centroid is closer to it than the vector is.
            let cv = self.centroid(c as usize);
            if out
                .iter()
                .any(|&o| l2_sq(cv, self.centroid(o as usize)) < d)
            {
                continue;
            }
            out.push(c);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let store = Store::read(r)?;
        let dim = store.dim;
        let cfg = IvfConfig {
            nlist: r.u64("nlist")? as usize,
            kmeans_iters: r.u32("kmeans_iters")? as usize,
            seed: r.u64("seed")?,
            balanced: r.u8("balanced")? == 1,
            replicas: r.u32("replicas")? as usize,
            replica_epsilon: r.f32("replica_epsilon")?,
            max_train_points: r.u64("max_train_points")? as usize,
        };
        let centroids = r.f32s("centroids")?;
        if store.keep_vectors
            || cfg.nlist == 0
            || cfg.replicas == 0
            || (!centroids.is_empty() && centroids.len() != cfg.nlist.saturating_mul(dim))
        {
            return Err(r.err("bad ivf configuration"));
        }
        let n_lists = if centroids.is_empty() { 0 } else { cfg.nlist };
        let n = store.n_slots();
        let mut lists = Vec::with_capacity(n_lists);
        let mut loc = vec![(u32::MAX, 0u32); n];
        for li in 0..n_lists {
            let slots = r.u32s("list slots")?;
            let data = r.f32s("list vectors")?;
            if data.len() != slots.len() * dim {
                return Err(r.err(format!(
                    "list {li}: {} values for {} vectors",
                    data.len(),
                    slots.len()
                )));
            }
            for (pos, &s) in slots.iter().enumerate() {
                if s as usize >= n {
                    return Err(r.err(format!("list {li} names slot {s} of {n}")));
                }
                if loc[s as usize].0 == u32::MAX {
                    loc[s as usize] = (li as u32, pos as u32);
                }
            }
            let norms = data.chunks_exact(dim).map(norm_sq).collect();
            lists.push(List { slots, data, norms });
        }
        if loc.iter().any(|l| l.0 == u32::MAX) {
            return Err(r.err("a vector is in no list"));
        }
        let mut idx = Ivf::new(store.metric, dim, cfg)?;
        idx.store = store;
        idx.set_centroids(centroids);
        idx.lists = lists;
        idx.loc = loc;
        Ok(idx)
    }
}

impl Engine for Ivf {
    fn store(&self) -> &Store {
        &self.store
    }

    fn vector(&self, slot: u32) -> &[f32] {
        let (l, p) = self.loc[slot as usize];
        let d = self.store.dim;
        &self.lists[l as usize].data[p as usize * d..(p as usize + 1) * d]
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
        if self.lists.is_empty() {
            return;
        }
        let mut nprobe = p.nprobe.min(self.lists.len());
        if let Some(t) = tenant {
            if use_exact_filter(st, t, p) {
                scan_tenant(self, q, t, s, top);
                return;
            }
            // Probe proportionally more lists for a selective tenant.
            let sel = st.tenant_count(t) as f64 / st.live().max(1) as f64;
            nprobe = ((nprobe as f64 / sel.max(1e-9)).ceil() as usize).clamp(1, self.lists.len());
        }
        let mut coarse = std::mem::take(&mut s.coarse);
        self.coarse(q, &mut coarse);
        self.probe(q, &coarse, nprobe, p, tenant, s, top);
        s.coarse = coarse;
    }

    /// Without replicas, a group shares list scans ([`Ivf::search_grouped`]):
    /// [`BATCH_GROUP`] queries.
    fn block_group(&self) -> usize {
        if self.cfg.replicas == 1 {
            BATCH_GROUP
        } else {
            8
        }
    }

    /// Scans all queries of an unfiltered group after scoring their
    /// centroids in one blocked product; per query exactly what
    /// [`Engine::search_one`] does.
    fn search_block(
        &self,
        qs: &[f32],
        _k: usize,
        p: &SearchParams,
        s: &mut Scratch,
        tops: &mut [TopK],
    ) -> bool {
        if self.lists.is_empty() {
            return true;
        }
        if self.cfg.replicas == 1 {
            self.search_grouped(qs, p, s, tops);
            return true;
        }
        let nl = self.lists.len();
        let nprobe = p.nprobe.min(nl);
        let mut coarse = std::mem::take(&mut s.coarse);
        self.coarse(qs, &mut coarse);
        for ((q, row), top) in qs
            .chunks_exact(self.store.dim)
            .zip(coarse.chunks_exact(nl))
            .zip(tops.iter_mut())
        {
            self.probe(q, row, nprobe, p, None, s, top);
        }
        s.coarse = coarse;
        true
    }
}

impl Ivf {
    /// Scores of `m` queries `qs` (squared norms `qns`) against every row
    /// of `list`, query-major into `out[..m * len]`: one blocked
    /// inner-product pass, then `|q|^2 + |x|^2 - 2 q.x` for L2 (the form
    /// faiss's BLAS path uses; within float rounding of the direct
    /// distance), `-q.x` otherwise. A query's scores do not depend on the
    /// other queries of the call (the block kernel's per-pair guarantee).
    fn scan_rows(&self, qs: &[f32], qns: &[f32], list: &List, out: &mut [f32]) {
        let (m, n) = (qns.len(), list.slots.len());
        assert!(
            qs.len() == m * self.store.dim
                && list.data.len() == n * self.store.dim
                && list.norms.len() == n
                && out.len() >= m * n,
            "ivf scan: {m} queries, {} values and {} norms for {n} rows",
            list.data.len(),
            list.norms.len()
        );
        if m == 0 || n == 0 {
            return;
        }
        (kernels().dot_block)(qs, m, &list.data, out);
        for (row, &qn) in out.chunks_exact_mut(n).zip(qns) {
            if self.store.metric == Metric::L2 {
                for (x, &xn) in row.iter_mut().zip(&list.norms) {
                    *x = qn + xn - 2.0 * *x;
                }
            } else {
                row.iter_mut().for_each(|x| *x = -*x);
            }
        }
    }

    /// The lists a query probes, best first: its `nprobe` best centroid
    /// scores, cut by SPANN's query-aware pruning when that is on.
    fn select_probes(
        &self,
        coarse: &[f32],
        nprobe: usize,
        p: &SearchParams,
        out: &mut Vec<(f32, u32)>,
    ) {
        nearest_lists(coarse, nprobe, out);
        if p.prune_epsilon > 0.0 && self.store.metric == Metric::L2 && !out.is_empty() {
            let limit = (1.0 + p.prune_epsilon) * out[0].0.max(0.0).sqrt();
            out.retain(|c| c.0.max(0.0).sqrt() <= limit);
        }
    }

    /// Unfiltered search of a group of queries (`qs`, stored form, one per
    /// `tops` entry) for an index without replicas, scanning each probed
    /// list once for all the group's queries that probe it (faiss scans it
    /// once per query): the group's centroid scores are one blocked
    /// product, the `(list, query)` probes are sorted by list, and each
    /// list is one blocked product with the queries probing it. Per query
    /// exactly what [`Ivf::probe`] gives: the same probes, the same score
    /// per pair, and a [`TopK`] that does not depend on the order of offers.
    fn search_grouped(&self, qs: &[f32], p: &SearchParams, s: &mut Scratch, tops: &mut [TopK]) {
        let st = &self.store;
        let dim = st.dim;
        let nl = self.lists.len();
        assert!(
            self.cfg.replicas == 1,
            "grouped search needs one copy per vector"
        );
        assert_eq!(qs.len(), tops.len() * dim, "one query per result buffer");
        if nl == 0 || tops.is_empty() {
            return;
        }
        assert!(tops.len() <= u32::MAX as usize, "group too large");
        let nprobe = p.nprobe.min(nl);
        let mut coarse = std::mem::take(&mut s.coarse);
        self.coarse(qs, &mut coarse);
        // (list << 32 | query): sorted, the probes of one list are adjacent.
        let mut keys = std::mem::take(&mut s.u64s);
        keys.clear();
        for (j, row) in coarse.chunks_exact(nl).enumerate() {
            self.select_probes(row, nprobe, p, &mut s.pairs);
            keys.extend(
                s.pairs
                    .iter()
                    .map(|&(_, c)| (u64::from(c) << 32) | j as u64),
            );
        }
        s.coarse = coarse;
        keys.sort_unstable();
        let qns: Vec<f32> = qs.chunks_exact(dim).map(norm_sq).collect();
        let (mut qg, mut qng, mut who) = (Vec::new(), Vec::new(), Vec::new());
        let mut sc = std::mem::take(&mut s.f32s);
        let plain = st.n_deleted == 0;
        let prefetch = kernels().prefetch;
        let mut a = 0;
        while a < keys.len() {
            let c = (keys[a] >> 32) as usize;
            let b = a + keys[a..].partition_point(|&key| (key >> 32) as usize == c);
            // Start loading the next list's head while this one is scanned.
            if let Some(&next) = keys.get(b) {
                let data = &self.lists[(next >> 32) as usize].data;
                prefetch(&data[..data.len().min(8 * dim)]);
            }
            let list = &self.lists[c];
            let n = list.slots.len();
            who.clear();
            who.extend(keys[a..b].iter().map(|&key| (key & 0xffff_ffff) as usize));
            a = b;
            if n == 0 {
                continue;
            }
            qg.clear();
            qng.clear();
            for &j in &who {
                qg.extend_from_slice(&qs[j * dim..(j + 1) * dim]);
                qng.push(qns[j]);
            }
            let m = who.len();
            if sc.len() < m * n {
                sc.resize(m * n, 0.0);
            }
            self.scan_rows(&qg, &qng, list, &mut sc[..m * n]);
            for (&j, row) in who.iter().zip(sc.chunks_exact(n)) {
                let top = &mut tops[j];
                for (&slot, &d) in list.slots.iter().zip(row) {
                    // Offer only what beats the current k-th best.
                    if d > top.threshold() {
                        continue;
                    }
                    if plain || st.allows(slot, None) {
                        top.push(d, slot);
                    }
                }
            }
        }
        s.f32s = sc;
        s.u64s = keys;
    }

    /// Picks the `nprobe` best lists from a query's centroid scores and scans them.
    #[allow(clippy::too_many_arguments)]
    fn probe(
        &self,
        q: &[f32],
        coarse: &[f32],
        nprobe: usize,
        p: &SearchParams,
        tenant: Option<u32>,
        s: &mut Scratch,
        top: &mut TopK,
    ) {
        let st = &self.store;
        let mut sc = std::mem::take(&mut s.f32s);
        self.select_probes(coarse, nprobe, p, &mut s.pairs);
        let probes = std::mem::take(&mut s.pairs);
        let dedup = self.cfg.replicas > 1;
        if dedup {
            s.begin_visits(st.n_slots());
        }
        let plain = tenant.is_none() && st.n_deleted == 0;
        let prefetch = kernels().prefetch;
        let qn = norm_sq(q);
        for (i, &(_, c)) in probes.iter().enumerate() {
            let list = &self.lists[c as usize];
            // Start loading the head of the next list while this one is
            // scanned (lists sit at unrelated addresses; the kernel's own
            // prefetching covers the rest of a list).
            if let Some(&(_, next)) = probes.get(i + 1) {
                let data = &self.lists[next as usize].data;
                prefetch(&data[..data.len().min(8 * st.dim)]);
            }
            // Score the whole list in one dispatched call, then offer only
            // what beats the current k-th best.
            if sc.len() < list.slots.len() {
                sc.resize(list.slots.len(), 0.0);
            }
            self.scan_rows(q, &[qn], list, &mut sc[..list.slots.len()]);
            for (&slot, &d) in list.slots.iter().zip(&sc) {
                if d > top.threshold() {
                    continue;
                }
                if dedup && !s.visit(slot) {
                    continue;
                }
                if plain || st.allows(slot, tenant) {
                    top.push(d, slot);
                }
            }
        }
        s.f32s = sc;
        s.pairs = probes;
    }
}

/// The `nprobe` best `(score, list)` pairs of a query's centroid scores,
/// ascending by `(score, list)` (a total order, so ties go to the lower
/// list), into `out`. One pass with a sorted insertion buffer: a score is
/// compared with the current `nprobe`-th best and almost always rejected
/// there (the probe set of a 1024-list index is ~1% of it).
fn nearest_lists(coarse: &[f32], nprobe: usize, out: &mut Vec<(f32, u32)>) {
    out.clear();
    if nprobe == 0 {
        return;
    }
    let mut worst = f32::INFINITY;
    for (c, &d) in coarse.iter().enumerate() {
        // Lists arrive in increasing order, so an equal score never beats
        // a kept pair (its list is lower).
        if out.len() == nprobe && d.total_cmp(&worst).is_ge() {
            continue;
        }
        let pos = out.partition_point(|&(s, _)| s.total_cmp(&d).is_le());
        if out.len() == nprobe {
            out.pop();
        }
        out.insert(pos, (d, c as u32));
        if out.len() == nprobe {
            worst = out[nprobe - 1].0;
        }
    }
    debug_assert!(
        out.windows(2).all(|w| w[0].0.total_cmp(&w[1].0).is_le()),
        "probe order"
    );
}

/// Queries scanned as one group by the batch path: large enough
/// that a probed list is shared by many queries (on a 64-cluster mixture
/// with 1024 lists and nprobe 12, 512 queries probe ~6x fewer distinct
/// lists than they make probes), small enough that the group's centroid
/// scores (`512 * nlist` floats) stay a few MB.
const BATCH_GROUP: usize = 512;

impl VectorIndex for Ivf {
    store_delegates!();

    fn kind(&self) -> &'static str {
        if self.cfg.balanced || self.cfg.replicas > 1 {
            "spann"
        } else {
            "ivf"
        }
    }

    fn is_trained(&self) -> bool {
        !self.centroids.is_empty()
    }

    fn train(&mut self, data: &[f32]) -> Result<()> {
        let dim = self.store.dim;
        let n = rows(data, dim, "training vectors")?;
        if n < self.cfg.nlist {
            return Err(Error::invalid(
                "training vectors",
                format!("{n} vectors cannot train nlist = {} lists", self.cfg.nlist),
            ));
        }
        if self.store.n_slots() > 0 {
            return Err(Error::invalid(
                "train",
                "the index already holds vectors; reset() first",
            ));
        }
        let data = self.store.prepare(data);
        let centroids = kmeans::train(
            &data,
            dim,
            self.cfg.nlist,
            self.cfg.kmeans_iters,
            self.cfg.seed,
            self.cfg.balanced,
            if self.cfg.max_train_points == 0 {
                let per_list = if self.cfg.balanced {
                    64
                } else {
                    DEFAULT_TRAIN_POINTS_PER_LIST
                };
                per_list * self.cfg.nlist
            } else {
                self.cfg.max_train_points
            },
        )?; // (stopped on request: nothing changed)
        self.set_centroids(centroids);
        self.lists = vec![List::default(); self.cfg.nlist];
        Ok(())
    }

    fn add_with_tenants(
        &mut self,
        data: &[f32],
        ids: &[u64],
        tenants: Option<Tenants<'_>>,
    ) -> Result<()> {
        if !self.is_trained() {
            return Err(Error::invalid(
                self.kind(),
                "the index is not trained; call train() first",
            ));
        }
        let n = self.store.check_add(data, ids, tenants.as_ref())?;
        let data = self.store.prepare(data);
        let dim = self.store.dim;
        let m = if self.cfg.replicas > 1 {
            (2 * self.cfg.replicas).min(self.cfg.nlist)
        } else {
            1
        };
        // Rows in blocks, each assigned to its lists by one parallel pass:
        // a stop request (see `memarena_core::cancel`) ends the add between
        // two blocks, every row added so far in its lists.
        const BLOCK: usize = 4096;
        let mut near = Vec::new();
        let mut chosen = Vec::new();
        for i in 0..n {
            if i % BLOCK == 0 {
                memarena_core::cancel::check_now()?;
                let end = (i + BLOCK).min(n);
                near = kmeans::nearest(
                    &data[i * dim..end * dim],
                    &self.centroids,
                    dim,
                    m,
                    kmeans::threads(),
                );
            }
            let j = i % BLOCK;
            let v = &data[i * dim..(i + 1) * dim];
            let t = tenants.as_ref().map_or(&[][..], |t| t.row(i));
            let slot = self.store.push(v, ids[i], t);
            self.choose_lists(&near[j * m..(j + 1) * m], &mut chosen);
            for (j, &c) in chosen.iter().enumerate() {
                let list = &mut self.lists[c as usize];
                if j == 0 {
                    self.loc.push((c, list.slots.len() as u32));
                }
                list.slots.push(slot);
                list.data.extend_from_slice(v);
                list.norms.push(norm_sq(v));
            }
        }
        Ok(())
    }

    fn delete(&mut self, ids: &[u64]) -> Result<usize> {
        Ok(self.store.delete(ids).len())
    }

    fn reset(&mut self) {
        self.store.reset();
        self.loc.clear();
        self.lists.iter_mut().for_each(|l| *l = List::default());
    }

    fn memory_bytes(&self) -> usize {
        self.store.memory_bytes()
            + self.centroids.capacity() * 4
            + self.loc.capacity() * 8
            + self
                .lists
                .iter()
                .map(|l| (l.slots.capacity() + l.data.capacity() + l.norms.capacity()) * 4 + 72)
                .sum::<usize>()
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.store.write(&mut w);
        w.u64(self.cfg.nlist as u64);
        w.u32(self.cfg.kmeans_iters as u32);
        w.u64(self.cfg.seed);
        w.u8(self.cfg.balanced as u8);
        w.u32(self.cfg.replicas as u32);
        w.f32(self.cfg.replica_epsilon);
        w.u64(self.cfg.max_train_points as u64);
        w.f32s(&self.centroids);
        if !self.centroids.is_empty() {
            for l in &self.lists {
                w.u32s(&l.slots);
                w.f32s(&l.data);
            }
        }
        encode(self.kind(), &w.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::nearest_lists;
    use memarena_core::rng::Rng;

    /// The reference: sort every `(score, list)` pair, keep the first `nprobe`.
    fn by_sorting(coarse: &[f32], nprobe: usize) -> Vec<(f32, u32)> {
        let mut all: Vec<(f32, u32)> = coarse
            .iter()
            .enumerate()
            .map(|(c, &d)| (d, c as u32))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        all.truncate(nprobe);
        all
    }

    #[test]
    fn nearest_lists_equals_a_full_sort_with_ties() {
        let mut rng = Rng::seed_from_u64(7);
        let mut out = Vec::new();
        for trial in 0..200 {
            let n = 1 + rng.below(300) as usize;
            // Few distinct values, so ties are common.
            let levels = 1 + rng.below(if trial % 2 == 0 { 5 } else { 1000 });
            let coarse: Vec<f32> = (0..n).map(|_| rng.below(levels) as f32 - 2.0).collect();
            for nprobe in [1, 2, 3, 12, n, n + 5] {
                nearest_lists(&coarse, nprobe, &mut out);
                assert_eq!(out, by_sorting(&coarse, nprobe), "n {n} nprobe {nprobe}");
            }
        }
    }
}
