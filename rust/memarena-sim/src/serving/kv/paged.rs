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
//! Simplifications: the content of a block is identified by a synthetic
//! chained hash of `(prefix group or request salt, position)` instead of
//! token ids (see [`RequestSpec`](crate::serving::RequestSpec)); when a full
//! block's hash is already cached by another block, the new block stays
//! uncached (vLLM v1 keeps both; lookups find one either way).

use std::collections::BTreeSet;

use memarena_core::error::{Error, Result};
use memarena_core::rng::mix64;

use super::{KvBreakdown, KvCounters, KvManager, KvRequest, invariant};

/// Prefix-caching style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq)]
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
const ROOT_HASH: u64 = 0x6d65_6d61_7265_6e61;

/// One block's metadata: 32 bytes, aligned, so that every access to a block
/// (allocation, release, a hit, the free queue's links) touches one cache
/// line. A block is free exactly when its `ref_cnt` is 0.
#[derive(Clone, Debug)]
#[repr(C, align(32))]
struct Block {
    ref_cnt: u32,
    /// Tokens written into the block.
    fill: u32,
    /// Content hash when the block is full and registered in the cache; 0 otherwise.
    hash: u64,
    /// Position of the block in its sequence (v0 eviction tie-break).
    depth: u32,
    prev: u32,
    next: u32,
}

/// The prefix cache's map from content hash to block: open addressing with
/// linear probing and backward-shift deletion (no tombstones), sized once
/// to at least twice the pool so that it never grows and probes stay short.
///
/// A slot packs the hash's high 32 bits (which also pick the home slot)
/// and the block id; the full hash is confirmed against the block's own
/// `hash` (the cache maps `h` to `b` exactly when `blocks[b].hash == h`).
#[derive(Debug, Default)]
struct BlockCache {
    slots: Vec<u64>,
    mask: u64,
    len: usize,
}

const EMPTY: u64 = u64::MAX;

impl BlockCache {
    fn new(num_blocks: u32) -> BlockCache {
        let n = (2 * num_blocks as u64)
            .next_power_of_two()
            .clamp(16, 1 << 32);
        BlockCache {
            slots: vec![EMPTY; n as usize],
            mask: n - 1,
            len: 0,
        }
    }

    #[inline]
    fn tag(h: u64) -> u64 {
        h >> 32
    }

