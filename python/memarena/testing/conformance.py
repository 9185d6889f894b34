"""Conformance suites: the checks every memarena component of a kind must pass.

Subclass a suite in your plugin's tests and provide the one fixture it asks
for; pytest collects the inherited tests (Hydra's ``LauncherTestSuite``
pattern). memarena runs the same suites over its own built-ins
(``tests/conformance``), so a plugin is held to exactly the same contract.

.. code-block:: python

    import pytest
    from memarena.testing.conformance import PolicyConformance
    from memarena_foo.policy import Foo

    class TestFoo(PolicyConformance):
        @pytest.fixture
        def make_policy(self):
            return lambda capacity: Foo(capacity=capacity)

or, to run one suite over several variants, parametrize the fixture:

.. code-block:: python

    @pytest.mark.parametrize("make_policy", [lambda c: Foo(c), lambda c: Foo(c, sample_size=4)])
    class TestFooVariants(PolicyConformance):
        pass

Every other fixture of a suite (the trace, the capacities, the items to
store) has a default that a subclass may override. Everything is seeded and
small: a suite takes well under a second per component on the native path
and a few seconds on the Python-policy path.
"""

from __future__ import annotations

import dataclasses
import heapq
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from memarena.api import AgentMemory, HardwareBackend, MemoryItem, PagingPolicy

if TYPE_CHECKING:
    from memarena.families.paging import Trace

__all__ = [
    "AgentMemoryConformance",
    "BackendConformance",
    "PolicyConformance",
    "ReferenceReplay",
    "offline_optimum_misses",
    "reference_replay",
]

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")


def _check_name(cls: type, base: type) -> None:
    assert issubclass(cls, base), f"{cls.__qualname__} is not a memarena.api.{base.__name__}"
    name = getattr(cls, "name", None)
    assert isinstance(name, str), f"{cls.__qualname__}.name must be a str class attribute, got {name!r}"
    assert SNAKE_CASE.match(name), f"{cls.__qualname__}.name {name!r} is not snake_case"


def _check_config(cls: type) -> Any:
    """Check ``cls.Config`` is a dataclass with a ``_target_`` naming ``cls``; return it structured."""
    from omegaconf import OmegaConf

    config = getattr(cls, "Config", None)
    assert isinstance(config, type), f"{cls.__qualname__}.Config must be a dataclass"
    assert dataclasses.is_dataclass(config), f"{cls.__qualname__}.Config must be a dataclass"
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    target = defaults.get("_target_")
    assert isinstance(target, str), f"{cls.__qualname__}.Config needs a `_target_: str` field"
    assert not any(part.startswith("_") for part in target.split(".")), (
        f"{cls.__qualname__}.Config._target_ {target!r} must be a public import path (no _private parts)"
    )
    return OmegaConf.structured(config)


def _check_built(built: object, cls: type) -> None:
    name = getattr(cls, "name", cls.__qualname__)
    assert type(built) is cls, f"{name}: Config._target_ built {type(built).__qualname__}, not {cls.__qualname__}"


# ---------------------------------------------------------------------------
# Paging policies
# ---------------------------------------------------------------------------


@dataclass
class ReferenceReplay:
    """What :func:`reference_replay` observed."""

    #: One entry per request, True for a hit.
    hits: np.ndarray
    #: Evicted ids, in order.
    evictions: list[int] = field(default_factory=list)
    #: Largest number of resident objects at any time.
    max_resident: int = 0

    @property
    def misses(self) -> int:
        return int(len(self.hits) - self.hits.sum())


