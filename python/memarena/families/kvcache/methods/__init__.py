"""The registered KV-compression methods, one module each (see :data:`KV_COMPRESSIONS`)."""

from __future__ import annotations

from memarena.families.kvcache.methods.elastic import ElasticCache
from memarena.families.kvcache.methods.full import FullCache
from memarena.families.kvcache.methods.kvmerger import KVMerger
from memarena.families.kvcache.methods.locret import Locret

__all__ = ["KV_COMPRESSIONS", "ElasticCache", "FullCache", "KVMerger", "Locret"]

#: Every built-in ``kv_compression`` component, in listing order.
KV_COMPRESSIONS: tuple[type, ...] = (FullCache, KVMerger, ElasticCache, Locret)
