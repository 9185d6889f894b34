//! The serving model and the event engine of `memarena-sim`, for Python.
//!
//! - `simulate_serving(arrival_s, prompt_tokens, output_tokens, config, ...)`:
//!   request columns as numpy arrays plus a config dict in, a report dict
//!   out (scalars, latency summaries, and the time series and per-request
//!   outcomes as numpy arrays). The whole simulation runs with the GIL
//!   released.
//! - `read_azure_csv`, `generate_requests`: request columns from the Azure
//!   trace reader and the synthetic generators.
//! - `model_info`: a model spec (built-in name or dict) and what the serving
//!   model derives from it.
//! - `EventQueue`: the core's time-ordered queue holding Python payloads, for
//!   models written in Python (the slow path: one Python call per event).
//! - `simulate_mm1`, `simulate_mmc`, `mmc_mean_wait`: the native queueing
//!   models and their closed form.
//!
//! Config dicts are strict: every key is checked, unknown keys are errors
//! naming the key and the allowed ones, and value errors name the full key
//! (`config.kv.block_size`).

use std::collections::BTreeSet;

use memarena_core::Error;
use memarena_sim::EventQueue;
use memarena_sim::mm1::{
    MmcConfig, MmcReport, mmc_mean_wait as core_mmc_mean_wait, simulate_mmc as core_mmc,
};
use memarena_sim::serving::{
    self, ArrivalProcess, CostParams, FfnKind, Hardware, KvManagerConfig, LatencyStats, LengthDist,
    ModelSpec, MultiTurnWorkload, PagedConfig, PreemptionMode, PrefixCaching, RequestSpec,
    RequestStatus, SchedulerConfig, ServingConfig, ServingReport, SharedPrefixWorkload,
    StaticReservation, SyntheticWorkload, VattnConfig, VictimPolicy,
};
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::detach::DetachExt;
use crate::errors::to_py_err;
use crate::kv_callback::PythonKv;

fn invalid(name: impl Into<String>, reason: impl Into<String>) -> PyErr {
    to_py_err(Error::invalid(name, reason))
}

// ---------------------------------------------------------------------------
// Strict dict reading
// ---------------------------------------------------------------------------

/// A config dict being read: remembers the keys read, so that [`Fields::finish`]
/// can refuse the others by name.
struct Fields<'py> {
    dict: Bound<'py, PyDict>,
    at: String,
    seen: BTreeSet<String>,
}

impl<'py> Fields<'py> {
    fn of(obj: &Bound<'py, PyAny>, at: &str) -> PyResult<Self> {
        let dict = obj
            .cast::<PyDict>()
            .map_err(|_| invalid(at, format!("must be a dict, got {obj}")))?
            .clone();
        Ok(Fields {
            dict,
            at: at.to_string(),
            seen: BTreeSet::new(),
        })
    }

    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.at)
    }

    fn raw(&mut self, k: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.seen.insert(k.to_string());
        Ok(self.dict.get_item(k)?.filter(|v| !v.is_none()))
    }

    fn opt<T: for<'a> FromPyObject<'a, 'py>>(
        &mut self,
        k: &str,
        what: &str,
    ) -> PyResult<Option<T>> {
        match self.raw(k)? {
            None => Ok(None),
            Some(v) => v
                .extract::<T>()
                .map(Some)
                .map_err(|_| invalid(self.key(k), format!("must be {what}, got {v}"))),
        }
    }

    fn req<T: for<'a> FromPyObject<'a, 'py>>(&mut self, k: &str, what: &str) -> PyResult<T> {
        self.opt(k, what)?
            .ok_or_else(|| invalid(self.key(k), "is required"))
    }

    fn f64_or(&mut self, k: &str, default: f64) -> PyResult<f64> {
        Ok(self.opt(k, "a number")?.unwrap_or(default))
    }

    fn u32_or(&mut self, k: &str, default: u32) -> PyResult<u32> {
        Ok(self.opt(k, "an integer in 0..2^32")?.unwrap_or(default))
    }

    fn u64_or(&mut self, k: &str, default: u64) -> PyResult<u64> {
        Ok(self.opt(k, "a non-negative integer")?.unwrap_or(default))
    }

    fn bool_or(&mut self, k: &str, default: bool) -> PyResult<bool> {
        Ok(self.opt(k, "a bool")?.unwrap_or(default))
    }

    fn str_or(&mut self, k: &str, default: &str) -> PyResult<String> {
        Ok(self
            .opt::<String>(k, "a string")?
            .unwrap_or_else(|| default.to_string()))
    }

    fn sub(&mut self, k: &str) -> PyResult<Option<Fields<'py>>> {
        let at = self.key(k);
        self.raw(k)?.map(|v| Fields::of(&v, &at)).transpose()
    }

    /// Errors on any key that was not read.
    fn finish(self) -> PyResult<()> {
        let mut unknown = Vec::new();
        for k in self.dict.keys() {
            let k: String = k.extract()?;
            if !self.seen.contains(&k) {
                unknown.push(k);
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let allowed: Vec<&str> = self.seen.iter().map(String::as_str).collect();
        Err(invalid(
            format!("{}.{}", self.at, unknown[0]),
            format!("unknown key; allowed: {}", allowed.join(", ")),
        ))
    }
}

fn choice<T: Copy>(value: &str, at: &str, options: &[(&str, T)]) -> PyResult<T> {
    options
        .iter()
        .find(|(n, _)| *n == value)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            invalid(
                at,
                format!("must be one of {}, got {value:?}", names.join(", ")),
            )
        })
}

