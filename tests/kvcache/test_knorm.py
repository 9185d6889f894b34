"""K-norm (Devoto et al., 2024, arXiv 2406.11430): the lowest-key-norm tokens stay, per layer and head."""

from __future__ import annotations

import pytest
import torch

from memarena.families.kvcache import KV_COMPRESSIONS, CacheSpec, held_tensors, storage_bytes
from memarena.families.kvcache.methods.knorm import KnormCache, kept_tokens, knorm_keep
from memarena.models import ByteLlama, ByteLlamaConfig

torch.set_num_threads(1)


def _spec(n_kv_heads: int = 1, head_dim: int = 2, n_layers: int = 1) -> CacheSpec:
    cfg = ByteLlamaConfig(dim=head_dim * n_kv_heads, n_heads=n_kv_heads, n_kv_heads=n_kv_heads, n_layers=n_layers)
    model = ByteLlama(cfg)
    return CacheSpec.of(cfg, model.rope)


def test_registered() -> None:
    assert KnormCache in KV_COMPRESSIONS
    assert KnormCache.name == "knorm"


def test_kept_count_is_kvpress_floor() -> None:
    # kvpress: max(1, int(T * (1 - compression_ratio))); the paper's code: ceil(keep_ratio * T)
    assert kept_tokens(10, 0.25) == 2
    assert kept_tokens(10, 0.5) == 5
    assert kept_tokens(3, 0.1) == 1


def test_hand_computed_kept_set() -> None:
    # one head, d=2; key norms: t0 5, t1 1, t2 sqrt(2), t3 3, t4 0.5, t5 2
    k = torch.tensor([[3.0, 4.0], [1.0, 0.0], [1.0, 1.0], [0.0, 3.0], [0.3, 0.4], [0.0, 2.0]])
    v = torch.arange(12, dtype=torch.float32).view(6, 2)
    spec = _spec()
    layer = KnormCache().new_layer(spec, 0, budget=0.5)
    layer.attend(k[None], k[None], v[None])
    # budget 0.5 of 6 -> 3 lowest norms: t4 (0.5), t1 (1), t2 (1.41)
    store = layer.heads[0]
    assert len(store) == 3
    kk, vv, chan = store.read()
    assert chan is None
    assert torch.equal(vv, v[[1, 2, 4]])
    assert torch.equal(kk, k[[1, 2, 4]].half().float())
    assert knorm_keep(k, 3).tolist() == [1, 2, 4]


def test_decode_appends_after_prefill() -> None:
    spec = _spec()
    layer = KnormCache().new_layer(spec, 0, budget=0.5)
    k = torch.tensor([[3.0, 4.0], [1.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    layer.attend(k[None], k[None], k[None])
    assert layer.tokens_held() == [2]
    big = torch.tensor([[[9.0, 9.0]]])
    layer.attend(big, big, big)  # a decoded token is kept whatever its norm
    assert layer.tokens_held() == [3]


def test_heads_choose_independently_and_skip_layers() -> None:
    spec = _spec(n_kv_heads=2, n_layers=2)
    k = torch.tensor(
        [[[1.0, 0.0], [5.0, 0.0], [2.0, 0.0], [0.5, 0.0]], [[5.0, 0.0], [1.0, 0.0], [0.125, 0.0], [9.0, 0.0]]]
    )
    method = KnormCache(skip_layers=[1])
    layers = [method.new_layer(spec, i, budget=0.5) for i in range(2)]
    for layer in layers:
        layer.attend(k, k, k)
    assert torch.equal(layers[0].heads[0].read()[0][:, 0], torch.tensor([1.0, 0.5]))
    assert torch.equal(layers[0].heads[1].read()[0][:, 0], torch.tensor([1.0, 0.125]))
    assert layers[1].tokens_held() == [4, 4]


def test_bad_params_name_the_key() -> None:
    spec = _spec()
    with pytest.raises(ValueError, match="kv_compression.skip_layers"):
        KnormCache(skip_layers=[3]).new_layer(spec, 0, 0.5)
    with pytest.raises(ValueError, match="family.budget"):
        KnormCache().new_layer(spec, 0, 0.0)


def test_bytes_equal_storage_of_held_tensors() -> None:
    torch.manual_seed(0)
    model = ByteLlama().eval()
    spec = CacheSpec.of(model.cfg, model.rope)
    cache = KnormCache().new_cache(spec, budget=0.25)
    tokens = torch.randint(0, 256, (1, 64))
    with torch.no_grad():
        model(tokens, cache)
        model(tokens[:, :1], cache)
    held = held_tensors(cache)
    assert cache.total_bytes() == sum(storage_bytes(t) for t in held)
    # 64 tokens at 0.25 -> 16 kept + 1 decoded, every layer and head, fp16 K and V
    assert cache.tokens_held() == [[17, 17]] * 4
    assert cache.total_bytes() == 17 * spec.full_bytes_per_token()
