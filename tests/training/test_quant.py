"""The 8-bit quantizer: bitsandbytes' dynamic map, one block by hand, round-trip error bounds, bitsandbytes' codes."""

from __future__ import annotations

import bitsandbytes.functional as bnbF
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memarena.families.training.optimizers.quant import (
    dequantize_blockwise,
    dynamic_map,
    n_blocks,
    quantize_blockwise,
)


def test_the_dynamic_maps_hold_the_values_worked_out_from_the_definition() -> None:
    signed, unsigned = dynamic_map(signed=True), dynamic_map(signed=False)
    assert signed.dtype == np.float32 and signed.shape == (256,) and unsigned.shape == (256,)
    assert np.all(np.diff(signed) >= 0) and np.all(np.diff(unsigned) >= 0)
    # exponent 0 (10**0): linspace(0.1, 1, 65) for signed, step 0.9/64; the last midpoint is 1 - 0.9/128
    assert signed[-1] == 1.0 and signed[0] == np.float32(-(1 - 0.9 / 128))
    assert signed[1] == np.float32(-(1 - 0.9 / 128 - 0.9 / 64))
    # exponent -6: linspace(0.1, 1, 2) -> midpoint 0.55 (signed); linspace(0.1, 1, 3) -> 0.325, 0.775 (unsigned)
    assert np.isclose(signed[signed > 0].min(), 0.55e-6, rtol=1e-6)
    assert np.isclose(unsigned[unsigned > 0].min(), 0.325e-6, rtol=1e-6)
    assert np.isclose(np.sort(unsigned[unsigned > 0])[1], 0.775e-6, rtol=1e-6)
    assert (signed == 0).sum() == 1 and (unsigned == 0).sum() == 1 and unsigned.min() == 0.0 and unsigned[-1] == 1.0
    # 2 * (1 + 2 + ... + 64) = 254 signed values; 2 + 4 + ... + 128 = 254 unsigned; plus 0 and 1
    assert (signed < 0).sum() == 127 and (signed > 0).sum() == 128


def test_the_dynamic_maps_equal_bitsandbytes_bit_for_bit() -> None:
    for signed in (True, False):
        assert np.array_equal(dynamic_map(signed), bnbF.create_dynamic_map(signed=signed).numpy())


def test_one_block_quantized_and_dequantized_by_hand() -> None:
    code = torch.tensor([-1.0, -0.5, 0.0, 0.25, 1.0])  # a toy sorted map: midpoints -0.75, -0.25, 0.125, 0.625
    x = torch.tensor([2.0, -1.0, 0.2, 0.3, -2.0, 0.0])  # block 1: absmax 2; block 2 (short): absmax 2
    q, absmax = quantize_blockwise(x, code, block_size=4)
    # block 1 scaled: 1.0, -0.5, 0.1, 0.15 -> 1.0 (4), -0.5 (1), 0.0 (2, below 0.125), 0.25 (3, above 0.125)
    # block 2 scaled: -1.0, 0.0 -> indices 0, 2
    assert q.tolist() == [4, 1, 2, 3, 0, 2] and q.dtype == torch.uint8
    assert absmax.tolist() == [2.0, 2.0] and n_blocks(6, 4) == 2
    assert dequantize_blockwise(q, absmax, code, 4).tolist() == [2.0, -1.0, 0.0, 0.5, -2.0, 0.0]
    tie, _ = quantize_blockwise(torch.tensor([1.0, 0.625]), code, 2)  # 0.625 is the midpoint of 0.25 and 1: lower
    assert tie.tolist() == [4, 3]


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 700),
    st.sampled_from([64, 256, 2048]),
    st.floats(1e-6, 1e3),
    st.booleans(),
    st.integers(0, 2**31 - 1),
)
def test_each_element_goes_to_its_nearest_code_and_the_round_trip_error_is_bounded(
    n: int, block: int, scale: float, signed: bool, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * scale
    if not signed:
        x = x.abs()
    code = torch.from_numpy(dynamic_map(signed))
    q, absmax = quantize_blockwise(x, code, block)
    assert absmax.shape == (n_blocks(n, block),)
    per_elem = absmax.repeat_interleave(block)[:n]
    scaled = x / per_elem
    dist = (scaled.unsqueeze(1) - code.unsqueeze(0)).abs()
    chosen = dist.gather(1, q.long().unsqueeze(1)).squeeze(1)
    assert torch.all(chosen <= dist.min(dim=1).values + 1e-6)  # nearest (up to float32 rounding of the scaling)
    back = dequantize_blockwise(q, absmax, code, block)
    half_gap = float((code[1:] - code[:-1]).max()) / 2
    assert torch.all((back - x).abs() <= per_elem * (half_gap + 1e-6))
    top = (
        x == per_elem
    )  # a positive block max is exact (the map holds 1.0), a negative one comes back as -0.99296875 of it
    assert torch.all(back[top] == x[top])
    bottom = x == -per_elem
    assert torch.allclose(back[bottom], per_elem[bottom] * float(code[0]), rtol=1e-6)


def test_codes_match_bitsandbytes_cpu_kernel_but_at_near_ties() -> None:
    import bitsandbytes  # noqa: F401 (registers torch.ops.bitsandbytes)

    torch.manual_seed(0)
    for signed in (True, False):
        x = torch.randn(10_000) * 0.01
        x = x if signed else x.abs()
        code = torch.from_numpy(dynamic_map(signed))
        q0, a0 = torch.ops.bitsandbytes.quantize_blockwise(x, code, 256)
        q1, a1 = quantize_blockwise(x, code, 256)
        assert torch.equal(a0, a1)
        assert (q0 != q1).float().mean() < 0.005  # bitsandbytes' C binary search differs only next to a midpoint
        d0 = torch.ops.bitsandbytes.dequantize_blockwise(q0, a0, code, 256, torch.float32)
        assert torch.equal(d0, dequantize_blockwise(q0, a0, code, 256))
        gap = float((code[1:] - code[:-1]).max())
        assert torch.all(
            (dequantize_blockwise(q1, a1, code, 256) - d0).abs() <= a0.repeat_interleave(256)[:10_000] * gap * 1.001
        )  # one code step


@pytest.mark.parametrize("signed", [True, False])
def test_bucketed_nearest_code_equals_the_binary_search_on_every_bound_and_its_neighbours(signed: bool) -> None:
    from memarena.families.training.optimizers.quant import nearest_code

    code = torch.from_numpy(dynamic_map(signed))
    bounds = (code[:-1] + code[1:]) / 2
    up, down = torch.nextafter(bounds, torch.tensor(2.0)), torch.nextafter(bounds, torch.tensor(-2.0))
    g = torch.Generator().manual_seed(0)
    spread = torch.rand(20000, generator=g) * 2 - 1
    tiny = (torch.randn(20000, generator=g) * 1e-5).clamp(-1, 1)
    edges = torch.tensor([0.0, -0.0, 1.0, -1.0, 1e-38, -1e-38, 1e-45])
    x = torch.cat([bounds, up, down, code, spread, tiny, edges]).clamp(-1.0 if signed else 0.0, 1.0)
    assert torch.equal(nearest_code(x, code), torch.searchsorted(bounds, x, out_int32=True))
