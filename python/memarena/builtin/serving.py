"""Built-in serving components: the KV managers of the Rust core and the ``serving`` family.

The serving workloads register with the other workloads
(:mod:`memarena.builtin.workloads`), the accelerator backends with the other
backends (:mod:`memarena.builtin.backends`); models are the YAML presets of
the ``model`` config group (``model=llama3_8b``).
"""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    from memarena.serving.kv import KV_MANAGERS

    return list(KV_MANAGERS)


@hookimpl
def memarena_register_families() -> list[type[Any]]:
    from memarena.experiments.serving import ServingFamily

    return [ServingFamily]
