//! The v0 prefix cache's evictor of free cached blocks (vLLM v0
//! `LRUEvictor`: least recently accessed first, among equals the block
//! holding the most hashed tokens), as a sorted queue.
//!
//! Blocks enter with the simulated time of their release, which only moves
//! forward, so new keys sort among the last ones. They wait unsorted in a
//! pending list (an append per freed block) until the next pop or removal,
//! which sorts them (a freed sequence's blocks come tail first, deepest
//! first, already in order; requests freed at the same time interleave)
//! and merges them into the queue's tail of equal times. Eviction pops the
//! head. A cache hit removes a block by its key (found by binary search),
//! marking the entry dead in place; the head skips dead entries and a
//! compaction drops them once they outnumber the live ones. Nothing is
//! indexed by block id, so the hot paths read and write only the queue, in
//! order.

use std::collections::VecDeque;

/// A key: (release time as `f64` bits, `!depth`, block id) packed into
/// one integer in that order, so that keys compare in one step; smallest
/// evicted first. (Non-negative times order like their bits.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct LruKey(u128);

impl LruKey {
    #[inline(always)]
    pub(crate) fn new(time_bits: u64, not_depth: u32, block: u32) -> LruKey {
        LruKey((time_bits as u128) << 64 | (not_depth as u128) << 32 | block as u128)
    }

    #[inline(always)]
    pub(crate) fn block(self) -> u32 {
        self.0 as u32
    }

    /// (release time bits, `!depth`, block id).
    pub(crate) fn parts(self) -> (u64, u32, u32) {
        ((self.0 >> 64) as u64, (self.0 >> 32) as u32, self.0 as u32)
    }

    #[inline(always)]
    fn is_dead(self) -> bool {
        self.0 & DEAD != 0
    }
}

/// Marks a dead entry in its time bits: times are non-negative, so a live
/// key never has the sign bit.
const DEAD: u128 = 1 << 127;

/// Dead entries below this many stay (small so that the tests reach the
/// compactions).
const COMPACT_MIN: usize = if cfg!(test) { 4 } else { 1024 };

#[inline]
fn key_of(e: &LruKey) -> LruKey {
    LruKey(e.0 & !DEAD)
}

/// Free cached blocks in eviction order.
///
/// Invariants (`check`): `keys` is sorted by key (dead marks aside);
/// `dead` of its entries are marked dead; `live` counts the others and
/// `pending`, no two of them for the same block.
#[derive(Debug, Default)]
pub(crate) struct LruEvictor {
    /// A ring buffer: pops and appends never move the queue (a vector
    /// dropping its popped prefix moved the whole queue through the caches
    /// every time).
    keys: VecDeque<LruKey>,
    live: usize,
    dead: usize,
    /// Inserted keys not yet merged into `keys`, in any order.
    pending: Vec<LruKey>,
    /// Scratch for merging.
    merged: Vec<LruKey>,
}

impl LruEvictor {
    /// Blocks held.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Adds the block `key.block()`, which must not be held, with its key.
    #[inline]
    pub(crate) fn insert(&mut self, key: LruKey) {
        self.insert_all(&[key]);
    }

    /// [`insert`](Self::insert) of each of `keys`.
    #[inline]
    pub(crate) fn insert_all(&mut self, keys: &[LruKey]) {
        self.pending.extend_from_slice(keys);
        self.live += keys.len();
    }

    /// Merges the pending keys into the queue.
    #[inline(never)]
    fn flush(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        // (A stable sort merges the freed sequences' sorted runs.)
        pending.sort();
        let last = pending.last().expect("flush with pending keys");
        assert!(
            !last.is_dead(),
            "block {} released at a negative time",
            last.block()
        );
        // The queue's entries from the first that sorts after a pending key.
        let first = pending[0];
        let at = self.keys.partition_point(|e| key_of(e) <= first);
        if at == self.keys.len() {
            self.keys.extend(&pending);
        } else {
            let mut merged = std::mem::take(&mut self.merged);
            merged.clear();
            let (mut a, mut b) = (self.keys.range(at..).peekable(), pending.iter().peekable());
            while let (Some(&&x), Some(&&y)) = (a.peek(), b.peek()) {
                if key_of(&x) <= y {
                    merged.push(x);
                    a.next();
                } else {
                    merged.push(y);
                    b.next();
                }
            }
            merged.extend(a);
            merged.extend(b);
            self.keys.truncate(at);
            self.keys.extend(&merged);
            self.merged = merged;
        }
        pending.clear();
        self.pending = pending;
    }

    /// Removes the block held with `key`; false if there is none.
    pub(crate) fn remove(&mut self, key: LruKey) -> bool {
        if !self.pending.is_empty() {
            self.flush();
        }
        let lo = self.keys.partition_point(|e| key_of(e) < key);
        let Some(e) = self
            .keys
            .range_mut(lo..)
            .take_while(|e| key_of(e) == key)
            .find(|e| !e.is_dead())
        else {
            return false;
        };
        e.0 |= DEAD;
        self.live -= 1;
        self.dead += 1;
        self.maybe_compact();
        true
    }

