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

use crate::metric::{dot_lanes, hamming_words, l2_sq_lanes};

/// Scores of `$q` against every row of `$data` into `$out`. A macro, not a
/// generic function taking the kernel: a kernel passed as a value is called
/// through a `Fn::call` shim that is compiled *without* the caller's target
/// features, so `mul_add` turned into a libm call per element.
macro_rules! many {
    ($kernel:expr, $q:expr, $data:expr, $out:expr) => {{
        let q: &[f32] = $q;
        for (v, o) in $data.chunks_exact(q.len().max(1)).zip($out.iter_mut()) {
            *o = $kernel(q, v);
        }
    }};
}

/// Scores of `$q` against the listed rows of `$data` into `$out` (see [`many`]).
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
/// Float scores of a query against listed rows of a row-major block.
type ScoreAt = fn(&[f32], &[f32], &[u32], &mut [f32]);

/// One set of kernels; every function assumes equal-length inputs.
pub(crate) struct Kernels {
    /// Squared L2 distance.
    pub(crate) l2_sq: fn(&[f32], &[f32]) -> f32,
    /// Inner product.
    pub(crate) dot: fn(&[f32], &[f32]) -> f32,
    /// Squared L2 of a query against each row of a row-major block.
    pub(crate) l2_sq_many: fn(&[f32], &[f32], &mut [f32]),
    /// Inner product of a query with each row of a row-major block.
    pub(crate) dot_many: fn(&[f32], &[f32], &mut [f32]),
    /// Squared L2 of a query against listed rows of a row-major block.
    pub(crate) l2_sq_at: ScoreAt,
    /// Inner product of a query with listed rows of a row-major block.
    pub(crate) dot_at: ScoreAt,
    /// Hamming distances of a query code (`q.len()` words) to every code of
    /// `codes` (row-major, `q.len()` words each), written to `out`.
    pub(crate) hamming_many: fn(&[u64], &[u64], &mut [u16]),
    /// Hamming distances of a query code to the codes of the given slots
    /// (`codes` row-major, `q.len()` words per slot), written to `out`.
    pub(crate) hamming_at: HammingAt,
    /// Which set this is (`"portable"` or `"avx2+fma+popcnt"`).
    pub(crate) name: &'static str,
}

fn l2_sq_portable(a: &[f32], b: &[f32]) -> f32 {
    l2_sq_lanes::<16, false>(a, b)
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<16, false>(a, b)
}

fn l2_sq_many_portable(q: &[f32], data: &[f32], out: &mut [f32]) {
    many!(l2_sq_lanes::<16, false>, q, data, out)
}

fn dot_many_portable(q: &[f32], data: &[f32], out: &mut [f32]) {
    many!(dot_lanes::<16, false>, q, data, out)
}

fn l2_sq_at_portable(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
    at!(l2_sq_lanes::<16, false>, q, data, rows, out)
}

fn dot_at_portable(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
    at!(dot_lanes::<16, false>, q, data, rows, out)
}

