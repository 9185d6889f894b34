"""H2O and SnapKV: hand-computed kept sets on constructed attention, full-cache equality at budget 1,
ragged adaptive heads, exact bytes."""

from __future__ import annotations

import pytest
import torch

from memarena.errors import InvalidConfigError
from memarena.families.kvcache.cache import Fp16Store, HeadStore
from memarena.families.kvcache.methods import H2O, FullCache, SnapKV
from memarena.families.kvcache.methods.h2o import H2OLayer
from memarena.families.kvcache.methods.snapkv import SnapKVLayer
from memarena.models import CacheSpec
from tests.kvcache.helpers import bytes_match, model_and_tokens, onehot_keys, query, run, tiny_spec

torch.set_num_threads(1)


def kept_keys(layer: H2OLayer | SnapKVLayer, h: int, all_keys: torch.Tensor) -> list[int]:
    """Which of ``all_keys``' rows head ``h`` holds (keys are distinct one-hot/zero rows plus a tag)."""
    k, _, _ = layer.heads[h].read()
    return [int(torch.nonzero((all_keys == row).all(dim=1)).flatten()[0]) for row in k]


def tagged(keys: torch.Tensor) -> torch.Tensor:
    """Keys in a d=4 layer get a tiny distinct tag in channel 3 so rows can be identified after eviction."""
    out = keys.clone()
    out[:, 3] = torch.arange(len(keys)) * 1e-3
    return out.half().float()


# --- H2O -------------------------------------------------------------------------------------------------

# One head. Keys 2 and 5 carry channel 0; every query is BIG on channel 0. Row j's attention goes
# uniformly over 0..j while no marked key is visible (rows 0, 1), all to key 2 for rows 2..4, half to
# 2 and half to 5 for rows 5..8. Accumulated: s0 = 1 + 1/2 = 1.5, s1 = 0.5, s2 = 3 + 4/2 = 5, s5 = 2,
# others ~0. Budget round(0.5 * 9) = 4, recent 2 (keys 7, 8), heavy 2 of keys 0..6: {2, 5}.
H2O_KEYS = tagged(onehot_keys(10, {2: 0, 5: 0}))


def h2o_prefill(layer: H2OLayer) -> None:
    n = 9
    q = query(0)[None, None].expand(1, n, 4).clone()
    layer.attend(q, H2O_KEYS[None, :n], torch.randn(1, n, 4))


def test_h2o_prefill_keeps_heavy_hitters_and_recent() -> None:
    layer = H2OLayer(tiny_spec(), 0, 0.5)
    h2o_prefill(layer)
    assert kept_keys(layer, 0, H2O_KEYS) == [2, 5, 7, 8]
    assert layer.scores[0].tolist() == pytest.approx([5.0, 2.0, 0.0, 0.0], abs=1e-4)


def test_h2o_decode_accumulates_and_evicts_one_per_step() -> None:
    layer = H2OLayer(tiny_spec(), 0, 0.5)
    h2o_prefill(layer)
    # Token 9 (key ~0) queries channel 0: half to 2, half to 5. Cache {2,5,7,8,9} > 4: recent {8, 9},
    # heavy 2 of {2 (5.5), 5 (2.5), 7 (0)}: key 7 goes.
    layer.attend(query(0)[None, None], H2O_KEYS[None, 9:10], torch.randn(1, 1, 4))
    assert kept_keys(layer, 0, H2O_KEYS) == [2, 5, 8, 9]
    assert layer.scores[0].tolist() == pytest.approx([5.5, 2.5, 0.0, 0.0], abs=1e-4)
    assert layer.tokens_held() == [4]


def test_h2o_recent_fraction_zero_is_pure_heavy_hitters() -> None:
    layer = H2OLayer(tiny_spec(), 0, 0.5, recent_fraction=0.0)
    h2o_prefill(layer)
    # top 4 of s = [1.5, .5, 5, ~0, ~0, 2, ~0, ~0, ~0]: keys 2, 5, 0, 1
    assert kept_keys(layer, 0, H2O_KEYS) == [0, 1, 2, 5]


