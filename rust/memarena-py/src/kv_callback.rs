//! The one adapter that lets a KV-cache manager written in Python run in the
//! serving simulator: the documented slow path (`memarena.api.KVManager`).
//!
//! The Python object implements the protocol documented on
//! `memarena.api.KVManager`, one method per [`KvManager`] method:
//!
//! | Python | called |
//! |---|---|
//! | `setup(budget_bytes, bytes_per_token, max_model_len, max_num_seqs, num_layers) -> int` (the pool size) | once, before the run |
//! | `can_ever_fit(req) -> bool` | once per arriving request |
//! | `admit(rid, req, hit_tokens, tokens) -> bool` | per admission try |
//! | `grow(rid, tokens, n_seqs) -> bool` | per scheduled step of a running request |
//! | `free(rid)` | on completion and preemption |
//! | `resident_bytes(rid) -> int` | on preemption (and victim choice) |
//! | `breakdown(pending) -> (token_states, reserved, internal_frag, external_frag, free, cached_free[, idle_mapped])` | per sample (`pending` only while that request is blocked on memory) |
//! | optional `lookup(rid, req, num_tokens) -> int` | before each admission try (default 0) |
//! | optional `swap_in(rid, req, tokens, n_seqs) -> bool` | per swap-in try (default: admit, then grow) |
//! | optional `set_time(now_s)` | per iteration |
//! | optional `take_step_overhead() -> (bytes, seconds)` | per iteration (default `(0, 0.0)`) |
//! | optional `counters() -> (cow_copies, cache_evictions, pages_mapped, pages_reclaimed)` | once, for the report |
//! | optional `check_invariants()` (raises when broken) | per iteration with `check_invariants` |
//!
//! `req` is a [`PyKvRequest`] (`memarena._core.KVRequest`). The adapter
//! never promises quiet decode steps ([`KvManager::quiet_decode_tokens`]
//! keeps its default 0), so the scheduler makes every call; the reports
//! equal those of a native manager with the same semantics.
//!
//! The simulation runs with the GIL released; each call re-acquires it. A
//! Python exception raised in a callback, or a return value of the wrong
//! type (or out of range: a pool over the budget, a breakdown that does not
//! sum to the pool, a lookup of more than `num_tokens - 1` tokens), is
//! stashed as a `CallbackError` naming the manager and the call, with the
//! original exception as its `__cause__`. From then on the adapter calls no
//! more Python and refuses all work (nothing fits, nothing is admitted or
//! grows), so the run ends quickly; [`PythonKv::take_error`] hands the
//! stashed error back, and it is raised instead of whatever the run
//! returned. Nothing panics across the FFI. (`KeyboardInterrupt` and
//! `SystemExit`, which are no `Exception`, stop the run the same way but are
//! raised unchanged.)

use std::cell::Cell;
use std::sync::Mutex;

use memarena_core::Error;
use memarena_sim::serving::{
    KvBreakdown, KvCounters, KvManager, KvPoolBudget, KvRequest, RequestSpec, ServingConfig,
    ServingReport, simulate_with,
};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{CallbackError, InvalidConfigError};

/// What a KV manager knows of a request (`memarena.api.KVRequest`): the
/// argument of `can_ever_fit`, `lookup`, `admit`, `swap_in` and `breakdown`.
#[pyclass(name = "KVRequest", module = "memarena._core", frozen, get_all, eq)]
#[derive(Clone, Debug, PartialEq)]
pub struct PyKvRequest {
    /// Prompt tokens as specified (not counting tokens recomputed after a
    /// preemption).
    prompt_tokens: u32,
    /// Peak KV tokens of each sequence: `prompt + output - 1`.
    max_tokens: u32,
    /// Parallel sequences.
    n_parallel: u32,
    /// Content group for prefix caching, or None.
    prefix_group: Option<u64>,
    /// Tokens shared with the group.
    prefix_tokens: u32,
    /// Unique salt of the request's own content (its index).
    salt: u64,
}

