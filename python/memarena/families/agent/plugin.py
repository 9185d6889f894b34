"""The ``agent`` family's hook implementations: registered like any plugin's."""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_embedders() -> list[type[Any]]:
    from memarena.families.agent.retrievers import EMBEDDERS

    return list(EMBEDDERS)