def test_h2o_sums_scores_over_the_gqa_group() -> None:
    # Two query heads share one key/value head: query head 0 as above, query head 1 attends uniformly
    # (zero query): row j gives 1/(j+1) to each of 0..j, s_i = H_9 - H_i (H harmonic numbers).
    layer = H2OLayer(tiny_spec(n_heads=2), 0, 0.5)
    n = 9
    q = torch.stack([query(0).expand(n, 4), query(None).expand(n, 4)])
    layer.attend(q, H2O_KEYS[None, :n], torch.randn(1, n, 4))
    harm = [sum(1.0 / j for j in range(1, i + 1)) for i in range(n + 1)]
    uniform = [harm[n] - harm[i] for i in range(n)]
    focused = [1.5, 0.5, 5.0, 0, 0, 2.0, 0, 0, 0]
    total = [a + b for a, b in zip(focused, uniform, strict=True)]
    # heavy 2 of keys 0..6 by total: 2 (5 + 1.33), 0 (1.5 + 2.83) -> [0, 2] (key 5: 2 + 0.55)
    assert sorted(range(7), key=lambda i: -total[i])[:2] == [2, 0]
    assert kept_keys(layer, 0, H2O_KEYS) == [0, 2, 7, 8]
    assert layer.scores[0].tolist() == pytest.approx([total[0], total[2], total[7], total[8]], abs=1e-4)


def test_h2o_adaptive_heads_are_ragged() -> None:
    # Two kv heads (one query head each). Head 0 keys: only key 2 marked -> rows 2..8 all to key 2:
    # s = [1.5, .5, 7, 0...]. Head 1: uniform (zero queries): s_i = H_9 - H_i = [2.83, 1.83, 1.33, 1.00,
    # .75, .55, ...]. Budget round(0.67 * 9) = 6, recent 3, heavy 2 * 3 = 6 jointly (floor: int(.2*6/2)=0)
    # over keys 0..5: 7 (h0), 2.83, 1.83 (h1), 1.5 (h0), 1.33, 1.00 (h1) -> head 0: 2 heavy, head 1: 4.
    layer = H2OLayer(tiny_spec(n_heads=2, n_kv_heads=2), 0, 0.67, head_budget="adaptive")
    n = 9
    k0 = tagged(onehot_keys(n, {2: 0}))
    k1 = tagged(onehot_keys(n, {}))
    q = torch.stack([query(0).expand(n, 4), query(None).expand(n, 4)])
    layer.attend(q, torch.stack([k0, k1]), torch.randn(2, n, 4))
    assert layer.head_budgets_tokens == [5, 7]
    assert kept_keys(layer, 0, k0) == [0, 2, 6, 7, 8]
    assert kept_keys(layer, 1, k1) == [0, 1, 2, 3, 6, 7, 8]
    assert layer.tokens_held() == [5, 7]
    reported, held = bytes_match_layer(layer)
    assert reported == held == (5 + 7) * 2 * 4 * 2 + (5 + 7) * 4  # fp16 K and V rows + float32 scores


def bytes_match_layer(layer: H2OLayer | SnapKVLayer) -> tuple[int, int]:
    from memarena.families.kvcache.cache import KVCache

    return bytes_match(KVCache([layer]))


def test_h2o_bytes_hand_computed() -> None:
    layer = H2OLayer(tiny_spec(), 0, 0.5)
    h2o_prefill(layer)
    assert layer.nbytes()["payload"] == 2 * 4 * 4 * 2  # K and V, 4 rows x 4 channels, fp16
    assert layer.nbytes()["scores"] == 4 * 4  # 4 float32 sums
    assert bytes_match_layer(layer) == (80, 80)


# --- SnapKV ----------------------------------------------------------------------------------------------

