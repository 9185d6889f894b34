"""What the token-selection methods (H2O, Scissorhands, StreamingLLM, SnapKV) share.

**Budget.** ``fraction`` (the family's ``budget``, possibly spread over
layers by :func:`~memarena.families.kvcache.methods.budgets.layer_fractions`)
is the fraction of the *prefill* context's tokens a key/value head keeps.
It becomes a number of tokens once, at the first forward call (the prefill):
``round(fraction * prefill_len)`` (at least 1). Decoding keeps that number
of tokens: the cache does not grow with the continuation (H2O, Scissorhands
and StreamingLLM all run under a fixed cache size). A fraction of 1 or more
is the full cache: nothing is ever evicted and no score state is kept (so a
budget of 1.0 gives exactly the full cache's logits, prefill and decode).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from memarena.errors import InvalidConfigError
from memarena.families.kvcache.cache import HeadStore, HeadwiseLayer
from memarena.families.kvcache.methods.budgets import HEAD_BUDGETS, LAYER_BUDGETS, layer_fractions
from memarena.lazy import torch

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = ["SelectionLayer", "check_budget", "layer_fraction"]


def check_budget(budget: float) -> None:
    """``budget`` must be in ``(0, 1]``; the error names ``family.budget``."""
    if not 0.0 < budget <= 1.0:
        raise InvalidConfigError(f"config key 'family.budget' must be in (0, 1], got {budget}")


def layer_fraction(schedule: str, budget: float, n_layers: int, layer: int) -> float:
    """Layer ``layer``'s share of the context under ``schedule`` (``kv_compression.layer_budget``)."""
    check_budget(budget)
    if schedule not in LAYER_BUDGETS:
        raise InvalidConfigError(
            f"config key 'kv_compression.layer_budget' must be one of {', '.join(LAYER_BUDGETS)}, got {schedule!r}"
        )
    return layer_fractions(schedule, budget, n_layers)[layer]


class SelectionLayer(HeadwiseLayer):
    """A :class:`HeadwiseLayer` keeping a budget of tokens per head (see the module doc).

    :param fraction: Fraction of the prefill context kept per head (>= 1: everything).
    :param head_budget: ``uniform`` (every head keeps the same number) or ``adaptive`` (Ada-KV; the
        subclass allocates :attr:`head_budgets_tokens` at prefill).
    :param store: The per-head store factory (:class:`HeadwiseLayer`).
    """

    def __init__(
        self,
        spec: CacheSpec,
        layer: int,
        fraction: float,
        *,
        head_budget: str = "uniform",
        store: Callable[[int], HeadStore] | None = None,
    ) -> None:
        super().__init__(spec, layer, store)
        if fraction <= 0:
            raise InvalidConfigError(f"config key 'family.budget' must be > 0, got {fraction}")
        if head_budget not in HEAD_BUDGETS:
            raise InvalidConfigError(
                f"config key 'kv_compression.head_budget' must be one of {', '.join(HEAD_BUDGETS)}, got {head_budget!r}"
            )
        self.fraction = fraction
        self.head_budget = head_budget
        #: Nothing is ever evicted (fraction >= 1): the full cache.
        self.unlimited = fraction >= 1.0
        #: Tokens the prefill set, per head (None before the prefill).
        self.head_budgets_tokens: list[int] | None = None
        self.needs_probs = self.needs_probs and not self.unlimited

    def append_all(self, k: torch.Tensor, v: torch.Tensor) -> list[int]:
        """Append the new tokens to every head; returns each head's row count before."""
        before = [len(s) for s in self.heads]
        for h, store in enumerate(self.heads):
            store.append(k[h], v[h])
        return before
