"""KV-cache compression on the real tensors of the fixture model (needs ``memarena[torch]``).

* the contract: :class:`KVCache`, :class:`LayerCache`, :class:`HeadwiseLayer`,
  :class:`HeadStore` (:mod:`memarena.families.kvcache.cache`);
* the methods: :data:`KV_COMPRESSIONS` (``kv_compression=<name>``).
"""

from __future__ import annotations

from memarena.families.kvcache.cache import (
    CATEGORIES,
    CacheSpec,
    Fp16Store,
    HeadStore,
    HeadwiseLayer,
    KVCache,
    LayerCache,
    held_tensors,
    storage_bytes,
)
from memarena.families.kvcache.methods import KV_COMPRESSIONS

__all__ = [
    "CATEGORIES",
    "KV_COMPRESSIONS",
    "CacheSpec",
    "Fp16Store",
    "HeadStore",
    "HeadwiseLayer",
    "KVCache",
    "LayerCache",
    "held_tensors",
    "storage_bytes",
]
