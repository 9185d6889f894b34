//! A binary buddy allocator over a range of KV slots (Knowlton 1965; Knuth,
//! TAOCP vol. 1, §2.5): the allocator the vLLM paper assumes for its Orca
//! reimplementation (Kwon et al., SOSP '23, §6.1: "We assume Orca uses the
//! buddy allocation algorithm to determine the memory address to store KV
//! cache").
//!
//! Every block is `2^k` slots at an offset that is a multiple of `2^k`. An
//! allocation of `n` slots takes a block of `next_pow2(n)` slots: the
//! smallest free block that is large enough (the lowest offset among
//! those), split in halves down to that size, the upper halves left free.
//! A freed block merges with its buddy (the block at `offset ^ 2^k`) while
//! that buddy is free and whole, and the merged block again with its own.
//!
//! A pool that is not a power of two is a set of arenas, its maximal
//! powers of two in decreasing size (a pool of 14,992 slots is arenas of
//! 8192, 4096, 2048, 512, 128 and 16 slots at offsets 0, 8192, 12288,
//! 14336, 14848 and 14976). Each arena's offset is a multiple of its size,
//! so the buddy arithmetic holds within it; two blocks merge only if the
//! merged block ends inside the pool, which is exactly when it lies inside
//! one arena (an aligned block ending inside the pool never straddles two
//! arenas: the arenas after a boundary sum to less than the lowest set bit
//! of that boundary). No block is larger than the largest arena.
//!
//! Invariants (checked by [`Buddy::check`], property-tested against a slow
//! reference below): free blocks are aligned to their size and inside the
//! pool; free and allocated blocks tile the pool exactly (no overlap, free
//! plus allocated equals the pool); coalescing is complete (no free block's
//! buddy is free at the same size while the merged block fits the pool);
//! the running count of free slots is the sum of the free blocks.

use std::collections::BTreeSet;

/// Free lists of a binary buddy allocator over `total` slots.
#[derive(Clone, Debug)]
pub(crate) struct Buddy {
    total: u64,
    /// `free[k]`: offsets of the free blocks of `2^k` slots.
    free: Vec<BTreeSet<u64>>,
    free_slots: u64,
}

/// The order `k` of the block that `len` slots take: `2^k >= len`, `k`
/// smallest (`len` 0 takes a 1-slot block); 64 when no `u64` block holds it.
fn order_of(len: u64) -> u32 {
    match len {
        0 | 1 => 0,
        _ => 64 - (len - 1).leading_zeros(),
    }
}

impl Buddy {
    /// A pool of `total` slots, all free: one free block per arena (the
    /// set bits of `total`, largest first at offset 0).
    pub(crate) fn new(total: u64) -> Buddy {
        let orders = if total == 0 {
            0
        } else {
            64 - total.leading_zeros() as usize
        };
        let mut free = vec![BTreeSet::new(); orders];
        let mut offset = 0;
        for k in (0..orders).rev() {
            if total & (1 << k) != 0 {
                free[k].insert(offset);
                offset += 1 << k;
            }
        }
        debug_assert_eq!(offset, total);
        Buddy {
            total,
            free,
            free_slots: total,
        }
    }

    /// Slots an allocation of `len` slots takes: `len` rounded up to a
    /// power of two (`u64::MAX` when that overflows; no pool has it).
    pub(crate) fn block_len(len: u64) -> u64 {
        len.max(1).checked_next_power_of_two().unwrap_or(u64::MAX)
    }

