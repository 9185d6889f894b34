"""Request columns for the serving model: trace replay and synthetic generators.

A :class:`Requests` is a struct of numpy arrays, one entry per request:
arrival time (seconds), prompt and output lengths (tokens), and optionally
the number of parallel samples and a prefix-sharing group. Lengths are
checked here, before anything reaches the Rust core, so an error names the
row (``requests[17].prompt_tokens``) instead of wrapping silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import numpy.typing as npt

from memarena import _core
from memarena.errors import InvalidConfigError

__all__ = ["Requests", "generate_requests", "read_azure_csv"]

_U32_MAX = 2**32 - 1


def _first_bad(mask: npt.NDArray[np.bool_]) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _tokens(name: str, values: Any, n: int | None, *, minimum: int) -> npt.NDArray[np.uint32]:
    """``values`` as a contiguous uint32 array; errors name the first bad row."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidConfigError(f"requests.{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise InvalidConfigError(f"requests.{name} has {len(arr)} entries but arrival_s has {n}")
    if arr.dtype.kind == "f":
        bad = _first_bad(~np.isfinite(arr) | (arr != np.floor(arr)))
        if bad is not None:
            raise InvalidConfigError(f"requests[{bad}].{name} must be a whole number, got {arr[bad]}")
    elif arr.dtype.kind not in "iub":
        raise InvalidConfigError(f"requests.{name} must hold integers, got dtype {arr.dtype}")
    bad = _first_bad((arr < minimum) | (arr > _U32_MAX))
    if bad is not None:
        raise InvalidConfigError(f"requests[{bad}].{name} must be in {minimum}..{_U32_MAX}, got {arr[bad]}")
    return np.ascontiguousarray(arr, dtype=np.uint32)


@dataclass(frozen=True)
class Requests:
    """Requests to serve, as columns (one entry per request).

    :param arrival_s: Arrival times in seconds (finite, >= 0; any order).
    :param prompt_tokens: Prompt lengths (>= 1).
    :param output_tokens: Tokens generated per sequence (>= 1).
    :param n_parallel: Parallel samples sharing the prompt (>= 1), or None (all 1).
    :param prefix_group: Content group for prefix caching (-1: none), or None.
    :param prefix_tokens: Tokens shared with the group, or None (0).

    Build one with :meth:`from_arrays` (which validates and converts);
    the constructor trusts its inputs.
    """

    arrival_s: npt.NDArray[np.float64]
    prompt_tokens: npt.NDArray[np.uint32]
    output_tokens: npt.NDArray[np.uint32]
    n_parallel: npt.NDArray[np.uint32] | None = None
    prefix_group: npt.NDArray[np.int64] | None = None
    prefix_tokens: npt.NDArray[np.uint32] | None = None

    @classmethod
    def from_arrays(
        cls,
        arrival_s: Any,
        prompt_tokens: Any,
        output_tokens: Any,
        *,
        n_parallel: Any = None,
        prefix_group: Any = None,
        prefix_tokens: Any = None,
    ) -> Requests:
        """Validate and convert array-likes; errors name the column and the first bad row.

        :raises InvalidConfigError: a negative, zero or fractional length, a
            negative or non-finite arrival time, or columns of unequal length.
        """
        arrival = np.ascontiguousarray(np.asarray(arrival_s, dtype=np.float64))
        if arrival.ndim != 1:
            raise InvalidConfigError(f"requests.arrival_s must be one-dimensional, got shape {arrival.shape}")
        n = len(arrival)
        bad = _first_bad(~np.isfinite(arrival) | (arrival < 0))
        if bad is not None:
            raise InvalidConfigError(f"requests[{bad}].arrival_s must be finite and >= 0, got {arrival[bad]}")
        group = None
        if prefix_group is not None:
            g = np.asarray(prefix_group)
            if len(g) != n:
                raise InvalidConfigError(f"requests.prefix_group has {len(g)} entries but arrival_s has {n}")
            bad = _first_bad(g < -1)
            if bad is not None:
                raise InvalidConfigError(f"requests[{bad}].prefix_group must be >= 0 (or -1: none), got {g[bad]}")
            group = np.ascontiguousarray(g, dtype=np.int64)
        return cls(
            arrival,
            _tokens("prompt_tokens", prompt_tokens, n, minimum=1),
            _tokens("output_tokens", output_tokens, n, minimum=1),
            None if n_parallel is None else _tokens("n_parallel", n_parallel, n, minimum=1),
            group,
            None if prefix_tokens is None else _tokens("prefix_tokens", prefix_tokens, n, minimum=0),
        )

    @classmethod
    def _from_core(cls, cols: Mapping[str, Any]) -> Requests:
        par, group, prefix = cols["n_parallel"], cols["prefix_group"], cols["prefix_tokens"]
        return cls(
            cols["arrival_s"],
            cols["prompt_tokens"],
            cols["output_tokens"],
            par if (par != 1).any() else None,
            group if (group >= 0).any() else None,
            prefix if prefix.any() else None,
        )

    def __len__(self) -> int:
        return len(self.arrival_s)

    def head(self, n: int) -> Requests:
        """The ``n`` earliest-arriving requests (all when ``n`` is 0 or at least ``len``)."""
        if n <= 0 or n >= len(self):
            return self
        keep = np.sort(np.argsort(self.arrival_s, kind="stable")[:n])
        return self._take(keep)

    def _take(self, idx: npt.NDArray[np.intp]) -> Requests:
        def pick(a: Any) -> Any:
            return None if a is None else np.ascontiguousarray(a[idx])

        return Requests(
            pick(self.arrival_s),
            pick(self.prompt_tokens),
            pick(self.output_tokens),
            pick(self.n_parallel),
            pick(self.prefix_group),
            pick(self.prefix_tokens),
        )

    def time_scaled(self, time_scale: float) -> Requests:
        """Arrivals divided by ``time_scale`` (> 1 replays faster: a higher load)."""
        if not (time_scale > 0 and np.isfinite(time_scale)):
            raise InvalidConfigError(f"time_scale must be finite and > 0, got {time_scale}")
        if time_scale == 1:
            return self
        with np.errstate(over="ignore"):
            arrival = self.arrival_s / time_scale
        if len(arrival) and not np.isfinite(arrival.max()):
            raise InvalidConfigError(
                f"time_scale {time_scale:g}: the last arrival ({self.arrival_s.max():g} s) divided by it is "
                "beyond any finite time"
            )
        return Requests(
            arrival,
            self.prompt_tokens,
            self.output_tokens,
            self.n_parallel,
            self.prefix_group,
            self.prefix_tokens,
        )

    @property
    def span_s(self) -> float:
        """First to last arrival, seconds."""
        return float(self.arrival_s.max() - self.arrival_s.min()) if len(self) else 0.0

    @property
    def offered_load_requests_per_s(self) -> float:
        """Arrivals per second over the arrival span (0 for fewer than two requests)."""
        span = self.span_s
        return (len(self) - 1) / span if span > 0 else 0.0

    def core_kwargs(self) -> dict[str, Any]:
        """The optional columns as keyword arguments of ``_core.simulate_serving``."""
        return {"n_parallel": self.n_parallel, "prefix_group": self.prefix_group, "prefix_tokens": self.prefix_tokens}


def read_azure_csv(path: str | PathLike[str]) -> Requests:
    """Read an Azure LLM inference trace CSV (``TIMESTAMP,ContextTokens,GeneratedTokens``).

    Arrival times are kept, relative to the earliest timestamp. A row with 0
    generated tokens keeps 1 (the request still produces its first token).

    :raises MalformedInputError: naming the file and line (a missing column,
        a negative or non-numeric length, a bad timestamp, text that is not
        UTF-8, with its byte offset); a quoted field is cut to 80 characters.
    :raises OSError: the file cannot be read (``FileNotFoundError`` when it
        does not exist; a directory is refused by name).
    """
    return Requests._from_core(_core.read_azure_csv(path))


def generate_requests(spec: Mapping[str, Any], seed: int) -> Requests:
    """Generate requests in the Rust core from a generator spec.

    ``spec["kind"]`` is ``synthetic`` (``num_requests``, ``arrivals``
    ``{"kind": "poisson"|"gamma"|"all_at_once", "rate", "cv"}``,
    ``prompt_tokens``, ``output_tokens``, ``n_parallel``), ``shared_prefix``
    (the same plus ``num_groups``, ``prefix_tokens``, ``zipf_alpha``) or
    ``multi_turn`` (``num_conversations``, ``conversation_rate``, ``turns``,
    ``user_tokens``, ``output_tokens``, ``mean_think_s``). Lengths are an
    integer or ``{"kind": "fixed"|"uniform"|"exponential"|"lognormal"|"empirical", ...}``.
    ``n_parallel`` (1) and ``zipf_alpha`` (0: uniform) may be left out; every other key is required.

    :raises InvalidConfigError: naming the spec key (``num_requests`` when the
        requests would not fit in the available memory).
    """
    full = {**_SPEC_DEFAULTS.get(spec.get("kind"), {}), **spec}
    _check_requests_fit(full)
    return Requests._from_core(_core.generate_requests(full, seed))


def _check_requests_fit(spec: Mapping[str, Any]) -> None:
    """Refuse a generator spec whose requests cannot fit in the available memory (at least one per conversation)."""
    from memarena.families.serving.memory import BYTES_PER_REQUEST
    from memarena.resources import check_fits

    for key in ("num_requests", "num_conversations"):
        n = spec.get(key)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            check_fits(n * BYTES_PER_REQUEST, key, f"{n} requests x {BYTES_PER_REQUEST} B")


#: The generator keys :func:`generate_requests` may leave out, by ``kind``, and their values.
_SPEC_DEFAULTS: dict[Any, dict[str, Any]] = {
    "synthetic": {"n_parallel": 1},
    "shared_prefix": {"n_parallel": 1, "zipf_alpha": 0.0},
}
