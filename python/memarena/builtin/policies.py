"""Built-in paging policies: every replacement policy of the Rust core."""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    from memarena.paging.policies import NATIVE_POLICIES

    return list(NATIVE_POLICIES)
