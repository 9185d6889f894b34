//! memarena's pure-Rust core: caches over unit-size pages and sized objects,
//! replacement policies, traces and their metrics.
//!
//! This crate knows nothing of Python; `memarena-py` binds it. Every public
//! type is `Send`, so a sweep can run one cache per thread.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cancel;
pub mod config;
pub mod error;
pub mod fallible;
pub mod mrc;
pub mod policy;
pub mod predict;
pub mod request;
pub mod rng;
pub mod sim;
pub mod trace;

pub use error::{Error, Result};
pub use policy::{Cache, Policy};
pub use request::{NEVER, ObjId, Request};

/// Fast, deterministic hash map used for object tables (FxHash, as rustc uses).
pub type FxHashMap<K, V> = rustc_hash::FxHashMap<K, V>;
/// Fast, deterministic hash set.
pub type FxHashSet<K> = rustc_hash::FxHashSet<K>;
