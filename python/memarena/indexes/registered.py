"""The registered vector indexes: ``index=<name>`` for each core kind.

Each class is :class:`~memarena.indexes.Index` with a ``Config`` whose
fields are the kind's build parameters and its search parameters. A search
field holding a list is swept by the ``retrieval`` family over one built
index (``index.nprobe=[1,4,16]``), as ann-benchmarks sweeps query
arguments; ``index=ivf index.nlist=256`` changes the build.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from memarena.indexes.core import Index

__all__ = [
    "BUILTIN_INDEXES",
    "E2LSH",
    "HNSW",
    "IVF",
    "SPANN",
    "Curator",
    "Flat",
    "RegisteredIndex",
    "SimHash",
    "build_defaults",
]


class RegisteredIndex(Index):
    """Base of the registered indexes: splits Config fields into build and search parameters."""

    #: Config fields that are build parameters of the core kind.
    build_keys: ClassVar[tuple[str, ...]] = ()
    #: Config fields that are search parameters (a value or a list to sweep).
    search_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, dim: int | None = None, metric: str = "l2", **fields: Any) -> None:
        known = set(self.build_keys) | set(self.search_keys)
        unknown = sorted(set(fields) - known)
        if unknown:
            raise TypeError(f"{self.name}: unknown parameter {unknown[0]!r}; known: {', '.join(sorted(known))}")
        defaults = {f.name: f for f in dataclasses.fields(self.Config) if f.name != "_target_"}

        def value(k: str) -> Any:
            if k in fields:
                v = fields[k]
            else:
                f = defaults[k]
                v = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            # Hydra hands lists over as ListConfig: any non-string sequence is a sweep
            return list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v

        # every build parameter (the core takes the complete config; IVF's null nlist is picked from the data)
        params = {k: value(k) for k in self.build_keys}
        search = {k: value(k) for k in self.search_keys if value(k) is not None}
        super().__init__(self.core_kind, dim=dim, metric=metric, params=params, search=search)


def _grid(*values: int) -> Any:
    """A list-valued dataclass default (a search sweep)."""
    return field(default_factory=lambda: list(values))


class Flat(RegisteredIndex):
    """Exact scan of every vector (the ground truth; cache-blocked batches)."""

    name: ClassVar[str] = "flat"
    core_kind: ClassVar[str] = "flat"

    @dataclass
    class Config:
        _target_: str = "memarena.indexes.Flat"


class SimHash(RegisteredIndex):
    """Random-hyperplane LSH: tables of sign bits, multi-probe or Hamming scan, exact re-rank.

    ``n_probes=0`` (or tables wider than 32 bits) ranks every code by Hamming
    distance, as faiss ``IndexLSH`` does; ``rerank`` re-scores that many
    candidates exactly (0: report Hamming distances).

    ``planes="orthonormal"`` (the default) draws blocks of ``dim`` orthonormal
    hyperplanes (a random rotation, as faiss ``IndexLSH`` with
    ``rotate_data``); ``"gaussian"`` draws independent Gaussian ones (the
    planes of indexes saved before the choice existed, which load as such).
    ``train()`` sets each bit's threshold to the median projection of the
    training vectors (faiss's ``train_thresholds``), so every bit splits them
    in half.

    Bucket sizes: a table of ``n_bits`` holds about ``n / 2**n_bits`` vectors
    per bucket once trained. The default 16x16 holds ~1.5 per bucket at 100k
    vectors, too few for recall@10 >= 0.9 at 16 probes on anisotropic
    embeddings; ``index=simhash_buckets12`` (``n_bits=12, n_tables=16,
    n_probes=16..32, rerank=4000``) is the named setting that reaches it. A
    search that finds fewer than ``k`` candidates fills the rest with id -1,
    counted in the retrieval family's ``short_results`` column.
    """

    name: ClassVar[str] = "simhash"
    core_kind: ClassVar[str] = "simhash"
    build_keys: ClassVar[tuple[str, ...]] = ("n_bits", "n_tables", "seed", "planes")
    search_keys: ClassVar[tuple[str, ...]] = ("n_probes", "rerank")

    @dataclass
    class Config:
        _target_: str = "memarena.indexes.SimHash"
        #: Bits per table (a table over 32 bits is scanned by Hamming distance).
        n_bits: int = 16
        #: Number of tables.
        n_tables: int = 16
        seed: int = 0
        #: Hyperplanes: "orthonormal" (blocks of dim orthonormal directions) or "gaussian" (independent).
        planes: str = "orthonormal"
        #: Buckets probed per table (0: Hamming scan of every code).
        n_probes: Any = _grid(1, 2, 4, 8, 16)  # noqa: RUF009
        #: Candidates re-scored exactly.
        rerank: Any = 4000


class E2LSH(RegisteredIndex):
    """p-stable LSH for L2 (Datar et al.) with multi-probe; bucket width from the data's scale."""

    name: ClassVar[str] = "e2lsh"
    core_kind: ClassVar[str] = "e2lsh"
    build_keys: ClassVar[tuple[str, ...]] = ("k", "l", "w", "w_scale", "seed")
    search_keys: ClassVar[tuple[str, ...]] = ("n_probes", "rerank")

    @dataclass
    class Config:
        _target_: str = "memarena.indexes.E2LSH"
        #: Projections per table.
        k: int = 16
        #: Tables.
        l: int = 16  # noqa: E741 (the paper's name)
        #: Bucket width in data units; 0 derives it as w_scale x the near-neighbour distance.
        w: float = 0.0
        w_scale: float = 4.0
        seed: int = 0
        n_probes: Any = _grid(1, 2, 4, 8, 16)  # noqa: RUF009
        #: Candidates re-scored at most (0: all).
        rerank: Any = 0


class IVF(RegisteredIndex):
    """Inverted file: k-means lists, ``nprobe`` nearest lists scanned (faiss IndexIVFFlat)."""

    name: ClassVar[str] = "ivf"
    core_kind: ClassVar[str] = "ivf"
    build_keys: ClassVar[tuple[str, ...]] = ("nlist", "kmeans_iters", "seed", "max_train_points")
    search_keys: ClassVar[tuple[str, ...]] = ("nprobe",)

    @dataclass
    class Config:
        _target_: str = "memarena.indexes.IVF"
        #: Lists; null picks about 3.2 sqrt(n) from the training set (1024 for 100k vectors).
        nlist: int | None = None
        kmeans_iters: int = 10
        seed: int = 0
        #: Training points used at most (null: 256 per list, faiss's max_points_per_centroid).
        max_train_points: int | None = None
        nprobe: Any = _grid(1, 2, 4, 8, 16, 32)  # noqa: RUF009


class SPANN(RegisteredIndex):
    """Balanced clustering with boundary replication and query-aware pruning (SPANN)."""

    name: ClassVar[str] = "spann"
    core_kind: ClassVar[str] = "spann"
    build_keys: ClassVar[tuple[str, ...]] = (
        "nlist",
        "kmeans_iters",
        "seed",
        "max_train_points",
        "replicas",
        "replica_epsilon",
    )
    search_keys: ClassVar[tuple[str, ...]] = ("nprobe", "prune_epsilon")

    @dataclass
    class Config:
        _target_: str = "memarena.indexes.SPANN"
        nlist: int | None = None
        kmeans_iters: int = 10
        seed: int = 0
        max_train_points: int | None = None
        #: Lists a vector may be stored in, and the distance-ratio tolerance for a replica.
        replicas: int = 4
        replica_epsilon: float = 0.1
        nprobe: Any = _grid(1, 2, 4, 8, 16, 32)  # noqa: RUF009
        #: Probe a list only within (1 + eps) of the best centroid score (0: off).
        prune_epsilon: Any = 0.0


class HNSW(RegisteredIndex):
    """Hierarchical navigable small-world graph (Malkov and Yashunin)."""

    name: ClassVar[str] = "hnsw"
    core_kind: ClassVar[str] = "hnsw"
    build_keys: ClassVar[tuple[str, ...]] = ("m", "ef_construction", "seed", "tenant_block_max", "threads")
    search_keys: ClassVar[tuple[str, ...]] = ("ef_search", "exact_filter_max")

    @dataclass
    class Config:
        _target_: str = "memarena.indexes.HNSW"
        #: Links per node (2 m on layer 0).
        m: int = 16
        ef_construction: int = 100
        seed: int = 0
        #: Tenants with at most this many vectors keep a contiguous copy of
        #: them for exact filtered scans (0: no copies, ~2x less vector
        #: memory on tenant-heavy data, slower scans).
        tenant_block_max: int = 16384
        #: Threads an add runs on (0: every core). 1 inserts one node at a
        #: time (the graph depends on the data and seed only); more insert in
        #: batches (same recall, another graph, the same for any count > 1).
        threads: int = 1
        ef_search: Any = _grid(16, 32, 64, 128, 256)  # noqa: RUF009
        #: Filtered search: tenants with at most this many vectors are scanned
        #: exactly (null: automatic; 0: always filter inside the graph).
        exact_filter_max: Any = None


class Curator(RegisteredIndex):
    """Multi-tenant index: one shared clustering tree, a sparse per-tenant overlay (Curator)."""

    name: ClassVar[str] = "curator"
    core_kind: ClassVar[str] = "curator"
    build_keys: ClassVar[tuple[str, ...]] = (
        "branching",
        "leaf_size",
        "split_threshold",
        "kmeans_iters",
        "seed",
        "max_train_points",
        "tenant_block_max",
    )
    search_keys: ClassVar[tuple[str, ...]] = ("ef_search",)

    @dataclass
    class Config:
        _target_: str = "memarena.indexes.Curator"
        branching: int = 16
        leaf_size: int = 128
        #: A tenant's shortlist longer than this at an internal node is split.
        split_threshold: int = 64
        kmeans_iters: int = 8
        seed: int = 0
        max_train_points: int = 131072
        #: As :class:`HNSW`'s: contiguous vector copies of small tenants.
        tenant_block_max: int = 16384
        #: Candidates scored at least.
        ef_search: Any = _grid(100, 200, 400, 1000, 2000)  # noqa: RUF009


#: The built-in indexes, in registration order.
BUILTIN_INDEXES: tuple[type[RegisteredIndex], ...] = (Flat, SimHash, E2LSH, IVF, SPANN, HNSW, Curator)


def build_defaults(core_kind: str) -> dict[str, Any]:
    """The build parameters of a core kind with the defaults of its registered ``Config``.

    The one source of build defaults for :class:`Index` (``Index("ivf", params={...})``
    overrides some of them; the core receives them all).
    """
    cls = next((c for c in BUILTIN_INDEXES if c.core_kind == core_kind), None)
    if cls is None:
        return {}
    defaults = {f.name: f for f in dataclasses.fields(cls.Config)}
    return {k: defaults[k].default for k in cls.build_keys}
