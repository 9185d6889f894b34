//! Seeded synthetic traces. One entry point, [`generate`]: the same spec,
//! length and seed always give the identical trace, on every platform.
//!
//! A spec is a small tree ([`SynthSpec`]): leaf workloads (Zipf, uniform,
//! loop, scan) combined by mixtures and phase shifts, optionally wrapped once,
//! at the top, with object sizes ([`SynthSpec::Sized`]).

use serde::Deserialize;
use serde::de::MapAccess;

use super::Trace;
use crate::config::{self, NoFields, Tagged};
use crate::error::{Error, Result};
use crate::request::ObjId;
use crate::rng::{Rng, Zipf, mix64};

/// Largest `n_objects` a leaf accepts (keeps composed ids inside `u64`).
pub const MAX_OBJECTS: u64 = 1 << 48;

/// What to generate. Ids of a leaf are `0..n_objects` (or `0..` for
/// [`SynthSpec::Scan`]); combinators map them so that components stay
/// disjoint, as documented on each variant.
///
/// Deserializes from a map whose `kind` (one of [`SynthSpec::KINDS`]) comes
/// first and whose other keys are the variant's fields; a `mix` component is
/// a `[weight, spec]` pair.
#[derive(Clone, Debug, PartialEq)]
pub enum SynthSpec {
    /// Independent draws from a Zipf law: id `r - 1` has probability
    /// `∝ r^-alpha` for rank `r` in `1..=n_objects` (id 0 is the most popular).
    /// `alpha >= 0` (0 = uniform); `1 <= n_objects <= 2^48`.
    Zipf {
        /// Skew exponent, finite and `>= 0`.
        alpha: f64,
        /// Number of distinct objects.
        n_objects: u64,
    },
    /// Independent uniform draws over ids `0..n_objects` (`1 <= n_objects <= 2^48`).
    Uniform {
        /// Number of distinct objects.
        n_objects: u64,
    },
    /// A cyclic scan `0, 1, ..., n_objects-1, 0, 1, ...` (`1 <= n_objects <= 2^48`):
    /// LRU's worst case when `n_objects` exceeds the cache.
    Loop {
        /// Loop length in objects.
        n_objects: u64,
    },
    /// A sequential scan of one-time ids `0, 1, 2, ...` (every request is a
    /// compulsory miss).
    Scan,
    /// Each request comes from component `i` with probability
    /// `weight_i / sum(weights)`; each component keeps its own state, so a
    /// loop inside a mixture continues where it stopped. Component `i`'s id
    /// `x` becomes `x * m + i` (`m` = number of components), so components
    /// never share ids. Weights are finite and `>= 0` with a positive sum.
    Mix {
        /// `(weight, spec)` pairs; at least one.
        components: Vec<(f64, SynthSpec)>,
    },
    /// The working set changes every `period` requests: in phase `j` (the
    /// `j`-th block of `period` requests this node produces), id `x` of
    /// `inner` becomes `x + j * shift`. Choose `shift >=` the inner id range
    /// for disjoint working sets. `period >= 1`, `shift >= 1`.
    PhaseShift {
        /// The workload inside each phase.
        inner: Box<SynthSpec>,
        /// Requests per phase.
        period: u64,
        /// Id offset added per phase.
        shift: u64,
    },
    /// Give objects sizes (top level only, so that every object has one
    /// size): each object's size is drawn once from `sizes`, seeded by the
    /// object id and the generation seed.
    Sized {
        /// The request stream.
        inner: Box<SynthSpec>,
        /// The size distribution.
        sizes: SizeSpec,
    },
}

/// Per-object size distributions (bytes, always `>= 1`).
///
/// Deserializes from a map whose `kind` (`constant`, `uniform`,
/// `lognormal`) comes first and whose other keys are the variant's fields.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SizeSpec {
    /// Every object has `bytes >= 1` bytes.
    Constant {
        /// Size in bytes.
        bytes: u64,
    },
    /// Uniform integer in `[min_bytes, max_bytes]`, `1 <= min_bytes <= max_bytes`.
    Uniform {
        /// Smallest size.
        min_bytes: u64,
        /// Largest size.
        max_bytes: u64,
    },
    /// `round(exp(mu + sigma * N(0, 1)))`, clamped to `[1, 2^40]`;
    /// `mu` finite, `sigma` finite and `>= 0`.
    LogNormal {
        /// Mean of the underlying normal (of ln bytes).
        mu: f64,
        /// Standard deviation of the underlying normal.
        sigma: f64,
    },
}

