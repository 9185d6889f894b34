"""Driving the fixture model over a compressed cache: prefill (whole or chunked), decoding, scoring.

:func:`prefill` is :mod:`memarena.families.kvcache.prefill`'s (re-exported).

Shared by the ``kvcache`` family's runner and by any method or benchmark
that needs the same steps (Locret's chunked prefill under a fixed budget,
the kvpress comparison). Every function expects to run under
``torch.inference_mode()`` (or ``no_grad``); it does not switch it on
itself, so a caller times exactly the model's work.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from memarena.families.kvcache.prefill import prefill

if TYPE_CHECKING:
    from memarena.families.kvcache.cache import KVCache
    from memarena.models.bytellama import ByteLlama, KVCacheLike

__all__ = ["as_tokens", "decode_step", "greedy", "next_byte_scores", "prefill", "prefill_next"]


def as_tokens(data: bytes) -> torch.Tensor:
    """``data`` as an int64 token tensor ``[len(data)]`` (the model's tokens are bytes)."""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).to(torch.int64)


def prefill_next(
    model: ByteLlama, tokens: torch.Tensor, cache: KVCache, chunk_tokens: int | None = None
) -> torch.Tensor:
    """:func:`~memarena.families.kvcache.prefill.prefill` (the cache told the context's length, chunked where
    ``chunk_tokens`` is set), keeping only the next-token logits ``[vocab]`` (float32)."""
    return prefill(model, tokens, cache, chunk_tokens)[0, -1].float()


def decode_step(model: ByteLlama, token: int, cache: KVCacheLike) -> torch.Tensor:
    """Feed one token; return the next-token logits ``[vocab]`` (float32)."""
    hidden = model.hidden(torch.tensor([[token]], dtype=torch.int64), cache)
    return model.lm_head(hidden[0, -1]).float()


def greedy(model: ByteLlama, cache: KVCacheLike, logits: torch.Tensor, n_tokens: int) -> bytes:
    """Greedy decoding of ``n_tokens`` bytes from ``logits`` (the prefill's), feeding each choice back."""
    out = bytearray()
    for i in range(n_tokens):
        tok = int(logits.argmax())
        out.append(tok)
        if i + 1 < n_tokens:
            logits = decode_step(model, tok, cache)
    return bytes(out)


def next_byte_scores(
    logits: torch.Tensor, ref_logits: torch.Tensor, targets: torch.Tensor
) -> tuple[float, float, float]:
    """Sums over positions of (bits of the true byte, KL(ref || logits) in bits, argmax agreements).

    :param logits: ``[n, vocab]`` next-byte logits on the compressed cache.
    :param ref_logits: ``[n, vocab]`` the full cache's logits at the same positions.
    :param targets: ``[n]`` the true next bytes.
    """
    logp = torch.log_softmax(logits.double(), dim=-1)
    ref_logp = torch.log_softmax(ref_logits.double(), dim=-1)
    nll_nats = -logp.gather(-1, targets[:, None]).sum()
    kl_nats = (ref_logp.exp() * (ref_logp - logp)).sum()
    agree = (logits.argmax(-1) == ref_logits.argmax(-1)).sum()
    return float(nll_nats) / math.log(2), float(kl_nats) / math.log(2), float(agree)
