//! Transformer model specs from their published configs, and the numbers
//! the serving model derives from them (weight bytes, KV bytes per token,
//! FLOPs per token).
//!
//! Sources (Hugging Face `config.json` of each checkpoint):
//! - `meta-llama/Llama-2-7b-hf`, `meta-llama/Llama-2-13b-hf`,
//!   `meta-llama/Llama-2-70b-hf`
//! - `meta-llama/Meta-Llama-3-8B`, `meta-llama/Meta-Llama-3-70B`
//! - `facebook/opt-13b`
//! - `mistralai/Mistral-7B-v0.1` (its 4096-token sliding window is not
//!   modelled: the KV cache keeps the whole context, as vLLM v0 did)

use memarena_core::error::{Error, Result};

/// Feed-forward block shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FfnKind {
    /// Gated (SwiGLU: gate, up, down): `3 * hidden * intermediate` weights.
    Gated,
    /// Plain (fc1, fc2 with biases, OPT): `2 * hidden * intermediate`.
    Plain,
}

/// A decoder-only transformer's architecture.
///
/// Invariants (checked by [`ModelSpec::validate`]): all sizes positive;
/// `num_attention_heads` is a multiple of `num_kv_heads` (GQA groups).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Registry name, snake_case (`llama3_8b`).
    pub name: String,
    /// Decoder layers.
    pub num_layers: u32,
    /// Hidden size.
    pub hidden_size: u32,
    /// Query heads.
    pub num_attention_heads: u32,
    /// Key/value heads (GQA: fewer than query heads).
    pub num_kv_heads: u32,
    /// Dimension of one head.
    pub head_dim: u32,
    /// Feed-forward inner size.
    pub intermediate_size: u32,
    /// Feed-forward shape.
    pub ffn: FfnKind,
    /// Vocabulary size.
    pub vocab_size: u32,
    /// Whether the LM head shares the embedding matrix.
    #[serde(deserialize_with = "memarena_core::config::strict_bool")]
    pub tied_embeddings: bool,
    /// Learned position embeddings (OPT), 0 for rotary models.
    pub learned_positions: u32,
    /// Maximum context length (`max_position_embeddings`).
    pub max_context: u32,
    /// Bytes per weight and per KV element (2 for fp16/bf16).
    pub dtype_bytes: u32,
}