impl SizeSpec {
    fn validate(&self) -> Result<()> {
        match *self {
            SizeSpec::Constant { bytes: 0 } => {
                Err(Error::invalid("sizes.bytes", "must be at least 1"))
            }
            SizeSpec::Uniform {
                min_bytes,
                max_bytes,
            } if min_bytes == 0 || max_bytes < min_bytes => Err(Error::invalid(
                "sizes.min_bytes",
                format!("need 1 <= min_bytes <= max_bytes, got {min_bytes}..{max_bytes}"),
            )),
            SizeSpec::LogNormal { mu, .. } if !mu.is_finite() => Err(Error::invalid(
                "sizes.mu",
                format!("must be finite, got {mu}"),
            )),
            SizeSpec::LogNormal { sigma, .. } if !(sigma.is_finite() && sigma >= 0.0) => {
                Err(Error::invalid(
                    "sizes.sigma",
                    format!("must be finite and >= 0, got {sigma}"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The size of object `id` under generation seed `seed`.
    pub fn size_of(&self, id: ObjId, seed: u64) -> u64 {
        let mut rng = Rng::seed_from_u64(mix64(id ^ mix64(seed ^ 0x5EED_512E)));
        match *self {
            SizeSpec::Constant { bytes } => bytes,
            SizeSpec::Uniform {
                min_bytes,
                max_bytes,
            } => {
                let span = max_bytes - min_bytes;
                if span == u64::MAX {
                    rng.next_u64()
                } else {
                    min_bytes + rng.below(span + 1)
                }
            }
            SizeSpec::LogNormal { mu, sigma } => {
                let x = (mu + sigma * rng.normal()).exp().round();
                x.clamp(1.0, (1u64 << 40) as f64) as u64
            }
        }
    }
}

enum Gen {
    Zipf(Zipf),
    Uniform(u64),
    Loop {
        n: u64,
        pos: u64,
    },
    Scan {
        next: u64,
    },
    Mix {
        cum: Vec<f64>,
        parts: Vec<Gen>,
    },
    Phase {
        inner: Box<Gen>,
        period: u64,
        shift: u64,
        produced: u64,
    },
}

impl Gen {
    #[inline]
    fn next(&mut self, rng: &mut Rng) -> ObjId {
        match self {
            Gen::Zipf(z) => z.sample(rng) - 1,
            Gen::Uniform(n) => rng.below(*n),
            Gen::Loop { n, pos } => {
                let id = *pos;
                *pos = if *pos + 1 == *n { 0 } else { *pos + 1 };
                id
            }
            Gen::Scan { next } => {
                let id = *next;
                *next += 1;
                id
            }
            Gen::Mix { cum, parts } => {
                let total = *cum.last().expect("validated: at least one component");
                let u = rng.uniform() * total;
                let i = cum.iter().position(|&c| u < c).unwrap_or(cum.len() - 1);
                let m = parts.len() as u64;
                parts[i].next(rng) * m + i as u64
            }
            Gen::Phase {
                inner,
                period,
                shift,
                produced,
            } => {
                let phase = *produced / *period;
                *produced += 1;
                inner.next(rng) + phase * *shift
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZipfFields {
    alpha: f64,
    n_objects: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountFields {
    n_objects: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MixFields {
    components: Vec<(f64, SynthSpec)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseShiftFields {
    inner: SynthSpec,
    period: u64,
    shift: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SizedFields {
    inner: SynthSpec,
    sizes: SizeSpec,
}

impl Tagged for SynthSpec {
    const KINDS: &'static [&'static str] = &[
        "zipf",
        "uniform",
        "loop",
        "scan",
        "mix",
        "phase_shift",
        "sized",
    ];

    fn variant<'de, A: MapAccess<'de>>(
        kind: &'static str,
        rest: A,
    ) -> std::result::Result<Self, A::Error> {
        Ok(match kind {
            "zipf" => {
                let f: ZipfFields = config::fields(rest)?;
                SynthSpec::Zipf {
                    alpha: f.alpha,
                    n_objects: f.n_objects,
                }
            }
            "uniform" => SynthSpec::Uniform {
                n_objects: config::fields::<_, CountFields>(rest)?.n_objects,
            },
            "loop" => SynthSpec::Loop {
                n_objects: config::fields::<_, CountFields>(rest)?.n_objects,
            },
            "scan" => {
                config::fields::<_, NoFields>(rest)?;
                SynthSpec::Scan
            }
            "mix" => SynthSpec::Mix {
                components: config::fields::<_, MixFields>(rest)?.components,
            },
            "phase_shift" => {
                let f: PhaseShiftFields = config::fields(rest)?;
                SynthSpec::PhaseShift {
                    inner: Box::new(f.inner),
                    period: f.period,
                    shift: f.shift,
                }
            }
            _ => {
                let f: SizedFields = config::fields(rest)?;
                SynthSpec::Sized {
                    inner: Box::new(f.inner),
                    sizes: f.sizes,
                }
            }
        })
    }
}

impl<'de> Deserialize<'de> for SynthSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        config::deserialize_tagged(d)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConstantFields {
    bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UniformSizeFields {
    min_bytes: u64,
    max_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogNormalSizeFields {
    mu: f64,
    sigma: f64,
}

impl Tagged for SizeSpec {
    const KINDS: &'static [&'static str] = &["constant", "uniform", "lognormal"];

    fn variant<'de, A: MapAccess<'de>>(
        kind: &'static str,
        rest: A,
    ) -> std::result::Result<Self, A::Error> {
        Ok(match kind {
            "constant" => SizeSpec::Constant {
                bytes: config::fields::<_, ConstantFields>(rest)?.bytes,
            },
            "uniform" => {
                let f: UniformSizeFields = config::fields(rest)?;
                SizeSpec::Uniform {
                    min_bytes: f.min_bytes,
                    max_bytes: f.max_bytes,
                }
            }
            _ => {
                let f: LogNormalSizeFields = config::fields(rest)?;
                SizeSpec::LogNormal {
                    mu: f.mu,
                    sigma: f.sigma,
                }
            }
        })
    }
}

impl<'de> Deserialize<'de> for SizeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        config::deserialize_tagged(d)
    }
}

fn leaf_n(name: &str, n: u64) -> Result<()> {
    if n == 0 || n > MAX_OBJECTS {
        return Err(Error::invalid(
            format!("{name}.n_objects"),
            format!("must be in 1..=2^48, got {n}"),
        ));
    }
    Ok(())
}

/// Validate `spec` (under parameter prefix `at`) and build its generator.
/// Also returns the largest id it can produce in `n_requests` requests, so
/// that overflow is an error and not a silent wrap.
fn build(spec: &SynthSpec, n_requests: u64, at: &str, top: bool) -> Result<(Gen, u64)> {
    let overflow = || {
        Error::invalid(
            at.to_string(),
            "object ids would overflow u64; reduce n_objects, shift or nesting",
        )
    };
    Ok(match spec {
        SynthSpec::Zipf { alpha, n_objects } => {
            leaf_n(at, *n_objects)?;
            let z = Zipf::new(*n_objects, *alpha).map_err(|_| {
                Error::invalid(
                    format!("{at}.alpha"),
                    format!("must be finite and >= 0, got {alpha}"),
                )
            })?;
            (Gen::Zipf(z), n_objects - 1)
        }
        SynthSpec::Uniform { n_objects } => {
            leaf_n(at, *n_objects)?;
            (Gen::Uniform(*n_objects), n_objects - 1)
        }
        SynthSpec::Loop { n_objects } => {
            leaf_n(at, *n_objects)?;
            (
                Gen::Loop {
                    n: *n_objects,
                    pos: 0,
                },
                n_objects - 1,
            )
        }
        SynthSpec::Scan => (Gen::Scan { next: 0 }, n_requests.saturating_sub(1)),
        SynthSpec::Mix { components } => {
            if components.is_empty() {
                return Err(Error::invalid(
                    format!("{at}.components"),
                    "needs at least one component",
                ));
            }
            let m = components.len() as u64;
            let mut cum = Vec::with_capacity(components.len());
            let mut parts = Vec::with_capacity(components.len());
            let mut total = 0.0;
            let mut max_id = 0u64;
            for (i, (w, sub)) in components.iter().enumerate() {
                if !(w.is_finite() && *w >= 0.0) {
                    return Err(Error::invalid(
                        format!("{at}.components[{i}].weight"),
                        format!("must be finite and >= 0, got {w}"),
                    ));
                }
                total += w;
                cum.push(total);
                let (g, sub_max) = build(sub, n_requests, &format!("{at}.components[{i}]"), false)?;
                parts.push(g);
                let id = sub_max
                    .checked_mul(m)
                    .and_then(|x| x.checked_add(i as u64))
                    .ok_or_else(overflow)?;
                max_id = max_id.max(id);
            }
            if total <= 0.0 {
                return Err(Error::invalid(
                    format!("{at}.components"),
                    "weights must have a positive sum",
                ));
            }
            (Gen::Mix { cum, parts }, max_id)
        }
        SynthSpec::PhaseShift {
            inner,
            period,
            shift,
        } => {
            if *period == 0 {
                return Err(Error::invalid(format!("{at}.period"), "must be at least 1"));
            }
            if *shift == 0 {
                return Err(Error::invalid(format!("{at}.shift"), "must be at least 1"));
            }
            let (g, sub_max) = build(inner, n_requests, &format!("{at}.inner"), false)?;
            let phases = n_requests.saturating_sub(1) / period;
            let max_id = phases
                .checked_mul(*shift)
                .and_then(|x| x.checked_add(sub_max))
                .ok_or_else(overflow)?;
            (
                Gen::Phase {
                    inner: Box::new(g),
                    period: *period,
                    shift: *shift,
                    produced: 0,
                },
                max_id,
            )
        }
        SynthSpec::Sized { .. } if !top => {
            return Err(Error::invalid(
                format!("{at}.sizes"),
                "Sized may only wrap the whole spec (each object needs one size)",
            ));
        }
        SynthSpec::Sized { inner, .. } => build(inner, n_requests, &format!("{at}.inner"), false)?,
    })
}

/// Generate `n_requests` requests from `spec` with `seed`. Validates the
/// spec first; errors name the offending parameter by path, e.g.
/// `spec.components[1].weight`. The trace has sizes only when the spec is
/// wrapped in [`SynthSpec::Sized`]; it never has timestamps.
pub fn generate(spec: &SynthSpec, n_requests: usize, seed: u64) -> Result<Trace> {
    let (mut gen_, _) = build(spec, n_requests as u64, "spec", true)?;
    let sizes = match spec {
        SynthSpec::Sized { sizes, .. } => {
            sizes.validate()?;
            Some(*sizes)
        }
        _ => None,
    };
    // `n_requests` comes from the caller: every column is allocated
    // fallibly, so a length the allocator refuses is an error naming it.
    let mut rng = Rng::seed_from_u64(seed);
    let mut ids: Vec<ObjId> = crate::fallible::try_with_capacity(n_requests, "n_requests")?;
    let mut size_col: Option<Vec<u64>> = match sizes {
        Some(_) => Some(crate::fallible::try_with_capacity(
            n_requests,
            "n_requests",
        )?),
        None => None,
    };
    for _ in 0..n_requests {
        crate::cancel::check()?; // stoppable (see `crate::cancel`)
        ids.push(gen_.next(&mut rng));
    }
    if let (Some(s), Some(col)) = (sizes, size_col.as_mut()) {
        col.extend(ids.iter().map(|&id| s.size_of(id, seed)));
    }
    Trace::try_new(ids, "n_requests")?.with_sizes(size_col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        /// A length whose columns cannot be allocated is an error naming
        /// `n_requests` (issue 14: `n_requests=1e12` aborted the process).
        #[test]
        fn huge_lengths_are_errors_naming_n_requests(n in prop_oneof![Just(usize::MAX), (1usize << 44)..=usize::MAX], sized in any::<bool>()) {
            let inner = SynthSpec::Loop { n_objects: 10 };
            let spec = if sized {
                SynthSpec::Sized { inner: Box::new(inner), sizes: SizeSpec::Constant { bytes: 8 } }
            } else {
                inner
            };
            let err = generate(&spec, n, 0).unwrap_err();
            prop_assert!(err.to_string().contains("invalid value for n_requests"), "{}", err);
        }

        /// `try_new` derives the same columns as `new`.
        #[test]
        fn try_new_is_new(ids in prop::collection::vec(0u64..20, 0..200)) {
            let a = Trace::new(ids.clone());
            let b = Trace::try_new(ids, "ids").unwrap();
            prop_assert_eq!(a.next_vtime(), b.next_vtime());
            prop_assert_eq!(a.first_access(), b.first_access());
        }
    }

    #[test]
    fn loop_and_scan_are_exact() {
        let t = generate(&SynthSpec::Loop { n_objects: 3 }, 7, 0).unwrap();
        assert_eq!(t.ids(), &[0, 1, 2, 0, 1, 2, 0]);
        let t = generate(&SynthSpec::Scan, 4, 0).unwrap();
        assert_eq!(t.ids(), &[0, 1, 2, 3]);
    }

    #[test]
    fn mix_keeps_components_disjoint() {
        let spec = SynthSpec::Mix {
            components: vec![
                (1.0, SynthSpec::Loop { n_objects: 4 }),
                (1.0, SynthSpec::Scan),
            ],
        };
        let t = generate(&spec, 1000, 5).unwrap();
        let loops = t.ids().iter().filter(|&&id| id % 2 == 0).count();
        assert!((400..600).contains(&loops), "{loops}");
        assert!(
            t.ids()
                .iter()
                .filter(|&&id| id % 2 == 0)
                .all(|&id| id / 2 < 4)
        );
    }

    #[test]
    fn phase_shift_moves_the_working_set() {
        let spec = SynthSpec::PhaseShift {
            inner: Box::new(SynthSpec::Uniform { n_objects: 10 }),
            period: 100,
            shift: 10,
        };
        let t = generate(&spec, 300, 1).unwrap();
        for (i, &id) in t.ids().iter().enumerate() {
            assert_eq!(id / 10, (i / 100) as u64);
        }
    }

    #[test]
    fn sizes_are_per_object() {
        let spec = SynthSpec::Sized {
            inner: Box::new(SynthSpec::Zipf {
                alpha: 0.8,
                n_objects: 50,
            }),
            sizes: SizeSpec::LogNormal {
                mu: 6.0,
                sigma: 1.0,
            },
        };
        let t = generate(&spec, 2000, 9).unwrap();
        let mut by_id = std::collections::HashMap::new();
        for (&id, &s) in t.ids().iter().zip(t.sizes().unwrap()) {
            assert!(s >= 1);
            assert_eq!(*by_id.entry(id).or_insert(s), s, "object {id} changed size");
        }
    }

    #[test]
    fn errors_name_the_parameter() {
        let bad = SynthSpec::Mix {
            components: vec![(1.0, SynthSpec::Scan), (-1.0, SynthSpec::Scan)],
        };
        let e = generate(&bad, 10, 0).unwrap_err().to_string();
        assert!(e.contains("spec.components[1].weight"), "{e}");
        let bad = SynthSpec::Zipf {
            alpha: -1.0,
            n_objects: 3,
        };
        assert!(
            generate(&bad, 10, 0)
                .unwrap_err()
                .to_string()
                .contains("spec.alpha")
        );
        let bad = SynthSpec::PhaseShift {
            inner: Box::new(SynthSpec::Sized {
                inner: Box::new(SynthSpec::Scan),
                sizes: SizeSpec::Constant { bytes: 1 },
            }),
            period: 1,
            shift: 1,
        };
        assert!(
            generate(&bad, 10, 0)
                .unwrap_err()
                .to_string()
                .contains("spec.inner.sizes")
        );
        let bad = SynthSpec::Sized {
            inner: Box::new(SynthSpec::Scan),
            sizes: SizeSpec::Uniform {
                min_bytes: 5,
                max_bytes: 2,
            },
        };
        assert!(
            generate(&bad, 10, 0)
                .unwrap_err()
                .to_string()
                .contains("sizes.min_bytes")
        );
    }
}
