"""Elastic Cache: importance-driven merging into anchors at prefill, fixed-point elimination while decoding.

Liu, Liu, Wang, Dong, Chen, Rao, Krishna, Lu, "Efficient Inference of
Vision Instruction-Following Models with Elastic Cache", ECCV 2024,
arXiv:2407.18121:

    "we propose an 'importance-driven cache merging' strategy to prune
    redundancy caches. Instead of discarding less important caches, our
    strategy identifies important key/value vectors as anchor points.
    Surrounding less important caches are then merged with these anchors
    [...]. For instruction encoding, we utilize the frequency to evaluate
    the importance of caches. Regarding output generation, we prioritize
    tokens based on their 'distance' with an offset, by which both the
    initial and most recent tokens are retained."

As the authors' code (github.com/liuzuyan/ElasticCache, ``kv_cache.py``,
class ``ElasticCache``) does it, per key/value head:

* **Instruction encoding (prefill).** Importance ``a_i`` = the attention
  token ``i`` received from every prompt query, summed over all the layer's
  query heads (the code's ``score_sum[layer]``: ``attn.mean(dim=1)`` over
  heads, accumulated over queries), so every key/value head of a layer keeps
  the same anchors. The first ``start_tokens``
  and the last ``protect_tokens`` tokens are always kept as they are; of the
  tokens between, the ``n_keep - start - protect`` of highest importance are
  the anchors, and every other one is merged into the anchor **nearest in
  position** ("surrounding" caches); an anchor's key and value become the
  plain mean of itself and the tokens merged into it (the code's
  ``scatter_reduce(..., 'mean')``).
* **Output generation (decode).** The cache stays at ``n_keep`` rows: each
  new token is appended and the row just before the ``offset_tokens`` most
  recent ones is dropped (the code's ``distance = -25``: a fixed position,
  so the merged prompt cache and the recent window survive).

Differences from the code, each deliberate:

* The code picks anchors with ``torch.where(torch.argsort(s) > forget_num)``,
  which compares token *indices* rather than ranks with ``forget_num`` (and
  omits the ``start_size`` offset of the merged rows): taken literally it
  keeps an arbitrary set, not the important one. We keep what the paper
  says and the code means: the highest-importance tokens are the anchors.
* Budget: the code recomputes ``forget_num = seq_len - (1 - ratio) x
  tokens_seen`` each step, so its cache grows by ``1 - ratio`` per generated
  token; here, as for every method of this family, the budget is fixed at
  ``round(budget x prompt tokens)`` and decoding drops one row per new token
  at the same fixed point.
* Ties in position go to the earlier anchor (as ``argmin`` does in the
  code). A multi-token forward after the prompt drops its overflow in one
  block at the same place, after its attention is computed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from memarena.api import KVCompression, param
from memarena.families.kvcache.cache import HeadStore, HeadwiseLayer
from memarena.families.kvcache.methods.budgets import tokens_for
from memarena.families.kvcache.methods.selection import check_budget
from memarena.lazy import torch

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = ["ElasticCache", "ElasticLayer", "anchor_groups"]


def anchor_groups(scores: torch.Tensor, n_keep: int, start_tokens: int, protect_tokens: int) -> list[list[int]]:
    """Which prompt rows become which kept row: a list, in row order, of sorted row groups, one per kept row.

    ``scores`` ``[n]`` the importance of each row. Groups of one are kept
    rows (the ``start_tokens`` first, the ``protect_tokens`` last, the
    anchors); an anchor's group also holds the non-anchor rows nearest to it
    in position (ties: the earlier anchor). ``n_keep`` >= 1 groups when
    ``n_keep`` < ``n``.
    """
    n = int(scores.shape[0])
    if n_keep >= n:
        return [[i] for i in range(n)]
    protect = min(protect_tokens, n_keep - 1)
    start = min(start_tokens, n_keep - protect - 1)
    n_anchor = n_keep - start - protect
    middle = torch.arange(start, n - protect)
    anchors = middle[torch.topk(scores[start : n - protect], n_anchor).indices].sort().values
    nearest = (middle[:, None] - anchors[None, :]).abs().argmin(dim=1)  # first minimum: the earlier anchor
    groups: list[list[int]] = [[i] for i in range(start)]
    members: list[list[int]] = [[] for _ in range(n_anchor)]
    for row, a in zip(middle.tolist(), nearest.tolist(), strict=True):
        members[a].append(row)
    groups += members
    groups += [[i] for i in range(n - protect, n)]
    return groups


class ElasticLayer(HeadwiseLayer):
    """One layer of Elastic Cache."""

    needs_probs = True

    def __init__(
        self,
        spec: CacheSpec,
        layer: int,
        budget: float,
        start_tokens: int,
        protect_tokens: int,
        offset_tokens: int,
        store: Callable[[int], HeadStore] | None = None,
    ) -> None:
        super().__init__(spec, layer, store)
        self.budget = budget
        self.start_tokens = start_tokens
        self.protect_tokens = protect_tokens
        self.offset_tokens = offset_tokens
        #: Rows each head keeps: set by the prompt (None before it).
        self.n_keep: int | None = None

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        super().after_attention(q, k, v, probs)
        if self.n_keep is None:  # the prompt
            assert probs is not None, "ElasticLayer needs the prompt's attention probabilities"
            n = int(k.shape[1])
            self.n_keep = tokens_for(self.budget, n)
            # one importance per layer, as the authors' code (score_sum[layer]: attention averaged over all heads,
            # summed over the prompt's queries): every head keeps the same anchors and merges the same groups
            importance = torch.stack([p.sum(dim=(0, 1)) for p in probs]).sum(dim=0)
            groups = anchor_groups(importance, self.n_keep, self.start_tokens, self.protect_tokens)
            for store in self.heads:
                merge_groups(store, groups)
            self.needs_probs = False  # decoding reads no attention
            return
        for store in self.heads:
            excess = len(store) - self.n_keep
            if excess > 0:
                # drop the block just before the offset_tokens most recent rows (fixed-point elimination)
                end = max(0, len(store) - self.offset_tokens)
                begin = max(0, end - excess)
                rows = torch.cat([torch.arange(0, begin), torch.arange(end, len(store))])
                store.keep(rows)


def merge_groups(store: HeadStore, groups: list[list[int]]) -> None:
    """Replace each group of ``store``'s rows (sorted, disjoint, in row order) by the mean of its keys and values."""
    keys, values, _ = store.read()
    for rows in reversed(groups):  # from the end, so earlier row indices stay valid
        if len(rows) > 1:
            idx = torch.tensor(rows)
            store.merge(idx, keys[idx].mean(0), values[idx].mean(0))


class ElasticCache(KVCompression):
    """Elastic Cache (Liu et al. 2024): merge into importance anchors at prefill, fixed-point elimination at decode."""

    name: ClassVar[str] = "elastic"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.elastic.ElasticCache"
        #: First prompt tokens always kept unmerged (the code's start_size).
        start_tokens: int = param(4, ge=0)
        #: Last prompt tokens always kept unmerged (the code's protect_size).
        protect_tokens: int = param(1, ge=0)
        #: While decoding, the most recent rows kept before the eliminated one (the code's -distance).
        offset_tokens: int = param(25, ge=0)

    def new_layer(self, spec: CacheSpec, layer: int, budget: float) -> ElasticLayer:
        check_budget(budget)
        return ElasticLayer(spec, layer, budget, self.start_tokens, self.protect_tokens, self.offset_tokens)
