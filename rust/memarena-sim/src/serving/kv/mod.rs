//! KV-cache managers: how a serving system hands device memory to requests.
//!
//! - [`StaticKv`]: a contiguous max-length (or power-of-two, or oracle)
//!   reservation per request on a first-fit or a binary buddy allocator —
//!   Orca as the vLLM paper models it (Kwon et al., SOSP '23, §2.3, Fig. 2,
//!   and §6.1, which assumes the buddy allocator).
//! - [`PagedKv`]: vLLM's PagedAttention block pool: fixed-size blocks,
//!   per-sequence block tables, reference counts, copy-on-write for parallel
//!   sampling, an admission watermark and prefix caching in vLLM v0 or v1
//!   style.
//! - [`VattnKv`]: vAttention: a virtual max-length buffer per request slot
//!   with physical pages (64 KiB … 2 MiB per layer and K/V) mapped on
//!   demand, and deferred reclamation.
//!
//! Every manager reports a [`KvBreakdown`] whose categories sum to its pool
//! size, and checks its invariants in [`KvManager::check_invariants`].
//!
//! # The categories, and where each definition comes from
//!
//! - *Token states*, *reservation*, *internal* and *external
//!   fragmentation* are the vLLM paper's Fig. 2 and Fig. 3 (Kwon et al.,
//!   SOSP '23, §3): slots reserved for a request's future tokens, slots
//!   over-provisioned beyond its final length, and free memory the
//!   allocator cannot use.
//! - *External fragmentation* is counted only while a request is blocked on
//!   memory: free memory is wasted by fragmentation when it exists but
//!   cannot be handed to the request that asks for it (§3). The scheduler
//!   passes `pending` to [`KvManager::breakdown`] only when the KV manager
//!   refused the head of the waiting queue at the last admission try; a
//!   head that waits for compute (the token budget, the sequence cap)
//!   leaves every hole free.
//! - *Idle mapped* is vAttention's deferred reclamation (Prabhu et al.,
//!   ASPLOS '25, §6.2, and `free_batch_idx` in
//!   `vattention/vattention.cu`): a finished request's physical pages stay
//!   mapped on its slot for the next request to reuse, and are unmapped on
//!   demand when another request needs them (so are the pages a reused
//!   slot maps beyond its new request's tokens). No token is in them and
//!   any request may take them: they are free memory on hold, not a
//!   reservation for a request nor its waste, so they get their own
//!   category, left out of the "used" memory of the Fig. 2 share (the
//!   paper's Orca and vLLM have no such pages).

mod buddy;
mod lru;
mod paged;
mod static_res;
mod vattn;

pub use paged::{PagedConfig, PagedKv, PrefixCaching};
pub use static_res::{StaticAllocator, StaticConfig, StaticKv, StaticReservation};
pub use vattn::{VattnConfig, VattnKv};

use memarena_core::error::Result;

/// What a KV manager knows of a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KvRequest {
    /// Prompt tokens as specified (not counting tokens recomputed after a
    /// preemption).
    pub prompt_tokens: u32,
    /// Peak KV tokens of each sequence: `prompt + output - 1` (the last
    /// generated token's KV is never computed).
    pub max_tokens: u32,
    /// Parallel sequences.
    pub n_parallel: u32,
    /// Content group for prefix caching.
    pub prefix_group: Option<u64>,
    /// Tokens shared with the group.
    pub prefix_tokens: u32,
    /// Unique salt of the request's own content (its index).
    pub salt: u64,
}

/// The KV pool split into the categories of the vLLM paper's Fig. 2 (plus
/// vAttention's idle mapped pages; see the module docs), in bytes.
/// Invariant: the six categories sum to the pool size.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KvBreakdown {
    /// KV of tokens actually stored.
    pub token_states_bytes: u64,
    /// Reserved for tokens a request will still produce (a static
    /// reservation).
    pub reserved_bytes: u64,
    /// Allocated but never to hold a token: the unused tail of a block or
    /// page, or a static reservation beyond the request's final length.
    pub internal_frag_bytes: u64,
    /// Free, but in holes too small for the request at the head of the
    /// queue, counted only while the KV manager refuses that request
    /// (contiguous allocation only; see the module docs).
    pub external_frag_bytes: u64,
    /// Physical pages mapped but holding no token and reclaimable on demand
    /// (vAttention's deferred reclamation: pages on idle slots, and pages
    /// a reused slot maps beyond its request's tokens); not "used" (see
    /// the module docs).
    pub idle_mapped_bytes: u64,
    /// Free and usable (includes evictable prefix-cache blocks).
    pub free_bytes: u64,
    /// Part of `free_bytes` holding evictable prefix-cache blocks (not a
    /// separate category).
    pub cached_free_bytes: u64,
}

impl KvBreakdown {
    /// Sum of the six categories.
    pub fn total(&self) -> u64 {
        self.used() + self.idle_mapped_bytes + self.free_bytes
    }

    /// The memory requests use, the denominator of the vLLM paper's Fig. 2
    /// share: token states, reservation, internal and external
    /// fragmentation (not idle mapped pages, not free memory).
    pub fn used(&self) -> u64 {
        self.token_states_bytes
            + self.reserved_bytes
            + self.internal_frag_bytes
            + self.external_frag_bytes
    }
}

/// Cumulative counters of a manager.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KvCounters {
    /// Copy-on-write block copies (parallel sampling).
    pub cow_copies: u64,
    /// Cached blocks evicted to make room (prefix caching).
    pub cache_evictions: u64,
    /// Physical page groups mapped (vAttention).
    pub pages_mapped: u64,
    /// Physical page groups unmapped by reclamation (vAttention).
    pub pages_reclaimed: u64,
}

