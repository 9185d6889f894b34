//! `memarena._core.Index`: every index of `memarena-ann` behind one class,
//! and the seeded Gaussian-mixture generator.
//!
//! Boundary rules (STYLE B3): numpy arrays come in as `PyReadonlyArray`
//! slices (C-contiguous, no copy; a non-contiguous array raises), the core
//! call runs with the GIL released through [`DetachExt::run_core`], and
//! results go back with `into_pyarray` (the core's buffers become the numpy
//! arrays, no copy). Searches of a batch run on the core's threads.
//!
//! Mutating methods take `&mut self`: while a search of one `Index` runs
//! (GIL released) in one thread, another thread's `add` on the same object
//! is refused by pyo3's borrow check instead of racing; concurrent searches
//! share the index.

use std::path::PathBuf;

use memarena_ann::dataset;
use memarena_ann::{
    INDEX_KINDS, IndexConfig, Metric, SearchParams, TenantFilter, Tenants, VectorIndex, build,
    from_bytes, load,
};
use memarena_core::Error;
use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::config::from_py;
use crate::detach::DetachExt;
use crate::errors::to_py_err;

fn invalid(name: impl Into<String>, reason: impl Into<String>) -> PyErr {
    to_py_err(Error::invalid(name, reason))
}

/// The root key of build and search parameters in errors (`index.nlist`).
const ROOT: &str = memarena_ann::index::ROOT;

/// A 2-D float32 array's rows as one contiguous slice, checked against `dim`.
fn rows_of<'a>(arr: &'a PyReadonlyArray2<'_, f32>, dim: usize, what: &str) -> PyResult<&'a [f32]> {
    let shape = arr.shape();
    if shape[1] != dim {
        return Err(invalid(
            what,
            format!("has {} columns, the index has dim {dim}", shape[1]),
        ));
    }
    arr.as_slice()
        .map_err(|_| invalid(what, "must be C-contiguous (use numpy.ascontiguousarray)"))
}

fn slice_of<'a, T: numpy::Element>(
    arr: &'a PyReadonlyArray1<'_, T>,
    what: &str,
) -> PyResult<&'a [T]> {
    arr.as_slice()
        .map_err(|_| invalid(what, "must be C-contiguous (use numpy.ascontiguousarray)"))
}

/// A vector index (flat, simhash, e2lsh, ivf, spann, hnsw, curator) over
/// float32 rows with uint64 ids and optional tenant sets.
#[pyclass(name = "Index", module = "memarena._core")]
pub struct PyIndex {
    inner: Box<dyn VectorIndex>,
}

#[pymethods]
impl PyIndex {
    /// A new empty index from its complete build config: a dict whose
    /// `kind` names the index and whose other keys are every build
    /// parameter of that kind (errors name `index.<key>`).
    #[new]
    fn new(config: &Bound<'_, PyAny>, metric: &str, dim: usize) -> PyResult<Self> {
        let config: IndexConfig = from_py(config, ROOT)?;
        let metric = Metric::from_name(metric).map_err(to_py_err)?;
        let inner = build(metric, dim, &config).map_err(to_py_err)?;
        Ok(PyIndex { inner })
    }

