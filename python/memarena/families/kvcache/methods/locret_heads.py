"""Locret's retaining heads, the trained model it scores tokens with (see :mod:`.locret`).

An ``nn.Module`` subclass, so defining it imports torch: it lives apart from
the method's component, which registers without torch, and is imported
where it is used (``from memarena.families.kvcache.methods.locret import
RetainingHeads`` works too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = ["RetainingHeads"]


class RetainingHeads(nn.Module):
    """One retaining head per layer: ``Linear(in, hidden) -> SiLU -> Linear(hidden, n_kv_heads)``, no biases.

    ``in`` = ``(n_heads + 2 n_kv_heads) x head_dim``: a token's queries, keys
    and values, concatenated in that order.
    """

    def __init__(self, n_layers: int, n_heads: int, n_kv_heads: int, head_dim: int, hidden: int) -> None:
        super().__init__()
        self.shape = {
            "n_layers": n_layers,
            "n_heads": n_heads,
            "n_kv_heads": n_kv_heads,
            "head_dim": head_dim,
            "hidden": hidden,
        }
        d_in = (n_heads + 2 * n_kv_heads) * head_dim
        self.fc1 = nn.ModuleList(nn.Linear(d_in, hidden, bias=False) for _ in range(n_layers))
        self.fc2 = nn.ModuleList(nn.Linear(hidden, n_kv_heads, bias=False) for _ in range(n_layers))

    @classmethod
    def for_spec(cls, spec: CacheSpec, hidden: int) -> RetainingHeads:
        return cls(spec.n_layers, spec.n_heads, spec.n_kv_heads, spec.head_dim, hidden)

    def forward(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """CIS ``[T, n_kv_heads]`` of features ``x`` ``[T, in]`` (:func:`retaining_features`) at ``layer``."""
        return self.fc2[layer](F.silu(self.fc1[layer](x)))
