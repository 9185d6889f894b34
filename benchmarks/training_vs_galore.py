"""memarena's GaLore and 8-bit Adam against galore-torch's ``GaLoreAdamW`` and bitsandbytes' ``AdamW8bit``, in one run.

Same seed, model and data for both sides: the fixture-shaped ByteLlama
(``ByteLlamaConfig()``: dim 128, 4 layers, 4 heads, 2 KV heads, FFN 384,
byte vocabulary), seeded batches of random bytes, next-byte cross-entropy.
The two sides train two copies of the same initial model in lockstep: each
step runs forward and backward on one side then the other (which goes first
alternates every step), and only ``optimizer.step()`` is timed. One torch
thread, the process pinned to one CPU (``--cpu``); the load average is
printed before and after. Rows:

* **GaLore**, for each ``proj_type`` (std, reverse_std, left, right, full):
  memarena ``GaLore`` against ``galore_torch.GaLoreAdamW`` with the linear
  layers named ``attn``/``mlp`` projected (as GaLore's ``torchrun_main.py``),
  rank ``--rank``, ``update_proj_gap`` ``--gap``, scale 0.25, lr 1e-2,
  weight decay 0.1. After ``--steps`` steps: the largest absolute parameter
  difference (goal <= 1e-6).
* **8-bit**: memarena ``Adam8bit(block_size=256)`` against bitsandbytes
  ``AdamW8bit`` (blocks of 256 since bitsandbytes 0.44), lr 1e-3, each side
  on its own gradients, two rows: the peer as shipped (its native CPU
  quantizer floors small second-moment codes, see memarena's ``quant.py``;
  memarena rounds as the CUDA kernel), and the peer with its CPU quantizer
  swapped for bitsandbytes' own torch reference kernel plus the CUDA
  kernel's sign rule (``--cuda-rounding`` row; its time is the reference
  kernel's, not comparable). Printed: the largest parameter difference after
  ``--steps`` steps, and, against the peer as shipped, each step taken from
  the *same* parameters, states and gradient: the largest difference of the
  updated parameters and of the dequantized moments in units of the largest
  code gap times the block's absmax (<= 1: within bitsandbytes' own
  quantization error).
* **State bytes**: memarena's ``bytes_by_category()`` (from shapes) against
  the storage of every tensor the peer optimizer holds, found by walking its
  state (dicts, lists, object attributes: galore-torch's projector object
  and the whole SVD factor its ``ortho_matrix`` view keeps alive); a view
  counts its whole storage, once.
* **Time per step**: median (and mean, which includes the SVD refresh steps)
  of ``optimizer.step()`` over ``--steps x --repeats`` steps, and the ratio
  memarena / peer (goal <= 1.2).

Run::

    python benchmarks/training_vs_galore.py [--steps 100] [--repeats 3] [--rank 32] [--gap 10] [--cpu 0] \
        [--only galore,8bit]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from memarena.families.training.optimizers import Adam8bit, GaLore
from memarena.families.training.optimizers.galore import PROJ_TYPES
from memarena.families.training.optimizers.quant import bnb_cpu_quantize_as_cuda, code_step_error
from memarena.models import ByteLlama, ByteLlamaConfig

CONFIG = ByteLlamaConfig()  # the fixture's shape


def model(seed: int = 0) -> ByteLlama:
    torch.manual_seed(seed)
    return ByteLlama(CONFIG)


def batches(n: int, seed: int = 1, batch: int = 4, seq: int = 64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (batch, seq + 1), generator=g) for _ in range(n)]


def loss_of(m: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    logits = m(tokens[:, :-1])
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def held_tensors(obj: Any, skip: set[int]) -> Iterator[torch.Tensor]:
    """Every tensor reachable from ``obj`` through dicts, lists, tuples and object attributes, but ``skip``'s."""
    seen: set[int] = set()
    stack = [obj]
    while stack:
        x = stack.pop()
        if id(x) in seen or id(x) in skip:
            continue
        seen.add(id(x))
        if isinstance(x, torch.Tensor):
            yield x
        elif isinstance(x, dict):
            stack += list(x.values()) + [k for k in x if isinstance(k, torch.Tensor)]
        elif isinstance(x, list | tuple):
            stack += list(x)
        elif hasattr(x, "__dict__") and not isinstance(x, type) and not callable(x):
            stack += list(vars(x).values())


