//! Requests: trace replay (arrival timestamps kept) and synthetic
//! generators (Poisson or Gamma arrivals with length distributions,
//! shared-prefix groups, multi-turn conversations).

use std::path::Path;

use memarena_core::config::{self, NoFields, Tagged};
use memarena_core::error::{Error, Result};
use memarena_core::rng::{Rng, Zipf};
use memarena_core::trace::{excerpt, open_input, utf8_error_at};
use serde::Deserialize;
use serde::de::MapAccess;

use crate::dist::{GAMMA_MAX_SHAPE, GAMMA_MIN_SHAPE, exponential, gamma, lognormal};
use crate::engine::rng_stream;

/// One request to serve.
///
/// Content model for prefix caching: requests with the same `prefix_group`
/// hold identical tokens at positions `[0, prefix_tokens)` (a shared system
/// prompt, or a conversation's history); every other token is unique to the
/// request. A multi-turn conversation sets `prefix_tokens` to the whole
/// `prompt + output` of each turn, so the next turn (whose prompt extends
/// this one's) hits on it.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestSpec {
    /// Arrival time, seconds (≥ 0, finite).
    pub arrival_s: f64,
    /// Prompt tokens (≥ 1).
    pub prompt_tokens: u32,
    /// Tokens generated per sequence (≥ 1).
    pub output_tokens: u32,
    /// Parallel samples sharing the prompt (≥ 1).
    pub n_parallel: u32,
    /// Content group for prefix caching; `None`: all tokens unique.
    pub prefix_group: Option<u64>,
    /// Tokens shared with the group (≤ `prompt_tokens + output_tokens`).
    pub prefix_tokens: u32,
}

impl RequestSpec {
    /// A request with unique content and one sequence.
    pub fn new(arrival_s: f64, prompt_tokens: u32, output_tokens: u32) -> Self {
        RequestSpec {
            arrival_s,
            prompt_tokens,
            output_tokens,
            n_parallel: 1,
            prefix_group: None,
            prefix_tokens: 0,
        }
    }

    /// Checks this request (row `i` of `requests`); errors name the field and row.
    pub fn validate(&self, i: usize) -> Result<()> {
        let f = |name: &str| format!("requests[{i}].{name}");
        if !(self.arrival_s.is_finite() && self.arrival_s >= 0.0) {
            return Err(Error::invalid(
                f("arrival_s"),
                format!("must be finite and >= 0, got {}", self.arrival_s),
            ));
        }
        if self.prompt_tokens == 0 {
            return Err(Error::invalid(f("prompt_tokens"), "must be >= 1"));
        }
        if self.output_tokens == 0 {
            return Err(Error::invalid(f("output_tokens"), "must be >= 1"));
        }
        if self.n_parallel == 0 || self.n_parallel > 1024 {
            return Err(Error::invalid(
                f("n_parallel"),
                format!("must be in 1..=1024, got {}", self.n_parallel),
            ));
        }
        let total = self.prompt_tokens as u64 + self.output_tokens as u64;
        if self.prefix_tokens as u64 > total {
            return Err(Error::invalid(
                f("prefix_tokens"),
                format!(
                    "{} exceeds prompt_tokens + output_tokens = {total}",
                    self.prefix_tokens
                ),
            ));
        }
        if self.prefix_group.is_none() && self.prefix_tokens > 0 {
            return Err(Error::invalid(
                f("prefix_tokens"),
                "is set but prefix_group is None",
            ));
        }
        Ok(())
    }
}

