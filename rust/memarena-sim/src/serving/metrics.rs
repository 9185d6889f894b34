//! Latency statistics, a log-bucketed histogram for per-token latencies,
//! and the time-series sample of the KV memory breakdown.

/// Summary of a latency distribution, seconds (NaN when empty).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyStats {
    /// Observations.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl LatencyStats {
    /// Exact statistics of `xs` (sorted in place; nearest-rank percentiles).
    pub fn exact(xs: &mut [f64]) -> LatencyStats {
        if xs.is_empty() {
            return LatencyStats::empty();
        }
        xs.sort_unstable_by(f64::total_cmp);
        let n = xs.len();
        let q = |p: f64| xs[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        LatencyStats {
            count: n as u64,
            mean: xs.iter().sum::<f64>() / n as f64,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: xs[n - 1],
        }
    }

    /// No observations.
    pub fn empty() -> LatencyStats {
        LatencyStats {
            count: 0,
            mean: f64::NAN,
            p50: f64::NAN,
            p90: f64::NAN,
            p99: f64::NAN,
            max: f64::NAN,
        }
    }
}

/// A histogram with logarithmic buckets of 0.5% relative width from 1 µs
/// to ~10⁴ s: quantiles are exact to within 0.5%. The max is exact; the
/// mean is the exact sum of the observations in fixed point (2⁻⁶⁴ s: every
/// value above 0.25 ms exactly), divided once, so it does not depend on the
/// order or the grouping of the records (one record of `2k` observations or
/// two of `k`: the same bits).
#[derive(Clone, Debug)]
pub struct LogHistogram {
    counts: Vec<u64>,
    total: u64,
    /// Sum of the observations in units of 2⁻⁶⁴ s.
    sum_fixed: i128,
    max: f64,
    /// The last bucket computed, and the values safely inside it (a
    /// decode's token gaps change slowly, so most land there again).
    last_bucket: usize,
    last_lo: f64,
    last_hi: f64,
}

const H_MIN: f64 = 1e-6;
const H_LN_RATIO: f64 = 0.004_987_541_511_038_968; // ln(1.005)
const H_BUCKETS: usize = 4700;
/// Units of [`LogHistogram`]'s fixed-point sum per second (2⁶⁴).
const SUM_UNITS_PER_S: f64 = 18_446_744_073_709_551_616.0;

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram {
            counts: vec![0; H_BUCKETS],
            total: 0,
            sum_fixed: 0,
            max: f64::NAN,
            last_bucket: 0,
            last_lo: f64::NAN,
            last_hi: f64::NAN,
        }
    }
}

impl LogHistogram {
    /// Records `count` observations of `value` seconds (nothing when
    /// `count` is 0, whatever `value`).
    #[inline]
    pub fn record(&mut self, value: f64, count: u64) {
        if count == 0 {
            return;
        }
        let b = if self.last_lo <= value && value <= self.last_hi {
            self.last_bucket
        } else {
            self.bucket_of(value)
        };
        self.counts[b] += count;
        self.total += count;
        // Scaling by a power of two is exact; the cast drops what is below
        // 2⁻⁶⁴ s (nothing for values above 2⁻¹² s, 53 bits of mantissa).
        // Values below 0.25 s (most) fit an i64, whose cast is one
        // instruction (the i128 cast is a library call).
        let scaled = value * SUM_UNITS_PER_S;
        let units = if value.abs() < 0.25 {
            scaled as i64 as i128
        } else {
            scaled as i128
        };
        self.sum_fixed += units * count as i128;
        if self.max.is_nan() || value > self.max {
            self.max = value;
        }
    }

    /// The bucket of `value` (the logarithm's floor), remembered with the
    /// values certainly in the same bucket: the bucket's bounds shrunk by
    /// 1e-9 relative, far beyond the rounding of the formula, so that a
    /// remembered bucket is always the one the formula gives.
    #[inline(never)]
    fn bucket_of(&mut self, value: f64) -> usize {
        if value <= H_MIN {
            (self.last_lo, self.last_hi) = (f64::NAN, f64::NAN);
            return 0;
        }
        let b = (((value / H_MIN).ln() / H_LN_RATIO) as usize + 1).min(H_BUCKETS - 1);
        (self.last_lo, self.last_hi) = if b < H_BUCKETS - 1 {
            (
                H_MIN * ((b - 1) as f64 * H_LN_RATIO).exp() * (1.0 + 1e-9),
                H_MIN * (b as f64 * H_LN_RATIO).exp() * (1.0 - 1e-9),
            )
        } else {
            (f64::NAN, f64::NAN)
        };
        self.last_bucket = b;
        b
    }

    fn bucket_value(b: usize) -> f64 {
        if b == 0 {
            H_MIN
        } else {
            // Geometric middle of the bucket.
            H_MIN * ((b as f64 - 0.5) * H_LN_RATIO).exp()
        }
    }

