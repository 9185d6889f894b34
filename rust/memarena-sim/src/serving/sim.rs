//! `simulate(config, requests) -> report`: builds the KV manager, the cost
//! model and the scheduler, replays the requests on the event engine, and
//! summarises the run.

use memarena_core::config::{self, Tagged};
use memarena_core::error::{Error, Result};
use serde::Deserialize;

use super::cost::{CostModel, CostParams};
use super::hardware::Hardware;
use super::kv::{
    KvBreakdown, KvCounters, KvManager, KvRequest, PagedConfig, PagedKv, PrefixCaching,
    StaticConfig, StaticKv, StaticReservation, VattnConfig, VattnKv,
};
use super::metrics::{LatencyStats, Sample};
use super::model_spec::ModelSpec;
use super::scheduler::{NOT_IN_COHORT, Req, SchedulerConfig, ServingEvent, ServingModel, State};
use super::workload::RequestSpec;
use crate::engine::Engine;

/// Which KV manager, with its parameters.
///
/// Deserializes from a map whose `kind` (one of [`KvManagerConfig::KINDS`])
/// comes first and whose other keys are the manager's parameters:
/// `{kind: static, variant, allocator}`, `{kind: paged, block_size, watermark,
/// prefix_caching}`, `{kind: vattention, page_size_bytes, deferred_reclaim,
/// page_map_latency_s}`.
#[derive(Clone, Debug, PartialEq)]
pub enum KvManagerConfig {
    /// Contiguous static reservation (Orca-Max / Pow2 / Oracle) on a
    /// first-fit or buddy allocator.
    Static(StaticConfig),
    /// vLLM's paged blocks.
    Paged(PagedConfig),
    /// vAttention's demand-mapped virtual reservation.
    Vattention(VattnConfig),
}

impl Tagged for KvManagerConfig {
    const KINDS: &'static [&'static str] = &["static", "paged", "vattention"];

    fn variant<'de, A: serde::de::MapAccess<'de>>(
        kind: &'static str,
        rest: A,
    ) -> std::result::Result<Self, A::Error> {
        Ok(match kind {
            "static" => KvManagerConfig::Static(config::fields(rest)?),
            "paged" => KvManagerConfig::Paged(config::fields(rest)?),
            _ => KvManagerConfig::Vattention(config::fields(rest)?),
        })
    }
}

impl<'de> Deserialize<'de> for KvManagerConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        config::deserialize_tagged(d)
    }
}

impl KvManagerConfig {
    /// Registry name of the manager.
    pub fn name(&self) -> &'static str {
        match self {
            KvManagerConfig::Static(_) => "static",
            KvManagerConfig::Paged(_) => "paged",
            KvManagerConfig::Vattention(_) => "vattention",
        }
    }

    /// The presets that speed runs and result-equivalence checks sweep
    /// (`examples/azure_trace.rs`, `examples/report_digest.rs`,
    /// `tests/perf_equivalence.rs`), by name: static Max/Pow2/Oracle (first
    /// fit),
    /// 16-token paged blocks without prefix caching and with v0 and v1
    /// caching, vAttention with 2 MiB and 64 KiB pages.
    pub fn presets() -> Vec<(&'static str, KvManagerConfig)> {
        let paged = |c: PrefixCaching| {
            KvManagerConfig::Paged(PagedConfig {
                prefix_caching: c,
                ..PagedConfig::default()
            })
        };
        vec![
            (
                "static_max",
                KvManagerConfig::Static(StaticReservation::MaxLen.into()),
            ),
            (
                "static_pow2",
                KvManagerConfig::Static(StaticReservation::Pow2.into()),
            ),
            (
                "static_oracle",
                KvManagerConfig::Static(StaticReservation::Oracle.into()),
            ),
            ("paged_16", paged(PrefixCaching::Off)),
            ("paged_16_v0cache", paged(PrefixCaching::V0)),
            ("paged_16_v1cache", paged(PrefixCaching::V1)),
            (
                "vattn_2mb",
                KvManagerConfig::Vattention(VattnConfig::default()),
            ),
            (
                "vattn_64kb",
                KvManagerConfig::Vattention(VattnConfig {
                    page_size_bytes: 64 << 10,
                    ..VattnConfig::default()
                }),
            ),
        ]
    }
}

