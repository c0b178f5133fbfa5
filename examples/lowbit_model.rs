//! Writes a synthetic `bitnet`-architecture GGUF whose seven projections per layer are Q2_0 or
//! Q1_0 (PrismML's Bonsai types), for speed measurements (`benches/lowbit.sh`): random codes
//! (Q2_0: ternary, half of them zero; Q1_0: random signs) with one f16 scale per block, an F16
//! token embedding that is also the head, norms around 1, and an SPM vocabulary of `--vocab`
//! pieces (byte tokens, then filler pieces). The weights are noise: the file is for timing, not
//! for text.
//!
//! ```sh
//! cargo run --release --example lowbit_model -- OUT.gguf --type q2_0|q1_0 --shape 2b4t|1.7b|8b [--vocab N]
//! ```
//!
//! Shapes: `2b4t` is BitNet b1.58 2B-4T's (n_embd 2560, ffn 6912, 30 layers, 20 heads, 5 KV
//! heads), `1.7b` and `8b` Qwen3-1.7B's and Qwen3-8B's matrix sizes (n_embd 2048 / 4096, ffn
//! 6144 / 12288, 28 / 36 layers, 16 / 32 heads, 8 KV heads).

use std::path::PathBuf;

use bitnet::fixture::synthetic::{self, Projection, Shape, Vocab};
use bitnet::quant::float::f32_to_f16;
use bitnet::quant::GgmlType;
use bitnet::rng::SplitMix64;

/// `rows * cols` values of `ty` (Q2_0 or Q1_0) with random codes and scales near `scale`.
fn blocks(rng: &mut SplitMix64, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let n = rows * cols / ty.block_size() as usize;
    let mut out = vec![0u8; n * 18];
    for b in out.chunks_exact_mut(18) {
        let d = 0.02 + rng.below(100) as f32 / 5000.0;
        b[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        let (lo, hi) = (rng.next_u64(), rng.next_u64());
        b[2..10].copy_from_slice(&lo.to_le_bytes());
        b[10..18].copy_from_slice(&hi.to_le_bytes());
        if ty == GgmlType::Q2_0 {
            // code 3 (+2) becomes 1 (zero): ternary weights, half of them zero
            for v in b[2..].iter_mut() {
                let both = *v & (*v >> 1) & 0x55;
                *v &= !(both << 1);
            }
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: lowbit_model OUT.gguf --type q2_0|q1_0 --shape 2b4t|1.7b|8b [--vocab N]";
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let out = PathBuf::from(args.first().filter(|a| !a.starts_with('-')).expect(usage));
    let ty = match value("--type") {
        Some("q2_0") => GgmlType::Q2_0,
        Some("q1_0") => GgmlType::Q1_0,
        _ => panic!("{usage}"),
    };
    let n_vocab: usize = value("--vocab").map_or(32000, |v| v.parse().expect(usage));
    let (n_embd, n_ff, n_layer, n_head, n_head_kv) = match value("--shape") {
        Some("2b4t") => (2560, 6912, 30, 20, 5),
        Some("1.7b") => (2048, 6144, 28, 16, 8),
        Some("8b") => (4096, 12288, 36, 32, 8),
        _ => panic!("{usage}"),
    };
    assert!(n_vocab > 300, "{usage}: at least 300 pieces");
    let mut pieces: Vec<(Vec<u8>, f32, i32)> = vec![
        (b"<unk>".to_vec(), 0.0, 2),
        (b"<s>".to_vec(), 0.0, 3),
        (b"</s>".to_vec(), 0.0, 3),
    ];
    pieces.extend((0..256).map(|b| (format!("<0x{b:02X}>").into_bytes(), 0.0, 6)));
    let mut i = 0;
    while pieces.len() < n_vocab {
        pieces.push((format!("\u{2581}w{i}").into_bytes(), -(i as f32), 1));
        i += 1;
    }
    let vocab = Vocab {
        pieces,
        add_bos_eos: Some((true, false)),
    };
    let shape = Shape {
        arch: "bitnet",
        name: "bitnet-rs lowbit speed model (synthetic weights)",
        context_length: 4096,
        n_embd,
        n_ff,
        n_layer,
        n_head,
        n_head_kv,
        n_vocab,
        rope_theta: 500000.0,
    };
    let embedding = |rng: &mut SplitMix64| {
        (0..n_vocab * n_embd)
            .flat_map(|_| f32_to_f16((rng.unit() - 0.5) * 0.2).to_le_bytes())
            .collect()
    };
    let projection = |rng: &mut SplitMix64, rows, cols| Projection {
        ty,
        data: blocks(rng, ty, rows, cols),
        scale: None,
    };
    synthetic::write(
        &out,
        &shape,
        Some(&vocab),
        &mut SplitMix64(18),
        embedding,
        projection,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    eprintln!("lowbit_model: wrote {}", out.display());
}
