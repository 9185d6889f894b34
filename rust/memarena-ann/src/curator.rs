//! Curator-style multi-tenant index (Jin et al., "Curator: Efficient Indexing
//! for Multi-Tenant Vector Databases", 2024).
//!
//! One clustering tree (hierarchical k-means, `branching` children per node)
//! is shared by every tenant. Each tenant owns only a sparse overlay on it:
//! at a node, a tenant either has a *shortlist* (the slots of its vectors in
//! that node's subtree) or is *split* (its vectors are further down, in the
//! children that have an entry for it). A shortlist that grows past
//! `split_threshold` at an internal node is split and pushed to the children.
//! So a tenant with `c` vectors costs about `4 c` bytes of shortlists plus a
//! small entry on each node of its sub-tree — no per-tenant graph, no
//! per-tenant copy of the vectors, no bitmap over all vectors.
//!
//! A filtered query walks the tree best-first by centroid score, descending
//! only into nodes that hold an entry for its tenant, and scores the
//! shortlists it reaches until `ef_search` candidates have been scored and
//! `k` results found. Small tenants therefore get an exact scan of their own
//! vectors at the root; large ones an IVF-like search restricted to their
//! region of the tree. Unfiltered queries walk the same tree over per-leaf
//! lists of all vectors.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use memarena_core::{Error, FxHashMap, Result};
use serde::Deserialize;

use crate::index::{
    Engine, SearchParams, VectorIndex, in_range, rows, scan_tenant, store_delegates,
    use_exact_filter,
};
use crate::kmeans;
use crate::metric::{Metric, l2_sq};
use crate::persist::{Reader, Writer, encode};
use crate::store::{Store, TENANT_BLOCK_MAX};
use crate::tenant::Tenants;
use crate::topk::{Cand, Scratch, TopK};

const NO_PARENT: u32 = u32::MAX;
const MAX_DEPTH: usize = 12;

/// Build parameters of [`Curator`] (`kind: curator`), deserialized from
/// every field the Python `Config` sends.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CuratorConfig {
    /// Children per internal node.
    pub branching: usize,
    /// A node with at most this many training points becomes a leaf.
    pub leaf_size: usize,
    /// A tenant's shortlist longer than this at an internal node is split.
    pub split_threshold: usize,
    /// Lloyd iterations per node.
    pub kmeans_iters: usize,
    /// Seed of the clustering.
    pub seed: u64,
    /// Training points used at most.
    pub max_train_points: usize,
    /// Tenants with at most this many vectors keep a contiguous copy of
    /// them, scanned as one block by exact tenant searches (about one more
    /// copy of the vectors on tenant-heavy data); 0 keeps no copies (exact
    /// tenant scans then gather rows from the shared vectors: less memory,
    /// slower). Default 16384.
    pub tenant_block_max: usize,
}

impl Default for CuratorConfig {
    fn default() -> Self {
        CuratorConfig {
            branching: 16,
            leaf_size: 128,
            split_threshold: 64,
            kmeans_iters: 8,
            seed: 0,
            max_train_points: 131_072,
            tenant_block_max: TENANT_BLOCK_MAX,
        }
    }
}

impl CuratorConfig {
    /// Range checks; errors name the key (`index.branching`).
    pub fn validate(&self) -> Result<()> {
        in_range("branching", self.branching, 2, 1024)?;
        in_range("leaf_size", self.leaf_size, 1, 1 << 24)?;
        in_range("split_threshold", self.split_threshold, 1, 1 << 24)?;
        in_range("kmeans_iters", self.kmeans_iters, 1, 1000)?;
        in_range(
            "max_train_points",
            self.max_train_points,
            1,
            usize::MAX >> 1,
        )?;
        in_range(
            "tenant_block_max",
            self.tenant_block_max,
            0,
            u32::MAX as usize,
        )
    }
}

/// A tenant's state at one node.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    /// Every vector of the tenant in this subtree, as slots.
    Short(Vec<u32>),
    /// The tenant's vectors are in the children that have an entry.
    Split,
}

