//! Release the GIL around core work, keep it stoppable, and map its errors,
//! in one place.
//!
//! Stopping: while core work runs detached, the interpreter cannot run its
//! signal handlers (Ctrl-C's `KeyboardInterrupt`, memarena's SIGTERM
//! handler), so [`DetachExt::run_core`] installs a
//! [`memarena_core::cancel`] poll on the calling thread: every
//! [`memarena_core::cancel::POLL_INTERVAL`] of work, the core's long loops
//! re-attach to the interpreter and call `PyErr_CheckSignals`. A handler that
//! raises stops the work ([`memarena_core::Error::Interrupted`]); its
//! exception is kept and is what `run_core` raises, so Python sees the
//! `KeyboardInterrupt` (or memarena's `Interrupted`) it would have seen had
//! the work been Python code.

use std::cell::RefCell;

use pyo3::prelude::*;

thread_local! {
    /// The exception a signal handler raised during the current `run_core`.
    static PENDING: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// The poll `run_core` installs: run the interpreter's pending signal
/// handlers; `true` (stop) when one raised, keeping its exception.
fn check_signals() -> bool {
    Python::attach(|py| match py.check_signals() {
        Ok(()) => false,
        Err(err) => {
            PENDING.with(|p| *p.borrow_mut() = Some(err));
            true
        }
    })
}

/// Run core computations with the GIL released.
pub(crate) trait DetachExt {
    /// Run `f` with the GIL released and map a core error to Python; a
    /// signal handler's exception (Ctrl-C, SIGTERM) stops `f` and is raised.
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
        let outer = PENDING.with(|p| p.borrow_mut().take());
        let result =
            self.detach(|| memarena_core::cancel::with_poll(check_signals, || catch_panic(f)));
        let pending = PENDING.with(|p| std::mem::replace(&mut *p.borrow_mut(), outer));
        result.map_err(|err| match (err, pending) {
            (memarena_core::Error::Interrupted, Some(raised)) => raised,
            (err, _) => crate::errors::to_py_err(err),
        })
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
