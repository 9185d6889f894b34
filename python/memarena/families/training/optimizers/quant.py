"""Block-wise 8-bit quantization of optimizer states, as bitsandbytes does it (Dettmers et al. 2022).

**The dynamic map** (:func:`dynamic_map`): bitsandbytes'
``functional.create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)``.
Upstream, for each exponent ``i`` in ``0..6`` it takes
``torch.linspace(0.1, 1, k)`` with ``k = 2**i + 1`` values (signed) or
``2**(i + 1) + 1`` (unsigned), the midpoints of consecutive boundaries,
times ``10**(i - 6)``, and for a signed map their negatives too; then
appends 0 and 1.0 and sorts the 256 values. So the signed map runs from
-0.99296875 to 1.0 (no -1), the unsigned one from 0 to 1.0, and the
smallest non-zero magnitudes are 5.5e-7 (signed) and 3.25e-7 (unsigned).
The float32 rounding is upstream's (linspace and midpoints in float32, the
power of ten applied to float32 values).

**Blocks** (:func:`quantize_blockwise`): the flattened tensor is cut into
blocks of ``block_size`` elements (the last may be short); each block's
scale is its largest magnitude (``absmax``, float32), each element
``x / absmax`` is clamped to [-1, 1] and stored as the index of the nearest
map value (a tie goes to the lower index). bitsandbytes' reference
(``backends/default/ops.py``, the ``quantize_blockwise`` kernel for
"default", and the CPU 8-bit optimizer update in ``backends/cpu/ops.py``)
does exactly this: ``absmax = A_com.abs().max(dim=-1)``, ``scaled =
clamp(A * (1 / absmax.clamp(min=1e-38)), -1, 1)`` (the short last block
divided by its absmax instead) and ``torch.bucketize(scaled, bounds)``
with ``bounds`` the midpoints of the sorted map. Dequantizing is
``code[q] * absmax``.

bitsandbytes' 8-bit optimizers used blocks of 2048 until v0.44, which
changed them to 256 (bitsandbytes PR #1365); the block size is a parameter
here, 2048 by default (the paper's, and issue 18's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["QMAP_LEN", "dequantize_blockwise", "dynamic_map", "n_blocks", "quantize_blockwise"]

#: Values in an 8-bit map.
QMAP_LEN = 256


def dynamic_map(signed: bool) -> np.ndarray:
    """bitsandbytes' dynamic quantization map (8 bits, up to 7 exponent bits), 256 sorted float32 values.

    The boundaries come from ``torch.linspace`` in float32, as upstream: numpy's
    linspace rounds 22 of the 256 values differently (by one float32 ulp).
    """
    import torch

    values: list[float] = []
    for i in range(7):  # exponent 10**(i - 6): 1e-6 .. 1
        k = 2**i + 1 if signed else 2 ** (i + 1) + 1
        edges = torch.linspace(0.1, 1.0, k, dtype=torch.float32)
        scaled = (edges[:-1] + edges[1:]) / 2.0 * 10.0 ** (i - 6)
        values += scaled.tolist()
        if signed:
            values += (-scaled).tolist()
    values += [0.0, 1.0]
    assert len(values) == QMAP_LEN, f"dynamic map has {len(values)} values, not {QMAP_LEN}"
    return np.sort(np.asarray(values, dtype=np.float32))


def n_blocks(numel: int, block_size: int) -> int:
    """Blocks (absmax scales) of a tensor of ``numel`` elements."""
    return -(-numel // block_size)


def quantize_blockwise(x: torch.Tensor, code: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` as uint8 indices into ``code`` (shape of ``x``) and one float32 absmax per block."""
    import torch
    import torch.nn.functional as F

    flat = x.reshape(-1).float()
    n = flat.numel()
    nb = n_blocks(n, block_size)
    padded = F.pad(flat, (0, nb * block_size - n)).view(nb, block_size)
    absmax = padded.abs().amax(dim=1)
    scaled = (padded * (1.0 / absmax.clamp(min=1e-38)).unsqueeze(1)).clamp_(-1.0, 1.0).reshape(-1)[:n]
    bounds = (code[:-1] + code[1:]) / 2
    q = torch.searchsorted(bounds, scaled)  # first bound >= value: ties go to the lower code
    return q.to(torch.uint8).view(x.shape), absmax


def dequantize_blockwise(q: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, block_size: int) -> torch.Tensor:
    """float32 values of ``q`` (indices into ``code``) scaled by each block's ``absmax``."""
    import torch.nn.functional as F

    flat = code[q.reshape(-1).long()]
    n = flat.numel()
    nb = absmax.numel()
    out = F.pad(flat, (0, nb * block_size - n)).view(nb, block_size) * absmax.unsqueeze(1)
    return out.reshape(-1)[:n].view(q.shape)
