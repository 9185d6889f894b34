"""A tiny seeded ByteLlama and its data, and a walk over the tensors an optimizer holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from memarena.models import ByteLlama, ByteLlamaConfig

#: Small enough for 100 steps in well under a second; both matrix orientations (gate 64x32, down 32x64).
TINY = ByteLlamaConfig(dim=32, n_layers=1, n_heads=2, n_kv_heads=1, ffn_dim=64, max_seq_len=64)


def tiny_model(seed: int = 0) -> ByteLlama:
    torch.manual_seed(seed)
    return ByteLlama(TINY)


def batches(n: int, seed: int = 1, batch: int = 2, seq: int = 16) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (batch, seq + 1), generator=g) for _ in range(n)]


def loss_of(model: ByteLlama, tokens: torch.Tensor) -> torch.Tensor:
    logits = model(tokens[:, :-1])
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def train(model: ByteLlama, opt: Any, data: list[torch.Tensor], before_step: Callable[[], None] | None = None) -> None:
    for tokens in data:
        loss_of(model, tokens).backward()
        opt.step()
        opt.zero_grad()


def held_tensors(obj: Any, skip: set[int], seen: set[int] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor reachable from ``obj`` (dicts, lists, tuples, object attributes), with its path.

    Tensors whose id is in ``skip`` (the parameters) and their gradients are left out.
    """
    seen = set() if seen is None else seen
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, x = stack.pop()
        if id(x) in seen or id(x) in skip:
            continue
        seen.add(id(x))
        if isinstance(x, torch.Tensor):
            yield path, x
        elif isinstance(x, dict):
            stack += [(f"{path}/{k if isinstance(k, str) else type(k).__name__}", v) for k, v in x.items()]
            stack += [(f"{path}/<key>", k) for k in x if isinstance(k, torch.Tensor)]
        elif isinstance(x, list | tuple):
            stack += [(f"{path}[{i}]", v) for i, v in enumerate(x)]
        elif hasattr(x, "__dict__") and not isinstance(x, type) and not callable(x):
            stack += [(f"{path}.{k}", v) for k, v in vars(x).items()]


def storage_bytes(tensors: list[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a view counts its whole storage, once)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())