    /// Summary statistics.
    pub fn stats(&self) -> LatencyStats {
        if self.total == 0 {
            return LatencyStats::empty();
        }
        let q = |p: f64| {
            let rank = ((p * self.total as f64).ceil() as u64).max(1);
            let mut acc = 0;
            for (b, &c) in self.counts.iter().enumerate() {
                acc += c;
                if acc >= rank {
                    return Self::bucket_value(b).min(self.max);
                }
            }
            self.max
        };
        LatencyStats {
            count: self.total,
            mean: self.sum_fixed as f64 / SUM_UNITS_PER_S / self.total as f64,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: self.max,
        }
    }
}

/// One point of the time series.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Simulated time, seconds.
    pub time_s: f64,
    /// Requests running (admitted, holding KV).
    pub running_requests: u32,
    /// Sequences running (parallel samples counted).
    pub running_seqs: u32,
    /// Requests waiting for admission.
    pub waiting_requests: u32,
    /// Requests swapped out to the host.
    pub swapped_requests: u32,
    /// KV bytes holding token states.
    pub token_states_bytes: u64,
    /// KV bytes reserved for later tokens.
    pub reserved_bytes: u64,
    /// KV bytes of internal fragmentation.
    pub internal_frag_bytes: u64,
    /// KV bytes of external fragmentation (only while a request is blocked
    /// on memory).
    pub external_frag_bytes: u64,
    /// KV bytes kept mapped on idle slots (vAttention's deferred
    /// reclamation; not used).
    pub idle_mapped_bytes: u64,
    /// Free KV bytes.
    pub free_bytes: u64,
    /// Part of `free_bytes` holding evictable prefix-cache blocks.
    pub cached_free_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_histogram_quantiles_agree() {
        let mut xs: Vec<f64> = (1..=1000).map(|i| i as f64 * 1e-3).collect();
        let mut h = LogHistogram::default();
        for &x in &xs {
            h.record(x, 1);
        }
        let e = LatencyStats::exact(&mut xs);
        let s = h.stats();
        assert_eq!((e.p50, e.p90, e.p99, e.max), (0.5, 0.9, 0.99, 1.0));
        for (a, b) in [(e.p50, s.p50), (e.p90, s.p90), (e.p99, s.p99)] {
            assert!((a - b).abs() / a < 0.006, "{a} vs {b}");
        }
        assert!((s.mean - e.mean).abs() < 1e-12);
        assert!(LatencyStats::exact(&mut []).mean.is_nan());
    }

    proptest::proptest! {
        /// The statistics do not depend on the order or the grouping of
        /// the records (a batch of sequences recorded at once or one by
        /// one): the same bits, the mean included.
        #[test]
        fn order_and_grouping_do_not_change_the_stats(
            obs in proptest::collection::vec((1e-7f64..1e3, 1u64..300), 1..200),
        ) {
            let mut grouped = LogHistogram::default();
            for &(v, c) in &obs {
                grouped.record(v, c);
            }
            let mut split = LogHistogram::default();
            for &(v, c) in obs.iter().rev() {
                split.record(v, c / 2);
                split.record(v, c - c / 2);
            }
            let (g, s) = (grouped.stats(), split.stats());
            proptest::prop_assert_eq!(format!("{g:?}"), format!("{s:?}"));
            let exact: f64 = obs.iter().map(|&(v, c)| v * c as f64).sum::<f64>()
                / obs.iter().map(|&(_, c)| c as f64).sum::<f64>();
            proptest::prop_assert!((g.mean - exact).abs() <= 1e-12 * exact, "{} vs {}", g.mean, exact);
        }

        /// The remembered bucket is the formula's: slowly drifting values
        /// (as a decode's token gaps), some on the bucket bounds exactly.
        #[test]
        fn remembered_buckets_are_the_formulas(
            start in 1e-7f64..1e3,
            steps in proptest::collection::vec((-1e-3f64..1e-3, 0u8..8), 1..300),
        ) {
            let formula = |v: f64| {
                if v <= H_MIN {
                    0
                } else {
                    (((v / H_MIN).ln() / H_LN_RATIO) as usize + 1).min(H_BUCKETS - 1)
                }
            };
            let mut h = LogHistogram::default();
            let mut v = start;
            for (step, k) in steps {
                v *= 1.0 + step;
                // Now and then exactly a bucket's lower bound.
                let x = if k == 0 { H_MIN * ((formula(v) as f64 - 1.0) * H_LN_RATIO).exp() } else { v };
                let before = h.counts.clone();
                h.record(x, 1);
                let b = formula(x);
                proptest::prop_assert_eq!(h.counts[b], before[b] + 1, "value {}", x);
            }
        }
    }
}
