"""KIVI: tuning-free asymmetric 2-bit (or 4-bit) KV-cache quantization (Liu et al. 2024, arXiv 2402.02750).

    "key cache should be quantized per-channel, i.e., group elements along
    the channel dimension and quantize them together. In contrast, the value
    cache should be quantized per-token." (KIVI, abstract; Sec. 3.3 and
    Algorithm 1 add the grouping along tokens and the full-precision residual.)

Storage of one key/value head (:class:`KiviStore`), in token order:

* **keys**: complete groups of ``G`` tokens, quantized *per channel*: for each
  group and channel, ``min`` and ``scale = (max - min) / (2^b - 1)`` over the
  group's tokens (asymmetric, round to nearest: ``code = round((x - min) /
  scale)``, ``x' = code * scale + min``); then the **residual** of the
  ``n mod R`` most recent keys in fp16. Algorithm 1 (paraphrased): at prefill ``r = l mod
  R``, ``X_Kg = X_K[:l-r]`` is quantized and ``X_Kr = X_K[l-r:]`` kept; at each
  decoding step the new key joins ``X_Kr`` and once ``len(X_Kr) = R`` the whole
  residual is quantized (``R / G`` groups) and emptied. ``R`` must be a
  multiple of ``G`` (the official code asserts ``residual_length % group_size
  == 0``).
* **values**: quantized *per token*, the token's channels in groups of
  ``min(G, d)`` (the official ``quant_and_pack_vcache`` /
  ``triton_quantize_and_pack_along_last_dim`` groups the value's last
  dimension by ``group_size``; with ``G >= d`` a group is the whole token);
  the ``R`` most recent values stay in fp16 (Algorithm 1: ``X_Vg = X_V[:l-R]``
  at prefill, and once ``len(X_Vr) > R`` the oldest residual value is
  quantized).
* codes are **bit-packed** into ``uint8``: four 2-bit or two 4-bit codes per
  byte, ``ceil(c * b / 8)`` bytes per row of ``c`` codes (each token's codes
  in one row); scales and minima ("zero points") in fp16, the dtype the
  official code computes them in (that of the fp16 cache).

Deviation (documented): the official CUDA kernel packs a key group along the
*token* axis into int32 (for its fused ``q @ K^T``); here each token's codes
form one packed row. The bytes are the same (``G x d x b / 8`` per key
group when ``d x b`` is a multiple of 8), and evicting rows
(:meth:`KiviStore.keep`, for H2O + KIVI) is a row gather that never
re-quantizes: a key group that loses rows keeps its scale and minimum, so
after the first eviction the store also holds each key group's length
(``int32``, category ``indices``); before it, every group has ``G`` rows and
no lengths are stored. Dequantization runs in float32 from the fp16
parameters (the official code multiplies in fp16).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import KVCompression, param
from memarena.errors import InvalidConfigError
from memarena.families.kvcache.cache import HeadStore, HeadwiseLayer
from memarena.lazy import torch

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = ["Kivi", "KiviStore", "dequantize", "pack_codes", "quantize", "unpack_codes"]


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer codes ``[m, c]`` (each ``< 2**bits``) into ``uint8`` ``[m, ceil(c * bits / 8)]``.

    Code ``j`` of a byte sits at bits ``j*bits .. (j+1)*bits - 1`` (little end first, as KIVI's ``pack_tensor``);
    a row whose length is not a multiple of ``8 // bits`` is padded with zero codes.
    """
    per = 8 // bits
    m, c = codes.shape
    width = -(-c // per)
    padded = torch.zeros(m, width * per, dtype=torch.uint8)
    padded[:, :c] = codes.to(torch.uint8)
    shifts = torch.arange(per, dtype=torch.uint8) * bits
    return (padded.view(m, width, per) << shifts).sum(dim=-1, dtype=torch.uint8)


def unpack_codes(packed: torch.Tensor, bits: int, c: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: ``uint8`` ``[m, w]`` -> codes ``uint8`` ``[m, c]``."""
    per = 8 // bits
    shifts = torch.arange(per, dtype=torch.uint8) * bits
    mask = (1 << bits) - 1
    codes = (packed.unsqueeze(-1) >> shifts) & mask
    return codes.reshape(packed.shape[0], packed.shape[1] * per)[:, :c]


def quantize(x: torch.Tensor, bits: int, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric min-max quantization of ``x`` with statistics over ``dim``.

    KIVI Sec. 3.1: ``Q(X) = round((X - z) / s)``, ``z = min X``, ``s = (max X - min X) / (2^B - 1)``.
    Returns ``(codes uint8, scale fp16, min fp16)``; ``scale`` and ``min`` keep ``dim`` with size 1. The codes are
    computed from the fp16-rounded ``scale`` and ``min`` (what is stored), so ``|x - x'| <= scale / 2`` up to the
    fp16 rounding of ``min``; a constant slice (``scale == 0``) gets code 0 and dequantizes exactly to its value.
    """
    qmax = (1 << bits) - 1
    xf = x.float()
    mn = xf.amin(dim=dim, keepdim=True).to(torch.float16)
    mx = xf.amax(dim=dim, keepdim=True)
    scale = ((mx - mn.float()) / qmax).to(torch.float16)
    s = scale.float()
    safe = torch.where(s > 0, s, torch.ones_like(s))
    codes = torch.round((xf - mn.float()) / safe).clamp_(0, qmax)
    codes = torch.where(s > 0, codes, torch.zeros_like(codes))
    return codes.to(torch.uint8), scale, mn


def dequantize(codes: torch.Tensor, scale: torch.Tensor, mn: torch.Tensor) -> torch.Tensor:
    """``codes * scale + min`` in float32 (``scale``, ``min`` broadcast against ``codes``)."""
    return codes.float() * scale.float() + mn.float()


class KiviStore(HeadStore):
    """One key/value head under KIVI (module docstring): per-channel key groups, per-token values, fp16 residuals.

    Rows are ``[quantized keys | key residual]`` for keys and ``[quantized values | value residual]`` for
    values; both are token order, split at different points.

    :param head_dim: Channels per key/value.
    :param bits: Code width, 2 or 4.
    :param group_size: ``G``: tokens per key group; channels per value group (at most ``head_dim``).
    :param residual: ``R``: fp16 window (a multiple of ``G``).
    :param dtype: Dtype of the residual windows (fp16).
    """

    __slots__ = (
        "bits",
        "dtype",
        "group",
        "head_dim",
        "k_channels",
        "k_codes",
        "k_group_len",
        "k_min",
        "k_res",
        "k_scale",
        "residual",
        "v_codes",
        "v_group",
        "v_min",
        "v_res",
        "v_scale",
    )

    def __init__(
        self, head_dim: int, bits: int, group_size: int, residual: int, dtype: torch.dtype | None = None
    ) -> None:
        dtype = torch.float16 if dtype is None else dtype
        if bits not in (2, 4):
            raise ValueError(f"KIVI packs 2- or 4-bit codes, got bits={bits}")
        if residual % group_size:
            raise ValueError(f"the residual ({residual}) must be a multiple of the group size ({group_size})")
        v_group = min(group_size, head_dim)
        if head_dim % v_group:
            raise ValueError(f"head_dim ({head_dim}) must be a multiple of the value group ({v_group} channels)")
        self.head_dim, self.bits, self.group, self.residual, self.dtype = head_dim, bits, group_size, residual, dtype
        self.v_group = v_group
        #: Key channels the quantized keys keep (ThinK composition); ``None``: all.
        self.k_channels: torch.Tensor | None = None
        self.k_codes = torch.zeros(0, self._width(head_dim), dtype=torch.uint8)
        self.k_scale = torch.zeros(0, head_dim, dtype=torch.float16)
        self.k_min = torch.zeros(0, head_dim, dtype=torch.float16)
        #: Rows per key group once an eviction made groups ragged (``None``: every group has ``G`` rows).
        self.k_group_len: torch.Tensor | None = None
        self.k_res = torch.zeros(0, head_dim, dtype=dtype)
        self.v_codes = torch.zeros(0, self._width(head_dim), dtype=torch.uint8)
        self.v_scale = torch.zeros(0, head_dim // v_group, dtype=torch.float16)
        self.v_min = torch.zeros(0, head_dim // v_group, dtype=torch.float16)
        self.v_res = torch.zeros(0, head_dim, dtype=dtype)

    def _width(self, channels: int) -> int:
        return -(-channels * self.bits // 8)

    def _k_channels_kept(self) -> int:
        return self.head_dim if self.k_channels is None else int(self.k_channels.numel())

    def __len__(self) -> int:
        return int(self.k_codes.shape[0] + self.k_res.shape[0])

    def set_key_channels(self, channels: torch.Tensor) -> None:
        """Quantize only ``channels`` (sorted) of keys from now on (KIVI + ThinK: the quantized keys are pruned,
        the fp16 residual is not). Only while no key is quantized."""
        if self.k_codes.shape[0]:
            raise RuntimeError("key channels are chosen before any key is quantized")
        self.k_channels = channels.to(torch.int16).clone()
        kept = int(channels.numel())
        self.k_codes = torch.zeros(0, self._width(kept), dtype=torch.uint8)
        self.k_scale = torch.zeros(0, kept, dtype=torch.float16)
        self.k_min = torch.zeros(0, kept, dtype=torch.float16)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        k_res = torch.cat([self.k_res, k.to(self.dtype)])
        n_quant = k_res.shape[0] - k_res.shape[0] % self.residual  # whole residuals (multiples of R, hence of G)
        if n_quant:
            self._quantize_keys(k_res[:n_quant])
            k_res = k_res[n_quant:].clone()
        self.k_res = k_res
        v_res = torch.cat([self.v_res, v.to(self.dtype)])
        n_quant = max(0, v_res.shape[0] - self.residual)  # values: the R most recent stay fp16
        if n_quant:
            self._quantize_values(v_res[:n_quant])
            v_res = v_res[n_quant:].clone()
        self.v_res = v_res

    def _quantize_keys(self, k: torch.Tensor) -> None:
        if self.k_channels is not None:
            k = k[:, self.k_channels.long()]
        n, c = k.shape
        groups = n // self.group
        codes, scale, mn = quantize(k.view(groups, self.group, c), self.bits, dim=1)
        self.k_codes = torch.cat([self.k_codes, pack_codes(codes.view(n, c), self.bits)])
        self.k_scale = torch.cat([self.k_scale, scale.view(groups, c)])
        self.k_min = torch.cat([self.k_min, mn.view(groups, c)])
        if self.k_group_len is not None:
            full = torch.full((groups,), self.group, dtype=torch.int32)
            self.k_group_len = torch.cat([self.k_group_len, full])

    def _quantize_values(self, v: torch.Tensor) -> None:
        n, d = v.shape
        codes, scale, mn = quantize(v.view(n, d // self.v_group, self.v_group), self.bits, dim=2)
        self.v_codes = torch.cat([self.v_codes, pack_codes(codes.view(n, d), self.bits)])
        self.v_scale = torch.cat([self.v_scale, scale.view(n, -1)])
        self.v_min = torch.cat([self.v_min, mn.view(n, -1)])

    def _group_len(self) -> torch.Tensor:
        if self.k_group_len is not None:
            return self.k_group_len.long()
        return torch.full((self.k_scale.shape[0],), self.group, dtype=torch.long)

    def read_quantized_keys(self) -> torch.Tensor:
        """The quantized keys, dequantized: float32 ``[n_quantized, kept channels]``."""
        codes = unpack_codes(self.k_codes, self.bits, self._k_channels_kept())
        lens = self._group_len()
        return dequantize(codes, self.k_scale.repeat_interleave(lens, dim=0), self.k_min.repeat_interleave(lens, dim=0))

    def read(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        kq = self.read_quantized_keys()
        n_v = self.v_codes.shape[0]
        v_codes = unpack_codes(self.v_codes, self.bits, self.head_dim).view(n_v, self.v_scale.shape[1], self.v_group)
        vq = dequantize(v_codes, self.v_scale.unsqueeze(-1), self.v_min.unsqueeze(-1)).view(n_v, self.head_dim)
        v = torch.cat([vq, self.v_res.float()])
        if self.k_channels is None:
            return torch.cat([kq, self.k_res.float()]), v, None
        chan = self.k_channels.long()
        if self.k_res.shape[0] == 0:
            return kq, v, chan
        # Pruned quantized rows and full residual rows: a zero in a pruned channel contributes nothing to q . k,
        # so one [n, d] matrix gives the same scores as q[chan] . k_pruned (a working copy, not storage).
        k = torch.zeros(len(self), self.head_dim)
        k[: kq.shape[0], chan] = kq
        k[kq.shape[0] :] = self.k_res.float()
        return k, v, None

    def keep(self, rows: torch.Tensor) -> None:
        rows = rows.long()
        n_kq = int(self.k_codes.shape[0])
        kq_rows = rows[rows < n_kq]
        # A key group that loses rows keeps its scale and minimum (no re-quantization): track its length.
        group_of_row = torch.repeat_interleave(torch.arange(self.k_scale.shape[0]), self._group_len())
        lens = torch.bincount(group_of_row[kq_rows], minlength=self.k_scale.shape[0])
        alive = lens > 0
        self.k_codes = self.k_codes[kq_rows]
        self.k_scale = self.k_scale[alive]
        self.k_min = self.k_min[alive]
        lens = lens[alive]
        self.k_group_len = None if bool((lens == self.group).all()) else lens.to(torch.int32)
        self.k_res = self.k_res[rows[rows >= n_kq] - n_kq]
        n_vq = int(self.v_codes.shape[0])
        vq_rows = rows[rows < n_vq]
        self.v_codes, self.v_scale, self.v_min = self.v_codes[vq_rows], self.v_scale[vq_rows], self.v_min[vq_rows]
        self.v_res = self.v_res[rows[rows >= n_vq] - n_vq]

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        yield "payload", self.k_codes
        yield "payload", self.v_codes
        yield "quant_params", self.k_scale
        yield "quant_params", self.k_min
        yield "quant_params", self.v_scale
        yield "quant_params", self.v_min
        yield "residual", self.k_res
        yield "residual", self.v_res
        if self.k_group_len is not None:
            yield "indices", self.k_group_len
        if self.k_channels is not None:
            yield "indices", self.k_channels


def check_kivi_shape(method: Any, spec: CacheSpec) -> None:
    """Value groups of ``min(G, d)`` channels must tile the head (``InvalidConfigError`` naming the key)."""
    v_group = min(method.group_size, spec.head_dim)
    if spec.head_dim % v_group:
        raise InvalidConfigError(
            f"config key 'kv_compression.group_size' must divide the model's head_dim ({spec.head_dim}) when "
            f"smaller than it (values are quantized per token in groups of that many channels), "
            f"got {method.group_size}"
        )


def check_residual(method: Any) -> None:
    """``R`` a multiple of ``G`` (KIVI quantizes a full residual as ``R / G`` key groups)."""
    if method.residual % method.group_size:
        raise InvalidConfigError(
            f"config key 'kv_compression.residual' must be a multiple of kv_compression.group_size "
            f"({method.group_size}), got {method.residual}"
        )


class Kivi(KVCompression):
    """KIVI (arXiv 2402.02750): 2/4-bit keys per channel in groups of G tokens, values per token, fp16 residual R."""

    name: ClassVar[str] = "kivi"

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.kivi.Kivi"
        #: Code width of keys and values (KIVI-2 / KIVI-4).
        bits: int = param(2, choices=(2, 4))
        #: G: tokens per key group (per-channel statistics); channels per value group (paper default 32).
        group_size: int = param(32, ge=1)
        #: R: recent tokens kept in fp16, a multiple of group_size (paper default 128).
        residual: int = param(128, ge=1)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_residual(self)

    def new_store(self, spec: CacheSpec) -> KiviStore:
        return KiviStore(spec.head_dim, self.bits, self.group_size, self.residual, spec.dtype)

    def new_layer(self, spec: CacheSpec, layer: int, budget: float) -> HeadwiseLayer:
        check_kivi_shape(self, spec)
        return HeadwiseLayer(spec, layer, store=lambda h: self.new_store(spec))
