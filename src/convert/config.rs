//! `config.json` of a Hugging Face checkpoint: which family it is, and its hyperparameters.
//!
//! Families (docs/convert.md has the sources):
//! - `BitNetForCausalLM` (model_type `bitnet`, Microsoft's 2B-4T and its `-bf16` masters):
//!   `hidden_act` `relu2`, sub-norms `attn_sub_norm` / `ffn_sub_norm`, weights either packed
//!   (uint8, 4 ternary values a byte, `weight_scale`; `quantization_config.quantization_mode`
//!   `offline`) or float masters made ternary here: arch `bitnet-b1.58`.
//! - `BitnetForCausalLM` (1bitLLM; model_type `llama`): `hidden_act` `silu`, sub-norms
//!   `inner_attn_ln` / `ffn_layernorm`, fp16 masters made ternary here: arch `bitnet`.
//! - A Llama with a `bitnet` quantization config (HF1BitLLM, Falcon3 1.58-bit, Falcon-E) and
//!   anything else: refused.

use std::path::Path;

use serde_json::Value as Json;

use crate::fixture::synthetic::Shape;
use crate::{Error, Result};

/// How transformers' BitNet quantization config stores the projections: `bitlinear` (the
/// default) loads packed uint8 weights; `autobitlinear` in `online` mode holds float masters
/// and makes them ternary as it runs. No quantization config: float masters, made ternary here.
fn bitnet_storage(quant: Option<&Json>) -> Result<Storage> {
    let Some(q) = quant else {
        return Ok(Storage::Masters);
    };
    let field = |k: &str, default: &'static str| {
        q.get(k)
            .and_then(Json::as_str)
            .unwrap_or(default)
            .to_string()
    };
    if q.get("use_rms_norm").and_then(Json::as_bool) == Some(true) {
        return Err(Error::unsupported(
            "bitnet quantization_config with use_rms_norm (an RMSNorm inside every projection) \
             is not supported",
        ));
    }
    match (
        field("linear_class", "bitlinear").as_str(),
        field("quantization_mode", "offline").as_str(),
    ) {
        ("bitlinear", _) => Ok(Storage::Packed),
        ("autobitlinear", "online") => Ok(Storage::Masters),
        (class, mode) => Err(Error::unsupported(format!(
            "bitnet quantization_config linear_class {class:?} with quantization_mode {mode:?} \
             is not supported (\"bitlinear\", or \"autobitlinear\" online)"
        ))),
    }
}

pub fn read_json(path: &Path) -> Result<Json> {
    let text = std::fs::read(path)
        .map_err(|e| Error::io(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_slice(&text)
        .map_err(|e| Error::format(format!("{}: not valid JSON: {e}", path.display())))
}

/// The checkpoint families we convert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Microsoft's BitNet b1.58 (`BitNetForCausalLM`): arch `bitnet-b1.58`.
    Microsoft,
    /// 1bitLLM's reproduction (`BitnetForCausalLM`): arch `bitnet`.
    OneBitLlm,
}

impl Family {
    pub fn arch(self) -> &'static str {
        match self {
            Family::Microsoft => "bitnet-b1.58",
            Family::OneBitLlm => "bitnet",
        }
    }
}

/// How the projections are stored in the checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// uint8 [out/4, in], 4 ternary values a byte, plus a one-value `weight_scale`.
    Packed,
    /// Float master weights, made ternary with the absmean rule at conversion.
    Masters,
}

/// What the converter needs from `config.json`.
#[derive(Clone, Debug)]
pub struct Config {
    pub family: Family,
    pub storage: Storage,
    /// The hyperparameters as the GGUF writes them (`arch` from the family; `name` unused:
    /// the file is named after the checkpoint folder).
    pub shape: Shape,
    pub rms_eps: f32,
    /// `tie_word_embeddings`; None when the config does not say (then a checkpoint without
    /// `lm_head.weight` is tied).
    pub tie_embeddings: Option<bool>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
}

impl Config {
    pub fn head_dim(&self) -> usize {
        self.shape.n_embd / self.shape.n_head
    }

    pub fn read(path: &Path) -> Result<Config> {
        let json = read_json(path)?;
        Self::from_json(&json).map_err(|e| e.context(path.display()))
    }

