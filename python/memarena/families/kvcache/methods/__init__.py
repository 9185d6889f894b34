"""The registered KV-compression methods, one module each (see :data:`KV_COMPRESSIONS`)."""

from __future__ import annotations

from memarena.families.kvcache.methods.full import FullCache
from memarena.families.kvcache.methods.kivi import Kivi
from memarena.families.kvcache.methods.kivi_think import KiviThink
from memarena.families.kvcache.methods.think import Think

__all__ = ["KV_COMPRESSIONS", "FullCache", "Kivi", "KiviThink", "Think"]

#: Every built-in ``kv_compression`` component, in listing order.
KV_COMPRESSIONS: tuple[type, ...] = (FullCache, Kivi, Think, KiviThink)
