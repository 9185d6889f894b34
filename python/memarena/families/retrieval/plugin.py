"""The ``retrieval`` family's hook implementations: registered like any plugin's."""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_indexes() -> list[type[Any]]:
    from memarena.indexes import BUILTIN_INDEXES

    return list(BUILTIN_INDEXES)


@hookimpl
def memarena_register_workloads() -> list[type[Any]]:
    from memarena.families.retrieval.workloads import RETRIEVAL_WORKLOADS

    return list(RETRIEVAL_WORKLOADS)


@hookimpl
def memarena_register_families() -> list[type[Any]]:
    from memarena.families.retrieval.family import RetrievalFamily

    return [RetrievalFamily]


@hookimpl
def memarena_config_search_path() -> list[str]:
    return ["pkg://memarena.families.retrieval.conf"]
