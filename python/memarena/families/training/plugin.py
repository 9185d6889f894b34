"""The ``training`` family's hook implementations: registered like any plugin's.

The family, the ``optimizer`` and the ``activation`` components register on
the base install: their modules import torch only inside functions (or
through :mod:`memarena.lazy`), so ``optimizer=galore`` and
``activation=memo`` compose everywhere, and a run where torch is not
installed stops with one error naming ``pip install 'memarena[torch]'``.
"""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    from memarena.families.training.activations import ACTIVATIONS
    from memarena.families.training.optimizers import OPTIMIZERS

    return [*OPTIMIZERS, *ACTIVATIONS]


@hookimpl
def memarena_register_families() -> list[type[Any]]:
    from memarena.families.training.family import TrainingFamily

    return [TrainingFamily]


@hookimpl
def memarena_config_search_path() -> list[str]:
    return ["pkg://memarena.families.training.conf"]