fn hamming_many_portable(codes: &[u64], q: &[u64], out: &mut [u16]) {
    hamming_many_body(codes, q, out)
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
fn hamming_many_body(codes: &[u64], q: &[u64], out: &mut [u16]) {
    let nt = q.len();
    if nt == 4 {
        // The common 4 x 64-bit (256-bit) code, fully unrolled.
        let q: &[u64; 4] = q.try_into().expect("4 words");
        for (c, o) in codes.chunks_exact(4).zip(out.iter_mut()) {
            *o = ((c[0] ^ q[0]).count_ones()
                + (c[1] ^ q[1]).count_ones()
                + (c[2] ^ q[2]).count_ones()
                + (c[3] ^ q[3]).count_ones()) as u16;
        }
    } else {
        for (c, o) in codes.chunks_exact(nt.max(1)).zip(out.iter_mut()) {
            *o = hamming_words(c, q) as u16;
        }
    }
}

/// The portable set (always valid).
pub(crate) const PORTABLE: Kernels = Kernels {
    l2_sq: l2_sq_portable,
    dot: dot_portable,
    l2_sq_many: l2_sq_many_portable,
    dot_many: dot_many_portable,
    l2_sq_at: l2_sq_at_portable,
    dot_at: dot_at_portable,
    hamming_many: hamming_many_portable,
    hamming_at: hamming_at_portable,
    name: "portable",
};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    #[target_feature(enable = "avx2,fma")]
    fn l2_sq_avx2(a: &[f32], b: &[f32]) -> f32 {
        l2_sq_lanes::<32, true>(a, b)
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        dot_lanes::<32, true>(a, b)
    }

    #[target_feature(enable = "avx2,fma")]
    fn l2_sq_many_avx2(q: &[f32], data: &[f32], out: &mut [f32]) {
        many!(l2_sq_lanes::<32, true>, q, data, out)
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_many_avx2(q: &[f32], data: &[f32], out: &mut [f32]) {
        many!(dot_lanes::<32, true>, q, data, out)
    }

    pub(super) fn l2_sq_many(q: &[f32], data: &[f32], out: &mut [f32]) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx2 and fma.
        unsafe { l2_sq_many_avx2(q, data, out) }
    }

    pub(super) fn dot_many(q: &[f32], data: &[f32], out: &mut [f32]) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx2 and fma.
        unsafe { dot_many_avx2(q, data, out) }
    }

    #[target_feature(enable = "avx2,fma")]
    fn l2_sq_at_avx2(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
        at!(l2_sq_lanes::<32, true>, q, data, rows, out)
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_at_avx2(q: &[f32], data: &[f32], rows: &[u32], out: &mut [f32]) {
        at!(dot_lanes::<32, true>, q, data, rows, out)
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
    fn hamming_many_popcnt(codes: &[u64], q: &[u64], out: &mut [u16]) {
        hamming_many_body(codes, q, out)
    }

    #[target_feature(enable = "avx2,popcnt")]
    fn hamming_at_popcnt(codes: &[u64], slots: &[u32], q: &[u64], out: &mut [u16]) {
        hamming_at_body(codes, slots, q, out)
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

    pub(super) fn hamming_many(codes: &[u64], q: &[u64], out: &mut [u16]) {
        // SAFETY: installed in `Kernels` only after `detect` saw avx2 and popcnt.
        unsafe { hamming_many_popcnt(codes, q, out) }
    }

    pub(super) const AVX2: Kernels = Kernels {
        l2_sq,
        dot,
        l2_sq_many,
        dot_many,
        l2_sq_at,
        dot_at,
        hamming_many,
        hamming_at,
        name: "avx2+fma+popcnt",
    };

    pub(super) fn detect() -> Option<&'static Kernels> {
        let ok = std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("popcnt");
        ok.then_some(&AVX2)
    }
}

/// The best kernel set for this CPU, detected once. Setting the environment
/// variable `MEMARENA_ANN_PORTABLE=1` before the first search forces the
/// portable set (for comparisons).
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
                (k.l2_sq_many)(&a[..w], &b[..rows * w], &mut got);
                l2_sq_many_portable(&a[..w], &b[..rows * w], &mut want);
                prop_assert!(got.iter().zip(&want).all(|(x, y)| close(*x, *y)));
                (k.dot_many)(&a[..w], &b[..rows * w], &mut got);
                dot_many_portable(&a[..w], &b[..rows * w], &mut want);
                prop_assert!(got.iter().zip(&want).all(|(x, y)| close(*x, *y)));
                let idx: Vec<u32> = (0..rows as u32).rev().collect();
                (k.l2_sq_at)(&a[..w], &b[..rows * w], &idx, &mut got);
                l2_sq_many_portable(&a[..w], &b[..rows * w], &mut want);
                want.reverse();
                prop_assert!(got.iter().zip(&want).all(|(x, y)| close(*x, *y)));
                (k.dot_at)(&a[..w], &b[..rows * w], &idx, &mut got);
                dot_at_portable(&a[..w], &b[..rows * w], &idx, &mut want);
                prop_assert!(got.iter().zip(&want).all(|(x, y)| close(*x, *y)));
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
            let mut got = vec![0u16; n];
            let mut want = vec![0u16; n];
            (kernels().hamming_many)(codes, q, &mut got);
            hamming_many_portable(codes, q, &mut want);
            prop_assert_eq!(&got, &want);
            let slots: Vec<u32> = (0..n as u32).rev().collect();
            let mut at = vec![0u16; n];
            (kernels().hamming_at)(codes, &slots, q, &mut at);
            want.reverse();
            prop_assert_eq!(&at, &want);
            want.reverse();
            for (i, c) in codes.chunks_exact(nt).enumerate() {
                prop_assert_eq!(want[i] as u32, hamming_words(c, q));
            }
        }
    }

    #[test]
    fn reports_the_chosen_set() {
        let name = kernels().name;
        assert!(name == "portable" || name == "avx2+fma+popcnt", "{name}");
    }
}