/// Everything a serving simulation needs besides the requests.
///
/// Deserializes (serde) from a map holding every field (`null` for `None`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingConfig {
    /// The model.
    pub model: ModelSpec,
    /// The device.
    pub hardware: Hardware,
    /// Roofline calibration.
    pub cost: CostParams,
    /// Batching limits and preemption.
    pub scheduler: SchedulerConfig,
    /// KV manager; `None` (must be given as `null`) only when the caller
    /// supplies the manager through [`simulate_with`], which never reads it.
    #[serde(deserialize_with = "config::required")]
    pub kv: Option<KvManagerConfig>,
    /// Share of HBM the server may use (vLLM `gpu_memory_utilization`, 0.9).
    pub gpu_memory_utilization: f64,
    /// HBM kept for activations and workspace, bytes.
    pub activation_reserve_bytes: u64,
    /// Longest request (`prompt + output`) served; `None`: the model's
    /// maximum context. Longer requests are rejected and counted.
    #[serde(deserialize_with = "config::required")]
    pub max_model_len: Option<u32>,
    /// KV bytes per token; `None`: from the model spec (set it to model a
    /// compressed or quantized KV cache).
    #[serde(deserialize_with = "config::required")]
    pub kv_bytes_per_token: Option<u64>,
    /// Host swap space, bytes; `None`: the hardware's host memory.
    #[serde(deserialize_with = "config::required")]
    pub swap_space_bytes: Option<u64>,
    /// Interval of the time series, seconds; 0 disables it.
    pub sample_interval_s: f64,
    /// Recorded with the run; the built-in model is deterministic (it is the
    /// seed of any stochastic extension, via [`crate::rng_stream`]).
    pub seed: u64,
    /// Re-check every KV invariant and the breakdown sum at every iteration
    /// (slow; for tests).
    #[serde(deserialize_with = "config::strict_bool")]
    pub check_invariants: bool,
    /// The most samples the time series may hold (the memory the caller
    /// allows it); `None`: as many as can be allocated. A run whose
    /// simulated time outgrows it is an error naming `sample_interval_s` and
    /// the keys that stretch the simulated time. Not a config key: the
    /// caller sets it (`memarena._core.simulate_serving(max_samples=...)`).
    #[serde(skip)]
    pub max_samples: Option<u64>,
}

impl ServingConfig {
    /// Defaults around `model` and `hardware`: vLLM-like limits, paged KV
    /// with 16-token blocks, recompute preemption, 1 s samples.
    pub fn new(model: ModelSpec, hardware: Hardware) -> ServingConfig {
        ServingConfig {
            model,
            hardware,
            cost: CostParams::default(),
            scheduler: SchedulerConfig::default(),
            kv: Some(KvManagerConfig::Paged(PagedConfig::default())),
            gpu_memory_utilization: 0.9,
            activation_reserve_bytes: 0,
            max_model_len: None,
            kv_bytes_per_token: None,
            swap_space_bytes: None,
            sample_interval_s: 1.0,
            seed: 0,
            check_invariants: false,
            max_samples: None,
        }
    }

    /// KV bytes per token in effect.
    pub fn effective_kv_bytes_per_token(&self) -> u64 {
        self.kv_bytes_per_token
            .unwrap_or_else(|| self.model.kv_bytes_per_token())
    }

