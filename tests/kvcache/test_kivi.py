"""KIVI (arXiv 2402.02750): quantization, bit packing, the store's layout and bytes, eviction, the model run."""

from __future__ import annotations

import pytest
import torch

from memarena.errors import InvalidConfigError
from memarena.families.kvcache import CacheSpec, held_tensors, storage_bytes
from memarena.families.kvcache.methods import FullCache, Kivi
from memarena.families.kvcache.methods.kivi import KiviStore, dequantize, pack_codes, quantize, unpack_codes
from memarena.models import ByteLlama

torch.set_num_threads(1)


def test_quantize_hand_values_2bit() -> None:
    # One key group of 4 tokens, 1 channel: min 0, max 3 -> scale (3 - 0) / (2^2 - 1) = 1.
    x = torch.tensor([[0.0], [0.4], [0.6], [3.0]])
    codes, scale, mn = quantize(x, 2, dim=0)
    assert codes.flatten().tolist() == [0, 0, 1, 3]
    assert scale.item() == 1.0 and mn.item() == 0.0
    assert dequantize(codes, scale, mn).flatten().tolist() == [0.0, 0.0, 1.0, 3.0]


def test_quantize_hand_values_4bit_asymmetric() -> None:
    # min 1, max 16 -> scale 15 / 15 = 1; 2.4 -> round(1.4) = 1 -> 1 * 1 + 1 = 2.
    x = torch.tensor([[1.0, 2.4, 16.0]])
    codes, scale, mn = quantize(x, 4, dim=1)
    assert codes.tolist() == [[0, 1, 15]]
    assert (scale.item(), mn.item()) == (1.0, 1.0)
    assert dequantize(codes, scale, mn).tolist() == [[1.0, 2.0, 16.0]]


def test_quantize_constant_slice_is_exact() -> None:
    x = torch.full((4, 2), 0.75)
    codes, scale, mn = quantize(x, 2, dim=0)
    assert int(codes.max()) == 0
    assert torch.equal(dequantize(codes, scale, mn), x)


@pytest.mark.parametrize("bits", [2, 4])
def test_error_bound_half_scale(bits: int) -> None:
    torch.manual_seed(1)
    x = torch.randn(8, 32, 16) * 3
    codes, scale, mn = quantize(x, bits, dim=1)
    err = (x - dequantize(codes, scale, mn)).abs()
    # |x - x'| <= scale / 2, plus the fp16 rounding of the stored minimum and scale.
    slack = 2e-3 * x.abs().amax(dim=1, keepdim=True)
    assert bool((err <= scale.float() / 2 + slack).all())
    assert int(codes.max()) <= (1 << bits) - 1


def test_pack_hand_bytes() -> None:
    # 2 bits, little end first: 1 | 2 << 2 | 3 << 4 | 0 << 6 = 57; 4 bits: 5 | 10 << 4 = 165.
    assert pack_codes(torch.tensor([[1, 2, 3, 0]]), 2).tolist() == [[57]]
    assert pack_codes(torch.tensor([[5, 10]]), 4).tolist() == [[165]]
    # 5 codes at 2 bits take 2 bytes (the last padded with zero codes): 3 | 3 << 2 ... ; second byte = 1.
    assert pack_codes(torch.tensor([[3, 3, 3, 3, 1]]), 2).tolist() == [[255, 1]]