# One head, n = 10, window 2 (rows 8, 9). Keys 1 and 4 carry channel 0, key 6 channel 1. Row 8 queries
# channel 0 (half to 1, half to 4), row 9 channel 1 (all to 6). Votes over prefix 0..7:
# [0, .5, 0, 0, .5, 0, 1, 0]. Budget round(0.5 * 10) = 5: the window + top 3 of the prefix.
SNAP_KEYS = tagged(onehot_keys(10, {1: 0, 4: 0, 6: 1}))


def snap_prefill(layer: SnapKVLayer) -> None:
    n = 10
    q = torch.zeros(1, n, 4)
    q[0, 8], q[0, 9] = query(0), query(1)
    layer.attend(q, SNAP_KEYS[None], torch.randn(1, n, 4))


def test_snapkv_without_pooling_keeps_the_voted_tokens_and_the_window() -> None:
    layer = SnapKVLayer(tiny_spec(), 0, 0.5, window_tokens=2, kernel_tokens=1)
    snap_prefill(layer)
    assert kept_keys(layer, 0, SNAP_KEYS) == [1, 4, 6, 8, 9]


def test_snapkv_max_pooling_spreads_the_votes() -> None:
    # kernel 3 max pooling: [.5, .5, .5, .5, .5, 1, 1, 1] -> top 3 are 5, 6, 7.
    layer = SnapKVLayer(tiny_spec(), 0, 0.5, window_tokens=2, kernel_tokens=3)
    snap_prefill(layer)
    assert kept_keys(layer, 0, SNAP_KEYS) == [5, 6, 7, 8, 9]


def test_snapkv_budget_below_window_keeps_the_window_tail() -> None:
    layer = SnapKVLayer(tiny_spec(), 0, 0.1, window_tokens=2, kernel_tokens=1)  # round(1.0) = 1 token
    snap_prefill(layer)
    assert kept_keys(layer, 0, SNAP_KEYS) == [9]


def test_snapkv_decode_appends() -> None:
    layer = SnapKVLayer(tiny_spec(), 0, 0.5, window_tokens=2, kernel_tokens=1)
    snap_prefill(layer)
    for _ in range(3):
        layer.attend(torch.randn(1, 1, 4), torch.randn(1, 1, 4), torch.randn(1, 1, 4))
    assert layer.tokens_held() == [8]
    assert not layer.needs_probs


def test_snapkv_adaptive_heads_are_ragged() -> None:
    # Head 0 as above (votes [0, .5, 0, 0, .5, 0, 1, 0]); head 1 has zero queries in the window: uniform
    # attention, row 8 gives 1/9 and row 9 1/10 to each prefix key: votes .211 each. Budget
    # round(0.7 * 10) = 7, window 2: prefix budget 2 * 5 = 10. Floor int(.2 * 10 / 2) = 1 per head (head 0:
    # key 6; head 1: one .211 key); the other 8 go jointly: .5, .5 (head 0), then six .211 (head 1) beat
    # head 0's zeros -> head 0 keeps 3 prefix keys (1, 4, 6), head 1 keeps 7.
    layer = SnapKVLayer(
        tiny_spec(n_heads=2, n_kv_heads=2), 0, 0.7, window_tokens=2, kernel_tokens=1, head_budget="adaptive"
    )
    n = 10
    q = torch.zeros(2, n, 4)
    q[0, 8], q[0, 9] = query(0), query(1)
    k1 = tagged(onehot_keys(n, {}))
    layer.attend(q, torch.stack([SNAP_KEYS, k1]), torch.randn(2, n, 4))
    assert layer.head_budgets_tokens == [3 + 2, 7 + 2]
    assert kept_keys(layer, 0, SNAP_KEYS) == [1, 4, 6, 8, 9]
    assert layer.tokens_held() == [5, 9]
    assert bytes_match_layer(layer) == ((5 + 9) * 16, (5 + 9) * 16)