// ---------------------------------------------------------------------------
// Config parsing
// ---------------------------------------------------------------------------

const FFN: &[(&str, FfnKind)] = &[("gated", FfnKind::Gated), ("plain", FfnKind::Plain)];

fn parse_model(obj: &Bound<'_, PyAny>, at: &str) -> PyResult<ModelSpec> {
    if let Ok(name) = obj.extract::<String>() {
        return ModelSpec::builtin(&name).map_err(to_py_err);
    }
    let mut f = Fields::of(obj, at)?;
    let name: String = f.req("name", "a string")?;
    let num_attention_heads: u32 = f.req("num_attention_heads", "an integer")?;
    let hidden_size: u32 = f.req("hidden_size", "an integer")?;
    let head_dim = f
        .opt::<u32>("head_dim", "an integer")?
        .unwrap_or_else(|| hidden_size.checked_div(num_attention_heads).unwrap_or(0));
    let spec = ModelSpec {
        num_layers: f.req("num_layers", "an integer")?,
        hidden_size,
        num_attention_heads,
        num_kv_heads: f
            .opt("num_kv_heads", "an integer")?
            .unwrap_or(num_attention_heads),
        head_dim,
        intermediate_size: f.req("intermediate_size", "an integer")?,
        ffn: choice(&f.str_or("ffn", "gated")?, &f.key("ffn"), FFN)?,
        vocab_size: f.req("vocab_size", "an integer")?,
        tied_embeddings: f.bool_or("tied_embeddings", false)?,
        learned_positions: f.u32_or("learned_positions", 0)?,
        max_context: f.req("max_context", "an integer")?,
        dtype_bytes: f.u32_or("dtype_bytes", 2)?,
        name,
    };
    f.finish()?;
    spec.validate().map_err(to_py_err)?;
    Ok(spec)
}

fn parse_hardware(obj: &Bound<'_, PyAny>, at: &str) -> PyResult<Hardware> {
    let mut f = Fields::of(obj, at)?;
    let hw = Hardware {
        name: f.str_or("name", "device")?,
        hbm_capacity_bytes: f.req("hbm_capacity_bytes", "a non-negative integer")?,
        hbm_bandwidth_bytes_per_s: f.req("hbm_bandwidth_bytes_per_s", "a number")?,
        peak_flops: f.req("peak_flops", "a number")?,
        host_link_bandwidth_bytes_per_s: f.req("host_link_bandwidth_bytes_per_s", "a number")?,
        host_memory_bytes: f.u64_or("host_memory_bytes", 256 << 30)?,
    };
    f.finish()?;
    Ok(hw)
}

