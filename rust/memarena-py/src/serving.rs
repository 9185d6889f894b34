//! The serving model and the event engine of `memarena-sim`, for Python.
//!
//! - `simulate_serving(arrival_s, prompt_tokens, output_tokens, config, ...)`:
//!   request columns as numpy arrays plus a config dict in, a report dict
//!   out (scalars, latency summaries, and the time series and per-request
//!   outcomes as numpy arrays). The whole simulation runs with the GIL
//!   released.
//! - `read_azure_csv`, `generate_requests`: request columns from the Azure
//!   trace reader and the synthetic generators.
//! - `model_info`: a model spec (a dict) and what the serving model derives
//!   from it.
//! - `EventQueue`: the core's time-ordered queue holding Python payloads, for
//!   models written in Python (the slow path: one Python call per event).
//! - `simulate_mm1`, `simulate_mmc`, `mmc_mean_wait`: the native queueing
//!   models and their closed form.
//!
//! Config dicts cross with serde ([`crate::config::from_py`]): every field
//! is required, unknown keys are errors naming the key and the allowed ones,
//! and value errors name the full key (`config.kv.block_size`). The
//! vocabularies the core accepts (`kv_manager_kinds`, `prefix_caching_modes`,
//! `vattention_page_sizes` ...) are exported for the Python side to read.

use memarena_core::Error;
use memarena_core::config::{Tagged, variant_names};
use memarena_core::trace::SynthSpec;
use memarena_sim::EventQueue;
use memarena_sim::mm1::{
    MmcConfig, MmcReport, mmc_mean_wait as core_mmc_mean_wait, simulate_mmc as core_mmc,
};
use memarena_sim::serving::{
    self, CostParams, FfnKind, Hardware, KvManagerConfig, LatencyStats, ModelSpec, PagedConfig,
    PreemptionMode, PrefixCaching, RequestGenerator, RequestSpec, RequestStatus, SchedulerConfig,
    ServingConfig, ServingReport, StaticAllocator, StaticReservation, VattnConfig, VictimPolicy,
};
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::from_py;
use crate::detach::DetachExt;
use crate::errors::to_py_err;
use crate::kv_callback::PythonKv;

fn invalid(name: impl Into<String>, reason: impl Into<String>) -> PyErr {
    to_py_err(Error::invalid(name, reason))
}

// ---------------------------------------------------------------------------
// Configs and vocabularies
// ---------------------------------------------------------------------------

/// A model spec from a dict of every field, validated.
fn model_of(obj: &Bound<'_, PyAny>, at: &str) -> PyResult<ModelSpec> {
    let spec = from_py::<ModelSpec>(obj, at)?;
    spec.validate().map_err(to_py_err)?;
    Ok(spec)
}

/// The KV manager kinds the core runs (the `kind` of a `kv` config).
#[pyfunction]
pub(crate) fn kv_manager_kinds() -> Vec<&'static str> {
    KvManagerConfig::KINDS.to_vec()
}

/// The `variant`s of the `static` KV manager.
#[pyfunction]
pub(crate) fn static_variants() -> Vec<&'static str> {
    variant_names::<StaticReservation>().to_vec()
}

/// The `allocator`s of the `static` KV manager.
#[pyfunction]
pub(crate) fn static_allocators() -> Vec<&'static str> {
    variant_names::<StaticAllocator>().to_vec()
}

/// The `prefix_caching` modes of the `paged` KV manager.
#[pyfunction]
pub(crate) fn prefix_caching_modes() -> Vec<&'static str> {
    variant_names::<PrefixCaching>().to_vec()
}

/// The `page_size_bytes` the `vattention` KV manager accepts (vAttention's
/// 64 KiB, 128 KiB, 256 KiB and 2 MiB pages).
#[pyfunction]
pub(crate) fn vattention_page_sizes() -> Vec<u64> {
    VattnConfig::PAGE_SIZES.to_vec()
}

/// The scheduler's `preemption` modes.
#[pyfunction]
pub(crate) fn preemption_modes() -> Vec<&'static str> {
    variant_names::<PreemptionMode>().to_vec()
}

/// The scheduler's `victim` policies.
#[pyfunction]
pub(crate) fn victim_policies() -> Vec<&'static str> {
    variant_names::<VictimPolicy>().to_vec()
}

/// The feed-forward shapes (`ffn`) of a model spec.
#[pyfunction]
pub(crate) fn ffn_kinds() -> Vec<&'static str> {
    variant_names::<FfnKind>().to_vec()
}

/// The configs [`config_debug`] and [`default_debug`] know, by name.
const CONFIG_NAMES: &str =
    "serving, kv, scheduler, cost, model, hardware, generator, trace, policy";

