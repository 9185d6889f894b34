//! vLLM v1's free queue ([`PrefixCaching::V1`](super::PrefixCaching::V1)):
//! the free blocks' cached contents in eviction order (see the module docs
//! of [`paged`](super)), and how blocks enter and leave it.

use super::cache::{FREE_BIT, PrefixCache, rec_of};
use super::{Group, NIL, NewBlocks, PagedKv, load_ahead, no_free_block};

/// v1 free-queue records: a free block without cached content, a record
/// taken by a hit, or `(run << 32) | pos` of cached content.
pub(super) const REC_UNCACHED: u64 = u64::MAX;
/// A free-queue record taken by a hit (a tombstone).
pub(super) const REC_TOMB: u64 = u64::MAX - 1;

/// `(run, pos)` of a free-queue record of cached content.
#[inline]
pub(super) fn rec_split(rec: u64) -> (u32, u32) {
    ((rec >> 32) as u32, rec as u32)
}

/// A first-in first-out queue of `u64` in one vector: popping advances
/// `head`; the popped prefix is dropped when it is at least half the vector
/// and the vector is full (amortised O(1), no wrap-around arithmetic).
#[derive(Debug, Default)]
pub(super) struct Fifo {
    pub(super) buf: Vec<u64>,
    pub(super) head: usize,
}

impl Fifo {
    pub(super) fn new(buf: Vec<u64>) -> Fifo {
        Fifo { buf, head: 0 }
    }

    #[inline(always)]
    pub(super) fn pop_front(&mut self) -> Option<u64> {
        let r = *self.buf.get(self.head)?;
        self.head += 1;
        Some(r)
    }

    #[inline(always)]
    pub(super) fn push_back(&mut self, x: u64) {
        if self.buf.len() == self.buf.capacity() && self.head >= self.buf.len() / 2 {
            self.drop_popped();
        }
        self.buf.push(x);
    }

    #[cold]
    #[inline(never)]
    pub(super) fn drop_popped(&mut self) {
        self.buf.drain(..self.head);
        self.head = 0;
    }

    #[inline(always)]
    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Room for `n` more pushes; like [`push_back`](Self::push_back), drops
    /// the popped prefix rather than growing the vector while that prefix
    /// is at least half of it (so the vector stays within twice the queue).
    pub(super) fn reserve(&mut self, n: usize) {
        if self.buf.capacity() - self.buf.len() < n && self.head >= self.buf.len() / 2 {
            self.drop_popped();
        }
        self.buf.reserve(n);
    }

    #[inline(always)]
    pub(super) fn slot(&mut self, i: usize) -> &mut u64 {
        &mut self.buf[self.head + i]
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, u64> {
        self.live().iter()
    }

    /// The queued records, front first.
    #[inline(always)]
    pub(super) fn live(&self) -> &[u64] {
        &self.buf[self.head..]
    }
}

impl PagedKv {
    /// v1: takes the free queue's head record, evicting its content.
    #[inline(always)]
    pub(super) fn v1_pop_record(&mut self) {
        loop {
            let Some(rec) = self.ring.pop_front() else {
                no_free_block();
            };
            self.ring_base += 1;
            if rec == REC_TOMB {
                self.tombs -= 1;
                continue;
            }
            if rec != REC_UNCACHED {
                self.free_hashed -= 1;
                self.counters.cache_evictions += 1;
                self.cached.evict(rec_split(rec).0);
            }
            return;
        }
    }

    /// v1: drops the tombstones from the free queue (when they outnumber
    /// the records), renumbering the cache's references to it.
    #[inline(never)]
    pub(super) fn v1_compact(&mut self) {
        let old = std::mem::take(&mut self.ring);
        self.ring.reserve(old.len() - self.tombs);
        for &rec in old.iter() {
            if rec == REC_TOMB {
                continue;
            }
            if rec != REC_UNCACHED {
                let (run, pos) = rec_split(rec);
                let q = self.ring_base + self.ring.len() as u64;
                self.cached.set(run, pos, FREE_BIT | q);
            }
            self.ring.push_back(rec);
        }
        self.tombs = 0;
    }

