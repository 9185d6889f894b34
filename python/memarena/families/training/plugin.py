"""The ``training`` family's hook implementations: registered like any plugin's.

The ``optimizer`` components register on the base install: their modules
import torch only inside functions, so ``optimizer=galore`` composes
everywhere and torch is imported when an optimizer is built (``make``).
"""

from __future__ import annotations

from typing import Any

from memarena import hookimpl


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    from memarena.families.training.optimizers import OPTIMIZERS

    return list(OPTIMIZERS)
