"""An M/M/1 queue at rho = 0.9 in memarena's event engine and in SimPy, in one run.

Both sides run the same model: Poisson arrivals (lambda = 0.9), one server
with exponential service (mu = 1.0), FIFO; the mean wait in queue is
measured over the jobs after a warm-up and compared with the closed form
W_q = rho / (mu - lambda) = 9 s. memarena runs the model natively in Rust
(``memarena.families.serving.simulate_mm1``, GIL released); SimPy runs it twice:
as its textbook process-based model (a ``Resource`` and one process per
job) and in a leaner form (an arrival process feeding a ``Store``, one
server loop); the ratio is taken against the faster of the two.
Each side is repeated (different seeds) and the medians are printed: jobs
per second of wall time and the ratio, plus each side's deviation from
theory. The ratio is also given against a fixed SimPy reference of
110,000 jobs/s (the figure the speed goal was set against; override with
``--simpy-reference``), so that a slow or fast SimPy run on a loaded
machine does not flatter or hide memarena's own speed. Single-threaded (the
process is pinned to one CPU). Prints, never asserts.

SimPy is a test/benchmark dependency (``pip install -e .[test]``). Run with a
release build::

    maturin develop --release
    python benchmarks/sim_vs_simpy.py [--jobs 10000000] [--simpy-jobs 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import random
import statistics
import time

import simpy

from memarena.families.serving import mm1_mean_wait, simulate_mm1

LAMBDA, MU = 0.9, 1.0


def simpy_mm1(jobs: int, warmup: int, seed: int) -> float:
    """Mean wait in queue of the measured jobs (after ``warmup`` jobs), SimPy's way."""
    rng = random.Random(seed)
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    stats = {"started": 0, "wait_sum": 0.0, "measured": 0}
    total = jobs + warmup

    def job(env: simpy.Environment) -> object:
        arrived = env.now
        with server.request() as req:
            yield req
            stats["started"] += 1
            if stats["started"] > warmup:
                stats["wait_sum"] += env.now - arrived
                stats["measured"] += 1
            yield env.timeout(rng.expovariate(MU))

    def source(env: simpy.Environment) -> object:
        for _ in range(total):
            env.process(job(env))
            yield env.timeout(rng.expovariate(LAMBDA))

    env.process(source(env))
    env.run()
    return stats["wait_sum"] / stats["measured"]


def simpy_mm1_lean(jobs: int, warmup: int, seed: int) -> float:
    """The same queue with two processes (arrivals into a ``Store``, one server loop): SimPy's faster form."""
    rng = random.Random(seed)
    env = simpy.Environment()
    queue = simpy.Store(env)
    total = jobs + warmup
    stats = {"wait_sum": 0.0}

    def source(env: simpy.Environment) -> object:
        for _ in range(total):
            queue.put(env.now)
            yield env.timeout(rng.expovariate(LAMBDA))

    def server(env: simpy.Environment) -> object:
        for k in range(total):
            arrived = yield queue.get()
            if k >= warmup:
                stats["wait_sum"] += env.now - arrived
            yield env.timeout(rng.expovariate(MU))

    env.process(source(env))
    env.run(until=env.process(server(env)))
    return stats["wait_sum"] / jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000_000, help="jobs measured by memarena per repeat")
    parser.add_argument("--simpy-jobs", type=int, default=1_000_000, help="jobs measured by SimPy per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--simpy-reference", type=float, default=110_000.0, help="reference SimPy speed, jobs/s (the goal's figure)"
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    theory = mm1_mean_wait(LAMBDA, MU)
    assert theory is not None
    print(f"M/M/1, lambda={LAMBDA}, mu={MU} (rho={LAMBDA / MU}): theory W_q = {theory:.4f} s; one CPU")
    print(f"simpy {importlib.metadata.version('simpy')}, memarena {importlib.metadata.version('memarena')}")

    rows = []
    for name, jobs, run in (
        ("memarena", args.jobs, lambda seed, n: simulate_mm1(LAMBDA, MU, n, warmup_jobs=n // 100, seed=seed)),
        ("simpy", args.simpy_jobs, lambda seed, n: {"mean_wait_s": simpy_mm1(n, n // 100, seed)}),
        ("simpy_lean", args.simpy_jobs, lambda seed, n: {"mean_wait_s": simpy_mm1_lean(n, n // 100, seed)}),
    ):
        rates, waits = [], []
        for seed in range(args.repeats):
            t0 = time.perf_counter()
            out = run(seed, jobs)
            wall = time.perf_counter() - t0
            rates.append((jobs + jobs // 100) / wall)
            waits.append(out["mean_wait_s"])
            err = 100 * (out["mean_wait_s"] / theory - 1)
            print(f"  {name:<10} seed {seed}: W_q {out['mean_wait_s']:.4f} s ({err:+.2f}%), {rates[-1]:,.0f} jobs/s")
        rows.append((name, jobs, statistics.median(waits), statistics.median(rates)))

    print()
    print(f"{'engine':<11} {'jobs':>11} {'median W_q (s)':>15} {'vs theory':>10} {'median jobs/s':>15}")
    for name, jobs, wait, rate in rows:
        print(f"{name:<11} {jobs:>11,} {wait:>15.4f} {100 * (wait / theory - 1):>+9.2f}% {rate:>15,.0f}")
    fastest = max(rows[1:], key=lambda r: r[3])
    print(f"\nspeed ratio memarena / {fastest[0]} (the faster SimPy model, this run): {rows[0][3] / fastest[3]:.0f}x")
    print(
        f"speed ratio memarena / SimPy reference ({args.simpy_reference:,.0f} jobs/s): "
        f"{rows[0][3] / args.simpy_reference:.0f}x"
    )


if __name__ == "__main__":
    main()
