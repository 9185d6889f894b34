"""Built-in derived metrics."""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_metrics() -> list[type[Any]]:
    from memarena.metrics import AverageAccessTime

    return [AverageAccessTime]
