//! Static contiguous reservation, as the vLLM paper models Orca (Kwon et
//! al., SOSP '23, §6.1): at admission each sequence reserves a contiguous
//! chunk of KV slots — the model's maximum length (Orca-Max), the prompt
//! plus the output length rounded up to a power of two (Orca-Pow2), or
//! exactly its final length (Orca-Oracle) — from an allocator over one
//! address range: first fit (the default), or a binary buddy allocator
//! ([`StaticAllocator::Buddy`]), the one the vLLM paper assumes for its
//! Orca reimplementation (§6.1: "Since Orca is not publicly available for
//! use, we implement our own version of Orca. We assume Orca uses the buddy
//! allocation algorithm to determine the memory address to store KV
//! cache.").
//!
//! Orca-Pow2 as the paper defines it (§6.1): the system "over-reserves the
//! space for outputs by at most 2×. For example, if the true output length
//! is 25, it reserves 32 positions for outputs." The prompt is reserved
//! exactly: `P + next_pow2(D)` slots for a prompt of `P` and an output of
//! `D` tokens (not `next_pow2(P + D)`), capped at the maximum length.
//!
//! Breakdown of a sequence with `used` tokens stored, `final` tokens at its
//! end and `reserved` slots: token states `used`; reservation
//! `final - used` (slots it will fill later); internal fragmentation
//! `reserved - final` (slots it will never fill). So the waste is
//! `reserved - used`. Free slots in holes too small for the waiting
//! request's reservation are external fragmentation.
//!
//! With the buddy allocator a reservation of `r` slots holds a block of
//! `next_pow2(r)` slots; the rounding `next_pow2(r) - r` is allocated to
//! the request and never holds a token, so it is *internal fragmentation*
//! (this module's definition above, and the allocator literature's:
//! Wilson et al., "Dynamic Storage Allocation: A Survey and Critical
//! Review", 1995, §2.3, on buddy systems' rounding). The vLLM paper's Fig. 2
//! has four categories, "Token states", "Reservation", "Internal frag." and
//! "External frag. & Others", and its §3 blames "external fragmentation
//! from the memory allocator like the buddy allocator"; the rounding could
//! as well be put under the paper's last one. Both are in the "used"
//! memory, so the choice leaves the Fig. 2 share (token states over used)
//! unchanged. The holes of a buddy pool are its free blocks: a free block
//! smaller than the waiting request's block is external fragmentation.

use std::collections::BTreeMap;

use memarena_core::error::{Error, Result};

use super::buddy::Buddy;
use super::{KvBreakdown, KvCounters, KvManager, KvRequest, invariant};

/// How much a sequence reserves (the `variant` of the `static` KV manager).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum StaticReservation {
    /// The model's maximum length (Orca-Max).
    #[serde(rename = "max")]
    MaxLen,
    /// The prompt plus the output length rounded up to a power of two,
    /// `P + next_pow2(D)`, capped at the maximum length (Orca-Pow2, vLLM
    /// paper §6.1).
    #[serde(rename = "pow2")]
    Pow2,
    /// Exactly the final length (Orca-Oracle: knows the output length).
    #[serde(rename = "oracle")]
    Oracle,
}

/// Where a reservation goes in the pool (the `allocator` of the `static`
/// KV manager).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub enum StaticAllocator {
    /// The lowest-addressed hole large enough; freed chunks coalesce with
    /// adjacent holes.
    #[default]
    #[serde(rename = "first_fit")]
    FirstFit,
    /// A binary buddy allocator: each reservation takes a block of the
    /// next power of two slots (see the module docs); the vLLM paper's
    /// assumption for Orca (§6.1).
    #[serde(rename = "buddy")]
    Buddy,
}

/// The parameters of the `static` KV manager.
///
/// Deserializes (serde) from a map of both fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// How much a sequence reserves.
    pub variant: StaticReservation,
    /// Where the reservation goes.
    pub allocator: StaticAllocator,
}

