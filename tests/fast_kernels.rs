//! The repacked SIMD path against the scalar reference end to end: the same fixture model
//! loaded with and without repacking gives the same logits (bit for bit where activations are
//! per-token int8, whose integer dot products are exact in any order; within float rounding
//! for Q8_K activations, whose blocks are summed in another order), prefill and decode, 1 and
//! 2 threads; and the opt-in Q8_0 head stays close to the F16 head.

mod common;

use std::sync::Arc;

use bitnet::kernels::ternary::Layout;
use bitnet::model::head_cache::CachedHead;
use bitnet::model::weights::{HeadType, LoadOptions};
use bitnet::model::{Batch, Context, ContextParams, Model, SeqSet};
use common::*;

/// Logits of every position: a prefill of the first half, then one token at a time.
fn run(m: &Arc<Model>, threads: usize) -> Vec<Vec<f32>> {
    let params = ContextParams {
        n_threads: threads,
        ..ContextParams::new(64, 16)
    };
    let mut c = Context::new(m.clone(), params).unwrap();
    let n_vocab = m.hparams().n_vocab;
    let mut rng = SplitMix64(12);
    let toks: Vec<u32> = (0..12).map(|_| rng.below(n_vocab as u64) as u32).collect();
    let half = toks.len() / 2;
    let positions: Vec<i32> = (0..half as i32).collect();
    c.decode(&Batch {
        tokens: &toks[..half],
        positions: &positions,
        seqs: &vec![SeqSet::one(0); half],
        want_logits: &vec![true; half],
    })
    .unwrap();
    let mut out: Vec<Vec<f32>> = (0..half).map(|i| c.logits(i).unwrap().to_vec()).collect();
    for (p, &t) in toks.iter().enumerate().skip(half) {
        c.decode(&Batch {
            tokens: &[t],
            positions: &[p as i32],
            seqs: &[SeqSet::one(0)],
            want_logits: &[true],
        })
        .unwrap();
        out.push(c.logits(0).unwrap().to_vec());
    }
    out
}

fn load(name: &str, repack: bool, head: HeadType) -> Arc<Model> {
    load_as(name, repack, head, Layout::Bits2)
}

fn load_as(name: &str, repack: bool, head: HeadType, ternary: Layout) -> Arc<Model> {
    let opts = LoadOptions {
        head,
        repack,
        ternary: Some(ternary),
    };
    Arc::new(Model::load_with(model(name), &opts).unwrap())
}

#[test]
fn repacked_per_token_int8_is_bit_identical() {
    for name in [
        "bitnet-b1.58-i2_s.gguf",
        "bitnet-b1.58-tq2_0.gguf",
        "bitnet-spm-i2_s.gguf",
    ] {
        let reference = run(&load(name, false, HeadType::AsStored), 1);
        let fast = load(name, true, HeadType::AsStored);
        for threads in [1, 2] {
            assert_eq!(run(&fast, threads), reference, "{name}, {threads} threads");
        }
    }
}

#[test]
fn repacked_q8_k_is_bit_identical() {
    for name in [
        "bitnet-bpe-tq2_0.gguf",
        "bitnet-spm-tq2_0.gguf",
        "bitnet-spm-tq1_0.gguf",
    ] {
        let reference = run(&load(name, false, HeadType::AsStored), 1);
        let fast = load(name, true, HeadType::AsStored);
        for threads in [1, 2] {
            for (p, (a, b)) in run(&fast, threads).iter().zip(&reference).enumerate() {
                let cos = cosine(a, b);
                assert_eq!(a, b, "{name} position {p}: cosine {cos}");
            }
        }
    }
}

#[test]
fn base3_layout_is_bit_identical() {
    // The 1.6-bit layout, per-token (I2_S, TQ2_0 b1.58) and Q8_K (TQ1_0, TQ2_0) files alike:
    // the same logits as the scalar reference on the mapped bytes, prefill and decode.
    for name in [
        "bitnet-b1.58-i2_s.gguf",
        "bitnet-b1.58-tq2_0.gguf",
        "bitnet-bpe-tq2_0.gguf",
        "bitnet-spm-tq1_0.gguf",
    ] {
        let reference = run(&load(name, false, HeadType::AsStored), 1);
        let fast = load_as(name, true, HeadType::AsStored, Layout::Base3);
        for threads in [1, 2] {
            assert_eq!(run(&fast, threads), reference, "{name}, {threads} threads");
        }
    }
}

