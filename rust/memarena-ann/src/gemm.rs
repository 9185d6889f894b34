//! Blocked matrix products for batched exact search: `Q . X^T` for a group of
//! queries against a block of stored rows, by the `matrixmultiply` crate's
//! `sgemm` (packed panels, a register-tiled micro-kernel, AVX2/FMA or AVX-512
//! chosen at run time, no BLAS to link).
//!
//! faiss does the same for `IndexFlat` batches of 20 queries or more
//! (`utils/distances.cpp`: "distance_compute_blas_threshold = 20", then
//! `exhaustive_inner_product_blas` / `exhaustive_L2sqr_blas`: sgemm over
//! blocks of 4096 queries x 1024 rows and a heap per query, L2 as
//! `|x|^2 + |y|^2 - 2 <x, y>`).
//!
//! A GEMM sums each dot product in its own order, so its scores differ from
//! the scan kernels' in the last bits. [`Flat`](crate::flat::Flat) therefore
//! uses them only to *select*: [`dot_error_bound`] bounds the difference, every
//! row within twice the bound of the `k`-th approximate score is re-scored by
//! the scan's own kernel, and the results are bit-identical to the scan.

/// `out[j * nr + i] = <qs_j, rows_i>` for `nq` queries and `nr` rows of width `dim`.
///
/// # Panics
/// If a slice is shorter than its shape says (checked before the product).
pub(crate) fn dot_tile(
    qs: &[f32],
    nq: usize,
    rows: &[f32],
    nr: usize,
    dim: usize,
    out: &mut [f32],
) {
    assert!(qs.len() >= nq * dim, "dot_tile: short queries");
    assert!(rows.len() >= nr * dim, "dot_tile: short rows");
    assert!(out.len() >= nq * nr, "dot_tile: short output");
    if nq == 0 || nr == 0 {
        return;
    }
    if dim == 0 {
        out[..nq * nr].fill(0.0);
        return;
    }
    // SAFETY: A is `nq x dim` row-major (row stride `dim`), B = rows^T is
    // `dim x nr` (element (p, i) at `i * dim + p`), C is `nq x nr` row-major;
    // the asserts above keep every index the strides produce inside the
    // slices, and `out` is borrowed mutably, so C aliases neither input.
    unsafe {
        matrixmultiply::sgemm(
            nq,
            dim,
            nr,
            1.0,
            qs.as_ptr(),
            dim as isize,
            1,
            rows.as_ptr(),
            1,
            dim as isize,
            0.0,
            out.as_mut_ptr(),
            nr as isize,
            1,
        );
    }
}

/// An upper bound on `|fl(<a, b>) - <a, b>|` for any summation order of a
/// `dim`-term float32 dot product with `|a| <= na`, `|b| <= nb`:
/// `gamma_dim * sum |a_i b_i| <= gamma_dim * na * nb` (Higham, *Accuracy and
/// Stability of Numerical Algorithms*, eq. 3.5, and Cauchy-Schwarz), with
/// `gamma_n = n u / (1 - n u)`, here doubled and padded (`(dim + 8) * 2^-22`)
/// to cover the norms' own rounding.
pub(crate) fn dot_error_bound(dim: usize, na: f32, nb: f32) -> f32 {
    (dim as f32 + 8.0) * 2.0 * f32::EPSILON * na * nb
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn dot_tile_matches_f64_dots_within_the_bound(
            d in 0usize..70,
            nq in 0usize..9,
            nr in 0usize..40,
            scale in 1e-3f32..1e3,
            seed in any::<u64>(),
        ) {
            let mut rng = memarena_core::rng::Rng::seed_from_u64(seed);
            let qs: Vec<f32> = (0..nq * d).map(|_| scale * rng.normal() as f32).collect();
            let rows: Vec<f32> = (0..nr * d).map(|_| rng.normal() as f32).collect();
            let mut out = vec![f32::NAN; nq * nr];
            dot_tile(&qs, nq, &rows, nr, d, &mut out);
            for j in 0..nq {
                let q = &qs[j * d..(j + 1) * d];
                let qn = q.iter().map(|x| x * x).sum::<f32>().sqrt();
                for i in 0..nr {
                    let r = &rows[i * d..(i + 1) * d];
                    let exact: f64 = q.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum();
                    let rn = r.iter().map(|x| x * x).sum::<f32>().sqrt();
                    let err = (out[j * nr + i] as f64 - exact).abs();
                    prop_assert!(err <= dot_error_bound(d, qn, rn) as f64 + 1e-30, "{err} at ({j}, {i})");
                }
            }
        }
    }
}
