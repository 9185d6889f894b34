//! The paged pool's invariants (those listed on [`PagedKv`]), recomputed
//! from scratch: [`KvManager::check_invariants`](crate::serving::kv::KvManager::check_invariants).

use memarena_core::error::Result;

use super::cache::FREE_BIT;
use super::prefix_v1::{REC_TOMB, REC_UNCACHED, rec_split};
use super::{NIL, PagedKv, PrefixCaching};
use crate::serving::kv::invariant;

/// The component named by the errors.
const C: &str = "paged";

impl PagedKv {
    /// Every invariant, in turn: the tables, the free stack, the blocks,
    /// the prefix cache, the free structures, and the counts kept.
    pub(super) fn check_all(&self) -> Result<()> {
        self.evictor.check().map_err(|e| invariant(C, e))?;
        let refs = self.check_tables()?;
        self.check_stack()?;
        let (free, blocks_hashed, fill) = self.check_blocks(&refs)?;
        self.check_cache()?;
        let (in_structs, records_hashed) = match self.cfg.prefix_caching {
            PrefixCaching::Off => (self.stack.len(), 0),
            PrefixCaching::V0 => (self.check_v0_free()?, 0),
            PrefixCaching::V1 => self.check_v1_free()?,
        };
        let free_hashed = blocks_hashed + records_hashed;
        if free != self.num_free || in_structs != free as usize || free_hashed != self.free_hashed {
            return Err(invariant(
                C,
                format!(
                    "free count {} vs {free} recounted, {in_structs} in free structures, {} vs {free_hashed} cached",
                    self.num_free, self.free_hashed
                ),
            ));
        }
        if fill != self.used_fill {
            return Err(invariant(
                C,
                format!("used fill {} vs {fill} recounted", self.used_fill),
            ));
        }
        let n = self.blocks.len() as u32;
        if (n - self.num_free) + self.num_free != n {
            return Err(invariant(C, "free + used != total".into()));
        }
        Ok(())
    }

    /// The block tables: `ceil(tokens / block_size)` blocks each, none
    /// twice in a table, partial blocks shared by no two requests, and each
    /// block's fill what its tables hold in it. Returns the table entries
    /// naming each block.
    fn check_tables(&self) -> Result<Vec<u32>> {
        let bs = self.cfg.block_size;
        let n = self.blocks.len();
        let mut refs = vec![0u32; n];
        let mut owner: Vec<u32> = vec![NIL; n];
        for (rid, g) in self.groups.iter().enumerate() {
            let Some(g) = g else { continue };
            for s in g.seqs.iter() {
                if s.blocks.len() as u32 != self.blocks_for(s.tokens) {
                    return Err(invariant(
                        C,
                        format!(
                            "request {rid}: {} blocks for {} tokens",
                            s.blocks.len(),
                            s.tokens
                        ),
                    ));
                }
                let mut seen = rustc_hash::FxHashSet::default();
                for (i, &b) in s.blocks.iter().enumerate() {
                    if !seen.insert(b) {
                        return Err(invariant(
                            C,
                            format!("request {rid}: block {b} twice in one table"),
                        ));
                    }
                    refs[b as usize] += 1;
                    let full = (i as u32 + 1) * bs <= s.tokens;
                    if owner[b as usize] != NIL && owner[b as usize] != rid as u32 && !full {
                        return Err(invariant(
                            C,
                            format!(
                                "partial block {b} shared by requests {} and {rid}",
                                owner[b as usize]
                            ),
                        ));
                    }
                    owner[b as usize] = rid as u32;
                    let expect = if full { bs } else { s.tokens - i as u32 * bs };
                    if self.blocks[b as usize].fill != expect {
                        return Err(invariant(
                            C,
                            format!(
                                "block {b}: fill {} but request {rid} holds {expect} tokens in it",
                                self.blocks[b as usize].fill
                            ),
                        ));
                    }
                }
            }
        }
        Ok(refs)
    }

    /// The free stack names free blocks, each once.
    fn check_stack(&self) -> Result<()> {
        let mut on_stack = vec![false; self.blocks.len()];
        for &b in &self.stack {
            if std::mem::replace(&mut on_stack[b as usize], true)
                || self.blocks[b as usize].ref_cnt != 0
            {
                return Err(invariant(
                    C,
                    format!("block {b} on the free stack twice or in use"),
                ));
            }
        }
        Ok(())
    }

