"""StreamingLLM: attention sinks + a recent window, positions re-indexed inside the cache
(Xiao et al. 2023, arXiv 2309.17453)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from memarena.api import KVCompression, param
from memarena.families.kvcache.cache import HeadStore
from memarena.families.kvcache.methods.selection import SelectionLayer, check_budget
from memarena.lazy import torch

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = ["StreamingLLM", "StreamingLLMLayer"]


class StreamingLLMLayer(SelectionLayer):
    """One layer of StreamingLLM.

    Paper, Sec. 3.2: the cache keeps "attention sinks (four initial
    tokens)" and a "rolling KV cache" of the most recent tokens; "when
    determining the relative distance and adding positional information to
    tokens, StreamingLLM focuses on positions within the cache rather than
    those in the original text" (Sec. 3.2).

    * **Positions.** A new token's rotary position is its index in the
      cache (:meth:`positions`); when tokens are evicted the kept window
      keys are re-rotated to their new indices (:meth:`Rope.rotate` by the
      negative shift), so the invariant "position = cache index" holds
      after every call. The official code instead keeps un-rotated keys and
      rotates the whole cache at every step; the result is the same up to
      rounding: the prefill stores only the kept rows, re-rotated from the
      float32 keys; each later eviction reads the keys back from the store
      (fp16 for :class:`Fp16Store`) and writes the re-rotated keys with
      :meth:`HeadStore.reset`, so a key re-rotated many times accumulates
      the store's rounding once per eviction. A store whose keys are
      channel-pruned (``read`` returns channels) cannot be re-rotated.
    * **Budget.** ``B`` tokens per head (see :mod:`selection`): the
      ``sink_tokens`` first tokens plus the last ``B - sinks``. The prefill
      attends over the whole context (positions ``0..n-1``, which are its
      cache indices), then evicts to ``B``; each decode step attends over
      ``B + 1`` tokens and evicts one. kvpress's ``StreamingLLMPress`` keeps
      the same set at prefill (``n_sink`` 4) but does not re-index positions
      (it would need ``KeyRerotationPress``) and does not evict while decoding.
    """

    def __init__(
        self,
        spec: CacheSpec,
        layer: int,
        fraction: float,
        *,
        sink_tokens: int = 4,
        store: Callable[[int], HeadStore] | None = None,
    ) -> None:
        super().__init__(spec, layer, fraction, store=store)
        self.sink_tokens = sink_tokens

    def positions(self, n_new: int) -> torch.Tensor:
        start = len(self.heads[0])
        return torch.arange(start, start + n_new)

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        n = len(self.heads[0]) + k.shape[1]
        if self.head_budgets_tokens is None:
            budget = max(1, min(n, round(self.fraction * n)))
            self.head_budgets_tokens = [budget] * len(self.heads)
        budget = self.head_budgets_tokens[0]
        if self.unlimited or n <= budget:
            self.append_all(k, v)
            return
        sinks = min(self.sink_tokens, budget)
        rows = torch.cat([torch.arange(sinks), torch.arange(n - (budget - sinks), n)])
        shift = torch.arange(budget) - rows  # new index - old index (0 for the sinks)
        if n == k.shape[1]:
            # the prefill (nothing stored yet): store the kept rows once, re-rotated from the float keys
            kept = self.spec.rope.rotate(k[:, rows].float(), shift)
            for h, store in enumerate(self.heads):
                store.append(kept[h], v[h, rows])
            return
        self.append_all(k, v)
        for store in self.heads:
            kk, vv, chan = store.read()
            if chan is not None:
                raise NotImplementedError(
                    f"StreamingLLM cannot re-rotate keys stored by {type(store).__name__} (channel-pruned)"
                )
            store.reset(self.spec.rope.rotate(kk[rows], shift), vv[rows])


class StreamingLLM(KVCompression):
    """StreamingLLM (Xiao et al. 2023, arXiv 2309.17453): attention sinks plus the most recent tokens,
    with rotary positions counted inside the cache."""

    name: ClassVar[str] = "streaming_llm"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.streaming_llm.StreamingLLM"
        #: Initial tokens always kept (the paper: 4).
        sink_tokens: int = param(4, ge=0)

    def new_layer(
        self, spec: CacheSpec, layer: int, budget: float, store: Callable[[int], HeadStore] | None = None
    ) -> StreamingLLMLayer:
        check_budget(budget)
        return StreamingLLMLayer(spec, layer, budget, sink_tokens=self.config.sink_tokens, store=store)
