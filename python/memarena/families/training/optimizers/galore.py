"""``optimizer=galore``: GaLore (Zhao et al. 2024, arXiv 2403.03507), Adam on low-rank projected gradients.

The semantics are galore-torch 1.0's (github jiaweizzhao/GaLore,
``galore_torch/adamw.py`` ``AdamW.step`` and ``galore_torch/galore_projector.py``
``GaLoreProjector``), which the parity tests check to 1e-6:

* **Which side.** ``project(grad, iter)``: for ``proj_type="std"`` a matrix
  with ``shape[0] >= shape[1]`` takes the *right* projector ``P = Vh[:r]``
  (``r x n``) and ``low = G @ P.T`` (``m x r``); a wide one takes the *left*
  ``P = U[:, :r]`` and ``low = P.T @ G``. ``reverse_std`` swaps the two;
  ``left`` and ``right`` always use that side; ``full`` uses both,
  ``low = U[:, :r].T @ G @ Vh[:r].T``. ``project_back`` multiplies back
  on the same side (``low @ P``, ``P @ low``, ``U_r @ low @ Vh_r``).
* **When.** The projector is recomputed by an SVD of the current gradient
  when ``ortho_matrix is None or iter % update_proj_gap == 0``, ``iter``
  being the step count *before* this step's increment (so at steps 0, T,
  2T, ...). Adam's moments are kept across a refresh.
* **Dtype.** ``get_orthogonal_matrix`` takes the SVD in float32 (``.float()``
  of a non-float32 gradient) and casts the factor back to the gradient's
  dtype; so projector, low-rank gradient and moments have the gradient's dtype.
* **Scale.** ``project_back`` returns ``full_rank_grad * self.scale``: the
  scale multiplies the projected-back normalized update, not the gradient.
* **Adam.** transformers' (deprecated) AdamW that galore-torch copies:
  ``denom = sqrt(v) + eps``, ``step_size = lr * sqrt(1 - b2^t) / (1 - b1^t)``
  (with ``correct_bias``), ``p -= step_size * project_back(m / denom)``,
  then decoupled decay ``p -= lr * wd * p`` *after* the update. Parameters
  outside the GaLore group get the same AdamW unprojected.

Differences, none of which changes an update: galore-torch keeps the
projector as an object in ``state["projector"]`` (outside ``state_dict()``
tensors) whose float32 ``ortho_matrix`` is a *view* of the whole SVD
factor (``Vh[:rank, :]`` keeps all ``min(m, n)`` rows of ``Vh`` alive,
``U[:, :rank]`` all of ``U``); memarena keeps a compact copy of the ``r``
rows or columns as a state tensor (``proj``, or ``proj_left`` and
``proj_right`` for ``full``). And ``project_back`` upstream picks the side
from the low-rank gradient's shape (``low.shape[0] >= low.shape[1]``) rather
than from the side it projected on: the two agree except for
``reverse_std`` on a wide matrix with ``rank >= shape[0]``, where upstream
multiplies mismatched shapes and raises; memarena projects back on the side it used.
Matrices only (galore-torch's ``GaLoreProjectorTensor`` for ``dim > 2`` is not here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import param
from memarena.families.training.optimizers.base import AdamConfig, TrainingOptimizer, numel, zero_bytes

if TYPE_CHECKING:
    import torch

    from memarena.families.training.engine import RuleOptimizer

__all__ = [
    "PROJ_TYPES",
    "GaLore",
    "GaLoreConfig",
    "low_rank_shape",
    "project",
    "project_back",
    "projection_side",
    "projector_shapes",
]

#: galore-torch's projection types.
PROJ_TYPES: tuple[str, ...] = ("std", "reverse_std", "left", "right", "full")


def projection_side(shape: tuple[int, ...], proj_type: str) -> str:
    """``"left"``, ``"right"`` or ``"full"``: where ``proj_type`` projects a matrix of ``shape``."""
    m, n = shape
    if proj_type == "std":
        return "right" if m >= n else "left"
    if proj_type == "reverse_std":
        return "left" if m >= n else "right"
    if proj_type in ("left", "right", "full"):
        return proj_type
    raise ValueError(f"optimizer.proj_type must be one of {', '.join(PROJ_TYPES)}, got {proj_type!r}")


def _rank(shape: tuple[int, ...], rank: int) -> int:
    return min(rank, shape[0], shape[1])  # the SVD factors have min(m, n) columns or rows


def low_rank_shape(shape: tuple[int, ...], rank: int, side: str) -> tuple[int, int]:
    """Shape of the projected gradient (and of Adam's moments) of a ``shape`` matrix."""
    m, n = shape
    r = _rank(shape, rank)
    return {"right": (m, r), "left": (r, n), "full": (r, r)}[side]


def projector_shapes(shape: tuple[int, ...], rank: int, side: str) -> list[tuple[int, int]]:
    """Shapes of the projection matrices held for a ``shape`` matrix."""
    m, n = shape
    r = _rank(shape, rank)
    return {"right": [(r, n)], "left": [(m, r)], "full": [(m, r), (r, n)]}[side]


def _refresh(grad: torch.Tensor, rank: int, side: str, state: dict[str, Any]) -> None:
    """New projector(s) from the SVD of ``grad`` (float32), stored compact in the gradient's dtype."""
    import torch

    matrix = grad if grad.dtype == torch.float32 else grad.float()
    u, _, vh = torch.linalg.svd(matrix, full_matrices=False)

    def own(t: torch.Tensor) -> torch.Tensor:
        """A compact copy (no view keeping the whole factor alive) in the factor's layout.

        torch's SVD returns column-major factors; upstream's float32 projector is a
        column-major view, and BLAS rounds a product by its operands' layout, so
        the copy keeps it (a row-major copy drifts from upstream by 1e-4 in 100 steps).
        A cast (non-float32 gradients) is upstream's own ``.type(dtype)``.
        """
        if t.dtype != grad.dtype:
            return t.to(grad.dtype)
        if t.stride(0) == 1:
            return t.t().clone(memory_format=torch.contiguous_format).t()
        return t.clone(memory_format=torch.contiguous_format)

    if side == "right":
        state["proj"] = own(vh[:rank, :])
    elif side == "left":
        state["proj"] = own(u[:, :rank])
    else:
        state["proj_left"], state["proj_right"] = own(u[:, :rank]), own(vh[:rank, :])


def project(grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any], it: int) -> torch.Tensor:
    """The low-rank gradient, refreshing the projector when ``it % update_proj_gap == 0`` (or none yet)."""
    side = projection_side(tuple(grad.shape), group["proj_type"])
    held = "proj_left" if side == "full" else "proj"
    if held not in state or it % group["update_proj_gap"] == 0:
        _refresh(grad, group["rank"], side, state)
    if side == "right":
        return grad @ state["proj"].t()
    if side == "left":
        return state["proj"].t() @ grad
    return (state["proj_left"].t() @ grad) @ state["proj_right"].t()