impl ModelSpec {
    /// The names of the specs [`ModelSpec::builtin`] builds.
    pub const BUILTIN: &'static [&'static str] = &[
        "llama2_7b",
        "llama2_13b",
        "llama2_70b",
        "llama3_8b",
        "llama3_70b",
        "opt_13b",
        "mistral_7b",
    ];

    /// A spec by registry name, for Rust tests, examples and benchmarks.
    ///
    /// The user-facing source of model specs is the Python side's `model`
    /// presets (`python/memarena/conf/model/<name>.yaml`): Python sends the
    /// spec as a dict and never reads these. This copy must equal them,
    /// which `tests/unit/serving/test_models.py` checks for every name.
    pub fn builtin(name: &str) -> Result<ModelSpec> {
        #[allow(clippy::too_many_arguments)]
        fn llama(
            name: &str,
            l: u32,
            h: u32,
            heads: u32,
            kv: u32,
            inter: u32,
            vocab: u32,
            ctx: u32,
        ) -> ModelSpec {
            ModelSpec {
                name: name.into(),
                num_layers: l,
                hidden_size: h,
                num_attention_heads: heads,
                num_kv_heads: kv,
                head_dim: h / heads,
                intermediate_size: inter,
                ffn: FfnKind::Gated,
                vocab_size: vocab,
                tied_embeddings: false,
                learned_positions: 0,
                max_context: ctx,
                dtype_bytes: 2,
            }
        }
        Ok(match name {
            "llama2_7b" => llama(name, 32, 4096, 32, 32, 11008, 32000, 4096),
            "llama2_13b" => llama(name, 40, 5120, 40, 40, 13824, 32000, 4096),
            "llama2_70b" => llama(name, 80, 8192, 64, 8, 28672, 32000, 4096),
            "llama3_8b" => llama(name, 32, 4096, 32, 8, 14336, 128256, 8192),
            "llama3_70b" => llama(name, 80, 8192, 64, 8, 28672, 128256, 8192),
            "mistral_7b" => llama(name, 32, 4096, 32, 8, 14336, 32000, 32768),
            "opt_13b" => ModelSpec {
                name: name.into(),
                num_layers: 40,
                hidden_size: 5120,
                num_attention_heads: 40,
                num_kv_heads: 40,
                head_dim: 128,
                intermediate_size: 20480,
                ffn: FfnKind::Plain,
                vocab_size: 50272,
                tied_embeddings: true,
                // OPT's learned positions carry an offset of 2.
                learned_positions: 2050,
                max_context: 2048,
                dtype_bytes: 2,
            },
            _ => {
                return Err(Error::UnknownName {
                    kind: "model",
                    name: name.into(),
                    available: Self::BUILTIN.join(", "),
                });
            }
        })
    }

    /// Checks the invariants; errors name the field.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("num_layers", self.num_layers),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("intermediate_size", self.intermediate_size),
            ("vocab_size", self.vocab_size),
            ("max_context", self.max_context),
            ("dtype_bytes", self.dtype_bytes),
        ] {
            if v == 0 {
                return Err(Error::invalid(format!("model.{field}"), "must be >= 1"));
            }
        }
        if self.num_attention_heads % self.num_kv_heads != 0 {
            return Err(Error::invalid(
                "model.num_kv_heads",
                format!(
                    "{} query heads are not a multiple of {} KV heads",
                    self.num_attention_heads, self.num_kv_heads
                ),
            ));
        }
        Ok(())
    }

    /// KV-cache bytes of one token over all layers (K and V):
    /// `2 * layers * kv_heads * head_dim * dtype_bytes` (GQA respected).
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * self.num_layers as u64 * self.kv_bytes_per_token_per_layer()
    }

    /// Bytes of one token's K (or V) in one layer: the unit vAttention maps
    /// pages for (`kv_heads * head_dim * dtype_bytes`).
    pub fn kv_bytes_per_token_per_layer(&self) -> u64 {
        self.num_kv_heads as u64 * self.head_dim as u64 * self.dtype_bytes as u64
    }

    /// Weights of one decoder layer (attention, FFN, norms and biases).
    fn layer_params(&self) -> u64 {
        let h = self.hidden_size as u64;
        let q = self.num_attention_heads as u64 * self.head_dim as u64;
        let kv = self.num_kv_heads as u64 * self.head_dim as u64;
        let i = self.intermediate_size as u64;
        let attn = h * q + 2 * h * kv + q * h;
        match self.ffn {
            FfnKind::Gated => attn + 3 * h * i + 2 * h,
            // OPT: biases on q, k, v, out, fc1, fc2 and two layer norms (weight + bias).
            FfnKind::Plain => attn + (q + 2 * kv + h) + 2 * h * i + i + h + 4 * h,
        }
    }

    /// Weights applied to every token (decoder layers and the final norm),
    /// excluding the embedding lookup and the LM head.
    pub fn non_embedding_params(&self) -> u64 {
        let final_norm = match self.ffn {
            FfnKind::Gated => self.hidden_size as u64,
            FfnKind::Plain => 2 * self.hidden_size as u64,
        };
        self.num_layers as u64 * self.layer_params() + final_norm
    }

    /// Total parameters (what sits in HBM).
    pub fn num_params(&self) -> u64 {
        let h = self.hidden_size as u64;
        let emb = self.vocab_size as u64 * h;
        let head = if self.tied_embeddings { 0 } else { emb };
        self.non_embedding_params() + emb + head + self.learned_positions as u64 * h
    }

    /// Bytes of all weights.
    pub fn weight_bytes(&self) -> u64 {
        self.num_params() * self.dtype_bytes as u64
    }

    /// LM-head weights (`vocab * hidden`), applied once per sampled token.
    pub fn lm_head_params(&self) -> u64 {
        self.vocab_size as u64 * self.hidden_size as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_bytes_per_token_respect_gqa() {
        let l3 = ModelSpec::builtin("llama3_8b").unwrap();
        assert_eq!(l3.kv_bytes_per_token(), 2 * 32 * 8 * 128 * 2); // 128 KiB
        let l2 = ModelSpec::builtin("llama2_7b").unwrap();
        assert_eq!(l2.kv_bytes_per_token(), 2 * 32 * 32 * 128 * 2); // 512 KiB
        let opt = ModelSpec::builtin("opt_13b").unwrap();
        assert_eq!(opt.kv_bytes_per_token(), 800 * 1024); // vLLM paper: 800 KB per token
    }

    #[test]
    fn parameter_counts_match_published_totals() {
        // Published totals (model cards / safetensors metadata).
        for (name, published) in [
            ("llama2_7b", 6_738_415_616u64),
            ("llama2_13b", 13_015_864_320),
            ("llama2_70b", 68_976_648_192),
            ("llama3_8b", 8_030_261_248),
            ("llama3_70b", 70_553_706_496),
            ("mistral_7b", 7_241_732_096),
            ("opt_13b", 12_853_473_280),
        ] {
            let m = ModelSpec::builtin(name).unwrap();
            m.validate().unwrap();
            let got = m.num_params();
            let rel = (got as f64 - published as f64).abs() / published as f64;
            assert!(rel < 0.005, "{name}: {got} vs {published}");
        }
    }

    #[test]
    fn unknown_model_lists_the_builtins() {
        let e = ModelSpec::builtin("gpt5").unwrap_err().to_string();
        assert!(e.contains("llama3_8b"), "{e}");
    }
}
