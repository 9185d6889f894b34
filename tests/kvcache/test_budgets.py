"""Per-layer and per-head budgets: means preserved, pyramid monotone, Ada-KV's joint top-k by hand."""

from __future__ import annotations

import itertools

import pytest
import torch

from memarena.families.kvcache.methods.budgets import adaptive_head_budgets, layer_fractions, tokens_for


@pytest.mark.parametrize("budget", [0.05, 0.25, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("n_layers", [1, 2, 4, 32])
def test_layer_schedules_keep_the_mean(budget: float, n_layers: int) -> None:
    for schedule in ("uniform", "pyramid"):
        f = layer_fractions(schedule, budget, n_layers)
        assert len(f) == n_layers
        assert sum(f) / n_layers == pytest.approx(budget)
        assert all(0 < x <= 1.0 + 1e-12 for x in f)


@pytest.mark.parametrize("budget", [0.1, 0.5, 0.7])
def test_pyramid_is_monotone_and_linear(budget: float) -> None:
    f = layer_fractions("pyramid", budget, 8)
    assert all(a > b for a, b in itertools.pairwise(f))
    steps = [a - b for a, b in itertools.pairwise(f)]
    assert max(steps) - min(steps) < 1e-12


def test_pyramid_hand_computed() -> None:
    # PyramidKV: top = mean / 20, bottom = 2 mean - top. mean 0.25, 4 layers: top 0.0125, bottom 0.4875.
    assert layer_fractions("pyramid", 0.25, 4) == pytest.approx([0.4875, 0.3291667, 0.1708333, 0.0125])
    # bottom capped at 1 (the whole context): mean 0.8 -> bottom 1, top 0.6.
    assert layer_fractions("pyramid", 0.8, 3) == pytest.approx([1.0, 0.8, 0.6])


def test_unknown_schedule() -> None:
    with pytest.raises(ValueError, match="pyramid"):
        layer_fractions("triangle", 0.5, 4)


def test_tokens_for_rounds_and_clamps() -> None:
    assert tokens_for(0.5, 9) == 4  # round half to even
    assert tokens_for(0.01, 9) == 1
    assert tokens_for(1.0, 9) == 9


def test_adaptive_pure_joint_top_k() -> None:
    # floor 0: the 5 best scores over both heads: 9, 8, 7 (head 0), 6.5 (head 1), 6 (head 0).
    s = [torch.tensor([9.0, 1.0, 8.0, 7.0, 6.0]), torch.tensor([6.5, 0.1, 0.2])]
    assert adaptive_head_budgets(s, 5, floor=0.0) == [4, 1]


def test_adaptive_floor_reserves_per_head() -> None:
    # Without a floor head 1 gets nothing: the 4 best are all head 0's. With floor 0.5: int(0.5 * 4 / 2) = 1
    # token reserved per head (each head's best: 9 and 1), the other 2 jointly: 8, 7 -> [3, 1].
    s = [torch.tensor([9.0, 8.0, 7.0, 6.0, 5.0]), torch.tensor([1.0, 0.5])]
    assert adaptive_head_budgets(s, 4, floor=0.0) == [4, 0]
    assert adaptive_head_budgets(s, 4, floor=0.5) == [3, 1]


def test_adaptive_caps_at_what_a_head_has() -> None:
    s = [torch.tensor([1.0]), torch.tensor([0.5, 0.4, 0.3, 0.2])]
    assert adaptive_head_budgets(s, 4, floor=0.0) == [1, 3]
    assert adaptive_head_budgets(s, 99, floor=0.0) == [1, 4]
    assert sum(adaptive_head_budgets(s, 3)) == 3
