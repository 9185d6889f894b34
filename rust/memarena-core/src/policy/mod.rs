//! Replacement policies behind one trait, and the cache engine that drives
//! them.
//!
//! The split follows libCacheSim's: the [`Cache`] engine owns capacity and
//! byte accounting and decides *when* to evict (until the incoming object
//! fits); a [`Policy`] owns its metadata and decides *what* to evict.
//!
//! Adding a policy is one file in this folder plus its variant (and
//! parameters, if any) in [`PolicyConfig`].

mod arc;
mod belady;
mod blind_oracle;
mod clock;
mod combine;
mod config;
mod fifo;
mod lfu;
mod lirs;
mod list;
mod lru;
mod mark0;
mod mark_and_predict;
mod marker;
mod marking;
mod predictive_marker;
mod s3fifo;
mod sieve;
mod twoq;

pub use arc::Arc;
pub use belady::Belady;
pub use blind_oracle::BlindOracle;
pub use clock::Clock;
pub use combine::Combine;
pub use config::{
    ClockParams, LirsParams, Mark0RobustParams, PolicyConfig, S3FifoParams, SeedParams, TwoQParams,
};
pub use fifo::Fifo;
pub use lfu::Lfu;
pub use lirs::Lirs;
pub use list::{Handle, IdList};
pub use lru::Lru;
pub use mark_and_predict::MarkAndPredict;
pub use mark0::Mark0;
pub use marker::Marker;
pub use predictive_marker::PredictiveMarker;
pub use s3fifo::S3Fifo;
pub use sieve::Sieve;
pub use twoq::TwoQ;

use crate::error::{Error, Result};
use crate::request::{ObjId, Request};

/// A replacement policy.
///
/// Invariants every implementation keeps (checked by [`Policy::debug_check`]
/// and by the property tests in `tests/policy_invariants.rs`):
/// - `lookup` returns true only for resident objects;
/// - after `insert(req)`, `req.id` is resident;
/// - `evict` removes exactly one resident object and returns it;
/// - `len()` equals the number of resident objects.
///
/// The engine never calls `insert` for a resident object and calls `evict`
/// only when at least one object is resident.
///
/// Two optional hooks reproduce libCacheSim policies whose sub-caches are
/// caches of their own: [`Policy::admits`] (libCacheSim's `can_insert`) and
/// [`Policy::take_self_evicted_bytes`] for objects a policy evicts outside
/// [`Policy::evict`].
pub trait Policy: Send {
    /// The registry name (`"lru"`, `"s3fifo"`, ...).
    fn name(&self) -> &'static str;

    /// If `req.id` is resident, record the hit and return true. Otherwise
    /// return false; the resident set must not change (ghost metadata may),
    /// except for policies that self-evict (see
    /// [`Policy::take_self_evicted_bytes`]).
    fn lookup(&mut self, req: &Request) -> bool;

    /// Whether a missed `req` may be admitted at all, asked after `lookup`
    /// and before any eviction (libCacheSim's `can_insert`: S3-FIFO refuses
    /// objects that do not fit its small queue, 2Q those larger than Ain).
    /// A refused request counts as [`Outcome::MissTooLarge`]. Default: true.
    #[inline]
    fn admits(&self, _req: &Request) -> bool {
        true
    }

    /// Admit `req.id`, which is not resident. The engine has made room.
    fn insert(&mut self, req: &Request);

    /// Evict one resident object and return `(id, size_bytes)`. `req` is the
    /// request that caused the eviction.
    fn evict(&mut self, req: &Request) -> (ObjId, u64);

    /// Whether `id` is resident. Has no side effects.
    fn contains(&self, id: ObjId) -> bool;

    /// Number of resident objects.
    fn len(&self) -> usize;

    /// Whether no object is resident.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this policy may evict resident objects outside
    /// [`Policy::evict`]; asked once, when a [`Cache`] is built. Default:
    /// false.
    fn self_evicts(&self) -> bool {
        false
    }

    /// Bytes of resident objects evicted outside [`Policy::evict`] since the
    /// last call (during `lookup` or `insert`), for policies whose
    /// [`Policy::self_evicts`] is true: libCacheSim's 2Q admits to Am through
    /// Am's own `get`, which evicts to fit Am's size; its LIRS demotes and
    /// evicts on hits. The engine subtracts them from its used bytes.
    fn take_self_evicted_bytes(&mut self) -> u64 {
        0
    }

