"""Seeded synthetic datasets, tenant assignments, exact ground truth and recall.

Everything here is deterministic in its seed on every machine: the mixture is
drawn by the Rust core's generator, tenants by numpy's PCG64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memarena import _core
from memarena.errors import InvalidConfigError
from memarena.indexes import Index

__all__ = ["Dataset", "assign_tenants", "gaussian_mixture", "ground_truth", "recall_at_k"]


@dataclass
class Dataset:
    """Base vectors, held-out queries and their exact neighbours.

    ``truth`` holds the ids (row numbers of ``base``) of each query's
    ``k_truth`` nearest base vectors by exact search; with tenants,
    ``truth`` is the filtered truth (nearest among the query's tenant's
    vectors), ``-1`` padded where a tenant holds fewer than ``k_truth``.
    """

    name: str
    metric: str
    base: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]
    truth: npt.NDArray[np.int64]
    #: CSR tenant sets of the base vectors, or None.
    tenant_offsets: npt.NDArray[np.uint64] | None = None
    tenant_ids: npt.NDArray[np.uint32] | None = None
    #: The tenant of each query, or None.
    query_tenants: npt.NDArray[np.uint32] | None = None
    n_tenants: int = 0

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])

    @property
    def n_base(self) -> int:
        return int(self.base.shape[0])

    @property
    def n_queries(self) -> int:
        return int(self.queries.shape[0])

    @property
    def tenants(self) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint32]] | None:
        """CSR ``(offsets, tenant_ids)`` for :meth:`Index.add`, or None."""
        if self.tenant_offsets is None or self.tenant_ids is None:
            return None
        return self.tenant_offsets, self.tenant_ids


def gaussian_mixture(
    n_base: int, n_queries: int, dim: int, *, n_clusters: int = 64, cluster_std: float = 0.5, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """``(base, queries)``: centres from N(0, I), points centre + N(0, std^2 I).

    Queries are fresh draws from the same mixture, held out from the base set.

    :raises InvalidConfigError: a size below 1 (0 vectors are allowed), or
        vectors that would not fit in the available memory.
    """
    for key, v in (("n_base", n_base), ("n_queries", n_queries), ("dim", dim), ("n_clusters", n_clusters)):
        if v < (0 if key in ("n_base", "n_queries") else 1):
            raise InvalidConfigError(f"gaussian_mixture: {key} must be positive, got {v}")
    from memarena.resources import check_fits

    check_fits(
        (n_base + n_queries + n_clusters) * dim * 4,
        "gaussian_mixture: n_base, n_queries, n_clusters x dim",
        f"({n_base} + {n_queries} + {n_clusters}) vectors x {dim} dims x 4 B",
    )
    base, queries, _ = _core.gaussian_mixture(n_base, n_queries, dim, n_clusters, cluster_std, seed)
    return base, queries


def assign_tenants(
    n: int,
    n_tenants: int,
    *,
    skew: float = 3.0,
    shared_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint32]]:
    """Tenant sets for ``n`` vectors, as CSR ``(offsets, tenant_ids)``.

    Each vector's owner is ``floor(u**skew * n_tenants)`` for uniform ``u``:
    tenant 0 owns the most vectors and the last tenants very few, so queries
    drawn uniformly over tenants are mostly *selective* (a tenant sees well
    under 1% of the index at the default skew with 100 tenants). A
    ``shared_fraction`` of vectors is also readable by a second tenant, drawn
    uniformly (shared documents).
    """
    if n_tenants < 1:
        raise InvalidConfigError(f"n_tenants must be >= 1, got {n_tenants}")
    if skew <= 0 or not 0 <= shared_fraction <= 1:
        raise InvalidConfigError(f"need skew > 0 and 0 <= shared_fraction <= 1, got {skew}, {shared_fraction}")
    rng = np.random.default_rng(seed)
    owner = np.minimum((rng.random(n) ** skew * n_tenants).astype(np.uint32), n_tenants - 1)
    second = rng.integers(0, n_tenants, n, dtype=np.uint32)
    shared = (rng.random(n) < shared_fraction) & (second != owner)
    counts = 1 + shared.astype(np.uint64)
    offsets = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(counts, out=offsets[1:])
    ids = np.empty(int(offsets[-1]), dtype=np.uint32)
    starts = offsets[:-1].astype(np.int64)
    ids[starts] = owner
    ids[starts[shared] + 1] = second[shared]
    return offsets, ids


def ground_truth(
    base: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    k: int,
    metric: str,
    *,
    tenants: tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint32]] | None = None,
    query_tenants: npt.NDArray[np.uint32] | None = None,
) -> npt.NDArray[np.int64]:
    """Exact ``k`` nearest base rows (ids ``0..n``) of each query, by the flat index.

    With ``tenants`` and ``query_tenants``: the nearest among the rows each
    query's tenant may read.
    """
    flat = Index("flat", dim=base.shape[1], metric=metric)
    flat.add(base, np.arange(base.shape[0], dtype=np.uint64), tenants=tenants)
    _, ids = flat.search(queries, k, tenant=query_tenants)
    return ids


def recall_at_k(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64], k: int) -> float:
    """Mean recall@k: the share of each query's true ``k`` neighbours among its first ``k`` results.

    ``-1`` entries of the truth (a tenant with fewer than ``k`` vectors) are
    not counted. Computed in the Rust core (one implementation for Rust and Python).

    :raises InvalidConfigError: the shapes do not allow ``k``.
    """
    f = np.asarray(found, dtype=np.int64)
    t = np.asarray(truth, dtype=np.int64)
    if f.ndim != 2 or t.ndim != 2:
        raise InvalidConfigError(f"recall_at_k: shapes {f.shape} and {t.shape} do not allow k={k}")
    return _core.recall_at_k(f, t, k)
