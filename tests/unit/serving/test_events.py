"""The event engine from Python: the queue's ordering, and M/M/1 against its closed form."""

from __future__ import annotations

import numpy as np
import pytest

from memarena.errors import InvalidConfigError
from memarena.families.serving import EventQueue, mm1_mean_wait, mmc_mean_wait, simulate_mm1, simulate_mmc


def test_queue_pops_in_time_order_and_ties_in_scheduling_order() -> None:
    q = EventQueue()
    q.schedule(2.0, "c")
    q.schedule(1.0, "a")
    q.schedule(1.0, {"b": 1})
    assert len(q) == 3 and q.peek_time() == 1.0
    assert [q.pop(), q.pop(), q.pop(), q.pop()] == [(1.0, "a"), (1.0, {"b": 1}), (2.0, "c"), None]
    assert q.now == 2.0
    with pytest.raises(InvalidConfigError, match="cannot schedule at 1"):
        q.schedule(1.0, "past")
    q.schedule_in(0.5, "later")
    assert q.pop() == (2.5, "later")


def python_mm1(lam: float, mu: float, jobs: int, seed: int) -> float:
    """M/M/1 written in Python on the core's queue (the documented slow path)."""
    rng = np.random.default_rng(seed)
    q = EventQueue()
    q.schedule(rng.exponential(1 / lam), "arrival")
    waiting: list[float] = []
    busy, served, total_wait = False, 0, 0.0
    while served < jobs:
        ev = q.pop()
        assert ev is not None
        now, kind = ev
        if kind == "arrival":
            q.schedule(now + rng.exponential(1 / lam), "arrival")
            if busy:
                waiting.append(now)
            else:
                busy = True
                served += 1
                q.schedule(now + rng.exponential(1 / mu), "departure")
        elif waiting:
            total_wait += now - waiting.pop(0)
            served += 1
            q.schedule(now + rng.exponential(1 / mu), "departure")
        else:
            busy = False
    return total_wait / served


def test_python_model_on_the_queue_matches_theory_roughly() -> None:
    assert python_mm1(0.5, 1.0, 40_000, seed=1) == pytest.approx(mm1_mean_wait(0.5, 1.0), rel=0.1)


def test_native_mm1_mean_wait_within_two_percent_of_theory() -> None:
    r = simulate_mm1(0.9, 1.0, 4_000_000, warmup_jobs=100_000, seed=1)
    assert r["jobs"] == 4_000_000
    assert r["mean_wait_s"] == pytest.approx(9.0, rel=0.02)
    assert r["mean_sojourn_s"] == pytest.approx(r["mean_wait_s"] + 1.0, rel=0.01)


def test_native_mmc_against_erlang_c() -> None:
    theory = mmc_mean_wait(3.6, 1.0, 4)
    assert theory is not None
    r = simulate_mmc(3.6, 1.0, 4, 2_000_000, warmup_jobs=50_000, seed=2)
    assert r["mean_wait_s"] == pytest.approx(theory, rel=0.03)
    assert mm1_mean_wait(1.0, 1.0) is None  # unstable
