//! PredictiveMarker (Lykouris & Vassilvitskii, "Competitive caching with
//! machine learned advice", ICML 2018 / JACM 2021, Section 5): marking that
//! follows next-arrival predictions, with eviction chains that fall back to
//! random marking when predictions keep failing.

use std::collections::BTreeSet;

use super::Policy;
use super::marking::{IdSet, harmonic};
use crate::FxHashMap;
use crate::request::{ObjId, Request};
use crate::rng::Rng;

/// PredictiveMarker: a marking algorithm (pages are marked when requested;
/// a phase ends when a fault finds every page marked). On a fault with a
/// full cache:
/// - a *clean* request (a page not evicted earlier in this phase) starts a
///   new eviction chain: evict the unmarked page with the furthest predicted
///   next arrival (`pred_next_vtime` of its latest request); the evicted page
///   becomes the chain's representative;
/// - a request for a chain's representative (a stale page evicted earlier in
///   this phase) extends that chain by one; while the chain length is at
///   most `H_k` the victim is again the unmarked page with the furthest
///   prediction, afterwards a uniformly random unmarked page. The victim
///   becomes the new representative.
///
/// Guarantee (L&V): competitive ratio `O(1 + min(sqrt(eta / OPT), log k))`,
/// where eta is the l1 error of the predicted arrival times: about 2 with
/// perfect predictions, O(log k) whatever the predictions.
/// `k` is the capacity given at build time (pages, for unit sizes). Without
/// a `pred_next_vtime` column every prediction is NEVER and ties go to the
/// least recently requested page. Unit-size pages are the intended use.
///
/// Invariant: `marked` and `unmarked` are disjoint and hold exactly the
/// resident pages; `by_pred` holds one key per unmarked page.
#[derive(Debug)]
pub struct PredictiveMarker {
    /// Marked pages: (size, pred, !vtime).
    marked: IdSet<(u64, u64, u64)>,
    /// Unmarked pages: (size, pred, !vtime).
    unmarked: IdSet<(u64, u64, u64)>,
    by_pred: BTreeSet<(u64, u64, ObjId)>,
    chain_len: Vec<u64>,
    rep_chain: FxHashMap<ObjId, usize>,
    h_k: f64,
    rng: Rng,
}

impl PredictiveMarker {
    /// An empty PredictiveMarker for a cache of `capacity_bytes` (= k pages
    /// for unit sizes), drawing random choices from `seed`.
    pub fn new(capacity_bytes: u64, seed: u64) -> Self {
        PredictiveMarker {
            marked: IdSet::default(),
            unmarked: IdSet::default(),
            by_pred: BTreeSet::new(),
            chain_len: Vec::new(),
            rep_chain: FxHashMap::default(),
            h_k: harmonic(capacity_bytes.max(1)),
            rng: Rng::seed_from_u64(seed),
        }
    }

    fn evict_furthest(&mut self) -> (ObjId, u64) {
        let (_, _, id) = self
            .by_pred
            .pop_last()
            .expect("evict with no unmarked page");
        let (size, _, _) = self
            .unmarked
            .remove(id)
            .expect("by_pred and unmarked agree");
        (id, size)
    }

    fn evict_random(&mut self) -> (ObjId, u64) {
        let (id, (size, pred, age)) = self
            .unmarked
            .pop_random(&mut self.rng)
            .expect("evict with no unmarked page");
        let removed = self.by_pred.remove(&(pred, age, id));
        debug_assert!(removed, "by_pred and unmarked agree");
        (id, size)
    }
}

impl Policy for PredictiveMarker {
    fn name(&self) -> &'static str {
        "predictive_marker"
    }

    #[inline]
    fn lookup(&mut self, req: &Request) -> bool {
        let (pred, age) = (req.pred_next_vtime, !req.vtime);
        if let Some(entry) = self.marked.get_mut(req.id) {
            entry.1 = pred;
            entry.2 = age;
            return true;
        }
        match self.unmarked.remove(req.id) {
            Some((size, old_pred, old_age)) => {
                self.by_pred.remove(&(old_pred, old_age, req.id));
                self.marked.insert(req.id, (size, pred, age));
                true
            }
            None => false,
        }
    }

    #[inline]
    fn insert(&mut self, req: &Request) {
        self.marked
            .insert(req.id, (req.size, req.pred_next_vtime, !req.vtime));
    }

    fn evict(&mut self, req: &Request) -> (ObjId, u64) {
        if self.unmarked.is_empty() {
            // New phase: unmark everything, forget the chains.
            for (id, value) in self.marked.drain() {
                self.by_pred.insert((value.1, value.2, id));
                self.unmarked.insert(id, value);
            }
            self.chain_len.clear();
            self.rep_chain.clear();
        }
        let (chain, follow) = match self.rep_chain.remove(&req.id) {
            Some(c) => {
                self.chain_len[c] += 1;
                (c, self.chain_len[c] as f64 <= self.h_k)
            }
            None => {
                // A clean request (or, with sized objects, a second eviction
                // for the same request): a new chain.
                self.chain_len.push(1);
                (self.chain_len.len() - 1, true)
            }
        };
        let victim = if follow {
            self.evict_furthest()
        } else {
            self.evict_random()
        };
        self.rep_chain.insert(victim.0, chain);
        victim
    }

    fn contains(&self, id: ObjId) -> bool {
        self.marked.contains(id) || self.unmarked.contains(id)
    }

    fn len(&self) -> usize {
        self.marked.len() + self.unmarked.len()
    }

    fn debug_check(&self) -> Result<(), String> {
        self.marked.check()?;
        self.unmarked.check()?;
        if self.by_pred.len() != self.unmarked.len() {
            return Err(format!(
                "{} prediction keys for {} unmarked pages",
                self.by_pred.len(),
                self.unmarked.len()
            ));
        }
        Ok(())
    }
}
