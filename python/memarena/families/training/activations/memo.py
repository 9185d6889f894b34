"""``activation=memo``: MEMO's token-wise activation swapping and recomputation (Zhao et al., arXiv 2407.12117).

MEMO ("Fine-grained Tensor Management For Ultra-long Context LLM
Training", SIGMOD 2025), as its abstract puts it: "we offload
memory-consuming activations to CPU memory after each layer's forward pass
and fetch them during the backward pass. To maximize the swapping of
activations without hindering computation, and to avoid exhausting limited
CPU memory, we implement a token-wise activation recomputation and
swapping mechanism": of each layer's activations, those of a fraction
``alpha`` of the sequence's tokens are swapped to host memory and those of
the remaining tokens are dropped and recomputed in backward (MEMO picks
``alpha`` so the swap hides behind the layer's compute; here it is the
config value ``activation.alpha``).

Here, with ``torch.autograd.graph.saved_tensors_hooks`` around each decoder
layer's forward:

* **pack**: a saved tensor that is a parameter (or a view of one) or the
  layer's input is kept as it is (weights are not activations; the input
  is kept anyway). A tensor with a token dimension
  (``[B, T, ...]``, ``[B, heads, T, ...]`` or ``[T, ...]``) has its first
  ``ceil(alpha * T)`` tokens copied to the host tier (on a CPU-only
  machine the host tier is a separate tensor store: a contiguous copy,
  accounted as host bytes) and is otherwise dropped. A tensor without a
  token dimension stays on the device whole. The layer's input is kept on
  the device (the recompute starts from it, as in full recomputation).
* **unpack** (the first time backward needs one of the layer's tensors):
  the layer's forward is rerun from its input under a capturing hook,
  giving every saved tensor again in the same order; each dropped one is
  taken from the recompute with its first tokens overwritten by the host
  copy (the same values: the forward is deterministic). The recomputed set
  is held until the layer's backward ends (the meter's recompute transient).

Simplifications, against the paper: the recompute reruns the whole layer
for all tokens and keeps the ``(1 - alpha)`` part (MEMO recomputes only the
dropped tokens' activations, so its recompute FLOPs shrink with ``alpha``;
the bytes held are the same); the swap is a synchronous copy (the overlap
of the swap with compute is modelled in the family's rows, from the
backend's host-link bandwidth); ``alpha`` is given, not solved for; the host copy is
made per distinct saved view (a storage saved under two shapes, e.g. a
linear layer's ``[B, T, d]`` input and its ``[B * T, d]`` flattening, is
copied twice: MEMO swaps each tensor once); MEMO's
bi-level MIP memory planning (fragmentation) is not modelled.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import param
from memarena.families.training.activations.base import TrainingActivation, parameter_storages
from memarena.lazy import torch

if TYPE_CHECKING:
    import torch as torch_t

    from memarena.families.training.accounting import Meter

__all__ = ["Memo", "token_dim"]


def token_dim(shape: tuple[int, ...], batch: int, tokens: int) -> int | None:
    """The token dimension of a saved tensor of ``shape`` in a layer run on ``[batch, tokens, dim]``, or None.

    ``[B, T, ...]`` -> 1, ``[B, heads, T, ...]`` -> 2, ``[T, ...]`` (the rotary tables) -> 0, checked in that
    order; ``[B * T, ...]`` (a linear layer's flattened input) -> -1: read as ``[B, T, ...]``, token dimension 1.
    """
    if len(shape) >= 2 and shape[0] == batch and shape[1] == tokens:
        return 1
    if len(shape) >= 3 and shape[0] == batch and shape[2] == tokens:
        return 2
    if len(shape) >= 1 and shape[0] == tokens:
        return 0
    if len(shape) >= 1 and shape[0] == batch * tokens:
        return -1
    return None


def _tokens_view(t: torch_t.Tensor, d: int, batch: int, tokens: int) -> tuple[torch_t.Tensor, int]:
    """``t`` with its token dimension ``d`` exposed: a flattened ``[B * T, ...]`` viewed as ``[B, T, ...]``."""
    if d == -1:
        return t.view(batch, tokens, *t.shape[1:]), 1
    return t, d


class _Frame:
    """One layer's packed tensors: kept (device), host prefixes, and the recompute on first unpack."""

    def __init__(self, layer: Any, x: torch_t.Tensor, alpha: float, meter: Meter, skip: set[int]) -> None:
        self.layer, self.x, self.alpha, self.meter, self.skip = layer, x.detach(), alpha, meter, skip
        self.x_requires_grad = x.requires_grad
        self.hosted: dict[tuple[Any, ...], tuple[weakref.ref[Any], torch_t.Tensor]] = {}
        self.batch, self.tokens = int(x.shape[0]), int(x.shape[1])
        self.count = 0
        self.recomputed: list[torch_t.Tensor] | None = None
        self.input_ptr = self.x.untyped_storage().data_ptr()
        meter.note(self.x)  # the layer input, kept on the device

    def pack(self, t: torch_t.Tensor) -> Any:
        idx = self.count
        self.count += 1
        if t.untyped_storage().data_ptr() in self.skip or t.untyped_storage().data_ptr() == self.input_ptr:
            return ("keep", idx, t)  # a weight, or the layer's input (kept on the device already)
        d = token_dim(tuple(t.shape), self.batch, self.tokens)
        if d is None:
            self.meter.note(t)
            return ("keep", idx, t)
        n = math.ceil(self.alpha * self.tokens)
        host = None
        if n:
            # one host copy per distinct view (two ops saving the same tensor share it)
            view = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype, d)
            # the same data while that storage is alive (not a later tensor at a reused address)
            storage = t.untyped_storage()
            seen = self.hosted.get(view)
            if seen is not None and seen[0]() is storage:
                host = seen[1]
            else:
                tv, dv = _tokens_view(t.detach(), d, self.batch, self.tokens)
                host = tv.narrow(dv, 0, n).to("cpu", copy=True).contiguous()
                self.hosted[view] = (weakref.ref(storage), host)
                self.meter.note(host, tier="host")
        return ("memo", idx, host, d)

    def unpack(self, packed: Any) -> torch_t.Tensor:
        if packed[0] == "keep":
            out: torch_t.Tensor = packed[2]
            return out
        _, idx, host, d = packed
        if self.recomputed is None:
            self.recomputed = self._recompute()
        t = self.recomputed[idx]
        if host is not None:
            tv, dv = _tokens_view(t, d, self.batch, self.tokens)
            tv.narrow(dv, 0, host.shape[dv]).copy_(host.to(t.device))
        return t

    def _recompute(self) -> list[torch_t.Tensor]:
        saved: list[torch_t.Tensor] = []

        def capture(t: torch_t.Tensor) -> torch_t.Tensor:
            saved.append(t.detach())
            return t

        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(capture, lambda t: t):
            self.layer(self.x.detach().requires_grad_(self.x_requires_grad), None)
        if len(saved) != self.count:
            raise RuntimeError(f"memo: the recompute saved {len(saved)} tensors, the forward {self.count}")
        return saved


class Memo(TrainingActivation):
    """MEMO: a token fraction alpha of each layer's saved activations swapped to the host, the rest recomputed."""

    name: ClassVar[str] = "memo"

    @dataclass
    class Config:
        _target_: str = "memarena.families.training.activations.memo.Memo"
        #: Fraction of each layer's tokens whose saved activations go to the host tier (0: full recompute, 1: all).
        alpha: float = param(0.5, ge=0, le=1)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._recompute_bytes: dict[tuple[int, tuple[int, ...]], int] = {}

    def run_layer(self, layer: Any, x: torch_t.Tensor, meter: Meter, region: str) -> torch_t.Tensor:
        frame = _Frame(layer, x, self.alpha, meter, parameter_storages(layer))
        with torch.autograd.graph.saved_tensors_hooks(frame.pack, frame.unpack):
            out: torch_t.Tensor = layer(x, None)
        key = (id(layer), tuple(x.shape))
        if key not in self._recompute_bytes:
            from memarena.families.training.activations.base import saved_bytes_of

            self._recompute_bytes[key] = saved_bytes_of(
                lambda: layer(x.detach().requires_grad_(x.requires_grad), None), frame.skip
            )
        meter.note_transient(region, self._recompute_bytes[key])
        return out
