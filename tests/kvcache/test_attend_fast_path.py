"""HeadwiseLayer's batched-SDPA fast path equals the per-head path with explicit probabilities."""

from __future__ import annotations

import torch

from memarena.families.kvcache import CacheSpec, HeadwiseLayer
from memarena.models import ByteLlama

torch.set_num_threads(1)


class _ProbsLayer(HeadwiseLayer):
    needs_probs = True  # forces the per-head path


def test_fast_path_equals_per_head_path() -> None:
    torch.manual_seed(0)
    model = ByteLlama()
    spec = CacheSpec.of(model.cfg, model.rope)
    fast, slow = HeadwiseLayer(spec, 0), _ProbsLayer(spec, 0)
    hq, hkv, d = spec.n_heads, spec.n_kv_heads, spec.head_dim
    for t in (17, 1, 5):  # prefill, one decoded token, a chunk over cached rows
        q, k, v = torch.randn(hq, t, d), torch.randn(hkv, t, d), torch.randn(hkv, t, d)
        out_fast, out_slow = fast.attend(q, k, v), slow.attend(q, k, v)
        assert out_fast.shape == (hq, t, d)
        torch.testing.assert_close(out_fast, out_slow, atol=1e-5, rtol=1e-5)
    assert fast.tokens_held() == slow.tokens_held() == [23, 23]


def test_ragged_heads_take_the_per_head_path() -> None:
    torch.manual_seed(1)
    model = ByteLlama()
    spec = CacheSpec.of(model.cfg, model.rope)
    layers = [HeadwiseLayer(spec, 0), _ProbsLayer(spec, 0)]
    hq, hkv, d = spec.n_heads, spec.n_kv_heads, spec.head_dim
    q, k, v = torch.randn(hq, 8, d), torch.randn(hkv, 8, d), torch.randn(hkv, 8, d)
    for layer in layers:
        layer.attend(q, k, v)
        layer.heads[0].keep(torch.tensor([0, 3, 5]))  # head 0 holds 3 rows, head 1 holds 8
    assert layers[0]._attend_sdpa(q[:, :2], k[:, :2], v[:, :2], [s.read() for s in layers[0].heads]) is None
    q2, k2, v2 = torch.randn(hq, 2, d), torch.randn(hkv, 2, d), torch.randn(hkv, 2, d)
    torch.testing.assert_close(layers[0].attend(q2, k2, v2), layers[1].attend(q2, k2, v2), atol=1e-5, rtol=1e-5)


def test_full_model_logits_match_uncached_forward() -> None:
    torch.manual_seed(2)
    model = ByteLlama().eval()
    spec = CacheSpec.of(model.cfg, model.rope)
    from memarena.families.kvcache import KVCache

    tokens = torch.randint(0, 256, (1, 40))
    with torch.no_grad():
        ref = model(tokens)
        cache = KVCache([HeadwiseLayer(spec, i) for i in range(spec.n_layers)])
        got = torch.cat([model(tokens[:, :32], cache), model(tokens[:, 32:], cache)], dim=1)
    # the cache stores fp16 keys/values: the 8 tokens after the prefill read rounded rows
    torch.testing.assert_close(got[:, :32], ref[:, :32], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, ref, atol=2e-3, rtol=2e-3)


class _LastRowsLayer(HeadwiseLayer):
    """Reads the attention of the last ``m`` new queries only (as SnapKV's observation window)."""

    def __init__(self, spec: CacheSpec, m: int) -> None:
        super().__init__(spec, 0)
        self.m = m
        self.seen_probs: list[torch.Tensor] | None = None

    def probs_queries(self, t: int) -> int:
        return self.m

    def after_attention(self, q, k, v, probs) -> None:  # type: ignore[no-untyped-def]
        self.seen_probs = probs
        super().after_attention(q, k, v, probs)


class _AllRowsLayer(_LastRowsLayer):
    needs_probs = True

    def probs_queries(self, t: int) -> int:
        return t


def test_last_rows_of_probabilities_equal_those_rows_of_the_full_ones() -> None:
    torch.manual_seed(3)
    model = ByteLlama()
    spec = CacheSpec.of(model.cfg, model.rope)
    part, full = _LastRowsLayer(spec, 4), _AllRowsLayer(spec, 0)
    hq, hkv, d = spec.n_heads, spec.n_kv_heads, spec.head_dim
    for t in (12, 6):  # a prefill, then a chunk over the cached rows
        q, k, v = torch.randn(hq, t, d), torch.randn(hkv, t, d), torch.randn(hkv, t, d)
        torch.testing.assert_close(part.attend(q, k, v), full.attend(q, k, v), atol=1e-5, rtol=1e-5)
        assert part.seen_probs is not None and full.seen_probs is not None
        for p, f in zip(part.seen_probs, full.seen_probs, strict=True):
            assert p.shape == (spec.group_size, 4, f.shape[-1])
            torch.testing.assert_close(p, f[:, -4:], atol=1e-6, rtol=1e-6)
            # a row's probability over keys it may not see (later new tokens) is exactly 0
            assert float(p[:, 0, -3:].abs().sum()) == 0.0
