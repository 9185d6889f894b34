"""SnapKV: an observation window's attention, pooled, picks the prefix tokens kept at prefill
(Li et al. 2024, arXiv 2404.14469)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from memarena.api import KVCompression, param
from memarena.families.kvcache.cache import HeadStore
from memarena.families.kvcache.methods.budgets import HEAD_BUDGETS, LAYER_BUDGETS, adaptive_head_budgets
from memarena.families.kvcache.methods.selection import SelectionLayer, layer_fraction
from memarena.lazy import F, torch

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = ["POOLINGS", "SnapKV", "SnapKVLayer"]

#: ``pooling`` choices.
POOLINGS = ("max", "avg")


class SnapKVLayer(SelectionLayer):
    """One layer of SnapKV.

    Paper, Sec. 4.2 / Listing 1: "the attention weights of the observation
    window" (its last ``window`` queries) over the prefix are "summed over
    the observation window" into a vote per prefix token; a 1-D pooling
    ("clustering") smooths the votes; the top ``budget - window`` prefix
    tokens by pooled vote are kept together with the window itself. Done
    once, at prefill; decoding appends (the paper compresses the prompt).

    * The votes are the attention probabilities the layer computed for the
      whole prefill (softmax over the prefix and the causal window, as
      SnapKV's code), summed over the window's queries and over the
      ``group`` query heads sharing a key/value head (GQA). kvpress's
      ``SnapKVPress`` averages instead of summing (same ranking) but pads
      the pooling the same way; its defaults are ``window_size=64``,
      ``kernel_size=5`` with average pooling, while the defaults here are
      those of SnapKV's LongBench scripts (window 32, kernel 7, max pooling);
      with the same three settings the kept sets agree up to ties.
    * If the budget is smaller than the window, the last ``budget`` window
      tokens are kept and no prefix token.
    * ``head_budget = adaptive`` (Ada-KV): the layer's prefix budget
      (``n_kv_heads * (budget - window)``) is allocated over heads by the
      pooled votes jointly; storage is ragged.
    """

    needs_probs = True

    def __init__(
        self,
        spec: CacheSpec,
        layer: int,
        fraction: float,
        *,
        window_tokens: int = 32,
        kernel_tokens: int = 7,
        pooling: str = "max",
        head_budget: str = "uniform",
        store: Callable[[int], HeadStore] | None = None,
    ) -> None:
        super().__init__(spec, layer, fraction, head_budget=head_budget, store=store)
        self.window_tokens = window_tokens
        self.kernel_tokens = kernel_tokens
        self.pooling = pooling

    def probs_queries(self, t: int) -> int:
        """Only the observation window's rows, and only at prefill (the output keeps the batched path)."""
        if self.unlimited or self.head_budgets_tokens is not None:
            return 0
        n = sum(len(s) for s in self.heads[:1]) + t
        return min(self.window_tokens, n - 1)

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        self.append_all(k, v)
        if self.unlimited or self.head_budgets_tokens is not None:
            return  # decoding appends
        assert probs is not None
        n = len(self.heads[0])
        budget = max(1, min(n, round(self.fraction * n)))
        self.head_budgets_tokens = [budget] * len(self.heads)
        self.needs_probs = False
        if n <= budget:
            return
        w = min(self.window_tokens, n - 1)
        prefix = n - w
        votes = [self.votes(p[:, -w:, :prefix]) for p in probs]
        keep_window = min(w, budget)
        if self.head_budget == "adaptive":
            per_head = adaptive_head_budgets(votes, len(self.heads) * (budget - keep_window))
        else:
            per_head = [budget - keep_window] * len(self.heads)
        for h, store in enumerate(self.heads):
            top = torch.topk(votes[h], per_head[h]).indices.sort().values
            store.keep(torch.cat([top, torch.arange(n - keep_window, n)]))
            self.head_budgets_tokens[h] = per_head[h] + keep_window

    def votes(self, window_probs: torch.Tensor) -> torch.Tensor:
        """Pooled votes ``[prefix]`` from one head's ``[group, window, prefix]`` attention."""
        summed = window_probs.sum(dim=(0, 1))[None, None]
        pad = self.kernel_tokens // 2
        if self.pooling == "max":
            pooled = F.max_pool1d(summed, self.kernel_tokens, stride=1, padding=pad)
        else:
            pooled = F.avg_pool1d(summed, self.kernel_tokens, stride=1, padding=pad)
        return pooled[0, 0, : summed.shape[-1]]


class SnapKV(KVCompression):
    """SnapKV (Li et al. 2024, arXiv 2404.14469): at prefill, keep the prefix tokens the observation
    window attends to most (pooled) and the window; decoding appends."""

    name: ClassVar[str] = "snapkv"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.snapkv.SnapKV"
        #: Observation window: the last this many prefill tokens vote (and are kept).
        window_tokens: int = param(32, ge=1)
        #: Pooling kernel over the votes, tokens.
        kernel_tokens: int = param(7, ge=1)
        #: max or avg pooling.
        pooling: str = param("max", choices=POOLINGS)
        #: Budget over layers: uniform or pyramid (PyramidKV).
        layer_budget: str = param("uniform", choices=LAYER_BUDGETS)
        #: Budget over the heads of a layer: uniform or adaptive (Ada-KV).
        head_budget: str = param("uniform", choices=HEAD_BUDGETS)

    def new_layer(
        self, spec: CacheSpec, layer: int, budget: float, store: Callable[[int], HeadStore] | None = None
    ) -> SnapKVLayer:
        c = self.config
        return SnapKVLayer(
            spec,
            layer,
            layer_fraction(c.layer_budget, budget, spec.n_layers, layer),
            window_tokens=c.window_tokens,
            kernel_tokens=c.kernel_tokens,
            pooling=c.pooling,
            head_budget=c.head_budget,
            store=store,
        )
