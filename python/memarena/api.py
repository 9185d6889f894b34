"""The component kinds a plugin can provide, as abstract base classes.

Every component class has a unique snake_case ``name`` (the stable identifier
used in configs, the CLI, metrics and entry points) and a ``Config``
dataclass whose ``_target_`` names the class by its public import path.
Hydra's config store is derived from the registry of these classes, so
``<config_group>=<name>`` works on the command line with no YAML.

Kinds (``Component.kind``): ``method`` (memory methods, with a ``sub_kind``
such as ``paging_policy``), ``backend``, ``agent_memory``, ``workload``,
``index`` (vector indexes), ``embedder`` (text to unit-norm vectors), ``metric`` and ``family`` (an
experiment runner). New method sub-kinds are
added by subclassing :class:`MemoryMethod` with a new ``sub_kind`` and
``config_group``.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from memarena._core import KVRequest

if TYPE_CHECKING:
    from memarena.run import Run

__all__ = [
    "KINDS",
    "ActivationPolicy",
    "AgentMemory",
    "BackendRequirements",
    "Clock",
    "Component",
    "Embedder",
    "Family",
    "HardwareBackend",
    "KVBreakdown",
    "KVCompression",
    "KVCounters",
    "KVManager",
    "KVRequest",
    "MemoryContext",
    "MemoryEstimate",
    "MemoryItem",
    "MemoryMethod",
    "Metric",
    "Optimizer",
    "PagingPolicy",
    "PlotSpec",
    "ScoredItem",
    "Tier",
    "VectorIndex",
    "Workload",
    "param",
]


def param(
    default: Any = MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    choices: Sequence[Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A ``Config`` field with the values it allows, checked when the component is built.

    The one place a parameter is written: its name, type (the annotation),
    default and allowed values; the ``#:`` comment above it is its doc. A
    component that takes its parameters through :meth:`Component.__init__`
    needs no signature of its own, so no default is ever written twice.

    :param default: The default value (omit for a required field).
    :param factory: Builds a mutable default (a list or dict), instead of ``default``.
    :param choices: The allowed values (e.g. a vocabulary the core exports).
    :param ge: Inclusive lower bound; ``gt``, ``le``, ``lt`` likewise.
    :returns: A :func:`dataclasses.field`.
    """
    checks: dict[str, Any] = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    if choices is not None:
        checks["choices"] = tuple(choices)
    if factory is not None:
        return field(default_factory=factory, metadata=checks)
    return field(default=default, metadata=checks)


