//! Writing tokens: growing a request's sequences (forks, copy-on-write of
//! shared partial blocks, new blocks) and registering the blocks they fill
//! in the prefix cache.

use super::cache::PrefixCache;
use super::{Group, NIL, PagedKv, PrefixCaching, Seq, block_in_use};
use crate::serving::kv::KvRequest;

/// A write of new blocks (see `PagedKv::write_new_blocks`): blocks
/// `start..` of sample `seq_index` of `req`, the full ones `..full_end`, in
/// the runs `runs` (ids that exist already, else `NIL`).
pub(super) struct NewBlocks<'a> {
    pub(super) req: &'a KvRequest,
    pub(super) seq_index: u32,
    pub(super) bs: u32,
    pub(super) start: u32,
    pub(super) full_end: u32,
    pub(super) runs: [u32; 3],
}

impl NewBlocks<'_> {
    /// Whether evicting the cached content `(run, pos)` at this write's
    /// `j`-th allocation frees the slot of one of its own full blocks
    /// allocated before (which then stays uncached).
    #[inline(always)]
    pub(super) fn evicts_own(&self, cache: &PrefixCache, run: u32, pos: u32, j: u32) -> bool {
        pos.wrapping_sub(self.start) < j.min(self.full_end - self.start)
            && self.runs.contains(&run)
            && cache.id(&PagedKv::run_key(self.req, self.seq_index, pos, self.bs)) == Some(run)
    }
}

impl PagedKv {
    /// Blocks needed to grow every sequence of `g` to `tokens` (counting
    /// copy-on-write of shared partial blocks exactly).
    pub(super) fn blocks_needed(&mut self, g: &Group, tokens: u32) -> u32 {
        let bs = self.cfg.block_size;
        let mut need = 0;
        self.cow_pending.clear();
        for s in g.seqs.iter() {
            if tokens <= s.tokens {
                continue;
            }
            need += self.blocks_for(tokens) - s.blocks.len() as u32;
            if s.tokens % bs != 0 {
                let last = *s.blocks.last().expect("a partial block exists");
                let r = match self.cow_pending.iter_mut().find(|(b, _)| *b == last) {
                    Some((_, r)) => r,
                    None => {
                        self.cow_pending
                            .push((last, self.blocks[last as usize].ref_cnt));
                        &mut self.cow_pending.last_mut().expect("just pushed").1
                    }
                };
                if *r > 1 {
                    need += 1;
                    *r -= 1;
                }
            }
        }
        need
    }

    /// Writes `seq` (of `req`) up to `target` tokens (blocks are
    /// available): first the partial last block (copied first if shared),
    /// then whole new blocks. Each block is registered in the cache as soon
    /// as it is full, before the next allocation can evict anything.
    pub(super) fn write_tokens(&mut self, req: &KvRequest, seq: &mut Seq, target: u32) {
        let bs = self.cfg.block_size;
        let caching = self.cfg.prefix_caching != PrefixCaching::Off;
        if seq.tokens >= target {
            return;
        }
        let off = seq.tokens % bs;
        if off != 0 {
            let mut last = *seq.blocks.last().expect("partial block");
            if self.blocks[last as usize].ref_cnt > 1 {
                // Copy-on-write: this sequence gets its own copy.
                let nb = self.alloc_block();
                let fill = self.blocks[last as usize].fill;
                self.blocks[nb as usize].fill = fill;
                self.used_fill += fill as u64;
                self.release_block(last);
                *seq.blocks.last_mut().expect("partial block") = nb;
                self.counters.cow_copies += 1;
                self.extra_bytes += 2 * fill as u64 * self.bytes_per_token;
                last = nb;
            }
            let k = (target - seq.tokens).min(bs - off);
            seq.tokens += k;
            self.blocks[last as usize].fill += k;
            self.used_fill += k as u64;
            if caching && seq.tokens == seq.blocks.len() as u32 * bs {
                self.hash_full(req, seq);
            }
        }
        if seq.tokens >= target {
            return;
        }
        seq.blocks
            .reserve(self.blocks_for(target) as usize - seq.blocks.len());
        self.used_fill += (target - seq.tokens) as u64;
        if caching && self.batch_writes {
            self.write_new_blocks(req, seq, target);
            return;
        }
        while seq.tokens < target {
            let b = self.alloc_block();
            seq.blocks.push(b);
            let k = (target - seq.tokens).min(bs);
            seq.tokens += k;
            self.blocks[b as usize].fill = k;
            if caching && k == bs {
                self.hash_full(req, seq);
            }
        }
    }