    /// The largest block the pool can hand out (its largest arena; 0 for
    /// an empty pool).
    pub(crate) fn largest_block(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            1 << (63 - self.total.leading_zeros())
        }
    }

    /// Free slots.
    pub(crate) fn free_slots(&self) -> u64 {
        self.free_slots
    }

    /// Free blocks as `(offset, len)`, smallest first, by offset within a size.
    pub(crate) fn free_blocks(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.free
            .iter()
            .enumerate()
            .flat_map(|(k, set)| set.iter().map(move |&o| (o, 1u64 << k)))
    }

    /// Allocates a block for `len` slots: `(offset, block_len)`, or `None`
    /// when no free block is large enough.
    pub(crate) fn alloc(&mut self, len: u64) -> Option<(u64, u64)> {
        let want = order_of(len) as usize;
        let mut k = (want..self.free.len()).find(|&k| !self.free[k].is_empty())?;
        let offset = self.free[k].pop_first().expect("a non-empty free list");
        while k > want {
            k -= 1;
            let upper = offset + (1 << k);
            let fresh = self.free[k].insert(upper);
            assert!(
                fresh,
                "buddy: split half {upper} of order {k} was already free"
            );
        }
        let block = 1u64 << want;
        self.free_slots -= block;
        Some((offset, block))
    }

    /// Frees the block of `block_len` slots (a power of two, as
    /// [`alloc`](Self::alloc) returned) at `offset`, merging it with its
    /// free buddies.
    pub(crate) fn release(&mut self, offset: u64, block_len: u64) {
        assert!(
            block_len.is_power_of_two()
                && offset.is_multiple_of(block_len)
                && offset + block_len <= self.total,
            "buddy: freeing a block that was never handed out ({block_len} slots at {offset})"
        );
        self.free_slots += block_len;
        let mut k = block_len.trailing_zeros() as usize;
        let mut x = offset;
        while k + 1 < self.free.len() {
            let size = 1u64 << k;
            let merged = x & !size;
            if merged + 2 * size > self.total || !self.free[k].remove(&(x ^ size)) {
                break;
            }
            x = merged;
            k += 1;
        }
        let fresh = self.free[k].insert(x);
        assert!(fresh, "buddy: block {x} of order {k} freed twice");
    }

    /// Checks the invariants of the module docs, given the allocated
    /// blocks as `(offset, len)`; `Err` names the one broken.
    pub(crate) fn check(&self, allocated: &[(u64, u64)]) -> Result<(), String> {
        let mut spans = Vec::with_capacity(allocated.len() + 64);
        let mut free_sum = 0u64;
        for (o, l) in self.free_blocks() {
            if o % l != 0 || o + l > self.total {
                return Err(format!(
                    "free block of {l} slots at {o} is misaligned or outside the pool"
                ));
            }
            let buddy = o ^ l;
            let merged = o & !l;
            if merged + 2 * l <= self.total
                && self.free[l.trailing_zeros() as usize].contains(&buddy)
            {
                return Err(format!(
                    "free blocks {o} and {buddy} of {l} slots are buddies, not merged"
                ));
            }
            free_sum += l;
            spans.push((o, l));
        }
        if free_sum != self.free_slots {
            return Err(format!(
                "free slots {} but the free blocks hold {free_sum}",
                self.free_slots
            ));
        }
        for &(o, l) in allocated {
            if !l.is_power_of_two() || o % l != 0 {
                return Err(format!(
                    "allocated block of {l} slots at {o} is not a buddy block"
                ));
            }
            spans.push((o, l));
        }
        spans.sort_unstable();
        let mut end = 0;
        for (o, l) in spans {
            if o != end {
                return Err(format!(
                    "free and allocated blocks do not tile the pool at slot {end} (next block at {o})"
                ));
            }
            end = o + l;
        }
        if end != self.total {
            return Err(format!("blocks end at {end}, the pool has {}", self.total));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A slow reference: a plain list of free `(offset, order)` blocks.
    /// Allocation takes the smallest sufficient block (lowest offset) and
    /// halves it; freeing adds the block and then merges any pair of free
    /// buddies, rescanning the whole list until no pair is left.
    struct Reference {
        total: u64,
        free: Vec<(u64, u32)>,
    }

    impl Reference {
        fn new(total: u64) -> Reference {
            // Arenas from a slot-by-slot greedy cut: the largest aligned
            // power of two that fits what is left.
            let mut free = Vec::new();
            let mut o = 0;
            while o < total {
                let mut k = 0;
                while o % (1 << (k + 1)) == 0 && o + (1 << (k + 1)) <= total {
                    k += 1;
                }
                free.push((o, k));
                o += 1 << k;
            }
            Reference { total, free }
        }

        fn alloc(&mut self, len: u64) -> Option<(u64, u64)> {
            let mut want = 0;
            while (1u64 << want) < len {
                want += 1;
            }
            let &(o, k) = self
                .free
                .iter()
                .filter(|&&(_, k)| k >= want)
                .min_by_key(|&&(o, k)| (k, o))?;
            self.free.retain(|&b| b != (o, k));
            for j in want..k {
                self.free.push((o + (1 << j), j));
            }
            Some((o, 1 << want))
        }

        fn release(&mut self, offset: u64, len: u64) {
            self.free.push((offset, len.trailing_zeros()));
            'again: loop {
                for i in 0..self.free.len() {
                    for j in 0..self.free.len() {
                        let ((a, k), (b, kb)) = (self.free[i], self.free[j]);
                        let size = 1u64 << k;
                        if i != j
                            && k == kb
                            && a % (2 * size) == 0
                            && b == a + size
                            && a + 2 * size <= self.total
                        {
                            self.free.retain(|&x| x != (a, k) && x != (b, k));
                            self.free.push((a, k + 1));
                            continue 'again;
                        }
                    }
                }
                break;
            }
        }

        fn blocks(&self) -> Vec<(u64, u64)> {
            let mut v: Vec<(u64, u64)> = self.free.iter().map(|&(o, k)| (o, 1 << k)).collect();
            v.sort_unstable();
            v
        }
    }

    fn sorted(b: &Buddy) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = b.free_blocks().collect();
        v.sort_unstable();
        v
    }

    proptest! {
        /// Against the reference, on pools of any size (most not a power of
        /// two): the same blocks handed out, the same free blocks after
        /// every step, no two live blocks overlapping (a slot map), and
        /// every invariant.
        #[test]
        fn behaves_like_the_reference(
            total in 1u64..600,
            ops in prop::collection::vec((any::<bool>(), 1u64..200, any::<prop::sample::Index>()), 1..300),
        ) {
            let mut b = Buddy::new(total);
            let mut r = Reference::new(total);
            prop_assert_eq!(sorted(&b), r.blocks());
            let mut live: Vec<(u64, u64)> = Vec::new();
            let mut owner = vec![false; total as usize];
            for (alloc, len, pick) in ops {
                if alloc || live.is_empty() {
                    let got = b.alloc(len);
                    prop_assert_eq!(got, r.alloc(len));
                    if let Some((o, l)) = got {
                        prop_assert!(l >= len && l < 2 * len.max(1) && l.is_power_of_two());
                        for s in o..o + l {
                            prop_assert!(!owner[s as usize], "slot {} handed out twice", s);
                            owner[s as usize] = true;
                        }
                        live.push((o, l));
                    } else {
                        // Refused only when no free block is large enough.
                        prop_assert!(b.free_blocks().all(|(_, l)| l < len));
                    }
                } else {
                    let (o, l) = live.swap_remove(pick.index(live.len()));
                    b.release(o, l);
                    r.release(o, l);
                    for s in o..o + l {
                        owner[s as usize] = false;
                    }
                }
                prop_assert_eq!(sorted(&b), r.blocks());
                prop_assert_eq!(b.check(&live), Ok(()));
                let held: u64 = live.iter().map(|&(_, l)| l).sum();
                prop_assert_eq!(b.free_slots() + held, total);
            }
            // Everything freed: back to the arenas.
            for (o, l) in live.drain(..) {
                b.release(o, l);
            }
            prop_assert_eq!(sorted(&b), sorted(&Buddy::new(total)));
        }
    }

    #[test]
    fn arenas_of_a_pool_that_is_not_a_power_of_two() {
        // 14,992 = 8192 + 4096 + 2048 + 512 + 128 + 16 (experiment=vllm_fig2's pool).
        let b = Buddy::new(14_992);
        assert_eq!(
            b.free_blocks().collect::<Vec<_>>(),
            vec![
                (14_976, 16),
                (14_848, 128),
                (14_336, 512),
                (12_288, 2048),
                (8192, 4096),
                (0, 8192)
            ]
        );
        assert_eq!(b.largest_block(), 8192);
        assert_eq!(Buddy::new(1).largest_block(), 1);
        assert_eq!(Buddy::new(0).largest_block(), 0);
        assert_eq!(
            (
                Buddy::block_len(0),
                Buddy::block_len(1),
                Buddy::block_len(5)
            ),
            (1, 1, 8)
        );
        assert_eq!(Buddy::block_len(u64::MAX), u64::MAX);
    }

    #[test]
    fn splits_and_coalesces_by_hand() {
        // A 16-slot pool. 3 slots take a 4-slot block: 16 -> 8 + 8, 8 -> 4 + 4.
        let mut b = Buddy::new(16);
        assert_eq!(b.alloc(3), Some((0, 4)));
        assert_eq!(sorted(&b), vec![(4, 4), (8, 8)]);
        // 5 slots take an 8-slot block: the free 8 at offset 8.
        assert_eq!(b.alloc(5), Some((8, 8)));
        // 2 slots: the smallest sufficient free block is the 4 at offset 4, halved.
        assert_eq!(b.alloc(2), Some((4, 2)));
        assert_eq!(sorted(&b), vec![(6, 2)]);
        assert_eq!(b.free_slots(), 2);
        // 3 slots do not fit (2 free slots, and no 4-slot block).
        assert_eq!(b.alloc(3), None);
        b.check(&[(0, 4), (8, 8), (4, 2)]).unwrap();
        // Freeing 4..6 merges with its buddy 6..8 into 4..8, whose buddy
        // 0..4 is allocated: stops there.
        b.release(4, 2);
        assert_eq!(sorted(&b), vec![(4, 4)]);
        // Freeing 0..4 merges with 4..8 into 0..8; 8..16 is allocated.
        b.release(0, 4);
        assert_eq!(sorted(&b), vec![(0, 8)]);
        b.release(8, 8);
        assert_eq!(sorted(&b), vec![(0, 16)]);
        assert_eq!(b.free_slots(), 16);
        b.check(&[]).unwrap();
    }

    #[test]
    fn arenas_never_merge_across() {
        // 12 = 8 + 4: blocks 8..10 and 10..12 merge into 8..12, which has
        // no buddy (0..8's second half would end at 16, past the pool).
        let mut b = Buddy::new(12);
        assert_eq!(b.alloc(8), Some((0, 8)));
        assert_eq!(b.alloc(2), Some((8, 2)));
        assert_eq!(b.alloc(2), Some((10, 2)));
        assert_eq!(b.alloc(1), None);
        assert_eq!(b.alloc(8), None); // no 8-block free; the 4-arena never holds one
        b.release(8, 2);
        b.release(10, 2);
        assert_eq!(sorted(&b), vec![(8, 4)]);
        b.release(0, 8);
        assert_eq!(sorted(&b), vec![(0, 8), (8, 4)]);
        b.check(&[]).unwrap();
    }

    #[test]
    fn check_catches_each_broken_invariant() {
        let mut b = Buddy::new(8);
        assert_eq!(b.alloc(4), Some((0, 4)));
        // The allocation left out: the pool is not tiled.
        assert!(b.check(&[]).unwrap_err().contains("tile"));
        // Two free buddies not merged.
        let mut c = b.clone();
        c.free[2].insert(0);
        c.free_slots += 4;
        assert!(c.check(&[]).unwrap_err().contains("buddies"));
        // A wrong running count.
        let mut d = b.clone();
        d.free_slots += 1;
        assert!(d.check(&[(0, 4)]).unwrap_err().contains("free slots"));
        // Overlap: an allocated block over a free one.
        assert!(b.check(&[(0, 4), (4, 4)]).unwrap_err().contains("tile"));
        // A misaligned allocated block.
        assert!(
            b.check(&[(1, 4)])
                .unwrap_err()
                .contains("not a buddy block")
        );
    }

    #[test]
    #[should_panic(expected = "freed twice")]
    fn double_free_panics() {
        let mut b = Buddy::new(8);
        let (o, l) = b.alloc(2).unwrap();
        b.release(o, l);
        // 0..2 has merged back into the free 0..8: freeing 0..8 again.
        b.release(0, 8);
    }
}
