"""Retrieval: vector indexes of the Rust core, tenants, datasets and recall.

Typed facade over ``memarena._core``: :class:`Index` (train / add / search /
delete / reset / save / load, numpy in and out without copies, the GIL
released, batches searched in parallel, per-vector tenant sets and
per-query tenant filters), the registered indexes in
:mod:`memarena.families.retrieval.indexes` (``index=<name>``), and seeded datasets
with exact ground truth in :mod:`memarena.families.retrieval.dataset`.

>>> import numpy as np
>>> from memarena.families.retrieval import Index
>>> x = np.random.default_rng(0).standard_normal((1000, 16), dtype=np.float32)
>>> idx = Index("hnsw", metric="l2")
>>> idx.add(x, tenants=[[i % 3] for i in range(1000)])
>>> d, ids = idx.search(x[:2], k=5, tenant=1)
>>> bool(((ids % 3 == 1) | (ids == -1)).all())
True
"""

from __future__ import annotations

from memarena.families.retrieval.dataset import Dataset, assign_tenants, gaussian_mixture, ground_truth, recall_at_k
from memarena.families.retrieval.index import METRICS, Index, SearchConfig, tenants_to_csr

__all__ = [
    "METRICS",
    "Dataset",
    "Index",
    "SearchConfig",
    "assign_tenants",
    "gaussian_mixture",
    "ground_truth",
    "recall_at_k",
    "tenants_to_csr",
]