fn parse_kv(mut f: Fields<'_>) -> PyResult<KvManagerConfig> {
    let kind: String = f.req("kind", "a string")?;
    let kv = match kind.as_str() {
        "static" => {
            let variant = f.str_or("variant", "max")?;
            KvManagerConfig::Static(choice(
                &variant,
                &f.key("variant"),
                &[
                    ("max", StaticReservation::MaxLen),
                    ("pow2", StaticReservation::Pow2),
                    ("oracle", StaticReservation::Oracle),
                ],
            )?)
        }
        "paged" => {
            let d = PagedConfig::default();
            let pc = f.str_or("prefix_caching", "off")?;
            KvManagerConfig::Paged(PagedConfig {
                block_size: f.u32_or("block_size", d.block_size)?,
                watermark: f.f64_or("watermark", d.watermark)?,
                prefix_caching: choice(
                    &pc,
                    &f.key("prefix_caching"),
                    &[
                        ("off", PrefixCaching::Off),
                        ("v0", PrefixCaching::V0),
                        ("v1", PrefixCaching::V1),
                    ],
                )?,
            })
        }
        "vattention" => {
            let d = VattnConfig::default();
            KvManagerConfig::Vattention(VattnConfig {
                page_size_bytes: f.u64_or("page_size_bytes", d.page_size_bytes)?,
                deferred_reclaim: f.bool_or("deferred_reclaim", d.deferred_reclaim)?,
                page_map_latency_s: f.f64_or("page_map_latency_s", d.page_map_latency_s)?,
            })
        }
        other => {
            return Err(invalid(
                f.key("kind"),
                format!("must be one of static, paged, vattention, got {other:?}"),
            ));
        }
    };
    f.finish()?;
    Ok(kv)
}

fn parse_scheduler(mut f: Fields<'_>) -> PyResult<SchedulerConfig> {
    let d = SchedulerConfig::default();
    let preemption = f.str_or("preemption", "recompute")?;
    let victim = f.str_or("victim", "last_admitted")?;
    let s = SchedulerConfig {
        max_num_batched_tokens: f.u32_or("max_num_batched_tokens", d.max_num_batched_tokens)?,
        max_num_seqs: f.u32_or("max_num_seqs", d.max_num_seqs)?,
        chunked_prefill: f.bool_or("chunked_prefill", d.chunked_prefill)?,
        preemption: choice(
            &preemption,
            &f.key("preemption"),
            &[
                ("recompute", PreemptionMode::Recompute),
                ("swap", PreemptionMode::Swap),
            ],
        )?,
        victim: choice(
            &victim,
            &f.key("victim"),
            &[
                ("last_admitted", VictimPolicy::LastAdmitted),
                ("most_kv", VictimPolicy::MostKv),
                ("least_progress", VictimPolicy::LeastProgress),
            ],
        )?,
        fast_decode_runs: d.fast_decode_runs,
        cohort_min_running: d.cohort_min_running,
    };
    f.finish()?;
    Ok(s)
}

fn parse_cost(mut f: Fields<'_>) -> PyResult<CostParams> {
    let d = CostParams::default();
    let c = CostParams {
        compute_efficiency: f.f64_or("compute_efficiency", d.compute_efficiency)?,
        bandwidth_efficiency: f.f64_or("bandwidth_efficiency", d.bandwidth_efficiency)?,
        iteration_overhead_s: f.f64_or("iteration_overhead_s", d.iteration_overhead_s)?,
    };
    f.finish()?;
    Ok(c)
}

fn parse_config(obj: &Bound<'_, PyAny>) -> PyResult<ServingConfig> {
    let mut f = Fields::of(obj, "config")?;
    let model = f
        .raw("model")?
        .ok_or_else(|| invalid("config.model", "is required"))?;
    let model = parse_model(&model, "config.model")?;
    let hardware = f
        .raw("hardware")?
        .ok_or_else(|| invalid("config.hardware", "is required"))?;
    let hardware = parse_hardware(&hardware, "config.hardware")?;
    let mut c = ServingConfig::new(model, hardware);
    if let Some(kv) = f.sub("kv")? {
        c.kv = parse_kv(kv)?;
    }
    if let Some(s) = f.sub("scheduler")? {
        c.scheduler = parse_scheduler(s)?;
    }
    if let Some(s) = f.sub("cost")? {
        c.cost = parse_cost(s)?;
    }
    c.gpu_memory_utilization = f.f64_or("gpu_memory_utilization", c.gpu_memory_utilization)?;
    c.activation_reserve_bytes =
        f.u64_or("activation_reserve_bytes", c.activation_reserve_bytes)?;
    c.max_model_len = f.opt("max_model_len", "an integer")?;
    c.kv_bytes_per_token = f.opt("kv_bytes_per_token", "a positive integer")?;
    c.swap_space_bytes = f.opt("swap_space_bytes", "a non-negative integer")?;
    c.sample_interval_s = f.f64_or("sample_interval_s", c.sample_interval_s)?;
    c.seed = f.u64_or("seed", c.seed)?;
    c.check_invariants = f.bool_or("check_invariants", c.check_invariants)?;
    f.finish()?;
    Ok(c)
}

