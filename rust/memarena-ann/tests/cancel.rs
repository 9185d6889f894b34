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

/// The indexes whose add links each vector in (graph, hash, lists, tree),
/// trained on `data` where they need it.
fn adding_indexes(data: &[f32]) -> Vec<(String, Box<dyn memarena_ann::VectorIndex>)> {
    use memarena_ann::{E2LshConfig, HnswConfig, SimHashConfig, SpannBuildConfig};
    let configs = [
        IndexConfig::Hnsw(HnswConfig::default()),
        IndexConfig::SimHash(SimHashConfig::default()),
        IndexConfig::E2Lsh(E2LshConfig::default()),
        IndexConfig::Ivf(IvfBuildConfig {
            nlist: 4,
            ..IvfBuildConfig::default()
        }),
        IndexConfig::Spann(SpannBuildConfig {
            nlist: 4,
            ..SpannBuildConfig::default()
        }),
        IndexConfig::Curator(CuratorConfig {
            leaf_size: 8,
            ..CuratorConfig::default()
        }),
    ];
    configs
        .into_iter()
        .map(|config| {
            let mut idx = build(Metric::L2, DIM, &config).unwrap();
            idx.train(data).unwrap();
            (format!("{config:?}"), idx)
        })
        .collect()
}

#[test]
fn an_interrupted_add_keeps_a_valid_index_of_the_vectors_inserted_so_far() {
    // More than one IVF assignment block (4096 rows), so every kind stops.
    let n = 5000;
    let data = vectors(n);
    let ids: Vec<u64> = (0..n as u64).collect();
    let params = SearchParams {
        threads: 1,
        ..SearchParams::default()
    };
    let queries = vectors(20);
    for ((name, mut idx), (_, mut plain)) in
        adding_indexes(&data).into_iter().zip(adding_indexes(&data))
    {
        let r = with_poll_interval(stop, Duration::ZERO, || idx.add(&data, &ids));
        assert!(matches!(r, Err(Error::Interrupted)), "{name}: {r:?}");
        // Stopped between two vectors: the first `len` are in, the rest not.
        let done = idx.len();
        assert!(done > 0 && done < n, "{name}: {done} of {n}");
        let res = idx.search(&queries, 5, &params, None).unwrap();
        assert!(
            res.ids.iter().all(|&id| id < done as i64),
            "{name}: a result names a vector past the {done} inserted"
        );
        // Adding the rest gives the index one uninterrupted add gives.
        idx.add(&data[done * DIM..], &ids[done..]).unwrap();
        plain.add(&data, &ids).unwrap();
        assert_eq!(idx.len(), n, "{name}");
        let a = idx.search(&queries, 5, &params, None).unwrap();
        let b = plain.search(&queries, 5, &params, None).unwrap();
        assert_eq!(a.ids, b.ids, "{name}");
        assert_eq!(a.distances, b.distances, "{name}");
    }
}

#[test]
fn polling_does_not_change_what_an_add_builds() {
    let n = 600;
    let data = vectors(n);
    let ids: Vec<u64> = (0..n as u64).collect();
    for ((name, mut polled), (_, mut plain)) in
        adding_indexes(&data).into_iter().zip(adding_indexes(&data))
    {
        with_poll_interval(go_on, Duration::ZERO, || polled.add(&data, &ids)).unwrap();
        plain.add(&data, &ids).unwrap();
        assert_eq!(polled.to_bytes(), plain.to_bytes(), "{name}");
    }
}