#[test]
fn base3_layout_reads_no_more_bytes() {
    let name = "bitnet-spm-tq1_0.gguf";
    let q2 = load_as(name, true, HeadType::AsStored, Layout::Bits2);
    let q16 = load_as(name, true, HeadType::AsStored, Layout::Base3);
    let (a, b) = (q2.decode_weight_bytes(), q16.decode_weight_bytes());
    // The fixture's rows are short (256 columns take two 32-byte vectors either way), so the
    // layout cannot grow them but need not shrink them; the 2B-4T widths shrink by a fifth
    // (`base3::tests::row_bytes_are_ceil_of_a_fifth`).
    assert!(b <= a, "1.6-bit {b} bytes vs 2-bit {a}");
}

#[test]
fn q8_0_head_stays_close_to_f16() {
    let name = "bitnet-bpe-tq2_0.gguf";
    let f16 = run(&load(name, true, HeadType::AsStored), 2);
    let q8 = run(&load(name, true, HeadType::Q8_0), 2);
    let mut agree = 0;
    for (a, b) in q8.iter().zip(&f16) {
        let cos = cosine(a, b);
        assert!(cos > 0.999, "cosine {cos}");
        agree += (argmax(a) == argmax(b)) as usize;
    }
    assert!(
        agree * 10 >= f16.len() * 8,
        "top-1 agreement {agree}/{}",
        f16.len()
    );
}

#[test]
fn q8_0_head_reads_the_same_embedding_rows() {
    // With the Q8_0 head the tied F16 embedding's pages are dropped and its rows are read from
    // the file: the same values as the mapping gives.
    let name = "bitnet-bpe-tq2_0.gguf";
    let mapped = load(name, true, HeadType::AsStored);
    let read = load(name, true, HeadType::Q8_0);
    let (n_vocab, n_embd) = (mapped.hparams().n_vocab, mapped.hparams().n_embd);
    let (mut a, mut b) = (vec![0f32; n_embd], vec![0f32; n_embd]);
    for tok in [0, 1, n_vocab / 2, n_vocab - 1] {
        mapped.embedding_row(tok, &mut a).unwrap();
        read.embedding_row(tok, &mut b).unwrap();
        assert_eq!(a, b, "token {tok}");
    }
    assert!(read.embedding_row(n_vocab, &mut b).is_err());
}

#[test]
fn q4_0_head_stays_close_to_f16_and_reads_the_same_embedding_rows() {
    for name in ["bitnet-bpe-tq2_0.gguf", "bitnet-spm-f16.gguf"] {
        let stored = load(name, true, HeadType::AsStored);
        let q4m = load(name, true, HeadType::Q4_0);
        let f16 = run(&stored, 2);
        let q4 = run(&q4m, 2);
        // The same head on 1 thread: the same bits (rows split differently).
        assert_eq!(run(&q4m, 1), q4, "{name}");
        assert!(q4m.head_q4().is_some());
        assert!(q4m.decode_weight_bytes() < stored.decode_weight_bytes());
        for (a, b) in q4.iter().zip(&f16) {
            let cos = cosine(a, b);
            assert!(cos > 0.99, "{name}: cosine {cos}");
        }
        let (n_vocab, n_embd) = (stored.hparams().n_vocab, stored.hparams().n_embd);
        let (mut a, mut b) = (vec![0f32; n_embd], vec![0f32; n_embd]);
        for tok in [0, n_vocab / 2, n_vocab - 1] {
            stored.embedding_row(tok, &mut a).unwrap();
            q4m.embedding_row(tok, &mut b).unwrap();
            assert_eq!(a, b, "{name} token {tok}");
        }
    }
}