fn parse_length(obj: &Bound<'_, PyAny>, at: &str) -> PyResult<LengthDist> {
    if let Ok(n) = obj.extract::<u32>() {
        return Ok(LengthDist::Fixed(n));
    }
    let mut f = Fields::of(obj, at)?;
    let kind: String = f.req("kind", "a string")?;
    let d = match kind.as_str() {
        "fixed" => LengthDist::Fixed(f.req("value", "an integer")?),
        "uniform" => LengthDist::Uniform {
            min: f.req("min", "an integer")?,
            max: f.req("max", "an integer")?,
        },
        "exponential" => LengthDist::Exponential {
            mean: f.req("mean", "a number")?,
        },
        "lognormal" => LengthDist::LogNormal {
            median: f.req("median", "a number")?,
            sigma: f.req("sigma", "a number")?,
        },
        "empirical" => LengthDist::Empirical(f.req("values", "a list of integers")?),
        other => {
            return Err(invalid(
                f.key("kind"),
                format!(
                    "must be one of fixed, uniform, exponential, lognormal, empirical, got {other:?}"
                ),
            ));
        }
    };
    f.finish()?;
    Ok(d)
}

fn parse_arrivals(obj: &Bound<'_, PyAny>, at: &str) -> PyResult<ArrivalProcess> {
    let mut f = Fields::of(obj, at)?;
    let kind: String = f.req("kind", "a string")?;
    let a = match kind.as_str() {
        "poisson" => ArrivalProcess::Poisson {
            rate: f.req("rate", "a number")?,
        },
        "gamma" => ArrivalProcess::Gamma {
            rate: f.req("rate", "a number")?,
            cv: f.req("cv", "a number")?,
        },
        "all_at_once" => ArrivalProcess::AllAtOnce,
        other => {
            return Err(invalid(
                f.key("kind"),
                format!("must be one of poisson, gamma, all_at_once, got {other:?}"),
            ));
        }
    };
    f.finish()?;
    Ok(a)
}

fn length_of(f: &mut Fields<'_>, k: &str) -> PyResult<LengthDist> {
    let at = f.key(k);
    let v = f.raw(k)?.ok_or_else(|| invalid(&at, "is required"))?;
    parse_length(&v, &at)
}

fn parse_synthetic(f: &mut Fields<'_>, seed: u64) -> PyResult<SyntheticWorkload> {
    let at = f.key("arrivals");
    let arrivals = f
        .raw("arrivals")?
        .ok_or_else(|| invalid(&at, "is required"))?;
    Ok(SyntheticWorkload {
        num_requests: f.req("num_requests", "a non-negative integer")?,
        arrivals: parse_arrivals(&arrivals, &at)?,
        prompt_tokens: length_of(f, "prompt_tokens")?,
        output_tokens: length_of(f, "output_tokens")?,
        n_parallel: f.u32_or("n_parallel", 1)?,
        seed,
    })
}

enum Generator {
    Synthetic(SyntheticWorkload),
    SharedPrefix(SharedPrefixWorkload),
    MultiTurn(MultiTurnWorkload),
}

fn parse_generator(obj: &Bound<'_, PyAny>, seed: u64) -> PyResult<Generator> {
    let mut f = Fields::of(obj, "spec")?;
    let kind: String = f.req("kind", "a string")?;
    let g = match kind.as_str() {
        "synthetic" => Generator::Synthetic(parse_synthetic(&mut f, seed)?),
        "shared_prefix" => Generator::SharedPrefix(SharedPrefixWorkload {
            base: parse_synthetic(&mut f, seed)?,
            num_groups: f.req("num_groups", "a positive integer")?,
            prefix_tokens: f.req("prefix_tokens", "an integer")?,
            zipf_alpha: f.f64_or("zipf_alpha", 0.0)?,
        }),
        "multi_turn" => Generator::MultiTurn(MultiTurnWorkload {
            num_conversations: f.req("num_conversations", "a non-negative integer")?,
            conversation_rate: f.req("conversation_rate", "a number")?,
            turns: length_of(&mut f, "turns")?,
            user_tokens: length_of(&mut f, "user_tokens")?,
            output_tokens: length_of(&mut f, "output_tokens")?,
            mean_think_s: f.req("mean_think_s", "a number")?,
            seed,
        }),
        other => {
            return Err(invalid(
                "spec.kind",
                format!("must be one of synthetic, shared_prefix, multi_turn, got {other:?}"),
            ));
        }
    };
    f.finish()?;
    Ok(g)
}