    /// HBM bytes left for the KV pool; a clear error when the weights do not fit.
    pub fn kv_budget_bytes(&self) -> Result<u64> {
        let usable = (self.hardware.hbm_capacity_bytes as f64 * self.gpu_memory_utilization) as u64;
        let weights = self.model.weight_bytes();
        // Saturating: a reserve near 2^64 needs more than any device offers (never wraps to a small need).
        let need = weights.saturating_add(self.activation_reserve_bytes);
        if need >= usable {
            return Err(Error::invalid(
                "model",
                format!(
                    "{} needs {:.1} GB of weights{} but {} offers {:.1} GB \
                     (hbm_capacity_bytes {} x gpu_memory_utilization {}), leaving no room for the KV cache",
                    self.model.name,
                    weights as f64 / 1e9,
                    if self.activation_reserve_bytes > 0 {
                        format!(
                            " plus {:.1} GB of activations (activation_reserve_bytes)",
                            self.activation_reserve_bytes as f64 / 1e9
                        )
                    } else {
                        String::new()
                    },
                    self.hardware.name,
                    usable as f64 / 1e9,
                    self.hardware.hbm_capacity_bytes,
                    self.gpu_memory_utilization
                ),
            ));
        }
        Ok(usable - need)
    }

    /// Checks every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.hardware.validate()?;
        self.cost.validate()?;
        self.scheduler.validate()?;
        if !(self.gpu_memory_utilization > 0.0 && self.gpu_memory_utilization <= 1.0) {
            return Err(Error::invalid(
                "gpu_memory_utilization",
                format!("must be in (0, 1], got {}", self.gpu_memory_utilization),
            ));
        }
        if let Some(m) = self.max_model_len
            && (m == 0 || m > self.model.max_context)
        {
            return Err(Error::invalid(
                "max_model_len",
                format!(
                    "must be in 1..={} (the model's context), got {m}",
                    self.model.max_context
                ),
            ));
        }
        if self.kv_bytes_per_token == Some(0) {
            return Err(Error::invalid("kv_bytes_per_token", "must be >= 1"));
        }
        if !(self.sample_interval_s >= 0.0 && self.sample_interval_s.is_finite()) {
            return Err(Error::invalid(
                "sample_interval_s",
                "must be finite and >= 0",
            ));
        }
        Ok(())
    }

    fn build_kv(&self, budget: u64) -> Result<BuiltKv> {
        let bpt = self.effective_kv_bytes_per_token();
        let max_len = self.max_model_len.unwrap_or(self.model.max_context);
        let kv = self.kv.as_ref().ok_or_else(|| {
            Error::invalid(
                "kv",
                "is null: give a KV manager config (only simulate_with takes none)",
            )
        })?;
        Ok(match kv {
            KvManagerConfig::Static(cfg) => {
                BuiltKv::Static(StaticKv::with_config(budget / bpt, bpt, max_len, *cfg)?)
            }
            KvManagerConfig::Paged(cfg) => {
                if cfg.block_size == 0 {
                    return Err(Error::invalid("kv.block_size", "must be >= 1"));
                }
                // A block larger than 2^64 bytes holds more than any budget: no block (never a wrapped size).
                let blocks = (cfg.block_size as u64)
                    .checked_mul(bpt)
                    .map_or(0, |block| budget / block);
                if blocks == 0 {
                    return Err(Error::invalid(
                        "kv",
                        format!(
                            "{budget} bytes of KV pool hold no block of block_size {} tokens x \
                             kv_bytes_per_token {bpt}",
                            cfg.block_size
                        ),
                    ));
                }
                BuiltKv::Paged(PagedKv::new(
                    blocks.min(u32::MAX as u64 - 1) as u32,
                    bpt,
                    cfg.clone(),
                )?)
            }
            KvManagerConfig::Vattention(cfg) => {
                // A compressed KV scales the per-layer bytes with the total.
                let per_layer = (bpt / (2 * self.model.num_layers as u64)).max(1);
                BuiltKv::Vattn(VattnKv::new(
                    budget,
                    bpt,
                    per_layer,
                    self.model.num_layers,
                    self.scheduler.max_num_seqs,
                    cfg.clone(),
                )?)
            }
        })
    }
}

