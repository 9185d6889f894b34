"""Per-layer and per-head token budgets shared by the token-selection methods.

A method's ``budget`` (``family.budget``) is the fraction of the prefill
context's tokens kept per key/value head on average. Two independent
choices spread it:

* **over layers** (:func:`layer_fractions`): ``uniform`` (every layer keeps
  ``budget``) or ``pyramid`` (PyramidKV, Cai et al. 2024, arXiv 2406.02069:
  "we allocate more cache in the lower layers and less in the higher
  layers", an arithmetic sequence whose top layer keeps ``1/beta`` of the
  mean, ``beta = 20`` as in its code, with the same mean as ``uniform``);
* **over the heads of a layer** (:func:`adaptive_head_budgets`): ``uniform``
  or ``adaptive`` (Ada-KV, Feng et al. 2024, arXiv 2407.11550, Algorithm 1:
  the layer's total budget ``B`` is allocated by "selecting the top-B scores
  among all heads" jointly, each head keeping as many tokens as it has
  among them). Storage is ragged (a :class:`~memarena.families.kvcache.cache.HeadStore`
  per head), so unlike kvpress's ``AdaKVPress`` (which pads every head to the
  same length with fake keys that attention masks out) the savings are real.
"""

from __future__ import annotations

from collections.abc import Sequence

from memarena.lazy import torch

__all__ = [
    "HEAD_BUDGETS",
    "LAYER_BUDGETS",
    "PYRAMID_BETA",
    "adaptive_head_budgets",
    "layer_fractions",
    "tokens_for",
]

#: ``layer_budget`` choices.
LAYER_BUDGETS = ("uniform", "pyramid")
#: ``head_budget`` choices.
HEAD_BUDGETS = ("uniform", "adaptive")
#: PyramidKV's ``beta``: the top layer keeps ``mean / beta`` (its code's default, 20).
PYRAMID_BETA = 20.0
#: Ada-KV's safeguard: a fraction ``alpha`` of the layer's budget is split evenly over the heads before the
#: rest is allocated by the joint top-k (Ada-KV's code ``floor_alpha``, kvpress's ``alpha_safeguard``: 0.2).
ADAPTIVE_FLOOR = 0.2


def layer_fractions(schedule: str, budget: float, n_layers: int, beta: float = PYRAMID_BETA) -> list[float]:
    """The fraction of the context each layer keeps; their mean is ``budget``.

    ``pyramid``: PyramidKV's linear schedule, layer 0 keeps the most, the
    last layer ``budget / beta``; where the bottom layer would need more
    than the whole context (``2 budget - budget / beta > 1``) it keeps all
    of it and the top layer ``2 budget - 1`` (still linear, same mean).
    """
    if schedule not in LAYER_BUDGETS:
        raise ValueError(f"unknown layer budget schedule {schedule!r}; known: {', '.join(LAYER_BUDGETS)}")
    if schedule == "uniform" or n_layers == 1:
        return [budget] * n_layers
    bottom = min(1.0, 2.0 * budget - budget / beta)
    top = 2.0 * budget - bottom
    step = (bottom - top) / (n_layers - 1)
    return [bottom - i * step for i in range(n_layers)]


def tokens_for(fraction: float, n_tokens: int) -> int:
    """Tokens kept of ``n_tokens`` at ``fraction``: ``round(fraction * n_tokens)``, at least 1, at most all."""
    return max(1, min(n_tokens, round(fraction * n_tokens)))


def adaptive_head_budgets(
    scores: Sequence[torch.Tensor], total_tokens: int, floor: float = ADAPTIVE_FLOOR
) -> list[int]:
    """Ada-KV's allocation of ``total_tokens`` over heads from their per-token scores.

    ``floor * total / n_heads`` tokens per head are reserved (Ada-KV's
    safeguard); the rest go to the highest scores over all heads jointly.
    A head never gets more tokens than it has.

    :param scores: ``scores[h]``: head ``h``'s candidate tokens' scores ``[n_h]`` (comparable across heads).
    :returns: tokens per head, summing to ``min(total_tokens, sum n_h)``.
    """
    sizes = [int(s.numel()) for s in scores]
    total = min(total_tokens, sum(sizes))
    base = [min(n, int(floor * total / len(scores))) for n in sizes]
    rest = total - sum(base)
    if rest <= 0:
        return base
    # Each head's candidates beyond its reserved floor, best first, compete jointly for the rest.
    cands = [torch.sort(s.float(), descending=True).values[b:] for s, b in zip(scores, base, strict=True)]
    flat = torch.cat(cands)
    owner = torch.cat([torch.full((len(c),), h, dtype=torch.long) for h, c in enumerate(cands)])
    top = torch.topk(flat, rest).indices
    extra = torch.bincount(owner[top], minlength=len(scores))
    return [b + int(e) for b, e in zip(base, extra, strict=True)]
