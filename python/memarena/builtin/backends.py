"""Built-in hardware backends, with datasheet figures and their sources."""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_backends() -> list[type[Any]]:
    from memarena.backends.catalog import BUILTIN_BACKENDS
    from memarena.backends.gpus import GPU_BACKENDS

    return [*BUILTIN_BACKENDS, *GPU_BACKENDS]
