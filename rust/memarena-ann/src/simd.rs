//! Runtime-dispatched distance kernels.
//!
//! The portable kernels in [`crate::metric`] are plain Rust that LLVM
//! vectorises for the build target (SSE2 on the baseline x86-64 wheel). This
//! module compiles the *same* bodies a second time under
//! `#[target_feature(enable = "avx2,fma")]` (and `"popcnt"` for Hamming
//! distances), so LLVM emits 8-lane AVX/FMA and `popcnt` for them, and picks
//! one set once per process with `is_x86_feature_detected!`, cached in a
//! [`OnceLock`] of plain `fn` pointers. A wheel built for the baseline target
//! therefore still runs everywhere and uses AVX2 where the CPU has it.
//!
//! This is the only module allowed `unsafe`: calling a `#[target_feature]`
//! function is `unsafe` because running it on a CPU without the features is
//! undefined behaviour. Each call site sits in a safe wrapper that is only
//! ever installed in [`Kernels`] after the features were detected.
//!
//! The AVX2 dot products use fused multiply-add (one rounding instead of
//! two), so they agree with the portable kernels within float tolerance, not
//! bit for bit; the Hamming kernels agree exactly (tests below).

use std::sync::OnceLock;

use crate::metric::{block_lanes, dot_lanes, hamming_words, l2_sq_lanes};

/// Scores of `$q` against the listed rows of `$data` into `$out`. A macro,
/// not a generic function taking the kernel: a kernel passed as a value is
/// called through a `Fn::call` shim compiled *without* the caller's target
/// features, so `mul_add` turned into a libm call per element.
macro_rules! at {
    ($kernel:expr, $q:expr, $data:expr, $rows:expr, $out:expr) => {{
        let q: &[f32] = $q;
        let d = q.len();
        for (&r, o) in $rows.iter().zip($out.iter_mut()) {
            let s = r as usize * d;
            *o = $kernel(q, &$data[s..s + d]);
        }
    }};
}

/// Hamming distances of a query code to the codes of listed slots.
type HammingAt = fn(&[u64], &[u32], &[u64], &mut [u16]);
/// Inner products of several queries with a block of rows.
type DotBlock = fn(&[f32], usize, &[f32], &mut [f32]);
/// Hamming distances of several query codes to a block of codes.
type HammingBlock = fn(&[u64], &[u64], usize, &mut [u16]);
/// Float scores of a query against listed rows of a row-major block.
type ScoreAt = fn(&[f32], &[f32], &[u32], &mut [f32]);
/// Inner products of a block of rows with a packed query panel (see
/// [`crate::gemm::QueryPanel`]): `(panel, width, rows, dim, out)`, row-major
/// `out[i * width + j]`.
pub(crate) type DotPanel = fn(&[f32], usize, &[f32], usize, &mut [f32]);
/// Which queries take a stored row: `(dots, qn, thr, x2, l2, hits)`, see
/// [`row_hits_portable`].
pub(crate) type RowHits = fn(&[f32], &[f32], &[f32], f32, bool, &mut [u16]);

