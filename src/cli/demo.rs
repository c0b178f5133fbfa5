//! The demo model: a small BitNet b1.58 GGUF made here, with no network and no Python, so that
//! `bitnet run` works out of the box. Its weights are synthetic (seeded random ternary codes),
//! so the text it writes is gibberish; it exists to show the whole path (GGUF with I2_S weights,
//! an SPM vocabulary, the C API, sampling, streaming) working, not to say anything.
//!
//! Shape: 2 layers, n_embd 256, n_ff 512, 4 heads (2 KV heads), a vocabulary of ~1000 pieces:
//! control tokens, 256 byte-fallback tokens, printable ASCII, and common English words with all
//! their prefixes (so SentencePiece-style merging reaches whole words).

use std::path::Path;

use bitnet::gguf::writer::{GgufWriter, OwnedValue};
use bitnet::gguf::ValueType;
use bitnet::quant::{i2_s, GgmlType};
use bitnet::rng::SplitMix64;
use bitnet::Result;

const N_EMBD: usize = 256;
const N_FF: usize = 512;
const N_LAYER: usize = 2;
const N_HEAD: usize = 4;
const N_HEAD_KV: usize = 2;
const SEED: u64 = 0xB17_4E7;

const WORDS: &str = "the of and to in is was that for it with as he on be at by this had not are \
but from or have an they which one you were her all she there would their we him been has when \
who will more no if out so said what up its about into than them can only other new some could \
time these two may then do first any my now such like our over man me even most made after also \
did many before must through back years where much your way well down should because each just \
those people how too little state good very make world still own see men work long get here \
between both life being under never day same another know while last might us great old year off \
come since against go came right used take three hello bitnet ternary model weights token text \
rust engine fast small demo random story once upon there lived cat dog tree house river light";

/// The vocabulary: (piece, score, llama token type).
fn vocab() -> Vec<(Vec<u8>, f32, i32)> {
    let (normal, unknown, control, byte) = (1, 2, 3, 6);
    let mut v: Vec<(Vec<u8>, f32, i32)> = vec![
        (b"<unk>".to_vec(), 0.0, unknown),
        (b"<s>".to_vec(), 0.0, control),
        (b"</s>".to_vec(), 0.0, control),
    ];
    for b in 0..=255u8 {
        v.push((format!("<0x{b:02X}>").into_bytes(), 0.0, byte));
    }
    let mut pieces: Vec<String> = vec!["\u{2581}".to_string()];
    pieces.extend(
        (b' '..=b'~')
            .filter(|&c| c != b' ')
            .map(|c| (c as char).to_string()),
    );
    for w in WORDS.split_whitespace() {
        let w = format!("\u{2581}{w}");
        let chars: Vec<char> = w.chars().collect();
        for end in 2..=chars.len() {
            pieces.push(chars[..end].iter().collect());
        }
    }
    let mut seen = std::collections::HashSet::new();
    for p in pieces {
        if seen.insert(p.clone()) {
            // Longer pieces score higher, so merging prefers whole words.
            let score = -100.0 + p.chars().count() as f32;
            v.push((p.into_bytes(), score, normal));
        }
    }
    v
}

/// Seeded ternary weights [rows, cols] packed as I2_S with one tensor scale.
fn ternary_i2_s(rng: &mut SplitMix64, rows: usize, cols: usize) -> Vec<u8> {
    let scale = 0.05 + rng.below(100) as f32 / 1000.0;
    let x: Vec<f32> = (0..rows * cols)
        .map(|_| (rng.below(3) as f32 - 1.0) * scale)
        .collect();
    let mut out = vec![0u8; x.len() / 4 + i2_s::TAIL_BYTES];
    i2_s::quantize(&x, &mut out);
    out
}

fn norm(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| 0.8 + rng.below(400) as f32 / 1000.0)
        .collect()
}