/// A built KV manager, by concrete type (the scheduler is monomorphised
/// over it). Built once and moved into the model, so its size is no cost.
#[allow(clippy::large_enum_variant)]
enum BuiltKv {
    Static(StaticKv),
    Paged(PagedKv),
    Vattn(VattnKv),
}

/// What happened to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestStatus {
    /// Served to the end.
    Completed,
    /// `prompt + output` exceeds the maximum model length.
    RejectedTooLong,
    /// Could never be served (needs more KV than the pool, more sequences
    /// or tokens than one iteration allows).
    RejectedUnservable,
}

/// Per-request outcome (NaN times for rejected requests).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RequestOutcome {
    /// Status.
    pub status: RequestStatus,
    /// Time to first token, seconds.
    pub ttft_s: f64,
    /// Arrival to last token, seconds.
    pub e2e_s: f64,
}

/// The result of [`simulate`].
#[derive(Clone, Debug, PartialEq)]
pub struct ServingReport {
    /// KV manager name.
    pub kv_manager: String,
    /// Requests given.
    pub num_requests: u64,
    /// Requests served to the end.
    pub completed: u64,
    /// Requests rejected for exceeding the maximum model length.
    pub rejected_too_long: u64,
    /// Requests rejected as unservable on this configuration.
    pub rejected_unservable: u64,
    /// First arrival to last completion, seconds.
    pub duration_s: f64,
    /// Time the device was busy, seconds.
    pub busy_s: f64,
    /// Completed requests per second of `duration_s`.
    pub throughput_requests_per_s: f64,
    /// Generated tokens per second.
    pub throughput_output_tokens_per_s: f64,
    /// Prompt (prefill, recompute included) plus generated tokens per second.
    pub throughput_total_tokens_per_s: f64,
    /// Tokens generated (all sequences).
    pub output_tokens: u64,
    /// Prompt tokens computed (cache hits excluded, recompute included).
    pub prompt_tokens_computed: u64,
    /// Time to first token.
    pub ttft_s: LatencyStats,
    /// Time between tokens (per sequence; histogram quantiles within 0.5%).
    pub tbt_s: LatencyStats,
    /// End-to-end latency.
    pub e2e_s: LatencyStats,
    /// Iterations run.
    pub iterations: u64,
    /// Mean sequences per iteration.
    pub mean_batch_seqs: f64,
    /// Mean requests per iteration.
    pub mean_batch_requests: f64,
    /// Largest batch, sequences.
    pub max_batch_seqs: u32,
    /// Preemptions by recompute.
    pub preemptions_recompute: u64,
    /// Preemptions by swap.
    pub preemptions_swap: u64,
    /// Bytes swapped out.
    pub swap_out_bytes: u64,
    /// Tokens whose KV was dropped by recompute preemption.
    pub recomputed_tokens: u64,
    /// Tokens looked up in the prefix cache at admission.
    pub prefix_query_tokens: u64,
    /// Tokens found.
    pub prefix_hit_tokens: u64,
    /// `prefix_hit_tokens / prefix_query_tokens` (0 when none).
    pub prefix_hit_rate: f64,
    /// KV pool, bytes.
    pub kv_pool_bytes: u64,
    /// Model weights, bytes.
    pub weight_bytes: u64,
    /// KV bytes per token in effect.
    pub kv_bytes_per_token: u64,
    /// KV manager counters.
    pub kv_counters: KvCounters,
    /// Mean breakdown over the samples taken while requests were running
    /// (the vLLM paper's Fig. 2 averages over the experiment).
    pub mean_busy_breakdown: KvBreakdown,
    /// Time series.
    pub samples: Vec<Sample>,
    /// Per-request outcomes, in input order.
    pub requests: Vec<RequestOutcome>,
}

