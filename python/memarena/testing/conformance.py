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

The suites, one per component kind a plugin adds:

* :class:`PolicyConformance` (``make_policy``: capacity -> paging policy);
* :class:`BackendConformance` (``backend_class``);
* :class:`AgentMemoryConformance` (``make_memory``);
* :class:`EmbedderConformance` (``make_embedder``);
* :class:`IndexConformance` (``make_index``: (dim, metric) -> vector index);
* :class:`FamilyConformance` (``family_class`` and ``family_overrides``, the
  overrides of a small run).

Every other fixture of a suite (the trace, the capacities, the items to
store, the vectors) has a default that a subclass may override. Everything
is seeded and small: a suite takes about a second per component on the
native path and a few seconds on the Python paths; a family suite costs two
small runs of the family.

The suites use memarena's public API only (``memarena.api``, the family
facades, ``memarena.config.compose``, ``memarena.run.execute``); the one
exception is :func:`resident_counts`, which reads the paging engine's
resident set between steps, something no facade offers.
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

from memarena import hookimpl
from memarena.api import AgentMemory, Embedder, HardwareBackend, MemoryItem, PagingPolicy

if TYPE_CHECKING:
    from memarena.families.paging import Trace

__all__ = [
    "EMBEDDER_TEXTS",
    "AgentMemoryConformance",
    "BackendConformance",
    "EmbedderConformance",
    "FamilyConformance",
    "FamilyRun",
    "IndexConformance",
    "IndexData",
    "PolicyConformance",
    "ReferenceReplay",
    "RunObserver",
    "brute_force",
    "index_data",
    "offline_optimum_misses",
    "reference_replay",
    "resident_counts",
    "run_family",
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


def resident_counts(
    trace: Trace, policy: PagingPolicy, *, step: int = 97, ignore_size: bool = True
) -> list[tuple[int, int]]:
    """Replay ``trace`` through ``policy`` in the engine :func:`memarena.families.paging.simulate` uses, watching it.

    The requests are fed ``step`` at a time; after each step the engine's
    resident set is read back. A native policy runs in the Rust core, a
    Python one through the callback adapter, exactly as in a run.

    :param trace: The requests.
    :param policy: A freshly built policy (its ``capacity`` is the cache size).
    :param step: Requests fed between two observations.
    :param ignore_size: Count objects rather than bytes (as the suites do).
    :returns: ``(resident objects, used units)`` after each step, in order.
    :raises ValueError: ``step`` is below one.
    """
    from memarena.families.paging import Replay

    if step < 1:
        raise ValueError(f"resident_counts: step must be >= 1, got {step}")
    replay = Replay(trace, policy, ignore_size=ignore_size)
    out: list[tuple[int, int]] = []
    n = len(trace)
    for start in range(0, n, step):
        replay.feed(min(start + step, n))
        out.append((replay.resident_objects, replay.used))
    return out


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
        policy = make_policy(capacity)
        for step, (resident, used) in enumerate(resident_counts(policy_trace, policy, step=97)):
            where = f"after request {min((step + 1) * 97, len(policy_trace))}"
            assert resident <= capacity, f"{policy.name}: {resident} objects resident > capacity {capacity} {where}"
            assert used <= capacity, f"{policy.name}: {used} units used > capacity {capacity} {where}"
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


# ---------------------------------------------------------------------------
# Embedders
# ---------------------------------------------------------------------------

#: Texts :class:`EmbedderConformance` embeds: a paraphrase pair, then unrelated sentences.
EMBEDDER_TEXTS = (
    "Alice moved to Lisbon in March.",
    "In March, Alice moved to Lisbon.",
    "The soup needs more salt and a little pepper.",
    "Our team lost the football match on Sunday.",
)


class EmbedderConformance:
    """The contract of an embedder (``memarena.api.Embedder``).

    Provide ``make_embedder``: a fixture returning a callable ``() ->
    Embedder`` (it may return one shared instance, for an embedder that is
    slow to load). Override ``embedder_texts`` to embed other texts (the
    first two a paraphrase pair, the third unrelated to them).

    Checks: snake_case ``name`` and the ``embedder`` group; the ``Config``'s
    ``_target_`` builds the same class; ``embed`` returns float32 rows of
    shape ``(n, dim)`` (``(0, dim)`` for no text) and L2 norm 1; a text's row
    is the same alone and in a batch (within 1e-5); the paraphrase is closer
    than the unrelated text; after ``fit`` the rows are still unit norm.
    """

    @pytest.fixture
    def make_embedder(self) -> Callable[[], Embedder]:
        """``() -> Embedder``; a subclass must provide it."""
        pytest.fail(f"{type(self).__name__} must define a `make_embedder` fixture (() -> Embedder)")

    @pytest.fixture
    def embedder_texts(self) -> list[str]:
        """Non-empty texts: a paraphrase pair, then unrelated ones."""
        return list(EMBEDDER_TEXTS)

    def test_name_kind_and_group(self, make_embedder: Callable[[], Embedder]) -> None:
        cls = type(make_embedder())
        _check_name(cls, Embedder)
        assert cls.kind == "embedder"
        assert cls.config_group == "embedder"

    def test_config_target_builds_same_class(self, make_embedder: Callable[[], Embedder]) -> None:
        from hydra.utils import instantiate

        cls = type(make_embedder())
        _check_built(instantiate(_check_config(cls)), cls)

    def test_shapes_dtype_and_unit_norm(self, make_embedder: Callable[[], Embedder], embedder_texts: list[str]) -> None:
        emb = make_embedder()
        v = np.asarray(emb.embed(embedder_texts))
        assert v.dtype == np.float32, f"{emb.name}: embed returned {v.dtype}, not float32"
        assert v.shape == (len(embedder_texts), emb.dim), f"{emb.name}: shape {v.shape}, dim {emb.dim}"
        norms = np.linalg.norm(v.astype(np.float64), axis=1)
        assert np.allclose(norms, 1.0, atol=1e-4), f"{emb.name}: row norms {norms.tolist()}, not 1"
        assert np.asarray(emb.embed([])).shape == (0, emb.dim), f"{emb.name}: embed([]) is not (0, dim)"

    def test_a_row_does_not_depend_on_its_batch(
        self, make_embedder: Callable[[], Embedder], embedder_texts: list[str]
    ) -> None:
        emb = make_embedder()
        batch = np.asarray(emb.embed(embedder_texts))
        for i, text in enumerate(embedder_texts):
            alone = np.asarray(emb.embed([text]))[0]
            assert np.allclose(alone, batch[i], atol=1e-5), f"{emb.name}: {text!r} alone differs from in a batch"
        again = np.asarray(emb.embed(embedder_texts[::-1]))[::-1]
        assert np.allclose(again, batch, atol=1e-5), f"{emb.name}: the rows depend on the order of the batch"

    def test_a_paraphrase_is_closer_than_an_unrelated_text(
        self, make_embedder: Callable[[], Embedder], embedder_texts: list[str]
    ) -> None:
        emb = make_embedder()
        v = np.asarray(emb.embed(embedder_texts[:3]), dtype=np.float64)
        assert v[0] @ v[1] > v[0] @ v[2], (
            f"{emb.name}: {embedder_texts[0]!r} is closer to {embedder_texts[2]!r} than to {embedder_texts[1]!r}"
        )

    def test_fit_then_embed(self, make_embedder: Callable[[], Embedder], embedder_texts: list[str]) -> None:
        emb = make_embedder()
        emb.fit(embedder_texts)
        v = np.asarray(emb.embed(embedder_texts[:2]), dtype=np.float64)
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4), f"{emb.name}: rows after fit are not unit norm"


