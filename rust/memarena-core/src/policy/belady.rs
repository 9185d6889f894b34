//! Belady's MIN / OPT: the offline optimum for unit-size objects.

use std::collections::BinaryHeap;

use super::Policy;
use crate::FxHashMap;
use crate::request::{ObjId, Request};

/// Belady: evict the resident object whose next request is furthest in the
/// future, objects never requested again
/// ([`NEVER`](crate::request::NEVER)) first. Needs
/// `Request::next_vtime`, which the core fills in from the trace.
///
/// For sized objects this is the same rule, as in libCacheSim's `Belady`
/// (it is then a heuristic, not the byte-aware optimum; libCacheSim's
/// `BeladySize` is a different policy). Ties only occur among objects never
/// requested again, and which of those goes first cannot change a miss count,
/// so counts match libCacheSim exactly.
///
/// Implementation: a max-heap of `(next_vtime, id)` with lazy deletion; an
/// entry is live when it equals the object's current `next_vtime`. The heap is
/// rebuilt when stale entries outnumber live ones, so memory stays linear in
/// the resident count.
#[derive(Debug, Default)]
pub struct Belady {
    /// Resident objects: `(next_vtime, size)`.
    resident: FxHashMap<ObjId, (u64, u64)>,
    heap: BinaryHeap<(u64, ObjId)>,
}

impl Belady {
    /// An empty Belady cache; capacity is enforced by the [`super::Cache`].
    pub fn new(_capacity_bytes: u64) -> Self {
        Self::default()
    }

    #[inline]
    fn push(&mut self, next: u64, id: ObjId) {
        self.heap.push((next, id));
        if self.heap.len() > 2 * self.resident.len() + 1024 {
            self.heap = self.resident.iter().map(|(&id, &(n, _))| (n, id)).collect();
        }
    }
}

impl Policy for Belady {
    fn name(&self) -> &'static str {
        "belady"
    }

    #[inline]
    fn lookup(&mut self, req: &Request) -> bool {
        match self.resident.get_mut(&req.id) {
            Some(entry) => {
                if entry.0 != req.next_vtime {
                    entry.0 = req.next_vtime;
                    self.push(req.next_vtime, req.id);
                }
                true
            }
            None => false,
        }
    }

    #[inline]
    fn insert(&mut self, req: &Request) {
        self.resident.insert(req.id, (req.next_vtime, req.size));
        self.push(req.next_vtime, req.id);
    }

    #[inline]
    fn evict(&mut self, _req: &Request) -> (ObjId, u64) {
        loop {
            let (next, id) = self.heap.pop().expect("evict from empty Belady");
            if let Some(&(n, size)) = self.resident.get(&id)
                && n == next
            {
                self.resident.remove(&id);
                return (id, size);
            }
        }
    }

    fn contains(&self, id: ObjId) -> bool {
        self.resident.contains_key(&id)
    }

    fn len(&self) -> usize {
        self.resident.len()
    }

    fn debug_check(&self) -> Result<(), String> {
        let live: crate::FxHashSet<(u64, ObjId)> = self.heap.iter().copied().collect();
        for (&id, &(n, _)) in &self.resident {
            if !live.contains(&(n, id)) {
                return Err(format!("resident object {id} has no heap entry"));
            }
        }
        Ok(())
    }
}

/// Fill `next_vtime` of every request from the sequence itself: the index of
/// the next request to the same id, or `NEVER`. For tests and examples;
/// traces get theirs from the trace module.
#[cfg(test)]
pub(crate) fn fill_next_vtime(reqs: &mut [Request]) {
    let mut seen: FxHashMap<ObjId, u64> = FxHashMap::default();
    for (t, r) in reqs.iter_mut().enumerate().rev() {
        r.next_vtime = seen.insert(r.id, t as u64).unwrap_or(crate::request::NEVER);
    }
}

#[cfg(test)]
mod tests {
    use super::fill_next_vtime;
    use crate::policy::Cache;
    use crate::request::Request;

    fn misses(name: &str, cap: u64, ids: &[u64]) -> usize {
        let mut reqs: Vec<Request> = ids
            .iter()
            .enumerate()
            .map(|(t, &id)| Request::unit(id, t as u64))
            .collect();
        fill_next_vtime(&mut reqs);
        let mut c = Cache::with_defaults(name, cap).unwrap();
        reqs.iter().filter(|r| !c.access(r).is_hit()).count()
    }

    /// The textbook reference string (Silberschatz, Operating System
    /// Concepts): 3 frames, OPT has 9 page faults, LRU 12 and FIFO 15.
    #[test]
    fn textbook_reference_string() {
        let s = [7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1];
        assert_eq!(misses("belady", 3, &s), 9);
        assert_eq!(misses("lru", 3, &s), 12);
        assert_eq!(misses("fifo", 3, &s), 15);
    }

    #[test]
    fn never_requested_again_goes_first() {
        // After 1 2 3 (cap 2): 1 is never requested again, 2 is.
        let mut reqs: Vec<Request> = [1, 2, 3, 2]
            .iter()
            .enumerate()
            .map(|(t, &id)| Request::unit(id, t as u64))
            .collect();
        fill_next_vtime(&mut reqs);
        let mut c = Cache::with_defaults("belady", 2).unwrap();
        let hits: Vec<bool> = reqs.iter().map(|r| c.access(r).is_hit()).collect();
        assert_eq!(hits, [false, false, false, true]);
    }

    #[test]
    fn stale_heap_entries_are_compacted() {
        let mut reqs: Vec<Request> = (0..50_000u64).map(|t| Request::unit(t % 3, t)).collect();
        fill_next_vtime(&mut reqs);
        let mut c = Cache::new(2, Box::new(super::Belady::new(2)));
        for r in &reqs {
            c.access(r);
        }
        c.debug_check().unwrap();
        assert!(c.policy().heap.len() <= 2 * c.len() + 1024);
        // OPT on a loop of k + 1 pages with k frames faults every k requests.
        let n_miss = {
            let mut c = Cache::with_defaults("belady", 2).unwrap();
            reqs.iter().filter(|r| !c.access(r).is_hit()).count()
        };
        assert!((24_999..=25_002).contains(&n_miss), "{n_miss}");
    }
}
