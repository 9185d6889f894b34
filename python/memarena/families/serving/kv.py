"""KV-cache managers of the serving family (config group ``kv_manager``).

Each class is a :class:`memarena.api.KVManager` that describes one manager
of the Rust core; the whole simulation runs natively. Select one with
``kv_manager=<name>`` or a preset (``kv_manager=static_pow2``,
``kv_manager=paged_prefix_v1``, ``kv_manager=vattention_64kb`` ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from memarena import _core
from memarena.api import KVManager, param

__all__ = ["KV_MANAGERS", "PagedKV", "StaticKV", "VAttentionKV"]

KiB = 1024
MiB = 1024 * KiB


# The vocabularies the core accepts, read from it (never retyped).
_STATIC_VARIANTS: tuple[str, ...] = tuple(_core.static_variants())
_STATIC_ALLOCATORS: tuple[str, ...] = tuple(_core.static_allocators())
_PREFIX_CACHING: tuple[str, ...] = tuple(_core.prefix_caching_modes())
_PAGE_SIZES: tuple[int, ...] = tuple(_core.vattention_page_sizes())


class ServingKVManager(KVManager):
    """Base of the built-in managers: :meth:`core_config` is what the Rust core reads."""

    def core_config(self) -> dict[str, Any]:
        """The manager as the ``kv`` entry of the core's serving config."""
        raise NotImplementedError

    def describe(self) -> str:
        """A label for tables (the registry name plus the parameters that tell variants apart)."""
        return self.name


class StaticKV(ServingKVManager):
    """Contiguous static reservation per request (Orca as the vLLM paper models it).

    ``variant``: ``max`` reserves the model's maximum length (Orca-Max),
    ``pow2`` the prompt plus the output length rounded up to a power of two,
    ``P + next_pow2(D)`` (Orca-Pow2; the vLLM paper, section 6.1: "if the true
    output length is 25, it reserves 32 positions for outputs"), ``oracle``
    exactly the final length (Orca-Oracle).

    ``allocator`` places the reservations in one contiguous address range:
    ``first_fit`` (the lowest-addressed hole large enough) or ``buddy``, a
    binary buddy allocator that holds a block of the reservation's next power
    of two slots (split on allocation, buddies merged on free; a pool that is
    not a power of two is split into its maximal power-of-two arenas). The
    vLLM paper's Orca is the buddy one (section 6.1: "We assume Orca uses the
    buddy allocation algorithm to determine the memory address to store KV
    cache"). The rounding is counted as internal fragmentation. Holes (free
    blocks) too small for the head of the queue are external fragmentation
    while that request is blocked on memory.
    """

    name: ClassVar[str] = "static"
    #: The variants the core accepts.
    VARIANTS: ClassVar[tuple[str, ...]] = _STATIC_VARIANTS
    #: The allocators the core accepts.
    ALLOCATORS: ClassVar[tuple[str, ...]] = _STATIC_ALLOCATORS

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.StaticKV"
        #: max (Orca-Max), pow2 (Orca-Pow2) or oracle (Orca-Oracle).
        variant: str = param("max", choices=_STATIC_VARIANTS)
        #: first_fit, or buddy (power-of-two blocks; the vLLM paper's Orca).
        allocator: str = param("first_fit", choices=_STATIC_ALLOCATORS)

    def core_config(self) -> dict[str, Any]:
        return {"kind": "static", **self.config_dict()}

    def describe(self) -> str:
        return f"static_{self.variant}" + ("" if self.allocator == "first_fit" else f"_{self.allocator}")


class PagedKV(ServingKVManager):
    """vLLM's PagedAttention block pool.

    Fixed-size blocks of ``block_size`` tokens, per-sequence block tables,
    reference counts and copy-on-write for parallel sampling, an admission
    watermark (a share of all blocks kept free), and prefix caching
    (``off``, ``v0``: LRU of cached blocks, ``v1``: vLLM v1's free queue).
    """

    name: ClassVar[str] = "paged"
    #: The prefix-caching modes the core accepts.
    PREFIX_CACHING: ClassVar[tuple[str, ...]] = _PREFIX_CACHING

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.PagedKV"
        #: Tokens per block (vLLM: 16).
        block_size: int = param(16, ge=1)
        #: Share of all blocks kept free at admission (vLLM v0: 0.01).
        watermark: float = param(0.01, ge=0, lt=1)
        #: off, v0 or v1.
        prefix_caching: str = param("off", choices=_PREFIX_CACHING)

    def core_config(self) -> dict[str, Any]:
        return {"kind": "paged", **self.config_dict()}

    def describe(self) -> str:
        size = "" if self.block_size == 16 else f"_{self.block_size}"
        cache = "" if self.prefix_caching == "off" else f"_prefix_{self.prefix_caching}"
        return f"paged{size}{cache}"


class VAttentionKV(ServingKVManager):
    """vAttention: a virtual max-length buffer per request slot, physical pages mapped on demand.

    ``page_size_bytes`` is the physical page per layer and K/V buffer
    (64 KiB, 128 KiB, 256 KiB or 2 MiB); with ``deferred_reclaim`` a
    finished request's pages stay mapped on its slot until needed elsewhere
    (reported as ``idle_mapped``: neither used nor free).
    """

    name: ClassVar[str] = "vattention"
    #: The page sizes the core accepts, bytes (vAttention's 64 KiB, 128 KiB, 256 KiB and 2 MiB).
    PAGE_SIZES: ClassVar[tuple[int, ...]] = _PAGE_SIZES

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.VAttentionKV"
        #: Physical page size per layer and K/V buffer: 64 KiB, 128 KiB, 256 KiB or 2 MiB.
        page_size_bytes: int = param(2 * MiB, choices=_PAGE_SIZES)
        #: Keep finished requests' pages mapped (reclaimed on demand).
        deferred_reclaim: bool = True
        #: Seconds added to an iteration per page mapped (0: overlapped with compute).
        page_map_latency_s: float = param(0.0, ge=0)

    def core_config(self) -> dict[str, Any]:
        return {"kind": "vattention", **self.config_dict()}

    def describe(self) -> str:
        size = self.page_size_bytes
        return f"vattention_{size // MiB}mb" if size >= MiB else f"vattention_{size // KiB}kb"


#: The built-in KV managers, registered by :mod:`memarena.families.serving.plugin`.
KV_MANAGERS: tuple[type[ServingKVManager], ...] = (StaticKV, PagedKV, VAttentionKV)
