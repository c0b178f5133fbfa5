//! BitNet GGUF files made in-process for the GPU tests (no Python, no network: the device
//! machine has neither the fixture venv nor the sdist): random ternary weights from a seed in
//! any of the engine's weight types, a small SentencePiece-style vocabulary, or no vocabulary
//! at all (`vocab_size` only, enough for `Model::load` and `bitnet bench`) for the 2B-4T shape.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bitnet::fixture::synthetic::{self, Projection, Shape, Vocab};
use bitnet::quant::float::{f32_to_bf16, f32_to_f16};
use bitnet::quant::GgmlType;
use bitnet::rng::SplitMix64;

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Architecture and hyperparameters.
    pub shape: Shape,
    pub wty: GgmlType,
    /// `blk.N.<proj>.scale` tensors (upstream `bitnet` files).
    pub scale_tensors: bool,
    /// One scale for all rows of a TQ matrix (else a scale per row).
    pub uniform: bool,
    /// Write a tokenizer (else only `vocab_size`).
    pub vocab: bool,
}

const NAME: &str = "bitnet-rs GPU test model";

impl Spec {
    /// A small model: 2 layers, 256 / 768 (three 256-blocks, an odd count), GQA 4 / 2 heads of
    /// 64, 1000 tokens (not a multiple of the kernels' row tiles).
    pub fn tiny(arch: &'static str, wty: GgmlType) -> Spec {
        Spec {
            shape: Shape {
                arch,
                name: NAME,
                context_length: 4096,
                n_embd: 256,
                n_ff: 768,
                n_layer: 2,
                n_head: 4,
                n_head_kv: 2,
                n_vocab: 1000,
                rope_theta: 10000.0,
            },
            wty,
            scale_tensors: arch == "bitnet",
            uniform: false,
            vocab: true,
        }
    }

    /// Microsoft's BitNet b1.58 2B-4T shape (30 layers, 2560 / 6912, 20 / 5 heads of 128,
    /// 128256 tokens, F16 tied embedding), without a tokenizer.
    pub fn b2b4t(arch: &'static str, wty: GgmlType) -> Spec {
        Spec {
            shape: Shape {
                arch,
                name: NAME,
                context_length: 4096,
                n_embd: 2560,
                n_ff: 6912,
                n_layer: 30,
                n_head: 20,
                n_head_kv: 5,
                n_vocab: 128256,
                rope_theta: 500000.0,
            },
            wty,
            scale_tensors: false,
            uniform: false,
            vocab: false,
        }
    }
}

/// The small models both GPU suites check: every weight type, both architectures, per-row and
/// uniform scales. Written into `dir` (each with seed 1000 + its index) as `NAME.gguf`; returns
/// (NAME, path, spec).
pub fn write_tiny_set(dir: &Path) -> Vec<(String, PathBuf, Spec)> {
    let cases = [
        ("bitnet", GgmlType::F32, false),
        ("bitnet", GgmlType::F16, false),
        ("bitnet", GgmlType::BF16, false),
        ("bitnet-b1.58", GgmlType::I2_S, true),
        ("bitnet", GgmlType::I2_S, true),
        ("bitnet", GgmlType::TQ2_0, false),
        ("bitnet", GgmlType::TQ1_0, true),
        ("bitnet-b1.58", GgmlType::TQ2_0, false),
        ("bitnet-b1.58", GgmlType::TQ2_0, true),
        ("bitnet-b1.58", GgmlType::F32, true),
    ];
    cases
        .into_iter()
        .enumerate()
        .map(|(i, (arch, ty, uniform))| {
            let mut s = Spec::tiny(arch, ty);
            s.uniform = uniform;
            let name = format!(
                "{arch}-{}{}",
                ty.name().to_lowercase(),
                if uniform { "-uniform" } else { "" }
            );
            let path = dir.join(format!("{name}.gguf"));
            write(&path, &s, 1000 + i as u64);
            (name, path, s)
        })
        .collect()
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

/// Writes the model to `path`.
pub fn write(path: &Path, spec: &Spec, seed: u64) {
    let s = spec;
    let n_vocab = s.shape.n_vocab;
    let vocab = s.vocab.then(|| {
        let mut pieces: Vec<(String, i32)> =
            vec![("<unk>".into(), 2), ("<s>".into(), 3), ("</s>".into(), 3)];
        pieces.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 6)));
        let mut i = 0;
        while pieces.len() < n_vocab {
            pieces.push((format!("\u{2581}w{i}"), 1));
            i += 1;
        }
        // Scores fall with the id.
        let pieces = pieces
            .into_iter()
            .enumerate()
            .map(|(i, (p, ty))| (p.into_bytes(), -(i as f32), ty))
            .collect();
        Vocab {
            pieces,
            add_bos_eos: None,
        }
    });
    let embedding = |rng: &mut SplitMix64| {
        (0..n_vocab * s.shape.n_embd)
            .flat_map(|_| f32_to_f16((rng.unit() - 0.5) * 0.2).to_le_bytes())
            .collect()
    };
    let weights = |rng: &mut SplitMix64, rows, cols| Projection {
        ty: s.wty,
        data: projection(rng, s, rows, cols),
        scale: s
            .scale_tensors
            .then(|| 0.5 + rng.below(1000) as f32 / 1000.0),
    };
    synthetic::write(
        path,
        &s.shape,
        vocab.as_ref(),
        &mut SplitMix64(seed),
        embedding,
        weights,
    )
    .unwrap();
}

pub use bitnet::fixture::server_batches::{self, run_batches, server_batches, Entry};

/// Each sequence of `got` (what a multi-sequence device context made of `batches`) against the
/// same sequence decoded alone in a fresh single-sequence device context: equal bit for bit.
pub fn assert_each_sequence_alone(
    gm: &std::sync::Arc<bitnet::model::gpu::GpuModel>,
    batches: &[Vec<Entry>],
    got: &[Vec<(usize, Vec<f32>)>],
    n_seq: usize,
    what: &str,
) {
    let alone = |params| bitnet::model::Context::with_gpu(std::sync::Arc::clone(gm), params);
    server_batches::assert_each_sequence_alone(&alone, batches, got, n_seq, what);
}

/// `batches` run on a CPU context and on a device context of `n_seq` sequences (each entry's
/// sequence as given): (cpu rows, device rows), as `run_batches` returns them.
#[allow(clippy::type_complexity)]
pub fn run_on_cpu_and_device(
    model: &std::sync::Arc<bitnet::model::Model>,
    gm: &std::sync::Arc<bitnet::model::gpu::GpuModel>,
    batches: &[Vec<Entry>],
    n_seq: usize,
) -> (Vec<Vec<(usize, Vec<f32>)>>, Vec<Vec<(usize, Vec<f32>)>>) {
    use bitnet::model::{Context, ContextParams};
    use std::sync::Arc;
    let params = ContextParams {
        n_seq_max: n_seq,
        ..ContextParams::new(512, 32)
    };
    let mut cpu = Context::new(Arc::clone(model), params).unwrap();
    let mut gpu = Context::with_gpu(Arc::clone(gm), params).unwrap();
    let all = |s: usize| Some(s);
    (
        run_batches(&mut cpu, batches, &all),
        run_batches(&mut gpu, batches, &all),
    )
}
