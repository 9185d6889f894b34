//! vAttention-style KV cache (Prabhu et al., "vAttention: Dynamic Memory
//! Management for Serving LLMs without PagedAttention", ASPLOS '25):
//! each of `max_batch_size` request slots owns a contiguous *virtual*
//! buffer of the model's maximum length in every layer's K and V tensors;
//! physical pages are mapped into it on demand as the request grows.
//!
//! Semantics follow `vattention/vattention.cu` in github:microsoft/vattention
//! (read, not copied): `tokens_per_page = page_size / (kv_heads * head_dim *
//! dtype_bytes)` per layer; one "KV block" is a page in each of the `2 *
//! layers` buffers; `alloc_new_batch_idx` picks the first inactive slot,
//! or one whose mapped pages cover the request with the fewest pages
//! (best fit); `free_batch_idx` keeps a finished slot's pages mapped
//! (deferred reclamation), and `reclaim_kvblocks_on_demand` unmaps pages of
//! inactive slots, highest slot first, when the free pool runs short.
//!
//! Physical memory only is accounted: the virtual reservation costs none.
//! Parallel samples each take their own slot and copy the prompt (no
//! sharing). Mapping latency is an optional per-page cost (vAttention
//! overlaps it with compute, so it defaults to 0).

use memarena_core::error::{Error, Result};

use super::{KvBreakdown, KvCounters, KvManager, KvRequest, invariant};

/// Parameters of [`VattnKv`].
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VattnConfig {
    /// Physical page size per layer and K/V buffer: one of
    /// [`VattnConfig::PAGE_SIZES`].
    pub page_size_bytes: u64,
    /// Keep a finished request's pages mapped on its slot (vAttention's
    /// default); reclaimed on demand.
    #[serde(deserialize_with = "memarena_core::config::strict_bool")]
    pub deferred_reclaim: bool,
    /// Seconds added to the iteration per page mapped (0: overlapped).
    pub page_map_latency_s: f64,
}

impl VattnConfig {
    /// The page sizes vAttention supports, bytes: 64 KiB, 128 KiB and
    /// 256 KiB (its modified NVIDIA driver maps these) and 2 MiB (the CUDA
    /// virtual-memory API's granularity), as the paper evaluates them. 512 KiB
    /// and 1 MiB are powers of two in that range but not vAttention sizes.
    pub const PAGE_SIZES: [u64; 4] = [64 << 10, 128 << 10, 256 << 10, 2 << 20];
}

