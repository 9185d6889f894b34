"""``optimizer=galore8bit``: GaLore with block-wise 8-bit Adam in the projected space (galore-torch's ``AdamW8bit``).

galore-torch 1.0's ``galore_torch/adamw8bit.py`` ``AdamW8bit.step``: for a
GaLore parameter it projects the gradient (:func:`~.galore.project`, with
the step count before the increment), sets the weight decay aside, swaps
``p.data`` for zeros of the low-rank shape, runs bitsandbytes'
``Optimizer2State("adam")`` update on that zero tensor (so it holds the
update ``-lr / (1 - b1^t) * m / denom``), then restores ``p`` plus the
projected-back, scaled update, and applies the decay after:
``p -= lr * wd * p``. The 8-bit-or-32-bit choice (``min_8bit_size``) is made
on the low-rank tensor. Other parameters get bitsandbytes' AdamW8bit
(decay before the update). Upstream calls ``torch.cuda.synchronize()`` in
every step, so it fails without CUDA; this one runs anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import param
from memarena.families.training.optimizers.adam8bit import (
    Adam8bitConfig,
    adam8bit_state_bytes,
    adam8bit_step,
    quant_map_bytes,
)
from memarena.families.training.optimizers.base import TrainingOptimizer, numel
from memarena.families.training.optimizers.galore import (
    GaLoreConfig,
    galore_param_groups,
    low_rank_shape,
    project,
    project_back,
    projection_side,
    projector_shapes,
)

if TYPE_CHECKING:
    import torch

    from memarena.families.training.engine import RuleOptimizer

__all__ = ["GaLore8bit"]


class GaLore8bit(TrainingOptimizer):
    """8-bit GaLore: rank-r projected gradients, their Adam moments block-wise 8-bit.

    Adam defaults are bitsandbytes' ``AdamW8bit``'s, as galore-torch's
    ``AdamW8bit`` (eps 1e-8, weight decay 1e-2); GaLore's as ``galore``.
    """

    name: ClassVar[str] = "galore8bit"

    @dataclass
    class Config(Adam8bitConfig, GaLoreConfig):
        #: Adam's epsilon (bitsandbytes' AdamW8bit default).
        eps: float = param(1e-8, gt=0)
        #: Decoupled weight decay (bitsandbytes' AdamW8bit default).
        weight_decay: float = param(1e-2, ge=0)
        _target_: str = "memarena.families.training.optimizers.galore8bit.GaLore8bit"

    def param_groups(self, named: list[tuple[str | None, torch.Tensor]]) -> list[dict[str, Any]]:
        c = self.config
        keys = {"rank": c.rank, "update_proj_gap": c.update_proj_gap, "scale": c.scale, "proj_type": c.proj_type}
        return galore_param_groups(named, list(c.target_modules), keys)

    def update(self, opt: RuleOptimizer, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        import torch

        c = self.config
        state = opt.state[p]
        if not group["galore"]:
            adam8bit_step(opt, p, grad, state, group, group["weight_decay"], c.block_size, c.min_8bit_size)
            return
        if "step" not in state:
            state["step"] = 0
        low = project(grad, state, group, state["step"])
        delta = torch.zeros(low.shape, dtype=p.dtype, device=p.device)
        adam8bit_step(opt, delta, low, state, group, 0.0, c.block_size, c.min_8bit_size)
        p.add_(project_back(delta, state, group, tuple(p.shape)))
        if group["weight_decay"] > 0.0:
            p.add_(p, alpha=-group["lr"] * group["weight_decay"])

    def state_bytes(self, shape: tuple[int, ...], itemsize: int, group: dict[str, Any]) -> dict[str, int]:
        c = self.config
        if not group["galore"]:
            return adam8bit_state_bytes(numel(shape), c.block_size, c.min_8bit_size)
        side = projection_side(shape, group["proj_type"])
        out = adam8bit_state_bytes(numel(low_rank_shape(shape, group["rank"], side)), c.block_size, c.min_8bit_size)
        out["projectors_bytes"] = sum(numel(s) for s in projector_shapes(shape, group["rank"], side)) * itemsize
        return out

    def shared_bytes(self, opt: RuleOptimizer) -> dict[str, int]:
        return quant_map_bytes(opt)
