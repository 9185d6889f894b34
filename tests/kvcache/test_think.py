"""ThinK (arXiv 2407.21018): the channel criterion, the compacted store and its bytes, the model run."""

from __future__ import annotations

import pytest
import torch

from memarena.errors import InvalidConfigError
from memarena.families.kvcache import held_tensors, storage_bytes
from memarena.families.kvcache.methods import FullCache, Think
from memarena.families.kvcache.methods.think import ThinkStore, think_channels, think_channels_heads
from memarena.models import ByteLlama
from tests.kvcache.helpers import run_method

torch.set_num_threads(1)


def test_channel_choice_obvious_case() -> None:
    # Key channel c has magnitude c + 1; the queries never use channel 7 -> scores proportional to
    # 1, 2, ..., 7, 0. Pruning int(8 x 0.25) = 2 channels drops 7 (score 0) and 0 (score 1).
    k = torch.ones(5, 8) * torch.arange(1, 9).float()
    q = torch.ones(3, 8)
    q[:, 7] = 0
    assert think_channels(q, k, 0.25).tolist() == [1, 2, 3, 4, 5, 6]
    assert think_channels(q, k, 0.0).tolist() == list(range(8))


def test_channel_score_is_the_frobenius_norm_of_the_outer_product() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(6, 16), torch.randn(20, 16) * torch.linspace(0.1, 3, 16)
    score = torch.stack([torch.linalg.norm(q[:, j : j + 1] @ k[:, j : j + 1].T) for j in range(16)])
    expected = score.topk(16 - int(16 * 0.5)).indices.sort().values
    assert torch.equal(think_channels(q, k, 0.5), expected)


def test_channels_of_all_heads_at_once_equal_each_head_alone() -> None:
    torch.manual_seed(1)
    q, k = torch.randn(3, 10, 32), torch.randn(3, 40, 32) * torch.rand(3, 1, 32)
    per_head = torch.stack([think_channels(q[h], k[h], 0.4) for h in range(3)])
    assert torch.equal(think_channels_heads(q, k, 0.4), per_head)
    assert think_channels_heads(q, k, 0.4).shape == (3, 32 - int(32 * 0.4))


def _bytes(store: ThinkStore) -> dict[str, int]:
    out: dict[str, int] = {}
    for cat, t in store.tensors():
        out[cat] = out.get(cat, 0) + storage_bytes(t)
    return out


def test_store_compacts_all_but_the_recent_keys() -> None:
    torch.manual_seed(1)
    s = ThinkStore(32, recent_tokens=8)
    k, v = torch.randn(40, 32), torch.randn(40, 32)
    s.append(k, v)
    chan = torch.arange(0, 32, 4)  # 8 kept channels
    s.prune(chan)
    # 32 pruned rows x 8 ch x 2 B = 512 + 8 recent rows x 32 x 2 = 512 -> payload keys 1024, values 40 x 32 x 2 = 2560;
    # indices: 8 x int16 = 16.
    assert _bytes(s) == {"payload": 1024 + 2560, "indices": 16}
    kr, vr, c = s.read()
    assert c is None  # mixed widths: read as [n, d] with zeros in the pruned channels
    assert torch.equal(kr[:32, chan], k[:32, chan].half().float())
    assert float(kr[:32].abs().sum()) == float(kr[:32, chan].abs().sum())
    assert torch.equal(kr[32:], k[32:].half().float()) and torch.equal(vr, v.half().float())
    # Evict the recent rows: only compacted keys remain, read back compacted with their channels.
    s.keep(torch.arange(10))
    kr, _, c = s.read()
    assert c is not None and c.tolist() == chan.tolist() and kr.shape == (10, 8)
    # A decoded token's key stays full width.
    s.append(torch.randn(1, 32), torch.randn(1, 32))
    assert s.k_full.shape == (1, 32) and s.k_pruned.shape == (10, 8)


@torch.no_grad()
def test_keep_all_channels_equals_full_cache() -> None:
    torch.manual_seed(0)
    model = ByteLlama().eval()
    tokens = torch.randint(0, 256, (1, 72))
    full, _ = run_method(FullCache(), tokens, model, prefill=64)
    same, cache = run_method(Think(pruning_ratio=0.0, window_tokens=16, recent_tokens=8), tokens, model, prefill=64)
    assert torch.allclose(same, full, atol=1e-5)
    assert cache.layer(0).heads[0].k_pruned.shape == (56, 32)  # type: ignore[attr-defined]


@torch.no_grad()
def test_model_bytes_equal_held_storage_and_pruning_saves() -> None:
    torch.manual_seed(0)
    model = ByteLlama().eval()
    tokens = torch.randint(0, 256, (1, 72))
    full, full_cache = run_method(FullCache(), tokens, model, prefill=64)
    pruned, cache = run_method(Think(pruning_ratio=0.5, window_tokens=16, recent_tokens=8), tokens, model, prefill=64)
    reported = cache.nbytes()  # type: ignore[attr-defined]
    assert sum(reported.values()) == sum(storage_bytes(t) for t in held_tensors(cache))
    # per head: 56 compacted keys x 16 ch x 2 B + (8 recent + 8 decoded) x 32 x 2 B + values 72 x 32 x 2 B,
    # 16 channel indices x 2 B; 4 layers x 2 heads.
    assert reported["payload"] == 8 * (56 * 16 * 2 + 16 * 64 + 72 * 64)
    assert reported["indices"] == 8 * 16 * 2
    assert sum(reported.values()) < sum(full_cache.nbytes().values())  # type: ignore[attr-defined]
    assert not torch.allclose(pruned, full, atol=1e-5)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(InvalidConfigError, match=r"kv_compression\.pruning_ratio"):
        Think(pruning_ratio=1.0)
    with pytest.raises(InvalidConfigError, match=r"kv_compression\.window_tokens"):
        Think(window_tokens=0)
    with pytest.raises(InvalidConfigError, match=r"kv_compression\.recent_tokens"):
        Think(recent_tokens=-1)
