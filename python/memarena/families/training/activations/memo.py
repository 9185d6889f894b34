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

Here, each decoder layer's forward runs as two token chunks
(:class:`memarena.models.bytellama.TokenChunk`: the layer's own code on
fewer rows), under ``torch.autograd.graph.saved_tensors_hooks``, with
``n = ceil(alpha * T)``:

* **chunk A**, tokens ``0 .. n - 1`` (plain causal attention): every
  tensor it saves is copied to the host tier (one copy per storage, the
  same shape, strides and offset over it; on a CPU-only machine the host
  tier is a separate tensor store, accounted as host bytes) and fetched
  back when backward unpacks it. Its rotated keys and values, what chunk
  B's recompute attends to, are on the host too (the attention's saved
  copy where it saved them, so no second copy).
* **chunk B**, tokens ``n .. T - 1``, attending causally to chunk A's keys
  and values and its own (rotary positions ``n .. T - 1``): what it saves
  is dropped. The first time backward unpacks one, chunk B alone is rerun
  from the layer's input ``x[:, n:]`` and chunk A's keys and values fetched
  from the host, under a capturing hook: the same ops in the same order as
  its forward, so the ``i``-th save of the rerun replaces the ``i``-th
  dropped one; the rerun stops at the last save (as ``torch.utils.checkpoint``
  stops early: the MLP's down projection, whose output nothing saves, is
  not rerun). The recompute's FLOPs are chunk B's: the linear layers see
  ``(1 - alpha)`` of the rows (the attention's score matrix is
  ``(T - n) x T``).
* A saved tensor that is a parameter (or a view of one) or the layer's
  input (or a view of it) is kept as it is, in either chunk; the input is
  kept on the device (the recompute starts from it). The layer's output is
  the two chunks' outputs concatenated; gradients reach chunk A through
  chunk B's attention over its keys and values.

``alpha`` 0 is full recomputation (one chunk B of every token), ``alpha``
1 swaps everything (one chunk A, no recompute): both give plain autograd's
gradients bit for bit; in between, two chunks sum the attention in another
order than one, equal up to float32 rounding. The meter's transient for
the layer is what its backward holds at once: the host copies fetched back
plus chunk B's recomputed tensors (measured once per layer, input shape and
split, by running chunk B under a counting hook, the input left out: it is
counted on the device already).

