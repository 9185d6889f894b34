"""Quality of a :class:`~memarena.models.bytellama.ByteLlama` on the held-out split, without a KV cache.

* :func:`heldout_bits_per_byte` — next-byte cross-entropy in bits, averaged
  over every predicted position of seeded held-out windows;
* :func:`needle_accuracy` — the fraction of seeded needle probes
  (:func:`~memarena.models.corpus.needle_probe`) whose value the model
  reproduces exactly by greedy decoding after the prompt.

Both run the model's training path (full causal attention over the whole
window: the "full cache"), in eval mode and without gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from memarena.models.bytellama import ByteLlama
from memarena.models.corpus import load_corpus, needle_probe

__all__ = ["BitsPerByte", "heldout_bits_per_byte", "heldout_bits_per_byte_stats", "needle_accuracy"]

_LN2 = math.log(2.0)


def _tensor(seqs: list[bytes]) -> torch.Tensor:
    return torch.tensor([list(s) for s in seqs], dtype=torch.long)


@dataclass(frozen=True)
class BitsPerByte:
    """Held-out bits/byte and the spread of its per-window values."""

    mean: float
    #: Standard deviation of the per-window bits/byte (the mean's standard error is ``std / sqrt(n_windows)``).
    window_std: float
    n_windows: int
    n_predicted_bytes: int


@torch.no_grad()
def heldout_bits_per_byte_stats(
    model: ByteLlama, n_windows: int, length: int, seed: int, batch_size: int = 8
) -> BitsPerByte:
    """:func:`heldout_bits_per_byte` with the per-window spread."""
    if n_windows < 1 or length < 2:
        raise ValueError(f"need n_windows >= 1 and length >= 2, got {n_windows}, {length}")
    was_training = model.training
    model.eval()
    windows = load_corpus("heldout").windows(n_windows, length, seed)
    per_window: list[float] = []
    for i in range(0, n_windows, batch_size):
        x = _tensor(windows[i : i + batch_size])
        logits = model(x[:, :-1]).float()
        nll = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")  # [B, T-1], nats
        per_window.extend((nll.mean(dim=1) / _LN2).tolist())
    model.train(was_training)
    mean = sum(per_window) / len(per_window)
    var = sum((b - mean) ** 2 for b in per_window) / max(1, len(per_window) - 1)
    return BitsPerByte(mean, math.sqrt(var), n_windows, n_windows * (length - 1))


def heldout_bits_per_byte(model: ByteLlama, n_windows: int, length: int, seed: int) -> float:
    """Mean next-byte cross-entropy in bits over all predicted positions (``length - 1`` per window) of
    ``n_windows`` seeded windows of ``length`` bytes of ``load_corpus("heldout")``."""
    return heldout_bits_per_byte_stats(model, n_windows, length, seed).mean


@torch.no_grad()
def needle_accuracy(model: ByteLlama, n: int, length: int = 1024, seed: int = 0, batch_size: int = 8) -> float:
    """Fraction of ``n`` seeded :func:`needle_probe` probes (on the held-out code, ``length`` bytes) whose
    value bytes greedy decoding after the prompt reproduces exactly.

    Greedy decoding of ``len(answer)`` bytes reproduces the answer exactly if and only if, with the answer
    fed in, the argmax after the prompt and after each answer prefix is the next answer byte (as long as
    every step matched, greedy decoding has fed in exactly that prefix). So one forward over
    ``prompt + answer[:-1]`` per probe decides it; all probes of one length are batched.
    """
    if n < 1:
        raise ValueError(f"need n >= 1 probes, got {n}")
    was_training = model.training
    model.eval()
    probes = needle_probe(load_corpus("heldout"), n, length, seed)
    hits = 0
    for i in range(0, n, batch_size):
        chunk = probes[i : i + batch_size]
        by_len: dict[int, list[int]] = {}
        for j, p in enumerate(chunk):
            by_len.setdefault(len(p.prompt) + len(p.answer), []).append(j)
        for idx in by_len.values():
            x = _tensor([chunk[j].prompt + chunk[j].answer for j in idx])
            pred = model(x[:, :-1]).argmax(dim=-1)  # pred[:, t] predicts x[:, t + 1]
            for row, j in enumerate(idx):
                p = chunk[j]
                start = len(p.prompt) - 1
                got = bytes(pred[row, start : start + len(p.answer)].tolist())
                hits += got == p.answer
    model.train(was_training)
    return hits / n
