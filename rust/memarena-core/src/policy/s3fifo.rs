//! S3-FIFO (Yang et al., SOSP '23): a small probationary FIFO, a main FIFO
//! with 2-bit CLOCK reinsertion, and a ghost FIFO of recently evicted ids.

use super::{IdList, Policy};
use crate::error::{Error, Result};
use crate::request::{ObjId, Request};

/// S3-FIFO, following libCacheSim's `S3FIFO` (the December 2024 version
/// shipped in `libcachesim` 0.3.5).
///
/// - Queue sizes are in bytes: small = `floor(capacity * small_size_ratio)`,
///   main = capacity - small, ghost = `floor(capacity * ghost_size_ratio)`
///   (no ghost when that is 0). The ghost holds ids and sizes only.
/// - A hit increments the object's counter (small: unbounded; main: read as
///   at most 3).
/// - A miss whose id is in the ghost goes to main; otherwise to small, except
///   that before the first eviction ever, once small is full, new objects go
///   straight to main.
/// - Evicting: from main when main is over its size or small is empty,
///   otherwise from small. Small's tail moves to main (counter reset) when
///   its counter reached `move_to_main_threshold`, else it is evicted into the
///   ghost; this repeats until one object has left the cache. Main's tail is
///   reinserted at the head with counter `min(c, 3) - 1` while `c >= 1`.
/// - A capacity whose small queue rounds down to 0 bytes is an error, as in
///   libCacheSim.
/// - Admission: an object must fit in small (`size <= small`), and a
///   non-ghost object must be strictly smaller than small (libCacheSim's
///   `can_insert` and `insert` checks together).
///
/// Deliberate difference: for a non-ghost object of size exactly `small`,
/// libCacheSim first evicts to make room and then declines to insert it; we
/// decline up front without evicting. This only arises in sized mode when an
/// object's size equals `floor(capacity * small_size_ratio)` exactly.
///
/// Invariants: small, main and ghost are disjoint; small + main bytes are the
/// engine's used bytes; ghost bytes <= ghost size.
#[derive(Debug)]
pub struct S3Fifo {
    small: IdList,
    main: IdList,
    ghost: IdList,
    small_bytes: u64,
    main_bytes: u64,
    ghost_bytes: u64,
    move_to_main_threshold: u32,
    hit_on_ghost: bool,
    has_evicted: bool,
}

impl S3Fifo {
    /// An S3-FIFO of `capacity_bytes` with the given ratios and threshold.
    pub fn new(
        capacity_bytes: u64,
        small_size_ratio: f64,
        ghost_size_ratio: f64,
        move_to_main_threshold: u32,
    ) -> Result<Self> {
        if !(0.0..1.0).contains(&small_size_ratio) {
            return Err(Error::invalid(
                "policy.small_size_ratio",
                "must be in [0, 1)",
            ));
        }
        if !(0.0..=16.0).contains(&ghost_size_ratio) {
            return Err(Error::invalid(
                "policy.ghost_size_ratio",
                "must be in [0, 16]",
            ));
        }
        // The same double arithmetic and truncation as libCacheSim.
        let small_bytes = (capacity_bytes as f64 * small_size_ratio) as u64;
        if small_bytes == 0 {
            // libCacheSim refuses this configuration too.
            return Err(Error::invalid(
                "policy.small_size_ratio",
                format!(
                    "the small queue would hold 0 bytes of a {capacity_bytes}-byte cache; \
                     raise the capacity or the ratio"
                ),
            ));
        }
        Ok(S3Fifo {
            small: IdList::new(),
            main: IdList::new(),
            ghost: IdList::new(),
            small_bytes,
            main_bytes: capacity_bytes - small_bytes,
            ghost_bytes: (capacity_bytes as f64 * ghost_size_ratio) as u64,
            move_to_main_threshold,
            hit_on_ghost: false,
            has_evicted: false,
        })
    }

    /// Record an object evicted from small in the ghost FIFO.
    #[inline]
    fn remember(&mut self, id: ObjId, size: u64) {
        if self.ghost_bytes == 0 || size > self.ghost_bytes {
            return;
        }
        while self.ghost.bytes() + size > self.ghost_bytes {
            self.ghost.pop_tail();
        }
        self.ghost.push_head(id, size, 0);
    }

    /// Walk small from its tail: promote objects seen often enough to main,
    /// evict the first one that is not (into the ghost) and return it.
    /// Returns `None` if small emptied without evicting anything.
    #[inline]
    fn evict_small(&mut self) -> Option<(ObjId, u64)> {
        while let Some(t) = self.small.tail() {
            let (id, size, freq) = self.small.remove(t);
            if freq >= self.move_to_main_threshold {
                self.main.push_head(id, size, 0);
            } else {
                self.remember(id, size);
                return Some((id, size));
            }
        }
        None
    }

    /// Main is a CLOCK with a 2-bit counter: reinsert while the counter is
    /// non-zero, evict the first object whose counter is zero.
    #[inline]
    fn evict_main(&mut self) -> (ObjId, u64) {
        loop {
            let t = self
                .main
                .tail()
                .expect("S3-FIFO: evict from an empty cache");
            let freq = self.main.meta(t);
            if freq == 0 {
                let (id, size, _) = self.main.remove(t);
                return (id, size);
            }
            self.main.set_meta(t, freq.min(3) - 1);
            self.main.move_to_head(t);
        }
    }
}

