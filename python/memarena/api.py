"""The component kinds a plugin can provide, as abstract base classes.

Every component class has a unique snake_case ``name`` (the stable identifier
used in configs, the CLI, metrics and entry points) and a ``Config``
dataclass whose ``_target_`` names the class by its public import path.
Hydra's config store is derived from the registry of these classes, so
``<config_group>=<name>`` works on the command line with no YAML.

Kinds (``Component.kind``): ``method`` (memory methods, with a ``sub_kind``
such as ``paging_policy``), ``backend``, ``agent_memory``, ``workload``,
``index`` (vector indexes), ``metric`` and ``family`` (an experiment runner). New method sub-kinds are
added by subclassing :class:`MemoryMethod` with a new ``sub_kind`` and
``config_group``.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from memarena.run import Run

__all__ = [
    "KINDS",
    "AgentMemory",
    "Component",
    "Family",
    "HardwareBackend",
    "KVCompression",
    "KVManager",
    "MemoryItem",
    "MemoryMethod",
    "Metric",
    "Optimizer",
    "PagingPolicy",
    "PlotSpec",
    "Tier",
    "VectorIndex",
    "Workload",
]


class Component(abc.ABC):
    """Base of every registrable component.

    Subclasses set ``name`` (snake_case, unique per kind) and a ``Config``
    dataclass; ``kind`` and ``config_group`` come from the kind's base class.
    """

    #: Stable registry name, snake_case.
    name: ClassVar[str]
    #: Component kind: one of :data:`KINDS`.
    kind: ClassVar[str]
    #: Hydra config group the ``Config`` is stored under.
    config_group: ClassVar[str]
    #: Structured config; a dataclass whose ``_target_`` names this class.
    Config: ClassVar[type]

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

    def core_params(self) -> dict[str, float]:
        """Numeric parameters handed to the Rust core (native policies)."""
        return {k: float(v) for k, v in self.params.items()}

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


class KVManager(MemoryMethod):
    """A KV-cache memory manager for the ``serving`` family."""

    sub_kind: ClassVar[str] = "kv_manager"
    config_group: ClassVar[str] = "kv_manager"


class KVCompression(MemoryMethod):
    """A KV-cache compression method for the ``kvcache`` family."""

    sub_kind: ClassVar[str] = "kv_compression"
    config_group: ClassVar[str] = "kv_compression"


class Optimizer(MemoryMethod):
    """A memory-efficient optimizer for the ``training`` family."""

    sub_kind: ClassVar[str] = "optimizer"
    config_group: ClassVar[str] = "optimizer"


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
    """One stored memory of an agent: text plus when and where it came from."""

    text: str
    session: int = 0
    turn: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


class AgentMemory(Component):
    """A long-term memory for an LLM agent: store items, retrieve for a query."""

    kind: ClassVar[str] = "agent_memory"
    config_group: ClassVar[str] = "agent_memory"

    @abc.abstractmethod
    def add(self, item: MemoryItem) -> None:
        """Store one item."""

    @abc.abstractmethod
    def retrieve(self, query: str, k: int) -> list[MemoryItem]:
        """Return at most ``k`` items relevant to ``query``, best first."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of items held."""

    def memory_bytes(self) -> int:
        """Approximate bytes of text held (the cost the agent family reports)."""
        return sum(len(m.text.encode()) for m in self.items())

    def items(self) -> list[MemoryItem]:
        """Every item held (for inspection and cost accounting)."""
        raise NotImplementedError(f"{self.name} does not list its items")


# ---------------------------------------------------------------------------
# Vector indexes
# ---------------------------------------------------------------------------


class VectorIndex(Component):
    """A vector index for the ``retrieval`` family (faiss-shaped, batch-first).

    Verbs: :meth:`train`, :meth:`add`, :meth:`search`, :meth:`reset`, and
    optionally ``delete``/``save``. ``search`` returns ``(distances, ids)``
    of shape ``(nq, k)``, best first, padded with id ``-1``. The family
    constructs an index as ``cls(dim=..., metric=...)`` plus its Config
    fields; :meth:`search_grid` lists the search-parameter settings it sweeps
    over one built index (ann-benchmarks' query arguments).
    """

    kind: ClassVar[str] = "index"
    config_group: ClassVar[str] = "index"

    @abc.abstractmethod
    def train(self, data: Any) -> None:
        """Learn the structure (centroids, widths) from ``(n, dim)`` float32 rows."""

    @abc.abstractmethod
    def add(self, data: Any, ids: Any = None, tenants: Any = None) -> None:
        """Add ``(n, dim)`` rows with uint64 ids, each readable by its tenants."""

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

    def file(self) -> str:
        """PNG file name."""
        return self.filename or f"{self.y}_vs_{self.x}.png"


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
    "workload": Workload,
    "metric": Metric,
    "family": Family,
}
