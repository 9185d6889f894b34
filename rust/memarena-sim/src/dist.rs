//! Continuous samplers over the core's [`Rng`]: exponential, gamma and
//! log-normal (the arrival processes and length distributions need them).

use memarena_core::rng::Rng;

/// An exponential deviate with the given `rate` (> 0): mean `1 / rate`.
#[inline]
pub fn exponential(rng: &mut Rng, rate: f64) -> f64 {
    // 1 - uniform() is in (0, 1], so the logarithm is finite.
    -(1.0 - rng.uniform()).ln() / rate
}

/// Exponential deviates by the ziggurat method (Marsaglia & Tsang, "The
/// Ziggurat Method for Generating Random Variables", JSS 2000), in the
/// 64-bit layout of Doornik (2005) and `rand_distr`: 256 layers of equal
/// area under `e^-x`; one `u64` per draw picks a layer (low 8 bits) and a
/// 53-bit position in it (high bits, disjoint). About 99% of draws end
/// there with one multiply and one compare; the rest test the wedge
/// against `e^-x`, or (layer 0) return `R + Exp(1)` from the tail, so the
/// distribution is the exponential one exactly, up to floating-point
/// rounding of the tables (as `-ln(U)` is, up to that of `ln`).
///
/// Same seed, same deviates; but not the same deviates as [`exponential`]
/// (which draws one uniform per deviate).
#[derive(Debug)]
pub struct ExpZiggurat {
    /// Layer widths: `x[0] = V / f(R)` (the base layer with the tail),
    /// `x[1] = R`, ..., `x[256] = 0`.
    x: [f64; 257],
    /// `f[i] = e^-x[i]` (`f[256] = 1`).
    f: [f64; 257],
}

/// The right edge of the last full layer of the 256-layer exponential
/// ziggurat, and the area of each layer (Marsaglia & Tsang 2000).
const ZIG_EXP_R: f64 = 7.697_117_470_131_05;
const ZIG_EXP_V: f64 = 3.949_659_822_581_557e-3;

impl ExpZiggurat {
    /// The tables (256 `exp` and `ln` calls), built once per process.
    pub fn get() -> &'static ExpZiggurat {
        static TABLES: std::sync::OnceLock<ExpZiggurat> = std::sync::OnceLock::new();
        TABLES.get_or_init(|| {
            let mut x = [0.0; 257];
            let mut f = [0.0; 257];
            x[0] = ZIG_EXP_V / (-ZIG_EXP_R).exp();
            x[1] = ZIG_EXP_R;
            for i in 1..256 {
                f[i] = (-x[i]).exp();
                if i < 255 {
                    x[i + 1] = -(f[i] + ZIG_EXP_V / x[i]).ln();
                }
            }
            f[0] = (-x[0]).exp();
            x[256] = 0.0;
            f[256] = 1.0;
            ExpZiggurat { x, f }
        })
    }

    /// An exponential deviate with mean 1.
    #[inline(always)]
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        loop {
            let bits = rng.next_u64();
            let i = (bits & 0xff) as usize;
            let u = (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            let x = u * self.x[i];
            if x < self.x[i + 1] {
                return x;
            }
            if let Some(x) = self.slow(rng, i, x) {
                return x;
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn slow(&self, rng: &mut Rng, i: usize, x: f64) -> Option<f64> {
        if i == 0 {
            // The tail beyond R, memoryless: R + Exp(1).
            return Some(ZIG_EXP_R - (1.0 - rng.uniform()).ln());
        }
        // The wedge between the layer's inner and outer edge.
        let y = self.f[i] + (self.f[i + 1] - self.f[i]) * rng.uniform();
        (y < (-x).exp()).then_some(x)
    }
}

/// The smallest gamma shape [`gamma`] samples: below it `U^(1/shape)`
/// underflows to 0 for every 53-bit uniform `U`, so every deviate would be
/// 0 whatever the mean.
pub const GAMMA_MIN_SHAPE: f64 = f64::EPSILON;

/// The largest gamma shape [`gamma`] samples: Marsaglia & Tsang's acceptance
/// test adds terms of size `shape`, which round by `shape * EPSILON`; past
/// `1 / EPSILON` that rounding exceeds the O(1) quantity tested (and at an
/// infinite shape the test never accepts: the sampler would loop forever).
pub const GAMMA_MAX_SHAPE: f64 = 1.0 / f64::EPSILON;

/// A gamma deviate with `shape` in [[`GAMMA_MIN_SHAPE`],
/// [`GAMMA_MAX_SHAPE`]] and `scale > 0` (mean `shape * scale`), by Marsaglia
/// & Tsang (2000); shapes below 1 use the boost `G(a) = G(a + 1) * U^(1/a)`.
///
/// # Panics
///
/// If `shape` is outside that range or `scale` is not > 0 (callers validate
/// their configs first: see `ArrivalProcess`).
pub fn gamma(rng: &mut Rng, shape: f64, scale: f64) -> f64 {
    assert!(
        (GAMMA_MIN_SHAPE..=GAMMA_MAX_SHAPE).contains(&shape) && scale > 0.0,
        "gamma: shape {shape} outside [{GAMMA_MIN_SHAPE}, {GAMMA_MAX_SHAPE}] or scale {scale} not > 0"
    );
    gamma_unchecked(rng, shape, scale)
}

fn gamma_unchecked(rng: &mut Rng, shape: f64, scale: f64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.uniform();
        return gamma_unchecked(rng, shape + 1.0, scale) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = 1.0 - rng.uniform();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v * scale;
        }
    }
}

