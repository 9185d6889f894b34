"""The conformance suites' own helpers are right, and the suites catch broken components."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from memarena.api import PagingPolicy
from memarena.errors import InvariantError
from memarena.families.paging import Trace, simulate
from memarena.families.paging.policies import Belady
from memarena.families.paging.reference import PyLRU
from memarena.testing.conformance import PolicyConformance, offline_optimum_misses, reference_replay


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
