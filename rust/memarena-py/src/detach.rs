//! Release the GIL around core work and map its errors, in one place.

use pyo3::prelude::*;

/// Run core computations with the GIL released.
pub(crate) trait DetachExt {
    /// Run `f` with the GIL released and map a core error to Python.
    fn run_core<T, F>(self, f: F) -> PyResult<T>
    where
        F: Send + FnOnce() -> memarena_core::Result<T>,
        T: Send;
}

impl DetachExt for Python<'_> {
    fn run_core<T, F>(self, f: F) -> PyResult<T>
    where
        F: Send + FnOnce() -> memarena_core::Result<T>,
        T: Send,
    {
        self.detach(f).map_err(crate::errors::to_py_err)
    }
}
