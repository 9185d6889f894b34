//! The [`VectorIndex`] trait, search parameters and results, the batch
//! runner every index shares, the build configs ([`IndexConfig`]), the
//! [`build`] factory and [`load`].

use std::path::Path;

use memarena_core::config::{NoFields, Tagged, deserialize_tagged, field_names, fields, required};
use memarena_core::{Error, Result};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess};

use crate::metric::{Metric, norm_sq, normalize};
use crate::persist;
use crate::store::Store;
use crate::tenant::{TenantFilter, Tenants};
use crate::topk::{Scratch, TopK};

/// Query-time knobs. Each index reads the fields it understands and ignores
/// the rest, so one value can drive a sweep over several indexes.
///
/// Deserialized from the complete map the Python side sends (its index
/// `Config`s and `SearchConfig` hold the defaults): every field, no other
/// key; [`SearchParams::validate`] checks the ranges. The Rust `Default`
/// serves Rust tests, examples and benchmarks and equals the Python
/// defaults (checked by a Python test).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// IVF/SPANN: posting lists probed per query (default 8).
    pub nprobe: usize,
    /// HNSW: beam width of the layer-0 search; Curator: minimum number of
    /// candidate vectors scored (default 64).
    pub ef_search: usize,
    /// LSH: buckets probed per table by multi-probe (default 1 = only the
    /// query's own bucket). SimHash with `n_probes == 0`, or with tables wider
    /// than 32 bits, scans all codes by Hamming distance instead (faiss `IndexLSH`).
    pub n_probes: usize,
    /// LSH: candidates re-scored with the exact metric. SimHash: 0 ranks by
    /// Hamming distance only; E2LSH: 0 re-scores every candidate.
    pub rerank: usize,
    /// SPANN: probe a list only if its centroid score is within
    /// `(1 + prune_epsilon)` of the best one (query-aware pruning; 0 = off).
    pub prune_epsilon: f32,
    /// Filtered search: a tenant with at most this many live vectors is
    /// answered by an exact scan of its own vectors. `None` picks a cut-off
    /// from the index size; `Some(0)` never scans (pure in-index filtering).
    #[serde(deserialize_with = "required")]
    pub exact_filter_max: Option<usize>,
    /// Threads for a batch (0 = all available cores).
    pub threads: usize,
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            nprobe: 8,
            ef_search: 64,
            n_probes: 1,
            rerank: 0,
            prune_epsilon: 0.0,
            exact_filter_max: None,
            threads: 0,
        }
    }
}

impl SearchParams {
    /// The keys a search map holds (the serde field names).
    pub fn names() -> &'static [&'static str] {
        field_names::<SearchParams>()
    }

    /// Range checks; errors name the key (`index.nprobe`).
    pub fn validate(&self) -> Result<()> {
        in_range("nprobe", self.nprobe, 1, 1 << 24)?;
        in_range("ef_search", self.ef_search, 1, 1 << 24)?;
        in_range("n_probes", self.n_probes, 0, 1 << 20)?;
        in_range("rerank", self.rerank, 0, 1 << 30)?;
        in_range_f32("prune_epsilon", self.prune_epsilon, 0.0, 1e6)?;
        in_range("threads", self.threads, 0, 4096)
    }
}

/// The root key of index build and search parameters in error messages
/// (`index.nlist`), as the Hydra group names them.
pub const ROOT: &str = "index";

/// `value` must lie in `[min, max]`; the error names `index.<key>`.
pub(crate) fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<()> {
    if value < min || value > max {
        return Err(Error::invalid(
            format!("{ROOT}.{key}"),
            format!("must be in [{min}, {max}], got {value}"),
        ));
    }
    Ok(())
}

/// [`in_range`] for a float that must also be finite.
pub(crate) fn in_range_f32(key: &str, value: f32, min: f32, max: f32) -> Result<()> {
    if !value.is_finite() {
        return Err(Error::invalid(
            format!("{ROOT}.{key}"),
            format!("must be a finite number in [{min}, {max}], got {value}"),
        ));
    }
    in_range(key, value, min, max)
}

/// Bytes of one search result: an `i64` id and an `f32` distance.
pub const RESULT_BYTES: usize = 12;

/// Results of a batch search: `nq` rows of `k`, row-major, faiss-shaped.
///
/// Rows are sorted best first. `distances` are squared L2 distances
/// (ascending) or inner products / cosine similarities (descending); SimHash
/// without re-ranking reports Hamming distances. Missing results are padded
/// with id `-1` and distance `+inf` (L2, Hamming) or `-inf` (similarities).
/// A `k` above the stored count still gives `k` columns (padded); one whose
/// arrays overflow or cannot be allocated is an error naming `k`.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchResult {
    /// Number of queries.
    pub nq: usize,
    /// Results per query.
    pub k: usize,
    /// `nq * k` distances or similarities.
    pub distances: Vec<f32>,
    /// `nq * k` caller ids, `-1` where fewer than `k` were found.
    pub ids: Vec<i64>,
}

