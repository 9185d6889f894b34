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
//!
//! Layout: this file holds the pool (blocks, sequences, taking and
//! releasing blocks) and its [`KvManager`] methods; `paged/cache.rs` the
//! prefix cache; `paged/prefix_v1.rs` and `paged/prefix_v0.rs` vLLM v1's
//! free queue and v0's evictor; `paged/write.rs` growth (forks,
//! copy-on-write, new blocks); `paged/check.rs` the invariants; and
//! `paged/quiet.rs` the optional speed capability
//! ([`KvManager::quiet_decode_tokens`]).

use memarena_core::error::{Error, Result};

use super::lru::{LruEvictor, LruKey};
use super::{KvBreakdown, KvCounters, KvManager, KvRequest};

mod cache;
mod check;
mod prefix_v0;
mod prefix_v1;
mod quiet;
mod write;

use cache::{FREE_BIT, PrefixCache, RunKey, holds};
use prefix_v1::{Fifo, REC_TOMB, REC_UNCACHED, rec_split};
use write::NewBlocks;

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

    // ---- taking and releasing blocks (the free structures: paged/prefix_v*.rs)

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
            idle_mapped_bytes: 0,
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
        self.check_all()
    }

    // Optional speed capability (paged/quiet.rs).

    fn quiet_decode_tokens(&self, rid: u32, n_seqs: u32) -> u32 {
        self.quiet_tokens(rid, n_seqs)
    }
}

#[cfg(test)]
mod tests;
