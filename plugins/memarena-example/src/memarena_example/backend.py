"""A host with a CXL Type-3 memory expander between DRAM and NVMe.

Every figure names its public source in the Config's ``source`` field, which
memarena copies into each run record. The tiers are called ``dram``, ``cxl``
and ``nvme``, so the paging family can put its cache in any of them and its
misses in a slower one, e.g. ``family.cache_tier=dram family.backing_tier=cxl``
(a DRAM cache in front of the expander).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from memarena.backends import TierConfig, TieredBackend

__all__ = ["CXL_SOURCE", "CxlTiered"]

#: Decimal gigabyte, as an int: capacity fields are ints in the Config.
GB = 10**9
GiB = 2**30

CXL_SOURCE = (
    "DRAM: JEDEC JESD79-5 DDR5-4800, 38.4 GB/s per channel x 8 channels; idle latency ~100 ns (Intel Memory "
    "Latency Checker on Sapphire Rapids, as memarena's cpu_ddr5_nvme). "
    "CXL: Samsung press release 'Samsung Develops Industry's First CXL DRAM Supporting CXL 2.0' (12 May 2023): "
    "128 GB CXL 2.0 DRAM module, PCIe 5.0 x8, up to 35 GB/s; four modules. Latency 190 ns = ~100 ns local DRAM "
    "+ 90 ns, the upper end of the 70-90 ns a CXL memory hop adds in Li et al., 'Pond: CXL-Based Memory Pooling "
    "Systems for Cloud Platforms', ASPLOS 2023; Sun et al., 'Demystifying CXL Memory with Genuine CXL-Ready "
    "Systems and Devices', MICRO 2023, measure real CXL Type-3 expanders in the same ~170-250 ns range. "
    "NVMe: Samsung 990 PRO 2 TB data sheet rev 1.0 (2022): seq. read 7,450 MB/s, 4 KB random read QD1 22K IOPS."
)


class CxlTiered(TieredBackend):
    """A server host: DDR5 DRAM, a 512 GB CXL 2.0 memory expander, and an NVMe SSD."""

    name: ClassVar[str] = "cxl_tiered"

    @dataclass
    class Config:
        _target_: str = "memarena_example.backend.CxlTiered"
        tiers: list[TierConfig] = field(
            default_factory=lambda: [
                # 8 channels of DDR5-4800, 32 GiB DIMMs.
                TierConfig("dram", 256 * GiB, 8 * 38.4e9, 100e-9),
                # 4 x Samsung 128 GB CXL 2.0 modules, 35 GB/s each.
                TierConfig("cxl", 4 * 128 * GB, 4 * 35e9, 190e-9),
                # Samsung 990 PRO: 7.45 GB/s sequential; 22K IOPS at QD1 -> 45 us per 4 KB access.
                TierConfig("nvme", 2_000 * GB, 7.45e9, 1 / 22_000),
            ]
        )
        peak_flops: dict[str, float] = field(default_factory=dict)
        source: str = CXL_SOURCE
