"""Retrieval: the ``retrieval`` family's facade: indexes, tenants, datasets and recall.

The indexes themselves are :mod:`memarena.indexes` (shared with the agent
family): :class:`Index` and the registered kinds (``index=<name>``) are
re-exported here. The family adds seeded datasets with exact ground truth
(:mod:`memarena.families.retrieval.dataset`), the real-embedding set
(:mod:`memarena.families.retrieval.real`), workloads and the runner.

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
from memarena.indexes import METRICS, Index, SearchConfig, tenants_to_csr

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