/// A distribution of token counts (samples are clamped to ≥ 1).
///
/// Deserializes from a bare integer (fixed) or a map whose `kind` comes
/// first: `{kind: fixed, value}`, `{kind: uniform, min, max}`,
/// `{kind: exponential, mean}`, `{kind: lognormal, median, sigma}`,
/// `{kind: empirical, values}`.
#[derive(Clone, Debug, PartialEq)]
pub enum LengthDist {
    /// Always this many.
    Fixed(u32),
    /// Uniform over `min..=max`.
    Uniform {
        /// Smallest value.
        min: u32,
        /// Largest value.
        max: u32,
    },
    /// Exponential with this mean (rounded up).
    Exponential {
        /// Mean.
        mean: f64,
    },
    /// Log-normal with this median and log-space sigma (rounded).
    LogNormal {
        /// Median.
        median: f64,
        /// Standard deviation of the logarithm.
        sigma: f64,
    },
    /// Resampled uniformly from observed values (e.g. a trace's lengths).
    Empirical(Vec<u32>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixedFields {
    value: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UniformFields {
    min: u32,
    max: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeanFields {
    mean: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogNormalFields {
    median: f64,
    sigma: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmpiricalFields {
    values: Vec<u32>,
}

impl Tagged for LengthDist {
    const KINDS: &'static [&'static str] =
        &["fixed", "uniform", "exponential", "lognormal", "empirical"];

    fn variant<'de, A: MapAccess<'de>>(
        kind: &'static str,
        rest: A,
    ) -> std::result::Result<Self, A::Error> {
        Ok(match kind {
            "fixed" => LengthDist::Fixed(config::fields::<_, FixedFields>(rest)?.value),
            "uniform" => {
                let f: UniformFields = config::fields(rest)?;
                LengthDist::Uniform {
                    min: f.min,
                    max: f.max,
                }
            }
            "exponential" => LengthDist::Exponential {
                mean: config::fields::<_, MeanFields>(rest)?.mean,
            },
            "lognormal" => {
                let f: LogNormalFields = config::fields(rest)?;
                LengthDist::LogNormal {
                    median: f.median,
                    sigma: f.sigma,
                }
            }
            _ => LengthDist::Empirical(config::fields::<_, EmpiricalFields>(rest)?.values),
        })
    }

    fn from_u64(value: u64) -> Option<Self> {
        u32::try_from(value).ok().map(LengthDist::Fixed)
    }
}

impl<'de> Deserialize<'de> for LengthDist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        config::deserialize_tagged(d)
    }
}

impl LengthDist {
    fn validate(&self, name: &str) -> Result<()> {
        let bad = |r: &str| Err(Error::invalid(name, r.to_string()));
        match self {
            LengthDist::Fixed(0) => bad("fixed length must be >= 1"),
            LengthDist::Uniform { min, max } if min > max || *max == 0 => {
                bad("uniform needs 0 < max and min <= max")
            }
            LengthDist::Exponential { mean } if !(*mean > 0.0 && mean.is_finite()) => {
                bad("mean must be > 0")
            }
            LengthDist::LogNormal { median, sigma }
                if !(*median > 0.0 && *sigma >= 0.0 && sigma.is_finite()) =>
            {
                bad("median must be > 0 and sigma >= 0")
            }
            LengthDist::Empirical(v) if v.is_empty() => bad("empirical distribution needs values"),
            _ => Ok(()),
        }
    }

    /// One sample (≥ 1).
    pub fn sample(&self, rng: &mut Rng) -> u32 {
        let x = match self {
            LengthDist::Fixed(n) => *n as f64,
            LengthDist::Uniform { min, max } => {
                (*min as u64 + rng.below((*max - *min) as u64 + 1)) as f64
            }
            LengthDist::Exponential { mean } => exponential(rng, 1.0 / mean).ceil(),
            LengthDist::LogNormal { median, sigma } => lognormal(rng, median.ln(), *sigma).round(),
            LengthDist::Empirical(v) => v[rng.below(v.len() as u64) as usize] as f64,
        };
        x.clamp(1.0, u32::MAX as f64) as u32
    }
}

/// An arrival process.
///
/// Deserializes from a map whose `kind` comes first: `{kind: poisson,
/// rate}`, `{kind: gamma, rate, cv}`, `{kind: all_at_once}`.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrivalProcess {
    /// Poisson arrivals at `rate` requests per second.
    Poisson {
        /// Requests per second.
        rate: f64,
    },
    /// Gamma inter-arrival times with mean `1 / rate` and coefficient of
    /// variation `cv` (cv = 1 is Poisson; > 1 is burstier).
    Gamma {
        /// Requests per second.
        rate: f64,
        /// Coefficient of variation of the gaps.
        cv: f64,
    },
    /// All requests at time 0 (offline batch).
    AllAtOnce,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateFields {
    rate: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GammaFields {
    rate: f64,
    cv: f64,
}

impl Tagged for ArrivalProcess {
    const KINDS: &'static [&'static str] = &["poisson", "gamma", "all_at_once"];

    fn variant<'de, A: MapAccess<'de>>(
        kind: &'static str,
        rest: A,
    ) -> std::result::Result<Self, A::Error> {
        Ok(match kind {
            "poisson" => ArrivalProcess::Poisson {
                rate: config::fields::<_, RateFields>(rest)?.rate,
            },
            "gamma" => {
                let f: GammaFields = config::fields(rest)?;
                ArrivalProcess::Gamma {
                    rate: f.rate,
                    cv: f.cv,
                }
            }
            _ => {
                config::fields::<_, NoFields>(rest)?;
                ArrivalProcess::AllAtOnce
            }
        })
    }
}

impl<'de> Deserialize<'de> for ArrivalProcess {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        config::deserialize_tagged(d)
    }
}

impl ArrivalProcess {
    fn validate(&self) -> Result<()> {
        match self {
            ArrivalProcess::Poisson { rate } | ArrivalProcess::Gamma { rate, .. }
                if !(*rate > 0.0 && rate.is_finite()) =>
            {
                Err(Error::invalid(
                    "arrivals.rate",
                    format!("must be finite and > 0, got {rate}"),
                ))
            }
            ArrivalProcess::Gamma { cv, .. }
                if !(*cv > 0.0
                    && cv.is_finite()
                    && (GAMMA_MIN_SHAPE..=GAMMA_MAX_SHAPE).contains(&(1.0 / (cv * cv)))) =>
            {
                // The gaps are gamma with shape 1 / cv^2: the sampler's range
                // of shapes (see `dist::GAMMA_MAX_SHAPE`) bounds cv.
                Err(Error::invalid(
                    "arrivals.cv",
                    format!(
                        "must be in [{:.3e}, {:.3e}] (the gaps' gamma shape 1 / cv^2 in [{:.3e}, {:.3e}], \
                         where its f64 sampler follows the distribution), got {cv:e}",
                        1.0 / GAMMA_MAX_SHAPE.sqrt(),
                        1.0 / GAMMA_MIN_SHAPE.sqrt(),
                        GAMMA_MIN_SHAPE,
                        GAMMA_MAX_SHAPE,
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    fn gap(&self, rng: &mut Rng) -> f64 {
        match *self {
            ArrivalProcess::Poisson { rate } => exponential(rng, rate),
            ArrivalProcess::Gamma { rate, cv } => {
                let shape = 1.0 / (cv * cv);
                gamma(rng, shape, 1.0 / (rate * shape))
            }
            ArrivalProcess::AllAtOnce => 0.0,
        }
    }
}

/// A synthetic workload: arrivals and lengths drawn from distributions.
///
/// Deserializes from its fields but `seed` (given apart, see
/// [`RequestGenerator::with_seed`]).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticWorkload {
    /// Requests to generate.
    pub num_requests: usize,
    /// Arrival process.
    pub arrivals: ArrivalProcess,
    /// Prompt lengths.
    pub prompt_tokens: LengthDist,
    /// Output lengths.
    pub output_tokens: LengthDist,
    /// Parallel samples per request.
    pub n_parallel: u32,
    /// Seed (arrivals, prompts and outputs use separate streams).
    #[serde(skip)]
    pub seed: u64,
}

impl SyntheticWorkload {
    /// Generates the requests.
    pub fn generate(&self) -> Result<Vec<RequestSpec>> {
        self.arrivals.validate()?;
        self.prompt_tokens.validate("prompt_tokens")?;
        self.output_tokens.validate("output_tokens")?;
        if self.n_parallel == 0 {
            return Err(Error::invalid("n_parallel", "must be >= 1"));
        }
        let mut ra = rng_stream(self.seed, 10);
        let mut rp = rng_stream(self.seed, 11);
        let mut ro = rng_stream(self.seed, 12);
        let mut t = 0.0;
        // `num_requests` comes from the config: allocated fallibly.
        let mut out =
            memarena_core::fallible::try_with_capacity(self.num_requests, "num_requests")?;
        for i in 0..self.num_requests {
            memarena_core::cancel::check()?; // stoppable (see `memarena_core::cancel`)
            if i > 0 {
                t += self.arrivals.gap(&mut ra);
            }
            out.push(RequestSpec {
                n_parallel: self.n_parallel,
                ..RequestSpec::new(
                    t,
                    self.prompt_tokens.sample(&mut rp),
                    self.output_tokens.sample(&mut ro),
                )
            });
        }
        if !t.is_finite() {
            return Err(Error::invalid(
                "arrivals.rate",
                format!(
                    "arrival times of {} requests overflow to infinity at this rate",
                    self.num_requests
                ),
            ));
        }
        Ok(out)
    }
}

/// Requests sharing one of `num_groups` system prompts of `prefix_tokens`
/// tokens (group popularity Zipf(`zipf_alpha`); 0 is uniform), followed by a
/// unique suffix drawn from `base.prompt_tokens`.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedPrefixWorkload {
    /// Arrivals, suffix and output lengths.
    pub base: SyntheticWorkload,
    /// Distinct shared prefixes.
    pub num_groups: u64,
    /// Tokens of each shared prefix.
    pub prefix_tokens: u32,
    /// Zipf exponent of group popularity.
    pub zipf_alpha: f64,
}

impl SharedPrefixWorkload {
    /// Generates the requests.
    pub fn generate(&self) -> Result<Vec<RequestSpec>> {
        let zipf = Zipf::new(self.num_groups, self.zipf_alpha)?;
        let mut rg = rng_stream(self.base.seed, 13);
        let mut reqs = self.base.generate()?;
        for r in &mut reqs {
            memarena_core::cancel::check()?;
            r.prompt_tokens = r.prompt_tokens.saturating_add(self.prefix_tokens);
            r.prefix_group = Some(zipf.sample(&mut rg));
            r.prefix_tokens = self.prefix_tokens;
        }
        Ok(reqs)
    }
}

/// The fields of a `shared_prefix` generator: a synthetic workload's and
/// the groups'.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedPrefixFields {
    num_requests: usize,
    arrivals: ArrivalProcess,
    prompt_tokens: LengthDist,
    output_tokens: LengthDist,
    n_parallel: u32,
    num_groups: u64,
    prefix_tokens: u32,
    zipf_alpha: f64,
}

/// A request generator selected by `kind` (`synthetic`, `shared_prefix`,
/// `multi_turn`), its other keys the generator's fields (the seed is given
/// apart).
#[derive(Clone, Debug, PartialEq)]
pub enum RequestGenerator {
    /// Independent requests.
    Synthetic(SyntheticWorkload),
    /// Requests sharing system prompts; the map holds the synthetic
    /// workload's fields and the groups' at one level.
    SharedPrefix(SharedPrefixWorkload),
    /// Multi-turn conversations.
    MultiTurn(MultiTurnWorkload),
}

impl RequestGenerator {
    /// The generator with its seed set.
    pub fn with_seed(mut self, seed: u64) -> Self {
        match &mut self {
            RequestGenerator::Synthetic(w) => w.seed = seed,
            RequestGenerator::SharedPrefix(w) => w.base.seed = seed,
            RequestGenerator::MultiTurn(w) => w.seed = seed,
        }
        self
    }

    /// Generates the requests.
    pub fn generate(&self) -> Result<Vec<RequestSpec>> {
        match self {
            RequestGenerator::Synthetic(w) => w.generate(),
            RequestGenerator::SharedPrefix(w) => w.generate(),
            RequestGenerator::MultiTurn(w) => w.generate(),
        }
    }
}

impl Tagged for RequestGenerator {
    const KINDS: &'static [&'static str] = &["synthetic", "shared_prefix", "multi_turn"];

    fn variant<'de, A: MapAccess<'de>>(
        kind: &'static str,
        rest: A,
    ) -> std::result::Result<Self, A::Error> {
        Ok(match kind {
            "synthetic" => RequestGenerator::Synthetic(config::fields(rest)?),
            "shared_prefix" => {
                let f: SharedPrefixFields = config::fields(rest)?;
                RequestGenerator::SharedPrefix(SharedPrefixWorkload {
                    base: SyntheticWorkload {
                        num_requests: f.num_requests,
                        arrivals: f.arrivals,
                        prompt_tokens: f.prompt_tokens,
                        output_tokens: f.output_tokens,
                        n_parallel: f.n_parallel,
                        seed: 0,
                    },
                    num_groups: f.num_groups,
                    prefix_tokens: f.prefix_tokens,
                    zipf_alpha: f.zipf_alpha,
                })
            }
            _ => RequestGenerator::MultiTurn(config::fields(rest)?),
        })
    }
}

impl<'de> Deserialize<'de> for RequestGenerator {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        config::deserialize_tagged(d)
    }
}

/// Multi-turn conversations: conversations start as a Poisson process; each
/// turn's prompt is the whole history (previous prompt and answer) plus a new
/// user message, and the next turn arrives an exponential think time after
/// this one (open loop).
///
/// Deserializes from its fields but `seed` (given apart).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiTurnWorkload {
    /// Conversations.
    pub num_conversations: u64,
    /// Conversation starts per second.
    pub conversation_rate: f64,
    /// Turns per conversation.
    pub turns: LengthDist,
    /// Tokens of each user message.
    pub user_tokens: LengthDist,
    /// Tokens of each answer.
    pub output_tokens: LengthDist,
    /// Mean think time between turns, seconds.
    pub mean_think_s: f64,
    /// Seed.
    #[serde(skip)]
    pub seed: u64,
}

impl MultiTurnWorkload {
    /// Generates the requests, sorted by arrival.
    pub fn generate(&self) -> Result<Vec<RequestSpec>> {
        if !(self.conversation_rate > 0.0 && self.conversation_rate.is_finite()) {
            return Err(Error::invalid(
                "conversation_rate",
                format!("must be finite and > 0, got {}", self.conversation_rate),
            ));
        }
        self.turns.validate("turns")?;
        self.user_tokens.validate("user_tokens")?;
        self.output_tokens.validate("output_tokens")?;
        if !(self.mean_think_s > 0.0 && self.mean_think_s.is_finite()) {
            return Err(Error::invalid("mean_think_s", "must be finite and > 0"));
        }
        let mut r = rng_stream(self.seed, 14);
        let mut reqs = Vec::new();
        let mut start = 0.0;
        for c in 0..self.num_conversations {
            if c > 0 {
                start += exponential(&mut r, self.conversation_rate);
            }
            let turns = self.turns.sample(&mut r);
            let mut t = start;
            let mut history: u32 = 0;
            for k in 0..turns {
                memarena_core::cancel::check()?; // stoppable (see `memarena_core::cancel`)
                if k > 0 {
                    t += exponential(&mut r, 1.0 / self.mean_think_s);
                }
                let prompt = history.saturating_add(self.user_tokens.sample(&mut r));
                let out = self.output_tokens.sample(&mut r);
                memarena_core::fallible::try_grow(&mut reqs, "num_conversations")?;
                reqs.push(RequestSpec {
                    prefix_group: Some(c),
                    prefix_tokens: prompt.saturating_add(out).min(u32::MAX - 1),
                    ..RequestSpec::new(t, prompt, out)
                });
                history = prompt.saturating_add(out);
            }
        }
        if reqs.iter().any(|r| !r.arrival_s.is_finite()) {
            return Err(Error::invalid(
                "conversation_rate",
                "arrival times overflow to infinity at this rate and think time",
            ));
        }
        reqs.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
        Ok(reqs)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of `YYYY-MM-DD HH:MM:SS[.fraction]` (years
/// 1..=9999, so the arithmetic cannot overflow).
fn parse_timestamp(s: &str) -> Option<f64> {
    let (date, time) = s.trim().split_once([' ', 'T'])?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, mi, sec) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    if !(1..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&dd)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0.0..61.0).contains(&sec)
    {
        return None;
    }
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if dd > month_days[(m - 1) as usize] {
        return None; // 2023-02-30 is no date (it would silently become March 2nd)
    }
    Some((days_from_civil(y, m, dd) * 86_400 + h * 3600 + mi * 60) as f64 + sec)
}

/// Parses the Azure LLM inference trace (2023) CSV:
/// `TIMESTAMP,ContextTokens,GeneratedTokens`. Arrival times are kept,
/// relative to the earliest timestamp. `path` only names the source in
/// errors. Rows with 0 generated tokens keep 1 (the request still produces
/// its first token).
pub fn parse_azure_csv(text: &str, path: &Path) -> Result<Vec<RequestSpec>> {
    let bad = |line: usize, reason: String| Error::Malformed {
        path: path.to_path_buf(),
        location: format!("line {line}"),
        reason,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim().to_ascii_lowercase().starts_with("timestamp") => {}
        _ => {
            return Err(bad(
                1,
                "expected the header TIMESTAMP,ContextTokens,GeneratedTokens".into(),
            ));
        }
    }
    let mut out = Vec::new();
    let mut t0 = f64::INFINITY;
    for (i, line) in lines {
        memarena_core::cancel::check()?; // stoppable (see `memarena_core::cancel`)
        if line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split(',');
        let (ts, ctx, gen_) = match (cols.next(), cols.next(), cols.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => {
                return Err(bad(
                    i + 1,
                    format!("expected 3 columns, got {}", excerpt(line)),
                ));
            }
        };
        let t = parse_timestamp(ts)
            .ok_or_else(|| bad(i + 1, format!("bad TIMESTAMP {}", excerpt(ts))))?;
        let p: u32 = ctx
            .trim()
            .parse()
            .map_err(|_| bad(i + 1, format!("bad ContextTokens {}", excerpt(ctx))))?;
        let o: u32 = gen_
            .trim()
            .parse()
            .map_err(|_| bad(i + 1, format!("bad GeneratedTokens {}", excerpt(gen_))))?;
        if p == 0 {
            return Err(bad(i + 1, "ContextTokens must be >= 1".into()));
        }
        t0 = t0.min(t);
        out.push(RequestSpec::new(t, p, o.max(1)));
    }
    for r in &mut out {
        r.arrival_s -= t0;
    }
    Ok(out)
}

/// Reads an Azure LLM inference trace CSV (see [`parse_azure_csv`]). A
/// directory is refused by name; invalid UTF-8 is reported with its line and
/// byte offset.
pub fn read_azure_csv(path: impl AsRef<Path>) -> Result<Vec<RequestSpec>> {
    use std::io::Read;
    let path = path.as_ref();
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    open_input(path)?.read_to_end(&mut bytes).map_err(io)?;
    if let Some((line, offset)) = utf8_error_at(&bytes, 1, 0) {
        return Err(Error::Malformed {
            path: path.to_path_buf(),
            location: format!("line {line}, byte offset {offset}"),
            reason: "not valid UTF-8 text (is the file binary, or in another encoding?)".into(),
        });
    }
    parse_azure_csv(std::str::from_utf8(&bytes).expect("checked above"), path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use memarena_core::cancel::with_poll_interval;
    use std::time::Duration;

    fn stop() -> bool {
        true
    }

    fn go_on() -> bool {
        false
    }

    /// An Azure-format trace of `n` requests, one every 10 ms.
    fn azure_text(n: usize) -> String {
        let mut text = String::from("TIMESTAMP,ContextTokens,GeneratedTokens\n");
        for i in 0..n {
            text += &format!(
                "2023-11-16 18:{:02}:{:02}.{:02}0,{},{}\n",
                i / 6000 % 60,
                i / 100 % 60,
                i % 100,
                1 + i % 300,
                i % 50
            );
        }
        text
    }

    /// The three generators over `n` requests (conversations).
    fn generators(n: usize, seed: u64) -> Vec<RequestGenerator> {
        let base = SyntheticWorkload {
            num_requests: n,
            arrivals: ArrivalProcess::Poisson { rate: 10.0 },
            prompt_tokens: LengthDist::Fixed(8),
            output_tokens: LengthDist::Fixed(4),
            n_parallel: 1,
            seed,
        };
        vec![
            RequestGenerator::Synthetic(base.clone()),
            RequestGenerator::SharedPrefix(SharedPrefixWorkload {
                base,
                num_groups: 7,
                prefix_tokens: 16,
                zipf_alpha: 1.0,
            }),
            RequestGenerator::MultiTurn(MultiTurnWorkload {
                num_conversations: n as u64,
                conversation_rate: 2.0,
                turns: LengthDist::Fixed(2),
                user_tokens: LengthDist::Fixed(8),
                output_tokens: LengthDist::Fixed(4),
                mean_think_s: 1.0,
                seed,
            }),
        ]
    }

    /// A stop request (`memarena_core::cancel`) ends the Azure reader and
    /// every generator with `Error::Interrupted`.
    #[test]
    fn a_stop_request_ends_reading_and_generation() {
        let text = azure_text(3000);
        let r = with_poll_interval(stop, Duration::ZERO, || {
            parse_azure_csv(&text, Path::new("x.csv"))
        });
        assert!(
            matches!(r, Err(Error::Interrupted)),
            "{:?}",
            r.map(|v| v.len())
        );
        for g in generators(3000, 1) {
            let r = with_poll_interval(stop, Duration::ZERO, || g.generate());
            assert!(
                matches!(r, Err(Error::Interrupted)),
                "{g:?}: {:?}",
                r.map(|v| v.len())
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 16, ..Default::default() })]

        /// A poll that never says stop changes nothing read or generated.
        #[test]
        fn polling_changes_no_request(n in 0usize..1500, seed in proptest::prelude::any::<u64>()) {
            let text = azure_text(n);
            let polled = with_poll_interval(go_on, Duration::ZERO, || parse_azure_csv(&text, Path::new("x.csv")));
            proptest::prop_assert_eq!(polled.unwrap(), parse_azure_csv(&text, Path::new("x.csv")).unwrap());
            for g in generators(n, seed) {
                let polled = with_poll_interval(go_on, Duration::ZERO, || g.generate());
                proptest::prop_assert_eq!(polled.unwrap(), g.generate().unwrap());
            }
        }
    }

    #[test]
    fn azure_csv_keeps_relative_timestamps() {
        let text = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
                    2023-11-16 18:15:46.6805900,374,44\n\
                    2023-11-16 18:15:50.9951690,396,109\n\
                    2023-11-17 00:00:00.5,10,0\n";
        let r = parse_azure_csv(text, Path::new("x.csv")).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].arrival_s, 0.0);
        assert!((r[1].arrival_s - 4.314579).abs() < 1e-6);
        assert!((r[2].arrival_s - (5.0 * 3600.0 + 44.0 * 60.0 + 13.8194100)).abs() < 1e-6);
        assert_eq!(
            (r[1].prompt_tokens, r[1].output_tokens, r[2].output_tokens),
            (396, 109, 1)
        );
        let e = parse_azure_csv(
            "TIMESTAMP,a,b\n2023-11-16 18:15:46,x,1\n",
            Path::new("t.csv"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 16, ..Default::default() })]

        /// A request count that cannot be allocated is an error naming
        /// `num_requests`, whatever the rate (issue 14); never an abort.
        #[test]
        fn huge_request_counts_are_errors(
            n in proptest::prop_oneof![proptest::strategy::Just(usize::MAX), (1usize << 44)..=usize::MAX],
            rate in proptest::prop_oneof![proptest::strategy::Just(1e-300), proptest::strategy::Just(1e300), 1e-3f64..1e3],
        ) {
            let w = SyntheticWorkload {
                num_requests: n,
                arrivals: ArrivalProcess::Poisson { rate },
                prompt_tokens: LengthDist::Fixed(8),
                output_tokens: LengthDist::Fixed(8),
                n_parallel: 1,
                seed: 0,
            };
            let err = w.generate().unwrap_err();
            proptest::prop_assert!(err.to_string().contains("invalid value for num_requests"), "{}", err);
        }

        /// A cv whose gamma shape 1 / cv^2 is outside the sampler's range is
        /// an error naming `arrivals.cv` (cv = 1e-300 made the sampler loop
        /// forever), never a hang or a panic; one inside generates.
        #[test]
        fn gamma_cv_is_validated_before_sampling(
            cv in proptest::prop_oneof![
                proptest::strategy::Just(1e-300),
                proptest::strategy::Just(5e-324),
                proptest::strategy::Just(1e300),
                proptest::strategy::Just(f64::MAX),
                1e-300f64..1e-8,
                1e8f64..1e300,
                1e-8f64..1e8,
            ],
            rate in proptest::prop_oneof![proptest::strategy::Just(1e-3), 1e-3f64..1e3],
        ) {
            let w = SyntheticWorkload {
                num_requests: 50,
                arrivals: ArrivalProcess::Gamma { rate, cv },
                prompt_tokens: LengthDist::Fixed(1),
                output_tokens: LengthDist::Fixed(1),
                n_parallel: 1,
                seed: 1,
            };
            let shape = 1.0 / (cv * cv);
            if (GAMMA_MIN_SHAPE..=GAMMA_MAX_SHAPE).contains(&shape) {
                let reqs = w.generate().unwrap();
                proptest::prop_assert!(reqs.iter().all(|r| r.arrival_s.is_finite() && r.arrival_s >= 0.0));
            } else {
                let e = w.generate().unwrap_err().to_string();
                proptest::prop_assert!(e.contains("invalid value for arrivals.cv"), "{}", e);
            }
        }

        /// A conversation rate that is not finite and > 0 is an error naming
        /// `conversation_rate` (it named the internal `arrivals.rate`).
        #[test]
        fn bad_conversation_rates_name_the_key(
            rate in proptest::prop_oneof![
                proptest::strategy::Just(f64::INFINITY),
                proptest::strategy::Just(f64::NAN),
                proptest::strategy::Just(0.0),
                -1e300f64..0.0,
            ],
        ) {
            let w = MultiTurnWorkload {
                num_conversations: 3,
                conversation_rate: rate,
                turns: LengthDist::Fixed(2),
                user_tokens: LengthDist::Fixed(1),
                output_tokens: LengthDist::Fixed(1),
                mean_think_s: 1.0,
                seed: 1,
            };
            let e = w.generate().unwrap_err().to_string();
            proptest::prop_assert!(e.starts_with("invalid value for conversation_rate"), "{}", e);
        }

        /// A rate so low that arrival times overflow is an error naming the
        /// rate, not requests arriving at infinity.
        #[test]
        fn rates_whose_arrivals_overflow_are_errors(rate in proptest::prop_oneof![proptest::strategy::Just(5e-324), 1e-323f64..1e-310]) {
            let w = SyntheticWorkload {
                num_requests: 3,
                arrivals: ArrivalProcess::Poisson { rate },
                prompt_tokens: LengthDist::Fixed(8),
                output_tokens: LengthDist::Fixed(8),
                n_parallel: 1,
                seed: 0,
            };
            match w.generate() {
                Ok(reqs) => proptest::prop_assert!(reqs.iter().all(|r| r.arrival_s.is_finite())),
                Err(e) => proptest::prop_assert!(e.to_string().contains("arrivals.rate"), "{}", e),
            }
        }
    }

