"""``optimizer=frugal``: FRUGAL (Zmushko et al. 2024, arXiv 2411.07837), Adam in a subspace, signSGD outside it.

FRUGAL splits each projectable matrix's gradient ``G`` into a state-full part
``P(G)`` (a subspace of density rho, updated by Adam with moments) and the
state-free residual ``G - P(G)`` (updated by signSGD or SGD, no state). The
semantics are the official code's (github pzmushko/FRUGAL, ``frugal/``; read
here from two copies of it, hungquangbui02022003/FRUGAL and
evseevgrv/SignSGD_GoldenGate, whose ``frugal/`` files agree on what follows):

* **Adam** (``adamw.py`` ``AdamW._compute_update``): ``m = b1 m + (1-b1) g``,
  ``v = b2 v + (1-b2) g^2``, ``denom = sqrt(v) / sqrt(1 - b2^t) + eps``,
  update ``-lr / (1 - b1^t) * m / denom``. Decoupled decay *before* the
  update, on every parameter, with the group's lr: ``p *= 1 - lr * wd``
  (``ProjOptimizer.step``: ``p.mul_(1 - group["lr"] * group["weight_decay"])``).
* **The split** (``proj_optimizer_templates.py``
  ``GaloreOptimizer._proj_params_update``): ``grad_down =
  project_down(G)``; ``update = project_up(adam(grad_down))`` with
  ``lr * proj_params_lr_scale``; ``inactive_grad = G -
  project_up(grad_down)``; then ``update -= inactive_lr * sign(inactive_grad)``
  (``sign_sgd``), ``inactive_lr * inactive_grad`` (``sgd``) or nothing
  (``no``), ``inactive_lr = lr * proj_params_lr_scale * inactive_lr_scale``.
* **Selection** ``svd`` and ``random`` (``galore_projector.py``
  ``GaLoreProjector``): the side as GaLore's (std: a tall matrix projects on
  the right), rank ``round(dim * density)`` with ``dim`` the projected side's
  length (``round(n * density)`` on the right, ``round(m * density)`` on
  the left, ``round(min(m, n) * density)`` for full). ``svd`` takes the top
  singular vectors of the current gradient (float32 SVD, cast to the
  gradient's dtype); ``random`` a random semi-orthogonal matrix
  (``torch.nn.init.orthogonal_`` of an ``r x n`` or ``m x r`` tensor).
* **Selection** ``blocks`` (``BlockOptimizer``): whole parameter tensors of
  the projectable group are the blocks; ``round(len(params) * density)`` of
  them, drawn by ``torch.randperm``, are active and get Adam on the full
  gradient; the others get the state-free rule on the full gradient.
* **Refresh** every ``update_gap`` steps (at steps 0, T, 2T, ...;
  ``ProjOptimizer._update_states_if_necessary``): a new subspace from the
  current gradient, and with ``reset_statistics`` (upstream's default, the
  paper's choice) the Adam moments and step count *reset* to zero; with it
  off the moments are kept unchanged, as GaLore keeps them (upstream never
  projects the old state into the new subspace; that experiment is the
  repository's ``galore_re-projection.ipynb`` only). ``blocks`` always
  clears the state of a deactivated tensor and starts an activated one at zero
  (``_deactivate_param``: ``state.clear()``; ``_activate_param``).
* Parameters outside the projectable group (embeddings, norms, head; the
  linear layers named ``attn`` or ``mlp`` are projectable, as
  ``prepare_proj_params``) get the same AdamW, unprojected.

Differences, none of which changes the update rule: upstream's random draws
come from torch's global generator; here each refresh draws from a generator
seeded by ``seed`` and the refresh round (and the parameter's index for
``random``), so runs are reproducible whatever else uses the global RNG.
Upstream's ``svd`` projector is a view ``Vh[:rank]`` keeping the whole SVD
factor alive; here a compact copy (as ``galore``). Upstream's projection
also offers ``randperm`` and its ``CoordOptimizer`` random coordinates
or columns; not here. The step counters are Python ints (no tensor bytes), as upstream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import param
from memarena.families.training.optimizers.base import AdamConfig, TrainingOptimizer, numel, zero_bytes
from memarena.families.training.optimizers.galore import galore_param_groups, projection_side

if TYPE_CHECKING:
    import torch

    from memarena.families.training.engine import RuleOptimizer

__all__ = ["FRUGAL", "INACTIVE_RULES", "SELECTIONS", "frugal_rank"]

#: How the state-full subspace is chosen.
SELECTIONS: tuple[str, ...] = ("svd", "random", "blocks")
#: The state-free rule on the residual (upstream's ``inactive_update_rule``).
INACTIVE_RULES: tuple[str, ...] = ("sign_sgd", "sgd", "no")


def frugal_rank(shape: tuple[int, ...], density: float, side: str, selection: str = "random") -> int:
    """Rank of the state-full subspace: ``round(dim * density)``, ``dim`` the projected side's length.

    For ``svd`` it is at most ``min(m, n)``: upstream's ``Vh[:rank]`` of a
    reduced SVD has no more rows (a wide matrix projected on the right).
    """
    m, n = shape
    dim = {"right": n, "left": m, "full": min(m, n)}[side]
    r = round(dim * density)
    return min(r, m, n) if selection == "svd" else r


def _projector_shapes(shape: tuple[int, ...], r: int, side: str) -> list[tuple[int, int]]:
    m, n = shape
    return {"right": [(r, n)], "left": [(m, r)], "full": [(m, r), (r, n)]}[side]


def _low_shape(shape: tuple[int, ...], r: int, side: str) -> tuple[int, int]:
    m, n = shape
    return {"right": (m, r), "left": (r, n), "full": (r, r)}[side]


def _new_projector(grad: torch.Tensor, r: int, side: str, selection: str, seed: int, state: dict[str, Any]) -> None:
    """New projection matrices in ``state`` (``proj``, or ``proj_left``/``proj_right``), in ``grad``'s dtype."""
    import torch

    if selection == "svd":
        matrix = grad if grad.dtype == torch.float32 else grad.float()
        u, _, vh = torch.linalg.svd(matrix, full_matrices=False)
        left, right = u[:, :r], vh[:r, :]
    else:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        m, n = grad.shape
        left = torch.nn.init.orthogonal_(torch.empty(m, r), generator=gen) if side != "right" else None
        right = torch.nn.init.orthogonal_(torch.empty(r, n), generator=gen) if side != "left" else None
    held = {"right": [("proj", right)], "left": [("proj", left)], "full": [("proj_left", left), ("proj_right", right)]}
    for key, t in held[side]:
        assert t is not None
        state[key] = t.to(device=grad.device, dtype=grad.dtype).clone(memory_format=torch.contiguous_format)


