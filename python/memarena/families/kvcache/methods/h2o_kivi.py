"""H2O + KIVI: H2O's heavy hitters and recent tokens, held in KIVI's quantized store.

H2O (arXiv 2306.14048) decides which tokens stay (accumulated attention,
evicting at prefill and at every decode step); KIVI (arXiv 2402.02750)
decides how each head stores them (bit-packed per-channel key groups,
per-token values, fp16 residual). H2O's evictions reach KIVI as
:meth:`~memarena.families.kvcache.methods.kivi.KiviStore.keep`: a row gather
on the packed codes that never re-quantizes (a key group that loses rows
keeps its scale and minimum; its length is then stored, category
``indices``). H2O's scores are over the rows attention saw, i.e. the
dequantized keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import KVCompression, param
from memarena.families.kvcache.methods.budgets import HEAD_BUDGETS, LAYER_BUDGETS
from memarena.families.kvcache.methods.h2o import H2O, H2OLayer
from memarena.families.kvcache.methods.kivi import KiviStore, check_kivi_shape, check_residual

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = ["H2OKivi"]


class H2OKivi(KVCompression):
    """H2O + KIVI: heavy hitters and recent tokens (H2O) in 2/4-bit quantized storage (KIVI)."""

    name: ClassVar[str] = "h2o_kivi"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.h2o_kivi.H2OKivi"
        #: H2O: share of the budget kept as the recent window (the paper: half).
        recent_fraction: float = param(0.5, ge=0.0, le=1.0)
        #: H2O: budget over layers, uniform or pyramid (PyramidKV).
        layer_budget: str = param("uniform", choices=LAYER_BUDGETS)
        #: H2O: budget over the heads of a layer, uniform or adaptive (Ada-KV).
        head_budget: str = param("uniform", choices=HEAD_BUDGETS)
        #: KIVI code width of keys and values.
        bits: int = param(2, choices=(2, 4))
        #: KIVI G: tokens per key group; channels per value group.
        group_size: int = param(32, ge=1)
        #: KIVI R: recent tokens in fp16, a multiple of group_size.
        residual: int = param(128, ge=1)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_residual(self)

    def new_layer(self, spec: CacheSpec, layer: int, budget: float) -> H2OLayer:
        check_kivi_shape(self, spec)
        bits, g, r = self.bits, self.group_size, self.residual
        h2o = H2O(recent_fraction=self.recent_fraction, layer_budget=self.layer_budget, head_budget=self.head_budget)
        return h2o.new_layer(spec, layer, budget, store=lambda h: KiviStore(spec.head_dim, bits, g, r, spec.dtype))
