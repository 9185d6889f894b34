"""Replaying traces through paging policies: :func:`simulate`, :func:`simulate_many`, :func:`lru_mrc`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from memarena import _core
from memarena.errors import InvalidConfigError

if TYPE_CHECKING:
    import numpy.typing as npt

    from memarena.api import PagingPolicy
    from memarena.families.paging.trace import Trace

__all__ = ["PagingResult", "Replay", "lru_mrc", "simulate", "simulate_many"]


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


#: Called with the number of requests just replayed (e.g. ``tqdm.update``).
Progress = Callable[[int], object]


@dataclass(frozen=True)
class PagingResult:
    """Counts and ratios of one policy at one cache size over one trace.

    Miss counts follow libCacheSim: compulsory (first-request) misses and
    misses on objects larger than the cache are included in ``misses`` and
    also reported apart. Requests before ``warmup_requests`` are not counted.
    """

    #: Registry name of the policy.
    policy: str
    #: Capacity in bytes (objects for unit-size traces or with ``ignore_size``).
    cache_size: int
    requests: int
    misses: int
    miss_ratio: float
    byte_miss_ratio: float
    compulsory_misses: int
    compulsory_miss_ratio: float
    too_large_misses: int
    bytes_requested: int
    bytes_missed: int
    #: Miss ratio of each window of ``window_requests`` counted requests (the last may be shorter).
    window_miss_ratios: npt.NDArray[np.float64] = field(repr=False)
    #: Wall-clock seconds spent replaying this policy.
    wall_s: float

    @classmethod
    def from_sim(cls, sim: _core.PagingSim) -> PagingResult:
        """Build the result from a simulator's counts."""
        s = sim.stats()
        win_req, win_miss = s.window_requests, s.window_misses
        windows = np.divide(
            win_miss, win_req, out=np.zeros(len(win_req), dtype=np.float64), where=win_req > 0, dtype=np.float64
        )
        return cls(
            policy=sim.policy,
            cache_size=sim.capacity,
            requests=s.requests,
            misses=s.misses,
            miss_ratio=_ratio(s.misses, s.requests),
            byte_miss_ratio=_ratio(s.bytes_missed, s.bytes_requested),
            compulsory_misses=s.compulsory_misses,
            compulsory_miss_ratio=_ratio(s.compulsory_misses, s.requests),
            too_large_misses=s.too_large_misses,
            bytes_requested=s.bytes_requested,
            bytes_missed=s.bytes_missed,
            window_miss_ratios=windows,
            wall_s=sim.wall_s,
        )

    def as_row(self) -> dict[str, Any]:
        """The scalar fields as plain Python values (for result records; windows are left out)."""
        return {
            "policy": self.policy,
            "cache_size": int(self.cache_size),
            "requests": int(self.requests),
            "misses": int(self.misses),
            "miss_ratio": float(self.miss_ratio),
            "byte_miss_ratio": float(self.byte_miss_ratio),
            "compulsory_misses": int(self.compulsory_misses),
            "compulsory_miss_ratio": float(self.compulsory_miss_ratio),
            "too_large_misses": int(self.too_large_misses),
            "bytes_requested": int(self.bytes_requested),
            "bytes_missed": int(self.bytes_missed),
            "wall_s": float(self.wall_s),
        }


def _make_sim(
    policy: PagingPolicy, *, ignore_size: bool, warmup_requests: int, window_requests: int
) -> _core.PagingSim:
    opts: dict[str, Any] = {
        "ignore_size": ignore_size,
        "warmup_requests": warmup_requests,
        "window_requests": window_requests,
    }
    if policy.core_name is not None:
        return _core.PagingSim(policy.core_name, policy.capacity, policy.core_params(), **opts)
    return _core.PagingSim.from_python(policy, policy.capacity, **opts)


def _chunks(n: int, chunk_requests: int) -> range:
    if chunk_requests < 1:
        raise InvalidConfigError(f"chunk_requests must be >= 1, got {chunk_requests}")
    return range(0, n, chunk_requests)


def _check_options(warmup_requests: int, window_requests: int) -> None:
    for key, v in (("warmup_requests", warmup_requests), ("window_requests", window_requests)):
        if v < 0:
            raise InvalidConfigError(f"{key} must be >= 0, got {v}")