/// One set of kernels; every function assumes equal-length inputs.
pub(crate) struct Kernels {
    /// Squared L2 distance.
    pub(crate) l2_sq: fn(&[f32], &[f32]) -> f32,
    /// Inner product.
    pub(crate) dot: fn(&[f32], &[f32]) -> f32,
    /// Squared L2 of a query against listed rows of a row-major block.
    pub(crate) l2_sq_at: ScoreAt,
    /// Inner product of a query with listed rows of a row-major block.
    pub(crate) dot_at: ScoreAt,
    /// Hamming distances of a query code to the codes of the given slots
    /// (`codes` row-major, `q.len()` words per slot), written to `out`.
    pub(crate) hamming_at: HammingAt,
    /// Hamming distances of `nq` query codes (`qs`, row-major) to every code
    /// of `codes` (row-major, `qs.len() / nq` words each), written query-major
    /// to `out` (`nq * n_codes`): each code is loaded once for all queries.
    pub(crate) hamming_block: HammingBlock,
    /// Inner products of `nq` queries with every row of a row-major block,
    /// query-major (see [`crate::metric::block_lanes`]).
    pub(crate) dot_block: DotBlock,
    /// Squared L2 of `nq` queries to every row of a row-major block, query-major.
    pub(crate) l2_sq_block: DotBlock,
    /// Inner products of a block of rows with a packed query panel, by a
    /// register-blocked kernel; `None`: the batched search multiplies
    /// through `matrixmultiply::sgemm` instead (see [`crate::gemm`]).
    pub(crate) dot_panel: Option<DotPanel>,
    /// The batched flat search's filter: which queries of a group take one
    /// stored row (see [`row_hits_portable`]); bit for bit the portable
    /// result.
    pub(crate) row_hits: RowHits,
    /// Hints the cache lines of a slice into L1 (a no-op where the target
    /// has no prefetch instruction); never changes a value.
    pub(crate) prefetch: fn(&[f32]),
    /// Which set this is (`"portable"`, `"avx2+fma+popcnt"`,
    /// `"avx512f+avx2+fma+popcnt"` or `"avx512f+vpopcntdq+avx2+fma+popcnt"`).
    pub(crate) name: &'static str,
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetch_none(_: &[f32]) {}

/// [`Kernels::prefetch`] on x86-64 (SSE, part of the baseline target).
#[cfg(target_arch = "x86_64")]
#[allow(unused_unsafe)]
fn prefetch_x86(v: &[f32]) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    for line in v.chunks(16) {
        // SAFETY: a prefetch is a hint and never faults; the address is the
        // start of a bounds-checked chunk of `v`.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
}

fn l2_sq_portable(a: &[f32], b: &[f32]) -> f32 {
    l2_sq_lanes::<16, false>(a, b)
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<16, false>(a, b)
}

fn l2_sq_at_portable(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
    at!(l2_sq_lanes::<16, false>, q, data, rows, out)
}

fn dot_at_portable(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
    at!(dot_lanes::<16, false>, q, data, rows, out)
}

fn dot_block_portable(qs: &[f32], nq: usize, rows: &[f32], out: &mut [f32]) {
    block_lanes::<false, false>(qs, nq, rows, out)
}

fn l2_sq_block_portable(qs: &[f32], nq: usize, rows: &[f32], out: &mut [f32]) {
    block_lanes::<false, true>(qs, nq, rows, out)
}

fn hamming_at_portable(codes: &[u64], slots: &[u32], q: &[u64], out: &mut [u16]) {
    hamming_at_body(codes, slots, q, out)
}

#[inline(always)]
fn hamming_at_body(codes: &[u64], slots: &[u32], q: &[u64], out: &mut [u16]) {
    let nt = q.len();
    for (&s, o) in slots.iter().zip(out.iter_mut()) {
        let s = s as usize * nt;
        *o = hamming_words(&codes[s..s + nt], q) as u16;
    }
}

#[inline(always)]
fn hamming_block_body(codes: &[u64], qs: &[u64], nq: usize, out: &mut [u16]) {
    let nt = qs.len() / nq.max(1);
    let n = codes.len() / nt.max(1);
    if nt == 0 || n == 0 {
        return;
    }
    assert!(out.len() >= nq * n, "hamming_block: short output");
    if nt == 4 {
        for (i, c) in codes.chunks_exact(4).enumerate() {
            let c: &[u64; 4] = c.try_into().expect("4 words");
            for (j, q) in qs.chunks_exact(4).enumerate() {
                out[j * n + i] = ((c[0] ^ q[0]).count_ones()
                    + (c[1] ^ q[1]).count_ones()
                    + (c[2] ^ q[2]).count_ones()
                    + (c[3] ^ q[3]).count_ones()) as u16;
            }
        }
    } else {
        for (i, c) in codes.chunks_exact(nt).enumerate() {
            for (j, q) in qs.chunks_exact(nt).enumerate() {
                out[j * n + i] = hamming_words(c, q) as u16;
            }
        }
    }
}

fn hamming_block_portable(codes: &[u64], qs: &[u64], nq: usize, out: &mut [u16]) {
    hamming_block_body(codes, qs, nq, out)
}

/// Bit `l` of `hits[c]` is set iff query `j = 16 c + l` takes the stored row:
/// its approximate score, `-dots[j]`, or `(x2 + qn[j]) - 2 dots[j]` with
/// `l2`, is `<= thr[j]` (false for NaN). Every word of `hits` is written;
/// bits past `dots.len()` are clear.
///
/// # Panics
/// If `qn`, `thr` or `hits` is shorter than `dots` needs.
pub(crate) fn row_hits_portable(
    dots: &[f32],
    qn: &[f32],
    thr: &[f32],
    x2: f32,
    l2: bool,
    hits: &mut [u16],
) {
    let n = dots.len();
    assert!(
        qn.len() >= n && thr.len() >= n && hits.len() >= n.div_ceil(16),
        "row_hits: short input"
    );
    for (c, h) in hits.iter_mut().enumerate() {
        let mut m = 0u16;
        for j in 16 * c..(16 * c + 16).min(n) {
            let sc = if l2 {
                x2 + qn[j] - 2.0 * dots[j]
            } else {
                -dots[j]
            };
            m |= u16::from(sc <= thr[j]) << (j - 16 * c);
        }
        *h = m;
    }
}

/// The portable set (always valid).
pub(crate) const PORTABLE: Kernels = Kernels {
    l2_sq: l2_sq_portable,
    dot: dot_portable,
    l2_sq_at: l2_sq_at_portable,
    dot_at: dot_at_portable,
    hamming_at: hamming_at_portable,
    hamming_block: hamming_block_portable,
    dot_block: dot_block_portable,
    l2_sq_block: l2_sq_block_portable,
    dot_panel: None,
    row_hits: row_hits_portable,
    #[cfg(target_arch = "x86_64")]
    prefetch: prefetch_x86,
    #[cfg(not(target_arch = "x86_64"))]
    prefetch: prefetch_none,
    name: "portable",
};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    /// `at!` that first prefetches the rows two positions ahead (a graph
    /// search scores scattered rows, which the hardware prefetcher cannot
    /// predict); same values as `at!`.
    macro_rules! at_prefetched {
        ($kernel:expr, $q:expr, $data:expr, $rows:expr, $out:expr) => {{
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let q: &[f32] = $q;
            let data: &[f32] = $data;
            let rows: &[u32] = $rows;
            let d = q.len();
            let fetch = |i: usize| {
                if let Some(&r) = rows.get(i) {
                    let row = &data[r as usize * d..(r as usize + 1) * d];
                    for line in row.chunks(16) {
                        // SAFETY: a prefetch is a hint and never faults; the
                        // address is inside `data` (a bounds-checked slice).
                        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
                    }
                }
            };
            fetch(0);
            fetch(1);
            for (i, (&r, o)) in rows.iter().zip($out.iter_mut()).enumerate() {
                fetch(i + 2);
                let s = r as usize * d;
                *o = $kernel(q, &data[s..s + d]);
            }
        }};
    }

    #[target_feature(enable = "avx2,fma")]
    fn l2_sq_avx2(a: &[f32], b: &[f32]) -> f32 {
        l2_sq_lanes::<32, true>(a, b)
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        dot_lanes::<32, true>(a, b)
    }

    #[target_feature(enable = "avx2,fma")]
    #[allow(unused_unsafe)]
    fn l2_sq_at_avx2(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
        at_prefetched!(l2_sq_lanes::<32, true>, q, data, rows, out)
    }

    #[target_feature(enable = "avx2,fma")]
    #[allow(unused_unsafe)]
    fn dot_at_avx2(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
        at_prefetched!(dot_lanes::<32, true>, q, data, rows, out)
    }

