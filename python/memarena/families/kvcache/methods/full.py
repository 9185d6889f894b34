"""The uncompressed cache: every token's keys and values in fp16 (the baseline every ratio is against)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from memarena.api import KVCompression
from memarena.families.kvcache.cache import HeadwiseLayer

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec


class FullCache(KVCompression):
    """Full cache: every token, fp16 keys and values (the reference; ignores the budget)."""

    name: ClassVar[str] = "full"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.full.FullCache"

    def new_layer(self, spec: CacheSpec, layer: int, budget: float) -> HeadwiseLayer:
        return HeadwiseLayer(spec, layer)
