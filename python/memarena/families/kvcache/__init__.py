"""KV-cache compression on the real tensors of the fixture model (needs ``memarena[torch]``).

* the contract: :class:`KVCache`, :class:`LayerCache`, :class:`HeadwiseLayer`,
  :class:`HeadStore` (:mod:`memarena.families.kvcache.cache`);
* the methods: :data:`KV_COMPRESSIONS` (``kv_compression=<name>``);
* the experiment: :class:`~memarena.families.kvcache.family.KVCacheFamily`
  (``memarena experiment=kvcache``), its evaluation helpers
  (:mod:`memarena.families.kvcache.eval`: chunked prefill, decoding).

The package imports without torch (its plugin registers the family, so
``memarena plugins`` and ``--help`` work on the base install); the names
below load on first read, and import torch only when used (a layer built,
a tensor made: :mod:`memarena.lazy`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memarena.families.kvcache.cache import (
        CATEGORIES,
        Fp16Store,
        HeadStore,
        HeadwiseLayer,
        KVCache,
        LayerCache,
        held_tensors,
        storage_bytes,
    )
    from memarena.families.kvcache.methods import KV_COMPRESSIONS
    from memarena.models.bytellama import CacheSpec

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

_WHERE = dict.fromkeys(__all__, "memarena.families.kvcache.cache") | {
    "KV_COMPRESSIONS": "memarena.families.kvcache.methods",
    # the model's KV geometry: shared with the serving family, so it lives with the model (public API)
    "CacheSpec": "memarena.models.bytellama",
}


def __getattr__(name: str) -> Any:
    # PEP 562: the torch-backed names load on first use, so the package itself needs no torch.
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
