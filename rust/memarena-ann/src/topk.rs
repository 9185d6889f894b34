//! A bounded, sorted top-k buffer and the per-thread search scratch.

/// The `k` best `(score, slot)` pairs seen so far, sorted ascending by score
/// (lower is better), ties broken by slot so the order never depends on the
/// order of insertion.
///
/// Invariant: `items.len() <= k` and `items` is sorted by `(score, slot)`.
#[derive(Clone, Debug)]
pub(crate) struct TopK {
    k: usize,
    items: Vec<(f32, u32)>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    pub(crate) fn clear(&mut self, k: usize) {
        self.k = k;
        self.items.clear();
    }

    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= self.k
    }

    /// The score a candidate must beat to enter (infinite while not full).
    #[inline]
    pub(crate) fn threshold(&self) -> f32 {
        if self.items.len() < self.k {
            f32::INFINITY
        } else {
            self.items[self.k - 1].0
        }
    }

    /// Offers a candidate; returns true if it was kept.
    #[inline]
    pub(crate) fn push(&mut self, score: f32, slot: u32) -> bool {
        if self.k == 0 || score.is_nan() {
            return false;
        }
        if self.items.len() >= self.k {
            let (ws, wslot) = self.items[self.k - 1];
            if score > ws || (score == ws && slot >= wslot) {
                return false;
            }
        }
        let pos = self
            .items
            .partition_point(|&(s, i)| s < score || (s == score && i < slot));
        self.items.insert(pos, (score, slot));
        if self.items.len() > self.k {
            self.items.pop();
        }
        true
    }

    pub(crate) fn items(&self) -> &[(f32, u32)] {
        &self.items
    }
}

/// The `cap` smallest distinct `u64` keys of a stream (faiss's reservoir
/// top-n): a key below the threshold is appended, and the buffer is cut back
/// to the `cap` smallest (`select_nth_unstable`) whenever it reaches twice
/// that, which lowers the threshold. Keys pack `(small distance << 32) | slot`,
/// so the result is the `cap` best by distance with ties broken by slot,
/// whatever the order of arrival.
///
/// Invariant: every key ever offered and not kept is `>=` each kept key
/// once [`Reservoir::finish_unordered`] has run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reservoir {
    cap: usize,
    keys: Vec<u64>,
    thr: u64,
}

impl Reservoir {
    pub(crate) fn reset(&mut self, cap: usize) {
        self.cap = cap;
        self.keys.clear();
        self.thr = if cap == 0 { 0 } else { u64::MAX };
    }

    /// Keys `>=` this cannot enter.
    #[inline]
    pub(crate) fn threshold(&self) -> u64 {
        self.thr
    }

    /// Offers a key (distinct from every key offered before).
    #[inline]
    pub(crate) fn push(&mut self, key: u64) {
        if key < self.thr {
            self.keys.push(key);
            if self.keys.len() >= 2 * self.cap.max(16) {
                self.cut();
            }
        }
    }

    fn cut(&mut self) {
        if self.keys.len() > self.cap {
            if self.cap == 0 {
                self.keys.clear();
                self.thr = 0;
                return;
            }
            self.keys.select_nth_unstable(self.cap - 1);
            self.keys.truncate(self.cap);
            self.thr = self.keys[self.cap - 1];
        }
    }

    /// The kept keys in no particular order (at most `cap`); callers rank
    /// them by key (or rescore them) themselves.
    pub(crate) fn finish_unordered(&mut self) -> &[u64] {
        self.cut();
        &self.keys
    }
}

