"""SnapKV -> ThinK: SnapKV's token selection at prefill, then ThinK's key-channel pruning of what it kept.

As the official ThinK code composes them (SalesforceAIResearch/ThinK,
``SnapKVCluster.update_thinkv``): SnapKV (arXiv 2404.14469) keeps the prefix
tokens its observation window votes for plus the window; ThinK (arXiv
2407.21018) then scores the key channels on the kept keys and the window's
queries and compacts every kept key but the ``recent_tokens`` most recent
(:class:`~memarena.families.kvcache.methods.think.ThinkStore`). Decoded
tokens are appended whole (neither method touches them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from memarena.api import KVCompression, param
from memarena.families.kvcache.cache import HeadStore
from memarena.families.kvcache.methods.budgets import HEAD_BUDGETS, LAYER_BUDGETS
from memarena.families.kvcache.methods.selection import layer_fraction
from memarena.families.kvcache.methods.snapkv import POOLINGS, SnapKVLayer
from memarena.families.kvcache.methods.think import ThinkStore, prune_heads
from memarena.lazy import torch

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = ["SnapKVThink", "SnapKVThinkLayer"]


class SnapKVThinkLayer(SnapKVLayer):
    """SnapKV's prefill selection, then ThinK's channel pruning of the kept keys (same observation window)."""

    def __init__(
        self,
        spec: CacheSpec,
        layer: int,
        fraction: float,
        *,
        pruning_ratio: float,
        recent_tokens: int,
        window_tokens: int,
        kernel_tokens: int,
        pooling: str,
        head_budget: str,
    ) -> None:
        store: Callable[[int], HeadStore] = lambda h: ThinkStore(spec.head_dim, recent_tokens, spec.dtype)  # noqa: E731
        super().__init__(
            spec,
            layer,
            fraction,
            window_tokens=window_tokens,
            kernel_tokens=kernel_tokens,
            pooling=pooling,
            head_budget=head_budget,
            store=store,
        )
        self.pruning_ratio = pruning_ratio

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        prefill = self.seen == 0
        super().after_attention(q, k, v, probs)
        if prefill:
            prune_heads(self, q, self.pruning_ratio, self.window_tokens)


class SnapKVThink(KVCompression):
    """SnapKV -> ThinK: SnapKV keeps the voted prefix and the window at prefill; ThinK prunes their key channels."""

    name: ClassVar[str] = "snapkv_think"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.snapkv_think.SnapKVThink"
        #: Observation window (SnapKV's voters, ThinK's channel-scoring queries); kept whole by SnapKV.
        window_tokens: int = param(32, ge=1)
        #: SnapKV: pooling kernel over the votes, tokens.
        kernel_tokens: int = param(7, ge=1)
        #: SnapKV: max or avg pooling.
        pooling: str = param("max", choices=POOLINGS)
        #: SnapKV: budget over layers, uniform or pyramid (PyramidKV).
        layer_budget: str = param("uniform", choices=LAYER_BUDGETS)
        #: SnapKV: budget over the heads of a layer, uniform or adaptive (Ada-KV).
        head_budget: str = param("uniform", choices=HEAD_BUDGETS)
        #: ThinK lambda: fraction of key channels pruned.
        pruning_ratio: float = param(0.4, ge=0.0, lt=1.0)
        #: ThinK: most recent kept keys left at full width (official recent_size: 32).
        recent_tokens: int = param(32, ge=0)

    def new_layer(self, spec: CacheSpec, layer: int, budget: float) -> SnapKVThinkLayer:
        return SnapKVThinkLayer(
            spec,
            layer,
            layer_fraction(self.layer_budget, budget, spec.n_layers, layer),
            pruning_ratio=self.pruning_ratio,
            recent_tokens=self.recent_tokens,
            window_tokens=self.window_tokens,
            kernel_tokens=self.kernel_tokens,
            pooling=self.pooling,
            head_budget=self.head_budget,
        )