    /// Each block's ref count is its table entries (`refs`), no free v1
    /// block holds content, and every registered block is where the cache
    /// names it. Returns the free blocks, the free ones registered, and the
    /// used blocks' fill.
    fn check_blocks(&self, refs: &[u32]) -> Result<(u32, u32, u64)> {
        let (mut free, mut free_hashed, mut fill) = (0u32, 0u32, 0u64);
        for (b, blk) in self.blocks.iter().enumerate() {
            if blk.ref_cnt != refs[b] {
                return Err(invariant(
                    C,
                    format!(
                        "block {b}: ref count {} but {} table entries",
                        blk.ref_cnt, refs[b]
                    ),
                ));
            }
            if blk.ref_cnt == 0 {
                free += 1;
                free_hashed += (blk.run != NIL) as u32;
                if self.cfg.prefix_caching == PrefixCaching::V1 && blk.run != NIL {
                    return Err(invariant(
                        C,
                        format!("free v1 block {b} holds cached content"),
                    ));
                }
            } else {
                fill += blk.fill as u64;
            }
            if blk.run != NIL && self.live_entry(blk.run, blk.pos) != Some(b as u64) {
                return Err(invariant(
                    C,
                    format!("block {b} is registered where the cache does not name it"),
                ));
            }
        }
        Ok((free, free_hashed, fill))
    }

    /// The prefix cache's counts: live entries per run (the others are
    /// stale: evicted content) and in all, no array kept for a run that
    /// caches nothing, one id per run. (The blocks and free-queue records
    /// check that each names its entry.)
    fn check_cache(&self) -> Result<()> {
        let mut entries = 0;
        for (id, run) in self.cached.runs.iter().enumerate() {
            let live = (0..run.slots.len() as u32)
                .filter(|&pos| self.live_entry(id as u32, pos).is_some())
                .count();
            if live != self.cached.live[id] as usize {
                return Err(invariant(
                    C,
                    format!(
                        "run {id}: {} live entries counted {live}",
                        self.cached.live[id]
                    ),
                ));
            }
            if live == 0 && run.slots.capacity() > 0 {
                return Err(invariant(
                    C,
                    format!("run {id} caches nothing but keeps its array"),
                ));
            }
            entries += live;
        }
        if entries != self.cached.len
            || self.cached.num_ids() != self.cached.runs.len()
            || self.cached.live.len() != self.cached.runs.len()
        {
            return Err(invariant(
                C,
                format!(
                    "cache holds {entries} blocks (counted {}), {} run ids for {} runs",
                    self.cached.len,
                    self.cached.num_ids(),
                    self.cached.runs.len()
                ),
            ));
        }
        Ok(())
    }

    /// v0: the evictor holds exactly the free cached blocks, each under its
    /// key, and the stack the free uncached ones. Returns the blocks in
    /// both.
    fn check_v0_free(&self) -> Result<usize> {
        for &k in self.evictor.iter() {
            let b = k.block();
            let blk = &self.blocks[b as usize];
            if blk.ref_cnt != 0 || blk.run == NIL || k != self.v0_key(b) {
                return Err(invariant(
                    C,
                    format!("v0 evictor entry {:?} names block {b} = {blk:?}", k.parts()),
                ));
            }
        }
        if let Some(b) = self.stack.iter().find(|&&b| {
            let blk = &self.blocks[b as usize];
            blk.ref_cnt != 0 || blk.run != NIL
        }) {
            return Err(invariant(
                C,
                format!("v0 free stack holds block {b}, in use or cached"),
            ));
        }
        Ok(self.stack.len() + self.evictor.len())
    }

    /// v1: one free-queue record per free id, every cached record named by
    /// the cache, the tombstones counted. Returns the records and those
    /// holding cached content.
    fn check_v1_free(&self) -> Result<(usize, u32)> {
        let (mut live, mut tombs, mut hashed) = (0, 0, 0);
        for (k, &rec) in self.ring.iter().enumerate() {
            if rec == REC_TOMB {
                tombs += 1;
                continue;
            }
            live += 1;
            if rec != REC_UNCACHED {
                hashed += 1;
                let (run, pos) = rec_split(rec);
                let q = self.ring_base + k as u64;
                if self.cached.runs.get(run as usize).is_none()
                    || self.live_entry(run, pos) != Some(FREE_BIT | q)
                {
                    return Err(invariant(
                        C,
                        format!("free-queue record {q} is not named by the cache"),
                    ));
                }
            }
        }
        if tombs != self.tombs || self.stack.len() != live {
            return Err(invariant(
                C,
                format!(
                    "{live} free-queue records for {} free ids, {tombs} tombstones vs {}",
                    self.stack.len(),
                    self.tombs
                ),
            ));
        }
        Ok((live, hashed))
    }
}
