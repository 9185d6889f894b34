"""8-bit states: bitsandbytes' AdamW8bit and galore-torch's AdamW8bit (CPU) reproduced within quantization error.

memarena rounds the states as bitsandbytes' CUDA kernel does (nearest code, a negative first moment keeps
its sign); bitsandbytes 0.50's native CPU quantizer floors small codes (see ``quant.py``). So the 100-step
comparison runs bitsandbytes' own CPU update with its quantizer swapped for its torch reference kernel
(nearest code, as CUDA) plus the CUDA kernel's sign rule, and the comparison with the CPU kernel as shipped
is made one step at a time from the same states.
"""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch

from memarena.families.training.optimizers import Adam8bit, GaLore8bit
from memarena.families.training.optimizers.quant import (
    SIGNED_ZERO,
    bnb_cpu_quantize_as_cuda,
    code_step_error,
    dequantize_blockwise,
    dynamic_map,
)
from tests.training.helpers import batches, loss_of, tiny_model, train

BIG = 10**9  # min_8bit_size that keeps every state in 32 bits


def code_steps(s: dict, t: dict) -> float:
    """Largest difference of memarena's (``s``) and bitsandbytes' (``t``) dequantized moments, in code gaps x absmax."""
    return max(
        code_step_error(s[key], s[key + "_absmax"], t[q], t[absmax], t[code], 256)
        for key, q, absmax, code in (
            ("exp_avg", "state1", "absmax1", "qmap1"),
            ("exp_avg_sq", "state2", "absmax2", "qmap2"),
        )
    )


def test_one_step_codes_by_hand_zero_reachable_and_a_negative_first_moment_keeps_its_sign() -> None:
    # one block of 4, every state 8-bit; g = [1, -1e-7, 1e-2, 0] from p = 0, lr 1e-3, no decay:
    # m = 0.1 g = [0.1, -1e-8, 1e-3, 0], absmax 0.1, scaled [1, -1e-7, 1e-2, 0]: -1e-7 is nearest the map's 0
    # (the smallest magnitudes are 5.5e-7), and the CUDA sign rule stores it one code lower, at -5.5e-7
    # v = 1e-3 g^2 = [1e-3, 1e-17, 1e-7, 0], absmax 1e-3, scaled [1, 1e-14, 1e-4, 0]: 1e-14 and 0 go to code 0
    p = torch.nn.Parameter(torch.zeros(4))
    opt = Adam8bit(lr=1e-3, weight_decay=0.0, block_size=4, min_8bit_size=0).make([p])
    p.grad = torch.tensor([1.0, -1e-7, 1e-2, 0.0])
    opt.step()
    s = opt.state[p]
    signed, unsigned = dynamic_map(signed=True), dynamic_map(signed=False)
    m_idx, v_idx = s["exp_avg"].tolist(), s["exp_avg_sq"].tolist()
    assert s["exp_avg_absmax"].tolist() == [pytest.approx(0.1)] and s["exp_avg_sq_absmax"].item() == pytest.approx(1e-3)
    assert m_idx[0] == 255 and m_idx[1] == SIGNED_ZERO - 1 and m_idx[3] == SIGNED_ZERO
    assert signed[m_idx[1]] == pytest.approx(-0.55e-6, rel=1e-6) and signed[m_idx[2]] == pytest.approx(1e-2, rel=0.05)
    assert v_idx[0] == 255 and v_idx[1] == 0 and v_idx[3] == 0 and unsigned[v_idx[2]] == pytest.approx(1e-4, rel=0.1)
    # the first update reads no quantized state: -lr / 0.1 * m / (sqrt(v) / sqrt(1e-3) + eps) = -lr g / (|g| + eps)
    assert p.tolist() == pytest.approx([-1e-3, 1e-3 * 1e-7 / (1e-7 + 1e-8), -1e-3, 0.0], rel=1e-5)


def test_bitsandbytes_cpu_kernel_floors_the_second_moment_at_code_7() -> None:
    # the behaviour memarena does not follow (quant.py): bitsandbytes 0.50's native CPU table never returns
    # unsigned codes 0-6, so 0 is stored as 1.5625e-5 x absmax
    import bitsandbytes  # noqa: F401 (registers torch.ops.bitsandbytes)

    code = torch.from_numpy(dynamic_map(signed=False))
    x = torch.tensor([1.0, 1e-3, 1e-5, 1e-7, 0.0])
    q, _ = torch.ops.bitsandbytes.quantize_blockwise(x, code, 256)
    assert q.tolist()[2:] == [7, 7, 7] and float(code[7]) == pytest.approx(1.5625e-5)


def test_eight_bit_equals_bitsandbytes_with_cuda_rounding_for_100_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    import bitsandbytes.backends.cpu.ops as bnb_cpu

    monkeypatch.setattr(bnb_cpu, "_quant_blockwise_fp32_direct", bnb_cpu_quantize_as_cuda)
    data = batches(100)
    ours, peer = tiny_model(), tiny_model()
    opt = Adam8bit(lr=1e-3, block_size=256, min_8bit_size=64).make(ours.named_parameters())
    peer_opt = bnb.optim.AdamW8bit(peer.parameters(), lr=1e-3, min_8bit_size=64)
    train(ours, opt, data)
    train(peer, peer_opt, data)
    for (name, a), b in zip(ours.named_parameters(), peer.parameters(), strict=True):
        assert (a - b).abs().max() <= 1e-6, name
    assert sum(peer_opt.state[b]["state1"].dtype == torch.uint8 for b in peer.parameters()) >= 4


def test_each_step_from_the_same_states_agrees_with_bitsandbytes_cpu_kernel_within_one_code_step() -> None:
    # bitsandbytes' CPU kernel as shipped: from the same parameters, states and gradient, the update is the same
    # to float32 rounding and the new codes differ by at most one (largest) code gap x absmax
    ours, peer = tiny_model(), tiny_model()
    opt = Adam8bit(lr=1e-3, block_size=256, min_8bit_size=64).make(ours.named_parameters())
    peer_opt = bnb.optim.AdamW8bit(peer.parameters(), lr=1e-3, min_8bit_size=64)
    floored = 0
    for step, tokens in enumerate(batches(30)):
        loss_of(peer, tokens).backward()
        for a, b in zip(ours.parameters(), peer.parameters(), strict=True):
            assert b.grad is not None
            a.data.copy_(b.data)
            a.grad = b.grad.clone()
            if step > 0 and peer_opt.state[b]["state1"].dtype == torch.uint8:
                s, t = opt.state[a], peer_opt.state[b]
                for key, q, absmax in (("exp_avg", "state1", "absmax1"), ("exp_avg_sq", "state2", "absmax2")):
                    s[key].copy_(t[q])
                    s[key + "_absmax"].copy_(t[absmax])
        opt.step()
        peer_opt.step()
        peer_opt.zero_grad()
        for (name, a), b in zip(ours.named_parameters(), peer.parameters(), strict=True):
            assert (a - b).abs().max() <= 1e-7, f"step {step}: {name}"
            t = peer_opt.state[b]
            if t["state1"].dtype == torch.uint8:
                assert code_steps(opt.state[a], t) <= 1.001, f"step {step}: {name}"  # 1 up to float32 rounding
                floored += int(((opt.state[a]["exp_avg_sq"] < 7) & (t["state2"] == 7)).sum())
    assert floored > 0  # the CPU table's floor showed up, and stayed within one code step


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
