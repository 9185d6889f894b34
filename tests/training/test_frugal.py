"""FRUGAL: one step by hand per selection kind, the refresh and its reset, bytes proportional to rho, hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memarena.families.training.optimizers import FRUGAL
from memarena.families.training.optimizers.frugal import frugal_rank
from tests.training.helpers import batches, loss_of, tiny_model, train

LR, B1, B2, EPS, WD = 0.1, 0.9, 0.999, 1e-8, 0.01


def _adam_first_step(g: np.ndarray, lr: float) -> np.ndarray:
    """Upstream's Adam update at t=1 from zero moments: -lr/(1-b1) * m / (sqrt(v)/sqrt(1-b2) + eps)."""
    m = (1 - B1) * g
    v = (1 - B2) * g**2
    return -lr / (1 - B1) * m / (np.sqrt(v) / np.sqrt(1 - B2) + EPS)


def _one_step(selection: str, w0: np.ndarray, g: np.ndarray, **kw: object) -> tuple[torch.Tensor, dict]:
    p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = FRUGAL(selection=selection, lr=LR, weight_decay=WD, **kw).make([p])  # type: ignore[arg-type]
    p.grad = torch.from_numpy(g.copy())
    opt.step()
    return p, opt.state[p]


def test_svd_one_step_on_a_6x4_matrix_by_hand() -> None:
    rng = np.random.default_rng(0)
    w0, g = (rng.standard_normal((6, 4)).astype(np.float32) for _ in range(2))
    p, state = _one_step("svd", w0, g, density=0.5)
    # 6x4 is tall: std projects on the right, rank round(4 * 0.5) = 2, the top-2 right singular vectors
    vh = np.linalg.svd(g.astype(np.float64), full_matrices=False)[2][:2]
    low = g @ vh.T
    residual = g - low @ vh
    w = w0 * (1 - LR * WD) + _adam_first_step(low, LR) @ vh - LR * np.sign(residual)
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=0, atol=2e-6)
    assert state["proj"].shape == (2, 4) and state["exp_avg"].shape == (6, 2) and state["step"] == 1


def test_random_one_step_on_a_wide_matrix_by_hand_with_sgd_on_the_residual() -> None:
    rng = np.random.default_rng(1)
    w0, g = (rng.standard_normal((3, 8)).astype(np.float32) for _ in range(2))
    p, state = _one_step("random", w0, g, density=0.34, inactive_rule="sgd", inactive_lr_scale=0.5)
    # 3x8 is wide: std projects on the left, rank round(3 * 0.34) = 1; a random orthonormal column
    u = state["proj"].double().numpy()
    assert u.shape == (3, 1)
    np.testing.assert_allclose(u.T @ u, np.eye(1), atol=1e-6)
    low = u.T @ g
    residual = g - u @ low
    w = w0 * (1 - LR * WD) + u @ _adam_first_step(low, LR) - LR * 0.5 * residual
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=0, atol=2e-6)


def test_random_projection_is_reproducible_from_the_seed_and_changes_with_it() -> None:
    g = np.ones((5, 4), dtype=np.float32)
    a = _one_step("random", np.zeros((5, 4), np.float32), g, density=0.5, seed=3)[1]["proj"]
    b = _one_step("random", np.zeros((5, 4), np.float32), g, density=0.5, seed=3)[1]["proj"]
    c = _one_step("random", np.zeros((5, 4), np.float32), g, density=0.5, seed=4)[1]["proj"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_blocks_one_step_by_hand_active_tensors_get_adam_the_others_sign_sgd() -> None:
    rng = np.random.default_rng(2)
    ws = [rng.standard_normal((3, 3)).astype(np.float32) for _ in range(4)]
    gs = [rng.standard_normal((3, 3)).astype(np.float32) for _ in range(4)]
    ps = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in ws]
    opt = FRUGAL(selection="blocks", density=0.5, lr=LR, weight_decay=WD).make(ps)
    for p, g in zip(ps, gs, strict=True):
        p.grad = torch.from_numpy(g.copy())
    opt.step()
    active = [bool(opt.state[p]["active"]) for p in ps]
    assert sum(active) == round(4 * 0.5) == 2
    for p, w, g, on in zip(ps, ws, gs, active, strict=True):
        expected = w * (1 - LR * WD) + (_adam_first_step(g, LR) if on else -LR * np.sign(g))
        np.testing.assert_allclose(p.detach().numpy(), expected, rtol=0, atol=2e-6)
        assert ("exp_avg" in opt.state[p]) == on


def test_non_projectable_parameters_get_adamw_and_rule_no_leaves_the_residual() -> None:
    rng = np.random.default_rng(3)
    w0, g = (rng.standard_normal((4, 4)).astype(np.float32) for _ in range(2))
    p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = FRUGAL(lr=LR, weight_decay=WD, target_modules=["mlp"]).make([("model.embed.weight", p)])
    p.grad = torch.from_numpy(g.copy())
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), w0 * (1 - LR * WD) + _adam_first_step(g, LR), atol=2e-6)
    # rule "no" with density 0: nothing moves but the decay
    p2, _ = _one_step("svd", w0, g, density=0.0, inactive_rule="no")
    np.testing.assert_allclose(p2.detach().numpy(), w0 * (1 - LR * WD), atol=1e-7)


