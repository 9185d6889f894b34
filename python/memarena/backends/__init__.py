"""Hardware backends: memory tiers and compute, with datasheet figures."""

from memarena.backends.catalog import BUILTIN_BACKENDS, CpuDdr5Nvme, TierConfig, TieredBackend
from memarena.backends.gpus import A100_40GB, A100_80GB, GPU_BACKENDS, H100_SXM, H200, L4, RTX4090

__all__ = [
    "A100_40GB",
    "A100_80GB",
    "BUILTIN_BACKENDS",
    "GPU_BACKENDS",
    "H100_SXM",
    "H200",
    "L4",
    "RTX4090",
    "CpuDdr5Nvme",
    "TierConfig",
    "TieredBackend",
]