impl SearchResult {
    /// `nq x k` results with nothing found yet: ids `-1`, distances the
    /// metric's padding. The arrays' size comes from the caller's `k`: an
    /// `nq * k` that overflows, or that the allocator refuses, is an error
    /// naming `k`, never an allocation abort.
    pub(crate) fn unfilled(metric: Metric, nq: usize, k: usize) -> Result<SearchResult> {
        let pad = if metric.is_similarity() {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        };
        let len = nq
            .checked_mul(k)
            .filter(|l| l.checked_mul(RESULT_BYTES).is_some())
            .ok_or_else(|| {
                Error::invalid(
                    "k",
                    format!("{nq} queries x k={k} results overflow the address space"),
                )
            })?;
        let refused = || {
            Error::invalid(
                "k",
                format!(
                    "the results of {nq} queries x k={k} need {} bytes, which cannot be allocated",
                    len * RESULT_BYTES
                ),
            )
        };
        let mut distances = Vec::new();
        distances.try_reserve_exact(len).map_err(|_| refused())?;
        distances.resize(len, pad);
        let mut ids = Vec::new();
        ids.try_reserve_exact(len).map_err(|_| refused())?;
        ids.resize(len, -1);
        Ok(SearchResult {
            nq,
            k,
            distances,
            ids,
        })
    }

    /// The ids of query `i`.
    pub fn row_ids(&self, i: usize) -> &[i64] {
        &self.ids[i * self.k..(i + 1) * self.k]
    }

    /// The distances of query `i`.
    pub fn row_distances(&self, i: usize) -> &[f32] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }
}

/// One vector index. All data crosses as flat row-major `f32` slices of
/// `n * dim` values and caller-chosen `u64` ids.
///
/// Contract shared by every implementation (checked by the conformance tests):
/// - ids are unique among live vectors; adding a live id is an error, a
///   deleted id may be added again;
/// - a search with a [`TenantFilter`] returns only live vectors whose tenant
///   set contains the query's tenant;
/// - a batch returns exactly what the same queries return one at a time;
/// - [`VectorIndex::to_bytes`] / [`load`] round-trip the index, deletes included.
pub trait VectorIndex: Send + Sync + std::fmt::Debug {
    /// The registry name (`"flat"`, `"simhash"`, ...).
    fn kind(&self) -> &'static str;
    /// The metric the index ranks by.
    fn metric(&self) -> Metric;
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// Number of live vectors.
    fn len(&self) -> usize;
    /// True when no live vectors are held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True once the index can accept vectors (indexes without a training
    /// phase always are).
    fn is_trained(&self) -> bool {
        true
    }
    /// Learns the index structure (centroids, tree) from `n * dim` values.
    /// A no-op for indexes that need no training.
    fn train(&mut self, data: &[f32]) -> Result<()>;
    /// Adds `n` vectors with their ids, readable by unfiltered queries only.
    fn add(&mut self, data: &[f32], ids: &[u64]) -> Result<()> {
        self.add_with_tenants(data, ids, None)
    }
    /// Adds `n` vectors, each readable by the tenants of its CSR row.
    fn add_with_tenants(
        &mut self,
        data: &[f32],
        ids: &[u64],
        tenants: Option<Tenants<'_>>,
    ) -> Result<()>;
    /// Searches `nq` queries (`nq * dim` values) for their `k` nearest
    /// neighbours; batches run on `params.threads` threads.
    fn search(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams,
        filter: Option<&TenantFilter<'_>>,
    ) -> Result<SearchResult>;
    /// Deletes the given ids; returns how many were present. Unknown ids are ignored.
    fn delete(&mut self, ids: &[u64]) -> Result<usize>;
    /// Removes every vector, keeping the training state.
    fn reset(&mut self);
    /// True if `id` is a live vector.
    fn contains(&self, id: u64) -> bool;
    /// Number of live vectors readable by `tenant`.
    fn tenant_len(&self, tenant: u32) -> usize;
    /// Heap bytes held by the index (vectors, ids, structure, tenant data).
    fn memory_bytes(&self) -> usize;
    /// Bytes of per-tenant structure attributable to `tenant`.
    fn tenant_memory_bytes(&self, tenant: u32) -> usize;
    /// The index in the versioned, checksummed file format.
    fn to_bytes(&self) -> Vec<u8>;
    /// Writes [`VectorIndex::to_bytes`] to `path` atomically (temp file + rename).
    fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes();
        let tmp = path.with_extension("tmp-memarena");
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::write(&tmp, &bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Registry names of the index kinds (the `kind` tags of [`IndexConfig`]).
pub const INDEX_KINDS: [&str; 7] = [
    "flat", "simhash", "e2lsh", "ivf", "spann", "hnsw", "curator",
];

/// The build parameters of one index, tagged by kind: deserialized from a
/// map whose first key `kind` names the index and whose other keys are
/// every field of that kind's config (no defaults, no other keys).
#[derive(Clone, Debug, PartialEq)]
pub enum IndexConfig {
    /// Exact scan; no parameters.
    Flat,
    /// Random-hyperplane LSH.
    SimHash(crate::simhash::SimHashConfig),
    /// p-stable LSH.
    E2Lsh(crate::e2lsh::E2LshConfig),
    /// Inverted file over k-means lists.
    Ivf(crate::ivf::IvfBuildConfig),
    /// Balanced lists with boundary replication.
    Spann(crate::ivf::SpannBuildConfig),
    /// Hierarchical navigable small-world graph.
    Hnsw(crate::hnsw::HnswConfig),
    /// Multi-tenant clustering tree.
    Curator(crate::curator::CuratorConfig),
}

impl Tagged for IndexConfig {
    const KINDS: &'static [&'static str] = &INDEX_KINDS;

    fn variant<'de, A: MapAccess<'de>>(kind: &'static str, rest: A) -> Result<Self, A::Error> {
        Ok(match kind {
            "flat" => {
                fields::<A, NoFields>(rest)?;
                IndexConfig::Flat
            }
            "simhash" => IndexConfig::SimHash(fields(rest)?),
            "e2lsh" => IndexConfig::E2Lsh(fields(rest)?),
            "ivf" => IndexConfig::Ivf(fields(rest)?),
            "spann" => IndexConfig::Spann(fields(rest)?),
            "hnsw" => IndexConfig::Hnsw(fields(rest)?),
            "curator" => IndexConfig::Curator(fields(rest)?),
            other => unreachable!("kind {other} is one of KINDS"),
        })
    }
}

impl<'de> Deserialize<'de> for IndexConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_tagged(d)
    }
}

