//! HNSW (Malkov & Yashunin, TPAMI 2018), laid out like hnswlib: layer 0 is
//! one flat neighbour array of `2 * m` slots per node, upper layers are small
//! per-node arrays, the visited set is an epoch array reused across queries,
//! and neighbours are chosen with the diversity heuristic.
//!
//! Node ids are store slots. Deleted vectors stay in the graph as waypoints
//! and are never returned. Filtered queries either scan the tenant's own
//! vectors (small tenants) or walk the graph through every node but keep
//! only the tenant's vectors in the beam (bitmap filtering, as hnswlib and
//! faiss do).

use std::cmp::Reverse;

use memarena_core::rng::mix64;
use memarena_core::{Error, Result};
use serde::Deserialize;

use crate::index::{
    Engine, SearchParams, VectorIndex, in_range, scan_tenant, store_delegates, use_exact_filter,
};
use crate::metric::Metric;
use crate::persist::{Reader, Writer, encode};
use crate::store::{Store, TENANT_BLOCK_MAX};
use crate::tenant::Tenants;
use crate::topk::{Cand, Scratch, TopK};

/// Build parameters of [`Hnsw`] (`kind: hnsw`), deserialized from
/// every field the Python `Config` sends.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HnswConfig {
    /// Neighbours per node on upper layers (layer 0 keeps `2 * m`).
    pub m: usize,
    /// Beam width while inserting.
    pub ef_construction: usize,
    /// Seed of the level draws.
    pub seed: u64,
    /// Tenants with at most this many vectors keep a contiguous copy of
    /// them, scanned as one block by exact tenant searches (about one more
    /// copy of the vectors on tenant-heavy data); 0 keeps no copies (exact
    /// tenant scans then gather rows from the shared vectors: less memory,
    /// slower). Default 16384.
    pub tenant_block_max: usize,
    /// Threads an add runs on (0: every core). With 1 (the default) nodes
    /// are inserted one at a time, the graph a function of the data and the
    /// seed alone; with more, in batches (see [`Hnsw::add_batch`]): the same
    /// recall, a different graph. Not persisted (a build setting).
    pub threads: usize,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            m: 16,
            ef_construction: 100,
            seed: 0,
            tenant_block_max: TENANT_BLOCK_MAX,
            threads: 1,
        }
    }
}

impl HnswConfig {
    /// Range checks; errors name the key (`index.m`).
    pub fn validate(&self) -> Result<()> {
        in_range("m", self.m, 2, 256)?;
        in_range("ef_construction", self.ef_construction, 1, 1 << 20)?;
        in_range("threads", self.threads, 0, 4096)?;
        in_range(
            "tenant_block_max",
            self.tenant_block_max,
            0,
            u32::MAX as usize,
        )
    }
}

/// The links a new node gets: `(layer, chosen neighbours)`, top layer first.
type Plan = Vec<(usize, Vec<u32>)>;

/// Which nodes a layer search may return.
#[derive(Clone, Copy)]
enum Accept {
    /// Every node, deleted ones included (construction).
    Any,
    /// Live nodes readable by the tenant (`None`: any live node).
    Live(Option<u32>),
}

/// HNSW graph index. See the module documentation.
#[derive(Clone, Debug)]
pub struct Hnsw {
    store: Store,
    cfg: HnswConfig,
    levels: Vec<u8>,
    /// Layer 0: `n * m0` neighbour ids; `len0[i]` of them are valid.
    links0: Vec<u32>,
    len0: Vec<u16>,
    /// Layers 1..=level of each node: per layer `[count, m ids]`.
    upper: Vec<Vec<u32>>,
    entry: Option<u32>,
    max_level: usize,
    scratch: Scratch,
}

impl Hnsw {
    /// An empty graph.
    pub fn new(metric: Metric, dim: usize, cfg: HnswConfig) -> Result<Self> {
        if cfg.m < 2 || cfg.ef_construction == 0 {
            return Err(Error::invalid(
                "hnsw",
                "need m >= 2 and ef_construction >= 1",
            ));
        }
        let mut store = Store::new(metric, dim, true);
        store.set_block_max(cfg.tenant_block_max);
        Ok(Hnsw {
            store,
            cfg,
            levels: Vec::new(),
            links0: Vec::new(),
            len0: Vec::new(),
            upper: Vec::new(),
            entry: None,
            max_level: 0,
            scratch: Scratch::default(),
        })
    }

