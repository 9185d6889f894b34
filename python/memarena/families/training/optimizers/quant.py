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

__all__ = ["QMAP_LEN", "dequantize_blockwise", "dynamic_map", "n_blocks", "nearest_code", "quantize_blockwise"]

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


def _block_pieces(flat: torch.Tensor, block_size: int) -> list[torch.Tensor]:
    """``flat`` (1-D) as views of shape (blocks, elements): the full blocks, then the short last one if any."""
    n = flat.numel()
    full = n - n % block_size
    pieces = [flat[:full].view(-1, block_size)] if full else []
    if full < n:
        pieces.append(flat[full:].view(1, -1))
    return pieces


def quantize_blockwise(
    x: torch.Tensor,
    code: torch.Tensor,
    block_size: int,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` as uint8 indices into ``code`` (shape of ``x``) and one float32 absmax per block.

    With ``out`` (a contiguous uint8 tensor of ``x``'s elements and a float32
    one of its blocks) the result is written there and returned.
    """
    import torch

    flat = x.reshape(-1).float()
    if out is None:
        nb = n_blocks(flat.numel(), block_size)
        out = (torch.empty(x.shape, dtype=torch.uint8, device=x.device), torch.empty(nb, device=x.device))
    q_out, absmax_out = out
    q_flat = q_out.view(-1)
    row = 0
    for piece in _block_pieces(flat, block_size):
        rows, width = piece.shape
        absmax = torch.amax(piece.abs(), dim=1)
        absmax_out[row : row + rows].copy_(absmax)
        scaled = (piece * absmax.clamp_(min=1e-38).reciprocal_().unsqueeze(1)).clamp_(-1.0, 1.0)
        q_flat[row * block_size : row * block_size + rows * width].view(rows, width).copy_(
            nearest_code(scaled, code)
        )
        row += rows
    return q_out.view(x.shape), absmax_out


#: Per map (by its bytes): the bucket table of :func:`nearest_code`, or None where it cannot serve.
_BUCKETS: dict[bytes, tuple[torch.Tensor, torch.Tensor] | None] = {}


def _bucket_table(code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """For each of the 65536 float32 buckets sharing their top 16 bits, how many bounds lie below it.

    ``None`` if some bucket of [-1, 1] holds two bounds (then one comparison cannot finish the search).
    """
    import torch

    key = code.detach().cpu().numpy().astype(np.float32).tobytes()
    if key in _BUCKETS:
        return _BUCKETS[key]
    bounds = np.sort((code[:-1] + code[1:]).detach().cpu().numpy().astype(np.float32) / np.float32(2))
    hi = np.arange(65536, dtype=np.uint32) << 16
    ends = np.stack([hi, hi | 0xFFFF]).view(np.float32)  # each bucket's two extreme bit patterns
    lo, top = np.minimum(ends[0], ends[1]), np.maximum(ends[0], ends[1])
    inside = (lo <= 1.0) & (top >= -1.0)  # buckets meeting [-1, 1] (NaN buckets compare False)
    below = np.searchsorted(bounds, np.where(inside, np.clip(lo, -1.0, 1.0), 0.0), side="left")
    upto = np.searchsorted(bounds, np.where(inside, np.clip(top, -1.0, 1.0), 0.0), side="left")
    table: tuple[torch.Tensor, torch.Tensor] | None = None
    if np.all(upto[inside] - below[inside] <= 1):
        padded = np.append(bounds, np.float32(np.inf))
        table = (torch.from_numpy(below.astype(np.int32)), torch.from_numpy(padded))
    _BUCKETS[key] = table
    return table


def nearest_code(scaled: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Index (int32, shape of ``scaled``) of the nearest ``code`` value for each float32 of ``scaled`` (in [-1, 1]).

    A tie goes to the lower index. Equal to ``torch.searchsorted(bounds,
    scaled)`` with ``bounds`` the midpoints of ``code`` (the first bound >=
    the value), computed with one table look-up and one comparison: the top
    16 bits of a float32 (sign, exponent, 7 mantissa bits) name a bucket that
    holds at most one bound of the dynamic maps, so the index is the bounds
    below the bucket plus ``value > that next bound``. The look-ups are
    ``index_select`` (a plain gather; ``table[index]`` goes through advanced
    indexing, 7x slower on one CPU thread). A map for which a bucket holds two
    bounds falls back to the binary search.
    """
    import torch

    table = _bucket_table(code)
    if table is None or scaled.dtype != torch.float32:
        bounds = (code[:-1] + code[1:]) / 2
        return torch.searchsorted(bounds, scaled.contiguous(), out_int32=True)
    below, padded = (t.to(scaled.device) for t in table)
    flat = scaled.reshape(-1)
    h = (flat.view(torch.int32) >> 16).bitwise_and_(0xFFFF)
    base = below.index_select(0, h)
    return base.add_(flat > padded.index_select(0, base)).view(scaled.shape)


def dequantize_blockwise(q: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, block_size: int) -> torch.Tensor:
    """float32 values of ``q`` (indices into ``code``) scaled by each block's ``absmax``."""
    import torch

    flat = code.index_select(0, q.reshape(-1).to(torch.int32))
    row = 0
    for piece in _block_pieces(flat, block_size):
        piece.mul_(absmax[row : row + piece.shape[0]].unsqueeze(1))
        row += piece.shape[0]
    return flat.view(q.shape)