Simplifications, against the paper: the swap is a synchronous copy (the
overlap of the swap with compute is modelled in the family's rows, from
the backend's host-link bandwidth); ``alpha`` is given, not solved for;
MEMO's bi-level MIP memory planning (fragmentation) is not modelled.
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

__all__ = ["Memo"]


class _AllRecomputed(Exception):
    """Raised by the recompute's capturing hook at chunk B's last save: the rest of its forward is not needed."""


class _Frame:
    """One layer's packed tensors: kept (device), host copies (chunk A), dropped (chunk B, recomputed on unpack)."""

    def __init__(self, layer: Any, x: torch_t.Tensor, n: int, meter: Meter, skip: set[int]) -> None:
        self.layer, self.x, self.n, self.meter, self.skip = layer, x.detach(), n, meter, skip
        self.x_requires_grad = x.requires_grad
        self.input_ptr = self.x.untyped_storage().data_ptr()
        #: Chunk A's storages on the host, by device storage pointer (with a weak reference: the same storage).
        self.hosted: dict[int, tuple[weakref.ref[Any], torch_t.UntypedStorage]] = {}
        self.host_bytes = 0
        self.chunk = "A"
        self.saved_b = 0
        self.past: tuple[torch_t.Tensor, torch_t.Tensor, bool] | None = None
        self.recomputed: list[torch_t.Tensor] | None = None
        meter.note(self.x)  # the layer input, kept on the device

    def host(self, t: torch_t.Tensor) -> torch_t.Tensor:
        """``t`` (same shape, strides and offset) over a host copy of its storage, one copy per storage."""
        storage = t.untyped_storage()
        seen = self.hosted.get(storage.data_ptr())
        if seen is not None and seen[0]() is storage:  # not a later storage at a reused address
            copy = seen[1]
        else:
            copy = torch.UntypedStorage(storage.nbytes(), device="cpu")
            copy.copy_(storage)
            self.hosted[storage.data_ptr()] = (weakref.ref(storage), copy)
            self.host_bytes += copy.nbytes()
            self.meter.note(torch.empty(0, dtype=torch.uint8).set_(copy), tier="host")
        return torch.empty(0, dtype=t.dtype).set_(copy, t.storage_offset(), t.shape, t.stride())

    def pack(self, t: torch_t.Tensor) -> Any:
        idx = self.saved_b  # chunk B's saves are numbered (all of them: the recompute's are matched by index)
        if self.chunk == "B":
            self.saved_b += 1
        ptr = t.untyped_storage().data_ptr()
        if ptr in self.skip or ptr == self.input_ptr:
            return ("keep", t)  # a weight, or (a view of) the layer's input (kept on the device already)
        if self.chunk == "A":
            return ("host", self.host(t.detach()), t.device)
        return ("drop", idx, tuple(t.shape))

    def unpack(self, packed: Any) -> torch_t.Tensor:
        if packed[0] == "keep":
            kept: torch_t.Tensor = packed[1]
            return kept
        if packed[0] == "host":
            fetched: torch_t.Tensor = packed[1].to(packed[2])
            return fetched
        _, idx, shape = packed
        if self.recomputed is None:
            self.recomputed = self._recompute()
        t = self.recomputed[idx]
        if tuple(t.shape) != shape:
            raise RuntimeError(f"memo: the recompute's save {idx} has shape {tuple(t.shape)}, the forward's {shape}")
        return t

    def keep_past(self, k: torch_t.Tensor, v: torch_t.Tensor) -> None:
        """Chunk A's rotated keys and values, for chunk B's recompute: on the host (shared with a saved copy)."""
        self.past = (self.host(k.detach()), self.host(v.detach()), k.requires_grad)

    def run_b(self, x: torch_t.Tensor, past: tuple[torch_t.Tensor, torch_t.Tensor] | None) -> torch_t.Tensor:
        """Chunk B: tokens ``n ..`` of ``x`` through the layer, attending to chunk A's ``past`` keys/values."""
        from memarena.models.bytellama import TokenChunk

        k, v = past if past is not None else (None, None)
        out: torch_t.Tensor = self.layer(x[:, self.n :], TokenChunk(start=self.n, past_k=k, past_v=v))
        return out

    def recompute_inputs(self) -> tuple[torch_t.Tensor, tuple[torch_t.Tensor, torch_t.Tensor] | None]:
        """Chunk B's inputs again, as leaves: the layer input and chunk A's keys/values fetched from the host."""
        x = self.x.detach().requires_grad_(self.x_requires_grad)
        if self.past is None:
            return x, None
        k, v, grad = self.past
        dev = self.x.device
        return x, (k.to(dev).detach().requires_grad_(grad), v.to(dev).detach().requires_grad_(grad))

    def _recompute(self) -> list[torch_t.Tensor]:
        saved: list[torch_t.Tensor] = []

        def capture(t: torch_t.Tensor) -> torch_t.Tensor:
            saved.append(t.detach())
            if len(saved) == self.saved_b:
                raise _AllRecomputed  # the rest of the chunk's forward saves nothing (as checkpoint's early stop)
            return t

        try:
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(capture, lambda t: t):
                self.run_b(*self.recompute_inputs())
        except _AllRecomputed:
            pass
        if len(saved) != self.saved_b:
            raise RuntimeError(f"memo: the recompute saved {len(saved)} tensors, chunk B's forward {self.saved_b}")
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
        self._recompute_bytes: dict[tuple[int, tuple[int, ...], int], int] = {}

    def run_layer(self, layer: Any, x: torch_t.Tensor, meter: Meter, region: str) -> torch_t.Tensor:
        from memarena.models.bytellama import TokenChunk

        tokens = int(x.shape[1])
        n = math.ceil(self.alpha * tokens)
        frame = _Frame(layer, x, n, meter, parameter_storages(layer))
        outs = []
        past = None
        with torch.autograd.graph.saved_tensors_hooks(frame.pack, frame.unpack):
            if n:  # chunk A: tokens 0 .. n - 1, its saved tensors to the host
                a = TokenChunk()
                outs.append(layer(x[:, :n], a))
                assert a.k is not None and a.v is not None, "the layer sets the chunk's keys and values"
                past = (a.k, a.v)
                if n < tokens:
                    frame.keep_past(a.k, a.v)
            frame.chunk = "B"
            if n < tokens:  # chunk B: tokens n .. T - 1, its saved tensors dropped (recomputed in backward)
                outs.append(frame.run_b(x, past))
        out: torch_t.Tensor = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        key = (id(layer), tuple(x.shape), n)
        if key not in self._recompute_bytes:  # once per layer, shape and split: one more forward of chunk B
            from memarena.families.training.activations.base import saved_bytes_of

            self._recompute_bytes[key] = (
                saved_bytes_of(lambda: frame.run_b(*frame.recompute_inputs()), frame.skip | {frame.input_ptr})
                if n < tokens
                else 0
            )
        # backward holds the layer's swapped-in host copies and chunk B's recomputed tensors together
        meter.note_transient(region, frame.host_bytes + self._recompute_bytes[key])
        return out
