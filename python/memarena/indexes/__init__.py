"""The Rust core's vector indexes, shared by every family that searches vectors (public API).

* :class:`Index` (:mod:`memarena.indexes.core`): one class for every core
  kind (``flat``, ``simhash``, ``e2lsh``, ``ivf``, ``spann``, ``hnsw``,
  ``curator``): train / add / search / delete / reset / save / load, numpy
  in and out without copies, the GIL released, batches searched in
  parallel, per-vector tenant sets and per-query tenant filters;
* the registered indexes (:mod:`memarena.indexes.registered`): a subclass
  per kind with a ``Config`` of its build and search parameters, which the
  ``retrieval`` family registers as ``index=<name>`` and the ``agent``
  family's memories build by name.

DESIGN.md: "agent memories and the ``retrieval`` family share one index
implementation"; families never import each other's internals, so it lives
here, outside both.

>>> import numpy as np
>>> from memarena.indexes import Index
>>> x = np.random.default_rng(0).standard_normal((1000, 16), dtype=np.float32)
>>> idx = Index("hnsw", metric="l2")
>>> idx.add(x, tenants=[[i % 3] for i in range(1000)])
>>> d, ids = idx.search(x[:2], k=5, tenant=1)
>>> bool(((ids % 3 == 1) | (ids == -1)).all())
True
"""

from __future__ import annotations

from memarena.indexes.core import (
    BYTES_PER_RESULT,
    METRICS,
    Index,
    SearchConfig,
    TenantsLike,
    result_bytes,
    tenants_to_csr,
)
from memarena.indexes.registered import (
    BUILTIN_INDEXES,
    E2LSH,
    HNSW,
    IVF,
    SPANN,
    Curator,
    Flat,
    RegisteredIndex,
    SimHash,
    build_defaults,
)

__all__ = [
    "BUILTIN_INDEXES",
    "BYTES_PER_RESULT",
    "E2LSH",
    "HNSW",
    "IVF",
    "METRICS",
    "SPANN",
    "Curator",
    "Flat",
    "Index",
    "RegisteredIndex",
    "SearchConfig",
    "SimHash",
    "TenantsLike",
    "build_defaults",
    "result_bytes",
    "tenants_to_csr",
]
