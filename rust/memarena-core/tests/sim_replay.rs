//! Replay statistics invariants and the one-pass LRU miss-ratio curve
//! against running the LRU policy at every size.

use memarena_core::mrc::{StackHistogram, lru_mrc, stack_distances};
use memarena_core::policy::{Cache, Lru, names};
use memarena_core::sim::{ReplayOptions, access_batch, replay, replay_checked};
use memarena_core::trace::{SynthSpec, Trace, TraceView, generate};
use proptest::prelude::*;

const LA_POLICIES: &[&str] = &[
    "marker",
    "blind_oracle",
    "predictive_marker",
    "mark0",
    "mark_and_predict",
];

fn policies() -> Vec<&'static str> {
    // Our own plus LRU; other registered policies are tested by their authors.
    let all = names();
    std::iter::once("lru")
        .chain(LA_POLICIES.iter().copied())
        .filter(|n| all.contains(n))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn replay_stats_invariants(
        reqs in prop::collection::vec((0u64..30, 1u64..20, any::<bool>(), 0u64..200), 0..300),
        capacity in 1u64..60,
        warmup in 0u64..50,
        window in 0u64..40,
        ignore_size in any::<bool>(),
        which in 0usize..6,
    ) {
        let ids: Vec<u64> = reqs.iter().map(|r| r.0).collect();
        let t = Trace::new(ids)
            .with_sizes(Some(reqs.iter().map(|r| r.1).collect())).unwrap()
            .with_pred_bit(Some(reqs.iter().map(|r| r.2).collect())).unwrap()
            .with_pred_next_vtime(Some(reqs.iter().enumerate().map(|(i, r)| i as u64 + 1 + r.3).collect())).unwrap();
        let names = policies();
        let name = names[which % names.len()];
        let opts = ReplayOptions { warmup_requests: warmup, window_requests: window, ignore_size };
        let mut a = Cache::with_defaults(name, capacity).unwrap();
        let s = replay(&t.view(), &mut a, &opts).unwrap();
        prop_assert_eq!(s.check(), Ok(()));
        prop_assert!(s.misses <= s.requests);
        prop_assert!(s.compulsory_misses <= s.misses);
        prop_assert_eq!(s.requests, (t.len() as u64).saturating_sub(warmup));
        if window > 0 {
            prop_assert_eq!(s.window_requests.iter().sum::<u64>(), s.requests);
            prop_assert_eq!(s.window_misses.iter().sum::<u64>(), s.misses);
            prop_assert!(s.window_requests.iter().all(|&w| w <= window && w > 0));
        } else {
            prop_assert!(s.window_requests.is_empty());
        }
        if ignore_size {
            prop_assert_eq!(s.bytes_requested, s.requests);
            prop_assert_eq!(s.too_large_misses, 0);
        }
        if warmup == 0 {
            // A fresh cache misses every first access.
            prop_assert_eq!(s.compulsory_misses as usize, t.num_objects());
        }
        prop_assert_eq!(a.debug_check(), Ok(()));

        // The checked replay agrees (same seed, same decisions).
        let mut b = Cache::with_defaults(name, capacity).unwrap();
        prop_assert_eq!(replay_checked(&t.view(), &mut b, &opts).unwrap(), s.clone());

        // The hit mask agrees with a plain replay without warm-up.
        let mut c = Cache::with_defaults(name, capacity).unwrap();
        let mask = access_batch(&t.view(), &mut c).unwrap();
        let mut d = Cache::with_defaults(name, capacity).unwrap();
        let full = replay(&t.view(), &mut d, &ReplayOptions::default()).unwrap();
        prop_assert_eq!(mask.iter().filter(|&&h| !h).count() as u64, full.misses);
    }

    #[test]
    fn lru_mrc_equals_lru_at_every_size(ids in prop::collection::vec(0u64..25, 0..250)) {
        let t = Trace::new(ids.clone());
        let sizes: Vec<u64> = (0..=27).collect();
        let mrc = lru_mrc(&ids, &sizes).unwrap();
        let hist = StackHistogram::from_ids(&ids).unwrap();
        prop_assert_eq!(hist.cold_misses + hist.counts.iter().sum::<u64>(), hist.requests);
        for &c in &sizes[1..] {
            let mut cache = Cache::new(c, Box::new(Lru::new(c)));
            let s = replay(&t.view(), &mut cache, &ReplayOptions::default()).unwrap();
            prop_assert_eq!(hist.misses_at(c), s.misses, "capacity {}", c);
            let want = if ids.is_empty() { 0.0 } else { s.misses as f64 / ids.len() as f64 };
            prop_assert_eq!(mrc[c as usize], want);
        }
        prop_assert_eq!(mrc[0], if ids.is_empty() { 0.0 } else { 1.0 });
    }
}

