"""Built-in retrieval components: the indexes of the Rust core, the seeded datasets and the ``retrieval`` family."""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_indexes() -> list[type[Any]]:
    from memarena.retrieval.indexes import BUILTIN_INDEXES

    return list(BUILTIN_INDEXES)


@hookimpl
def memarena_register_workloads() -> list[type[Any]]:
    from memarena.workloads.retrieval import RETRIEVAL_WORKLOADS

    return list(RETRIEVAL_WORKLOADS)


@hookimpl
def memarena_register_families() -> list[type[Any]]:
    from memarena.experiments.retrieval import RetrievalFamily

    return [RetrievalFamily]