    /// [`crate::metric::block_lanes`] with explicit AVX2/FMA intrinsics (the
    /// autovectoriser turned the one-query tile of the L2 variant into
    /// shuffles across rows): tiles of 4 queries x 2 rows and 1 query x 4
    /// rows, each pair one 8-lane accumulator over the chunks of 8 in order,
    /// then the same fixed reduction and fused scalar tail, so a pair's value
    /// never depends on its tile.
    #[target_feature(enable = "avx2,fma")]
    #[allow(unused_unsafe)]
    fn block_avx2<const L2: bool>(qs: &[f32], nq: usize, rows: &[f32], out: &mut [f32]) {
        use std::arch::x86_64::*;
        let Some((d, nr)) = crate::metric::block_shape(qs, nq, rows, out) else {
            return;
        };
        let d8 = d / 8 * 8;
        macro_rules! load {
            ($v:expr) => {{
                // A chunk of `chunks_exact(8)`: the length check folds away.
                let v: &[f32; 8] = $v.try_into().expect("8 lanes");
                // SAFETY: `v` is 8 in-bounds floats; unaligned load.
                unsafe { _mm256_loadu_ps(v.as_ptr()) }
            }};
        }
        // The 8-lane chunks of a vector's first `d8` values.
        macro_rules! lanes {
            ($v:expr) => {
                $v[..d8].chunks_exact(8)
            };
        }
        macro_rules! step {
            ($acc:expr, $x:expr, $y:expr) => {
                if L2 {
                    let t = _mm256_sub_ps($x, $y);
                    $acc = _mm256_fmadd_ps(t, t, $acc);
                } else {
                    $acc = _mm256_fmadd_ps($x, $y, $acc);
                }
            };
        }
        macro_rules! finish {
            ($acc:expr, $q:expr, $r:expr) => {{
                // ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)), in registers.
                let acc = $acc;
                let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
                let t = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let sum = _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
                let mut tail = 0.0f32;
                for (x, y) in $q[d8..].iter().zip(&$r[d8..]) {
                    tail = if L2 {
                        (x - y).mul_add(x - y, tail)
                    } else {
                        x.mul_add(*y, tail)
                    };
                }
                sum + tail
            }};
        }
        let row = |r: usize| &rows[r * d..(r + 1) * d];
        let mut j = 0;
        while j < nq {
            let tq = if nq - j >= 4 { 4 } else { 1 };
            let q_at = |b: usize| &qs[(j + b.min(tq - 1)) * d..][..d];
            let q = [q_at(0), q_at(1), q_at(2), q_at(3)];
            let mut r = 0;
            if tq == 4 {
                while r + 2 <= nr {
                    let (r0, r1) = (row(r), row(r + 1));
                    let mut acc = [[_mm256_setzero_ps(); 2]; 4];
                    let chunks = lanes!(r0)
                        .zip(lanes!(r1))
                        .zip(lanes!(q[0]).zip(lanes!(q[1])))
                        .zip(lanes!(q[2]).zip(lanes!(q[3])));
                    for (((y0, y1), (x0, x1)), (x2, x3)) in chunks {
                        let (y0, y1) = (load!(y0), load!(y1));
                        for (b, x) in [x0, x1, x2, x3].into_iter().enumerate() {
                            let x = load!(x);
                            step!(acc[b][0], x, y0);
                            step!(acc[b][1], x, y1);
                        }
                    }
                    for b in 0..4 {
                        out[(j + b) * nr + r] = finish!(acc[b][0], q[b], r0);
                        out[(j + b) * nr + r + 1] = finish!(acc[b][1], q[b], r1);
                    }
                    r += 2;
                }
            } else {
                while r + 4 <= nr {
                    // Prefetch the rows two tiles ahead (a list or tenant block
                    // is short, so the hardware prefetcher barely ramps up).
                    let ahead = rows.as_ptr().wrapping_add((r + 8) * d).cast::<i8>();
                    let ahead_end = rows
                        .as_ptr()
                        .wrapping_add((r + 12).min(nr) * d)
                        .cast::<i8>();
                    let mut p = ahead;
                    while p < ahead_end {
                        // SAFETY: a prefetch is a hint and never faults; the
                        // address is inside `rows` (checked by the loop bound).
                        unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
                        p = p.wrapping_add(64);
                    }
                    let rr = [row(r), row(r + 1), row(r + 2), row(r + 3)];
                    let mut acc = [_mm256_setzero_ps(); 4];
                    let chunks = lanes!(q[0])
                        .zip(lanes!(rr[0]))
                        .zip(lanes!(rr[1]))
                        .zip(lanes!(rr[2]))
                        .zip(lanes!(rr[3]));
                    for ((((x, y0), y1), y2), y3) in chunks {
                        let x = load!(x);
                        step!(acc[0], x, load!(y0));
                        step!(acc[1], x, load!(y1));
                        step!(acc[2], x, load!(y2));
                        step!(acc[3], x, load!(y3));
                    }
                    for t in 0..4 {
                        out[j * nr + r + t] = finish!(acc[t], q[0], rr[t]);
                    }
                    r += 4;
                }
            }
            // Remaining rows, one pair at a time.
            for rest in r..nr {
                let y = row(rest);
                for b in 0..tq {
                    let mut acc = _mm256_setzero_ps();
                    for (x, y) in lanes!(q[b]).zip(lanes!(y)) {
                        step!(acc, load!(x), load!(y));
                    }
                    out[(j + b) * nr + rest] = finish!(acc, q[b], y);
                }
            }
            j += tq;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_block_avx2(qs: &[f32], nq: usize, rows: &[f32], out: &mut [f32]) {
        block_avx2::<false>(qs, nq, rows, out)
    }

    #[target_feature(enable = "avx2,fma")]
    fn l2_sq_block_avx2(qs: &[f32], nq: usize, rows: &[f32], out: &mut [f32]) {
        block_avx2::<true>(qs, nq, rows, out)
    }

    pub(super) fn l2_sq_block(qs: &[f32], nq: usize, rows: &[f32], out: &mut [f32]) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx2 and fma.
        unsafe { l2_sq_block_avx2(qs, nq, rows, out) }
    }

    pub(super) fn dot_block(qs: &[f32], nq: usize, rows: &[f32], out: &mut [f32]) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx2 and fma.
        unsafe { dot_block_avx2(qs, nq, rows, out) }
    }

    pub(super) fn l2_sq_at(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx2 and fma.
        unsafe { l2_sq_at_avx2(q, data, rows, out) }
    }

    pub(super) fn dot_at(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx2 and fma.
        unsafe { dot_at_avx2(q, data, rows, out) }
    }

    #[target_feature(enable = "avx2,popcnt")]
    fn hamming_at_popcnt(codes: &[u64], slots: &[u32], q: &[u64], out: &mut [u16]) {
        hamming_at_body(codes, slots, q, out)
    }

