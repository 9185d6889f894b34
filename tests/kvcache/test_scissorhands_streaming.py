"""Scissorhands and StreamingLLM: hand-computed kept sets, re-rotated keys, exact bytes."""

from __future__ import annotations

import pytest
import torch

from memarena.errors import InvalidConfigError
from memarena.families.kvcache.cache import KVCache
from memarena.families.kvcache.methods import Scissorhands, StreamingLLM
from memarena.families.kvcache.methods.scissorhands import ScissorhandsLayer
from memarena.families.kvcache.methods.streaming_llm import StreamingLLMLayer
from memarena.models import CacheSpec
from memarena.models.bytellama import Rope
from tests.kvcache.helpers import bytes_match, model_and_tokens, onehot_keys, query, run, tiny_spec

torch.set_num_threads(1)


def tagged_values(n: int, start: int = 0) -> torch.Tensor:
    """Values ``[1, n, 4]`` whose channel 0 is the token's index (exact in fp16)."""
    v = torch.zeros(1, n, 4)
    v[0, :, 0] = torch.arange(start, start + n, dtype=torch.float32)
    return v


def held_indices(layer: ScissorhandsLayer | StreamingLLMLayer, h: int = 0) -> list[int]:
    _, v, _ = layer.heads[h].read()
    return [int(x) for x in v[:, 0]]


# --- Scissorhands ----------------------------------------------------------------------------------------

# n = 10 prefill, budget round(0.5 * 10) = 5, r = round(0.4 * 5) = 2, m = round(0.2 * 5) = 1: over the
# budget the cache goes to 4. History window w = 2 steps. Keys 1 and 4 carry channel 0 and rows 8 and 9
# query channel 0: they give 1/2 to keys 1 and 4 and ~0 (below the average 1/9, 1/10) to every other
# visible key. Counts over keys 0..9: [2, 0, 2, 2, 0, 2, 2, 2, 2, 1]; recent 8, 9 are spared; the 6
# dropped (10 - 4) are the six with count 2 among 0..7: kept {1, 4, 8, 9}.
SC_KEYS = onehot_keys(12, {1: 0, 4: 0, 10: 1})


def sc_layer() -> ScissorhandsLayer:
    layer = ScissorhandsLayer(tiny_spec(), 0, 0.5, history_window_tokens=2, recent_fraction=0.4, drop_fraction=0.2)
    q = torch.zeros(1, 10, 4)
    q[0, 8], q[0, 9] = query(0), query(0)
    layer.attend(q, SC_KEYS[None, :10], tagged_values(10))
    return layer


def test_scissorhands_prefill_drops_the_persistently_unimportant() -> None:
    layer = sc_layer()
    assert held_indices(layer) == [1, 4, 8, 9]
    # the history is the last 2 steps, compacted to the kept tokens: row 8 found 8 low, row 9 found 8, 9
    assert layer.window_counts(0).tolist() == [[0, 0, 1, 0], [0, 0, 1, 1]]
    assert layer.window_totals(0).tolist() == [0, 0, 2, 1]
    # packed: one plane (group 1), one byte a token; steps 8, 9 in ring slots 0, 1 (bits 0, 1)
    assert layer.history[0].tolist() == [[[0, 0, 0b11, 0b10]]]


def test_scissorhands_decode_drops_m_plus_overflow_at_the_budget() -> None:
    layer = sc_layer()
    # token 10 queries channel 0 (half to 1 and 4): 5 tokens, at the budget, nothing dropped.
    layer.attend(query(0)[None, None], SC_KEYS[None, 10:11], tagged_values(1, 10))
    assert held_indices(layer) == [1, 4, 8, 9, 10]
    # token 11 queries channel 1: all to key 10. 6 > 5: back to 4, recent {10, 11} spared. Window rows
    # 10 and 11: counts 1: 0 + 1, 4: 0 + 1, 8: 1 + 1, 9: 1 + 1 -> drop 8 and 9.
    layer.attend(query(1)[None, None], SC_KEYS[None, 11:12], tagged_values(1, 11))
    assert held_indices(layer) == [1, 4, 10, 11]
    assert layer.window_counts(0).tolist() == [[0, 0, 1, 0], [1, 1, 0, 1]]
    # steps 10, 11 overwrote ring slots 0, 1
    assert layer.history[0].tolist() == [[[0b10, 0b10, 0b01, 0b10]]]


def test_scissorhands_counts_the_gqa_group() -> None:
    # Two query heads on one kv head, both querying channel 0 in rows 8 and 9: every "below average" is
    # found by both, so the history holds 2 where one head held 1 (counts over the group): two bit planes,
    # the count's binary digits (2 = 0b10: plane 1).
    layer = ScissorhandsLayer(
        tiny_spec(n_heads=2), 0, 0.5, history_window_tokens=2, recent_fraction=0.4, drop_fraction=0.2
    )
    q = torch.zeros(2, 10, 4)
    q[0, 8], q[0, 9] = query(0), query(0)
    q[1, 8], q[1, 9] = query(0), query(0)
    layer.attend(q, SC_KEYS[None, :10], tagged_values(10))
    assert held_indices(layer) == [1, 4, 8, 9]
    assert layer.window_counts(0).tolist() == [[0, 0, 2, 0], [0, 0, 2, 2]]
    assert layer.history[0].tolist() == [[[0, 0, 0, 0]], [[0, 0, 0b11, 0b10]]]


