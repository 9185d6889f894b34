"""The hook implementations of the memarena plugin ``minilm`` (its entry point).

The import sits inside the hook and the embedder module imports no torch, so
loading the plugin stays cheap for every memarena command.
"""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_embedders() -> list[type[Any]]:
    """Embedders: ``embedder=minilm``."""
    from memarena_minilm.embedder import MiniLM

    return [MiniLM]
