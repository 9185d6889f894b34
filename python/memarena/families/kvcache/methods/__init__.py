"""The registered KV-compression methods, one module each (see :data:`KV_COMPRESSIONS`)."""

from __future__ import annotations

from memarena.families.kvcache.methods.elastic import ElasticCache
from memarena.families.kvcache.methods.full import FullCache
from memarena.families.kvcache.methods.h2o import H2O
from memarena.families.kvcache.methods.h2o_kivi import H2OKivi
from memarena.families.kvcache.methods.kivi import Kivi
from memarena.families.kvcache.methods.kivi_think import KiviThink
from memarena.families.kvcache.methods.knorm import KnormCache
from memarena.families.kvcache.methods.kvmerger import KVMerger
from memarena.families.kvcache.methods.locret import Locret
from memarena.families.kvcache.methods.scissorhands import Scissorhands
from memarena.families.kvcache.methods.snapkv import SnapKV
from memarena.families.kvcache.methods.snapkv_think import SnapKVThink
from memarena.families.kvcache.methods.streaming_llm import StreamingLLM
from memarena.families.kvcache.methods.think import Think

__all__ = [
    "H2O",
    "KV_COMPRESSIONS",
    "ElasticCache",
    "FullCache",
    "H2OKivi",
    "KVMerger",
    "Kivi",
    "KiviThink",
    "KnormCache",
    "Locret",
    "Scissorhands",
    "SnapKV",
    "SnapKVThink",
    "StreamingLLM",
    "Think",
]

#: Every built-in ``kv_compression`` component, in listing order.
KV_COMPRESSIONS: tuple[type, ...] = (
    FullCache,
    Kivi,
    H2O,
    Scissorhands,
    StreamingLLM,
    SnapKV,
    KnormCache,
    Think,
    KiviThink,
    KVMerger,
    ElasticCache,
    Locret,
    SnapKVThink,
    H2OKivi,
)
