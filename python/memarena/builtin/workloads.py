"""Built-in workloads: synthetic and file traces for the paging family."""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_workloads() -> list[type[Any]]:
    from memarena.workloads.paging import PAGING_WORKLOADS

    return list(PAGING_WORKLOADS)
