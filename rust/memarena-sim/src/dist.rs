//! Continuous samplers over the core's [`Rng`]: exponential, gamma and
//! log-normal (the arrival processes and length distributions need them).

use memarena_core::rng::Rng;

/// An exponential deviate with the given `rate` (> 0): mean `1 / rate`.
#[inline]
pub fn exponential(rng: &mut Rng, rate: f64) -> f64 {
    // 1 - uniform() is in (0, 1], so the logarithm is finite.
    -(1.0 - rng.uniform()).ln() / rate
}

/// A gamma deviate with `shape > 0` and `scale > 0` (mean `shape * scale`),
/// by Marsaglia & Tsang (2000); shapes below 1 use the boost
/// `G(a) = G(a + 1) * U^(1/a)`.
pub fn gamma(rng: &mut Rng, shape: f64, scale: f64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.uniform();
        return gamma(rng, shape + 1.0, scale) * u.powf(1.0 / shape);
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
}
