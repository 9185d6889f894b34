"""Small seeded data and one small index of every registered kind."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from memarena.families.retrieval import gaussian_mixture
from memarena.indexes import E2LSH, HNSW, IVF, SPANN, Curator, Flat, SimHash

DIM = 16

#: (class, build/search parameters that give high recall on `data()`, recall floor).
KINDS: list[tuple[type[Any], dict[str, Any], float]] = [
    (Flat, {}, 0.999),
    (SimHash, {"n_bits": 10, "n_tables": 12, "n_probes": 8, "rerank": 100_000, "seed": 1}, 0.8),
    (SimHash, {"n_bits": 64, "n_tables": 4, "n_probes": 0, "rerank": 300, "seed": 1}, 0.8),
    (E2LSH, {"n_probes": 16}, 0.85),
    (IVF, {"nlist": 32, "nprobe": 8}, 0.85),
    (SPANN, {"nlist": 32, "nprobe": 6}, 0.85),
    (HNSW, {"m": 12, "ef_construction": 64, "ef_search": 64}, 0.85),
    (Curator, {"branching": 8, "leaf_size": 32, "split_threshold": 16, "ef_search": 300}, 0.85),
]
IDS = [f"{cls.name}-{i}" for i, (cls, _, _) in enumerate(KINDS)]


def data(n: int = 2000, nq: int = 50, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    return gaussian_mixture(n, nq, DIM, n_clusters=20, cluster_std=0.4, seed=seed)


def make(cls: type[Any], params: dict[str, Any], train: np.ndarray, metric: str = "l2") -> Any:
    idx = cls(dim=DIM, metric=metric, **params)
    idx.train(train)
    return idx


@pytest.fixture(params=KINDS, ids=IDS)
def kind(request: pytest.FixtureRequest) -> tuple[type[Any], dict[str, Any], float]:
    return request.param
