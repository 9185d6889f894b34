"""Request traces for the paging family: :class:`Trace`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from memarena import _core
from memarena.errors import InvalidConfigError

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["NEVER", "Trace"]

#: ``next_vtime``/``pred_next_vtime`` value meaning "never requested again".
NEVER: int = _core.Trace.NEVER


def _u64(name: str, values: Any) -> npt.NDArray[np.uint64]:
    """``values`` as a contiguous uint64 array: no copy when it already is one."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidConfigError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype != np.uint64:
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise InvalidConfigError(f"{name} must hold integers, got dtype {arr.dtype}")
        if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
            raise InvalidConfigError(f"{name} must be non-negative, got {arr.min()} at index {int(arr.argmin())}")
    return np.ascontiguousarray(arr, dtype=np.uint64)


class Trace:
    """A request trace: object ids, optional sizes (bytes), timestamps and predictions.

    Virtual time is the index of a request. The derived columns
    :attr:`next_vtime` and :attr:`first_access` are computed once, in Rust,
    and cached. Arrays handed out are read-only; :meth:`from_arrays` keeps
    the caller's ``uint64`` arrays without copying them, so do not mutate
    them afterwards.

    Build one with :meth:`from_arrays`, :meth:`from_csv`,
    :meth:`from_oracle_general` or :meth:`synthetic`.
    """

    __slots__ = ("__dict__", "_core")

    def __init__(self, core: _core.Trace) -> None:
        self._core = core

    # -- constructors ------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        ids: npt.ArrayLike,
        sizes: npt.ArrayLike | None = None,
        timestamps: npt.ArrayLike | None = None,
        *,
        pred_next_vtime: npt.ArrayLike | None = None,
        pred_bit: npt.ArrayLike | None = None,
    ) -> Trace:
        """A trace over numpy columns; contiguous ``uint64`` arrays are used in place (no copy).

        :param ids: Object ids, one per request (non-negative integers).
        :param sizes: Object sizes in bytes (at least 1), or None for unit-size pages.
        :param timestamps: Request times (any unit), or None.
        :param pred_next_vtime: Predicted index of each object's next request (:data:`NEVER` = none).
        :param pred_bit: One-bit predictions (see :meth:`with_oracle_predictions`).
        :raises InvalidConfigError: on a wrong shape, dtype, negative value, size 0 or length mismatch.
        """
        return cls(
            _core.Trace.from_arrays(
                _u64("ids", ids),
                None if sizes is None else _u64("sizes", sizes),
                None if timestamps is None else _u64("timestamps", timestamps),
                None if pred_next_vtime is None else _u64("pred_next_vtime", pred_next_vtime),
                None if pred_bit is None else np.ascontiguousarray(pred_bit, dtype=np.bool_),
            )
        )

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        *,
        id_column: str | int = 0,
        size_column: str | int | None = None,
        time_column: str | int | None = None,
        delimiter: str = ",",
        header: bool = True,
        id_format: str = "integer",
    ) -> Trace:
        """Read a delimited text trace; columns by header name or 0-based index.

        :param id_format: ``"integer"`` (decimal ids) or ``"hash"`` (any string, hashed with FNV-1a).
        :raises MalformedInputError: naming the file and row of a bad field (and the byte offset of
            text that is not UTF-8); a quoted field is cut to 80 characters.
        :raises OSError: the file cannot be read: ``FileNotFoundError`` when ``path`` does not
            exist, an ``OSError`` naming it when it is a directory.
        """
        return cls(
            _core.Trace.read_csv(
                os.fspath(path),
                id_column,
                size_column=size_column,
                time_column=time_column,
                delimiter=delimiter,
                has_header=header,
                id_format=id_format,
            )
        )

    @classmethod
    def from_oracle_general(cls, path: str | os.PathLike[str], *, skip_zero_size: bool = True) -> Trace:
        """Read libCacheSim's oracleGeneral binary format (24-byte records).

        An empty file, or one whose records all have size 0 (skipped, as in
        libCacheSim, unless ``skip_zero_size=False``), gives an empty trace.

        :raises MalformedInputError: naming the file and byte offset (for example a truncated record).
        :raises OSError: the file cannot be read: ``FileNotFoundError`` when ``path`` does not
            exist, an ``OSError`` naming it when it is a directory.
        """
        return cls(_core.Trace.read_oracle_general(os.fspath(path), skip_zero_size=skip_zero_size))

    @classmethod
    def synthetic(cls, spec: Mapping[str, Any] | str, n_requests: int, *, seed: int = 0, **params: Any) -> Trace:
        """A seeded synthetic trace, generated in Rust.

        ``spec`` is a dict with a ``kind`` (``zipf``: ``alpha``, ``n_objects``;
        ``uniform``/``loop``: ``n_objects``; ``scan``; ``mix``: ``components``
        = ``[(weight, spec), ...]``; ``phase_shift``: ``inner``, ``period``,
        ``shift``; ``sized``: ``inner``, ``sizes``) or just the kind, with the
        parameters as keywords. ``sizes`` is ``{"kind": "constant", "bytes"}``,
        ``{"kind": "uniform", "min_bytes", "max_bytes"}`` or
        ``{"kind": "lognormal", "mu", "sigma"}``.

        Example: ``Trace.synthetic("zipf", 10_000, alpha=1.0, n_objects=1000, seed=1)``.

        :raises InvalidConfigError: naming the bad parameter by its path in the spec,
            or ``n_requests`` when the trace would not fit in the available memory.
        """
        full = {"kind": spec, **params} if isinstance(spec, str) else {**spec, **params}
        if n_requests < 0:
            raise InvalidConfigError(f"n_requests must be >= 0, got {n_requests}")
        from memarena.families.paging.memory import BYTES_PER_REQUEST
        from memarena.resources import check_fits

        per = BYTES_PER_REQUEST + (8 if full.get("kind") == "sized" else 0)
        check_fits(n_requests * per, "n_requests", f"a trace of {n_requests} requests x {per} B")
        return cls(_core.Trace.synthetic(full, n_requests, seed))

    # -- derived traces and output ----------------------------------------

    def to_oracle_general(self, path: str | os.PathLike[str]) -> None:
        """Write the trace in libCacheSim's oracleGeneral format (missing sizes as 1, times as 0)."""
        self._core.write_oracle_general(os.fspath(path))

    def with_oracle_predictions(self, kind: str, cache_size: int) -> Trace:
        """This trace plus perfect predictions computed from it (ids shared, not copied).

        :param kind: ``next_arrival`` (fills :attr:`pred_next_vtime`), ``discard_bit``
            (Belady with ``cache_size`` pages evicts the page before its next request) or
            ``phase_bit`` (the page is requested in the next k-phase); bits fill :attr:`pred_bit`.
        :param cache_size: Cache size in pages (the ``k`` of the bit predictions).
        """
        return Trace(self._core.with_oracle_predictions(kind, cache_size))

    def with_noise(self, error: float, *, seed: int = 0) -> Trace:
        """This trace with seeded noise on its predictions.

        :param error: Bit-flip probability for :attr:`pred_bit`; Gaussian sigma (in requests) for
            :attr:`pred_next_vtime`.
        """
        return Trace(self._core.with_noise(error, seed=seed))

    # -- columns -----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._core)

    def __repr__(self) -> str:
        return (
            f"Trace(requests={len(self)}, objects={self.num_objects}, sized={self.has_sizes}, "
            f"predictions={self.has_predictions})"
        )

    @property
    def ids(self) -> npt.NDArray[np.uint64]:
        """Object ids (read-only)."""
        return self._core.ids

    @property
    def sizes(self) -> npt.NDArray[np.uint64] | None:
        """Sizes in bytes, or None for unit-size pages (read-only)."""
        return self._core.sizes

    @property
    def timestamps(self) -> npt.NDArray[np.uint64] | None:
        """Timestamps, or None (read-only)."""
        return self._core.timestamps

    @property
    def pred_next_vtime(self) -> npt.NDArray[np.uint64] | None:
        """Predicted next-request index per request (:data:`NEVER` = none), or None."""
        return self._core.pred_next_vtime

    @property
    def pred_bit(self) -> npt.NDArray[np.bool_] | None:
        """One-bit predictions, or None."""
        return self._core.pred_bit

    @property
    def next_vtime(self) -> npt.NDArray[np.uint64]:
        """Index of the next request to the same object (:data:`NEVER` = never); cached."""
        return self._core.next_vtime

    @property
    def first_access(self) -> npt.NDArray[np.bool_]:
        """Whether each request is the first to its object; cached."""
        return self._core.first_access

    @property
    def num_objects(self) -> int:
        """Number of distinct objects."""
        return self._core.num_objects

    @property
    def has_sizes(self) -> bool:
        """Whether the trace carries object sizes."""
        return self._core.sizes is not None

    @property
    def has_predictions(self) -> bool:
        """Whether the trace carries a prediction column."""
        return self._core.pred_next_vtime is not None or self._core.pred_bit is not None

    @cached_property
    def footprint_bytes(self) -> int:
        """Bytes of all distinct objects (size at first request), exact (a Python int, which may exceed
        2**64 - 1); :attr:`num_objects` when unit-size."""
        sizes = self.sizes
        if sizes is None:
            return self.num_objects
        # Exact, never wrapping: a uint64 sum of sizes near 2**63 would wrap
        # (and give a fractional cache_size the wrong capacity). The high and
        # low 32-bit halves are summed apart; each sum fits a uint64 for fewer
        # than 2**32 objects, and Python ints join them.
        first = sizes[self.first_access]
        if len(first) >= 2**32:  # pragma: no cover - 32 GiB of sizes; the halves could wrap
            return sum(int(x) for x in first)
        high = int((first >> np.uint64(32)).sum(dtype=np.uint64))
        low = int((first & np.uint64(0xFFFF_FFFF)).sum(dtype=np.uint64))
        return (high << 32) + low
