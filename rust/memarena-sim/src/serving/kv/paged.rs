//! vLLM's paged KV cache: a pool of fixed-size blocks, a block table per
//! sequence, reference counts, copy-on-write and prefix caching.
//!
//! Semantics follow vLLM's public code (read, not copied):
//! - v1: `vllm/v1/core/block_pool.py` (`BlockPool`: `get_new_blocks` pops
//!   the free queue's head and evicts its cached hash; `touch` takes a hit
//!   block off the free queue; `free_blocks` appends blocks whose ref count
//!   reaches 0 to the tail), `vllm/v1/core/kv_cache_utils.py`
//!   (`hash_block_tokens`: a block's hash chains its parent's hash and its
//!   own tokens; `FreeKVCacheBlockQueue`: an O(1) doubly linked LRU list),
//!   `vllm/v1/core/kv_cache_manager.py` (`get_computed_blocks`: only full
//!   blocks hit, and at most `num_tokens - 1` tokens, so the last token is
//!   always recomputed; `free` releases a request's blocks in reverse order,
//!   so its tail blocks are evicted first).
//! - v0: `vllm/core/block_manager.py`, `vllm/core/evictor.py` (LRU evictor:
//!   evict the least recently accessed cached block, ties to the one with the
//!   most hashed tokens, i.e. the deepest; never-used blocks are taken
//!   before any cached block is evicted) and `vllm/core/scheduler.py`
//!   (admission watermark: a request is admitted only if
//!   `free - needed >= watermark * num_blocks`; copy-on-write when a
//!   sequence appends to a block shared with a parallel sample).
//!
//! Simplifications: token contents are synthetic (see
//! [`RequestSpec`](crate::serving::RequestSpec)): a sequence's blocks are a
//! prefix of its prefix group's shared content followed by the request's
//! own content (per parallel sample beyond the prompt). vLLM's chained hash
//! identifies a block by its whole prefix; here that prefix is named
//! exactly by the block's *content run* (the group, or the request's salt
//! and sample) and its position in the sequence, and the cache maps
//! `(run, position)` to the block (a dense array per run, so that a
//! request's consecutive blocks are registered in consecutive slots; an
//! eviction leaves its entry in place, stale, rather than visit a slot
//! long out of the CPU caches). When a full block's content is already
//! cached by another block, the new block stays uncached (vLLM v1 keeps
//! both; lookups find one either way).
//!
//! Representation of v1's free queue: block ids are interchangeable, so a
//! free block's id is anonymous (free ids are reused last-in first-out,
//! which keeps the blocks in use few and hot in the CPU caches) and the
//! queue is a ring of records of the free blocks' *contents* in eviction
//! order. A hit on free cached content turns its record into a tombstone
//! (vLLM's `touch` unlinking it from the middle of the queue) and gives it
//! any free id; the head's record is evicted when a block is taken. Every
//! count the simulator reports (free, cached-free, evictions, hits) is the
//! same as with vLLM's linked list of block objects.

use memarena_core::FxHashMap;
use memarena_core::error::{Error, Result};

use super::lru::{LruEvictor, LruKey};
use super::{KvBreakdown, KvCounters, KvManager, KvRequest, invariant};

/// Prefix-caching style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixCaching {
    /// No caching: freed blocks go straight back to a free stack.
    Off,
    /// vLLM v0: never-used blocks first, then LRU eviction of cached blocks
    /// by last access, deepest first on ties.
    V0,
    /// vLLM v1: one free queue in eviction order; freed blocks appended in
    /// reverse table order.
    V1,
}

/// Parameters of [`PagedKv`].
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagedConfig {
    /// Tokens per block (vLLM: 16).
    pub block_size: u32,
    /// Admission watermark as a fraction of all blocks (vLLM v0: 0.01).
    pub watermark: f64,
    /// Prefix caching.
    pub prefix_caching: PrefixCaching,
}

impl Default for PagedConfig {
    fn default() -> Self {
        PagedConfig {
            block_size: 16,
            watermark: 0.01,
            prefix_caching: PrefixCaching::Off,
        }
    }
}

const NIL: u32 = u32::MAX;

#[cold]
#[inline(never)]
fn no_free_block() -> ! {
    panic!("alloc_block called with no free block: callers check num_free first")
}

/// Loads the metadata of blocks `ids` before a loop over them needs it.
/// The loads are independent, so their cache misses overlap; in the loop
/// they would wait behind its branches. (A load, not a prefetch
/// instruction, so that this crate stays free of `unsafe`.)
#[inline(always)]
fn load_ahead(blocks: &[Block], ids: impl IntoIterator<Item = u32>) {
    let mut acc = 0u32;
    for b in ids {
        acc ^= blocks[b as usize].ref_cnt;
    }
    std::hint::black_box(acc);
}

#[cold]
#[inline(never)]
fn block_in_use(b: u32) -> ! {
    panic!("block {b} taken from the free pool while in use")
}

#[cold]
#[inline(never)]
fn negative_ref_count(b: u32) -> ! {
    panic!("ref count of block {b} would go negative")
}

/// One block's metadata: 16 bytes, aligned, so that every access to a block
/// touches one cache line. A block is free exactly when its `ref_cnt` is 0.
#[derive(Clone, Debug)]
#[repr(C, align(16))]
struct Block {
    ref_cnt: u32,
    /// Tokens written into the block.
    fill: u32,
    /// Content run of the block when it is full and registered in the
    /// prefix cache (at position `pos`); `NIL` otherwise (always `NIL` for a
    /// free block under v1, whose cached content lives in the free queue).
    run: u32,
    pos: u32,
}

impl Block {
    /// Drops one reference to this block (`b`); whether that was its last
    /// (the block is free now).
    #[inline(always)]
    fn unref(&mut self, b: u32) -> bool {
        if self.ref_cnt == 0 {
            negative_ref_count(b);
        }
        self.ref_cnt -= 1;
        self.ref_cnt == 0
    }
}

/// A prefix-cache entry: a block id (below 2^32), or under v1, `FREE_BIT`
/// plus the absolute position of a free-queue record.
const FREE_BIT: u64 = 1 << 63;
const ENTRY_NONE: u64 = u64::MAX;
/// v1 free-queue records: a free block without cached content, a record
/// taken by a hit, or `(run << 32) | pos` of cached content.
const REC_UNCACHED: u64 = u64::MAX;
const REC_TOMB: u64 = u64::MAX - 1;

#[inline]
fn rec_split(rec: u64) -> (u32, u32) {
    ((rec >> 32) as u32, rec as u32)
}

/// A first-in first-out queue of `u64` in one vector: popping advances
/// `head`; the popped prefix is dropped when it is at least half the vector
/// and the vector is full (amortised O(1), no wrap-around arithmetic).
#[derive(Debug, Default)]
struct Fifo {
    buf: Vec<u64>,
    head: usize,
}

impl Fifo {
    fn new(buf: Vec<u64>) -> Fifo {
        Fifo { buf, head: 0 }
    }

    #[inline(always)]
    fn pop_front(&mut self) -> Option<u64> {
        let r = *self.buf.get(self.head)?;
        self.head += 1;
        Some(r)
    }

    #[inline(always)]
    fn push_back(&mut self, x: u64) {
        if self.buf.len() == self.buf.capacity() && self.head >= self.buf.len() / 2 {
            self.drop_popped();
        }
        self.buf.push(x);
    }