    /// The build parameters.
    pub fn config(&self) -> &HnswConfig {
        &self.cfg
    }

    fn m0(&self) -> usize {
        2 * self.cfg.m
    }

    /// Deterministic level of a slot: `floor(-ln(U) / ln(m))`.
    fn level_for(&self, slot: u32) -> usize {
        let h = mix64(self.cfg.seed ^ mix64(slot as u64 + 1));
        let u = ((h >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
        ((-u.ln() / (self.cfg.m as f64).ln()) as usize).min(32)
    }

    #[inline]
    fn neighbors(&self, node: u32, layer: usize) -> &[u32] {
        if layer == 0 {
            let m0 = self.m0();
            let s = node as usize * m0;
            &self.links0[s..s + self.len0[node as usize] as usize]
        } else {
            let m = self.cfg.m;
            let u = &self.upper[node as usize];
            let s = (layer - 1) * (m + 1);
            &u[s + 1..s + 1 + u[s] as usize]
        }
    }

    fn set_neighbors(&mut self, node: u32, layer: usize, ids: &[u32]) {
        if layer == 0 {
            let m0 = self.m0();
            let s = node as usize * m0;
            self.links0[s..s + ids.len()].copy_from_slice(ids);
            self.len0[node as usize] = ids.len() as u16;
        } else {
            let m = self.cfg.m;
            let u = &mut self.upper[node as usize];
            let s = (layer - 1) * (m + 1);
            u[s] = ids.len() as u32;
            u[s + 1..s + 1 + ids.len()].copy_from_slice(ids);
        }
    }

    #[inline]
    fn dist(&self, q: &[f32], node: u32) -> f32 {
        self.store.metric.score(q, self.store.vector(node))
    }

    /// Greedy walk on one upper layer.
    fn greedy(&self, q: &[f32], mut cur: u32, mut d: f32, layer: usize) -> (u32, f32) {
        loop {
            let mut moved = false;
            for &nb in self.neighbors(cur, layer) {
                let dn = self.dist(q, nb);
                if dn < d {
                    d = dn;
                    cur = nb;
                    moved = true;
                }
            }
            if !moved {
                return (cur, d);
            }
        }
    }

    /// Beam search on one layer; `out` gets up to `ef` accepted nodes, ascending.
    #[allow(clippy::too_many_arguments)]
    fn search_layer(
        &self,
        q: &[f32],
        ep: (f32, u32),
        ef: usize,
        layer: usize,
        accept: Accept,
        s: &mut Scratch,
        out: &mut Vec<(f32, u32)>,
    ) {
        // hnswlib's `searchBaseLayerST<has_deletions>`: with nothing deleted
        // and no tenant every node is accepted, so no per-node check.
        let accept_all = match accept {
            Accept::Any => true,
            Accept::Live(t) => t.is_none() && self.store.n_deleted == 0,
        };
        let ok = |n: u32| match accept {
            _ if accept_all => true,
            Accept::Any => true,
            Accept::Live(t) => self.store.allows(n, t),
        };
        s.begin_visits(self.levels.len());
        let mut cand = std::mem::take(&mut s.cand);
        let mut res = std::mem::take(&mut s.res);
        cand.clear();
        res.clear();
        s.visit(ep.1);
        cand.push(Reverse(Cand(ep.0, ep.1)));
        if ok(ep.1) {
            res.push(Cand(ep.0, ep.1));
        }
        let mut fresh = std::mem::take(&mut s.slots);
        let mut dists = std::mem::take(&mut s.f32s);
        // hnswlib's `lowerBound`: the worst kept score once `ef` are kept,
        // else infinite (a candidate then always enters); kept in a local
        // instead of peeking at the heap per neighbour.
        let bound = |res: &std::collections::BinaryHeap<Cand>| {
            if res.len() >= ef {
                res.peek().map_or(f32::INFINITY, |w| w.0)
            } else {
                f32::INFINITY
            }
        };
        let mut lower = bound(&res);
        while let Some(Reverse(Cand(d, c))) = cand.pop() {
            if d > lower {
                break;
            }
            // Score the unvisited neighbours in one gather call (rows are
            // prefetched ahead, and the loads of different rows overlap),
            // then take them in list order exactly as one at a time would.
            fresh.clear();
            fresh.extend(
                self.neighbors(c, layer)
                    .iter()
                    .copied()
                    .filter(|&nb| s.visit(nb)),
            );
            dists.resize(fresh.len(), 0.0);
            self.store
                .metric
                .score_at(q, &self.store.data, &fresh, &mut dists);
            for (&nb, &dn) in fresh.iter().zip(&dists) {
                if res.len() < ef || dn < lower {
                    cand.push(Reverse(Cand(dn, nb)));
                    if ok(nb) {
                        res.push(Cand(dn, nb));
                        if res.len() > ef {
                            res.pop();
                        }
                        lower = bound(&res);
                    }
                }
            }
        }
        out.clear();
        out.extend(res.drain().map(|c| (c.0, c.1)));
        out.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        s.cand = cand;
        s.res = res;
        s.slots = fresh;
        s.f32s = dists;
    }

    /// The diversity heuristic: keep a candidate only if it is closer to the
    /// base than to every neighbour already kept. `cands` ascending.
    fn select(&self, cands: &[(f32, u32)], m: usize, out: &mut Vec<u32>) {
        out.clear();
        for &(d, c) in cands {
            if out.len() >= m {
                break;
            }
            let cv = self.store.vector(c);
            if out
                .iter()
                .all(|&o| self.store.metric.score(cv, self.store.vector(o)) > d)
            {
                out.push(c);
            }
        }
    }

    fn insert(&mut self, slot: u32) {
        let level = self.level_for(slot);
        let m = self.cfg.m;
        self.levels.push(level as u8);
        self.links0.resize(self.links0.len() + self.m0(), 0);
        self.len0.push(0);
        self.upper.push(vec![0u32; level * (m + 1)]);
        let Some(entry) = self.entry else {
            self.entry = Some(slot);
            self.max_level = level;
            return;
        };
        let q = self.store.vector(slot).to_vec();
        let mut s = std::mem::take(&mut self.scratch);
        let mut cur = (self.dist(&q, entry), entry);
        for layer in (level + 1..=self.max_level).rev() {
            let (c, d) = self.greedy(&q, cur.1, cur.0, layer);
            cur = (d, c);
        }
        let mut found = Vec::new();
        let mut chosen = Vec::new();
        let mut nbuf = Vec::new();
        let mut scored = Vec::new();
        for layer in (0..=level.min(self.max_level)).rev() {
            self.search_layer(
                &q,
                cur,
                self.cfg.ef_construction,
                layer,
                Accept::Any,
                &mut s,
                &mut found,
            );
            found.retain(|&(_, n)| n != slot);
            self.select(&found, m, &mut chosen);
            self.set_neighbors(slot, layer, &chosen);
            let cap = if layer == 0 { self.m0() } else { m };
            for &nb in &chosen {
                nbuf.clear();
                nbuf.extend_from_slice(self.neighbors(nb, layer));
                if nbuf.len() < cap {
                    nbuf.push(slot);
                    self.set_neighbors(nb, layer, &nbuf);
                } else {
                    let nv = self.store.vector(nb);
                    scored.clear();
                    scored.push((self.store.metric.score(nv, &q), slot));
                    scored.extend(
                        nbuf.iter()
                            .map(|&x| (self.store.metric.score(nv, self.store.vector(x)), x)),
                    );
                    scored.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    let mut kept = Vec::with_capacity(cap);
                    self.select(&scored, cap, &mut kept);
                    self.set_neighbors(nb, layer, &kept);
                }
            }
            if let Some(&f) = found.first() {
                cur = f;
            }
        }
        if level > self.max_level {
            self.max_level = level;
            self.entry = Some(slot);
        }
        self.scratch = s;
    }

    /// The links a new node `q` (level `level`) gets on each layer it shares
    /// with the graph, top layer first: `(layer, chosen neighbours)`. Reads
    /// the graph only (the search and selection of [`Hnsw::insert`]).
    fn plan(&self, q: &[f32], level: usize, s: &mut Scratch) -> Plan {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        let mut cur = (self.dist(q, entry), entry);
        for layer in (level + 1..=self.max_level).rev() {
            let (c, d) = self.greedy(q, cur.1, cur.0, layer);
            cur = (d, c);
        }
        let mut found = Vec::new();
        let mut plan = Vec::new();
        for layer in (0..=level.min(self.max_level)).rev() {
            self.search_layer(
                q,
                cur,
                self.cfg.ef_construction,
                layer,
                Accept::Any,
                s,
                &mut found,
            );
            let mut chosen = Vec::new();
            self.select(&found, self.cfg.m, &mut chosen);
            plan.push((layer, chosen));
            if let Some(&f) = found.first() {
                cur = f;
            }
        }
        plan
    }

    /// Nodes a batch of a parallel add may hold when the graph has `n`:
    /// a tenth of the graph (each node of a batch is linked against the
    /// graph as it was before the batch, so batches stay small next to it,
    /// as the prefix-doubling batches of ParlayANN's parallel graph builds),
    /// at most 4096, at least 1 (the first nodes go in one at a time).
    fn batch_cap(n: usize) -> usize {
        (n / 10).clamp(1, 4096)
    }

    /// Inserts rows `i0..` of a prepared add batch on `threads` threads, in
    /// batches of at most [`Hnsw::batch_cap`] nodes: (1) each node of a batch
    /// searches the graph as it was before the batch and chooses its links
    /// ([`Hnsw::plan`], in parallel; hnswlib's parallel adds lock each link
    /// list instead, `link_list_locks_`, so their graph depends on the
    /// thread schedule, while this one depends only on the batch cuts);
    /// (2) the batch's rows are appended and get their links; (3) each old
    /// node that a new one chose gets all its new back links at once, pruned
    /// with the same heuristic when the list overflows (in parallel over the
    /// old nodes, each list written by one thread). Stoppable: the calling
    /// thread polls between nodes and stops the others; the longest prefix of
    /// the batch whose nodes were all planned is appended and linked, the
    /// rest dropped, so every appended row is indexed.
    fn add_parallel(
        &mut self,
        data: &[f32],
        ids: &[u64],
        tenants: Option<&Tenants<'_>>,
        n: usize,
        threads: usize,
    ) -> Result<()> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dim = self.store.dim;
        let mut i = 0;
        while i < n {
            memarena_core::cancel::check()?;
            let b = Self::batch_cap(self.levels.len()).min(n - i);
            if b == 1 || threads == 1 {
                let slot = self.store.push_row(data, ids, tenants, i);
                self.insert(slot);
                i += 1;
                continue;
            }
            let first = self.levels.len() as u32;
            let levels: Vec<usize> = (0..b).map(|j| self.level_for(first + j as u32)).collect();
            let per = b.div_ceil(threads);
            let stop = AtomicBool::new(false);
            let this = &*self;
            let work = |j0: usize, out: &mut [Option<Plan>], poll: bool| {
                let mut s = Scratch::default();
                for (j, o) in out.iter_mut().enumerate() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if poll && memarena_core::cancel::check_now().is_err() {
                        stop.store(true, Ordering::Relaxed);
                        return;
                    }
                    let r = i + j0 + j;
                    *o = Some(this.plan(&data[r * dim..(r + 1) * dim], levels[j0 + j], &mut s));
                }
            };
            let mut plans: Vec<Option<Plan>> = vec![None; b];
            std::thread::scope(|sc| {
                let mut chunks = plans.chunks_mut(per).enumerate();
                let (_, mine) = chunks.next().expect("b >= 1");
                for (c, chunk) in chunks {
                    let work = &work;
                    sc.spawn(move || work(c * per, chunk, false));
                }
                work(0, mine, true);
            });
            let done = plans.iter().take_while(|p| p.is_some()).count();
            self.link_batch(
                data,
                ids,
                tenants,
                i,
                &levels[..done],
                &plans[..done],
                threads,
            );
            i += done;
            if done < b {
                // The poll asked to stop: report it (and keep what is linked).
                memarena_core::cancel::check()?;
                return Err(memarena_core::Error::Interrupted);
            }
        }
        Ok(())
    }

