"""The retrieval family's memory estimate (:meth:`memarena.api.Family.estimate_memory`).

A retrieval run holds the base vectors and the queries (``float32``: 4 B a
dimension), a second copy of the base while it is generated and while the
exact ground truth is computed (a flat index), the index under test (the
vectors again, plus its own structures: about 128 B a vector), the ground
truth (``n_queries x k_truth`` ids), the search results (``n_queries x
k`` ids and distances, 12 B each) and the mixture's ``n_clusters x dim`` centres.
"""

from __future__ import annotations

from typing import Any

from memarena.api import MemoryEstimate
from memarena.indexes.core import BYTES_PER_RESULT, result_bytes

__all__ = ["BYTES_PER_RESULT", "INDEX_BYTES_PER_VECTOR", "estimate", "result_bytes"]

#: An index's own structures per vector (ids, lists, graph links, codes), beyond the vectors.
INDEX_BYTES_PER_VECTOR = 128


def estimate(family: Any, workload: Any) -> MemoryEstimate | None:
    """The retrieval run's memory: vectors (twice), queries, the index, ground truth and results."""
    try:
        n, nq, dim = int(workload.n_vectors), int(workload.n_queries), int(workload.dim)
        k_truth = int(workload.k_truth)
    except (AttributeError, TypeError, ValueError):
        return None
    vectors = 3 * n * dim * 4  # the base, its generation or ground-truth copy, the index's copy
    centres = int(getattr(workload, "n_clusters", 0) or 0) * dim * 4
    queries = nq * dim * 4
    index = n * INDEX_BYTES_PER_VECTOR
    results = result_bytes(nq, k_truth) + 2 * result_bytes(nq, int(family.k))  # truth; batch and the compared one
    total = vectors + queries + index + results + centres
    keys = ["workload.n_vectors", "workload.dim"]
    if queries + results > vectors:
        keys = ["workload.n_queries", "family.k", "workload.k_truth", *keys]
    if centres > max(vectors, queries + results):
        keys = ["workload.n_clusters", *keys]
    detail = (
        f"3 x {n:.3g} vectors x {dim} dims x 4 B + {nq:.3g} queries x {dim} dims x 4 B"
        f" + {n:.3g} x {INDEX_BYTES_PER_VECTOR} B of index + results of k={family.k} and k_truth={k_truth}"
    )
    if centres:
        detail += f" + {centres:.3g} B of cluster centres"
    return MemoryEstimate(bytes=min(total, 2**63), keys=tuple(keys), detail=detail)
