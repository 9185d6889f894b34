"""Every token-selection method: budget 1 is the full cache; reported bytes are the held tensors' storage."""

from __future__ import annotations

import pytest
import torch

from memarena.families.kvcache.methods import H2O, FullCache, Scissorhands, SnapKV, StreamingLLM
from memarena.models import CacheSpec
from tests.kvcache.helpers import bytes_match, model_and_tokens, run

torch.set_num_threads(1)

METHODS = [H2O(), Scissorhands(), StreamingLLM(), SnapKV(), H2O(head_budget="adaptive"), SnapKV(layer_budget="pyramid")]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.name}-{'-'.join(map(str, m.config_dict().values()))}")
def test_budget_one_equals_the_full_cache(method: H2O) -> None:
    model, tokens = model_and_tokens(44)
    spec = CacheSpec.of(model.cfg, model.rope)
    full = run(model, FullCache().new_cache(spec, 1.0), tokens, 36)
    cache = method.new_cache(spec, 1.0)
    assert torch.equal(run(model, cache, tokens, 36), full)
    assert cache.tokens_held() == [[44, 44]] * 4
    assert cache.nbytes()["scores"] == 0  # no score state kept when nothing is ever evicted


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.name}-{'-'.join(map(str, m.config_dict().values()))}")
@pytest.mark.parametrize("budget", [0.5, 0.2])
def test_reported_bytes_are_the_held_storage(method: H2O, budget: float) -> None:
    model, tokens = model_and_tokens(44)
    spec = CacheSpec.of(model.cfg, model.rope)
    cache = method.new_cache(spec, budget)
    with torch.no_grad():
        model(tokens[None, :36], cache)
        reported, held = bytes_match(cache)
        assert reported == held
        for t in range(36, 44):
            model(tokens[None, t : t + 1], cache)
            reported, held = bytes_match(cache)
            assert reported == held
    rows = sum(sum(h) for h in cache.tokens_held())
    assert cache.nbytes()["payload"] == rows * 2 * spec.head_dim * 2  # fp16 K and V rows
    assert rows < 44 * 2 * 4  # something was evicted