#[pymethods]
impl PyKvRequest {
    #[new]
    #[pyo3(signature = (prompt_tokens, max_tokens, n_parallel=1, prefix_group=None, prefix_tokens=0, salt=0))]
    fn new(
        prompt_tokens: u32,
        max_tokens: u32,
        n_parallel: u32,
        prefix_group: Option<u64>,
        prefix_tokens: u32,
        salt: u64,
    ) -> Self {
        PyKvRequest {
            prompt_tokens,
            max_tokens,
            n_parallel,
            prefix_group,
            prefix_tokens,
            salt,
        }
    }

    fn __repr__(&self) -> String {
        self.repr()
    }
}

impl PyKvRequest {
    /// `KVRequest(prompt_tokens=..., ...)`, as Python prints it.
    fn repr(&self) -> String {
        format!(
            "KVRequest(prompt_tokens={}, max_tokens={}, n_parallel={}, prefix_group={}, \
             prefix_tokens={}, salt={})",
            self.prompt_tokens,
            self.max_tokens,
            self.n_parallel,
            self.prefix_group
                .map_or_else(|| "None".to_string(), |g| g.to_string()),
            self.prefix_tokens,
            self.salt
        )
    }
}

impl From<&KvRequest> for PyKvRequest {
    fn from(r: &KvRequest) -> Self {
        PyKvRequest {
            prompt_tokens: r.prompt_tokens,
            max_tokens: r.max_tokens,
            n_parallel: r.n_parallel,
            prefix_group: r.prefix_group,
            prefix_tokens: r.prefix_tokens,
            salt: r.salt,
        }
    }
}

const REQUIRED: [&str; 7] = [
    "setup",
    "can_ever_fit",
    "admit",
    "grow",
    "free",
    "resident_bytes",
    "breakdown",
];

/// The manager's bound methods, looked up once.
struct Methods {
    setup: Py<PyAny>,
    can_ever_fit: Py<PyAny>,
    admit: Py<PyAny>,
    grow: Py<PyAny>,
    free: Py<PyAny>,
    resident_bytes: Py<PyAny>,
    breakdown: Py<PyAny>,
    lookup: Option<Py<PyAny>>,
    swap_in: Option<Py<PyAny>>,
    set_time: Option<Py<PyAny>>,
    take_step_overhead: Option<Py<PyAny>>,
    counters: Option<Py<PyAny>>,
    check_invariants: Option<Py<PyAny>>,
}

/// A Python KV manager, checked and ready to run: what `simulate_serving`
/// holds while the simulation runs detached.
pub(crate) struct PythonKv {
    name: &'static str,
    methods: Methods,
    /// The first error a callback raised (shared with the running adapter).
    error: Mutex<Option<PyErr>>,
}

