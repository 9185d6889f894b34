"""The registered ``activation`` components, one module each (see :data:`ACTIVATIONS`)."""

from __future__ import annotations

from memarena.families.training.activations.base import TrainingActivation
from memarena.families.training.activations.checkpoint import Checkpoint
from memarena.families.training.activations.memo import Memo
from memarena.families.training.activations.none import KeepAll

__all__ = ["ACTIVATIONS", "Checkpoint", "KeepAll", "Memo", "TrainingActivation"]

#: Every built-in ``activation`` component, in listing order.
ACTIVATIONS: tuple[type[TrainingActivation], ...] = (KeepAll, Checkpoint, Memo)