    /// The block registered under `h`.
    #[inline]
    fn get(&self, h: u64, blocks: &[Block]) -> Option<u32> {
        let tag = Self::tag(h);
        let mut i = tag & self.mask;
        loop {
            let e = self.slots[i as usize];
            if e == EMPTY {
                return None;
            }
            if e >> 32 == tag && blocks[(e as u32) as usize].hash == h {
                return Some(e as u32);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Registers `b` under `h` unless `h` is registered already; whether it
    /// was inserted. `blocks[b].hash` is set by the caller on success.
    #[inline]
    fn insert_new(&mut self, h: u64, b: u32, blocks: &[Block]) -> bool {
        let tag = Self::tag(h);
        let mut i = tag & self.mask;
        loop {
            let e = self.slots[i as usize];
            if e == EMPTY {
                self.slots[i as usize] = (tag << 32) | b as u64;
                self.len += 1;
                return true;
            }
            if e >> 32 == tag && blocks[(e as u32) as usize].hash == h {
                return false;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Removes the entry of block `b`, registered under `h`.
    #[inline]
    fn remove(&mut self, h: u64, b: u32) {
        let want = (Self::tag(h) << 32) | b as u64;
        let mut i = Self::tag(h) & self.mask;
        while self.slots[i as usize] != want {
            assert!(
                self.slots[i as usize] != EMPTY,
                "block {b} missing from the prefix cache"
            );
            i = (i + 1) & self.mask;
        }
        // Backward-shift deletion: pull later entries of the probe run into
        // the hole unless that would move them before their home slot.
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let e = self.slots[j as usize];
            if e == EMPTY {
                break;
            }
            let home = (e >> 32) & self.mask;
            // `e` may move to the hole `i` if `home` is not cyclically in (i, j].
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(i) & self.mask) {
                self.slots[i as usize] = e;
                i = j;
            }
        }
        self.slots[i as usize] = EMPTY;
        self.len -= 1;
    }

    fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.slots
            .iter()
            .filter(|&&e| e != EMPTY)
            .map(|&e| (e >> 32, e as u32))
    }
}

#[derive(Clone, Debug, Default)]
struct Seq {
    blocks: Vec<u32>,
    tokens: u32,
    /// Index of this sequence in its group (parallel sampling).
    index: u32,
    /// Chained hash of the last hashed block, and how many are hashed.
    chain: u64,
    hashed: u32,
}

#[derive(Clone, Debug)]
struct Group {
    req: KvRequest,
    seqs: Vec<Seq>,
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
/// - the cache map and the blocks' hashes agree;
/// - the running sum of used blocks' fills equals its recomputation.
#[derive(Debug)]
pub struct PagedKv {
    cfg: PagedConfig,
    bytes_per_token: u64,
    blocks: Vec<Block>,
    stack: Vec<u32>,
    head: u32,
    tail: u32,
    evictor: BTreeSet<(u64, u32, u32)>,
    /// Free time of each block (v0 LRU key; empty otherwise).
    last_access: Vec<f64>,
    num_free: u32,
    free_hashed: u32,
    watermark_blocks: u32,
    cached: BlockCache,
    groups: Vec<Option<Group>>,
    used_fill: u64,
    now: f64,
    scratch: Vec<u32>,
    scratch_rid: u32,
    scratch_chain: u64,
    cow_pending: Vec<(u32, u32)>,
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
            .map(|i| Block {
                ref_cnt: 0,
                fill: 0,
                hash: 0,
                depth: 0,
                prev: if i == 0 { NIL } else { i - 1 },
                next: if i + 1 == num_blocks { NIL } else { i + 1 },
            })
            .collect();
        let stack = if cfg.prefix_caching == PrefixCaching::V1 {
            Vec::new()
        } else {
            (0..num_blocks).rev().collect()
        };
        let v1 = cfg.prefix_caching == PrefixCaching::V1;
        let v0 = cfg.prefix_caching == PrefixCaching::V0;
        let caching = cfg.prefix_caching != PrefixCaching::Off;
        Ok(PagedKv {
            watermark_blocks: (cfg.watermark * num_blocks as f64) as u32,
            cfg,
            bytes_per_token,
            blocks,
            stack,
            head: if v1 { 0 } else { NIL },
            tail: if v1 { num_blocks - 1 } else { NIL },
            evictor: BTreeSet::new(),
            last_access: if v0 {
                vec![0.0; num_blocks as usize]
            } else {
                Vec::new()
            },
            num_free: num_blocks,
            free_hashed: 0,
            cached: if caching {
                BlockCache::new(num_blocks)
            } else {
                BlockCache::default()
            },
            groups: Vec::new(),
            used_fill: 0,
            now: 0.0,
            scratch: Vec::new(),
            scratch_rid: NIL,
            scratch_chain: ROOT_HASH,
            cow_pending: Vec::new(),
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

    fn v0_key(&self, b: u32) -> (u64, u32, u32) {
        (
            self.last_access[b as usize].to_bits(),
            !self.blocks[b as usize].depth,
            b,
        )
    }

    fn list_unlink(&mut self, b: u32) {
        let (p, n) = (self.blocks[b as usize].prev, self.blocks[b as usize].next);
        if p == NIL {
            self.head = n;
        } else {
            self.blocks[p as usize].next = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.blocks[n as usize].prev = p;
        }
        self.blocks[b as usize].prev = NIL;
        self.blocks[b as usize].next = NIL;
    }

    fn list_push_tail(&mut self, b: u32) {
        self.blocks[b as usize].prev = self.tail;
        self.blocks[b as usize].next = NIL;
        if self.tail == NIL {
            self.head = b;
        } else {
            self.blocks[self.tail as usize].next = b;
        }
        self.tail = b;
    }

    /// Takes a free block for new content (evicting its cached hash).
    fn alloc_block(&mut self, depth: u32) -> u32 {
        let b = match self.cfg.prefix_caching {
            PrefixCaching::Off => self.stack.pop(),
            PrefixCaching::V1 => {
                let h = self.head;
                if h == NIL {
                    None
                } else {
                    self.list_unlink(h);
                    Some(h)
                }
            }
            PrefixCaching::V0 => self
                .stack
                .pop()
                .or_else(|| self.evictor.pop_first().map(|k| k.2)),
        };
        let b = b.expect("alloc_block called with no free block: callers check num_free first");
        self.num_free -= 1;
        let blk = &mut self.blocks[b as usize];
        assert!(
            blk.ref_cnt == 0,
            "block {b} taken from the free pool while in use"
        );
        if blk.hash != 0 {
            let h = blk.hash;
            blk.hash = 0;
            self.free_hashed -= 1;
            self.counters.cache_evictions += 1;
            self.cached.remove(h, b);
        }
        let blk = &mut self.blocks[b as usize];
        blk.ref_cnt = 1;
        blk.fill = 0;
        blk.depth = depth;
        b
    }

    /// Drops one reference to `b`; a block reaching 0 becomes free (and stays
    /// cached if it has a hash).
    fn release_block(&mut self, b: u32) {
        let blk = &mut self.blocks[b as usize];
        assert!(blk.ref_cnt > 0, "ref count of block {b} would go negative");
        blk.ref_cnt -= 1;
        if blk.ref_cnt > 0 {
            return;
        }
        self.used_fill -= blk.fill as u64;
        let hashed = blk.hash != 0;
        self.num_free += 1;
        if hashed {
            self.free_hashed += 1;
        }
        match self.cfg.prefix_caching {
            PrefixCaching::Off => self.stack.push(b),
            PrefixCaching::V1 => self.list_push_tail(b),
            PrefixCaching::V0 => {
                self.last_access[b as usize] = self.now;
                if hashed {
                    let k = self.v0_key(b);
                    self.evictor.insert(k);
                } else {
                    self.stack.push(b);
                }
            }
        }
    }

    /// Takes a reference to a cached block found by a lookup.
    fn touch(&mut self, b: u32) {
        if self.blocks[b as usize].ref_cnt == 0 {
            match self.cfg.prefix_caching {
                PrefixCaching::V1 => self.list_unlink(b),
                PrefixCaching::V0 => {
                    let k = self.v0_key(b);
                    let removed = self.evictor.remove(&k);
                    assert!(removed, "cached free block {b} missing from the v0 evictor");
                }
                PrefixCaching::Off => unreachable!("no cache hits without prefix caching"),
            }
            self.num_free -= 1;
            self.free_hashed -= 1;
            self.used_fill += self.blocks[b as usize].fill as u64;
        }
        self.blocks[b as usize].ref_cnt += 1;
    }

    // ---- content hashes --------------------------------------------------

    /// Content key of block `i` of sequence `seq` of `req` (see
    /// [`RequestSpec`](crate::serving::RequestSpec)).
    fn block_key(req: &KvRequest, seq: u32, i: u32, bs: u32) -> u64 {
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
            return mix64(g.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x1);
        }
        mix64(req.salt.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ ((seq as u64) << 40) ^ 0x2)
    }

    #[inline]
    fn chain(parent: u64, key: u64, i: u32) -> u64 {
        mix64(parent ^ key.wrapping_add(i as u64)) | 1
    }

    /// Registers newly full blocks of `g.seqs[s]` in the cache.
    fn hash_full_blocks(&mut self, g: &mut Group, s: usize) {
        let bs = self.cfg.block_size;
        let seq = &mut g.seqs[s];
        while seq.hashed < seq.tokens / bs {
            let i = seq.hashed;
            let h = Self::chain(seq.chain, Self::block_key(&g.req, seq.index, i, bs), i);
            seq.chain = h;
            seq.hashed += 1;
            let b = seq.blocks[i as usize];
            if self.blocks[b as usize].hash == 0 && self.cached.insert_new(h, b, &self.blocks) {
                self.blocks[b as usize].hash = h;
            }
        }
    }

    // ---- growth ----------------------------------------------------------

    /// Blocks needed to grow every sequence of `g` to `tokens` (counting
    /// copy-on-write of shared partial blocks exactly).
    fn blocks_needed(&mut self, g: &Group, tokens: u32) -> u32 {
        let bs = self.cfg.block_size;
        let mut need = 0;
        self.cow_pending.clear();
        for s in &g.seqs {
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

    /// Writes sequence `s` of `g` up to `target` tokens (blocks are available).
    fn write_tokens(&mut self, g: &mut Group, s: usize, target: u32) {
        let bs = self.cfg.block_size;
        while g.seqs[s].tokens < target {
            let seq = &mut g.seqs[s];
            let off = seq.tokens % bs;
            if off == 0 {
                let depth = seq.blocks.len() as u32;
                let b = self.alloc_block(depth);
                g.seqs[s].blocks.push(b);
            } else {
                let last = *seq.blocks.last().expect("partial block");
                if self.blocks[last as usize].ref_cnt > 1 {
                    // Copy-on-write: this sequence gets its own copy.
                    let depth = seq.blocks.len() as u32 - 1;
                    let nb = self.alloc_block(depth);
                    let fill = self.blocks[last as usize].fill;
                    self.blocks[nb as usize].fill = fill;
                    self.used_fill += fill as u64;
                    self.release_block(last);
                    *g.seqs[s].blocks.last_mut().expect("partial block") = nb;
                    self.counters.cow_copies += 1;
                    self.extra_bytes += 2 * fill as u64 * self.bytes_per_token;
                }
            }
            let seq = &mut g.seqs[s];
            let last = *seq.blocks.last().expect("a block to write into");
            let k = (target - seq.tokens).min(bs - off);
            seq.tokens += k;
            self.blocks[last as usize].fill += k;
            self.used_fill += k as u64;
            if self.cfg.prefix_caching != PrefixCaching::Off && g.seqs[s].tokens % bs == 0 {
                self.hash_full_blocks(g, s);
            }
        }
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
        self.scratch_chain = ROOT_HASH;
        if self.cfg.prefix_caching == PrefixCaching::Off || num_tokens == 0 {
            return 0;
        }
        let bs = self.cfg.block_size;
        let max_blocks = (num_tokens - 1) / bs;
        let mut h = ROOT_HASH;
        for i in 0..max_blocks {
            let nh = Self::chain(h, Self::block_key(req, 0, i, bs), i);
            match self.cached.get(nh, &self.blocks) {
                Some(b) => {
                    self.scratch.push(b);
                    h = nh;
                }
                None => break,
            }
        }
        self.scratch_chain = h;
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
            .filter(|&&b| self.blocks[b as usize].ref_cnt == 0)
            .count() as u64;
        let need = (self.blocks_for(tokens) - hits) as u64 + evictable;
        if need + self.watermark_blocks as u64 > self.num_free as u64 {
            return false;
        }
        let mut seq = Seq {
            tokens: hit_tokens,
            hashed: hits,
            chain: if hits > 0 {
                self.scratch_chain
            } else {
                ROOT_HASH
            },
            ..Seq::default()
        };
        let scratch = std::mem::take(&mut self.scratch);
        for &b in &scratch[..hits as usize] {
            self.touch(b);
            seq.blocks.push(b);
        }
        self.scratch = scratch;
        self.scratch.clear();
        self.scratch_rid = NIL;
        let mut g = Group {
            req: req.clone(),
            seqs: vec![seq],
        };
        self.write_tokens(&mut g, 0, tokens);
        self.put_group(rid, g);
        true
    }

    fn grow(&mut self, rid: u32, tokens: u32, n_seqs: u32) -> bool {
        // Fast path (most decode steps): every sequence writes into its own
        // partially filled last block, which does not become full under
        // prefix caching.
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
                for s in &mut g.seqs {
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
            let base = g.seqs[0].clone();
            for j in g.seqs.len() as u32..n_seqs {
                for &b in &base.blocks {
                    self.blocks[b as usize].ref_cnt += 1;
                }
                g.seqs.push(Seq {
                    index: j,
                    ..base.clone()
                });
            }
        }
        let need = self.blocks_needed(&g, tokens);
        if need > self.num_free {
            self.put_group(rid, g);
            return false;
        }
        for s in 0..g.seqs.len() {
            self.write_tokens(&mut g, s, tokens);
        }
        self.put_group(rid, g);
        true
    }

    fn free(&mut self, rid: u32) {
        let Some(g) = self.take_group(rid) else {
            return;
        };
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
        let base = &g.seqs[0].blocks;
        let mut n = base.len() as u64;
        for s in &g.seqs[1..] {
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
        let bs = self.cfg.block_size;
        let n = self.blocks.len();
        let mut refs = vec![0u32; n];
        let mut owner: Vec<u32> = vec![NIL; n];
        let mut fill = 0u64;
        for (rid, g) in self.groups.iter().enumerate() {
            let Some(g) = g else { continue };
            for s in &g.seqs {
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
                free_hashed += (blk.hash != 0) as u32;
            } else {
                fill += blk.fill as u64;
            }
            if blk.hash != 0 && self.cached.get(blk.hash, &self.blocks) != Some(b as u32) {
                return Err(invariant(
                    c,
                    format!("block {b} has a hash the cache does not map to it"),
                ));
            }
        }
        let mut entries = 0;
        for (tag, b) in self.cached.iter() {
            entries += 1;
            if self.blocks[b as usize].hash == 0
                || BlockCache::tag(self.blocks[b as usize].hash) != tag
            {
                return Err(invariant(
                    c,
                    format!("cache maps a hash to block {b}, which holds another"),
                ));
            }
        }
        if entries != self.cached.len
            || entries != self.blocks.iter().filter(|b| b.hash != 0).count()
        {
            return Err(invariant(
                c,
                format!(
                    "cache holds {entries} entries (counted {}), not one per hashed block",
                    self.cached.len
                ),
            ));
        }
        let in_structs = match self.cfg.prefix_caching {
            PrefixCaching::Off => self.stack.len(),
            PrefixCaching::V0 => self.stack.len() + self.evictor.len(),
            PrefixCaching::V1 => {
                let mut k = 0;
                let mut cur = self.head;
                while cur != NIL {
                    if self.blocks[cur as usize].ref_cnt != 0 {
                        return Err(invariant(c, format!("used block {cur} in the free queue")));
                    }
                    k += 1;
                    if k > n {
                        return Err(invariant(c, "free queue has a cycle".into()));
                    }
                    cur = self.blocks[cur as usize].next;
                }
                k
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

    #[test]
    fn v1_evicts_a_freed_requests_tail_blocks_first() {
        let mut p = pool(4, PrefixCaching::V1);
        let a = req(64, 1, 1, Some(1), 64, 1);
        assert!(p.admit(0, &a, 0, 64));
        let t = p.block_table(0, 0).unwrap().to_vec();
        p.free(0);
        // The free queue is now t[3], t[2], t[1], t[0]; a 16-token request
        // evicts t[3] and the first 3 blocks still hit.
        let b = req(16, 1, 1, None, 0, 2);
        assert!(p.admit(1, &b, 0, 16));
        assert_eq!(p.block_table(1, 0).unwrap(), &[t[3]]);
        assert_eq!(p.lookup(2, &a, 64), 48);
        assert_eq!(p.counters().cache_evictions, 1);
        p.check_invariants().unwrap();
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
}
