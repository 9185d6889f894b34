//! Shared fixtures: one small index of every kind with parameters that give
//! high recall on the seeded mixture.
#![allow(dead_code)]

use memarena_ann::dataset::{Dataset, gaussian_mixture};
use memarena_ann::{Metric, SearchParams, VectorIndex, build};

pub const DIM: usize = 16;

pub fn data(n: usize, nq: usize, seed: u64) -> Dataset {
    gaussian_mixture(n, nq, DIM, 20, 0.4, seed).unwrap()
}

/// Every kind with small build parameters and search parameters tuned for
/// recall on `data(..)`.
/// `(kind, build parameters, search parameters)`.
pub type Case = (&'static str, Vec<(&'static str, f64)>, SearchParams);

pub fn kinds() -> Vec<Case> {
    let sp = |f: &dyn Fn(&mut SearchParams)| {
        let mut p = SearchParams {
            threads: 2,
            ..SearchParams::default()
        };
        f(&mut p);
        p
    };
    vec![
        ("flat", vec![], sp(&|_| {})),
        (
            "simhash",
            vec![("n_bits", 10.0), ("n_tables", 12.0), ("seed", 1.0)],
            sp(&|p| {
                p.n_probes = 8;
                p.rerank = 100_000;
            }),
        ),
        (
            "simhash",
            vec![("n_bits", 64.0), ("n_tables", 4.0), ("seed", 1.0)],
            sp(&|p| {
                p.n_probes = 0;
                p.rerank = 300;
            }),
        ),
        (
            "e2lsh",
            vec![("k", 4.0), ("l", 12.0), ("w", 3.0), ("seed", 1.0)],
            sp(&|p| p.n_probes = 8),
        ),
        ("ivf", vec![("nlist", 32.0)], sp(&|p| p.nprobe = 8)),
        ("spann", vec![("nlist", 32.0)], sp(&|p| p.nprobe = 6)),
        (
            "hnsw",
            vec![("m", 12.0), ("ef_construction", 64.0)],
            sp(&|p| p.ef_search = 64),
        ),
        (
            "curator",
            vec![
                ("branching", 8.0),
                ("leaf_size", 32.0),
                ("split_threshold", 16.0),
            ],
            sp(&|p| p.ef_search = 300),
        ),
    ]
}

pub fn make(
    kind: &str,
    params: &[(&str, f64)],
    metric: Metric,
    train: &[f32],
) -> Box<dyn VectorIndex> {
    let mut idx = build(kind, metric, DIM, params).unwrap();
    idx.train(train).unwrap();
    idx
}