/// Curator-style index. See the module documentation.
#[derive(Clone, Debug)]
pub struct Curator {
    store: Store,
    cfg: CuratorConfig,
    /// Per node: centroid (`dim` values each).
    centroids: Vec<f32>,
    parent: Vec<u32>,
    children: Vec<Vec<u32>>,
    /// Per leaf: all its slots (for unfiltered search); empty for internal nodes.
    leaf_slots: Vec<Vec<u32>>,
    /// Per slot: its leaf.
    leaf_of: Vec<u32>,
    /// Per node: tenant -> entry.
    tenants: Vec<FxHashMap<u32, Entry>>,
}

impl Curator {
    /// An untrained index.
    pub fn new(metric: Metric, dim: usize, cfg: CuratorConfig) -> Result<Self> {
        if cfg.branching < 2 || cfg.leaf_size == 0 || cfg.split_threshold == 0 {
            return Err(Error::invalid(
                "curator",
                "need branching >= 2, leaf_size >= 1, split_threshold >= 1",
            ));
        }
        let mut store = Store::new(metric, dim, true);
        store.set_block_max(cfg.tenant_block_max);
        Ok(Curator {
            store,
            cfg,
            centroids: Vec::new(),
            parent: Vec::new(),
            children: Vec::new(),
            leaf_slots: Vec::new(),
            leaf_of: Vec::new(),
            tenants: Vec::new(),
        })
    }

    /// The build parameters.
    pub fn config(&self) -> &CuratorConfig {
        &self.cfg
    }

    /// Number of tree nodes.
    pub fn n_nodes(&self) -> usize {
        self.parent.len()
    }

    fn centroid(&self, node: u32) -> &[f32] {
        let d = self.store.dim;
        &self.centroids[node as usize * d..(node as usize + 1) * d]
    }

    fn route(&self, v: &[f32]) -> u32 {
        let mut node = 0u32;
        while !self.children[node as usize].is_empty() {
            node = *self.children[node as usize]
                .iter()
                .min_by(|&&a, &&b| {
                    l2_sq(v, self.centroid(a)).total_cmp(&l2_sq(v, self.centroid(b)))
                })
                .unwrap_or(&node);
        }
        node
    }

    /// The child of `node` on the path to `leaf`.
    fn child_toward(&self, leaf: u32, node: u32) -> u32 {
        let mut c = leaf;
        while self.parent[c as usize] != node {
            c = self.parent[c as usize];
        }
        c
    }

    fn insert_tenant(&mut self, slot: u32, tenant: u32, from: u32) {
        let mut node = from;
        loop {
            let is_leaf = self.children[node as usize].is_empty();
            match self.tenants[node as usize].get_mut(&tenant) {
                None => {
                    self.tenants[node as usize].insert(tenant, Entry::Short(vec![slot]));
                    return;
                }
                Some(Entry::Short(list)) => {
                    list.push(slot);
                    if list.len() > self.cfg.split_threshold && !is_leaf {
                        let list = std::mem::take(list);
                        self.tenants[node as usize].insert(tenant, Entry::Split);
                        for s in list {
                            let c = self.child_toward(self.leaf_of[s as usize], node);
                            self.insert_tenant(s, tenant, c);
                        }
                    }
                    return;
                }
                Some(Entry::Split) => {
                    node = self.child_toward(self.leaf_of[slot as usize], node);
                }
            }
        }
    }

