"""Retrieval workloads: seeded Gaussian mixtures with held-out queries and exact ground truth.

``gaussian_mixture_128_l2`` (128-d, squared L2) and
``gaussian_mixture_384_cosine`` (384-d, cosine, the width of small sentence
embedders): 100k base vectors and 1000 held-out queries by default, the
ground truth by an exact (flat) search. With ``n_tenants > 0`` every vector
gets an owner tenant (skewed sizes, so most tenants are selective) and some
a second one, each query a tenant drawn uniformly, and the ground truth is
the filtered one.

``minilm_docstrings``: real sentence embeddings (all-MiniLM-L6-v2 on the
standard library's and a few packages' documentation text, 384-d or a 128-d
projection, unit norm, exact neighbours by inner product), read from the
cache :mod:`memarena.families.retrieval.real` builds; loading without it
fails with the cache path and the command that builds it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from memarena.api import Workload, param
from memarena.errors import InvalidConfigError
from memarena.families.retrieval.dataset import Dataset, assign_tenants, gaussian_mixture, ground_truth
from memarena.indexes import METRICS

__all__ = [
    "RETRIEVAL_WORKLOADS",
    "GaussianMixture128L2",
    "GaussianMixture384Cosine",
    "GaussianMixtureDataset",
    "MiniLMDocstrings",
]


class GaussianMixtureDataset(Workload):
    """A seeded Gaussian mixture, held-out queries and exact ground truth."""

    name: ClassVar[str] = "gaussian_mixture"
    family: ClassVar[str] = "retrieval"

    @dataclass
    class Config:
        _target_: str = "memarena.families.retrieval.workloads.GaussianMixtureDataset"
        dim: int = param(128, ge=1)
        metric: str = param("l2", choices=METRICS)
        #: Base vectors.
        n_vectors: int = param(100_000, ge=1)
        #: Held-out queries.
        n_queries: int = param(1000, ge=1)
        n_clusters: int = param(64, ge=1)
        #: Standard deviation of the points around their centre (centres are N(0, I)).
        cluster_std: float = param(0.5, ge=0)
        #: Neighbours in the ground truth.
        k_truth: int = param(10, ge=1)
        #: Tenants (0: none). Owners are skewed (u^tenant_skew), queries uniform over tenants.
        n_tenants: int = param(0, ge=0, le=2**32)  # tenant ids are the core's u32
        tenant_skew: float = param(3.0, gt=0)
        #: Share of vectors readable by a second tenant.
        shared_fraction: float = param(0.2, ge=0, le=1)
        #: Added to the run's seed.
        seed_offset: int = 0

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        #: Seconds the last :meth:`load` spent on the exact ground truth.
        self.truth_s = 0.0

    def describe(self) -> str:
        return f"gmm{self.dim}_{self.metric}" + (f"_t{self.n_tenants}" if self.n_tenants else "")

    def load(self, seed: int) -> Dataset:
        s = seed + self.seed_offset
        base, queries = gaussian_mixture(
            self.n_vectors, self.n_queries, self.dim, n_clusters=self.n_clusters, cluster_std=self.cluster_std, seed=s
        )
        tenants = query_tenants = None
        if self.n_tenants:
            tenants = assign_tenants(
                self.n_vectors, self.n_tenants, skew=self.tenant_skew, shared_fraction=self.shared_fraction, seed=s
            )
            rng = np.random.default_rng([s, 1])
            query_tenants = rng.integers(0, self.n_tenants, self.n_queries, dtype=np.uint32)
        t0 = time.perf_counter()
        truth = ground_truth(base, queries, self.k_truth, self.metric, tenants=tenants, query_tenants=query_tenants)
        self.truth_s = time.perf_counter() - t0
        return Dataset(
            name=self.describe(),
            metric=self.metric,
            base=base,
            queries=queries,
            truth=truth,
            tenant_offsets=None if tenants is None else tenants[0],
            tenant_ids=None if tenants is None else tenants[1],
            query_tenants=query_tenants,
            n_tenants=self.n_tenants,
        )


class GaussianMixture128L2(GaussianMixtureDataset):
    """100k 128-d Gaussian-mixture vectors, squared L2, 1000 held-out queries."""

    name: ClassVar[str] = "gaussian_mixture_128_l2"

    @dataclass
    class Config(GaussianMixtureDataset.Config):
        _target_: str = "memarena.families.retrieval.workloads.GaussianMixture128L2"


class GaussianMixture384Cosine(GaussianMixtureDataset):
    """100k 384-d Gaussian-mixture vectors, cosine similarity, 1000 held-out queries."""

    name: ClassVar[str] = "gaussian_mixture_384_cosine"

    @dataclass
    class Config(GaussianMixtureDataset.Config):
        _target_: str = "memarena.families.retrieval.workloads.GaussianMixture384Cosine"
        dim: int = param(384, ge=1)
        metric: str = param("cosine", choices=METRICS)


class MiniLMDocstrings(Workload):
    """Documentation sentences embedded by all-MiniLM-L6-v2 (cached), held-out queries, exact neighbours."""

    name: ClassVar[str] = "minilm_docstrings"
    family: ClassVar[str] = "retrieval"

    @dataclass
    class Config:
        _target_: str = "memarena.families.retrieval.workloads.MiniLMDocstrings"
        #: 384 (the model's width) or 128 (projection onto the top principal directions).
        dim: int = param(384, choices=(128, 384))
        #: Vectors are unit norm, so every metric ranks as inner product (the ground truth's).
        metric: str = param("ip", choices=METRICS)
        #: Base vectors and held-out queries of the cached set.
        n_vectors: int = param(100_000, ge=1)
        n_queries: int = param(1000, ge=1)
        #: Neighbours in the ground truth (the cache keeps 100).
        k_truth: int = param(10, ge=1, le=100)
        #: Seed of the held-out split the cache was built with (not the run's seed: the set is fixed).
        split_seed: int = param(0, ge=0)

    def describe(self) -> str:
        return f"minilm{self.dim}_{self.metric}"

    def load(self, seed: int) -> Dataset:
        from memarena.families.retrieval import real

        r = real.load(self.dim, self.n_vectors, self.n_queries, self.split_seed)
        if r.truth.shape[1] < self.k_truth:
            raise InvalidConfigError(f"{self.name}: the cache holds {r.truth.shape[1]} neighbours per query")
        return Dataset(
            name=self.describe(),
            metric=self.metric,
            base=r.base,
            queries=r.queries,
            truth=np.ascontiguousarray(r.truth[:, : self.k_truth]),
        )


RETRIEVAL_WORKLOADS = (GaussianMixtureDataset, GaussianMixture128L2, GaussianMixture384Cosine, MiniLMDocstrings)
