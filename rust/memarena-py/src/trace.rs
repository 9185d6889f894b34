//! `memarena._core.Trace`: a request trace, shared with numpy without copies.
//!
//! Two storages behind one class:
//! - **numpy** (`Trace.from_arrays`): the caller's `uint64` arrays are kept
//!   as they are (a reference, no copy) and read through `PyReadonlyArray`
//!   slices for each core call; the derived columns (`next_vtime`,
//!   `first_access`) are computed once, on first use, with the GIL released.
//! - **owned** (files, generators, predictions): a core [`Trace`], whose
//!   columns are handed to numpy as read-only views of its buffers.
//!
//! Ownership of the views handed out: every array returned by a getter is
//! either a read-only view of a caller's array (so `np.shares_memory` with it
//! holds) or a read-only array whose base is this `Trace` object (see the
//! `SAFETY` comment in [`readonly_view`]).

use std::sync::OnceLock;

use memarena_core::predict;
use memarena_core::trace::{
    self, Column, CsvOptions, IdFormat, OracleOptions, SynthSpec, Trace, TraceView,
};
use memarena_core::{Error, NEVER};
use numpy::ndarray::ArrayView1;
use numpy::{
    Element, IntoPyArray, PyArray1, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::from_py;
use crate::detach::DetachExt;

/// Columns derived from the ids, computed once per trace.
struct Derived {
    next_vtime: Vec<u64>,
    first_access: Vec<bool>,
    num_objects: usize,
}

impl Derived {
    /// Stoppable and allocated fallibly ([`trace::try_derived`]).
    fn of(ids: &[u64]) -> memarena_core::Result<Self> {
        let (next_vtime, first_access) = trace::try_derived(ids, "ids")?;
        Ok(Derived {
            next_vtime,
            num_objects: first_access.iter().filter(|&&f| f).count(),
            first_access,
        })
    }
}

/// Caller-supplied numpy columns, kept by reference.
struct NumpyColumns {
    ids: Py<PyArray1<u64>>,
    sizes: Option<Py<PyArray1<u64>>>,
    timestamps: Option<Py<PyArray1<u64>>>,
    pred_next_vtime: Option<Py<PyArray1<u64>>>,
    pred_bit: Option<Py<PyArray1<bool>>>,
    /// Filled once; never mutated after, so views of it stay valid.
    derived: OnceLock<Derived>,
}

enum Storage {
    Owned(Trace),
    Numpy(NumpyColumns),
}

/// A request trace (struct of arrays): ids, optional sizes, timestamps and
/// predictions, and the derived next-access and first-access columns.
#[pyclass(name = "Trace", module = "memarena._core", frozen)]
pub struct PyTrace {
    storage: Storage,
    /// Number of distinct ids of an owned trace, counted once.
    owned_num_objects: OnceLock<usize>,
}

impl PyTrace {
    fn owned(trace: Trace) -> Self {
        PyTrace {
            storage: Storage::Owned(trace),
            owned_num_objects: OnceLock::new(),
        }
    }

    /// Number of requests.
    pub(crate) fn len(&self, py: Python<'_>) -> usize {
        match &self.storage {
            Storage::Owned(t) => t.len(),
            Storage::Numpy(c) => c.ids.bind(py).len(),
        }
    }

    /// Run `f` on a borrowed view of the whole trace. The numpy borrows are
    /// held for the duration of `f` only (never across calls). `f` typically
    /// releases the GIL itself (through `run_core`).
    pub(crate) fn with_view<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(TraceView<'_>) -> PyResult<R>,
    ) -> PyResult<R> {
        match &self.storage {
            Storage::Owned(t) => f(t.view()),
            Storage::Numpy(c) => {
                let ids_ro = c.ids.bind(py).try_readonly()?;
                let ids = ids_ro.as_slice()?;
                let derived = derived(py, c, ids)?;
                let sizes_ro = c
                    .sizes
                    .as_ref()
                    .map(|a| a.bind(py).try_readonly())
                    .transpose()?;
                let pred_ro = c
                    .pred_next_vtime
                    .as_ref()
                    .map(|a| a.bind(py).try_readonly())
                    .transpose()?;
                let bit_ro = c
                    .pred_bit
                    .as_ref()
                    .map(|a| a.bind(py).try_readonly())
                    .transpose()?;
                let view = TraceView {
                    ids,
                    sizes: sizes_ro.as_ref().map(|a| a.as_slice()).transpose()?,
                    next_vtime: &derived.next_vtime,
                    first_access: &derived.first_access,
                    pred_next_vtime: pred_ro.as_ref().map(|a| a.as_slice()).transpose()?,
                    pred_bit: bit_ro.as_ref().map(|a| a.as_slice()).transpose()?,
                };
                view.validate().map_err(crate::errors::to_py_err)?;
                f(view)
            }
        }
    }

    /// An owned copy of the trace (for the core's writers, which take one).
    fn to_owned_trace(&self, py: Python<'_>) -> PyResult<Trace> {
        if let Storage::Owned(t) = &self.storage {
            return Ok(t.clone());
        }
        let timestamps = self.column_u64(py, |c| c.timestamps.as_ref())?;
        self.with_view(py, |v| {
            let (ids, sizes) = (v.ids.to_vec(), v.sizes.map(<[u64]>::to_vec));
            let (pred, bit) = (
                v.pred_next_vtime.map(<[u64]>::to_vec),
                v.pred_bit.map(<[bool]>::to_vec),
            );
            py.run_core(move || {
                Trace::new(ids)
                    .with_sizes(sizes)?
                    .with_timestamps(timestamps)?
                    .with_pred_next_vtime(pred)?
                    .with_pred_bit(bit)
            })
        })
    }

    fn column_u64(
        &self,
        py: Python<'_>,
        pick: impl Fn(&NumpyColumns) -> Option<&Py<PyArray1<u64>>>,
    ) -> PyResult<Option<Vec<u64>>> {
        match &self.storage {
            Storage::Owned(_) => Ok(None),
            Storage::Numpy(c) => pick(c)
                .map(|a| Ok(a.bind(py).try_readonly()?.as_slice()?.to_vec()))
                .transpose(),
        }
    }
}

/// The derived columns of numpy storage, computing them once with the GIL
/// released. Two threads may race to compute; the first to finish wins and
/// the other's result is dropped (no lock is held while detached, so no
/// deadlock with the GIL).
fn derived<'a>(py: Python<'_>, c: &'a NumpyColumns, ids: &[u64]) -> PyResult<&'a Derived> {
    if let Some(d) = c.derived.get() {
        return Ok(d);
    }
    let d = py.run_core(|| Derived::of(ids))?;
    let _ = c.derived.set(d);
    Ok(c.derived.get().expect("set above or by a racing thread"))
}

/// A read-only numpy view of `data`, whose base is `owner`.
///
/// SAFETY (of the `borrow_from_array` inside): `data` lives in a
/// [`PyTrace`] (an owned core `Trace` or the `derived` cell), which is a
/// frozen pyclass: its columns are written once, before the first view is
/// made, and never mutated, resized or dropped while the object lives, so
/// the buffer cannot be reallocated. The view holds a reference to `owner`
/// (its numpy `base`), which keeps the buffer alive as long as the view.
/// The view is made non-writeable, and since it does not own its data,
/// Python cannot set the flag back.
fn readonly_view<'py, T: Element>(
    data: &[T],
    owner: &Bound<'py, PyTrace>,
) -> Bound<'py, PyArray1<T>> {
    let view = ArrayView1::from(data);
    // SAFETY: see the function documentation.
    let arr = unsafe { PyArray1::borrow_from_array(&view, owner.clone().into_any()) };
    // A fresh view cannot be borrowed elsewhere yet, so this cannot fail.
    match arr.try_readwrite() {
        Ok(rw) => {
            let ro = rw.make_nonwriteable();
            (*ro).clone()
        }
        Err(_) => arr,
    }
}

