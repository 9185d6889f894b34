"""simulate / simulate_many / lru_mrc: chunked == one-shot == parallel, the Python-policy adapter, errors."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from memarena import _core
from memarena.api import PagingPolicy
from memarena.errors import InvalidConfigError, InvariantError, MemarenaError
from memarena.families.paging import PagingResult, Trace, lru_mrc, simulate, simulate_many
from memarena.families.paging.policies import LRU, NATIVE_POLICIES, S3FIFO
from memarena.families.paging.reference import PyLRU

SIZED = {"kind": "uniform", "min_bytes": 1, "max_bytes": 64}


@pytest.fixture(scope="module")
def trace() -> Trace:
    """A unit-size Zipf trace with oracle predictions (so every policy can run)."""
    t = Trace.synthetic("zipf", 30_000, alpha=0.9, n_objects=3000, seed=11)
    return t.with_oracle_predictions("next_arrival", cache_size=100)


@pytest.fixture(scope="module")
def sized_trace() -> Trace:
    return Trace.synthetic(
        {"kind": "sized", "inner": {"kind": "zipf", "alpha": 0.9, "n_objects": 3000}, "sizes": SIZED}, 30_000, seed=12
    )


def policy_for(cls: type[PagingPolicy], capacity: int) -> PagingPolicy:
    return cls(capacity)


def same(a: PagingResult, b: PagingResult) -> None:
    assert a.as_row() | {"wall_s": 0} == b.as_row() | {"wall_s": 0}
    assert np.array_equal(a.window_miss_ratios, b.window_miss_ratios)


@pytest.mark.parametrize("cls", NATIVE_POLICIES, ids=lambda c: c.name)
def test_chunked_equals_core_one_shot(cls: type[PagingPolicy], trace: Trace) -> None:
    opts: dict[str, Any] = {"warmup_requests": 1234, "window_requests": 5000}
    p = cls(150)
    one = _core.replay(p.core_name, 150, trace._core, p.core_params(), **opts)
    for chunk in (1 << 20, 7777, 1000):
        res = simulate(trace, p, chunk_requests=chunk, **opts)
        assert (res.requests, res.misses, res.compulsory_misses, res.bytes_missed) == (
            one.requests,
            one.misses,
            one.compulsory_misses,
            one.bytes_missed,
        )
        assert np.array_equal(res.window_miss_ratios, one.window_misses / one.window_requests)
    assert res.requests == len(trace) - 1234
    assert len(res.window_miss_ratios) == -(-res.requests // 5000)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_parallel_equals_sequential(threads: int, trace: Trace, sized_trace: Trace) -> None:
    for t in (trace, sized_trace):
        policies = [cls(c) for cls in NATIVE_POLICIES for c in (50, 400)]
        seq = [simulate(t, p, window_requests=10_000) for p in policies]
        par = simulate_many(t, policies, threads=threads, window_requests=10_000, chunk_requests=9000)
        assert [r.policy for r in par] == [p.name for p in policies]
        for a, b in zip(seq, par, strict=True):
            same(a, b)


def test_progress_counts_every_request(trace: Trace) -> None:
    seen: list[int] = []
    policies = [LRU(100), S3FIFO(100), PyLRU(100)]
    simulate_many(trace, policies, progress=seen.append, chunk_requests=4096)
    assert sum(seen) == len(trace) * len(policies)
    seen.clear()
    simulate(trace, LRU(10), progress=seen.append, chunk_requests=10_000)
    assert seen == [10_000, 10_000, 10_000]


@pytest.mark.parametrize("ignore_size", [False, True])
def test_python_lru_matches_native_lru_exactly(ignore_size: bool, trace: Trace, sized_trace: Trace) -> None:
    for t, cap in ((trace, 200), (sized_trace, 3000)):
        # window_requests=1 turns the window series into the per-request miss mask.
        native = simulate(t, LRU(cap), window_requests=1, ignore_size=ignore_size)
        py = simulate(t, PyLRU(cap), window_requests=1, ignore_size=ignore_size, chunk_requests=7000)
        assert py.policy == "py_lru"
        assert np.array_equal(native.window_miss_ratios, py.window_miss_ratios)
        assert (native.misses, native.bytes_missed) == (py.misses, py.bytes_missed)


class BadVictim(PyLRU):
    """Evicts an object that is not resident."""

    name: ClassVar[str] = "bad_victim"

    def evict(self, vtime: int) -> int:
        return 10**12


class Raising(PyLRU):
    """Raises from a callback after a few requests."""

    name: ClassVar[str] = "raising"

    def on_insert(self, obj_id: int, size: int, vtime: int) -> None:
        super().on_insert(obj_id, size, vtime)
        if vtime == 100:
            raise ValueError("boom at 100")


def test_python_policy_bad_victim_raises_invariant_error(trace: Trace) -> None:
    with pytest.raises(InvariantError, match=r"bad_victim.*1000000000000"):
        simulate(trace, BadVictim(10))


class WrongType(PyLRU):
    """Returns a name instead of an object id."""

    name: ClassVar[str] = "wrong_type"

    def evict(self, vtime: int) -> Any:
        return "the oldest one"


def test_python_policy_wrong_return_type_names_the_policy_and_the_callback(trace: Trace) -> None:
    with pytest.raises(
        TypeError, match=r"paging policy \"wrong_type\": evict\(\d+\) must return the id of a resident"
    ) as e:
        simulate(trace, WrongType(10))
    assert "'the oldest one' (str)" in str(e.value)
    assert e.value.__cause__ is not None  # the conversion error


def test_callback_exception_propagates_unchanged(trace: Trace) -> None:
    policy = Raising(10)
    sim = _core.PagingSim.from_python(policy, 10)
    with pytest.raises(ValueError, match="boom at 100"):
        sim.feed(trace._core, 0, len(trace))
    # The replay stopped right after the request that raised.
    assert sim.position == 101
    with pytest.raises(InvariantError, match="stopped at request 101"):
        sim.feed(trace._core, 101, 200)
    with pytest.raises(ValueError, match="boom at 100"):
        simulate_many(trace, [LRU(10), Raising(10)])


def test_python_policy_without_protocol_is_refused() -> None:
    with pytest.raises(InvalidConfigError, match="on_hit"):
        _core.PagingSim.from_python(object(), 10)


def test_unknown_policy_lists_names() -> None:
    with pytest.raises(InvalidConfigError, match=r"unknown policy \"nope\".*lru.*s3fifo"):
        _core.PagingSim("nope", 10)


def test_unknown_parameter_is_named(trace: Trace) -> None:
    with pytest.raises(
        InvalidConfigError,
        match=r"policy\.nope: unknown key; allowed: small_size_ratio, ghost_size_ratio, move_to_main_threshold",
    ):
        simulate(trace, S3FIFO(10, nope=1))
    with pytest.raises(InvalidConfigError, match="capacity"):
        _core.PagingSim("lru", 0)


def test_feed_must_continue_in_order(trace: Trace) -> None:
    sim = _core.PagingSim("lru", 10)
    sim.feed(trace._core, 0, 100)
    with pytest.raises(InvalidConfigError, match="start"):
        sim.feed(trace._core, 50, 150)
    with pytest.raises(InvalidConfigError, match="stop"):
        sim.feed(trace._core, 100, len(trace) + 1)
    with pytest.raises(InvalidConfigError, match="trace"):
        sim.feed(Trace.from_arrays([1, 2])._core, 100, 101)
    with pytest.raises(InvalidConfigError, match="Python policy"):
        _core.feed_many([_core.PagingSim.from_python(PyLRU(5), 5)], trace._core, 0, 10)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: simulate(t, LRU(10), warmup_requests=-1),
        lambda t: simulate(t, LRU(10), chunk_requests=0),
        lambda t: simulate_many(t, [LRU(10)], threads=0),
        lambda t: lru_mrc(t, [-1]),
        lambda t: _core.PagingSim("s3fifo", 10, {"small_size_ratio": "x"}),
        lambda t: _core.PagingSim("lru", 2**64),
        lambda t: _core.hit_mask("clock", 10, t._core, {"n_bit_counter": 99, "init_freq": 0}),
        lambda t: _core.Trace.read_oracle_general("/"),
    ],
)
def test_bad_input_never_panics(call: Any, trace: Trace) -> None:
    with pytest.raises((MemarenaError, OSError, OverflowError, TypeError)) as exc:
        call(trace)
    assert type(exc.value).__name__ != "PanicException"


def test_lru_mrc_equals_simulation(sized_trace: Trace) -> None:
    sizes = np.array([1, 10, 100, 1000, 5000])
    mrc = lru_mrc(sized_trace, sizes)
    sim = [simulate(sized_trace, LRU(int(c)), ignore_size=True).miss_ratio for c in sizes]
    assert mrc.tolist() == pytest.approx(sim, abs=0)


def test_result_row_is_plain_python(sized_trace: Trace) -> None:
    res = simulate(sized_trace, LRU(1000), window_requests=10_000)
    row = res.as_row()
    assert all(type(v) in (str, int, float) for v in row.values())
    assert row["bytes_missed"] <= row["bytes_requested"]
    assert res.compulsory_misses <= res.misses <= res.requests
    assert res.compulsory_miss_ratio == res.compulsory_misses / res.requests
    assert len(res.window_miss_ratios) == 3


def test_too_large_objects_count_as_misses() -> None:
    t = Trace.from_arrays([1, 2, 1, 2], sizes=[5, 50, 5, 50])
    res = simulate(t, LRU(10))
    assert (res.misses, res.too_large_misses, res.bytes_missed) == (3, 2, 105)


def test_replay_fed_in_steps_equals_simulate_and_refuses_bad_stops() -> None:
    from memarena.families.paging import Replay

    trace = Trace.synthetic("zipf", 3000, alpha=0.9, n_objects=300, seed=5)
    whole = simulate(trace, LRU(capacity=40), ignore_size=True)
    replay = Replay(trace, LRU(capacity=40), ignore_size=True)
    assert (replay.position, replay.resident_objects, replay.used) == (0, 0, 0)
    for stop in (1, 7, 500, 2999, 3000):
        replay.feed(stop)
        assert replay.position == stop
        assert replay.resident_objects == replay.used <= 40
    assert replay.resident_objects == 40
    assert replay.result().misses == whole.misses and replay.result().requests == 3000
    with pytest.raises(InvalidConfigError, match=r"stop must be in \[3000, 3000\], got 10"):
        replay.feed(10)
