//! The v0 prefix cache's evictor of free cached blocks (vLLM v0
//! `LRUEvictor`: least recently accessed first, among equals the block
//! holding the most hashed tokens), as a sorted queue.
//!
//! Blocks enter with the simulated time of their release, which only moves
//! forward, so a new key sorts among the last ones: insertion is an append,
//! or a binary search and a short move within the blocks released at the
//! same time (a freed request's blocks come tail first, deepest first,
//! already in order; two requests freed together interleave). Eviction pops
//! the head; a cache hit removes a block by id, leaving a dead entry that
//! the head skips and a compaction drops. Where a `BTreeSet` paid a tree
//! walk and node allocations per freed block, this pays an append.

/// A key: (last access time as `f64` bits, `!depth`, block id); smallest
/// evicted first. (Non-negative times order like their bits.)
pub(crate) type LruKey = (u64, u32, u32);

const ABSENT: u64 = u64::MAX;

/// Free cached blocks in eviction order.
///
/// Invariants (`check`): `keys[head..]` is sorted by key; a block `b` is in
/// the evictor iff `held[b]` is the stamp of an entry of `keys[head..]`
/// naming `b` (its other entries are dead); `live` counts them.
#[derive(Debug, Default)]
pub(crate) struct LruEvictor {
    /// (key, insertion stamp).
    keys: Vec<(LruKey, u64)>,
    head: usize,
    held: Vec<u64>,
    next_stamp: u64,
    live: usize,
}

impl LruEvictor {
    /// An empty evictor for blocks `0..num_blocks`.
    pub(crate) fn new(num_blocks: usize) -> Self {
        LruEvictor {
            held: vec![ABSENT; num_blocks],
            ..LruEvictor::default()
        }
    }

    /// Blocks held.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    fn is_live(&self, e: &(LruKey, u64)) -> bool {
        self.held[e.0.2 as usize] == e.1
    }

    /// Adds block `key.2`, which must not be held.
    pub(crate) fn insert(&mut self, key: LruKey) {
        let b = key.2 as usize;
        assert!(
            self.held[b] == ABSENT,
            "block {b} is already in the evictor"
        );
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.held[b] = stamp;
        self.live += 1;
        match self.keys.last() {
            Some(last) if last.0 > key => {
                let at = self.head + self.keys[self.head..].partition_point(|e| e.0 <= key);
                self.keys.insert(at, (key, stamp));
            }
            _ => self.keys.push((key, stamp)),
        }
    }

    /// Removes block `b`; false if it was not held.
    pub(crate) fn remove(&mut self, b: u32) -> bool {
        if self.held[b as usize] == ABSENT {
            return false;
        }
        self.held[b as usize] = ABSENT;
        self.live -= 1;
        self.maybe_compact();
        true
    }

    /// Takes the block to evict: the smallest key.
    pub(crate) fn pop_first(&mut self) -> Option<u32> {
        while let Some(&e) = self.keys.get(self.head) {
            self.head += 1;
            if self.is_live(&e) {
                self.held[e.0.2 as usize] = ABSENT;
                self.live -= 1;
                self.maybe_compact();
                return Some(e.0.2);
            }
        }
        None
    }

    /// Drops the popped and dead entries once they outnumber the live ones
    /// (amortised O(1) per operation).
    fn maybe_compact(&mut self) {
        let garbage = self.keys.len() - self.live;
        if garbage < 1024 || garbage < self.live {
            return;
        }
        let mut w = 0;
        for i in self.head..self.keys.len() {
            let e = self.keys[i];
            if self.is_live(&e) {
                self.keys[w] = e;
                w += 1;
            }
        }
        self.keys.truncate(w);
        self.head = 0;
    }

    /// Recomputes every invariant; a description of the first broken one.
    pub(crate) fn check(&self) -> Result<(), String> {
        let keys = &self.keys[self.head..];
        if let Some(w) = keys.windows(2).find(|w| w[0].0 > w[1].0) {
            return Err(format!(
                "evictor keys out of order: {:?} before {:?}",
                w[0].0, w[1].0
            ));
        }
        let live: Vec<&(LruKey, u64)> = keys.iter().filter(|e| self.is_live(e)).collect();
        let held = self.held.iter().filter(|&&h| h != ABSENT).count();
        if live.len() != held || held != self.live {
            return Err(format!(
                "evictor counts {} blocks, {held} are marked held, {} entries are live",
                self.live,
                live.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Against a `BTreeSet` of the same keys: same pops, same sizes,
        /// invariants after every step, under inserts with times that mostly
        /// repeat or grow (as in the simulator) and sometimes go back.
        #[test]
        fn behaves_like_an_ordered_set(ops in prop::collection::vec((0u8..10, 0u32..64, 0u64..4, 0u32..8), 1..400)) {
            let mut e = LruEvictor::new(64);
            let mut model: BTreeSet<LruKey> = BTreeSet::new();
            let mut key_of: Vec<Option<LruKey>> = vec![None; 64];
            let mut now = 0u64;
            for (op, b, dt, depth) in ops {
                match op {
                    0..=4 => {
                        now = if dt == 3 { now.saturating_sub(1) } else { now + dt };
                        if key_of[b as usize].is_none() {
                            let k = (now, !depth, b);
                            e.insert(k);
                            model.insert(k);
                            key_of[b as usize] = Some(k);
                        }
                    }
                    5..=7 => {
                        let held = key_of[b as usize].take();
                        prop_assert_eq!(e.remove(b), held.is_some());
                        if let Some(k) = held {
                            model.remove(&k);
                        }
                    }
                    _ => {
                        let want = model.pop_first();
                        prop_assert_eq!(e.pop_first(), want.map(|k| k.2));
                        if let Some(k) = want {
                            key_of[k.2 as usize] = None;
                        }
                    }
                }
                prop_assert_eq!(e.len(), model.len());
                prop_assert_eq!(e.check(), Ok(()));
            }
            while let Some(k) = model.pop_first() {
                prop_assert_eq!(e.pop_first(), Some(k.2));
            }
            prop_assert_eq!(e.pop_first(), None);
        }
    }

    #[test]
    fn a_freed_request_appends_in_order_and_hits_leave_dead_entries() {
        let mut e = LruEvictor::new(8);
        // Released tail first at t=1: depths 3, 2, 1 -> keys ascending.
        for (b, d) in [(5u32, 3u32), (6, 2), (7, 1)] {
            e.insert((1, !d, b));
        }
        e.insert((0, !0, 2)); // an earlier time sorts first
        assert!(e.remove(6));
        assert!(!e.remove(6));
        assert_eq!(e.len(), 3);
        assert_eq!(e.check(), Ok(()));
        assert_eq!(
            (e.pop_first(), e.pop_first(), e.pop_first(), e.pop_first()),
            (Some(2), Some(5), Some(7), None)
        );
    }
}
