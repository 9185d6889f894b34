//! The one mapping from core errors to Python exceptions.

use memarena_core::Error;
use pyo3::PyErr;
use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(
    memarena._core,
    MemarenaError,
    PyException,
    "Base class of every error memarena raises on purpose."
);
create_exception!(
    memarena._core,
    InvalidConfigError,
    MemarenaError,
    "A parameter or name is invalid; the message names it and the allowed values."
);
create_exception!(
    memarena._core,
    MalformedInputError,
    MemarenaError,
    "An input file is malformed; the message names the file and the row or byte offset."
);
create_exception!(
    memarena._core,
    InvariantError,
    MemarenaError,
    "A component broke a documented invariant (for example a Python policy that evicted a non-resident object)."
);

create_exception!(
    memarena._core,
    CallbackError,
    MemarenaError,
    "A component written in Python raised in a callback, or returned a value of the wrong type; the message names the component and the call, and ``__cause__`` is the exception raised."
);

/// Map a core error to the matching Python exception.
pub(crate) fn to_py_err(err: Error) -> PyErr {
    let msg = err.to_string();
    match err {
        Error::InvalidArgument { .. } | Error::UnknownName { .. } => {
            InvalidConfigError::new_err(msg)
        }
        Error::Malformed { .. } => MalformedInputError::new_err(msg),
        Error::Io { source, .. } => {
            let kind = source.kind();
            match kind {
                std::io::ErrorKind::NotFound => pyo3::exceptions::PyFileNotFoundError::new_err(msg),
                std::io::ErrorKind::PermissionDenied => {
                    pyo3::exceptions::PyPermissionError::new_err(msg)
                }
                _ => pyo3::exceptions::PyOSError::new_err(msg),
            }
        }
        Error::Invariant { .. } => InvariantError::new_err(msg),
        // Stopped with no Python exception to show (`run_core` raises the
        // signal handler's own when there is one).
        Error::Interrupted => pyo3::exceptions::PyKeyboardInterrupt::new_err(msg),
    }
}
