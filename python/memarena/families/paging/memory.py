"""The paging family's memory estimate (:meth:`memarena.api.Family.estimate_memory`).

A paging run holds its trace (ids, next-access times and first-access
flags: 17 B a request; sizes and timestamps 8 B more each), a hash map over
the distinct objects while next-access times are derived, a labelled copy
of the trace per cache size when predictions are handed out, and each
policy's state (about 100 B per cached object), and with ``window_requests``
each policy's miss ratio per window (about 100 B a window, from the core to
the record's JSON). The request count comes
from ``workload.n_requests`` for a synthetic trace, from the file's size for
an oracleGeneral trace (24 B records) and from its size and the mean length
of its first rows for a CSV.
"""

from __future__ import annotations

from typing import Any

from memarena.api import MemoryEstimate
from memarena.resources import estimate_rows, file_size

__all__ = ["BYTES_PER_CACHED_OBJECT", "BYTES_PER_DISTINCT_OBJECT", "BYTES_PER_REQUEST", "estimate"]

#: ids (8), next-access times (8) and first-access flags (1) of one request.
BYTES_PER_REQUEST = 17
#: The hash map from an object to its last request, while next-access times are derived.
BYTES_PER_DISTINCT_OBJECT = 32
#: A policy's state per object it holds (hash map entry and list links).
BYTES_PER_CACHED_OBJECT = 100
#: A window of ``window_requests``: the core's counts, the ratios, the row's list and its JSON text.
BYTES_PER_WINDOW = 100
#: oracleGeneral records are 24 bytes.
ORACLE_GENERAL_RECORD = 24


def _requests(workload: Any) -> tuple[float, float, int, tuple[str, ...]] | None:
    """(requests, distinct objects, extra bytes per request, keys) of the workload, or None: unknown."""
    if hasattr(workload, "n_requests"):  # synthetic
        n = float(workload.n_requests)
        distinct = min(n, float(getattr(workload, "n_objects", n)))
        if getattr(workload, "sizes", "unit") != "unit":
            return n, distinct, 8, ("workload.n_requests",)
        return n, distinct, 0, ("workload.n_requests",)
    path = getattr(workload, "path", None)
    if path is None:
        return None
    if getattr(workload, "name", "") == "oracle_general":
        size = file_size(path)
        if size is None:
            return None
        n = size / ORACLE_GENERAL_RECORD
        return n, n, 16, ("workload.path",)  # sizes and timestamps
    rows = estimate_rows(path, header=bool(getattr(workload, "header", True)))
    if rows is None:
        return None
    extra = 8 * sum(getattr(workload, k, None) is not None for k in ("size_column", "time_column"))
    return float(rows), float(rows), extra, ("workload.path",)


def _capacities(value: Any, distinct: float) -> list[float]:
    """Objects each cache size may hold (at most the distinct objects)."""
    values = list(value) if isinstance(value, list | tuple) else [value]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue  # resolve_cache_sizes names the key when the run starts
        out.append(min(distinct, v * distinct if isinstance(v, float) and 0 < v < 1 else float(v)))
    return out


def estimate(family: Any, workload: Any, cache_size: Any) -> MemoryEstimate | None:
    """The paging run's memory: the trace, its derivation, labelled copies, and the policies."""
    found = _requests(workload)
    if found is None:
        return None
    n, distinct, extra, keys = found
    per_request = BYTES_PER_REQUEST + extra
    caps = _capacities(cache_size, distinct)
    parts = [f"{n:.3g} requests x {per_request} B", f"{distinct:.3g} objects x {BYTES_PER_DISTINCT_OBJECT} B"]
    total = n * per_request + distinct * BYTES_PER_DISTINCT_OBJECT
    if family.predictions is not None:  # a labelled copy of the trace per cache size
        copies = len(caps) * n * (per_request + 8)
        total += copies
        parts.append(f"{len(caps)} labelled copies")
    policy = sum(caps) * BYTES_PER_CACHED_OBJECT
    total += policy
    parts.append(f"{len(caps)} policies holding {sum(caps):.3g} objects x {BYTES_PER_CACHED_OBJECT} B")
    windows = 0.0
    if family.window_requests:
        windows = len(caps) * n / family.window_requests
        total += windows * BYTES_PER_WINDOW
        parts.append(f"{windows:.3g} windows x {BYTES_PER_WINDOW} B")
    all_keys = (*keys, "family.cache_size") if policy > n * per_request else keys
    if windows * BYTES_PER_WINDOW > n * per_request:
        all_keys = ("family.window_requests", *all_keys)
    return MemoryEstimate(bytes=int(min(total, 2.0**63)), keys=all_keys, detail=" + ".join(parts))
