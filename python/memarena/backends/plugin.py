"""The hardware backends' hook implementation: built-in backends with datasheet figures and their sources.

Backends are shared by every family, so they register apart from any family.
"""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_backends() -> list[type[Any]]:
    from memarena.backends.catalog import BUILTIN_BACKENDS
    from memarena.backends.gpus import GPU_BACKENDS

    return [*BUILTIN_BACKENDS, *GPU_BACKENDS]
