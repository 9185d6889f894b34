"""The conformance suites' own helpers are right, and the suites catch broken components."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from memarena import hookimpl
from memarena.api import Family, PagingPolicy, VectorIndex
from memarena.errors import InvariantError
from memarena.families.paging import Trace, simulate
from memarena.families.paging.policies import Belady
from memarena.families.paging.reference import PyLRU
from memarena.families.retrieval import Index
from memarena.testing.conformance import (
    FamilyConformance,
    IndexConformance,
    PolicyConformance,
    _skip_without_tenants,
    brute_force,
    index_data,
    offline_optimum_misses,
    reference_replay,
    run_family,
)


def brute_force_optimum(ids: list[int], capacity: int) -> int:
    """Fewest misses over every keep/bypass/evict choice (exponential; tiny inputs only)."""
    states = {frozenset(): 0}
    for obj in ids:
        nxt: dict[frozenset[int], int] = {}
        for held, misses in states.items():
            options = (
                [held]
                if obj in held
                else [held, *([held | {obj}] if len(held) < capacity else [(held - {v}) | {obj} for v in held])]
            )
            cost = misses + (obj not in held)
            for s in options:
                nxt[s] = min(nxt.get(s, cost), cost)
        states = nxt
    return min(states.values())


@pytest.mark.parametrize("seed", range(30))
def test_offline_optimum_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    ids = [rng.randrange(5) for _ in range(12)]
    capacity = rng.choice([1, 2, 3])
    assert offline_optimum_misses(ids, capacity) == brute_force_optimum(ids, capacity)


def test_offline_optimum_can_beat_demand_belady() -> None:
    # Capacity 1, A B A: keeping A (bypassing B) misses twice; demand paging must admit B.
    ids = [1, 2, 1]
    assert offline_optimum_misses(ids, 1) == 2
    assert simulate(Trace.from_arrays(np.array(ids)), Belady(capacity=1)).misses == 3


def test_reference_replay_matches_the_rust_adapter(zipf_trace_small: Trace) -> None:
    for capacity in (1, 7, 50):
        ref = reference_replay(PyLRU(capacity=capacity), zipf_trace_small.ids)
        assert ref.misses == simulate(zipf_trace_small, PyLRU(capacity=capacity)).misses
        assert ref.max_resident == capacity


@pytest.fixture
def zipf_trace_small() -> Trace:
    return Trace.synthetic({"kind": "zipf", "alpha": 1.0, "n_objects": 200}, n_requests=2000, seed=3)


class EvictsAGhost(PagingPolicy):
    """Broken on purpose: once, evicts an object that was never inserted."""

    name: ClassVar[str] = "evicts_a_ghost"

    @dataclass
    class Config:
        _target_: str = "tests.conformance.test_suite_self_check.EvictsAGhost"

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.resident: list[int] = []

    def on_insert(self, obj_id: int, size: int, vtime: int) -> None:
        self.resident.append(obj_id)

    def evict(self, vtime: int) -> int:
        return 10**12 if vtime > 100 else self.resident[0]

    def on_evict(self, obj_id: int) -> None:
        self.resident.remove(obj_id)


def test_suite_catches_a_policy_that_evicts_a_non_resident(zipf_trace_small: Trace) -> None:
    suite = PolicyConformance()

    def make(capacity: int) -> EvictsAGhost:
        return EvictsAGhost(capacity)

    with pytest.raises(InvariantError, match="evicts_a_ghost"):
        suite.test_hit_implies_resident(make, zipf_trace_small, 8)
    with pytest.raises(AssertionError, match="not resident"):
        reference_replay(make(8), zipf_trace_small.ids)


class TestLRUAtEveryTinyCapacity(PolicyConformance):
    """The suite's fixtures can be overridden: here, more capacities."""

    @pytest.fixture(params=[1, 2, 3], ids=lambda c: f"capacity={c}")
    def capacity(self, request: pytest.FixtureRequest) -> int:
        return int(request.param)

    @pytest.fixture
    def make_policy(self):  # type: ignore[no-untyped-def]
        return lambda capacity: PyLRU(capacity=capacity)


def test_brute_force_agrees_on_all_short_sequences() -> None:
    for ids in itertools.product(range(3), repeat=6):
        assert offline_optimum_misses(list(ids), 2) == brute_force_optimum(list(ids), 2)


# ---------------------------------------------------------------------------
# IndexConformance and FamilyConformance on Python components of this module
# ---------------------------------------------------------------------------


