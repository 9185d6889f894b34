"""The replacement policies of the Rust core, one :class:`~memarena.api.PagingPolicy` each.

Every class runs natively (``core_name`` names the Rust policy) and is
registered by :mod:`memarena.families.paging.plugin` through the plugin hooks;
``NATIVE_POLICIES`` lists them. Parameters are the fields of each
``Config`` besides ``_target_``; the experiment builds a policy as
``cls(capacity=..., **params)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from memarena.api import PagingPolicy

__all__ = [
    "ARC",
    "CLOCK",
    "FIFO",
    "LFU",
    "LIRS",
    "LRU",
    "NATIVE_POLICIES",
    "S3FIFO",
    "SIEVE",
    "Belady",
    "BlindOracle",
    "Mark0",
    "MarkAndPredict",
    "Marker",
    "PredictiveMarker",
    "TwoQ",
]


class LRU(PagingPolicy):
    """Least recently used: evict the object whose last request is oldest."""

    name: ClassVar[str] = "lru"
    core_name: ClassVar[str | None] = "lru"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.LRU"


class FIFO(PagingPolicy):
    """First in, first out: evict the object admitted earliest."""

    name: ClassVar[str] = "fifo"
    core_name: ClassVar[str | None] = "fifo"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.FIFO"


class CLOCK(PagingPolicy):
    """CLOCK (FIFO-reinsertion, second chance) with an n-bit frequency counter."""

    name: ClassVar[str] = "clock"
    core_name: ClassVar[str | None] = "clock"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.CLOCK"
        #: Bits of the per-object frequency counter (1 = classic second chance).
        n_bit_counter: int = 1
        #: Counter value given to a newly admitted object.
        init_freq: int = 0


class LFU(PagingPolicy):
    """Least frequently used, with O(1) frequency buckets."""

    name: ClassVar[str] = "lfu"
    core_name: ClassVar[str | None] = "lfu"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.LFU"


class ARC(PagingPolicy):
    """ARC (Megiddo and Modha, FAST '03): adaptive balance of recency and frequency."""

    name: ClassVar[str] = "arc"
    core_name: ClassVar[str | None] = "arc"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.ARC"


class TwoQ(PagingPolicy):
    """2Q (Johnson and Shasha, VLDB '94): FIFO for first-timers, LRU for re-referenced objects."""

    name: ClassVar[str] = "twoq"
    core_name: ClassVar[str | None] = "twoq"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.TwoQ"
        #: Share of the capacity for the first-timer FIFO (Ain).
        ain_size_ratio: float = 0.25
        #: Size of the ghost FIFO (Aout) as a share of the capacity.
        aout_size_ratio: float = 0.5


class LIRS(PagingPolicy):
    """LIRS (Jiang and Zhang, SIGMETRICS '02): low inter-reference recency set."""

    name: ClassVar[str] = "lirs"
    core_name: ClassVar[str | None] = "lirs"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.LIRS"
        #: Share of the capacity for resident HIR objects.
        hirs_ratio: float = 0.01


class S3FIFO(PagingPolicy):
    """S3-FIFO (Yang et al., SOSP '23): small probationary FIFO, main FIFO and ghost FIFO."""

    name: ClassVar[str] = "s3fifo"
    core_name: ClassVar[str | None] = "s3fifo"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.S3FIFO"
        #: Share of the capacity for the probationary FIFO.
        small_size_ratio: float = 0.1
        #: Ghost FIFO size as a share of the capacity.
        ghost_size_ratio: float = 0.9
        #: Requests in the small FIFO needed to move an object to the main FIFO.
        move_to_main_threshold: int = 2


class SIEVE(PagingPolicy):
    """SIEVE (Zhang et al., NSDI '24): a FIFO with a visited bit and a moving hand."""

    name: ClassVar[str] = "sieve"
    core_name: ClassVar[str | None] = "sieve"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.SIEVE"


class Belady(PagingPolicy):
    """Belady's MIN/OPT: evict the object requested furthest in the future (offline optimum)."""

    name: ClassVar[str] = "belady"
    core_name: ClassVar[str | None] = "belady"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.Belady"


class Marker(PagingPolicy):
    """Randomized marking (Fiat et al., 1991): 2 H_k-competitive, the robust baseline."""

    name: ClassVar[str] = "marker"
    core_name: ClassVar[str | None] = "marker"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.Marker"
        #: Seed of the random choices among unmarked pages.
        seed: int = 0


class BlindOracle(PagingPolicy):
    """BlindOracle (Lykouris and Vassilvitskii 2018): Belady's rule on predicted next arrivals."""

    name: ClassVar[str] = "blind_oracle"
    core_name: ClassVar[str | None] = "blind_oracle"
    prediction_kind: ClassVar[str | None] = "next_arrival"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.BlindOracle"


class PredictiveMarker(PagingPolicy):
    """PredictiveMarker (Lykouris and Vassilvitskii, ICML 2018): marking guided by next-arrival predictions."""

    name: ClassVar[str] = "predictive_marker"
    core_name: ClassVar[str | None] = "predictive_marker"
    prediction_kind: ClassVar[str | None] = "next_arrival"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.PredictiveMarker"
        #: Seed of the random fallback choices.
        seed: int = 0


class Mark0(PagingPolicy):
    """MARK0 (Antoniadis et al., ICML 2023): marking that follows one-bit discard predictions."""

    name: ClassVar[str] = "mark0"
    core_name: ClassVar[str | None] = "mark0"
    prediction_kind: ClassVar[str | None] = "discard_bit"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.Mark0"
        #: Seed of the random fallback choices.
        seed: int = 0


class MarkAndPredict(PagingPolicy):
    """MARK&PREDICT (Antoniadis et al., ICML 2023): marking driven by one-bit phase predictions."""

    name: ClassVar[str] = "mark_and_predict"
    core_name: ClassVar[str | None] = "mark_and_predict"
    prediction_kind: ClassVar[str | None] = "phase_bit"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.MarkAndPredict"
        #: Seed of the random fallback choices.
        seed: int = 0


class Mark0Robust(PagingPolicy):
    """MARK0 combined with Marker: follows the one with fewer misses so far (robust, 1-consistent)."""

    name: ClassVar[str] = "mark0_robust"
    core_name: ClassVar[str | None] = "mark0_robust"
    prediction_kind: ClassVar[str | None] = "discard_bit"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.policies.Mark0Robust"
        #: Seed of MARK0's random choices (Marker's is seed + 1).
        seed: int = 0
        #: Switch to the other candidate when the followed one has more than
        #: this many times its misses (above 1; 2 gives the textbook bound).
        switch_factor: float = 1.1


#: Every native policy class, in the core's registry order.
NATIVE_POLICIES: tuple[type[PagingPolicy], ...] = (
    LRU,
    FIFO,
    CLOCK,
    LFU,
    ARC,
    TwoQ,
    LIRS,
    S3FIFO,
    SIEVE,
    Belady,
    Marker,
    BlindOracle,
    PredictiveMarker,
    Mark0,
    MarkAndPredict,
    Mark0Robust,
)