impl IndexConfig {
    /// The config of `kind` with the Rust defaults, for Rust tests, examples
    /// and benchmarks (equal to the Python `Config` defaults, checked by a
    /// Python test; IVF and SPANN take 256 lists where Python picks `nlist`
    /// from the data). Unknown kinds are errors naming the known ones.
    pub fn defaults(kind: &str) -> Result<Self> {
        Ok(match kind {
            "flat" => IndexConfig::Flat,
            "simhash" => IndexConfig::SimHash(Default::default()),
            "e2lsh" => IndexConfig::E2Lsh(Default::default()),
            "ivf" => IndexConfig::Ivf(Default::default()),
            "spann" => IndexConfig::Spann(Default::default()),
            "hnsw" => IndexConfig::Hnsw(Default::default()),
            "curator" => IndexConfig::Curator(Default::default()),
            _ => {
                return Err(Error::UnknownName {
                    kind: "index",
                    name: kind.to_string(),
                    available: INDEX_KINDS.join(", "),
                });
            }
        })
    }

    /// The registry name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            IndexConfig::Flat => "flat",
            IndexConfig::SimHash(_) => "simhash",
            IndexConfig::E2Lsh(_) => "e2lsh",
            IndexConfig::Ivf(_) => "ivf",
            IndexConfig::Spann(_) => "spann",
            IndexConfig::Hnsw(_) => "hnsw",
            IndexConfig::Curator(_) => "curator",
        }
    }

    /// Range checks; errors name the key (`index.nlist`).
    pub fn validate(&self) -> Result<()> {
        match self {
            IndexConfig::Flat => Ok(()),
            IndexConfig::SimHash(c) => c.validate(),
            IndexConfig::E2Lsh(c) => c.validate(),
            IndexConfig::Ivf(c) => c.validate(),
            IndexConfig::Spann(c) => c.validate(),
            IndexConfig::Hnsw(c) => c.validate(),
            IndexConfig::Curator(c) => c.validate(),
        }
    }
}