// ---------------------------------------------------------------------------
// Request columns
// ---------------------------------------------------------------------------

/// Request columns as numpy arrays (`prefix_group` -1 means none).
fn requests_to_py<'py>(py: Python<'py>, reqs: Vec<RequestSpec>) -> PyResult<Bound<'py, PyDict>> {
    let n = reqs.len();
    let mut arrival = Vec::with_capacity(n);
    let mut prompt = Vec::with_capacity(n);
    let mut output = Vec::with_capacity(n);
    let mut par = Vec::with_capacity(n);
    let mut group = Vec::with_capacity(n);
    let mut prefix = Vec::with_capacity(n);
    for r in reqs {
        arrival.push(r.arrival_s);
        prompt.push(r.prompt_tokens);
        output.push(r.output_tokens);
        par.push(r.n_parallel);
        group.push(r.prefix_group.map_or(-1, |g| g.min(i64::MAX as u64) as i64));
        prefix.push(r.prefix_tokens);
    }
    let d = PyDict::new(py);
    d.set_item("arrival_s", arrival.into_pyarray(py))?;
    d.set_item("prompt_tokens", prompt.into_pyarray(py))?;
    d.set_item("output_tokens", output.into_pyarray(py))?;
    d.set_item("n_parallel", par.into_pyarray(py))?;
    d.set_item("prefix_group", group.into_pyarray(py))?;
    d.set_item("prefix_tokens", prefix.into_pyarray(py))?;
    Ok(d)
}

fn column<'a, T: numpy::Element>(
    arr: &'a Option<PyReadonlyArray1<'_, T>>,
    name: &str,
    n: usize,
) -> PyResult<Option<&'a [T]>> {
    match arr {
        None => Ok(None),
        Some(a) => {
            let s = a.as_slice()?;
            if s.len() != n {
                return Err(invalid(
                    name,
                    format!("has {} entries but arrival_s has {n}", s.len()),
                ));
            }
            Ok(Some(s))
        }
    }
}

/// Reads the Azure LLM inference trace (2023) CSV:
/// `TIMESTAMP,ContextTokens,GeneratedTokens`. Arrival times are kept,
/// relative to the earliest. Errors name the file and the line.
#[pyfunction]
pub(crate) fn read_azure_csv<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
) -> PyResult<Bound<'py, PyDict>> {
    let reqs = py.run_core(|| serving::read_azure_csv(&path))?;
    requests_to_py(py, reqs)
}

/// Generates request columns from a generator spec (`kind`: synthetic,
/// shared_prefix or multi_turn) and a seed.
#[pyfunction]
pub(crate) fn generate_requests<'py>(
    py: Python<'py>,
    spec: &Bound<'py, PyAny>,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let g = parse_generator(spec, seed)?;
    let reqs = py.run_core(|| match &g {
        Generator::Synthetic(w) => w.generate(),
        Generator::SharedPrefix(w) => w.generate(),
        Generator::MultiTurn(w) => w.generate(),
    })?;
    requests_to_py(py, reqs)
}

// ---------------------------------------------------------------------------
// Simulation
// ---------------------------------------------------------------------------

fn latency<'py>(py: Python<'py>, s: &LatencyStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("count", s.count)?;
    d.set_item("mean", s.mean)?;
    d.set_item("p50", s.p50)?;
    d.set_item("p90", s.p90)?;
    d.set_item("p99", s.p99)?;
    d.set_item("max", s.max)?;
    Ok(d)
}