def test_scissorhands_bytes_hand_computed() -> None:
    layer = sc_layer()
    nb = layer.nbytes()
    assert nb["payload"] == 2 * 4 * 4 * 2  # K and V: 4 rows x 4 channels fp16
    assert nb["scores"] == 1 * 1 * 4  # packed history: 1 plane x ceil(2 steps / 8) bytes x 4 tokens
    assert bytes_match(KVCache([layer])) == (68, 68)


# --- StreamingLLM ----------------------------------------------------------------------------------------


def streaming_spec(dtype: torch.dtype) -> CacheSpec:
    return CacheSpec(1, 1, 1, 8, Rope(8, 10000.0), 1024, dtype)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.float16, 5e-3)])
def test_streaming_llm_rerotates_kept_keys_to_their_cache_index(dtype: torch.dtype, tol: float) -> None:
    spec = streaming_spec(dtype)
    layer = StreamingLLMLayer(spec, 0, 0.5, sink_tokens=2)
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(20, 8, generator=g)  # un-rotated keys of tokens 0..19
    n = 12
    pos = layer.positions(n)
    assert pos.tolist() == list(range(12))
    layer.attend(torch.randn(1, n, 8), spec.rope.rotate(raw[:n], pos)[None], tagged_values(n).repeat(1, 1, 2))
    # budget round(0.5 * 12) = 6: sinks 0, 1 + last 4 (8..11), now at cache indices 0..5
    assert held_indices(layer) == [0, 1, 8, 9, 10, 11]
    k, _, _ = layer.heads[0].read()
    assert torch.allclose(k, spec.rope.rotate(raw[[0, 1, 8, 9, 10, 11]], torch.arange(6)), atol=tol)
    for t in range(12, 20):
        p = layer.positions(1)
        assert p.tolist() == [6]  # the new token's index in the cache
        layer.attend(
            torch.randn(1, 1, 8), spec.rope.rotate(raw[t : t + 1], p)[None], tagged_values(1, t).repeat(1, 1, 2)
        )
        kept = [0, 1, *range(t - 3, t + 1)]
        assert held_indices(layer) == kept
        k, _, _ = layer.heads[0].read()
        assert torch.allclose(k, spec.rope.rotate(raw[kept], torch.arange(6)), atol=tol * 3)


def test_streaming_llm_without_eviction_is_the_full_cache_layer() -> None:
    # budget 1: positions are the sequence's, keys never move.
    spec = streaming_spec(torch.float32)
    layer = StreamingLLMLayer(spec, 0, 1.0)
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(10, 8, generator=g)
    layer.attend(torch.randn(1, 8, 8), spec.rope.rotate(raw[:8], layer.positions(8))[None], torch.randn(1, 8, 8))
    layer.attend(torch.randn(1, 2, 8), spec.rope.rotate(raw[8:], layer.positions(2))[None], torch.randn(1, 2, 8))
    k, _, _ = layer.heads[0].read()
    assert torch.equal(k, spec.rope.rotate(raw, torch.arange(10)))


def test_streaming_llm_bytes_hand_computed() -> None:
    spec = streaming_spec(torch.float16)
    layer = StreamingLLMLayer(spec, 0, 0.5)
    layer.attend(torch.randn(1, 12, 8), torch.randn(1, 12, 8), torch.randn(1, 12, 8))
    assert layer.nbytes()["payload"] == 2 * 6 * 8 * 2
    assert bytes_match(KVCache([layer])) == (192, 192)


def test_streaming_llm_on_the_model_evicts_to_the_budget() -> None:
    model, tokens = model_and_tokens(48)
    spec = CacheSpec.of(model.cfg, model.rope)
    cache = StreamingLLM().new_cache(spec, 0.25)
    logits = run(model, cache, tokens, 40)
    assert torch.isfinite(logits).all()
    assert cache.tokens_held() == [[10, 10]] * 4
    assert cache.layers[0].positions(1).tolist() == [10]


def test_bad_params_name_their_keys() -> None:
    with pytest.raises(InvalidConfigError, match="kv_compression.sink_tokens"):
        StreamingLLM(sink_tokens=-1)
    with pytest.raises(InvalidConfigError, match="kv_compression.drop_fraction"):
        Scissorhands(drop_fraction=2.0)
    with pytest.raises(InvalidConfigError, match="kv_compression.history_window_tokens"):
        Scissorhands(history_window_tokens=0)
