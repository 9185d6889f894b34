//! The parameters of the built-in policies: one struct per policy that has
//! any, and [`PolicyConfig`], the tagged enum (`{"kind": "s3fifo",
//! "small_size_ratio": 0.1, ...}`) that selects a policy and holds them.
//!
//! Configs cross from Python whole (every field, no defaults here: the
//! Python `Config` dataclasses hold them); unknown keys are refused. The
//! [`Default`] impls are the same values, for pure-Rust tests, benchmarks
//! and examples; a Python test checks they equal the Python `Config`s.

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess};

use super::{
    Arc, Belady, BlindOracle, Clock, Combine, Fifo, Lfu, Lirs, Lru, Mark0, MarkAndPredict, Marker,
    Policy, PredictiveMarker, S3Fifo, Sieve, TwoQ,
};
use crate::config::{NoFields, Tagged, deserialize_tagged, fields};
use crate::error::{Error, Result};

/// CLOCK's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockParams {
    /// Bits of the per-object frequency counter, 1 to 16 (1 = classic
    /// second chance).
    pub n_bit_counter: u32,
    /// Counter value given to a newly admitted object, 0 to 65535.
    pub init_freq: u32,
}

impl Default for ClockParams {
    fn default() -> Self {
        ClockParams {
            n_bit_counter: 1,
            init_freq: 0,
        }
    }
}

/// 2Q's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoQParams {
    /// Share of the capacity for the first-timer FIFO (Ain), in [0, 1].
    pub ain_size_ratio: f64,
    /// Size of the ghost FIFO (Aout) as a share of the capacity, in [0, 16].
    pub aout_size_ratio: f64,
}

impl Default for TwoQParams {
    fn default() -> Self {
        TwoQParams {
            ain_size_ratio: 0.25,
            aout_size_ratio: 0.5,
        }
    }
}

/// LIRS's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LirsParams {
    /// Share of the capacity for resident HIR objects, in [0, 1).
    pub hirs_ratio: f64,
}

impl Default for LirsParams {
    fn default() -> Self {
        LirsParams { hirs_ratio: 0.01 }
    }
}

/// S3-FIFO's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3FifoParams {
    /// Share of the capacity for the probationary FIFO, in [0, 1).
    pub small_size_ratio: f64,
    /// Ghost FIFO size as a share of the capacity, in [0, 16].
    pub ghost_size_ratio: f64,
    /// Requests in the small FIFO needed to move an object to the main one.
    pub move_to_main_threshold: u32,
}

impl Default for S3FifoParams {
    fn default() -> Self {
        S3FifoParams {
            small_size_ratio: 0.1,
            ghost_size_ratio: 0.9,
            move_to_main_threshold: 2,
        }
    }
}

/// The parameters of the randomized marking policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedParams {
    /// Seed of the random choices, at most 2^53.
    pub seed: u64,
}

/// The parameters of `mark0_robust`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mark0RobustParams {
    /// Seed of MARK0's random choices (Marker's is `seed + 1`), at most 2^53.
    pub seed: u64,
    /// Switch to the other candidate when the followed one has more than
    /// this many times its misses; finite and above 1.
    pub switch_factor: f64,
}

impl Default for Mark0RobustParams {
    fn default() -> Self {
        Mark0RobustParams {
            seed: 0,
            switch_factor: 1.1,
        }
    }
}

/// A built-in policy and its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)] // the variants are the registry names
pub enum PolicyConfig {
    Lru,
    Fifo,
    Clock(ClockParams),
    Lfu,
    Arc,
    TwoQ(TwoQParams),
    Lirs(LirsParams),
    S3Fifo(S3FifoParams),
    Sieve,
    Belady,
    Marker(SeedParams),
    BlindOracle,
    PredictiveMarker(SeedParams),
    Mark0(SeedParams),
    MarkAndPredict(SeedParams),
    Mark0Robust(Mark0RobustParams),
}

/// The largest seed (seeds cross from Python, whose configs may hold them
/// as floats).
const MAX_SEED: u64 = 1 << 53;