    /// Loads an index written by `save`; a truncated or corrupted file raises
    /// `MalformedInputError` naming the byte offset.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.run_core(|| load(&path))?;
        Ok(PyIndex { inner })
    }

    /// Loads an index from `to_bytes` output.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let inner = py.run_core(|| from_bytes(data))?;
        Ok(PyIndex { inner })
    }

    /// Registry name of the index kind.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    /// The metric: "l2", "ip" or "cosine".
    #[getter]
    fn metric(&self) -> &'static str {
        self.inner.metric().name()
    }

    /// Vector dimension.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Whether the index can accept vectors.
    #[getter]
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }

    /// Learns the index structure from `(n, dim)` float32 rows.
    fn train(&mut self, py: Python<'_>, data: PyReadonlyArray2<'_, f32>) -> PyResult<()> {
        let data = rows_of(&data, self.inner.dim(), "data")?;
        let idx = &mut self.inner;
        py.run_core(|| idx.train(data))
    }

    /// Adds `(n, dim)` float32 rows with uint64 ids; row `i` is readable by
    /// tenants `tenant_ids[tenant_offsets[i]:tenant_offsets[i + 1]]` (CSR).
    /// A signal stops graph, hash, list and tree indexes between two rows;
    /// each insertion is atomic, so the index stays valid with the first
    /// rows inserted (`len` tells how many).
    #[pyo3(signature = (data, ids, tenant_offsets=None, tenant_ids=None))]
    fn add(
        &mut self,
        py: Python<'_>,
        data: PyReadonlyArray2<'_, f32>,
        ids: PyReadonlyArray1<'_, u64>,
        tenant_offsets: Option<PyReadonlyArray1<'_, u64>>,
        tenant_ids: Option<PyReadonlyArray1<'_, u32>>,
    ) -> PyResult<()> {
        let data = rows_of(&data, self.inner.dim(), "data")?;
        let ids = slice_of(&ids, "ids")?;
        let tenants = match (&tenant_offsets, &tenant_ids) {
            (None, None) => None,
            (Some(o), Some(t)) => {
                let t = Tenants::new(slice_of(o, "tenant_offsets")?, slice_of(t, "tenant_ids")?)
                    .map_err(to_py_err)?;
                if t.len() != ids.len() {
                    return Err(invalid(
                        "tenant_offsets",
                        format!("describes {} rows for {} ids", t.len(), ids.len()),
                    ));
                }
                Some(t)
            }
            _ => {
                return Err(invalid(
                    "tenant_offsets",
                    "tenant_offsets and tenant_ids go together",
                ));
            }
        };
        let idx = &mut self.inner;
        py.run_core(|| idx.add_with_tenants(data, ids, tenants))
    }

    /// Searches `(nq, dim)` queries for their `k` nearest neighbours with
    /// the complete search parameters `params` (every key of
    /// `search_param_names()`). Returns `(distances, ids)`, both `(nq, k)`,
    /// padded with id -1. `tenant` filters every query to one tenant;
    /// `query_tenants` gives one tenant per query.
    #[pyo3(signature = (queries, k, params, tenant=None, query_tenants=None))]
    #[allow(clippy::type_complexity)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArray2<'py, f32>,
        k: usize,
        params: &Bound<'py, PyAny>,
        tenant: Option<u32>,
        query_tenants: Option<PyReadonlyArray1<'py, u32>>,
    ) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<i64>>)> {
        let q = rows_of(&queries, self.inner.dim(), "queries")?;
        let sp: SearchParams = from_py(params, ROOT)?;
        sp.validate().map_err(to_py_err)?;
        let qt = query_tenants
            .as_ref()
            .map(|a| slice_of(a, "query_tenants"))
            .transpose()?;
        let filter = match (tenant, qt) {
            (None, None) => None,
            (Some(t), None) => Some(TenantFilter::Tenant(t)),
            (None, Some(ts)) => Some(TenantFilter::PerQuery(ts)),
            (Some(_), Some(_)) => {
                return Err(invalid("tenant", "give tenant or query_tenants, not both"));
            }
        };
        let idx = &self.inner;
        let res = py.run_core(|| idx.search(q, k, &sp, filter.as_ref()))?;
        let shape = (res.nq, res.k);
        let distances = Array2::from_shape_vec(shape, res.distances).expect("nq * k distances");
        let ids = Array2::from_shape_vec(shape, res.ids).expect("nq * k ids");
        Ok((distances.into_pyarray(py), ids.into_pyarray(py)))
    }

    /// Deletes ids (unknown ones are ignored); returns how many were present.
    fn delete(&mut self, py: Python<'_>, ids: PyReadonlyArray1<'_, u64>) -> PyResult<usize> {
        let ids = slice_of(&ids, "ids")?;
        let idx = &mut self.inner;
        py.run_core(|| idx.delete(ids))
    }

    /// Removes every vector, keeping the training state.
    fn reset(&mut self) {
        self.inner.reset();
    }

    /// Whether `id` is a live vector.
    fn contains(&self, id: u64) -> bool {
        self.inner.contains(id)
    }

    /// Number of live vectors.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Number of live vectors readable by `tenant`.
    fn tenant_len(&self, tenant: u32) -> usize {
        self.inner.tenant_len(tenant)
    }

    /// Heap bytes of the index (vectors, ids, structure, tenant data).
    fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes()
    }

    /// Bytes of per-tenant structure attributable to `tenant`.
    fn tenant_memory_bytes(&self, tenant: u32) -> usize {
        self.inner.tenant_memory_bytes(tenant)
    }

    /// Per-tenant bytes of each of `tenants`, as uint64.
    fn tenant_memory_bytes_many<'py>(
        &self,
        py: Python<'py>,
        tenants: PyReadonlyArray1<'py, u32>,
    ) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let ts = slice_of(&tenants, "tenants")?;
        let idx = &self.inner;
        let out = py.run_core(|| {
            Ok(ts
                .iter()
                .map(|&t| idx.tenant_memory_bytes(t) as u64)
                .collect::<Vec<_>>())
        })?;
        Ok(out.into_pyarray(py))
    }

    /// The index in the versioned, checksummed file format.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let idx = &self.inner;
        let bytes = py.run_core(|| Ok(idx.to_bytes()))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Writes the index to `path` atomically (temporary file, then rename).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let idx = &self.inner;
        py.run_core(|| idx.save(&path))
    }

    /// `Index(kind=..., metric=..., dim=..., len=...)`.
    fn __repr__(&self) -> String {
        format!(
            "Index(kind={:?}, metric={:?}, dim={}, len={})",
            self.inner.kind(),
            self.inner.metric().name(),
            self.inner.dim(),
            self.inner.len()
        )
    }
}

