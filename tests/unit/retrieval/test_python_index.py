"""A vector index written in Python joins both retrieval experiments through the declared API only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from memarena import hookimpl
from memarena.api import VectorIndex
from memarena.config import compose
from memarena.errors import InvalidConfigError
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.run import execute


class BruteForce(VectorIndex):
    """Exact squared-L2 search in numpy; no tenants (the capability's default)."""

    name: ClassVar[str] = "brute_force_test"

    @dataclass
    class Config:
        _target_: str = "tests.unit.retrieval.test_python_index.BruteForce"

    def __init__(self, dim: int | None = None, metric: str = "l2") -> None:
        self.rows = np.empty((0, dim or 0), dtype=np.float32)

    def train(self, data: Any) -> None:
        pass

    def add(self, data: Any, ids: Any = None, tenants: Any = None) -> None:
        assert tenants is None  # the family never hands tenants to an index without the capability
        self.rows = np.concatenate([self.rows, np.asarray(data, dtype=np.float32)])

    def search(self, queries: Any, k: int, params: Any = None, tenant: Any = None) -> Any:
        assert tenant is None
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        d = ((q[:, None, :] - self.rows[None, :, :]) ** 2).sum(-1)
        ids = np.argsort(d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d, ids, 1), ids.astype(np.int64)

    def reset(self) -> None:
        self.rows = self.rows[:0]

    def memory_bytes(self) -> int:
        return int(self.rows.nbytes)


class Plugin:
    @hookimpl
    def memarena_register_indexes(self) -> list[type[Any]]:
        return [BruteForce]


PM = get_plugin_manager(autoload=False, plugins=[Plugin()])
REGISTRY = Registry.from_plugin_manager(PM)
SMALL = ["debug=tiny", "index=brute_force_test", "workload.n_vectors=300", "workload.n_queries=20", "family.repeats=1"]


def test_a_python_index_runs_the_retrieval_experiment(tmp_path: Path) -> None:
    overrides = ["experiment=retrieval", *SMALL, "family.single_queries=5"]
    record = execute(compose(overrides, pm=PM), tmp_path, pm=PM, registry=REGISTRY, overrides=overrides)
    (row,) = record.rows
    assert row["index"] == "brute_force_test" and row["recall_at_10"] == 1.0
    assert row["index_bytes"] == 300 * 128 * 4 and row["single_mismatches"] == 0


def test_an_index_without_tenants_is_refused_by_name_for_a_tenant_workload(tmp_path: Path) -> None:
    overrides = ["experiment=retrieval_tenants", *SMALL]
    with pytest.raises(InvalidConfigError, match=r"'brute_force_test' does not support tenants.*family\.filter=false"):
        execute(compose(overrides, pm=PM), tmp_path / "a", pm=PM, registry=REGISTRY, overrides=overrides)
    unfiltered = [*overrides, "family.filter=false"]
    record = execute(compose(unfiltered, pm=PM), tmp_path / "b", pm=PM, registry=REGISTRY, overrides=unfiltered)
    assert record.rows[0]["recall_at_10"] == 1.0


def test_the_tenant_methods_are_declared_with_a_clear_default() -> None:
    index = BruteForce(dim=4)
    assert not BruteForce.supports_tenants
    with pytest.raises(NotImplementedError, match="brute_force_test does not support tenants"):
        index.tenant_len(0)
    with pytest.raises(NotImplementedError, match="brute_force_test does not support tenants"):
        index.tenant_memory_bytes(np.arange(3, dtype=np.uint32))


class ThreeOnly(BruteForce):
    """Returns only its 3 nearest ids per query; the other slots are -1 (an index short of results)."""

    name: ClassVar[str] = "three_only_test"

    @dataclass
    class Config:
        _target_: str = "tests.unit.retrieval.test_python_index.ThreeOnly"

    def search(self, queries: Any, k: int, params: Any = None, tenant: Any = None) -> Any:
        d, ids = super().search(queries, k, params, tenant)
        d[:, 3:], ids[:, 3:] = np.inf, -1
        return d, ids


class ShortPlugin:
    @hookimpl
    def memarena_register_indexes(self) -> list[type[Any]]:
        return [ThreeOnly]


def test_rows_count_the_result_slots_an_index_left_empty(tmp_path: Path) -> None:
    """short_results: the -1 slots over all n_queries x k results, never silently dropped."""
    from memarena.families.retrieval.family import short_results

    assert short_results(np.array([[1, 2, -1], [-1, -1, -1]])) == 4
    assert short_results(np.zeros((0, 10), dtype=np.int64)) == 0
    pm = get_plugin_manager(autoload=False, plugins=[Plugin(), ShortPlugin()])
    registry = Registry.from_plugin_manager(pm)
    rows = {}
    for name in ("brute_force_test", "three_only_test"):
        overrides = ["experiment=retrieval", *SMALL, f"index={name}", "family.single_queries=0"]
        (rows[name],) = execute(
            compose(overrides, pm=pm), tmp_path / name, pm=pm, registry=registry, overrides=overrides
        ).rows
    assert rows["brute_force_test"]["short_results"] == 0
    assert rows["three_only_test"]["short_results"] == 20 * (10 - 3)
    assert rows["three_only_test"]["recall_at_10"] == pytest.approx(0.3)


def test_a_bucketed_simhash_short_of_candidates_says_so(tmp_path: Path) -> None:
    """One table of 16-bit buckets over 300 vectors: most buckets hold fewer than k vectors."""
    overrides = [
        "experiment=retrieval",
        *SMALL,
        "index=simhash",
        "index.n_tables=1",
        "index.n_probes=[1]",
        "index.rerank=0",
        "family.single_queries=0",
    ]
    (row,) = execute(compose(overrides, pm=PM), tmp_path, pm=PM, registry=REGISTRY, overrides=overrides).rows
    assert 0 < row["short_results"] <= 20 * 10