    fn remove_tenant(&mut self, slot: u32, tenant: u32) {
        let leaf = self.leaf_of[slot as usize];
        let mut node = 0u32;
        loop {
            match self.tenants[node as usize].get_mut(&tenant) {
                None => return,
                Some(Entry::Split) => node = self.child_toward(leaf, node),
                Some(Entry::Short(list)) => {
                    list.retain(|&s| s != slot);
                    if !list.is_empty() {
                        return;
                    }
                    // Drop the empty entry and any split parent left with no children.
                    self.tenants[node as usize].remove(&tenant);
                    let mut n = node;
                    while self.parent[n as usize] != NO_PARENT {
                        let p = self.parent[n as usize];
                        if self.children[p as usize]
                            .iter()
                            .any(|c| self.tenants[*c as usize].contains_key(&tenant))
                        {
                            return;
                        }
                        self.tenants[p as usize].remove(&tenant);
                        n = p;
                    }
                    return;
                }
            }
        }
    }

    /// Bytes of the tenant's overlay: its entries and shortlists.
    fn overlay_bytes(&self, tenant: u32) -> usize {
        self.tenants
            .iter()
            .filter_map(|m| m.get(&tenant))
            .map(|e| {
                // key + entry + hash-table control byte, plus the list itself
                4 + std::mem::size_of::<Entry>()
                    + 1
                    + match e {
                        Entry::Short(l) => l.capacity() * 4,
                        Entry::Split => 0,
                    }
            })
            .sum()
    }

    /// Per-tenant overlay bytes of every tenant, ascending by tenant id.
    pub fn tenant_overlay_bytes(&self) -> Vec<(u32, usize)> {
        let mut ts: Vec<u32> = self.store.tenant_live.keys().copied().collect();
        ts.sort_unstable();
        ts.into_iter().map(|t| (t, self.overlay_bytes(t))).collect()
    }

