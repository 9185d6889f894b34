"""Host-link transfers of a training step and how much of them hides behind compute (a stated model).

Two things cross the host link (the backend's host tier: its bandwidth is
the link's per-direction bandwidth, PCIe for the GPU backends):

* ``activation=memo``'s swapped activations: each layer's host bytes go
  out in the forward and come back in the backward;
* with ``family.offload_optimizer`` (Deep Optimizer States / ZeRO-Offload
  style: the state lives on the host and the update runs there), each
  region's gradients go to the host and its updated parameters come back.

The overlap model: transfers are chunked by region (embed, layer i, head)
and the transfer of a chunk overlaps the compute of the *next* region in
execution order ("the transfer of layer i+1 overlaps the compute of layer
i", read in the direction the pass runs): a forward swap-out of layer i
overlaps the forward of the region after it; a backward prefetch, a
gradient offload and a parameter upload overlap the backward of the region
the backward runs next. The last chunk of a pass overlaps nothing. Per
chunk, ``overlapped = min(transfer, window)``; the rest is exposed. The
compute windows are the regions' measured times on this machine; the
transfer times are the backend's link (``latency + bytes / bandwidth``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Transfers", "offload_chunks", "overlap", "swap_chunks"]


@dataclass(frozen=True)
class Transfers:
    """Bytes, time, overlapped time and exposed time of a step's host-link transfers."""

    bytes: int = 0
    time_s: float = 0.0
    overlapped_s: float = 0.0

    @property
    def exposed_s(self) -> float:
        return self.time_s - self.overlapped_s

    def __add__(self, other: Transfers) -> Transfers:
        return Transfers(self.bytes + other.bytes, self.time_s + other.time_s, self.overlapped_s + other.overlapped_s)


def overlap(chunks: Sequence[tuple[int, float]], bandwidth_bytes_per_s: float, latency_s: float) -> Transfers:
    """``chunks``: ``(bytes, compute window in s)`` in pass order, each window the next region's compute.

    A chunk of 0 bytes costs nothing (no latency).
    """
    total = Transfers()
    for nbytes, window_s in chunks:
        if nbytes <= 0:
            continue
        t = latency_s + nbytes / bandwidth_bytes_per_s
        total = total + Transfers(nbytes, t, min(t, max(0.0, window_s)))
    return total


def swap_chunks(
    order: Sequence[str], per_region: dict[str, int], fwd_s: dict[str, float], bwd_s: dict[str, float]
) -> list[tuple[int, float]]:
    """Activation swap chunks: out in the forward, back in the backward.

    ``order`` is the forward's region order. A region's swap-out overlaps
    the forward of the region after it; its prefetch (needed when its own
    backward starts) overlaps the backward of the region the backward runs
    just before it.
    """
    out = [
        (per_region.get(r, 0), fwd_s.get(order[i + 1], 0.0) if i + 1 < len(order) else 0.0) for i, r in enumerate(order)
    ]
    back = list(reversed(order))
    back_in = [(per_region.get(r, 0), bwd_s.get(back[i - 1], 0.0) if i > 0 else 0.0) for i, r in enumerate(back)]
    return out + back_in


def offload_chunks(
    order: Sequence[str], per_region: dict[str, int], bwd_s: dict[str, float]
) -> list[tuple[int, float]]:
    """Optimizer-offload chunks: a region's gradients (and its updated parameters) after its backward ends,
    overlapping the backward of the region the backward runs next."""
    back = list(reversed(order))
    return [
        (per_region.get(r, 0), bwd_s.get(back[i + 1], 0.0) if i + 1 < len(back) else 0.0) for i, r in enumerate(back)
    ]