def project_back(
    low: torch.Tensor, state: dict[str, Any], group: dict[str, Any], shape: tuple[int, ...]
) -> torch.Tensor:
    """``low`` back in the full space of a ``shape`` matrix, times ``scale``."""
    side = projection_side(shape, group["proj_type"])
    if side == "right":
        full = low @ state["proj"]
    elif side == "left":
        full = state["proj"] @ low
    else:
        full = (state["proj_left"] @ low) @ state["proj_right"]
    return full * group["scale"]


def galore_param_groups(
    named: list[tuple[str | None, torch.Tensor]], target_modules: list[str], galore_keys: dict[str, Any]
) -> list[dict[str, Any]]:
    """Split ``named`` into the regular group and the GaLore group (``galore_keys`` added to it).

    As GaLore's ``torchrun_main.py``: GaLore takes the weights of the linear
    layers whose module name contains one of ``target_modules`` (``"attn"``,
    ``"mlp"``); here, the 2-D parameters whose name contains one. A nameless
    parameter (plain tensors given) is projected when it is 2-D.
    """
    galore: list[torch.Tensor] = []
    regular: list[torch.Tensor] = []
    for name, p in named:
        hit = p.dim() == 2 and (name is None or any(t in name for t in target_modules))
        (galore if hit else regular).append(p)
    groups = []
    if regular:
        groups.append({"params": regular, "galore": False})
    if galore:
        groups.append({"params": galore, "galore": True, **galore_keys})
    return groups


