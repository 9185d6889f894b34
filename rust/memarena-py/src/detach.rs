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
        self.detach(|| catch_panic(f))
            .map_err(crate::errors::to_py_err)
    }
}

/// Run `f`, turning a panic (a core bug) into [`memarena_core::Error::Invariant`]
/// so that no panic crosses into Python as `PanicException`.
pub(crate) fn catch_panic<T>(
    f: impl FnOnce() -> memarena_core::Result<T>,
) -> memarena_core::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let reason = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(memarena_core::Error::Invariant {
            component: "memarena core".to_string(),
            reason: format!("panicked: {reason}"),
        })
    })
}
