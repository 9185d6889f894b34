"""KIVI + ThinK: quantized keys keep ThinK's channels; bytes by hand; lambda = 0 is KIVI."""

from __future__ import annotations

import pytest
import torch

from memarena.errors import InvalidConfigError
from memarena.families.kvcache import held_tensors, storage_bytes
from memarena.families.kvcache.methods import Kivi, KiviThink
from memarena.models import ByteLlama
from tests.kvcache.helpers import run_method

torch.set_num_threads(1)


@torch.no_grad()
def test_bytes_by_hand_and_equal_held_storage() -> None:
    torch.manual_seed(0)
    model = ByteLlama().eval()
    tokens = torch.randint(0, 256, (1, 110))
    method = KiviThink(bits=2, group_size=32, residual=32, pruning_ratio=0.5, window_tokens=16)
    _, cache = run_method(method, tokens, model, prefill=100)
    reported = cache.nbytes()  # type: ignore[attr-defined]
    assert sum(reported.values()) == sum(storage_bytes(t) for t in held_tensors(cache))
    # Per head, 110 tokens, G = R = 32, 16 of 32 key channels kept:
    # keys: 96 quantized rows x 16 ch x 2 bit = 4 B each, 3 groups x 16 ch x (scale + min) 4 B, 14 fp16 rows x 64 B;
    # values: 78 quantized rows x 8 B, 78 x (scale + min) 4 B, 32 fp16 rows x 64 B; 16 int16 channel indices.
    heads = 4 * 2
    assert reported["payload"] == heads * (96 * 4 + 78 * 8)
    assert reported["quant_params"] == heads * (3 * 16 * 4 + 78 * 4)
    assert reported["residual"] == heads * (14 * 64 + 32 * 64)
    assert reported["indices"] == heads * 16 * 2
    store = cache.layer(0).heads[0]  # type: ignore[attr-defined]
    assert store.k_codes.shape == (96, 4) and store.k_res.shape == (14, 32)


@torch.no_grad()
def test_no_pruning_is_kivi() -> None:
    torch.manual_seed(0)
    model = ByteLlama().eval()
    tokens = torch.randint(0, 256, (1, 80))
    kivi, _ = run_method(Kivi(bits=2, group_size=32, residual=32), tokens, model, prefill=70)
    both, _ = run_method(KiviThink(bits=2, group_size=32, residual=32, pruning_ratio=0.0), tokens, model, prefill=70)
    assert torch.allclose(both, kivi, atol=1e-5)
    pruned, _ = run_method(KiviThink(bits=2, group_size=32, residual=32, pruning_ratio=0.5), tokens, model, prefill=70)
    assert not torch.allclose(pruned, kivi, atol=1e-5)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(InvalidConfigError, match=r"kv_compression\.residual"):
        KiviThink(group_size=32, residual=40)
    with pytest.raises(InvalidConfigError, match=r"kv_compression\.pruning_ratio"):
        KiviThink(pruning_ratio=-0.1)
