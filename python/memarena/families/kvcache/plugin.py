"""The ``kvcache`` family's hook implementations: registered like any plugin's.

The family and its workload register on the base install; the
``kv_compression`` methods are torch code and register only where torch is
installed (``pip install 'memarena[torch]'``). Without it
``memarena experiment=kvcache`` stops with one error naming the extra.
"""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


def _torch_missing(exc: ImportError) -> bool:
    name = getattr(exc, "name", None) or ""
    return name == "torch" or name.startswith("torch.")


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    try:
        from memarena.families.kvcache.methods import KV_COMPRESSIONS
    except ImportError as exc:
        if _torch_missing(exc):
            return []  # the family's run() names the extra
        raise
    return list(KV_COMPRESSIONS)


@hookimpl
def memarena_register_workloads() -> list[type[Any]]:
    from memarena.families.kvcache.workloads import KVCACHE_WORKLOADS

    return list(KVCACHE_WORKLOADS)


@hookimpl
def memarena_register_families() -> list[type[Any]]:
    from memarena.families.kvcache.family import KVCacheFamily

    return [KVCacheFamily]


@hookimpl
def memarena_config_search_path() -> list[str]:
    return ["pkg://memarena.families.kvcache.conf"]