    /// Steps (2) and (3) of [`Hnsw::add_parallel`] for the planned rows
    /// `i0..i0 + plans.len()` of a prepared add batch.
    #[allow(clippy::too_many_arguments)]
    fn link_batch(
        &mut self,
        data: &[f32],
        ids: &[u64],
        tenants: Option<&Tenants<'_>>,
        i0: usize,
        levels: &[usize],
        plans: &[Option<Plan>],
        threads: usize,
    ) {
        let m = self.cfg.m;
        let mut back: Vec<(u32, u8, u32)> = Vec::new();
        let mut top: Option<(usize, u32)> = None;
        for (j, (plan, &level)) in plans.iter().zip(levels).enumerate() {
            let slot = self.store.push_row(data, ids, tenants, i0 + j);
            self.levels.push(level as u8);
            self.links0.resize(self.links0.len() + self.m0(), 0);
            self.len0.push(0);
            self.upper.push(vec![0u32; level * (m + 1)]);
            for (layer, chosen) in plan.iter().flatten() {
                self.set_neighbors(slot, *layer, chosen);
                back.extend(chosen.iter().map(|&nb| (nb, *layer as u8, slot)));
            }
            if self.entry.is_none() {
                self.entry = Some(slot);
                self.max_level = level;
            } else if level > top.map_or(self.max_level, |t| t.0) {
                top = Some((level, slot));
            }
        }
        // Group the back links by (old node, layer), new nodes ascending.
        back.sort_unstable();
        let groups: Vec<&[(u32, u8, u32)]> =
            back.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1).collect();
        let per = groups.len().div_ceil(threads.max(1)).max(1);
        let this = &*self;
        let update = |g: &[(u32, u8, u32)]| -> Vec<u32> {
            let (nb, layer) = (g[0].0, g[0].1 as usize);
            let cap = if layer == 0 { this.m0() } else { m };
            let mut list = this.neighbors(nb, layer).to_vec();
            list.extend(g.iter().map(|x| x.2));
            if list.len() <= cap {
                return list;
            }
            let nv = this.store.vector(nb);
            let mut scored: Vec<(f32, u32)> = list
                .iter()
                .map(|&x| (this.store.metric.score(nv, this.store.vector(x)), x))
                .collect();
            scored.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut kept = Vec::with_capacity(cap);
            this.select(&scored, cap, &mut kept);
            kept
        };
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); groups.len()];
        std::thread::scope(|sc| {
            for (gs, out) in groups.chunks(per).zip(lists.chunks_mut(per)) {
                let update = &update;
                sc.spawn(move || {
                    for (g, o) in gs.iter().zip(out.iter_mut()) {
                        *o = update(g);
                    }
                });
            }
        });
        for (g, list) in groups.iter().zip(&lists) {
            self.set_neighbors(g[0].0, g[0].1 as usize, list);
        }
        if let Some((level, slot)) = top {
            self.max_level = level;
            self.entry = Some(slot);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let store = Store::read(r)?;
        let m = r.u32("m")? as usize;
        let ef_construction = r.u32("ef_construction")? as usize;
        let seed = r.u64("seed")?;
        if !store.keep_vectors || !(2..=256).contains(&m) || ef_construction == 0 {
            return Err(r.err("bad hnsw configuration"));
        }
        let mut h = Hnsw::new(
            store.metric,
            store.dim,
            HnswConfig {
                m,
                ef_construction,
                seed,
                // written at the end of the payload (see `to_bytes`)
                tenant_block_max: TENANT_BLOCK_MAX,
                threads: 1,
            },
        )?;
        let n = store.n_slots();
        h.store = store;
        let levels = r.u32s("levels")?;
        let len0 = r.u32s("layer-0 degrees")?;
        let links0 = r.u32s("layer-0 links")?;
        let upper = r.u32s("upper links")?;
        let entry = r.u64("entry point")?;
        let max_level = r.u32("max level")? as usize;
        let m0 = h.m0();
        if levels.len() != n || len0.len() != n || links0.len() != n * m0 {
            return Err(r.err("graph arrays do not match the number of vectors"));
        }
        if levels.iter().any(|&l| l > 32) || len0.iter().any(|&l| l as usize > m0) {
            return Err(r.err("a node has an impossible level or degree"));
        }
        let mut off = 0usize;
        for (i, &l) in levels.iter().enumerate() {
            let len = l as usize * (m + 1);
            if off + len > upper.len() {
                return Err(r.err("upper links are truncated"));
            }
            let u = upper[off..off + len].to_vec();
            for layer in 0..l as usize {
                let c = u[layer * (m + 1)] as usize;
                if c > m
                    || u[layer * (m + 1) + 1..layer * (m + 1) + 1 + c]
                        .iter()
                        .any(|&x| x as usize >= n)
                {
                    return Err(r.err(format!("node {i}: bad links on layer {}", layer + 1)));
                }
            }
            h.upper.push(u);
            off += len;
        }
        if off != upper.len() {
            return Err(r.err("upper links have trailing values"));
        }
        for (i, &l) in len0.iter().enumerate() {
            if links0[i * m0..i * m0 + l as usize]
                .iter()
                .any(|&x| x as usize >= n)
            {
                return Err(r.err(format!(
                    "node {i}: a layer-0 link points past the last node"
                )));
            }
        }
        h.levels = levels.iter().map(|&l| l as u8).collect();
        h.len0 = len0.iter().map(|&l| l as u16).collect();
        h.links0 = links0;
        h.entry = if n == 0 { None } else { Some(entry as u32) };
        h.max_level = max_level;
        if n > 0 && (entry as usize >= n || h.levels[entry as usize] as usize != max_level) {
            return Err(r.err("entry point is not a node of the top level"));
        }
        h.cfg.tenant_block_max = h.store.read_block_max(r)?;
        Ok(h)
    }
}