fn report_to_py<'py>(py: Python<'py>, r: ServingReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("kv_manager", &r.kv_manager)?;
    d.set_item("num_requests", r.num_requests)?;
    d.set_item("completed", r.completed)?;
    d.set_item("rejected_too_long", r.rejected_too_long)?;
    d.set_item("rejected_unservable", r.rejected_unservable)?;
    d.set_item("duration_s", r.duration_s)?;
    d.set_item("busy_s", r.busy_s)?;
    d.set_item("throughput_requests_per_s", r.throughput_requests_per_s)?;
    d.set_item(
        "throughput_output_tokens_per_s",
        r.throughput_output_tokens_per_s,
    )?;
    d.set_item(
        "throughput_total_tokens_per_s",
        r.throughput_total_tokens_per_s,
    )?;
    d.set_item("output_tokens", r.output_tokens)?;
    d.set_item("prompt_tokens_computed", r.prompt_tokens_computed)?;
    d.set_item("ttft_s", latency(py, &r.ttft_s)?)?;
    d.set_item("tbt_s", latency(py, &r.tbt_s)?)?;
    d.set_item("e2e_s", latency(py, &r.e2e_s)?)?;
    d.set_item("iterations", r.iterations)?;
    d.set_item("mean_batch_seqs", r.mean_batch_seqs)?;
    d.set_item("mean_batch_requests", r.mean_batch_requests)?;
    d.set_item("max_batch_seqs", r.max_batch_seqs)?;
    d.set_item("preemptions_recompute", r.preemptions_recompute)?;
    d.set_item("preemptions_swap", r.preemptions_swap)?;
    d.set_item("swap_out_bytes", r.swap_out_bytes)?;
    d.set_item("recomputed_tokens", r.recomputed_tokens)?;
    d.set_item("prefix_query_tokens", r.prefix_query_tokens)?;
    d.set_item("prefix_hit_tokens", r.prefix_hit_tokens)?;
    d.set_item("prefix_hit_rate", r.prefix_hit_rate)?;
    d.set_item("kv_pool_bytes", r.kv_pool_bytes)?;
    d.set_item("weight_bytes", r.weight_bytes)?;
    d.set_item("kv_bytes_per_token", r.kv_bytes_per_token)?;
    d.set_item("token_state_share_of_used", r.token_state_share_of_used())?;
    let c = r.kv_counters;
    d.set_item("cow_copies", c.cow_copies)?;
    d.set_item("cache_evictions", c.cache_evictions)?;
    d.set_item("pages_mapped", c.pages_mapped)?;
    d.set_item("pages_reclaimed", c.pages_reclaimed)?;
    let b = r.mean_busy_breakdown;
    let mb = PyDict::new(py);
    mb.set_item("token_states_bytes", b.token_states_bytes)?;
    mb.set_item("reserved_bytes", b.reserved_bytes)?;
    mb.set_item("internal_frag_bytes", b.internal_frag_bytes)?;
    mb.set_item("external_frag_bytes", b.external_frag_bytes)?;
    mb.set_item("free_bytes", b.free_bytes)?;
    mb.set_item("cached_free_bytes", b.cached_free_bytes)?;
    d.set_item("mean_busy_breakdown", mb)?;

    let n = r.samples.len();
    let mut cols: [Vec<u64>; 6] = Default::default();
    let mut counts: [Vec<u32>; 4] = Default::default();
    let mut time = Vec::with_capacity(n);
    for s in &r.samples {
        time.push(s.time_s);
        for (c, v) in counts.iter_mut().zip([
            s.running_requests,
            s.running_seqs,
            s.waiting_requests,
            s.swapped_requests,
        ]) {
            c.push(v);
        }
        for (c, v) in cols.iter_mut().zip([
            s.token_states_bytes,
            s.reserved_bytes,
            s.internal_frag_bytes,
            s.external_frag_bytes,
            s.free_bytes,
            s.cached_free_bytes,
        ]) {
            c.push(v);
        }
    }
    let samples = PyDict::new(py);
    samples.set_item("time_s", time.into_pyarray(py))?;
    let [
        running_requests,
        running_seqs,
        waiting_requests,
        swapped_requests,
    ] = counts;
    samples.set_item("running_requests", running_requests.into_pyarray(py))?;
    samples.set_item("running_seqs", running_seqs.into_pyarray(py))?;
    samples.set_item("waiting_requests", waiting_requests.into_pyarray(py))?;
    samples.set_item("swapped_requests", swapped_requests.into_pyarray(py))?;
    let [tok, res, int, ext, free, cached] = cols;
    samples.set_item("token_states_bytes", tok.into_pyarray(py))?;
    samples.set_item("reserved_bytes", res.into_pyarray(py))?;
    samples.set_item("internal_frag_bytes", int.into_pyarray(py))?;
    samples.set_item("external_frag_bytes", ext.into_pyarray(py))?;
    samples.set_item("free_bytes", free.into_pyarray(py))?;
    samples.set_item("cached_free_bytes", cached.into_pyarray(py))?;
    d.set_item("samples", samples)?;

    let n = r.requests.len();
    let mut status = Vec::with_capacity(n);
    let mut ttft = Vec::with_capacity(n);
    let mut e2e = Vec::with_capacity(n);
    for o in &r.requests {
        status.push(match o.status {
            RequestStatus::Completed => 0u8,
            RequestStatus::RejectedTooLong => 1,
            RequestStatus::RejectedUnservable => 2,
        });
        ttft.push(o.ttft_s);
        e2e.push(o.e2e_s);
    }
    let reqs = PyDict::new(py);
    reqs.set_item("status", status.into_pyarray(py))?;
    reqs.set_item("ttft_s", ttft.into_pyarray(py))?;
    reqs.set_item("e2e_s", e2e.into_pyarray(py))?;
    d.set_item("requests", reqs)?;
    Ok(d)
}

