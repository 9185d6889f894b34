//! The one error type of the core. Every variant carries what a user needs to
//! act: the file, row or byte offset, the parameter and its allowed values.

use std::path::PathBuf;

/// Errors raised by the core. `memarena-py` maps each variant to a Python
/// exception of the `memarena.errors` hierarchy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is out of range or inconsistent; `name` is the parameter.
    #[error("invalid value for {name}: {reason}")]
    InvalidArgument {
        /// The parameter, dotted when it belongs to a component (`"capacity"`,
        /// `"s3fifo.small_ratio"`).
        name: String,
        /// What is wrong and what is allowed (`"must be in [0, 1)"`).
        reason: String,
    },

    /// A name does not match any known component.
    #[error("unknown {kind} {name:?}; available: {available}")]
    UnknownName {
        /// What was looked up (`"policy"`, `"index"`, `"metric"`, `"parameter"`).
        kind: &'static str,
        /// The name as given.
        name: String,
        /// The accepted names, comma-separated.
        available: String,
    },

    /// An input file is malformed at a given place (row or byte offset).
    #[error("{path}: {location}: {reason}")]
    Malformed {
        /// The file being read.
        path: PathBuf,
        /// Where in the file, as text (`"row 12"`, `"byte offset 4096"`).
        location: String,
        /// What is wrong there.
        reason: String,
    },

    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file being opened, read or written.
        path: PathBuf,
        /// The underlying error from the OS.
        #[source]
        source: std::io::Error,
    },

    /// A component broke one of its documented invariants (a bug, or a
    /// user-written policy that returned an impossible answer).
    #[error("invariant violated in {component}: {reason}")]
    Invariant {
        /// The component that broke it (a policy name, `"scheduler"`, ...).
        component: String,
        /// Which invariant, with the offending values.
        reason: String,
    },

    /// Long work was stopped on request (the poll installed with
    /// [`crate::cancel::with_poll`] asked to stop, e.g. on Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}

/// Result alias of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
