//! Blocked matrix products for batched exact search: `X . Q^T` for a block of
//! stored rows against a group of queries. Where the CPU has AVX-512F, by
//! this crate's register-blocked kernel ([`simd::Kernels::dot_panel`]: 12 rows
//! x 32 queries of zmm accumulators over a query panel packed once per
//! group, the rows read in place); elsewhere by the `matrixmultiply` crate's
//! `sgemm` (packed panels, a register-tiled micro-kernel, AVX2/FMA chosen at
//! run time, no BLAS to link). `MEMARENA_ANN_NO_AVX512=1` selects the latter.
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

/// A group of queries prepared for [`QueryPanel::dots`] against many blocks
/// of stored rows.
///
/// With a register-blocked kernel ([`simd::Kernels::dot_panel`], AVX-512F)
/// the queries are packed once per group into tiles of 32 (then one of 16,
/// zero-padded): tile `t` holds its queries' values dim-major, so one 16-lane
/// load gives 16 queries' values of one dimension. Without one they are kept
/// row-major for `matrixmultiply::sgemm`.
///
/// Invariant: `width >= nq`; `width % 16 == 0` and
/// `data.len() == width * dim` when packed, `width == nq` and
/// `data.len() == nq * dim` otherwise.
pub(crate) struct QueryPanel {
    data: Vec<f32>,
    nq: usize,
    dim: usize,
    width: usize,
    kernel: Option<DotPanel>,
}

impl QueryPanel {
    /// The queries `qs` (`nq x dim`, row-major) for this CPU's kernel.
    pub(crate) fn new(qs: &[f32], nq: usize, dim: usize) -> Self {
        Self::with_kernel(qs, nq, dim, simd::kernels().dot_panel)
    }

    /// The queries packed for `kernel` (`None`: for `sgemm`).
    ///
    /// # Panics
    /// If `qs` is shorter than `nq * dim`.
    pub(crate) fn with_kernel(qs: &[f32], nq: usize, dim: usize, kernel: Option<DotPanel>) -> Self {
        assert!(qs.len() >= nq * dim, "QueryPanel: short queries");
        let kernel = kernel.filter(|_| dim > 0 && nq > 0);
        if kernel.is_none() {
            return QueryPanel {
                data: qs[..nq * dim].to_vec(),
                nq,
                dim,
                width: nq,
                kernel,
            };
        }
        let width = nq.div_ceil(16) * 16;
        let mut data = vec![0.0f32; width * dim];
        let mut t0 = 0;
        while t0 < width {
            // The tiling rule of the kernel: 32 wide while 32 remain, then 16.
            let w = if width - t0 >= 32 { 32 } else { 16 };
            let tile = &mut data[t0 * dim..(t0 + w) * dim];
            for (c, q) in qs[t0 * dim..nq.min(t0 + w) * dim]
                .chunks_exact(dim)
                .enumerate()
            {
                for (p, &x) in q.iter().enumerate() {
                    tile[p * w + c] = x;
                }
            }
            t0 += w;
        }
        let panel = QueryPanel {
            data,
            nq,
            dim,
            width,
            kernel,
        };
        debug_assert!(panel.width.is_multiple_of(16) && panel.data.len() == panel.width * dim);
        panel
    }

