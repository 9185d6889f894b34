"""Hardware backends: memory tiers and compute, with datasheet figures."""

from memarena.backends.catalog import BUILTIN_BACKENDS, CpuDdr5Nvme, TierConfig, TieredBackend

__all__ = ["BUILTIN_BACKENDS", "CpuDdr5Nvme", "TierConfig", "TieredBackend"]
