"""The serving family's memory estimate (:meth:`memarena.api.Family.estimate_memory`).

A serving run holds its requests (and, for a trace, the file's text while it
is parsed) and one sample of the KV breakdown per ``sample_interval_s`` of
simulated time, twice (the core's series and its numpy copy). The simulated
time is the arrival span over ``time_scale`` (expected from ``n_requests``
and ``rate`` for synthetic arrivals, read from a trace's first and last
rows) plus the drain after the last arrival, taken as a quarter of that, at
most ten minutes: a tiny ``time_scale``, ``rate`` or ``sample_interval_s``, or
timestamps centuries apart, show up here before anything is built.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from memarena.api import MemoryEstimate
from memarena.resources import estimate_rows, file_size

__all__ = ["BYTES_PER_REQUEST", "BYTES_PER_SAMPLE", "arrival_span_s", "estimate", "request_count"]

#: A request in the core (spec, state, latencies) and in the Python-side arrays, bytes.
BYTES_PER_REQUEST = 256
#: One sample of the series: the core's (72 B) and the numpy copy the report holds (88 B).
BYTES_PER_SAMPLE = 160
#: One sample in the record (9 lists of Python numbers, their JSON text) when ``series_points=0`` keeps them all.
BYTES_PER_KEPT_SAMPLE = 1000
#: Memory a run takes whatever its size (the KV manager's tables, the record), bytes.
BASE_BYTES = 8 << 20
#: The drain after the last arrival, as a share of the arrival span, and at most this many seconds.
DRAIN_SHARE, MAX_DRAIN_S = 0.25, 600.0


def _mean_of(dist: Any, default: float) -> float:
    """The mean of a length distribution given as the workloads take it (an int or a dict)."""
    if isinstance(dist, int | float) and not isinstance(dist, bool):
        return float(dist)
    if not isinstance(dist, dict):
        try:
            dist = dict(dist)
        except (TypeError, ValueError):
            return default
    kind = dist.get("kind")
    try:
        if kind == "fixed":
            return float(dist.get("value", dist.get("tokens", default)))
        if kind == "uniform":
            return (float(dist["min"]) + float(dist["max"])) / 2
        for key in ("mean", "median"):
            if key in dist:
                return float(dist[key])
    except (KeyError, TypeError, ValueError):
        return default
    return default


def request_count(workload: Any) -> tuple[float, tuple[str, ...]]:
    """Requests the workload will produce (expected), and the config keys that set it."""
    n_cap = getattr(workload, "n_requests", 0) or 0
    if hasattr(workload, "num_conversations"):
        n = workload.num_conversations * max(1.0, _mean_of(workload.turns, 4.0))
        keys: tuple[str, ...] = ("workload.num_conversations", "workload.turns")
    elif hasattr(workload, "rate"):
        return float(n_cap), ("workload.n_requests",)
    else:  # a trace file
        from memarena.families.serving.workloads import azure_conv_path

        path = getattr(workload, "path", None) or azure_conv_path()
        n = float(estimate_rows(path, header=True) or 0)
        keys = ("workload.path",)
    if n_cap:
        return min(n, float(n_cap)), keys
    return n, keys


def _seconds(ts: str) -> float | None:
    """Seconds since the epoch of ``YYYY-MM-DD HH:MM:SS[.fraction]`` (as the core reads it), or None."""
    try:
        date, time = ts.strip().replace("T", " ", 1).split(" ", 1)
        y, m, d = (int(x) for x in date.split("-"))
        h, mi, s = time.split(":")
        days = datetime.date(y, m, d).toordinal() - datetime.date(1970, 1, 1).toordinal()
        return days * 86400.0 + int(h) * 3600 + int(mi) * 60 + float(s)
    except (ValueError, OverflowError):
        return None


def _trace_span_s(path: Any, edge_bytes: int = 1 << 20) -> float | None:
    """Latest minus earliest timestamp among a trace's first and last MiB of rows."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(edge_bytes)
            f.seek(max(0, size - edge_bytes))
            tail = f.read(edge_bytes)
    except OSError:
        return None
    rows = head.splitlines()[1:] + tail.splitlines()[1:]  # the header; a cut first row of the tail
    times = [t for row in rows if (t := _seconds(row.decode("utf-8", "replace").split(",", 1)[0])) is not None]
    return max(times) - min(times) if times else None


def arrival_span_s(workload: Any, n: float) -> tuple[float | None, tuple[str, ...]]:
    """Simulated seconds of arrivals after ``time_scale`` (None: unknown), and the keys that set it."""
    scale = float(getattr(workload, "time_scale", 1.0) or 1.0)
    if hasattr(workload, "num_conversations"):
        span = workload.num_conversations / workload.conversation_rate
        span += max(1.0, _mean_of(workload.turns, 4.0)) * workload.mean_think_s
        keys: tuple[str, ...] = ("workload.conversation_rate", "workload.mean_think_s")
    elif hasattr(workload, "rate"):
        span = n / workload.rate
        keys = ("workload.rate", "workload.n_requests")
    else:
        from memarena.families.serving.workloads import azure_conv_path

        found = _trace_span_s(getattr(workload, "path", None) or azure_conv_path())
        if found is None:
            return None, ()
        span, keys = found, ("workload.path",)
    return span / scale, (*keys, "workload.time_scale")


def estimate(family: Any, workload: Any) -> MemoryEstimate | None:
    """The serving run's memory: requests, a trace's text, and the sample series."""
    try:
        n, n_keys = request_count(workload)
        span, span_keys = arrival_span_s(workload, n)
    except (AttributeError, TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    prompt = _mean_of(getattr(workload, "prompt_tokens", 0), 0.0) + float(getattr(workload, "prefix_tokens", 0) or 0)
    shares = hasattr(workload, "prefix_tokens") or hasattr(workload, "num_conversations")
    per_request = BYTES_PER_REQUEST + (prompt / 16 * 8 if shares else 0)  # prefix caching hashes a prompt's blocks
    parts: list[tuple[float, tuple[str, ...], str]] = [
        (BASE_BYTES, (), f"{BASE_BYTES >> 20} MiB fixed"),
        (n * per_request, n_keys, f"{n:.3g} requests x {per_request:.0f} B"),
    ]
    if not hasattr(workload, "rate") and not hasattr(workload, "num_conversations"):
        from memarena.families.serving.workloads import azure_conv_path

        text = file_size(getattr(workload, "path", None) or azure_conv_path()) or 0
        parts.append((text, ("workload.path",), f"{text} B of trace text"))
    interval = float(family.sample_interval_s)
    if interval > 0 and span is not None:
        simulated = span + min(span * DRAIN_SHARE, MAX_DRAIN_S)
        samples = simulated / interval + 2
        per_sample = BYTES_PER_SAMPLE + (BYTES_PER_KEPT_SAMPLE if family.series_points == 0 else 0)
        parts.append(
            (
                samples * per_sample,
                (*span_keys, "family.sample_interval_s"),
                f"{samples:.3g} samples of the series ({simulated:.3g} simulated s / sample_interval_s {interval:g}) "
                f"x {per_sample} B",
            )
        )
    parts.sort(key=lambda p: -p[0])  # the largest part's keys first
    total = sum(p[0] for p in parts)
    keys = tuple(dict.fromkeys(k for p in parts for k in p[1]))
    return MemoryEstimate(bytes=int(min(total, 2.0**63)), keys=keys, detail=" + ".join(p[2] for p in parts if p[0]))