impl PolicyConfig {
    /// The policy `name` with the default parameters (the Python `Config`
    /// defaults), for pure-Rust callers.
    pub fn defaults(name: &str) -> Result<Self> {
        use PolicyConfig as P;
        Ok(match name {
            "lru" => P::Lru,
            "fifo" => P::Fifo,
            "clock" => P::Clock(ClockParams::default()),
            "lfu" => P::Lfu,
            "arc" => P::Arc,
            "twoq" => P::TwoQ(TwoQParams::default()),
            "lirs" => P::Lirs(LirsParams::default()),
            "s3fifo" => P::S3Fifo(S3FifoParams::default()),
            "sieve" => P::Sieve,
            "belady" => P::Belady,
            "marker" => P::Marker(SeedParams::default()),
            "blind_oracle" => P::BlindOracle,
            "predictive_marker" => P::PredictiveMarker(SeedParams::default()),
            "mark0" => P::Mark0(SeedParams::default()),
            "mark_and_predict" => P::MarkAndPredict(SeedParams::default()),
            "mark0_robust" => P::Mark0Robust(Mark0RobustParams::default()),
            _ => return Err(unknown_policy(name)),
        })
    }

    /// The registry name.
    pub fn name(&self) -> &'static str {
        use PolicyConfig as P;
        match self {
            P::Lru => "lru",
            P::Fifo => "fifo",
            P::Clock(_) => "clock",
            P::Lfu => "lfu",
            P::Arc => "arc",
            P::TwoQ(_) => "twoq",
            P::Lirs(_) => "lirs",
            P::S3Fifo(_) => "s3fifo",
            P::Sieve => "sieve",
            P::Belady => "belady",
            P::Marker(_) => "marker",
            P::BlindOracle => "blind_oracle",
            P::PredictiveMarker(_) => "predictive_marker",
            P::Mark0(_) => "mark0",
            P::MarkAndPredict(_) => "mark_and_predict",
            P::Mark0Robust(_) => "mark0_robust",
        }
    }

    /// Checks the parameters that do not depend on the capacity; errors
    /// name `policy.<field>`. (Those that do, like S3-FIFO's small queue
    /// holding at least one byte, are checked when the policy is built.)
    pub fn validate(&self) -> Result<()> {
        use PolicyConfig as P;
        let seed = |s: u64| {
            if s > MAX_SEED {
                return Err(Error::invalid(
                    "policy.seed",
                    format!("must be an integer in [0, 2^53], got {s}"),
                ));
            }
            Ok(())
        };
        match self {
            P::Clock(p) => {
                if !(1..=16).contains(&p.n_bit_counter) {
                    return Err(Error::invalid(
                        "policy.n_bit_counter",
                        format!("must be an integer in 1..=16, got {}", p.n_bit_counter),
                    ));
                }
                if p.init_freq > 65535 {
                    return Err(Error::invalid(
                        "policy.init_freq",
                        format!("must be an integer in 0..=65535, got {}", p.init_freq),
                    ));
                }
            }
            P::TwoQ(p) => {
                if !(0.0..=1.0).contains(&p.ain_size_ratio) {
                    return Err(Error::invalid(
                        "policy.ain_size_ratio",
                        format!("must be in [0, 1], got {}", p.ain_size_ratio),
                    ));
                }
                if !(0.0..=16.0).contains(&p.aout_size_ratio) {
                    return Err(Error::invalid(
                        "policy.aout_size_ratio",
                        format!("must be in [0, 16], got {}", p.aout_size_ratio),
                    ));
                }
            }
            P::Lirs(p) => {
                if !(0.0..1.0).contains(&p.hirs_ratio) {
                    return Err(Error::invalid(
                        "policy.hirs_ratio",
                        format!("must be in [0, 1), got {}", p.hirs_ratio),
                    ));
                }
            }
            P::S3Fifo(p) => {
                if !(0.0..1.0).contains(&p.small_size_ratio) {
                    return Err(Error::invalid(
                        "policy.small_size_ratio",
                        format!("must be in [0, 1), got {}", p.small_size_ratio),
                    ));
                }
                if !(0.0..=16.0).contains(&p.ghost_size_ratio) {
                    return Err(Error::invalid(
                        "policy.ghost_size_ratio",
                        format!("must be in [0, 16], got {}", p.ghost_size_ratio),
                    ));
                }
                if p.move_to_main_threshold > 1_000_000 {
                    return Err(Error::invalid(
                        "policy.move_to_main_threshold",
                        format!(
                            "must be an integer in 0..=1000000, got {}",
                            p.move_to_main_threshold
                        ),
                    ));
                }
            }
            P::Marker(p) | P::PredictiveMarker(p) | P::Mark0(p) | P::MarkAndPredict(p) => {
                seed(p.seed)?
            }
            P::Mark0Robust(p) => {
                seed(p.seed)?;
                if !(p.switch_factor.is_finite() && p.switch_factor > 1.0) {
                    return Err(Error::invalid(
                        "policy.switch_factor",
                        format!("must be a finite number > 1, got {}", p.switch_factor),
                    ));
                }
            }
            P::Lru | P::Fifo | P::Lfu | P::Arc | P::Sieve | P::Belady | P::BlindOracle => {}
        }
        Ok(())
    }

    /// Builds the policy for a cache of `capacity_bytes` (at least 1).
    pub fn build(&self, capacity_bytes: u64) -> Result<Box<dyn Policy>> {
        use PolicyConfig as P;
        if capacity_bytes == 0 {
            return Err(Error::invalid("capacity", "must be at least 1"));
        }
        self.validate()?;
        let c = capacity_bytes;
        Ok(match *self {
            P::Lru => Box::new(Lru::new(c)),
            P::Fifo => Box::new(Fifo::new(c)),
            P::Clock(p) => Box::new(Clock::new(p.n_bit_counter, p.init_freq)?),
            P::Lfu => Box::new(Lfu::new(c)),
            P::Arc => Box::new(Arc::new(c)),
            P::TwoQ(p) => Box::new(TwoQ::new(c, p.ain_size_ratio, p.aout_size_ratio)?),
            P::Lirs(p) => Box::new(Lirs::new(c, p.hirs_ratio)?),
            P::S3Fifo(p) => Box::new(S3Fifo::new(
                c,
                p.small_size_ratio,
                p.ghost_size_ratio,
                p.move_to_main_threshold,
            )?),
            P::Sieve => Box::new(Sieve::new(c)),
            P::Belady => Box::new(Belady::new(c)),
            P::Marker(p) => Box::new(Marker::new(c, p.seed)),
            P::BlindOracle => Box::new(BlindOracle::new(c)),
            P::PredictiveMarker(p) => Box::new(PredictiveMarker::new(c, p.seed)),
            P::Mark0(p) => Box::new(Mark0::new(c, p.seed)),
            P::MarkAndPredict(p) => Box::new(MarkAndPredict::new(c, p.seed)),
            P::Mark0Robust(p) => Box::new(Combine::new(
                "mark0_robust",
                c,
                Box::new(Mark0::new(c, p.seed)),
                Box::new(Marker::new(c, p.seed + 1)),
                p.switch_factor,
            )),
        })
    }
}

