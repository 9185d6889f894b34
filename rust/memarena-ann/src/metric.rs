//! Metrics and the distance kernels.
//!
//! The kernels are written so that the compiler vectorises them without
//! intrinsics: the inner loop walks `chunks_exact(N)` with `N` independent
//! accumulators (float addition is not associative, so a single accumulator
//! would force a serial reduction). The portable build (`N = 16`) becomes four
//! 4-lane SSE2 registers; the crate-private `simd` module compiles the same bodies with
//! `N = 32` under `avx2,fma` (four 8-lane FMA chains) and picks that set at
//! run time when the CPU has it.
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

    /// Internal scores of `q` against every row of `data` (row-major,
    /// `q.len()` wide), written to `out[..rows]` (one dispatched call).
    #[inline]
    pub fn score_many(self, q: &[f32], data: &[f32], out: &mut [f32]) {
        let d = q.len().max(1);
        assert_eq!(data.len() % d, 0, "score_many: ragged data");
        assert!(out.len() >= data.len() / d, "score_many: short output");
        let k = crate::simd::kernels();
        match self {
            Metric::L2 => (k.l2_sq_block)(q, 1, data, out),
            Metric::InnerProduct | Metric::Cosine => {
                (k.dot_block)(q, 1, data, out);
                out[..data.len() / d].iter_mut().for_each(|x| *x = -*x);
            }
        }
    }

    /// Internal scores of `q` against rows `rows` of `data` (row-major,
    /// `q.len()` wide), written to `out[..rows.len()]` (one dispatched call).
    #[inline]
    pub(crate) fn score_at(self, q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
        assert!(out.len() >= rows.len(), "score_at: short output");
        let k = crate::simd::kernels();
        match self {
            Metric::L2 => (k.l2_sq_at)(q, data, rows, out),
            Metric::InnerProduct | Metric::Cosine => {
                (k.dot_at)(q, data, rows, out);
                out[..rows.len()].iter_mut().for_each(|x| *x = -*x);
            }
        }
    }

    /// Converts an internal score into the reported distance or similarity.
    #[inline]
    pub fn report(self, score: f32) -> f32 {
        if self.is_similarity() { -score } else { score }
    }
}

/// Inner product of two equal-length slices (runtime-dispatched kernel, see
/// the crate-private `simd` module).
///
/// # Panics
///
/// If `a` and `b` differ in length.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    (crate::simd::kernels().dot)(a, b)
}

/// Squared Euclidean distance of two equal-length slices (runtime-dispatched
/// kernel, see the crate-private `simd` module).
///
/// # Panics
///
/// If `a` and `b` differ in length.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "l2_sq: length mismatch");
    (crate::simd::kernels().l2_sq)(a, b)
}

/// The distance-kernel set chosen for this CPU at run time
/// (`"portable"`, `"avx2+fma+popcnt"`, `"avx512f+avx2+fma+popcnt"` or
/// `"avx512f+vpopcntdq+avx2+fma+popcnt"`).
pub fn kernel_set() -> &'static str {
    crate::simd::kernels().name
}

/// Squared norm.
#[inline]
pub fn norm_sq(a: &[f32]) -> f32 {
    dot(a, a)
}

/// `a + x * y`, fused (one rounding) when `FMA`; only instantiated with
/// `FMA = true` under `#[target_feature(enable = "fma")]`, where `mul_add`
/// is one instruction rather than a libm call.
#[inline(always)]
fn madd<const FMA: bool>(acc: f32, x: f32, y: f32) -> f32 {
    if FMA { x.mul_add(y, acc) } else { acc + x * y }
}

/// The inner-product body: `N` independent accumulators over
/// `chunks_exact(N)`, then an 8-wide pass over the rest, then scalars.
#[inline(always)]
pub(crate) fn dot_lanes<const N: usize, const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; N];
    let ca = a.chunks_exact(N);
    let cb = b.chunks_exact(N);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..N {
            acc[i] = madd::<FMA>(acc[i], x[i], y[i]);
        }
    }
    let mut acc8 = [0.0f32; 8];
    let ca = ra.chunks_exact(8);
    let cb = rb.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc8[i] = madd::<FMA>(acc8[i], x[i], y[i]);
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    reduce::<N, FMA>(&acc) + reduce::<8, FMA>(&acc8) + tail
}

/// Inner products (or, with `L2`, squared L2 distances) of `nq` queries
/// (`qs`, row-major) with every row of `rows` (same width), query-major into
/// `out` (`nq * n_rows`): a register
/// tile of 4 queries x 2 rows shares each load (the blocked matrix product
/// faiss gets from BLAS). Every pair is computed with the same 8-lane
/// accumulation whatever the tile, so a query's results do not depend on
/// the other queries of the call.
/// `(dim, rows)` of a block product of `nq` queries `qs` against `rows`
/// into `out` (asserted large enough); `None` when there is nothing to do.
#[inline(always)]
pub(crate) fn block_shape(
    qs: &[f32],
    nq: usize,
    rows: &[f32],
    out: &[f32],
) -> Option<(usize, usize)> {
    let d = qs.len().checked_div(nq).unwrap_or(0);
    if d == 0 {
        return None;
    }
    let nr = rows.len() / d;
    assert!(out.len() >= nq * nr, "block product: short output");
    Some((d, nr))
}

