//! The prefix cache: `(content run, position) -> block` (see the module
//! docs of [`paged`](super)), and how a sequence's blocks are named and
//! registered in it.

use memarena_core::FxHashMap;

use super::{Block, NIL, PagedKv, Seq};
use crate::serving::kv::KvRequest;

/// A prefix-cache entry: a block id (below 2^32), or under v1, `FREE_BIT`
/// plus the absolute position of a free-queue record.
pub(super) const FREE_BIT: u64 = 1 << 63;

const ENTRY_NONE: u64 = u64::MAX;

/// What a block's content is a prefix of (see the module docs): its
/// prefix group's shared content, or the request's own content (by salt)
/// for one sample (0 for the prompt and the first sample's output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum RunKey {
    Group(u64),
    Own { salt: u64, sample: u32 },
}

/// The cache entries of one content run, by position (`ENTRY_NONE`: none).
#[derive(Debug, Default)]
pub(super) struct Run {
    pub(super) slots: Vec<u64>,
}

/// The prefix cache: `(run, position) -> block`. Runs get dense ids on
/// first use and keep them (so a sequence can remember its current run);
/// a run's array is dropped when its last block is evicted.
///
/// An eviction leaves the content's entry in its slot (a cache miss that
/// evictions of long-unused content would otherwise pay): the entry is
/// stale from then on, and every read checks that what it names still
/// holds the content ([`holds`]). Only the run's count of live entries
/// changes, kept apart from the slot arrays in one small vector.
#[derive(Debug, Default)]
pub(super) struct PrefixCache {
    pub(super) runs: Vec<Run>,
    /// Live entries per run id.
    pub(super) live: Vec<u32>,
    /// Ids of the runs other than those in `own`.
    pub(super) ids: FxHashMap<RunKey, u32>,
    /// Ids of the runs `Own { salt, sample: 0 }` (a request's prompt and
    /// first sample: the most common runs) by salt below [`DENSE_SALTS`]
    /// (the simulator's salts are request indices), `NIL` for none: one
    /// load instead of a hash probe into a table of every run so far.
    pub(super) own: Vec<u32>,
    /// Live entries in all.
    pub(super) len: usize,
    /// Emptied arrays of dropped runs, reused by new ones.
    pub(super) spare: Vec<Vec<u64>>,
}

/// Whether cache entry `e` at position `pos` of run `id` is live: the
/// block it names is registered with that content, or (v1, `FREE_BIT`)
/// the free-queue record it names (`ring` from `ring_base` on) holds it.
#[inline]
pub(super) fn holds(
    blocks: &[Block],
    ring: &[u64],
    ring_base: u64,
    id: u32,
    pos: u32,
    e: u64,
) -> bool {
    if e & FREE_BIT != 0 {
        let q = e & !FREE_BIT;
        q >= ring_base && ring.get((q - ring_base) as usize) == Some(&rec_of(id, pos))
    } else {
        let blk = &blocks[e as usize];
        blk.run == id && blk.pos == pos
    }
}

/// The v1 free-queue record of cached content `(run, pos)`.
#[inline(always)]
pub(super) fn rec_of(run: u32, pos: u32) -> u64 {
    ((run as u64) << 32) | pos as u64
}

/// Salts below this have their `own` run ids in a vector (see
/// [`PrefixCache::own`]).
pub(super) const DENSE_SALTS: u64 = 1 << 24;

impl PrefixCache {
    /// The id of `key`, if it has one.
    #[inline]
    pub(super) fn id(&self, key: &RunKey) -> Option<u32> {
        match *key {
            RunKey::Own { salt, sample: 0 } if salt < DENSE_SALTS => {
                self.own.get(salt as usize).copied().filter(|&id| id != NIL)
            }
            _ => self.ids.get(key).copied(),
        }
    }

    /// Run ids given out.
    pub(super) fn num_ids(&self) -> usize {
        self.ids.len() + self.own.iter().filter(|&&id| id != NIL).count()
    }

