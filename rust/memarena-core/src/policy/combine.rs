//! Deterministic combination of two paging algorithms: simulate both on the
//! same requests and follow the one with fewer misses so far, switching
//! only when the followed one has more than `switch_factor` times the
//! other's misses. This is the standard way to make a learning-augmented
//! policy robust (Fiat et al. 1991 combine paging algorithms this way;
//! Lykouris & Vassilvitskii 2018 and Wei 2020 use it to pair a predictor
//! follower with Marker). `mark0_robust` pairs [`super::Mark0`] with
//! [`super::Marker`].

use super::{Cache, IdList, Policy};
use crate::request::{ObjId, Request};

/// Follow-the-better of two policies, with lazy evictions.
///
/// Both candidates run as caches of the same capacity on every request
/// (in `lookup`, which the engine calls once per request). This policy's
/// own resident set is kept in LRU order; on a fault it evicts the least
/// recently used resident page that the *followed* candidate does not hold
/// (lazy: it never copies the candidate's cache, so a switch costs nothing
/// up front). If every resident page is held by the candidate (possible
/// only with variable sizes) it evicts the LRU page.
///
/// Guarantee, unit pages, `switch_factor = c > 1` (derived here): let `m`
/// be the smaller of the two candidates' final miss counts and `J` the
/// number of switches. While following `X`, every fault of this cache is a
/// fault of `X` or a request to a page `X` holds and this cache does not,
/// and there are at most `k` of those after each switch (it never evicts a
/// page `X` holds while another choice exists). The count of the candidate
/// left at each switch grows by more than `c` from one switch to the next,
/// so the followed faults sum to at most `(c^2 / (c - 1) + 1) m + c / (c -
/// 1)`, and `cost <= (c^2 / (c - 1) + 1) m + c / (c - 1) + k (J + 1)` with
/// `J <= log_c(c m + 1)`: `5 m + 2 + k (J + 1)` for `c = 2`. A smaller `c`
/// tracks the better candidate more closely at a weaker worst case
/// (`mark0_robust` defaults to `c = 1.1`). With `mark0_robust`: exactly
/// Belady's misses with oracle bits (Mark0 then has OPT misses, never more
/// than Marker's, so it is never left), and `O(H_k)` times OPT (plus the
/// switching term) whatever the bits.
/// Evicting costs a scan from the LRU end past pages the candidate holds,
/// O(k) in the worst case.
///
/// Invariant: `resident` holds exactly this cache's pages; `follow` is 0
/// or 1.
pub struct Combine {
    name: &'static str,
    candidates: [Cache; 2],
    misses: [u64; 2],
    follow: usize,
    switch_factor: f64,
    resident: IdList,
}

impl Combine {
    /// Combine two policies, each run as a cache of `capacity_bytes`,
    /// starting by following `first`. `switch_factor` must be above 1.
    pub fn new(
        name: &'static str,
        capacity_bytes: u64,
        first: Box<dyn Policy>,
        second: Box<dyn Policy>,
        switch_factor: f64,
    ) -> Self {
        assert!(
            switch_factor > 1.0,
            "switch_factor must be > 1, got {switch_factor}"
        );
        Combine {
            name,
            candidates: [
                Cache::new(capacity_bytes, first),
                Cache::new(capacity_bytes, second),
            ],
            misses: [0, 0],
            follow: 0,
            switch_factor,
            resident: IdList::new(),
        }
    }

    /// Misses of each candidate so far.
    pub fn candidate_misses(&self) -> [u64; 2] {
        self.misses
    }

    /// Index of the candidate followed now (0: the first).
    pub fn following(&self) -> usize {
        self.follow
    }
}

impl std::fmt::Debug for Combine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combine")
            .field("name", &self.name)
            .field("misses", &self.misses)
            .field("follow", &self.follow)
            .field("resident", &self.resident.len())
            .finish()
    }
}

impl Policy for Combine {
    fn name(&self) -> &'static str {
        self.name
    }

    fn lookup(&mut self, req: &Request) -> bool {
        for (cache, misses) in self.candidates.iter_mut().zip(&mut self.misses) {
            if !cache.access(req).is_hit() {
                *misses += 1;
            }
        }
        let other = 1 - self.follow;
        if self.misses[self.follow] as f64 > self.switch_factor * self.misses[other] as f64 {
            self.follow = other;
        }
        match self.resident.get(req.id) {
            Some(h) => {
                self.resident.move_to_head(h);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, req: &Request) {
        self.resident.push_head(req.id, req.size, 0);
    }

    fn evict(&mut self, _req: &Request) -> (ObjId, u64) {
        let leader = &self.candidates[self.follow];
        let mut h = self.resident.tail();
        while let Some(cur) = h {
            if !leader.contains(self.resident.id(cur)) {
                let (id, size, _) = self.resident.remove(cur);
                return (id, size);
            }
            h = self.resident.prev_toward_head(cur);
        }
        let (id, size, _) = self
            .resident
            .pop_tail()
            .expect("evict from an empty Combine");
        (id, size)
    }

    fn contains(&self, id: ObjId) -> bool {
        self.resident.contains(id)
    }

    fn len(&self) -> usize {
        self.resident.len()
    }

    fn debug_check(&self) -> Result<(), String> {
        if self.follow > 1 {
            return Err(format!("follow index {} out of range", self.follow));
        }
        for cache in &self.candidates {
            cache.debug_check()?;
        }
        self.resident.check()
    }
}
