"""K-norm: keep the tokens whose keys have the lowest L2 norm (Devoto et al., 2024, arXiv 2406.11430).

The paper's observation and rule (Sec. 1 and 4): "a low L2 norm of a key
embedding usually leads to a high attention score during decoding ...
Based on this observation, we compress the KV Cache based on the L2 norm
of key embeddings", i.e. for every layer and key/value head, sort the
cached tokens by ``||k_i||_2`` and keep the ``budget`` fraction with the
*lowest* norms (with their values). The score needs no attention
probabilities, so attention runs on the fast (SDPA) path.

When: once, on the context (the first forward the layer sees, the
prefill), as kvpress's ``KnormPress`` and the paper's ``l2_compress``
(called on the prefilled cache) do; tokens decoded later are appended.

Kept count: ``max(1, floor(budget * T))`` per head, kvpress's
``compute_n_kept`` with ``compression_ratio = 1 - budget`` (the paper's
code rounds up: ``ceil(keep_ratio * T)``; the two differ by one token when
``budget * T`` is not an integer: we follow kvpress so the kept sets can be
compared token for token). Norms are of the rotated keys in float32 (a
rotation leaves the norm unchanged, so pre- or post-RoPE keys give the
same order up to float rounding). ``skip_layers`` are left uncompressed
(the paper's code has the same knob, ``skip_layers``, default none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from memarena.api import KVCompression, param
from memarena.families.kvcache.cache import HeadwiseLayer
from memarena.lazy import torch

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec


def knorm_keep(keys: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Rows (sorted) of the ``n_keep`` keys ``[n, d]`` with the lowest L2 norm (ties: the earlier token)."""
    norms = torch.linalg.vector_norm(keys.float(), dim=-1)
    # A stable sort breaks ties by position, so the kept set is deterministic.
    order = torch.sort(norms, stable=True).indices
    return order[:n_keep].sort().values


def kept_tokens(n_tokens: int, budget: float) -> int:
    """Tokens a head keeps out of ``n_tokens`` at ``budget``: ``max(1, floor(budget * n))`` (kvpress's rule)."""
    return max(1, int(n_tokens * budget))


class KnormLayer(HeadwiseLayer):
    """A layer that, on its first forward, keeps per head the lowest-key-norm ``budget`` fraction of tokens."""

    def __init__(self, spec: CacheSpec, layer: int, budget: float, compress: bool = True) -> None:
        super().__init__(spec, layer)
        self.budget = budget
        self.compress = compress

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        if not (self.seen == 0 and self.compress):
            super().after_attention(q, k, v, probs)
            return
        # the prefill: every head starts empty, so only its kept rows are ever stored
        n = k.shape[1]
        n_keep = kept_tokens(n, self.budget)
        for h, store in enumerate(self.heads):
            rows = knorm_keep(k[h], n_keep) if n_keep < n else slice(None)
            store.append(k[h, rows], v[h, rows])


class KnormCache(KVCompression):
    """K-norm (Devoto et al., 2024): at prefill keep, per layer and head, the tokens of lowest key L2 norm."""

    name: ClassVar[str] = "knorm"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.knorm.KnormCache"
        #: Layers left uncompressed (the paper's code: ``skip_layers``).
        skip_layers: list[int] = param(factory=list)

    def new_layer(self, spec: CacheSpec, layer: int, budget: float) -> KnormLayer:
        if not 0.0 < budget <= 1.0:
            raise ValueError(f"knorm: family.budget must be in (0, 1], got {budget}")
        skip = [int(i) for i in self.config.skip_layers]
        bad = [i for i in skip if not 0 <= i < spec.n_layers]
        if bad:
            raise ValueError(
                f"kv_compression.skip_layers: layer {bad[0]} is not a layer of this model (0..{spec.n_layers - 1})"
            )
        return KnormLayer(spec, layer, budget, compress=layer not in skip)