fn unknown_policy(name: &str) -> Error {
    Error::UnknownName {
        kind: "policy",
        name: name.to_string(),
        available: PolicyConfig::KINDS.join(", "),
    }
}

impl Tagged for PolicyConfig {
    const KINDS: &'static [&'static str] = &[
        "lru",
        "fifo",
        "clock",
        "lfu",
        "arc",
        "twoq",
        "lirs",
        "s3fifo",
        "sieve",
        "belady",
        "marker",
        "blind_oracle",
        "predictive_marker",
        "mark0",
        "mark_and_predict",
        "mark0_robust",
    ];

    fn variant<'de, A: MapAccess<'de>>(kind: &'static str, rest: A) -> Result<Self, A::Error> {
        use PolicyConfig as P;
        let none = |rest: A, p: PolicyConfig| fields::<_, NoFields>(rest).map(|_| p);
        Ok(match kind {
            "lru" => none(rest, P::Lru)?,
            "fifo" => none(rest, P::Fifo)?,
            "clock" => P::Clock(fields(rest)?),
            "lfu" => none(rest, P::Lfu)?,
            "arc" => none(rest, P::Arc)?,
            "twoq" => P::TwoQ(fields(rest)?),
            "lirs" => P::Lirs(fields(rest)?),
            "s3fifo" => P::S3Fifo(fields(rest)?),
            "sieve" => none(rest, P::Sieve)?,
            "belady" => none(rest, P::Belady)?,
            "marker" => P::Marker(fields(rest)?),
            "blind_oracle" => none(rest, P::BlindOracle)?,
            "predictive_marker" => P::PredictiveMarker(fields(rest)?),
            "mark0" => P::Mark0(fields(rest)?),
            "mark_and_predict" => P::MarkAndPredict(fields(rest)?),
            _ => P::Mark0Robust(fields(rest)?),
        })
    }
}

