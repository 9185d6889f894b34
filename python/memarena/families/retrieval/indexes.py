"""Moved to :mod:`memarena.indexes` (the indexes are shared with the agent family); kept for old imports.

Configs saved by earlier runs name ``memarena.families.retrieval.indexes.<Kind>`` as their ``_target_``:
these names keep them loading.
"""

from __future__ import annotations

from memarena.indexes import registered as _registered
from memarena.indexes.registered import *  # noqa: F403

__all__ = list(_registered.__all__)