    /// Byte-wise popcount (nibble table, `vpshufb`) of `code ^ q`, summed per
    /// 64-bit lane (`vpsadbw`): four lane counts whose sum is the distance.
    macro_rules! lane_counts {
        ($codes:expr, $i:expr, $q:expr, $lut:expr, $low:expr) => {{
            let c: &[u64] = &$codes[$i * 4..$i * 4 + 4];
            // SAFETY: `c` is 4 in-bounds words (32 bytes); unaligned load.
            let c = unsafe { _mm256_loadu_si256(c.as_ptr().cast()) };
            let x = _mm256_xor_si256(c, $q);
            let lo = _mm256_shuffle_epi8($lut, _mm256_and_si256(x, $low));
            let hi = _mm256_shuffle_epi8($lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), $low));
            _mm256_sad_epu8(_mm256_add_epi8(lo, hi), _mm256_setzero_si256())
        }};
    }

    /// 256-bit codes (4 words): four codes at a time, their per-lane counts
    /// summed by a 4x4 transpose-add; other widths use the portable body.
    #[target_feature(enable = "avx2,popcnt")]
    #[allow(unused_unsafe)]
    fn hamming_block_popcnt(codes: &[u64], qs: &[u64], nq: usize, out: &mut [u16]) {
        use std::arch::x86_64::*;
        let nt = qs.len() / nq.max(1);
        if nt != 4 {
            return hamming_block_body(codes, qs, nq, out);
        }
        let n = codes.len() / 4;
        assert!(out.len() >= nq * n, "hamming_block: short output");
        let lut = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
            3, 3, 4,
        );
        let low = _mm256_set1_epi8(0x0f);
        let n4 = n / 4 * 4;
        for (j, qw) in qs.chunks_exact(4).enumerate() {
            // SAFETY: `qw` is 4 in-bounds words (32 bytes); unaligned load.
            let q = unsafe { _mm256_loadu_si256(qw.as_ptr().cast()) };
            let o = &mut out[j * n..(j + 1) * n];
            for i in (0..n4).step_by(4) {
                let a = lane_counts!(codes, i, q, lut, low);
                let b = lane_counts!(codes, i + 1, q, lut, low);
                let c = lane_counts!(codes, i + 2, q, lut, low);
                let d = lane_counts!(codes, i + 3, q, lut, low);
                let ab = _mm256_add_epi64(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
                let cd = _mm256_add_epi64(_mm256_unpacklo_epi64(c, d), _mm256_unpackhi_epi64(c, d));
                let sum = _mm256_add_epi64(
                    _mm256_permute2x128_si256(ab, cd, 0x20),
                    _mm256_permute2x128_si256(ab, cd, 0x31),
                );
                let mut lanes = [0u64; 4];
                // SAFETY: `lanes` is 32 writable bytes; unaligned store.
                unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), sum) };
                for (o, l) in o[i..i + 4].iter_mut().zip(lanes) {
                    *o = l as u16;
                }
            }
            for i in n4..n {
                o[i] = hamming_words(&codes[i * 4..i * 4 + 4], qw) as u16;
            }
        }
    }

    pub(super) fn hamming_block(codes: &[u64], qs: &[u64], nq: usize, out: &mut [u16]) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx2 and popcnt.
        unsafe { hamming_block_popcnt(codes, qs, nq, out) }
    }

    pub(super) fn hamming_at(codes: &[u64], slots: &[u32], q: &[u64], out: &mut [u16]) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx2 and popcnt.
        unsafe { hamming_at_popcnt(codes, slots, q, out) }
    }

    pub(super) fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: installed in `Kernels` only after `detect` saw avx2 and fma.
        unsafe { l2_sq_avx2(a, b) }
    }

    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: installed in `Kernels` only after `detect` saw avx2 and fma.
        unsafe { dot_avx2(a, b) }
    }

    pub(super) const AVX2: Kernels = Kernels {
        l2_sq,
        dot,
        l2_sq_at,
        dot_at,
        hamming_at,
        hamming_block,
        dot_block,
        l2_sq_block,
        dot_panel: None,
        row_hits: row_hits_portable,
        prefetch: super::prefetch_x86,
        name: "avx2+fma+popcnt",
    };

    /// The 16-lane body of the AVX-512F set: four independent 16-lane
    /// accumulators over chunks of 64 (an FMA has a latency of about four
    /// cycles, so one chain would leave the unit idle), then chunks of 16
    /// into the first, then the last `len % 16` values as one zero-masked
    /// load (masked-off lanes contribute `0` to either sum), then a fixed
    /// reduction. Deterministic for given inputs; differs from the portable
    /// kernel only by the order of the additions (tolerance in the tests).
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(unused_unsafe)]
    fn lanes_avx512<const L2: bool>(a: &[f32], b: &[f32]) -> f32 {
        use std::arch::x86_64::*;
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        macro_rules! step {
            ($acc:expr, $x:expr, $y:expr) => {
                if L2 {
                    let t = _mm512_sub_ps($x, $y);
                    $acc = _mm512_fmadd_ps(t, t, $acc);
                } else {
                    $acc = _mm512_fmadd_ps($x, $y, $acc);
                }
            };
        }
        // A macro, not a closure, so the load inlines under this function's
        // target features.
        macro_rules! ld {
            ($p:expr, $i:expr) => {
                // SAFETY: every use has `$i + 16 <= n`: 16 in-bounds floats of
                // both slices; `loadu` takes unaligned addresses.
                unsafe { _mm512_loadu_ps($p.add($i)) }
            };
        }
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (c, acc_c) in acc.iter_mut().enumerate() {
                let o = i + 16 * c;
                step!(*acc_c, ld!(pa, o), ld!(pb, o));
            }
            i += 64;
        }
        while i + 16 <= n {
            step!(acc[0], ld!(pa, i), ld!(pb, i));
            i += 16;
        }
        if i < n {
            // `n - i` in 1..=15: the low `n - i` lanes.
            let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
            // SAFETY: only the `n - i` unmasked lanes are read, all in
            // bounds; AVX-512 masked loads suppress faults on masked lanes.
            let (x, y) = unsafe {
                (
                    _mm512_maskz_loadu_ps(m, pa.add(i)),
                    _mm512_maskz_loadu_ps(m, pb.add(i)),
                )
            };
            step!(acc[1], x, y);
        }
        let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(s)
    }

    #[target_feature(enable = "avx512f")]
    fn l2_sq_avx512(a: &[f32], b: &[f32]) -> f32 {
        lanes_avx512::<true>(a, b)
    }

    #[target_feature(enable = "avx512f")]
    fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        lanes_avx512::<false>(a, b)
    }

    #[target_feature(enable = "avx512f")]
    #[allow(unused_unsafe)]
    fn l2_sq_at_avx512(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
        at_prefetched!(lanes_avx512::<true>, q, data, rows, out)
    }

    #[target_feature(enable = "avx512f")]
    #[allow(unused_unsafe)]
    fn dot_at_avx512(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
        at_prefetched!(lanes_avx512::<false>, q, data, rows, out)
    }

    pub(super) fn l2_sq_512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: installed in `Kernels` only after `detect` saw avx512f.
        unsafe { l2_sq_avx512(a, b) }
    }

    pub(super) fn dot_512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: installed in `Kernels` only after `detect` saw avx512f.
        unsafe { dot_avx512(a, b) }
    }

    pub(super) fn l2_sq_at_512(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx512f.
        unsafe { l2_sq_at_avx512(q, data, rows, out) }
    }

    pub(super) fn dot_at_512(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx512f.
        unsafe { dot_at_avx512(q, data, rows, out) }
    }

    /// One register tile of [`dot_panel_avx512`]: `MR` rows (row-major at
    /// `rows`, `dim` floats each) times one `16 * V`-query tile of the panel
    /// (`[dim][16 * V]` at `tile`), `MR x V` zmm accumulators, each summed
    /// over `p = 0..dim` in order by FMA (a row value broadcast, 16
    /// queries' values loaded), stored to `out[i * ldo + 16 * v ..]`.
    ///
    /// # Safety
    /// avx512f; `rows` readable for `MR * dim` floats, `tile` for
    /// `16 * V * dim`, `out` writable at `i * ldo + w` for `i < MR`,
    /// `w < 16 * V`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(unused_unsafe)]
    unsafe fn panel_tile_avx512<const MR: usize, const V: usize>(
        rows: *const f32,
        dim: usize,
        tile: *const f32,
        out: *mut f32,
        ldo: usize,
    ) {
        use std::arch::x86_64::*;
        let mut acc = [[_mm512_setzero_ps(); V]; MR];
        let mut b = [_mm512_setzero_ps(); V];
        for p in 0..dim {
            for (v, bv) in b.iter_mut().enumerate() {
                // SAFETY: `p < dim`, `v < V`: inside the tile (caller's contract).
                *bv = unsafe { _mm512_loadu_ps(tile.add(p * 16 * V + 16 * v)) };
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                // SAFETY: `i < MR`, `p < dim`: inside the rows (caller's contract).
                let a = _mm512_set1_ps(unsafe { *rows.add(i * dim + p) });
                for (acc_iv, bv) in acc_i.iter_mut().zip(&b) {
                    *acc_iv = _mm512_fmadd_ps(a, *bv, *acc_iv);
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            for (v, acc_iv) in acc_i.iter().enumerate() {
                // SAFETY: `i < MR`, `16 * v + 16 <= 16 * V` (caller's contract).
                unsafe { _mm512_storeu_ps(out.add(i * ldo + 16 * v), *acc_iv) };
            }
        }
    }

    /// `out[i * width + j] = <rows_i, panel query j>`: rows in micro-panels of
    /// 12 (then 4, then 1) kept in L1 while every query tile of the panel
    /// (32 wide, a last one 16 wide, streamed from L2) passes over them.
    /// Each value is one FMA chain over `p = 0..dim` whatever the tile shape.
    ///
    /// # Panics
    /// If the shapes disagree (checked before any access).
    #[target_feature(enable = "avx512f")]
    #[allow(unused_unsafe)]
    fn dot_panel_avx512(panel: &[f32], width: usize, rows: &[f32], dim: usize, out: &mut [f32]) {
        assert!(
            dim > 0 && width.is_multiple_of(16),
            "dot_panel: dim {dim}, width {width}"
        );
        let nr = rows.len() / dim;
        assert!(panel.len() >= width * dim, "dot_panel: short panel");
        assert!(out.len() >= nr * width, "dot_panel: short output");
        let (pr, pp, po) = (rows.as_ptr(), panel.as_ptr(), out.as_mut_ptr());
        macro_rules! rows_of {
            ($mr:literal, $i:expr) => {{
                let mut t0 = 0;
                while t0 < width {
                    // SAFETY: rows `$i..$i + $mr <= nr`; the tile at query
                    // `t0` is `w * dim` floats at `t0 * dim` with
                    // `t0 + w <= width`; outputs `i * width + t0 + w'` with
                    // `i < nr`, `w' < w` (all asserted above).
                    unsafe {
                        let (r, t, o) =
                            (pr.add($i * dim), pp.add(t0 * dim), po.add($i * width + t0));
                        if width - t0 >= 32 {
                            panel_tile_avx512::<$mr, 2>(r, dim, t, o, width);
                            t0 += 32;
                        } else {
                            panel_tile_avx512::<$mr, 1>(r, dim, t, o, width);
                            t0 += 16;
                        }
                    }
                }
            }};
        }
        let mut i = 0;
        while i + 12 <= nr {
            rows_of!(12, i);
            i += 12;
        }
        while i + 4 <= nr {
            rows_of!(4, i);
            i += 4;
        }
        while i < nr {
            rows_of!(1, i);
            i += 1;
        }
    }

    /// [`super::row_hits_portable`] by 16-lane compares (the same
    /// operations in the same order, so the same bits); the last chunk
    /// zero-masked.
    #[target_feature(enable = "avx512f")]
    #[allow(unused_unsafe)]
    fn row_hits_avx512(dots: &[f32], qn: &[f32], thr: &[f32], x2: f32, l2: bool, hits: &mut [u16]) {
        use std::arch::x86_64::*;
        let n = dots.len();
        assert!(
            qn.len() >= n && thr.len() >= n && hits.len() >= n.div_ceil(16),
            "row_hits: short input"
        );
        let (pd, pq, pt) = (dots.as_ptr(), qn.as_ptr(), thr.as_ptr());
        let x2v = _mm512_set1_ps(x2);
        for (c, h) in hits.iter_mut().enumerate() {
            let o = 16 * c;
            let live: __mmask16 = if n - o >= 16 {
                0xffff
            } else {
                ((1u32 << (n - o)) - 1) as u16
            };
            // SAFETY: only the `live` lanes are read, all below `n` (asserted
            // lengths); masked-off lanes suppress faults.
            let (d, t) = unsafe {
                (
                    _mm512_maskz_loadu_ps(live, pd.add(o)),
                    _mm512_maskz_loadu_ps(live, pt.add(o)),
                )
            };
            let sc = if l2 {
                // SAFETY: as above.
                let q = unsafe { _mm512_maskz_loadu_ps(live, pq.add(o)) };
                _mm512_sub_ps(_mm512_add_ps(x2v, q), _mm512_add_ps(d, d))
            } else {
                _mm512_sub_ps(_mm512_setzero_ps(), d)
            };
            *h = _mm512_mask_cmp_ps_mask::<_CMP_LE_OQ>(live, sc, t);
        }
    }

    pub(super) fn row_hits_512(
        dots: &[f32],
        qn: &[f32],
        thr: &[f32],
        x2: f32,
        l2: bool,
        hits: &mut [u16],
    ) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx512f.
        unsafe { row_hits_avx512(dots, qn, thr, x2, l2, hits) }
    }

    pub(super) fn dot_panel_512(
        panel: &[f32],
        width: usize,
        rows: &[f32],
        dim: usize,
        out: &mut [f32],
    ) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx512f.
        unsafe { dot_panel_avx512(panel, width, rows, dim, out) }
    }

    /// The AVX-512F set: 16-lane single-pair and gather kernels (the ones a
    /// graph search and the pairwise callers use) and the query-panel
    /// kernel of the batched flat search; the query-block and Hamming
    /// kernels stay the AVX2 ones (every AVX-512F CPU has AVX2, FMA and
    /// POPCNT; `detect` checks them all).
    pub(super) const AVX512: Kernels = Kernels {
        l2_sq: l2_sq_512,
        dot: dot_512,
        l2_sq_at: l2_sq_at_512,
        dot_at: dot_at_512,
        dot_panel: Some(dot_panel_512),
        row_hits: row_hits_512,
        name: "avx512f+avx2+fma+popcnt",
        ..AVX2
    };

    /// Hamming distances of 256-bit codes with AVX-512 VPOPCNTDQ: eight codes
    /// a step (four 512-bit loads of two codes each), `vpopcntq` of `code ^
    /// q` gives each code's four word counts, and a transpose-add (two
    /// `unpack` adds, one 128-bit-lane shuffle add) sums them into the eight
    /// distances, stored as `u16` in code order. Other widths, and the last
    /// `n % 8` codes, use the portable body. Exact (integer sums), so equal
    /// to the portable kernel bit for bit.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    #[allow(unused_unsafe)]
    fn hamming_block_vpopcnt(codes: &[u64], qs: &[u64], nq: usize, out: &mut [u16]) {
        use std::arch::x86_64::*;
        let nt = qs.len() / nq.max(1);
        if nt != 4 {
            return hamming_block_body(codes, qs, nq, out);
        }
        let n = codes.len() / 4;
        assert!(out.len() >= nq * n, "hamming_block: short output");
        let n8 = n / 8 * 8;
        // S below holds the distances of codes [0, 2, 1, 3, 4, 6, 5, 7]: back to code order
        let order = _mm512_setr_epi64(0, 2, 1, 3, 4, 6, 5, 7);
        for (j, qw) in qs.chunks_exact(4).enumerate() {
            // SAFETY: `qw` is 4 in-bounds words; the query twice, one per 256-bit half
            let q = unsafe { _mm512_broadcast_i64x4(_mm256_loadu_si256(qw.as_ptr().cast())) };
            let o = &mut out[j * n..(j + 1) * n];
            for i in (0..n8).step_by(8) {
                let c = &codes[i * 4..i * 4 + 32];
                // SAFETY: `c` is 32 in-bounds words (256 bytes): four unaligned 64-byte loads.
                let (r0, r1, r2, r3) = unsafe {
                    (
                        _mm512_popcnt_epi64(_mm512_xor_si512(
                            _mm512_loadu_si512(c.as_ptr().cast()),
                            q,
                        )),
                        _mm512_popcnt_epi64(_mm512_xor_si512(
                            _mm512_loadu_si512(c[8..].as_ptr().cast()),
                            q,
                        )),
                        _mm512_popcnt_epi64(_mm512_xor_si512(
                            _mm512_loadu_si512(c[16..].as_ptr().cast()),
                            q,
                        )),
                        _mm512_popcnt_epi64(_mm512_xor_si512(
                            _mm512_loadu_si512(c[24..].as_ptr().cast()),
                            q,
                        )),
                    )
                };
                // r0 = code 0's four word counts, then code 1's; r1 codes 2, 3; r2 4, 5; r3 6, 7.
                // Per 128-bit lane: t0 = [c0 w0+w1, c2 w0+w1], [c0 w2+w3, c2 w2+w3], [c1 ..], [c1 ..]
                let t0 =
                    _mm512_add_epi64(_mm512_unpacklo_epi64(r0, r1), _mm512_unpackhi_epi64(r0, r1));
                let t1 =
                    _mm512_add_epi64(_mm512_unpacklo_epi64(r2, r3), _mm512_unpackhi_epi64(r2, r3));
                // lanes (0, 2) of t0 then of t1, plus lanes (1, 3): [c0, c2], [c1, c3], [c4, c6], [c5, c7]
                let a = _mm512_shuffle_i64x2::<0b10_00_10_00>(t0, t1);
                let b = _mm512_shuffle_i64x2::<0b11_01_11_01>(t0, t1);
                let d = _mm512_permutexvar_epi64(order, _mm512_add_epi64(a, b));
                // SAFETY: `o[i..i + 8]` is 16 writable bytes; unaligned store of the eight u16.
                unsafe {
                    _mm_storeu_si128(o[i..i + 8].as_mut_ptr().cast(), _mm512_cvtepi64_epi16(d))
                };
            }
            for i in n8..n {
                o[i] = hamming_words(&codes[i * 4..i * 4 + 4], qw) as u16;
            }
        }
    }

    pub(super) fn hamming_block_512(codes: &[u64], qs: &[u64], nq: usize, out: &mut [u16]) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx512f and avx512vpopcntdq.
        unsafe { hamming_block_vpopcnt(codes, qs, nq, out) }
    }

    /// [`AVX512`] with the VPOPCNTDQ Hamming block kernel (Ice Lake, Zen 4 and later).
    pub(super) const AVX512_VPOPCNT: Kernels = Kernels {
        hamming_block: hamming_block_512,
        name: "avx512f+vpopcntdq+avx2+fma+popcnt",
        ..AVX512
    };

    pub(super) fn detect() -> Option<&'static Kernels> {
        let ok = std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("popcnt");
        if !ok {
            return None;
        }
        if std::is_x86_feature_detected!("avx512f")
            && std::env::var_os("MEMARENA_ANN_NO_AVX512").is_none_or(|v| v != "1")
        {
            if std::is_x86_feature_detected!("avx512vpopcntdq") {
                return Some(&AVX512_VPOPCNT);
            }
            return Some(&AVX512);
        }
        Some(&AVX2)
    }
}

