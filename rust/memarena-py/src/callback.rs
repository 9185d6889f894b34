//! The one adapter that lets a policy written in Python drive the Rust cache
//! engine: the documented slow path (libCacheSim's `PluginCache`).
//!
//! The Python object implements `on_hit(obj_id, size, vtime)`,
//! `on_insert(obj_id, size, vtime)`, `evict(vtime) -> obj_id` and
//! `on_evict(obj_id)` (see `memarena.api.PagingPolicy`). The adapter, not the
//! Python object, keeps the resident set (id -> size), so `contains` and `len`
//! are exact whatever the Python code does, and the engine's
//! [`memarena_core::Cache::access_checked`] can catch a policy that evicts a
//! non-resident object.
//!
//! [`memarena_core::Policy`] methods cannot fail, so a Python exception
//! raised in a callback is stashed; from then on the adapter stops calling
//! Python and answers so that the engine's accounting stays consistent, and
//! the replay loop ([`crate::sim`]) stops after the current request and
//! re-raises the stashed exception unchanged.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use memarena_core::request::{ObjId, Request};
use memarena_core::{FxHashMap, Policy};
use pyo3::intern;
use pyo3::prelude::*;

/// A [`Policy`] whose decisions are made by a Python object.
pub(crate) struct CallbackPolicy {
    obj: Py<PyAny>,
    name: &'static str,
    resident: FxHashMap<ObjId, u64>,
    /// The first exception a callback raised; `Cell` because `contains` and
    /// the replay loop only have `&self`. `Cell<PyErr>` is `Send`, which is
    /// all [`Policy`] requires.
    error: Cell<Option<PyErr>>,
    failed: bool,
}

/// Intern a policy name so it can be returned as `&'static str` by
/// [`Policy::name`]. Leaks each *distinct* name once, so creating many
/// simulators of the same Python policy does not grow memory.
pub(crate) fn intern_name(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

impl CallbackPolicy {
    /// Wrap `obj`; its name is `obj.name` (the registry name) or its type name.
    pub(crate) fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        for method in ["on_hit", "on_insert", "evict", "on_evict"] {
            if !obj.hasattr(method)? {
                return Err(crate::errors::InvalidConfigError::new_err(format!(
                    "a Python paging policy must define {method}(); {} does not",
                    obj.get_type().name()?
                )));
            }
        }
        let name = match obj.getattr(intern!(obj.py(), "name")) {
            Ok(n) => n.extract::<String>()?,
            Err(_) => obj.get_type().name()?.to_string(),
        };
        Ok(CallbackPolicy {
            obj: obj.clone().unbind(),
            name: intern_name(&name),
            resident: FxHashMap::default(),
            error: Cell::new(None),
            failed: false,
        })
    }

    /// Take the stashed exception, if a callback raised one.
    pub(crate) fn take_error(&self) -> Option<PyErr> {
        self.error.take()
    }

    fn stash(&mut self, err: PyErr) {
        if !self.failed {
            self.failed = true;
            self.error.set(Some(err));
        }
    }

    /// Call `self.obj.<method>(args)` unless an earlier callback failed.
    fn call<'py, A>(
        &mut self,
        py: Python<'py>,
        method: &Bound<'py, pyo3::types::PyString>,
        args: A,
    ) -> Option<Bound<'py, PyAny>>
    where
        A: pyo3::call::PyCallArgs<'py>,
    {
        if self.failed {
            return None;
        }
        match self.obj.bind(py).call_method1(method, args) {
            Ok(v) => Some(v),
            Err(e) => {
                self.stash(e);
                None
            }
        }
    }
}

impl Policy for CallbackPolicy {
    fn name(&self) -> &'static str {
        self.name
    }

    fn lookup(&mut self, req: &Request) -> bool {
        if !self.resident.contains_key(&req.id) {
            return false;
        }
        Python::attach(|py| {
            self.call(py, intern!(py, "on_hit"), (req.id, req.size, req.vtime));
        });
        true
    }

    fn insert(&mut self, req: &Request) {
        self.resident.insert(req.id, req.size);
        Python::attach(|py| {
            self.call(py, intern!(py, "on_insert"), (req.id, req.size, req.vtime));
        });
    }

    fn evict(&mut self, req: &Request) -> (ObjId, u64) {
        let chosen = Python::attach(|py| {
            let victim = self.call(py, intern!(py, "evict"), (req.vtime,))?;
            match victim.extract::<u64>() {
                Ok(id) => Some(id),
                Err(e) => {
                    // Name the policy and the callback; the conversion error is the cause.
                    let got = victim
                        .repr()
                        .map_or_else(|_| "?".to_string(), |r| r.to_string());
                    let kind = victim
                        .get_type()
                        .name()
                        .map_or_else(|_| "?".to_string(), |n| n.to_string());
                    let err = pyo3::exceptions::PyTypeError::new_err(format!(
                        "paging policy {:?}: evict({}) must return the id of a resident object \
                         (an int >= 0), got {got} ({kind})",
                        self.name, req.vtime
                    ));
                    err.set_cause(py, Some(e));
                    self.stash(err);
                    None
                }
            }
        });
        let Some(id) = chosen else {
            // A callback raised: keep the engine consistent by evicting any
            // resident object; the replay stops after this request.
            // (The engine never evicts from an empty cache; `(0, 0)` would
            // make `access_checked` report a broken contract, never panic.)
            let Some((&id, &size)) = self.resident.iter().next() else {
                return (0, 0);
            };
            self.resident.remove(&id);
            return (id, size);
        };
        match self.resident.remove(&id) {
            Some(size) => {
                Python::attach(|py| {
                    self.call(py, intern!(py, "on_evict"), (id,));
                });
                (id, size)
            }
            // Not resident: leave the set unchanged, so `access_checked`
            // reports the broken contract as an `Invariant` error naming
            // this policy.
            None => (id, 0),
        }
    }

    fn contains(&self, id: ObjId) -> bool {
        self.resident.contains_key(&id)
    }

    fn len(&self) -> usize {
        self.resident.len()
    }
}
