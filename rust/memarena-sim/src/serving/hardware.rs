//! The hardware the serving model runs on: a plain struct of datasheet
//! numbers. The Python side fills it from its hardware backends.

use memarena_core::error::{Error, Result};

/// One accelerator and its host link.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hardware {
    /// Name (for messages).
    pub name: String,
    /// Device memory (HBM) in bytes.
    pub hbm_capacity_bytes: u64,
    /// Device memory bandwidth, bytes per second.
    pub hbm_bandwidth_bytes_per_s: f64,
    /// Peak dense FLOP/s at the model's dtype.
    pub peak_flops: f64,
    /// Host link (PCIe/NVLink-C2C) bandwidth per direction, bytes per second.
    pub host_link_bandwidth_bytes_per_s: f64,
    /// Host memory available as a swap tier, bytes.
    pub host_memory_bytes: u64,
}

impl Hardware {
    /// NVIDIA H100 SXM5 80 GB: 80 GB HBM3 at 3.35 TB/s, 989 TFLOP/s dense
    /// BF16 (NVIDIA H100 datasheet); PCIe Gen5 x16 at 64 GB/s per direction;
    /// 256 GiB of host memory for swap.
    pub fn h100_sxm() -> Hardware {
        Hardware {
            name: "h100_sxm".into(),
            hbm_capacity_bytes: 80_000_000_000,
            hbm_bandwidth_bytes_per_s: 3.35e12,
            peak_flops: 989e12,
            host_link_bandwidth_bytes_per_s: 64e9,
            host_memory_bytes: 256 << 30,
        }
    }

    /// NVIDIA A100 SXM4 40 GB: 1.555 TB/s, 312 TFLOP/s dense BF16 (A100
    /// datasheet); PCIe Gen4 x16 at 32 GB/s; 256 GiB host memory.
    pub fn a100_40gb() -> Hardware {
        Hardware {
            name: "a100_40gb".into(),
            hbm_capacity_bytes: 40_000_000_000,
            hbm_bandwidth_bytes_per_s: 1.555e12,
            peak_flops: 312e12,
            host_link_bandwidth_bytes_per_s: 32e9,
            host_memory_bytes: 256 << 30,
        }
    }

    /// Checks that every figure is positive and finite; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if self.hbm_capacity_bytes == 0 {
            return Err(Error::invalid("hardware.hbm_capacity_bytes", "must be > 0"));
        }
        for (f, v) in [
            ("hbm_bandwidth_bytes_per_s", self.hbm_bandwidth_bytes_per_s),
            ("peak_flops", self.peak_flops),
            (
                "host_link_bandwidth_bytes_per_s",
                self.host_link_bandwidth_bytes_per_s,
            ),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    format!("hardware.{f}"),
                    format!("must be finite and > 0, got {v}"),
                ));
            }
        }
        Ok(())
    }
}
