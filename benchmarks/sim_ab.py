"""A/B speed of two builds of the serving simulator, interleaved.

The shared machines here change speed by up to 2x within minutes, so two
builds timed one after the other compare the machine, not the code. This
runs the ``azure_trace`` example of build A and build B alternately (ABBA
order), each time as the best of 3 wall-clock runs of one manager on the
Azure conv trace, and prints each build's median and, per pair, B's speed
over A's: the median ratio and how many pairs B won. Prints, never asserts.

Build the two versions into separate target directories, e.g.::

    git worktree add ../memarena-a main
    (cd ../memarena-a && CARGO_TARGET_DIR=$PWD/target/a cargo build --release -p memarena-sim --example azure_trace)
    CARGO_TARGET_DIR=target/b cargo build --release -p memarena-sim --example azure_trace
    python benchmarks/sim_ab.py target/a target/b --manager paged_16_v0cache
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys


def best_of_3(target_dir: str, manager: str, scale: str, cpu: str) -> float:
    exe = os.path.join(target_dir, "release", "examples", "azure_trace")
    cmd = ["taskset", "-c", cpu, exe, scale, manager, "3"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "MEMARENA_CLOCK": "wall"})
    rows = [line for line in out.stdout.splitlines() if line.startswith(manager)]
    if not rows:
        sys.exit(f"{exe}: no row for {manager!r} (trace missing? {out.stdout.strip()[:200]})")
    return float(rows[-1].split()[1].split("/")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="target directory of build A")
    parser.add_argument("b", help="target directory of build B")
    parser.add_argument("--manager", default="paged_16_v0cache", help="an azure_trace preset name")
    parser.add_argument("--time-scale", default="1")
    parser.add_argument("--pairs", type=int, default=25)
    parser.add_argument("--cpu", default="1", help="CPU to pin to")
    args = parser.parse_args()
    speed: dict[str, list[float]] = {args.a: [], args.b: []}
    for i in range(args.pairs):
        for t in (args.a, args.b) if i % 2 == 0 else (args.b, args.a):
            speed[t].append(best_of_3(t, args.manager, args.time_scale, args.cpu))
    ratios = [b / a for a, b in zip(speed[args.a], speed[args.b], strict=True)]
    print(f"{args.manager}, time scale {args.time_scale}, {args.pairs} pairs of best-of-3 wall-clock runs")
    for t in (args.a, args.b):
        print(f"  {t}: median {statistics.median(speed[t]):,.0f} requests/s")
    wins = sum(r > 1 for r in ratios)
    print(f"  B / A: median ratio {statistics.median(ratios):.3f}, B faster in {wins} of {len(ratios)} pairs")


if __name__ == "__main__":
    main()
