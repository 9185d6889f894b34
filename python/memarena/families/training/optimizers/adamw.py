"""``optimizer=adamw``: torch's AdamW, the baseline every other optimizer's bytes are compared with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.families.training.optimizers.base import AdamConfig, TrainingOptimizer, numel, zero_bytes

if TYPE_CHECKING:
    import torch

    from memarena.families.training.engine import RuleOptimizer

__all__ = ["AdamW"]


class AdamW(TrainingOptimizer):
    """AdamW (Loshchilov & Hutter): torch's single-tensor kernel, fp32-or-param-dtype moments.

    Each update is ``torch.optim.adamw.adamw`` (the function behind
    ``torch.optim.AdamW``) on one parameter, ``foreach=False``: the results
    equal ``torch.optim.AdamW(params, foreach=False)`` exactly. State per
    parameter, as torch keeps it: ``exp_avg`` and ``exp_avg_sq`` shaped like
    the parameter, and ``step``, a float32 scalar tensor.
    """

    name: ClassVar[str] = "adamw"

    @dataclass
    class Config(AdamConfig):
        _target_: str = "memarena.families.training.optimizers.adamw.AdamW"

    def update(self, opt: RuleOptimizer, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        import torch
        from torch.optim.adamw import adamw

        state = opt.state[p]
        if not state:
            # torch.optim.Adam._init_group: step is a float32 scalar (on the CPU unless capturable/fused)
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        beta1, beta2 = group["betas"]
        adamw(
            [p],
            [grad],
            [state["exp_avg"]],
            [state["exp_avg_sq"]],
            [],
            [state["step"]],
            foreach=False,
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )

    def state_bytes(self, shape: tuple[int, ...], itemsize: int, group: dict[str, Any]) -> dict[str, int]:
        out = zero_bytes()
        out["moments_bytes"] = 2 * numel(shape) * itemsize
        out["steps_bytes"] = 4  # the float32 step scalar
        return out
