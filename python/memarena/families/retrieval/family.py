"""The ``retrieval`` family: recall, speed and memory of vector indexes.

One run builds the chosen index once on the workload's base vectors (timed:
``build_s``), then for every search setting of its grid (ann-benchmarks'
query arguments, e.g. ``nprobe`` 1..32) emits a row with

* ``recall_at_10``: against the exact ground truth (the filtered truth when
  the workload has tenants);
* ``qps_batch``: the whole query batch in one call on ``threads`` threads,
  median of ``repeats`` timings;
* ``qps_single``: ``single_queries`` queries one call each on one thread
  (Python call overhead included), median of ``repeats``;
* ``index_bytes`` and, with tenants, per-tenant bytes of the index's tenant
  structures (``tenant_bytes_mean``/``_max``/``_total``);
* two checks that must read 0: ``single_mismatches`` (a single query that
  got other results than in the batch) and ``tenant_violations`` (a result a
  query's tenant may not read);
* ``short_results``: result slots left empty (id -1) over the whole batch of
  ``n_queries * k`` slots, so an index that returns fewer than ``k`` ids
  (LSH buckets that hold too few candidates, a filtered search of a tenant
  with fewer than ``k`` readable vectors) says so; 0 when every query got
  ``k`` ids.

``memarena report`` draws recall@10 against QPS, the ann-benchmarks plot.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from memarena.api import Family, MemoryEstimate, PlotSpec, VectorIndex, param
from memarena.errors import InvalidConfigError
from memarena.families.retrieval.dataset import Dataset, recall_at_k

if TYPE_CHECKING:
    from memarena.run import Run

__all__ = ["RetrievalFamily", "short_results", "tenant_violations"]


def tenant_violations(ds: Dataset, ids: np.ndarray) -> int:
    """Results of each query that its tenant may not read (0 for a correct index)."""
    if ds.tenant_offsets is None or ds.tenant_ids is None or ds.query_tenants is None:
        return 0
    offsets, tids = ds.tenant_offsets, ds.tenant_ids
    bad = 0
    for q, row in enumerate(ids):
        t = ds.query_tenants[q]
        for r in row[row >= 0]:
            if t not in tids[offsets[r] : offsets[r + 1]]:
                bad += 1
    return bad


def short_results(ids: np.ndarray) -> int:
    """Result slots without an id (-1) over all queries: 0 when every query got ``k`` ids."""
    return int((np.asarray(ids) < 0).sum())


def _label(sp: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sp.items()) or "default"


class RetrievalFamily(Family):
    """Vector indexes on a dataset: recall@k, QPS (batch and single), build time, bytes."""

    name: ClassVar[str] = "retrieval"
    label_columns: ClassVar[tuple[str, ...]] = ("workload", "index", "search")
    summary_columns: ClassVar[tuple[str, ...]] = (
        "recall_at_10",
        "qps_batch",
        "qps_single",
        "build_s",
        "index_bytes",
        "tenant_bytes_mean",
    )
    plots: ClassVar[tuple[PlotSpec, ...]] = (
        PlotSpec(
            x="recall_at_10",
            y="qps_batch",
            hue="index",
            title="Recall@10 vs queries per second (batch), ann-benchmarks style",
            logy=True,
            filename="recall_vs_qps.png",
        ),
        PlotSpec(
            x="recall_at_10",
            y="qps_single",
            hue="index",
            title="Recall@10 vs queries per second (one query per call, one thread)",
            logy=True,
            filename="recall_vs_qps_single.png",
        ),
    )

    @dataclass
    class Config:
        _target_: str = "memarena.families.retrieval.family.RetrievalFamily"
        #: Results per query (recall is reported at min(k, 10) as recall_at_10 and at k).
        k: int = param(10, ge=1)
        #: Timings per setting; the median is reported (at most 1000: a larger count only runs longer).
        repeats: int = param(3, ge=1, le=1000)
        #: Queries timed one call at a time for qps_single (0: skip).
        single_queries: int = param(200, ge=0)
        #: Search queries filtered by their tenant when the workload has tenants.
        filter: bool = True

    def estimate_memory(self, run: Run) -> MemoryEstimate | None:
        """Vectors, queries, the index, ground truth and results (see :mod:`memarena.families.retrieval.memory`)."""
        from memarena.families.retrieval.memory import estimate

        workload = run.component("workload")
        return estimate(self, workload) if getattr(workload, "family", None) == "retrieval" else None

    def run(self, run: Run) -> None:
        workload = run.component("workload")
        if getattr(workload, "family", None) != "retrieval":
            raise InvalidConfigError(
                f"config key 'workload': {workload.name!r} is a {getattr(workload, 'family', '?')} workload, "
                "not a retrieval dataset"
            )
        ds: Dataset = workload.load(run.seed)
        if ds.truth.shape[1] < self.k:
            raise InvalidConfigError(
                f"config key 'family.k' ({self.k}) exceeds the workload's ground truth depth (workload.k_truth)"
            )
        index = run.component("index", dim=ds.dim, metric=ds.metric)
        if not isinstance(index, VectorIndex):
            raise InvalidConfigError(f"config key 'index' built {type(index).__name__}, not a memarena VectorIndex")
        filtered = self.filter and ds.query_tenants is not None
        if filtered and not index.supports_tenants:
            raise InvalidConfigError(
                f"config key 'index': {index.name!r} does not support tenants (VectorIndex.supports_tenants), "
                f"but workload {workload.name!r} has {ds.n_tenants}; use family.filter=false for an unfiltered run"
            )
        tenant = ds.query_tenants if filtered else None
        truth = ds.truth if filtered or ds.query_tenants is None else None
        if truth is None:  # tenants in the data, but an unfiltered search: unfiltered truth
            from memarena.families.retrieval.dataset import ground_truth

            truth = ground_truth(ds.base, ds.queries, self.k, ds.metric)

        t0 = time.perf_counter()
        index.train(ds.base)
        index.add(
            ds.base, np.arange(ds.n_base, dtype=np.uint64), tenants=ds.tenants if index.supports_tenants else None
        )
        build_s = time.perf_counter() - t0
        index_bytes = index.memory_bytes()
        labels = {"workload": workload.describe(), "index": run.label("index", index.name)}
        common: dict[str, Any] = {
            "metric": ds.metric,
            "dim": ds.dim,
            "n_vectors": ds.n_base,
            "n_queries": ds.n_queries,
            "k": self.k,
            "threads": run.threads,
            "build_s": build_s,
            "index_bytes": index_bytes,
            "bytes_per_vector": index_bytes / max(1, ds.n_base),
        }
        if filtered:
            common.update(self._tenant_columns(index, ds))
        grid = index.search_grid()
        with run.progress(len(grid), desc=f"retrieval {index.name}", unit="setting") as bar:
            for sp in grid:
                run.emit({**labels, "search": _label(sp), **common, **self._measure(run, index, ds, sp, tenant, truth)})
                bar.update(1)

    def _measure(
        self, run: Run, index: Any, ds: Dataset, sp: dict[str, Any], tenant: Any, truth: np.ndarray
    ) -> dict[str, Any]:
        k, q = self.k, ds.queries
        batch_params = {**sp, "threads": run.threads}
        times = []
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            _, ids = index.search(q, k, batch_params, tenant=tenant)
            times.append(time.perf_counter() - t0)
        out: dict[str, Any] = {
            "recall_at_10": recall_at_k(ids, truth, min(k, 10)),
            f"recall_at_{k}": recall_at_k(ids, truth, k),
            "qps_batch": ds.n_queries / statistics.median(times),
        }
        m = min(self.single_queries, ds.n_queries)
        if m:
            one = {**sp, "threads": 1}
            mismatches = 0
            single_times = []
            for rep in range(self.repeats):
                t0 = time.perf_counter()
                rows = [
                    index.search(q[i], k, one, tenant=None if tenant is None else int(tenant[i]))[1] for i in range(m)
                ]
                single_times.append(time.perf_counter() - t0)
                if rep == 0:
                    mismatches = sum(int(not np.array_equal(r[0], ids[i])) for i, r in enumerate(rows))
            out["qps_single"] = m / statistics.median(single_times)
            out["single_mismatches"] = mismatches
        out["tenant_violations"] = tenant_violations(ds, ids)
        out["short_results"] = short_results(ids)
        return out

    @staticmethod
    def _tenant_columns(index: Any, ds: Dataset) -> dict[str, Any]:
        tenants = np.arange(ds.n_tenants, dtype=np.uint32)
        per = np.asarray(index.tenant_memory_bytes(tenants), dtype=np.float64)
        sizes = np.array([index.tenant_len(int(t)) for t in tenants], dtype=np.float64)
        sel = sizes[ds.query_tenants] / max(1, ds.n_base)
        return {
            "n_tenants": ds.n_tenants,
            "tenant_bytes_total": int(per.sum()),
            "tenant_bytes_mean": float(per.mean()),
            "tenant_bytes_max": int(per.max()),
            "query_selectivity_median": float(np.median(sel)),
        }
