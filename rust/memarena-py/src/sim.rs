//! `memarena._core.PagingSim`: a resumable trace replay for one policy and
//! capacity, and `feed_many`, which advances many simulators over the same
//! chunk of a trace on scoped threads. Both release the GIL for native
//! policies; Python policies (the callback adapter) need it for every event.
//!
//! The facade feeds a trace in chunks (`feed(trace, start, stop)`), so Python
//! regains control between chunks to update a progress bar and to raise
//! `KeyboardInterrupt`; results do not depend on the chunking.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use memarena_core::policy::PolicyConfig;
use memarena_core::sim::{PagingStats, Replay, ReplayOptions};
use memarena_core::{Cache, Error};
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::callback::CallbackPolicy;
use crate::config::from_py;
use crate::detach::DetachExt;
use crate::errors::to_py_err;

use crate::trace::PyTrace;

enum Engine {
    Native(Cache),
    Python(Cache<CallbackPolicy>),
}

/// A cache (policy + capacity) and the statistics of the requests fed so
/// far. Requests must be fed in trace order: each `feed` starts where the
/// last one stopped.
#[pyclass(name = "PagingSim", module = "memarena._core")]
pub struct PyPagingSim {
    /// Behind a mutex only to make the class `Sync` (pyo3 requires it);
    /// `&mut self` methods reach it with `get_mut`, without locking.
    engine: Mutex<Engine>,
    replay: Replay,
    policy: String,
    capacity: u64,
    /// Length of the trace of the first `feed`; later feeds must match.
    trace_len: Option<usize>,
    /// Seconds spent replaying (in `feed` and `feed_many`), for `wall_s`.
    busy_s: f64,
    /// Set when a feed failed part-way: the cache state no longer matches
    /// the counted requests, so further feeds are refused.
    failed_at: Option<usize>,
}

/// The built-in policy `policy` with `params` (every field of its config,
/// as the Python `Config` sends them); errors name `policy.<field>`.
pub(crate) fn policy_config(
    py: Python<'_>,
    policy: &str,
    params: Option<&Bound<'_, PyDict>>,
) -> PyResult<PolicyConfig> {
    let names = memarena_core::policy::names();
    if !names.contains(&policy) {
        return Err(to_py_err(Error::UnknownName {
            kind: "policy",
            name: policy.to_string(),
            available: names.join(", "),
        }));
    }
    let dict = match params {
        Some(p) => p.copy()?,
        None => PyDict::new(py),
    };
    dict.set_item(memarena_core::config::TAG, policy)?;
    from_py(dict.as_any(), "policy")
}

fn options(ignore_size: bool, warmup_requests: u64, window_requests: u64) -> ReplayOptions {
    ReplayOptions {
        warmup_requests,
        window_requests,
        ignore_size,
    }
}

impl PyPagingSim {
    fn lock(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Check that `[start, stop)` continues this simulator on `trace`.
    fn check_range(&mut self, n: usize, start: usize, stop: usize) -> PyResult<()> {
        if let Some(at) = self.failed_at {
            return Err(crate::errors::InvariantError::new_err(format!(
                "simulator of {} stopped at request {at} after an error; create a new one",
                self.policy
            )));
        }
        match self.trace_len {
            Some(len) if len != n => {
                return Err(to_py_err(Error::invalid(
                    "trace",
                    format!("has {n} requests, but this simulator was fed a trace of {len}"),
                )));
            }
            _ => self.trace_len = Some(n),
        }
        if start != self.replay.position() {
            return Err(to_py_err(Error::invalid(
                "start",
                format!(
                    "must continue where the last feed stopped ({}), got {start}",
                    self.replay.position()
                ),
            )));
        }
        if stop < start || stop > n {
            return Err(to_py_err(Error::invalid(
                "stop",
                format!("must be in [{start}, {n}], got {stop}"),
            )));
        }
        Ok(())
    }
}

#[pymethods]
impl PyPagingSim {
    /// A simulator of a built-in policy (by registry name).
    #[new]
    #[pyo3(signature = (policy, capacity, params=None, *, ignore_size=false, warmup_requests=0, window_requests=0))]
    fn new(
        py: Python<'_>,
        policy: String,
        capacity: u64,
        params: Option<Bound<'_, PyDict>>,
        ignore_size: bool,
        warmup_requests: u64,
        window_requests: u64,
    ) -> PyResult<Self> {
        let config = policy_config(py, &policy, params.as_ref())?;
        let cache = py.run_core(|| Cache::with_policy(&config, capacity))?;
        Ok(PyPagingSim {
            engine: Mutex::new(Engine::Native(cache)),
            replay: Replay::new(&options(ignore_size, warmup_requests, window_requests)),
            policy,
            capacity,
            trace_len: None,
            busy_s: 0.0,
            failed_at: None,
        })
    }

