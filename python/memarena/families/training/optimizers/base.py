"""The base of the ``optimizer`` components: hyper-parameters, parameter groups and byte accounting.

A component is torch-free (registering and listing import no torch); its
:meth:`TrainingOptimizer.make` builds the torch optimizer, a
:class:`memarena.families.training.engine.RuleOptimizer`, that calls back
into the component for each parameter's update. So a training loop does::

    opt = GaLore(rank=8).make(model.named_parameters())
    for batch in data:
        loss(model, batch).backward()
        opt.step()            # a no-op with per_layer=True: the update ran in backward
        opt.zero_grad()
    opt.bytes_by_category()   # {"moments_bytes": ..., "projectors_bytes": ..., ...}

**Accounting.** :meth:`TrainingOptimizer.state_bytes` gives, from a
parameter's shape and element size alone, the bytes of every tensor the
optimizer holds for it, by category (:data:`CATEGORIES`); ``shared_bytes``
gives those held once per optimizer (the quantization maps). The torch
optimizer sums them over the parameters that have state. Since the sums are
computed from shapes, the same code sizes published models on paper, and
``tests/training/test_accounting.py`` checks them against the storage of
the tensors each optimizer actually holds.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import Optimizer, param

if TYPE_CHECKING:
    import torch

    from memarena.families.training.engine import RuleOptimizer

__all__ = ["CATEGORIES", "AdamConfig", "TrainingOptimizer", "named_params", "numel", "zero_bytes"]

#: The categories of optimizer state, the keys of ``bytes_by_category()``:
#: first and second moments (any precision), GaLore's projection matrices,
#: the 8-bit quantization maps, the per-block scales (absmax) of 8-bit states,
#: and step counters held as tensors (torch's AdamW keeps a float32 scalar per parameter).
CATEGORIES: tuple[str, ...] = ("moments_bytes", "projectors_bytes", "quant_maps_bytes", "absmax_bytes", "steps_bytes")


def zero_bytes() -> dict[str, int]:
    """Every category at 0 bytes."""
    return dict.fromkeys(CATEGORIES, 0)


def numel(shape: tuple[int, ...]) -> int:
    """Elements of a tensor of ``shape``."""
    n = 1
    for d in shape:
        n *= d
    return n


def named_params(params: Iterable[Any]) -> list[tuple[str | None, torch.Tensor]]:
    """``params`` as ``(name, tensor)`` pairs: ``model.named_parameters()`` or plain tensors (name None).

    :raises TypeError: a parameter group dict (build groups with the component instead).
    """
    out: list[tuple[str | None, Any]] = []
    for item in params:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            out.append((item[0], item[1]))
        elif isinstance(item, dict):
            raise TypeError("make(params): pass model.named_parameters() or tensors, not parameter-group dicts")
        else:
            out.append((None, item))
    if not out:
        raise ValueError("make(params): no parameters given")
    return out


@dataclass
class AdamConfig:
    """The hyper-parameters every Adam-family optimizer here takes (defaults: torch's AdamW)."""

    #: Learning rate.
    lr: float = param(1e-3, gt=0)
    #: Adam's beta1 (first-moment decay).
    beta1: float = param(0.9, ge=0, lt=1)
    #: Adam's beta2 (second-moment decay).
    beta2: float = param(0.999, ge=0, lt=1)
    #: Adam's epsilon.
    eps: float = param(1e-8, gt=0)
    #: Decoupled weight decay.
    weight_decay: float = param(1e-2, ge=0)
    #: Update each parameter in a post-accumulate-grad hook during backward and free
    #: its gradient there, so no full set of gradients is ever held (GaLore's per-layer updates).
    per_layer: bool = False


class TrainingOptimizer(Optimizer):
    """Base of the training family's optimizers: ``make(params)`` builds the torch optimizer.

    Subclasses implement :meth:`init_state`, :meth:`update` and
    :meth:`state_bytes`; they may override :meth:`param_groups` (GaLore
    splits the matrices it projects from the rest) and :meth:`shared_bytes`.
    The update methods run under ``torch.no_grad()``.
    """

    #: The per-group keys the update reads (copied from the config into each parameter group).
    GROUP_KEYS: ClassVar[tuple[str, ...]] = ("lr", "betas", "eps", "weight_decay")

    def hyper(self) -> dict[str, Any]:
        """The optimizer-wide hyper-parameters as torch parameter-group keys (``betas`` a pair)."""
        c = self.config
        return {"lr": c.lr, "betas": (c.beta1, c.beta2), "eps": c.eps, "weight_decay": c.weight_decay}

    def make(self, params: Iterable[Any]) -> RuleOptimizer:
        """The torch optimizer over ``params`` (``model.named_parameters()`` or tensors).

        With ``per_layer`` it has registered a post-accumulate-grad hook on
        every parameter (``remove_hooks()`` takes them off).
        """
        from memarena.families.training.engine import RuleOptimizer

        return RuleOptimizer(self, self.param_groups(named_params(params)))

    def param_groups(self, named: list[tuple[str | None, torch.Tensor]]) -> list[dict[str, Any]]:
        """The torch parameter groups: by default one, holding every parameter."""
        return [{"params": [p for _, p in named]}]

    @abc.abstractmethod
    def update(self, opt: RuleOptimizer, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        """Update ``p`` in place from ``grad``; its state is ``opt.state[p]`` (empty before the first update)."""

    @abc.abstractmethod
    def state_bytes(self, shape: tuple[int, ...], itemsize: int, group: dict[str, Any]) -> dict[str, int]:
        """Bytes by category of the state held for one parameter of ``shape`` (elements of ``itemsize`` bytes).

        Exact: equals the storage of the tensors :meth:`update` keeps in the
        parameter's state once it has run.
        """

    def shared_bytes(self, opt: RuleOptimizer) -> dict[str, int]:
        """Bytes by category held once per optimizer, not per parameter (default: none)."""
        return zero_bytes()