/// A log-normal deviate: `exp(mu + sigma * N(0, 1))`.
#[inline]
pub fn lognormal(rng: &mut Rng, mu: f64, sigma: f64) -> f64 {
    (mu + sigma * rng.normal()).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
        (m, v)
    }

    #[test]
    fn ziggurat_exponential_matches_the_distribution() {
        let z = ExpZiggurat::get();
        // The tables close up: the top layer (up to y = 1) has the same
        // area as every other.
        let top = z.x[255] * (1.0 - z.f[255]);
        assert!((top / ZIG_EXP_V - 1.0).abs() < 1e-6, "{top}");
        let mut r = Rng::seed_from_u64(11);
        let n = 2_000_000;
        let xs: Vec<f64> = (0..n).map(|_| z.sample(&mut r)).collect();
        let (m, v) = moments(&xs);
        assert!((m - 1.0).abs() < 0.003, "{m}");
        assert!((v - 1.0).abs() < 0.01, "{v}");
        // P(X > t) = e^-t, from the body through the wedges to the tail
        // (t = 8 is beyond R, so only the tail path reaches it).
        for t in [0.1, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0] {
            let p = xs.iter().filter(|&&x| x > t).count() as f64 / n as f64;
            let want = (-t).exp();
            let sd = (want * (1.0 - want) / n as f64).sqrt();
            assert!((p - want).abs() < 5.0 * sd, "P(X > {t}) = {p} vs {want}");
        }
        // Deterministic for a seed.
        let mut a = Rng::seed_from_u64(3);
        let mut b = Rng::seed_from_u64(3);
        assert!((0..1000).all(|_| z.sample(&mut a) == z.sample(&mut b)));
    }

    #[test]
    fn exponential_and_gamma_moments() {
        let mut r = Rng::seed_from_u64(5);
        let xs: Vec<f64> = (0..200_000).map(|_| exponential(&mut r, 2.0)).collect();
        let (m, v) = moments(&xs);
        assert!((m - 0.5).abs() < 0.005, "{m}");
        assert!((v - 0.25).abs() < 0.01, "{v}");
        for &(k, th) in &[(0.5, 2.0), (1.0, 1.0), (4.0, 0.25)] {
            let xs: Vec<f64> = (0..200_000).map(|_| gamma(&mut r, k, th)).collect();
            let (m, v) = moments(&xs);
            assert!(
                (m - k * th).abs() < 0.02 * k * th + 0.005,
                "shape {k}: mean {m}"
            );
            assert!(
                (v - k * th * th).abs() < 0.05 * k * th * th,
                "shape {k}: var {v}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "gamma: shape inf")]
    fn an_infinite_gamma_shape_panics_instead_of_looping() {
        // Shape 1 / cv^2 at cv = 1e-300: the acceptance test never passed.
        gamma(&mut Rng::seed_from_u64(1), f64::INFINITY, 1.0);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_gamma_shape_below_the_minimum_panics() {
        gamma(&mut Rng::seed_from_u64(1), GAMMA_MIN_SHAPE / 2.0, 1.0);
    }

    proptest::proptest! {
        /// Every shape in the sampled range terminates with a finite deviate
        /// >= 0, the extremes included (mean 1: scale 1 / shape).
        #[test]
        fn gamma_terminates_over_its_whole_shape_range(
            log_shape in proptest::prop_oneof![
                proptest::strategy::Just(GAMMA_MIN_SHAPE.ln()),
                proptest::strategy::Just(GAMMA_MAX_SHAPE.ln()),
                GAMMA_MIN_SHAPE.ln()..GAMMA_MAX_SHAPE.ln(),
            ],
            seed in 0u64..1000,
        ) {
            let shape = log_shape.exp().clamp(GAMMA_MIN_SHAPE, GAMMA_MAX_SHAPE);
            let mut r = Rng::seed_from_u64(seed);
            for _ in 0..200 {
                let x = gamma(&mut r, shape, 1.0 / shape);
                proptest::prop_assert!(x.is_finite() && x >= 0.0, "shape {}: {}", shape, x);
            }
        }
    }
}
