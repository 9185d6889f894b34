"""The ``serving`` family's hook implementations: registered like any plugin's.

Models are the YAML presets of the family's ``model`` config group
(``model=llama3_8b``); the accelerator backends are shared by every family
and register with the other backends (:mod:`memarena.backends.plugin`).
"""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    from memarena.families.serving.kv import KV_MANAGERS
    from memarena.families.serving.reference import PagedPythonKV

    return [*KV_MANAGERS, PagedPythonKV]


@hookimpl
def memarena_register_workloads() -> list[type[Any]]:
    from memarena.families.serving.workloads import SERVING_WORKLOADS

    return list(SERVING_WORKLOADS)


@hookimpl
def memarena_register_families() -> list[type[Any]]:
    from memarena.families.serving.family import ServingFamily

    return [ServingFamily]


@hookimpl
def memarena_config_search_path() -> list[str]:
    return ["pkg://memarena.families.serving.conf"]