def reference_replay(policy: PagingPolicy, ids: Sequence[int] | np.ndarray) -> ReferenceReplay:
    """Drive a Python policy over unit-size requests with a pure-Python engine.

    The engine does what the Rust callback adapter does, in the same order
    (so the hit masks agree exactly): it keeps the resident set; a request
    for a resident object calls ``on_hit``; a miss calls ``evict`` (and then
    ``on_evict``) until there is room, then ``on_insert``. Virtual time is
    the request's index.

    :param policy: A Python policy (``core_name`` is None), freshly built.
    :param ids: The requested object ids.
    :returns: The hit mask, evictions and peak resident count.
    :raises AssertionError: the policy evicted an object that is not
        resident or returned something that is not an object id.
    """
    capacity = policy.capacity
    resident: set[int] = set()
    hits = np.zeros(len(ids), dtype=bool)
    out = ReferenceReplay(hits)
    for vtime, raw in enumerate(ids):
        obj = int(raw)
        if obj in resident:
            hits[vtime] = True
            policy.on_hit(obj, 1, vtime)
            continue
        while len(resident) + 1 > capacity:
            victim = policy.evict(vtime)
            assert isinstance(victim, int | np.integer), (
                f"{policy.name}.evict({vtime}) returned {victim!r}, not an object id"
            )
            assert int(victim) in resident, (
                f"{policy.name}.evict({vtime}) chose object {victim}, which is not resident ({len(resident)} resident)"
            )
            resident.remove(int(victim))
            out.evictions.append(int(victim))
            policy.on_evict(int(victim))
        resident.add(obj)
        policy.on_insert(obj, 1, vtime)
        out.max_resident = max(out.max_resident, len(resident))
        if hasattr(policy, "__len__"):
            assert len(policy) == len(resident), (  # type: ignore[arg-type]
                f"{policy.name} reports {len(policy)} resident objects, the engine holds {len(resident)}"  # type: ignore[arg-type]
            )
    return out


def offline_optimum_misses(ids: Sequence[int] | np.ndarray, capacity: int) -> int:
    """Misses of the offline optimum for unit-size objects, bypass allowed.

    Belady's rule extended with bypass: on a miss with a full cache, the
    incoming object competes with the residents, and whichever is requested
    furthest in the future is not kept. No policy, online or offline, with
    or without admission control, can miss less on the same requests.
    """
    ids = [int(i) for i in ids]
    n = len(ids)
    never = n + 1
    nxt = [never] * n
    seen: dict[int, int] = {}
    for t in range(n - 1, -1, -1):
        nxt[t] = seen.get(ids[t], never)
        seen[ids[t]] = t
    resident: dict[int, int] = {}  # id -> next request time
    heap: list[tuple[int, int]] = []  # (-next, id), lazily deleted
    misses = 0
    for t, obj in enumerate(ids):
        if obj in resident:
            resident[obj] = nxt[t]
            heapq.heappush(heap, (-nxt[t], obj))
            continue
        misses += 1
        if len(resident) >= capacity:
            while resident.get(heap[0][1]) != -heap[0][0]:
                heapq.heappop(heap)
            furthest, victim = -heap[0][0], heap[0][1]
            if nxt[t] >= furthest:
                continue  # bypass: the incoming object is needed last
            heapq.heappop(heap)
            del resident[victim]
        resident[obj] = nxt[t]
        heapq.heappush(heap, (-nxt[t], obj))
    return misses


def _engine(policy: PagingPolicy) -> Any:
    """The core simulator :func:`memarena.families.paging.simulate` would use, to watch its resident set."""
    from memarena.families.paging.sim import _make_sim

    return _make_sim(policy, ignore_size=True, warmup_requests=0, window_requests=0)