impl Engine for Hnsw {
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
        let Some(entry) = self.entry else { return };
        let ef = p.ef_search.max(k);
        if let Some(t) = tenant
            && use_exact_filter(st, t, p)
        {
            scan_tenant(self, q, t, s, top);
            return;
        }
        let mut cur = (self.dist(q, entry), entry);
        for layer in (1..=self.max_level).rev() {
            let (c, d) = self.greedy(q, cur.1, cur.0, layer);
            cur = (d, c);
        }
        let mut out = std::mem::take(&mut s.pairs);
        self.search_layer(q, cur, ef, 0, Accept::Live(tenant), s, &mut out);
        for &(d, n) in &out {
            top.push(d, n);
        }
        s.pairs = out;
    }
}

impl VectorIndex for Hnsw {
    store_delegates!();

    fn kind(&self) -> &'static str {
        "hnsw"
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
        let (data, n) = self.store.begin_add(data, ids, tenants.as_ref())?;
        let threads = match self.cfg.threads {
            0 => crate::kmeans::threads(),
            t => t,
        };
        if threads > 1 {
            return self.add_parallel(&data, ids, tenants.as_ref(), n, threads);
        }
        for i in 0..n {
            // Stoppable between two vectors (see `memarena_core::cancel`):
            // each is stored and linked in before the next.
            memarena_core::cancel::check()?;
            let slot = self.store.push_row(&data, ids, tenants.as_ref(), i);
            self.insert(slot);
        }
        Ok(())
    }

    fn delete(&mut self, ids: &[u64]) -> Result<usize> {
        Ok(self.store.delete(ids).len())
    }

    fn reset(&mut self) {
        self.store.reset();
        self.levels.clear();
        self.links0.clear();
        self.len0.clear();
        self.upper.clear();
        self.entry = None;
        self.max_level = 0;
    }

    fn memory_bytes(&self) -> usize {
        self.store.memory_bytes()
            + self.levels.capacity()
            + self.links0.capacity() * 4
            + self.len0.capacity() * 2
            + self
                .upper
                .iter()
                .map(|u| u.capacity() * 4 + 24)
                .sum::<usize>()
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.store.write(&mut w);
        w.u32(self.cfg.m as u32);
        w.u32(self.cfg.ef_construction as u32);
        w.u64(self.cfg.seed);
        w.u32s(&self.levels.iter().map(|&l| l as u32).collect::<Vec<_>>());
        w.u32s(&self.len0.iter().map(|&l| l as u32).collect::<Vec<_>>());
        w.u32s(&self.links0);
        let upper: Vec<u32> = self.upper.iter().flatten().copied().collect();
        w.u32s(&upper);
        w.u64(self.entry.unwrap_or(0) as u64);
        w.u32(self.max_level as u32);
        w.u64(self.cfg.tenant_block_max as u64);
        encode(self.kind(), &w.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{gaussian_mixture, ground_truth, recall_at_k};

    /// Degrees within the caps, no self links, every link a node, and every
    /// node but the first linked to something on layer 0.
    fn check_graph(h: &Hnsw) {
        let n = h.levels.len();
        assert_eq!(h.store.n_slots(), n);
        for i in 0..n as u32 {
            for layer in 0..=h.levels[i as usize] as usize {
                let cap = if layer == 0 { h.m0() } else { h.cfg.m };
                let nb = h.neighbors(i, layer);
                assert!(nb.len() <= cap, "node {i} layer {layer}: {}", nb.len());
                assert!(nb.iter().all(|&x| x != i && (x as usize) < n));
            }
            assert!(i == 0 || !h.neighbors(i, 0).is_empty(), "node {i} unlinked");
        }
        let e = h.entry.expect("entry");
        assert_eq!(h.levels[e as usize] as usize, h.max_level);
    }

    fn build(threads: usize, base: &[f32], dim: usize) -> Hnsw {
        let cfg = HnswConfig {
            m: 8,
            ef_construction: 48,
            threads,
            ..HnswConfig::default()
        };
        let mut h = Hnsw::new(Metric::L2, dim, cfg).unwrap();
        let ids: Vec<u64> = (0..(base.len() / dim) as u64).collect();
        // Two adds: the second one starts on a non-empty graph.
        let cut = ids.len() / 3;
        h.add_with_tenants(&base[..cut * dim], &ids[..cut], None)
            .unwrap();
        h.add_with_tenants(&base[cut * dim..], &ids[cut..], None)
            .unwrap();
        h
    }

    #[test]
    fn parallel_adds_keep_the_recall_of_sequential_ones() {
        let dim = 16;
        let ds = gaussian_mixture(6000, 200, dim, 32, 0.5, 11).unwrap();
        let truth = ground_truth(&ds.base, &ds.queries, dim, 10, Metric::L2).unwrap();
        let p = SearchParams {
            ef_search: 48,
            ..SearchParams::default()
        };
        let one = build(1, &ds.base, dim);
        let r1 = recall_at_k(
            &one.search(&ds.queries, 10, &p, None).unwrap().ids,
            10,
            &truth,
            10,
        );
        check_graph(&one);
        for threads in [2, 3] {
            let h = build(threads, &ds.base, dim);
            check_graph(&h);
            let res = h.search(&ds.queries, 10, &p, None).unwrap();
            let r = recall_at_k(&res.ids, 10, &truth, 10);
            assert!(
                r >= 0.9 && r >= r1 - 0.02,
                "threads {threads}: recall {r:.3} vs {r1:.3} sequential"
            );
            // Batches depend on the batch cuts only, never on the schedule
            // or the thread count.
            let again = build(threads, &ds.base, dim);
            assert_eq!(again.links0, h.links0);
            assert_eq!(again.upper, h.upper);
            if threads == 3 {
                assert_eq!(build(2, &ds.base, dim).links0, h.links0);
            }
            // A parallel-built graph persists like any other.
            let back = crate::from_bytes(&h.to_bytes()).unwrap();
            assert_eq!(back.search(&ds.queries, 10, &p, None).unwrap().ids, res.ids);
        }
    }

    #[test]
    fn interrupted_parallel_add_keeps_every_appended_row_linked() {
        let dim = 8;
        let ds = gaussian_mixture(3000, 1, dim, 8, 0.5, 5).unwrap();
        let mut h = build(2, &ds.base[..1000 * dim], dim);
        let ids: Vec<u64> = (1000..3000).collect();
        // Stop at the 30th poll: inside a batch (the calling thread polls
        // before each node it plans).
        static POLLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let r = memarena_core::cancel::with_poll_interval(
            || POLLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 30,
            std::time::Duration::ZERO,
            || h.add_with_tenants(&ds.base[1000 * dim..], &ids, None),
        );
        assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
        let n = h.store.n_slots();
        assert!(n > 1000 && n < 3000, "{n}");
        assert_eq!(h.levels.len(), n);
        check_graph(&h);
    }
}
