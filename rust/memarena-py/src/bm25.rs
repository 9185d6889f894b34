//! `memarena._core.BM25Index`: `memarena-ann`'s [`Bm25`] (Okapi BM25 with
//! `rank_bm25.BM25Okapi`'s scores bit for bit) over texts tokenized in Rust,
//! or over token lists tokenized in Python.
//!
//! Texts come in as borrowed UTF-8 views of the Python strings (no copy);
//! the core call then runs with the GIL released while those strings are
//! kept alive. A non-string element raises `TypeError` naming its position.

use memarena_ann::bm25::{Bm25, TOKENIZERS, Tokenizer};
use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::detach::DetachExt;
use crate::errors::to_py_err;

/// The strings of a Python iterable, as bound objects (kept alive) in order.
fn strings<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Vec<Bound<'py, PyString>>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a list of str, not one str"
        )));
    }
    obj.try_iter()?
        .enumerate()
        .map(|(i, item)| {
            let item = item?;
            item.cast_into::<PyString>().map_err(|e| {
                let got = e.into_inner();
                let name = got
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "?".to_string());
                PyTypeError::new_err(format!("{what}[{i}] must be str, not {name}"))
            })
        })
        .collect()
}

/// UTF-8 views of `strings` (a lone surrogate raises `UnicodeEncodeError`).
fn views<'a>(strings: &'a [Bound<'_, PyString>]) -> PyResult<Vec<&'a str>> {
    strings.iter().map(|s| s.to_str()).collect()
}

/// Okapi BM25 over a growing set of documents, with `rank_bm25.BM25Okapi`'s
/// scores bit for bit (see `memarena_ann::bm25`). `tokenizer` is one of
/// `bm25_tokenizers()` (used by `add` and `scores`), or None for an index fed
/// token lists only (`add_tokens`, `scores_tokens`).
#[pyclass(name = "BM25Index", module = "memarena._core")]
pub struct PyBm25 {
    inner: Bm25,
    tokenizer: Option<Tokenizer>,
}

impl PyBm25 {
    fn tokenizer(&self, method: &str) -> PyResult<Tokenizer> {
        self.tokenizer.ok_or_else(|| {
            to_py_err(memarena_core::Error::invalid(
                "tokenizer",
                format!("this index has none (tokenizer=None): use {method}_tokens"),
            ))
        })
    }
}

#[pymethods]
impl PyBm25 {
    /// An empty index; bad parameters raise `InvalidConfigError` naming them.
    #[new]
    #[pyo3(signature = (k1=1.5, b=0.75, epsilon=0.25, tokenizer=Some("whitespace_split")))]
    fn new(k1: f64, b: f64, epsilon: f64, tokenizer: Option<&str>) -> PyResult<Self> {
        let inner = Bm25::new(k1, b, epsilon).map_err(to_py_err)?;
        let tokenizer = tokenizer
            .map(Tokenizer::from_name)
            .transpose()
            .map_err(to_py_err)?;
        Ok(PyBm25 { inner, tokenizer })
    }

    /// The tokenizer's name, or None.
    #[getter(tokenizer)]
    fn tokenizer_name(&self) -> Option<&'static str> {
        self.tokenizer.map(Tokenizer::name)
    }

    /// `(k1, b, epsilon)`.
    #[getter]
    fn params(&self) -> (f64, f64, f64) {
        self.inner.params()
    }

    /// Appends documents, each text split by the tokenizer; ids continue from `len`.
    fn add(&mut self, py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<()> {
        let tok = self.tokenizer("add")?;
        let owned = strings(texts, "texts")?;
        let texts = views(&owned)?;
        let inner = &mut self.inner;
        py.run_core(|| {
            for t in texts {
                inner.add_text(tok, t)?;
            }
            Ok(())
        })
    }

    /// Appends already tokenized documents (an iterable of lists of str).
    fn add_tokens(&mut self, py: Python<'_>, docs: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut owned = Vec::new();
        for (i, doc) in docs.try_iter()?.enumerate() {
            owned.push(strings(&doc?, &format!("docs[{i}]"))?);
        }
        let docs = owned
            .iter()
            .map(|d| views(d))
            .collect::<PyResult<Vec<_>>>()?;
        let inner = &mut self.inner;
        py.run_core(|| {
            for d in docs {
                inner.add_tokens(d)?;
            }
            Ok(())
        })
    }

    /// BM25 score of every document for `query` (split by the tokenizer), float64 by document id.
    fn scores<'py>(&mut self, py: Python<'py>, query: &str) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let tok = self.tokenizer("scores")?;
        let inner = &mut self.inner;
        let out = py.run_core(|| Ok(inner.scores_text(tok, query)))?;
        Ok(out.into_pyarray(py))
    }

    /// BM25 score of every document for an already tokenized query.
    fn scores_tokens<'py>(
        &mut self,
        py: Python<'py>,
        terms: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let owned = strings(terms, "terms")?;
        let terms = views(&owned)?;
        let inner = &mut self.inner;
        let out = py.run_core(|| Ok(inner.scores(terms)))?;
        Ok(out.into_pyarray(py))
    }

    /// The terms of `text` under the tokenizer (Python's `str.split(" ")` or `str.split()`).
    fn tokenize(&self, text: &str) -> PyResult<Vec<String>> {
        let tok = self.tokenizer("tokenize")?;
        Ok(tok.tokenize(text).into_iter().map(str::to_owned).collect())
    }

    /// The idf of `term` after the epsilon floor (0 for an unknown term).
    fn idf(&mut self, term: &str) -> f64 {
        self.inner.idf(term)
    }

    /// Number of documents holding `term`.
    fn doc_freq(&self, term: &str) -> usize {
        self.inner.doc_freq(term)
    }

    /// Number of distinct terms.
    #[getter]
    fn n_terms(&self) -> usize {
        self.inner.n_terms()
    }

    /// Number of documents.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Heap bytes of the index (postings, terms, per-document lengths and norms).
    fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes()
    }

    /// The index as bytes (`from_bytes` reads them back; the tokenizer is not stored).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// The index `to_bytes` wrote, with `tokenizer`; corrupt bytes raise
    /// `MalformedInputError` naming the byte offset.
    #[staticmethod]
    #[pyo3(signature = (data, tokenizer=Some("whitespace_split")))]
    fn from_bytes(py: Python<'_>, data: &[u8], tokenizer: Option<&str>) -> PyResult<Self> {
        let tokenizer = tokenizer
            .map(Tokenizer::from_name)
            .transpose()
            .map_err(to_py_err)?;
        let inner = py.run_core(|| Bm25::from_bytes(data))?;
        Ok(PyBm25 { inner, tokenizer })
    }
}

/// Names of the tokenizers `BM25Index` runs in Rust.
#[pyfunction]
pub fn bm25_tokenizers() -> Vec<&'static str> {
    TOKENIZERS.to_vec()
}
