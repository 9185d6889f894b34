"""A test plugin whose component the config fuzzing must cover like a built-in one.

Loaded with ``MEMARENA_PLUGINS=tests.reliability.fuzz_plugin``:
``policy=fuzz_fifo_test`` is a Python paging policy (FIFO or LIFO) with
parameters of every kind a plugin writes: bounded int and float, a choice,
a flag.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

from memarena import hookimpl
from memarena.api import PagingPolicy, param


class FuzzFifo(PagingPolicy):
    """FIFO (or LIFO) in Python, evicting ``batch`` objects' worth of room at a time."""

    name: ClassVar[str] = "fuzz_fifo_test"

    @dataclass
    class Config:
        _target_: str = "tests.reliability.fuzz_plugin.FuzzFifo"
        batch: int = param(1, ge=1, le=64)
        headroom: float = param(0.0, ge=0.0, lt=1.0)
        order: str = param("fifo", choices=("fifo", "lifo"))
        trace_evictions: bool = False

    def __init__(self, capacity: int, **params: Any) -> None:
        super().__init__(capacity, **params)
        self.config = self.make_config(**self.params)
        self.queue: deque[int] = deque()

    def on_insert(self, obj_id: int, size: int, vtime: int) -> None:
        self.queue.append(obj_id)

    def evict(self, vtime: int) -> int:
        return self.queue.popleft() if self.config.order == "fifo" else self.queue.pop()

    def on_evict(self, obj_id: int) -> None:
        if obj_id in self.queue:
            self.queue.remove(obj_id)


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    return [FuzzFifo]