impl From<StaticReservation> for StaticConfig {
    /// `variant` on the first-fit allocator.
    fn from(variant: StaticReservation) -> StaticConfig {
        StaticConfig {
            variant,
            allocator: StaticAllocator::FirstFit,
        }
    }
}

/// The free space of the pool.
#[derive(Debug)]
enum Space {
    /// Holes of a first-fit allocator: offset -> length; disjoint and
    /// coalesced.
    FirstFit(BTreeMap<u64, u64>),
    /// A binary buddy allocator.
    Buddy(Buddy),
}

#[derive(Clone, Debug)]
struct Chunk {
    offset: u64,
    /// Slots held: the reservation (`per_seq * n`), rounded up to a power
    /// of two on the buddy allocator.
    len: u64,
    per_seq: u64,
    n: u32,
    seqs: u32,
    tokens: u32,
    final_tokens: u32,
}

/// A contiguous allocator of KV slots (first fit or buddy) with
/// per-request chunks.
///
/// Invariants: holes (free blocks) are disjoint and disjoint from chunks;
/// holes + chunks cover the pool exactly; first fit: holes are
/// non-adjacent (coalesced); buddy: every chunk is a block of the
/// reservation's next power of two, aligned to its size, and coalescing is
/// complete (see `kv/buddy.rs`); each chunk holds at most
/// `per_seq` tokens per sequence.
#[derive(Debug)]
pub struct StaticKv {
    policy: StaticReservation,
    max_len: u32,
    bytes_per_token: u64,
    total_slots: u64,
    space: Space,
    free_slots: u64,
    chunks: Vec<Option<Chunk>>,
    used_tokens: u64,
    final_tokens: u64,
    reserved_slots: u64,
}

impl StaticKv {
    /// A pool of `total_slots` token slots on the first-fit allocator;
    /// sequences reserve per `policy` with `max_len` the model's maximum
    /// length.
    pub fn new(
        total_slots: u64,
        bytes_per_token: u64,
        max_len: u32,
        policy: StaticReservation,
    ) -> Result<StaticKv> {
        StaticKv::with_config(total_slots, bytes_per_token, max_len, policy.into())
    }

    /// A pool of `total_slots` token slots; sequences reserve per
    /// `config.variant` on `config.allocator`, with `max_len` the model's
    /// maximum length.
    pub fn with_config(
        total_slots: u64,
        bytes_per_token: u64,
        max_len: u32,
        config: StaticConfig,
    ) -> Result<StaticKv> {
        if total_slots == 0 {
            return Err(Error::invalid(
                "kv.total_slots",
                "the KV pool holds no token",
            ));
        }
        let space = match config.allocator {
            StaticAllocator::FirstFit => Space::FirstFit(BTreeMap::from([(0, total_slots)])),
            StaticAllocator::Buddy => Space::Buddy(Buddy::new(total_slots)),
        };
        Ok(StaticKv {
            policy: config.variant,
            max_len,
            bytes_per_token,
            total_slots,
            space,
            free_slots: total_slots,
            chunks: Vec::new(),
            used_tokens: 0,
            final_tokens: 0,
            reserved_slots: 0,
        })
    }

    /// Slots one sequence of `req` reserves.
    pub fn reservation(&self, req: &KvRequest) -> u64 {
        let f = req.max_tokens as u64;
        match self.policy {
            StaticReservation::MaxLen => self.max_len as u64,
            StaticReservation::Pow2 => {
                // `max_tokens = P + D - 1`; the output `D` is at least 1.
                let p = (req.prompt_tokens as u64).min(f);
                let d = f + 1 - p;
                (p + d.next_power_of_two()).min(self.max_len as u64).max(f)
            }
            StaticReservation::Oracle => f,
        }
    }

    fn chunk(&self, rid: u32) -> Option<&Chunk> {
        self.chunks.get(rid as usize).and_then(|c| c.as_ref())
    }