/// A read-only view of a caller's array (shares its memory).
fn readonly_alias<'py, T: Element>(
    arr: &Py<PyArray1<T>>,
    py: Python<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    let view = arr.bind(py).call_method0("view")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("write", false)?;
    view.call_method("setflags", (), Some(&kwargs))?;
    Ok(view)
}

fn parse_column(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Column>> {
    let Some(obj) = obj else { return Ok(None) };
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(i) = obj.extract::<usize>() {
        return Ok(Some(Column::Index(i)));
    }
    if let Ok(s) = obj.extract::<String>() {
        return Ok(Some(Column::Name(s)));
    }
    Err(crate::errors::to_py_err(Error::invalid(
        "column",
        format!("must be a header name or a 0-based index, got {obj}"),
    )))
}

/// The oracle prediction kinds of `Trace.with_oracle_predictions`.
#[pyfunction]
pub(crate) fn prediction_kinds() -> Vec<&'static str> {
    predict::PREDICTION_KINDS.to_vec()
}

/// The `kind`s of a synthetic trace spec (`Trace.synthetic`).
#[pyfunction]
pub(crate) fn trace_generator_kinds() -> Vec<&'static str> {
    <SynthSpec as memarena_core::config::Tagged>::KINDS.to_vec()
}

/// The `kind`s of a synthetic trace's size distribution (`sizes`).
#[pyfunction]
pub(crate) fn size_distributions() -> Vec<&'static str> {
    <memarena_core::trace::SizeSpec as memarena_core::config::Tagged>::KINDS.to_vec()
}