# ---------------------------------------------------------------------------
# Vector indexes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexData:
    """A seeded vector set for :class:`IndexConformance`: base rows, queries, ids and tenants."""

    #: ``(n, dim)`` float32 base rows.
    base: np.ndarray
    #: ``(nq, dim)`` float32 queries, held out from the base rows.
    queries: np.ndarray
    #: ``n`` unique uint64 ids of the base rows (large and not contiguous on purpose).
    ids: np.ndarray
    #: The tenants allowed to read each base row (one or two of ``n_tenants``).
    tenants: list[list[int]]
    #: One tenant per query.
    query_tenants: np.ndarray
    n_tenants: int

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])


def index_data(
    n_base: int = 2000, n_queries: int = 100, dim: int = 32, *, n_clusters: int = 16, n_tenants: int = 5, seed: int = 0
) -> IndexData:
    """A seeded Gaussian mixture with uint64 ids above 2**40 and one or two tenants per row.

    Pure numpy, so the reference the suite checks an index against shares
    no code with any index.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32) * 3.0

    def draw(n: int) -> np.ndarray:
        pick = rng.integers(0, n_clusters, n)
        return np.ascontiguousarray(centres[pick] + rng.standard_normal((n, dim)).astype(np.float32))

    base, queries = draw(n_base), draw(n_queries)
    # Large, shuffled, non-contiguous ids: an index must hand back exactly these.
    ids = (np.uint64(2**40) + rng.permutation(n_base).astype(np.uint64) * np.uint64(7919)).astype(np.uint64)
    tenants = [
        sorted({int(i % n_tenants), *([int(rng.integers(n_tenants))] if rng.random() < 0.3 else [])})
        for i in range(n_base)
    ]
    query_tenants = rng.integers(0, n_tenants, n_queries).astype(np.uint32)
    return IndexData(base, queries, ids, tenants, query_tenants, n_tenants)


def brute_force(
    base: np.ndarray, queries: np.ndarray, k: int, metric: str, *, allowed: np.ndarray | None = None
) -> np.ndarray:
    """Row positions of the exact ``k`` best base rows of each query, ``-1``-padded.

    :param metric: ``l2`` (smallest squared distance first), ``ip`` or
        ``cosine`` (largest similarity first).
    :param allowed: Optional ``(nq, n)`` boolean mask of the rows each query may see.
    :raises ValueError: an unknown metric.
    """
    b = base.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "l2":
        score = (q * q).sum(1)[:, None] - 2 * q @ b.T + (b * b).sum(1)[None, :]
    elif metric in ("ip", "cosine"):
        if metric == "cosine":
            b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-30)
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        score = -(q @ b.T)
    else:
        raise ValueError(f"brute_force: unknown metric {metric!r}; known: l2, ip, cosine")
    if allowed is not None:
        score = np.where(allowed, score, np.inf)
    order = np.argsort(score, axis=1, kind="stable")[:, :k]
    found = np.take_along_axis(score, order, axis=1)
    return np.where(np.isfinite(found), order, -1).astype(np.int64)


def _recall(found_ids: np.ndarray, truth_ids: list[set[int]], k: int) -> float:
    hits = total = 0
    for row, truth in zip(found_ids, truth_ids, strict=True):
        got = {int(i) for i in row[:k]}
        hits += len(got & truth)
        total += len(truth)
    return hits / total if total else 1.0


def _as_u64(ids: np.ndarray) -> np.ndarray:
    """Result ids as uint64 (the ``-1`` padding becomes 2**64 - 1)."""
    return np.asarray(ids).astype(np.int64).view(np.uint64)


class IndexConformance:
    """The contract of a vector index (``memarena.api.VectorIndex``), as the ``retrieval`` family uses it.

    Provide ``make_index``: a fixture returning a callable ``(dim, metric)
    -> VectorIndex`` that builds a *fresh*, empty index each call, as the
    family does (``cls(dim=..., metric=...)`` plus the Config fields).
    Optional overrides: ``metric`` (default ``l2``; parametrize it over the
    metrics your index supports), ``data`` (default :func:`index_data`: 2,000
    seeded 32-d rows in 16 clusters, 100 queries, ids above 2**40, five
    tenants), ``k`` (10) and ``recall_floor`` (0.9: recall@k of a plain
    ``search`` against an exact numpy scan).

    Checks:

    * the class is a ``VectorIndex`` with a snake_case ``name`` and the
      ``index`` group, and its ``Config``'s ``_target_`` builds the same
      class through ``hydra.utils.instantiate`` with ``dim`` and ``metric``;
    * ``search`` returns ``(distances, ids)`` of shape ``(nq, k)``, integer
      ids, best first; a single ``(dim,)`` query returns ``(1, k)`` and the
      same ids as in a batch; every search setting of ``search_grid()``
      works, also with the ``threads`` key the family adds;
    * fewer than ``k`` vectors: the results are padded with id ``-1`` after
      the real ones;
    * ids round-trip: the ids given to ``add`` (0 to 2**63 - 1, here from
      2**32 up to 2**63 - 1; ``search`` returns them as int64, -1 marking no
      result, as faiss's ids do) are the ids ``search`` returns, each vector
      finding its exact best match (itself, for ``l2`` and ``cosine``) first;
    * recall@k against brute force on the seeded set is at least
      ``recall_floor``;
    * ``reset`` removes every vector and keeps the training: adding again
      needs no ``train`` and reaches the same recall floor;
    * ``memory_bytes`` is a non-negative int, above zero once vectors are held;
    * tenants, when the index supports them (``tenant_len`` and
      ``tenant_memory_bytes``; otherwise these tests skip, saying so): a
      filtered search returns only rows the query's tenant may read, for one
      tenant per batch and one per query, with the same recall floor against
      the filtered brute force; ``tenant_len`` counts a tenant's rows;
      ``tenant_memory_bytes`` is non-negative, per tenant and as an array.
    """

    # -- fixtures a subclass provides or overrides -------------------------------

    @pytest.fixture
    def make_index(self) -> Callable[[int, str], Any]:
        """``(dim, metric) -> VectorIndex``; a subclass must provide it."""
        pytest.fail(f"{type(self).__name__} must define a `make_index` fixture ((dim, metric) -> VectorIndex)")

    @pytest.fixture
    def metric(self) -> str:
        """The metric every test builds the index with."""
        return "l2"

    @pytest.fixture
    def data(self) -> IndexData:
        """The seeded vectors (see :func:`index_data`)."""
        return index_data()

    @pytest.fixture
    def k(self) -> int:
        """Results per query."""
        return 10

    @pytest.fixture
    def recall_floor(self) -> float:
        """Least recall@k of a plain ``search`` against brute force."""
        return 0.9

    @pytest.fixture
    def filled_index(self, make_index: Callable[[int, str], Any], data: IndexData, metric: str) -> Any:
        """A fresh index, trained on and holding ``data.base`` under ``data.ids`` (no tenants)."""
        index = make_index(data.dim, metric)
        index.train(data.base)
        index.add(data.base, data.ids)
        return index

    # -- checks ----------------------------------------------------------------------

    def test_name_kind_and_group(self, make_index: Callable[[int, str], Any], metric: str) -> None:
        from memarena.api import VectorIndex

        cls = type(make_index(8, metric))
        _check_name(cls, VectorIndex)
        assert cls.kind == "index", f"{cls.name}: kind must be 'index', got {cls.kind!r}"
        assert cls.config_group == "index", f"{cls.name}: config_group must be 'index', got {cls.config_group!r}"

    def test_config_target_builds_same_class(self, make_index: Callable[[int, str], Any], metric: str) -> None:
        from hydra.utils import instantiate

        cls = type(make_index(8, metric))
        _check_built(instantiate(_check_config(cls), dim=8, metric=metric), cls)

    def test_search_shapes_and_order(self, filled_index: Any, data: IndexData, metric: str, k: int) -> None:
        name = filled_index.name
        dist, ids = filled_index.search(data.queries, k)
        nq = len(data.queries)
        assert np.shape(dist) == (nq, k), f"{name}: distances have shape {np.shape(dist)}, expected {(nq, k)}"
        assert np.shape(ids) == (nq, k), f"{name}: ids have shape {np.shape(ids)}, expected {(nq, k)}"
        assert np.issubdtype(np.asarray(ids).dtype, np.integer), f"{name}: ids must be integers, got {ids.dtype}"
        assert np.issubdtype(np.asarray(dist).dtype, np.floating), f"{name}: distances must be floats"
        for q, (d_row, i_row) in enumerate(zip(np.asarray(dist), np.asarray(ids), strict=True)):
            d = d_row[i_row != -1].astype(np.float64)
            steps = np.diff(d) if metric == "l2" else -np.diff(d)
            assert (steps >= -1e-4 * (1 + np.abs(d[1:]))).all(), (
                f"{name}: results of query {q} are not best first for metric {metric}: {d.tolist()}"
            )

    def test_single_query_equals_batch(self, filled_index: Any, data: IndexData, k: int) -> None:
        _, batch = filled_index.search(data.queries, k)
        for q in range(10):
            _, one = filled_index.search(data.queries[q], k)
            assert np.shape(one) == (1, k), f"{filled_index.name}: a (dim,) query gave shape {np.shape(one)}"
            assert np.array_equal(np.asarray(one)[0], np.asarray(batch)[q]), (
                f"{filled_index.name}: query {q} alone found {one[0].tolist()}, in the batch {batch[q].tolist()}"
            )

    def test_every_search_setting_runs(self, filled_index: Any, data: IndexData, k: int) -> None:
        grid = filled_index.search_grid()
        assert isinstance(grid, list) and grid, f"{filled_index.name}: search_grid() must be a non-empty list"
        for setting in grid:
            assert isinstance(setting, dict), f"{filled_index.name}: search_grid() entry {setting!r} is not a dict"
            _, ids = filled_index.search(data.queries[:5], k, {**setting, "threads": 1})
            assert np.shape(ids) == (5, k), f"{filled_index.name}: setting {setting} gave shape {np.shape(ids)}"

    def test_pads_with_minus_one(self, make_index: Callable[[int, str], Any], data: IndexData, metric: str) -> None:
        index = make_index(data.dim, metric)
        index.train(data.base)
        few = 5
        index.add(data.base[:few], data.ids[:few])
        k = 2 * few
        _, ids = index.search(data.queries, k)
        held = {int(i) for i in data.ids[:few]}
        for q, row in enumerate(_as_u64(ids)):
            real = [int(i) for i in row if int(i) != 2**64 - 1]
            assert len(real) <= few, (
                f"{index.name}: query {q} got {len(real)} results from {few} vectors; "
                f"fewer than k={k} results must be padded with -1"
            )
            assert set(real) <= held, f"{index.name}: query {q} got ids never added: {sorted(set(real) - held)}"
            assert len(set(real)) == len(real), f"{index.name}: query {q} got an id twice: {real}"
            assert (np.asarray(ids)[q, len(real) :] == -1).all(), (
                f"{index.name}: query {q}: fewer than k={k} results must be padded with -1 at the end, "
                f"got {np.asarray(ids)[q].tolist()}"
            )

    def test_ids_round_trip(self, make_index: Callable[[int, str], Any], data: IndexData, metric: str) -> None:
        index = make_index(data.dim, metric)
        index.train(data.base)
        # Rows spread over the set, under ids across the int64 range (ids are
        # returned as int64, -1 marking no result).
        rows = data.base[:: max(1, len(data.base) // 8)][:8]
        big = np.array([2**32, 2**40 + 1, 2**53 + 1, 2**60, 2**62, 2**62 + 7, 2**63 - 2, 2**63 - 1], dtype=np.uint64)
        big = big[: len(rows)]
        index.add(rows, big)
        _, ids = index.search(rows, 1)
        got = _as_u64(ids)[:, 0]
        expected = big[brute_force(rows, rows, 1, metric)[:, 0]]  # each row itself, for l2 and cosine
        assert got.tolist() == expected.tolist(), (
            f"{index.name}: searching the added vectors returned ids {got.tolist()}, expected {expected.tolist()}"
        )

    def test_recall_floor_against_brute_force(
        self, filled_index: Any, data: IndexData, metric: str, k: int, recall_floor: float
    ) -> None:
        _, ids = filled_index.search(data.queries, k)
        truth = brute_force(data.base, data.queries, k, metric)
        truth_ids = [{int(data.ids[p]) for p in row if p >= 0} for row in truth]
        found = _as_u64(ids)
        known = {int(i) for i in data.ids} | {2**64 - 1}
        stray = {int(i) for i in found.ravel()} - known
        assert not stray, f"{filled_index.name}: returned ids never added: {sorted(stray)[:5]}"
        recall = _recall(found, truth_ids, k)
        assert recall >= recall_floor, (
            f"{filled_index.name}: recall@{k} {recall:.3f} < floor {recall_floor} against brute force ({metric})"
        )

    def test_reset_keeps_training(
        self, filled_index: Any, data: IndexData, metric: str, k: int, recall_floor: float
    ) -> None:
        before = filled_index.memory_bytes()
        filled_index.reset()
        _, ids = filled_index.search(data.queries[:5], k)
        assert (np.asarray(ids) == -1).all(), f"{filled_index.name}: reset() left vectors: {ids[0].tolist()}"
        assert filled_index.memory_bytes() <= before, f"{filled_index.name}: memory grew after reset()"
        filled_index.add(data.base, data.ids)  # no train(): reset keeps the training state
        _, ids = filled_index.search(data.queries, k)
        truth = brute_force(data.base, data.queries, k, metric)
        recall = _recall(_as_u64(ids), [{int(data.ids[p]) for p in row} for row in truth], k)
        assert recall >= recall_floor, (
            f"{filled_index.name}: after reset() and add() again, recall@{k} is {recall:.3f} < {recall_floor}"
        )

    def test_memory_bytes(
        self, make_index: Callable[[int, str], Any], filled_index: Any, data: IndexData, metric: str
    ) -> None:
        empty = make_index(data.dim, metric).memory_bytes()
        held = filled_index.memory_bytes()
        for value, what in ((empty, "an empty index"), (held, "a filled index")):
            assert isinstance(value, int | np.integer) and not isinstance(value, bool), (
                f"{filled_index.name}: memory_bytes() of {what} must be an int, got {value!r}"
            )
            assert value >= 0, f"{filled_index.name}: memory_bytes() of {what} is negative: {value}"
        assert held > 0, f"{filled_index.name}: memory_bytes() is 0 while holding vectors"

    # -- tenants (optional capability) -----------------------------------------

    @pytest.fixture
    def tenant_index(self, make_index: Callable[[int, str], Any], data: IndexData, metric: str) -> Any:
        """A fresh index holding ``data`` with its tenants; skips when the index has no tenant support."""
        index = make_index(data.dim, metric)
        _skip_without_tenants(index)
        index.train(data.base)
        try:
            index.add(data.base, data.ids, tenants=data.tenants)
        except NotImplementedError as exc:
            pytest.skip(str(exc) or f"{index.name} does not support tenants")
        return index

    def _allowed(self, data: IndexData, query_tenants: np.ndarray) -> np.ndarray:
        readers = np.zeros((data.n_tenants, len(data.base)), dtype=bool)
        for row, ts in enumerate(data.tenants):
            readers[ts, row] = True
        return readers[query_tenants]

    def test_tenant_filter_per_query(
        self, tenant_index: Any, data: IndexData, metric: str, k: int, recall_floor: float
    ) -> None:
        _, ids = tenant_index.search(data.queries, k, tenant=data.query_tenants)
        self._check_filtered(tenant_index, data, metric, k, recall_floor, data.query_tenants, ids)

    def test_tenant_filter_one_tenant(
        self, tenant_index: Any, data: IndexData, metric: str, k: int, recall_floor: float
    ) -> None:
        for t in range(data.n_tenants):
            _, ids = tenant_index.search(data.queries, k, tenant=t)
            qt = np.full(len(data.queries), t, dtype=np.uint32)
            self._check_filtered(tenant_index, data, metric, k, recall_floor, qt, ids)

    def _check_filtered(
        self,
        index: Any,
        data: IndexData,
        metric: str,
        k: int,
        recall_floor: float,
        query_tenants: np.ndarray,
        ids: np.ndarray,
    ) -> None:
        assert np.shape(ids) == (len(data.queries), k), f"{index.name}: filtered search gave shape {np.shape(ids)}"
        readable = {
            t: {int(data.ids[r]) for r, ts in enumerate(data.tenants) if t in ts} for t in range(data.n_tenants)
        }
        found = _as_u64(ids)
        for q, row in enumerate(found):
            t = int(query_tenants[q])
            bad = [int(i) for i in row if int(i) != 2**64 - 1 and int(i) not in readable[t]]
            assert not bad, f"{index.name}: query {q} of tenant {t} got rows the tenant may not read: {bad}"
        truth = brute_force(data.base, data.queries, k, metric, allowed=self._allowed(data, query_tenants))
        truth_ids = [{int(data.ids[p]) for p in row if p >= 0} for row in truth]
        recall = _recall(found, truth_ids, k)
        assert recall >= recall_floor, (
            f"{index.name}: filtered recall@{k} {recall:.3f} < floor {recall_floor} against brute force"
        )

    def test_tenant_len(self, tenant_index: Any, data: IndexData) -> None:
        for t in range(data.n_tenants):
            expected = sum(t in ts for ts in data.tenants)
            got = tenant_index.tenant_len(t)
            assert got == expected, f"{tenant_index.name}: tenant_len({t}) is {got}, the tenant can read {expected}"
        assert tenant_index.tenant_len(data.n_tenants + 100) == 0, f"{tenant_index.name}: an unknown tenant holds rows"

    def test_tenant_memory_bytes(self, tenant_index: Any, data: IndexData) -> None:
        tenants = np.arange(data.n_tenants, dtype=np.uint32)
        many = np.asarray(tenant_index.tenant_memory_bytes(tenants))
        assert many.shape == (data.n_tenants,), (
            f"{tenant_index.name}: tenant_memory_bytes(array of {data.n_tenants}) gave shape {many.shape}"
        )
        assert (many >= 0).all(), f"{tenant_index.name}: negative tenant_memory_bytes {many.tolist()}"
        for t in range(data.n_tenants):
            one = tenant_index.tenant_memory_bytes(t)
            assert int(one) == int(many[t]), (
                f"{tenant_index.name}: tenant_memory_bytes({t}) is {one}, {many[t]} in the array form"
            )


def _skip_without_tenants(index: Any) -> None:
    """Skip (visibly) unless ``index`` declares the tenants capability (``VectorIndex.supports_tenants``)."""
    if not getattr(index, "supports_tenants", False):
        pytest.skip(f"{index.name} does not support tenants (supports_tenants is False)")


# ---------------------------------------------------------------------------
# Experiment families
# ---------------------------------------------------------------------------


class RunObserver:
    """A plugin that records the run-lifecycle hooks it sees, in order (for :class:`FamilyConformance`)."""

    def __init__(self) -> None:
        #: ``("start", None)``, ``("result", row)``, ``("finish", record)`` in call order.
        self.events: list[tuple[str, Any]] = []

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows ``memarena_run_result`` received."""
        return [payload for kind, payload in self.events if kind == "result"]

    @hookimpl
    def memarena_run_start(self, run: Any) -> None:
        self.events.append(("start", None))

    @hookimpl
    def memarena_run_result(self, run: Any, row: dict[str, Any]) -> None:
        self.events.append(("result", dict(row)))

    @hookimpl
    def memarena_run_finish(self, run: Any, record: Any) -> None:
        self.events.append(("finish", record))


@dataclass
class FamilyRun:
    """One run of a family on a small config, as :class:`FamilyConformance` makes it."""

    #: The record :func:`memarena.run.execute` returned.
    record: Any
    #: The record file written into the run directory.
    record_path: Any
    #: What the lifecycle hooks saw.
    observer: RunObserver
    #: The composed config the run used.
    config: Any


#: Runs already made, per (family class, overrides, plugins): the checks share one run each.
_FAMILY_RUNS: dict[tuple[Any, ...], FamilyRun] = {}


def run_family(
    overrides: Sequence[str], output_dir: Any, *, plugins: Sequence[object] = (), seed: int | None = None
) -> FamilyRun:
    """Compose ``overrides`` as the command line would and run the family they select, in-process.

    Built on public API only: :func:`memarena.plugins.get_plugin_manager`
    (built-ins plus ``plugins``; installed entry points are not loaded),
    :func:`memarena.config.compose` and :func:`memarena.run.execute`.

    :param overrides: Hydra overrides selecting a family and a small config,
        e.g. ``["experiment=paging", "debug=tiny"]``. Sweeps in a preset are
        not expanded: the run is the preset's first point.
    :param output_dir: The run directory (the record is written there).
    :param plugins: Plugin modules or objects to register besides the built-ins.
    :param seed: Override the config's ``seed``.
    :returns: The record, its file and what the lifecycle hooks saw.
    """
    from pathlib import Path

    from memarena.config import compose
    from memarena.plugins import get_plugin_manager
    from memarena.registry import Registry
    from memarena.results import RECORD_FILE
    from memarena.run import execute

    observer = RunObserver()
    pm = get_plugin_manager(autoload=False, plugins=[*plugins, observer])
    all_overrides = [*overrides, *([] if seed is None else [f"seed={seed}"])]
    config = compose(all_overrides, pm=pm)
    out = Path(output_dir)
    record = execute(config, out, pm=pm, registry=Registry.from_plugin_manager(pm), overrides=all_overrides)
    return FamilyRun(record=record, record_path=out / RECORD_FILE, observer=observer, config=config)


class FamilyConformance:
    """The contract of an experiment family (``memarena.api.Family``).

    Provide ``family_class`` and ``family_overrides``: the Hydra overrides of
    a *small* run of the family (seconds, not minutes), e.g.
    ``["experiment=foo", "workload.n_items=100"]``. Override
    ``family_plugins`` with your plugin module(s) so that its components and
    YAML presets are registered (installed entry points are not loaded).
    The suite runs the family once in-process, as the ``memarena`` command
    would (:func:`run_family`), and checks the run and its record.

    Checks:

    * the class is a ``Family`` with a snake_case ``name`` and the ``family``
      group; ``label_columns`` and ``summary_columns`` are tuples of names,
      ``plots`` a tuple of ``PlotSpec``; its ``Config``'s ``_target_`` builds
      the same class from the defaults alone;
    * the overrides select this family (``family._target_``);
    * the run completes: record status ``complete``, no error, at least one
      row, the family's name and label columns in the record, the record
      file written and readable (``RunRecord.from_json``);
    * every row holds every label column (``optional_label_columns`` may
      be left out where they do not apply, in all rows of a run or none);
    * the family respects ``run.emit``: ``memarena_run_result`` saw exactly
      the record's rows in order, between one ``memarena_run_start`` and one
      ``memarena_run_finish`` (which received the record);
    * rows are JSON-ready: label values are str, int, float, bool or None;
    * a second run with the same seed produces the same labels in the same order.
    """

    @pytest.fixture
    def family_class(self) -> type[Any]:
        """The family class under test; a subclass must provide it."""
        pytest.fail(f"{type(self).__name__} must define a `family_class` fixture")

    @pytest.fixture
    def family_overrides(self, family_class: type[Any]) -> list[str]:
        """Overrides of a small run (default: ``experiment=<name>``, the family's own preset)."""
        return [f"experiment={family_class.name}"]

    @pytest.fixture
    def family_plugins(self) -> list[object]:
        """Plugin modules to register besides the built-ins (none by default)."""
        return []

    @pytest.fixture
    def optional_label_columns(self) -> tuple[str, ...]:
        """Label columns the family leaves out of a run's rows where they do not apply (default: none)."""
        return ()

    @pytest.fixture
    def family_run(
        self,
        family_class: type[Any],
        family_overrides: list[str],
        family_plugins: list[object],
        tmp_path_factory: pytest.TempPathFactory,
    ) -> FamilyRun:
        """The family's run (made once per class, overrides and plugins; shared by the checks)."""
        plugins = tuple(getattr(p, "__name__", None) or type(p).__qualname__ for p in family_plugins)
        key = (family_class, tuple(family_overrides), plugins)
        if key not in _FAMILY_RUNS:
            out = tmp_path_factory.mktemp(f"family-{family_class.name}")
            _FAMILY_RUNS[key] = run_family(family_overrides, out, plugins=family_plugins)
        return _FAMILY_RUNS[key]

    # -- checks ----------------------------------------------------------------------

    def test_name_kind_and_group(self, family_class: type[Any]) -> None:
        from memarena.api import Family, PlotSpec

        _check_name(family_class, Family)
        name = family_class.name
        assert family_class.kind == "family", f"{name}: kind must be 'family', got {family_class.kind!r}"
        assert family_class.config_group == "family", f"{name}: config_group must be 'family'"
        for attr in ("label_columns", "summary_columns"):
            value = getattr(family_class, attr)
            assert isinstance(value, tuple) and all(isinstance(c, str) for c in value), (
                f"{name}.{attr} must be a tuple of column names, got {value!r}"
            )
        assert family_class.label_columns, f"{name}.label_columns is empty: rows could not be told apart"
        assert isinstance(family_class.plots, tuple) and all(isinstance(p, PlotSpec) for p in family_class.plots), (
            f"{name}.plots must be a tuple of memarena.api.PlotSpec"
        )

    def test_config_target_builds_same_class(self, family_class: type[Any]) -> None:
        from hydra.utils import instantiate

        _check_built(instantiate(_check_config(family_class)), family_class)

    def test_overrides_select_the_family(self, family_class: type[Any], family_run: FamilyRun) -> None:
        target = family_run.config.family.get("_target_") if family_run.config.get("family") else None
        expected = _check_config(family_class)._target_
        assert target == expected, (
            f"{family_class.name}: the overrides compose family._target_={target!r}, not {expected!r}"
        )

    def test_run_completes(self, family_class: type[Any], family_run: FamilyRun) -> None:
        from memarena.results import RunRecord

        record = family_run.record
        name = family_class.name
        assert record.status == "complete", f"{name}: run ended {record.status}: {record.error}"
        assert record.error is None
        assert record.family == name, f"{name}: the record names family {record.family!r}"
        assert record.rows, f"{name}: the run emitted no rows"
        assert record.label_columns == list(family_class.label_columns)
        assert family_run.record_path.is_file(), f"{name}: no record at {family_run.record_path}"
        written = RunRecord.from_json(family_run.record_path.read_text(), source=str(family_run.record_path))
        assert written.status == "complete" and len(written.rows) == len(record.rows)

    def test_memory_estimate_is_well_formed(
        self,
        family_class: type[Any],
        family_run: FamilyRun,
        family_plugins: list[object],
        tmp_path_factory: pytest.TempPathFactory,
    ) -> None:
        """``estimate_memory`` gives None or a :class:`memarena.api.MemoryEstimate` naming config keys."""
        from memarena.api import MemoryEstimate
        from memarena.plugins import get_plugin_manager
        from memarena.registry import Registry
        from memarena.run import Run

        name = family_class.name
        pm = get_plugin_manager(autoload=False, plugins=list(family_plugins))
        run = Run(family_run.config, Registry.from_plugin_manager(pm), pm, tmp_path_factory.mktemp("estimate"))
        est = run.component("family").estimate_memory(run)
        if est is None:
            return
        assert isinstance(est, MemoryEstimate), f"{name}.estimate_memory returned {type(est).__name__}"
        assert isinstance(est.bytes, int) and est.bytes >= 0, f"{name}: estimate bytes {est.bytes!r}"
        assert isinstance(est.keys, tuple) and est.keys, f"{name}: the estimate names no config keys"
        for key in est.keys:
            assert isinstance(key, str) and key.split(".", 1)[0] in family_run.config, (
                f"{name}: estimate key {key!r} is not a key of the config"
            )

    def test_rows_hold_every_label_column(
        self, family_class: type[Any], family_run: FamilyRun, optional_label_columns: tuple[str, ...]
    ) -> None:
        labels = family_class.label_columns
        unknown = sorted(set(optional_label_columns) - set(labels))
        assert not unknown, f"optional_label_columns {unknown} are not label columns of {family_class.name}"
        rows = family_run.record.rows
        for i, row in enumerate(rows):
            missing = [c for c in labels if c not in row and c not in optional_label_columns]
            assert not missing, f"{family_class.name}: row {i} lacks label columns {missing}"
            for c in labels:
                assert row.get(c) is None or isinstance(row[c], str | int | float | bool), (
                    f"{family_class.name}: row {i} label {c}={row[c]!r} is not a str, number, bool or None"
                )
        for c in optional_label_columns:
            holding = sum(c in row for row in rows)
            assert holding in (0, len(rows)), (
                f"{family_class.name}: label {c!r} is in {holding} of {len(rows)} rows of one run (all or none)"
            )

    def test_respects_run_emit(self, family_class: type[Any], family_run: FamilyRun) -> None:
        name = family_class.name
        events = [kind for kind, _ in family_run.observer.events]
        assert events[0] == "start" and events.count("start") == 1, f"{name}: run-start hook calls: {events[:3]}"
        assert events[-1] == "finish" and events.count("finish") == 1, f"{name}: run-finish hook calls: {events[-3:]}"
        seen = family_run.observer.rows
        assert len(seen) == len(family_run.record.rows), (
            f"{name}: memarena_run_result saw {len(seen)} rows, the record holds {len(family_run.record.rows)}: "
            "every row must go through run.emit(row)"
        )
        for i, (a, b) in enumerate(zip(seen, family_run.record.rows, strict=True)):
            assert a.keys() == b.keys(), f"{name}: row {i} differs between run.emit and the record"
        assert family_run.observer.events[-1][1] is family_run.record

    def test_same_seed_same_labels(
        self,
        family_class: type[Any],
        family_run: FamilyRun,
        family_overrides: list[str],
        family_plugins: list[object],
        tmp_path: Any,
    ) -> None:
        again = run_family(family_overrides, tmp_path, plugins=family_plugins)
        labels = family_class.label_columns

        def key(record: Any) -> list[tuple[Any, ...]]:
            return [tuple(row.get(c) for c in labels) for row in record.rows]

        assert key(again.record) == key(family_run.record), (
            f"{family_class.name}: two runs with seed {family_run.record.seed} emitted different labels"
        )