    /// Slots a reservation of `want` slots holds: `want` on first fit,
    /// its next power of two on the buddy allocator.
    fn held_len(&self, want: u64) -> u64 {
        match self.space {
            Space::FirstFit(_) => want,
            Space::Buddy(_) => Buddy::block_len(want),
        }
    }

    /// The largest reservation the empty pool can hold.
    fn largest_hold(&self) -> u64 {
        match &self.space {
            Space::FirstFit(_) => self.total_slots,
            Space::Buddy(b) => b.largest_block(),
        }
    }

    /// Takes room for `want` slots: `(offset, slots held)`.
    fn take(&mut self, want: u64) -> Option<(u64, u64)> {
        let got = match &mut self.space {
            Space::FirstFit(holes) => {
                let (&offset, &hole) = holes.iter().find(|&(_, &l)| l >= want)?;
                holes.remove(&offset);
                if hole > want {
                    holes.insert(offset + want, hole - want);
                }
                (offset, want)
            }
            Space::Buddy(b) => b.alloc(want)?,
        };
        self.free_slots -= got.1;
        Some(got)
    }

    fn give_back(&mut self, mut offset: u64, mut len: u64) {
        self.free_slots += len;
        match &mut self.space {
            Space::FirstFit(holes) => {
                if let Some((&po, &pl)) = holes.range(..offset).next_back()
                    && po + pl == offset
                {
                    holes.remove(&po);
                    offset = po;
                    len += pl;
                }
                if let Some(&nl) = holes.get(&(offset + len)) {
                    holes.remove(&(offset + len));
                    len += nl;
                }
                holes.insert(offset, len);
            }
            Space::Buddy(b) => b.release(offset, len),
        }
    }
}