    /// The id of `key`, created if new.
    #[inline]
    pub(super) fn run_id(&mut self, key: RunKey) -> u32 {
        let next = self.runs.len() as u32;
        let id = match key {
            RunKey::Own { salt, sample: 0 } if salt < DENSE_SALTS => {
                let i = salt as usize;
                if self.own.len() <= i {
                    self.own.resize(i + 1, NIL);
                }
                if self.own[i] == NIL {
                    self.own[i] = next;
                }
                self.own[i]
            }
            _ => *self.ids.entry(key).or_insert(next),
        };
        if id == next {
            self.runs.push(Run::default());
            self.live.push(0);
        }
        id
    }

    /// The entry in the slot of position `pos` of run `key`, live or stale.
    #[inline]
    pub(super) fn get(&self, key: RunKey, pos: u32) -> Option<(u32, u64)> {
        let id = self.id(&key)?;
        Some((id, self.get_in(id, pos)?))
    }

    /// The entry in the slot of position `pos` of run `id`, live or stale.
    #[inline]
    pub(super) fn get_in(&self, id: u32, pos: u32) -> Option<u64> {
        match self.runs[id as usize].slots.get(pos as usize) {
            Some(&e) if e != ENTRY_NONE => Some(e),
            _ => None,
        }
    }

    /// Registers block `b` at `pos` of run `id` unless that content is
    /// cached already (the slot's entry is live: `live(entry)`); whether
    /// it was registered.
    #[inline(always)]
    pub(super) fn insert_new(
        &mut self,
        id: u32,
        pos: u32,
        b: u32,
        live: impl FnOnce(u64) -> bool,
    ) -> bool {
        let run = &mut self.runs[id as usize];
        let p = pos as usize;
        if p >= run.slots.len() {
            if run.slots.capacity() == 0
                && let Some(v) = self.spare.pop()
            {
                run.slots = v;
            }
            if p > run.slots.len() {
                run.slots.resize(p, ENTRY_NONE);
            }
            run.slots.push(b as u64);
        } else if run.slots[p] != ENTRY_NONE && live(run.slots[p]) {
            return false;
        } else {
            run.slots[p] = b as u64;
        }
        self.live[id as usize] += 1;
        self.len += 1;
        true
    }

    /// [`insert_new`](Self::insert_new) of blocks `bs` at positions
    /// `pos..` of run `id`, setting the registered blocks' `(run, pos)`;
    /// positions in `skip` are left out. `ring` and `ring_base` are v1's
    /// free queue (see [`holds`]).
    #[inline(always)]
    pub(super) fn insert_range(
        &mut self,
        id: u32,
        pos: u32,
        bs: &[u32],
        blocks: &mut [Block],
        skip: &[u32],
        (ring, ring_base): (&[u64], u64),
    ) {
        let run = &mut self.runs[id as usize];
        let p = pos as usize;
        if p >= run.slots.len() && skip.is_empty() {
            if run.slots.capacity() == 0
                && let Some(v) = self.spare.pop()
            {
                run.slots = v;
            }
            run.slots.resize(p, ENTRY_NONE);
            run.slots.extend(bs.iter().map(|&b| b as u64));
            for (k, &b) in bs.iter().enumerate() {
                let blk = &mut blocks[b as usize];
                blk.run = id;
                blk.pos = pos + k as u32;
            }
            self.live[id as usize] += bs.len() as u32;
            self.len += bs.len();
            return;
        }
        for (k, &b) in bs.iter().enumerate() {
            let at = pos + k as u32;
            if !skip.contains(&at)
                && self.insert_new(id, at, b, |e| holds(blocks, ring, ring_base, id, at, e))
            {
                let blk = &mut blocks[b as usize];
                blk.run = id;
                blk.pos = at;
            }
        }
    }

    /// Re-points the entry at `pos` of run `id` (a block id or a v1 record).
    #[inline(always)]
    pub(super) fn set(&mut self, id: u32, pos: u32, entry: u64) {
        Self::set_in(&mut self.runs, id, pos, entry);
    }

    /// [`set`](Self::set) given the cache's runs.
    #[inline(always)]
    pub(super) fn set_in(runs: &mut [Run], id: u32, pos: u32, entry: u64) {
        let slot = &mut runs[id as usize].slots[pos as usize];
        debug_assert!(*slot != ENTRY_NONE);
        *slot = entry;
    }

