"""The :class:`Index` facade over the Rust core's vector indexes.

One class for every core kind (``flat``, ``simhash``, ``e2lsh``, ``ivf``,
``spann``, ``hnsw``, ``curator``), faiss-shaped and batch-first:

* ``train(x)``, ``add(x, ids, tenants=...)``, ``search(q, k, tenant=...)``,
  ``delete(ids)``, ``reset()``, ``save(path)`` / :meth:`Index.load`;
* numpy in without copies (C-contiguous float32 rows; other dtypes or
  layouts are converted once, here), numpy out without copies (the core's
  result buffers become the arrays), the GIL released during the core call,
  and a batch searched on the core's threads;
* tenants: each vector carries the tenants allowed to read it (a list of
  lists, or CSR ``(offsets, tenant_ids)`` arrays); a filtered query names its
  tenant (one for the batch, or one per query) and only ever sees that
  tenant's vectors.

The registered components (``index=ivf`` ...) in
:mod:`memarena.indexes` are subclasses with a ``Config``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from memarena import _core
from memarena.api import VectorIndex
from memarena.errors import InvalidConfigError

__all__ = ["BYTES_PER_RESULT", "METRICS", "Index", "SearchConfig", "TenantsLike", "result_bytes", "tenants_to_csr"]

#: The metrics the core accepts.
METRICS: tuple[str, ...] = tuple(_core.metric_names())

#: Per-vector tenant sets: one sequence of ints per vector, or CSR ``(offsets, tenant_ids)``.
TenantsLike = Sequence[Sequence[int]] | tuple[npt.ArrayLike, npt.ArrayLike]


@dataclass(frozen=True)
class SearchConfig:
    """The search parameters every index accepts, and their defaults.

    Each index reads the ones it understands. The one source of these
    defaults: a search sends every field, overridden by the index's own
    search defaults (its ``Config``'s search fields) and then by the call's
    ``params``; the core checks the ranges and names ``index.<key>``.
    """

    #: IVF/SPANN: lists probed per query.
    nprobe: int = 8
    #: HNSW: beam width of the layer-0 search; Curator: candidates scored at least.
    ef_search: int = 64
    #: LSH: buckets probed per table (SimHash 0: Hamming scan of every code).
    n_probes: int = 1
    #: LSH: candidates re-scored exactly (SimHash 0: Hamming distances; E2LSH 0: all).
    rerank: int = 0
    #: SPANN: probe a list only within (1 + eps) of the best centroid score (0: off).
    prune_epsilon: float = 0.0
    #: Filtered search: tenants with at most this many vectors are scanned exactly
    #: (null: automatic; 0: always filter inside the index).
    exact_filter_max: int | None = None
    #: Threads of a batch (0: every core).
    threads: int = 0


#: :class:`SearchConfig`'s defaults as a dict.
SEARCH_DEFAULTS: dict[str, Any] = dataclasses.asdict(SearchConfig())


def _ids(ids: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """``ids`` as uint64, refusing what a cast would alter silently: negative,
    fractional or non-numeric ids (ids above 2**63 - 1 are refused by the core,
    which returns ids as int64 with -1 marking no result)."""
    raw = np.asarray(ids).reshape(-1)
    if raw.dtype.kind == "u":
        return np.ascontiguousarray(raw, dtype=np.uint64)
    if raw.dtype.kind not in "if" and raw.size:
        raise InvalidConfigError(f"ids: must be integers, got dtype {raw.dtype}")
    if raw.dtype.kind == "f":
        bad = ~np.isfinite(raw) | (raw != np.floor(raw))
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidConfigError(f"ids: id {raw[i].item()!r} (row {i}) is not an integer")
        if (raw >= 2.0**63).any():
            i = int(np.argmax(raw >= 2.0**63))
            raise InvalidConfigError(f"ids: id {raw[i].item()!r} (row {i}) is above 2**63 - 1")
    if raw.size and (raw < 0).any():
        i = int(np.argmax(raw < 0))
        raise InvalidConfigError(f"ids: id {raw[i].item()!r} (row {i}) is negative")
    return np.ascontiguousarray(raw, dtype=np.uint64)


def tenants_to_csr(tenants: TenantsLike, n: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint32]]:
    """CSR arrays ``(offsets, tenant_ids)`` for ``n`` rows.

    :param tenants: A list of per-row tenant lists, or a CSR pair (used as
        is when already uint64/uint32 and contiguous: no copy).
    :param n: Number of rows the sets describe.
    :raises InvalidConfigError: the shapes do not describe ``n`` rows.
    """
    if (
        isinstance(tenants, tuple)
        and len(tenants) == 2
        and all(isinstance(a, np.ndarray) and a.ndim == 1 for a in tenants)
    ):
        offsets = np.ascontiguousarray(tenants[0], dtype=np.uint64)
        ids = np.ascontiguousarray(tenants[1], dtype=np.uint32)
    else:
        rows: list[Sequence[int]] = list(tenants)  # type: ignore[arg-type]
        if len(rows) != n:
            raise InvalidConfigError(f"tenants: {len(rows)} tenant lists for {n} vectors")
        lengths = np.fromiter((len(r) for r in rows), dtype=np.uint64, count=n)
        offsets = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(lengths, out=offsets[1:])
        flat = [int(t) for r in rows for t in r]
        if any(t < 0 or t >= 2**32 for t in flat):
            raise InvalidConfigError("tenants: tenant ids must be in [0, 2^32)")
        ids = np.asarray(flat, dtype=np.uint32)
    if len(offsets) != n + 1:
        raise InvalidConfigError(f"tenants: CSR offsets describe {len(offsets) - 1} rows for {n} vectors")
    return offsets, ids


def _rows(x: npt.ArrayLike, dim: int | None, what: str) -> npt.NDArray[np.float32]:
    """``x`` as C-contiguous float32 ``(n, dim)`` rows (a view when it already is)."""
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InvalidConfigError(f"{what}: expected (n, dim) rows, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise InvalidConfigError(f"{what}: rows have {arr.shape[1]} values, the index has dim {dim}")
    return np.ascontiguousarray(arr, dtype=np.float32)


#: One search result: an int64 id and a float32 distance.
BYTES_PER_RESULT = 12


def result_bytes(n_queries: int, k: int) -> int:
    """The bytes of a search's result arrays (``(n_queries, k)`` ids and distances)."""
    return n_queries * k * BYTES_PER_RESULT


def _check_result_memory(nq: int, k: int) -> None:
    """Refuse a search whose result arrays would not fit in the available memory."""
    from memarena.resources import available_memory_bytes, format_bytes

    need = result_bytes(nq, k)
    limit = available_memory_bytes()
    if limit is not None and need > limit:
        most = limit // (BYTES_PER_RESULT * max(1, nq))
        raise InvalidConfigError(
            f"k={k}: the results of {nq} queries x k ({BYTES_PER_RESULT} B each) need {format_bytes(need)}, more than "
            f"the {format_bytes(limit)} of memory available; rows are k wide (missing results are id -1), "
            f"so ask for at most {most}"
        )


class Index(VectorIndex):
    """A vector index of the Rust core, by core kind name.

    :param core_kind: ``flat``, ``simhash``, ``e2lsh``, ``ivf``, ``spann``,
        ``hnsw`` or ``curator`` (see :func:`memarena._core.index_kinds`).
    :param dim: Vector dimension; ``None`` takes it from the first
        ``train``/``add``.
    :param metric: ``l2`` (squared distances, ascending), ``ip`` or
        ``cosine`` (similarities, descending).
    :param params: Build parameters of the kind (``nlist``, ``m`` ...) over
        the defaults of its registered ``Config``
        (:mod:`memarena.indexes`); the core receives the
        complete config. IVF and SPANN without ``nlist`` pick it from the
        training set's size (about 3.2 sqrt(n), a power of two: 1024 lists
        for 100k vectors).
    :param search: Default search parameters (``nprobe``, ``ef_search`` ...);
        a list value is a sweep: :meth:`search_grid` expands it and plain
        :meth:`search` uses its last (by convention the most thorough) value.

    Invariants: ids are unique among live vectors; a filtered search returns
    only live vectors whose tenant set holds the query's tenant; a batch
    returns exactly what its queries return one at a time.
    """

    name: ClassVar[str] = "index"
    supports_tenants: ClassVar[bool] = True
    #: The core kind a registered subclass builds.
    core_kind: ClassVar[str] = ""

    def __init__(
        self,
        core_kind: str | None = None,
        dim: int | None = None,
        metric: str = "l2",
        params: Mapping[str, Any] | None = None,
        search: Mapping[str, Any] | None = None,
    ) -> None:
        from memarena.indexes.registered import build_defaults

        kind = core_kind or self.core_kind
        if kind not in _core.index_kinds():
            raise InvalidConfigError(f"unknown index kind {kind!r}; available: {', '.join(_core.index_kinds())}")
        if metric not in METRICS:
            raise InvalidConfigError(f"index metric must be one of {', '.join(METRICS)}, got {metric!r}")
        unknown = sorted(set(search or {}) - set(_core.search_param_names()))
        if unknown:
            raise InvalidConfigError(
                f"unknown search parameter {unknown[0]!r}; available: {', '.join(_core.search_param_names())}"
            )
        self.core_kind_name = kind
        self.metric = metric
        self.params: dict[str, Any] = {**build_defaults(kind), **(params or {})}
        self.search_defaults = dict(search or {})
        self._core: _core.Index | None = None
        self._next_id = 0
        if dim is not None and not self._nlist_from_data():
            self._build(dim)
        self._dim_hint = dim

    def _build(self, dim: int, n: int | None = None) -> _core.Index:
        """The core index, built on first use; ``n`` is the number of rows at hand."""
        if self._core is None:
            self._resolve_params(n)
            self._core = _core.Index({"kind": self.core_kind_name, **self.params}, self.metric, dim)
        return self._core

    def _nlist_from_data(self) -> bool:
        """Whether ``nlist`` is still to be picked from the data (IVF and SPANN with ``nlist`` null)."""
        return self.core_kind_name in ("ivf", "spann") and self.params.get("nlist") is None

    def _resolve_params(self, n: int | None) -> None:
        """Fill build parameters that depend on the data size (``n`` rows, None when unknown)."""
        if self._nlist_from_data():
            # faiss's guidance, about 3-4 sqrt(n) lists, rounded to a power of two: 1024 at 100k.
            self.params["nlist"] = int(
                256 if n is None else max(1, min(n, 2 ** round(np.log2(max(1.0, 3.2 * np.sqrt(n))))))
            )

    def _ready(self) -> _core.Index:
        if self._core is None:
            kind = self.core_kind_name
            if self._dim_hint is not None:  # IVF/SPANN picking nlist from the data: nothing is built yet
                raise InvalidConfigError(
                    f"{kind} index (dim={self._dim_hint}) is not trained yet: its nlist is picked from the training "
                    "data; call train(vectors) and add(vectors) first (or give params={'nlist': ...})"
                )
            first = "train(vectors) and add(vectors)" if self._nlist_from_data() else "add(vectors)"
            raise InvalidConfigError(f"{kind} index is empty, no dimension yet: call {first} first")
        return self._core

    @classmethod
    def _wrap(cls, core: _core.Index) -> Index:
        self = Index.__new__(Index)
        self.core_kind_name = core.kind
        self.metric = core.metric
        self.params = {}
        self.search_defaults = {}
        self._core = core
        self._next_id = 0
        self._dim_hint = core.dim
        return self

    # -- properties ----------------------------------------------------------

    @property
    def dim(self) -> int | None:
        """Vector dimension (None until known)."""
        return self._dim_hint if self._core is None else self._core.dim

    @property
    def is_trained(self) -> bool:
        """Whether vectors can be added (untrained IVF/SPANN/Curator need :meth:`train`)."""
        return self._core is not None and self._core.is_trained

    def __len__(self) -> int:
        return 0 if self._core is None else len(self._core)

    def __contains__(self, id_: int) -> bool:
        return self._core is not None and self._core.contains(int(id_))

    def __repr__(self) -> str:
        return f"Index({self.core_kind_name!r}, metric={self.metric!r}, dim={self.dim}, len={len(self)})"

    # -- verbs ---------------------------------------------------------------

    def train(self, data: npt.ArrayLike) -> None:
        """Learn the index structure from ``(n, dim)`` rows (a no-op for flat, simhash, hnsw)."""
        x = _rows(data, self.dim, "train data")
        self._build(x.shape[1], x.shape[0]).train(x)

    def add(self, data: npt.ArrayLike, ids: npt.ArrayLike | None = None, tenants: TenantsLike | None = None) -> None:
        """Add rows with their ids (default: consecutive from 0) and tenant sets.

        :param data: ``(n, dim)`` rows; float32 C-contiguous rows pass without a copy.
        :param ids: ``n`` unique ids from 0 to 2**63 - 1 (search returns them
            as int64, -1 marking no result); others are refused, never altered.
        :param tenants: Who may read each row: a list of ``n`` tenant lists, or
            CSR ``(offsets, tenant_ids)`` arrays. Rows without tenants are only
            visible to unfiltered searches.

        Interrupting an add (Ctrl-C, SIGTERM: ``KeyboardInterrupt`` or
        memarena's ``Interrupted``) stops HNSW, SimHash, E2LSH, IVF, SPANN and
        Curator between two rows (IVF and SPANN between blocks of 4096).
        Each row's insertion is atomic, so the index stays valid, holding the
        rows before the stop: ``len(index)`` grew by how many were inserted,
        always the first ones of ``data``. A flat add is copied whole or not
        at all.
        """
        x = _rows(data, self.dim, "data")
        n = x.shape[0]
        if ids is None:
            id_arr = np.arange(self._next_id, self._next_id + n, dtype=np.uint64)
        else:
            id_arr = _ids(ids)
            if len(id_arr) != n:
                raise InvalidConfigError(f"ids: {len(id_arr)} ids for {n} vectors")
        offsets = tids = None
        if tenants is not None:
            offsets, tids = tenants_to_csr(tenants, n)
        core = self._build(x.shape[1], n)
        try:
            core.add(x, id_arr, offsets, tids)
        except BaseException:
            # Interrupted, the first rows may be in (see above): default ids
            # go on after them. Found by bisection, the rows in being a prefix
            # (after an error that inserted nothing, at most an id given twice
            # is found: the next default id then skips some, harmlessly).
            lo, hi = 0, n
            while lo < hi:
                mid = (lo + hi) // 2
                if core.contains(int(id_arr[mid])):
                    lo = mid + 1
                else:
                    hi = mid
            if lo:
                self._next_id = max(self._next_id, int(id_arr[:lo].max()) + 1)
            raise
        if n:
            self._next_id = max(self._next_id, int(id_arr.max()) + 1)

    def search(
        self,
        queries: npt.ArrayLike,
        k: int,
        params: Mapping[str, Any] | None = None,
        tenant: int | npt.ArrayLike | None = None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The ``k`` nearest live vectors of each query: ``(distances, ids)``, ``(nq, k)``.

        :param queries: ``(nq, dim)`` rows (or one ``(dim,)`` vector).
        :param k: Results per query; missing ones are id ``-1``. As in faiss,
            the rows are ``k`` wide even when fewer vectors are stored (the rest
            padded); a ``k`` whose result arrays (``nq x k`` ids and distances,
            12 B each) exceed the available memory is refused.
        :param params: Search parameters over the index's defaults
            (``nprobe``, ``ef_search``, ``n_probes``, ``rerank``, ``threads`` ...;
            see :class:`SearchConfig`); the core receives every one.
        :param tenant: One tenant id for every query, or one per query.
        :raises InvalidConfigError: a negative or non-integer ``k``, or one whose
            results would not fit in memory (naming ``k`` and the bytes).
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise InvalidConfigError(f"k must be an integer, got {k!r}")
        k = int(k)
        if k < 0:
            raise InvalidConfigError(f"k must be >= 0, got {k}")
        core = self._ready()
        q = _rows(queries, core.dim, "queries")
        _check_result_memory(q.shape[0], k)
        sp = {**SEARCH_DEFAULTS, **self.default_search(), **(params or {})}
        if tenant is None:
            return core.search(q, k, sp)
        t = np.asarray(tenant)
        if t.ndim == 0:
            return core.search(q, k, sp, tenant=int(t))
        qt = np.ascontiguousarray(t, dtype=np.uint32)
        if qt.shape != (q.shape[0],):
            raise InvalidConfigError(f"tenant: {qt.shape[0]} tenants for {q.shape[0]} queries")
        return core.search(q, k, sp, query_tenants=qt)

    def delete(self, ids: npt.ArrayLike) -> int:
        """Delete ids (unknown ones are ignored); returns how many were present."""
        if self._core is None:
            return 0
        return self._core.delete(np.ascontiguousarray(np.atleast_1d(ids), dtype=np.uint64))

    def reset(self) -> None:
        """Remove every vector, keeping the training state."""
        if self._core is not None:
            self._core.reset()

    # -- persistence ---------------------------------------------------------

    def save(self, path: str | PathLike[str]) -> None:
        """Write the index (versioned, checksummed) to ``path`` atomically."""
        self._ready().save(path)

    def to_bytes(self) -> bytes:
        """The index in the file format."""
        return self._ready().to_bytes()

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Index:
        """Load a saved index. A truncated or corrupted file raises
        :class:`memarena.errors.MalformedInputError` naming the byte offset."""
        return cls._wrap(_core.Index.load(path))

    @classmethod
    def from_bytes(cls, data: bytes) -> Index:
        """Load an index from :meth:`to_bytes` output."""
        return cls._wrap(_core.Index.from_bytes(data))

    # -- memory --------------------------------------------------------------

    def memory_bytes(self) -> int:
        """Heap bytes held by the index (vectors, ids, structure, tenant data)."""
        return 0 if self._core is None else self._core.memory_bytes()

    def tenant_len(self, tenant: int) -> int:
        """Live vectors readable by ``tenant``."""
        return 0 if self._core is None else self._core.tenant_len(tenant)

    def tenant_memory_bytes(self, tenants: int | npt.ArrayLike) -> int | npt.NDArray[np.uint64]:
        """Bytes of per-tenant structure of one tenant (int) or of each of several (array)."""
        core = self._ready()
        t = np.asarray(tenants)
        if t.ndim == 0:
            return core.tenant_memory_bytes(int(t))
        return core.tenant_memory_bytes_many(np.ascontiguousarray(t, dtype=np.uint32))

    # -- sweeps --------------------------------------------------------------

    def search_grid(self) -> list[dict[str, Any]]:
        """Every combination of the list-valued search defaults, in order."""
        keys = list(self.search_defaults)
        values = [v if isinstance(v, list | tuple) else [v] for v in self.search_defaults.values()]
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]

    def default_search(self) -> dict[str, Any]:
        """The search parameters plain :meth:`search` uses: each list's last value."""
        return {k: (v[-1] if isinstance(v, list | tuple) else v) for k, v in self.search_defaults.items()}
