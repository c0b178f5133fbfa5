//! Hyperparameters of a BitNet model, read from `<arch>.*` metadata and checked for consistency
//! at load, so that a bad file fails here with a message and never later in `forward`.

use crate::error::{Error, Result};
use crate::gguf::Gguf;

/// The architectures we run, by their `general.architecture` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Upstream llama.cpp's `bitnet` (1bitLLM models, upstream 2B-4T conversions):
    /// FFN = silu(gate) * up, optional per-projection `.scale` tensors.
    Bitnet,
    /// Microsoft's `bitnet-b1.58` (also named `bitnet-25`): FFN = relu(gate)^2 * up, I2_S weights.
    BitnetB158,
    /// Qwen3 (PrismML's Bonsai files, Q1_0/Q2_0 weights): per-head RMSNorm of q and k before
    /// RoPE, no sub-norms, FFN = silu(gate) * up, head_dim from `attention.key_length`.
    Qwen3,
}

impl Arch {
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "bitnet" => Some(Arch::Bitnet),
            "bitnet-b1.58" | "bitnet-25" => Some(Arch::BitnetB158),
            "qwen3" => Some(Arch::Qwen3),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct HParams {
    pub arch: Arch,
    /// The architecture name as written in the file (prefix of its keys).
    pub arch_name: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Dimensions of one query/key/value head. `n_embd / n_head` except in qwen3, where
    /// `attention.key_length` sets it and `n_head * head_dim` (`n_q`) may differ from n_embd.
    pub head_dim: usize,
    /// Dimensions rotated by RoPE (NEOX pairs (i, i + n_rot/2)).
    pub n_rot: usize,
    pub n_ctx_train: usize,
    pub n_vocab: usize,
    pub rope_theta: f32,
    pub rms_eps: f32,
}

impl HParams {
    /// Width of the queries and of the attention output: n_head * head_dim (n_embd except in
    /// qwen3 shapes such as Qwen3-1.7B: 16 x 128 = 2048 = n_embd, Qwen3-4B: 32 x 128 != 2560).
    pub fn n_q(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of the keys and of the values: n_head_kv * head_dim.
    pub fn n_kv(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    pub fn from_gguf(gguf: &Gguf<'_>) -> Result<HParams> {
        let arch_name = gguf
            .get_str("general.architecture")?
            .ok_or_else(|| Error::format("missing metadata key general.architecture"))?;
        let arch = Arch::from_name(arch_name).ok_or_else(|| {
            Error::unsupported(format!(
                "unsupported architecture {arch_name:?} (supported: bitnet, bitnet-b1.58, bitnet-25, qwen3)"
            ))
        })?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let optional =
            |k: &str| -> Result<Option<usize>> { Ok(gguf.get_u32(&key(k))?.map(|v| v as usize)) };
        let required = |k: &str| -> Result<usize> {
            optional(k)?.ok_or_else(|| Error::format(format!("missing metadata key {}", key(k))))
        };

        let n_layer = required("block_count")?;
        let n_embd = required("embedding_length")?;
        let n_ff = required("feed_forward_length")?;
        let n_head = required("attention.head_count")?;
        let n_head_kv = optional("attention.head_count_kv")?.unwrap_or(n_head);
        let n_ctx_train = required("context_length")?;
        let rms_eps = gguf
            .get_f32(&key("attention.layer_norm_rms_epsilon"))?
            .ok_or_else(|| {
                Error::format(format!(
                    "missing metadata key {}",
                    key("attention.layer_norm_rms_epsilon")
                ))
            })?;
        let rope_theta = gguf.get_f32(&key("rope.freq_base"))?.unwrap_or(10000.0);

        let bad = |msg: String| {
            Err(Error::format(format!(
                "inconsistent hyperparameters: {msg}"
            )))
        };
        for (name, v) in [
            ("block_count", n_layer),
            ("embedding_length", n_embd),
            ("feed_forward_length", n_ff),
            ("attention.head_count", n_head),
            ("attention.head_count_kv", n_head_kv),
            ("context_length", n_ctx_train),
        ] {
            if v == 0 {
                return bad(format!("{} is 0", key(name)));
            }
        }
        if n_head % n_head_kv != 0 {
            return bad(format!(
                "head_count {n_head} is not a multiple of head_count_kv {n_head_kv}"
            ));
        }
        let key_length = optional("attention.key_length")?;
        let value_length = optional("attention.value_length")?;
        let head_dim = match (arch, key_length) {
            // Qwen3's heads have their own width (128 in every Qwen3), q and attn_output are
            // [n_embd] <-> [n_head * head_dim], not square in general.
            (Arch::Qwen3, Some(len)) => {
                if len == 0 || len % 2 != 0 {
                    return bad(format!(
                        "{} = {len} must be even and positive",
                        key("attention.key_length")
                    ));
                }
                if value_length.is_some_and(|v| v != len) {
                    return Err(Error::unsupported(format!(
                        "{} = {} differs from {} = {len}",
                        key("attention.value_length"),
                        value_length.unwrap_or(0),
                        key("attention.key_length")
                    )));
                }
                len
            }
            _ => {
                if n_embd % n_head != 0 {
                    return bad(format!(
                        "embedding_length {n_embd} is not a multiple of head_count {n_head}"
                    ));
                }
                let head_dim = n_embd / n_head;
                for (k, v) in [
                    ("attention.key_length", key_length),
                    ("attention.value_length", value_length),
                ] {
                    if let Some(len) = v.filter(|&len| len != head_dim) {
                        return Err(Error::unsupported(format!(
                            "{} = {len} differs from embedding_length / head_count = {head_dim}",
                            key(k)
                        )));
                    }
                }
                head_dim
            }
        };
        let n_rot = optional("rope.dimension_count")?.unwrap_or(head_dim);
        if n_rot == 0 || n_rot > head_dim || n_rot % 2 != 0 {
            return bad(format!(
                "rope.dimension_count {n_rot} must be even and in 2..={head_dim}"
            ));
        }
        if arch == Arch::Qwen3 && n_rot != head_dim {
            // The reference's qwen3 graph rotates whole heads (it asserts n_rot == head_dim).
            return Err(Error::unsupported(format!(
                "qwen3 with rope.dimension_count {n_rot} != head_dim {head_dim}"
            )));
        }
        if !(rms_eps.is_finite() && rms_eps > 0.0) {
            return bad(format!("layer_norm_rms_epsilon {rms_eps} must be positive"));
        }
        if !(rope_theta.is_finite() && rope_theta > 0.0) {
            return bad(format!("rope.freq_base {rope_theta} must be positive"));
        }

        let n_vocab = match optional("vocab_size")? {
            Some(n) => n,
            None => match gguf.get_array("tokenizer.ggml.tokens")? {
                Some(tokens) => tokens.len as usize,
                None => gguf
                    .tensor("token_embd.weight")
                    .and_then(|t| t.dims.get(1).copied())
                    .ok_or_else(|| {
                        Error::format(format!(
                            "cannot tell the vocabulary size: no {}, no tokenizer.ggml.tokens, \
                             no token_embd.weight",
                            key("vocab_size")
                        ))
                    })? as usize,
            },
        };
        if n_vocab == 0 {
            return bad("vocabulary size is 0".into());
        }

        Ok(HParams {
            arch,
            arch_name: arch_name.to_string(),
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            n_ctx_train,
            n_vocab,
            rope_theta,
            rms_eps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::writer::{GgufWriter, OwnedValue as V};

    fn base(arch: &str) -> GgufWriter {
        let mut w = GgufWriter::default();
        w.kv("general.architecture", V::str(arch));
        for (k, v) in [
            ("block_count", 2),
            ("embedding_length", 256),
            ("feed_forward_length", 512),
            ("attention.head_count", 4),
            ("attention.head_count_kv", 2),
            ("context_length", 512),
            ("vocab_size", 1000),
        ] {
            w.kv(&format!("{arch}.{k}"), V::U32(v));
        }
        w.kv(
            &format!("{arch}.attention.layer_norm_rms_epsilon"),
            V::F32(1e-5),
        );
        w
    }

    fn parse(w: &GgufWriter) -> Result<HParams> {
        let bytes = w.to_bytes();
        let g = Gguf::parse(&bytes)?;
        HParams::from_gguf(&g)
    }

    #[test]
    fn reads_a_complete_set() {
        let h = parse(&base("bitnet-b1.58")).unwrap();
        assert_eq!(h.arch, Arch::BitnetB158);
        assert_eq!(
            (h.n_layer, h.n_embd, h.n_ff, h.n_head, h.n_head_kv),
            (2, 256, 512, 4, 2)
        );
        assert_eq!((h.head_dim, h.n_rot, h.n_vocab), (64, 64, 1000));
        assert_eq!(h.rope_theta, 10000.0);
        assert_eq!(parse(&base("bitnet-25")).unwrap().arch, Arch::BitnetB158);
        assert_eq!(parse(&base("bitnet")).unwrap().arch, Arch::Bitnet);
    }

    #[test]
    fn missing_or_inconsistent_keys_are_errors() {
        let mut w = base("bitnet");
        w.metadata.retain(|(k, _)| k != "bitnet.block_count");
        assert_eq!(
            parse(&w).unwrap_err().message,
            "missing metadata key bitnet.block_count"
        );

        let mut w = base("bitnet");
        w.kv("bitnet.attention.head_count_kv", V::U32(3));
        w.metadata
            .retain(|(k, v)| k != "bitnet.attention.head_count_kv" || *v == V::U32(3));
        assert!(parse(&w)
            .unwrap_err()
            .message
            .contains("not a multiple of head_count_kv 3"));

        let mut w = base("bitnet");
        w.metadata.retain(|(k, _)| k != "bitnet.embedding_length");
        w.kv("bitnet.embedding_length", V::I32(-5));
        assert!(parse(&w)
            .unwrap_err()
            .message
            .contains("non-negative integer"));

        let mut w = base("bitnet");
        w.metadata.retain(|(k, _)| k != "bitnet.context_length");
        w.kv("bitnet.context_length", V::str("big"));
        assert!(parse(&w).unwrap_err().message.contains("has type string"));

        assert!(parse(&base("llama"))
            .unwrap_err()
            .message
            .contains("unsupported architecture"));
    }

    #[test]
    fn qwen3_head_dim_comes_from_key_length() {
        let mut w = base("qwen3");
        w.kv("qwen3.attention.key_length", V::U32(128));
        w.kv("qwen3.attention.value_length", V::U32(128));
        let h = parse(&w).unwrap();
        assert_eq!(h.arch, Arch::Qwen3);
        // 4 heads of 128 over n_embd 256: q is 512 wide.
        assert_eq!(
            (h.head_dim, h.n_rot, h.n_q(), h.n_kv()),
            (128, 128, 512, 256)
        );
        // Without key_length: n_embd / n_head, as for the BitNet archs.
        assert_eq!(parse(&base("qwen3")).unwrap().head_dim, 64);

        let mut w = base("qwen3");
        w.kv("qwen3.attention.key_length", V::U32(128));
        w.kv("qwen3.attention.value_length", V::U32(64));
        assert!(parse(&w)
            .unwrap_err()
            .message
            .contains("value_length = 64 differs from qwen3.attention.key_length = 128"));

        let mut w = base("qwen3");
        w.kv("qwen3.attention.key_length", V::U32(128));
        w.kv("qwen3.rope.dimension_count", V::U32(64));
        assert!(parse(&w)
            .unwrap_err()
            .message
            .contains("rope.dimension_count 64 != head_dim 128"));

        // The BitNet archs keep refusing a key_length that is not n_embd / n_head.
        let mut w = base("bitnet");
        w.kv("bitnet.attention.key_length", V::U32(128));
        assert!(parse(&w).unwrap_err().message.contains("differs from"));
    }
}