    /// The blocks of the next `n` entries to pop (dead ones included).
    pub(crate) fn peek(&mut self, n: usize) -> impl Iterator<Item = u32> {
        if !self.pending.is_empty() {
            self.flush();
        }
        self.keys.iter().take(n).map(|e| e.block())
    }

    /// Takes the block to evict: the smallest key.
    #[inline]
    pub(crate) fn pop_first(&mut self) -> Option<u32> {
        if !self.pending.is_empty() {
            self.flush();
        }
        while let Some(e) = self.keys.pop_front() {
            if e.is_dead() {
                self.dead -= 1;
                continue;
            }
            self.live -= 1;
            return Some(e.block());
        }
        None
    }

    /// Drops the dead entries once they outnumber the live ones (amortised
    /// O(1) per removal).
    fn maybe_compact(&mut self) {
        if self.dead < COMPACT_MIN || self.dead < self.live {
            return;
        }
        self.keys.retain(|e| !e.is_dead());
        self.dead = 0;
    }

    /// The held blocks' keys (in eviction order but for the pending ones,
    /// which come last).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &LruKey> {
        self.keys
            .iter()
            .filter(|e| !e.is_dead())
            .chain(&self.pending)
    }

    /// Recomputes every invariant; a description of the first broken one.
    pub(crate) fn check(&self) -> Result<(), String> {
        let keys = &self.keys;
        if let Some((a, b)) = keys
            .iter()
            .zip(keys.iter().skip(1))
            .find(|(a, b)| key_of(a) > key_of(b))
        {
            return Err(format!(
                "evictor keys out of order: {:?} before {:?}",
                key_of(a),
                key_of(b)
            ));
        }
        let dead = keys.iter().filter(|e| e.is_dead()).count();
        let mut live: Vec<u32> = self.iter().map(|e| e.block()).collect();
        if live.len() != self.live || dead != self.dead {
            return Err(format!(
                "evictor counts {} live and {} dead entries, holds {} and {dead}",
                self.live,
                self.dead,
                live.len()
            ));
        }
        live.sort_unstable();
        if let Some(w) = live.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("block {} is in the evictor twice", w[0]));
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
        fn behaves_like_an_ordered_set(ops in prop::collection::vec((0u8..10, 0u32..16, 0u64..4, 0u32..8), 1..400)) {
            let mut e = LruEvictor::default();
            let mut model: BTreeSet<LruKey> = BTreeSet::new();
            let mut held_key: Vec<Option<LruKey>> = vec![None; 16];
            let mut now = 0u64;
            for (op, b, dt, depth) in ops {
                match op {
                    0..=3 => {
                        now = if dt == 3 { now.saturating_sub(1) } else { now + dt };
                        if held_key[b as usize].is_none() {
                            let k = LruKey::new(now, !depth, b);
                            e.insert(k);
                            model.insert(k);
                            held_key[b as usize] = Some(k);
                        }
                    }
                    4..=7 => {
                        match held_key[b as usize].take() {
                            Some(k) => {
                                prop_assert!(e.remove(k));
                                model.remove(&k);
                            }
                            None => prop_assert!(!e.remove(LruKey::new(now, !depth, b))),
                        }
                    }
                    8 => {
                        // A freed sequence: blocks b.. not held, deepest first.
                        let batch: Vec<LruKey> = (b..16)
                            .filter(|&x| held_key[x as usize].is_none())
                            .take(3)
                            .enumerate()
                            .map(|(i, x)| LruKey::new(now, !(depth + 3 - i as u32), x))
                            .collect();
                        e.insert_all(&batch);
                        for &k in &batch {
                            model.insert(k);
                            held_key[k.block() as usize] = Some(k);
                        }
                    }
                    _ => {
                        let want = model.pop_first();
                        // `peek` shows what comes next (the first live entry
                        // among its dead ones: at most 16 + 16 in all).
                        if let Some(k) = want {
                            prop_assert!(e.peek(64).any(|b| b == k.block()));
                        }
                        prop_assert_eq!(e.pop_first(), want.map(|k| k.block()));
                        if let Some(k) = want {
                            held_key[k.block() as usize] = None;
                        }
                    }
                }
                prop_assert_eq!(e.len(), model.len());
                prop_assert_eq!(e.check(), Ok(()));
            }
            while let Some(k) = model.pop_first() {
                prop_assert_eq!(e.pop_first(), Some(k.block()));
            }
            prop_assert_eq!(e.pop_first(), None);
        }
    }

    #[test]
    fn a_freed_request_appends_in_order_and_hits_leave_dead_entries() {
        let mut e = LruEvictor::default();
        // Released tail first at t=1: depths 3, 2, 1 -> keys ascending.
        for (b, d) in [(5u32, 3u32), (6, 2), (7, 1)] {
            e.insert(LruKey::new(1, !d, b));
        }
        e.insert(LruKey::new(0, !0, 2)); // an earlier time sorts first
        assert!(e.remove(LruKey::new(1, !2, 6)));
        assert!(!e.remove(LruKey::new(1, !2, 6)));
        assert_eq!(e.len(), 3);
        assert_eq!(e.check(), Ok(()));
        assert_eq!(
            (e.pop_first(), e.pop_first(), e.pop_first(), e.pop_first()),
            (Some(2), Some(5), Some(7), None)
        );
    }
}