@pytest.mark.parametrize(("bits", "width"), [(2, 7), (2, 32), (4, 5), (4, 32)])
def test_pack_round_trip(bits: int, width: int) -> None:
    torch.manual_seed(2)
    codes = torch.randint(0, 1 << bits, (9, width), dtype=torch.uint8)
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8
    assert packed.shape == (9, -(-width * bits // 8))
    assert torch.equal(unpack_codes(packed, bits, width), codes)


def _store_bytes(store: KiviStore) -> dict[str, int]:
    out: dict[str, int] = {}
    for cat, t in store.tensors():
        out[cat] = out.get(cat, 0) + storage_bytes(t)
    return out


def test_store_layout_and_bytes_by_hand() -> None:
    # n = 70 tokens, d = 32, G = 32, R = 64, 2 bits.
    torch.manual_seed(3)
    s = KiviStore(32, bits=2, group_size=32, residual=64)
    k, v = torch.randn(70, 32), torch.randn(70, 32)
    s.append(k, v)
    # keys: 70 mod 64 = 6 in the fp16 residual, 64 quantized = 2 groups of 32;
    # values: the 64 most recent in fp16, 6 quantized per token (one group of 32 channels each).
    assert (s.k_codes.shape, s.k_res.shape[0], s.v_codes.shape, s.v_res.shape[0]) == ((64, 8), 6, (6, 8), 64)
    # payload: 64 x 8 B (key codes: 32 ch x 2 bit) + 6 x 8 B (value codes) = 560
    # quant_params: 2 groups x 32 ch x (scale + min) x 2 B = 256, + 6 tokens x 1 group x 2 x 2 B = 24 -> 280
    # residual: 6 x 32 x 2 B + 64 x 32 x 2 B = 384 + 4096 = 4480
    assert _store_bytes(s) == {"payload": 560, "quant_params": 280, "residual": 4480}
    # fp16 would be 70 x 32 x 2 x 2 = 8960 B.
    # 58 decode steps: the key residual reaches 64 and is quantized (2 more groups); values slide.
    for _ in range(58):
        s.append(torch.randn(1, 32), torch.randn(1, 32))
    assert (s.k_codes.shape[0], s.k_res.shape[0], s.v_codes.shape[0], s.v_res.shape[0]) == (128, 0, 64, 64)
    # payload 128 x 8 + 64 x 8 = 1536; params 4 x 32 x 4 + 64 x 4 = 768; residual 64 x 32 x 2 = 4096.
    assert _store_bytes(s) == {"payload": 1536, "quant_params": 768, "residual": 4096}


def test_store_read_matches_quantization() -> None:
    torch.manual_seed(4)
    s = KiviStore(32, bits=4, group_size=32, residual=64)
    k, v = torch.randn(70, 32), torch.randn(70, 32)
    s.append(k, v)
    kr, vr, chan = s.read()
    assert chan is None and kr.shape == (70, 32) and vr.shape == (70, 32)
    # The residuals are the fp16 rows; the quantized rows are within half a scale of the input.
    assert torch.equal(kr[64:], k[64:].half().float())
    assert torch.equal(vr[6:], v[6:].half().float())
    kq = k[:64].half().view(2, 32, 32)
    scale = (kq.float().amax(1) - kq.float().amin(1)) / 15
    err = (kr[:64].view(2, 32, 32) - kq.float()).abs()
    assert bool((err <= scale.unsqueeze(1) / 2 + 1e-2).all())
    assert float(err.max()) > 0  # really quantized


def test_keep_evicts_without_requantizing() -> None:
    torch.manual_seed(5)
    s = KiviStore(32, bits=2, group_size=32, residual=64)
    s.append(torch.randn(70, 32), torch.randn(70, 32))
    k_before, v_before, _ = s.read()
    rows = torch.tensor([0, 1, 33, 65, 69])
    s.keep(rows)
    k_after, v_after, _ = s.read()
    assert len(s) == 5
    assert torch.equal(k_after, k_before[rows]) and torch.equal(v_after, v_before[rows])
    # key groups keep their scale/min with their new lengths: group 0 has rows 0, 1; group 1 row 33.
    assert s.k_group_len is not None and s.k_group_len.tolist() == [2, 1]
    # bytes: key codes 3 x 8 + value codes 2 x 8 = 40; params 2 groups x 128 + 2 tokens x 4 = 264;
    # residual: keys 65, 69 + values 33, 65, 69 = 5 x 64 = 320; group lengths 2 x int32 = 8.
    assert _store_bytes(s) == {"payload": 40, "quant_params": 264, "residual": 320, "indices": 8}
    # new tokens after an eviction: the key residual fills up to R again before it is quantized.
    s.append(torch.randn(62, 32), torch.randn(62, 32))
    assert (s.k_codes.shape[0], s.k_res.shape[0]) == (67, 0)
    assert s.k_group_len is not None and s.k_group_len.tolist() == [2, 1, 32, 32]
    # a group that loses every row is dropped with its parameters.
    s.keep(torch.arange(3, len(s)))
    assert s.k_group_len is None and s.k_scale.shape[0] == 2


def _run(method: object, tokens: torch.Tensor, model: ByteLlama, prefill: int) -> tuple[torch.Tensor, object]:
    spec = CacheSpec.of(model.cfg, model.rope)
    cache = method.new_cache(spec, 1.0)  # type: ignore[attr-defined]
    outs = [model(tokens[:, :prefill], cache)[:, -1]]
    for t in range(prefill, tokens.shape[1]):
        outs.append(model(tokens[:, t : t + 1], cache)[:, -1])
    return torch.cat(outs), cache


@torch.no_grad()
def test_model_bytes_equal_held_storage_and_quality_order() -> None:
    torch.manual_seed(0)
    model = ByteLlama().eval()
    tokens = torch.randint(0, 256, (1, 110))
    full, _ = _run(FullCache(), tokens, model, prefill=100)
    logits4, cache4 = _run(Kivi(bits=4, group_size=32, residual=32), tokens, model, prefill=100)
    logits2, cache2 = _run(Kivi(bits=2, group_size=32, residual=32), tokens, model, prefill=100)
    for cache in (cache4, cache2):
        reported = cache.nbytes()  # type: ignore[attr-defined]
        assert sum(reported.values()) == sum(storage_bytes(t) for t in held_tensors(cache))
        assert reported["payload"] > 0 and reported["quant_params"] > 0 and reported["residual"] > 0
    # 110 tokens, R = 32: keys 96 quantized + 14 residual, values 78 quantized + 32 residual, per head;
    # 4 layers x 2 heads. 4 bits: codes 16 B/row; params: 3 key groups x 32 x 4 B + 78 x 4 B.
    per_head = (96 + 78) * 16 + 3 * 32 * 4 + 78 * 4 + (14 + 32) * 64
    assert sum(cache4.nbytes().values()) == 8 * per_head  # type: ignore[attr-defined]
    d4 = float((logits4 - full).abs().max())
    d2 = float((logits2 - full).abs().max())
    scale = float(full.abs().max())
    assert 0 < d4 < d2
    assert d4 < 0.05 * scale


def test_config_errors_name_the_key() -> None:
    with pytest.raises(InvalidConfigError, match=r"kv_compression\.bits"):
        Kivi(bits=3)
    with pytest.raises(InvalidConfigError, match=r"kv_compression\.group_size"):
        Kivi(group_size=0)
    with pytest.raises(InvalidConfigError, match=r"kv_compression\.residual"):
        Kivi(group_size=32, residual=48)
    model = ByteLlama()
    spec = CacheSpec.of(model.cfg, model.rope)
    with pytest.raises(InvalidConfigError, match=r"kv_compression\.group_size"):
        Kivi(group_size=12, residual=24).new_layer(spec, 0, 1.0)  # 12 does not divide head_dim 32
