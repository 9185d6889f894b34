"""A test plugin that raises at the lifecycle point ``FAULT`` names (environment variable).

Loaded with ``MEMARENA_PLUGINS=tests.reliability.faulty_plugin``. ``FAULT``:
``import`` / ``import_exit`` (RuntimeError / SystemExit at import), ``register``
(a registration hook), ``search_path``, ``configure``, ``run_start``, ``run_result``,
``run_finish`` (hooks), ``init`` / ``evict`` (its paging policy
``policy=faulty_test``: constructor / eviction callback), ``metric`` (its metric's compute).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

from memarena import hookimpl
from memarena.api import Metric, PagingPolicy

FAULT = os.environ.get("FAULT", "")

if FAULT == "import":
    raise RuntimeError("faulty plugin: import bug")
if FAULT == "import_exit":
    raise SystemExit("faulty plugin: exit at import")


def _maybe(point: str) -> None:
    if point == FAULT:
        raise RuntimeError(f"faulty plugin: {point} bug")


class FaultyPolicy(PagingPolicy):
    """FIFO in Python, unless it is told to fail."""

    name: ClassVar[str] = "faulty_test"

    @dataclass
    class Config:
        _target_: str = "tests.reliability.faulty_plugin.FaultyPolicy"

    def __init__(self, capacity: int, **params: Any) -> None:
        _maybe("init")
        super().__init__(capacity, **params)
        self.queue: list[int] = []

    def on_insert(self, obj_id: int, size: int, vtime: int) -> None:
        self.queue.append(obj_id)

    def evict(self, vtime: int) -> int:
        _maybe("evict")
        return self.queue.pop(0)

    def on_evict(self, obj_id: int) -> None:
        if obj_id in self.queue:
            self.queue.remove(obj_id)


class FaultyMetric(Metric):
    """Twice the miss ratio, unless it is told to fail."""

    name: ClassVar[str] = "faulty_metric_test"
    families: ClassVar[tuple[str, ...]] = ("paging",)

    @dataclass
    class Config:
        _target_: str = "tests.reliability.faulty_plugin.FaultyMetric"

    def compute(self, run: Any, row: Any) -> dict[str, float]:
        _maybe("metric")
        return {"double_miss_ratio": 2 * row["miss_ratio"]}


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    _maybe("register")
    return [FaultyPolicy]


@hookimpl
def memarena_register_metrics() -> list[type[Any]]:
    return [FaultyMetric]


@hookimpl
def memarena_config_search_path() -> list[str]:
    _maybe("search_path")
    return []


@hookimpl
def memarena_configure(config: Any) -> None:
    _maybe("configure")


@hookimpl
def memarena_run_start(run: Any) -> None:
    _maybe("run_start")


@hookimpl
def memarena_run_result(run: Any, row: Any) -> None:
    _maybe("run_result")


@hookimpl
def memarena_run_finish(run: Any, record: Any) -> None:
    _maybe("run_finish")
