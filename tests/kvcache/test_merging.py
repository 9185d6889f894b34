"""KVMerger and Elastic Cache: hand-computed merging sets, pivots, Gaussian weights, anchors; budgets; exact bytes."""

from __future__ import annotations

import math

import pytest
import torch

from memarena.errors import InvalidConfigError
from memarena.families.kvcache import CacheSpec, Fp16Store, held_tensors, storage_bytes
from memarena.families.kvcache.methods import ElasticCache, KVMerger
from memarena.families.kvcache.methods.budgets import tokens_for
from memarena.families.kvcache.methods.elastic import ElasticLayer, anchor_groups, merge_groups
from memarena.families.kvcache.methods.kvmerger import KVMergerLayer, gaussian_merge, merging_sets
from memarena.families.kvcache.prefill import prefill
from memarena.models import ByteLlama

torch.set_num_threads(1)

# Adjacent cosines: cos(k0,k1)=1, cos(k1,k2)=0, cos(k2,k3)=1, cos(k3,k4)=1, cos(k4,k5)=1/sqrt(2).
KEYS = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [0.0, 5.0], [1.0, 1.0]])


@pytest.fixture(scope="module")
def model() -> ByteLlama:
    torch.manual_seed(0)
    return ByteLlama().eval()


def spec_of(model: ByteLlama) -> CacheSpec:
    return CacheSpec.of(model.cfg, model.rope)


def test_merging_sets_are_runs_of_similar_adjacent_keys() -> None:
    none = torch.zeros(6, dtype=torch.bool)
    assert merging_sets(KEYS, 0.9, none) == [[0, 1], [2, 3, 4]]
    assert merging_sets(KEYS, 0.7, none) == [[0, 1], [2, 3, 4, 5]]  # 1/sqrt(2) = 0.7071 > 0.7
    assert merging_sets(KEYS, 1.5, none) == []
    # Algorithm 1 groups adjacent keys only when cos > eps: cosines of exactly 1 do not exceed 1
    assert merging_sets(KEYS, 1.0, none) == []
    protected = none.clone()
    protected[3] = True  # a protected key splits the run and stays alone
    assert merging_sets(KEYS, 0.9, protected) == [[0, 1]]


def test_gaussian_merge_by_hand() -> None:
    keys = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    values = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    k, v, pivot = gaussian_merge(keys, values, torch.tensor([5.0, 1.0, 1.0]))
    assert pivot == 0
    # distances to the pivot 0, 3, 4; sigma = 7 / (3 sqrt 2), so 2 sigma^2 = 49 / 9
    g = [1.0, math.exp(-9 * 9 / 49), math.exp(-16 * 9 / 49)]
    w = [x / sum(g) for x in g]
    assert torch.allclose(k, torch.tensor([3 * w[1], 4 * w[2]]), atol=1e-6)
    # values: the same weights times |S| = 3 (Sec. 4.2: "w_i and w_p are multiplied by |S_v|")
    assert torch.allclose(v, 3 * torch.tensor([w[0] + w[2], w[1] + w[2]]), atol=1e-6)
    # a fixed sigma: 2 sigma^2 = 2
    k2, _, _ = gaussian_merge(keys, values, torch.tensor([5.0, 1.0, 1.0]), sigma=1.0)
    g2 = [1.0, math.exp(-9 / 2), math.exp(-16 / 2)]
    assert torch.allclose(k2, torch.tensor([3 * g2[1], 4 * g2[2]]) / sum(g2), atol=1e-6)


def merger_layer(model: ByteLlama, *, heavy_fraction: float = 0.0) -> KVMergerLayer:
    return KVMergerLayer(spec_of(model), 0, 1.0, 0.9, heavy_fraction, 1, store=lambda h: Fp16Store(2))


def store_of(keys: torch.Tensor) -> Fp16Store:
    s = Fp16Store(2)
    s.append(keys, keys * 10)
    return s


