"""A test plugin: ``kv_compression=keep_recent``, the simplest method that drops tokens.

After every forward each key/value head keeps its ``ceil(budget x n)``
most recent rows of the ``n`` it holds (at least one). Its bytes are
easy to compute by hand: ``ceil(budget x tokens)`` fp16 rows of K and V.
``prefill_chunk`` (a ClassVar override in ``keep_recent_chunked``) makes
the family prefill chunk by chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from memarena import hookimpl
from memarena.api import KVCompression


def _layer_class() -> type:
    import torch

    from memarena.families.kvcache.cache import HeadwiseLayer

    class KeepRecentLayer(HeadwiseLayer):
        def __init__(self, spec: Any, layer: int, budget: float) -> None:
            super().__init__(spec, layer)
            self.budget = budget

        def after_attention(self, q: Any, k: Any, v: Any, probs: Any) -> None:
            super().after_attention(q, k, v, probs)
            for store in self.heads:
                n = len(store)
                keep = max(1, math.ceil(self.budget * n))
                store.keep(torch.arange(n - keep, n))

    return KeepRecentLayer


class KeepRecent(KVCompression):
    """Test method: keep the most recent ceil(budget x n) tokens of every head."""

    name: ClassVar[str] = "keep_recent"

    @dataclass
    class Config:
        _target_: str = "tests.kvcache.recent_plugin.KeepRecent"

    def new_layer(self, spec: Any, layer: int, budget: float) -> Any:
        return _layer_class()(spec, layer, budget)


class KeepRecentChunked(KeepRecent):
    """Test method: keep_recent, prefilled in chunks of 32 tokens."""

    name: ClassVar[str] = "keep_recent_chunked"
    prefill_chunk_tokens: ClassVar[int | None] = 32

    @dataclass
    class Config:
        _target_: str = "tests.kvcache.recent_plugin.KeepRecentChunked"


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    return [KeepRecent, KeepRecentChunked]
