"""``activation=checkpoint``: per-layer activation checkpointing with ``torch.utils.checkpoint``.

Each decoder layer runs under ``torch.utils.checkpoint.checkpoint(layer, x,
None, use_reentrant=False)``: torch's non-reentrant checkpoint keeps the
layer's input (saved through the active saved-tensor hooks, so the meter
counts it) and none of the tensors the layer's ops save; the first time
backward needs one, it reruns the layer's forward and keeps what that saves
until the layer's backward ends. That rematerialised set is the layer's
recompute transient: measured once per input shape by running the layer
under a counting hook (:func:`~memarena.families.training.activations.base.saved_bytes_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.families.training.activations.base import TrainingActivation, parameter_storages, saved_bytes_of

if TYPE_CHECKING:
    import torch as torch_t

    from memarena.families.training.accounting import Meter

__all__ = ["Checkpoint"]


class Checkpoint(TrainingActivation):
    """Per-layer activation checkpointing (torch.utils.checkpoint, non-reentrant): keep inputs, recompute the rest."""

    name: ClassVar[str] = "checkpoint"

    @dataclass
    class Config:
        _target_: str = "memarena.families.training.activations.checkpoint.Checkpoint"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._transient: dict[tuple[int, tuple[int, ...]], int] = {}

    def run_layer(self, layer: Any, x: torch_t.Tensor, meter: Meter, region: str) -> torch_t.Tensor:
        import torch.utils.checkpoint

        key = (id(layer), tuple(x.shape))
        if key not in self._transient:  # once per layer and shape: the probe is one more forward of the layer
            skip = parameter_storages(layer)
            self._transient[key] = saved_bytes_of(lambda: layer(x.detach().requires_grad_(x.requires_grad), None), skip)
        meter.note_transient(region, self._transient[key])
        out: torch_t.Tensor = torch.utils.checkpoint.checkpoint(layer, x, None, use_reentrant=False)
        return out