#[inline(always)]
pub(crate) fn block_lanes<const FMA: bool, const L2: bool>(
    qs: &[f32],
    nq: usize,
    rows: &[f32],
    out: &mut [f32],
) {
    let Some((d, nr)) = block_shape(qs, nq, rows, out) else {
        return;
    };
    let d8 = d / 8 * 8;
    // One pair's dot from its 8 lane accumulators plus the scalar tail.
    let finish = |acc: &[f32; 8], q: &[f32], r: &[f32]| {
        let mut tail = 0.0f32;
        for (x, y) in q[d8..].iter().zip(&r[d8..]) {
            tail = pair::<FMA, L2>(tail, *x, *y);
        }
        ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7])) + tail
    };
    let mut j = 0;
    while j < nq {
        let tq = if nq - j >= 4 { 4 } else { 1 };
        let mut r = 0;
        while r < nr {
            let tr = match tq {
                4 if nr - r >= 2 => 2,
                1 if nr - r >= 4 => 4,
                _ => 1,
            };
            if tq == 1 && tr == 4 {
                // One query against 4 rows: four independent chains.
                let q = &qs[j * d..(j + 1) * d];
                let rv: [&[f32]; 4] = std::array::from_fn(|t| &rows[(r + t) * d..(r + t + 1) * d]);
                let mut acc = [[0.0f32; 8]; 4];
                for c in 0..d8 / 8 {
                    let x: [f32; 8] = q[c * 8..c * 8 + 8].try_into().expect("8 lanes");
                    for (rt, acc_t) in rv.iter().zip(acc.iter_mut()) {
                        let y: [f32; 8] = rt[c * 8..c * 8 + 8].try_into().expect("8 lanes");
                        for l in 0..8 {
                            acc_t[l] = pair::<FMA, L2>(acc_t[l], x[l], y[l]);
                        }
                    }
                }
                for (t, acc_t) in acc.iter().enumerate() {
                    out[j * nr + r + t] = finish(acc_t, q, rv[t]);
                }
            } else if tq == 4 && tr == 2 {
                let qv: [&[f32]; 4] = std::array::from_fn(|b| &qs[(j + b) * d..(j + b + 1) * d]);
                let rv: [&[f32]; 2] = std::array::from_fn(|t| &rows[(r + t) * d..(r + t + 1) * d]);
                let mut acc = [[[0.0f32; 8]; 2]; 4];
                for c in 0..d8 / 8 {
                    let r0: [f32; 8] = rv[0][c * 8..c * 8 + 8].try_into().expect("8 lanes");
                    let r1: [f32; 8] = rv[1][c * 8..c * 8 + 8].try_into().expect("8 lanes");
                    for (qb, acc_b) in qv.iter().zip(acc.iter_mut()) {
                        let x: [f32; 8] = qb[c * 8..c * 8 + 8].try_into().expect("8 lanes");
                        for l in 0..8 {
                            acc_b[0][l] = pair::<FMA, L2>(acc_b[0][l], x[l], r0[l]);
                            acc_b[1][l] = pair::<FMA, L2>(acc_b[1][l], x[l], r1[l]);
                        }
                    }
                }
                for (b, acc_b) in acc.iter().enumerate() {
                    for (t, acc_bt) in acc_b.iter().enumerate() {
                        out[(j + b) * nr + r + t] = finish(acc_bt, qv[b], rv[t]);
                    }
                }
            } else {
                for b in 0..tq {
                    let q = &qs[(j + b) * d..(j + b + 1) * d];
                    let row = &rows[r * d..(r + 1) * d];
                    let mut acc = [0.0f32; 8];
                    for (x, y) in q[..d8].chunks_exact(8).zip(row[..d8].chunks_exact(8)) {
                        for l in 0..8 {
                            acc[l] = pair::<FMA, L2>(acc[l], x[l], y[l]);
                        }
                    }
                    out[(j + b) * nr + r] = finish(&acc, q, row);
                }
            }
            r += tr;
        }
        j += tq;
    }
}

/// One lane step of [`block_lanes`]: `acc + x*y`, or `acc + (x-y)^2` for L2.
#[inline(always)]
fn pair<const FMA: bool, const L2: bool>(acc: f32, x: f32, y: f32) -> f32 {
    if L2 {
        let d = x - y;
        madd::<FMA>(acc, d, d)
    } else {
        madd::<FMA>(acc, x, y)
    }
}

/// The squared-L2 body, shaped like [`dot_lanes`].
#[inline(always)]
pub(crate) fn l2_sq_lanes<const N: usize, const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; N];
    let ca = a.chunks_exact(N);
    let cb = b.chunks_exact(N);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..N {
            let d = x[i] - y[i];
            acc[i] = madd::<FMA>(acc[i], d, d);
        }
    }
    let mut acc8 = [0.0f32; 8];
    let ca = ra.chunks_exact(8);
    let cb = rb.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc8[i] = madd::<FMA>(acc8[i], d, d);
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        tail += d * d;
    }
    reduce::<N, FMA>(&acc) + reduce::<8, FMA>(&acc8) + tail
}

/// Hamming distance of two equal-length codes of 64-bit words.
#[inline(always)]
pub(crate) fn hamming_words(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Sums the lanes in a fixed order (deterministic). A sequential sum keeps
/// the vectoriser on full-width registers; a pairwise tree here made LLVM
/// fall back to 2-lane operations in the main loop.
///
/// The AVX2 set (`FOLD`) first adds the accumulators 8 lanes at a time
/// (vertical vector adds), so only 8 lanes are summed one by one: a serial
/// 32-lane sum costs more than the 128-d main loop itself.
#[inline(always)]
fn reduce<const N: usize, const FOLD: bool>(acc: &[f32; N]) -> f32 {
    if FOLD && N > 8 && N.is_multiple_of(8) {
        let mut r = [0.0f32; 8];
        for c in acc.chunks_exact(8) {
            for i in 0..8 {
                r[i] += c[i];
            }
        }
        r.iter().sum()
    } else {
        acc.iter().sum()
    }
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