    /// Check internal invariants; an `Err` names the broken one.
    fn debug_check(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// Names of the built-in policies, in registry order.
pub fn names() -> Vec<&'static str> {
    <PolicyConfig as crate::config::Tagged>::KINDS.to_vec()
}

/// Build a built-in policy for a cache of `capacity_bytes`.
pub fn build(config: &PolicyConfig, capacity_bytes: u64) -> Result<Box<dyn Policy>> {
    config.build(capacity_bytes)
}

/// What happened to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The object was resident.
    Hit,
    /// The object was not resident and is now.
    Miss,
    /// The object was not resident and is larger than the whole cache, or
    /// than the policy admits ([`Policy::admits`]), so it was not admitted
    /// (libCacheSim counts this as a miss too).
    MissTooLarge,
}

impl Outcome {
    /// Whether this is a hit.
    pub fn is_hit(self) -> bool {
        matches!(self, Outcome::Hit)
    }
}

/// A cache: a capacity in bytes driven by one policy.
///
/// Invariant: `used_bytes() <= capacity_bytes()` after every request
/// (asserted in debug builds, property-tested in release).
pub struct Cache<P: ?Sized + Policy = dyn Policy> {
    capacity_bytes: u64,
    used_bytes: u64,
    /// `policy.self_evicts()`, asked once.
    self_evicts: bool,
    policy: Box<P>,
}

impl Cache {
    /// A cache with a built-in policy.
    pub fn with_policy(config: &PolicyConfig, capacity_bytes: u64) -> Result<Self> {
        Ok(Cache::new(capacity_bytes, config.build(capacity_bytes)?))
    }

    /// A cache with the built-in policy `name` and its default parameters
    /// ([`PolicyConfig::defaults`]), for pure-Rust callers.
    pub fn with_defaults(name: &str, capacity_bytes: u64) -> Result<Self> {
        Cache::with_policy(&PolicyConfig::defaults(name)?, capacity_bytes)
    }
}

impl<P: ?Sized + Policy> Cache<P> {
    /// A cache of `capacity_bytes` driven by `policy`.
    pub fn new(capacity_bytes: u64, policy: Box<P>) -> Self {
        Cache {
            capacity_bytes,
            used_bytes: 0,
            self_evicts: policy.self_evicts(),
            policy,
        }
    }

    /// Serve one request: a hit, or a miss that admits the object after
    /// evicting until it fits.
    #[inline]
    pub fn access(&mut self, req: &Request) -> Outcome {
        let hit = self.policy.lookup(req);
        if self.self_evicts {
            self.used_bytes -= self.policy.take_self_evicted_bytes();
        }
        if hit {
            return Outcome::Hit;
        }
        if req.size > self.capacity_bytes || !self.policy.admits(req) {
            return Outcome::MissTooLarge;
        }
        while self.used_bytes + req.size > self.capacity_bytes {
            let (_, size) = self.policy.evict(req);
            self.used_bytes -= size;
        }
        self.policy.insert(req);
        self.used_bytes += req.size;
        if self.self_evicts {
            self.used_bytes -= self.policy.take_self_evicted_bytes();
        }
        debug_assert!(self.used_bytes <= self.capacity_bytes);
        Outcome::Miss
    }

