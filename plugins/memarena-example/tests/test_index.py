"""The Python index ``numpy_flat``: exact, tenant-filtered, and run by both retrieval experiments."""

from __future__ import annotations

import numpy as np
import pytest

from memarena_example.index import NumpyFlat


def brute(x: np.ndarray, q: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    if allowed is not None:
        d = np.where(allowed[None, :], d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def test_exact_search_equals_brute_force_for_every_metric() -> None:
    rng = np.random.default_rng(0)
    x, q = rng.standard_normal((500, 16), dtype=np.float32), rng.standard_normal((40, 16), dtype=np.float32)
    index = NumpyFlat(dim=16, block=7)
    index.add(x)
    _, ids = index.search(q, 10)
    np.testing.assert_array_equal(ids, brute(x, q, 10))
    for metric in ("ip", "cosine"):
        other = NumpyFlat(dim=16, metric=metric)
        other.add(x)
        xs = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
        want = np.argsort(-(q @ xs.T), axis=1, kind="stable")[:, :5]
        np.testing.assert_array_equal(other.search(q, 5)[1], want)


def test_tenant_filter_padding_and_accounting() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 8), dtype=np.float32)
    tenants = [[i % 3] if i % 10 else [0, 2] for i in range(60)]
    index = NumpyFlat(dim=8)
    index.add(x, ids=np.arange(100, 160), tenants=tenants)
    q = rng.standard_normal((5, 8), dtype=np.float32)
    for t in range(3):
        allowed = np.array([t in ts for ts in tenants])
        _, ids = index.search(q, 30, tenant=t)
        want = brute(x, q, 30, allowed) + 100
        n_allowed = int(allowed.sum())
        np.testing.assert_array_equal(ids[:, :n_allowed], want[:, :n_allowed])
        assert (ids[:, n_allowed:] == -1).all()  # fewer readable rows than k: padded with -1
        assert index.tenant_len(t) == n_allowed
    per_query = index.search(q, 3, tenant=np.array([0, 1, 2, 0, 1]))[1]
    np.testing.assert_array_equal(per_query[1], index.search(q[1:2], 3, tenant=1)[1][0])
    assert list(index.tenant_memory_bytes(np.arange(3, dtype=np.uint32))) == [
        index.tenant_len(t) * (8 * 4 + 12) for t in range(3)
    ]
    with pytest.raises(Exception, match="unique"):
        index.add(x[:1], ids=[100])