#[pymethods]
impl PyTrace {
    /// Wrap numpy columns without copying them (each must be a contiguous
    /// 1-d array of the right dtype; the facade converts). Mutating the
    /// arrays afterwards is not supported: the trace reads them in place.
    #[staticmethod]
    #[pyo3(signature = (ids, sizes=None, timestamps=None, pred_next_vtime=None, pred_bit=None))]
    fn from_arrays(
        py: Python<'_>,
        ids: PyReadonlyArray1<'_, u64>,
        sizes: Option<PyReadonlyArray1<'_, u64>>,
        timestamps: Option<PyReadonlyArray1<'_, u64>>,
        pred_next_vtime: Option<PyReadonlyArray1<'_, u64>>,
        pred_bit: Option<PyReadonlyArray1<'_, bool>>,
    ) -> PyResult<Self> {
        let n = ids.len();
        let check = |name: &str, len: Option<usize>| -> PyResult<()> {
            match len {
                Some(l) if l != n => Err(crate::errors::to_py_err(Error::invalid(
                    name,
                    format!("has {l} entries but ids has {n}"),
                ))),
                _ => Ok(()),
            }
        };
        check("sizes", sizes.as_ref().map(|a| a.len()))?;
        check("timestamps", timestamps.as_ref().map(|a| a.len()))?;
        check("pred_next_vtime", pred_next_vtime.as_ref().map(|a| a.len()))?;
        check("pred_bit", pred_bit.as_ref().map(|a| a.len()))?;
        // Non-contiguous input would need a copy: refuse it here so the
        // zero-copy promise is checked once, at construction.
        ids.as_slice()?;
        if let Some(s) = &sizes {
            let s = s.as_slice()?;
            if let Some(i) = s.iter().position(|&x| x == 0) {
                return Err(crate::errors::to_py_err(Error::invalid(
                    format!("sizes[{i}]"),
                    "must be at least 1",
                )));
            }
        }
        let _ = py;
        let unbind = |a: PyReadonlyArray1<'_, u64>| (*a).clone().unbind();
        Ok(PyTrace {
            storage: Storage::Numpy(NumpyColumns {
                ids: unbind(ids),
                sizes: sizes.map(unbind),
                timestamps: timestamps.map(unbind),
                pred_next_vtime: pred_next_vtime.map(unbind),
                pred_bit: pred_bit.map(|a| (*a).clone().unbind()),
                derived: OnceLock::new(),
            }),
            owned_num_objects: OnceLock::new(),
        })
    }