/// Registry names of the core's index kinds.
#[pyfunction]
pub(crate) fn index_kinds() -> Vec<&'static str> {
    INDEX_KINDS.to_vec()
}

/// The metrics an index accepts (`l2`, `ip`, `cosine`).
#[pyfunction]
pub(crate) fn metric_names() -> Vec<&'static str> {
    Metric::NAMES.to_vec()
}

/// Names of the search parameters every index accepts (each reads its own).
#[pyfunction]
pub(crate) fn search_param_names() -> Vec<&'static str> {
    SearchParams::names().to_vec()
}

/// A build config dict as the core reads it: the deserialized
/// `IndexConfig`'s Rust `Debug` form. For tests that check every field
/// arrives.
#[pyfunction]
pub(crate) fn index_config_debug(config: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(format!("{:?}", from_py::<IndexConfig>(config, ROOT)?))
}

/// The Rust-side default build config of `kind` (for Rust tests and
/// examples) in the `Debug` form of `index_config_debug`. For the test that
/// checks it equals the Python `Config` defaults.
#[pyfunction]
pub(crate) fn index_default_debug(kind: &str) -> PyResult<String> {
    Ok(format!(
        "{:?}",
        IndexConfig::defaults(kind).map_err(to_py_err)?
    ))
}

/// A search parameter dict as the core reads it (`SearchParams` in its
/// Rust `Debug` form).
#[pyfunction]
pub(crate) fn search_params_debug(params: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(format!("{:?}", from_py::<SearchParams>(params, ROOT)?))
}

/// The Rust-side default search parameters in the `Debug` form of
/// `search_params_debug`.
#[pyfunction]
pub(crate) fn search_default_debug() -> String {
    format!("{:?}", SearchParams::default())
}

/// A seeded Gaussian mixture: `(base, queries, base_labels)`, float32 rows
/// `(n_base, dim)` and `(n_queries, dim)`, uint32 labels. Queries are fresh
/// draws from the same mixture (held out from the base set).
#[pyfunction]
#[allow(clippy::type_complexity)]
pub(crate) fn gaussian_mixture<'py>(
    py: Python<'py>,
    n_base: usize,
    n_queries: usize,
    dim: usize,
    n_clusters: usize,
    cluster_std: f32,
    seed: u64,
) -> PyResult<(
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray1<u32>>,
)> {
    let ds = py.run_core(|| {
        dataset::gaussian_mixture(n_base, n_queries, dim, n_clusters, cluster_std, seed)
    })?;
    let base = Array2::from_shape_vec((n_base, dim), ds.base).expect("n_base * dim values");
    let queries =
        Array2::from_shape_vec((n_queries, dim), ds.queries).expect("n_queries * dim values");
    Ok((
        base.into_pyarray(py),
        queries.into_pyarray(py),
        ds.base_labels.into_pyarray(py),
    ))
}

/// Mean recall@k: the share of each query's true `k` neighbours (the first
/// `k` columns of `truth`; `-1` entries are not counted) among its first `k`
/// results (the first `k` columns of `found`). Computed by the core's
/// `memarena_ann::dataset::recall_at_k`, the one implementation.
#[pyfunction]
pub(crate) fn recall_at_k(
    py: Python<'_>,
    found: PyReadonlyArray2<'_, i64>,
    truth: PyReadonlyArray2<'_, i64>,
    k: usize,
) -> PyResult<f64> {
    let (fs, ts) = (found.shape(), truth.shape());
    if fs[0] != ts[0] || fs[1] < k || ts[1] < k {
        return Err(invalid(
            "recall_at_k",
            format!(
                "shapes ({}, {}) and ({}, {}) do not allow k={k}",
                fs[0], fs[1], ts[0], ts[1]
            ),
        ));
    }
    let (found, truth) = (found.as_array(), truth.as_array());
    let first_k = |a: numpy::ndarray::ArrayView2<'_, i64>| -> Vec<i64> {
        a.rows()
            .into_iter()
            .flat_map(|r| r.iter().take(k).copied().collect::<Vec<_>>())
            .collect()
    };
    let (found, truth) = (first_k(found), first_k(truth));
    Ok(py.detach(|| dataset::recall_at_k(&found, k, &truth, k)))
}