impl PythonKv {
    /// Checks that `obj` implements the protocol (an `InvalidConfigError`
    /// naming the manager and the missing methods otherwise) and looks its
    /// methods up. Its name is `obj.name`, else its type's name.
    pub(crate) fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let name = match obj.getattr("name") {
            Ok(n) => n.extract::<String>().map_err(|_| {
                InvalidConfigError::new_err(format!(
                    "a Python KV manager's name must be a str, got {}",
                    n.repr().map_or_else(|_| "?".to_string(), |r| r.to_string())
                ))
            })?,
            Err(_) => obj.get_type().name()?.to_string(),
        };
        let missing: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|m| !obj.hasattr(*m).unwrap_or(false))
            .collect();
        if !missing.is_empty() {
            return Err(InvalidConfigError::new_err(format!(
                "KV manager {name:?} ({}) is not a Python KV manager: it lacks {} \
                 (see memarena.api.KVManager)",
                obj.get_type().name()?,
                missing.join(", ")
            )));
        }
        let get = |m: &str| -> PyResult<Py<PyAny>> { Ok(obj.getattr(m)?.unbind()) };
        let opt = |m: &str| -> PyResult<Option<Py<PyAny>>> {
            Ok(if obj.hasattr(m)? {
                Some(obj.getattr(m)?.unbind())
            } else {
                None
            })
        };
        Ok(PythonKv {
            name: crate::callback::intern_name(&name),
            methods: Methods {
                setup: get("setup")?,
                can_ever_fit: get("can_ever_fit")?,
                admit: get("admit")?,
                grow: get("grow")?,
                free: get("free")?,
                resident_bytes: get("resident_bytes")?,
                breakdown: get("breakdown")?,
                lookup: opt("lookup")?,
                swap_in: opt("swap_in")?,
                set_time: opt("set_time")?,
                take_step_overhead: opt("take_step_overhead")?,
                counters: opt("counters")?,
                check_invariants: opt("check_invariants")?,
            },
            error: Mutex::new(None),
        })
    }

    /// Simulates `requests` under `config` with this manager (call it with
    /// the GIL released). After a callback failed, the run's result means
    /// nothing: see [`take_error`](Self::take_error).
    pub(crate) fn simulate(
        &self,
        config: &ServingConfig,
        requests: &[RequestSpec],
    ) -> memarena_core::Result<ServingReport> {
        simulate_with(config, requests, |b| PyKvManager::new(self, b))
    }

    /// The error a callback raised during the last [`simulate`](Self::simulate), if any.
    pub(crate) fn take_error(&self) -> Option<PyErr> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The [`KvManager`] that forwards to a [`PythonKv`].
struct PyKvManager<'a> {
    kv: &'a PythonKv,
    pool_bytes: u64,
    /// Whether a callback failed (then no more Python is called).
    failed: Cell<bool>,
}