class NumpyIndex(VectorIndex):
    """An exact numpy index without tenant support (the suite's Python path and its tenant skips)."""

    name: ClassVar[str] = "numpy_exact"

    @dataclass
    class Config:
        _target_: str = "tests.conformance.test_suite_self_check.NumpyIndex"

    def __init__(self, dim: int | None = None, metric: str = "l2") -> None:
        self.dim, self.metric = dim, metric
        self.reset()

    def train(self, data: Any) -> None:
        pass

    def add(self, data: Any, ids: Any = None, tenants: Any = None) -> None:
        if tenants is not None:
            raise NotImplementedError(f"{self.name} does not support tenants")
        x = np.atleast_2d(np.asarray(data, dtype=np.float32))
        self.data = np.vstack([self.data.reshape(-1, x.shape[1]), x])
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.uint64)])

    def search(self, queries: Any, k: int, params: Any = None, tenant: Any = None) -> Any:
        if tenant is not None:
            raise NotImplementedError(f"{self.name} does not support tenants")
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        rows = brute_force(self.data.reshape(-1, q.shape[1]), q, k, self.metric)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        ids[:, : rows.shape[1]] = np.where(rows >= 0, self.ids[np.maximum(rows, 0)].view(np.int64), -1)
        dist = np.zeros((len(q), k), dtype=np.float32)
        return dist, ids

    def reset(self) -> None:
        self.data = np.zeros(0, dtype=np.float32)
        self.ids = np.zeros(0, dtype=np.uint64)

    def memory_bytes(self) -> int:
        return int(self.data.nbytes + self.ids.nbytes)


class PadsWithZero(NumpyIndex):
    """Broken on purpose: pads short results with id 0 instead of -1."""

    name: ClassVar[str] = "pads_with_zero"

    @dataclass
    class Config:
        _target_: str = "tests.conformance.test_suite_self_check.PadsWithZero"

    def search(self, queries: Any, k: int, params: Any = None, tenant: Any = None) -> Any:
        dist, ids = super().search(queries, k, params, tenant)
        return dist, np.where(ids == -1, 0, ids)


class TestPythonIndexWithoutTenants(IndexConformance):
    """A Python index passes; its tenant tests skip, saying why."""

    @pytest.fixture
    def make_index(self):  # type: ignore[no-untyped-def]
        return lambda dim, metric: NumpyIndex(dim=dim, metric=metric)


def test_tenant_tests_skip_visibly_without_tenant_support() -> None:
    with pytest.raises(pytest.skip.Exception, match=r"numpy_exact does not support tenants \(supports_tenants"):
        _skip_without_tenants(NumpyIndex(dim=4))  # the capability is not declared
    with pytest.raises(NotImplementedError, match="numpy_exact does not support tenants"):
        NumpyIndex(dim=4).tenant_len(0)  # the base class's default names the index


def test_suite_catches_an_index_that_pads_with_zero() -> None:
    suite = IndexConformance()
    with pytest.raises(AssertionError, match="padded with -1"):
        suite.test_pads_with_minus_one(lambda dim, metric: PadsWithZero(dim, metric), index_data(), "l2")


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_brute_force_agrees_with_the_flat_index(metric: str) -> None:
    data = index_data(n_base=500, n_queries=20, dim=16)
    flat = Index("flat", dim=data.dim, metric=metric)
    flat.add(data.base)
    _, ids = flat.search(data.queries, 10)
    assert np.array_equal(brute_force(data.base, data.queries, 10, metric), ids)


def test_brute_force_pads_filtered_results() -> None:
    base = np.eye(4, dtype=np.float32)
    allowed = np.array([[True, False, True, False]])
    assert brute_force(base, base[:1], 3, "l2", allowed=allowed).tolist() == [[0, 2, -1]]


class CountingFamily(Family):
    """Emits one row per step, as a family should."""

    name: ClassVar[str] = "counting_family"
    label_columns: ClassVar[tuple[str, ...]] = ("step",)

    @dataclass
    class Config:
        _target_: str = "tests.conformance.test_suite_self_check.CountingFamily"
        steps: int = 3

    def __init__(self, steps: int = 3) -> None:
        self.steps = steps

    def run(self, run: Any) -> None:
        for step in range(self.steps):
            run.emit({"step": step, "value": step * run.seed})


class BypassesEmit(CountingFamily):
    """Broken on purpose: keeps its rows without ``run.emit``, so no observer sees them."""

    name: ClassVar[str] = "bypasses_emit"

    @dataclass
    class Config:
        _target_: str = "tests.conformance.test_suite_self_check.BypassesEmit"
        steps: int = 3

    def run(self, run: Any) -> None:
        run.rows.extend({"step": step} for step in range(self.steps))


class SelfCheckFamilies:
    """An in-test plugin that registers the families above."""

    @hookimpl
    def memarena_register_families(self) -> list[type[Family]]:
        return [CountingFamily, BypassesEmit]


SELF_CHECK_PLUGIN = SelfCheckFamilies()


class TestInTestFamily(FamilyConformance):
    """A family from an in-test plugin passes the suite (the plugin path of ``family_plugins``)."""

    @pytest.fixture
    def family_class(self) -> type[Family]:
        return CountingFamily

    @pytest.fixture
    def family_overrides(self) -> list[str]:
        return ["~experiment", "family=counting_family", "family.steps=4"]

    @pytest.fixture
    def family_plugins(self) -> list[object]:
        return [SELF_CHECK_PLUGIN]


def test_suite_catches_a_family_that_bypasses_emit(tmp_path: Path) -> None:
    run = run_family(["~experiment", "family=bypasses_emit"], tmp_path, plugins=[SELF_CHECK_PLUGIN])
    assert run.record.status == "complete" and len(run.record.rows) == 3
    with pytest.raises(AssertionError, match=r"run\.emit"):
        FamilyConformance().test_respects_run_emit(BypassesEmit, run)
