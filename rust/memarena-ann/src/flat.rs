//! Exact brute-force search: the ground truth every other index is measured against.

use memarena_core::Result;

use crate::index::{Engine, SearchParams, VectorIndex, scan_tenant, store_delegates};
use crate::metric::Metric;
use crate::persist::{Reader, Writer, encode};
use crate::store::Store;
use crate::tenant::Tenants;
use crate::topk::{Scratch, TopK};

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

    /// Cache-blocked scan: each block of vectors is scored against every
    /// query of the group while it is in cache (the same scores and the same
    /// slot order as the one-query path, so the results are identical).
    fn search_block(
        &self,
        qs: &[f32],
        _k: usize,
        _p: &SearchParams,
        s: &mut Scratch,
        tops: &mut [TopK],
    ) -> bool {
        let dim = self.store.dim;
        let sc = &mut s.f32s;
        for (b, block) in self.store.data.chunks(BLOCK * dim).enumerate() {
            for (q, top) in qs.chunks_exact(dim).zip(tops.iter_mut()) {
                self.scan_block(q, block, b * BLOCK, sc, top);
            }
        }
        true
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