# --- both, on the model ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    [
        H2O(),
        SnapKV(),
        H2O(head_budget="adaptive", layer_budget="pyramid"),
        SnapKV(head_budget="adaptive", layer_budget="pyramid"),
    ],
)
def test_budget_one_is_the_full_cache(method: H2O | SnapKV) -> None:
    model, tokens = model_and_tokens(48)
    spec = CacheSpec.of(model.cfg, model.rope)
    full = run(model, FullCache().new_cache(spec, 1.0), tokens, 40)
    mine = method.new_cache(spec, 1.0)
    assert torch.equal(run(model, mine, tokens, 40), full)
    assert mine.tokens_held() == [[48, 48]] * 4


@pytest.mark.parametrize(
    ("method", "held"),
    [
        (H2O(), [[20, 20]] * 4),  # round(0.5 * 40) per head, kept through decode
        (SnapKV(window_tokens=8), [[28, 28]] * 4),  # 20 at prefill + 8 decoded
    ],
)
def test_budget_and_bytes_after_prefill_and_decode(method: H2O | SnapKV, held: list[list[int]]) -> None:
    model, tokens = model_and_tokens(48)
    spec = CacheSpec.of(model.cfg, model.rope)
    cache = method.new_cache(spec, 0.5)
    logits = run(model, cache, tokens, 40)
    assert torch.isfinite(logits).all()
    assert cache.tokens_held() == held
    reported, stored = bytes_match(cache)
    assert reported == stored
    payload = sum(sum(h) for h in held) * 2 * 32 * 2
    assert cache.nbytes()["payload"] == payload


def test_adaptive_pyramid_on_the_model_keeps_the_mean() -> None:
    model, tokens = model_and_tokens(64)
    spec = CacheSpec.of(model.cfg, model.rope)
    cache = SnapKV(window_tokens=4, head_budget="adaptive", layer_budget="pyramid").new_cache(spec, 0.25)
    run(model, cache, tokens, 64)
    held = cache.tokens_held()
    per_layer = [sum(h) for h in held]
    assert per_layer == sorted(per_layer, reverse=True)  # pyramid: lower layers keep more
    assert sum(per_layer) == pytest.approx(0.25 * 64 * 2 * 4, abs=4 * 2)  # rounding: at most 1/head
    assert bytes_match(cache)[0] == bytes_match(cache)[1]


class F32Store(Fp16Store):
    """A store of another width, to prove the factory is what each head holds."""

    def __init__(self, head_dim: int) -> None:
        super().__init__(head_dim, torch.float32)


@pytest.mark.parametrize("method", [H2O(), SnapKV(window_tokens=4)])
def test_store_factory_is_used(method: H2O | SnapKV) -> None:
    model, tokens = model_and_tokens(24)
    spec = CacheSpec.of(model.cfg, model.rope)
    from memarena.families.kvcache.cache import KVCache

    def factory(h: int) -> HeadStore:
        return F32Store(spec.head_dim)

    cache = KVCache([method.new_layer(spec, i, 0.5, store=factory) for i in range(spec.n_layers)])
    run(model, cache, tokens, 20)
    assert all(isinstance(s, F32Store) for layer in cache.layers for s in layer.heads)  # type: ignore[attr-defined]
    reported, stored = bytes_match(cache)
    assert reported == stored


def test_bad_params_name_their_keys() -> None:
    with pytest.raises(InvalidConfigError, match="kv_compression.layer_budget"):
        H2O(layer_budget="triangle")
    with pytest.raises(InvalidConfigError, match="kv_compression.recent_fraction"):
        H2O(recent_fraction=1.5)
    with pytest.raises(InvalidConfigError, match="kv_compression.pooling"):
        SnapKV(pooling="min")
    model, _ = model_and_tokens(1)
    spec = CacheSpec.of(model.cfg, model.rope)
    with pytest.raises(InvalidConfigError, match="family.budget"):
        SnapKV().new_cache(spec, 0.0)
