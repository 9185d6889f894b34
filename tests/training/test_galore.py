"""GaLore: one step by hand, galore-torch's GaLoreAdamW reproduced for every projection type, per-layer updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from galore_torch import GaLoreAdamW

from memarena.families.training.optimizers import GaLore
from memarena.families.training.optimizers.galore import PROJ_TYPES
from tests.training.helpers import batches, loss_of, tiny_model, train


def test_one_step_with_t_1_on_a_4x3_matrix_by_hand() -> None:
    rng = np.random.default_rng(0)
    w0, g0, g1 = (rng.standard_normal((4, 3)).astype(np.float32) for _ in range(3))
    p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    lr, b1, b2, eps, scale = 0.1, 0.9, 0.999, 1e-6, 0.5
    opt = GaLore(rank=2, update_proj_gap=1, scale=scale, lr=lr, eps=eps).make([p])
    w, m, v = w0.astype(np.float64), 0.0, 0.0
    for t, g in enumerate((g0, g1), start=1):
        p.grad = torch.from_numpy(g)
        opt.step()
        # 4x3 is tall: std projects on the right with the top-2 right singular vectors, refreshed each step (T=1)
        vh = np.linalg.svd(g.astype(np.float64), full_matrices=False)[2][:2]
        low = g @ vh.T
        m = b1 * m + (1 - b1) * low
        v = b2 * v + (1 - b2) * low**2
        step_size = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        w = w - step_size * scale * ((m / (np.sqrt(v) + eps)) @ vh)
        np.testing.assert_allclose(p.detach().numpy(), w, rtol=0, atol=2e-6)
    assert opt.state[p]["proj"].shape == (2, 3) and opt.state[p]["exp_avg"].shape == (4, 2)


def _peer_groups(model: torch.nn.Module, proj_type: str) -> list[dict]:
    # GaLore's torchrun_main.py: the weights of nn.Linear modules named with "attn" or "mlp"
    gal = [m.weight for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ("attn" in n or "mlp" in n)]
    ids = {id(p) for p in gal}
    regular = [p for p in model.parameters() if id(p) not in ids]
    return [
        {"params": regular},
        {"params": gal, "rank": 8, "update_proj_gap": 10, "scale": 0.25, "proj_type": proj_type},
    ]


@pytest.mark.parametrize("proj_type", PROJ_TYPES)
def test_equals_galore_torch_after_100_steps(proj_type: str) -> None:
    data = batches(100)
    ours, peer = tiny_model(), tiny_model()
    mine = GaLore(rank=8, update_proj_gap=10, scale=0.25, proj_type=proj_type, lr=1e-2, weight_decay=0.1)
    opt = mine.make(ours.named_parameters())
    peer_opt = GaLoreAdamW(_peer_groups(peer, proj_type), lr=1e-2, weight_decay=0.1, no_deprecation_warning=True)
    train(ours, opt, data)
    train(peer, peer_opt, data)
    moved = max((a - b).abs().max().item() for a, b in zip(ours.parameters(), tiny_model().parameters(), strict=True))
    assert moved > 1e-2  # the comparison is not between two untrained models
    for (name, a), b in zip(ours.named_parameters(), peer.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-6), f"{proj_type}: {name} differs by {(a - b).abs().max():.3g}"


@pytest.mark.parametrize("proj_type", ["std", "full"])
def test_per_layer_updates_equal_step_updates_and_leave_no_gradient(proj_type: str) -> None:
    data = batches(12)
    stepped, hooked = tiny_model(), tiny_model()
    cfg = {"rank": 4, "update_proj_gap": 5, "proj_type": proj_type, "lr": 1e-2}
    opt_a = GaLore(**cfg).make(stepped.named_parameters())
    opt_b = GaLore(**cfg, per_layer=True).make(hooked.named_parameters())
    train(stepped, opt_a, data)
    for tokens in data:
        loss_of(hooked, tokens).backward()
        assert all(p.grad is None for p in hooked.parameters()), "a gradient outlived its hook"
        opt_b.step()  # nothing left to do
    for a, b in zip(stepped.parameters(), hooked.parameters(), strict=True):
        assert torch.equal(a, b)
    opt_b.remove_hooks()
    loss_of(hooked, data[0]).backward()
    assert all(p.grad is not None for p in hooked.parameters())


def test_rank_beyond_the_matrix_clips_and_a_bad_proj_type_is_refused() -> None:
    from memarena.errors import InvalidConfigError

    p = torch.nn.Parameter(torch.randn(5, 3))
    opt = GaLore(rank=100, update_proj_gap=2).make([p])
    p.grad = torch.randn(5, 3)
    opt.step()
    assert opt.state[p]["proj"].shape == (3, 3)
    with pytest.raises(InvalidConfigError, match="optimizer.proj_type"):
        GaLore(proj_type="diagonal")
