//! Roofline cost of one serving iteration: `max(FLOPs / achieved FLOP/s,
//! bytes / achieved bandwidth) + overhead`. Prefill (many new tokens per
//! sequence) lands on the compute roof; decode (one token per sequence, all
//! weights plus every sequence's KV read) on the memory roof.

use memarena_core::error::{Error, Result};

use super::hardware::Hardware;
use super::model_spec::ModelSpec;

/// Calibration of the roofline. The defaults are the pure roofline.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostParams {
    /// Fraction of peak FLOP/s achieved, in (0, 1].
    pub compute_efficiency: f64,
    /// Fraction of peak HBM bandwidth achieved, in (0, 1].
    pub bandwidth_efficiency: f64,
    /// Fixed time added to every iteration (scheduling, launch), seconds.
    pub iteration_overhead_s: f64,
}

impl Default for CostParams {
    fn default() -> Self {
        CostParams {
            compute_efficiency: 1.0,
            bandwidth_efficiency: 1.0,
            iteration_overhead_s: 0.0,
        }
    }
}

impl CostParams {
    /// Checks ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        for (f, v) in [
            ("compute_efficiency", self.compute_efficiency),
            ("bandwidth_efficiency", self.bandwidth_efficiency),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(Error::invalid(
                    format!("cost.{f}"),
                    format!("must be in (0, 1], got {v}"),
                ));
            }
        }
        if !(self.iteration_overhead_s >= 0.0 && self.iteration_overhead_s.is_finite()) {
            return Err(Error::invalid(
                "cost.iteration_overhead_s",
                "must be finite and >= 0",
            ));
        }
        Ok(())
    }
}

/// The work of one iteration, summed over the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchWork {
    /// New tokens computed (prefill chunk tokens plus one per decoding sequence).
    pub new_tokens: u64,
    /// Tokens sampled (one per sequence that completes its prefill or decodes):
    /// each pays the LM head.
    pub sampled_tokens: u64,
    /// Σ over new tokens of the context each attends to (causal).
    pub attn_pairs: f64,
    /// KV tokens read by attention (each sequence reads its whole context).
    pub kv_read_tokens: u64,
    /// Extra HBM traffic in bytes (copy-on-write copies, counted read + write).
    pub extra_hbm_bytes: u64,
}

/// The roofline for one model on one device.
#[derive(Clone, Debug)]
pub struct CostModel {
    flops_per_token: f64,
    lm_head_flops: f64,
    attn_flops_per_pair: f64,
    weight_bytes: f64,
    kv_bytes_per_token: f64,
    flops_per_s: f64,
    bytes_per_s: f64,
    overhead_s: f64,
}

impl CostModel {
    /// The roofline of `model` on `hw`, with `kv_bytes_per_token` possibly
    /// overridden (a compressed KV cache).
    pub fn new(
        model: &ModelSpec,
        hw: &Hardware,
        kv_bytes_per_token: u64,
        p: &CostParams,
    ) -> CostModel {
        let q_dim = model.num_attention_heads as f64 * model.head_dim as f64;
        CostModel {
            flops_per_token: 2.0 * model.non_embedding_params() as f64,
            lm_head_flops: 2.0 * model.lm_head_params() as f64,
            // QK^T and PV: 2 matmuls * 2 FLOPs per multiply-add, per layer.
            attn_flops_per_pair: 4.0 * model.num_layers as f64 * q_dim,
            weight_bytes: model.weight_bytes() as f64,
            kv_bytes_per_token: kv_bytes_per_token as f64,
            flops_per_s: hw.peak_flops * p.compute_efficiency,
            bytes_per_s: hw.hbm_bandwidth_bytes_per_s * p.bandwidth_efficiency,
            overhead_s: p.iteration_overhead_s,
        }
    }

    /// FLOPs of a batch.
    #[inline]
    pub fn flops(&self, w: &BatchWork) -> f64 {
        self.flops_per_token * w.new_tokens as f64
            + self.lm_head_flops * w.sampled_tokens as f64
            + self.attn_flops_per_pair * w.attn_pairs
    }

    /// HBM bytes of a batch: all weights once, KV read and written, extras.
    #[inline]
    pub fn bytes(&self, w: &BatchWork) -> f64 {
        self.weight_bytes
            + self.kv_bytes_per_token * (w.kv_read_tokens + w.new_tokens) as f64
            + w.extra_hbm_bytes as f64
    }

    /// Iteration time in seconds (0 for an empty batch).
    #[inline]
    pub fn iteration_time(&self, w: &BatchWork) -> f64 {
        if w.new_tokens == 0 {
            return 0.0;
        }
        (self.flops(w) / self.flops_per_s).max(self.bytes(w) / self.bytes_per_s) + self.overhead_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_is_memory_bound_and_prefill_compute_bound() {
        let m = ModelSpec::preset("llama3_8b").unwrap();
        let hw = Hardware::h100_sxm();
        let c = CostModel::new(&m, &hw, m.kv_bytes_per_token(), &CostParams::default());
        // One decode token with 1000 context tokens.
        let d = BatchWork {
            new_tokens: 1,
            sampled_tokens: 1,
            attn_pairs: 1001.0,
            kv_read_tokens: 1000,
            extra_hbm_bytes: 0,
        };
        let t = c.iteration_time(&d);
        let mem = (m.weight_bytes() as f64 + 1001.0 * 131072.0) / 3.35e12;
        assert!((t - mem).abs() < 1e-12, "{t} vs {mem}");
        assert!(c.flops(&d) / 989e12 < mem);
        // A 4096-token prefill: compute-bound.
        let p = BatchWork {
            new_tokens: 4096,
            sampled_tokens: 1,
            attn_pairs: 4096.0 * 4097.0 / 2.0,
            kv_read_tokens: 0,
            extra_hbm_bytes: 0,
        };
        let t = c.iteration_time(&p);
        assert!((t - c.flops(&p) / 989e12).abs() < 1e-15);
        assert!(t > c.bytes(&p) / 3.35e12);
        // ~2 * 7.5e9 * 4096 FLOPs ≈ 62 ms at 989 TFLOP/s.
        assert!(t > 0.05 && t < 0.08, "{t}");
    }
}