def storage_bytes(tensors: Iterator[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a view counts its whole storage, once)."""
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


def peer_state_bytes(opt: torch.optim.Optimizer, m: torch.nn.Module) -> int:
    params = {id(p) for p in m.parameters()} | {id(p.grad) for p in m.parameters() if p.grad is not None}
    return storage_bytes(held_tensors(opt.state, skip=params))


def lockstep(
    sides: list[tuple[torch.nn.Module, torch.optim.Optimizer]], data: list[torch.Tensor], times: list[list[float]]
) -> None:
    """Train every side on ``data``, one step each in turn (the first side alternates); time each ``step()``."""
    for i, tokens in enumerate(data):
        order = range(len(sides)) if i % 2 == 0 else reversed(range(len(sides)))
        for k in order:
            m, opt = sides[k]
            loss_of(m, tokens).backward()
            t0 = time.perf_counter()
            opt.step()
            times[k].append(time.perf_counter() - t0)
            opt.zero_grad(set_to_none=True)


def max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a.parameters(), b.parameters(), strict=True))


def galore_peer_groups(m: torch.nn.Module, rank: int, gap: int, proj_type: str) -> list[dict[str, Any]]:
    gal = [
        mod.weight for n, mod in m.named_modules() if isinstance(mod, torch.nn.Linear) and ("attn" in n or "mlp" in n)
    ]
    ids = {id(p) for p in gal}
    return [
        {"params": [p for p in m.parameters() if id(p) not in ids]},
        {"params": gal, "rank": rank, "update_proj_gap": gap, "scale": 0.25, "proj_type": proj_type},
    ]


def timing(times: list[list[float]]) -> tuple[float, float, float, float]:
    ours, peer = times
    return statistics.median(ours), statistics.median(peer), statistics.fmean(ours), statistics.fmean(peer)


def run(
    name: str,
    make_ours: Callable[[torch.nn.Module], Any],
    make_peer: Callable[[torch.nn.Module], torch.optim.Optimizer],
    args: argparse.Namespace,
) -> dict[str, Any]:
    times: list[list[float]] = [[], []]
    diff = 0.0
    ours_bytes = peer_bytes = 0
    for rep in range(args.repeats):
        ours, peer = model(), model()
        opt, peer_opt = make_ours(ours), make_peer(peer)
        lockstep([(ours, opt), (peer, peer_opt)], batches(args.steps, seed=1 + rep), times)
        if rep == 0:
            diff = max_diff(ours, peer)
            ours_bytes = sum(opt.bytes_by_category().values())
            peer_bytes = peer_state_bytes(peer_opt, peer)
    med_o, med_p, mean_o, mean_p = timing(times)
    return {
        "name": name,
        "max_abs_diff": diff,
        "ours_bytes": ours_bytes,
        "peer_bytes": peer_bytes,
        "median_ms": (med_o * 1e3, med_p * 1e3),
        "mean_ms": (mean_o * 1e3, mean_p * 1e3),
    }


@contextlib.contextmanager
def peer_cuda_rounding() -> Iterator[None]:
    import bitsandbytes.backends.cpu.ops as bnb_cpu

    shipped = bnb_cpu._quant_blockwise_fp32_direct
    bnb_cpu._quant_blockwise_fp32_direct = bnb_cpu_quantize_as_cuda
    try:
        yield
    finally:
        bnb_cpu._quant_blockwise_fp32_direct = shipped


def eight_bit_same_state_steps(steps: int) -> tuple[float, float]:
    """Against bitsandbytes as shipped, every step from the same parameters, states and gradient.

    Returns the largest parameter difference after any step and the largest moment difference in
    largest-code-gap x absmax units.
    """
    import bitsandbytes as bnb

    ours, peer = model(), model()
    opt = Adam8bit(lr=1e-3, block_size=256).make(ours.named_parameters())
    peer_opt = bnb.optim.AdamW8bit(peer.parameters(), lr=1e-3)
    worst_param = worst_code = 0.0
    for tokens in batches(steps):
        loss_of(peer, tokens).backward()
        for a, b in zip(ours.parameters(), peer.parameters(), strict=True):
            a.data.copy_(b.data)
            a.grad = b.grad.clone() if b.grad is not None else None
            t = peer_opt.state.get(b)
            if t and t["state1"].dtype == torch.uint8:
                s = opt.state[a]
                for key, q, absmax in (("exp_avg", "state1", "absmax1"), ("exp_avg_sq", "state2", "absmax2")):
                    s[key].copy_(t[q])
                    s[key + "_absmax"].copy_(t[absmax])
        opt.step()
        peer_opt.step()
        opt.zero_grad(set_to_none=True)
        peer_opt.zero_grad(set_to_none=True)
        worst_param = max(worst_param, max_diff(ours, peer))
        for a, b in zip(ours.parameters(), peer.parameters(), strict=True):
            s, t = opt.state[a], peer_opt.state[b]
            if t["state1"].dtype != torch.uint8:
                continue
            for key, q, absmax, code in (
                ("exp_avg", "state1", "absmax1", "qmap1"),
                ("exp_avg_sq", "state2", "absmax2", "qmap2"),
            ):
                err = code_step_error(s[key], s[key + "_absmax"], t[q], t[absmax], t[code], 256)
                worst_code = max(worst_code, err)
    return worst_param, worst_code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--gap", type=int, default=10)
    ap.add_argument("--cpu", type=int, default=0)
    ap.add_argument("--only", default="galore,8bit", help="comma-separated: galore, 8bit")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    versions = {k: importlib.metadata.version(k) for k in ("torch", "galore-torch", "bitsandbytes")}
    print(f"# {platform.processor() or platform.machine()}, {versions}, 1 thread on CPU {args.cpu}")
    print(f"# model ByteLlama{CONFIG}, batch 4 x 64 bytes, {args.steps} steps x {args.repeats} repeats")
    print(f"# loadavg before: {os.getloadavg()}")
    rows = []
    only = args.only.split(",")
    if "galore" in only:
        from galore_torch import GaLoreAdamW

        for proj_type in PROJ_TYPES:
            mine = GaLore(
                rank=args.rank, update_proj_gap=args.gap, scale=0.25, proj_type=proj_type, lr=1e-2, weight_decay=0.1
            )

            def peer(m: torch.nn.Module, pt: str = proj_type) -> torch.optim.Optimizer:
                groups = galore_peer_groups(m, args.rank, args.gap, pt)
                return GaLoreAdamW(groups, lr=1e-2, weight_decay=0.1, no_deprecation_warning=True)

            def ours(m: torch.nn.Module, g: GaLore = mine) -> Any:
                return g.make(m.named_parameters())

            rows.append(run(f"galore {proj_type}", ours, peer, args))
    if "8bit" in only:
        import bitsandbytes as bnb

        def ours8(m: torch.nn.Module) -> Any:
            return Adam8bit(lr=1e-3, block_size=256).make(m.named_parameters())

        def peer8(m: torch.nn.Module) -> torch.optim.Optimizer:
            return bnb.optim.AdamW8bit(m.parameters(), lr=1e-3)

        rows.append(run("adam8bit", ours8, peer8, args))
        with peer_cuda_rounding():
            rows.append(run("adam8bit (peer: CUDA rounding)", ours8, peer8, args))
    print(f"# loadavg after: {os.getloadavg()}")
    print()
    print(
        "| method | peer | max abs param diff | state bytes memarena / peer (ratio) "
        "| step ms median memarena / peer (ratio) | mean |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        peer_name = "bitsandbytes AdamW8bit" if r["name"].startswith("adam8bit") else "galore-torch GaLoreAdamW"
        mo, mp = r["median_ms"]
        ao, ap_ = r["mean_ms"]
        print(
            f"| {r['name']} | {peer_name} | {r['max_abs_diff']:.3g} | {r['ours_bytes']:,} / {r['peer_bytes']:,} "
            f"({r['ours_bytes'] / r['peer_bytes']:.3f}) | {mo:.3f} / {mp:.3f} (**{mo / mp:.2f}**) | "
            f"{ao:.3f} / {ap_:.3f} ({ao / ap_:.2f}) |"
        )
    if "8bit" in only:
        print()
        param_diff, code_diff = eight_bit_same_state_steps(args.steps)
        print(
            f"8-bit against bitsandbytes as shipped, each of {args.steps} steps from the same parameters, states "
            f"and gradient: largest parameter difference {param_diff:.3g}, largest moment difference "
            f"{code_diff:.3f} code gaps x absmax (<= 1: within quantization error)"
        )


if __name__ == "__main__":
    main()