def test_compress_head_merges_at_the_pivot_then_evicts(model: ByteLlama) -> None:
    layer = merger_layer(model)
    scores = torch.tensor([1.0, 5.0, 2.0, 4.0, 1.0, 0.5])
    store = store_of(KEYS)
    layer.compress_head(store, scores, n_keep=3)  # sets [0,1] (pivot 1) and [2,3,4] (pivot 3); row 5 is recent
    k, v, _ = store.read()
    e4, e94 = math.exp(-4), math.exp(-9 / 4)
    # set [0,1]: distances 1, 0; 2 sigma^2 = 1/4
    k01 = (torch.tensor([1.0, 0.0]) * e4 + torch.tensor([2.0, 0.0])) / (1 + e4)
    # set [2,3,4]: distances 2, 0, 2; 2 sigma^2 = 16/9
    k234 = torch.tensor([0.0, (e94 * 1 + 3 + e94 * 5) / (1 + 2 * e94)])
    assert torch.allclose(k, torch.stack([k01, k234, KEYS[5]]), atol=2e-3)
    # values (10 x keys) merge with the same weights times |S|: 2 and 3
    assert torch.allclose(v, 10 * torch.stack([2 * k01, 3 * k234, KEYS[5]]), atol=5e-2)
    # budget 2: the merged row of least summed attention (6 < 7) goes; the recent row is protected
    store = store_of(KEYS)
    layer.compress_head(store, scores, n_keep=2)
    k, _, _ = store.read()
    assert torch.allclose(k, torch.stack([k234, KEYS[5]]), atol=2e-3)


def test_heavy_hitters_are_not_merged(model: ByteLlama) -> None:
    layer = merger_layer(model, heavy_fraction=0.5)  # int(0.5 * 3) = 1 heavy hitter: row 1 (score 5)
    store = store_of(KEYS)
    layer.compress_head(store, torch.tensor([1.0, 5.0, 2.0, 4.0, 1.0, 0.5]), n_keep=3)
    k, _, _ = store.read()
    # rows 0 and 1 stay apart; [2,3,4] merges; 4 rows > 3: row 0 (score 1) is evicted
    assert len(store) == 3
    assert torch.allclose(k[0], KEYS[1], atol=1e-3)
    assert torch.allclose(k[2], KEYS[5], atol=1e-3)


def test_anchor_groups_by_hand() -> None:
    scores = torch.tensor([0.0, 0, 0, 9, 0, 0, 0, 8, 0, 0])
    # start 1, protect 1, 4 kept: anchors are rows 3 and 7; row 5 is 2 from both: the earlier anchor
    assert anchor_groups(scores, 4, 1, 1) == [[0], [1, 2, 3, 4, 5], [6, 7, 8], [9]]
    assert anchor_groups(scores, 10, 1, 1) == [[i] for i in range(10)]
    assert anchor_groups(scores, 1, 4, 1) == [list(range(10))]  # one row: one anchor, no start or protected rows


def test_merge_groups_averages_into_the_anchor() -> None:
    store = Fp16Store(2)
    keys = torch.arange(20, dtype=torch.float32).view(10, 2)
    store.append(keys, -keys)
    merge_groups(store, [[0], [1, 2, 3, 4, 5], [6, 7, 8], [9]])
    k, v, _ = store.read()
    want = torch.stack([keys[0], keys[1:6].mean(0), keys[6:9].mean(0), keys[9]])
    assert torch.equal(k, want)
    assert torch.equal(v, -want)