    /// Prefix caching: writes `seq` (of `req`, its blocks all full and
    /// registered) up to `target` tokens in new blocks (available), in one
    /// pass per step: takes the blocks (evicting what they cached, in the
    /// order of one-at-a-time allocation), then registers the full ones run
    /// by run. The result is the one of allocating and registering the
    /// blocks one at a time (`alloc_block`, then `hash_full_blocks`): a
    /// registration finds its slot occupied only when the content is cached
    /// in a free block, and one-at-a-time it would find it so also when a
    /// later allocation of this write evicts that content; those blocks
    /// (`skip`) stay uncached.
    #[inline(never)]
    pub(super) fn write_new_blocks(&mut self, req: &KvRequest, seq: &mut Seq, target: u32) {
        let bs = self.cfg.block_size;
        let start = seq.blocks.len() as u32;
        debug_assert_eq!(seq.tokens, start * bs, "new blocks after a partial one");
        debug_assert_eq!(
            seq.hashed, start,
            "new blocks before the full ones are hashed"
        );
        let n = (target - seq.tokens).div_ceil(bs);
        let full_end = start + (target - seq.tokens) / bs;
        let mut w = NewBlocks {
            req,
            seq_index: seq.index,
            bs,
            start,
            full_end,
            runs: [NIL; 3],
        };
        // The ids (where they exist) of the runs the full blocks register
        // into: the run changes only at the prompt's and the group's edges.
        if start < full_end {
            let edges = [req.prompt_tokens / bs, req.prefix_tokens / bs];
            let firsts = std::iter::once(start)
                .chain(edges.into_iter().filter(|&e| e > start && e < full_end));
            for (k, i) in firsts.enumerate() {
                if let Some(id) = self.cached.id(&Self::run_key(req, seq.index, i, bs)) {
                    w.runs[k] = id;
                }
            }
        }
        let mut skip = std::mem::take(&mut self.skip);
        skip.clear();
        let evicted = match self.cfg.prefix_caching {
            PrefixCaching::V1 => self.v1_take_blocks(n, &w, &mut skip, &mut seq.blocks),
            PrefixCaching::V0 => self.v0_take_blocks(n, &w, &mut skip, &mut seq.blocks),
            PrefixCaching::Off => unreachable!("a cached write without prefix caching"),
        };
        self.num_free -= n;
        self.free_hashed -= evicted;
        self.counters.cache_evictions += evicted as u64;
        for &b in &seq.blocks[start as usize..] {
            let blk = &mut self.blocks[b as usize];
            if blk.ref_cnt != 0 {
                block_in_use(b);
            }
            debug_assert_eq!(blk.run, NIL, "a taken block {b} holds cached content");
            blk.ref_cnt = 1;
            blk.fill = bs;
        }
        if full_end < start + n {
            let last = *seq.blocks.last().expect("a new block");
            self.blocks[last as usize].fill = target - (start + n - 1) * bs;
        }
        seq.tokens = target;
        // Register the full ones, one run at a time.
        let mut i = start;
        while i < full_end {
            let id = match seq.run {
                Some((_, id)) if i < seq.run_upto => id,
                _ => Self::enter_run(&mut self.cached, bs, req, seq, i),
            };
            let end = seq.run_upto.min(full_end);
            self.cached.insert_range(
                id,
                i,
                &seq.blocks[i as usize..end as usize],
                &mut self.blocks,
                &skip,
                (self.ring.live(), self.ring_base),
            );
            i = end;
        }
        seq.hashed = seq.hashed.max(full_end);
        self.skip = skip;
    }

    /// [`KvManager::grow`] of a single sequence whose blocks are all full by
    /// one token: what [`grow_slow`](Self::grow_slow) does in that case,
    /// without taking the group out of its slot.
    #[inline(never)]
    pub(super) fn grow_into_new_block(&mut self, rid: u32, tokens: u32) -> bool {
        if self.num_free == 0 {
            return false;
        }
        let b = self.alloc_block();
        self.blocks[b as usize].fill = 1;
        self.used_fill += 1;
        let Some(Some(g)) = self.groups.get_mut(rid as usize) else {
            unreachable!("request {rid} grew without a group");
        };
        let s = &mut g.seqs.first;
        s.blocks.push(b);
        s.tokens = tokens;
        true
    }

    /// [`KvManager::grow`] beyond its fast path: several sequences, a fork,
    /// a new block or a copy-on-write.
    #[inline(never)]
    pub(super) fn grow_slow(&mut self, rid: u32, tokens: u32, n_seqs: u32) -> bool {
        let bs = self.cfg.block_size;
        let caching = self.cfg.prefix_caching != PrefixCaching::Off;
        if let Some(Some(g)) = self.groups.get_mut(rid as usize)
            && g.seqs.len() as u32 >= n_seqs
        {
            let blocks = &mut self.blocks;
            let fast = g.seqs.iter().all(|s| {
                tokens <= s.tokens
                    || (tokens <= s.blocks.len() as u32 * bs
                        && !(caching && tokens.is_multiple_of(bs))
                        && blocks[*s.blocks.last().expect("partial block") as usize].ref_cnt == 1)
            });
            if fast {
                for s in g.seqs.iter_mut() {
                    if tokens > s.tokens {
                        let last = *s.blocks.last().expect("partial block") as usize;
                        blocks[last].fill += tokens - s.tokens;
                        self.used_fill += (tokens - s.tokens) as u64;
                        s.tokens = tokens;
                    }
                }
                return true;
            }
        }
        let Some(mut g) = self.take_group(rid) else {
            return false;
        };
        if (g.seqs.len() as u32) < n_seqs {
            // Fork: every new sequence shares the first one's blocks.
            let base = g.seqs.first.clone();
            for j in g.seqs.len() as u32..n_seqs {
                for &b in &base.blocks {
                    self.blocks[b as usize].ref_cnt += 1;
                }
                g.seqs.forks.push(Seq {
                    index: j,
                    // The sample's own run starts after the prompt.
                    run_upto: 0,
                    ..base.clone()
                });
            }
        }
        let need = self.blocks_needed(&g, tokens);
        if need > self.num_free {
            self.put_group(rid, g);
            return false;
        }
        let Group { req, seqs } = &mut g;
        for s in seqs.iter_mut() {
            self.write_tokens(req, s, tokens);
        }
        self.put_group(rid, g);
        true
    }
}
