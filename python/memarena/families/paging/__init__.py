"""Paging: traces, replacement policies and their replay in the Rust core.

Typed facade over ``memarena._core``: :class:`Trace` (numpy columns, file
readers, seeded generators, oracle predictions), :func:`simulate` and
:func:`simulate_many` (resumable, GIL-free replay; native policies in
parallel), :class:`Replay` (a replay fed step by step, watchable between
steps), :func:`lru_mrc` (exact LRU miss-ratio curves in one pass) and the
policy classes in :mod:`memarena.families.paging.policies`.
"""

from __future__ import annotations

from memarena.families.paging.sim import PagingResult, Replay, lru_mrc, simulate, simulate_many
from memarena.families.paging.trace import NEVER, Trace

__all__ = ["NEVER", "PagingResult", "Replay", "Trace", "lru_mrc", "simulate", "simulate_many"]