    /// Like [`Cache::access`], but a policy that breaks its contract (evicts
    /// from an empty cache, reports a non-resident object as hit, or does not
    /// admit on insert) yields [`Error::Invariant`] instead of corrupting the
    /// accounting. Used for policies written outside the core.
    pub fn access_checked(&mut self, req: &Request) -> Result<Outcome> {
        let component = self.policy.name();
        let broken = |reason: String| Error::Invariant {
            component: component.to_string(),
            reason,
        };
        let was_resident = self.policy.contains(req.id);
        let hit = self.policy.lookup(req);
        self.take_self_evicted(&broken)?;
        if hit {
            if !was_resident {
                return Err(broken(format!(
                    "reported a hit for non-resident object {}",
                    req.id
                )));
            }
            return Ok(Outcome::Hit);
        }
        if was_resident {
            return Err(broken(format!(
                "reported a miss for resident object {}",
                req.id
            )));
        }
        if req.size > self.capacity_bytes || !self.policy.admits(req) {
            return Ok(Outcome::MissTooLarge);
        }
        while self.used_bytes + req.size > self.capacity_bytes {
            if self.policy.is_empty() {
                return Err(broken("asked to evict from an empty cache".into()));
            }
            let before = self.policy.len();
            let (id, size) = self.policy.evict(req);
            if self.policy.contains(id) || self.policy.len() + 1 != before {
                return Err(broken(format!("evict did not remove object {id}")));
            }
            self.used_bytes = self
                .used_bytes
                .checked_sub(size)
                .ok_or_else(|| broken(format!("evicted object {id} with a wrong size {size}")))?;
        }
        self.policy.insert(req);
        if !self.policy.contains(req.id) {
            return Err(broken(format!("insert did not admit object {}", req.id)));
        }
        self.used_bytes += req.size;
        self.take_self_evicted(&broken)?;
        if self.used_bytes > self.capacity_bytes {
            return Err(broken(format!(
                "holds {} bytes > capacity {} after insert",
                self.used_bytes, self.capacity_bytes
            )));
        }
        Ok(Outcome::Miss)
    }

    /// Subtract what the policy evicted on its own, refusing impossible sizes.
    fn take_self_evicted(&mut self, broken: &impl Fn(String) -> Error) -> Result<()> {
        if self.self_evicts {
            let bytes = self.policy.take_self_evicted_bytes();
            self.used_bytes = self.used_bytes.checked_sub(bytes).ok_or_else(|| {
                broken(format!(
                    "self-evicted {bytes} bytes > {} used",
                    self.used_bytes
                ))
            })?;
        }
        Ok(())
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Capacity in bytes (in pages for unit-size traces).
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Bytes held by resident objects.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// Number of resident objects.
    pub fn len(&self) -> usize {
        self.policy.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.policy.is_empty()
    }

    /// Whether `id` is resident.
    pub fn contains(&self, id: ObjId) -> bool {
        self.policy.contains(id)
    }

    /// Check the engine's and the policy's invariants.
    pub fn debug_check(&self) -> std::result::Result<(), String> {
        if self.used_bytes > self.capacity_bytes {
            return Err(format!(
                "used {} bytes > capacity {} bytes",
                self.used_bytes, self.capacity_bytes
            ));
        }
        self.policy.debug_check()
    }
}

/// Test helper: replay unit-size `ids` through `cache` (checked, with
/// `debug_check` after every request) and spell the outcomes, `H` for a hit
/// and `m` for a miss.
#[cfg(test)]
pub(crate) fn hit_string<P: ?Sized + Policy>(cache: &mut Cache<P>, ids: &[u64]) -> String {
    ids.iter()
        .map(|&id| {
            let hit = cache
                .access_checked(&Request::unit(id, 0))
                .expect("policy contract")
                .is_hit();
            cache.debug_check().expect("invariants");
            if hit { 'H' } else { 'm' }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_policy_lists_available() {
        let err = Cache::with_defaults("nope", 4).err().unwrap().to_string();
        assert!(err.contains("unknown policy \"nope\""), "{err}");
        assert!(err.contains("lru"), "{err}");
    }

    #[test]
    fn too_large_object_is_not_admitted() {
        let mut c = Cache::with_defaults("lru", 10).unwrap();
        let mut r = Request::unit(1, 0);
        r.size = 11;
        assert_eq!(c.access(&r), Outcome::MissTooLarge);
        assert!(c.is_empty());
    }

    #[test]
    fn sized_objects_evict_until_fit() {
        let mut c = Cache::with_defaults("lru", 10).unwrap();
        for (vt, (id, size)) in [(1, 4), (2, 4), (3, 2), (4, 6)].into_iter().enumerate() {
            let mut r = Request::unit(id, vt as u64);
            r.size = size;
            c.access(&r);
        }
        // 4 (6 bytes) needed 1 and 2 (oldest, 8 bytes) gone: 3 + 4 = 8 bytes.
        assert!(c.contains(3) && c.contains(4) && !c.contains(1) && !c.contains(2));
        assert_eq!(c.used_bytes(), 8);
    }
}