/// A config dict as the core reads it: the deserialized struct's Rust
/// `Debug` form. For tests that check every field arrives.
#[pyfunction]
pub(crate) fn config_debug(what: &str, config: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(match what {
        "serving" => format!("{:?}", from_py::<ServingConfig>(config, "config")?),
        "kv" => format!("{:?}", from_py::<KvManagerConfig>(config, "kv")?),
        "scheduler" => format!("{:?}", from_py::<SchedulerConfig>(config, "scheduler")?),
        "cost" => format!("{:?}", from_py::<CostParams>(config, "cost")?),
        "model" => format!("{:?}", from_py::<ModelSpec>(config, "model")?),
        "hardware" => format!("{:?}", from_py::<Hardware>(config, "hardware")?),
        "generator" => format!("{:?}", from_py::<RequestGenerator>(config, "spec")?),
        "trace" => format!("{:?}", from_py::<SynthSpec>(config, "spec")?),
        "policy" => format!(
            "{:?}",
            from_py::<memarena_core::policy::PolicyConfig>(config, "policy")?
        ),
        other => return Err(unknown_config(other)),
    })
}

/// The Rust-side default of a config (`Default`, or `ServingConfig::new`
/// around `model` and `hardware` for `serving`; `kv.paged`, `kv.vattention`
/// for the managers; `policy.<name>`: `PolicyConfig::defaults`) in the
/// `Debug` form of [`config_debug`]. For tests that check it equals the
/// Python default.
#[pyfunction]
#[pyo3(signature = (what, model=None, hardware=None))]
pub(crate) fn default_debug(
    what: &str,
    model: Option<&Bound<'_, PyAny>>,
    hardware: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    Ok(match what {
        "serving" => {
            let (Some(model), Some(hardware)) = (model, hardware) else {
                return Err(invalid(
                    "model, hardware",
                    "are required for the serving default",
                ));
            };
            let m = from_py::<ModelSpec>(model, "model")?;
            let h = from_py::<Hardware>(hardware, "hardware")?;
            format!("{:?}", ServingConfig::new(m, h))
        }
        "kv.paged" => format!("{:?}", KvManagerConfig::Paged(PagedConfig::default())),
        "kv.vattention" => format!("{:?}", KvManagerConfig::Vattention(VattnConfig::default())),
        "scheduler" => format!("{:?}", SchedulerConfig::default()),
        "cost" => format!("{:?}", CostParams::default()),
        other => match other.strip_prefix("policy.") {
            Some(name) => format!(
                "{:?}",
                memarena_core::policy::PolicyConfig::defaults(name).map_err(to_py_err)?
            ),
            None => return Err(unknown_config(other)),
        },
    })
}

fn unknown_config(name: &str) -> PyErr {
    to_py_err(Error::UnknownName {
        kind: "config",
        name: name.to_string(),
        available: format!("{CONFIG_NAMES}, kv.paged, kv.vattention, policy.<name>"),
    })
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
    let g = from_py::<RequestGenerator>(spec, "spec")?.with_seed(seed);
    let reqs = py.run_core(|| g.generate())?;
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
    mb.set_item("idle_mapped_bytes", b.idle_mapped_bytes)?;
    mb.set_item("free_bytes", b.free_bytes)?;
    mb.set_item("cached_free_bytes", b.cached_free_bytes)?;
    d.set_item("mean_busy_breakdown", mb)?;

    let n = r.samples.len();
    let mut cols: [Vec<u64>; 7] = Default::default();
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
            s.idle_mapped_bytes,
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
    let [tok, res, int, ext, idle, free, cached] = cols;
    samples.set_item("token_states_bytes", tok.into_pyarray(py))?;
    samples.set_item("reserved_bytes", res.into_pyarray(py))?;
    samples.set_item("internal_frag_bytes", int.into_pyarray(py))?;
    samples.set_item("external_frag_bytes", ext.into_pyarray(py))?;
    samples.set_item("idle_mapped_bytes", idle.into_pyarray(py))?;
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
/// `max_samples`: the most samples the time series may hold (the memory the
/// caller allows it); past it the run is an error naming `sample_interval_s`.
#[pyfunction]
#[pyo3(signature = (arrival_s, prompt_tokens, output_tokens, config, *, n_parallel=None, prefix_group=None, prefix_tokens=None, manager=None, max_samples=None))]
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
    max_samples: Option<u64>,
) -> PyResult<Bound<'py, PyDict>> {
    let mut cfg: ServingConfig = from_py(config, "config")?;
    cfg.max_samples = max_samples;
    let python_kv = manager.map(PythonKv::new).transpose()?;
    if python_kv.is_some() != cfg.kv.is_none() {
        return Err(invalid(
            "config.kv",
            "must be null exactly when a Python manager is given (manager=...)",
        ));
    }
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

/// A model spec (a dict of every field, as the `model` presets hold them)
/// with what the serving model derives from it: `num_params`,
/// `weight_bytes`, `kv_bytes_per_token`.
#[pyfunction]
pub(crate) fn model_info<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let m = model_of(model, "model")?;
    let d = PyDict::new(py);
    d.set_item("name", &m.name)?;
    d.set_item("num_layers", m.num_layers)?;
    d.set_item("hidden_size", m.hidden_size)?;
    d.set_item("num_attention_heads", m.num_attention_heads)?;
    d.set_item("num_kv_heads", m.num_kv_heads)?;
    d.set_item("head_dim", m.head_dim)?;
    d.set_item("intermediate_size", m.intermediate_size)?;
    d.set_item("ffn", variant_names::<FfnKind>()[m.ffn as usize])?;
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
    /// An empty queue at time 0.
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

    /// Pending events.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// `EventQueue(now=..., pending=...)`.
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