def test_elastic_anchors_are_one_per_layer_from_all_heads_importance(model: ByteLlama) -> None:
    # The authors' code scores a layer once (attention averaged over its heads, summed over queries), so all
    # its key/value heads keep the same anchors even where one head alone would pick other tokens.
    layer = ElasticLayer(spec_of(model), 0, 0.5, 1, 1, 25)  # 8 prompt rows -> 4 kept: start 1, 2 anchors, last 1
    n, d = 8, spec_of(model).head_dim
    k = torch.arange(2 * n * d, dtype=torch.float32).view(2, n, d) / 100
    probs = [torch.zeros(2, n, n), torch.zeros(2, n, n)]
    probs[0][0, 0, 2], probs[0][1, 0, 5] = 5.0, 4.0  # head 0: rows 2 and 5
    probs[1][0, 0, 2], probs[1][0, 0, 6], probs[1][1, 0, 5] = 5.0, 3.0, 1.0  # head 1 alone: rows 2 and 6
    # the layer: row 2 10, row 5 5, row 6 3 -> anchors 2 and 5 for both heads; rows 1, 3 -> 2; rows 4, 6 -> 5
    layer.after_attention(torch.zeros(4, n, d), k, -k, probs)
    for h in range(2):
        kh, vh, _ = layer.heads[h].read()
        want = torch.stack([k[h, 0], k[h, 1:4].mean(0), k[h, 4:7].mean(0), k[h, 7]])
        assert torch.allclose(kh.float(), want, atol=1e-2)
        assert torch.allclose(vh.float(), -want, atol=1e-2)


def test_elastic_decode_drops_the_row_before_the_offset_window(model: ByteLlama) -> None:
    spec = spec_of(model)
    method = ElasticCache(offset_tokens=5)
    cache = method.new_cache(spec, 0.5)
    torch.manual_seed(1)
    prefill(model, torch.randint(0, 256, (40,)), cache, method.prefill_chunk_tokens)
    assert cache.tokens_held() == [[20, 20]] * 4
    store = cache.layers[2].heads[1]
    before, _, _ = store.read()
    with torch.no_grad():
        model(torch.tensor([[7]]), cache)
    after, _, _ = store.read()
    assert cache.tokens_held() == [[20, 20]] * 4
    # 21 rows after the append: row 21 - 1 - 5 = 15 is eliminated
    assert torch.equal(after[:15], before[:15])
    assert torch.equal(after[15:19], before[16:20])


@pytest.mark.parametrize("method", [KVMerger(), KVMerger(threshold=0.0), ElasticCache()], ids=str)
def test_budget_per_head_and_exact_bytes(model: ByteLlama, method: KVMerger | ElasticCache) -> None:
    spec = spec_of(model)
    torch.manual_seed(2)
    n = 120
    for budget in (0.25, 0.5, 1.0):
        cache = method.new_cache(spec, budget)
        prefill(model, torch.randint(0, 256, (n,)), cache, method.prefill_chunk_tokens)
        n_keep = tokens_for(budget, n)
        assert all(0 < t <= n_keep for layer in cache.tokens_held() for t in layer)
        with torch.no_grad():
            for i in range(3):
                model(torch.tensor([[i]]), cache)
        if isinstance(method, ElasticCache):
            assert cache.tokens_held() == [[n_keep] * spec.n_kv_heads] * spec.n_layers
        assert cache.total_bytes() == sum(storage_bytes(t) for t in held_tensors(cache))
        assert cache.total_bytes() == sum(2 * t * spec.head_dim * 2 for layer in cache.tokens_held() for t in layer)


def test_budget_one_keeps_the_full_cache(model: ByteLlama) -> None:
    spec = spec_of(model)
    torch.manual_seed(3)
    tokens = torch.randint(0, 256, (50,))
    for method in (KVMerger(), ElasticCache()):
        cache = method.new_cache(spec, 1.0)
        prefill(model, tokens, cache)
        assert cache.tokens_held() == [[50, 50]] * 4


def test_bad_parameters_name_their_key(model: ByteLlama) -> None:
    with pytest.raises(InvalidConfigError, match="kv_compression.threshold"):
        KVMerger(threshold=2.0)
    with pytest.raises(InvalidConfigError, match="kv_compression.offset_tokens"):
        ElasticCache(offset_tokens=-1)
    with pytest.raises(InvalidConfigError, match="family.budget"):
        KVMerger().new_layer(spec_of(model), 0, 0.0)
