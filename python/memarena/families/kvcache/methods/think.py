"""ThinK: thinner key cache by query-driven pruning (Xu et al. 2024, arXiv 2407.21018).

    "a novel query-dependent KV cache pruning method designed to minimize
    attention weight loss while selectively pruning the least significant
    channels": within each head the channels are scored by
    ``Score_i[j] = ||Q_i[:, j] K_i[:, j]^T||_F`` over the observation
    window's queries, "and only the top T channels out of D are selected for
    retention" (Sec. 3, Fig. 1; ``T = D - floor(lambda D)`` for the pruning
    ratio ``lambda``). The paper stores a binary channel mask; here the kept
    channel indices (``int16``).

``Q[:, j] K[:, j]^T`` is an outer product, so its Frobenius norm is
``||Q[:, j]||_2 * ||K[:, j]||_2``: :func:`think_channels` computes that (the
official code scores with the same product of mean squares, which ranks
channels identically). Under GQA a key/value head serves ``group`` query
heads; their window queries are stacked as the rows of ``Q`` (score squared
= the sum of the query heads' squared scores; kvpress's ``ThinKPress``
averages the group's mean squares: the same ranking).

What is stored (:class:`ThinkStore`) follows the official implementation
(SalesforceAIResearch/ThinK, ``key_pruner_query_driven`` and
``update_think``): at prefill the keys of all but the ``recent_tokens``
most recent prompt tokens are **compacted** to the kept channels
``[n, d_kept]`` (fp16) with the channel indices (``int16``, category
``indices``); the recent prompt keys and every decoded token's key stay
full width (the official cache appends decoded keys unpruned: "this version
will not update in inference mode"). Values are not pruned. The memory is
really freed, unlike kvpress's ``ThinKPress``, which zeroes the pruned
channels and keeps the full-width tensor.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from memarena.api import KVCompression, param
from memarena.families.kvcache.cache import HeadStore, HeadwiseLayer
from memarena.lazy import torch

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = ["Think", "ThinkLayer", "ThinkStore", "think_channels", "think_channels_heads"]


def think_channels(q_obs: torch.Tensor, k: torch.Tensor, pruning_ratio: float) -> torch.Tensor:
    """The key channels ThinK keeps: sorted int64 indices of the ``d - floor(d * pruning_ratio)`` largest
    ``score_j = ||Q[:, j] K[:, j]^T||_F = ||Q[:, j]||_2 ||K[:, j]||_2``.

    :param q_obs: The observation window's queries ``[..., d]`` (any leading shape: rows of ``Q``).
    :param k: The keys ``[n, d]``.
    :param pruning_ratio: ``lambda``: fraction of channels pruned (``int(d * lambda)``, as the official code).
    """
    d = k.shape[-1]
    return think_channels_heads(q_obs.reshape(1, -1, d), k[None], pruning_ratio)[0]


def think_channels_heads(q_obs: torch.Tensor, k: torch.Tensor, pruning_ratio: float) -> torch.Tensor:
    """:func:`think_channels` for ``H`` heads at once: ``q_obs`` ``[H, rows, d]``, ``k`` ``[H, n, d]`` ->
    ``[H, kept]`` (each head's own channels; one batched norm, top-k and sort instead of a loop over heads)."""
    d = k.shape[-1]
    # score_j squared, ||Q[:, j]||^2 ||K[:, j]||^2 (the same order as score_j; the official code ranks by the
    # product of mean squares, the same order again): sums of squares cost a tenth of torch's norm over dim 1
    score = q_obs.float().square().sum(dim=1) * k.float().square().sum(dim=1)
    kept = d - int(d * pruning_ratio)
    return score.topk(kept, dim=-1).indices.sort(dim=-1).values


class ThinkStore(HeadStore):
    """One key/value head under ThinK: compacted keys of the pruned prefix, full keys after it, fp16 values.

    Rows: ``[pruned keys | full-width keys]``; values ``[n, d]``. Until :meth:`prune` every key is full width.

    :param head_dim: Channels per key/value.
    :param recent_tokens: Most recent rows :meth:`prune` leaves at full width.
    :param dtype: Storage dtype (fp16).
    """

    __slots__ = ("channels", "dtype", "head_dim", "k_full", "k_pruned", "recent_tokens", "v")

    def __init__(self, head_dim: int, recent_tokens: int, dtype: torch.dtype | None = None) -> None:
        dtype = torch.float16 if dtype is None else dtype
        self.head_dim, self.recent_tokens, self.dtype = head_dim, recent_tokens, dtype
        #: The kept key channels (sorted, ``int16``); ``None`` until :meth:`prune`.
        self.channels: torch.Tensor | None = None
        self.k_pruned = torch.zeros(0, 0, dtype=dtype)
        self.k_full = torch.zeros(0, head_dim, dtype=dtype)
        self.v = torch.zeros(0, head_dim, dtype=dtype)

    def __len__(self) -> int:
        return int(self.v.shape[0])

    def full_keys(self) -> torch.Tensor:
        """The full-width keys held (float32), the ones :meth:`prune` may compact."""
        return self.k_full.float()

    def prune(self, channels: torch.Tensor) -> None:
        """Keep only ``channels`` of every full-width key but the ``recent_tokens`` most recent (once)."""
        if self.channels is not None:
            raise RuntimeError("ThinK prunes the key channels once, at prefill")
        n_prune = max(0, self.k_full.shape[0] - self.recent_tokens)
        chan = channels.long()
        # selected in float32, stored in fp16: the same values (rounding commutes with selection), and on CPU
        # index_select over fp16 columns is several times slower than this widening, selection and narrowing
        self.k_pruned = self.k_full[:n_prune].float().index_select(1, chan).to(self.dtype)
        self.k_full = self.k_full[n_prune:].clone()
        self.channels = chan.to(torch.int16)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k_full = torch.cat([self.k_full, k.to(self.dtype)])
        self.v = torch.cat([self.v, v.to(self.dtype)])

    def read(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        v = self.v.float()
        if self.channels is None:
            return self.k_full.float(), v, None
        chan = self.channels.long()
        if self.k_full.shape[0] == 0:
            return self.k_pruned.float(), v, chan
        # Compacted rows and full rows: zeros in the pruned channels add nothing to q . k, so one [n, d] matrix
        # scores as q[chan] . k_pruned does (a working copy for attention; the storage stays compacted).
        k = torch.zeros(len(self), self.head_dim)
        n_p = self.k_pruned.shape[0]
        k[:n_p, chan] = self.k_pruned.float()
        k[n_p:] = self.k_full.float()
        return k, v, None

    def keep(self, rows: torch.Tensor) -> None:
        rows = rows.long()
        n_p = int(self.k_pruned.shape[0])
        self.k_pruned = self.k_pruned[rows[rows < n_p]]
        self.k_full = self.k_full[rows[rows >= n_p] - n_p]
        self.v = self.v[rows]

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        yield "payload", self.k_pruned
        yield "payload", self.k_full
        yield "payload", self.v
        if self.channels is not None:
            yield "indices", self.channels


def prune_heads(layer: HeadwiseLayer, q: torch.Tensor, pruning_ratio: float, window_tokens: int) -> None:
    """ThinK at prefill: score each head's channels on the keys its store holds and the window's queries of its
    query heads, then :meth:`ThinkStore.prune` (after any token selection, as SnapKV then ThinK in the official
    ``update_thinkv``)."""
    g = layer.spec.group_size
    stores: list[ThinkStore] = []
    for store in layer.heads:
        if not isinstance(store, ThinkStore):
            raise TypeError(f"ThinK prunes ThinkStore heads, got {type(store).__name__}")
        stores.append(store)
    keys = [store.full_keys() for store in stores]
    q_obs = q[:, -window_tokens:]
    if all(k.shape == keys[0].shape for k in keys):  # every head holds as many rows (uniform budgets)
        w = q_obs.shape[1]
        chans = think_channels_heads(q_obs.reshape(len(stores), g * w, -1), torch.stack(keys), pruning_ratio)
        for store, chan in zip(stores, chans, strict=True):
            store.prune(chan)
        return
    for h, (store, k) in enumerate(zip(stores, keys, strict=True)):
        store.prune(think_channels(q_obs[h * g : (h + 1) * g], k, pruning_ratio))


class ThinkLayer(HeadwiseLayer):
    """Every token kept; key channels pruned once, after the first (prefill) forward."""

    def __init__(self, spec: CacheSpec, layer: int, pruning_ratio: float, window_tokens: int, recent_tokens: int):
        super().__init__(spec, layer, store=lambda h: ThinkStore(spec.head_dim, recent_tokens, spec.dtype))
        self.pruning_ratio, self.window_tokens = pruning_ratio, window_tokens

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        super().after_attention(q, k, v, probs)
        if self.seen == 0:
            prune_heads(self, q, self.pruning_ratio, self.window_tokens)


class Think(KVCompression):
    """ThinK (arXiv 2407.21018): query-driven key-channel pruning at prefill; compacted keys really stored."""

    name: ClassVar[str] = "think"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.think.Think"
        #: lambda: fraction of key channels pruned (paper: 0.4, 0.5; official default 0.4).
        pruning_ratio: float = param(0.4, ge=0.0, lt=1.0)
        #: Observation window: the last prompt queries that score the channels (official: 32).
        window_tokens: int = param(32, ge=1)
        #: Most recent prompt keys kept at full width (official recent_size: 32).
        recent_tokens: int = param(32, ge=0)

    def new_layer(self, spec: CacheSpec, layer: int, budget: float) -> HeadwiseLayer:
        return ThinkLayer(spec, layer, self.pruning_ratio, self.window_tokens, self.recent_tokens)
