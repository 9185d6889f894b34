"""The ``kvcache`` family's hook implementations: registered like any plugin's.

The family and its workload register on the base install; the
``kv_compression`` methods are torch code and register only where torch is
installed (``pip install 'memarena[torch]'``). Without it
``memarena experiment=kvcache`` stops with one error naming the extra.

Registering imports no torch (a second or more, paid by every ``memarena``
command whatever its family): the methods' modules read torch through
:mod:`memarena.families.kvcache.lazy`, and only whether torch is installed
is checked here, without importing it.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from memarena import hookimpl


def _torch_installed() -> bool:
    """Whether ``import torch`` would find torch, without importing it."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # an import hook refusing torch (the no-torch tests), a stub module
        return False


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    if not _torch_installed():
        return []  # the family's run() names the extra
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