/// The best kernel set for this CPU, detected once: AVX-512F where the CPU
/// has it, else AVX2+FMA, else portable. Setting the environment variable
/// `MEMARENA_ANN_PORTABLE=1` before the first search forces the portable
/// set, `MEMARENA_ANN_NO_AVX512=1` the AVX2 one (for comparisons).
#[inline]
pub(crate) fn kernels() -> &'static Kernels {
    static K: OnceLock<&'static Kernels> = OnceLock::new();
    K.get_or_init(|| {
        if std::env::var_os("MEMARENA_ANN_PORTABLE").is_some_and(|v| v == "1") {
            return &PORTABLE;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = x86::detect() {
            return k;
        }
        &PORTABLE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
    }

    proptest! {
        #[test]
        fn dispatched_float_kernels_match_portable(
            (a, b) in (0usize..300).prop_flat_map(|n| (
                prop::collection::vec(-10.0f32..10.0, n),
                prop::collection::vec(-10.0f32..10.0, n),
            ))
        ) {
            let k = kernels();
            prop_assert!(close((k.l2_sq)(&a, &b), l2_sq_portable(&a, &b)));
            prop_assert!(close((k.dot)(&a, &b), dot_portable(&a, &b)));
            // Row-block kernels: rows of `b` (width 1..=len) against a prefix of `a`.
            let w = (a.len() / 3).max(1);
            if a.len() >= w {
                let rows = b.len() / w;
                let (mut got, mut want) = (vec![0.0; rows], vec![0.0; rows]);
                let idx: Vec<u32> = (0..rows as u32).rev().collect();
                (k.l2_sq_at)(&a[..w], &b[..rows * w], &idx, &mut got);
                for (r, x) in want.iter_mut().enumerate() {
                    *x = l2_sq_portable(&a[..w], &b[r * w..(r + 1) * w]);
                }
                want.reverse();
                prop_assert!(got.iter().zip(&want).all(|(x, y)| close(*x, *y)));
                (k.dot_at)(&a[..w], &b[..rows * w], &idx, &mut got);
                dot_at_portable(&a[..w], &b[..rows * w], &idx, &mut want);
                prop_assert!(got.iter().zip(&want).all(|(x, y)| close(*x, *y)));
            }
        }

        #[test]
        fn dot_block_is_per_pair_and_matches_dot(
            d in 1usize..40,
            nq in 1usize..11,
            nr in 0usize..9,
            seed in any::<u64>(),
        ) {
            let mut rng = memarena_core::rng::Rng::seed_from_u64(seed);
            let qs: Vec<f32> = (0..nq * d).map(|_| rng.normal() as f32).collect();
            let rows: Vec<f32> = (0..nr * d).map(|_| rng.normal() as f32).collect();
            for k in [kernels(), &PORTABLE] {
                let mut all = vec![0.0; nq * nr];
                (k.dot_block)(&qs, nq, &rows, &mut all);
                for j in 0..nq {
                    let q = &qs[j * d..(j + 1) * d];
                    // Alone, a query gets bit-identical results.
                    let mut one = vec![0.0; nr];
                    (k.dot_block)(q, 1, &rows, &mut one);
                    prop_assert_eq!(&all[j * nr..(j + 1) * nr], &one[..]);
                    for r in 0..nr {
                        prop_assert!(close(one[r], dot_portable(q, &rows[r * d..(r + 1) * d])));
                    }
                    let mut l2 = vec![0.0; nr];
                    (k.l2_sq_block)(q, 1, &rows, &mut l2);
                    for r in 0..nr {
                        prop_assert!(close(l2[r], l2_sq_portable(q, &rows[r * d..(r + 1) * d])));
                    }
                }
            }
        }

        #[test]
        fn dispatched_hamming_matches_portable_exactly(
            nt in 1usize..9,
            words in prop::collection::vec(any::<u64>(), 0..400),
            q in prop::collection::vec(any::<u64>(), 8),
        ) {
            let q = &q[..nt];
            let n = words.len() / nt;
            let codes = &words[..n * nt];
            // Reference: the plain word-by-word distance.
            let want: Vec<u16> = codes.chunks_exact(nt).map(|c| hamming_words(c, q) as u16).collect();
            let mut got = vec![0u16; n];
            (kernels().hamming_block)(codes, q, 1, &mut got);
            prop_assert_eq!(&got, &want);
            hamming_block_portable(codes, q, 1, &mut got);
            prop_assert_eq!(&got, &want);
            let slots: Vec<u32> = (0..n as u32).rev().collect();
            let mut at = vec![0u16; n];
            (kernels().hamming_at)(codes, &slots, q, &mut at);
            at.reverse();
            prop_assert_eq!(&at, &want);
            // Block kernel: three query codes at once, query-major output; the chosen set
            // and every wide set this CPU runs (AVX2's nibble table, AVX-512's vpopcntq).
            let qs: Vec<u64> = (0..3).flat_map(|j| q.iter().map(move |w| w.rotate_left(j))).collect();
            let mut sets = wide_sets();
            sets.push(kernels());
            for k in sets {
                let mut block = vec![0u16; 3 * n];
                (k.hamming_block)(codes, &qs, 3, &mut block);
                for j in 0..3 {
                    let qj = &qs[j * nt..(j + 1) * nt];
                    let one: Vec<u16> = codes.chunks_exact(nt).map(|c| hamming_words(c, qj) as u16).collect();
                    prop_assert_eq!(&block[j * n..(j + 1) * n], &one[..], "{}", k.name);
                }
            }
        }
    }

    /// Every wide set this CPU can run (tested against the portable one
    /// whatever `kernels()` picked).
    fn wide_sets() -> Vec<&'static Kernels> {
        #[cfg(target_arch = "x86_64")]
        {
            let mut v = Vec::new();
            if x86::detect().is_some() {
                v.push(&x86::AVX2);
                if std::is_x86_feature_detected!("avx512f") {
                    v.push(&x86::AVX512);
                    if std::is_x86_feature_detected!("avx512vpopcntdq") {
                        v.push(&x86::AVX512_VPOPCNT);
                    }
                }
            }
            v
        }
        #[cfg(not(target_arch = "x86_64"))]
        Vec::new()
    }

    /// Bound on `|wide - portable|` for a sum of the `n` terms `t`. Both
    /// kernels add the same rounded terms (products, or squares of the same
    /// rounded `f32` differences) and differ only in the order of the
    /// additions and in fusing the product into the add. Any summation
    /// order of `n` terms, each product rounded once or not at all, is off
    /// the exact sum by at most `gamma_n * sum |t_i|` with
    /// `gamma_n = n u / (1 - n u)`, `u = 2^-24` (Higham, *Accuracy and
    /// Stability of Numerical Algorithms*, eq. 3.5); two such results differ
    /// by at most twice that. `n + 2` covers the rounding of the squared
    /// difference against its exact value used here for `t`.
    fn sum_bound(t: impl Iterator<Item = f64>) -> f64 {
        let (mut n, mut s) = (0usize, 0.0f64);
        for x in t {
            n += 1;
            s += x.abs();
        }
        let u = f64::from(f32::EPSILON) / 2.0;
        let k = (n + 2) as f64 * u;
        2.0 * k / (1.0 - k) * s
    }

    proptest! {
        #[test]
        fn wide_kernels_match_portable_within_the_summation_bound(
            dim in prop_oneof![
                Just(1usize), Just(15), Just(16), Just(17), Just(63), Just(64), Just(65),
                Just(128), Just(384), 0usize..400,
            ],
            off_q in 0usize..16,
            off_d in 0usize..16,
            scale in prop_oneof![Just(1e-3f32), Just(1.0f32), Just(1e3f32)],
            seed in any::<u64>(),
        ) {
            let mut rng = memarena_core::rng::Rng::seed_from_u64(seed);
            let n_rows = 5;
            // Unaligned starts: `off_*` floats into a fresh buffer.
            let qbuf: Vec<f32> = (0..off_q + dim).map(|_| rng.normal() as f32 * scale).collect();
            let dbuf: Vec<f32> =
                (0..off_d + n_rows * dim).map(|_| rng.normal() as f32 * scale).collect();
            let q = &qbuf[off_q..];
            let data = &dbuf[off_d..];
            let rows: Vec<u32> = (0..7).map(|_| rng.below(n_rows as u64) as u32).collect();
            for k in wide_sets() {
                let mut at_l2 = vec![0.0; rows.len()];
                let mut at_dot = vec![0.0; rows.len()];
                (k.l2_sq_at)(q, data, &rows, &mut at_l2);
                (k.dot_at)(q, data, &rows, &mut at_dot);
                for (i, &r) in rows.iter().enumerate() {
                    let v = &data[r as usize * dim..(r as usize + 1) * dim];
                    let tl = sum_bound(q.iter().zip(v).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)));
                    let td = sum_bound(q.iter().zip(v).map(|(x, y)| f64::from(*x) * f64::from(*y)));
                    let (pl, pd) = (l2_sq_portable(q, v), dot_portable(q, v));
                    for (got, want, tol, what) in [
                        ((k.l2_sq)(q, v), pl, tl, "l2_sq"),
                        ((k.dot)(q, v), pd, td, "dot"),
                        (at_l2[i], pl, tl, "l2_sq_at"),
                        (at_dot[i], pd, td, "dot_at"),
                    ] {
                        prop_assert!(
                            (f64::from(got) - f64::from(want)).abs() <= tol,
                            "{} {what} dim {dim}: {got} vs {want} (tol {tol})", k.name
                        );
                    }
                    // The single-pair and gather kernels are the same body.
                    prop_assert_eq!(at_l2[i].to_bits(), (k.l2_sq)(q, v).to_bits());
                    prop_assert_eq!(at_dot[i].to_bits(), (k.dot)(q, v).to_bits());
                }
            }
        }
    }

    proptest! {
        /// Every set's filter gives the portable bits, which are the
        /// definition's: ties (`score == thr`) pass, infinite thresholds
        /// pass everything finite, the bits past the last query are clear.
        #[test]
        fn row_hits_match_the_definition(
            n in 0usize..300,
            l2 in any::<bool>(),
            x2 in 0.0f32..4.0,
            seed in any::<u64>(),
        ) {
            let mut rng = memarena_core::rng::Rng::seed_from_u64(seed);
            let dots: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            let qn: Vec<f32> = (0..n).map(|_| rng.normal().abs() as f32).collect();
            let thr: Vec<f32> = (0..n)
                .map(|j| match rng.below(4) {
                    0 => f32::INFINITY,
                    // exactly the score: a tie
                    1 => if l2 { x2 + qn[j] - 2.0 * dots[j] } else { -dots[j] },
                    _ => rng.normal() as f32 + if l2 { x2 + qn[j] } else { 0.0 },
                })
                .collect();
            let words = n.div_ceil(16);
            let mut want = vec![0u16; words];
            for j in 0..n {
                let sc = if l2 { x2 + qn[j] - 2.0 * dots[j] } else { -dots[j] };
                if sc <= thr[j] {
                    want[j / 16] |= 1 << (j % 16);
                }
            }
            let mut got = vec![u16::MAX; words];
            row_hits_portable(&dots, &qn, &thr, x2, l2, &mut got);
            prop_assert_eq!(&got, &want);
            for k in wide_sets() {
                let mut got = vec![u16::MAX; words];
                (k.row_hits)(&dots, &qn, &thr, x2, l2, &mut got);
                prop_assert_eq!(&got, &want, "{}", k.name);
            }
        }
    }

    #[test]
    fn reports_the_chosen_set() {
        let name = kernels().name;
        assert!(
            [
                "portable",
                "avx2+fma+popcnt",
                "avx512f+avx2+fma+popcnt",
                "avx512f+vpopcntdq+avx2+fma+popcnt"
            ]
            .contains(&name),
            "{name}"
        );
    }
}
