//! vLLM v0's evictor ([`PrefixCaching::V0`](super::PrefixCaching::V0)):
//! never-used blocks first, then the least recently released cached block,
//! the deepest on ties (see the module docs of [`paged`](super)).

use super::{Group, NIL, NewBlocks, PagedKv, load_ahead, no_free_block};
use crate::serving::kv::lru::LruKey;

impl PagedKv {
    /// v0: the LRU key of the free cached block `b` (vLLM v0 evicts the
    /// least recently released block, among those the one holding the most
    /// hashed tokens: the deepest, at cache position `pos`).
    pub(super) fn v0_key(&self, b: u32) -> LruKey {
        LruKey::new(
            self.last_access[b as usize].to_bits(),
            !self.blocks[b as usize].pos,
            b,
        )
    }

    /// v0: a never-used block first, else the LRU cached one.
    #[inline(never)]
    pub(super) fn v0_pop(&mut self) -> Option<u32> {
        self.stack.pop().or_else(|| self.evictor.pop_first())
    }

    /// v0: records that the cached block `b` is released now; its LRU key.
    #[inline(always)]
    pub(super) fn v0_released_key(&mut self, b: u32) -> LruKey {
        self.last_access[b as usize] = self.now;
        LruKey::new(self.now.to_bits(), !self.blocks[b as usize].pos, b)
    }

    /// v0: a freed block goes to the stack, or to the evictor if cached.
    #[inline(never)]
    pub(super) fn v0_release(&mut self, b: u32, hashed: bool) {
        if hashed {
            let k = self.v0_released_key(b);
            self.evictor.insert(k);
        } else {
            self.stack.push(b);
        }
    }

    /// v0: [`release_block`](Self::release_block) of every block of `g`,
    /// in reverse order (sequences last first, each from its tail); each
    /// sequence's cached blocks enter the evictor as one sorted run (same
    /// time, positions descending).
    /// (What [`drop_ref`](Self::drop_ref) and
    /// [`v0_released_key`](Self::v0_released_key) do per block, with the
    /// pool's fields in locals and its counts added once per sequence.)
    #[inline(never)]
    pub(super) fn v0_free(&mut self, g: &Group) {
        let Self {
            blocks,
            stack,
            evictor,
            last_access,
            num_free,
            free_hashed,
            used_fill,
            v0_keys: keys,
            now,
            ..
        } = self;
        let (pool, released) = (&mut blocks[..], &mut last_access[..]);
        let time_bits = now.to_bits();
        for s in g.seqs.iter().rev() {
            keys.clear();
            load_ahead(pool, s.blocks.iter().copied());
            let (mut freed, mut fill) = (0u32, 0u64);
            for &b in s.blocks.iter().rev() {
                let blk = &mut pool[b as usize];
                if !blk.unref(b) {
                    continue;
                }
                freed += 1;
                fill += blk.fill as u64;
                if blk.run != NIL {
                    released[b as usize] = *now;
                    keys.push(LruKey::new(time_bits, !blk.pos, b));
                } else {
                    stack.push(b);
                }
            }
            *num_free += freed;
            *free_hashed += keys.len() as u32;
            *used_fill -= fill;
            evictor.insert_all(keys);
        }
    }

    /// v0 [`write_new_blocks`](Self::write_new_blocks): takes `n` blocks
    /// into `out`, never-used ones first, then the least recently used
    /// cached ones (evicting their content); the evictions.
    #[inline(always)]
    pub(super) fn v0_take_blocks(
        &mut self,
        n: u32,
        w: &NewBlocks,
        skip: &mut Vec<u32>,
        out: &mut Vec<u32>,
    ) -> u32 {
        let len = self.stack.len();
        let from_stack = len.min(n as usize);
        out.extend(self.stack[len - from_stack..].iter().rev());
        self.stack.truncate(len - from_stack);
        // The evicted blocks are the least recently used, far out of the
        // caches: start loading them all before the first is needed.
        load_ahead(&self.blocks, self.evictor.peek(n as usize - from_stack));
        for j in from_stack as u32..n {
            let Some(b) = self.evictor.pop_first() else {
                no_free_block();
            };
            let blk = &mut self.blocks[b as usize];
            // Only cached blocks enter the evictor.
            let (run, pos) = (blk.run, blk.pos);
            blk.run = NIL;
            self.cached.evict(run);
            if w.evicts_own(&self.cached, run, pos, j) {
                skip.push(pos);
            }
            out.push(b);
        }
        n - from_stack as u32
    }
}
