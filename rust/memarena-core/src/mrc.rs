//! Exact LRU miss-ratio curves from one pass over a trace (Mattson et al.,
//! 1970): LRU is a stack algorithm, so a request hits in an LRU cache of `c`
//! objects exactly when its stack distance (1 + the number of distinct
//! objects requested since the previous request to the same object) is at
//! most `c`. Distances are computed in O(n log n) with a Fenwick tree over
//! request indices that marks each object's latest request.
//!
//! Unit sizes only: cache sizes are in objects.

use crate::FxHashMap;
use crate::error::Result;
use crate::request::{NEVER, ObjId};

/// A Fenwick (binary indexed) tree of counts over `0..n`.
struct Fenwick {
    tree: Vec<i64>,
}

impl Fenwick {
    fn new(n: usize) -> Self {
        Fenwick {
            tree: vec![0; n + 1],
        }
    }

    fn add(&mut self, i: usize, delta: i64) {
        let mut i = i + 1;
        while i < self.tree.len() {
            self.tree[i] += delta;
            i += i & i.wrapping_neg();
        }
    }

    /// Sum over `0..i` (exclusive).
    fn prefix(&self, i: usize) -> i64 {
        let mut i = i;
        let mut s = 0;
        while i > 0 {
            s += self.tree[i];
            i &= i - 1;
        }
        s
    }
}

/// The LRU stack distance of every request: `d >= 1` for a re-reference
/// (hit in any LRU cache of at least `d` objects), [`NEVER`] for a first
/// request (a compulsory miss at every size). Stoppable:
/// [`crate::Error::Interrupted`] when the [`crate::cancel`] poll asks.
pub fn stack_distances(ids: &[ObjId]) -> Result<Vec<u64>> {
    let mut tree = Fenwick::new(ids.len());
    let mut last: FxHashMap<ObjId, usize> = FxHashMap::default();
    let mut out = Vec::with_capacity(ids.len());
    for (t, &id) in ids.iter().enumerate() {
        crate::cancel::check()?;
        match last.insert(id, t) {
            Some(prev) => {
                // Objects whose latest request lies strictly between prev and t.
                let between = tree.prefix(t) - tree.prefix(prev + 1);
                debug_assert!(between >= 0, "Fenwick counts are non-negative");
                out.push(between as u64 + 1);
                tree.add(prev, -1);
            }
            None => out.push(NEVER),
        }
        tree.add(t, 1);
    }
    Ok(out)
}

/// Histogram of LRU stack distances.
///
/// Invariant: `cold_misses + sum(counts) == requests`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StackHistogram {
    /// `counts[d]` = number of requests with stack distance `d` (`counts[0]`
    /// is always 0).
    pub counts: Vec<u64>,
    /// First requests (infinite distance).
    pub cold_misses: u64,
    /// All requests.
    pub requests: u64,
}

impl StackHistogram {
    /// The histogram of a trace's stack distances, in one O(n log n) pass.
    pub fn from_ids(ids: &[ObjId]) -> Result<Self> {
        Ok(Self::from_distances(&stack_distances(ids)?))
    }

    /// The histogram of precomputed distances ([`NEVER`] = cold).
    pub fn from_distances(distances: &[u64]) -> Self {
        let mut h = StackHistogram {
            counts: vec![0],
            cold_misses: 0,
            requests: distances.len() as u64,
        };
        for &d in distances {
            if d == NEVER {
                h.cold_misses += 1;
            } else {
                let d = d as usize;
                if d >= h.counts.len() {
                    h.counts.resize(d + 1, 0);
                }
                h.counts[d] += 1;
            }
        }
        h
    }

    /// LRU misses with a cache of `capacity_objects` objects.
    pub fn misses_at(&self, capacity_objects: u64) -> u64 {
        let top = capacity_objects.min(self.counts.len() as u64 - 1) as usize;
        self.requests - self.counts[1..=top].iter().sum::<u64>()
    }

    /// LRU misses at every capacity `0..=max_distance` (index = capacity).
    pub fn miss_curve(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.counts.len());
        let mut misses = self.requests;
        for (c, &n) in self.counts.iter().enumerate() {
            if c > 0 {
                misses -= n;
            }
            out.push(misses);
        }
        out
    }
}

/// Exact LRU miss ratios at each of `sizes_in_objects` (any order; 0 gives
/// 1.0, an empty trace gives 0.0), from one pass over `ids`.
pub fn lru_mrc(ids: &[ObjId], sizes_in_objects: &[u64]) -> Result<Vec<f64>> {
    let h = StackHistogram::from_ids(ids)?;
    let curve = h.miss_curve();
    let last = *curve.last().expect("miss_curve has at least capacity 0");
    Ok(sizes_in_objects
        .iter()
        .map(|&c| {
            if h.requests == 0 {
                return 0.0;
            }
            let m = curve.get(c as usize).copied().unwrap_or(last);
            m as f64 / h.requests as f64
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_of_a_small_trace() {
        let ids = [1, 2, 3, 1, 1, 3, 2];
        assert_eq!(
            stack_distances(&ids).unwrap(),
            vec![NEVER, NEVER, NEVER, 3, 1, 2, 3]
        );
        let h = StackHistogram::from_ids(&ids).unwrap();
        assert_eq!(h.cold_misses, 3);
        assert_eq!(h.miss_curve(), vec![7, 6, 5, 3]);
        assert_eq!(
            lru_mrc(&ids, &[0, 1, 3, 100]).unwrap(),
            vec![1.0, 6.0 / 7.0, 3.0 / 7.0, 3.0 / 7.0]
        );
        for c in 0..6 {
            assert_eq!(
                h.misses_at(c),
                h.miss_curve().get(c as usize).copied().unwrap_or(3)
            );
        }
    }

    fn stop() -> bool {
        true
    }

    fn go_on() -> bool {
        false
    }

    #[test]
    fn a_stop_request_interrupts_the_distance_pass() {
        let ids: Vec<ObjId> = (0..10_000).map(|i| i % 97).collect();
        let r = crate::cancel::with_poll_interval(stop, std::time::Duration::ZERO, || {
            lru_mrc(&ids, &[1, 10])
        });
        assert!(matches!(r, Err(crate::Error::Interrupted)));
    }

    proptest::proptest! {
        /// Polling never changes the curve.
        #[test]
        fn polling_does_not_change_the_curve(ids in proptest::collection::vec(0u64..50, 0..2000)) {
            let sizes = [0, 1, 5, 20, 60];
            let polled = crate::cancel::with_poll_interval(go_on, std::time::Duration::ZERO, || {
                lru_mrc(&ids, &sizes)
            });
            proptest::prop_assert_eq!(polled.unwrap(), lru_mrc(&ids, &sizes).unwrap());
        }
    }
}