/// Simulates serving the requests (one per array entry) under `config`.
///
/// `prefix_group` -1 means no group. `manager`: a KV manager written in
/// Python (the protocol of `memarena.api.KVManager`, run through
/// [`crate::kv_callback`]) instead of `config.kv`. Returns the report as a dict; its
/// `samples` and `requests` entries hold numpy arrays. Errors name the
/// config key (`config.kv.block_size`) or the request (`requests[17].prompt_tokens`).
#[pyfunction]
#[pyo3(signature = (arrival_s, prompt_tokens, output_tokens, config, *, n_parallel=None, prefix_group=None, prefix_tokens=None, manager=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn simulate_serving<'py>(
    py: Python<'py>,
    arrival_s: PyReadonlyArray1<'py, f64>,
    prompt_tokens: PyReadonlyArray1<'py, u32>,
    output_tokens: PyReadonlyArray1<'py, u32>,
    config: &Bound<'py, PyAny>,
    n_parallel: Option<PyReadonlyArray1<'py, u32>>,
    prefix_group: Option<PyReadonlyArray1<'py, i64>>,
    prefix_tokens: Option<PyReadonlyArray1<'py, u32>>,
    manager: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = parse_config(config)?;
    let python_kv = manager.map(PythonKv::new).transpose()?;
    let arrival = arrival_s.as_slice()?;
    let n = arrival.len();
    let (prompt_tokens, output_tokens) = (Some(prompt_tokens), Some(output_tokens));
    let prompt = column(&prompt_tokens, "prompt_tokens", n)?.unwrap_or_default();
    let output = column(&output_tokens, "output_tokens", n)?.unwrap_or_default();
    let par = column(&n_parallel, "n_parallel", n)?;
    let group = column(&prefix_group, "prefix_group", n)?;
    let prefix = column(&prefix_tokens, "prefix_tokens", n)?;
    let report = py.run_core(|| {
        let mut reqs = Vec::with_capacity(n);
        for i in 0..n {
            let g = group.map_or(-1, |g| g[i]);
            if g < -1 {
                return Err(Error::invalid(
                    format!("requests[{i}].prefix_group"),
                    format!("must be >= 0 (or -1 for none), got {g}"),
                ));
            }
            reqs.push(RequestSpec {
                arrival_s: arrival[i],
                prompt_tokens: prompt[i],
                output_tokens: output[i],
                n_parallel: par.map_or(1, |p| p[i]),
                prefix_group: (g >= 0).then_some(g as u64),
                prefix_tokens: prefix.map_or(0, |p| p[i]),
            });
        }
        match &python_kv {
            None => serving::simulate(&cfg, &reqs),
            Some(kv) => kv.simulate(&cfg, &reqs),
        }
    });
    // A Python manager's callback error replaces whatever the run returned.
    if let Some(err) = python_kv.as_ref().and_then(PythonKv::take_error) {
        return Err(err);
    }
    report_to_py(py, report?)
}

/// A model spec (a built-in name such as `"llama3_8b"`, or a dict of its
/// fields) with what the serving model derives from it: `num_params`,
/// `weight_bytes`, `kv_bytes_per_token`.
#[pyfunction]
pub(crate) fn model_info<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let m = parse_model(model, "model")?;
    let d = PyDict::new(py);
    d.set_item("name", &m.name)?;
    d.set_item("num_layers", m.num_layers)?;
    d.set_item("hidden_size", m.hidden_size)?;
    d.set_item("num_attention_heads", m.num_attention_heads)?;
    d.set_item("num_kv_heads", m.num_kv_heads)?;
    d.set_item("head_dim", m.head_dim)?;
    d.set_item("intermediate_size", m.intermediate_size)?;
    d.set_item(
        "ffn",
        match m.ffn {
            FfnKind::Gated => "gated",
            FfnKind::Plain => "plain",
        },
    )?;
    d.set_item("vocab_size", m.vocab_size)?;
    d.set_item("tied_embeddings", m.tied_embeddings)?;
    d.set_item("learned_positions", m.learned_positions)?;
    d.set_item("max_context", m.max_context)?;
    d.set_item("dtype_bytes", m.dtype_bytes)?;
    d.set_item("num_params", m.num_params())?;
    d.set_item("weight_bytes", m.weight_bytes())?;
    d.set_item("kv_bytes_per_token", m.kv_bytes_per_token())?;
    Ok(d)
}

