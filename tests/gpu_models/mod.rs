//! BitNet GGUF files made in-process for the GPU tests (no Python, no network: the device
//! machine has neither the fixture venv nor the sdist): random ternary weights from a seed in
//! any of the engine's weight types, a small SentencePiece-style vocabulary, or no vocabulary
//! at all (`vocab_size` only, enough for `Model::load` and `bitnet bench`) for the 2B-4T shape.

#![allow(dead_code)]

use std::path::Path;

use bitnet::gguf::writer::{GgufWriter, OwnedValue};
use bitnet::gguf::ValueType;
use bitnet::quant::float::{f32_to_bf16, f32_to_f16};
use bitnet::quant::GgmlType;
use bitnet::rng::SplitMix64;

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub arch: &'static str,
    pub wty: GgmlType,
    /// `blk.N.<proj>.scale` tensors (upstream `bitnet` files).
    pub scale_tensors: bool,
    /// One scale for all rows of a TQ matrix (else a scale per row).
    pub uniform: bool,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_vocab: usize,
    /// Write a tokenizer (else only `vocab_size`).
    pub vocab: bool,
    pub rope_theta: f32,
}

impl Spec {
    /// A small model: 2 layers, 256 / 768 (three 256-blocks, an odd count), GQA 4 / 2 heads of
    /// 64, 1000 tokens (not a multiple of the kernels' row tiles).
    pub fn tiny(arch: &'static str, wty: GgmlType) -> Spec {
        Spec {
            arch,
            wty,
            scale_tensors: arch == "bitnet",
            uniform: false,
            n_embd: 256,
            n_ff: 768,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            n_vocab: 1000,
            vocab: true,
            rope_theta: 10000.0,
        }
    }

    /// Microsoft's BitNet b1.58 2B-4T shape (30 layers, 2560 / 6912, 20 / 5 heads of 128,
    /// 128256 tokens, F16 tied embedding), without a tokenizer.
    pub fn b2b4t(arch: &'static str, wty: GgmlType) -> Spec {
        Spec {
            arch,
            wty,
            scale_tensors: false,
            uniform: false,
            n_embd: 2560,
            n_ff: 6912,
            n_layer: 30,
            n_head: 20,
            n_head_kv: 5,
            n_vocab: 128256,
            vocab: false,
            rope_theta: 500000.0,
        }
    }
}

/// The 81 bytes whose four 2-bit fields are all valid ternary codes (0..=2).
fn valid_bytes() -> Vec<u8> {
    (0..=255u8)
        .filter(|b| (0..4).all(|i| (b >> (2 * i)) & 3 != 3))
        .collect()
}

/// A projection [rows outputs, cols inputs] of random ternary weights in `spec.wty`.
fn projection(rng: &mut SplitMix64, spec: &Spec, rows: usize, cols: usize) -> Vec<u8> {
    let valid = valid_bytes();
    let scale = 0.02 + rng.below(100) as f32 / 2000.0;
    let row_scale = |r: usize| {
        if spec.uniform {
            scale
        } else {
            scale * (1.0 + (r % 7) as f32 / 16.0)
        }
    };
    let mut out = Vec::new();
    match spec.wty {
        GgmlType::I2_S => {
            out.extend((0..rows * cols / 4).map(|_| valid[rng.below(81) as usize]));
            let mut tail = [0u8; 32];
            tail[..4].copy_from_slice(&scale.to_le_bytes());
            out.extend_from_slice(&tail);
        }
        GgmlType::TQ2_0 | GgmlType::TQ1_0 => {
            let (code_bytes, tq2) = if spec.wty == GgmlType::TQ2_0 {
                (64, true)
            } else {
                (52, false)
            };
            for r in 0..rows {
                let d = f32_to_f16(row_scale(r)).to_le_bytes();
                for _ in 0..cols / 256 {
                    for _ in 0..code_bytes {
                        out.push(if tq2 {
                            valid[rng.below(81) as usize]
                        } else {
                            // Every byte is a valid TQ1_0 group of base-3 digits.
                            rng.below(243) as u8
                        });
                    }
                    out.extend_from_slice(&d);
                }
            }
        }
        ty => {
            for r in 0..rows {
                for _ in 0..cols {
                    let v = (rng.below(3) as f32 - 1.0) * row_scale(r);
                    match ty {
                        GgmlType::F16 => out.extend_from_slice(&f32_to_f16(v).to_le_bytes()),
                        GgmlType::BF16 => out.extend_from_slice(&f32_to_bf16(v).to_le_bytes()),
                        _ => out.extend_from_slice(&v.to_le_bytes()),
                    }
                }
            }
        }
    }
    out
}

fn norm(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| 0.8 + rng.below(400) as f32 / 1000.0)
        .collect()
}