@pytest.mark.parametrize("reset", [True, False])
def test_refresh_every_t_steps_resets_or_keeps_the_moments(reset: bool) -> None:
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(6, 4))
    opt = FRUGAL(selection="svd", density=0.5, update_gap=2, reset_state=reset).make([p])
    projs, steps = [], []
    for _ in range(5):
        p.grad = torch.randn(6, 4)
        opt.step()
        projs.append(opt.state[p]["proj"].clone())
        steps.append(opt.state[p]["step"])
    # refreshed at steps 0, 2, 4 (counting before the increment), as upstream's step % update_gap == 0
    assert torch.equal(projs[0], projs[1]) and not torch.equal(projs[1], projs[2]) and torch.equal(projs[2], projs[3])
    assert steps == ([1, 2, 1, 2, 1] if reset else [1, 2, 3, 4, 5])


def test_blocks_redraw_each_round_and_clear_the_deactivated_state() -> None:
    ps = [torch.nn.Parameter(torch.zeros(2, 2)) for _ in range(8)]
    opt = FRUGAL(selection="blocks", density=0.25, update_gap=1, seed=0).make(ps)
    draws = []
    for _ in range(6):
        for p in ps:
            p.grad = torch.ones(2, 2)
        opt.step()
        on = tuple(i for i, p in enumerate(ps) if opt.state[p]["active"])
        assert len(on) == 2
        assert all(("exp_avg" in opt.state[p]) == (i in on) for i, p in enumerate(ps))
        draws.append(on)
    assert len(set(draws)) > 1


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(2, 40),
    n=st.integers(2, 40),
    density=st.floats(0.0, 1.0),
    selection=st.sampled_from(["svd", "random"]),
    side=st.sampled_from(["std", "reverse_std", "left", "right", "full"]),
)
def test_svd_and_random_state_bytes_are_the_rank_times_the_fixed_side(
    m: int, n: int, density: float, selection: str, side: str
) -> None:
    method = FRUGAL(selection=selection, density=density, proj_side=side)
    p = torch.nn.Parameter(torch.zeros(m, n))
    opt = method.make([p])
    p.grad = torch.randn(m, n)
    opt.step()
    held = [t for t in opt.state[p].values() if isinstance(t, torch.Tensor)]
    got = opt.bytes_by_category()
    assert got["moments_bytes"] + got["projectors_bytes"] == sum(t.nbytes for t in held)
    real = {"std": "right" if m >= n else "left", "reverse_std": "left" if m >= n else "right"}.get(side, side)
    r = frugal_rank((m, n), density, real, selection)
    wanted = round({"right": n, "left": m, "full": min(m, n)}[real] * density)
    assert r == (min(wanted, m, n) if selection == "svd" else wanted)  # a reduced SVD has min(m, n) vectors
    per_rank = {"right": (2 * m + n), "left": (m + 2 * n), "full": None}[real]
    if per_rank is not None:  # proportional to the rank round(dim * rho)
        assert got["moments_bytes"] + got["projectors_bytes"] == 4 * r * per_rank
    else:
        assert got["moments_bytes"] == 2 * 4 * r * r and got["projectors_bytes"] == 4 * r * (m + n)


@pytest.mark.parametrize("density", [0.125, 0.25, 0.5, 1.0])
def test_blocks_state_bytes_are_rho_times_adamw_on_equal_tensors(density: float) -> None:
    ps = [torch.nn.Parameter(torch.zeros(16, 8)) for _ in range(8)]
    opt = FRUGAL(selection="blocks", density=density).make(ps)
    for p in ps:
        p.grad = torch.randn(16, 8)
    opt.step()
    adamw_bytes = 8 * 2 * 16 * 8 * 4
    assert opt.bytes_by_category()["moments_bytes"] == density * adamw_bytes


@pytest.mark.parametrize("selection", ["svd", "random", "blocks"])
def test_per_layer_updates_equal_step_updates(selection: str) -> None:
    data = batches(6)
    stepped, hooked = tiny_model(), tiny_model()
    cfg = {"selection": selection, "density": 0.3, "update_gap": 2, "lr": 1e-2}
    opt_a = FRUGAL(**cfg).make(stepped.named_parameters())  # type: ignore[arg-type]
    opt_b = FRUGAL(**cfg, per_layer=True).make(hooked.named_parameters())  # type: ignore[arg-type]
    train(stepped, opt_a, data)
    for tokens in data:
        loss_of(hooked, tokens).backward()
        assert all(p.grad is None for p in hooked.parameters())
        opt_b.step()
    moved = max(
        (a - b).abs().max().item() for a, b in zip(stepped.parameters(), tiny_model().parameters(), strict=True)
    )
    assert moved > 1e-3
    for a, b in zip(stepped.parameters(), hooked.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-6)


def test_bad_selection_is_refused_by_name() -> None:
    from memarena.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError, match="optimizer.selection"):
        FRUGAL(selection="columns")
