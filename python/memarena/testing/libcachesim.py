"""libCacheSim (PyPI ``libcachesim``) as a peer: one place that maps memarena's policies to its classes.

Used by the parity tests (``tests/parity``) and the speed benchmark
(``benchmarks/paging_vs_libcachesim.py``). libCacheSim is a test and
benchmark dependency, never a runtime one: it is imported only when a
function here runs.
"""

from __future__ import annotations

import time
from pathlib import Path

#: memarena registry name -> libCacheSim class name, for every policy both have.
CLASS_NAMES: dict[str, str] = {
    "lru": "LRU",
    "fifo": "FIFO",
    "clock": "Clock",
    "lfu": "LFU",
    "arc": "ARC",
    "twoq": "TwoQ",
    "lirs": "LIRS",
    "s3fifo": "S3FIFO",
    "sieve": "Sieve",
    "belady": "Belady",
}


def shared_policies() -> list[str]:
    """Registry names both memarena and libCacheSim have, sorted."""
    from memarena.families.paging.policies import NATIVE_POLICIES

    return sorted(set(CLASS_NAMES) & {p.name for p in NATIVE_POLICIES})


def replay(name: str, path: Path, capacity: int) -> tuple[int, int, float]:
    """Replay an oracleGeneral trace through libCacheSim's ``name`` policy at ``capacity``.

    :param name: memarena registry name of the policy (a key of :data:`CLASS_NAMES`).
    :param path: oracleGeneral trace file, read by libCacheSim's own reader.
    :param capacity: Cache size in bytes (objects for unit-size traces).
    :returns: ``(misses, requests, seconds)``: the miss count (from libCacheSim's
        object miss ratio, exact for traces below 2**52 requests), the trace's
        request count, and the wall time of ``process_trace`` alone.
    """
    import libcachesim as lcs

    reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE, lcs.ReaderInitParam())
    n_requests = reader.get_num_of_req()
    cache = getattr(lcs, CLASS_NAMES[name])(capacity)
    t0 = time.perf_counter()
    miss_ratio, _ = cache.process_trace(reader)
    return round(miss_ratio * n_requests), n_requests, time.perf_counter() - t0