/// An order-preserving key of a score: for non-NaN `a`, `b`,
/// `a < b` iff `score_key(a) < score_key(b)`, and `-0.0`, `0.0` share the key
/// of `0.0` (so `(score_key(s) << 32) | slot` orders `(score, slot)` pairs as
/// [`TopK`] does). [`key_score`] inverts it.
#[inline]
pub(crate) fn score_key(x: f32) -> u32 {
    let b = (x + 0.0).to_bits(); // -0.0 + 0.0 == +0.0
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

/// The score of a [`score_key`] (`+0.0` for either zero).
#[inline]
pub(crate) fn key_score(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

/// A `(score, id)` pair ordered by score then id (a total order, for heaps).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cand(pub(crate) f32, pub(crate) u32);

impl Eq for Cand {}

impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cand {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Per-thread reusable buffers, so a query allocates nothing in steady state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scratch {
    /// Min-heap of candidates (graph search).
    pub(crate) cand: std::collections::BinaryHeap<std::cmp::Reverse<Cand>>,
    /// Max-heap of results (graph search).
    pub(crate) res: std::collections::BinaryHeap<Cand>,
    visited: Vec<u32>,
    epoch: u32,
    pub(crate) u16s: Vec<u16>,
    pub(crate) slots: Vec<u32>,
    pub(crate) pairs: Vec<(f32, u32)>,
    pub(crate) f32s: Vec<f32>,
    pub(crate) u64s: Vec<u64>,
    /// One reservoir per query of a group (LSH Hamming scans).
    pub(crate) reservoirs: Vec<Reservoir>,
    /// Coarse (centroid) scores of a query group (IVF).
    pub(crate) coarse: Vec<f32>,
    /// Exact scores of gathered candidates (LSH re-ranking).
    pub(crate) scores: Vec<f32>,
}

impl Scratch {
    /// Starts a new visited-set generation over `n` ids (O(1) amortised).
    pub(crate) fn begin_visits(&mut self, n: usize) {
        if self.visited.len() < n {
            self.visited.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.visited.iter_mut().for_each(|v| *v = 0);
            self.epoch = 1;
        }
    }

    /// Marks `id` visited; true if it was not visited in this generation.
    #[inline]
    pub(crate) fn visit(&mut self, id: u32) -> bool {
        let v = &mut self.visited[id as usize];
        if *v == self.epoch {
            false
        } else {
            *v = self.epoch;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_k_smallest_sorted_with_slot_ties() {
        let mut t = TopK::new(3);
        for (s, i) in [(5.0, 1), (1.0, 2), (3.0, 3), (1.0, 0), (9.0, 4), (3.0, 1)] {
            t.push(s, i);
        }
        assert_eq!(t.items(), &[(1.0, 0), (1.0, 2), (3.0, 1)]);
        assert_eq!(t.threshold(), 3.0);
        assert!(!t.push(f32::NAN, 7));
    }

    #[test]
    fn reservoir_keeps_the_smallest_keys_in_any_order() {
        let mut r = Reservoir::default();
        for cap in [0usize, 1, 3, 17, 40] {
            r.reset(cap);
            let keys: Vec<u64> = (0..200u64).map(|i| (i * 7919) % 211).collect();
            for &k in &keys {
                r.push(k);
            }
            let mut want = keys.clone();
            want.sort_unstable();
            want.truncate(cap);
            let mut unordered = r.finish_unordered().to_vec();
            unordered.sort_unstable();
            assert_eq!(unordered, want, "cap {cap}");
        }
    }

    proptest::proptest! {
        #[test]
        fn score_keys_preserve_order_and_invert(a in proptest::num::f32::ANY, b in proptest::num::f32::ANY) {
            proptest::prop_assume!(!a.is_nan() && !b.is_nan());
            proptest::prop_assert_eq!(a < b, score_key(a) < score_key(b));
            proptest::prop_assert_eq!(a == b, score_key(a) == score_key(b));
            proptest::prop_assert_eq!(key_score(score_key(a)), a);
            proptest::prop_assert!(key_score(score_key(a)).to_bits() == (a + 0.0).to_bits());
        }
    }

    #[test]
    fn visits_reset_per_generation() {
        let mut s = Scratch::default();
        s.begin_visits(4);
        assert!(s.visit(2));
        assert!(!s.visit(2));
        s.begin_visits(4);
        assert!(s.visit(2));
    }
}