    /// v1: [`release_block`](Self::release_block) of every block of `g`,
    /// in reverse order (sequences last first, each from its tail): what
    /// [`drop_ref`](Self::drop_ref) and [`v1_enqueue`](Self::v1_enqueue)
    /// do per block, with the pool's fields held in locals and its counts
    /// added once per sequence.
    #[inline(never)]
    pub(super) fn v1_free(&mut self, g: &Group) {
        let Self {
            blocks,
            stack,
            ring,
            ring_base,
            cached,
            num_free,
            free_hashed,
            used_fill,
            ..
        } = self;
        for s in g.seqs.iter().rev() {
            let n = s.blocks.len();
            ring.reserve(n);
            load_ahead(blocks, s.blocks.iter().copied());
            // The records and ids are written into room made at the ends
            // (then cut to what was freed), and the vectors' buffers held
            // as slices: no stores to the vectors' lengths in the loop
            // that the compiler would have to reload the fields after.
            let (rec_at, id_at) = (ring.buf.len(), stack.len());
            ring.buf.resize(rec_at + n, REC_UNCACHED);
            stack.resize(id_at + n, NIL);
            let recs = &mut ring.buf[rec_at..];
            let ids = &mut stack[id_at..];
            let (pool, runs) = (&mut blocks[..], &mut cached.runs[..]);
            let q0 = *ring_base + (rec_at - ring.head) as u64;
            let (mut freed, mut hashed, mut fill) = (0usize, 0u32, 0u64);
            for &b in s.blocks.iter().rev() {
                let blk = &mut pool[b as usize];
                if !blk.unref(b) {
                    continue;
                }
                fill += blk.fill as u64;
                recs[freed] = if blk.run != NIL {
                    let (run, pos) = (blk.run, blk.pos);
                    blk.run = NIL;
                    hashed += 1;
                    PrefixCache::set_in(runs, run, pos, FREE_BIT | (q0 + freed as u64));
                    rec_of(run, pos)
                } else {
                    REC_UNCACHED
                };
                ids[freed] = b;
                freed += 1;
            }
            ring.buf.truncate(rec_at + freed);
            stack.truncate(id_at + freed);
            *num_free += freed as u32;
            *free_hashed += hashed;
            *used_fill -= fill;
        }
    }

    /// v1: the freed block `b` joins the free queue. Its content (if
    /// `hashed`) moves to the queue's record and the block id becomes
    /// anonymous.
    #[inline(always)]
    pub(super) fn v1_enqueue(&mut self, b: u32, hashed: bool) {
        let rec = if hashed {
            let blk = &mut self.blocks[b as usize];
            let (run, pos) = (blk.run, blk.pos);
            blk.run = NIL;
            let q = self.ring_base + self.ring.len() as u64;
            self.cached.set(run, pos, FREE_BIT | q);
            rec_of(run, pos)
        } else {
            REC_UNCACHED
        };
        self.ring.push_back(rec);
        self.stack.push(b);
    }

    /// v1 [`write_new_blocks`](Self::write_new_blocks): evicts the free
    /// queue's head records of the `n` blocks taken, then takes `n` free
    /// ids (in the order of `n` pops) into `out`; the evictions.
    #[inline(always)]
    pub(super) fn v1_take_blocks(
        &mut self,
        n: u32,
        w: &NewBlocks,
        skip: &mut Vec<u32>,
        out: &mut Vec<u32>,
    ) -> u32 {
        let (mut k, mut tombs, mut evicted) = (0usize, 0usize, 0u32);
        let recs = self.ring.live();
        let cache = &mut self.cached;
        let mut j = 0;
        while j < n {
            let Some(&rec) = recs.get(k) else {
                no_free_block();
            };
            k += 1;
            if rec == REC_TOMB {
                tombs += 1;
                continue;
            }
            if rec != REC_UNCACHED {
                let (run, pos) = rec_split(rec);
                evicted += 1;
                cache.evict(run);
                if w.evicts_own(cache, run, pos, j) {
                    skip.push(pos);
                }
            }
            j += 1;
        }
        self.ring.head += k;
        self.ring_base += k as u64;
        self.tombs -= tombs;
        let len = self.stack.len();
        if len < n as usize {
            no_free_block();
        }
        out.extend(self.stack[len - n as usize..].iter().rev());
        self.stack.truncate(len - n as usize);
        evicted
    }
}
