"""The ``kvcache`` family's hook implementations: registered like any plugin's.

The family, its workload and the ``kv_compression`` methods register on
the base install too: registering imports no torch (a second or more, paid
by every ``memarena`` command whatever its family), since the methods'
modules read torch through :mod:`memarena.lazy`. So
``kv_compression=kivi`` composes everywhere, and a run that needs torch
where it is not installed (``experiment=kvcache``, or a serving run with a
``kv_compression``) stops with one error naming the extra,
``pip install 'memarena[torch]'``.
"""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    from memarena.families.kvcache.methods import KV_COMPRESSIONS

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