@dataclass
class GaLoreConfig(AdamConfig):
    """AdamConfig plus GaLore's projection settings; Adam defaults are galore-torch ``AdamW``'s."""

    #: Adam's epsilon (galore-torch's AdamW default).
    eps: float = param(1e-6, gt=0)
    #: Decoupled weight decay (galore-torch's AdamW default).
    weight_decay: float = param(0.0, ge=0)
    #: Rank r of the projection (clipped to the matrix's smaller side).
    rank: int = param(128, ge=1)
    #: Steps T between SVD refreshes of the projector.
    update_proj_gap: int = param(50, ge=1)
    #: Multiplies the projected-back update (GaLore's alpha).
    scale: float = param(1.0, gt=0)
    #: Which side(s) to project: std, reverse_std, left, right, full.
    proj_type: str = param("std", choices=PROJ_TYPES)
    #: Parameters whose name contains one of these (and that are 2-D) are projected.
    target_modules: list[str] = param(factory=lambda: ["attn", "mlp"])


class GaLore(TrainingOptimizer):
    """GaLore: Adam moments of rank-r projected gradients, SVD projector refreshed every T steps.

    Defaults: galore-torch's ``AdamW`` (lr 1e-3, eps 1e-6, no weight decay,
    bias correction) and GaLore's ``torchrun_main.py`` (rank 128, T 50,
    scale 1.0, std, targets attn and mlp).
    """

    name: ClassVar[str] = "galore"

    @dataclass
    class Config(GaLoreConfig):
        _target_: str = "memarena.families.training.optimizers.galore.GaLore"

    def galore_keys(self) -> dict[str, Any]:
        c = self.config
        return {"rank": c.rank, "update_proj_gap": c.update_proj_gap, "scale": c.scale, "proj_type": c.proj_type}

    def param_groups(self, named: list[tuple[str | None, torch.Tensor]]) -> list[dict[str, Any]]:
        return galore_param_groups(named, list(self.config.target_modules), self.galore_keys())

    def update(self, opt: RuleOptimizer, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        import torch

        state = opt.state[p]
        if "step" not in state:
            state["step"] = 0
        if group["galore"]:
            grad = project(grad, state, group, state["step"])
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(grad)
            state["exp_avg_sq"] = torch.zeros_like(grad)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t = state["step"]
        m.mul_(beta1).add_(grad, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        denom = v.sqrt().add_(group["eps"])
        step_size = group["lr"] * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
        norm_grad = m / denom
        if group["galore"]:
            norm_grad = project_back(norm_grad, state, group, tuple(p.shape))
        p.add_(norm_grad, alpha=-step_size)
        if group["weight_decay"] > 0.0:
            p.add_(p, alpha=-group["lr"] * group["weight_decay"])

    def state_bytes(self, shape: tuple[int, ...], itemsize: int, group: dict[str, Any]) -> dict[str, int]:
        out = zero_bytes()
        if not group["galore"]:
            out["moments_bytes"] = 2 * numel(shape) * itemsize
            return out
        side = projection_side(shape, group["proj_type"])
        out["moments_bytes"] = 2 * numel(low_rank_shape(shape, group["rank"], side)) * itemsize
        out["projectors_bytes"] = sum(numel(s) for s in projector_shapes(shape, group["rank"], side)) * itemsize
        return out
