"""Where the bytes of one training step go: the saved-tensor meter and the step trace.

**Activations saved for backward** are measured, not estimated: the family
runs the forward under :meth:`Meter.hooks`, a
``torch.autograd.graph.saved_tensors_hooks`` pair whose pack hook sees every
tensor autograd saves and records the bytes of its *storage*, one count per
storage (a view and its base, or two ops saving the same tensor, count
once; parameters and views of them are not activations and are skipped).
An activation policy that packs a layer's tensors itself (``memo``: its own
hooks are the innermost, so the meter's are not called there) reports what
it keeps through :meth:`Meter.note`, on the ``device`` or the ``host`` tier.
The bytes are recorded by *region*: ``embed``, ``layer<i>``, ``head``
(final norm, LM head, loss).

**The step trace and the peak.** The live device bytes of a step are
modelled as the sum of five categories: parameters, optimizer state
(device part: none with ``offload_optimizer``), gradients live, saved
activations live, and a policy's recompute transient (what one layer's
backward rematerialises: with ``checkpoint`` the bytes the layer's forward
saves, recomputed; with ``memo`` its swapped-in host copies plus the
recomputed tensors of its dropped tokens). The trace has one point at the end of the
forward (every activation live, no gradient: gradients are set to None
before each step) and one per region of the backward, in backward order
(head, last layer ... first layer, embed): at the end of a region's backward
the gradients produced so far (measured with post-accumulate-grad hooks;
with ``per_layer`` updates each is freed right after its update, also
measured), the activations not yet released (a region's saved bytes are
released when its backward ends: a hook on the gradient of its input) and
that region's transient are taken as live together, an upper bound of the
in-region peak; then the optimizer's step (every gradient still held, the
state) closes the trace. ``peak_bytes`` is the maximum over the points.
Not counted: the ops' own transient buffers (matmul outputs, attention
scores before they are freed), the allocator's rounding and fragmentation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memarena.lazy import torch

if TYPE_CHECKING:
    import torch as torch_t

__all__ = ["Meter", "StepTrace", "storage_key"]


def storage_key(t: torch_t.Tensor) -> tuple[int, int]:
    """``(data pointer, bytes)`` of the storage behind ``t`` (a view names its base's storage)."""
    s = t.untyped_storage()
    return s.data_ptr(), s.nbytes()


@dataclass
class StepTrace:
    """The points of one step's trace: ``(label, live bytes by category)``."""

    points: list[tuple[str, dict[str, int]]] = field(default_factory=list)

    def add(self, label: str, **live: int) -> None:
        self.points.append((label, dict(live)))

    def peak(self) -> tuple[str, int]:
        """The label and the total of the point with the most live bytes."""
        label, live = max(self.points, key=lambda p: sum(p[1].values()))
        return label, sum(live.values())


class Meter:
    """Saved-tensor accounting of one step, by region and tier, plus the gradient and timing events.

    :param skip: Storage pointers never counted as activations (the parameters').
    """

    def __init__(self, skip: set[int]) -> None:
        self.skip = skip
        self.reset()

    def reset(self) -> None:
        """Forget the previous step."""
        self.region = "embed"
        self.order: list[str] = []
        self._seen: set[int] = set()
        self.device: dict[str, int] = {}
        self.host: dict[str, int] = {}
        self.transient: dict[str, int] = {}
        self.fwd_s: dict[str, float] = {}
        self.bwd_s: dict[str, float] = {}
        self.grads_live = 0
        self._grad_bytes: dict[int, int] = {}
        self.trace = StepTrace()
        self._fixed: dict[str, int] = {}
        self._released: set[str] = set()
        self._t = time.perf_counter()

    # --- forward -----------------------------------------------------------------------------------------------

    @contextmanager
    def enter(self, region: str) -> Iterator[None]:
        """Attribute what is saved inside the block to ``region`` and time its forward."""
        before, self.region = self.region, region
        if region not in self.order:
            self.order.append(region)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.fwd_s[region] = self.fwd_s.get(region, 0.0) + time.perf_counter() - t0
            self.region = before

    def note(self, t: torch_t.Tensor, tier: str = "device") -> None:
        """Count ``t``'s storage in the current region on ``tier`` (once per storage; parameters skipped)."""
        ptr, nbytes = storage_key(t)
        if ptr in self.skip or (ptr and ptr in self._seen):
            return
        if ptr:
            self._seen.add(ptr)
        book = self.device if tier == "device" else self.host
        book[self.region] = book.get(self.region, 0) + nbytes

    def mark_input(self, region: str, x: torch_t.Tensor) -> None:
        """``x`` is ``region``'s input: when its gradient is computed, the region's backward has ended."""
        if x.requires_grad:
            x.register_hook(lambda _g: self.region_done(region))

    def note_transient(self, region: str, nbytes: int) -> None:
        """Bytes ``region`` rematerialises during its backward (a recompute), held until its backward ends."""
        self.transient[region] = max(self.transient.get(region, 0), nbytes)

    def _pack(self, t: torch_t.Tensor) -> torch_t.Tensor:
        self.note(t)
        return t

    @staticmethod
    def _unpack(t: torch_t.Tensor) -> torch_t.Tensor:
        return t

    def hooks(self) -> Any:
        """The saved-tensor hooks that count what autograd saves (identity pack and unpack)."""
        return torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    # --- backward ----------------------------------------------------------------------------------------------

    def grad_ready(self, p: torch_t.Tensor) -> None:
        """A post-accumulate-grad hook, registered before the optimizer's: ``p``'s gradient is live."""
        if p.grad is not None:
            nbytes = storage_key(p.grad)[1]
            self._grad_bytes[id(p)] = nbytes
            self.grads_live += nbytes

    def grad_after(self, p: torch_t.Tensor) -> None:
        """Registered after the optimizer's hooks: a per-layer update that freed ``p``'s gradient frees its bytes."""
        if p.grad is None and id(p) in self._grad_bytes:
            self.grads_live -= self._grad_bytes.pop(id(p))

    def begin_backward(self, fixed: dict[str, int]) -> None:
        """The forward is done: the trace's first point. ``fixed``: parameters and device optimizer state."""
        self._fixed = dict(fixed)
        self._released = set()
        self._t = time.perf_counter()
        self.trace.add("forward_end", **self._fixed, gradients_bytes=0, activations_bytes=self.activation_bytes)

    def region_done(self, region: str) -> None:
        """``region``'s backward ended (a hook on its input's gradient): a trace point, then its bytes are freed."""
        if region in self._released:
            return
        now = time.perf_counter()
        self.bwd_s[region] = now - self._t
        self._t = now
        live_acts = sum(v for r, v in self.device.items() if r not in self._released)
        self.trace.add(
            f"backward_{region}",
            **self._fixed,
            gradients_bytes=self.grads_live,
            activations_bytes=live_acts,
            recompute_bytes=self.transient.get(region, 0),
        )
        self._released.add(region)

    def end_step(self) -> None:
        """After backward, at the optimizer's step: the gradients still held and the state."""
        for region in reversed(self.order):
            self.region_done(region)  # regions with no hook (e.g. embed) end with the backward
        self.trace.add("optimizer_step", **self._fixed, gradients_bytes=self.grads_live)

    @property
    def activation_bytes(self) -> int:
        """Saved activation bytes on the device, every region."""
        return sum(self.device.values())

    @property
    def host_activation_bytes(self) -> int:
        """Saved activation bytes on the host tier, every region."""
        return sum(self.host.values())