/// Registry names of the built-in model specs.
#[pyfunction]
pub(crate) fn builtin_models() -> Vec<&'static str> {
    ModelSpec::BUILTIN.to_vec()
}

// ---------------------------------------------------------------------------
// Event engine
// ---------------------------------------------------------------------------

/// A time-ordered event queue holding Python payloads, for models written
/// in Python (the slow path: one Python call per event). Events pop in
/// increasing time; equal times pop in scheduling order.
#[pyclass(name = "EventQueue", module = "memarena._core")]
pub struct PyEventQueue {
    inner: EventQueue<Py<PyAny>>,
}

#[pymethods]
impl PyEventQueue {
    #[new]
    fn new() -> Self {
        PyEventQueue {
            inner: EventQueue::new(),
        }
    }

    /// Schedules `payload` at absolute time `time_s` (not before `now`);
    /// returns its sequence number.
    fn schedule(&mut self, time_s: f64, payload: Py<PyAny>) -> PyResult<u64> {
        self.inner.schedule_at(time_s, payload).map_err(to_py_err)
    }

    /// Schedules `payload` `delay_s >= 0` seconds from now.
    fn schedule_in(&mut self, delay_s: f64, payload: Py<PyAny>) -> PyResult<u64> {
        self.inner.schedule_in(delay_s, payload).map_err(to_py_err)
    }

    /// Pops the earliest event as `(time_s, payload)` and advances the
    /// clock; None when the queue is empty.
    fn pop(&mut self) -> Option<(f64, Py<PyAny>)> {
        self.inner.pop()
    }

    /// Time of the next event, or None.
    fn peek_time(&self) -> Option<f64> {
        self.inner.peek_time()
    }

    /// Drops every pending event (the clock stays).
    fn clear(&mut self) {
        self.inner.clear();
    }

    /// The current simulated time (of the last popped event).
    #[getter]
    fn now(&self) -> f64 {
        self.inner.now()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "EventQueue(now={}, pending={})",
            self.inner.now(),
            self.inner.len()
        )
    }
}

// ---------------------------------------------------------------------------
// Queueing models
// ---------------------------------------------------------------------------

fn mmc_to_py<'py>(py: Python<'py>, r: MmcReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("jobs", r.jobs)?;
    d.set_item("mean_wait_s", r.mean_wait_s)?;
    d.set_item("mean_sojourn_s", r.mean_sojourn_s)?;
    d.set_item("events", r.events)?;
    d.set_item("sim_time_s", r.sim_time_s)?;
    Ok(d)
}

/// Runs an M/M/c queue natively (GIL released); returns `jobs`,
/// `mean_wait_s`, `mean_sojourn_s`, `events`, `sim_time_s`.
#[pyfunction]
#[pyo3(signature = (arrival_rate, service_rate, servers, jobs, *, warmup_jobs=0, seed=0))]
pub(crate) fn simulate_mmc<'py>(
    py: Python<'py>,
    arrival_rate: f64,
    service_rate: f64,
    servers: u32,
    jobs: u64,
    warmup_jobs: u64,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = MmcConfig {
        arrival_rate,
        service_rate,
        servers,
        jobs,
        warmup_jobs,
        seed,
    };
    let r = py.run_core(|| core_mmc(&cfg))?;
    mmc_to_py(py, r)
}

/// Runs an M/M/1 queue natively (`simulate_mmc` with one server).
#[pyfunction]
#[pyo3(signature = (arrival_rate, service_rate, jobs, *, warmup_jobs=0, seed=0))]
pub(crate) fn simulate_mm1<'py>(
    py: Python<'py>,
    arrival_rate: f64,
    service_rate: f64,
    jobs: u64,
    warmup_jobs: u64,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    simulate_mmc(py, arrival_rate, service_rate, 1, jobs, warmup_jobs, seed)
}

/// Closed-form mean wait in queue of M/M/c (Erlang C); None when unstable.
#[pyfunction]
pub(crate) fn mmc_mean_wait(arrival_rate: f64, service_rate: f64, servers: u32) -> Option<f64> {
    core_mmc_mean_wait(arrival_rate, service_rate, servers)
}
