"""Hyperbolic caching: a hand-checked replay, the sampling, and memarena's policy conformance suite."""

from __future__ import annotations

import numpy as np
import pytest
from memarena.errors import InvalidConfigError
from memarena.families.paging import Trace, simulate
from memarena.families.paging.policies import LRU
from memarena.testing.conformance import PolicyConformance, reference_replay

from memarena_example.policy import Hyperbolic

A, B, C = 1, 2, 3
#: vtime:   0  1  2  3  4  5  6  7
HAND = [A, A, B, B, A, C, A, B]


def test_hand_checked_replay() -> None:
    """Capacity 2, every resident compared (sample_size >= capacity).

    t=5 (C misses): A has 3 requests in 5 steps (0.6), B 2 in 3 (0.67): evict A,
    although LRU and LFU would both evict B.
    t=6 (A misses): B 2 in 4 (0.5), C 1 in 1 (1.0): evict B.
    t=7 (B misses): C 1 in 2 (0.5), A 1 in 1 (1.0): evict C.
    """
    ref = reference_replay(Hyperbolic(capacity=2), HAND)
    assert ref.evictions == [A, B, C]
    assert ref.hits.tolist() == [False, True, False, True, True, False, False, False]
    assert ref.misses == 5
    # The Rust engine driving the same Python policy agrees; LRU differs.
    trace = Trace.from_arrays(np.array(HAND, dtype=np.uint64))
    assert simulate(trace, Hyperbolic(capacity=2)).misses == 5
    assert simulate(trace, LRU(capacity=2)).misses == 4


def test_priority_is_hits_over_age() -> None:
    p = Hyperbolic(capacity=4)
    p.on_insert(7, 1, 10)
    p.on_hit(7, 1, 11)
    p.on_hit(7, 1, 12)
    assert p.priority(7, 16) == pytest.approx(3 / 6)
    assert p.priority(7, 10) == 3.0  # age counts at least one step
    sized = Hyperbolic(capacity=4, size_aware=True)
    sized.on_insert(7, 4, 0)
    assert sized.priority(7, 2) == pytest.approx(1 / 2 / 4)


def test_bookkeeping_follows_evictions() -> None:
    p = Hyperbolic(capacity=8)
    for t, obj in enumerate([5, 6, 7, 8]):
        p.on_insert(obj, 1, t)
    p.on_evict(6)
    assert len(p) == 3
    assert sorted(p._ids) == [5, 7, 8]
    assert all(p._ids[i] == obj for obj, i in p._pos.items())


def test_sampling_is_seeded(zipf_trace: Trace) -> None:
    def run(seed: int) -> list[int]:
        return reference_replay(Hyperbolic(capacity=50, sample_size=4, seed=seed), zipf_trace.ids).evictions

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_larger_samples_approach_the_full_order(zipf_trace: Trace) -> None:
    """With at least as many samples as residents every object is compared; one sample is random eviction."""
    full = simulate(zipf_trace, Hyperbolic(capacity=50, sample_size=10_000), ignore_size=True)
    sampled = simulate(zipf_trace, Hyperbolic(capacity=50, sample_size=64), ignore_size=True)
    assert sampled.misses == full.misses  # 64 >= 50 residents: the same comparison
    tiny = simulate(zipf_trace, Hyperbolic(capacity=50, sample_size=1), ignore_size=True)
    assert tiny.misses > full.misses  # a sample of one is random eviction


def test_bad_sample_size_is_refused() -> None:
    with pytest.raises(InvalidConfigError, match="sample_size"):
        Hyperbolic(capacity=8, sample_size=0)


@pytest.mark.parametrize(
    "make_policy",
    [
        pytest.param(lambda c: Hyperbolic(capacity=c), id="default"),
        pytest.param(lambda c: Hyperbolic(capacity=c, sample_size=4, seed=3), id="sample4"),
        pytest.param(lambda c: Hyperbolic(capacity=c, size_aware=True), id="size_aware"),
    ],
)
class TestHyperbolicConformance(PolicyConformance):
    """Every check memarena makes of its own policies, on the Python slow path."""