    pub fn from_json(j: &Json) -> Result<Config> {
        let str_of = |key: &str| j.get(key).and_then(Json::as_str);
        let arch = j
            .get("architectures")
            .and_then(Json::as_array)
            .and_then(|a| a.first())
            .and_then(Json::as_str)
            .ok_or_else(|| Error::format("no \"architectures\" list"))?;
        let model_type = str_of("model_type").unwrap_or("");
        let act = str_of("hidden_act").unwrap_or("");
        let quant = j.get("quantization_config");
        let quant_method = quant
            .and_then(|q| q.get("quant_method"))
            .and_then(Json::as_str);
        if let Some(m) = quant_method {
            if m != "bitnet" {
                return Err(Error::unsupported(format!(
                    "quantization method {m:?} is not supported (only \"bitnet\")"
                )));
            }
        } else if quant.is_some() {
            return Err(Error::unsupported(
                "quantization_config without a quant_method is not supported",
            ));
        }
        let (family, storage) = match arch {
            "BitNetForCausalLM" => {
                if act != "relu2" {
                    return Err(Error::unsupported(format!(
                        "BitNetForCausalLM with hidden_act {act:?}: only \"relu2\" \
                         (BitNet b1.58 2B-4T) is supported"
                    )));
                }
                let storage = bitnet_storage(quant)?;
                (Family::Microsoft, storage)
            }
            "BitnetForCausalLM" => {
                if act != "silu" {
                    return Err(Error::unsupported(format!(
                        "BitnetForCausalLM with hidden_act {act:?}: only \"silu\" \
                         (1bitLLM bitnet_b1_58) is supported"
                    )));
                }
                if quant.is_some() {
                    return Err(Error::unsupported(
                        "BitnetForCausalLM with a quantization_config: 1bitLLM checkpoints hold \
                         fp16 masters and have none",
                    ));
                }
                (Family::OneBitLlm, Storage::Masters)
            }
            "LlamaForCausalLM" | "FalconForCausalLM" if quant_method.is_some() => {
                return Err(Error::unsupported(format!(
                    "{arch} with BitNet-quantized projections (HF1BitLLM Llama3-8B-1.58, \
                     Falcon3 1.58-bit, Falcon-E) is not supported: the engine has no \
                     architecture for a Llama block with ternary projections, per-token int8 \
                     activations and no sub-norms"
                )))
            }
            other => {
                return Err(Error::unsupported(format!(
                    "unknown architecture {other:?} (model_type {model_type:?}): bitnet convert \
                     handles BitNetForCausalLM (microsoft/bitnet-b1.58-2B-4T, -bf16) and \
                     BitnetForCausalLM (1bitLLM bitnet_b1_58)"
                )))
            }
        };
        let usize_of = |key: &str| -> Result<Option<usize>> {
            match j.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|v| usize::try_from(v).ok())
                    .filter(|&v| v > 0 && v <= 1 << 24)
                    .map(Some)
                    .ok_or_else(|| Error::format(format!("{key} is {v}, not a size"))),
            }
        };
        let need =
            |key: &str| usize_of(key)?.ok_or_else(|| Error::format(format!("config has no {key}")));
        let float_of = |key: &str, default: f64| -> Result<f32> {
            match j.get(key) {
                None | Some(Json::Null) => Ok(default as f32),
                Some(v) => v
                    .as_f64()
                    .map(|v| v as f32)
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .ok_or_else(|| Error::format(format!("{key} is {v}, not a positive number"))),
            }
        };
        let token_of = |key: &str| -> Result<Option<u32>> {
            match j.get(key) {
                None | Some(Json::Null) => Ok(None),
                // generation configs may list several end tokens: the first is the EOS
                Some(Json::Array(a)) => Ok(a.first().and_then(Json::as_u64).map(|v| v as u32)),
                Some(v) => v
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .map(Some)
                    .ok_or_else(|| Error::format(format!("{key} is {v}, not a token id"))),
            }
        };
        if !matches!(j.get("rope_scaling"), None | Some(Json::Null)) {
            return Err(Error::unsupported(
                "rope_scaling is set: only plain RoPE is supported",
            ));
        }
        if j.get("attention_bias").and_then(Json::as_bool) == Some(true)
            || j.get("mlp_bias").and_then(Json::as_bool) == Some(true)
        {
            return Err(Error::unsupported(
                "attention_bias / mlp_bias: BitNet projections have no bias",
            ));
        }
        let n_head = need("num_attention_heads")?;
        let c = Config {
            family,
            storage,
            shape: Shape {
                arch: family.arch(),
                name: "",
                context_length: need("max_position_embeddings")?,
                n_embd: need("hidden_size")?,
                n_ff: need("intermediate_size")?,
                n_layer: need("num_hidden_layers")?,
                n_head,
                n_head_kv: usize_of("num_key_value_heads")?.unwrap_or(n_head),
                n_vocab: need("vocab_size")?,
                rope_theta: float_of("rope_theta", 10000.0)?,
            },
            rms_eps: float_of("rms_norm_eps", 1e-6)?,
            tie_embeddings: j.get("tie_word_embeddings").and_then(Json::as_bool),
            bos: token_of("bos_token_id")?,
            eos: token_of("eos_token_id")?,
            pad: token_of("pad_token_id")?,
        };
        let s = &c.shape;
        if !s.n_embd.is_multiple_of(s.n_head) || !s.n_head.is_multiple_of(s.n_head_kv) {
            return Err(Error::format(format!(
                "hidden_size {} / num_attention_heads {} / num_key_value_heads {} do not divide",
                s.n_embd, s.n_head, s.n_head_kv
            )));
        }
        if let Some(hd) = usize_of("head_dim")? {
            if hd != c.head_dim() {
                return Err(Error::unsupported(format!(
                    "head_dim {hd} is not hidden_size / num_attention_heads = {}",
                    c.head_dim()
                )));
            }
        }
        if !c.head_dim().is_multiple_of(2) {
            return Err(Error::format(format!("head_dim {} is odd", c.head_dim())));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(extra: &str) -> Json {
        let base = r#""architectures":["BitNetForCausalLM"],"model_type":"bitnet","hidden_act":"relu2",
            "hidden_size":256,"intermediate_size":512,"num_hidden_layers":2,"num_attention_heads":4,
            "num_key_value_heads":2,"vocab_size":300,"max_position_embeddings":128"#;
        serde_json::from_str(&format!("{{{base}{extra}}}")).unwrap()
    }

    #[test]
    fn families_and_storage() {
        let packed = ms(
            r#","quantization_config":{"quant_method":"bitnet","linear_class":"bitlinear","quantization_mode":"offline"}"#,
        );
        let c = Config::from_json(&packed).unwrap();
        assert_eq!((c.family, c.storage), (Family::Microsoft, Storage::Packed));
        assert_eq!(c.tie_embeddings, None);
        let c = Config::from_json(&ms("")).unwrap();
        assert_eq!(c.storage, Storage::Masters);
        let online = ms(
            r#","quantization_config":{"quant_method":"bitnet","linear_class":"autobitlinear","quantization_mode":"online"}"#,
        );
        assert_eq!(
            Config::from_json(&online).unwrap().storage,
            Storage::Masters
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        for (extra, want) in [
            (
                r#","quantization_config":{"quant_method":"gptq"}"#,
                "quantization method \"gptq\"",
            ),
            (
                r#","rope_scaling":{"type":"linear","factor":2.0}"#,
                "rope_scaling",
            ),
            (
                r#","quantization_config":{"quant_method":"bitnet","use_rms_norm":true}"#,
                "use_rms_norm",
            ),
            (
                r#","quantization_config":{"quant_method":"bitnet","linear_class":"autobitlinear"}"#,
                "\"offline\" is not supported",
            ),
            (r#","head_dim":32"#, "head_dim 32"),
            (r#","num_key_value_heads":3"#, "do not divide"),
        ] {
            let err = Config::from_json(&ms(extra)).unwrap_err();
            assert!(err.message.contains(want), "{}", err.message);
        }
        let llama: Json = serde_json::from_str(
            r#"{"architectures":["LlamaForCausalLM"],"quantization_config":{"quant_method":"bitnet"}}"#,
        )
        .unwrap();
        let err = Config::from_json(&llama).unwrap_err();
        assert!(err.message.contains("no sub-norms"), "{}", err.message);
        let other: Json = serde_json::from_str(r#"{"architectures":["GPT2LMHeadModel"]}"#).unwrap();
        let err = Config::from_json(&other).unwrap_err();
        assert!(
            err.message.contains("unknown architecture"),
            "{}",
            err.message
        );
    }
}
