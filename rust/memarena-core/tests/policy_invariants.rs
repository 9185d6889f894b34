//! Property tests over every registered policy (`policy::names()`, so
//! policies added later are covered too): random unit-size and sized request
//! sequences at random capacities, replayed through `Cache::access_checked`.
//!
//! After every request: the engine's and the policy's invariants hold
//! (`debug_check`), used bytes stay within capacity, a hit was resident, an
//! admitted miss is resident, and `len()` equals the number of ids whose
//! `contains` is true. On unit-size traces Belady misses no more than any
//! other policy.

use memarena_core::policy::{Cache, Outcome, names};
use memarena_core::{Error, FxHashMap, NEVER, Request};
use proptest::prelude::*;

/// Requests for `ids`, with `next_vtime` filled from the sequence itself.
fn requests(ids: &[u64], size_of: impl Fn(u64) -> u64) -> Vec<Request> {
    let mut next: FxHashMap<u64, u64> = FxHashMap::default();
    let mut reqs: Vec<Request> = ids
        .iter()
        .enumerate()
        .map(|(t, &id)| {
            let mut r = Request::unit(id, t as u64);
            r.size = size_of(id);
            r
        })
        .collect();
    for (t, r) in reqs.iter_mut().enumerate().rev() {
        r.next_vtime = next.insert(r.id, t as u64).unwrap_or(NEVER);
    }
    reqs
}

/// Replay `reqs` through `name` checking every invariant; returns misses,
/// or `None` when the policy refuses this capacity (S3-FIFO below 10 bytes,
/// as libCacheSim) with an `InvalidArgument` error.
fn replay_checked(name: &str, capacity: u64, reqs: &[Request], n_ids: u64) -> Option<u64> {
    let mut cache = match Cache::with_defaults(name, capacity) {
        Ok(c) => c,
        Err(Error::InvalidArgument { .. }) => return None,
        Err(e) => panic!("{name} at capacity {capacity}: {e}"),
    };
    let mut misses = 0;
    for (t, r) in reqs.iter().enumerate() {
        let was_resident = cache.contains(r.id);
        let outcome = cache
            .access_checked(r)
            .unwrap_or_else(|e| panic!("{name} at request {t}: {e}"));
        if let Err(e) = cache.debug_check() {
            panic!("{name} at request {t} (id {}): {e}", r.id);
        }
        assert!(cache.used_bytes() <= capacity, "{name}: over capacity");
        match outcome {
            Outcome::Hit => assert!(was_resident, "{name}: hit on non-resident {}", r.id),
            Outcome::Miss => {
                misses += 1;
                assert!(!was_resident, "{name}: miss on resident {}", r.id);
                assert!(cache.contains(r.id), "{name}: {} not admitted", r.id);
            }
            Outcome::MissTooLarge => {
                misses += 1;
                assert!(
                    !cache.contains(r.id),
                    "{name}: refused {} is resident",
                    r.id
                );
            }
        }
        let resident = (0..n_ids).filter(|&id| cache.contains(id)).count();
        assert_eq!(cache.len(), resident, "{name}: len() at request {t}");
    }
    Some(misses)
}

/// A sequence of ids with a skew: a hot set, a cold set and runs.
fn id_sequence() -> impl Strategy<Value = (u64, Vec<u64>)> {
    (2u64..40).prop_flat_map(|n_ids| {
        let id = prop_oneof![
            3 => 0..n_ids.min(6),
            2 => 0..n_ids,
        ];
        (Just(n_ids), prop::collection::vec(id, 1..300))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn unit_size_invariants_and_belady_is_optimal(
        (n_ids, ids) in id_sequence(),
        capacity in 1u64..24,
    ) {
        let reqs = requests(&ids, |_| 1);
        let opt = replay_checked("belady", capacity, &reqs, n_ids).unwrap();
        for name in names() {
            if let Some(misses) = replay_checked(name, capacity, &reqs, n_ids) {
                prop_assert!(opt <= misses, "belady {} > {} {}", opt, name, misses);
            }
        }
    }

    #[test]
    fn sized_invariants(
        (n_ids, ids) in id_sequence(),
        sizes in prop::collection::vec(1u64..40, 40),
        capacity in 1u64..200,
    ) {
        let reqs = requests(&ids, |id| sizes[id as usize]);
        for name in names() {
            replay_checked(name, capacity, &reqs, n_ids);
        }
    }
}

#[test]
fn every_policy_rejects_zero_capacity() {
    for name in names() {
        assert!(Cache::with_defaults(name, 0).is_err(), "{name}");
    }
}
