"""Replay throughput of memarena's Rust policies against libCacheSim, on the same trace, in one run.

Builds a seeded Zipf trace (default: 10M requests over 1M objects, alpha 1.0),
writes it as oracleGeneral for libCacheSim's reader, then times each policy
both have at cache sizes of 1% and 10% of the objects. Only the replay is
timed on both sides: memarena's trace (with its derived next-access column)
is built before the clock starts, and libCacheSim replays from its
memory-mapped reader after one untimed warm-up pass has loaded the file into
the page cache. The comparison is single-threaded (the process is pinned to
one CPU); a last line shows memarena's parallel sweep (every policy and size
at once, ``simulate_many``) on all CPUs. Miss counts are checked equal where
the parity test expects them to be.

Run with a release build::

    maturin develop --release
    python benchmarks/paging_vs_libcachesim.py [--requests 10000000] [--objects 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from memarena import _core
from memarena.families.paging import Trace, simulate, simulate_many
from memarena.families.paging.policies import NATIVE_POLICIES
from memarena.testing import libcachesim

CLASSES = {cls.name: cls for cls in NATIVE_POLICIES}


def time_ours(trace: Trace, name: str, capacity: int) -> tuple[float, int]:
    res = simulate(trace, CLASSES[name](capacity), chunk_requests=len(trace))
    return res.wall_s, res.misses


def time_theirs(path: Path, name: str, capacity: int) -> tuple[float, int]:
    misses, _, wall_s = libcachesim.replay(name, path, capacity)
    return wall_s, misses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000_000)
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1])
    ap.add_argument("--policies", nargs="+", default=libcachesim.shared_policies())
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin the single-threaded runs to")
    args = ap.parse_args()

    all_cpus = os.sched_getaffinity(0)
    cpu = args.cpu if args.cpu is not None else min(all_cpus)
    t0 = time.perf_counter()
    trace = Trace.synthetic("zipf", args.requests, alpha=args.alpha, n_objects=args.objects, seed=2024)
    build_s = time.perf_counter() - t0
    print(
        f"trace: {len(trace):,} requests, {trace.num_objects:,} objects, zipf alpha={args.alpha} "
        f"(built in {build_s:.1f}s, not timed below); repeats={args.repeats}, medians; pinned to CPU {cpu}"
    )
    print(f"memarena._core {_core.__version__}, libcachesim {importlib.metadata.version('libcachesim')}")
    sizes = [max(20, int(args.objects * f)) for f in args.fractions]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "zipf.oracleGeneral"
        trace.to_oracle_general(path)
        path.read_bytes()  # into the page cache
        os.sched_setaffinity(0, {cpu})
        header = f"{'policy':<8} {'cache':>8} {'memarena Mreq/s':>16} {'libCacheSim Mreq/s':>19} {'ratio':>7}  misses"
        print(header)
        print("-" * len(header))
        for name in args.policies:
            for cap in sizes:
                time_theirs(path, name, cap)  # warm-up: page cache, allocator
                ours, theirs = [], []
                for _ in range(args.repeats):
                    s, m_ours = time_ours(trace, name, cap)
                    ours.append(s)
                    s, m_theirs = time_theirs(path, name, cap)
                    theirs.append(s)
                o = len(trace) / statistics.median(ours) / 1e6
                t = len(trace) / statistics.median(theirs) / 1e6
                same = "equal" if m_ours == m_theirs else f"{m_ours} vs {m_theirs}"
                print(f"{name:<8} {cap:>8} {o:>16.2f} {t:>19.2f} {o / t:>6.2f}x  {same}", flush=True)
        os.sched_setaffinity(0, all_cpus)
    threads = len(all_cpus)
    policies = [CLASSES[n](c) for n in args.policies for c in sizes]
    t0 = time.perf_counter()
    simulate_many(trace, policies, threads=threads, chunk_requests=len(trace))
    wall = time.perf_counter() - t0
    total = len(trace) * len(policies)
    print(
        f"parallel sweep: {len(policies)} simulations x {len(trace):,} requests on {threads} threads "
        f"in {wall:.1f}s = {total / wall / 1e6:.2f} Mreq/s aggregate"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
