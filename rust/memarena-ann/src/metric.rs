//! Metrics and the distance kernels.
//!
//! The kernels are written so that the compiler vectorises them without
//! `unsafe`: the inner loop walks `chunks_exact(16)` with sixteen independent
//! accumulators (float addition is not associative, so a single accumulator
//! would force a serial reduction). On x86-64 baseline (SSE2) this becomes four
//! 4-lane registers; with `-C target-cpu=x86-64-v3` two 8-lane AVX registers.
//!
//! Internally every index ranks by a *score where lower is better*:
//! squared L2 for [`Metric::L2`] and the negated inner product for
//! [`Metric::InnerProduct`] and [`Metric::Cosine`] (cosine vectors and queries
//! are normalised, so it is the inner product of unit vectors). Results are
//! reported faiss-style: squared L2 distances ascending, or inner products /
//! cosine similarities descending.

use memarena_core::{Error, Result};

/// The distance or similarity an index ranks by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Squared Euclidean distance (reported as such, ascending).
    L2,
    /// Inner product (reported as the similarity, descending).
    InnerProduct,
    /// Cosine similarity: vectors and queries are normalised to unit length.
    Cosine,
}

impl Metric {
    /// Registry names, in the order of [`Metric::code`].
    pub const NAMES: [&'static str; 3] = ["l2", "ip", "cosine"];

    /// Parses `"l2"`, `"ip"` (or `"inner_product"`) and `"cosine"`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Metric::L2),
            "ip" | "inner_product" | "dot" => Ok(Metric::InnerProduct),
            "cosine" | "cos" => Ok(Metric::Cosine),
            _ => Err(Error::UnknownName {
                kind: "metric",
                name: name.to_string(),
                available: Self::NAMES.join(", "),
            }),
        }
    }

    /// The registry name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self.code() as usize]
    }

    /// A stable one-byte code used by the file format.
    pub fn code(self) -> u8 {
        match self {
            Metric::L2 => 0,
            Metric::InnerProduct => 1,
            Metric::Cosine => 2,
        }
    }

    /// Inverse of [`Metric::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Metric::L2),
            1 => Some(Metric::InnerProduct),
            2 => Some(Metric::Cosine),
            _ => None,
        }
    }

    /// True when results are similarities (larger is better).
    pub fn is_similarity(self) -> bool {
        !matches!(self, Metric::L2)
    }

    /// The internal score (lower is better) between two stored-form vectors.
    #[inline]
    pub fn score(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::L2 => l2_sq(a, b),
            Metric::InnerProduct | Metric::Cosine => -dot(a, b),
        }
    }

    /// Converts an internal score into the reported distance or similarity.
    #[inline]
    pub fn report(self, score: f32) -> f32 {
        if self.is_similarity() { -score } else { score }
    }
}

const LANES: usize = 16;

/// Inner product of two equal-length slices.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        let x: &[f32; LANES] = x.try_into().expect("chunk of LANES");
        let y: &[f32; LANES] = y.try_into().expect("chunk of LANES");
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    reduce(&acc) + tail
}

/// Squared Euclidean distance of two equal-length slices.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "l2_sq: length mismatch");
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        let x: &[f32; LANES] = x.try_into().expect("chunk of LANES");
        let y: &[f32; LANES] = y.try_into().expect("chunk of LANES");
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        tail += d * d;
    }
    reduce(&acc) + tail
}

/// Squared norm.
#[inline]
pub fn norm_sq(a: &[f32]) -> f32 {
    dot(a, a)
}

/// Sums the lanes in a fixed order (deterministic). A sequential sum keeps
/// the vectoriser on full-width registers; a pairwise tree here made LLVM
/// fall back to 2-lane operations in the main loop.
#[inline]
fn reduce(acc: &[f32; LANES]) -> f32 {
    acc.iter().sum()
}

/// Normalises `v` to unit length in place (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let n = norm_sq(v).sqrt();
    if n > 0.0 {
        let inv = 1.0 / n;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    #[test]
    fn kernels_match_naive_for_all_lengths() {
        let mut r = memarena_core::rng::Rng::seed_from_u64(5);
        for len in 0..70 {
            let a: Vec<f32> = (0..len).map(|_| r.normal() as f32).collect();
            let b: Vec<f32> = (0..len).map(|_| r.normal() as f32).collect();
            let d = naive_dot(&a, &b);
            assert!(
                (dot(&a, &b) as f64 - d).abs() < 1e-4 * (1.0 + d.abs()),
                "len {len}"
            );
            let l: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| ((x - y) as f64).powi(2))
                .sum();
            assert!(
                (l2_sq(&a, &b) as f64 - l).abs() < 1e-4 * (1.0 + l),
                "len {len}"
            );
        }
    }

    #[test]
    fn metric_names_round_trip() {
        for m in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            assert_eq!(Metric::from_name(m.name()).unwrap(), m);
            assert_eq!(Metric::from_code(m.code()), Some(m));
        }
        let e = Metric::from_name("manhattan").unwrap_err().to_string();
        assert!(e.contains("manhattan") && e.contains("cosine"), "{e}");
    }
}
