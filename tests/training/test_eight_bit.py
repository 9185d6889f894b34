"""8-bit states: bitsandbytes' AdamW8bit and galore-torch's AdamW8bit (CPU) reproduced within quantization error."""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch

from memarena.families.training.optimizers import Adam8bit, GaLore8bit
from memarena.families.training.optimizers.quant import dequantize_blockwise
from tests.training.helpers import batches, tiny_model, train

BIG = 10**9  # min_8bit_size that keeps every state in 32 bits


def test_thirty_two_bit_path_equals_bitsandbytes_exactly_for_100_steps() -> None:
    data = batches(100)
    ours, peer = tiny_model(), tiny_model()
    train(ours, Adam8bit(lr=1e-2, min_8bit_size=BIG).make(ours.named_parameters()), data)
    train(peer, bnb.optim.AdamW8bit(peer.parameters(), lr=1e-2, min_8bit_size=BIG), data)
    for a, b in zip(ours.parameters(), peer.parameters(), strict=True):
        assert torch.equal(a, b)


def test_eight_bit_states_agree_with_bitsandbytes_within_one_code_step() -> None:
    # the same gradients fed to both (bitsandbytes >= 0.44: blocks of 256), so only quantization can differ
    torch.manual_seed(0)
    p0 = torch.randn(64, 96)
    ours, peer = torch.nn.Parameter(p0.clone()), torch.nn.Parameter(p0.clone())
    opt = Adam8bit(lr=1e-3, block_size=256).make([ours])
    peer_opt = bnb.optim.AdamW8bit([peer], lr=1e-3)
    for step in range(10):
        g = torch.randn(64, 96) * 0.1
        ours.grad, peer.grad = g.clone(), g.clone()
        opt.step()
        peer_opt.step()
        if step == 0:  # the first update reads no quantized state: equal parameters
            assert torch.allclose(ours, peer, rtol=0, atol=1e-6)
        s, t = opt.state[ours], peer_opt.state[peer]
        for key, q, absmax, code in (
            ("exp_avg", "state1", "absmax1", "qmap1"),
            ("exp_avg_sq", "state2", "absmax2", "qmap2"),
        ):
            assert s[key].dtype == torch.uint8 and s[key].shape == t[q].shape
            mine = dequantize_blockwise(s[key], s[key + "_absmax"], t[code], 256)
            theirs = dequantize_blockwise(t[q], t[absmax], t[code], 256)
            gap = float((t[code][1:] - t[code][:-1]).max())
            bound = torch.maximum(s[key + "_absmax"], t[absmax]).repeat_interleave(256)[: p0.numel()].view(64, 96)
            assert torch.all((mine - theirs).abs() <= 2 * gap * bound), f"step {step}: {key}"
    assert (ours - peer).abs().max() < 1e-3


@pytest.mark.parametrize("proj_type", ["std", "reverse_std", "full"])
def test_galore8bit_matches_galore_torch_adamw8bit_one_step_and_states_within_one_code_step(
    proj_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from galore_torch import GaLoreAdamW8bit

    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)  # upstream syncs CUDA in every step
    # Every low-rank state 8-bit (min_8bit_size 64 <= 8x8): under bitsandbytes 0.50 galore-torch's 32-bit
    # low-rank path never moves (its positional percentile_clipping=100 lands in max_unorm, and the update
    # norm is clipped against the norm of the zero tensor it updates). Rank 8 < every matrix side: upstream's
    # reverse_std fails on a wide matrix with rank >= its height (see memarena's galore module).
    ours, peer = tiny_model(), tiny_model()
    opt = GaLore8bit(rank=8, proj_type=proj_type, lr=1e-2, block_size=256, min_8bit_size=64)
    opt_ours = opt.make(ours.named_parameters())
    gal = [p for n, p in peer.named_parameters() if p.dim() == 2 and ("attn" in n or "mlp" in n)]
    ids = {id(p) for p in gal}
    groups = [
        {"params": [p for p in peer.parameters() if id(p) not in ids]},
        {"params": gal, "rank": 8, "update_proj_gap": 50, "scale": 1.0, "proj_type": proj_type},
    ]
    peer_opt = GaLoreAdamW8bit(groups, lr=1e-2, min_8bit_size=64)
    train(ours, opt_ours, batches(1))
    train(peer, peer_opt, batches(1))
    for (name, a), b in zip(ours.named_parameters(), peer.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-6), name
    eight = 0
    for a, b in zip(ours.parameters(), peer.parameters(), strict=True):
        s, t = opt_ours.state[a], peer_opt.state[b]
        if t["state1"].dtype == torch.uint8:
            eight += 1
            assert s["exp_avg"].shape == t["state1"].shape
            for key, q, absmax, code in (
                ("exp_avg", "state1", "absmax1", "qmap1"),
                ("exp_avg_sq", "state2", "absmax2", "qmap2"),
            ):
                mine = dequantize_blockwise(s[key], s[key + "_absmax"], t[code], 256)
                theirs = dequantize_blockwise(t[q], t[absmax], t[code], 256)
                gap = float((t[code][1:] - t[code][:-1]).max())
                bound = t[absmax].repeat_interleave(256)[: mine.numel()].view(mine.shape)
                assert torch.all((mine - theirs).abs() <= gap * bound * 1.001), key
    assert eight >= 3  # the large states are 8-bit