    #[cold]
    #[inline(never)]
    fn drop_popped(&mut self) {
        self.buf.drain(..self.head);
        self.head = 0;
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Room for `n` more pushes; like [`push_back`](Self::push_back), drops
    /// the popped prefix rather than growing the vector while that prefix
    /// is at least half of it (so the vector stays within twice the queue).
    fn reserve(&mut self, n: usize) {
        if self.buf.capacity() - self.buf.len() < n && self.head >= self.buf.len() / 2 {
            self.drop_popped();
        }
        self.buf.reserve(n);
    }

    #[inline(always)]
    fn slot(&mut self, i: usize) -> &mut u64 {
        &mut self.buf[self.head + i]
    }

    fn iter(&self) -> std::slice::Iter<'_, u64> {
        self.live().iter()
    }

    /// The queued records, front first.
    #[inline(always)]
    fn live(&self) -> &[u64] {
        &self.buf[self.head..]
    }
}

/// What a block's content is a prefix of (see the module docs): its
/// prefix group's shared content, or the request's own content (by salt)
/// for one sample (0 for the prompt and the first sample's output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum RunKey {
    Group(u64),
    Own { salt: u64, sample: u32 },
}

/// The cache entries of one content run, by position (`ENTRY_NONE`: none).
#[derive(Debug, Default)]
struct Run {
    slots: Vec<u64>,
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
struct PrefixCache {
    runs: Vec<Run>,
    /// Live entries per run id.
    live: Vec<u32>,
    /// Ids of the runs other than those in `own`.
    ids: FxHashMap<RunKey, u32>,
    /// Ids of the runs `Own { salt, sample: 0 }` (a request's prompt and
    /// first sample: the most common runs) by salt below [`DENSE_SALTS`]
    /// (the simulator's salts are request indices), `NIL` for none: one
    /// load instead of a hash probe into a table of every run so far.
    own: Vec<u32>,
    /// Live entries in all.
    len: usize,
    /// Emptied arrays of dropped runs, reused by new ones.
    spare: Vec<Vec<u64>>,
}

/// Whether cache entry `e` at position `pos` of run `id` is live: the
/// block it names is registered with that content, or (v1, `FREE_BIT`)
/// the free-queue record it names (`ring` from `ring_base` on) holds it.
#[inline]
fn holds(blocks: &[Block], ring: &[u64], ring_base: u64, id: u32, pos: u32, e: u64) -> bool {
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
fn rec_of(run: u32, pos: u32) -> u64 {
    ((run as u64) << 32) | pos as u64
}

/// Salts below this have their `own` run ids in a vector (see
/// [`PrefixCache::own`]).
const DENSE_SALTS: u64 = 1 << 24;

impl PrefixCache {
    /// The id of `key`, if it has one.
    #[inline]
    fn id(&self, key: &RunKey) -> Option<u32> {
        match *key {
            RunKey::Own { salt, sample: 0 } if salt < DENSE_SALTS => {
                self.own.get(salt as usize).copied().filter(|&id| id != NIL)
            }
            _ => self.ids.get(key).copied(),
        }
    }

    /// Run ids given out.
    fn num_ids(&self) -> usize {
        self.ids.len() + self.own.iter().filter(|&&id| id != NIL).count()
    }

    /// The id of `key`, created if new.
    #[inline]
    fn run_id(&mut self, key: RunKey) -> u32 {
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
    fn get(&self, key: RunKey, pos: u32) -> Option<(u32, u64)> {
        let id = self.id(&key)?;
        Some((id, self.get_in(id, pos)?))
    }

    /// The entry in the slot of position `pos` of run `id`, live or stale.
    #[inline]
    fn get_in(&self, id: u32, pos: u32) -> Option<u64> {
        match self.runs[id as usize].slots.get(pos as usize) {
            Some(&e) if e != ENTRY_NONE => Some(e),
            _ => None,
        }
    }

    /// Registers block `b` at `pos` of run `id` unless that content is
    /// cached already (the slot's entry is live: `live(entry)`); whether
    /// it was registered.
    #[inline(always)]
    fn insert_new(&mut self, id: u32, pos: u32, b: u32, live: impl FnOnce(u64) -> bool) -> bool {
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
    fn insert_range(
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
    fn set(&mut self, id: u32, pos: u32, entry: u64) {
        Self::set_in(&mut self.runs, id, pos, entry);
    }

    /// [`set`](Self::set) given the cache's runs.
    #[inline(always)]
    fn set_in(runs: &mut [Run], id: u32, pos: u32, entry: u64) {
        let slot = &mut runs[id as usize].slots[pos as usize];
        debug_assert!(*slot != ENTRY_NONE);
        *slot = entry;
    }

    /// Counts out one live entry of run `id`, whose content was just
    /// evicted (its entry stays, stale); drops the run's array when that
    /// was its last.
    #[inline(always)]
    fn evict(&mut self, id: u32) {
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

#[derive(Clone, Debug, Default)]
struct Seq {
    blocks: Vec<u32>,
    tokens: u32,
    /// Index of this sequence in its group (parallel sampling).
    index: u32,
    /// How many leading blocks went through the prefix cache (registered,
    /// or found cached already), and the run of the last one.
    hashed: u32,
    run: Option<(RunKey, u32)>,
    /// Blocks below this index (from `hashed` on) belong to `run` too (0:
    /// look the run up again).
    run_upto: u32,
}

#[derive(Clone, Debug)]
struct Group {
    req: KvRequest,
    seqs: Seqs,
}

/// A group's sequences: the first one inline (most groups have only it, and
/// the decode fast path then reaches its table without another load), the
/// forked samples after it.
#[derive(Clone, Debug)]
struct Seqs {
    first: Seq,
    forks: Vec<Seq>,
}

impl Seqs {
    fn new(first: Seq) -> Seqs {
        Seqs {
            first,
            forks: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        1 + self.forks.len()
    }

    fn get(&self, i: usize) -> Option<&Seq> {
        match i {
            0 => Some(&self.first),
            _ => self.forks.get(i - 1),
        }
    }

    /// The only sequence, if there are no forks.
    #[inline(always)]
    fn only_mut(&mut self) -> Option<&mut Seq> {
        self.forks.is_empty().then_some(&mut self.first)
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = &Seq> {
        std::iter::once(&self.first).chain(&self.forks)
    }

    fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut Seq> {
        std::iter::once(&mut self.first).chain(&mut self.forks)
    }
}

/// The paged block pool.
///
/// Invariants (checked by `check_invariants`):
/// - every block is either free (`ref_cnt == 0`, in exactly one free
///   structure) or used (`ref_cnt > 0`, in none): `free + used = total`;
/// - a block's `ref_cnt` equals the number of block-table entries naming it,
///   and no table names a block twice;
/// - blocks shared across requests are full (only prefix-cache hits are
///   shared across requests); each table holds `ceil(tokens / block_size)`
///   blocks;
/// - the prefix cache and the blocks' `(run, pos)` agree;
/// - the running sum of used blocks' fills equals its recomputation.
#[derive(Debug)]
pub struct PagedKv {
    cfg: PagedConfig,
    bytes_per_token: u64,
    blocks: Vec<Block>,
    /// Free blocks (Off; v1: every free block, anonymous), or never-used
    /// ones (v0), popped last-in first-out.
    stack: Vec<u32>,
    /// v1's free queue in eviction order: one record per free block (what
    /// it caches), plus tombstones of records taken by hits.
    ring: Fifo,
    /// Absolute position of `ring`'s front, and its tombstones.
    ring_base: u64,
    tombs: usize,
    evictor: LruEvictor,
    /// v0: each block's last release time (its LRU key with its depth,
    /// which is its cache position `pos`); empty otherwise.
    last_access: Vec<f64>,
    num_free: u32,
    free_hashed: u32,
    watermark_blocks: u32,
    cached: PrefixCache,
    groups: Vec<Option<Group>>,
    used_fill: u64,
    now: f64,
    /// Cache entries found by the last lookup.
    scratch: Vec<u64>,
    scratch_rid: u32,
    cow_pending: Vec<(u32, u32)>,
    /// Positions a write leaves uncached (see `write_new_blocks`).
    skip: Vec<u32>,
    /// v0: scratch for the evictor keys of a freed sequence.
    v0_keys: Vec<LruKey>,
    /// Whether prefix-cached writes of new blocks take them in one pass
    /// (false in tests only: one block at a time, the reference).
    batch_writes: bool,
    extra_bytes: u64,
    counters: KvCounters,
}

/// A write of new blocks (see `PagedKv::write_new_blocks`): blocks
/// `start..` of sample `seq_index` of `req`, the full ones `..full_end`, in
/// the runs `runs` (ids that exist already, else `NIL`).
struct NewBlocks<'a> {
    req: &'a KvRequest,
    seq_index: u32,
    bs: u32,
    start: u32,
    full_end: u32,
    runs: [u32; 3],
}

impl NewBlocks<'_> {
    /// Whether evicting the cached content `(run, pos)` at this write's
    /// `j`-th allocation frees the slot of one of its own full blocks
    /// allocated before (which then stays uncached).
    #[inline(always)]
    fn evicts_own(&self, cache: &PrefixCache, run: u32, pos: u32, j: u32) -> bool {
        pos.wrapping_sub(self.start) < j.min(self.full_end - self.start)
            && self.runs.contains(&run)
            && cache.id(&PagedKv::run_key(self.req, self.seq_index, pos, self.bs)) == Some(run)
    }
}

impl PagedKv {
    /// A pool of `num_blocks` blocks of `cfg.block_size` tokens of
    /// `bytes_per_token` bytes.
    pub fn new(num_blocks: u32, bytes_per_token: u64, cfg: PagedConfig) -> Result<PagedKv> {
        if cfg.block_size == 0 {
            return Err(Error::invalid("kv.block_size", "must be >= 1"));
        }
        if !(0.0..1.0).contains(&cfg.watermark) {
            return Err(Error::invalid(
                "kv.watermark",
                format!("must be in [0, 1), got {}", cfg.watermark),
            ));
        }
        if num_blocks == 0 || num_blocks == NIL {
            return Err(Error::invalid(
                "kv.num_blocks",
                format!("must be in 1..{NIL}, got {num_blocks}"),
            ));
        }
        let blocks = (0..num_blocks)
            .map(|_| Block {
                ref_cnt: 0,
                fill: 0,
                run: NIL,
                pos: 0,
            })
            .collect();
        let stack = (0..num_blocks).rev().collect();
        let v1 = cfg.prefix_caching == PrefixCaching::V1;
        let v0 = cfg.prefix_caching == PrefixCaching::V0;
        Ok(PagedKv {
            watermark_blocks: (cfg.watermark * num_blocks as f64) as u32,
            cfg,
            bytes_per_token,
            blocks,
            stack,
            ring: Fifo::new(if v1 {
                vec![REC_UNCACHED; num_blocks as usize]
            } else {
                Vec::new()
            }),
            ring_base: 0,
            tombs: 0,
            evictor: LruEvictor::default(),
            last_access: if v0 {
                vec![0.0; num_blocks as usize]
            } else {
                Vec::new()
            },
            num_free: num_blocks,
            free_hashed: 0,
            cached: PrefixCache::default(),
            groups: Vec::new(),
            used_fill: 0,
            now: 0.0,
            scratch: Vec::new(),
            scratch_rid: NIL,
            cow_pending: Vec::new(),
            skip: Vec::new(),
            v0_keys: Vec::new(),
            batch_writes: true,
            extra_bytes: 0,
            counters: KvCounters::default(),
        })
    }

    /// Blocks in the pool.
    pub fn num_blocks(&self) -> u32 {
        self.blocks.len() as u32
    }

    /// Free blocks (cached ones included).
    pub fn num_free(&self) -> u32 {
        self.num_free
    }

    /// Tokens per block.
    pub fn block_size(&self) -> u32 {
        self.cfg.block_size
    }

    /// The block table of sequence `seq` of `rid` (tests and debugging).
    pub fn block_table(&self, rid: u32, seq: usize) -> Option<&[u32]> {
        self.group(rid)
            .and_then(|g| g.seqs.get(seq))
            .map(|s| s.blocks.as_slice())
    }

    /// The reference count of block `b`.
    pub fn ref_count(&self, b: u32) -> u32 {
        self.blocks[b as usize].ref_cnt
    }

    fn group(&self, rid: u32) -> Option<&Group> {
        self.groups.get(rid as usize).and_then(|g| g.as_ref())
    }

    #[inline]
    fn blocks_for(&self, tokens: u32) -> u32 {
        tokens.div_ceil(self.cfg.block_size)
    }

    // ---- free structures -------------------------------------------------

    /// v0: the LRU key of the free cached block `b` (vLLM v0 evicts the
    /// least recently released block, among those the one holding the most
    /// hashed tokens: the deepest, at cache position `pos`).
    fn v0_key(&self, b: u32) -> LruKey {
        LruKey::new(
            self.last_access[b as usize].to_bits(),
            !self.blocks[b as usize].pos,
            b,
        )
    }

    /// v1: takes the free queue's head record, evicting its content.
    #[inline(always)]
    fn v1_pop_record(&mut self) {
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
    fn v1_compact(&mut self) {
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

    /// Takes a free block for new content (evicting its cached hash).
    #[inline(always)]
    fn alloc_block(&mut self) -> u32 {
        let b = match self.cfg.prefix_caching {
            PrefixCaching::Off => self.stack.pop(),
            PrefixCaching::V1 => {
                self.v1_pop_record();
                self.stack.pop()
            }
            PrefixCaching::V0 => self.v0_pop(),
        };
        let Some(b) = b else {
            no_free_block();
        };
        self.num_free -= 1;
        let blk = &mut self.blocks[b as usize];
        if blk.ref_cnt != 0 {
            block_in_use(b);
        }
        if blk.run != NIL {
            let run = blk.run;
            blk.run = NIL;
            self.free_hashed -= 1;
            self.counters.cache_evictions += 1;
            self.cached.evict(run);
        }
        let blk = &mut self.blocks[b as usize];
        blk.ref_cnt = 1;
        blk.fill = 0;
        b
    }

    /// v0: a never-used block first, else the LRU cached one.
    #[inline(never)]
    fn v0_pop(&mut self) -> Option<u32> {
        self.stack.pop().or_else(|| self.evictor.pop_first())
    }

    /// v0: records that the cached block `b` is released now; its LRU key.
    #[inline(always)]
    fn v0_released_key(&mut self, b: u32) -> LruKey {
        self.last_access[b as usize] = self.now;
        LruKey::new(self.now.to_bits(), !self.blocks[b as usize].pos, b)
    }

    /// v0: a freed block goes to the stack, or to the evictor if cached.
    #[inline(never)]
    fn v0_release(&mut self, b: u32, hashed: bool) {
        if hashed {
            let k = self.v0_released_key(b);
            self.evictor.insert(k);
        } else {
            self.stack.push(b);
        }
    }

    /// Drops one reference to `b`. When that was the last, counts the block
    /// free and returns whether it has a hash (it stays cached); the caller
    /// puts it in its free structure.
    #[inline(always)]
    fn drop_ref(&mut self, b: u32) -> Option<bool> {
        let blk = &mut self.blocks[b as usize];
        if !blk.unref(b) {
            return None;
        }
        self.used_fill -= blk.fill as u64;
        let hashed = blk.run != NIL;
        self.num_free += 1;
        if hashed {
            self.free_hashed += 1;
        }
        Some(hashed)
    }

    /// Drops one reference to `b`; a block reaching 0 becomes free (and stays
    /// cached if it has a hash).
    #[inline(always)]
    fn release_block(&mut self, b: u32) {
        let Some(hashed) = self.drop_ref(b) else {
            return;
        };
        match self.cfg.prefix_caching {
            PrefixCaching::Off => self.stack.push(b),
            PrefixCaching::V1 => self.v1_enqueue(b, hashed),
            PrefixCaching::V0 => self.v0_release(b, hashed),
        }
    }

    /// v1: [`release_block`](Self::release_block) of every block of `g`,
    /// in reverse order (sequences last first, each from its tail): what
    /// [`drop_ref`](Self::drop_ref) and [`v1_enqueue`](Self::v1_enqueue)
    /// do per block, with the pool's fields held in locals and its counts
    /// added once per sequence.
    #[inline(never)]
    fn v1_free(&mut self, g: &Group) {
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

    /// v0: [`release_block`](Self::release_block) of every block of `g`,
    /// in reverse order (sequences last first, each from its tail); each
    /// sequence's cached blocks enter the evictor as one sorted run (same
    /// time, positions descending).
    /// (What [`drop_ref`](Self::drop_ref) and
    /// [`v0_released_key`](Self::v0_released_key) do per block, with the
    /// pool's fields in locals and its counts added once per sequence.)
    #[inline(never)]
    fn v0_free(&mut self, g: &Group) {
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

    /// v1: the freed block `b` joins the free queue. Its content (if
    /// `hashed`) moves to the queue's record and the block id becomes
    /// anonymous.
    #[inline(always)]
    fn v1_enqueue(&mut self, b: u32, hashed: bool) {
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

    /// Takes a reference to the cached block of entry `e` found by a
    /// lookup; its id.
    fn touch(&mut self, e: u64) -> u32 {
        if e & FREE_BIT != 0 {
            // v1: free cached content; its record leaves the free queue
            // and any free block takes it (cached blocks are full).
            let q = e & !FREE_BIT;
            let rec = std::mem::replace(self.ring.slot((q - self.ring_base) as usize), REC_TOMB);
            assert!(
                rec != REC_TOMB && rec != REC_UNCACHED,
                "prefix cache names a free-queue record without content"
            );
            self.tombs += 1;
            let (run, pos) = rec_split(rec);
            let Some(b) = self.stack.pop() else {
                no_free_block();
            };
            self.num_free -= 1;
            self.free_hashed -= 1;
            let bs = self.cfg.block_size;
            let blk = &mut self.blocks[b as usize];
            if blk.ref_cnt != 0 {
                block_in_use(b);
            }
            *blk = Block {
                ref_cnt: 1,
                fill: bs,
                run,
                pos,
            };
            self.used_fill += bs as u64;
            self.cached.set(run, pos, b as u64);
            return b;
        }
        let b = e as u32;
        if self.blocks[b as usize].ref_cnt == 0 {
            match self.cfg.prefix_caching {
                PrefixCaching::V1 => unreachable!("the v1 cache names free content by record"),
                PrefixCaching::V0 => {
                    let removed = self.evictor.remove(self.v0_key(b));
                    assert!(removed, "cached free block {b} missing from the v0 evictor");
                }
                PrefixCaching::Off => unreachable!("no cache hits without prefix caching"),
            }
            self.num_free -= 1;
            self.free_hashed -= 1;
            self.used_fill += self.blocks[b as usize].fill as u64;
        }
        self.blocks[b as usize].ref_cnt += 1;
        b
    }

    // ---- content hashes --------------------------------------------------

    /// The content run of block `i` of sample `seq` of `req` (see
    /// [`RequestSpec`](crate::serving::RequestSpec)): blocks within the
    /// prompt are the same for every sample; blocks within the prefix group's
    /// shared tokens (and of the first sample or the prompt) are the group's.
    #[inline(always)]
    fn run_key(req: &KvRequest, seq: u32, i: u32, bs: u32) -> RunKey {
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
    fn hash_full_blocks(
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
    fn hash_full(&mut self, req: &KvRequest, seq: &mut Seq) {
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
    fn enter_run(cached: &mut PrefixCache, bs: u32, req: &KvRequest, seq: &mut Seq, i: u32) -> u32 {
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

    // ---- growth ----------------------------------------------------------

    /// Blocks needed to grow every sequence of `g` to `tokens` (counting
    /// copy-on-write of shared partial blocks exactly).
    fn blocks_needed(&mut self, g: &Group, tokens: u32) -> u32 {
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
    fn write_tokens(&mut self, req: &KvRequest, seq: &mut Seq, target: u32) {
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
    fn write_new_blocks(&mut self, req: &KvRequest, seq: &mut Seq, target: u32) {
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

    /// v1 [`write_new_blocks`](Self::write_new_blocks): evicts the free
    /// queue's head records of the `n` blocks taken, then takes `n` free
    /// ids (in the order of `n` pops) into `out`; the evictions.
    #[inline(always)]
    fn v1_take_blocks(
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

    /// v0 [`write_new_blocks`](Self::write_new_blocks): takes `n` blocks
    /// into `out`, never-used ones first, then the least recently used
    /// cached ones (evicting their content); the evictions.
    #[inline(always)]
    fn v0_take_blocks(
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

    /// [`KvManager::grow`] of a single sequence whose blocks are all full by
    /// one token: what [`grow_slow`](Self::grow_slow) does in that case,
    /// without taking the group out of its slot.
    #[inline(never)]
    fn grow_into_new_block(&mut self, rid: u32, tokens: u32) -> bool {
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
    fn grow_slow(&mut self, rid: u32, tokens: u32, n_seqs: u32) -> bool {
        let bs = self.cfg.block_size;
        let caching = self.cfg.prefix_caching != PrefixCaching::Off;
        if let Some(Some(g)) = self.groups.get_mut(rid as usize)
            && g.seqs.len() as u32 >= n_seqs
        {
            let blocks = &mut self.blocks;
            let fast = g.seqs.iter().all(|s| {
                tokens <= s.tokens
                    || (tokens <= s.blocks.len() as u32 * bs
                        && !(caching && tokens % bs == 0)
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

    /// Whether registering the content of `seq`'s partial last block (when
    /// a grow fills it) can wait until the request's next grow without any
    /// other call seeing the difference: the content is the request's own
    /// (its salt's run, not its prefix group's, so only this request's
    /// lookup could find it, and it looks up only after its `free`, which
    /// the scheduler precedes with the skipped grows), and it is not
    /// cached already (so its registration succeeds whenever it is made,
    /// as no one else can cache it meanwhile).
    fn private_fill(&self, req: &KvRequest, seq: &Seq) -> bool {
        let i = seq.blocks.len() as u32 - 1;
        let key = Self::run_key(req, seq.index, i, self.cfg.block_size);
        if !matches!(key, RunKey::Own { .. }) {
            return false;
        }
        let id = match seq.run {
            Some((k, id)) if k == key => id,
            _ => match self.cached.id(&key) {
                Some(id) => id,
                None => return true,
            },
        };
        self.live_entry(id, i).is_none()
    }

    /// The live cache entry of position `pos` of run `id` (see [`holds`]).
    fn live_entry(&self, id: u32, pos: u32) -> Option<u64> {
        let e = self.cached.get_in(id, pos)?;
        holds(&self.blocks, self.ring.live(), self.ring_base, id, pos, e).then_some(e)
    }

    fn take_group(&mut self, rid: u32) -> Option<Group> {
        self.groups.get_mut(rid as usize).and_then(|g| g.take())
    }

    fn put_group(&mut self, rid: u32, g: Group) {
        let i = rid as usize;
        if self.groups.len() <= i {
            self.groups.resize_with(i + 1, || None);
        }
        self.groups[i] = Some(g);
    }
}

impl KvManager for PagedKv {
    fn name(&self) -> &'static str {
        "paged"
    }

    fn pool_bytes(&self) -> u64 {
        self.blocks.len() as u64 * self.cfg.block_size as u64 * self.bytes_per_token
    }

    fn can_ever_fit(&self, req: &KvRequest) -> bool {
        let shared = req.prompt_tokens.min(req.max_tokens) / self.cfg.block_size;
        let per_seq = self.blocks_for(req.max_tokens) - shared;
        let need = shared as u64 + req.n_parallel as u64 * per_seq as u64;
        need + self.watermark_blocks as u64 <= self.blocks.len() as u64
    }

    fn set_time(&mut self, now_s: f64) {
        self.now = now_s;
    }

    fn lookup(&mut self, rid: u32, req: &KvRequest, num_tokens: u32) -> u32 {
        self.scratch.clear();
        self.scratch_rid = rid;
        if self.cfg.prefix_caching == PrefixCaching::Off || num_tokens == 0 {
            return 0;
        }
        let bs = self.cfg.block_size;
        let max_blocks = (num_tokens - 1) / bs;
        for i in 0..max_blocks {
            match self.cached.get(Self::run_key(req, 0, i, bs), i) {
                Some((id, e))
                    if holds(&self.blocks, self.ring.live(), self.ring_base, id, i, e) =>
                {
                    self.scratch.push(e)
                }
                _ => break,
            }
        }
        self.scratch.len() as u32 * bs
    }

    fn admit(&mut self, rid: u32, req: &KvRequest, hit_tokens: u32, tokens: u32) -> bool {
        assert!(self.group(rid).is_none(), "request {rid} admitted twice");
        let bs = self.cfg.block_size;
        let hits = if hit_tokens > 0 {
            assert!(
                self.scratch_rid == rid && self.scratch.len() as u32 * bs == hit_tokens,
                "admit({rid}) with {hit_tokens} hit tokens does not follow its lookup"
            );
            self.scratch.len() as u32
        } else {
            0
        };
        let tokens = tokens.max(hit_tokens);
        let evictable = self.scratch[..hits as usize]
            .iter()
            .filter(|&&e| e & FREE_BIT != 0 || self.blocks[e as usize].ref_cnt == 0)
            .count() as u64;
        let need = (self.blocks_for(tokens) - hits) as u64 + evictable;
        if need + self.watermark_blocks as u64 > self.num_free as u64 {
            return false;
        }
        let mut seq = Seq {
            // Room for the request's peak, so that decoding never reallocates.
            blocks: Vec::with_capacity(self.blocks_for(tokens.max(req.max_tokens)) as usize),
            tokens: hit_tokens,
            hashed: hits,
            ..Seq::default()
        };
        let scratch = std::mem::take(&mut self.scratch);
        for &e in &scratch[..hits as usize] {
            let b = self.touch(e);
            seq.blocks.push(b);
        }
        self.scratch = scratch;
        self.scratch.clear();
        self.scratch_rid = NIL;
        // (Not while the scratch still names free-queue positions.)
        if self.tombs > 64 && self.tombs > self.ring.len() / 2 {
            self.v1_compact();
        }
        self.write_tokens(req, &mut seq, tokens);
        self.put_group(
            rid,
            Group {
                req: req.clone(),
                seqs: Seqs::new(seq),
            },
        );
        true
    }

    #[inline]
    fn grow(&mut self, rid: u32, tokens: u32, n_seqs: u32) -> bool {
        // Fast path (most decode steps): one sequence writes into its own
        // partially filled last block.
        let bs = self.cfg.block_size;
        if let Some(Some(g)) = self.groups.get_mut(rid as usize)
            && n_seqs <= 1
            && let Some(s) = g.seqs.only_mut()
        {
            if tokens <= s.tokens {
                return true;
            }
            let cap = s.blocks.len() as u32 * bs;
            if tokens <= cap {
                // The last block is partial (`s.tokens < tokens <= cap`),
                // so it is this sequence's own: only full blocks are
                // shared across requests, and a partial one within a
                // group only after a fork, which makes several sequences.
                let last = *s.blocks.last().expect("partial block") as usize;
                let blk = &mut self.blocks[last];
                debug_assert_eq!(
                    blk.ref_cnt, 1,
                    "a lone sequence's partial block {last} is shared"
                );
                blk.fill += tokens - s.tokens;
                self.used_fill += (tokens - s.tokens) as u64;
                s.tokens = tokens;
                // `tokens` is past the previous block, so it fills
                // this one exactly when it reaches its end.
                if tokens == cap && self.cfg.prefix_caching != PrefixCaching::Off {
                    Self::hash_full_blocks(
                        &mut self.blocks,
                        &mut self.cached,
                        (self.ring.live(), self.ring_base),
                        bs,
                        &g.req,
                        s,
                    );
                }
                return true;
            } else if bs > 1 && tokens == s.tokens + 1 && s.tokens == s.blocks.len() as u32 * bs {
                // The next decode step after a full block: one new block
                // with one token (not full, so nothing to register).
                return self.grow_into_new_block(rid, tokens);
            }
        }
        self.grow_slow(rid, tokens, n_seqs)
    }

    fn quiet_decode_tokens(&self, rid: u32, n_seqs: u32) -> u32 {
        // `grow`'s counting paths: every sequence writes into its own
        // (`ref_cnt == 1`) partial last block. With prefix caching, filling
        // a block registers it, so the step that fills it is quiet only
        // where no other request can find that content (see
        // `private_fill`).
        let Some(g) = self.group(rid) else {
            return 0;
        };
        if (g.seqs.len() as u32) < n_seqs {
            return 0;
        }
        let caching = self.cfg.prefix_caching != PrefixCaching::Off;
        let mut quiet = u32::MAX;
        for s in g.seqs.iter() {
            let Some(&last) = s.blocks.last() else {
                return 0;
            };
            if self.blocks[last as usize].ref_cnt != 1 {
                return 0;
            }
            let room = s.blocks.len() as u32 * self.cfg.block_size - s.tokens;
            quiet = quiet.min(if caching && !self.private_fill(&g.req, s) {
                room.saturating_sub(1)
            } else {
                room
            });
        }
        quiet
    }

    fn free(&mut self, rid: u32) {
        let Some(g) = self.take_group(rid) else {
            return;
        };
        match self.cfg.prefix_caching {
            PrefixCaching::V1 => return self.v1_free(&g),
            PrefixCaching::V0 => return self.v0_free(&g),
            PrefixCaching::Off => {}
        }
        for s in g.seqs.iter().rev() {
            for &b in s.blocks.iter().rev() {
                self.release_block(b);
            }
        }
    }

    fn resident_bytes(&self, rid: u32) -> u64 {
        let Some(g) = self.group(rid) else {
            return 0;
        };
        let base = &g.seqs.first.blocks;
        let mut n = base.len() as u64;
        for s in &g.seqs.forks {
            n += s
                .blocks
                .iter()
                .enumerate()
                .filter(|(i, b)| base.get(*i) != Some(b))
                .count() as u64;
        }
        n * self.cfg.block_size as u64 * self.bytes_per_token
    }

    fn swap_in(&mut self, rid: u32, req: &KvRequest, tokens: u32, n_seqs: u32) -> bool {
        // Rebuilt as after copy-on-write: the prompt's full blocks shared,
        // everything else private to each sequence.
        let bs = self.cfg.block_size;
        let shared = if n_seqs > 1 {
            req.prompt_tokens.min(tokens) / bs
        } else {
            0
        };
        let per_seq = self.blocks_for(tokens) - shared;
        let need = shared as u64 + n_seqs as u64 * per_seq as u64;
        if need + self.watermark_blocks as u64 > self.num_free as u64 {
            return false;
        }
        self.scratch_rid = NIL;
        let ok = self.admit(rid, req, 0, shared * bs) && self.grow(rid, tokens, n_seqs);
        assert!(ok, "swap-in of {rid} failed after its capacity check");
        true
    }

    fn breakdown(&self, _pending: Option<&KvRequest>) -> KvBreakdown {
        let bs = self.cfg.block_size as u64;
        let used_blocks = (self.blocks.len() as u32 - self.num_free) as u64;
        KvBreakdown {
            token_states_bytes: self.used_fill * self.bytes_per_token,
            reserved_bytes: 0,
            internal_frag_bytes: (used_blocks * bs - self.used_fill) * self.bytes_per_token,
            external_frag_bytes: 0,
            free_bytes: self.num_free as u64 * bs * self.bytes_per_token,
            cached_free_bytes: self.free_hashed as u64 * bs * self.bytes_per_token,
        }
    }

    fn take_step_overhead(&mut self) -> (u64, f64) {
        (std::mem::take(&mut self.extra_bytes), 0.0)
    }

    fn counters(&self) -> KvCounters {
        self.counters
    }

    fn check_invariants(&self) -> Result<()> {
        let c = "paged";
        self.evictor.check().map_err(|e| invariant(c, e))?;
        let bs = self.cfg.block_size;
        let n = self.blocks.len();
        let mut refs = vec![0u32; n];
        let mut owner: Vec<u32> = vec![NIL; n];
        let mut fill = 0u64;
        for (rid, g) in self.groups.iter().enumerate() {
            let Some(g) = g else { continue };
            for s in g.seqs.iter() {
                if s.blocks.len() as u32 != self.blocks_for(s.tokens) {
                    return Err(invariant(
                        c,
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
                            c,
                            format!("request {rid}: block {b} twice in one table"),
                        ));
                    }
                    refs[b as usize] += 1;
                    let full = (i as u32 + 1) * bs <= s.tokens;
                    if owner[b as usize] != NIL && owner[b as usize] != rid as u32 && !full {
                        return Err(invariant(
                            c,
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
                            c,
                            format!(
                                "block {b}: fill {} but request {rid} holds {expect} tokens in it",
                                self.blocks[b as usize].fill
                            ),
                        ));
                    }
                }
            }
        }
        let mut free = 0u32;
        let mut free_hashed = 0u32;
        let mut on_stack = vec![false; n];
        for &b in &self.stack {
            if std::mem::replace(&mut on_stack[b as usize], true)
                || self.blocks[b as usize].ref_cnt != 0
            {
                return Err(invariant(
                    c,
                    format!("block {b} on the free stack twice or in use"),
                ));
            }
        }
        for (b, blk) in self.blocks.iter().enumerate() {
            if blk.ref_cnt != refs[b] {
                return Err(invariant(
                    c,
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
                        c,
                        format!("free v1 block {b} holds cached content"),
                    ));
                }
            } else {
                fill += blk.fill as u64;
            }
            if blk.run != NIL && self.live_entry(blk.run, blk.pos) != Some(b as u64) {
                return Err(invariant(
                    c,
                    format!("block {b} is registered where the cache does not name it"),
                ));
            }
        }
        // Live entries (the others are stale: evicted content), per run;
        // the blocks and records above name theirs.
        let mut entries = 0;
        for (id, run) in self.cached.runs.iter().enumerate() {
            let live = (0..run.slots.len() as u32)
                .filter(|&pos| self.live_entry(id as u32, pos).is_some())
                .count();
            if live != self.cached.live[id] as usize {
                return Err(invariant(
                    c,
                    format!(
                        "run {id}: {} live entries counted {live}",
                        self.cached.live[id]
                    ),
                ));
            }
            if live == 0 && run.slots.capacity() > 0 {
                return Err(invariant(
                    c,
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
                c,
                format!(
                    "cache holds {entries} blocks (counted {}), {} run ids for {} runs",
                    self.cached.len,
                    self.cached.num_ids(),
                    self.cached.runs.len()
                ),
            ));
        }
        let in_structs = match self.cfg.prefix_caching {
            PrefixCaching::Off => self.stack.len(),
            PrefixCaching::V0 => {
                // The evictor holds exactly the free cached blocks, each
                // under its key; the stack the free uncached ones.
                for &k in self.evictor.iter() {
                    let b = k.block();
                    let blk = &self.blocks[b as usize];
                    if blk.ref_cnt != 0 || blk.run == NIL || k != self.v0_key(b) {
                        return Err(invariant(
                            c,
                            format!("v0 evictor entry {:?} names block {b} = {blk:?}", k.parts()),
                        ));
                    }
                }
                if let Some(b) = self.stack.iter().find(|&&b| {
                    let blk = &self.blocks[b as usize];
                    blk.ref_cnt != 0 || blk.run != NIL
                }) {
                    return Err(invariant(
                        c,
                        format!("v0 free stack holds block {b}, in use or cached"),
                    ));
                }
                self.stack.len() + self.evictor.len()
            }
            PrefixCaching::V1 => {
                let mut live = 0;
                let mut tombs = 0;
                for (k, &rec) in self.ring.iter().enumerate() {
                    if rec == REC_TOMB {
                        tombs += 1;
                        continue;
                    }
                    live += 1;
                    if rec != REC_UNCACHED {
                        free_hashed += 1;
                        let (run, pos) = rec_split(rec);
                        let q = self.ring_base + k as u64;
                        if self.cached.runs.get(run as usize).is_none()
                            || self.live_entry(run, pos) != Some(FREE_BIT | q)
                        {
                            return Err(invariant(
                                c,
                                format!("free-queue record {q} is not named by the cache"),
                            ));
                        }
                    }
                }
                if tombs != self.tombs || self.stack.len() != live {
                    return Err(invariant(
                        c,
                        format!(
                            "{live} free-queue records for {} free ids, {tombs} tombstones vs {}",
                            self.stack.len(),
                            self.tombs
                        ),
                    ));
                }
                live
            }
        };
        if free != self.num_free || in_structs != free as usize || free_hashed != self.free_hashed {
            return Err(invariant(
                c,
                format!(
                    "free count {} vs {free} recounted, {in_structs} in free structures, {} vs {free_hashed} cached",
                    self.num_free, self.free_hashed
                ),
            ));
        }
        if fill != self.used_fill {
            return Err(invariant(
                c,
                format!("used fill {} vs {fill} recounted", self.used_fill),
            ));
        }
        if (n as u32 - self.num_free) + self.num_free != n as u32 {
            return Err(invariant(c, "free + used != total".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(
        prompt: u32,
        output: u32,
        n: u32,
        group: Option<u64>,
        prefix: u32,
        salt: u64,
    ) -> KvRequest {
        KvRequest {
            prompt_tokens: prompt,
            max_tokens: prompt + output - 1,
            n_parallel: n,
            prefix_group: group,
            prefix_tokens: prefix,
            salt,
        }
    }

    fn pool(blocks: u32, caching: PrefixCaching) -> PagedKv {
        PagedKv::new(
            blocks,
            1,
            PagedConfig {
                block_size: 16,
                watermark: 0.0,
                prefix_caching: caching,
            },
        )
        .unwrap()
    }

    #[test]
    fn the_free_queue_stays_within_twice_its_length() {
        // Freeing (reserve, then push) and allocating (pop) forever: the
        // popped prefix is dropped instead of the vector growing.
        let mut f = Fifo::default();
        let mut next = 0u64;
        for round in 0..2000u64 {
            let n = 1 + (round * 7919 % 97) as usize;
            f.reserve(n);
            for _ in 0..n {
                f.push_back(next);
                next += 1;
            }
            while f.len() > 100 {
                let first = next - f.len() as u64;
                assert_eq!(f.pop_front(), Some(first), "FIFO order");
            }
            assert!(
                f.buf.capacity() <= 4 * 200,
                "round {round}: capacity {} for {} queued",
                f.buf.capacity(),
                f.len()
            );
        }
    }

    #[test]
    fn one_request_takes_ceil_tokens_over_block_size() {
        let mut p = pool(100, PrefixCaching::Off);
        let r = req(100, 50, 1, None, 0, 0);
        assert!(p.admit(0, &r, 0, 100));
        assert_eq!(p.block_table(0, 0).unwrap().len(), 7); // ceil(100 / 16)
        assert!(p.grow(0, 112, 1));
        assert_eq!(p.num_free(), 93);
        assert!(p.grow(0, 113, 1));
        assert_eq!(p.num_free(), 92);
        let b = p.breakdown(None);
        assert_eq!(b.token_states_bytes, 113);
        assert_eq!(b.internal_frag_bytes, 8 * 16 - 113);
        assert_eq!(b.total(), 1600);
        p.check_invariants().unwrap();
        p.free(0);
        assert_eq!(p.num_free(), 100);
        p.check_invariants().unwrap();
    }

    #[test]
    fn prefix_hits_cover_shared_full_blocks_but_never_the_last_token() {
        for style in [PrefixCaching::V0, PrefixCaching::V1] {
            let mut p = pool(100, style);
            // Two requests share 64 tokens = 4 full blocks of group 7.
            let a = req(100, 10, 1, Some(7), 64, 1);
            assert_eq!(p.lookup(0, &a, 100), 0);
            assert!(p.admit(0, &a, 0, 100));
            let b = req(90, 10, 1, Some(7), 64, 2);
            assert_eq!(p.lookup(1, &b, 90), 64); // min(4, (90 - 1) / 16 = 5) blocks
            assert!(p.admit(1, &b, 64, 90));
            assert_eq!(
                p.block_table(0, 0).unwrap()[..4],
                p.block_table(1, 0).unwrap()[..4]
            );
            assert_eq!(p.ref_count(p.block_table(0, 0).unwrap()[0]), 2);
            p.check_invariants().unwrap();
            // A prompt of exactly the 64 shared tokens hits (64 - 1) / 16 = 3 blocks.
            let c = req(64, 10, 1, Some(7), 64, 3);
            assert_eq!(p.lookup(2, &c, 64), 48);
            assert!(p.admit(2, &c, 48, 64));
            p.check_invariants().unwrap();
            // After everything is freed, the cached blocks still hit.
            p.free(0);
            p.free(1);
            p.free(2);
            p.check_invariants().unwrap();
            assert_eq!(p.num_free(), 100);
            let d = req(200, 10, 1, Some(7), 64, 4);
            assert_eq!(p.lookup(3, &d, 200), 64, "{style:?}");
            assert!(p.admit(3, &d, 64, 200));
            p.check_invariants().unwrap();
        }
    }

    /// Everything a later operation or report can observe.
    fn state(p: &PagedKv) -> String {
        // (A run's live entries are its content; stale ones, and slots
        // past its last entry, are storage.)
        let runs: Vec<(Vec<Option<u64>>, u32)> = (0..p.cached.runs.len() as u32)
            .map(|id| {
                let mut live: Vec<Option<u64>> = (0..p.cached.runs[id as usize].slots.len() as u32)
                    .map(|pos| p.live_entry(id, pos))
                    .collect();
                while live.last() == Some(&None) {
                    live.pop();
                }
                (live, p.cached.live[id as usize])
            })
            .collect();
        // (Its pops come in key order; when it merges the pending keys is
        // its own business.)
        let mut evictor: Vec<&LruKey> = p.evictor.iter().collect();
        evictor.sort();
        let ring: Vec<&u64> = p.ring.iter().collect();
        format!(
            "{:?}",
            (
                (&p.blocks, &p.stack, evictor, &p.last_access),
                (ring, p.ring_base, p.tombs),
                (runs, p.cached.len, &p.cached.ids, &p.cached.own),
                (
                    &p.groups,
                    p.counters,
                    p.num_free,
                    p.free_hashed,
                    p.used_fill,
                    p.extra_bytes
                ),
            )
        )
    }

    proptest::proptest! {
        /// Writes of new blocks in one pass (the default) leave every
        /// structure as allocating and registering one block at a time does,
        /// on small pools where writes evict content they would re-register.
        #[test]
        fn batched_writes_equal_one_block_at_a_time(
            v1 in proptest::bool::ANY,
            blocks in 8u32..64,
            ops in proptest::collection::vec(
                (0u8..8, 0usize..8, 1u32..160, 1u32..48, 1u32..3, proptest::option::of(0u64..2), 0u32..120),
                1..120,
            ),
        ) {
            let caching = if v1 { PrefixCaching::V1 } else { PrefixCaching::V0 };
            let mut fast = pool(blocks, caching);
            let mut slow = pool(blocks, caching);
            slow.batch_writes = false;
            // (rid, request, tokens): running, and freed (preempted).
            let mut live: Vec<(u32, KvRequest, u32)> = Vec::new();
            let mut freed: Vec<(u32, KvRequest, u32)> = Vec::new();
            let (mut next, mut now) = (0u32, 0.0);
            for (op, pick, prompt, grow, n, group, prefix) in ops {
                match op {
                    0..=2 => {
                        // A new request, or a preempted one again: by
                        // recompute (looking up its prefix) or by swap-in
                        // (rebuilt without a lookup).
                        let (rid, r, tokens) = match op {
                            1 | 2 if !freed.is_empty() => freed.swap_remove(pick % freed.len()),
                            _ => {
                                next += 1;
                                (next - 1, req(prompt, grow, n, group, prefix.min(prompt), next as u64), prompt)
                            }
                        };
                        let ok = if op == 2 {
                            let ok = fast.swap_in(rid, &r, tokens, r.n_parallel);
                            proptest::prop_assert_eq!(ok, slow.swap_in(rid, &r, tokens, r.n_parallel));
                            ok
                        } else {
                            let hit = fast.lookup(rid, &r, tokens);
                            proptest::prop_assert_eq!(hit, slow.lookup(rid, &r, tokens));
                            let ok = fast.admit(rid, &r, hit, tokens);
                            proptest::prop_assert_eq!(ok, slow.admit(rid, &r, hit, tokens));
                            ok
                        };
                        if ok {
                            live.push((rid, r, tokens));
                        } else {
                            freed.push((rid, r, tokens));
                        }
                    }
                    3..=5 if !live.is_empty() => {
                        let i = pick % live.len();
                        let (rid, r, tokens) = &mut live[i];
                        let to = (*tokens + grow).min(r.max_tokens.max(*tokens));
                        let ok = fast.grow(*rid, to, r.n_parallel);
                        proptest::prop_assert_eq!(ok, slow.grow(*rid, to, r.n_parallel));
                        if ok {
                            *tokens = to;
                        }
                    }
                    6 if !live.is_empty() => {
                        let (rid, r, tokens) = live.swap_remove(pick % live.len());
                        fast.free(rid);
                        slow.free(rid);
                        freed.push((rid, r, tokens));
                    }
                    _ => {
                        now += 1.0;
                        fast.set_time(now);
                        slow.set_time(now);
                    }
                }
                fast.check_invariants().unwrap();
                proptest::prop_assert_eq!(state(&fast), state(&slow));
            }
        }
    }

    #[test]
    fn v1_evicts_a_freed_requests_tail_blocks_first() {
        let mut p = pool(4, PrefixCaching::V1);
        let a = req(64, 1, 1, Some(1), 64, 1);
        assert!(p.admit(0, &a, 0, 64));
        let t = p.block_table(0, 0).unwrap().to_vec();
        p.free(0);
        // The free queue now holds the contents of t[3], t[2], t[1], t[0];
        // a 16-token request evicts t[3]'s and the first 3 blocks still
        // hit. (Under v1 a free block's id is anonymous: the new request
        // may get any of them.)
        let b = req(16, 1, 1, None, 0, 2);
        assert!(p.admit(1, &b, 0, 16));
        assert_eq!(p.block_table(1, 0).unwrap().len(), 1);
        assert!(t.contains(&p.block_table(1, 0).unwrap()[0]));
        assert_eq!(p.lookup(2, &a, 64), 48);
        assert_eq!(p.counters().cache_evictions, 1);
        p.check_invariants().unwrap();
    }

    #[test]
    fn v1_hits_on_free_blocks_leave_tombstones_that_get_compacted() {
        let mut p = pool(100, PrefixCaching::V1);
        let mut compacted = false;
        for k in 0..10 {
            // 50 shared blocks, then one private token.
            let r = req(801, 1, 1, Some(9), 800, k);
            let hit = p.lookup(k as u32, &r, 801);
            assert_eq!(hit, if k == 0 { 0 } else { 800 });
            assert!(p.admit(k as u32, &r, hit, 801));
            compacted |= p.tombs == 0 && k > 0;
            p.check_invariants().unwrap();
            p.free(k as u32);
            p.check_invariants().unwrap();
        }
        assert!(compacted);
        assert_eq!(p.num_free(), 100);
        assert_eq!(p.counters().cache_evictions, 0);
    }

    #[test]
    fn parallel_sampling_shares_the_prompt_and_copies_on_write() {
        let mut p = pool(20, PrefixCaching::Off);
        let r = req(20, 5, 2, None, 0, 0);
        assert!(p.admit(0, &r, 0, 20)); // 1 full + 1 partial (4 tokens)
        assert_eq!(p.num_free(), 18);
        assert!(p.grow(0, 21, 2)); // fork, then one copy-on-write
        assert_eq!(p.counters().cow_copies, 1);
        assert_eq!(p.num_free(), 17);
        let (a, b) = (
            p.block_table(0, 0).unwrap().to_vec(),
            p.block_table(0, 1).unwrap().to_vec(),
        );
        assert_eq!(a[0], b[0]);
        assert_ne!(a[1], b[1]);
        assert_eq!(p.ref_count(a[0]), 2);
        assert_eq!(p.resident_bytes(0), 3 * 16);
        p.check_invariants().unwrap();
        p.free(0);
        assert_eq!(p.num_free(), 20);
        p.check_invariants().unwrap();
    }

    #[test]
    fn watermark_blocks_admission_but_not_growth() {
        let mut p = PagedKv::new(
            100,
            1,
            PagedConfig {
                watermark: 0.1,
                ..PagedConfig::default()
            },
        )
        .unwrap();
        let r = req(16 * 91, 100, 1, None, 0, 0);
        assert!(!p.admit(0, &r, 0, 16 * 91)); // 91 + 10 > 100
        assert!(p.admit(0, &r, 0, 16 * 90));
        assert!(p.grow(0, 16 * 100, 1));
        assert!(!p.grow(0, 16 * 100 + 1, 1));
        p.check_invariants().unwrap();
    }

    #[test]
    fn own_content_hits_by_any_salt() {
        // Salts below DENSE_SALTS keep their run ids in a vector, larger
        // ones (and later samples) in the map: both find their content.
        for caching in [PrefixCaching::V0, PrefixCaching::V1] {
            let mut p = pool(100, caching);
            for (rid, salt) in [(0, 3), (1, DENSE_SALTS + 3), (2, u64::MAX)] {
                let r = req(64, 10, 1, None, 0, salt);
                assert!(p.admit(rid, &r, 0, 64));
                p.free(rid);
                assert_eq!(p.lookup(rid, &r, 64), 48, "{caching:?} salt {salt}");
                assert!(p.admit(rid, &r, 48, 64));
            }
            assert_eq!(p.cached.num_ids(), 3);
            assert_eq!(p.cached.ids.len(), 2);
            p.check_invariants().unwrap();
        }
    }

    #[test]
    fn filling_a_block_is_quiet_only_for_content_no_one_else_can_find() {
        for caching in [PrefixCaching::V0, PrefixCaching::V1] {
            // Own content: the step that fills the block is quiet too.
            let mut p = pool(100, caching);
            let own = req(20, 30, 1, None, 0, 1);
            assert!(p.admit(0, &own, 0, 21));
            assert_eq!(p.quiet_decode_tokens(0, 1), 11, "{caching:?}");
            // Content shared with a group (a conversation's next turn
            // looks its output up): the fill registers it at once.
            let turn = req(20, 30, 1, Some(7), 50, 2);
            assert!(p.admit(1, &turn, 0, 21));
            assert_eq!(p.quiet_decode_tokens(1, 1), 10, "{caching:?}");
            // Own content cached already (the request's earlier blocks,
            // freed and cached, then re-admitted without a lookup): the
            // fill would find it cached, which may change before a
            // deferred grow.
            let mut p = pool(100, caching);
            assert!(p.admit(0, &own, 0, 48));
            p.free(0);
            assert!(p.admit(0, &own, 0, 40));
            assert_eq!(p.quiet_decode_tokens(0, 1), 7, "{caching:?}");
            // Without caching every token of the block's room is quiet.
            let mut p = pool(100, PrefixCaching::Off);
            assert!(p.admit(0, &turn, 0, 21));
            assert_eq!(p.quiet_decode_tokens(0, 1), 11);
            p.check_invariants().unwrap();
        }
    }
}
