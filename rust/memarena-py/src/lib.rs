//! `memarena._core`: thin pyo3 bindings over the pure-Rust crates.
//!
//! Conversion first, then the core call with the GIL released
//! ([`detach::DetachExt::run_core`]), then conversion back. Core errors map to
//! the `memarena.errors` hierarchy in exactly one place ([`errors`]). Users
//! never import this module: `memarena` is the public facade.
//!
//! One file per core area: [`trace`] (traces, files, generators,
//! predictions), [`sim`] (resumable and parallel replay), [`callback`] (the
//! Python-policy adapter), [`kv_callback`] (the Python KV-manager adapter), [`mrc`] (miss-ratio curves), [`serving`] (the
//! serving model, its workloads and the event engine of `memarena-sim`),
//! [`ann`] (the vector indexes of `memarena-ann` and their datasets), [`bm25`]
//! (BM25 over texts); [`config`]
//! turns config dicts into the core's config structs (serde, one call).
#![warn(missing_docs)]

mod ann;
mod bm25;
mod callback;
mod config;
mod detach;
mod errors;
mod kv_callback;
mod mrc;
mod serving;
mod sim;
mod trace;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    #[pymodule_export]
    use crate::ann::{
        PyIndex, gaussian_mixture, index_config_debug, index_default_debug, index_kinds,
        metric_names, recall_at_k, search_default_debug, search_param_names, search_params_debug,
    };
    #[pymodule_export]
    use crate::bm25::{PyBm25, bm25_tokenizers};
    #[pymodule_export]
    use crate::errors::{
        CallbackError, InvalidConfigError, InvariantError, MalformedInputError, MemarenaError,
    };
    #[pymodule_export]
    use crate::kv_callback::PyKvRequest;
    #[pymodule_export]
    use crate::mrc::lru_mrc;
    #[pymodule_export]
    use crate::serving::{
        PyEventQueue, config_debug, default_debug, ffn_kinds, generate_requests, kv_manager_kinds,
        mmc_mean_wait, model_info, preemption_modes, prefix_caching_modes, read_azure_csv,
        simulate_mm1, simulate_mmc, simulate_serving, static_allocators, static_variants,
        vattention_page_sizes, victim_policies,
    };
    #[pymodule_export]
    use crate::sim::{PyPagingSim, PyPagingStats, feed_many, hit_mask, replay};
    #[pymodule_export]
    use crate::trace::{PyTrace, prediction_kinds, size_distributions, trace_generator_kinds};

    use pyo3::prelude::*;

    /// Version of the Rust core.
    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        // rust-numpy loads NumPy's C-API capsule on first use, running Python
        // code, and panics if that fails; a signal handler raising there
        // (Ctrl-C during a run) would surface as a PanicException. Load it
        // now, at import, so that no later call can be interrupted in it.
        numpy::PyArray1::<u8>::zeros(m.py(), 0, false);
        Ok(())
    }

    /// Names of the built-in replacement policies of the core.
    #[pyfunction]
    fn policy_names() -> Vec<&'static str> {
        memarena_core::policy::names()
    }
}

#[allow(unused_imports)]
use _core as _;
