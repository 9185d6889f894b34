//! BlindOracle ("follow the prediction", Lykouris & Vassilvitskii 2018,
//! Section 3; also Rohatgi 2020): Belady's rule applied to predicted
//! next-arrival times.

use std::collections::BTreeSet;

use super::Policy;
use crate::FxHashMap;
use crate::request::{ObjId, Request};

/// BlindOracle: on eviction, drop the resident page whose predicted next
/// arrival (`pred_next_vtime` of its latest request) is furthest; ties,
/// including the all-[`crate::NEVER`] case of a trace without predictions,
/// go to the least recently requested page (so without predictions it is
/// LRU).
///
/// With perfect predictions (`pred_next_vtime == next_vtime`) its miss
/// count equals Belady's exactly; with bad predictions it has no guarantee
/// (it can miss on every request where OPT misses once per `k`).
///
/// Invariant: `order` holds exactly one key `(pred, !vtime, id)` per
/// resident page, the one stored in `pages`.
#[derive(Debug, Default)]
pub struct BlindOracle {
    pages: FxHashMap<ObjId, (u64, u64, u64)>,
    order: BTreeSet<(u64, u64, ObjId)>,
}

impl BlindOracle {
    /// An empty BlindOracle; capacity is enforced by the engine.
    pub fn new(_capacity_bytes: u64) -> Self {
        Self::default()
    }

    #[inline]
    fn key(req: &Request) -> (u64, u64, ObjId) {
        (req.pred_next_vtime, !req.vtime, req.id)
    }
}

impl Policy for BlindOracle {
    fn name(&self) -> &'static str {
        "blind_oracle"
    }

    #[inline]
    fn lookup(&mut self, req: &Request) -> bool {
        let Some(entry) = self.pages.get_mut(&req.id) else {
            return false;
        };
        self.order.remove(&(entry.0, entry.1, req.id));
        let (pred, age, _) = Self::key(req);
        entry.0 = pred;
        entry.1 = age;
        self.order.insert((pred, age, req.id));
        true
    }

    #[inline]
    fn insert(&mut self, req: &Request) {
        let key = Self::key(req);
        self.pages.insert(req.id, (key.0, key.1, req.size));
        self.order.insert(key);
    }

    fn evict(&mut self, _req: &Request) -> (ObjId, u64) {
        let (_, _, id) = self
            .order
            .pop_last()
            .expect("evict from an empty BlindOracle");
        let (_, _, size) = self
            .pages
            .remove(&id)
            .expect("order and pages hold the same ids");
        (id, size)
    }

    fn contains(&self, id: ObjId) -> bool {
        self.pages.contains_key(&id)
    }

    fn len(&self) -> usize {
        self.pages.len()
    }

    fn debug_check(&self) -> Result<(), String> {
        if self.pages.len() != self.order.len() {
            return Err(format!(
                "{} pages but {} order keys",
                self.pages.len(),
                self.order.len()
            ));
        }
        for (&id, &(pred, age, _)) in &self.pages {
            if !self.order.contains(&(pred, age, id)) {
                return Err(format!("page {id} has no order key"));
            }
        }
        Ok(())
    }
}
