//! Seeded synthetic datasets, exact ground truth and recall, so experiments
//! and tests need no downloads.

use memarena_core::fallible;
use memarena_core::rng::Rng;
use memarena_core::{Error, Result};

use crate::flat::Flat;
use crate::index::{SearchParams, VectorIndex};
use crate::metric::Metric;

/// Base vectors and held-out queries, row-major.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Dimension.
    pub dim: usize,
    /// `n_base * dim` values.
    pub base: Vec<f32>,
    /// `n_queries * dim` values.
    pub queries: Vec<f32>,
    /// Mixture component of each base vector.
    pub base_labels: Vec<u32>,
}

impl Dataset {
    /// Number of base vectors.
    pub fn n_base(&self) -> usize {
        self.base.len() / self.dim
    }
    /// Number of queries.
    pub fn n_queries(&self) -> usize {
        self.queries.len() / self.dim
    }
}

/// A Gaussian mixture: `n_clusters` centres drawn from `N(0, I)`, each point a
/// centre plus `N(0, cluster_std^2 I)` noise; queries are fresh draws from
/// the same mixture (held out from the base set). Deterministic in `seed`.
pub fn gaussian_mixture(
    n_base: usize,
    n_queries: usize,
    dim: usize,
    n_clusters: usize,
    cluster_std: f32,
    seed: u64,
) -> Result<Dataset> {
    if dim == 0 || n_clusters == 0 {
        return Err(Error::invalid(
            "gaussian_mixture",
            "dim and n_clusters must be at least 1",
        ));
    }
    if !(cluster_std.is_finite() && cluster_std >= 0.0) {
        return Err(Error::invalid("cluster_std", "must be finite and >= 0"));
    }
    // Sizes come from the caller: checked, and allocated fallibly.
    let n_centres = fallible::checked_len(n_clusters, dim, "n_clusters x dim")?;
    let mut centres: Vec<f32> = fallible::try_with_capacity(n_centres, "n_clusters x dim")?;
    let mut out_base: Vec<f32> =
        fallible::try_with_capacity(fallible::checked_len(n_base, dim, "n_base")?, "n_base")?;
    let mut labels_base: Vec<u32> = fallible::try_with_capacity(n_base, "n_base")?;
    let mut out_q: Vec<f32> = fallible::try_with_capacity(
        fallible::checked_len(n_queries, dim, "n_queries")?,
        "n_queries",
    )?;
    let mut labels_q: Vec<u32> = fallible::try_with_capacity(n_queries, "n_queries")?;
    let mut rng = Rng::seed_from_u64(seed);
    centres.extend((0..n_centres).map(|_| rng.normal() as f32));
    let draw = |n: usize, rng: &mut Rng, out: &mut Vec<f32>, labels: &mut Vec<u32>| {
        for _ in 0..n {
            let c = rng.below(n_clusters as u64) as usize;
            labels.push(c as u32);
            out.extend(
                centres[c * dim..(c + 1) * dim]
                    .iter()
                    .map(|&m| m + cluster_std * rng.normal() as f32),
            );
        }
    };
    draw(n_base, &mut rng, &mut out_base, &mut labels_base);
    draw(n_queries, &mut rng, &mut out_q, &mut labels_q);
    let (base, base_labels, queries) = (out_base, labels_base, out_q);
    Ok(Dataset {
        dim,
        base,
        queries,
        base_labels,
    })
}

/// Exact `k` nearest base rows (as ids `0..n_base`) of every query, by a
/// parallel flat scan; `nq * k` ids padded with `-1`.
pub fn ground_truth(
    base: &[f32],
    queries: &[f32],
    dim: usize,
    k: usize,
    metric: Metric,
) -> Result<Vec<i64>> {
    let mut flat = Flat::new(metric, dim);
    let n = base.len() / dim.max(1);
    let ids: Vec<u64> = (0..n as u64).collect();
    flat.add(base, &ids)?;
    Ok(flat.search(queries, k, &SearchParams::default(), None)?.ids)
}

/// Mean recall@k: the share of each query's true `k` neighbours (rows of
/// `truth`, `k_truth` per row, first `k` used) found in its `k` results.
pub fn recall_at_k(found: &[i64], k: usize, truth: &[i64], k_truth: usize) -> f64 {
    assert!(
        k <= k_truth,
        "recall_at_k: k {k} exceeds the ground truth's {k_truth}"
    );
    let nq = truth.len() / k_truth;
    assert_eq!(
        found.len(),
        nq * k,
        "recall_at_k: result shape does not match the truth"
    );
    if nq == 0 {
        return 1.0;
    }
    let mut hit = 0usize;
    let mut total = 0usize;
    for q in 0..nq {
        let t = &truth[q * k_truth..q * k_truth + k];
        let f = &found[q * k..(q + 1) * k];
        for id in t.iter().filter(|&&x| x >= 0) {
            total += 1;
            if f.contains(id) {
                hit += 1;
            }
        }
    }
    if total == 0 {
        1.0
    } else {
        hit as f64 / total as f64
    }
}