/// Writes the demo model to `path` (atomically: a temporary file renamed into place).
pub fn write(path: &Path) -> Result<()> {
    let vocab = vocab();
    let n_vocab = vocab.len();
    let mut rng = SplitMix64(SEED);
    let mut g = GgufWriter::default();
    let arch = "bitnet-b1.58";
    let u32v = |v: usize| OwnedValue::U32(v as u32);
    g.kv("general.architecture", OwnedValue::str(arch))
        .kv(
            "general.name",
            OwnedValue::str("bitnet-rs demo (synthetic weights)"),
        )
        .kv(&format!("{arch}.vocab_size"), u32v(n_vocab))
        .kv(&format!("{arch}.context_length"), u32v(2048))
        .kv(&format!("{arch}.embedding_length"), u32v(N_EMBD))
        .kv(&format!("{arch}.block_count"), u32v(N_LAYER))
        .kv(&format!("{arch}.feed_forward_length"), u32v(N_FF))
        .kv(&format!("{arch}.attention.head_count"), u32v(N_HEAD))
        .kv(&format!("{arch}.attention.head_count_kv"), u32v(N_HEAD_KV))
        .kv(
            &format!("{arch}.attention.layer_norm_rms_epsilon"),
            OwnedValue::F32(1e-5),
        )
        .kv(&format!("{arch}.rope.freq_base"), OwnedValue::F32(10000.0))
        .kv("tokenizer.ggml.model", OwnedValue::str("llama"))
        .kv(
            "tokenizer.ggml.tokens",
            OwnedValue::Array(
                ValueType::String,
                vocab
                    .iter()
                    .map(|(p, _, _)| OwnedValue::String(p.clone()))
                    .collect(),
            ),
        )
        .kv(
            "tokenizer.ggml.scores",
            OwnedValue::Array(
                ValueType::F32,
                vocab.iter().map(|&(_, s, _)| OwnedValue::F32(s)).collect(),
            ),
        )
        .kv(
            "tokenizer.ggml.token_type",
            OwnedValue::Array(
                ValueType::I32,
                vocab.iter().map(|&(_, _, t)| OwnedValue::I32(t)).collect(),
            ),
        )
        .kv("tokenizer.ggml.bos_token_id", u32v(1))
        .kv("tokenizer.ggml.eos_token_id", u32v(2))
        .kv("tokenizer.ggml.unknown_token_id", u32v(0))
        .kv("tokenizer.ggml.add_bos_token", OwnedValue::Bool(true))
        .kv("tokenizer.ggml.add_eos_token", OwnedValue::Bool(false));

    // Token embedding (also the head), F16 [n_vocab rows of n_embd].
    let embd: Vec<u8> = (0..n_vocab * N_EMBD)
        .flat_map(|_| {
            let v = (rng.below(2001) as f32 - 1000.0) / 1000.0;
            half::f16::from_f32(v).to_le_bytes()
        })
        .collect();
    g.tensor(
        "token_embd.weight",
        &[N_EMBD as u64, n_vocab as u64],
        GgmlType::F16,
        embd,
    )?;
    g.tensor_f32(
        "output_norm.weight",
        &[N_EMBD as u64],
        &norm(&mut rng, N_EMBD),
    )?;
    let n_kv = N_EMBD / N_HEAD * N_HEAD_KV;
    for l in 0..N_LAYER {
        let p = |s: &str| format!("blk.{l}.{s}");
        let proj = [
            ("attn_q", N_EMBD, N_EMBD),
            ("attn_k", N_EMBD, n_kv),
            ("attn_v", N_EMBD, n_kv),
            ("attn_output", N_EMBD, N_EMBD),
            ("ffn_gate", N_EMBD, N_FF),
            ("ffn_up", N_EMBD, N_FF),
            ("ffn_down", N_FF, N_EMBD),
        ];
        for (name, cols, rows) in proj {
            let w = ternary_i2_s(&mut rng, rows, cols);
            g.tensor(
                &p(&format!("{name}.weight")),
                &[cols as u64, rows as u64],
                GgmlType::I2_S,
                w,
            )?;
        }
        for (name, n) in [
            ("attn_norm", N_EMBD),
            ("attn_sub_norm", N_EMBD),
            ("ffn_norm", N_EMBD),
            ("ffn_sub_norm", N_FF),
        ] {
            g.tensor_f32(
                &p(&format!("{name}.weight")),
                &[n as u64],
                &norm(&mut rng, n),
            )?;
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| bitnet::Error::io(format!("cannot create {}: {e}", dir.display())))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    g.write(&tmp)?;
    std::fs::rename(&tmp, path)
        .map_err(|e| bitnet::Error::io(format!("cannot move {} into place: {e}", tmp.display())))
}