/// A KV-cache manager. Requests are named by a dense id `rid` (their index
/// in the request list). Methods that return `false` leave the state
/// unchanged.
///
/// # The semantic contract
///
/// What a manager implements to be simulated: [`admit`](Self::admit),
/// [`grow`](Self::grow), [`free`](Self::free),
/// [`resident_bytes`](Self::resident_bytes),
/// [`breakdown`](Self::breakdown), [`counters`](Self::counters),
/// [`check_invariants`](Self::check_invariants) and its identity
/// ([`name`](Self::name), [`pool_bytes`](Self::pool_bytes),
/// [`can_ever_fit`](Self::can_ever_fit)). The provided methods
/// [`set_time`](Self::set_time), [`lookup`](Self::lookup),
/// [`swap_in`](Self::swap_in) and
/// [`take_step_overhead`](Self::take_step_overhead) default to a manager
/// without a clock, a prefix cache, a swap layout of its own or step
/// overheads; a manager that has one overrides them.
///
/// # Optional speed capability
///
/// [`quiet_decode_tokens`](Self::quiet_decode_tokens) lets the scheduler
/// skip `grow` calls that only count tokens. It is a promise about the
/// semantic methods, not a behaviour: the default promises nothing, and
/// the scheduler then makes every call, with the same results (tested:
/// a manager that leaves it out gives bit-identical reports). Implement
/// it only where the promise holds exactly; smaller than the truth is
/// always safe.
pub trait KvManager: Send {
    /// Registry name (`static`, `paged`, `vattention`).
    fn name(&self) -> &'static str;
    /// Pool size in bytes (a whole number of the manager's units).
    fn pool_bytes(&self) -> u64;
    /// Whether `req` could ever be served with the whole pool to itself.
    fn can_ever_fit(&self, req: &KvRequest) -> bool;
    /// Informs the manager of the simulated time (LRU timestamps).
    fn set_time(&mut self, _now_s: f64) {}
    /// Prefix-cache lookup for `req` about to be (re)admitted with
    /// `num_tokens` tokens to hold: the tokens found cached (whole blocks,
    /// at most `num_tokens - 1`). Must be followed by [`admit`](Self::admit)
    /// of the same `rid` before any other call.
    fn lookup(&mut self, _rid: u32, _req: &KvRequest, _num_tokens: u32) -> u32 {
        0
    }
    /// Admits `rid` with room for `tokens` tokens (its first sequence),
    /// reusing the `hit_tokens` found by the preceding lookup (0 if none).
    fn admit(&mut self, rid: u32, req: &KvRequest, hit_tokens: u32, tokens: u32) -> bool;
    /// Grows every sequence of `rid` to `tokens` tokens, forking to
    /// `n_seqs` sequences first if it has fewer.
    fn grow(&mut self, rid: u32, tokens: u32, n_seqs: u32) -> bool;
    /// Releases everything `rid` holds.
    fn free(&mut self, rid: u32);
    /// Device bytes `rid` holds (what a swap-out moves).
    fn resident_bytes(&self, rid: u32) -> u64;
    /// Re-creates `rid` after a swap-in: `n_seqs` sequences of `tokens`.
    fn swap_in(&mut self, rid: u32, req: &KvRequest, tokens: u32, n_seqs: u32) -> bool {
        if !self.admit(rid, req, 0, tokens) {
            return false;
        }
        if n_seqs > 1 && !self.grow(rid, tokens, n_seqs) {
            self.free(rid);
            return false;
        }
        true
    }
    /// The memory breakdown; `pending` is the request at the head of the
    /// waiting queue while the manager refuses it (blocked on memory), for
    /// external fragmentation; None while no request is blocked on memory.
    fn breakdown(&self, pending: Option<&KvRequest>) -> KvBreakdown;
    /// Extra HBM bytes and extra seconds incurred since the last call
    /// (copy-on-write copies, page mapping).
    fn take_step_overhead(&mut self) -> (u64, f64) {
        (0, 0.0)
    }
    /// Cumulative counters.
    fn counters(&self) -> KvCounters;
    /// Recomputes every invariant from scratch (slow; tests and debug runs).
    fn check_invariants(&self) -> Result<()>;

    // ---- Optional speed capability (see the trait docs) ----------------

    /// **Optional speed capability; the default (0) promises nothing and
    /// is always correct.** A manager that does not implement it is called
    /// for every decode step, with the same results.
    ///
    /// Decode steps `rid` can take with the manager only counting tokens:
    /// for every `1 <= i <= q` (`q` the answer, `c` the tokens each of its
    /// `n_seqs` sequences holds now), `grow(rid, c + i, n_seqs)` allocates,
    /// maps, copies and evicts nothing, caches no content that another
    /// request could look up, succeeds, and leaves the same state as the
    /// one-token grows before it; and until it is made, no call for any
    /// other request depends on whether those grows were made, nor any
    /// call for `rid` but [`free`](Self::free) (with
    /// [`breakdown`](Self::breakdown) and
    /// [`check_invariants`](Self::check_invariants) excepted). The
    /// scheduler skips those calls in a run of decode iterations and makes
    /// the last one only, at the latest right before `free(rid)`. 0 (the
    /// default) promises nothing; smaller than the truth is always safe.
    fn quiet_decode_tokens(&self, _rid: u32, _n_seqs: u32) -> u32 {
        0
    }
}

/// An [`Error::Invariant`](memarena_core::error::Error::Invariant) for `component`.
pub(crate) fn invariant(component: &str, reason: String) -> memarena_core::error::Error {
    memarena_core::error::Error::Invariant {
        component: component.into(),
        reason,
    }
}