class PolicyConformance:
    """The contract of a paging policy (``memarena.api.PagingPolicy``), native or Python.

    Provide ``make_policy``: a fixture returning a callable ``capacity ->
    PagingPolicy`` that builds a *fresh* policy each call. Optional
    overrides: ``policy_trace`` (the requests, default: a seeded Zipf trace
    of 5,000 requests over 1,000 objects, with oracle predictions when the
    policy reads them), ``capacity`` (objects; parametrized over 32 and 128 by default) and
    ``prediction_kind``.

    Checks:

    * the class is a ``PagingPolicy`` with a snake_case ``name``, the
      ``policy`` config group, and a ``Config`` whose ``_target_`` builds the
      same class through ``hydra.utils.instantiate``;
    * a capacity below one is refused;
    * replayed by the Rust engine, the resident set never exceeds the
      capacity and the run is deterministic;
    * a hit implies residency: Python policies run through the engine's
      checked path (a wrong answer raises ``InvariantError``) and through a
      pure-Python engine that checks every eviction; for every policy, no
      first request to an object is a hit;
    * no policy misses less than the offline optimum;
    * Python vs batch: a Python policy's misses are the same in the
      pure-Python engine and in the Rust engine; a native policy's are the
      same replayed one request at a time and in one batch.
    """

    # -- fixtures a subclass provides or overrides -----------------------------

    @pytest.fixture
    def make_policy(self) -> Callable[[int], PagingPolicy]:
        """``capacity -> PagingPolicy``; a subclass must provide it."""
        pytest.fail(f"{type(self).__name__} must define a `make_policy` fixture (capacity -> PagingPolicy)")

    @pytest.fixture(params=[32, 128], ids=lambda c: f"capacity={c}")
    def capacity(self, request: pytest.FixtureRequest) -> int:
        """Capacities (in objects) every replay test runs at."""
        return int(request.param)

    @pytest.fixture
    def prediction_kind(self, make_policy: Callable[[int], PagingPolicy]) -> str | None:
        """Oracle predictions to put in the trace (None: the policy reads none)."""
        return type(make_policy(8)).prediction_kind

    @pytest.fixture
    def policy_trace(self, prediction_kind: str | None, capacity: int) -> Trace:
        """A seeded Zipf trace (5,000 requests, 1,000 objects), with predictions if needed."""
        from memarena.families.paging import Trace

        trace = Trace.synthetic({"kind": "zipf", "alpha": 1.0, "n_objects": 1000}, n_requests=5000, seed=7)
        if prediction_kind is not None:
            trace = trace.with_oracle_predictions(prediction_kind, cache_size=capacity)
        return trace

    # -- checks ---------------------------------------------------------------------

    def test_name_kind_and_group(self, make_policy: Callable[[int], PagingPolicy]) -> None:
        cls = type(make_policy(8))
        _check_name(cls, PagingPolicy)
        assert cls.kind == "method", f"{cls.name}: kind must be 'method', got {cls.kind!r}"
        assert cls.sub_kind == "paging_policy", f"{cls.name}: sub_kind must be 'paging_policy'"
        assert cls.config_group == "policy", f"{cls.name}: config_group must be 'policy', got {cls.config_group!r}"

    def test_config_target_builds_same_class(self, make_policy: Callable[[int], PagingPolicy]) -> None:
        from hydra.utils import instantiate

        cls = type(make_policy(8))
        cfg = _check_config(cls)
        built = instantiate(cfg, capacity=8)
        assert type(built) is cls, (
            f"{cls.name}: Config._target_ built {type(built).__qualname__}, not {cls.__qualname__}"
        )
        assert built.capacity == 8

    def test_capacity_below_one_is_refused(self, make_policy: Callable[[int], PagingPolicy]) -> None:
        with pytest.raises(ValueError, match=r"capacity"):
            make_policy(0)

    def test_resident_set_never_exceeds_capacity(
        self, make_policy: Callable[[int], PagingPolicy], policy_trace: Trace, capacity: int
    ) -> None:
        sim = _engine(make_policy(capacity))
        n, step = len(policy_trace), 97
        for start in range(0, n, step):
            sim.feed(policy_trace._core, start, min(start + step, n))
            assert len(sim) <= capacity, f"{sim.policy}: {len(sim)} objects resident > capacity {capacity}"
            assert sim.used_bytes <= capacity, f"{sim.policy}: {sim.used_bytes} units used > capacity {capacity}"
        if make_policy(capacity).core_name is None:
            ref = reference_replay(make_policy(capacity), policy_trace.ids)
            assert ref.max_resident <= capacity

    def test_hit_implies_resident(
        self, make_policy: Callable[[int], PagingPolicy], policy_trace: Trace, capacity: int
    ) -> None:
        from memarena.families.paging import simulate

        policy = make_policy(capacity)
        # Python policies go through the engine's checked path: a hit on a
        # non-resident object or a bad eviction raises InvariantError here.
        res = simulate(policy_trace, policy, ignore_size=True)
        # No first request to an object can be a hit, for any policy.
        assert res.compulsory_misses == policy_trace.num_objects, (
            f"{policy.name}: {policy_trace.num_objects - res.compulsory_misses} first requests were hits"
        )
        assert res.compulsory_misses <= res.misses <= res.requests == len(policy_trace)
        if policy.core_name is None:
            reference_replay(make_policy(capacity), policy_trace.ids)  # checks every eviction

    def test_never_beats_offline_optimum(
        self, make_policy: Callable[[int], PagingPolicy], policy_trace: Trace, capacity: int
    ) -> None:
        from memarena.families.paging import simulate

        res = simulate(policy_trace, make_policy(capacity), ignore_size=True)
        opt = offline_optimum_misses(policy_trace.ids, capacity)
        assert res.misses >= opt, f"{res.policy}: {res.misses} misses < offline optimum {opt} at capacity {capacity}"

    def test_deterministic(
        self, make_policy: Callable[[int], PagingPolicy], policy_trace: Trace, capacity: int
    ) -> None:
        from memarena.families.paging import simulate

        a = simulate(policy_trace, make_policy(capacity), ignore_size=True)
        b = simulate(policy_trace, make_policy(capacity), ignore_size=True)
        assert (a.misses, a.compulsory_misses) == (b.misses, b.compulsory_misses), (
            f"{a.policy}: two fresh policies missed {a.misses} and {b.misses} times on the same trace"
        )

    def test_python_and_batch_paths_agree(
        self, make_policy: Callable[[int], PagingPolicy], policy_trace: Trace, capacity: int
    ) -> None:
        from memarena.families.paging import simulate

        policy = make_policy(capacity)
        batch = simulate(policy_trace, policy, ignore_size=True)
        if policy.core_name is None:
            ref = reference_replay(make_policy(capacity), policy_trace.ids)
            assert ref.misses == batch.misses, (
                f"{policy.name}: {ref.misses} misses in the pure-Python engine, {batch.misses} in the Rust engine"
            )
        else:
            one_by_one = simulate(policy_trace, make_policy(capacity), ignore_size=True, chunk_requests=1)
            assert one_by_one.misses == batch.misses, (
                f"{policy.name}: {one_by_one.misses} misses fed one request at a time, {batch.misses} in one batch"
            )


