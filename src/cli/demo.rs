//! The demo model: a small BitNet b1.58 GGUF made here, with no network and no Python, so that
//! `bitnet run` works out of the box. Its weights are synthetic (seeded random ternary codes),
//! so the text it writes is gibberish; it exists to show the whole path (GGUF with I2_S weights,
//! an SPM vocabulary, the C API, sampling, streaming) working, not to say anything.
//!
//! Shape: 2 layers, n_embd 256, n_ff 512, 4 heads (2 KV heads), a vocabulary of ~1000 pieces:
//! control tokens, 256 byte-fallback tokens, printable ASCII, and common English words with all
//! their prefixes (so SentencePiece-style merging reaches whole words).

use std::path::Path;

use bitnet::fixture::synthetic::{self, Projection, Shape, Vocab};
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

/// Writes the demo model to `path` (atomically: a temporary file renamed into place).
pub fn write(path: &Path) -> Result<()> {
    let vocab = Vocab {
        pieces: vocab(),
        add_bos_eos: Some((true, false)),
    };
    let shape = Shape {
        arch: "bitnet-b1.58",
        name: "bitnet-rs demo (synthetic weights)",
        context_length: 2048,
        n_embd: N_EMBD,
        n_ff: N_FF,
        n_layer: N_LAYER,
        n_head: N_HEAD,
        n_head_kv: N_HEAD_KV,
        n_vocab: vocab.pieces.len(),
        rope_theta: 10000.0,
    };
    // Token embedding (also the head): F16 values in [-1, 1] in steps of 1/1000.
    let embedding = |rng: &mut SplitMix64| {
        (0..shape.n_vocab * N_EMBD)
            .flat_map(|_| {
                let v = (rng.below(2001) as f32 - 1000.0) / 1000.0;
                half::f16::from_f32(v).to_le_bytes()
            })
            .collect()
    };
    let projection = |rng: &mut SplitMix64, rows, cols| Projection {
        ty: GgmlType::I2_S,
        data: ternary_i2_s(rng, rows, cols),
        scale: None,
    };
    synthetic::write(
        path,
        &shape,
        Some(&vocab),
        &mut SplitMix64(SEED),
        embedding,
        projection,
    )
}