impl<'de> Deserialize<'de> for PolicyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_tagged(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error as ValueError, MapDeserializer};

    fn read(entries: &[(&str, f64)], kind: &str) -> std::result::Result<PolicyConfig, String> {
        use serde::de::IntoDeserializer;
        // `kind` first, then numbers: a map of enum-free values.
        #[derive(Clone)]
        enum V<'a> {
            S(&'a str),
            F(f64),
        }
        impl<'de, 'a> IntoDeserializer<'de, ValueError> for V<'a> {
            type Deserializer = VDe<'a>;
            fn into_deserializer(self) -> VDe<'a> {
                VDe(self)
            }
        }
        struct VDe<'a>(V<'a>);
        impl<'de> Deserializer<'de> for VDe<'_> {
            type Error = ValueError;
            fn deserialize_any<Vi: serde::de::Visitor<'de>>(
                self,
                v: Vi,
            ) -> std::result::Result<Vi::Value, ValueError> {
                match self.0 {
                    V::S(s) => v.visit_str(s),
                    V::F(f) if f.fract() == 0.0 && f >= 0.0 => v.visit_u64(f as u64),
                    V::F(f) => v.visit_f64(f),
                }
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map identifier ignored_any enum struct
            }
        }
        let mut all = vec![("kind", V::S(kind))];
        all.extend(entries.iter().map(|(k, v)| (*k, V::F(*v))));
        PolicyConfig::deserialize(MapDeserializer::<_, ValueError>::new(all.into_iter()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_kind_has_defaults_that_build() {
        for name in PolicyConfig::KINDS {
            let c = PolicyConfig::defaults(name).unwrap();
            assert_eq!(c.name(), *name);
            assert_eq!(c.build(100).unwrap().name(), *name);
        }
        assert!(PolicyConfig::defaults("nope").is_err());
    }

    #[test]
    fn a_dict_holds_every_field_and_nothing_else() {
        let c = read(
            &[
                ("small_size_ratio", 0.2),
                ("ghost_size_ratio", 0.5),
                ("move_to_main_threshold", 3.0),
            ],
            "s3fifo",
        )
        .unwrap();
        assert_eq!(
            c,
            PolicyConfig::S3Fifo(S3FifoParams {
                small_size_ratio: 0.2,
                ghost_size_ratio: 0.5,
                move_to_main_threshold: 3
            })
        );
        let err = read(&[("small_size_ratio", 0.2)], "s3fifo").unwrap_err();
        assert!(err.contains("missing field `ghost_size_ratio`"), "{err}");
        let err = read(&[("ratio", 0.2)], "lru").unwrap_err();
        assert!(err.contains("unknown field `ratio`"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let bad = [
            (
                PolicyConfig::Clock(ClockParams {
                    n_bit_counter: 17,
                    init_freq: 0,
                }),
                "policy.n_bit_counter",
            ),
            (
                PolicyConfig::Mark0Robust(Mark0RobustParams {
                    seed: 0,
                    switch_factor: 1.0,
                }),
                "policy.switch_factor",
            ),
            (
                PolicyConfig::Marker(SeedParams { seed: u64::MAX }),
                "policy.seed",
            ),
            (
                PolicyConfig::Lirs(LirsParams { hirs_ratio: 1.0 }),
                "policy.hirs_ratio",
            ),
        ];
        for (c, key) in bad {
            let err = c.build(10).err().unwrap().to_string();
            assert!(err.contains(key), "{err}");
        }
    }
}