    /// Read a delimited text trace; errors name the file and the row.
    #[staticmethod]
    #[pyo3(signature = (path, id_column=None, *, size_column=None, time_column=None, delimiter=",", has_header=true, id_format="integer"))]
    #[allow(clippy::too_many_arguments)]
    fn read_csv(
        py: Python<'_>,
        path: std::path::PathBuf,
        id_column: Option<Bound<'_, PyAny>>,
        size_column: Option<Bound<'_, PyAny>>,
        time_column: Option<Bound<'_, PyAny>>,
        delimiter: &str,
        has_header: bool,
        id_format: &str,
    ) -> PyResult<Self> {
        let delim = match delimiter.as_bytes() {
            [b] => *b,
            _ => {
                return Err(crate::errors::to_py_err(Error::invalid(
                    "delimiter",
                    format!("must be one ASCII character, got {delimiter:?}"),
                )));
            }
        };
        let id_format = match id_format {
            "integer" => IdFormat::Integer,
            "hash" => IdFormat::Hash,
            other => {
                return Err(crate::errors::to_py_err(Error::invalid(
                    "id_format",
                    format!("unknown id format {other:?}; available: integer, hash"),
                )));
            }
        };
        let opts = CsvOptions {
            delimiter: delim,
            has_header,
            id_column: parse_column(id_column.as_ref())?.unwrap_or(Column::Index(0)),
            id_format,
            size_column: parse_column(size_column.as_ref())?,
            time_column: parse_column(time_column.as_ref())?,
        };
        let t = py.run_core(|| trace::read_csv(&path, &opts))?;
        Ok(PyTrace::owned(t))
    }

    /// Read a libCacheSim oracleGeneral binary trace; errors name the file
    /// and the byte offset.
    #[staticmethod]
    #[pyo3(signature = (path, *, skip_zero_size=true))]
    fn read_oracle_general(
        py: Python<'_>,
        path: std::path::PathBuf,
        skip_zero_size: bool,
    ) -> PyResult<Self> {
        let opts = OracleOptions { skip_zero_size };
        let t = py.run_core(|| trace::read_oracle_general(&path, &opts))?;
        Ok(PyTrace::owned(t))
    }

    /// Generate a seeded synthetic trace from a spec dict.
    #[staticmethod]
    fn synthetic(
        py: Python<'_>,
        spec: Bound<'_, PyAny>,
        n_requests: usize,
        seed: u64,
    ) -> PyResult<Self> {
        let spec: SynthSpec = from_py(&spec, "spec")?;
        let t = py.run_core(|| trace::generate(&spec, n_requests, seed))?;
        Ok(PyTrace::owned(t))
    }

    /// Write the trace in libCacheSim's oracleGeneral format.
    fn write_oracle_general(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        match &self.storage {
            Storage::Owned(t) => py.run_core(|| trace::write_oracle_general(&path, t)),
            Storage::Numpy(_) => {
                let t = self.to_owned_trace(py)?;
                py.run_core(|| trace::write_oracle_general(&path, &t))
            }
        }
    }

    /// Number of requests.
    fn __len__(&self, py: Python<'_>) -> usize {
        self.len(py)
    }

    /// Number of distinct object ids.
    #[getter]
    fn num_objects(&self, py: Python<'_>) -> PyResult<usize> {
        match &self.storage {
            Storage::Owned(t) => {
                if let Some(n) = self.owned_num_objects.get() {
                    return Ok(*n);
                }
                let n = py.run_core(|| Ok(t.num_objects()))?;
                let _ = self.owned_num_objects.set(n);
                Ok(n)
            }
            Storage::Numpy(c) => {
                let ids_ro = c.ids.bind(py).try_readonly()?;
                Ok(derived(py, c, ids_ro.as_slice()?)?.num_objects)
            }
        }
    }

