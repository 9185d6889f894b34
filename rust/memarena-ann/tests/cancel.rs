//! A stop request (`memarena_core::cancel`) ends training and search, and
//! leaves the index as it was: an interrupted training leaves it untrained.

use std::time::Duration;

use memarena_ann::{CuratorConfig, IndexConfig, IvfBuildConfig, Metric, SearchParams, build};
use memarena_core::Error;
use memarena_core::cancel::with_poll_interval;

const DIM: usize = 8;

fn stop() -> bool {
    true
}

fn go_on() -> bool {
    false
}

/// `n` deterministic vectors of `DIM` values.
fn vectors(n: usize) -> Vec<f32> {
    (0..n * DIM)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect()
}

#[test]
fn an_interrupted_training_leaves_the_index_untrained() {
    let data = vectors(400);
    let configs = [
        IndexConfig::Ivf(IvfBuildConfig {
            nlist: 4,
            ..IvfBuildConfig::default()
        }),
        IndexConfig::Curator(CuratorConfig {
            leaf_size: 8,
            ..CuratorConfig::default()
        }),
    ];
    for config in configs {
        let mut idx = build(Metric::L2, DIM, &config).unwrap();
        let r = with_poll_interval(stop, Duration::ZERO, || idx.train(&data));
        assert!(matches!(r, Err(Error::Interrupted)), "{config:?}: {r:?}");
        assert!(!idx.is_trained(), "{config:?}");
        // Polled but never asked to stop: trains as usual.
        with_poll_interval(go_on, Duration::ZERO, || idx.train(&data)).unwrap();
        assert!(idx.is_trained(), "{config:?}");
    }
}

#[test]
fn an_interrupted_search_returns_no_partial_result_and_polling_changes_nothing() {
    let mut idx = build(Metric::L2, DIM, &IndexConfig::Flat).unwrap();
    let data = vectors(500);
    let ids: Vec<u64> = (0..500).collect();
    idx.add(&data, &ids).unwrap();
    let params = SearchParams {
        threads: 1,
        ..SearchParams::default()
    };
    let queries = vectors(2000);
    let r = with_poll_interval(stop, Duration::ZERO, || {
        idx.search(&queries, 5, &params, None)
    });
    assert!(matches!(r, Err(Error::Interrupted)), "{:?}", r.map(|_| ()));
    let polled = with_poll_interval(go_on, Duration::ZERO, || {
        idx.search(&queries, 5, &params, None)
    })
    .unwrap();
    let plain = idx.search(&queries, 5, &params, None).unwrap();
    assert_eq!(polled.ids, plain.ids);
    assert_eq!(polled.distances, plain.distances);
}