/// Writes the model to `path`.
pub fn write(path: &Path, spec: &Spec, seed: u64) {
    let mut rng = SplitMix64(seed);
    let s = spec;
    let arch = s.arch;
    let mut g = GgufWriter::default();
    let u32v = |v: usize| OwnedValue::U32(v as u32);
    let key = |k: &str| format!("{arch}.{k}");
    g.kv("general.architecture", OwnedValue::str(arch))
        .kv("general.name", OwnedValue::str("bitnet-rs GPU test model"))
        .kv(&key("vocab_size"), u32v(s.n_vocab))
        .kv(&key("context_length"), u32v(4096))
        .kv(&key("embedding_length"), u32v(s.n_embd))
        .kv(&key("block_count"), u32v(s.n_layer))
        .kv(&key("feed_forward_length"), u32v(s.n_ff))
        .kv(&key("attention.head_count"), u32v(s.n_head))
        .kv(&key("attention.head_count_kv"), u32v(s.n_head_kv))
        .kv(
            &key("attention.layer_norm_rms_epsilon"),
            OwnedValue::F32(1e-5),
        )
        .kv(&key("rope.freq_base"), OwnedValue::F32(s.rope_theta));
    if s.vocab {
        let mut pieces: Vec<(String, i32)> =
            vec![("<unk>".into(), 2), ("<s>".into(), 3), ("</s>".into(), 3)];
        pieces.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 6)));
        let mut i = 0;
        while pieces.len() < s.n_vocab {
            pieces.push((format!("\u{2581}w{i}"), 1));
            i += 1;
        }
        g.kv("tokenizer.ggml.model", OwnedValue::str("llama"))
            .kv(
                "tokenizer.ggml.tokens",
                OwnedValue::Array(
                    ValueType::String,
                    pieces
                        .iter()
                        .map(|(p, _)| OwnedValue::String(p.clone().into_bytes()))
                        .collect(),
                ),
            )
            .kv(
                "tokenizer.ggml.scores",
                OwnedValue::Array(
                    ValueType::F32,
                    (0..pieces.len())
                        .map(|i| OwnedValue::F32(-(i as f32)))
                        .collect(),
                ),
            )
            .kv(
                "tokenizer.ggml.token_type",
                OwnedValue::Array(
                    ValueType::I32,
                    pieces.iter().map(|&(_, t)| OwnedValue::I32(t)).collect(),
                ),
            )
            .kv("tokenizer.ggml.bos_token_id", u32v(1))
            .kv("tokenizer.ggml.eos_token_id", u32v(2))
            .kv("tokenizer.ggml.unknown_token_id", u32v(0));
    }
    let embd: Vec<u8> = (0..s.n_vocab * s.n_embd)
        .flat_map(|_| f32_to_f16((rng.unit() - 0.5) * 0.2).to_le_bytes())
        .collect();
    g.tensor(
        "token_embd.weight",
        &[s.n_embd as u64, s.n_vocab as u64],
        GgmlType::F16,
        embd,
    )
    .unwrap();
    g.tensor_f32(
        "output_norm.weight",
        &[s.n_embd as u64],
        &norm(&mut rng, s.n_embd),
    )
    .unwrap();
    let hd = s.n_embd / s.n_head;
    let n_kv = hd * s.n_head_kv;
    for l in 0..s.n_layer {
        let p = |x: &str| format!("blk.{l}.{x}");
        let projs = [
            ("attn_q", s.n_embd, s.n_embd),
            ("attn_k", s.n_embd, n_kv),
            ("attn_v", s.n_embd, n_kv),
            ("attn_output", s.n_embd, s.n_embd),
            ("ffn_gate", s.n_embd, s.n_ff),
            ("ffn_up", s.n_embd, s.n_ff),
            ("ffn_down", s.n_ff, s.n_embd),
        ];
        for (name, cols, rows) in projs {
            let w = projection(&mut rng, s, rows, cols);
            let dims = [cols as u64, rows as u64];
            g.tensor(&p(&format!("{name}.weight")), &dims, s.wty, w)
                .unwrap();
            if s.scale_tensors {
                let sc = 0.5 + rng.below(1000) as f32 / 1000.0;
                g.tensor_f32(&p(&format!("{name}.scale")), &[1], &[sc])
                    .unwrap();
            }
        }
        for (name, n) in [
            ("attn_norm", s.n_embd),
            ("attn_sub_norm", s.n_embd),
            ("ffn_norm", s.n_embd),
            ("ffn_sub_norm", s.n_ff),
        ] {
            g.tensor_f32(
                &p(&format!("{name}.weight")),
                &[n as u64],
                &norm(&mut rng, n),
            )
            .unwrap();
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let tmp = path.with_extension("tmp");
    g.write(&tmp).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
