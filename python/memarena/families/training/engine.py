"""The torch optimizer every ``optimizer`` component builds: one update rule per parameter, per-layer hooks.

Imported by :meth:`TrainingOptimizer.make
<memarena.families.training.optimizers.base.TrainingOptimizer.make>` only
(it imports torch at import time, and its class derives from
``torch.optim.Optimizer``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from memarena.families.training.optimizers.base import CATEGORIES, TrainingOptimizer, zero_bytes

__all__ = ["RuleOptimizer"]


class RuleOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose per-parameter update is its component's :meth:`update`.

    ``step()`` updates every parameter that has a gradient. With the
    component's ``per_layer`` set, a post-accumulate-grad hook updates each
    parameter as soon as its gradient is complete and frees that gradient
    (``p.grad = None``), as GaLore's ``torchrun_main.py`` does with one
    optimizer per parameter: after backward no gradient is held and
    ``step()`` finds nothing to do. Parameters updated either way end equal.

    :attr:`shared` holds tensors kept once per optimizer (the 8-bit
    quantization maps), by name.
    """

    def __init__(self, method: TrainingOptimizer, groups: list[dict[str, Any]]) -> None:
        self.method = method
        self.shared: dict[str, torch.Tensor] = {}
        super().__init__(groups, method.hyper())
        self._hooks: list[Any] = []
        if method.config.per_layer:
            for group in self.param_groups:
                for p in group["params"]:
                    self._hooks.append(p.register_post_accumulate_grad_hook(self._hook_for(group)))

    def _hook_for(self, group: dict[str, Any]) -> Callable[[torch.Tensor], None]:
        def hook(p: torch.Tensor) -> None:
            if p.grad is None:
                return
            with torch.no_grad():
                self.method.update(self, p, p.grad, group)
            p.grad = None

        return hook

    def remove_hooks(self) -> None:
        """Take the per-layer hooks off the parameters (later updates happen in ``step()``)."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.method.update(self, p, p.grad, group)
        return loss

    def bytes_by_category(self) -> dict[str, int]:
        """Bytes of optimizer state held now, by category (:data:`CATEGORIES`), computed from shapes.

        A parameter counts once its state exists (after its first update).
        """
        out = zero_bytes()
        for group in self.param_groups:
            for p in group["params"]:
                if self.state.get(p):
                    for k, v in self.method.state_bytes(tuple(p.shape), p.element_size(), group).items():
                        out[k] += v
        for k, v in self.method.shared_bytes(self).items():
            out[k] += v
        assert set(out) == set(CATEGORIES), f"{self.method.name}: unknown byte categories {sorted(set(out))}"
        return out