impl Default for VattnConfig {
    fn default() -> Self {
        VattnConfig {
            page_size_bytes: 2 << 20,
            deferred_reclaim: true,
            page_map_latency_s: 0.0,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Slot {
    mapped: u32,
    tokens: u32,
    active: bool,
}

/// Demand-mapped virtual reservation.
///
/// Invariants: `free + Σ mapped = total` page groups; every active slot has
/// `mapped = ceil(tokens / tokens_per_page)` (at least); each request's slots
/// are active and owned by it alone; `excess` is the sum over slots of the
/// pages mapped beyond what the slot must keep.
#[derive(Debug)]
pub struct VattnKv {
    cfg: VattnConfig,
    tokens_per_page: u32,
    group_bytes: u64,
    bytes_per_token: u64,
    total_pages: u32,
    free_pages: u32,
    idle_mapped: u64,
    /// Σ over slots of `mapped - required` (what reclamation can take).
    excess: u64,
    pages_per_group: u64,
    slots: Vec<Slot>,
    owners: Vec<Vec<u32>>,
    pending_maps: u64,
    counters: KvCounters,
}

impl VattnKv {
    /// A pool of `pool_bytes` for a model with `bytes_per_token` of KV over
    /// all layers, `bytes_per_token_per_layer` per K (or V) buffer, and
    /// `num_layers` layers; `max_batch_size` slots.
    pub fn new(
        pool_bytes: u64,
        bytes_per_token: u64,
        bytes_per_token_per_layer: u64,
        num_layers: u32,
        max_batch_size: u32,
        cfg: VattnConfig,
    ) -> Result<VattnKv> {
        let p = cfg.page_size_bytes;
        if !VattnConfig::PAGE_SIZES.contains(&p) {
            return Err(Error::invalid(
                "kv.page_size_bytes",
                format!(
                    "must be one of 65536, 131072, 262144, 2097152 (vAttention's 64K/128K/256K/2M), got {p}"
                ),
            ));
        }
        if !(cfg.page_map_latency_s >= 0.0 && cfg.page_map_latency_s.is_finite()) {
            return Err(Error::invalid(
                "kv.page_map_latency_s",
                "must be finite and >= 0",
            ));
        }
        if bytes_per_token_per_layer == 0 || bytes_per_token_per_layer > p {
            return Err(Error::invalid(
                "kv.page_size_bytes",
                format!("{p} bytes hold no token of {bytes_per_token_per_layer} bytes per layer"),
            ));
        }
        let tokens_per_page = (p / bytes_per_token_per_layer) as u32;
        let pages_per_group = 2 * num_layers as u64;
        let group_bytes = p * pages_per_group;
        let total = pool_bytes / group_bytes;
        if total == 0 || total >= u32::MAX as u64 {
            return Err(Error::invalid(
                "kv.pool",
                format!(
                    "{pool_bytes} bytes of KV pool hold {total} page groups of {group_bytes} bytes"
                ),
            ));
        }
        if max_batch_size == 0 {
            return Err(Error::invalid("scheduler.max_num_seqs", "must be >= 1"));
        }
        Ok(VattnKv {
            cfg,
            tokens_per_page,
            group_bytes,
            bytes_per_token,
            total_pages: total as u32,
            free_pages: total as u32,
            idle_mapped: 0,
            excess: 0,
            pages_per_group,
            slots: vec![Slot::default(); max_batch_size as usize],
            owners: Vec::new(),
            pending_maps: 0,
            counters: KvCounters::default(),
        })
    }

    /// Tokens one page group holds.
    pub fn tokens_per_page(&self) -> u32 {
        self.tokens_per_page
    }

    /// Free page groups.
    pub fn free_pages(&self) -> u32 {
        self.free_pages
    }

    fn pages_for(&self, tokens: u32) -> u32 {
        tokens.div_ceil(self.tokens_per_page)
    }

    fn owned(&self, rid: u32) -> Option<&Vec<u32>> {
        self.owners.get(rid as usize).filter(|v| !v.is_empty())
    }

    /// vAttention's `alloc_new_batch_idx`, skipping `exclude`d slots.
    fn pick_slot(&self, need: u32, exclude: &[u32]) -> Option<u32> {
        let mut pick: Option<u32> = None;
        for (i, s) in self.slots.iter().enumerate() {
            if s.active || exclude.contains(&(i as u32)) {
                continue;
            }
            match pick {
                None => pick = Some(i as u32),
                Some(p) => {
                    if s.mapped >= need && s.mapped < self.slots[p as usize].mapped {
                        pick = Some(i as u32);
                    }
                }
            }
        }
        pick
    }

    /// Pages a slot must keep: its current tokens' pages if active, else 0.
    fn required(&self, s: &Slot) -> u32 {
        if s.active {
            self.pages_for(s.tokens)
        } else {
            0
        }
    }

    /// Pages obtainable for more mappings: the free pool plus every slot's
    /// pages beyond what it must keep, except the slots in `keep`.
    fn available(&self, keep: &[u32]) -> u64 {
        let kept: u64 = keep
            .iter()
            .map(|&i| self.excess_of(&self.slots[i as usize]))
            .sum();
        self.free_pages as u64 + self.excess - kept
    }

    /// Pages of `s` beyond what it must keep.
    fn excess_of(&self, s: &Slot) -> u64 {
        (s.mapped - self.required(s).min(s.mapped)) as u64
    }

    /// Changes slot `i` by `f`, keeping `excess` up to date.
    #[inline]
    fn update_slot(&mut self, i: usize, f: impl FnOnce(&mut Slot)) {
        let before = self.excess_of(&self.slots[i]);
        f(&mut self.slots[i]);
        self.excess = self.excess + self.excess_of(&self.slots[i]) - before;
    }

    /// Unmaps pages beyond what each slot must keep (highest slot first, as
    /// vAttention's `reclaim_kvblocks_on_demand`; slots in `keep` spared)
    /// until `want` pages are free.
    fn reclaim(&mut self, want: u32, keep: &[u32]) {
        for i in (0..self.slots.len()).rev() {
            if self.free_pages >= want {
                break;
            }
            let req = self.required(&self.slots[i]);
            let s = &mut self.slots[i];
            if s.mapped <= req || keep.contains(&(i as u32)) {
                continue;
            }
            let k = (s.mapped - req).min(want - self.free_pages);
            s.mapped -= k;
            self.excess -= k as u64;
            if !s.active {
                self.idle_mapped -= k as u64;
            }
            self.free_pages += k;
            self.counters.pages_reclaimed += k as u64;
        }
    }

    /// Unmaps pages of the `slots` beyond `need` each (last listed first)
    /// until `want` pages are free.
    fn trim(&mut self, want: u32, slots: &[u32], need: u32) {
        for &i in slots.iter().rev() {
            if self.free_pages >= want {
                break;
            }
            let s = &self.slots[i as usize];
            if s.mapped <= need {
                continue;
            }
            let k = (s.mapped - need).min(want - self.free_pages);
            self.update_slot(i as usize, |s| s.mapped -= k);
            if !self.slots[i as usize].active {
                self.idle_mapped -= k as u64;
            }
            self.free_pages += k;
            self.counters.pages_reclaimed += k as u64;
        }
    }

    fn map(&mut self, slot: u32, pages: u32) {
        assert!(
            self.free_pages >= pages,
            "mapping {pages} pages with {} free",
            self.free_pages
        );
        self.free_pages -= pages;
        self.update_slot(slot as usize, |s| s.mapped += pages);
        self.counters.pages_mapped += pages as u64;
        self.pending_maps += pages as u64;
    }

    fn activate(&mut self, slot: u32, tokens: u32) {
        debug_assert!(!self.slots[slot as usize].active);
        self.update_slot(slot as usize, |s| s.active = true);
        self.idle_mapped -= self.slots[slot as usize].mapped as u64;
        let need = self
            .pages_for(tokens)
            .saturating_sub(self.slots[slot as usize].mapped);
        self.map(slot, need);
        self.update_slot(slot as usize, |s| s.tokens = tokens);
    }
}

impl KvManager for VattnKv {
    fn name(&self) -> &'static str {
        "vattention"
    }

    fn pool_bytes(&self) -> u64 {
        self.total_pages as u64 * self.group_bytes
    }

    fn can_ever_fit(&self, req: &KvRequest) -> bool {
        req.n_parallel as usize <= self.slots.len()
            && req.n_parallel as u64 * self.pages_for(req.max_tokens) as u64
                <= self.total_pages as u64
    }

    fn admit(&mut self, rid: u32, req: &KvRequest, _hit_tokens: u32, tokens: u32) -> bool {
        let _ = req;
        assert!(self.owned(rid).is_none(), "request {rid} admitted twice");
        let need = self.pages_for(tokens);
        let Some(slot) = self.pick_slot(need, &[]) else {
            return false;
        };
        let extra = need.saturating_sub(self.slots[slot as usize].mapped);
        if extra > self.free_pages {
            if extra as u64 > self.available(&[slot]) {
                return false;
            }
            self.reclaim(extra, &[slot]);
        }
        self.activate(slot, tokens);
        let i = rid as usize;
        if self.owners.len() <= i {
            self.owners.resize_with(i + 1, Vec::new);
        }
        self.owners[i] = vec![slot];
        true
    }

    fn grow(&mut self, rid: u32, tokens: u32, n_seqs: u32) -> bool {
        let need = self.pages_for(tokens);
        // Fast path: no fork and every slot already maps enough pages.
        if let Some(own) = self.owners.get(rid as usize)
            && !own.is_empty()
            && own.len() as u32 >= n_seqs
            && own.iter().all(|&s| self.slots[s as usize].mapped >= need)
        {
            for k in 0..own.len() {
                let s = self.owners[rid as usize][k] as usize;
                self.update_slot(s, |slot| slot.tokens = slot.tokens.max(tokens));
            }
            return true;
        }
        let Some(own) = self.owned(rid).cloned() else {
            return false;
        };
        // New slots for forked samples (each copies the prompt).
        let mut new_slots = Vec::new();
        for _ in own.len() as u32..n_seqs {
            let mut excl = own.clone();
            excl.extend_from_slice(&new_slots);
            match self.pick_slot(need, &excl) {
                Some(s) => new_slots.push(s),
                None => return false,
            }
        }
        let mut extra = 0u64;
        for &s in own.iter().chain(&new_slots) {
            extra += need.saturating_sub(self.slots[s as usize].mapped) as u64;
        }
        if extra > self.free_pages as u64 {
            let mut keep = own.clone();
            keep.extend_from_slice(&new_slots);
            // Pages the request's own slots map beyond `need` (inherited
            // from a finished request through slot reuse) hold no tokens and
            // are reclaimable too, after every other slot's: without them a
            // request alone on the device could fail to grow although it
            // fits the pool, and be preempted forever.
            let own_excess: u64 = keep
                .iter()
                .map(|&s| self.slots[s as usize].mapped.saturating_sub(need) as u64)
                .sum();
            if extra > self.available(&keep) + own_excess {
                return false;
            }
            self.reclaim(extra as u32, &keep);
            self.trim(extra as u32, &keep, need);
        }
        let base = self.slots[own[0] as usize].tokens;
        for &s in &new_slots {
            self.activate(s, base);
        }
        for &s in own.iter().chain(&new_slots) {
            let have = self.slots[s as usize].mapped;
            if need > have {
                self.map(s, need - have);
            }
            self.update_slot(s as usize, |slot| slot.tokens = slot.tokens.max(tokens));
        }
        self.owners[rid as usize].extend_from_slice(&new_slots);
        true
    }

    fn free(&mut self, rid: u32) {
        let Some(own) = self.owners.get_mut(rid as usize).map(std::mem::take) else {
            return;
        };
        let deferred = self.cfg.deferred_reclaim;
        for s in own {
            let mapped = self.slots[s as usize].mapped;
            self.update_slot(s as usize, |slot| {
                slot.active = false;
                slot.tokens = 0;
                if !deferred {
                    slot.mapped = 0;
                }
            });
            if deferred {
                self.idle_mapped += mapped as u64;
            } else {
                self.free_pages += mapped;
                self.counters.pages_reclaimed += mapped as u64;
            }
        }
    }

    fn resident_bytes(&self, rid: u32) -> u64 {
        self.owned(rid).map_or(0, |own| {
            own.iter()
                .map(|&s| self.slots[s as usize].mapped as u64)
                .sum::<u64>()
                * self.group_bytes
        })
    }

    fn breakdown(&self, _pending: Option<&KvRequest>) -> KvBreakdown {
        let (mut tokens, mut needed) = (0u64, 0u64);
        for s in self.slots.iter().filter(|s| s.active) {
            tokens += s.tokens as u64;
            needed += self.pages_for(s.tokens) as u64;
        }
        let tb = self.bytes_per_token;
        KvBreakdown {
            token_states_bytes: tokens * tb,
            reserved_bytes: 0,
            internal_frag_bytes: needed * self.group_bytes - tokens * tb,
            external_frag_bytes: 0,
            // Every page no token is in and reclamation may take (`excess`):
            // pages kept on idle slots (deferred reclamation) and pages a
            // reused slot maps beyond its request's tokens. Their own
            // category, not "used" (see the module docs of `kv`).
            idle_mapped_bytes: self.excess * self.group_bytes,
            free_bytes: self.free_pages as u64 * self.group_bytes,
            cached_free_bytes: 0,
        }
    }

    fn quiet_decode_tokens(&self, rid: u32, n_seqs: u32) -> u32 {
        // `grow`'s fast path (every slot maps the pages already), and only
        // within each slot's last token-holding page: what a slot must keep
        // (`required`) is what other requests' reclamation reads of it.
        let Some(own) = self.owned(rid) else {
            return 0;
        };
        if (own.len() as u32) < n_seqs {
            return 0;
        }
        let mut quiet = u32::MAX;
        for &s in own {
            let slot = &self.slots[s as usize];
            let held = self.required(slot).min(slot.mapped) as u64 * self.tokens_per_page as u64;
            quiet = quiet.min(held.saturating_sub(slot.tokens as u64).min(u32::MAX as u64) as u32);
        }
        quiet
    }

    fn take_step_overhead(&mut self) -> (u64, f64) {
        let maps = std::mem::take(&mut self.pending_maps);
        (
            0,
            maps as f64 * self.pages_per_group as f64 * self.cfg.page_map_latency_s,
        )
    }

    fn counters(&self) -> KvCounters {
        self.counters
    }

    fn check_invariants(&self) -> Result<()> {
        let c = "vattention";
        let mapped: u64 = self.slots.iter().map(|s| s.mapped as u64).sum();
        let idle: u64 = self
            .slots
            .iter()
            .filter(|s| !s.active)
            .map(|s| s.mapped as u64)
            .sum();
        if mapped + self.free_pages as u64 != self.total_pages as u64 {
            return Err(invariant(
                c,
                format!(
                    "{mapped} mapped + {} free != {} pages",
                    self.free_pages, self.total_pages
                ),
            ));
        }
        if idle != self.idle_mapped {
            return Err(invariant(
                c,
                format!("idle mapped {} vs {idle} recounted", self.idle_mapped),
            ));
        }
        let excess: u64 = self.slots.iter().map(|s| self.excess_of(s)).sum();
        if excess != self.excess {
            return Err(invariant(
                c,
                format!("reclaimable pages {} vs {excess} recounted", self.excess),
            ));
        }
        let mut owner = vec![u32::MAX; self.slots.len()];
        for (rid, own) in self.owners.iter().enumerate() {
            for &s in own {
                if owner[s as usize] != u32::MAX {
                    return Err(invariant(
                        c,
                        format!("slot {s} owned by requests {} and {rid}", owner[s as usize]),
                    ));
                }
                owner[s as usize] = rid as u32;
            }
        }
        for (i, s) in self.slots.iter().enumerate() {
            if s.active != (owner[i] != u32::MAX) {
                return Err(invariant(
                    c,
                    format!("slot {i} active {} but owner {}", s.active, owner[i]),
                ));
            }
            if s.active && s.mapped < self.pages_for(s.tokens) {
                return Err(invariant(
                    c,
                    format!("slot {i}: {} tokens on {} pages", s.tokens, s.mapped),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::ModelSpec;

    fn req(prompt: u32, output: u32) -> KvRequest {
        KvRequest {
            prompt_tokens: prompt,
            max_tokens: prompt + output - 1,
            n_parallel: 1,
            ..KvRequest::default()
        }
    }

    #[test]
    fn pages_map_on_demand_with_2mb_pages_on_llama3_8b() {
        let m = ModelSpec::preset("llama3_8b").unwrap();
        let group = (2u64 << 20) * 64; // 2 MiB in each of 64 K/V buffers
        let mut v = VattnKv::new(
            10 * group + 5,
            m.kv_bytes_per_token(),
            m.kv_bytes_per_token_per_layer(),
            m.num_layers,
            4,
            VattnConfig::default(),
        )
        .unwrap();
        assert_eq!(v.tokens_per_page(), 1024); // 2 MiB / (8 heads * 128 * 2 B)
        assert_eq!(v.pool_bytes(), 10 * group);
        assert!(v.admit(0, &req(1500, 100), 0, 1500));
        assert_eq!(v.free_pages(), 8);
        let b = v.breakdown(None);
        assert_eq!(b.token_states_bytes, 1500 * 131072);
        assert_eq!(b.internal_frag_bytes, (2048 - 1500) * 131072);
        assert_eq!(b.total(), v.pool_bytes());
        assert!(v.grow(0, 2049, 1));
        assert_eq!(v.free_pages(), 7);
        v.free(0);
        // Deferred reclamation: the pages stay on the slot ...
        assert_eq!(v.free_pages(), 7);
        let b = v.breakdown(None);
        assert_eq!((b.idle_mapped_bytes, b.reserved_bytes), (3 * group, 0));
        assert_eq!((b.used(), b.total()), (0, v.pool_bytes()));
        v.check_invariants().unwrap();
        // ... and the next request reuses them (best fit): 1 page holds
        // its tokens, the 2 beyond stay idle mapped (reclaimable) ...
        assert!(v.admit(1, &req(100, 1), 0, 100));
        assert_eq!(v.free_pages(), 7);
        let b = v.breakdown(None);
        assert_eq!((b.idle_mapped_bytes, b.reserved_bytes), (2 * group, 0));
        assert_eq!(b.internal_frag_bytes, (1024 - 100) * 131072);
        assert_eq!(b.total(), v.pool_bytes());
        assert!(v.admit(2, &req(4000, 1), 0, 4000)); // slot 1, 4 pages
        v.free(1);
        v.free(2);
        assert_eq!(
            (v.free_pages(), v.breakdown(None).idle_mapped_bytes),
            (3, 7 * group)
        );
        // ... or another request reclaims them: slot 0 (3 pages) grows to 10,
        // taking the 3 free pages and 4 unmapped from idle slot 1.
        assert!(v.admit(3, &req(10 * 1024, 1), 0, 10 * 1024));
        assert_eq!(v.free_pages(), 0);
        assert_eq!(v.counters().pages_reclaimed, 4);
        v.check_invariants().unwrap();
    }

    #[test]
    fn forking_takes_surplus_pages_of_the_requests_own_slots() {
        // 3 page groups of 32 tokens (64 KiB pages), 2 slots, no free page:
        // slot 0 keeps 3 pages from a finished request; a 1-token request
        // reuses it and forks into slot 1, which needs a page that only
        // slot 0's surplus can give.
        let cfg = VattnConfig {
            page_size_bytes: 64 << 10,
            ..VattnConfig::default()
        };
        let mut v = VattnKv::new(3 * (64 << 10) * 64, 131072, 2048, 32, 2, cfg).unwrap();
        assert!(v.admit(0, &req(90, 1), 0, 90));
        v.free(0);
        assert!(v.admit(1, &req(1, 10), 0, 1));
        assert_eq!(v.free_pages(), 0);
        assert!(v.grow(1, 2, 2));
        assert_eq!((v.free_pages(), v.counters().pages_reclaimed), (0, 1));
        assert_eq!(v.resident_bytes(1), 3 * (64 << 10) * 64);
        v.check_invariants().unwrap();
        // The request still cannot take pages its own sequences hold.
        assert!(!v.grow(1, 33, 2)); // 2 x 2 pages > 3
        v.check_invariants().unwrap();
    }

    #[test]
    fn rejects_page_sizes_outside_64k_to_2m() {
        for p in [32 << 10, 3 << 20, 100_000, 512 << 10, 1 << 20] {
            let cfg = VattnConfig {
                page_size_bytes: p,
                ..VattnConfig::default()
            };
            assert!(VattnKv::new(1 << 34, 131072, 2048, 32, 4, cfg).is_err());
        }
    }
}