impl ServingReport {
    /// A 64-bit digest of everything in the report (FNV-1a of its `Debug`
    /// print: every metric, every sample, every per-request outcome, floats
    /// to the last bit). Equal digests mean identical results; the
    /// performance work on the simulator is checked against pinned digests.
    pub fn digest(&self) -> u64 {
        memarena_core::trace::hash_str(&format!("{self:?}"))
    }

    /// Share of *used* KV memory ([`KvBreakdown::used`]: token states,
    /// reservation, internal and external fragmentation; not free memory
    /// nor idle mapped pages) holding token states in the mean busy
    /// breakdown: the vLLM paper's Fig. 2 metric.
    pub fn token_state_share_of_used(&self) -> f64 {
        let b = &self.mean_busy_breakdown;
        let used = b.used();
        if used == 0 {
            0.0
        } else {
            b.token_states_bytes as f64 / used as f64
        }
    }
}

/// Simulates serving `requests` under `config`.
///
/// Errors (never panics) on invalid configs and requests, naming the field
/// (`requests[17].prompt_tokens`), and when the weights do not fit.
pub fn simulate(config: &ServingConfig, requests: &[RequestSpec]) -> Result<ServingReport> {
    check_inputs(config, requests)?;
    let budget = config.kv_budget_bytes()?;
    match config.build_kv(budget)? {
        BuiltKv::Static(kv) => run(config, requests, kv),
        BuiltKv::Paged(kv) => run(config, requests, kv),
        BuiltKv::Vattn(kv) => run(config, requests, kv),
    }
}

/// What a caller-built KV manager is given by [`simulate_with`]: the pool
/// budget and what the built-in managers derive their size from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KvPoolBudget {
    /// HBM bytes left for the KV pool ([`ServingConfig::kv_budget_bytes`]);
    /// the manager's pool may be smaller (a whole number of its units),
    /// never larger.
    pub budget_bytes: u64,
    /// KV bytes per token in effect
    /// ([`ServingConfig::effective_kv_bytes_per_token`]).
    pub bytes_per_token: u64,
    /// Longest request (`prompt + output`) served.
    pub max_model_len: u32,
    /// Sequences running at once (the scheduler's `max_num_seqs`).
    pub max_num_seqs: u32,
    /// Layers of the model.
    pub num_layers: u32,
}

/// [`simulate`] with a KV manager the caller builds: `make_kv` receives the
/// pool budget and returns the manager, which replaces `config.kv` (that
/// field is ignored). Validation, the scheduler, the cost model and the
/// report are those of [`simulate`]; with `make_kv` building the manager
/// `simulate` would, the reports are identical. A manager whose
/// [`KvManager::pool_bytes`] exceeds the budget is an error naming it.
///
/// This is the extension point for managers outside this crate (the Python
/// callback adapter of the bindings); the built-in managers go through
/// [`simulate`], which monomorphises the scheduler over each of them.
pub fn simulate_with<K, F>(
    config: &ServingConfig,
    requests: &[RequestSpec],
    make_kv: F,
) -> Result<ServingReport>
where
    K: KvManager,
    F: FnOnce(&KvPoolBudget) -> Result<K>,
{
    check_inputs(config, requests)?;
    let budget = KvPoolBudget {
        budget_bytes: config.kv_budget_bytes()?,
        bytes_per_token: config.effective_kv_bytes_per_token(),
        max_model_len: config.max_model_len.unwrap_or(config.model.max_context),
        max_num_seqs: config.scheduler.max_num_seqs,
        num_layers: config.model.num_layers,
    };
    let kv = make_kv(&budget)?;
    let pool = kv.pool_bytes();
    if pool == 0 || pool > budget.budget_bytes {
        return Err(Error::invalid(
            "kv",
            format!(
                "the {} KV manager's pool is {pool} bytes; it must be in 1..={} (the KV budget)",
                kv.name(),
                budget.budget_bytes
            ),
        ));
    }
    run(config, requests, kv)
}

