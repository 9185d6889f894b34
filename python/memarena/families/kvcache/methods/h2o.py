"""H2O: heavy hitters + recent tokens by accumulated attention (Zhang et al. 2023, arXiv 2306.14048)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from memarena.api import KVCompression, param
from memarena.families.kvcache.cache import HeadStore
from memarena.families.kvcache.methods.budgets import HEAD_BUDGETS, LAYER_BUDGETS, adaptive_head_budgets
from memarena.families.kvcache.methods.selection import SelectionLayer, layer_fraction
from memarena.lazy import torch

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = ["H2O", "H2OLayer"]


class H2OLayer(SelectionLayer):
    """One layer of H2O.

    Paper, Sec. 4 / Algorithm 1: the score of a cached token is its
    accumulated attention, "the sum of attention scores ... over all
    queries so far"; at each step the token with the lowest score outside
    the recent window is evicted, so the cache holds "heavy hitters and
    recent tokens" (half of the budget each in the paper's experiments:
    ``recent_fraction = 0.5``).

    * **Scores.** Per key/value head: the sum over the ``group`` query
      heads sharing it (GQA) and over every query seen so far of the
      attention probability each kept token received (``scores[h]``,
      float32 ``[n_h]``, category ``scores``; compacted with the rows).
    * **Prefill.** As the official real-drop implementation
      (FMInference/H2O, ``h2o_hf/utils_real_drop/modify_llama.py``,
      ``H2OKVCache_LayerWise``): the prefill's causal attention is summed
      over all its queries, then one eviction keeps the top
      ``budget - recent`` non-recent tokens by that sum plus the last
      ``recent``. (The paper's simulated/masked variant instead evicts
      greedily row by row inside the prefill; the real-drop code does not.)
      kvpress's ``ObservedAttentionPress`` scores the same way but averages
      over query heads and normalises per query count; its kept set equals
      this one's up to ties when ``recent_fraction = 0`` and the group is
      one head, since a positive scale does not change a top-k.
    * **Decode.** Each step adds the new query's attention to the scores
      (the new token starts with its own), then, over budget, evicts the
      lowest-scored non-recent token(s).
    * **Budgets.** ``head_budget = adaptive`` (Ada-KV): the heads' heavy
      budgets are allocated jointly at prefill by their accumulated scores
      (the recent window stays ``recent`` per head); each head then keeps
      its own number of tokens while decoding.
    """

    needs_probs = True

    def __init__(
        self,
        spec: CacheSpec,
        layer: int,
        fraction: float,
        *,
        recent_fraction: float = 0.5,
        head_budget: str = "uniform",
        store: Callable[[int], HeadStore] | None = None,
    ) -> None:
        super().__init__(spec, layer, fraction, head_budget=head_budget, store=store)
        self.recent_fraction = recent_fraction
        self.recent_tokens = 0
        self.scores: list[torch.Tensor] = [torch.zeros(0) for _ in self.heads]

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        before = self.append_all(k, v)
        if self.unlimited:
            return
        assert probs is not None
        for h in range(len(self.heads)):
            acc = probs[h].sum(dim=(0, 1))  # [n_h + T]: over the group's query heads and the new queries
            acc[: before[h]] += self.scores[h]
            self.scores[h] = acc
        if self.head_budgets_tokens is None:
            self._set_budgets(len(self.heads[0]))
        assert self.head_budgets_tokens is not None
        for h, budget in enumerate(self.head_budgets_tokens):
            self._evict(h, budget)

    def _set_budgets(self, n: int) -> None:
        budget = max(1, min(n, round(self.fraction * n)))
        self.recent_tokens = min(budget, round(self.recent_fraction * budget))
        if self.head_budget == "uniform":
            self.head_budgets_tokens = [budget] * len(self.heads)
            return
        r = self.recent_tokens
        heavy = adaptive_head_budgets([s[: n - r] for s in self.scores], len(self.heads) * (budget - r))
        self.head_budgets_tokens = [hv + r for hv in heavy]

    def _evict(self, h: int, budget: int) -> None:
        n = len(self.heads[h])
        if n <= budget:
            return
        r = min(self.recent_tokens, budget)
        heavy = torch.topk(self.scores[h][: n - r], budget - r).indices
        rows = torch.cat([heavy.sort().values, torch.arange(n - r, n)])
        self.heads[h].keep(rows)
        self.scores[h] = self.scores[h][rows].clone()

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        yield from super().tensors()
        for s in self.scores:
            yield "scores", s


class H2O(KVCompression):
    """H2O (Zhang et al. 2023, arXiv 2306.14048): keep the heavy hitters (highest accumulated attention) and
    the most recent tokens, evicting at prefill and at every decode step over the budget."""

    name: ClassVar[str] = "h2o"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.h2o.H2O"
        #: Share of the budget kept as the recent window (the paper: half).
        recent_fraction: float = param(0.5, ge=0.0, le=1.0)
        #: Budget over layers: uniform or pyramid (PyramidKV).
        layer_budget: str = param("uniform", choices=LAYER_BUDGETS)
        #: Budget over the heads of a layer: uniform or adaptive (Ada-KV).
        head_budget: str = param("uniform", choices=HEAD_BUDGETS)

    def new_layer(
        self, spec: CacheSpec, layer: int, budget: float, store: Callable[[int], HeadStore] | None = None
    ) -> H2OLayer:
        c = self.config
        return H2OLayer(
            spec,
            layer,
            layer_fraction(c.layer_budget, budget, spec.n_layers, layer),
            recent_fraction=c.recent_fraction,
            head_budget=c.head_budget,
            store=store,
        )
