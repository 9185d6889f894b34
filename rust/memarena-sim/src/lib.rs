//! memarena-sim: a general discrete-event simulator and, on top of it, an
//! LLM-serving model with pluggable KV-cache managers.
//!
//! - [`engine`]: [`EventQueue`] (time-ordered, ties broken by insertion
//!   order) and [`Engine`], which drives any [`Model`]; [`rng_stream`]
//!   derives independent seeded RNG streams from one seed.
//! - [`mm1`]: M/M/1 and M/M/c queues on the engine, with their closed-form
//!   waits (used by the tests and the SimPy benchmark).
//! - [`serving`]: requests, continuous batching with chunked prefill,
//!   a roofline cost model and the KV managers (static reservation, paged
//!   blocks with prefix caching, vAttention-style demand-mapped pages);
//!   [`serving::simulate`] turns a [`serving::ServingConfig`] and requests
//!   into a [`serving::ServingReport`].
//!
//! The crate knows nothing of Python; `memarena-py` binds it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dist;
pub mod engine;
pub mod mm1;
pub mod serving;

pub use engine::{Engine, EventQueue, Model, RunStats, rng_stream};
pub use memarena_core::error::{Error, Result};
pub use memarena_core::rng::Rng;