#[test]
fn mrc_on_a_generated_trace_matches_lru() {
    let t = generate(
        &SynthSpec::Mix {
            components: vec![
                (
                    0.8,
                    SynthSpec::Zipf {
                        alpha: 0.9,
                        n_objects: 2000,
                    },
                ),
                (0.2, SynthSpec::Loop { n_objects: 300 }),
            ],
        },
        30_000,
        17,
    )
    .unwrap();
    let hist = StackHistogram::from_ids(t.ids()).unwrap();
    for c in [1u64, 10, 100, 299, 300, 301, 1000, 5000] {
        let mut cache = Cache::new(c, Box::new(Lru::new(c)));
        let s = replay(&t.view(), &mut cache, &ReplayOptions::default()).unwrap();
        assert_eq!(hist.misses_at(c), s.misses, "capacity {c}");
    }
    assert_eq!(stack_distances(t.ids()).unwrap().len(), t.len());
}

#[test]
fn monomorphized_and_dyn_caches_agree() {
    let t = generate(
        &SynthSpec::Zipf {
            alpha: 1.0,
            n_objects: 500,
        },
        5000,
        1,
    )
    .unwrap();
    let mut mono: Cache<Lru> = Cache::new(64, Box::new(Lru::new(64)));
    let mut dynamic = Cache::with_defaults("lru", 64).unwrap();
    let opts = ReplayOptions::default();
    assert_eq!(
        replay(&t.view(), &mut mono, &opts).unwrap(),
        replay(&t.view(), &mut dynamic, &opts).unwrap()
    );
}

#[test]
fn sized_replay_counts_bytes_and_too_large() {
    let t = Trace::new(vec![1, 2, 1, 3, 1])
        .with_sizes(Some(vec![4, 20, 4, 6, 4]))
        .unwrap();
    let mut c = Cache::with_defaults("lru", 10).unwrap();
    let s = replay(&t.view(), &mut c, &ReplayOptions::default()).unwrap();
    assert_eq!((s.requests, s.misses, s.too_large_misses), (5, 3, 1));
    assert_eq!((s.bytes_requested, s.bytes_missed), (38, 30));
    assert_eq!((s.compulsory_misses, s.compulsory_bytes), (3, 30));
    let unit = replay(
        &t.view(),
        &mut Cache::with_defaults("lru", 10).unwrap(),
        &ReplayOptions {
            ignore_size: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (unit.misses, unit.too_large_misses, unit.bytes_requested),
        (3, 0, 5)
    );
}

#[test]
fn bad_view_is_an_error_not_a_panic() {
    let ids = [1u64, 2, 3];
    let next = [memarena_core::NEVER; 3];
    let first = [true; 3];
    let mut view = TraceView::new(&ids, &next, &first).unwrap();
    let short = [1u64];
    view.sizes = Some(&short);
    let mut c = Cache::with_defaults("lru", 2).unwrap();
    let err = replay(&view, &mut c, &ReplayOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("sizes"), "{err}");
    assert!(access_batch(&view, &mut c).is_err());
}