def simulate(
    trace: Trace,
    policy: PagingPolicy,
    *,
    ignore_size: bool = False,
    warmup_requests: int = 0,
    window_requests: int = 0,
    progress: Progress | None = None,
    chunk_requests: int = 1 << 20,
) -> PagingResult:
    """Replay ``trace`` through ``policy`` (at ``policy.capacity``) from an empty cache.

    Native policies run in Rust with the GIL released; Python policies go
    through the callback adapter (slow path). The trace is fed in chunks of
    ``chunk_requests``, so ``progress`` is called after each and Ctrl-C
    stops the replay between chunks; results do not depend on the chunking.

    :param ignore_size: Treat every object as size 1 (capacity counts objects).
    :param warmup_requests: Requests at the start that go through the cache uncounted.
    :param window_requests: Also report the miss ratio per window of this many counted requests.
    :param progress: Called with the number of requests just replayed.
    :raises InvariantError: when a Python policy evicts a non-resident object.
    """
    replay = Replay(
        trace, policy, ignore_size=ignore_size, warmup_requests=warmup_requests, window_requests=window_requests
    )
    n = len(trace)
    for start in _chunks(n, chunk_requests):
        stop = min(n, start + chunk_requests)
        replay.feed(stop)
        if progress is not None:
            progress(stop - start)
    return replay.result()


class Replay:
    """One policy replaying a trace step by step, watchable between steps.

    :func:`simulate` is a replay fed to the end; a conformance suite or a
    notebook feeds it in steps and reads the cache between them. Results do
    not depend on the steps.

    Invariants: ``0 <= position <= len(trace)``; ``resident_objects`` and
    ``used`` describe the cache after the first ``position`` requests.
    """

    def __init__(
        self,
        trace: Trace,
        policy: PagingPolicy,
        *,
        ignore_size: bool = False,
        warmup_requests: int = 0,
        window_requests: int = 0,
    ) -> None:
        _check_options(warmup_requests, window_requests)
        self.trace = trace
        self._sim = _make_sim(
            policy, ignore_size=ignore_size, warmup_requests=warmup_requests, window_requests=window_requests
        )

    @property
    def position(self) -> int:
        """Requests replayed so far."""
        return self._sim.position

    @property
    def resident_objects(self) -> int:
        """Objects in the cache now."""
        return len(self._sim)

    @property
    def used(self) -> int:
        """Capacity units in use now: bytes, or objects with ``ignore_size``."""
        return self._sim.used_bytes

    def feed(self, stop: int) -> None:
        """Replay the requests from :attr:`position` up to (not including) ``stop``.

        :raises InvalidConfigError: ``stop`` is before the position or past the trace.
        :raises InvariantError: a Python policy evicted a non-resident object.
        """
        if not self.position <= stop <= len(self.trace):
            raise InvalidConfigError(f"Replay.feed: stop must be in [{self.position}, {len(self.trace)}], got {stop}")
        self._sim.feed(self.trace._core, self.position, stop)

    def result(self) -> PagingResult:
        """Counts and ratios over the requests replayed so far."""
        return PagingResult.from_sim(self._sim)


def simulate_many(
    trace: Trace,
    policies: Sequence[PagingPolicy],
    *,
    threads: int | None = None,
    ignore_size: bool = False,
    warmup_requests: int = 0,
    window_requests: int = 0,
    progress: Progress | None = None,
    chunk_requests: int = 1 << 20,
) -> list[PagingResult]:
    """Replay ``trace`` through every policy; results in the order of ``policies``.

    Native policies advance together, chunk by chunk, on up to ``threads``
    threads (default: the number of CPUs) with the GIL released; Python
    policies then run one by one through the callback adapter. Results equal
    :func:`simulate` for each policy.

    :param progress: Called with the number of requests just replayed (summed over policies).
    """
    _check_options(warmup_requests, window_requests)
    if threads is not None and threads < 1:
        raise InvalidConfigError(f"threads must be >= 1, got {threads}")
    opts: dict[str, Any] = {
        "ignore_size": ignore_size,
        "warmup_requests": warmup_requests,
        "window_requests": window_requests,
    }
    sims = [_make_sim(p, **opts) for p in policies]
    native = [s for s in sims if not s.is_python]
    python = [s for s in sims if s.is_python]
    n = len(trace)
    if native:
        for start in _chunks(n, chunk_requests):
            stop = min(n, start + chunk_requests)
            _core.feed_many(native, trace._core, start, stop, threads)
            if progress is not None:
                progress((stop - start) * len(native))
    for sim in python:
        for start in _chunks(n, chunk_requests):
            stop = min(n, start + chunk_requests)
            sim.feed(trace._core, start, stop)
            if progress is not None:
                progress(stop - start)
    return [PagingResult.from_sim(s) for s in sims]


def lru_mrc(trace: Trace, cache_sizes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Exact LRU miss ratios at every size in ``cache_sizes`` (objects), from one pass.

    Sizes of the trace are ignored (unit-size objects). Equals
    ``simulate(trace, LRU(c), ignore_size=True).miss_ratio`` for each ``c``.
    """
    sizes = np.asarray(cache_sizes)
    if sizes.size and (not np.issubdtype(sizes.dtype, np.integer) or sizes.min() < 0):
        raise InvalidConfigError(f"cache_sizes must be non-negative integers, got {sizes!r}")
    return _core.lru_mrc(trace._core, np.ascontiguousarray(sizes, dtype=np.uint64))
