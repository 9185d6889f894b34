"""Datasets: seeded, held-out queries, exact truth, selective tenants; recall."""

from __future__ import annotations

import numpy as np
import pytest

from memarena.errors import InvalidConfigError
from memarena.families.retrieval import assign_tenants, gaussian_mixture, ground_truth, recall_at_k
from memarena.families.retrieval.workloads import GaussianMixture384Cosine, GaussianMixtureDataset


def test_mixture_is_seeded_and_queries_are_held_out() -> None:
    a, qa = gaussian_mixture(500, 20, 8, seed=3)
    b, qb = gaussian_mixture(500, 20, 8, seed=3)
    c, _ = gaussian_mixture(500, 20, 8, seed=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(qa, qb)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == (500, 8) and qa.shape == (20, 8)
    assert not (qa[:, None, :] == a[None, :, :]).all(axis=2).any()


def test_ground_truth_is_exact_and_recall_counts_hits() -> None:
    base, queries = gaussian_mixture(300, 10, 4, seed=1)
    truth = ground_truth(base, queries, 5, "l2")
    d = ((queries[:, None, :] - base[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(truth, np.argsort(d, axis=1, kind="stable")[:, :5])
    assert recall_at_k(truth, truth, 5) == 1.0
    half = truth.copy()
    half[:, :2] = -7
    assert recall_at_k(half, truth, 5) == pytest.approx(0.6)
    padded = np.full_like(truth, -1)
    assert recall_at_k(truth, padded, 5) == 1.0  # nothing to find


def test_tenants_are_skewed_and_selective() -> None:
    offsets, ids = assign_tenants(100_000, 100, seed=0)
    sizes = np.bincount(ids, minlength=100)
    assert len(offsets) == 100_001 and offsets[-1] == len(ids)
    assert sizes[0] > 15_000 and np.median(sizes) < 1000 and sizes.min() > 0
    per_row = np.diff(offsets)
    assert set(np.unique(per_row).tolist()) <= {1, 2} and 0.15 < (per_row == 2).mean() < 0.25
    again = assign_tenants(100_000, 100, seed=0)
    np.testing.assert_array_equal(again[1], ids)


def test_workload_filtered_truth_and_cosine() -> None:
    ds = GaussianMixtureDataset(dim=8, n_vectors=400, n_queries=30, n_tenants=10).load(0)
    assert ds.n_base == 400 and ds.n_queries == 30 and ds.query_tenants is not None
    assert ds.tenant_offsets is not None and ds.tenant_ids is not None
    for q in range(ds.n_queries):
        t = ds.query_tenants[q]
        for r in ds.truth[q][ds.truth[q] >= 0]:
            assert t in ds.tenant_ids[ds.tenant_offsets[r] : ds.tenant_offsets[r + 1]]
    cos = GaussianMixture384Cosine(n_vectors=50, n_queries=2)
    assert cos.dim == 384 and cos.metric == "cosine" and cos.load(0).truth.shape == (2, 10)
    with pytest.raises(InvalidConfigError, match=r"workload\.metric"):
        GaussianMixtureDataset(metric="hamming")


def test_recall_at_k_is_the_cores_and_uses_the_first_k_columns() -> None:
    from memarena import _core

    truth = np.array([[0, 1, 2, 3], [4, 5, -1, -1]], dtype=np.int64)
    found = np.array([[1, 9, 0, 2, 3], [5, 4, 8, 8, 8]], dtype=np.int64)
    # k=2: query 0 finds 1 of {0, 1} in [1, 9]; query 1 finds both of {4, 5} in [5, 4]
    assert recall_at_k(found, truth, 2) == _core.recall_at_k(found, truth, 2) == pytest.approx(3 / 4)
    # k=4: query 0 finds 3 of {0,1,2,3} in [1,9,0,2]; query 1 counts 4 and 5 only (the -1s are padding)
    assert recall_at_k(found[:, ::1], truth, 4) == pytest.approx(5 / 6)
    with pytest.raises(InvalidConfigError, match=r"recall_at_k: shapes \(2, 5\) and \(2, 4\) do not allow k=5"):
        recall_at_k(found, truth, 5)
    with pytest.raises(InvalidConfigError, match="recall_at_k"):
        recall_at_k(found[:1], truth, 2)