# ---------------------------------------------------------------------------
# Hardware backends
# ---------------------------------------------------------------------------


class BackendConformance:
    """The contract of a hardware backend (``memarena.api.HardwareBackend``).

    Provide ``backend_class``. Override ``backend_overrides`` (a dict merged
    into the class's ``Config``) when the defaults alone do not build a
    backend; the suite builds it from the config, as a run does.

    Checks: snake_case ``name`` and the ``backend`` group; the ``Config``'s
    ``_target_`` builds the same class; at least one tier, unique tier names
    that are snake_case (configs select them by name, e.g.
    ``family.cache_tier``); positive capacities and bandwidths, non-negative
    latencies; tiers listed fastest first (non-decreasing latency); a
    non-empty ``source`` naming where the figures come from; ``tier(name)``
    finds each tier and names the available ones for an unknown name;
    access time grows with size; peak FLOP/s are positive.
    """

    @pytest.fixture
    def backend_class(self) -> type[HardwareBackend]:
        """The backend class under test; a subclass must provide it."""
        pytest.fail(f"{type(self).__name__} must define a `backend_class` fixture")

    @pytest.fixture
    def backend_overrides(self) -> dict[str, Any]:
        """Values merged into the default Config (none by default)."""
        return {}

    @pytest.fixture
    def backend_config(self, backend_class: type[HardwareBackend], backend_overrides: dict[str, Any]) -> Any:
        from omegaconf import OmegaConf

        return OmegaConf.merge(_check_config(backend_class), backend_overrides)

    @pytest.fixture
    def backend(self, backend_config: Any) -> HardwareBackend:
        from hydra.utils import instantiate

        return instantiate(backend_config)

    def test_name_kind_and_group(self, backend_class: type[HardwareBackend]) -> None:
        _check_name(backend_class, HardwareBackend)
        assert backend_class.kind == "backend"
        assert backend_class.config_group == "backend"

    def test_config_target_builds_same_class(self, backend_class: type[HardwareBackend], backend: Any) -> None:
        _check_built(backend, backend_class)

    def test_tiers(self, backend: HardwareBackend) -> None:
        assert backend.tiers, f"{backend.name}: no memory tiers"
        names = [t.name for t in backend.tiers]
        assert len(set(names)) == len(names), f"{backend.name}: duplicate tier names {names}"
        for t in backend.tiers:
            assert SNAKE_CASE.match(t.name), f"{backend.name}: tier name {t.name!r} is not snake_case"
            assert t.capacity_bytes > 0, f"{backend.name}.{t.name}: capacity_bytes must be > 0"
            assert t.bandwidth_bytes_per_s > 0, f"{backend.name}.{t.name}: bandwidth_bytes_per_s must be > 0"
            assert t.latency_s >= 0, f"{backend.name}.{t.name}: latency_s must be >= 0"
            assert backend.tier(t.name) is t

    def test_tiers_fastest_first(self, backend: HardwareBackend) -> None:
        latencies = [t.latency_s for t in backend.tiers]
        assert latencies == sorted(latencies), (
            f"{backend.name}: tiers must be listed fastest first; latencies "
            + ", ".join(f"{t.name}={t.latency_s:g}s" for t in backend.tiers)
        )

    def test_unknown_tier_lists_available(self, backend: HardwareBackend) -> None:
        with pytest.raises(KeyError) as info:
            backend.tier("no_such_tier")
        assert all(t.name in str(info.value) for t in backend.tiers)

    def test_source_is_named(self, backend: HardwareBackend) -> None:
        assert isinstance(backend.source, str)
        assert backend.source.strip(), f"{backend.name}: the Config's `source` must name where the figures come from"

    def test_access_time_grows_with_size(self, backend: HardwareBackend) -> None:
        for t in backend.tiers:
            small, large = t.access_time_s(4096), t.access_time_s(1 << 20)
            assert 0 <= small < large, f"{backend.name}.{t.name}: access time must grow with size"
            assert small >= t.latency_s

    def test_peak_flops_are_positive(self, backend: HardwareBackend) -> None:
        for dtype, flops in backend.peak_flops.items():
            assert isinstance(dtype, str)
            assert flops > 0, f"{backend.name}: peak_flops[{dtype!r}] must be > 0"