    fn build_tree(&mut self, sample: &[f32]) -> Result<()> {
        let dim = self.store.dim;
        let n = sample.len() / dim;
        self.centroids.clear();
        self.parent.clear();
        self.children.clear();
        // (node, points, depth)
        let mut stack: Vec<(u32, Vec<u32>, usize)> = Vec::new();
        let mean = |pts: &[u32]| {
            let mut m = vec![0.0f64; dim];
            for &p in pts {
                m.iter_mut()
                    .zip(&sample[p as usize * dim..(p as usize + 1) * dim])
                    .for_each(|(a, x)| *a += *x as f64);
            }
            m.iter()
                .map(|x| (*x / pts.len().max(1) as f64) as f32)
                .collect::<Vec<f32>>()
        };
        let all: Vec<u32> = (0..n as u32).collect();
        self.centroids.extend(mean(&all));
        self.parent.push(NO_PARENT);
        self.children.push(Vec::new());
        stack.push((0, all, 0));
        while let Some((node, pts, depth)) = stack.pop() {
            if pts.len() <= self.cfg.leaf_size || depth >= MAX_DEPTH {
                continue;
            }
            let data: Vec<f32> = pts
                .iter()
                .flat_map(|&p| {
                    sample[p as usize * dim..(p as usize + 1) * dim]
                        .iter()
                        .copied()
                })
                .collect();
            let b = self.cfg.branching.min(pts.len());
            let seed = self.cfg.seed ^ (node as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let cents = kmeans::train(
                &data,
                dim,
                b,
                self.cfg.kmeans_iters,
                seed,
                false,
                usize::MAX >> 1,
            )?;
            let near = kmeans::nearest(&data, &cents, dim, 1, kmeans::threads());
            let mut groups: Vec<Vec<u32>> = vec![Vec::new(); b];
            for (i, &(_, c)) in near.iter().enumerate() {
                groups[c as usize].push(pts[i]);
            }
            if groups.iter().filter(|g| !g.is_empty()).count() < 2 {
                continue;
            }
            for (c, g) in groups.into_iter().enumerate() {
                if g.is_empty() {
                    continue;
                }
                let id = self.parent.len() as u32;
                self.centroids
                    .extend_from_slice(&cents[c * dim..(c + 1) * dim]);
                self.parent.push(node);
                self.children.push(Vec::new());
                self.children[node as usize].push(id);
                stack.push((id, g, depth + 1));
            }
        }
        let nn = self.parent.len();
        self.leaf_slots = vec![Vec::new(); nn];
        self.tenants = vec![FxHashMap::default(); nn];
        Ok(())
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let store = Store::read(r)?;
        let cfg = CuratorConfig {
            branching: r.u32("branching")? as usize,
            leaf_size: r.u64("leaf_size")? as usize,
            split_threshold: r.u64("split_threshold")? as usize,
            kmeans_iters: r.u32("kmeans_iters")? as usize,
            seed: r.u64("seed")?,
            max_train_points: r.u64("max_train_points")? as usize,
            // written at the end of the payload (see `to_bytes`)
            tenant_block_max: TENANT_BLOCK_MAX,
        };
        if !store.keep_vectors {
            return Err(r.err("curator index without vectors"));
        }
        let mut c = Curator::new(store.metric, store.dim, cfg)?;
        let dim = store.dim;
        let n = store.n_slots();
        c.store = store;
        let parent = r.u32s("parents")?;
        let centroids = r.f32s("centroids")?;
        let nn = parent.len();
        if centroids.len() != nn * dim || (nn == 0 && n > 0) {
            return Err(r.err("tree arrays do not match"));
        }
        for (i, &p) in parent.iter().enumerate() {
            if (i == 0) != (p == NO_PARENT) || (i > 0 && p as usize >= i) {
                return Err(r.err(format!("node {i} has an invalid parent {p}")));
            }
        }
        c.children = vec![Vec::new(); nn];
        for (i, &p) in parent.iter().enumerate().skip(1) {
            c.children[p as usize].push(i as u32);
        }
        c.parent = parent;
        c.centroids = centroids;
        let leaf_of = r.u32s("leaf of each vector")?;
        if leaf_of.len() != n {
            return Err(r.err("leaf table does not match the number of vectors"));
        }
        c.leaf_slots = vec![Vec::new(); nn];
        for (s, &l) in leaf_of.iter().enumerate() {
            if l as usize >= nn || !c.children[l as usize].is_empty() {
                return Err(r.err(format!(
                    "vector slot {s} is in node {l}, which is not a leaf"
                )));
            }
            if c.store.is_live(s as u32) {
                c.leaf_slots[l as usize].push(s as u32);
            }
        }
        c.leaf_of = leaf_of;
        c.tenants = vec![FxHashMap::default(); nn];
        for node in 0..nn {
            let count = r.usize_max("tenant entries", r.remaining() / 5)?;
            for _ in 0..count {
                let t = r.u32("tenant")?;
                let e = match r.u8("entry tag")? {
                    0 => Entry::Split,
                    1 => {
                        let l = r.u32s("shortlist")?;
                        if l.iter()
                            .any(|&s| s as usize >= n || !c.store.tenants_of(s).contains(&t))
                        {
                            return Err(r.err(format!(
                                "node {node}: shortlist of tenant {t} names a foreign vector"
                            )));
                        }
                        Entry::Short(l)
                    }
                    _ => return Err(r.err("unknown entry tag")),
                };
                if c.tenants[node].insert(t, e).is_some() {
                    return Err(r.err(format!("node {node}: tenant {t} twice")));
                }
            }
        }
        c.cfg.tenant_block_max = c.store.read_block_max(r)?;
        Ok(c)
    }
}

impl Engine for Curator {
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
        if self.parent.is_empty() {
            return;
        }
        let st = &self.store;
        // A small tenant is cheaper (and exact) as one scan of its own vectors.
        if let Some(t) = tenant
            && use_exact_filter(st, t, p)
        {
            scan_tenant(self, q, t, s, top);
            return;
        }
        let metric = st.metric;
        let budget = p.ef_search.max(k);
        let mut heap: BinaryHeap<Reverse<Cand>> = std::mem::take(&mut s.cand);
        heap.clear();
        let has = |node: u32| match tenant {
            None => true,
            Some(t) => self.tenants[node as usize].contains_key(&t),
        };
        if has(0) {
            heap.push(Reverse(Cand(0.0, 0)));
        }
        let mut scored = 0usize;
        let mut live = std::mem::take(&mut s.slots);
        let mut dists = std::mem::take(&mut s.f32s);
        while let Some(Reverse(Cand(_, node))) = heap.pop() {
            if scored >= budget && top.is_full() {
                break;
            }
            let scan: Option<&[u32]> = match tenant {
                Some(t) => match self.tenants[node as usize].get(&t) {
                    Some(Entry::Short(l)) => Some(l),
                    _ => None,
                },
                None if self.children[node as usize].is_empty() => {
                    Some(&self.leaf_slots[node as usize])
                }
                None => None,
            };
            match scan {
                Some(list) => {
                    // One gather call over the live slots (rows prefetched
                    // ahead), pushed in list order as one at a time would.
                    live.clear();
                    live.extend(list.iter().copied().filter(|&slot| st.is_live(slot)));
                    dists.resize(live.len(), 0.0);
                    metric.score_at(q, &st.data, &live, &mut dists);
                    for (&slot, &d) in live.iter().zip(&dists) {
                        top.push(d, slot);
                    }
                    scored += live.len();
                }
                None => {
                    for &c in &self.children[node as usize] {
                        if has(c) {
                            heap.push(Reverse(Cand(metric.score(q, self.centroid(c)), c)));
                        }
                    }
                }
            }
        }
        s.cand = heap;
        s.slots = live;
        s.f32s = dists;
    }
}

