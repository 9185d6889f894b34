"""The ``paging`` family: replacement policies replayed over a trace.

For each cache size the policy is replayed over the whole trace in the Rust
core (native policies in parallel threads with the GIL released; Python
policies through the callback adapter). Rows carry libCacheSim's cold-start
miss ratios (compulsory misses counted, and also reported apart), byte miss
ratios and, with ``window_requests``, the miss ratio over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from omegaconf import ListConfig, OmegaConf

from memarena.api import Family, PagingPolicy, PlotSpec
from memarena.errors import InvalidConfigError

if TYPE_CHECKING:
    from memarena.paging import Trace
    from memarena.run import Run

__all__ = ["PagingFamily", "resolve_cache_sizes"]


def resolve_cache_sizes(value: Any, trace: Trace, *, ignore_size: bool) -> list[int]:
    """Turn the ``cache_size`` config value into capacities.

    An integer is a capacity in bytes (in objects when sizes are ignored or
    the trace is unit-size), as in libCacheSim. A float in (0, 1) is a
    fraction of the trace's footprint (distinct objects, or their bytes).

    :raises InvalidConfigError: naming ``cache_size``.
    """
    if isinstance(value, ListConfig):
        value = OmegaConf.to_container(value)
    values = list(value) if isinstance(value, list | tuple) else [value]
    if not values:
        raise InvalidConfigError("config key 'cache_size' is an empty list")
    footprint = trace.num_objects if ignore_size else trace.footprint_bytes
    out: list[int] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InvalidConfigError(f"config key 'cache_size': {v!r} is not a number")
        if isinstance(v, float) and not v.is_integer():
            if not 0 < v < 1:
                raise InvalidConfigError(
                    f"config key 'cache_size': {v} is neither a whole capacity nor a fraction in (0, 1)"
                )
            out.append(max(1, round(v * footprint)))
        elif v < 1:
            raise InvalidConfigError(f"config key 'cache_size': capacity must be at least 1, got {v}")
        else:
            out.append(int(v))
    return out


class PagingFamily(Family):
    """Replacement policies on a trace: miss ratios per cache size."""

    name: ClassVar[str] = "paging"
    label_columns: ClassVar[tuple[str, ...]] = ("workload", "policy", "cache_size")
    plots: ClassVar[tuple[PlotSpec, ...]] = (
        PlotSpec(x="cache_size", y="miss_ratio", hue="policy", title="Miss-ratio curve", logx=True, filename="mrc.png"),
        PlotSpec(
            x="cache_size",
            y="byte_miss_ratio",
            hue="policy",
            title="Byte miss-ratio curve",
            logx=True,
            filename="byte_mrc.png",
        ),
        PlotSpec(
            x="cache_size",
            y="avg_access_time_s",
            hue="policy",
            title="Average access time",
            logx=True,
            logy=True,
            filename="access_time.png",
        ),
    )

    @dataclass
    class Config:
        _target_: str = "memarena.experiments.paging.PagingFamily"
        #: Capacity (int, bytes or objects) or fraction of the footprint (float), or a list of them.
        cache_size: Any = 0.1
        #: Treat every object as size 1 (capacity counts objects).
        ignore_size: bool = False
        #: Requests at the start that warm the cache and are not counted.
        warmup_requests: int = 0
        #: Report the miss ratio per window of this many requests (0: off).
        window_requests: int = 0
        #: Size of one page for traces without sizes (for the access-time cost).
        page_size_bytes: int = 4096
        #: Backend tier that holds the cache, and the tier misses go to.
        cache_tier: str = "dram"
        backing_tier: str = "nvme"

    def __init__(
        self,
        cache_size: Any = 0.1,
        ignore_size: bool = False,
        warmup_requests: int = 0,
        window_requests: int = 0,
        page_size_bytes: int = 4096,
        cache_tier: str = "dram",
        backing_tier: str = "nvme",
    ) -> None:
        for key, v in (("warmup_requests", warmup_requests), ("window_requests", window_requests)):
            if v < 0:
                raise InvalidConfigError(f"config key 'family.{key}' must be >= 0, got {v}")
        if page_size_bytes < 1:
            raise InvalidConfigError(f"config key 'family.page_size_bytes' must be >= 1, got {page_size_bytes}")
        self.cache_size = cache_size
        self.ignore_size = ignore_size
        self.warmup_requests = warmup_requests
        self.window_requests = window_requests
        self.page_size_bytes = page_size_bytes
        self.cache_tier = cache_tier
        self.backing_tier = backing_tier

    def run(self, run: Run) -> None:
        from memarena.paging import simulate_many

        workload = run.component("workload")
        if getattr(workload, "family", None) != "paging":
            raise InvalidConfigError(
                f"config key 'workload': {workload.name!r} is a {getattr(workload, 'family', '?')} workload, "
                "not a paging trace"
            )
        trace = workload.load(run.seed)
        make_policy = run.factory("policy")
        sizes = resolve_cache_sizes(run.config.family.cache_size, trace, ignore_size=self.ignore_size)
        policies: list[PagingPolicy] = [make_policy(capacity=s) for s in sizes]
        if policies[0].uses_predictions and not trace.has_predictions:
            raise InvalidConfigError(
                f"policy {policies[0].name!r} reads predictions but workload {workload.name!r} has none; "
                "set workload.predictions (e.g. workload.predictions=next_arrival)"
            )
        with run.progress(len(trace) * len(policies), desc=f"paging {policies[0].name}", unit="req") as bar:
            results = simulate_many(
                trace,
                policies,
                threads=run.threads,
                ignore_size=self.ignore_size,
                warmup_requests=self.warmup_requests,
                window_requests=self.window_requests,
                progress=bar.update,
            )
        for res in results:
            row: dict[str, Any] = {"workload": workload.describe(), **res.as_row()}
            if self.ignore_size or not trace.has_sizes:  # unit-size objects are pages
                hit_bytes = (res.requests - res.misses) * self.page_size_bytes
                miss_bytes = res.misses * self.page_size_bytes
            else:
                hit_bytes, miss_bytes = res.bytes_requested - res.bytes_missed, res.bytes_missed
            row["access_bytes_hit"], row["access_bytes_missed"] = hit_bytes, miss_bytes
            run.emit(row)