impl KvManager for StaticKv {
    fn name(&self) -> &'static str {
        "static"
    }

    fn pool_bytes(&self) -> u64 {
        self.total_slots * self.bytes_per_token
    }

    fn can_ever_fit(&self, req: &KvRequest) -> bool {
        req.max_tokens <= self.max_len
            && self.held_len(self.reservation(req) * req.n_parallel as u64) <= self.largest_hold()
    }

    fn admit(&mut self, rid: u32, req: &KvRequest, _hit_tokens: u32, tokens: u32) -> bool {
        assert!(self.chunk(rid).is_none(), "request {rid} admitted twice");
        let per_seq = self.reservation(req);
        let len = per_seq * req.n_parallel as u64;
        if tokens as u64 > per_seq {
            return false;
        }
        let Some((offset, len)) = self.take(len) else {
            return false;
        };
        let i = rid as usize;
        if self.chunks.len() <= i {
            self.chunks.resize_with(i + 1, || None);
        }
        self.chunks[i] = Some(Chunk {
            offset,
            len,
            per_seq,
            n: req.n_parallel,
            seqs: 1,
            tokens,
            final_tokens: req.max_tokens,
        });
        self.used_tokens += tokens as u64;
        self.final_tokens += req.max_tokens as u64 * req.n_parallel as u64;
        self.reserved_slots += len;
        true
    }

    fn grow(&mut self, rid: u32, tokens: u32, n_seqs: u32) -> bool {
        let Some(c) = self.chunks.get_mut(rid as usize).and_then(|c| c.as_mut()) else {
            return false;
        };
        let seqs = n_seqs.max(c.seqs);
        let tokens = tokens.max(c.tokens);
        if tokens as u64 > c.per_seq || seqs > c.n {
            return false;
        }
        self.used_tokens -= c.tokens as u64 * c.seqs as u64;
        c.seqs = seqs;
        c.tokens = tokens;
        self.used_tokens += c.tokens as u64 * c.seqs as u64;
        true
    }

    fn quiet_decode_tokens(&self, rid: u32, n_seqs: u32) -> u32 {
        // Growth within the reservation only moves `used_tokens`.
        match self.chunk(rid) {
            Some(c) if n_seqs <= c.seqs => c
                .per_seq
                .saturating_sub(c.tokens as u64)
                .min(u32::MAX as u64) as u32,
            _ => 0,
        }
    }

    fn free(&mut self, rid: u32) {
        let Some(c) = self.chunks.get_mut(rid as usize).and_then(|c| c.take()) else {
            return;
        };
        self.used_tokens -= c.tokens as u64 * c.seqs as u64;
        self.final_tokens -= c.final_tokens as u64 * c.n as u64;
        self.reserved_slots -= c.len;
        self.give_back(c.offset, c.len);
    }

    fn resident_bytes(&self, rid: u32) -> u64 {
        self.chunk(rid).map_or(0, |c| c.len * self.bytes_per_token)
    }

    fn breakdown(&self, pending: Option<&KvRequest>) -> KvBreakdown {
        let b = self.bytes_per_token;
        // `pending` is given only while the head request is blocked on
        // memory (see the module docs of `kv`).
        let external = match pending {
            Some(r) => {
                let need = self.held_len(self.reservation(r) * r.n_parallel as u64);
                match &self.space {
                    Space::FirstFit(holes) => holes.values().filter(|&&l| l < need).sum::<u64>(),
                    Space::Buddy(b) => b.free_blocks().map(|(_, l)| l).filter(|&l| l < need).sum(),
                }
            }
            None => 0,
        };
        KvBreakdown {
            token_states_bytes: self.used_tokens * b,
            reserved_bytes: (self.final_tokens - self.used_tokens) * b,
            internal_frag_bytes: (self.reserved_slots - self.final_tokens) * b,
            external_frag_bytes: external * b,
            idle_mapped_bytes: 0,
            free_bytes: (self.free_slots - external) * b,
            cached_free_bytes: 0,
        }
    }

    fn counters(&self) -> KvCounters {
        KvCounters::default()
    }

    fn check_invariants(&self) -> Result<()> {
        let c = "static";
        let (mut used, mut fin, mut res) = (0u64, 0u64, 0u64);
        let mut chunks: Vec<(u64, u64)> = Vec::new();
        for (rid, ch) in self.chunks.iter().enumerate() {
            let Some(ch) = ch else { continue };
            if ch.tokens as u64 > ch.per_seq
                || ch.seqs > ch.n
                || ch.final_tokens as u64 > ch.per_seq
            {
                return Err(invariant(
                    c,
                    format!("request {rid} overflows its reservation"),
                ));
            }
            if ch.len != self.held_len(ch.per_seq * ch.n as u64) {
                return Err(invariant(
                    c,
                    format!(
                        "request {rid} holds {} slots for a reservation of {}",
                        ch.len,
                        ch.per_seq * ch.n as u64
                    ),
                ));
            }
            used += ch.tokens as u64 * ch.seqs as u64;
            fin += ch.final_tokens as u64 * ch.n as u64;
            res += ch.len;
            chunks.push((ch.offset, ch.len));
        }
        if used != self.used_tokens || fin != self.final_tokens || res != self.reserved_slots {
            return Err(invariant(c, "running sums disagree with the chunks".into()));
        }
        let holes = match &self.space {
            Space::FirstFit(holes) => holes,
            Space::Buddy(b) => {
                b.check(&chunks)
                    .map_err(|e| invariant(c, format!("buddy allocator: {e}")))?;
                if b.free_slots() != self.free_slots {
                    return Err(invariant(
                        c,
                        "running sums disagree with the free blocks".into(),
                    ));
                }
                return Ok(());
            }
        };
        let mut spans: Vec<(u64, u64)> = holes.iter().map(|(&o, &l)| (o, l)).collect();
        spans.extend(chunks);
        spans.sort_unstable();
        let mut end = 0;
        for (o, l) in spans {
            if o != end || l == 0 {
                return Err(invariant(
                    c,
                    format!("holes and chunks do not tile the pool at slot {end}"),
                ));
            }
            end = o + l;
        }
        if end != self.total_slots {
            return Err(invariant(
                c,
                format!("tiling ends at {end}, pool has {}", self.total_slots),
            ));
        }
        if holes.values().sum::<u64>() != self.free_slots {
            return Err(invariant(c, "running sums disagree with the holes".into()));
        }
        if holes
            .iter()
            .zip(holes.iter().skip(1))
            .any(|((&o, &l), (&o2, _))| o + l == o2)
        {
            return Err(invariant(c, "adjacent holes not coalesced".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(prompt: u32, output: u32) -> KvRequest {
        KvRequest {
            prompt_tokens: prompt,
            max_tokens: prompt + output - 1,
            n_parallel: 1,
            ..KvRequest::default()
        }
    }

    #[test]
    fn waste_is_reserved_minus_used() {
        let mut s = StaticKv::new(10_000, 1, 2048, StaticReservation::MaxLen).unwrap();
        let r = req(100, 51); // final 150 tokens
        assert!(s.admit(0, &r, 0, 100));
        let b = s.breakdown(None);
        assert_eq!(b.token_states_bytes, 100);
        assert_eq!(b.reserved_bytes, 50);
        assert_eq!(b.internal_frag_bytes, 2048 - 150);
        assert_eq!(b.reserved_bytes + b.internal_frag_bytes, 2048 - 100); // reserved - used
        assert_eq!(b.total(), 10_000);
        let mut p = StaticKv::new(10_000, 1, 2048, StaticReservation::Pow2).unwrap();
        assert!(p.admit(0, &r, 0, 100));
        // 100 prompt + next_pow2(51 output) = 164 slots, 150 of them filled.
        assert_eq!(p.breakdown(None).internal_frag_bytes, 164 - 150);
        let mut o = StaticKv::new(10_000, 1, 2048, StaticReservation::Oracle).unwrap();
        assert!(o.admit(0, &r, 0, 100));
        assert_eq!(o.breakdown(None).internal_frag_bytes, 0);
        s.check_invariants().unwrap();
    }

    #[test]
    fn pow2_rounds_the_output_not_the_prompt() {
        // vLLM paper §6.1: "if the true output length is 25, it reserves 32
        // positions for outputs": P + next_pow2(D).
        let s = StaticKv::new(100_000, 1, 4096, StaticReservation::Pow2).unwrap();
        assert_eq!(s.reservation(&req(1000, 25)), 1032);
        assert_eq!(s.reservation(&req(1000, 32)), 1032);
        assert_eq!(s.reservation(&req(1000, 33)), 1064);
        assert_eq!(s.reservation(&req(3, 1)), 4);
        // The whole-length rule, next_pow2(P + D - 1), took 4096 for both.
        assert_eq!(s.reservation(&req(3000, 600)), 3000 + 1024);
        assert_eq!(s.reservation(&req(1500, 600)), 1500 + 1024);
        // Capped at the 4096 context.
        assert_eq!(s.reservation(&req(3400, 600)), 4096);
        // Never below the final length.
        assert_eq!(s.reservation(&req(4000, 97)), 4096);
    }

    #[test]
    fn first_fit_coalesces_and_reports_external_fragmentation() {
        let mut s = StaticKv::new(1000, 1, 1000, StaticReservation::Oracle).unwrap();
        for i in 0..4 {
            assert!(s.admit(i, &req(200, 51), 0, 200)); // 250 slots each
        }
        s.free(0);
        s.free(2);
        // Two 250-slot holes: a 300-slot request does not fit.
        let big = req(300, 1);
        assert!(!s.admit(9, &big, 0, 300));
        let b = s.breakdown(Some(&big));
        assert_eq!(b.external_frag_bytes, 500);
        assert_eq!(b.free_bytes, 0);
        assert_eq!(b.total(), 1000);
        s.free(1);
        s.check_invariants().unwrap();
        assert!(s.admit(9, &big, 0, 300)); // coalesced 750 at offset 0
        s.check_invariants().unwrap();
    }

    fn buddy(total: u64, variant: StaticReservation) -> StaticKv {
        let cfg = StaticConfig {
            variant,
            allocator: StaticAllocator::Buddy,
        };
        StaticKv::with_config(total, 1, 1000, cfg).unwrap()
    }

    #[test]
    fn buddy_rounds_to_a_power_of_two_as_internal_fragmentation() {
        // 100 slots: arenas of 64 (offset 0), 32 (64) and 4 (96).
        let mut s = buddy(100, StaticReservation::Oracle);
        // A: final 30 tokens -> a 32-slot block; the smallest free block
        // that holds it is the 32-slot arena at 64.
        assert!(s.admit(0, &req(20, 11), 0, 20));
        assert_eq!(
            (s.chunks[0].as_ref().unwrap().offset, s.resident_bytes(0)),
            (64, 32)
        );
        let b = s.breakdown(None);
        assert_eq!(
            (
                b.token_states_bytes,
                b.reserved_bytes,
                b.internal_frag_bytes,
                b.free_bytes
            ),
            (20, 10, 2, 68)
        );
        // B: final 40 -> 64 slots at 0; C: final 3 -> 4 slots at 96.
        assert!(s.admit(1, &req(10, 31), 0, 10));
        assert!(s.admit(2, &req(3, 1), 0, 3));
        assert_eq!(s.breakdown(None).free_bytes, 0);
        s.check_invariants().unwrap();
        // A leaves a 32-slot block; D (final 33 -> 64 slots) does not fit
        // it, which is external fragmentation while D waits.
        s.free(0);
        let d = req(30, 4);
        assert!(!s.admit(3, &d, 0, 30));
        let b = s.breakdown(Some(&d));
        assert_eq!((b.external_frag_bytes, b.free_bytes), (32, 0));
        assert_eq!(b.internal_frag_bytes, (64 - 40) + (4 - 3));
        assert_eq!(b.total(), 100);
        s.check_invariants().unwrap();
        // B leaves: 0..64 free again, and D takes it.
        s.free(1);
        assert!(s.admit(3, &d, 0, 30));
        assert_eq!(s.chunks[3].as_ref().unwrap().offset, 0);
        s.check_invariants().unwrap();
        // Pow2 rounds the output first, then the buddy rounds the whole:
        // 20 + next_pow2(11) = 36 -> 64 slots, 64 - 30 of them never filled.
        let mut p = buddy(100, StaticReservation::Pow2);
        assert!(p.admit(0, &req(20, 11), 0, 20));
        assert_eq!(p.breakdown(None).internal_frag_bytes, 64 - 30);
        p.check_invariants().unwrap();
    }

    #[test]
    fn buddy_never_fits_a_block_larger_than_the_largest_arena() {
        let s = buddy(100, StaticReservation::Oracle);
        let ff = StaticKv::new(100, 1, 1000, StaticReservation::Oracle).unwrap();
        // Final 64: one 64-slot block. Final 65: a 128-slot block, more
        // than the largest arena (64), though first fit holds 65 of 100.
        assert!(s.can_ever_fit(&req(60, 5)));
        assert!(!s.can_ever_fit(&req(60, 6)));
        assert!(ff.can_ever_fit(&req(60, 6)));
    }

    #[test]
    fn a_corrupted_buddy_chunk_is_reported() {
        let mut s = buddy(64, StaticReservation::Oracle);
        assert!(s.admit(0, &req(20, 11), 0, 20));
        s.chunks[0].as_mut().unwrap().len = 30;
        s.reserved_slots = 30;
        let e = s.check_invariants().unwrap_err().to_string();
        assert!(e.contains("holds 30 slots for a reservation of 30"), "{e}");
    }
}