/// Builds an index of `dim` dimensions from its config; out-of-range values
/// are errors naming the key.
pub fn build(metric: Metric, dim: usize, config: &IndexConfig) -> Result<Box<dyn VectorIndex>> {
    if dim == 0 {
        return Err(Error::invalid("dim", "must be at least 1"));
    }
    config.validate()?;
    Ok(match config {
        IndexConfig::Flat => Box::new(crate::flat::Flat::new(metric, dim)),
        IndexConfig::SimHash(c) => Box::new(crate::simhash::SimHash::new(metric, dim, c.clone())?),
        IndexConfig::E2Lsh(c) => Box::new(crate::e2lsh::E2Lsh::new(metric, dim, c.clone())?),
        IndexConfig::Ivf(c) => Box::new(crate::ivf::Ivf::new(metric, dim, c.clone().into())?),
        IndexConfig::Spann(c) => Box::new(crate::ivf::Ivf::new(metric, dim, c.clone().into())?),
        IndexConfig::Hnsw(c) => Box::new(crate::hnsw::Hnsw::new(metric, dim, c.clone())?),
        IndexConfig::Curator(c) => Box::new(crate::curator::Curator::new(metric, dim, c.clone())?),
    })
}

/// Loads an index written by [`VectorIndex::save`].
pub fn load(path: &Path) -> Result<Box<dyn VectorIndex>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode(&bytes, path)
}

/// Loads an index from [`VectorIndex::to_bytes`] output.
pub fn from_bytes(bytes: &[u8]) -> Result<Box<dyn VectorIndex>> {
    decode(bytes, Path::new("<bytes>"))
}

fn decode(bytes: &[u8], path: &Path) -> Result<Box<dyn VectorIndex>> {
    let (kind, mut r) = persist::decode(bytes, path)?;
    let idx: Box<dyn VectorIndex> = match kind.as_str() {
        "flat" => Box::new(crate::flat::Flat::read(&mut r)?),
        "simhash" => Box::new(crate::simhash::SimHash::read(&mut r)?),
        "e2lsh" => Box::new(crate::e2lsh::E2Lsh::read(&mut r)?),
        "ivf" | "spann" => Box::new(crate::ivf::Ivf::read(&mut r)?),
        "hnsw" => Box::new(crate::hnsw::Hnsw::read(&mut r)?),
        "curator" => Box::new(crate::curator::Curator::read(&mut r)?),
        other => {
            return Err(persist::malformed(
                path,
                13,
                format!("unknown index kind {other:?}"),
            ));
        }
    };
    r.finish()?;
    Ok(idx)
}

// ---------------------------------------------------------------------------
// Crate-internal: the per-query engine and the parallel batch runner.
// ---------------------------------------------------------------------------

/// What an index implements so [`run_batch`] can drive it.
pub(crate) trait Engine: Sync {
    fn store(&self) -> &Store;

    /// The stored-form vector of a slot.
    fn vector(&self, slot: u32) -> &[f32] {
        self.store().vector(slot)
    }

    /// Fills `top` (cleared, capacity `k`) with the best slots for `q`
    /// (already in stored form). Must only push slots allowed for `tenant`.
    fn search_one(
        &self,
        q: &[f32],
        k: usize,
        p: &SearchParams,
        tenant: Option<u32>,
        s: &mut Scratch,
        top: &mut TopK,
    );

    /// Unfiltered search of several queries at once (`qs` holds `tops.len()`
    /// stored-form queries); returns false if the index has no such path.
    /// Must give exactly what [`Engine::search_one`] gives per query.
    fn search_block(
        &self,
        _qs: &[f32],
        _k: usize,
        _p: &SearchParams,
        _s: &mut Scratch,
        _tops: &mut [TopK],
    ) -> bool {
        false
    }

    /// Filtered search of several queries of one tenant at once; returns
    /// false if the index answers this tenant otherwise. Must give exactly
    /// what [`Engine::search_one`] gives per query: the default covers the
    /// indexes whose `search_one` sends a tenant that [`use_exact_filter`]
    /// accepts to [`scan_tenant`].
    fn search_tenant_group(
        &self,
        qs: &[f32],
        p: &SearchParams,
        tenant: u32,
        s: &mut Scratch,
        tops: &mut [TopK],
    ) -> bool {
        let st = self.store();
        use_exact_filter(st, tenant, p) && scan_tenant_group(st, qs, tenant, s, tops)
    }

    /// Converts an internal score to the reported value (SimHash without
    /// re-ranking reports Hamming distances as they are).
    fn report(&self, score: f32, _p: &SearchParams) -> f32 {
        self.store().metric.report(score)
    }

    /// Queries [`run_batch`] hands to one [`Engine::search_block`] call
    /// (8: cache blocking of a scan; an index that shares more work across
    /// a group asks for more).
    fn block_group(&self) -> usize {
        8
    }
}