    /// Floats per row of [`QueryPanel::dots`]' output (`>= nq`; the values
    /// past `nq` are padding).
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// `out[i * width + j] = <rows_i, qs_j>` for the `nr` rows of `rows`
    /// (row-major, width `dim`) and `j < nq`.
    ///
    /// # Panics
    /// If `rows` or `out` is shorter than its shape says.
    pub(crate) fn dots(&self, rows: &[f32], nr: usize, out: &mut [f32]) {
        let (nq, dim, width) = (self.nq, self.dim, self.width);
        assert!(rows.len() >= nr * dim, "dots: short rows");
        assert!(out.len() >= nr * width, "dots: short output");
        if nq == 0 || nr == 0 {
            return;
        }
        if dim == 0 {
            out[..nr * width].fill(0.0);
            return;
        }
        if let Some(kernel) = self.kernel {
            return kernel(
                &self.data,
                width,
                &rows[..nr * dim],
                dim,
                &mut out[..nr * width],
            );
        }
        // SAFETY: A = rows is `nr x dim` row-major (row stride `dim`), B =
        // qs^T is `dim x nq` (element (p, j) at `j * dim + p`), C is
        // `nr x nq` row-major (`width == nq`); the asserts above and the
        // panel's invariant keep every index the strides produce inside the
        // slices, and `out` is borrowed mutably, so C aliases neither input.
        unsafe {
            matrixmultiply::sgemm(
                nr,
                dim,
                nq,
                1.0,
                rows.as_ptr(),
                dim as isize,
                1,
                self.data.as_ptr(),
                1,
                dim as isize,
                0.0,
                out.as_mut_ptr(),
                width as isize,
                1,
            );
        }
    }
}

use crate::simd::{self, DotPanel};

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

    /// The kernels this CPU can run: `sgemm` and, where detected, the
    /// register-blocked one.
    fn kernels() -> Vec<Option<DotPanel>> {
        let mut v = vec![None];
        if let Some(k) = simd::kernels().dot_panel {
            v.push(Some(k));
        }
        v
    }

    proptest! {
        #[test]
        fn dots_match_f64_dots_within_the_bound(
            d in prop_oneof![0usize..70, Just(128), Just(384), 370usize..400],
            nq in prop_oneof![0usize..70, Just(128)],
            nr in prop_oneof![0usize..40, 100usize..140],
            scale in 1e-3f32..1e3,
            seed in any::<u64>(),
        ) {
            let mut rng = memarena_core::rng::Rng::seed_from_u64(seed);
            let qs: Vec<f32> = (0..nq * d).map(|_| scale * rng.normal() as f32).collect();
            let rows: Vec<f32> = (0..nr * d).map(|_| rng.normal() as f32).collect();
            let mut each = Vec::new();
            for kernel in kernels() {
                let panel = QueryPanel::with_kernel(&qs, nq, d, kernel);
                let w = panel.width();
                prop_assert!(w >= nq);
                let mut out = vec![f32::NAN; nr * w];
                panel.dots(&rows, nr, &mut out);
                for j in 0..nq {
                    let q = &qs[j * d..(j + 1) * d];
                    let qn = q.iter().map(|x| x * x).sum::<f32>().sqrt();
                    for i in 0..nr {
                        let r = &rows[i * d..(i + 1) * d];
                        let exact: f64 = q.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum();
                        let rn = r.iter().map(|x| x * x).sum::<f32>().sqrt();
                        let got = out[i * w + j];
                        let err = (got as f64 - exact).abs();
                        prop_assert!(err <= dot_error_bound(d, qn, rn) as f64 + 1e-30, "{err} at ({j}, {i})");
                        // A value does not depend on the block it was computed in.
                        if kernel.is_some() && i == nr - 1 {
                            let mut one = vec![f32::NAN; w];
                            panel.dots(r, 1, &mut one);
                            prop_assert_eq!(one[j].to_bits(), got.to_bits());
                        }
                    }
                }
                each.push((w, out));
            }
            // The kernels agree with each other within twice the bound.
            if let [(w0, a), (w1, b)] = &each[..] {
                for j in 0..nq {
                    let q = &qs[j * d..(j + 1) * d];
                    let qn = q.iter().map(|x| x * x).sum::<f32>().sqrt();
                    for i in 0..nr {
                        let r = &rows[i * d..(i + 1) * d];
                        let rn = r.iter().map(|x| x * x).sum::<f32>().sqrt();
                        let diff = (a[i * w0 + j] - b[i * w1 + j]).abs();
                        prop_assert!(diff <= 2.0 * dot_error_bound(d, qn, rn) + 1e-30);
                    }
                }
            }
        }
    }
}