    #[test]
    fn azure_csv_errors_are_short_and_located() {
        let long = "9".repeat(100_000);
        let text = format!("TIMESTAMP,a,b\n2023-11-16 18:15:46,{long},1\n");
        let e = parse_azure_csv(&text, Path::new("t.csv")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 2") && msg.len() < 300, "{msg}");
        // A day the month does not have is a bad timestamp, not a day of the next month.
        for bad in [
            "2023-02-29 00:00:00",
            "2023-04-31 12:00:00",
            "1900-02-29 00:00:00",
        ] {
            let text = format!("TIMESTAMP,a,b\n{bad},5,1\n");
            let e = parse_azure_csv(&text, Path::new("t.csv")).unwrap_err();
            assert!(e.to_string().contains("bad TIMESTAMP"), "{e}");
        }
        let leap = "TIMESTAMP,a,b\n2024-02-29 00:00:00,5,1\n2000-02-29 00:00:00,5,1\n";
        assert_eq!(parse_azure_csv(leap, Path::new("t.csv")).unwrap().len(), 2);
        // A year far out of range is a bad timestamp, not an overflow.
        let text = "TIMESTAMP,a,b\n9223372036854775807-01-01 00:00:00,5,1\n";
        let e = parse_azure_csv(text, Path::new("t.csv")).unwrap_err();
        assert!(e.to_string().contains("bad TIMESTAMP"), "{e}");
        let dir = std::env::temp_dir();
        let e = read_azure_csv(&dir).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let file = dir.join(format!("memarena-azure-utf8-{}.csv", std::process::id()));
        std::fs::write(&file, b"TIMESTAMP,a,b\n2023-11-16 18:15:46,\xff,1\n").unwrap();
        let e = read_azure_csv(&file).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert!(e.to_string().contains("line 2, byte offset 34"), "{e}");
    }

    #[test]
    fn generators_are_seeded_and_valid() {
        let w = SyntheticWorkload {
            num_requests: 2000,
            arrivals: ArrivalProcess::Gamma { rate: 4.0, cv: 2.0 },
            prompt_tokens: LengthDist::LogNormal {
                median: 500.0,
                sigma: 1.0,
            },
            output_tokens: LengthDist::Uniform { min: 1, max: 300 },
            n_parallel: 1,
            seed: 9,
        };
        let a = w.generate().unwrap();
        assert_eq!(a, w.generate().unwrap());
        let rate = (a.len() - 1) as f64 / a.last().unwrap().arrival_s;
        assert!((rate - 4.0).abs() < 0.6, "{rate}");
        for (i, r) in a.iter().enumerate() {
            r.validate(i).unwrap();
        }
        let mt = MultiTurnWorkload {
            num_conversations: 50,
            conversation_rate: 1.0,
            turns: LengthDist::Uniform { min: 1, max: 5 },
            user_tokens: LengthDist::Fixed(50),
            output_tokens: LengthDist::Fixed(20),
            mean_think_s: 5.0,
            seed: 1,
        }
        .generate()
        .unwrap();
        for (i, r) in mt.iter().enumerate() {
            r.validate(i).unwrap();
        }
        let sp = SharedPrefixWorkload {
            base: w,
            num_groups: 4,
            prefix_tokens: 256,
            zipf_alpha: 1.0,
        }
        .generate()
        .unwrap();
        assert!(
            sp.iter()
                .all(|r| r.prefix_tokens == 256 && r.prompt_tokens > 256)
        );
    }
}
