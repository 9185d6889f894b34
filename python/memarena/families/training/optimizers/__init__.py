"""The registered ``optimizer`` components, one module each (see :data:`OPTIMIZERS`)."""

from __future__ import annotations

from memarena.families.training.optimizers.adam8bit import Adam8bit
from memarena.families.training.optimizers.adamw import AdamW
from memarena.families.training.optimizers.base import CATEGORIES, TrainingOptimizer
from memarena.families.training.optimizers.frugal import FRUGAL
from memarena.families.training.optimizers.galore import GaLore
from memarena.families.training.optimizers.galore8bit import GaLore8bit

__all__ = ["CATEGORIES", "FRUGAL", "OPTIMIZERS", "Adam8bit", "AdamW", "GaLore", "GaLore8bit", "TrainingOptimizer"]

#: Every built-in ``optimizer`` component, in listing order.
OPTIMIZERS: tuple[type[TrainingOptimizer], ...] = (AdamW, GaLore, Adam8bit, GaLore8bit, FRUGAL)
