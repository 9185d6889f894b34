"""Scissorhands: persistence of importance (Liu et al. 2023, arXiv 2305.17118)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch

from memarena.api import KVCompression, param
from memarena.families.kvcache.cache import CacheSpec, HeadStore
from memarena.families.kvcache.methods.selection import SelectionLayer, check_budget

__all__ = ["Scissorhands", "ScissorhandsLayer"]


class ScissorhandsLayer(SelectionLayer):
    """One layer of Scissorhands.

    Paper, Sec. 4, Algorithms 1 and 2: the cache holds at most ``B``
    tokens; when it would exceed ``B`` it is compressed by dropping ``m``
    tokens. The importance of a token is read from the attention of the
    last ``w`` steps (the *history window*): a token is counted as
    unimportant at a step when its attention is below that step's average
    (``1/t``, ``t`` the tokens attended, since a row sums to 1); the ``m``
    tokens with the most such counts are dropped, and the last ``r`` tokens
    are never dropped (their history is too short to judge).

    * **State** (category ``scores``): per key/value head a ``uint8``
      ``[w_rows, n_h]`` history, row ``j`` holding for each kept token how
      many of the ``group`` query heads (GQA) found it below average at
      step ``j`` (0 where it was not yet there); kept in place of the paper's
      float attention scores, from which only these comparisons are read.
      Compacted with the rows.
    * **When.** After every forward call: while over ``B`` (the prefill may
      exceed it by many tokens, a decode step by one) the cache is brought
      to ``B - m``: the paper's "drop m at the budget", generalised to a
      prefill longer than the budget. The prefill's queries are the
      history's first steps (the last ``w`` of them).
    * ``B``, ``r``, ``m`` are tokens of the head's budget: ``B`` from the
      family budget at prefill (see :mod:`selection`), ``r = round(recent_fraction B)``,
      ``m = max(1, round(drop_fraction B))``; ``w`` is ``history_window_tokens``.
      The paper gives no defaults we could find for ``r`` and ``m`` in its
      text; ours are 10 % of the budget each and ``w = 32`` steps.
    * Ties in the counts drop the older token first.
    """

    needs_probs = True

    def __init__(
        self,
        spec: CacheSpec,
        layer: int,
        fraction: float,
        *,
        history_window_tokens: int = 32,
        recent_fraction: float = 0.1,
        drop_fraction: float = 0.1,
        store: Callable[[int], HeadStore] | None = None,
    ) -> None:
        super().__init__(spec, layer, fraction, store=store)
        self.history_window_tokens = history_window_tokens
        self.recent_fraction = recent_fraction
        self.drop_fraction = drop_fraction
        self.recent_tokens = 0
        self.drop_tokens = 0
        self.history: list[torch.Tensor] = [torch.zeros(0, 0, dtype=torch.uint8) for _ in self.heads]

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        before = self.append_all(k, v)
        if self.unlimited:
            return
        assert probs is not None
        for h, p in enumerate(probs):
            n_old, t = before[h], p.shape[1]
            visible = n_old + torch.arange(1, t + 1)  # keys row j attends (cached + causal new)
            cols = torch.arange(n_old + t)
            seen = cols[None, :] < visible[:, None]  # [T, n]
            low = (p < (1.0 / visible)[None, :, None]) & seen[None]
            rows = low.sum(dim=0).to(torch.uint8)  # [T, n]: query heads of the group below average
            old = self.history[h]
            old = torch.cat([old, torch.zeros(old.shape[0], t, dtype=torch.uint8)], dim=1)
            self.history[h] = torch.cat([old, rows])[-self.history_window_tokens :].clone()
        if self.head_budgets_tokens is None:
            n = len(self.heads[0])
            budget = max(1, min(n, round(self.fraction * n)))
            self.head_budgets_tokens = [budget] * len(self.heads)
            self.recent_tokens = min(budget, round(self.recent_fraction * budget))
            self.drop_tokens = min(budget, max(1, round(self.drop_fraction * budget)))
        for h, budget in enumerate(self.head_budgets_tokens):
            self._compress(h, budget)

    def _compress(self, h: int, budget: int) -> None:
        n = len(self.heads[h])
        if n <= budget:
            return
        target = budget - self.drop_tokens
        r = min(self.recent_tokens, target)
        counts = self.history[h].sum(dim=0, dtype=torch.int64)[: n - r]
        # most "below average" counts first; ties: the older token first (stable sort on index order)
        order = torch.sort(-counts, stable=True).indices
        dropped = order[: n - target]
        keep = torch.ones(n, dtype=torch.bool)
        keep[dropped] = False
        rows = keep.nonzero().flatten()
        self.heads[h].keep(rows)
        self.history[h] = self.history[h][:, rows].clone()

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        yield from super().tensors()
        for s in self.history:
            yield "scores", s


class Scissorhands(KVCompression):
    """Scissorhands (Liu et al. 2023, arXiv 2305.17118): at the budget, drop the tokens most often below
    average attention over a history window, sparing the most recent."""

    name: ClassVar[str] = "scissorhands"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.scissorhands.Scissorhands"
        #: History window w: the attention of this many last steps is counted.
        history_window_tokens: int = param(32, ge=1)
        #: Recent window r, as a share of the budget (never dropped).
        recent_fraction: float = param(0.1, ge=0.0, le=1.0)
        #: Drop amount m, as a share of the budget (at least one token).
        drop_fraction: float = param(0.1, ge=0.0, le=1.0)

    def new_layer(
        self, spec: CacheSpec, layer: int, budget: float, store: Callable[[int], HeadStore] | None = None
    ) -> ScissorhandsLayer:
        check_budget(budget)
        c = self.config
        return ScissorhandsLayer(
            spec,
            layer,
            budget,
            history_window_tokens=c.history_window_tokens,
            recent_fraction=c.recent_fraction,
            drop_fraction=c.drop_fraction,
            store=store,
        )
