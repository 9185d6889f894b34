//! Randomized marking (Fiat, Karp, Luby, McGeoch, Sleator & Young,
//! "Competitive paging algorithms", 1991): `2 H_k`-competitive, the robust
//! baseline of learning-augmented paging.

use super::Policy;
use super::marking::IdSet;
use crate::request::{ObjId, Request};
use crate::rng::Rng;

/// Marker: every requested page is marked; on a fault with a full cache,
/// evict a uniformly random unmarked page; when none is left, a new phase
/// starts and every page is unmarked.
///
/// Unit-size pages are the intended use (phases are then the trace's
/// k-phases, see `predict::phases`); with sizes the engine may evict several
/// pages per miss and the policy stays valid but loses its guarantee.
///
/// Invariant: `marked` and `unmarked` are disjoint and hold exactly the
/// resident pages.
#[derive(Debug)]
pub struct Marker {
    marked: IdSet<u64>,
    unmarked: IdSet<u64>,
    rng: Rng,
}

impl Marker {
    /// An empty Marker whose random choices are drawn from `seed`.
    pub fn new(_capacity_bytes: u64, seed: u64) -> Self {
        Marker {
            marked: IdSet::default(),
            unmarked: IdSet::default(),
            rng: Rng::seed_from_u64(seed),
        }
    }
}

impl Policy for Marker {
    fn name(&self) -> &'static str {
        "marker"
    }

    #[inline]
    fn lookup(&mut self, req: &Request) -> bool {
        if let Some(size) = self.unmarked.remove(req.id) {
            self.marked.insert(req.id, size);
            return true;
        }
        self.marked.contains(req.id)
    }

    #[inline]
    fn insert(&mut self, req: &Request) {
        self.marked.insert(req.id, req.size);
    }

    fn evict(&mut self, _req: &Request) -> (ObjId, u64) {
        if self.unmarked.is_empty() {
            // New phase: unmark everything.
            std::mem::swap(&mut self.marked, &mut self.unmarked);
        }
        self.unmarked
            .pop_random(&mut self.rng)
            .expect("evict from an empty Marker")
    }

    fn contains(&self, id: ObjId) -> bool {
        self.marked.contains(id) || self.unmarked.contains(id)
    }

    fn len(&self) -> usize {
        self.marked.len() + self.unmarked.len()
    }

    fn debug_check(&self) -> Result<(), String> {
        self.marked.check()?;
        self.unmarked.check()
    }
}