/// Runs a batch: validates, normalises cosine queries, splits the batch over
/// threads with `std::thread::scope`, and converts slots to ids.
pub(crate) fn run_batch<E: Engine>(
    e: &E,
    queries: &[f32],
    k: usize,
    p: &SearchParams,
    filter: Option<&TenantFilter<'_>>,
) -> Result<SearchResult> {
    let st = e.store();
    let dim = st.dim;
    if !queries.len().is_multiple_of(dim) {
        return Err(Error::invalid(
            "queries",
            format!("length {} is not a multiple of dim {dim}", queries.len()),
        ));
    }
    let nq = queries.len() / dim;
    if let Some(TenantFilter::PerQuery(ts)) = filter
        && ts.len() != nq
    {
        return Err(Error::invalid(
            "filter",
            format!("{} tenants for {nq} queries", ts.len()),
        ));
    }
    if queries.iter().any(|x| !x.is_finite()) {
        return Err(Error::invalid("queries", "contain a non-finite value"));
    }
    if k == 0 || nq == 0 {
        return SearchResult::unfilled(st.metric, nq, k);
    }
    let SearchResult {
        mut distances,
        mut ids,
        ..
    } = SearchResult::unfilled(st.metric, nq, k)?;
    // Rows are `k` wide (missing results padded, as faiss does), but no
    // query can find more than the slots stored: the engines' buffers are
    // bounded by that, so a huge `k` costs only the result arrays.
    let k_out = k;
    let k = k.min(st.ids.len().max(1));
    let cosine = st.metric == Metric::Cosine;
    // Per-query tenants: queries are visited in tenant order (a stable sort),
    // so a tenant's run of queries shares one scan of its vectors; the
    // results are written back in the caller's order.
    let order: Option<Vec<usize>> = match filter {
        Some(TenantFilter::PerQuery(ts)) => {
            let mut o: Vec<usize> = (0..nq).collect();
            o.sort_by_key(|&i| ts[i]);
            Some(o)
        }
        _ => None,
    };
    let at = |i: usize| order.as_ref().map_or(i, |o| o[i]);
    // Queries per group: the engine's block group unfiltered; with a filter
    // up to 64 of one tenant, so a tenant's block is read once for (nearly)
    // all of its queries.
    let group = if filter.is_some() {
        64
    } else {
        e.block_group()
    };
    // Stoppable: the calling thread polls (`memarena_core::cancel`, a no-op
    // on the spawned threads) and tells the others through `stop`.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let work = |q0: usize, dch: &mut [f32], ich: &mut [i64]| {
        let mut s = Scratch::default();
        let mut tops: Vec<TopK> = (0..group.min(nq)).map(|_| TopK::new(k)).collect();
        let mut qbuf = Vec::with_capacity(group.min(nq) * dim);
        let n_here = dch.len() / k_out;
        let mut j0 = 0;
        while j0 < n_here {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            if memarena_core::cancel::check_now().is_err() {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            let mut g = group.min(n_here - j0);
            let tenant = filter.map(|f| f.tenant_for(at(q0 + j0)));
            if let (Some(f), Some(t)) = (filter, tenant) {
                g = (1..g)
                    .find(|&j| f.tenant_for(at(q0 + j0 + j)) != t)
                    .unwrap_or(g);
            }
            qbuf.clear();
            for j in 0..g {
                let qi = at(q0 + j0 + j);
                qbuf.extend_from_slice(&queries[qi * dim..(qi + 1) * dim]);
            }
            if cosine {
                qbuf.chunks_exact_mut(dim).for_each(normalize);
            }
            let tops = &mut tops[..g];
            tops.iter_mut().for_each(|t| t.clear(k));
            match tenant {
                None if e.search_block(&qbuf, k, p, &mut s, tops) => {}
                Some(t) if e.search_tenant_group(&qbuf, p, t, &mut s, tops) => {}
                _ => {
                    for (q, top) in qbuf.chunks_exact(dim).zip(tops.iter_mut()) {
                        e.search_one(q, k, p, tenant, &mut s, top);
                    }
                }
            }
            for (j, top) in tops.iter().enumerate() {
                let row = (j0 + j) * k_out;
                for (r, &(score, slot)) in top.items().iter().enumerate() {
                    dch[row + r] = e.report(score, p);
                    ich[row + r] = st.ids[slot as usize] as i64;
                }
            }
            j0 += g;
        }
    };
    let threads = search_threads(p, nq);
    // Thread c visits positions cuts[c]..cuts[c + 1]: equal counts, or with
    // per-query tenants equal estimated work (tenant sizes are skewed, and a
    // long run of one tenant's queries may be cut between two threads).
    let cuts: Vec<usize> = match filter {
        Some(TenantFilter::PerQuery(ts)) if threads > 1 => {
            let o = order.as_deref().unwrap_or(&[]);
            let mut cost = Vec::with_capacity(nq + 1);
            cost.push(0u64);
            let mut i = 0;
            while i < nq {
                let t = ts[o[i]];
                let w = query_cost(st, t, p);
                while i < nq && ts[o[i]] == t {
                    cost.push(cost[i] + w);
                    i += 1;
                }
            }
            balanced_cuts(&cost, threads)
        }
        _ => (0..=threads).map(|c| c * nq / threads).collect(),
    };
    {
        let (mut dr, mut ir) = (&mut distances[..], &mut ids[..]);
        let mut chunks = Vec::with_capacity(threads);
        for w in cuts.windows(2) {
            let (d, d2) = std::mem::take(&mut dr).split_at_mut((w[1] - w[0]) * k_out);
            let (i, i2) = std::mem::take(&mut ir).split_at_mut((w[1] - w[0]) * k_out);
            (dr, ir) = (d2, i2);
            chunks.push((w[0], d, i));
        }
        let work = &work;
        std::thread::scope(|sc| {
            let mut it = chunks.into_iter();
            let first = it.next();
            for (q0, d, i) in it {
                if !d.is_empty() {
                    sc.spawn(move || work(q0, d, i));
                }
            }
            if let Some((q0, d, i)) = first {
                work(q0, d, i);
            }
        });
    }
    if stop.into_inner() {
        return Err(Error::Interrupted);
    }
    if let Some(o) = order {
        // (`o` is a permutation: every row is overwritten.)
        let SearchResult {
            distances: mut d2,
            ids: mut i2,
            ..
        } = SearchResult::unfilled(st.metric, nq, k_out)?;
        let w = k_out;
        for (pos, &qi) in o.iter().enumerate() {
            d2[qi * w..(qi + 1) * w].copy_from_slice(&distances[pos * w..(pos + 1) * w]);
            i2[qi * w..(qi + 1) * w].copy_from_slice(&ids[pos * w..(pos + 1) * w]);
        }
        (distances, ids) = (d2, i2);
    }
    Ok(SearchResult {
        nq,
        k: k_out,
        distances,
        ids,
    })
}

