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

from memarena import _core
from memarena.api import BackendRequirements, Family, MemoryEstimate, PagingPolicy, PlotSpec, param
from memarena.errors import InvalidConfigError

if TYPE_CHECKING:
    from memarena.families.paging import Trace
    from memarena.run import Run

__all__ = ["PREDICTION_KINDS", "PagingFamily", "resolve_cache_sizes"]

#: What ``family.predictions`` may name (None: no prediction column).
#: None (no predictions, or the policy's own kind) and the oracle prediction kinds the core computes.
PREDICTION_KINDS: tuple[str | None, ...] = (None, *_core.prediction_kinds())


_U64_MAX = 2**64 - 1


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
            capacity = max(1, round(v * footprint))
            if capacity > _U64_MAX:
                raise InvalidConfigError(
                    f"config key 'cache_size': {v} of the footprint ({footprint} bytes) is {capacity}, "
                    f"above the largest capacity, {_U64_MAX}"
                )
            out.append(capacity)
        elif v < 1:
            raise InvalidConfigError(f"config key 'cache_size': capacity must be at least 1, got {v}")
        else:
            out.append(int(v))
    return out


class PagingFamily(Family):
    """Replacement policies on a trace: miss ratios per cache size."""

    name: ClassVar[str] = "paging"
    label_columns: ClassVar[tuple[str, ...]] = ("workload", "policy", "predictions", "prediction_error", "cache_size")
    summary_columns: ClassVar[tuple[str, ...]] = (
        "miss_ratio",
        "byte_miss_ratio",
        "compulsory_miss_ratio",
        "avg_access_time_s",
        "wall_s",
    )
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
            x="prediction_error",
            y="miss_ratio",
            hue="policy",
            title="Consistency and robustness: miss ratio vs prediction error",
            filename="prediction_error.png",
        ),
        PlotSpec(
            x="window",
            y="window_miss_ratios",
            hue="policy",
            title="Miss ratio over time (per window of requests)",
            series=True,
            filename="miss_ratio_over_time.png",
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
        _target_: str = "memarena.families.paging.family.PagingFamily"
        #: Capacity (int, bytes or objects) or fraction of the footprint (float), or a list of them.
        cache_size: Any = 0.1
        #: Treat every object as size 1 (capacity counts objects).
        ignore_size: bool = False
        #: Requests at the start that warm the cache and are not counted.
        warmup_requests: int = param(0, ge=0)
        #: Report the miss ratio per window of this many requests (0: off).
        window_requests: int = param(0, ge=0)
        #: Size of one page for traces without sizes (for the access-time cost).
        page_size_bytes: int = param(4096, ge=1)
        #: Backend tier that holds the cache, and the tier misses go to.
        cache_tier: str = "dram"
        backing_tier: str = "nvme"
        #: Predictions handed to the policy: null (the policy's own
        #: ``prediction_kind``, if any), next_arrival, discard_bit or phase_bit;
        #: oracle labels computed from the trace.
        predictions: str | None = param(None, choices=PREDICTION_KINDS)
        #: Prediction error: bit-flip probability for bits, Gaussian sigma
        #: (in requests) for next-arrival times.
        prediction_error: float = param(0.0, ge=0)
        #: For ``policy=lru`` on unit-size objects: compute every cache size from
        #: one pass of exact stack distances (Mattson et al.) instead of replaying
        #: once per size. Same miss counts, one pass for the whole curve.
        lru_stack_distances: bool = False

    def backend_requirements(self) -> BackendRequirements:
        """The cache and backing tiers the access-time metric costs hits and misses on."""
        return BackendRequirements(tiers=(self.cache_tier, self.backing_tier))

    def estimate_memory(self, run: Run) -> MemoryEstimate | None:
        """The trace, its derivation and the policies' state (see :mod:`memarena.families.paging.memory`)."""
        from memarena.families.paging.memory import estimate

        workload = run.component("workload")
        if getattr(workload, "family", None) != "paging":
            return None
        cache_size = run.config.family.cache_size
        if isinstance(cache_size, ListConfig):
            cache_size = OmegaConf.to_container(cache_size)
        return estimate(self, workload, cache_size)

    def run(self, run: Run) -> None:
        workload = run.component("workload")
        if getattr(workload, "family", None) != "paging":
            raise InvalidConfigError(
                f"config key 'workload': {workload.name!r} is a {getattr(workload, 'family', '?')} workload, "
                "not a paging trace"
            )
        trace = workload.load(run.seed)
        self._check_counted(run, workload, trace)
        make_policy = run.factory("policy")
        sizes = resolve_cache_sizes(run.config.family.cache_size, trace, ignore_size=self.ignore_size)
        policies: list[PagingPolicy] = [make_policy(capacity=s) for s in sizes]
        name = policies[0].name
        # A learning-augmented policy gets oracle labels of its kind (perturbed by
        # family.prediction_error) unless the trace carries its own predictions.
        kind = self.predictions or (None if trace.has_predictions else policies[0].prediction_kind)
        labels = {"workload": workload.describe(), "policy": run.label("policy", name)}
        if kind is not None:
            labels["predictions"] = kind
        if kind is not None or self.prediction_error:
            # Policies without predictions get the column too, so a sweep over the
            # error draws them as flat reference lines.
            labels["prediction_error"] = self.prediction_error
        if self.lru_stack_distances:
            self._emit_lru_mrc(run, trace, policies, labels)
            return
        # Oracle labels that depend on the cache size (discard and phase bits) differ per size.
        batches = (
            [(self._with_predictions(trace, kind, s, run.seed), [p]) for s, p in zip(sizes, policies, strict=True)]
            if kind is not None
            else [(trace, policies)]
        )
        with run.progress(len(trace) * len(policies), desc=f"paging {name}", unit="req") as bar:
            for batch_trace, batch in batches:
                results = self._simulate(run, batch_trace, batch, bar.update)
                for res in results:
                    run.emit(self._row(labels, res, trace))

    def _check_counted(self, run: Run, workload: Any, trace: Trace) -> None:
        """Refuse a trace that leaves no request to count: a miss ratio over none is undefined.

        An empty trace (an empty file, a header-only CSV, an oracleGeneral file
        whose records all have size 0, which are skipped as in libCacheSim) and
        a warm-up as long as the trace are errors, not ``miss_ratio 0``.
        """
        n = len(trace)
        path = getattr(workload, "path", None)
        source = f"the trace {path}" if path else "the trace"
        if n == 0:
            raise InvalidConfigError(
                f"config key 'workload' (workload={run.label('workload', workload.name)}): {source} has no requests "
                "(an empty file, a header-only CSV, or an oracleGeneral file whose records all have size 0, "
                "which are skipped); a miss ratio over no requests is undefined"
            )
        if self.warmup_requests >= n:
            raise InvalidConfigError(
                f"config key 'family.warmup_requests' = {self.warmup_requests}: {source} has only {n} requests, "
                "so none would be counted; choose a warm-up shorter than the trace"
            )

    def _emit_lru_mrc(self, run: Run, trace: Trace, policies: list[PagingPolicy], labels: dict[str, Any]) -> None:
        """Rows for every size from one pass of LRU stack distances."""
        import time

        import numpy as np

        from memarena.families.paging import lru_mrc

        if policies[0].name != "lru":
            raise InvalidConfigError(
                f"config key 'family.lru_stack_distances' applies to policy=lru, not {policies[0].name!r}"
            )
        if trace.has_sizes and not self.ignore_size:
            raise InvalidConfigError(
                "config key 'family.lru_stack_distances' counts objects; set family.ignore_size=true for a sized trace"
            )
        if self.warmup_requests or self.window_requests:
            raise InvalidConfigError(
                "config key 'family.lru_stack_distances' does not support warmup_requests or window_requests"
            )
        sizes = [p.capacity for p in policies]
        t0 = time.perf_counter()
        ratios = lru_mrc(trace, np.asarray(sizes, dtype=np.uint64))
        wall_s = time.perf_counter() - t0
        n = len(trace)
        compulsory = int(np.count_nonzero(trace.first_access))
        for size, ratio in zip(sizes, ratios, strict=True):
            misses = round(float(ratio) * n)
            row: dict[str, Any] = {
                **labels,
                "cache_size": size,
                "method": "stack_distance",
                "requests": n,
                "misses": misses,
                "miss_ratio": float(ratio),
                "byte_miss_ratio": float(ratio),
                "compulsory_misses": compulsory,
                "compulsory_miss_ratio": compulsory / n if n else 0.0,
                "wall_s": wall_s / len(sizes),
                "access_bytes_hit": (n - misses) * self.page_size_bytes,
                "access_bytes_missed": misses * self.page_size_bytes,
            }
            run.emit(row)

    def _with_predictions(self, trace: Trace, kind: str, cache_size: int, seed: int) -> Trace:
        labelled = trace.with_oracle_predictions(kind, cache_size=cache_size)
        if self.prediction_error > 0:
            labelled = labelled.with_noise(self.prediction_error, seed=seed)
        return labelled

    def _simulate(self, run: Run, trace: Trace, policies: list[PagingPolicy], progress: Any) -> list[Any]:
        from memarena.families.paging import simulate_many

        return simulate_many(
            trace,
            policies,
            threads=run.threads,
            ignore_size=self.ignore_size,
            warmup_requests=self.warmup_requests,
            window_requests=self.window_requests,
            progress=progress,
        )

    def _row(self, labels: dict[str, Any], res: Any, trace: Trace) -> dict[str, Any]:
        row: dict[str, Any] = {**res.as_row(), **labels}
        if self.window_requests:
            row["window_requests"] = self.window_requests
            row["window_miss_ratios"] = [float(x) for x in res.window_miss_ratios]
        if self.ignore_size or not trace.has_sizes:  # unit-size objects are pages
            hit_bytes = (res.requests - res.misses) * self.page_size_bytes
            miss_bytes = res.misses * self.page_size_bytes
        else:
            hit_bytes, miss_bytes = res.bytes_requested - res.bytes_missed, res.bytes_missed
        row["access_bytes_hit"], row["access_bytes_missed"] = hit_bytes, miss_bytes
        return row