    /// Object ids (read-only, no copy).
    #[getter]
    fn ids<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        match &slf.get().storage {
            Storage::Owned(t) => Ok(readonly_view(t.ids(), slf).into_any()),
            Storage::Numpy(c) => readonly_alias(&c.ids, py),
        }
    }

    /// Sizes in bytes, or None for a unit-size trace (read-only, no copy).
    #[getter]
    fn sizes<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        match &slf.get().storage {
            Storage::Owned(t) => Ok(t.sizes().map(|s| readonly_view(s, slf).into_any())),
            Storage::Numpy(c) => c.sizes.as_ref().map(|a| readonly_alias(a, py)).transpose(),
        }
    }

    /// Timestamps, or None (read-only, no copy).
    #[getter]
    fn timestamps<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        match &slf.get().storage {
            Storage::Owned(t) => Ok(t.timestamps().map(|s| readonly_view(s, slf).into_any())),
            Storage::Numpy(c) => c
                .timestamps
                .as_ref()
                .map(|a| readonly_alias(a, py))
                .transpose(),
        }
    }

    /// Predicted next-arrival virtual times (2**64-1 = none), or None.
    #[getter]
    fn pred_next_vtime<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        match &slf.get().storage {
            Storage::Owned(t) => Ok(t
                .pred_next_vtime()
                .map(|s| readonly_view(s, slf).into_any())),
            Storage::Numpy(c) => c
                .pred_next_vtime
                .as_ref()
                .map(|a| readonly_alias(a, py))
                .transpose(),
        }
    }

    /// One-bit predictions, or None.
    #[getter]
    fn pred_bit<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        match &slf.get().storage {
            Storage::Owned(t) => Ok(t.pred_bit().map(|s| readonly_view(s, slf).into_any())),
            Storage::Numpy(c) => c
                .pred_bit
                .as_ref()
                .map(|a| readonly_alias(a, py))
                .transpose(),
        }
    }

    /// Index of the next request to the same id (2**64-1 = never); derived
    /// once and cached (read-only, no copy).
    #[getter]
    fn next_vtime<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let py = slf.py();
        match &slf.get().storage {
            Storage::Owned(t) => Ok(readonly_view(t.next_vtime(), slf)),
            Storage::Numpy(c) => {
                let ids_ro = c.ids.bind(py).try_readonly()?;
                let d = derived(py, c, ids_ro.as_slice()?)?;
                Ok(readonly_view(&d.next_vtime, slf))
            }
        }
    }

    /// Whether each request is the first to its id; derived once and cached.
    #[getter]
    fn first_access<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<bool>>> {
        let py = slf.py();
        match &slf.get().storage {
            Storage::Owned(t) => Ok(readonly_view(t.first_access(), slf)),
            Storage::Numpy(c) => {
                let ids_ro = c.ids.bind(py).try_readonly()?;
                let d = derived(py, c, ids_ro.as_slice()?)?;
                Ok(readonly_view(&d.first_access, slf))
            }
        }
    }

    /// A trace with oracle predictions computed from this one (ids shared,
    /// not copied): `next_arrival` fills `pred_next_vtime`; `discard_bit`
    /// (Belady with `cache_size` pages evicts the page before its next
    /// request) and `phase_bit` (requested again in the next k-phase) fill
    /// `pred_bit`. Predictions assume unit-size pages.
    fn with_oracle_predictions(
        slf: &Bound<'_, Self>,
        kind: &str,
        cache_size: usize,
    ) -> PyResult<Self> {
        let py = slf.py();
        let new = slf.get().with_view(py, |v| match kind {
            "next_arrival" => Ok(NewPredictions {
                pred_next_vtime: Some(v.next_vtime.to_vec()),
                pred_bit: None,
            }),
            "discard_bit" => py.run_core(|| {
                Ok(NewPredictions {
                    pred_next_vtime: None,
                    pred_bit: Some(predict::discard_bits(v.ids, v.next_vtime, cache_size)?),
                })
            }),
            "phase_bit" => py.run_core(|| {
                Ok(NewPredictions {
                    pred_next_vtime: None,
                    pred_bit: Some(predict::phase_bits(v.ids, cache_size)?),
                })
            }),
            other => Err(crate::errors::to_py_err(Error::invalid(
                "kind",
                format!(
                    "unknown prediction kind {other:?}; available: {}",
                    predict::PREDICTION_KINDS.join(", ")
                ),
            ))),
        })?;
        Self::derive(slf, new)
    }

    /// A trace whose predictions are degraded by seeded noise: each bit of
    /// `pred_bit` flips with probability `error`; each finite
    /// `pred_next_vtime` moves by `round(error * N(0, 1))` requests.
    #[pyo3(signature = (error, *, seed=0))]
    fn with_noise(slf: &Bound<'_, Self>, error: f64, seed: u64) -> PyResult<Self> {
        let py = slf.py();
        let new = slf.get().with_view(py, |v| {
            if v.pred_next_vtime.is_none() && v.pred_bit.is_none() {
                return Err(crate::errors::to_py_err(Error::invalid(
                    "trace",
                    "has no predictions to add noise to (see with_oracle_predictions)",
                )));
            }
            py.run_core(|| {
                Ok(NewPredictions {
                    pred_next_vtime: v
                        .pred_next_vtime
                        .map(|p| predict::noisy_next_arrival(p, error, seed))
                        .transpose()?,
                    pred_bit: v
                        .pred_bit
                        .map(|b| predict::flip_bits(b, error, seed))
                        .transpose()?,
                })
            })
        })?;
        Self::derive(slf, new)
    }

    /// The value marking "never" in `next_vtime` and `pred_next_vtime`.
    #[classattr]
    const NEVER: u64 = NEVER;
}

