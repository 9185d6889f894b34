//! Exact LRU miss-ratio curves: many cache sizes from one pass.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;

use crate::detach::DetachExt;
use crate::trace::PyTrace;

/// Exact LRU miss ratios of `trace` at each of `cache_sizes` (in objects;
/// sizes of the trace are ignored), from one stack-distance pass with the
/// GIL released.
#[pyfunction]
pub(crate) fn lru_mrc<'py>(
    py: Python<'py>,
    trace: &Bound<'py, PyTrace>,
    cache_sizes: PyReadonlyArray1<'py, u64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let sizes = cache_sizes.as_slice()?;
    let ratios = trace.get().with_view(py, |view| {
        py.run_core(|| memarena_core::mrc::lru_mrc(view.ids, sizes))
    })?;
    Ok(ratios.into_pyarray(py))
}