    /// A simulator whose policy is a Python object (the slow path): it gets
    /// `on_hit`, `on_insert`, `evict` and `on_evict` calls, and the engine
    /// checks every answer.
    #[staticmethod]
    #[pyo3(signature = (policy, capacity, *, ignore_size=false, warmup_requests=0, window_requests=0))]
    fn from_python(
        policy: Bound<'_, PyAny>,
        capacity: u64,
        ignore_size: bool,
        warmup_requests: u64,
        window_requests: u64,
    ) -> PyResult<Self> {
        if capacity == 0 {
            return Err(to_py_err(Error::invalid("capacity", "must be at least 1")));
        }
        let adapter = CallbackPolicy::new(&policy)?;
        let name = memarena_core::Policy::name(&adapter).to_string();
        Ok(PyPagingSim {
            engine: Mutex::new(Engine::Python(Cache::new(capacity, Box::new(adapter)))),
            replay: Replay::new(&options(ignore_size, warmup_requests, window_requests)),
            policy: name,
            capacity,
            trace_len: None,
            busy_s: 0.0,
            failed_at: None,
        })
    }

    /// Replay requests `start..stop` of `trace`; `start` must equal
    /// `position`. Native policies run with the GIL released.
    fn feed(
        &mut self,
        py: Python<'_>,
        trace: &Bound<'_, PyTrace>,
        start: usize,
        stop: usize,
    ) -> PyResult<()> {
        let trace = trace.get();
        self.check_range(trace.len(py), start, stop)?;
        let replay = &mut self.replay;
        let t0 = Instant::now();
        let result = match self.engine.get_mut().unwrap_or_else(|e| e.into_inner()) {
            Engine::Native(cache) => {
                trace.with_view(py, |view| py.run_core(|| replay.feed(&view, cache, stop)))
            }
            Engine::Python(cache) => trace.with_view(py, |view| {
                // One request at a time, so a callback's exception stops the
                // replay right after the request that raised it.
                for i in start..stop {
                    let step =
                        crate::detach::catch_panic(|| replay.feed_checked(&view, cache, i + 1));
                    if let Some(err) = cache.policy().take_error() {
                        return Err(err);
                    }
                    step.map_err(to_py_err)?;
                }
                Ok(())
            }),
        };
        self.busy_s += t0.elapsed().as_secs_f64();
        if result.is_err() {
            self.failed_at = Some(self.replay.position());
        }
        result
    }

    /// Statistics of the requests fed so far.
    fn stats(&self) -> PyPagingStats {
        PyPagingStats {
            inner: self.replay.stats().clone(),
        }
    }

    /// Seconds this simulator spent replaying so far (its own thread's time
    /// in `feed_many`).
    #[getter]
    fn wall_s(&self) -> f64 {
        self.busy_s
    }

    /// Index of the next request to feed.
    #[getter]
    fn position(&self) -> usize {
        self.replay.position()
    }

