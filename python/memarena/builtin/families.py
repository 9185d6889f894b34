"""Built-in experiment families."""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_families() -> list[type[Any]]:
    from memarena.experiments.paging import PagingFamily

    return [PagingFamily]
