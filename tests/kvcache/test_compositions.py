"""The compositions: H2O + KIVI and SnapKV -> ThinK (bytes by hand, bytes == held storage, budget 1 reduces)."""

from __future__ import annotations

import torch

from memarena.families.kvcache import CacheSpec, held_tensors, storage_bytes
from memarena.families.kvcache.methods import H2OKivi, Kivi, SnapKVThink, Think
from memarena.families.kvcache.methods.kivi import KiviStore
from memarena.families.kvcache.methods.think import ThinkStore
from memarena.models import ByteLlama

torch.set_num_threads(1)


def _run(method: object, tokens: torch.Tensor, model: ByteLlama, prefill: int, budget: float) -> tuple:
    spec = CacheSpec.of(model.cfg, model.rope)
    cache = method.new_cache(spec, budget)  # type: ignore[attr-defined]
    outs = [model(tokens[:, :prefill], cache)[0, -1:]]
    for t in range(prefill, tokens.shape[1]):
        outs.append(model(tokens[:, t : t + 1], cache)[0])
    return torch.cat(outs), cache


def _held(cache: object) -> int:
    return sum(storage_bytes(t) for t in held_tensors(cache))


@torch.no_grad()
def test_h2o_kivi_bytes_by_hand_after_prefill() -> None:
    torch.manual_seed(0)
    model = ByteLlama().eval()
    tokens = torch.randint(0, 256, (1, 100))
    # recent_fraction 1: H2O keeps exactly the last round(0.5 x 100) = 50 tokens, rows 50..99.
    method = H2OKivi(recent_fraction=1.0, bits=2, group_size=32, residual=32)
    _, cache = _run(method, tokens, model, prefill=100, budget=0.5)
    # KIVI before the eviction: keys 0..95 quantized (groups 0..2), 96..99 fp16; values 0..67 quantized, 68..99 fp16.
    # Kept 50..99: key group 1 keeps rows 50..63 (14), group 2 all 32, group 0 none -> lengths [14, 32] (int32);
    # values 50..67 quantized (18 rows), 32 fp16.
    store = cache.layer(0).heads[0]  # type: ignore[attr-defined]
    assert isinstance(store, KiviStore)
    assert store.k_group_len is not None and store.k_group_len.tolist() == [14, 32]
    per_head = {
        "payload": (46 + 18) * 8,  # 2-bit codes: 8 B a row of 32 channels
        "quant_params": 2 * 32 * 4 + 18 * 4,  # fp16 scale + min: per key group and channel; per value token
        "residual": (4 + 32) * 64,
        "indices": 2 * 4,  # the two key groups' lengths
        "scores": 50 * 4,  # H2O's float32 accumulated attention
    }
    reported = cache.nbytes()  # type: ignore[attr-defined]
    assert {k: reported[k] for k in per_head} == {k: 8 * b for k, b in per_head.items()}
    assert sum(reported.values()) == _held(cache)


@torch.no_grad()
def test_h2o_kivi_decode_bytes_and_full_budget_is_kivi() -> None:
    torch.manual_seed(0)
    model = ByteLlama().eval()
    tokens = torch.randint(0, 256, (1, 110))
    _, cache = _run(H2OKivi(bits=2, group_size=32, residual=32), tokens, model, prefill=100, budget=0.5)
    assert cache.tokens_held() == [[50, 50]] * 4  # type: ignore[attr-defined]
    assert sum(cache.nbytes().values()) == _held(cache)  # type: ignore[attr-defined]
    kivi, _ = _run(Kivi(bits=2, group_size=32, residual=32), tokens, model, prefill=100, budget=1.0)
    same, _ = _run(H2OKivi(bits=2, group_size=32, residual=32), tokens, model, prefill=100, budget=1.0)
    assert torch.allclose(same, kivi, atol=1e-5)


@torch.no_grad()
def test_snapkv_think_bytes_by_hand_and_full_budget_is_think() -> None:
    torch.manual_seed(0)
    model = ByteLlama().eval()
    tokens = torch.randint(0, 256, (1, 110))
    method = SnapKVThink(window_tokens=32, pruning_ratio=0.5, recent_tokens=8)
    _, cache = _run(method, tokens[:, :100], model, prefill=100, budget=0.5)
    # SnapKV keeps round(0.5 x 100) = 50 rows (18 voted + the 32-token window); ThinK then compacts all but
    # the last 8 to 16 of 32 channels: 42 x 16 x 2 B + 8 x 32 x 2 B keys, 50 x 32 x 2 B values; 16 int16 indices.
    store = cache.layer(0).heads[0]  # type: ignore[attr-defined]
    assert isinstance(store, ThinkStore) and store.k_pruned.shape == (42, 16)
    reported = cache.nbytes()  # type: ignore[attr-defined]
    assert reported["payload"] == 8 * (42 * 16 * 2 + 8 * 64 + 50 * 64)
    assert reported["indices"] == 8 * 16 * 2
    assert sum(reported.values()) == _held(cache)
    _, cache = _run(method, tokens, model, prefill=100, budget=0.5)
    assert cache.tokens_held() == [[60, 60]] * 4  # type: ignore[attr-defined]  # SnapKV: decoding appends
    assert sum(cache.nbytes().values()) == _held(cache)  # type: ignore[attr-defined]
    think, _ = _run(Think(pruning_ratio=0.5, recent_tokens=8), tokens, model, prefill=100, budget=1.0)
    same, _ = _run(SnapKVThink(pruning_ratio=0.5, recent_tokens=8), tokens, model, prefill=100, budget=1.0)
    assert torch.allclose(same, think, atol=1e-5)
