"""``activation=none``: every tensor autograd saves stays on the device until backward uses it (the baseline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.families.training.activations.base import TrainingActivation

if TYPE_CHECKING:
    import torch

    from memarena.families.training.accounting import Meter

__all__ = ["KeepAll"]


class KeepAll(TrainingActivation):
    """Keep every saved activation on the device (plain autograd, no recompute)."""

    name: ClassVar[str] = "none"

    @dataclass
    class Config:
        _target_: str = "memarena.families.training.activations.none.KeepAll"

    def run_layer(self, layer: Any, x: torch.Tensor, meter: Meter, region: str) -> torch.Tensor:
        return layer(x, None)