def _down(g: torch.Tensor, state: dict[str, Any], side: str) -> torch.Tensor:
    if side == "right":
        return g @ state["proj"].t()
    if side == "left":
        return state["proj"].t() @ g
    return (state["proj_left"].t() @ g) @ state["proj_right"].t()


def _up(low: torch.Tensor, state: dict[str, Any], side: str) -> torch.Tensor:
    if side == "right":
        return low @ state["proj"]
    if side == "left":
        return state["proj"] @ low
    return (state["proj_left"] @ low) @ state["proj_right"]


def _adam(g: torch.Tensor, state: dict[str, Any], group: dict[str, Any], lr: float) -> torch.Tensor:
    """Upstream's ``_compute_update``: the Adam update (already times ``-lr``) of ``g``; moments in ``state``."""
    import torch

    if "exp_avg" not in state:
        state["exp_avg"] = torch.zeros_like(g)
        state["exp_avg_sq"] = torch.zeros_like(g)
        state["step"] = 0
    state["step"] += 1
    t = state["step"]
    beta1, beta2 = group["betas"]
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.mul_(beta1).add_(g, alpha=1.0 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
    denom = v.sqrt().div_(math.sqrt(1.0 - beta2**t)).add_(group["eps"])
    return (m / denom).mul_(-lr / (1.0 - beta1**t))


def _free(residual: torch.Tensor, rule: str, lr: float) -> torch.Tensor | None:
    """The state-free update of ``residual`` (``None`` for rule ``no``)."""
    if rule == "sign_sgd":
        return residual.sign().mul_(-lr)
    if rule == "sgd":
        return residual * -lr
    return None


def _active_blocks(n_params: int, density: float, seed: int, round_: int) -> frozenset[int]:
    """Indices of the active tensors in refresh round ``round_``: a seeded ``randperm`` prefix."""
    import torch

    k = round(n_params * density)
    gen = torch.Generator(device="cpu").manual_seed(seed * 1_000_003 + round_)
    return frozenset(torch.randperm(n_params, generator=gen)[:k].tolist())


@dataclass
class FRUGALConfig(AdamConfig):
    """AdamConfig plus FRUGAL's split; defaults are the official code's ``AdamW`` and ``ProjOptimizer``."""

    #: Adam's epsilon (upstream AdamW default).
    eps: float = param(1e-8, gt=0)
    #: Fraction rho of each projectable matrix (svd, random) or of the projectable tensors (blocks) kept state-full.
    density: float = param(0.25, ge=0, le=1)
    #: How the state-full subspace is chosen: svd (top singular vectors), random (semi-orthogonal) or blocks.
    selection: str = param("blocks", choices=SELECTIONS)
    #: Steps T between subspace refreshes (upstream ``update_gap``; 200 in the paper's pre-training).
    update_gap: int = param(200, ge=1)
    #: Reset the Adam moments and step at each refresh (upstream ``reset_statistics``); off keeps them.
    reset_state: bool = True
    #: The state-free rule on the residual: sign_sgd, sgd or no (upstream ``inactive_update_rule``).
    inactive_rule: str = param("sign_sgd", choices=INACTIVE_RULES)
    #: Multiplies the learning rate of the state-free part (upstream ``inactive_lr_scale``; 0.1 for fine-tuning).
    inactive_lr_scale: float = param(1.0, ge=0)
    #: Multiplies the learning rate of the projectable matrices (upstream ``proj_params_lr_scale``).
    proj_lr_scale: float = param(1.0, ge=0)
    #: Projection side for svd and random: std, reverse_std, left, right, full (upstream ``proj_side``).
    proj_side: str = param("std", choices=("std", "reverse_std", "left", "right", "full"))
    #: Seed of the random projections and block draws.
    seed: int = 0
    #: Parameters whose name contains one of these (and that are 2-D) are projectable.
    target_modules: list[str] = param(factory=lambda: ["attn", "mlp"])


class FRUGAL(TrainingOptimizer):
    """FRUGAL: Adam on a density-rho subspace, signSGD (or SGD) on the residual, subspace refreshed every T steps.

    State per projectable matrix: Adam moments of the subspace's shape and the
    projection matrix (svd, random), or full-size moments for the active
    tensors only (blocks). The residual's update holds no state.
    """

    name: ClassVar[str] = "frugal"

    @dataclass
    class Config(FRUGALConfig):
        _target_: str = "memarena.families.training.optimizers.frugal.FRUGAL"

    def param_groups(self, named: list[tuple[str | None, torch.Tensor]]) -> list[dict[str, Any]]:
        groups = galore_param_groups(named, list(self.config.target_modules), {})
        for g in groups:
            g["proj"] = g.pop("galore")
        return groups

    def update(self, opt: RuleOptimizer, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        c = self.config
        state = opt.state[p]
        lr = group["lr"]
        if group["weight_decay"] > 0.0:
            p.mul_(1.0 - lr * group["weight_decay"])
        if not group["proj"]:
            p.add_(_adam(grad, state, group, lr))
            return
        updates = state.get("updates", 0)
        state["updates"] = updates + 1
        refresh = updates % c.update_gap == 0
        round_ = updates // c.update_gap
        active_lr = lr * c.proj_lr_scale
        free_lr = active_lr * c.inactive_lr_scale
        if c.selection == "blocks":
            if refresh:
                if group.get("frugal_round") != round_:
                    group["frugal_round"] = round_
                    group["frugal_active"] = _active_blocks(len(group["params"]), c.density, c.seed, round_)
                index = state.setdefault("index", next(i for i, q in enumerate(group["params"]) if q is p))
                for key in ("exp_avg", "exp_avg_sq", "step"):
                    state.pop(key, None)
                state["active"] = index in group["frugal_active"]
            if state["active"]:
                p.add_(_adam(grad, state, group, active_lr))
            else:
                delta = _free(grad, c.inactive_rule, free_lr)
                if delta is not None:
                    p.add_(delta)
            return
        side = projection_side(tuple(p.shape), c.proj_side)
        if refresh:
            r = frugal_rank(tuple(p.shape), c.density, side, c.selection)
            index = state.setdefault("index", next(i for i, q in enumerate(group["params"]) if q is p))
            _new_projector(grad, r, side, c.selection, c.seed * 1_000_003 + round_ * 10_007 + index, state)
            if c.reset_state:
                for key in ("exp_avg", "exp_avg_sq", "step"):
                    state.pop(key, None)
        low = _down(grad, state, side)
        delta = _up(_adam(low, state, group, active_lr), state, side)
        free = _free(grad - _up(low, state, side), c.inactive_rule, free_lr) if c.inactive_rule != "no" else None
        if free is not None:
            delta.add_(free)
        p.add_(delta)

    def state_bytes(self, shape: tuple[int, ...], itemsize: int, group: dict[str, Any]) -> dict[str, int]:
        out = zero_bytes()
        if not group["proj"]:
            out["moments_bytes"] = 2 * numel(shape) * itemsize
            return out
        if self.config.selection == "blocks":
            return out  # the active tensors' moments: shared_bytes, which knows which are active
        side = projection_side(shape, self.config.proj_side)
        r = frugal_rank(shape, self.config.density, side, self.config.selection)
        out["moments_bytes"] = 2 * numel(_low_shape(shape, r, side)) * itemsize
        out["projectors_bytes"] = sum(numel(s) for s in _projector_shapes(shape, r, side)) * itemsize
        return out

    def shared_bytes(self, opt: RuleOptimizer) -> dict[str, int]:
        """For ``blocks``: the full-size moments of the tensors active now (from their shapes)."""
        out = zero_bytes()
        if self.config.selection != "blocks":
            return out
        for group in opt.param_groups:
            if not group["proj"]:
                continue
            for p in group["params"]:
                if opt.state.get(p, {}).get("active"):
                    out["moments_bytes"] += 2 * p.numel() * p.element_size()
        return out
