"""Scissorhands: persistence of importance (Liu et al. 2023, arXiv 2305.17118)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar

from memarena.api import KVCompression, param
from memarena.families.kvcache.cache import HeadStore
from memarena.families.kvcache.methods.selection import SelectionLayer, check_budget
from memarena.lazy import torch

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = ["Scissorhands", "ScissorhandsLayer"]


@lru_cache(maxsize=1)
def _popcount() -> torch.Tensor:
    """``[256]`` int64: the number of set bits of each byte value."""
    return torch.tensor([bin(i).count("1") for i in range(256)], dtype=torch.int64)


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

    * **State** (category ``scores``): for each kept token and each of the
      last ``w`` steps, how many of the ``group`` query heads (GQA) found it
      below average at that step (0 where it was not yet there): kept in
      place of the paper's float attention scores, from which only these
      comparisons are read. Bit-packed: per key/value head a ``uint8``
      ``[planes, ceil(w_rows / 8), n_h]`` tensor, ``planes = bit_length(group)``
      (the count's binary digits: 1 plane without GQA), step ``s`` in bit
      ``s mod 8`` of byte ``(s mod w) / 8`` (a ring over the window: the step
      written replaces the one ``w`` steps older), ``w_rows = min(steps, w)``.
      A token's count over the window is the popcount of its bytes, plane
      ``b`` weighted ``2^b``. At the paper's ``w = 400`` that is 50 bytes a
      token per plane (a ``uint8`` per step would take 400). Compacted with
      the rows (a column per token).
    * **When.** After every forward call: while over ``B`` (the prefill may
      exceed it by many tokens, a decode step by one) the cache is brought
      to ``B - m``: the paper's "drop m at the budget", generalised to a
      prefill longer than the budget. The prefill's queries are the
      history's first steps (the last ``w`` of them).
    * ``B``, ``r``, ``m`` are tokens of the head's budget: ``B`` from the
      family budget at prefill (see :mod:`selection`), ``r = round(recent_fraction B)``,
      ``m = max(1, round(drop_fraction B))``; ``w`` is ``history_window_tokens``.
    * **Defaults** (the paper's text could not be opened here; these are the
      paper's defaults as AnswerDotAI's cold-compress reimplementation records
      them, citing Algorithms 1-2): history window ``w = 400``, drop amount
      ``m = 0.4 B``, recent window ``r = 10`` tokens. ``r`` is a share of the
      budget in this config (``recent_fraction``, default 0.1: 10 tokens at a
      100-token budget).
    * Ties in the counts drop the older token first.
    """

    needs_probs = True

    def __init__(
        self,
        spec: CacheSpec,
        layer: int,
        fraction: float,
        *,
        history_window_tokens: int = 400,
        recent_fraction: float = 0.1,
        drop_fraction: float = 0.4,
        store: Callable[[int], HeadStore] | None = None,
    ) -> None:
        super().__init__(spec, layer, fraction, store=store)
        self.history_window_tokens = history_window_tokens
        self.recent_fraction = recent_fraction
        self.drop_fraction = drop_fraction
        self.recent_tokens = 0
        self.drop_tokens = 0
        #: Bits per step and token: the count of query heads below average is at most the group.
        self.planes = spec.group_size.bit_length()
        #: Steps (queries) seen so far; step ``s`` is in ring slot ``s mod w``.
        self.steps = 0
        #: Per head, the packed history ``[planes, ceil(min(steps, w) / 8), n_h]`` (see the class docs).
        self.history: list[torch.Tensor] = [torch.zeros(self.planes, 0, 0, dtype=torch.uint8) for _ in self.heads]

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        before = self.append_all(k, v)
        if self.unlimited:
            return
        assert probs is not None
        w, t = self.history_window_tokens, int(probs[0].shape[1])
        # the steps of this call still in the window after it (the earlier ones are overwritten within it)
        last = min(t, w)
        slots = (self.steps + t - last + torch.arange(last)) % w
        n_bytes = (min(self.steps + t, w) + 7) // 8
        self.steps += t
        for h, p in enumerate(probs):
            n_old = before[h]
            visible = n_old + torch.arange(t - last + 1, t + 1)  # keys each of those rows attends (cached + causal new)
            seen = torch.arange(n_old + t)[None, :] < visible[:, None]  # [last, n]
            low = (p[:, t - last :] < (1.0 / visible)[None, :, None]) & seen[None]
            rows = low.sum(dim=0)  # [last, n]: query heads of the group below average, per step
            self.history[h] = self._write(self.history[h], rows, slots, n_bytes)
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
        counts = self.window_totals(h)[: n - r]
        # most "below average" counts first; ties: the older token first (stable sort on index order)
        order = torch.sort(-counts, stable=True).indices
        dropped = order[: n - target]
        keep = torch.ones(n, dtype=torch.bool)
        keep[dropped] = False
        rows = keep.nonzero().flatten()
        self.heads[h].keep(rows)
        self.history[h] = self.history[h][:, :, rows].clone()

    def _write(self, packed: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor, n_bytes: int) -> torch.Tensor:
        """``packed`` grown to ``n_bytes`` a plane and ``rows.shape[1]`` tokens, with ``rows[i]`` (counts) in
        ring slot ``slots[i]`` (distinct slots), replacing what those slots held."""
        planes, old_bytes, n_old = packed.shape
        n = int(rows.shape[1])
        out = torch.zeros(planes, n_bytes, n, dtype=torch.uint8)
        out[:, :old_bytes, :n_old] = packed  # new tokens: 0 at the steps before them
        byte, bit = slots // 8, (slots % 8).to(torch.uint8)
        clear = torch.zeros(n_bytes, dtype=torch.int64).index_add_(0, byte, 1 << bit.long())
        out &= (255 - clear).to(torch.uint8)[None, :, None]
        for b in range(planes):
            digit = ((rows >> b) & 1).to(torch.int64) << bit.long()[:, None]  # [steps, n], distinct bits per byte
            out[b] |= torch.zeros(n_bytes, n, dtype=torch.int64).index_add_(0, byte, digit).to(torch.uint8)
        return out

    def window_totals(self, h: int) -> torch.Tensor:
        """``[n_h]`` int64: per kept token of head ``h``, its "below average" count summed over the window
        (the popcount of its bytes, plane ``b`` weighted ``2^b``)."""
        packed, popcount = self.history[h], _popcount()
        total = torch.zeros(packed.shape[2], dtype=torch.int64)
        for b in range(self.planes):
            total += popcount[packed[b].long()].sum(dim=0) << b
        return total

    def window_counts(self, h: int) -> torch.Tensor:
        """``[min(steps, w), n_h]`` int64: head ``h``'s history unpacked, oldest step first (how many query heads
        found each kept token below average at each step of the window)."""
        w, packed = self.history_window_tokens, self.history[h]
        n_steps = min(self.steps, w)
        slots = (self.steps - n_steps + torch.arange(n_steps)) % w
        bits = (packed[:, slots // 8, :] >> (slots % 8).to(torch.uint8)[None, :, None]) & 1  # [planes, steps, n]
        weights = (1 << torch.arange(packed.shape[0]))[:, None, None]
        return (bits.to(torch.int64) * weights).sum(dim=0)

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
        #: History window w: the attention of this many last steps is counted (the paper's 400).
        history_window_tokens: int = param(400, ge=1)
        #: Recent window r, as a share of the budget (never dropped).
        recent_fraction: float = param(0.1, ge=0.0, le=1.0)
        #: Drop amount m, as a share of the budget (at least one token; the paper's 0.4).
        drop_fraction: float = param(0.4, ge=0.0, le=1.0)

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