/// Validates the config and every request; errors name the field.
fn check_inputs(config: &ServingConfig, requests: &[RequestSpec]) -> Result<()> {
    config.validate()?;
    if requests.len() >= u32::MAX as usize {
        return Err(Error::invalid(
            "requests",
            "too many requests (at most 2^32 - 2)",
        ));
    }
    for (i, r) in requests.iter().enumerate() {
        r.validate(i)?;
    }
    Ok(())
}

/// [`simulate`] with the manager built.
fn run<K: KvManager>(
    config: &ServingConfig,
    requests: &[RequestSpec],
    kv: K,
) -> Result<ServingReport> {
    let bpt = config.effective_kv_bytes_per_token();
    let cost = CostModel::new(&config.model, &config.hardware, bpt, &config.cost);
    let reqs: Vec<Req> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| Req {
            kv: KvRequest {
                prompt_tokens: r.prompt_tokens,
                max_tokens: r.prompt_tokens + r.output_tokens - 1,
                n_parallel: r.n_parallel,
                prefix_group: r.prefix_group,
                prefix_tokens: r.prefix_tokens,
                salt: i as u64,
            },
            arrival_s: r.arrival_s,
            output_tokens: r.output_tokens,
            n: r.n_parallel,
            len: r.prompt_tokens,
            generated: 0,
            kv_tokens: 0,
            kv_grown: 0,
            quiet_end: 0,
            seqs: 1,
            state: State::Pending,
            first_token_s: f64::NAN,
            last_token_s: f64::NAN,
            finish_s: f64::NAN,
            swapped_bytes: 0,
            seq_no: 0,
            cohort_e0: NOT_IN_COHORT,
        })
        .collect();
    let mut order: Vec<u32> = (0..requests.len() as u32).collect();
    order.sort_by(|&a, &b| {
        requests[a as usize]
            .arrival_s
            .total_cmp(&requests[b as usize].arrival_s)
    });
    let max_model_len = config.max_model_len.unwrap_or(config.model.max_context);
    let swap_capacity = config
        .swap_space_bytes
        .unwrap_or(config.hardware.host_memory_bytes);
    let mut model = ServingModel::new(
        config.scheduler.clone(),
        kv,
        cost,
        reqs,
        order,
        max_model_len,
        config.hardware.host_link_bandwidth_bytes_per_s,
        swap_capacity,
        config.sample_interval_s,
        config.check_invariants,
    );
    model.max_samples = config
        .max_samples
        .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let mut eng = Engine::new(model);
    let first_arrival = requests
        .iter()
        .map(|r| r.arrival_s)
        .fold(f64::INFINITY, f64::min);
    if let Some(&first) = eng.model.order.first() {
        let t = requests[first as usize].arrival_s;
        eng.queue_mut().schedule_at(t, ServingEvent::Arrival(0))?;
        if config.sample_interval_s > 0.0 {
            eng.queue_mut().schedule_at(t, ServingEvent::Sample)?;
        }
    }
    eng.run_until(f64::INFINITY)?;
    let m = eng.into_model();
    if m.check {
        m.kv.check_invariants()?;
    }
    if !m.running.is_empty() || !m.waiting.is_empty() || !m.swapped.is_empty() {
        return Err(Error::Invariant {
            component: "scheduler".into(),
            reason: "the event queue drained with requests still queued".into(),
        });
    }
    Ok(report(config, requests.len(), first_arrival, m))
}

