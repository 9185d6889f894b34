"""Built-in workloads: traces for the paging family, request streams for the serving family."""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_workloads() -> list[type[Any]]:
    from memarena.workloads.paging import PAGING_WORKLOADS
    from memarena.workloads.serving import SERVING_WORKLOADS

    return [*PAGING_WORKLOADS, *SERVING_WORKLOADS]
