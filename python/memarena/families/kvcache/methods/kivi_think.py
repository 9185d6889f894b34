"""KIVI + ThinK: ThinK's query-driven key-channel pruning, then KIVI's quantization of the kept channels.

ThinK (arXiv 2407.21018, abstract: "ThinK integrated with KIVI can achieve 2.8x
peak memory reduction") composes with KIVI (arXiv 2402.02750) as the official
``ThinK_kivi/models/llama_kivi_think.py`` does: at prefill the channels are
scored (:func:`~memarena.families.kvcache.methods.think.think_channels`) on
the window's queries and the prompt keys KIVI quantizes (the ``l - l mod R``
oldest; all ``l`` when the prompt is shorter than ``R``, where the official
code computes no mask), and every key group KIVI quantizes from then on,
at prefill or when a decoding residual fills, keeps only those channels;
the fp16 key residual and the values are not pruned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import KVCompression, param
from memarena.families.kvcache.cache import HeadwiseLayer
from memarena.families.kvcache.methods.kivi import KiviStore, check_kivi_shape, check_residual
from memarena.families.kvcache.methods.think import think_channels
from memarena.lazy import torch

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = ["KiviThink", "KiviThinkLayer"]


class KiviThinkLayer(HeadwiseLayer):
    """KIVI stores whose quantized keys keep the channels ThinK chose at the first (prefill) forward."""

    def __init__(
        self,
        spec: CacheSpec,
        layer: int,
        bits: int,
        group_size: int,
        residual: int,
        pruning_ratio: float,
        window_tokens: int,
    ) -> None:
        super().__init__(spec, layer, store=lambda h: KiviStore(spec.head_dim, bits, group_size, residual, spec.dtype))
        self.residual, self.pruning_ratio, self.window_tokens = residual, pruning_ratio, window_tokens

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        if self.seen == 0:
            t = k.shape[1]
            n_quant = (t - t % self.residual) or t
            g = self.spec.group_size
            for h, store in enumerate(self.heads):
                assert isinstance(store, KiviStore)
                q_obs = q[h * g : (h + 1) * g, -self.window_tokens :]
                store.set_key_channels(think_channels(q_obs, k[h, :n_quant], self.pruning_ratio))
        super().after_attention(q, k, v, probs)


class KiviThink(KVCompression):
    """KIVI + ThinK: keys pruned to ThinK's query-driven channels, then KIVI-quantized; fp16 residual kept whole."""

    name: ClassVar[str] = "kivi_think"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.kivi_think.KiviThink"
        #: KIVI code width of keys and values.
        bits: int = param(2, choices=(2, 4))
        #: KIVI G: tokens per key group; channels per value group.
        group_size: int = param(32, ge=1)
        #: KIVI R: recent tokens in fp16, a multiple of group_size.
        residual: int = param(128, ge=1)
        #: ThinK lambda: fraction of key channels pruned.
        pruning_ratio: float = param(0.4, ge=0.0, lt=1.0)
        #: ThinK observation window (last prompt queries).
        window_tokens: int = param(32, ge=1)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_residual(self)

    def new_layer(self, spec: CacheSpec, layer: int, budget: float) -> HeadwiseLayer:
        check_kivi_shape(self, spec)
        return KiviThinkLayer(
            spec, layer, self.bits, self.group_size, self.residual, self.pruning_ratio, self.window_tokens
        )