# ---------------------------------------------------------------------------
# Agent memories
# ---------------------------------------------------------------------------

#: Distinct facts, all in session 0, that share some words but no two alike.
DEFAULT_ITEMS: tuple[str, ...] = (
    "My sister Alice moved to Lisbon in March and works as a nurse.",
    "The dentist appointment is on Tuesday at 9am near the old harbour.",
    "I adopted a grey cat called Miso from the shelter last spring.",
    "Our team switched the build system from make to bazel this quarter.",
    "Grandma's lemon cake needs three eggs and a cup of sugar.",
    "The flight to Osaka leaves from gate 42 on Friday evening.",
    "Alice recommended a bakery in Lisbon that sells lemon tarts.",
    "My laptop battery drains fast when the bluetooth is on.",
)


class AgentMemoryConformance:
    """The contract of an agent memory (``memarena.api.AgentMemory``).

    Provide ``make_memory``: a fixture returning a callable ``() ->
    AgentMemory`` that builds an empty memory each call. Override
    ``memory_items`` to store different texts (distinct, in one session).

    Checks: snake_case ``name`` and the ``agent_memory`` group; the
    ``Config``'s ``_target_`` builds the same class; a new memory is empty;
    ``len`` and ``items()`` agree after every ``add``; ``retrieve`` returns at
    most ``k`` stored items (none for ``k=0``, none from an empty memory);
    querying with an item's exact text returns that item first.
    """

    @pytest.fixture
    def make_memory(self) -> Callable[[], AgentMemory]:
        """``() -> AgentMemory``; a subclass must provide it."""
        pytest.fail(f"{type(self).__name__} must define a `make_memory` fixture (() -> AgentMemory)")

    @pytest.fixture
    def memory_items(self) -> list[MemoryItem]:
        """Distinct items, all in session 0."""
        return [MemoryItem(text, session=0, turn=i) for i, text in enumerate(DEFAULT_ITEMS)]

    @pytest.fixture
    def filled_memory(self, make_memory: Callable[[], AgentMemory], memory_items: list[MemoryItem]) -> AgentMemory:
        memory = make_memory()
        for item in memory_items:
            memory.add(item)
        return memory

    def test_name_kind_and_group(self, make_memory: Callable[[], AgentMemory]) -> None:
        cls = type(make_memory())
        _check_name(cls, AgentMemory)
        assert cls.kind == "agent_memory"
        assert cls.config_group == "agent_memory"

    def test_config_target_builds_same_class(self, make_memory: Callable[[], AgentMemory]) -> None:
        from hydra.utils import instantiate

        cls = type(make_memory())
        built = instantiate(_check_config(cls))
        assert type(built) is cls, (
            f"{cls.name}: Config._target_ built {type(built).__qualname__}, not {cls.__qualname__}"
        )

    def test_starts_empty(self, make_memory: Callable[[], AgentMemory]) -> None:
        memory = make_memory()
        assert len(memory) == 0
        assert list(memory.items()) == []
        assert memory.retrieve("anything at all", 5) == []

    def test_len_and_items_agree(self, make_memory: Callable[[], AgentMemory], memory_items: list[MemoryItem]) -> None:
        memory = make_memory()
        for n, item in enumerate(memory_items, start=1):
            memory.add(item)
            held = memory.items()
            assert len(memory) == len(held), f"{memory.name}: len() is {len(memory)} but items() has {len(held)}"
            assert len(memory) == n, f"{memory.name}: {len(memory)} items after {n} adds in one session"
        assert memory.memory_bytes() >= sum(len(i.text.encode()) for i in memory_items) > 0

    @pytest.mark.parametrize("k", [0, 1, 3, 100])
    def test_retrieve_returns_at_most_k_stored_items(
        self, filled_memory: AgentMemory, memory_items: list[MemoryItem], k: int
    ) -> None:
        stored = {item.text for item in memory_items}
        for query in ("Alice in Lisbon", "lemon", memory_items[0].text):
            got = filled_memory.retrieve(query, k)
            assert len(got) <= k, f"{filled_memory.name}: retrieve(k={k}) returned {len(got)} items"
            assert all(isinstance(m, MemoryItem) for m in got)
            assert {m.text for m in got} <= stored, f"{filled_memory.name}: retrieve returned items never stored"

    def test_exact_match_comes_first(self, filled_memory: AgentMemory, memory_items: list[MemoryItem]) -> None:
        for item in memory_items:
            got = filled_memory.retrieve(item.text, 3)
            assert got, f"{filled_memory.name}: nothing retrieved for the exact text of a stored item"
            assert got[0].text == item.text, (
                f"{filled_memory.name}: querying {item.text!r} returned {got[0].text!r} first"
            )