    /// Registry name of the policy (or the Python policy's `name`).
    #[getter]
    fn policy(&self) -> &str {
        &self.policy
    }

    /// Capacity in bytes (objects when sizes are ignored).
    #[getter]
    fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Whether the policy is a Python object (driven through callbacks).
    #[getter]
    fn is_python(&self) -> bool {
        matches!(*self.lock(), Engine::Python(_))
    }

    /// Bytes held by resident objects.
    #[getter]
    fn used_bytes(&self) -> u64 {
        match &*self.lock() {
            Engine::Native(c) => c.used_bytes(),
            Engine::Python(c) => c.used_bytes(),
        }
    }

    /// Number of resident objects.
    fn __len__(&self) -> usize {
        match &*self.lock() {
            Engine::Native(c) => c.len(),
            Engine::Python(c) => c.len(),
        }
    }
}

/// Counts of one replay (see `memarena.families.paging.PagingResult`).
#[pyclass(name = "PagingStats", module = "memarena._core", frozen)]
pub struct PyPagingStats {
    inner: PagingStats,
}

#[pymethods]
impl PyPagingStats {
    /// Counted requests (after warm-up).
    #[getter]
    fn requests(&self) -> u64 {
        self.inner.requests
    }
    /// Counted misses (compulsory and too-large ones included).
    #[getter]
    fn misses(&self) -> u64 {
        self.inner.misses
    }
    /// Sum of the sizes of the counted requests.
    #[getter]
    fn bytes_requested(&self) -> u64 {
        self.inner.bytes_requested
    }
    /// Sum of the sizes of the counted misses.
    #[getter]
    fn bytes_missed(&self) -> u64 {
        self.inner.bytes_missed
    }
    /// Misses on the first request to an object.
    #[getter]
    fn compulsory_misses(&self) -> u64 {
        self.inner.compulsory_misses
    }
    /// Bytes of the compulsory misses.
    #[getter]
    fn compulsory_bytes(&self) -> u64 {
        self.inner.compulsory_bytes
    }
    /// Misses on objects larger than the cache (never admitted).
    #[getter]
    fn too_large_misses(&self) -> u64 {
        self.inner.too_large_misses
    }
    /// Requests per window (empty without windows).
    #[getter]
    fn window_requests<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        self.inner.window_requests.clone().into_pyarray(py)
    }
    /// Misses per window.
    #[getter]
    fn window_misses<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        self.inner.window_misses.clone().into_pyarray(py)
    }

    /// The counters, for the REPL.
    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!(
            "PagingStats(requests={}, misses={}, compulsory_misses={}, too_large_misses={}, bytes_requested={}, bytes_missed={})",
            s.requests,
            s.misses,
            s.compulsory_misses,
            s.too_large_misses,
            s.bytes_requested,
            s.bytes_missed
        )
    }
}

/// One simulator's share of a `feed_many` call.
type Work<'a> = (&'a mut Cache, &'a mut Replay, &'a mut f64);