/// Rough relative work of one query for `tenant`, for balancing threads: an
/// exact scan reads the tenant's vectors; an in-index search (large
/// tenants) is taken as a capped constant.
fn query_cost(st: &Store, tenant: u32, p: &SearchParams) -> u64 {
    let c = st.tenant_count(tenant);
    let w = if use_exact_filter(st, tenant, p) {
        c
    } else {
        c.min(4096)
    };
    w as u64 + 64
}

/// `parts + 1` cut positions into `0..n` (`cost` is the `n + 1` prefix sums
/// of per-position work) so each part holds about `1 / parts` of the work.
fn balanced_cuts(cost: &[u64], parts: usize) -> Vec<usize> {
    let n = cost.len() - 1;
    let total = cost[n];
    let mut cuts = Vec::with_capacity(parts + 1);
    cuts.push(0);
    for c in 1..parts {
        let goal = (total as u128 * c as u128 / parts as u128) as u64;
        let at = cost.partition_point(|&x| x < goal).clamp(cuts[c - 1], n);
        cuts.push(at);
    }
    cuts.push(n);
    cuts
}

/// Exact scan of one tenant's own vectors: its contiguous block when it
/// has one (see [`scan_tenant_group`]), else one dispatched gather kernel
/// when the store keeps the vectors.
pub(crate) fn scan_tenant<E: Engine + ?Sized>(
    e: &E,
    q: &[f32],
    tenant: u32,
    s: &mut Scratch,
    top: &mut TopK,
) {
    let st = e.store();
    if scan_tenant_group(st, q, tenant, s, std::slice::from_mut(top)) {
        return;
    }
    let Some(slots) = st.tenant_slots.get(&tenant) else {
        return;
    };
    if st.keep_vectors {
        let mut sc = std::mem::take(&mut s.f32s);
        if sc.len() < slots.len() {
            sc.resize(slots.len(), 0.0);
        }
        st.metric.score_at(q, &st.data, slots, &mut sc);
        for (&slot, &d) in slots.iter().zip(&sc) {
            if d <= top.threshold() && st.is_live(slot) {
                top.push(d, slot);
            }
        }
        s.f32s = sc;
    } else {
        for &slot in slots {
            if st.is_live(slot) {
                top.push(st.metric.score(q, e.vector(slot)), slot);
            }
        }
    }
}

