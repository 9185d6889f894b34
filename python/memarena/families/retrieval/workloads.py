"""Retrieval workloads: seeded Gaussian mixtures with held-out queries and exact ground truth.

``gaussian_mixture_128_l2`` (128-d, squared L2) and
``gaussian_mixture_384_cosine`` (384-d, cosine, the width of small sentence
embedders): 100k base vectors and 1000 held-out queries by default, the
ground truth by an exact (flat) search. With ``n_tenants > 0`` every vector
gets an owner tenant (skewed sizes, so most tenants are selective) and some
a second one, each query a tenant drawn uniformly, and the ground truth is
the filtered one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from memarena.api import Workload
from memarena.errors import InvalidConfigError
from memarena.families.retrieval.dataset import Dataset, assign_tenants, gaussian_mixture, ground_truth

__all__ = ["RETRIEVAL_WORKLOADS", "GaussianMixture128L2", "GaussianMixture384Cosine", "GaussianMixtureDataset"]


class GaussianMixtureDataset(Workload):
    """A seeded Gaussian mixture, held-out queries and exact ground truth."""

    name: ClassVar[str] = "gaussian_mixture"
    family: ClassVar[str] = "retrieval"

    @dataclass
    class Config:
        _target_: str = "memarena.families.retrieval.workloads.GaussianMixtureDataset"
        dim: int = 128
        metric: str = "l2"
        #: Base vectors.
        n_vectors: int = 100_000
        #: Held-out queries.
        n_queries: int = 1000
        n_clusters: int = 64
        #: Standard deviation of the points around their centre (centres are N(0, I)).
        cluster_std: float = 0.5
        #: Neighbours in the ground truth.
        k_truth: int = 10
        #: Tenants (0: none). Owners are skewed (u^tenant_skew), queries uniform over tenants.
        n_tenants: int = 0
        tenant_skew: float = 3.0
        #: Share of vectors readable by a second tenant.
        shared_fraction: float = 0.2
        #: Added to the run's seed.
        seed_offset: int = 0

    def __init__(
        self,
        dim: int = 128,
        metric: str = "l2",
        n_vectors: int = 100_000,
        n_queries: int = 1000,
        n_clusters: int = 64,
        cluster_std: float = 0.5,
        k_truth: int = 10,
        n_tenants: int = 0,
        tenant_skew: float = 3.0,
        shared_fraction: float = 0.2,
        seed_offset: int = 0,
    ) -> None:
        for key, v in (("dim", dim), ("n_vectors", n_vectors), ("n_queries", n_queries), ("k_truth", k_truth)):
            if v < 1:
                raise InvalidConfigError(f"config key 'workload.{key}' must be >= 1, got {v}")
        if metric not in ("l2", "ip", "cosine"):
            raise InvalidConfigError(f"config key 'workload.metric' must be l2, ip or cosine, got {metric!r}")
        if n_tenants < 0:
            raise InvalidConfigError(f"config key 'workload.n_tenants' must be >= 0, got {n_tenants}")
        self.dim, self.metric = dim, metric
        self.n_vectors, self.n_queries = n_vectors, n_queries
        self.n_clusters, self.cluster_std = n_clusters, cluster_std
        self.k_truth = k_truth
        self.n_tenants, self.tenant_skew, self.shared_fraction = n_tenants, tenant_skew, shared_fraction
        self.seed_offset = seed_offset
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
        dim: int = 384
        metric: str = "cosine"

    def __init__(self, dim: int = 384, metric: str = "cosine", **kwargs: object) -> None:
        super().__init__(dim=dim, metric=metric, **kwargs)  # type: ignore[arg-type]


RETRIEVAL_WORKLOADS = (GaussianMixtureDataset, GaussianMixture128L2, GaussianMixture384Cosine)
