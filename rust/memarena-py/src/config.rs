//! Config dicts in: one serde call from a Python object to a core config
//! struct, errors as `InvalidConfigError` naming the key path.
//!
//! The core's config types derive `Deserialize` with
//! `#[serde(deny_unknown_fields)]` and no defaults, so a dict must hold
//! every field and nothing else; [`from_py`] reads it through `pythonize`,
//! tracks the key path with `serde_path_to_error`, and words the standard
//! serde messages as the rest of memarena does (`config.kv.block_sise:
//! unknown key; allowed: block_size, watermark, prefix_caching`).

use memarena_core::Error;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use serde::de::DeserializeOwned;

use crate::errors::to_py_err;

/// Deserializes `obj` (a dict, or what `T` accepts) into `T`; `root` names
/// it in errors (`config`).
pub(crate) fn from_py<T: DeserializeOwned>(obj: &Bound<'_, PyAny>, root: &str) -> PyResult<T> {
    let obj = tag_first(obj)?;
    let mut de = pythonize::Depythonizer::from_object(&obj);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            root.to_string()
        } else {
            format!("{root}.{path}")
        };
        let (at, reason) = reword(at, &e.inner().to_string());
        to_py_err(Error::invalid(at, reason))
    })
}

/// A copy of `obj` whose dicts have their `kind` key first (the core's
/// tagged enums read the tag before the variant's fields); other values are
/// shared.
fn tag_first<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    if let Ok(d) = obj.cast::<PyDict>() {
        let out = PyDict::new(py);
        let tag = memarena_core::config::TAG;
        if let Some(k) = d.get_item(tag)? {
            out.set_item(tag, k)?;
        }
        for (k, v) in d.iter() {
            if !k.extract::<&str>().is_ok_and(|k| k == tag) {
                out.set_item(k, tag_first(&v)?)?;
            }
        }
        return Ok(out.into_any());
    }
    let container = |v: &Bound<'py, PyAny>| {
        v.is_instance_of::<PyDict>()
            || v.is_instance_of::<PyList>()
            || v.is_instance_of::<PyTuple>()
    };
    if let Ok(l) = obj.cast::<PyList>() {
        if l.iter().any(|v| container(&v)) {
            let items = l
                .iter()
                .map(|v| tag_first(&v))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok(PyList::new(py, items)?.into_any());
        }
    } else if let Ok(t) = obj.cast::<PyTuple>()
        && t.iter().any(|v| container(&v))
    {
        let items = t
            .iter()
            .map(|v| tag_first(&v))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(PyTuple::new(py, items)?.into_any());
    }
    Ok(obj.clone())
}

/// The names in serde's "expected one of `a`, `b`" / "expected `a` or `b`"
/// / "expected `a`" tails.
fn names(tail: &str) -> Vec<&str> {
    tail.split('`').skip(1).step_by(2).collect()
}

/// Words serde's standard messages as memarena does, moving the key into
/// the path where serde names it in the message.
fn reword(at: String, msg: &str) -> (String, String) {
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((key, tail)) = rest.split_once('`')
    {
        let at = if at.ends_with(&format!(".{key}")) {
            at
        } else {
            format!("{at}.{key}")
        };
        let allowed = names(tail);
        let allowed = if allowed.is_empty() {
            "none".to_string()
        } else {
            allowed.join(", ")
        };
        return (at, format!("unknown key; allowed: {allowed}"));
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `")
        && let Some((value, tail)) = rest.split_once('`')
    {
        let names = names(tail).join(", ");
        if at.ends_with(&format!(".{}", memarena_core::config::TAG)) {
            return (at, format!("unknown kind {value:?}; available: {names}"));
        }
        return (at, format!("must be one of {names}, got {value:?}"));
    }
    if let Some(rest) = msg.strip_prefix("missing field `")
        && let Some((key, _)) = rest.split_once('`')
    {
        return (format!("{at}.{key}"), "is required".to_string());
    }
    // A Python conversion error ("TypeError: must be real number, not str").
    let msg = ["TypeError: ", "OverflowError: ", "ValueError: "]
        .iter()
        .find_map(|p| msg.strip_prefix(p))
        .map_or(msg.to_string(), |m| format!("wrong type or range: {m}"));
    (at, msg)
}

#[cfg(test)]
mod tests {
    use super::reword;

    #[test]
    fn serde_messages_in_memarena_words() {
        let (at, r) = reword(
            "config.kv.block_sise".into(),
            "unknown field `block_sise`, expected one of `block_size`, `watermark`",
        );
        assert_eq!(at, "config.kv.block_sise");
        assert_eq!(r, "unknown key; allowed: block_size, watermark");
        let (at, r) = reword(
            "config.scheduler.preemption".into(),
            "unknown variant `drop`, expected `recompute` or `swap`",
        );
        assert_eq!(at, "config.scheduler.preemption");
        assert_eq!(r, "must be one of recompute, swap, got \"drop\"");
        let (at, r) = reword("config.kv".into(), "missing field `watermark`");
        assert_eq!(
            (at.as_str(), r.as_str()),
            ("config.kv.watermark", "is required")
        );
    }
}
