"""Built-in hardware backends.

Each figure comes from a public source named in the backend's ``source``
field (and so in every run record). A backend is plain data plus the
:class:`memarena.api.Tier` cost model; a third party adds one by subclassing
:class:`TieredBackend` with its own defaults (see plugins/memarena-example).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from memarena.api import Component, HardwareBackend, Tier
from memarena.errors import InvalidConfigError

__all__ = ["BUILTIN_BACKENDS", "CpuDdr5Nvme", "TierConfig", "TieredBackend"]

GB = 1e9
GiB = 2**30


@dataclass
class TierConfig:
    """Config of one memory tier (units in the field names)."""

    name: str = "dram"
    capacity_bytes: int = 0
    bandwidth_bytes_per_s: float = 0.0
    latency_s: float = 0.0


#: The fields every tier of a backend config must give.
TIER_FIELDS = tuple(f.name for f in fields(TierConfig))


class TieredBackend(HardwareBackend):
    """A backend given entirely by its config: tiers, peak FLOP/s and sources."""

    name: ClassVar[str] = "tiered"

    @dataclass
    class Config:
        _target_: str = "memarena.backends.TieredBackend"
        tiers: list[TierConfig] = field(default_factory=list)
        peak_flops: dict[str, float] = field(default_factory=dict)
        source: str = ""

    def __init__(self, **params: Any) -> None:
        Component.__init__(self, **params)
        built = [_tier(i, t) for i, t in enumerate(self.config.tiers)]
        try:
            super().__init__(built, dict(self.config.peak_flops), self.config.source)
        except ValueError as exc:
            raise InvalidConfigError(f"config key 'backend.tiers': {exc}") from exc


def _tier(i: int, t: Mapping[str, Any] | TierConfig) -> Tier:
    """Tier ``i`` of a backend config, every field present and in range."""
    get: Callable[[str], Any] = t.get if isinstance(t, Mapping) else lambda k: getattr(t, k, None)
    values = {}
    for f in fields(TierConfig):
        v = get(f.name)
        if v is None:
            raise InvalidConfigError(f"config key 'backend.tiers[{i}].{f.name}' is required ({', '.join(TIER_FIELDS)})")
        values[f.name] = v
    if isinstance(t, Mapping) and set(t) - set(TIER_FIELDS):
        extra = sorted(set(t) - set(TIER_FIELDS))[0]
        raise InvalidConfigError(
            f"config key 'backend.tiers[{i}].{extra}' is not a tier field ({', '.join(TIER_FIELDS)})"
        )
    try:
        tier = Tier(
            name=str(values["name"]),
            capacity_bytes=int(values["capacity_bytes"]),
            bandwidth_bytes_per_s=float(values["bandwidth_bytes_per_s"]),
            latency_s=float(values["latency_s"]),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidConfigError(f"config key 'backend.tiers[{i}]': {exc}") from None
    for key in ("capacity_bytes", "bandwidth_bytes_per_s"):
        if getattr(tier, key) <= 0:
            raise InvalidConfigError(f"config key 'backend.tiers[{i}].{key}' must be > 0 ({tier.name})")
    if tier.latency_s < 0:
        raise InvalidConfigError(f"config key 'backend.tiers[{i}].latency_s' must be >= 0 ({tier.name})")
    return tier


class CpuDdr5Nvme(TieredBackend):
    """A server host: DDR5-4800 DRAM (8 channels) over a PCIe 4.0 NVMe SSD."""

    name: ClassVar[str] = "cpu_ddr5_nvme"

    @dataclass
    class Config:
        _target_: str = "memarena.backends.CpuDdr5Nvme"
        tiers: list[TierConfig] = field(
            default_factory=lambda: [
                # JEDEC DDR5-4800: 4800 MT/s x 8 B = 38.4 GB/s per channel; 8 channels.
                TierConfig("dram", 512 * GiB, 8 * 38.4 * GB, 100e-9),
                # Samsung 990 PRO 2 TB data sheet: 7,450 MB/s sequential read;
                # 22,000 IOPS 4 KB random read at QD1 -> 45 us per access.
                TierConfig("nvme", 2_000 * 10**9, 7.45 * GB, 1 / 22_000),
            ]
        )
        peak_flops: dict[str, float] = field(default_factory=dict)
        source: str = (
            "JEDEC JESD79-5 (DDR5-4800, 38.4 GB/s per channel); DRAM idle latency ~100 ns (typical, "
            "Intel Memory Latency Checker on Sapphire Rapids); Samsung 990 PRO data sheet rev 1.0 (2022): "
            "seq. read 7,450 MB/s, 4 KB random read QD1 22K IOPS"
        )


#: Registered backends. :class:`TieredBackend` itself is a base, not an option:
#: override any backend's ``tiers`` to describe other hardware.
BUILTIN_BACKENDS: tuple[type[TieredBackend], ...] = (CpuDdr5Nvme,)
