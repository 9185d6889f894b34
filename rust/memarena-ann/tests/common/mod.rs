//! Shared fixtures: one small index of every kind with parameters that give
//! high recall on the seeded mixture.
#![allow(dead_code)]

use memarena_ann::dataset::{Dataset, gaussian_mixture};
use memarena_ann::{
    CuratorConfig, E2LshConfig, HnswConfig, IndexConfig, IvfBuildConfig, Metric, SearchParams,
    SimHashConfig, SpannBuildConfig, VectorIndex, build,
};

pub const DIM: usize = 16;

pub fn data(n: usize, nq: usize, seed: u64) -> Dataset {
    gaussian_mixture(n, nq, DIM, 20, 0.4, seed).unwrap()
}

/// Every kind with small build parameters and search parameters tuned for
/// recall on `data(..)`.
/// `(kind, build config, search parameters)`.
pub type Case = (&'static str, IndexConfig, SearchParams);

pub fn kinds() -> Vec<Case> {
    let sp = |f: &dyn Fn(&mut SearchParams)| {
        let mut p = SearchParams {
            threads: 2,
            ..SearchParams::default()
        };
        f(&mut p);
        p
    };
    let simhash = |n_bits, n_tables| {
        IndexConfig::SimHash(SimHashConfig {
            n_bits,
            n_tables,
            seed: 1,
            ..SimHashConfig::default()
        })
    };
    vec![
        ("flat", IndexConfig::Flat, sp(&|_| {})),
        (
            "simhash",
            simhash(10, 12),
            sp(&|p| {
                p.n_probes = 8;
                p.rerank = 100_000;
            }),
        ),
        (
            "simhash",
            simhash(64, 4),
            sp(&|p| {
                p.n_probes = 0;
                p.rerank = 300;
            }),
        ),
        (
            "e2lsh",
            IndexConfig::E2Lsh(E2LshConfig {
                k: 4,
                l: 12,
                w: 3.0,
                seed: 1,
                ..E2LshConfig::default()
            }),
            sp(&|p| p.n_probes = 8),
        ),
        (
            "ivf",
            IndexConfig::Ivf(IvfBuildConfig {
                nlist: 32,
                ..IvfBuildConfig::default()
            }),
            sp(&|p| p.nprobe = 8),
        ),
        (
            "spann",
            IndexConfig::Spann(SpannBuildConfig {
                nlist: 32,
                ..SpannBuildConfig::default()
            }),
            sp(&|p| p.nprobe = 6),
        ),
        (
            "hnsw",
            IndexConfig::Hnsw(HnswConfig {
                m: 12,
                ef_construction: 64,
                ..HnswConfig::default()
            }),
            sp(&|p| p.ef_search = 64),
        ),
        (
            "curator",
            IndexConfig::Curator(CuratorConfig {
                branching: 8,
                leaf_size: 32,
                split_threshold: 16,
                ..CuratorConfig::default()
            }),
            sp(&|p| p.ef_search = 300),
        ),
    ]
}

pub fn make(config: &IndexConfig, metric: Metric, train: &[f32]) -> Box<dyn VectorIndex> {
    let mut idx = build(metric, DIM, config).unwrap();
    idx.train(train).unwrap();
    idx
}
