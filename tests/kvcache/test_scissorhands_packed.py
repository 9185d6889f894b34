"""Scissorhands' bit-packed history keeps exactly the tokens the one-byte-per-step history kept.

:class:`Uint8History` is the previous implementation (a ``uint8`` ``[min(steps, w), n]`` history, one row
a step), kept here as the reference: on a seeded random model with GQA (2 query heads a key/value head),
prefill and decode, windows that wrap, that are not a multiple of 8, and that never fill, both keep the
same rows of every head after every step, and the packed history unpacks to the old one.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from memarena.families.kvcache.cache import KVCache
from memarena.families.kvcache.methods.scissorhands import ScissorhandsLayer
from memarena.models import CacheSpec
from tests.kvcache.helpers import bytes_match, model_and_tokens

torch.set_num_threads(1)


class Uint8History(ScissorhandsLayer):
    """The previous Scissorhands state: one ``uint8`` a step and token (the count of the group's query heads
    below average), the last ``w`` rows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history = [torch.zeros(0, 0, dtype=torch.uint8) for _ in self.heads]

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        before = self.append_all(k, v)
        assert probs is not None
        for h, p in enumerate(probs):
            n_old, t = before[h], p.shape[1]
            visible = n_old + torch.arange(1, t + 1)
            seen = torch.arange(n_old + t)[None, :] < visible[:, None]
            rows = ((p < (1.0 / visible)[None, :, None]) & seen[None]).sum(dim=0).to(torch.uint8)
            old = self.history[h]
            old = torch.cat([old, torch.zeros(old.shape[0], t, dtype=torch.uint8)], dim=1)
            self.history[h] = torch.cat([old, rows])[-self.history_window_tokens :].clone()
        if self.head_budgets_tokens is None:
            n = len(self.heads[0])
            budget = max(1, min(n, round(self.fraction * n)))
            self.head_budgets_tokens = [budget] * len(self.heads)
            self.recent_tokens = min(budget, round(self.recent_fraction * budget))
            self.drop_tokens = min(budget, max(1, round(self.drop_fraction * budget)))
        for h, budget in enumerate(self.head_budgets_tokens):
            n = len(self.heads[h])
            if n <= budget:
                continue
            target = budget - self.drop_tokens
            r = min(self.recent_tokens, target)
            counts = self.history[h].sum(dim=0, dtype=torch.int64)[: n - r]
            dropped = torch.sort(-counts, stable=True).indices[: n - target]
            keep = torch.ones(n, dtype=torch.bool)
            keep[dropped] = False
            rows_kept = keep.nonzero().flatten()
            self.heads[h].keep(rows_kept)
            self.history[h] = self.history[h][:, rows_kept].clone()


@pytest.mark.parametrize("window", [3, 11, 16, 400])
def test_the_packed_history_keeps_what_the_uint8_history_kept(window: int) -> None:
    model, tokens = model_and_tokens(72, seed=window)
    spec = CacheSpec.of(model.cfg, model.rope, torch.float32)
    assert spec.group_size == 2
    kw = {"history_window_tokens": window, "recent_fraction": 0.1, "drop_fraction": 0.4}
    new = KVCache([ScissorhandsLayer(spec, i, 0.4, **kw) for i in range(spec.n_layers)])
    old = KVCache([Uint8History(spec, i, 0.4, **kw) for i in range(spec.n_layers)])
    steps = [(0, 40)] + [(t, t + 1) for t in range(40, 72)]
    with torch.no_grad():
        for a, b in steps:
            out_new = model(tokens[None, a:b], new)
            out_old = model(tokens[None, a:b], old)
            torch.testing.assert_close(out_new, out_old, rtol=0, atol=0)
            for ln, lo in zip(new.layers, old.layers, strict=True):
                assert isinstance(ln, ScissorhandsLayer) and isinstance(lo, Uint8History)
                assert ln.tokens_held() == lo.tokens_held()
                for h in range(len(ln.heads)):
                    assert torch.equal(ln.heads[h].read()[0], lo.heads[h].read()[0])  # the same rows kept
                    assert ln.window_counts(h).tolist() == lo.history[h].long().tolist()
                    assert ln.window_totals(h).tolist() == lo.history[h].sum(dim=0).tolist()
    # something was dropped, and every layer's history is packed: 2 planes x ceil(min(72, w) / 8) bytes a token
    for layer in new.layers:
        assert isinstance(layer, ScissorhandsLayer)
        for h, packed in enumerate(layer.history):
            n = len(layer.heads[h])
            assert n < 72
            assert tuple(packed.shape) == (2, (min(72, window) + 7) // 8, n)
    reported, held = bytes_match(new)
    assert reported == held


def test_packed_bytes_at_the_papers_window_hand_computed() -> None:
    # w = 400, GQA group 2 (2 planes): a 410-token prefill at a budget of 0.999 (410 tokens: nothing
    # dropped) leaves 2 planes x 50 bytes x 410 tokens per head, where one uint8 a step took 400 x 410.
    model, _ = model_and_tokens(1)
    spec = CacheSpec.of(model.cfg, model.rope)
    layer = ScissorhandsLayer(spec, 0, 0.999, history_window_tokens=400)
    layer.attend(torch.zeros(4, 410, 32), torch.zeros(2, 410, 32), torch.zeros(2, 410, 32))
    assert layer.steps == 410
    assert layer.nbytes()["scores"] == 2 * (2 * 50 * 410)  # 2 kv heads
    assert layer.nbytes()["payload"] == 2 * (2 * 410 * 32 * 2)  # K and V fp16, 2 kv heads