    /// Counts out one live entry of run `id`, whose content was just
    /// evicted (its entry stays, stale); drops the run's array when that
    /// was its last.
    #[inline(always)]
    pub(super) fn evict(&mut self, id: u32) {
        let live = &mut self.live[id as usize];
        if *live == 0 {
            no_live_entry(id);
        }
        *live -= 1;
        self.len -= 1;
        if *live == 0 {
            let mut v = std::mem::take(&mut self.runs[id as usize].slots);
            v.clear();
            self.spare.push(v);
        }
    }
}

#[cold]
#[inline(never)]
fn no_live_entry(id: u32) -> ! {
    panic!("eviction from run {id}, which caches nothing")
}

impl PagedKv {
    /// The content run of block `i` of sample `seq` of `req` (see
    /// [`RequestSpec`](crate::serving::RequestSpec)): blocks within the
    /// prompt are the same for every sample; blocks within the prefix group's
    /// shared tokens (and of the first sample or the prompt) are the group's.
    #[inline(always)]
    pub(super) fn run_key(req: &KvRequest, seq: u32, i: u32, bs: u32) -> RunKey {
        let end = (i as u64 + 1) * bs as u64;
        let seq = if end <= req.prompt_tokens as u64 {
            0
        } else {
            seq
        };
        if let Some(g) = req.prefix_group
            && end <= req.prefix_tokens as u64
            && seq == 0
        {
            return RunKey::Group(g);
        }
        RunKey::Own {
            salt: req.salt,
            sample: seq,
        }
    }

    /// Registers the newly full blocks of `seq` (of `req`) in the cache:
    /// all of them, as `seq` has just filled its last block.
    #[inline(always)]
    pub(super) fn hash_full_blocks(
        blocks: &mut [Block],
        cached: &mut PrefixCache,
        (ring, ring_base): (&[u64], u64),
        bs: u32,
        req: &KvRequest,
        seq: &mut Seq,
    ) {
        debug_assert_eq!(seq.tokens, seq.blocks.len() as u32 * bs);
        let full = seq.blocks.len() as u32;
        while seq.hashed < full {
            let i = seq.hashed;
            let id = match seq.run {
                Some((_, id)) if i < seq.run_upto => id,
                _ => Self::enter_run(cached, bs, req, seq, i),
            };
            seq.hashed += 1;
            let b = seq.blocks[i as usize];
            if blocks[b as usize].run == NIL
                && cached.insert_new(id, i, b, |e| holds(blocks, ring, ring_base, id, i, e))
            {
                let blk = &mut blocks[b as usize];
                blk.run = id;
                blk.pos = i;
            }
        }
    }

    /// [`hash_full_blocks`](Self::hash_full_blocks) of `seq` (not one of
    /// the pool's groups).
    pub(super) fn hash_full(&mut self, req: &KvRequest, seq: &mut Seq) {
        Self::hash_full_blocks(
            &mut self.blocks,
            &mut self.cached,
            (self.ring.live(), self.ring_base),
            self.cfg.block_size,
            req,
            seq,
        );
    }

    /// Looks up the run of block `i` of `seq`, and how far it extends: a
    /// run changes only where a block ends past the prompt or past the
    /// group's shared tokens.
    #[inline(never)]
    pub(super) fn enter_run(
        cached: &mut PrefixCache,
        bs: u32,
        req: &KvRequest,
        seq: &mut Seq,
        i: u32,
    ) -> u32 {
        let key = Self::run_key(req, seq.index, i, bs);
        let id = match seq.run {
            Some((k, id)) if k == key => id,
            _ => cached.run_id(key),
        };
        seq.run = Some((key, id));
        let mut upto = u32::MAX;
        for edge in [req.prompt_tokens / bs, req.prefix_tokens / bs] {
            if edge > i {
                upto = upto.min(edge);
            }
        }
        seq.run_upto = upto;
        id
    }

    /// The live cache entry of position `pos` of run `id` (see [`holds`]).
    pub(super) fn live_entry(&self, id: u32, pos: u32) -> Option<u64> {
        let e = self.cached.get_in(id, pos)?;
        holds(&self.blocks, self.ring.live(), self.ring_base, id, pos, e).then_some(e)
    }
}
