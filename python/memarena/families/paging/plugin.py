"""The ``paging`` family's hook implementations: registered like any plugin's."""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    from memarena.families.paging.policies import NATIVE_POLICIES

    return list(NATIVE_POLICIES)


@hookimpl
def memarena_register_workloads() -> list[type[Any]]:
    from memarena.families.paging.workloads import PAGING_WORKLOADS

    return list(PAGING_WORKLOADS)


@hookimpl
def memarena_register_metrics() -> list[type[Any]]:
    from memarena.families.paging.metrics import AverageAccessTime

    return [AverageAccessTime]


@hookimpl
def memarena_register_families() -> list[type[Any]]:
    from memarena.families.paging.family import PagingFamily

    return [PagingFamily]


@hookimpl
def memarena_config_search_path() -> list[str]:
    return ["pkg://memarena.families.paging.conf"]