#[test]
fn q4_0_head_from_every_stored_float_type_matches_quantizing_the_values() {
    // F32 and BF16 heads go through the generic path (dequantize, then quant::q4_0): the
    // head's logits equal the scalar Q4_0 matmul over those values quantized.
    use bitnet::kernels::{matmul_scalar, Activations, MatRef};
    use bitnet::quant::{self, GgmlType};
    for name in [
        "bitnet-spm-f32.gguf",
        "bitnet-spm-bf16.gguf",
        "bitnet-spm-f16.gguf",
    ] {
        let m = load(name, true, HeadType::Q4_0);
        let out = m.mat(&m.output);
        let mut vals = vec![0f32; out.rows * out.cols];
        quant::dequantize(out.ty, out.data, &mut vals).unwrap();
        let mut blocks = vec![0u8; vals.len() / 32 * 18];
        quant::quantize(GgmlType::Q4_0, &vals, &mut blocks).unwrap();
        let q = MatRef {
            ty: GgmlType::Q4_0,
            rows: out.rows,
            cols: out.cols,
            data: &blocks,
        };
        let x: Vec<f32> = (0..2 * out.cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let mut want = vec![0f32; 2 * out.rows];
        matmul_scalar(&q, Activations::ByWeightType, &x, 2, &mut want).unwrap();
        let mut got = vec![0f32; 2 * out.rows];
        m.head_matmul(&x, 2, &mut got, 2).unwrap();
        assert_eq!(got, want, "{name}");
    }
}

/// A cached head's arrays, copied.
fn parts(h: &impl CachedHead) -> Vec<Vec<u8>> {
    h.byte_parts().iter().map(|p| p.to_vec()).collect()
}

/// The head cache: a second load reads the head the first one requantized and wrote, with the
/// same bytes; a truncated or damaged cache file is detected, the head requantized again (the
/// same bytes) and the file rewritten.
#[test]
fn cached_heads_equal_requantized_heads_and_damage_is_detected() {
    let dir = std::env::temp_dir().join(format!("bitnet-head-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = model("bitnet-b1.58-tq2_0.gguf");
    // With the cache in `dir`, or none (`uncached`: the head as requantized at this load).
    let load_in = |head, dir: Option<&std::path::Path>| {
        let opts = LoadOptions {
            head,
            repack: true,
            ..LoadOptions::default()
        };
        Model::load_with_head_cache(&path, &opts, dir).unwrap()
    };
    let load = |head| load_in(head, Some(&dir));
    let uncached = |head| load_in(head, None);
    for head in [HeadType::Q8_0, HeadType::Q4_0, HeadType::Q6_K] {
        let bytes = |m: &Model| match head {
            HeadType::Q8_0 => parts(m.head_q8().unwrap()),
            HeadType::Q4_0 => parts(m.head_q4().unwrap()),
            _ => parts(m.head_q6().unwrap()),
        };
        let want = bytes(&uncached(head));
        assert_eq!(
            bytes(&load(head)),
            want,
            "{head:?}: first load (writes the cache)"
        );
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        let file = files
            .iter()
            .find(|p| {
                p.to_string_lossy()
                    .ends_with(&format!("-{}.bin", head as u32))
            })
            .expect("a cache file for the head")
            .clone();
        let good = std::fs::read(&file).unwrap();
        assert_eq!(bytes(&load(head)), want, "{head:?}: from the cache");
        // Damaged payload (one byte of the scales at the end), then truncated: both rejected,
        // the head requantized, the file rewritten whole.
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 0x40;
        std::fs::write(&file, &bad).unwrap();
        assert_eq!(bytes(&load(head)), want, "{head:?}: damaged cache");
        assert_eq!(std::fs::read(&file).unwrap(), good, "{head:?}: rewritten");
        std::fs::write(&file, &good[..good.len() / 2]).unwrap();
        assert_eq!(bytes(&load(head)), want, "{head:?}: truncated cache");
        assert_eq!(std::fs::read(&file).unwrap(), good, "{head:?}: rewritten");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The Q6_K head: made at load from the F16 head, the same bits at 1 and 2 threads, close to
/// the F16 head; and a head stored as Q6_K takes the vector path, bit-identical to the scalar
/// reference matmul on the same bytes.
#[test]
fn q6_k_head_is_close_to_f16_and_stored_q6_k_heads_match_the_scalar_dot() {
    let name = "bitnet-spm-f16.gguf";
    let f16 = load(name, true, HeadType::AsStored);
    let q6 = load(name, true, HeadType::Q6_K);
    assert!(q6.head_q6().is_some());
    assert!(q6.decode_weight_bytes() < f16.decode_weight_bytes());
    let (a, b) = (run(&q6, 1), run(&q6, 2));
    assert_eq!(a, b, "threads change the Q6_K head's logits");
    for (x, y) in run(&f16, 1).iter().zip(&a) {
        let dot: f64 = x.iter().zip(y).map(|(&p, &q)| p as f64 * q as f64).sum();
        let norm = |v: &[f32]| v.iter().map(|&p| p as f64 * p as f64).sum::<f64>().sqrt();
        assert!(
            dot / (norm(x) * norm(y)) > 0.999,
            "cosine {}",
            dot / (norm(x) * norm(y))
        );
    }

    let stored = load("bitnet-b1.58-i2_s-q6k.gguf", true, HeadType::Q6_K);
    assert!(
        stored.head_q6().is_none(),
        "a stored Q6_K head is used as stored"
    );
    let h = stored.hparams().clone();
    let mut rng = SplitMix64(4);
    let n = 3;
    let x: Vec<f32> = (0..n * h.n_embd).map(|_| rng.normal()).collect();
    let (mut fast, mut want) = (vec![0f32; n * h.n_vocab], vec![0f32; n * h.n_vocab]);
    stored.head_matmul(&x, n, &mut fast, 2).unwrap();
    let w = stored.mat(&stored.output);
    bitnet::kernels::matmul_scalar(
        &w,
        bitnet::kernels::Activations::ByWeightType,
        &x,
        n,
        &mut want,
    )
    .unwrap();
    assert_eq!(fast, want);
}