impl VectorIndex for Curator {
    store_delegates!(own_tenant_memory);

    fn kind(&self) -> &'static str {
        "curator"
    }

    fn is_trained(&self) -> bool {
        !self.parent.is_empty()
    }

    fn train(&mut self, data: &[f32]) -> Result<()> {
        let dim = self.store.dim;
        let n = rows(data, dim, "training vectors")?;
        if n == 0 {
            return Err(Error::invalid(
                "training vectors",
                "need at least one vector",
            ));
        }
        if self.store.n_slots() > 0 {
            return Err(Error::invalid(
                "train",
                "the index already holds vectors; reset() first",
            ));
        }
        let data = self.store.prepare(data);
        let m = n.min(self.cfg.max_train_points);
        // Evenly spaced sample (deterministic).
        let sample: Vec<f32> = (0..m)
            .flat_map(|i| {
                let r = i * n / m;
                data[r * dim..(r + 1) * dim].iter().copied()
            })
            .collect();
        if let Err(e) = self.build_tree(&sample) {
            // Stopped on request: back to untrained, not half a tree.
            self.centroids.clear();
            self.parent.clear();
            self.children.clear();
            return Err(e);
        }
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
                "curator",
                "the index is not trained; call train() first",
            ));
        }
        let n = self.store.check_add(data, ids, tenants.as_ref())?;
        let data = self.store.prepare(data);
        let dim = self.store.dim;
        for i in 0..n {
            // Stoppable between two vectors (see `memarena_core::cancel`).
            memarena_core::cancel::check()?;
            let v = &data[i * dim..(i + 1) * dim];
            let leaf = self.route(v);
            let t = tenants.as_ref().map_or(&[][..], |t| t.row(i));
            let slot = self.store.push(v, ids[i], t);
            self.leaf_of.push(leaf);
            self.leaf_slots[leaf as usize].push(slot);
            let ts = self.store.tenants_of(slot).to_vec();
            for tenant in ts {
                self.insert_tenant(slot, tenant, 0);
            }
        }
        Ok(())
    }

    fn delete(&mut self, ids: &[u64]) -> Result<usize> {
        let slots = self.store.delete(ids);
        for &slot in &slots {
            let leaf = self.leaf_of[slot as usize] as usize;
            self.leaf_slots[leaf].retain(|&s| s != slot);
            let ts = self.store.tenants_of(slot).to_vec();
            for t in ts {
                self.remove_tenant(slot, t);
            }
        }
        Ok(slots.len())
    }

    fn reset(&mut self) {
        self.store.reset();
        self.leaf_of.clear();
        self.leaf_slots.iter_mut().for_each(Vec::clear);
        self.tenants.iter_mut().for_each(FxHashMap::clear);
    }

    fn memory_bytes(&self) -> usize {
        self.store.memory_bytes()
            + self.centroids.capacity() * 4
            + self.parent.capacity() * 4
            + self
                .children
                .iter()
                .map(|c| c.capacity() * 4 + 24)
                .sum::<usize>()
            + self
                .leaf_slots
                .iter()
                .map(|c| c.capacity() * 4 + 24)
                .sum::<usize>()
            + self.leaf_of.capacity() * 4
            + self
                .tenants
                .iter()
                .map(|m| {
                    32 + m.capacity() * (5 + std::mem::size_of::<Entry>())
                        + m.values()
                            .map(|e| match e {
                                Entry::Short(l) => l.capacity() * 4,
                                Entry::Split => 0,
                            })
                            .sum::<usize>()
                })
                .sum::<usize>()
    }

    /// The tenant's overlay (entries and shortlists) on the shared tree,
    /// plus the contiguous copy of its vectors a small tenant keeps.
    fn tenant_memory_bytes(&self, tenant: u32) -> usize {
        self.overlay_bytes(tenant) + self.store.tenant_block_bytes(tenant)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.store.write(&mut w);
        w.u32(self.cfg.branching as u32);
        w.u64(self.cfg.leaf_size as u64);
        w.u64(self.cfg.split_threshold as u64);
        w.u32(self.cfg.kmeans_iters as u32);
        w.u64(self.cfg.seed);
        w.u64(self.cfg.max_train_points as u64);
        w.u32s(&self.parent);
        w.f32s(&self.centroids);
        w.u32s(&self.leaf_of);
        for m in &self.tenants {
            let mut es: Vec<(&u32, &Entry)> = m.iter().collect();
            es.sort_unstable_by_key(|e| *e.0);
            w.usize(es.len());
            for (t, e) in es {
                w.u32(*t);
                match e {
                    Entry::Split => w.u8(0),
                    Entry::Short(l) => {
                        w.u8(1);
                        w.u32s(l);
                    }
                }
            }
        }
        w.u64(self.cfg.tenant_block_max as u64);
        encode(self.kind(), &w.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::TenantLists;

    #[test]
    fn files_from_before_tenant_block_max_load_with_the_default() {
        let dim = 4;
        let data: Vec<f32> = (0..400).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let rows: Vec<Vec<u32>> = (0..100).map(|i| vec![i % 3]).collect();
        let csr = TenantLists::from_lists(&rows);
        let ids: Vec<u64> = (0..100).collect();
        let cfg = CuratorConfig {
            tenant_block_max: 10,
            ..CuratorConfig::default()
        };
        let mut c = Curator::new(Metric::L2, dim, cfg).unwrap();
        c.train(&data).unwrap();
        c.add_with_tenants(&data, &ids, Some(csr.as_tenants()))
            .unwrap();
        assert!(c.store.tenant_blocks.is_empty(), "34 slots per tenant > 10");
        let bytes = c.to_bytes();
        // the same file without the trailing field, as written before it
        let header = 8 + 4 + 1 + "curator".len() + 8;
        let payload = &bytes[header..bytes.len() - 4];
        let old = encode("curator", &payload[..payload.len() - 8]);
        let back = crate::from_bytes(&old).unwrap();
        let again = crate::from_bytes(&bytes).unwrap();
        assert!(
            back.memory_bytes() > again.memory_bytes(),
            "default keeps copies"
        );
        let mut w = Writer::default();
        w.u64(TENANT_BLOCK_MAX as u64);
        let mut with_default = payload[..payload.len() - 8].to_vec();
        with_default.extend_from_slice(&w.buf);
        assert_eq!(back.to_bytes(), encode("curator", &with_default));
    }
}
