"""Built-in derived metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import HardwareBackend, Metric
from memarena.errors import InvalidConfigError

if TYPE_CHECKING:
    from memarena.run import Run

__all__ = ["AverageAccessTime"]


class AverageAccessTime(Metric):
    """Average access time of a paging run on the selected backend's tiers.

    A hit costs one access of the cache tier, a miss one access of the
    backing tier (``latency_s + bytes / bandwidth``). Applies only when a
    backend is selected (``backend=<name>``).
    """

    name: ClassVar[str] = "avg_access_time"
    families: ClassVar[tuple[str, ...]] = ("paging",)

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.metrics.AverageAccessTime"

    def __init__(self) -> None:
        self._backend: HardwareBackend | None = None

    def compute(self, run: Run, row: Mapping[str, Any]) -> dict[str, float]:
        if not run.has("backend"):
            return {}
        if self._backend is None:
            self._backend = run.component("backend")
        fam = run.config.family
        try:
            fast, slow = self._backend.tier(fam.cache_tier), self._backend.tier(fam.backing_tier)
        except KeyError as exc:
            raise InvalidConfigError(f"config key 'family.cache_tier'/'family.backing_tier': {exc.args[0]}") from None
        requests, misses = row["requests"], row["misses"]
        if requests == 0:
            return {"avg_access_time_s": 0.0}
        hits = requests - misses
        total = (
            hits * fast.latency_s
            + row["access_bytes_hit"] / fast.bandwidth_bytes_per_s
            + misses * slow.latency_s
            + row["access_bytes_missed"] / slow.bandwidth_bytes_per_s
        )
        return {"avg_access_time_s": total / requests, "total_access_time_s": total}
