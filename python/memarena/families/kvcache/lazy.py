"""Moved to :mod:`memarena.lazy` (shared by the torch families); re-exported here for plugins that import it."""

from __future__ import annotations

from memarena.lazy import F, LazyModule, nn, torch

__all__ = ["F", "LazyModule", "nn", "torch"]
