"""A test plugin whose Python paging policies fail, and observers that raise.

Loaded with ``MEMARENA_PLUGINS=tests.integration.failing_plugin``:
``policy=evict_raises_test`` raises from ``evict``; ``policy=evict_bad_test``
evicts an object that is not resident (the core's ``InvariantError``). With
``FAILING_FINISH=1`` in the environment, ``memarena_run_finish`` raises.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

from memarena import hookimpl
from memarena.api import PagingPolicy


class EvictRaises(PagingPolicy):
    """Raises on its first eviction."""

    name: ClassVar[str] = "evict_raises_test"

    @dataclass
    class Config:
        _target_: str = "tests.integration.failing_plugin.EvictRaises"

    def evict(self, vtime: int) -> int:
        raise RuntimeError("evict bug")


class EvictBad(PagingPolicy):
    """Evicts an object that was never requested (breaks the engine's invariant)."""

    name: ClassVar[str] = "evict_bad_test"

    @dataclass
    class Config:
        _target_: str = "tests.integration.failing_plugin.EvictBad"

    def evict(self, vtime: int) -> int:
        return 10**15


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    return [EvictRaises, EvictBad]


@hookimpl
def memarena_run_finish(run: Any, record: Any) -> None:
    if os.environ.get("FAILING_FINISH"):
        raise RuntimeError("finish observer bug")
