"""Simulation speed of the serving model: the whole Azure conversation trace per KV manager.

Replays the shipped trace (19,366 requests, timestamps kept) with Llama-3-8B
on one H100 SXM once per KV manager preset, and prints requests simulated
per CPU-second (``time.process_time``; the simulation runs in Rust with the
GIL released, on one thread) as the median and best of the repeats, with
the run's throughput and token-state share so that the numbers belong to a
real run. The repeats go round robin over the managers, so that the
machine's drifts in speed reach them alike. ``--time-scale 8`` replays the
trace 8x faster (the default experiment's load). Prints, never asserts.

Run with a release build::

    maturin develop --release
    python benchmarks/serving_speed.py [--repeats 5] [--time-scale 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from memarena.backends import H100_SXM
from memarena.families.serving import Hardware, ModelSpec, PagedKV, StaticKV, VAttentionKV, read_azure_csv, simulate
from memarena.families.serving.workloads import azure_conv_path

MANAGERS = {
    "static_max": StaticKV(variant="max"),
    "static_pow2": StaticKV(variant="pow2"),
    "static_oracle": StaticKV(variant="oracle"),
    "paged": PagedKV(),
    "paged_prefix_v0": PagedKV(prefix_caching="v0"),
    "paged_prefix_v1": PagedKV(prefix_caching="v1"),
    "vattention_2mb": VAttentionKV(page_size_bytes=2 * 2**20),
    "vattention_64kb": VAttentionKV(page_size_bytes=64 * 2**10),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--time-scale", type=float, default=1.0, help="divide arrival times (8: 8x the load)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    requests = read_azure_csv(azure_conv_path()).time_scaled(args.time_scale)
    hw = Hardware.from_backend(H100_SXM())
    model = ModelSpec.builtin("llama3_8b")
    n = len(requests)
    print(
        f"Azure LLM 2023 conv trace: {n:,} requests, {requests.span_s:,.0f} s of arrivals "
        f"(time scale {args.time_scale:g})"
    )
    print(f"llama3_8b on h100_sxm; {args.repeats} repeats, one CPU; requests per CPU-second of simulate()\n")
    print(
        f"{'kv_manager':<17} {'median req/cpu-s':>17} {'best req/cpu-s':>15} {'req/s served':>13} {'token share':>12}"
    )
    # Round robin over the managers, so that the machine's drifts in speed
    # (up to 2x within minutes on a shared host) reach every manager alike.
    cpu: dict[str, list[float]] = {name: [] for name in MANAGERS}
    reports = {}
    for _ in range(args.repeats):
        for name, kv in MANAGERS.items():
            t0 = time.process_time()
            reports[name] = simulate(requests, model=model, hardware=hw, kv_manager=kv)
            cpu[name].append(max(time.process_time() - t0, 1e-9))
    medians = []
    for name, times in cpu.items():
        med, best = n / statistics.median(times), n / min(times)
        medians.append(med)
        rep = reports[name]
        print(
            f"{name:<17} {med:>17,.0f} {best:>15,.0f} {rep.throughput_requests_per_s:>13.2f} "
            f"{rep.row()['token_states_share_of_used']:>12.3f}"
        )
    print(f"\nslowest manager (median): {min(medians):,.0f} requests per CPU-second")


if __name__ == "__main__":
    main()
