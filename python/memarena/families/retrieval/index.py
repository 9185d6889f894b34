"""Moved to :mod:`memarena.indexes` (the indexes are shared with the agent family); kept for old imports."""

from __future__ import annotations

from memarena.indexes import core as _core
from memarena.indexes.core import *  # noqa: F403

__all__ = list(_core.__all__)