fn report<K: KvManager>(
    config: &ServingConfig,
    n: usize,
    first_arrival: f64,
    m: ServingModel<K>,
) -> ServingReport {
    let mut ttft = Vec::with_capacity(n);
    let mut e2e = Vec::with_capacity(n);
    let mut last_finish = first_arrival;
    let mut outcomes = Vec::with_capacity(n);
    for r in &m.reqs {
        let status = match r.state {
            State::Done => RequestStatus::Completed,
            State::Rejected if r.kv.max_tokens as u64 + 1 > m.max_model_len as u64 => {
                RequestStatus::RejectedTooLong
            }
            _ => RequestStatus::RejectedUnservable,
        };
        let (t, e) = if status == RequestStatus::Completed {
            last_finish = last_finish.max(r.finish_s);
            (r.first_token_s - r.arrival_s, r.finish_s - r.arrival_s)
        } else {
            (f64::NAN, f64::NAN)
        };
        if status == RequestStatus::Completed {
            ttft.push(t);
            e2e.push(e);
        }
        outcomes.push(RequestOutcome {
            status,
            ttft_s: t,
            e2e_s: e,
        });
    }
    let completed = ttft.len() as u64;
    let duration = if completed > 0 {
        last_finish - first_arrival
    } else {
        0.0
    };
    let per_s = |x: f64| if duration > 0.0 { x / duration } else { 0.0 };
    let c = &m.c;
    let busy: Vec<&Sample> = m
        .samples
        .iter()
        .filter(|s| s.running_requests > 0)
        .collect();
    let mean = |f: fn(&Sample) -> u64| {
        if busy.is_empty() {
            0
        } else {
            (busy.iter().map(|s| f(s) as f64).sum::<f64>() / busy.len() as f64) as u64
        }
    };
    let mut mean_busy = KvBreakdown {
        token_states_bytes: mean(|s| s.token_states_bytes),
        reserved_bytes: mean(|s| s.reserved_bytes),
        internal_frag_bytes: mean(|s| s.internal_frag_bytes),
        external_frag_bytes: mean(|s| s.external_frag_bytes),
        idle_mapped_bytes: mean(|s| s.idle_mapped_bytes),
        free_bytes: 0,
        cached_free_bytes: mean(|s| s.cached_free_bytes),
    };
    let pool = m.kv.pool_bytes();
    let used = mean_busy.total();
    mean_busy.free_bytes = if busy.is_empty() {
        0
    } else {
        pool.saturating_sub(used)
    };
    ServingReport {
        kv_manager: m.kv.name().to_string(),
        num_requests: n as u64,
        completed,
        rejected_too_long: c.rejected_too_long,
        rejected_unservable: c.rejected_unservable,
        duration_s: duration,
        busy_s: c.busy_s,
        throughput_requests_per_s: per_s(completed as f64),
        throughput_output_tokens_per_s: per_s(c.output_tokens as f64),
        throughput_total_tokens_per_s: per_s((c.output_tokens + c.prompt_tokens_computed) as f64),
        output_tokens: c.output_tokens,
        prompt_tokens_computed: c.prompt_tokens_computed,
        ttft_s: LatencyStats::exact(&mut ttft),
        tbt_s: m.tbt.stats(),
        e2e_s: LatencyStats::exact(&mut e2e),
        iterations: c.iterations,
        mean_batch_seqs: if c.iterations > 0 {
            c.batch_seqs_sum as f64 / c.iterations as f64
        } else {
            0.0
        },
        mean_batch_requests: if c.iterations > 0 {
            c.batch_reqs_sum as f64 / c.iterations as f64
        } else {
            0.0
        },
        max_batch_seqs: c.max_batch_seqs,
        preemptions_recompute: c.preempt_recompute,
        preemptions_swap: c.preempt_swap,
        swap_out_bytes: c.swap_bytes,
        recomputed_tokens: c.recomputed_tokens,
        prefix_query_tokens: c.prefix_query_tokens,
        prefix_hit_tokens: c.prefix_hit_tokens,
        prefix_hit_rate: if c.prefix_query_tokens > 0 {
            c.prefix_hit_tokens as f64 / c.prefix_query_tokens as f64
        } else {
            0.0
        },
        kv_pool_bytes: pool,
        weight_bytes: config.model.weight_bytes(),
        kv_bytes_per_token: config.effective_kv_bytes_per_token(),
        kv_counters: m.kv.counters(),
        mean_busy_breakdown: mean_busy,
        samples: m.samples,
        requests: outcomes,
    }
}

#[cfg(test)]
mod tests;
