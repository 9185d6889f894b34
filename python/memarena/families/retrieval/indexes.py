"""Moved to :mod:`memarena.indexes` (the indexes are shared with the agent family); kept for old imports.

Configs saved by earlier runs name ``memarena.families.retrieval.indexes.<Kind>`` as their ``_target_``:
these names keep them loading.
"""

from __future__ import annotations

from memarena.indexes.registered import (
    BUILTIN_INDEXES,
    E2LSH,
    HNSW,
    IVF,
    SPANN,
    Curator,
    Flat,
    RegisteredIndex,
    SimHash,
    build_defaults,
)

__all__ = [
    "BUILTIN_INDEXES",
    "E2LSH",
    "HNSW",
    "IVF",
    "SPANN",
    "Curator",
    "Flat",
    "RegisteredIndex",
    "SimHash",
    "build_defaults",
]
