"""The real-embedding set's text, split, ground truth and cache (no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memarena.errors import InvalidConfigError
from memarena.families.retrieval import real
from memarena.families.retrieval.workloads import MiniLMDocstrings


def test_passages_split_into_sentences_and_drop_code_like_text() -> None:
    src = b'''"""Module doc. It has two sentences here.

Second paragraph, long enough to be kept as a passage."""
# A comment block that
# spans two lines.

x = 1  # ok
def f():
    """x == y[0] + z(1, 2) * 3 / 4 - 5"""
'''
    got = list(real._file_passages(src))
    assert "It has two sentences here." in got
    assert "Second paragraph, long enough to be kept as a passage." in got
    assert "A comment block that spans two lines." in got
    assert not any("==" in p for p in got)  # under 60% letters
    assert all(real.MIN_CHARS <= len(p) <= real.MAX_CHARS for p in got)


def test_exact_top_orders_by_inner_product_then_row() -> None:
    base = np.array([[1, 0], [0, 1], [1, 0], [0.5, 0.5]], dtype=np.float32)
    q = np.array([[1, 0], [0, 1]], dtype=np.float32)
    top = real.exact_top(base, q, 3)
    assert top.tolist() == [[0, 2, 3], [1, 3, 0]]
    rng = np.random.default_rng(0)
    b = rng.standard_normal((500, 16)).astype(np.float32)
    qq = rng.standard_normal((20, 16)).astype(np.float32)
    want = np.argsort(-(qq.astype(np.float64) @ b.T.astype(np.float64)), axis=1, kind="stable")[:, :10]
    assert np.array_equal(real.exact_top(b, qq, 10), want)


def test_statistics_of_isotropic_and_shifted_vectors() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4000, 64)).astype(np.float32)
    iso = real.statistics(x)
    assert iso["mean_vector_norm"] < 0.05 and abs(iso["mean_pairwise_cosine"]) < 0.01
    shifted = real.statistics(x + 1.0)
    assert shifted["mean_vector_norm"] > 0.6 and shifted["mean_pairwise_cosine"] > 0.4


def test_missing_cache_names_its_path_and_command(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMARENA_CACHE", str(tmp_path))
    with pytest.raises(InvalidConfigError, match=r"real.*python -m memarena\.families\.retrieval\.real --n 100000"):
        MiniLMDocstrings().load(0)


def test_workload_reads_the_cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMARENA_CACHE", str(tmp_path))
    d = real.cache_dir(50, 5, 0)
    d.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for dim in real.DIMS:
        b = rng.standard_normal((50, dim)).astype(np.float32)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        q = b[:5] + 0.01
        np.save(d / f"base_{dim}.npy", b)
        np.save(d / f"queries_{dim}.npy", q)
        np.save(d / f"truth_{dim}.npy", real.exact_top(b, q, 20))
    (d / "meta.json").write_text(json.dumps({"statistics": {}}))
    ds = MiniLMDocstrings(dim=128, n_vectors=50, n_queries=5, k_truth=10).load(7)
    assert ds.base.shape == (50, 128) and ds.truth.shape == (5, 10) and ds.metric == "ip"
    assert ds.truth[:, 0].tolist() == list(range(5))
    with pytest.raises(InvalidConfigError, match="dim"):
        real.load(dim=256, n_vectors=50, n_queries=5)