def _plain(value: Any) -> Any:
    """Hydra hands lists and dicts over as omegaconf containers: plain Python values instead."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def _check_field(where: str, f: Field[Any], value: Any) -> None:
    from memarena.errors import InvalidConfigError

    checks = f.metadata
    if "choices" in checks and value not in checks["choices"]:
        allowed = ", ".join(map(str, checks["choices"]))
        raise InvalidConfigError(f"config key {where!r} must be one of {allowed}, got {value!r}")
    bounds = [(k, v) for k, v in checks.items() if k in ("ge", "gt", "le", "lt")]
    if not bounds:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidConfigError(f"config key {where!r} must be a number, got {value!r}")
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    holds = {"ge": float.__ge__, "gt": float.__gt__, "le": float.__le__, "lt": float.__lt__}
    if not all(holds[k](float(value), float(bound)) for k, bound in bounds):
        rule = " and ".join(f"{words[k]} {bound}" for k, bound in bounds)
        raise InvalidConfigError(f"config key {where!r} must be {rule}, got {value!r}")


class Component(abc.ABC):
    """Base of every registrable component.

    Subclasses set ``name`` (snake_case, unique per kind) and a ``Config``
    dataclass; ``kind`` and ``config_group`` come from the kind's base class.

    **Parameters are written once, in ``Config``** (with :func:`param` for
    the allowed values). The default constructor takes exactly the
    ``Config`` fields as keyword arguments, fills the rest from their
    defaults, checks each against its :func:`param` rules (an
    ``InvalidConfigError`` naming ``<config_group>.<field>``), keeps the
    result in :attr:`config` and reads ``self.<field>`` from it. A
    component that needs more (a capacity, a dimension, derived state)
    defines ``__init__`` and calls ``super().__init__(**params)``.
    """

    #: Stable registry name, snake_case.
    name: ClassVar[str]
    #: Component kind: one of :data:`KINDS`.
    kind: ClassVar[str]
    #: Hydra config group the ``Config`` is stored under.
    config_group: ClassVar[str]
    #: Structured config; a dataclass whose ``_target_`` names this class.
    Config: ClassVar[type]
    #: This instance's parameters: a checked ``Config`` (set by :meth:`__init__`).
    config: Any

    def __init__(self, **params: Any) -> None:
        self.config = self.make_config(**params)

    @classmethod
    def make_config(cls, **params: Any) -> Any:
        """A checked ``Config`` holding ``params`` over the defaults.

        :raises InvalidConfigError: an unknown parameter (listing the known
            ones), a missing required one, or a value outside its
            :func:`param` rules, naming ``<config_group>.<field>``.
        """
        from memarena.errors import InvalidConfigError

        known = {f.name: f for f in fields(cls.Config) if f.name != "_target_"}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise InvalidConfigError(
                f"config key '{cls.config_group}.{unknown[0]}' is not a parameter of {cls.config_group}={cls.name}; "
                f"known: {', '.join(sorted(known)) or '(none)'}"
            )
        values = {k: _plain(v) for k, v in params.items()}
        for k, f in known.items():
            if k not in values and f.default is MISSING and f.default_factory is MISSING:
                raise InvalidConfigError(f"config key '{cls.config_group}.{k}' is required by {cls.name}")
        config = cls.Config(**values)
        for k, f in known.items():
            if getattr(config, k) == "???":  # omegaconf's MISSING: a value the user must give
                raise InvalidConfigError(f"config key '{cls.config_group}.{k}' is required by {cls.name}")
            _check_field(f"{cls.config_group}.{k}", f, getattr(config, k))
        return config

    def config_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict (the ``Config`` fields but ``_target_``)."""
        return {f.name: getattr(self.config, f.name) for f in fields(self.config) if f.name != "_target_"}

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: a Config field read as self.<field>.
        config = self.__dict__.get("config")
        if config is not None and name in getattr(config, "__dataclass_fields__", ()):
            return getattr(config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring, for listings."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


# ---------------------------------------------------------------------------
# Memory methods
# ---------------------------------------------------------------------------


class MemoryMethod(Component):
    """A memory-management method; ``sub_kind`` says which problem it solves."""

    kind: ClassVar[str] = "method"
    sub_kind: ClassVar[str]


def _config_defaults(cls: type, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The defaults of ``cls.Config``'s fields (those that have one), ``_target_`` and ``exclude`` left out."""
    config = getattr(cls, "Config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return {}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        if f.name == "_target_" or f.name in exclude:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


class PagingPolicy(MemoryMethod):
    """A page/object replacement policy for the ``paging`` family.

    Two ways to provide one:

    * **native** (fast path): set ``core_name`` to a policy of the Rust core;
      the whole trace is replayed in Rust with the GIL released.
    * **Python** (slow path, documented): leave ``core_name`` as None and
      implement :meth:`on_hit`, :meth:`on_insert` and :meth:`evict`. The Rust
      engine keeps the resident set and byte accounting and calls these once
      per event, like libCacheSim's ``PluginCache``. It checks every answer:
      evicting a non-resident object raises ``InvariantError``.

    The experiment constructs the policy as ``cls(capacity=..., **params)``
    where params are the fields of ``Config`` other than ``_target_``.
    """

    kind: ClassVar[str] = "method"
    sub_kind: ClassVar[str] = "paging_policy"
    config_group: ClassVar[str] = "policy"
    #: Name of the Rust core policy this class runs, or None for Python policies.
    core_name: ClassVar[str | None] = None
    #: The prediction column a learning-augmented policy reads: ``"next_arrival"``
    #: (predicted next-request time), ``"discard_bit"`` or ``"phase_bit"`` (the
    #: one-bit predictions of Antoniadis et al.), or None for classic policies.
    #: The paging family fills it with oracle labels unless the trace has its own.
    prediction_kind: ClassVar[str | None] = None

    def __init__(self, capacity: int, **params: Any) -> None:
        if capacity < 1:
            raise ValueError(f"{self.name}: capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        # Parameters left out take the Config defaults (the one source of defaults).
        self.params = {**_config_defaults(type(self), exclude=("capacity",)), **params}

    def core_params(self) -> dict[str, Any]:
        """The parameters handed to the Rust core (native policies): every ``Config`` field, as set.

        The core requires each field of its policy's parameters and refuses
        unknown ones, naming ``policy.<field>``.
        """
        return dict(self.params)

    # -- Python policy protocol (slow path) ---------------------------------

    def on_hit(self, obj_id: int, size: int, vtime: int) -> None:
        """A resident object was requested again."""

    def on_insert(self, obj_id: int, size: int, vtime: int) -> None:
        """A missed object was admitted (room has been made)."""

    def evict(self, vtime: int) -> int:
        """Return the id of a resident object to evict."""
        raise NotImplementedError(f"{self.name} is not a Python policy (core_name={self.core_name})")

    def on_evict(self, obj_id: int) -> None:
        """``obj_id`` left the cache (after :meth:`evict` chose it)."""


class KVBreakdown(NamedTuple):
    """The KV pool split into the categories of the vLLM paper's Fig. 2 (plus idle mapped pages), in bytes.

    Invariant: the six categories (all but ``cached_free_bytes``) sum to the
    pool size, and ``cached_free_bytes <= free_bytes``. ``breakdown(pending)``
    gets the request at the head of the queue only while it is blocked on
    memory (the manager refused its admission); count external fragmentation
    only then.
    """

    #: KV of tokens actually stored.
    token_states_bytes: int
    #: Reserved for tokens a request will still produce (static reservation).
    reserved_bytes: int
    #: Allocated but never to hold a token (a block's unused tail).
    internal_frag_bytes: int
    #: Free, but in holes too small for the request blocked on memory at the head of the queue.
    external_frag_bytes: int
    #: Free and usable (includes evictable prefix-cache blocks).
    free_bytes: int
    #: Part of ``free_bytes`` holding evictable prefix-cache blocks.
    cached_free_bytes: int = 0
    #: Kept mapped on slots no request holds (deferred reclamation), reclaimable
    #: on demand: neither used nor free (a category of its own, after ``free_bytes``
    #: in the tuple so that 6-field breakdowns keep their meaning).
    idle_mapped_bytes: int = 0


class KVCounters(NamedTuple):
    """Cumulative counters of a KV manager, reported with the run."""

    #: Copy-on-write block copies (parallel sampling).
    cow_copies: int = 0
    #: Cached blocks evicted to make room (prefix caching).
    cache_evictions: int = 0
    #: Physical pages mapped (demand paging).
    pages_mapped: int = 0
    #: Physical pages unmapped by reclamation.
    pages_reclaimed: int = 0


class KVManager(MemoryMethod):
    """A KV-cache memory manager for the ``serving`` family.

    Two ways to provide one, as for :class:`PagingPolicy`:

    * **native** (fast path): :meth:`core_config` returns the ``kv`` config
      of a manager of the Rust core (the built-ins ``static``, ``paged``,
      ``vattention``); the whole simulation runs in Rust with the GIL
      released.
    * **Python** (slow path, documented): :meth:`core_config` returns None
      (the default) and the class implements the protocol below. The Rust
      simulator (scheduler, cost model, metrics) runs as for a native
      manager and calls these methods through one callback adapter,
      re-acquiring the GIL around each call: a few calls per request per
      iteration (:meth:`grow` for every running request at every step).
      Expect well under a microsecond per call plus the method's own time:
      the Python reference of ``paged`` serves 5000 requests of the Azure
      trace (1.3 million ``grow`` calls) in about 1.2 s, against 0.02 s
      natively. The reports equal those of a native manager with the same
      semantics (``memarena.families.serving.reference.PagedPythonKV``
      reproduces the native ``paged`` report exactly).

    **Protocol.** Requests are named by a dense id ``rid`` (their index in
    the request list); ``req`` is a :class:`KVRequest` (``prompt_tokens``,
    ``max_tokens`` = prompt + output - 1, the peak KV tokens of a sequence,
    ``n_parallel``, ``prefix_group``, ``prefix_tokens``, ``salt``). Required:
    :meth:`setup`, :meth:`can_ever_fit`, :meth:`admit`, :meth:`grow`,
    :meth:`free`, :meth:`resident_bytes`, :meth:`breakdown`. Optional (the
    defaults here are what the adapter assumes for an object that lacks
    them): :meth:`lookup`, :meth:`swap_in`, :meth:`set_time`,
    :meth:`take_step_overhead`, :meth:`counters`, :meth:`check_invariants`.

    **Invariants** the scheduler relies on:

    * a method that returns False leaves the state unchanged (the scheduler
      preempts and tries again);
    * :meth:`can_ever_fit` is True only if the request, alone in the pool,
      can be admitted and grown to ``max_tokens`` with ``n_parallel``
      sequences (else a run can end in an ``InvariantError`` naming the
      manager);
    * :meth:`breakdown` sums to the pool size :meth:`setup` returned;
    * :meth:`free` of a request that holds nothing is a no-op.

    **Errors.** An exception raised in any callback, or a return value of the
    wrong type (or out of range), stops the run: the adapter stops calling
    Python, the scheduler drains, and the run raises
    :class:`memarena.errors.CallbackError` naming the manager and the call
    (``KV manager 'mine': grow(3, 17, 1) raised ZeroDivisionError: ...``)
    with the original exception as ``__cause__``; a run under ``memarena``
    is recorded ``failed`` with that message.

    **Lifecycle.** The family builds the manager from its ``Config`` (like
    any component) and simulates once; :meth:`setup` is called at the start
    of every simulation and must reset all state. The manager's ``name``
    becomes the report's ``kv_manager``.
    """

    sub_kind: ClassVar[str] = "kv_manager"
    config_group: ClassVar[str] = "kv_manager"

    def core_config(self) -> dict[str, Any] | None:
        """The ``kv`` config of a native manager of the Rust core; None (the default) for a Python manager."""
        return None

    def describe(self) -> str:
        """A label for tables (the registry name plus the parameters that tell variants apart)."""
        return self.name

    # -- Python manager protocol (slow path) --------------------------------

    def setup(
        self, budget_bytes: int, bytes_per_token: int, max_model_len: int, max_num_seqs: int, num_layers: int
    ) -> int:
        """Start of a simulation: reset all state, size the pool; return its size in bytes.

        :param budget_bytes: HBM bytes left for the KV pool (after weights and activations).
        :param bytes_per_token: KV bytes per token (all layers, K and V).
        :param max_model_len: Longest request (prompt + output) served.
        :param max_num_seqs: Sequences running at once.
        :param num_layers: Layers of the model.
        :returns: the pool size in bytes, in ``1..=budget_bytes`` (a whole number of the manager's units).
        """
        raise NotImplementedError(f"{self.name} is not a Python KV manager (it runs natively)")

    def can_ever_fit(self, req: KVRequest) -> bool:
        """Whether ``req`` could be served with the whole pool to itself (else it is rejected as unservable)."""
        raise NotImplementedError(f"{self.name} is not a Python KV manager (it runs natively)")

    def lookup(self, rid: int, req: KVRequest, num_tokens: int) -> int:
        """Prefix-cache lookup before admitting ``rid`` with ``num_tokens`` tokens to hold.

        :returns: the tokens found cached, at most ``num_tokens - 1`` (the last
            token is always computed); 0 without prefix caching. The next call
            is :meth:`admit` of the same ``rid`` with these ``hit_tokens``.
        """
        return 0

    def admit(self, rid: int, req: KVRequest, hit_tokens: int, tokens: int) -> bool:
        """Admit ``rid`` with room for ``tokens`` tokens (its first sequence), reusing ``hit_tokens`` cached ones."""
        raise NotImplementedError(f"{self.name} is not a Python KV manager (it runs natively)")

    def grow(self, rid: int, tokens: int, n_seqs: int) -> bool:
        """Grow every sequence of ``rid`` to ``tokens`` tokens, forking to ``n_seqs`` sequences first if fewer."""
        raise NotImplementedError(f"{self.name} is not a Python KV manager (it runs natively)")

    def free(self, rid: int) -> None:
        """Release everything ``rid`` holds (completion or preemption); a no-op if it holds nothing."""
        raise NotImplementedError(f"{self.name} is not a Python KV manager (it runs natively)")

    def resident_bytes(self, rid: int) -> int:
        """Device bytes ``rid`` holds (what a swap-out moves to the host)."""
        raise NotImplementedError(f"{self.name} is not a Python KV manager (it runs natively)")

    def swap_in(self, rid: int, req: KVRequest, tokens: int, n_seqs: int) -> bool:
        """Re-create ``rid`` after a swap-in: ``n_seqs`` sequences of ``tokens`` tokens.

        The default admits and grows (and frees again if growing fails).
        """
        if not self.admit(rid, req, 0, tokens):
            return False
        if n_seqs > 1 and not self.grow(rid, tokens, n_seqs):
            self.free(rid)
            return False
        return True

    def breakdown(self, pending: KVRequest | None) -> KVBreakdown:
        """The memory breakdown now; ``pending`` heads the waiting queue (for external fragmentation)."""
        raise NotImplementedError(f"{self.name} is not a Python KV manager (it runs natively)")

    def set_time(self, now_s: float) -> None:
        """The simulated time, before each iteration (for LRU timestamps)."""

    def take_step_overhead(self) -> tuple[int, float]:
        """Extra HBM bytes and extra seconds incurred since the last call (copies, page mapping)."""
        return (0, 0.0)

    def counters(self) -> KVCounters:
        """Cumulative counters, read once for the report."""
        return KVCounters()

    def check_invariants(self) -> None:
        """Recompute every invariant; raise (e.g. ``InvariantError``) if one is broken.

        Called at every iteration when the run sets ``check_invariants``.
        """


class KVCompression(MemoryMethod):
    """A KV-cache compression method for the ``kvcache`` family.

    A method builds the KV cache of one sequence: :meth:`new_layer` returns
    one :class:`memarena.families.kvcache.LayerCache` per layer, which the
    fixture model drives (queries, rotated keys, values of each forward
    call in; attention out) and which reports the storage bytes of every
    tensor it holds, by category. ``budget`` is the fraction of the
    context's tokens a token-selecting method keeps (``family.budget``); a
    method that does not select tokens (quantization) ignores it. See the
    plugin-writer guide, "A KV-compression method".
    """

    sub_kind: ClassVar[str] = "kv_compression"
    config_group: ClassVar[str] = "kv_compression"
    #: Prefill in chunks of this many tokens (None: the whole context in one forward).
    prefill_chunk_tokens: ClassVar[int | None] = None

    def new_cache(self, spec: Any, budget: float) -> Any:
        """A :class:`memarena.families.kvcache.KVCache` for one sequence (one :meth:`new_layer` per layer)."""
        from memarena.families.kvcache.cache import KVCache

        return KVCache([self.new_layer(spec, i, budget) for i in range(spec.n_layers)])

    @abc.abstractmethod
    def new_layer(self, spec: Any, layer: int, budget: float) -> Any:
        """Layer ``layer``'s :class:`~memarena.families.kvcache.LayerCache` under ``spec``.

        ``spec`` is a :class:`memarena.models.CacheSpec`: the model's KV geometry.
        """


class Optimizer(MemoryMethod):
    """A memory-efficient optimizer for the ``training`` family."""

    sub_kind: ClassVar[str] = "optimizer"
    config_group: ClassVar[str] = "optimizer"


class ActivationPolicy(MemoryMethod):
    """What the ``training`` family keeps of each layer's activations for backward: all, a checkpoint, a host copy.

    Selected with ``activation=<name>``; the family runs every decoder layer
    through the policy (see :mod:`memarena.families.training.activations`).
    """

    sub_kind: ClassVar[str] = "activation_policy"
    config_group: ClassVar[str] = "activation"


# ---------------------------------------------------------------------------
# Hardware backends
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    """One memory tier of a hardware backend."""

    name: str
    capacity_bytes: int
    bandwidth_bytes_per_s: float
    latency_s: float

    def access_time_s(self, size_bytes: float) -> float:
        """Time to read ``size_bytes`` from this tier: latency + size / bandwidth."""
        return self.latency_s + size_bytes / self.bandwidth_bytes_per_s


@dataclass(frozen=True)
class BackendRequirements:
    """What a family needs from the selected hardware backend (:meth:`Family.backend_requirements`).

    memarena checks it before the family runs, with
    :meth:`HardwareBackend.check`: a missing tier or dtype stops the run with
    an error naming the backend, the family and what the backend has.
    """

    #: Tier names the backend must have (``HardwareBackend.tier(name)``).
    tiers: tuple[str, ...] = ()
    #: Dtypes the backend must give a peak FLOP/s for (``HardwareBackend.peak_flops[dtype]``).
    peak_flops: tuple[str, ...] = ()


class HardwareBackend(Component):
    """Data plus a cost model: memory tiers and compute.

    Subclasses fill :attr:`tiers` (fastest first) and :attr:`peak_flops`
    (per dtype) in ``__init__`` from their Config; each figure's public source
    is named in the Config's ``source`` field.
    """

    kind: ClassVar[str] = "backend"
    config_group: ClassVar[str] = "backend"

    def __init__(self, tiers: Sequence[Tier], peak_flops: Mapping[str, float] | None = None, source: str = "") -> None:
        if not tiers:
            raise ValueError(f"backend {self.name}: needs at least one memory tier")
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"backend {self.name}: duplicate tier names {names}")
        self.tiers = tuple(tiers)
        self.peak_flops = dict(peak_flops or {})
        self.source = source

    def check(self, needs: BackendRequirements, who: str) -> None:
        """Raise ``InvalidConfigError`` unless this backend has every tier and dtype ``needs`` lists.

        :param needs: The tiers and peak-FLOP/s dtypes required.
        :param who: Who requires them, for the message (e.g. ``"family 'serving'"``).
        """
        from memarena.errors import InvalidConfigError

        names = [t.name for t in self.tiers]
        missing = [f"tier {t!r}" for t in needs.tiers if t not in names]
        missing += [f"peak_flops[{d!r}]" for d in needs.peak_flops if d not in self.peak_flops]
        if missing:
            have = ", ".join(names)
            flops = ", ".join(sorted(self.peak_flops)) or "none"
            raise InvalidConfigError(
                f"config key 'backend': {self.name!r} lacks {', '.join(missing)}, which {who} requires "
                f"(it has tiers {have}; peak_flops for {flops})"
            )

    def tier(self, name: str) -> Tier:
        """The tier called ``name``; the error lists the available tiers."""
        for t in self.tiers:
            if t.name == name:
                return t
        raise KeyError(f"backend {self.name} has no tier {name!r}; available: {', '.join(t.name for t in self.tiers)}")


# ---------------------------------------------------------------------------
# Agent memories
# ---------------------------------------------------------------------------


@dataclass
class MemoryItem:
    """One stored memory of an agent: text plus whose it is, when and where it was said.

    The first four fields keep their positions (``MemoryItem(text, session,
    turn, metadata)``); the rest are keywords. The ``agent`` family makes one
    item per turn of a history: ``session`` is the session's position in the
    user's history (0, 1, ...; memories that count time in sessions use it as
    their clock), ``turn`` the turn's position among *all* turns of its
    session (user and assistant; LongMemEval's turn ids are ``turn + 1``),
    ``session_id`` the session's id in the data, ``role`` ``"user"`` or
    ``"assistant"``, ``timestamp_s`` the session's date in seconds since the
    epoch (naive dates read as UTC). An item a memory derives from several
    turns (a session document, a note, a summary) keeps the ``session`` and
    ``session_id`` of its source and ``turn = -1`` when it stands for no one
    turn; the family scores a memory's results through these two fields.
    """

    text: str
    session: int = 0
    turn: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Whose memory this is (the family gives each user a memory of their own).
    user: str = ""
    #: The session's id in the data (LongMemEval's ``haystack_session_ids``).
    session_id: str = ""
    #: Who said it: ``"user"`` or ``"assistant"`` (or what a memory derives, e.g. ``"note"``).
    role: str = "user"
    #: When it was said: the session's date, seconds since the epoch (None: unknown).
    timestamp_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The item as a JSON object (``metadata`` must hold JSON values)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MemoryItem:
        """The item :meth:`to_json` wrote (unknown keys are refused, naming them)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"MemoryItem: unknown field {unknown[0]!r}")
        return cls(**data)


class ScoredItem(NamedTuple):
    """One result of :meth:`AgentMemory.search`: an item and its score (higher is better)."""

    item: MemoryItem
    score: float


class Clock:
    """Simulated time of a memory, in seconds since the epoch; it never goes back.

    The ``agent`` family moves it to each session's date before adding the
    session and to the question's date before searching, so a memory reads
    "now" as ``clock.now_s`` (``clock.now_days`` for curves in days).

    :param now_s: The starting time.
    """

    __slots__ = ("_now_s",)

    def __init__(self, now_s: float = 0.0) -> None:
        self._now_s = float(now_s)

    @property
    def now_s(self) -> float:
        """The current time, seconds since the epoch."""
        return self._now_s

    @property
    def now_days(self) -> float:
        """The current time in days since the epoch."""
        return self._now_s / 86400.0

    def advance_to(self, t_s: float) -> None:
        """Move to ``t_s``; a time before now leaves the clock where it is."""
        if t_s > self._now_s:
            self._now_s = float(t_s)

    def __repr__(self) -> str:
        return f"Clock(now_s={self._now_s})"


@dataclass
class MemoryContext:
    """What the family hands a memory before the first :meth:`AgentMemory.add` (:meth:`AgentMemory.bind`).

    :param user: Whose memory it is; every item added carries this ``user``.
    :param embedder: The run's ``embedder`` component (None when the run has
        none; a memory that needs one raises, naming the ``embedder`` key).
    :param clock: The simulated time (the family advances it).
    """

    user: str = ""
    embedder: Embedder | None = None
    clock: Clock = field(default_factory=Clock)


class AgentMemory(Component):
    """A long-term memory for an LLM agent: store items, search them for a query.

    **What to implement** (a memory is one file plus a registration):

    * ``add(item)``: store one :class:`MemoryItem`; a memory may keep it
      whole, split it, merge it into what it holds, or derive notes from it.
    * ``search(query, k) -> list[ScoredItem]``: at most ``k`` items, best
      first (scores non-increasing), each with the memory's score. Older
      memories implement ``retrieve(query, k) -> list[MemoryItem]`` instead;
      each of the two defaults to the other (a ``retrieve``-only memory's
      scores are ``-rank``).
    * ``__len__``: items stored (what :meth:`search` can return).
    * ``items()``: every stored item, for inspection and the cost.

    **Optional:** :meth:`add_many` (one session at a time; the default loops
    over :meth:`add`), :meth:`memory_breakdown` (the exact cost: text,
    vector and index bytes; the default counts the texts of :meth:`items`),
    and :meth:`get_state`/:meth:`set_state` (a snapshot, for :meth:`save`).

    **What the family provides** through :meth:`bind`, before the first
    add: the user, the run's embedder (``self.embedder``) and the clock
    (``self.clock.now_s``). The ``agent`` family builds one memory per
    user from its ``Config``, binds it, adds the user's sessions in time
    order (``add_many`` per session, the clock at the session's date), then
    searches for the question with the clock at the question's date.

    **Durability:** :meth:`save` writes :meth:`get_state` to a versioned,
    checksummed file; :meth:`load` reads it back. For interrupted ingests,
    :func:`memarena.families.agent.persist.DurableMemory` journals every
    acknowledged add and search (fsynced) and replays them on open, which
    needs nothing more from a memory than being deterministic given its
    calls, its config and the clock.

    Invariants: ``len(self) == len(self.items())``; :meth:`search` returns
    stored items only, never more than ``k``, best first;
    ``memory_bytes() == sum(memory_breakdown().values())``.
    """

    kind: ClassVar[str] = "agent_memory"
    config_group: ClassVar[str] = "agent_memory"
    #: Version of the layout :meth:`get_state` returns; bump it when the layout changes
    #: (a file saved under another version is refused, naming both).
    state_version: ClassVar[int] = 1

    # -- context --------------------------------------------------------------

    def bind(self, context: MemoryContext) -> None:
        """Receive the user, the embedder and the clock (the family calls it once, before any add)."""
        self.__dict__["_context"] = context

    @property
    def context(self) -> MemoryContext:
        """What :meth:`bind` gave (an empty context, with its own clock, if never bound)."""
        ctx = self.__dict__.get("_context")
        if ctx is None:
            ctx = self.__dict__["_context"] = MemoryContext()
        return ctx  # type: ignore[no-any-return]

    @property
    def clock(self) -> Clock:
        """The simulated time (``self.clock.now_s``)."""
        return self.context.clock

    @property
    def embedder(self) -> Embedder:
        """The run's embedder; raises ``InvalidConfigError`` naming the ``embedder`` key when there is none."""
        emb = self.context.embedder
        if emb is None:
            from memarena.errors import InvalidConfigError

            raise InvalidConfigError(
                f"config key 'embedder': agent_memory={self.name} embeds texts, and no embedder is set "
                "(choose one with embedder=<name>, e.g. embedder=hashing)"
            )
        return emb

    # -- the contract -------------------------------------------------------------

    @abc.abstractmethod
    def add(self, item: MemoryItem) -> None:
        """Store one item."""

    def add_many(self, items: Sequence[MemoryItem]) -> None:
        """Store several items, in order: one session's turns when the ``agent`` family calls it."""
        for item in items:
            self.add(item)

    def search(self, query: str, k: int) -> list[ScoredItem]:
        """At most ``k`` items for ``query``, best first, each with its score (higher is better)."""
        if type(self).retrieve is AgentMemory.retrieve:
            raise NotImplementedError(f"{self.name} implements neither search nor retrieve")
        return [ScoredItem(item, -float(rank)) for rank, item in enumerate(self.retrieve(query, k))]

    def retrieve(self, query: str, k: int) -> list[MemoryItem]:
        """Return at most ``k`` items relevant to ``query``, best first (:meth:`search` without scores)."""
        if type(self).search is AgentMemory.search:
            raise NotImplementedError(f"{self.name} implements neither search nor retrieve")
        return [hit.item for hit in self.search(query, k)]

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of items held."""

    def items(self) -> list[MemoryItem]:
        """Every item held (for inspection and cost accounting)."""
        raise NotImplementedError(f"{self.name} does not list its items")

    # -- cost --------------------------------------------------------------------

    def memory_breakdown(self) -> dict[str, int]:
        """Bytes held, by part: ``text_bytes`` (UTF-8 of every stored text), ``vector_bytes``
        (embeddings), ``index_bytes`` (the index structure beyond its vectors, term postings).

        The default counts the texts of :meth:`items` only.
        """
        return {"text_bytes": sum(len(m.text.encode()) for m in self.items()), "vector_bytes": 0, "index_bytes": 0}

    def memory_bytes(self) -> int:
        """Bytes held: the sum of :meth:`memory_breakdown` (the cost the agent family reports)."""
        return sum(self.memory_breakdown().values())

    # -- durability ----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """A snapshot of everything the memory holds: JSON values, ``bytes`` and numpy arrays, nested in
        dicts and lists. :meth:`set_state` on a fresh memory of the same config must restore it exactly."""
        raise NotImplementedError(f"{self.name} does not support save (get_state)")

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`get_state` snapshot into this fresh, bound memory."""
        raise NotImplementedError(f"{self.name} does not support load (set_state)")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`get_state` to ``path`` atomically: versioned, checksummed
        (:mod:`memarena.families.agent.persist`)."""
        from memarena.families.agent.persist import save_memory

        save_memory(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], context: MemoryContext | None = None) -> AgentMemory:
        """A memory built from the config saved in ``path``, bound to ``context``, its state restored.

        :raises MalformedInputError: not a memory file, another format or
            state version, a truncated or corrupted file (naming the path).
        """
        from memarena.families.agent.persist import load_memory

        return load_memory(path, context, expect=cls)


# ---------------------------------------------------------------------------
# Vector indexes
# ---------------------------------------------------------------------------


class VectorIndex(Component):
    """A vector index for the ``retrieval`` family (faiss-shaped, batch-first).

    Verbs: :meth:`train`, :meth:`add`, :meth:`search`, :meth:`reset`, and
    optionally ``delete``/``save``. ``search`` returns ``(distances, ids)``
    of shape ``(nq, k)``, best first, padded with id ``-1``. Metrics are
    ``l2`` (squared distances, ascending), ``ip`` and ``cosine``
    (similarities, descending). The family constructs an index as
    ``cls(dim=..., metric=...)`` plus its Config fields; :meth:`search_grid`
    lists the search-parameter settings it sweeps over one built index
    (ann-benchmarks' query arguments).

    **Tenants** (optional capability, used by ``experiment=retrieval_tenants``
    and any workload with tenants): an index with ``supports_tenants = True``
    accepts ``tenants`` in :meth:`add` (who may read each row: a list of
    ``n`` tenant lists, or CSR ``(offsets, tenant_ids)`` arrays) and
    ``tenant`` in :meth:`search` (one tenant id for every query, or one per
    query), returns only rows the query's tenant may read, and reports
    :meth:`tenant_len` and :meth:`tenant_memory_bytes`. The family uses only
    these declared methods.
    """

    kind: ClassVar[str] = "index"
    config_group: ClassVar[str] = "index"
    #: Whether :meth:`add` takes tenant sets and :meth:`search` filters by tenant.
    supports_tenants: ClassVar[bool] = False

    @abc.abstractmethod
    def train(self, data: Any) -> None:
        """Learn the structure (centroids, widths) from ``(n, dim)`` float32 rows."""

    @abc.abstractmethod
    def add(self, data: Any, ids: Any = None, tenants: Any = None) -> None:
        """Add ``(n, dim)`` rows with ids from 0 to 2**63 - 1, each readable by its tenants."""

    @abc.abstractmethod
    def search(self, queries: Any, k: int, params: Mapping[str, Any] | None = None, tenant: Any = None) -> Any:
        """``(distances, ids)`` of the ``k`` nearest rows of each query."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Remove every vector, keeping the training state."""

    def search_grid(self) -> list[dict[str, Any]]:
        """Search settings to sweep over one built index (default: one, the defaults)."""
        return [{}]

    def memory_bytes(self) -> int:
        """Heap bytes held by the index."""
        raise NotImplementedError(f"{self.name} does not report its memory")

    def tenant_len(self, tenant: int) -> int:
        """Live vectors ``tenant`` may read (tenants capability)."""
        raise NotImplementedError(f"{self.name} does not support tenants")

    def tenant_memory_bytes(self, tenants: Any) -> Any:
        """Heap bytes attributable to each tenant of the uint32 array ``tenants`` (tenants capability).

        :returns: One non-negative count per tenant, in the order given.
        """
        raise NotImplementedError(f"{self.name} does not support tenants")


# ---------------------------------------------------------------------------
# Embedders
# ---------------------------------------------------------------------------


class Embedder(Component):
    """Text to unit-norm vectors, for any family that retrieves by meaning (``embedder=<name>``).

    :meth:`embed` is batch-first: a sequence of ``n`` texts in, one float32
    ``(n, dim)`` array out, each row of L2 norm 1 (a text with nothing to
    embed, such as an empty string for a word-feature embedder, gives a row
    of zeros), so that an inner product is a cosine. Equal texts give equal
    rows, in any batch, in any process. An embedder with corpus statistics
    (TF-IDF) learns them in :meth:`fit`, which a family calls with the texts
    it is about to store before it embeds any; the default is a no-op.
    The family builds an embedder from its ``Config`` with no run values.
    """

    kind: ClassVar[str] = "embedder"
    config_group: ClassVar[str] = "embedder"

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Columns of every :meth:`embed` result."""

    @abc.abstractmethod
    def embed(self, texts: Sequence[str]) -> Any:
        """A float32 ``(len(texts), dim)`` array of unit-norm rows (zero rows for texts with nothing to embed)."""

    def fit(self, texts: Sequence[str]) -> None:
        """Learn corpus statistics from ``texts`` (default: nothing to learn)."""


# ---------------------------------------------------------------------------
# Workloads, metrics, families
# ---------------------------------------------------------------------------


class Workload(Component):
    """Input data of a family: a trace, a request stream, a dataset.

    ``family`` names the experiment family that consumes it; the family's
    runner calls :meth:`load`.
    """

    kind: ClassVar[str] = "workload"
    config_group: ClassVar[str] = "workload"
    family: ClassVar[str]

    @abc.abstractmethod
    def load(self, seed: int) -> Any:
        """Build or read the data. ``seed`` is the run's seed."""

    def describe(self) -> str:
        """A short label for tables (defaults to the registry name)."""
        return self.name


class Metric(Component):
    """A derived metric computed from one result row of a family.

    ``families`` lists the families it applies to. :meth:`compute` returns
    new columns (units in their names); it may return ``{}`` when it does
    not apply (for example a latency metric with no backend selected).
    """

    kind: ClassVar[str] = "metric"
    config_group: ClassVar[str] = "metric"
    families: ClassVar[tuple[str, ...]]

    @abc.abstractmethod
    def compute(self, run: Run, row: Mapping[str, Any]) -> dict[str, float]:
        """Columns to add to ``row``."""


@dataclass(frozen=True)
class PlotSpec:
    """A plot ``memarena report`` draws for a family: ``y`` over ``x`` per ``hue``."""

    x: str
    y: str
    hue: str
    title: str
    logx: bool = False
    logy: bool = False
    filename: str = ""
    #: ``y`` holds a list per row (a time series); ``x`` is then its index
    #: (or, when the row holds a list under ``x`` too, those values) and each
    #: row is its own line, labelled by ``hue`` and the other labels.
    series: bool = False
    #: Columns drawn as one stacked bar per row (labelled by ``hue`` and the
    #: other labels), e.g. the shares of a memory breakdown; ``y`` is unused.
    stack: tuple[str, ...] = ()
    #: Draw the Pareto front over every row (all hues together) as a dashed
    #: line: ``(x_better, y_better)``, each ``"min"`` or ``"max"``, e.g.
    #: ``("min", "min")`` for a loss against bytes. A point is on the front
    #: when no other point is at least as good on both axes and better on one.
    pareto: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.pareto and (len(self.pareto) != 2 or not set(self.pareto) <= {"min", "max"}):
            raise ValueError(f"PlotSpec.pareto must be two of 'min'/'max' (x, y), got {self.pareto!r}")

    def file(self) -> str:
        """PNG file name."""
        return self.filename or f"{self.y}_vs_{self.x}.png"


@dataclass(frozen=True)
class MemoryEstimate:
    """What a run will need in memory, estimated from its config before anything big is built.

    :param bytes: The estimated peak memory of the run, in bytes (the data it
        builds: traces, request streams, sample series, vectors, results).
    :param keys: The config keys that drive the estimate, dotted
        (``workload.n_requests``); the refusal names them.
    :param detail: How it was reckoned, for the message (``"1e12 requests x 17 B"``).
    """

    bytes: int
    keys: tuple[str, ...]
    detail: str = ""


class Family(Component):
    """An experiment family: turns a composed config into result rows.

    A family's Config is stored under the ``family`` group; experiment
    presets select it (``experiment=paging`` sets ``family: paging``).
    """

    kind: ClassVar[str] = "family"
    config_group: ClassVar[str] = "family"
    #: Columns that identify a row (the rest are metrics), in table order.
    label_columns: ClassVar[tuple[str, ...]] = ()
    #: Metric columns the summary table on stdout shows (empty: all scalar columns).
    summary_columns: ClassVar[tuple[str, ...]] = ()
    #: Plots ``memarena report`` draws for this family.
    plots: ClassVar[tuple[PlotSpec, ...]] = ()

    def backend_requirements(self) -> BackendRequirements:
        """The tiers and dtypes this family needs from the selected backend (default: none).

        memarena checks them before :meth:`run` when a backend is selected,
        so a family never meets a backend that cannot serve it.
        """
        return BackendRequirements()

    @classmethod
    def report_tables(cls, rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
        """Tables computed across the runs of a sweep: ``(title, rows)`` pairs (default: none).

        ``memarena report`` writes them into ``report.md`` under the family's
        table, and the end of a sweep prints them under its summary. ``rows``
        are the complete runs' rows of this family (override labels included).
        """
        return []

    def estimate_memory(self, run: Run) -> MemoryEstimate | None:
        """The memory :meth:`run` will need, estimated from the config alone (default: None, unknown).

        memarena calls it before :meth:`run` and refuses the run with an
        error naming :attr:`MemoryEstimate.keys` and the estimate when it
        exceeds the limit: the primary config's ``memory_limit_bytes``, or the
        memory the machine has available. It must not build the run's data
        (reading a file's size or a few of its rows is fine); keep it honest,
        within about 2x of the real peak, so a run that fits is never refused.
        """
        return None

    @abc.abstractmethod
    def run(self, run: Run) -> None:
        """Execute the experiment, handing each result row to ``run.emit(row)``.

        Rows are emitted as they are produced, so an interrupted run keeps
        (and records as interrupted) the rows it finished.
        """


#: Every component kind and its base class.
KINDS: dict[str, type[Component]] = {
    "method": MemoryMethod,
    "backend": HardwareBackend,
    "agent_memory": AgentMemory,
    "index": VectorIndex,
    "embedder": Embedder,
    "workload": Workload,
    "metric": Metric,
    "family": Family,
}
