"""The kvcache family's memory estimate (:meth:`memarena.api.Family.estimate_memory`).

A run holds the model (float32 weights), two KV caches of one sequence at a
time (the full-cache reference and the method's; counted at twice the fp16
full cache each, room for a method's scores, residual windows and the
float32 copies attention reads), the attention working set of the longest
forward (per key/value head: scores, their concatenation and softmax,
``group x T x T`` float32 each, and the MLP's ``T x ffn`` activations), and
the next-byte logits of the continuation (reference and method, float32).
The text it draws windows from (the held-out stdlib split: a few MB) is
not counted.
"""

from __future__ import annotations

from typing import Any

from memarena.api import MemoryEstimate

__all__ = ["estimate", "model_bytes"]


def model_bytes(cfg: Any) -> int:
    """Float32 bytes of a ByteLlama's weights (``cfg``: a ``ByteLlamaConfig``)."""
    hd = cfg.head_dim
    attn = 2 * cfg.dim * cfg.n_heads * hd + 2 * cfg.dim * cfg.n_kv_heads * hd
    layer = attn + 3 * cfg.dim * cfg.ffn_dim + 2 * cfg.dim
    return 4 * (2 * cfg.vocab_size * cfg.dim + cfg.n_layers * layer + cfg.dim)


def estimate(family: Any, cfg: Any) -> MemoryEstimate:
    """The run's peak, from the family's config and the model's shape ``cfg``."""
    t = max(int(family.context_tokens) + int(family.continuation_tokens), int(family.needle_length))
    full_per_token = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * 2
    caches = 2 * 2 * full_per_token * t
    attention = 4 * (cfg.n_heads * t * t * 4) + 4 * t * cfg.ffn_dim * 4
    logits = 2 * int(family.continuation_tokens) * cfg.vocab_size * 4 * int(family.n_windows)
    weights = model_bytes(cfg)
    total = weights + caches + attention + logits
    keys = ("family.context_tokens", "family.continuation_tokens", "family.needle_length", "family.n_windows")
    detail = (
        f"{weights:.3g} B of weights + 2 caches x 2 x {full_per_token} B x {t} tokens"
        f" + attention 4 x {cfg.n_heads} heads x {t}^2 x 4 B + logits"
    )
    return MemoryEstimate(bytes=total, keys=keys, detail=detail)
