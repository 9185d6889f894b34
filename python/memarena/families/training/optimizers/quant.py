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
map value (a tie goes to the lower index). Dequantizing is ``code[q] * absmax``.

**Which rounding: bitsandbytes' CUDA kernel's.** bitsandbytes rounds three ways:

* CUDA (``csrc/kernels.cu``; the 8-bit optimizers' ``kOptimizerStatic8bit2StateBlockwise``
  calls ``quantize_2D<SIGNED>(quadrants, smem_code, s / absmax)``): a
  7-step binary search over the 256 sorted codes, then "if x > val:
  midpoint = (upper + val) * 0.5; x > midpoint ? upper_pivot : pivot",
  else the same against the lower neighbour: the nearest code, **every
  index reachable**: a second moment below half the smallest non-zero code
  (1.6e-7 x absmax) is stored as 0. Ties depend on the search path (measure
  zero; here always the lower index).
* The torch reference (``backends/default/ops.py`` ``quantize_blockwise``):
  ``torch.bucketize(scaled, bounds)`` with ``bounds`` the midpoints: the
  nearest code, as CUDA; memarena's codes equal it bit for bit.
* The native CPU kernel of bitsandbytes >= 0.50 (``csrc/cpu_ops.cpp``
  ``quantize_cpu_impl``, bitsandbytes PR #1968 "Improve CPU performance"):
  ``lut[norm_to_lut_index(val * inv_absmax)]``, a 65,536-bin table over
  [-1, 1] built from the bins' centres (``-1 + 2 i / 65535``). The bins are
  3.05e-5 wide, wider than the map's 14 smallest gaps, so codes near 0 are
  unreachable: 0 lands in the bin centred on +1.53e-5, whose nearest
  unsigned code is index 7 (1.5625e-5). So on CPU no second moment is ever
  stored below 1.5625e-5 x absmax, a floor no other backend has; it is a
  side effect of the table's resolution (0.49's CPU kernel, ``std::lower_bound``
  then the nearer neighbour, rounded to nearest), not a design choice.

memarena follows CUDA, the kernel bitsandbytes' users train with (and its
own reference). Consequence, as on CUDA: a weight whose ``v`` rounds to 0
while ``m`` does not takes ``m / eps``-sized steps when its gradient is 0
next (an embedding row of a byte absent from the batch); bitsandbytes'
remedy is to keep embeddings' states in 32 bits (``StableEmbedding``,
``GlobalOptimManager.override_config(..., "optim_bits", 32)``), not a floor.

bitsandbytes' 8-bit optimizers used blocks of 2048 until v0.44, which
changed them to 256 (bitsandbytes PR #1365); the block size is a parameter
here, 2048 by default (the paper's, and issue 18's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "QMAP_LEN",
    "SIGNED_ZERO",
    "bnb_cpu_quantize_as_cuda",
    "code_step_error",
    "dequantize_blockwise",
    "dynamic_map",
    "n_blocks",
    "nearest_code",
    "quantize_blockwise",
]

#: Values in an 8-bit map.
QMAP_LEN = 256
#: Index of 0 in the signed dynamic map (127 negative values sort below it).
SIGNED_ZERO = 127


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
    out = np.sort(np.asarray(values, dtype=np.float32))
    assert not signed or out[SIGNED_ZERO] == 0.0, "signed dynamic map: 0 is not at index SIGNED_ZERO"
    return out


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
        q_flat[row * block_size : row * block_size + rows * width].view(rows, width).copy_(nearest_code(scaled, code))
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


def code_step_error(
    q_a: torch.Tensor,
    absmax_a: torch.Tensor,
    q_b: torch.Tensor,
    absmax_b: torch.Tensor,
    code: torch.Tensor,
    block_size: int,
) -> float:
    """Largest difference of two blockwise-quantized states (the same ``code``), in units of the map's widest
    gap times the larger of the two blocks' ``absmax``: 1 is one quantization step (how memarena's 8-bit states
    are compared with bitsandbytes')."""
    import torch

    a = dequantize_blockwise(q_a, absmax_a, code, block_size)
    b = dequantize_blockwise(q_b, absmax_b, code, block_size)
    gap = float((code[1:] - code[:-1]).max())
    scale = torch.maximum(absmax_a, absmax_b).repeat_interleave(block_size)[: a.numel()].view(a.shape)
    return float(((a - b).abs() / (gap * scale.clamp(min=1e-30))).max())


def bnb_cpu_quantize_as_cuda(
    A: torch.Tensor, code: torch.Tensor, absmax_out: torch.Tensor, out: torch.Tensor, block_size: int
) -> None:
    """A stand-in for bitsandbytes' CPU ``_quant_blockwise_fp32_direct`` that rounds as its CUDA optimizer kernel.

    For comparing memarena's 8-bit states with bitsandbytes' ``AdamW8bit`` on a machine without CUDA (the
    tests and ``benchmarks/training_vs_galore.py`` patch it in; bitsandbytes is never a runtime dependency).
    The codes come from bitsandbytes' torch reference kernel (``backends/default/ops.py``, registered as
    CompositeExplicitAutograd: bucketize on the midpoints, the nearest code as CUDA's ``quantize_2D``), then
    ``kOptimizerStatic8bit2StateBlockwise``'s sign rule for the signed map: a code whose sign differs from
    the value's moves one step towards it (:data:`SIGNED_ZERO` - 1 for a negative value nearest zero).
    """
    import torch

    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CompositeExplicitAutograd)
    q, absmax = torch.ops.bitsandbytes.quantize_blockwise.default.redispatch(keys, A, code, block_size)
    if code[0] < 0:
        q[(q == SIGNED_ZERO) & torch.signbit(A)] -= 1
    out.copy_(q)
    absmax_out.copy_(absmax)
