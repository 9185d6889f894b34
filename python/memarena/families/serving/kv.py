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
from memarena.api import KVManager
from memarena.errors import InvalidConfigError

__all__ = ["KV_MANAGERS", "PagedKV", "StaticKV", "VAttentionKV"]

KiB = 1024
MiB = 1024 * KiB


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
    ``pow2`` the final length rounded up to a power of two (Orca-Pow2),
    ``oracle`` exactly the final length (Orca-Oracle). Reservations come
    from a first-fit contiguous allocator, so holes fragment the pool.
    """

    name: ClassVar[str] = "static"
    #: The variants the core accepts.
    VARIANTS: ClassVar[tuple[str, ...]] = tuple(_core.static_variants())

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.StaticKV"
        #: max (Orca-Max), pow2 (Orca-Pow2) or oracle (Orca-Oracle).
        variant: str = "max"

    def __init__(self, variant: str = "max") -> None:
        if variant not in self.VARIANTS:
            raise InvalidConfigError(
                f"config key 'kv_manager.variant' must be one of {', '.join(self.VARIANTS)}, got {variant!r}"
            )
        self.variant = variant

    def core_config(self) -> dict[str, Any]:
        return {"kind": "static", "variant": self.variant}

    def describe(self) -> str:
        return f"static_{self.variant}"


class PagedKV(ServingKVManager):
    """vLLM's PagedAttention block pool.

    Fixed-size blocks of ``block_size`` tokens, per-sequence block tables,
    reference counts and copy-on-write for parallel sampling, an admission
    watermark (a share of all blocks kept free), and prefix caching
    (``off``, ``v0``: LRU of cached blocks, ``v1``: vLLM v1's free queue).
    """

    name: ClassVar[str] = "paged"
    #: The prefix-caching modes the core accepts.
    PREFIX_CACHING: ClassVar[tuple[str, ...]] = tuple(_core.prefix_caching_modes())

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.PagedKV"
        #: Tokens per block (vLLM: 16).
        block_size: int = 16
        #: Share of all blocks kept free at admission (vLLM v0: 0.01).
        watermark: float = 0.01
        #: off, v0 or v1.
        prefix_caching: str = "off"

    def __init__(self, block_size: int = 16, watermark: float = 0.01, prefix_caching: str = "off") -> None:
        if block_size < 1:
            raise InvalidConfigError(f"config key 'kv_manager.block_size' must be >= 1, got {block_size}")
        if not 0 <= watermark < 1:
            raise InvalidConfigError(f"config key 'kv_manager.watermark' must be in [0, 1), got {watermark}")
        if prefix_caching not in self.PREFIX_CACHING:
            raise InvalidConfigError(
                f"config key 'kv_manager.prefix_caching' must be one of {', '.join(self.PREFIX_CACHING)}, "
                f"got {prefix_caching!r}"
            )
        self.block_size = block_size
        self.watermark = watermark
        self.prefix_caching = prefix_caching

    def core_config(self) -> dict[str, Any]:
        return {
            "kind": "paged",
            "block_size": self.block_size,
            "watermark": self.watermark,
            "prefix_caching": self.prefix_caching,
        }

    def describe(self) -> str:
        size = "" if self.block_size == 16 else f"_{self.block_size}"
        cache = "" if self.prefix_caching == "off" else f"_prefix_{self.prefix_caching}"
        return f"paged{size}{cache}"


class VAttentionKV(ServingKVManager):
    """vAttention: a virtual max-length buffer per request slot, physical pages mapped on demand.

    ``page_size_bytes`` is the physical page per layer and K/V buffer
    (64 KiB, 128 KiB, 256 KiB or 2 MiB); with ``deferred_reclaim`` a
    finished request's pages stay mapped on its slot until needed elsewhere.
    """

    name: ClassVar[str] = "vattention"
    #: The page sizes the core accepts, bytes (vAttention's 64 KiB, 128 KiB, 256 KiB and 2 MiB).
    PAGE_SIZES: ClassVar[tuple[int, ...]] = tuple(_core.vattention_page_sizes())

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.VAttentionKV"
        #: Physical page size per layer and K/V buffer: 64 KiB, 128 KiB, 256 KiB or 2 MiB.
        page_size_bytes: int = 2 * MiB
        #: Keep finished requests' pages mapped (reclaimed on demand).
        deferred_reclaim: bool = True
        #: Seconds added to an iteration per page mapped (0: overlapped with compute).
        page_map_latency_s: float = 0.0

    def __init__(
        self, page_size_bytes: int = 2 * MiB, deferred_reclaim: bool = True, page_map_latency_s: float = 0.0
    ) -> None:
        if page_size_bytes not in self.PAGE_SIZES:
            raise InvalidConfigError(
                "config key 'kv_manager.page_size_bytes' must be one of "
                f"{', '.join(map(str, self.PAGE_SIZES))} (64 KiB ... 2 MiB), got {page_size_bytes}"
            )
        if page_map_latency_s < 0:
            raise InvalidConfigError(
                f"config key 'kv_manager.page_map_latency_s' must be >= 0, got {page_map_latency_s}"
            )
        self.page_size_bytes = page_size_bytes
        self.deferred_reclaim = deferred_reclaim
        self.page_map_latency_s = page_map_latency_s

    def core_config(self) -> dict[str, Any]:
        return {
            "kind": "vattention",
            "page_size_bytes": self.page_size_bytes,
            "deferred_reclaim": self.deferred_reclaim,
            "page_map_latency_s": self.page_map_latency_s,
        }

    def describe(self) -> str:
        size = self.page_size_bytes
        return f"vattention_{size // MiB}mb" if size >= MiB else f"vattention_{size // KiB}kb"


#: The built-in KV managers, registered by :mod:`memarena.families.serving.plugin`.
KV_MANAGERS: tuple[type[ServingKVManager], ...] = (StaticKV, PagedKV, VAttentionKV)
