//! The one error type of the core. Every variant carries what a user needs to
//! act: the file, row or byte offset, the parameter and its allowed values.

use std::path::PathBuf;

/// Errors raised by the core. `memarena-py` maps each variant to a Python
/// exception of the `memarena.errors` hierarchy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is out of range or inconsistent; `name` is the parameter.
    #[error("invalid value for {name}: {reason}")]
    InvalidArgument { name: String, reason: String },

    /// A name does not match any known component.
    #[error("unknown {kind} {name:?}; available: {available}")]
    UnknownName {
        kind: &'static str,
        name: String,
        available: String,
    },

    /// An input file is malformed at a given place (row or byte offset).
    #[error("{path}: {location}: {reason}")]
    Malformed {
        path: PathBuf,
        location: String,
        reason: String,
    },

    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A component broke one of its documented invariants (a bug, or a
    /// user-written policy that returned an impossible answer).
    #[error("invariant violated in {component}: {reason}")]
    Invariant { component: String, reason: String },
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
