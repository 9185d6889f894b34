"""Prefill a context into a :class:`~memarena.families.kvcache.KVCache`, whole or chunk by chunk."""

from __future__ import annotations

import torch

from memarena.families.kvcache.cache import KVCache
from memarena.models.bytellama import ByteLlama

__all__ = ["prefill"]


@torch.no_grad()
def prefill(model: ByteLlama, tokens: torch.Tensor, cache: KVCache, chunk_tokens: int | None = None) -> torch.Tensor:
    """Run ``tokens`` (``[T]`` or ``[1, T]`` byte ids) through ``model`` into ``cache``; return logits ``[1, T, V]``.

    The cache is first told the context's length (:meth:`KVCache.begin_prefill`).
    With ``chunk_tokens`` (a method's
    :attr:`~memarena.api.KVCompression.prefill_chunk_tokens`), the context goes
    in forwards of at most that many tokens, each attending to what the cache
    kept of the earlier ones (Locret's chunked prefill); ``None``: one forward.

    :raises ValueError: ``chunk_tokens`` < 1, or not one sequence.
    """
    if tokens.dim() == 1:
        tokens = tokens[None]
    if tokens.dim() != 2 or tokens.shape[0] != 1:
        raise ValueError(f"prefill takes one sequence ([T] or [1, T]); got shape {tuple(tokens.shape)}")
    n = int(tokens.shape[1])
    if chunk_tokens is not None and chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    step = n if chunk_tokens is None else chunk_tokens
    cache.begin_prefill(n)
    logits = [model(tokens[:, s : s + step], cache) for s in range(0, n, max(step, 1))]
    return torch.cat(logits, dim=1)