/// How a callback's return value is read: the value, or what was expected.
type Reader<T> = fn(&Bound<'_, PyAny>) -> Result<T, &'static str>;

fn read_bool(v: &Bound<'_, PyAny>) -> Result<bool, &'static str> {
    v.extract::<bool>().map_err(|_| "a bool")
}

fn read_u32(v: &Bound<'_, PyAny>) -> Result<u32, &'static str> {
    v.extract::<u32>().map_err(|_| "an int in 0..2**32")
}

fn read_u64(v: &Bound<'_, PyAny>) -> Result<u64, &'static str> {
    v.extract::<u64>().map_err(|_| "an int in 0..2**64")
}

/// Methods whose return value is ignored (`free`, `set_time`, `check_invariants`).
fn read_any(_: &Bound<'_, PyAny>) -> Result<(), &'static str> {
    Ok(())
}

fn read_breakdown(v: &Bound<'_, PyAny>) -> Result<KvBreakdown, &'static str> {
    const WHAT: &str = "a KVBreakdown (6 or 7 ints: token_states, reserved, internal_frag, \
                        external_frag, free, cached_free[, idle_mapped] bytes)";
    let (t, r, i, e, f, c, m) = match v.extract::<(u64, u64, u64, u64, u64, u64, u64)>() {
        Ok(all) => all,
        Err(_) => {
            let (t, r, i, e, f, c) = v
                .extract::<(u64, u64, u64, u64, u64, u64)>()
                .map_err(|_| WHAT)?;
            (t, r, i, e, f, c, 0)
        }
    };
    Ok(KvBreakdown {
        idle_mapped_bytes: m,
        token_states_bytes: t,
        reserved_bytes: r,
        internal_frag_bytes: i,
        external_frag_bytes: e,
        free_bytes: f,
        cached_free_bytes: c,
    })
}

fn read_overhead(v: &Bound<'_, PyAny>) -> Result<(u64, f64), &'static str> {
    let (b, s) = v
        .extract::<(u64, f64)>()
        .map_err(|_| "a tuple (extra HBM bytes: int >= 0, extra seconds: float)")?;
    if s.is_finite() && s >= 0.0 {
        Ok((b, s))
    } else {
        Err("a tuple (extra HBM bytes, extra seconds) with finite seconds >= 0")
    }
}

fn read_counters(v: &Bound<'_, PyAny>) -> Result<KvCounters, &'static str> {
    let (a, b, c, d) = v.extract::<(u64, u64, u64, u64)>().map_err(
        |_| "a KVCounters (4 ints: cow_copies, cache_evictions, pages_mapped, pages_reclaimed)",
    )?;
    Ok(KvCounters {
        cow_copies: a,
        cache_evictions: b,
        pages_mapped: c,
        pages_reclaimed: d,
    })
}

fn repr_of(v: &Bound<'_, PyAny>) -> String {
    let r = v
        .repr()
        .map_or_else(|_| "<unprintable>".to_string(), |r| r.to_string());
    let r = if r.chars().count() > 80 {
        format!("{}...", r.chars().take(80).collect::<String>())
    } else {
        r
    };
    let ty = v
        .get_type()
        .name()
        .map_or_else(|_| "?".to_string(), |n| n.to_string());
    format!("{r} ({ty})")
}

impl<'a> PyKvManager<'a> {
    /// Calls `setup` and checks the pool size it returns.
    fn new(kv: &'a PythonKv, b: &KvPoolBudget) -> memarena_core::Result<Self> {
        let mut m = PyKvManager {
            kv,
            pool_bytes: 0,
            failed: Cell::new(false),
        };
        let describe = || {
            format!(
                "setup(budget_bytes={}, bytes_per_token={}, max_model_len={}, max_num_seqs={}, \
                 num_layers={})",
                b.budget_bytes, b.bytes_per_token, b.max_model_len, b.max_num_seqs, b.num_layers
            )
        };
        let budget = b.budget_bytes;
        let pool = Python::attach(|py| {
            let kwargs = PyDict::new(py);
            let ret = (|| {
                kwargs.set_item("budget_bytes", b.budget_bytes)?;
                kwargs.set_item("bytes_per_token", b.bytes_per_token)?;
                kwargs.set_item("max_model_len", b.max_model_len)?;
                kwargs.set_item("max_num_seqs", b.max_num_seqs)?;
                kwargs.set_item("num_layers", b.num_layers)?;
                kv.methods.setup.bind(py).call((), Some(&kwargs))
            })();
            m.finish(py, ret, describe, |v| match read_u64(v) {
                Ok(p) if p >= 1 && p <= budget => Ok(p),
                _ => Err("the pool size in bytes, an int in 1..=budget_bytes"),
            })
        });
        match pool {
            Some(p) => {
                m.pool_bytes = p;
                Ok(m)
            }
            None => Err(m.stopped()),
        }
    }

    /// The error the run returns once a callback failed (the stashed Python
    /// error replaces it).
    fn stopped(&self) -> Error {
        Error::Invariant {
            component: self.kv.name.to_string(),
            reason: "a Python callback failed".to_string(),
        }
    }

    /// Stashes a `CallbackError` (the first one only) and stops calling Python.
    fn stash(&self, py: Python<'_>, message: String, cause: Option<PyErr>) {
        let err = CallbackError::new_err(message);
        err.set_cause(py, cause);
        self.keep(err);
    }

    /// Keeps `err` to raise after the run (unless one is kept already) and
    /// stops calling Python.
    fn keep(&self, err: PyErr) {
        self.failed.set(true);
        let mut slot = self.kv.error.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(err);
        }
    }

    /// Reads a callback's return value, stashing an error naming the call
    /// when it raised or returned something `read` refuses.
    fn finish<T>(
        &self,
        py: Python<'_>,
        ret: PyResult<Bound<'_, PyAny>>,
        describe: impl FnOnce() -> String,
        read: impl FnOnce(&Bound<'_, PyAny>) -> Result<T, &'static str>,
    ) -> Option<T> {
        let name = self.kv.name;
        match ret {
            Ok(v) => match read(&v) {
                Ok(t) => Some(t),
                Err(expected) => {
                    let got = repr_of(&v);
                    let msg = format!(
                        "KV manager {name:?}: {} returned {got}; expected {expected}",
                        describe()
                    );
                    self.stash(py, msg, None);
                    None
                }
            },
            Err(e) if !e.is_instance_of::<PyException>(py) => {
                // KeyboardInterrupt, SystemExit: not the manager's failure;
                // raised unchanged (a run under `memarena` is then recorded
                // `interrupted`).
                self.keep(e);
                None
            }
            Err(e) => {
                let what = e
                    .get_type(py)
                    .name()
                    .map_or_else(|_| "an exception".to_string(), |n| n.to_string());
                let msg = format!(
                    "KV manager {name:?}: {} raised {what}: {}",
                    describe(),
                    e.value(py)
                );
                self.stash(py, msg, Some(e));
                None
            }
        }
    }

    /// Calls a method through `f` (with the GIL held) unless a callback
    /// failed already; `None` when it fails now or failed before.
    fn call<T>(
        &self,
        describe: impl FnOnce() -> String,
        read: Reader<T>,
        f: impl for<'py> FnOnce(Python<'py>, &'a Methods) -> PyResult<Bound<'py, PyAny>>,
    ) -> Option<T> {
        if self.failed.get() {
            return None;
        }
        Python::attach(|py| {
            let ret = f(py, &self.kv.methods);
            self.finish(py, ret, describe, read)
        })
    }
}

fn req<'py>(py: Python<'py>, r: &KvRequest) -> PyResult<Bound<'py, PyKvRequest>> {
    Bound::new(py, PyKvRequest::from(r))
}

impl KvManager for PyKvManager<'_> {
    fn name(&self) -> &'static str {
        self.kv.name
    }

    fn pool_bytes(&self) -> u64 {
        self.pool_bytes
    }

    fn can_ever_fit(&self, r: &KvRequest) -> bool {
        self.call(
            || format!("can_ever_fit({})", PyKvRequest::from(r).repr()),
            read_bool,
            |py, m| m.can_ever_fit.bind(py).call1((req(py, r)?,)),
        )
        .unwrap_or(false)
    }

    fn set_time(&mut self, now_s: f64) {
        if let Some(f) = &self.kv.methods.set_time {
            self.call(
                || format!("set_time({now_s})"),
                read_any,
                |py, _| f.bind(py).call1((now_s,)),
            );
        }
    }

    fn lookup(&mut self, rid: u32, r: &KvRequest, num_tokens: u32) -> u32 {
        let Some(f) = &self.kv.methods.lookup else {
            return 0;
        };
        let describe = || {
            format!(
                "lookup({rid}, {}, {num_tokens})",
                PyKvRequest::from(r).repr()
            )
        };
        let hit = self.call(describe, read_u32, |py, _| {
            f.bind(py).call1((rid, req(py, r)?, num_tokens))
        });
        match hit {
            Some(h) if h == 0 || h < num_tokens => h,
            Some(h) => {
                Python::attach(|py| {
                    self.stash(
                        py,
                        format!(
                            "KV manager {:?}: {} returned {h}; expected at most num_tokens - 1 \
                             (the last token is always computed)",
                            self.kv.name,
                            describe()
                        ),
                        None,
                    )
                });
                0
            }
            None => 0,
        }
    }

    fn admit(&mut self, rid: u32, r: &KvRequest, hit_tokens: u32, tokens: u32) -> bool {
        self.call(
            || {
                format!(
                    "admit({rid}, {}, {hit_tokens}, {tokens})",
                    PyKvRequest::from(r).repr()
                )
            },
            read_bool,
            |py, m| {
                m.admit
                    .bind(py)
                    .call1((rid, req(py, r)?, hit_tokens, tokens))
            },
        )
        .unwrap_or(false)
    }

    fn grow(&mut self, rid: u32, tokens: u32, n_seqs: u32) -> bool {
        self.call(
            || format!("grow({rid}, {tokens}, {n_seqs})"),
            read_bool,
            |py, m| m.grow.bind(py).call1((rid, tokens, n_seqs)),
        )
        .unwrap_or(false)
    }

    fn free(&mut self, rid: u32) {
        self.call(
            || format!("free({rid})"),
            read_any,
            |py, m| m.free.bind(py).call1((rid,)),
        );
    }

    fn resident_bytes(&self, rid: u32) -> u64 {
        self.call(
            || format!("resident_bytes({rid})"),
            read_u64,
            |py, m| m.resident_bytes.bind(py).call1((rid,)),
        )
        .unwrap_or(0)
    }

    fn swap_in(&mut self, rid: u32, r: &KvRequest, tokens: u32, n_seqs: u32) -> bool {
        let Some(f) = &self.kv.methods.swap_in else {
            // The trait's default: admit, then fork and grow.
            if !self.admit(rid, r, 0, tokens) {
                return false;
            }
            if n_seqs > 1 && !self.grow(rid, tokens, n_seqs) {
                self.free(rid);
                return false;
            }
            return true;
        };
        self.call(
            || {
                format!(
                    "swap_in({rid}, {}, {tokens}, {n_seqs})",
                    PyKvRequest::from(r).repr()
                )
            },
            read_bool,
            |py, _| f.bind(py).call1((rid, req(py, r)?, tokens, n_seqs)),
        )
        .unwrap_or(false)
    }

    fn breakdown(&self, pending: Option<&KvRequest>) -> KvBreakdown {
        let all_free = KvBreakdown {
            free_bytes: self.pool_bytes,
            ..KvBreakdown::default()
        };
        let describe = || match pending {
            Some(r) => format!("breakdown({})", PyKvRequest::from(r).repr()),
            None => "breakdown(None)".to_string(),
        };
        let b = self.call(describe, read_breakdown, |py, m| {
            let p = pending.map(|r| req(py, r)).transpose()?;
            m.breakdown.bind(py).call1((p,))
        });
        match b {
            Some(b) if b.total() == self.pool_bytes && b.cached_free_bytes <= b.free_bytes => b,
            Some(b) => {
                Python::attach(|py| {
                    self.stash(
                        py,
                        format!(
                            "KV manager {:?}: {} returned {b:?}: the six categories must sum to \
                             the pool ({} bytes, as setup() returned) and cached_free_bytes must \
                             not exceed free_bytes",
                            self.kv.name,
                            describe(),
                            self.pool_bytes
                        ),
                        None,
                    )
                });
                all_free
            }
            None => all_free,
        }
    }

    fn take_step_overhead(&mut self) -> (u64, f64) {
        let Some(f) = &self.kv.methods.take_step_overhead else {
            return (0, 0.0);
        };
        self.call(
            || "take_step_overhead()".to_string(),
            read_overhead,
            |py, _| f.bind(py).call0(),
        )
        .unwrap_or((0, 0.0))
    }

    fn counters(&self) -> KvCounters {
        let Some(f) = &self.kv.methods.counters else {
            return KvCounters::default();
        };
        self.call(
            || "counters()".to_string(),
            read_counters,
            |py, _| f.bind(py).call0(),
        )
        .unwrap_or_default()
    }

    fn check_invariants(&self) -> memarena_core::Result<()> {
        if let Some(f) = &self.kv.methods.check_invariants {
            self.call(
                || "check_invariants()".to_string(),
                read_any,
                |py, _| f.bind(py).call0(),
            );
        }
        if self.failed.get() {
            return Err(self.stopped());
        }
        Ok(())
    }
}