/// Which columns a derived trace replaces; `None` keeps the source's.
struct NewPredictions {
    pred_next_vtime: Option<Vec<u64>>,
    pred_bit: Option<Vec<bool>>,
}

impl PyTrace {
    /// A numpy column of this trace as an array object: a caller's array is
    /// shared as is, an owned column as a read-only view based on `slf`.
    fn share<'py, T: Element>(
        slf: &Bound<'py, Self>,
        owned: Option<&[T]>,
        numpy: Option<&Py<PyArray1<T>>>,
    ) -> Option<Py<PyArray1<T>>> {
        match (&slf.get().storage, owned, numpy) {
            (Storage::Owned(_), Some(data), _) => Some(readonly_view(data, slf).unbind()),
            (Storage::Numpy(_), _, Some(a)) => Some(a.clone_ref(slf.py())),
            _ => None,
        }
    }

    /// A trace sharing this one's ids, sizes, timestamps and derived columns
    /// (no copy of the ids; the derived columns are copied, not recomputed),
    /// with prediction columns replaced where `new` has them.
    fn derive(slf: &Bound<'_, Self>, new: NewPredictions) -> PyResult<Self> {
        let py = slf.py();
        let this = slf.get();
        let (o_ids, o_sizes, o_times, o_pred, o_bit) = match &this.storage {
            Storage::Owned(t) => (
                Some(t.ids()),
                t.sizes(),
                t.timestamps(),
                t.pred_next_vtime(),
                t.pred_bit(),
            ),
            Storage::Numpy(_) => (None, None, None, None, None),
        };
        let np = match &this.storage {
            Storage::Numpy(c) => Some(c),
            Storage::Owned(_) => None,
        };
        let derived = this.with_view(py, |v| {
            let (next_vtime, first_access) = (v.next_vtime.to_vec(), v.first_access.to_vec());
            let num_objects = first_access.iter().filter(|&&f| f).count();
            Ok(Derived {
                next_vtime,
                first_access,
                num_objects,
            })
        })?;
        let to_array_u64 = |v: Vec<u64>| -> PyResult<Py<PyArray1<u64>>> {
            let a = v.into_pyarray(py);
            let ro = a.try_readwrite()?.make_nonwriteable();
            Ok((*ro).clone().unbind())
        };
        let pred_next_vtime = match new.pred_next_vtime {
            Some(v) => Some(to_array_u64(v)?),
            None => Self::share(slf, o_pred, np.and_then(|c| c.pred_next_vtime.as_ref())),
        };
        let pred_bit = match new.pred_bit {
            Some(v) => {
                let a = v.into_pyarray(py);
                let ro = a.try_readwrite()?.make_nonwriteable();
                Some((*ro).clone().unbind())
            }
            None => Self::share(slf, o_bit, np.and_then(|c| c.pred_bit.as_ref())),
        };
        let ids = Self::share(slf, o_ids, np.map(|c| &c.ids)).expect("every trace has ids");
        let cell = OnceLock::new();
        let _ = cell.set(derived);
        Ok(PyTrace {
            storage: Storage::Numpy(NumpyColumns {
                ids,
                sizes: Self::share(slf, o_sizes, np.and_then(|c| c.sizes.as_ref())),
                timestamps: Self::share(slf, o_times, np.and_then(|c| c.timestamps.as_ref())),
                pred_next_vtime,
                pred_bit,
                derived: cell,
            }),
            owned_num_objects: OnceLock::new(),
        })
    }
}
