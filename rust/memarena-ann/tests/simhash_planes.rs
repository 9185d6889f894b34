//! Orthonormal hyperplanes rank neighbours better than independent Gaussian
//! ones on anisotropic data (issue 19: faiss `IndexLSH` rotates the data
//! with a random orthonormal matrix; memarena's Gaussian planes ranked
//! worse on real sentence embeddings).
//!
//! The data imitates sentence embeddings: unit vectors = a shared mean
//! direction + low-rank structure with a decaying spectrum + small noise,
//! normalised (mean pairwise cosine in 0.1..0.3, checked). Codes are ranked
//! by Hamming distance only (no re-rank), as faiss `IndexLSH` does, and
//! recall@10 is averaged over seeds of the planes.

use memarena_ann::{IndexConfig, Metric, Planes, SearchParams, SimHashConfig, VectorIndex, build};
use memarena_core::rng::Rng;

const DIM: usize = 64;
const RANK: usize = 12;
const K: usize = 10;

/// `n + nq` anisotropic unit vectors (row-major), the first `n` the base.
fn anisotropic(n: usize, nq: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::seed_from_u64(seed);
    let unit = |rng: &mut Rng| {
        let v: Vec<f64> = (0..DIM).map(|_| rng.normal()).collect();
        let s = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.into_iter().map(|x| x / s).collect::<Vec<f64>>()
    };
    let mean = unit(&mut rng);
    let basis: Vec<Vec<f64>> = (0..RANK).map(|_| unit(&mut rng)).collect();
    let mut rows = Vec::with_capacity((n + nq) * DIM);
    for _ in 0..n + nq {
        let mut x: Vec<f64> = mean.iter().map(|m| 0.45 * m).collect();
        for (r, b) in basis.iter().enumerate() {
            let z = rng.normal() * 0.5 / (1.0 + r as f64).powf(0.7);
            x.iter_mut().zip(b).for_each(|(x, b)| *x += z * b);
        }
        x.iter_mut().for_each(|x| *x += 0.03 * rng.normal());
        let s = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        rows.extend(x.iter().map(|v| (v / s) as f32));
    }
    let q = rows.split_off(n * DIM);
    (rows, q)
}

fn mean_pairwise_cosine(base: &[f32], m: usize) -> f64 {
    let rows: Vec<&[f32]> = base.chunks_exact(DIM).take(m).collect();
    let mut sum = 0.0f64;
    for i in 0..m {
        for j in i + 1..m {
            sum += rows[i]
                .iter()
                .zip(rows[j])
                .map(|(a, b)| (a * b) as f64)
                .sum::<f64>();
        }
    }
    sum / (m * (m - 1) / 2) as f64
}

fn top_k(idx: &dyn VectorIndex, q: &[f32], p: &SearchParams) -> Vec<i64> {
    idx.search(q, K, p, None).unwrap().ids
}

fn recall(got: &[i64], truth: &[i64]) -> f64 {
    let hits: usize = got
        .chunks_exact(K)
        .zip(truth.chunks_exact(K))
        .map(|(g, t)| g.iter().filter(|&&i| i >= 0 && t.contains(&i)).count())
        .sum();
    hits as f64 / truth.len() as f64
}

/// Mean recall@10 of Hamming-ranked codes over `seeds` plane seeds.
fn hamming_recall(planes: Planes, n_bits: usize, n_tables: usize, train: bool) -> f64 {
    let (base, queries) = anisotropic(4000, 200, 7);
    let ids: Vec<u64> = (0..4000).collect();
    let mut flat = build(Metric::InnerProduct, DIM, &IndexConfig::Flat).unwrap();
    flat.add(&base, &ids).unwrap();
    let truth = top_k(flat.as_ref(), &queries, &SearchParams::default());
    let p = SearchParams {
        n_probes: 0,
        rerank: 0,
        ..SearchParams::default()
    };
    let seeds = 0..6u64;
    let n = seeds.clone().count() as f64;
    seeds
        .map(|seed| {
            let cfg = IndexConfig::SimHash(SimHashConfig {
                n_bits,
                n_tables,
                seed,
                planes,
            });
            let mut idx = build(Metric::InnerProduct, DIM, &cfg).unwrap();
            if train {
                idx.train(&base).unwrap();
            }
            idx.add(&base, &ids).unwrap();
            recall(&top_k(idx.as_ref(), &queries, &p), &truth)
        })
        .sum::<f64>()
        / n
}

#[test]
fn the_data_is_anisotropic() {
    let (base, _) = anisotropic(4000, 0, 7);
    let c = mean_pairwise_cosine(&base, 400);
    assert!((0.1..0.3).contains(&c), "mean pairwise cosine {c}");
}

#[test]
fn orthonormal_planes_rank_better_than_gaussian_ones() {
    // 64 bits = one rotation of the 64-d space; 256 bits = four.
    for (n_bits, n_tables) in [(64, 1), (64, 4)] {
        for train in [false, true] {
            let o = hamming_recall(Planes::Orthonormal, n_bits, n_tables, train);
            let g = hamming_recall(Planes::Gaussian, n_bits, n_tables, train);
            eprintln!("{n_tables}x{n_bits} train={train}: orthonormal {o:.3}, gaussian {g:.3}");
            assert!(
                o > g + 0.015,
                "{n_tables}x{n_bits} train={train}: orthonormal {o:.3} vs gaussian {g:.3}"
            );
        }
    }
}