/// Rows of a tenant block scored per blocked product: the scores of a group
/// of up to 64 queries stay in L1/L2 and the rows in L2 while every query
/// tile passes over them.
const BLOCK_ROWS: usize = 256;

/// Exact scan of a tenant's contiguous block for a group of queries
/// (`qs`, `tops.len()` of them) as blocked products over row chunks, like
/// one faiss `IndexFlat` per tenant; false (nothing done) when the tenant
/// has no block. Each query's scores do not depend on the group or the
/// chunking (the block kernels compute each pair alone), so a batch returns
/// what the queries return one at a time.
pub(crate) fn scan_tenant_group(
    st: &Store,
    qs: &[f32],
    tenant: u32,
    s: &mut Scratch,
    tops: &mut [TopK],
) -> bool {
    let (Some(b), Some(slots)) = (st.tenant_blocks.get(&tenant), st.tenant_slots.get(&tenant))
    else {
        return false;
    };
    let (n, nq, dim) = (slots.len(), tops.len(), st.dim);
    if n == 0 || nq == 0 {
        return true;
    }
    let l2 = st.metric == Metric::L2;
    let qn = &mut s.f32s;
    qn.clear();
    qn.extend(
        qs.chunks_exact(dim)
            .map(|q| if l2 { norm_sq(q) } else { 0.0 }),
    );
    let sc = &mut s.coarse;
    if sc.len() < nq * BLOCK_ROWS.min(n) {
        sc.resize(nq * BLOCK_ROWS.min(n), 0.0);
    }
    let dot_block = crate::simd::kernels().dot_block;
    let mut r0 = 0;
    while r0 < n {
        let m = BLOCK_ROWS.min(n - r0);
        let out = &mut sc[..nq * m];
        dot_block(qs, nq, &b.data[r0 * dim..(r0 + m) * dim], out);
        let (norms, ids) = (&b.norms[r0..r0 + m], &slots[r0..r0 + m]);
        for ((row, top), &qn) in out.chunks_exact_mut(m).zip(tops.iter_mut()).zip(qn.iter()) {
            offer_scores(st, row, l2.then_some((qn, norms)), ids, top);
        }
        r0 += m;
    }
    true
}

/// Turns the inner products `dps` of a query with block rows into scores
/// in place (`|q|^2 + |x|^2 - 2 q.x` with `l2 = Some((|q|^2, row norms))`,
/// else `-q.x`) and offers `(score, slots[i])` to `top`, skipping deleted
/// slots. Eight rows at a time are scored and compared with the threshold
/// (vectorised), and only a chunk with a score under it goes through the
/// top-k, so once `top` is full most chunks cost a few vector instructions.
#[inline]
fn offer_scores(
    st: &Store,
    dps: &mut [f32],
    l2: Option<(f32, &[f32])>,
    slots: &[u32],
    top: &mut TopK,
) {
    let score = |x: &mut [f32], r0: usize| match l2 {
        Some((qn, norms)) => {
            let n = x.len();
            for (x, &vn) in x.iter_mut().zip(&norms[r0..r0 + n]) {
                *x = qn + vn - 2.0 * *x;
            }
        }
        None => x.iter_mut().for_each(|x| *x = -*x),
    };
    // The same arithmetic on fixed-size chunks, which vectorises.
    let score8 = |x: &mut [f32; 8], r0: usize| match l2 {
        Some((qn, norms)) => {
            // a local copy: the optimiser cannot tell that `norms` (behind
            // an `Option`) does not alias `x`, and would not vectorise
            let nv: [f32; 8] = norms[r0..r0 + 8].try_into().expect("8 norms");
            for (x, vn) in x.iter_mut().zip(nv) {
                *x = qn + vn - 2.0 * *x;
            }
        }
        None => x.iter_mut().for_each(|x| *x = -*x),
    };
    let mut thr = top.threshold();
    let mut offer = |d: f32, slot: u32, thr: &mut f32| {
        if d <= *thr && st.is_live(slot) {
            top.push(d, slot);
            *thr = top.threshold();
        }
    };
    let full = dps.len() / 8 * 8;
    for c in (0..full).step_by(8) {
        let ch: &mut [f32; 8] = (&mut dps[c..c + 8]).try_into().expect("8 scores");
        score8(ch, c);
        if ch.iter().fold(false, |h, &d| h | (d <= thr)) {
            for (l, &d) in ch.iter().enumerate() {
                offer(d, slots[c + l], &mut thr);
            }
        }
    }
    score(&mut dps[full..], full);
    for (&d, &slot) in dps[full..].iter().zip(&slots[full..]) {
        offer(d, slot, &mut thr);
    }
}

