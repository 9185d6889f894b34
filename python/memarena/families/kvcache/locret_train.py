"""Train Locret's retaining heads on the fixture model: ``python -m memarena.families.kvcache.locret_train``.

Seeded and CPU-friendly (a few minutes). The model is frozen; each step
takes one window of the stdlib corpus's train split (``--context`` bytes
of context then ``--suffix`` bytes that follow), runs it with full
attention, and fits the heads' CIS for the context tokens to the labels of
the Locret code (github.com/huangyuxiang03/Locret, ``train/data_gen.py`` and
``train/train.py``):

* label of context token ``i`` at key/value head ``h`` = the largest
  attention it gets from any suffix query, over the query heads of ``h``'s
  group;
* loss = SmoothL1(CIS, label), averaged over layers, heads and tokens,
  + 0.0025 x sum over layers of MSE(CIS[t], CIS[t + 1]) (smoothness);
* AdamW (lr 5e-4, betas 0.9/0.95), linear warm-up over 2/3 of the steps
  then linear decay (the code's 2000 of 3000), gradient values clipped at
  0.5, batch of one window.

The model is :func:`memarena.models.load_fixture` when the fixture is
installed, else ``torch.manual_seed(0); ByteLlama()`` (random weights, for
the pipeline only; the card says which). Writes the heads (fp16) and their
card to ``python/memarena/families/kvcache/locret_heads.pt``.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from memarena.families.kvcache.cache import HeadwiseLayer, KVCache
from memarena.families.kvcache.methods.locret import HEADS_FILE, RetainingHeads, retaining_features
from memarena.models import ByteLlama, load_fixture
from memarena.models.bytellama import CacheSpec
from memarena.models.corpus import load_corpus

SMOOTH_WEIGHT = 0.0025


class _Recorder(HeadwiseLayer):
    """A full-attention layer that records the retaining heads' inputs and the attention of one forward."""

    needs_probs = True

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        assert probs is not None
        self.features = retaining_features(q, k, v, self.spec, self.positions(int(k.shape[1])))
        self.probs = torch.stack(probs)  # [n_kv, group, T, T]
        super().after_attention(q, k, v, probs)


@torch.no_grad()
def features_and_labels(
    model: ByteLlama, spec: CacheSpec, window: torch.Tensor, n_context: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer: the heads' inputs for the context tokens ``[C, in]`` and their labels ``[C, n_kv]``."""
    cache = KVCache([_Recorder(spec, i) for i in range(spec.n_layers)])
    model(window[None], cache)
    out = []
    for layer in cache.layers:
        assert isinstance(layer, _Recorder)
        p = layer.probs[:, :, n_context:, :n_context]  # suffix queries -> context keys
        label = p.amax(dim=(1, 2)).transpose(0, 1)  # max over the group's query heads and the queries
        out.append((layer.features[:n_context], label))
    return out


def loss_of(heads: RetainingHeads, batch: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """SmoothL1 to the labels (mean over layers, heads, tokens) + the smoothness term (the Locret code's loss)."""
    fit = torch.zeros(())
    smooth = torch.zeros(())
    for layer, (x, label) in enumerate(batch):
        cis = heads(layer, x)
        fit = fit + F.smooth_l1_loss(cis, label, reduction="sum")
        smooth = smooth + F.mse_loss(cis[:-1], cis[1:])
    n = sum(label.numel() for _, label in batch)
    return fit / n + SMOOTH_WEIGHT * smooth


def model_fingerprint(model: ByteLlama) -> str:
    """SHA-256 of the model's weights (fp16 bytes, in state-dict order): ties the heads to the model."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to(torch.float16).contiguous().numpy().tobytes())
    return h.hexdigest()


def train(
    steps: int, n_context: int, n_suffix: int, hidden: int, seed: int, lr: float = 5e-4
) -> tuple[RetainingHeads, dict[str, Any]]:
    """Train the heads; return them and their card."""
    torch.manual_seed(seed)
    try:
        model, which = load_fixture(), "fixture"
    except FileNotFoundError:
        torch.manual_seed(0)
        model, which = ByteLlama().eval(), "random ByteLlama (torch.manual_seed(0)): the fixture was not installed"
    model.requires_grad_(False)
    spec = CacheSpec.of(model.cfg, model.rope)
    length = n_context + n_suffix
    if length > model.cfg.max_seq_len:
        raise ValueError(f"--context + --suffix ({length}) exceeds the model's trained length {model.cfg.max_seq_len}")
    torch.manual_seed(seed)
    heads = RetainingHeads.for_spec(spec, hidden)
    opt = torch.optim.AdamW(heads.parameters(), lr=lr, betas=(0.9, 0.95))
    warmup = max(1, (2 * steps) // 3)

    def schedule(step: int) -> float:
        return (step + 1) / warmup if step < warmup else max(0.0, (steps - step) / max(1, steps - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    windows = load_corpus("train").windows(steps, length, seed)
    heldout = load_corpus("heldout").windows(16, length, seed + 1)
    t0 = time.perf_counter()
    for step, w in enumerate(windows):
        batch = features_and_labels(model, spec, torch.tensor(list(w)), n_context)
        loss = loss_of(heads, batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(heads.parameters(), 0.5)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {loss.item():.5f}  {time.perf_counter() - t0:.0f}s", flush=True)
    train_s = time.perf_counter() - t0
    card = {
        "shape": heads.shape,
        "model": which,
        "model_sha256": model_fingerprint(model),
        "corpus": "CPython stdlib .py, train split (memarena.models.corpus)",
        "steps": steps,
        "context_tokens": n_context,
        "suffix_tokens": n_suffix,
        "seed": seed,
        "lr": lr,
        "train_s": round(train_s, 1),
        "heldout": evaluate(model, spec, heads, heldout, n_context),
        "command": (
            f"python -m memarena.families.kvcache.locret_train --steps {steps} --context {n_context} "
            f"--suffix {n_suffix} --hidden {hidden} --seed {seed}"
        ),
    }
    return heads, card


@torch.no_grad()
def evaluate(
    model: ByteLlama, spec: CacheSpec, heads: RetainingHeads, windows: list[bytes], n_context: int
) -> dict[str, float]:
    """Held-out loss, and the overlap of the top 10% by CIS with the top 10% by label (the code's ``acc``)."""
    losses, hits, total = [], 0, 0
    for w in windows:
        batch = features_and_labels(model, spec, torch.tensor(list(w)), n_context)
        losses.append(float(loss_of(heads, batch)))
        for layer, (x, label) in enumerate(batch):
            cis = heads(layer, x)
            k = max(1, int(0.1 * n_context))
            for h in range(label.shape[1]):
                top_cis = set(torch.topk(cis[:, h], k).indices.tolist())
                top_label = set(torch.topk(label[:, h], k).indices.tolist())
                hits += len(top_cis & top_label)
                total += k
    return {"loss": sum(losses) / len(losses), "top10_overlap": hits / total}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--context", type=int, default=768, help="context bytes per window")
    ap.add_argument("--suffix", type=int, default=256, help="bytes after the context whose queries give the labels")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name(HEADS_FILE))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    heads, card = train(a.steps, a.context, a.suffix, a.hidden, a.seed)
    state = {k: v.detach().to(torch.float16).clone() for k, v in heads.state_dict().items()}
    torch.save({"state_dict": state, "meta": card}, a.out)
    print(f"wrote {a.out} ({a.out.stat().st_size} bytes); held-out: {card['heldout']}")
    if not math.isfinite(card["heldout"]["loss"]):
        raise SystemExit("training diverged (non-finite held-out loss)")


if __name__ == "__main__":
    main()
