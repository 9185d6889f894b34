"""Shared helpers of the kvcache tests: a tiny spec, constructed attention, the bytes check."""

from __future__ import annotations

import torch

from memarena.families.kvcache.cache import KVCache, held_tensors, storage_bytes
from memarena.models import CacheSpec
from memarena.models.bytellama import ByteLlama, Rope

BIG = 40.0  # a query channel of 40 against a key channel of 1, scaled by 1/sqrt(4): logit 20 (e^-20 ~ 2e-9)


def tiny_spec(n_heads: int = 1, n_kv_heads: int = 1, head_dim: int = 4) -> CacheSpec:
    return CacheSpec(
        n_layers=1,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        head_dim=head_dim,
        rope=Rope(head_dim, 10000.0),
        max_seq_len=1024,
    )


def onehot_keys(n: int, marks: dict[int, int], d: int = 4) -> torch.Tensor:
    """``[n, d]`` keys: token ``i`` has a 1 in channel ``marks[i]`` (others all zero)."""
    k = torch.zeros(n, d)
    for i, c in marks.items():
        k[i, c] = 1.0
    return k


def query(channel: int | None, d: int = 4) -> torch.Tensor:
    """A query ``[d]`` of ``BIG`` on ``channel`` (None: zero, i.e. uniform attention)."""
    q = torch.zeros(d)
    if channel is not None:
        q[channel] = BIG
    return q


def bytes_match(cache: KVCache) -> tuple[int, int]:
    """(reported bytes, storage bytes of every tensor the cache holds)."""
    return cache.total_bytes(), sum(storage_bytes(t) for t in held_tensors(cache))


def model_and_tokens(n: int, seed: int = 0) -> tuple[ByteLlama, torch.Tensor]:
    torch.manual_seed(seed)
    model = ByteLlama().eval()
    g = torch.Generator().manual_seed(seed + 1)
    return model, torch.randint(0, 256, (n,), generator=g)


def run(model: ByteLlama, cache: KVCache, tokens: torch.Tensor, n_prefill: int) -> torch.Tensor:
    """Logits of the prefill's last token and of each decoded token ``[1 + n_decode, vocab]``."""
    out = []
    with torch.no_grad():
        out.append(model(tokens[None, :n_prefill], cache)[0, -1])
        for t in range(n_prefill, len(tokens)):
            out.append(model(tokens[None, t : t + 1], cache)[0, -1])
    return torch.stack(out)


def run_method(
    method: object, tokens: torch.Tensor, model: ByteLlama, prefill: int, budget: float = 1.0
) -> tuple[torch.Tensor, KVCache]:
    """A fresh cache of ``method``: logits of every token ``[T, vocab]`` (the prefill's, then one per decoded
    token of ``tokens [1, T]``) and the cache."""
    spec = CacheSpec.of(model.cfg, model.rope)
    cache = method.new_cache(spec, budget)  # type: ignore[attr-defined]
    outs = [model(tokens[:, :prefill], cache)[0]]
    for t in range(prefill, tokens.shape[1]):
        outs.append(model(tokens[:, t : t + 1], cache)[0])
    return torch.cat(outs), cache