/// LSH hash tables: bucket key -> slots.
pub(crate) type Buckets = memarena_core::FxHashMap<u64, Vec<u32>>;

/// Removes `slot` from bucket `key` of an LSH table, dropping the bucket
/// when it empties.
pub(crate) fn unlink_bucket(table: &mut Buckets, key: u64, slot: u32) {
    if let Some(list) = table.get_mut(&key) {
        list.retain(|&x| x != slot);
        if list.is_empty() {
            table.remove(&key);
        }
    }
}

/// Heap bytes of LSH tables (entries at ~40 bytes plus the slot lists).
pub(crate) fn buckets_bytes(tables: &[Buckets]) -> usize {
    tables
        .iter()
        .map(|b| b.capacity() * 40 + b.values().map(|v| v.capacity() * 4).sum::<usize>())
        .sum()
}

/// Whether a filtered query is cheaper as an exact scan of the tenant's vectors.
pub(crate) fn use_exact_filter(st: &Store, tenant: u32, p: &SearchParams) -> bool {
    let c = st.tenant_count(tenant);
    match p.exact_filter_max {
        Some(m) => c <= m,
        None => c <= 1024 || (c as f64) * (c as f64) <= st.live() as f64 * 1024.0,
    }
}

/// Checks `n * dim` training or query data.
pub(crate) fn rows(data: &[f32], dim: usize, what: &str) -> Result<usize> {
    if !data.len().is_multiple_of(dim) {
        return Err(Error::invalid(
            what.to_string(),
            format!("length {} is not a multiple of dim {dim}", data.len()),
        ));
    }
    if data.iter().any(|x| !x.is_finite()) {
        return Err(Error::invalid(
            what.to_string(),
            "contains a non-finite value",
        ));
    }
    Ok(data.len() / dim)
}

/// Threads a search of `nq` queries runs on: `p.threads` (0: every core),
/// at most one per query.
pub(crate) fn search_threads(p: &SearchParams, nq: usize) -> usize {
    if p.threads == 0 {
        crate::kmeans::threads()
    } else {
        p.threads
    }
    .clamp(1, nq)
}

/// Implements the store-backed methods of [`VectorIndex`] for a type with a
/// `store: Store` field and an [`Engine`] impl; `store_delegates!()` also
/// reports a tenant's memory as the store's (slot list and vector block)
/// and searches with [`run_batch`]; `store_delegates!(own_tenant_memory)`
/// leaves the tenant memory to the index.
macro_rules! store_delegates {
    () => {
        $crate::index::store_delegates!(own_tenant_memory);
        fn tenant_memory_bytes(&self, tenant: u32) -> usize {
            self.store.tenant_memory_bytes(tenant)
        }
    };
    (own_tenant_memory) => {
        $crate::index::store_delegates!(accessors);
        fn search(
            &self,
            queries: &[f32],
            k: usize,
            params: &$crate::index::SearchParams,
            filter: Option<&$crate::tenant::TenantFilter<'_>>,
        ) -> memarena_core::Result<$crate::index::SearchResult> {
            $crate::index::run_batch(self, queries, k, params, filter)
        }
    };
    (accessors) => {
        fn metric(&self) -> $crate::metric::Metric {
            self.store.metric
        }
        fn dim(&self) -> usize {
            self.store.dim
        }
        fn len(&self) -> usize {
            self.store.live()
        }
        fn contains(&self, id: u64) -> bool {
            self.store.id_map.contains_key(&id)
        }
        fn tenant_len(&self, tenant: u32) -> usize {
            self.store.tenant_count(tenant)
        }
    };
}
pub(crate) use store_delegates;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_cuts_split_work_not_counts() {
        // one heavy position, then light ones
        let w = [100u64, 1, 1, 1, 1, 1, 1, 1, 1, 1];
        let mut cost = vec![0u64];
        for x in w {
            cost.push(cost.last().unwrap() + x);
        }
        assert_eq!(balanced_cuts(&cost, 2), vec![0, 1, 10]);
        assert_eq!(balanced_cuts(&cost, 1), vec![0, 10]);
        // more parts than positions: empty parts, still ordered and covering
        let c = balanced_cuts(&cost[..3], 5);
        assert_eq!((c[0], c[5]), (0, 2));
        assert!(c.windows(2).all(|p| p[0] <= p[1]), "{c:?}");
        // uniform work: equal counts
        let uniform: Vec<u64> = (0..=12).collect();
        assert_eq!(balanced_cuts(&uniform, 3), vec![0, 4, 8, 12]);
    }
}
