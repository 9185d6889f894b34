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
    /// The folder of the `model` presets
    /// (`python/memarena/families/serving/conf/model/<name>.yaml`), the one
    /// source of model specs, in this source checkout.
    pub const PRESET_DIR: &'static str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../python/memarena/families/serving/conf/model"
    );

    /// The `model` preset `name`, read from [`ModelSpec::PRESET_DIR`]: for
    /// Rust tests, examples and benchmarks run from a source checkout.
    /// (Python reads the same files and sends the spec as a dict.)
    pub fn preset(name: &str) -> Result<ModelSpec> {
        let path = std::path::Path::new(Self::PRESET_DIR).join(format!("{name}.yaml"));
        if !path.is_file() {
            let mut names: Vec<String> = std::fs::read_dir(Self::PRESET_DIR)
                .map_err(|source| Error::Io {
                    path: Self::PRESET_DIR.into(),
                    source,
                })?
                .filter_map(|e| {
                    let p = e.ok()?.path();
                    (p.extension()? == "yaml").then(|| p.file_stem()?.to_str().map(String::from))?
                })
                .collect();
            names.sort();
            return Err(Error::UnknownName {
                kind: "model",
                name: name.into(),
                available: names.join(", "),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let spec = preset::parse(&text).map_err(|(location, reason)| Error::Malformed {
            path: path.clone(),
            location,
            reason,
        })?;
        spec.validate()?;
        Ok(spec)
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
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads) {
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
        let l3 = ModelSpec::preset("llama3_8b").unwrap();
        assert_eq!(l3.kv_bytes_per_token(), 2 * 32 * 8 * 128 * 2); // 128 KiB
        let l2 = ModelSpec::preset("llama2_7b").unwrap();
        assert_eq!(l2.kv_bytes_per_token(), 2 * 32 * 32 * 128 * 2); // 512 KiB
        let opt = ModelSpec::preset("opt_13b").unwrap();
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
            let m = ModelSpec::preset(name).unwrap();
            m.validate().unwrap();
            let got = m.num_params();
            let rel = (got as f64 - published as f64).abs() / published as f64;
            assert!(rel < 0.005, "{name}: {got} vs {published}");
        }
    }

    #[test]
    fn unknown_model_lists_the_presets() {
        let e = ModelSpec::preset("gpt5").unwrap_err().to_string();
        assert!(e.contains("llama3_8b") && e.contains("opt_13b"), "{e}");
    }

    #[test]
    fn presets_are_flat_key_value_files() {
        let text = "# c\n_target_: x.ModelSpec\nname: m  # n\nnum_layers: 2\nhidden_size: 64\n\
            num_attention_heads: 4\nnum_kv_heads: 2\nhead_dim: 16\nintermediate_size: 128\n\
            vocab_size: 100\nmax_context: 32\nffn: plain\ntied_embeddings: true\n\
            learned_positions: 0\ndtype_bytes: 2\nsource: \"a # b\"\n";
        let m = preset::parse(text).unwrap();
        assert_eq!(
            (m.name.as_str(), m.ffn, m.tied_embeddings),
            ("m", FfnKind::Plain, true)
        );
        let (at, why) = preset::parse("name m").unwrap_err();
        assert_eq!(
            (at.as_str(), why.as_str()),
            ("line 1", "expected `key: value`")
        );
        let (_, why) = preset::parse(&text.replace("ffn: plain", "ffn: moe")).unwrap_err();
        assert!(why.contains("unknown variant `moe`"), "{why}");
        let (_, why) =
            preset::parse(&text.replace("dtype_bytes: 2", "dtype_bites: 2")).unwrap_err();
        assert!(why.contains("dtype_bites"), "{why}");
    }
}

/// The reader of the `model` presets: flat `key: value` lines (a YAML
/// subset: comments, bare or double-quoted scalars), enough for these files
/// without a YAML dependency.
mod preset {
    use serde::Deserialize;
    use serde::de::value::{Error as ValueError, MapDeserializer, StrDeserializer};
    use serde::de::{self, IntoDeserializer, Visitor};

    use super::ModelSpec;

    /// Keys the presets hold for the Python side only.
    const PYTHON_ONLY: &[&str] = &["_target_", "source"];

    /// A scalar: a bool, a non-negative integer or a string.
    enum Scalar {
        Bool(bool),
        Int(u64),
        Str(String),
    }

    impl<'de> IntoDeserializer<'de, ValueError> for Scalar {
        type Deserializer = Self;
        fn into_deserializer(self) -> Self {
            self
        }
    }

    impl<'de> de::Deserializer<'de> for Scalar {
        type Error = ValueError;

        fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
            match self {
                Scalar::Bool(b) => v.visit_bool(b),
                Scalar::Int(i) => v.visit_u64(i),
                Scalar::Str(s) => v.visit_string(s),
            }
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            name: &'static str,
            variants: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, ValueError> {
            match self {
                Scalar::Str(s) => {
                    StrDeserializer::<ValueError>::new(&s).deserialize_enum(name, variants, v)
                }
                other => other.deserialize_any(v),
            }
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map struct identifier ignored_any
        }
    }

    fn scalar(raw: &str) -> Result<Scalar, String> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix('"') {
            let (s, tail) = rest
                .split_once('"')
                .ok_or_else(|| "unterminated string".to_string())?;
            let tail = tail.trim();
            if !(tail.is_empty() || tail.starts_with('#')) {
                return Err(format!("unexpected {tail:?} after the string"));
            }
            return Ok(Scalar::Str(s.to_string()));
        }
        let v = raw.split_once('#').map_or(raw, |(v, _)| v).trim();
        Ok(match v {
            "true" => Scalar::Bool(true),
            "false" => Scalar::Bool(false),
            _ => v
                .parse()
                .map_or_else(|_| Scalar::Str(v.to_string()), Scalar::Int),
        })
    }

    /// A spec from a preset's text; an error is `(location, reason)`.
    pub(super) fn parse(text: &str) -> Result<ModelSpec, (String, String)> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let at = || format!("line {}", i + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, raw) = line
                .split_once(':')
                .ok_or_else(|| (at(), "expected `key: value`".to_string()))?;
            let key = key.trim();
            if PYTHON_ONLY.contains(&key) {
                continue;
            }
            entries.push((key.to_string(), scalar(raw).map_err(|e| (at(), e))?));
        }
        ModelSpec::deserialize(MapDeserializer::<_, ValueError>::new(entries.into_iter()))
            .map_err(|e| ("spec".to_string(), e.to_string()))
    }
}
