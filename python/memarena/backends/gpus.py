"""Accelerator backends for the serving family, with datasheet figures.

Each backend has two tiers: ``hbm`` (the device memory: capacity and
bandwidth from the vendor's datasheet) and ``host`` (host DRAM reached over
the host link: the tier's bandwidth is the link's per-direction bandwidth,
its capacity the host memory available for swapped-out KV). ``peak_flops``
holds the dense (no sparsity) Tensor Core figures per dtype. Every figure's
public source is named in ``source`` and so lands in every run record.

Conventions: datasheet capacities are decimal (80 GB = 80e9 bytes);
datasheet PCIe figures are bidirectional totals (PCIe Gen5 x16 "128 GB/s"
is 64 GB/s per direction); the host tier's 256 GiB and the latencies are
assumptions, not datasheet figures (the serving roofline does not use the
latencies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from memarena.backends.catalog import TierConfig, TieredBackend

__all__ = ["A100_40GB", "A100_80GB", "GPU_BACKENDS", "H100_SXM", "H200", "L4", "RTX4090"]

GB = 10**9
GiB = 2**30
TFLOPS = 1e12

#: Host memory assumed available for swapped-out KV (a typical 8-GPU server
#: has 1-2 TiB of DRAM; 256 GiB per GPU). Not a datasheet figure.
HOST_SWAP_BYTES = 256 * GiB
#: Global-memory load latency (~0.5 us, microbenchmarks such as Jia et al.,
#: "Dissecting the NVIDIA Volta GPU architecture via microbenchmarking", 2018)
#: and PCIe round trip (~1 us); typical, not datasheet figures.
HBM_LATENCY_S = 0.5e-6
PCIE_LATENCY_S = 1e-6


def _tiers(hbm_bytes: int, hbm_bw: float, link_bw: float) -> list[TierConfig]:
    return [
        TierConfig("hbm", hbm_bytes, hbm_bw, HBM_LATENCY_S),
        TierConfig("host", HOST_SWAP_BYTES, link_bw, PCIE_LATENCY_S),
    ]


class A100_40GB(TieredBackend):  # the product's name
    """NVIDIA A100 40GB SXM: 40 GB HBM2 at 1,555 GB/s, 312 TFLOP/s dense BF16, PCIe Gen4 (the vLLM paper's GPU)."""

    name: ClassVar[str] = "a100_40gb"

    @dataclass
    class Config:
        _target_: str = "memarena.backends.A100_40GB"
        tiers: list[TierConfig] = field(default_factory=lambda: _tiers(40 * GB, 1555 * GB, 32 * GB))
        peak_flops: dict[str, float] = field(
            default_factory=lambda: {"bf16": 312 * TFLOPS, "fp16": 312 * TFLOPS, "tf32": 156 * TFLOPS}
        )
        source: str = (
            "NVIDIA A100 Tensor Core GPU datasheet (2021, A100 40GB SXM column): 40GB HBM2, 1,555 GB/s, "
            "BF16/FP16 Tensor Core 312 TFLOPS dense (624 with sparsity), TF32 156 TFLOPS, PCIe Gen4 64 GB/s "
            "(bidirectional: 32 GB/s per direction); host swap 256 GiB and latencies assumed"
        )


class A100_80GB(TieredBackend):  # the product's name
    """NVIDIA A100 80GB SXM: 80 GB HBM2e at 2,039 GB/s, 312 TFLOP/s dense BF16, PCIe Gen4."""

    name: ClassVar[str] = "a100_80gb"

    @dataclass
    class Config:
        _target_: str = "memarena.backends.A100_80GB"
        tiers: list[TierConfig] = field(default_factory=lambda: _tiers(80 * GB, 2039 * GB, 32 * GB))
        peak_flops: dict[str, float] = field(
            default_factory=lambda: {"bf16": 312 * TFLOPS, "fp16": 312 * TFLOPS, "tf32": 156 * TFLOPS}
        )
        source: str = (
            "NVIDIA A100 Tensor Core GPU datasheet (2021, A100 80GB SXM column): 80GB HBM2e, 2,039 GB/s, "
            "BF16/FP16 Tensor Core 312 TFLOPS dense (624 with sparsity), TF32 156 TFLOPS, PCIe Gen4 64 GB/s "
            "(bidirectional: 32 GB/s per direction); host swap 256 GiB and latencies assumed"
        )


class H100_SXM(TieredBackend):  # the product's name
    """NVIDIA H100 SXM5: 80 GB HBM3 at 3.35 TB/s, 989 TFLOP/s dense BF16, PCIe Gen5."""

    name: ClassVar[str] = "h100_sxm"

    @dataclass
    class Config:
        _target_: str = "memarena.backends.H100_SXM"
        tiers: list[TierConfig] = field(default_factory=lambda: _tiers(80 * GB, 3350 * GB, 64 * GB))
        peak_flops: dict[str, float] = field(
            default_factory=lambda: {"bf16": 989 * TFLOPS, "fp16": 989 * TFLOPS, "fp8": 1979 * TFLOPS}
        )
        source: str = (
            "NVIDIA H100 Tensor Core GPU datasheet (2023, H100 SXM column): 80GB HBM3, 3.35 TB/s, "
            "BF16/FP16 Tensor Core 1,979 TFLOPS with sparsity (989 dense), FP8 3,958 with sparsity (1,979 dense), "
            "PCIe Gen5 128 GB/s (bidirectional: 64 GB/s per direction); host swap 256 GiB and latencies assumed"
        )


class H200(TieredBackend):
    """NVIDIA H200 SXM: 141 GB HBM3e at 4.8 TB/s, 989 TFLOP/s dense BF16, PCIe Gen5."""

    name: ClassVar[str] = "h200"

    @dataclass
    class Config:
        _target_: str = "memarena.backends.H200"
        tiers: list[TierConfig] = field(default_factory=lambda: _tiers(141 * GB, 4800 * GB, 64 * GB))
        peak_flops: dict[str, float] = field(
            default_factory=lambda: {"bf16": 989 * TFLOPS, "fp16": 989 * TFLOPS, "fp8": 1979 * TFLOPS}
        )
        source: str = (
            "NVIDIA H200 Tensor Core GPU datasheet (2024, H200 SXM column): 141GB HBM3e, 4.8 TB/s, "
            "BF16/FP16 Tensor Core 1,979 TFLOPS with sparsity (989 dense), FP8 3,958 with sparsity (1,979 dense), "
            "PCIe Gen5 128 GB/s (bidirectional: 64 GB/s per direction); host swap 256 GiB and latencies assumed"
        )


class L4(TieredBackend):
    """NVIDIA L4: 24 GB GDDR6 at 300 GB/s, 121 TFLOP/s dense BF16, PCIe Gen4."""

    name: ClassVar[str] = "l4"

    @dataclass
    class Config:
        _target_: str = "memarena.backends.L4"
        tiers: list[TierConfig] = field(default_factory=lambda: _tiers(24 * GB, 300 * GB, 32 * GB))
        peak_flops: dict[str, float] = field(
            default_factory=lambda: {"bf16": 121 * TFLOPS, "fp16": 121 * TFLOPS, "fp8": 242 * TFLOPS}
        )
        source: str = (
            "NVIDIA L4 Tensor Core GPU datasheet (2023): 24GB GDDR6, 300 GB/s, BF16/FP16 Tensor Core "
            "242 TFLOPS with sparsity (121 dense), FP8 485 with sparsity (242 dense), PCIe Gen4 x16 64 GB/s "
            "(bidirectional: 32 GB/s per direction); host swap 256 GiB and latencies assumed"
        )


class RTX4090(TieredBackend):
    """NVIDIA GeForce RTX 4090: 24 GB GDDR6X at 1,008 GB/s, 165 TFLOP/s dense BF16, PCIe Gen4 (GaLore's 24 GB card)."""

    name: ClassVar[str] = "rtx4090"

    @dataclass
    class Config:
        _target_: str = "memarena.backends.RTX4090"
        tiers: list[TierConfig] = field(default_factory=lambda: _tiers(24 * GB, 1008 * GB, 32 * GB))
        peak_flops: dict[str, float] = field(
            default_factory=lambda: {"bf16": 165.2 * TFLOPS, "fp16": 165.2 * TFLOPS, "tf32": 82.6 * TFLOPS}
        )
        source: str = (
            "NVIDIA Ada GPU Architecture whitepaper (v2.1, 2023, Appendix A, GeForce RTX 4090 column): 24 GB "
            "GDDR6X, 1,008 GB/s, peak BF16/FP16 Tensor TFLOPS with FP32 accumulate 165.2 dense (330.4 with "
            "sparsity), TF32 82.6 dense, PCIe Gen4 x16 64 GB/s (bidirectional: 32 GB/s per direction); host swap "
            "256 GiB and latencies assumed"
        )


#: The accelerator backends, registered by :mod:`memarena.backends.plugin`.
GPU_BACKENDS: tuple[type[TieredBackend], ...] = (A100_40GB, A100_80GB, H100_SXM, H200, L4, RTX4090)
