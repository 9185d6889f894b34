"""Retrieval: the ``retrieval`` family's facade: indexes, tenants, datasets and recall.

The indexes themselves are :mod:`memarena.indexes` (shared with the agent
family; :class:`Index` is re-exported here, the registered kinds are
``index=<name>``). The family adds seeded datasets with exact ground truth
(:mod:`memarena.families.retrieval.dataset`), the real-embedding set
(:mod:`memarena.families.retrieval.real`), workloads and the runner.
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