/// Advance every simulator over requests `start..stop` of `trace`, on up to
/// `threads` scoped threads with the GIL released. All simulators must be
/// native and positioned at `start`. Each simulator is fed by one thread,
/// so results equal feeding them one by one.
#[pyfunction]
#[pyo3(signature = (sims, trace, start, stop, threads=None))]
pub(crate) fn feed_many(
    py: Python<'_>,
    sims: Vec<Bound<'_, PyPagingSim>>,
    trace: &Bound<'_, PyTrace>,
    start: usize,
    stop: usize,
    threads: Option<usize>,
) -> PyResult<()> {
    let trace = trace.get();
    let n = trace.len(py);
    let mut guards = Vec::with_capacity(sims.len());
    for sim in &sims {
        let mut g = sim.try_borrow_mut()?;
        if g.is_python() {
            return Err(to_py_err(Error::invalid(
                "sims",
                format!(
                    "{} is a Python policy; feed it with PagingSim.feed (it needs the GIL)",
                    g.policy
                ),
            )));
        }
        g.check_range(n, start, stop)?;
        guards.push(g);
    }
    let threads = match threads {
        Some(0) => return Err(to_py_err(Error::invalid("threads", "must be at least 1"))),
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
    .min(guards.len().max(1));
    // `&mut` to each simulator's cache and replay: `Send`, no Python objects.
    let mut work: Vec<Work<'_>> = guards
        .iter_mut()
        .map(|g| {
            let g = &mut **g;
            match g.engine.get_mut().unwrap_or_else(|e| e.into_inner()) {
                Engine::Native(c) => (c, &mut g.replay, &mut g.busy_s),
                Engine::Python(_) => unreachable!("checked above"),
            }
        })
        .collect();
    let result = trace.with_view(py, |view| {
        py.run_core(|| {
            let next = AtomicUsize::new(0);
            let slots: Vec<Mutex<Option<Work<'_>>>> =
                work.drain(..).map(|w| Mutex::new(Some(w))).collect();
            let errors: Mutex<Vec<(usize, Error)>> = Mutex::new(Vec::new());
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        loop {
                            let j = next.fetch_add(1, Ordering::Relaxed);
                            let Some(slot) = slots.get(j) else { break };
                            let taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                            let Some((cache, replay, busy_s)) = taken else {
                                continue;
                            };
                            let t0 = Instant::now();
                            let r = crate::detach::catch_panic(|| replay.feed(&view, cache, stop));
                            *busy_s += t0.elapsed().as_secs_f64();
                            if let Err(e) = r {
                                errors
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .push((j, e));
                            }
                        }
                    });
                }
            });
            let mut errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
            errors.sort_by_key(|(j, _)| *j);
            match errors.into_iter().next() {
                Some((_, e)) => Err(e),
                None => Ok(()),
            }
        })
    });
    if result.is_err() {
        // Which simulators finished is not known to the caller: refuse them all.
        for g in &mut guards {
            g.failed_at = Some(g.replay.position());
        }
    }
    result
}

/// The hit mask (true = hit) of a built-in policy replayed over the whole
/// `trace` from an empty cache, with the trace's sizes (unit size when it
/// has none). For differential tests against reference implementations.
#[pyfunction]
#[pyo3(signature = (policy, capacity, trace, params=None))]
pub(crate) fn hit_mask<'py>(
    py: Python<'py>,
    policy: String,
    capacity: u64,
    trace: &Bound<'py, PyTrace>,
    params: Option<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyArray1<bool>>> {
    let config = policy_config(py, &policy, params.as_ref())?;
    let mask = trace.get().with_view(py, |view| {
        py.run_core(|| {
            let mut cache = Cache::with_policy(&config, capacity)?;
            memarena_core::sim::access_batch(&view, &mut cache)
        })
    })?;
    Ok(mask.into_pyarray(py))
}

/// One-shot replay of a built-in policy over the whole trace through the
/// core's own `sim::replay` (the reference the chunked `PagingSim` is tested
/// against).
#[pyfunction]
#[pyo3(signature = (policy, capacity, trace, params=None, *, ignore_size=false, warmup_requests=0, window_requests=0))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn replay(
    py: Python<'_>,
    policy: String,
    capacity: u64,
    trace: &Bound<'_, PyTrace>,
    params: Option<Bound<'_, PyDict>>,
    ignore_size: bool,
    warmup_requests: u64,
    window_requests: u64,
) -> PyResult<PyPagingStats> {
    let config = policy_config(py, &policy, params.as_ref())?;
    let opts = options(ignore_size, warmup_requests, window_requests);
    let inner = trace.get().with_view(py, |view| {
        py.run_core(|| {
            let mut cache = Cache::with_policy(&config, capacity)?;
            memarena_core::sim::replay(&view, &mut cache, &opts)
        })
    })?;
    Ok(PyPagingStats { inner })
}
