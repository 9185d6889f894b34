"""``torch`` for the torch families' modules (``kvcache``, ``training``), imported on first use instead of at import.

Building the registry imports every method's module (the registration hook
returns the component classes). torch takes seconds to import, and every
``memarena`` command builds the registry, whatever its family: so the
torch families' component modules (the kvcache cache contract
:mod:`~memarena.families.kvcache.cache` and its methods, the training
family's activation policies) use these stand-ins, and torch is imported the first time
one of its attributes is read (a layer is built, a tensor made), never
while registering, listing or composing configs. Type checkers see the real
modules.

The rule for such a module: ``from memarena.lazy import
torch`` (and ``F``, ``nn``) instead of ``import torch``; read torch only
inside functions (no torch values in module constants, dataclass defaults,
decorators or base classes: put an ``nn.Module`` in a module of its own,
imported where it is used). ``tests/kvcache/test_lazy_torch.py`` and
``tests/training/test_registry.py`` check that building the registry imports no torch.
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any

__all__ = ["F", "LazyModule", "nn", "torch"]


class LazyModule(types.ModuleType):
    """A stand-in for the module ``name``: the first attribute read imports it.

    Each attribute read is cached on the stand-in, so later reads cost what
    a plain module's do. Without the module installed the read raises
    :class:`ModuleNotFoundError` naming it, as ``import name`` would.
    """

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)  # copy/pickle/inspect probes must not import torch
        value = getattr(importlib.import_module(self.__name__), attr)
        setattr(self, attr, value)
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


if TYPE_CHECKING:
    import torch as torch
    from torch import nn as nn
    from torch.nn import functional as F
else:
    torch = LazyModule("torch")
    nn = LazyModule("torch.nn")
    F = LazyModule("torch.nn.functional")