impl Policy for S3Fifo {
    fn name(&self) -> &'static str {
        "s3fifo"
    }

    #[inline]
    fn lookup(&mut self, req: &Request) -> bool {
        self.hit_on_ghost = false;
        if let Some(h) = self.small.get(req.id) {
            self.small.set_meta(h, self.small.meta(h).saturating_add(1));
            return true;
        }
        if self.ghost_bytes > 0 && self.ghost.remove_id(req.id).is_some() {
            self.hit_on_ghost = true;
        }
        if let Some(h) = self.main.get(req.id) {
            self.main.set_meta(h, self.main.meta(h).saturating_add(1));
            return true;
        }
        false
    }

    #[inline]
    fn admits(&self, req: &Request) -> bool {
        req.size < self.small_bytes || (req.size == self.small_bytes && self.hit_on_ghost)
    }

    #[inline]
    fn insert(&mut self, req: &Request) {
        if std::mem::take(&mut self.hit_on_ghost)
            || (!self.has_evicted && self.small.bytes() >= self.small_bytes)
        {
            self.main.push_head(req.id, req.size, 0);
        } else {
            self.small.push_head(req.id, req.size, 0);
        }
    }

    #[inline]
    fn evict(&mut self, _req: &Request) -> (ObjId, u64) {
        self.has_evicted = true;
        loop {
            if self.main.bytes() > self.main_bytes || self.small.is_empty() {
                return self.evict_main();
            }
            if let Some(evicted) = self.evict_small() {
                return evicted;
            }
        }
    }

    fn contains(&self, id: ObjId) -> bool {
        self.small.contains(id) || self.main.contains(id)
    }

    fn len(&self) -> usize {
        self.small.len() + self.main.len()
    }

    fn debug_check(&self) -> Result<(), String> {
        self.small.check()?;
        self.main.check()?;
        self.ghost.check()?;
        if self.ghost.bytes() > self.ghost_bytes {
            return Err(format!(
                "ghost holds {} bytes > its size {}",
                self.ghost.bytes(),
                self.ghost_bytes
            ));
        }
        for (name, list) in [("main", &self.main), ("ghost", &self.ghost)] {
            let mut h = list.head();
            while let Some(x) = h {
                let id = list.id(x);
                if self.small.contains(id) || (name == "ghost" && self.main.contains(id)) {
                    return Err(format!("object {id} is in {name} and another queue"));
                }
                h = list.next_toward_tail(x);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::S3Fifo;
    use crate::policy::{Cache, Outcome};
    use crate::request::Request;

    fn cache(cap: u64) -> Cache<S3Fifo> {
        Cache::new(cap, Box::new(S3Fifo::new(cap, 0.1, 0.9, 2).unwrap()))
    }

    fn access(c: &mut Cache<S3Fifo>, ids: &[u64]) -> Vec<Outcome> {
        ids.iter()
            .map(|&id| {
                let o = c.access(&Request::unit(id, 0));
                c.debug_check().unwrap();
                o
            })
            .collect()
    }

    #[test]
    fn one_hit_wonders_leave_through_the_ghost() {
        // capacity 20: small 2, main 18, ghost 18.
        let mut c = cache(20);
        access(&mut c, &(1..=20).collect::<Vec<_>>());
        // Before the first eviction, small filled with 1, 2; 3..=20 went to main.
        assert_eq!(c.policy().small.len(), 2);
        assert_eq!(c.policy().main.len(), 18);
        // 21 evicts from small (main is not over its size): 1 goes to the ghost.
        access(&mut c, &[21]);
        assert!(!c.contains(1) && c.policy().ghost.contains(1));
        // 1 again: a ghost hit, admitted straight to main.
        access(&mut c, &[1]);
        assert!(c.policy().main.contains(1) && !c.policy().ghost.contains(1));
    }

    #[test]
    fn small_object_seen_twice_moves_to_main() {
        let mut c = cache(20);
        access(&mut c, &(1..=20).collect::<Vec<_>>());
        access(&mut c, &[1, 1]); // counter 2 = threshold
        access(&mut c, &[21]);
        // 1 was promoted to main (counter reset), 2 was evicted to the ghost.
        assert!(c.policy().main.contains(1) && c.policy().ghost.contains(2));
        assert_eq!(c.policy().main.meta(c.policy().main.get(1).unwrap()), 0);
    }

    #[test]
    fn main_reinserts_with_a_two_bit_counter() {
        let mut c = cache(20);
        access(&mut c, &(1..=20).collect::<Vec<_>>());
        // 3 is main's tail; hit it 5 times: counter reads as 3 when evicting.
        access(&mut c, &[3, 3, 3, 3, 3]);
        // 21 evicts 1 from small; 1's ghost hit puts it in main, which is
        // then over its size, so 22 evicts from main.
        access(&mut c, &[21, 1, 22]);
        assert!(c.contains(3), "3 had a non-zero counter and was reinserted");
        assert!(
            !c.contains(4),
            "4 was main's next object with a zero counter"
        );
        let h = c.policy().main.get(3).unwrap();
        assert_eq!(c.policy().main.meta(h), 2);
    }

    #[test]
    fn empty_small_queue_is_rejected() {
        assert!(Cache::with_defaults("s3fifo", 9).is_err());
    }

    #[test]
    fn tiny_caches_admit_nothing_like_libcachesim() {
        // capacity 15: small is 1 byte, so a unit object (size 1 >= small)
        // is never inserted.
        let mut c = cache(15);
        assert!(
            access(&mut c, &[1, 1, 2])
                .iter()
                .all(|o| *o == Outcome::MissTooLarge)
        );
        assert!(c.is_empty());
    }
}
