//! The forward pass on the generated models: prefill equals token-by-token decode, greedy output
//! is varied, the same weights stored in different formats agree, bad input is refused with
//! the context still usable.

mod common;

use std::path::Path;
use std::sync::Arc;

use bitnet::gguf::writer::{GgufWriter, OwnedValue};
use bitnet::gguf::MappedFile;
use bitnet::model::{Batch, Context, ContextParams, Model, Pooling, SeqSet};
use bitnet::quant::{self, GgmlType};
use common::*;

/// Sequence 0 alone.
const S0: SeqSet = SeqSet([1, 0, 0, 0]);
/// Sequence 1 alone.
const S1: SeqSet = SeqSet([2, 0, 0, 0]);

fn load(name: &str) -> Arc<Model> {
    Arc::new(Model::load(model(name)).unwrap())
}

fn ctx(m: &Arc<Model>) -> Context {
    Context::new(m.clone(), ContextParams::new(128, 32)).unwrap()
}

/// Logits of every position of `tokens`, one decode call per token.
fn stepwise(m: &Arc<Model>, tokens: &[u32]) -> Vec<Vec<f32>> {
    stepwise_in(&mut ctx(m), tokens)
}

/// As `stepwise`, in the context `c` (empty).
fn stepwise_in(c: &mut Context, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    for (p, &t) in tokens.iter().enumerate() {
        c.decode(&Batch {
            tokens: &[t],
            positions: &[p as i32],
            seqs: &[S0],
            want_logits: &[true],
        })
        .unwrap();
        out.push(c.logits(0).unwrap().to_vec());
    }
    out
}

fn prompt(m: &Model) -> Vec<u32> {
    let n_vocab = m.hparams().n_vocab as u64;
    let mut rng = SplitMix64(5);
    (0..12).map(|_| rng.below(n_vocab) as u32).collect()
}

#[test]
fn prefill_matches_stepwise_decode() {
    for name in [
        "bitnet-spm-f32.gguf",
        "bitnet-spm-tq2_0.gguf",
        "bitnet-b1.58-i2_s.gguf",
    ] {
        let m = load(name);
        let tokens = prompt(&m);
        let steps = stepwise(&m, &tokens);
        let mut c = ctx(&m);
        prefill(&mut c, &tokens);
        for (i, s) in steps.iter().enumerate() {
            let batch_row = c.logits(i).unwrap();
            // Same kernels, same order: identical, not merely close.
            assert_eq!(batch_row, &s[..], "{name}: position {i}");
            assert!(batch_row.iter().all(|v| v.is_finite()));
        }
    }
}

/// A batch longer than one forward chunk (128 tokens) gives, entry by entry, the logits of
/// token-by-token decode: in order (run in chunks, some entries without logits) and with the
/// positions reversed (a token then attends to cells a later chunk would fill, so the batch
/// runs whole).
#[test]
fn long_batches_match_stepwise_decode() {
    let n = 300;
    for name in ["bitnet-spm-tq2_0.gguf", "bitnet-b1.58-i2_s.gguf"] {
        let m = load(name);
        let n_vocab = m.hparams().n_vocab as u64;
        let mut rng = SplitMix64(11);
        let tokens: Vec<u32> = (0..n).map(|_| rng.below(n_vocab) as u32).collect();
        let params = ContextParams::new(n + 8, n);
        let steps = stepwise_in(&mut Context::new(m.clone(), params).unwrap(), &tokens);

        let positions: Vec<i32> = (0..n as i32).collect();
        let want: Vec<bool> = (0..n).map(|i| i % 7 == 3 || i == n - 1).collect();
        let mut c = Context::new(m.clone(), params).unwrap();
        c.decode(&Batch {
            tokens: &tokens,
            positions: &positions,
            seqs: &vec![S0; n],
            want_logits: &want,
        })
        .unwrap();
        for i in 0..n {
            match c.logits(i) {
                Some(row) => assert_eq!(row, &steps[i][..], "{name}: in order, entry {i}"),
                None => assert!(!want[i], "{name}: entry {i} asked for logits"),
            }
        }

        let rev_tokens: Vec<u32> = tokens.iter().rev().copied().collect();
        let rev_positions: Vec<i32> = positions.iter().rev().copied().collect();
        let mut c = Context::new(m.clone(), params).unwrap();
        c.decode(&Batch {
            tokens: &rev_tokens,
            positions: &rev_positions,
            seqs: &vec![S0; n],
            want_logits: &vec![true; n],
        })
        .unwrap();
        for (i, &p) in rev_positions.iter().enumerate() {
            let row = c.logits(i).unwrap();
            assert_eq!(row, &steps[p as usize][..], "{name}: reversed, entry {i}");
        }
    }
}

#[test]
fn greedy_output_is_varied() {
    for name in ["bitnet-spm-tq1_0.gguf", "bitnet-b1.58-i2_s-q6k.gguf"] {
        let m = load(name);
        let mut c = ctx(&m);
        let mut tok = prompt(&m)[0];
        let mut seen = Vec::new();
        for p in 0..32 {
            c.decode(&Batch {
                tokens: &[tok],
                positions: &[p],
                seqs: &[S0],
                want_logits: &[true],
            })
            .unwrap();
            tok = argmax(c.logits(0).unwrap()) as u32;
            seen.push(tok);
        }
        let mut distinct = seen.clone();
        distinct.sort();
        distinct.dedup();
        let n = distinct.len();
        assert!(
            n >= 4,
            "{name}: greedy output repeats ({n} distinct): {seen:?}"
        );
    }
}

/// The worst cosine over positions between two runs of the same prompt.
fn worst_cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| cosine(x, y))
        .fold(1.0, f64::min)
}

#[test]
fn same_weights_in_other_formats_agree() {
    // Each group's files hold bit-identical ternary weights (tests/models/README.md); they differ
    // only in how the matmul treats activations for that weight type, as the reference does.
    let tokens = prompt(&load("bitnet-spm-f32.gguf"));
    let run = |name: &str| stepwise(&load(name), &tokens);
    let f32l = run("bitnet-spm-f32.gguf");
    let i2s = run("bitnet-b1.58-i2_s.gguf");
    // Float activations (f16/bf16 rounding only) stay at float-model parity. Int8 activations
    // (Q8_0, Q8_K, per-token int8) against float activations or another int8 scheme cost about
    // 1e-3 of cosine on these random models (the numpy reference measures the same gap, 0.9991
    // at worst, between its int8 and float modes).
    let pairs = [
        (&f32l, "bitnet-spm-f32-noscale.gguf", 0.99999),
        (&f32l, "bitnet-spm-f16.gguf", 0.99999),
        (&f32l, "bitnet-spm-bf16.gguf", 0.9999),
        (&f32l, "bitnet-spm-q8_0.gguf", 0.999),
        (&f32l, "bitnet-spm-tq2_0.gguf", 0.999),
        // bitnet-b1.58 quantizes projection inputs per token whatever the storage, so its
        // copies compute the same function, up to the order of float operations.
        (&i2s, "bitnet-b1.58-tq2_0.gguf", 0.99999),
        (&i2s, "bitnet-b1.58-f32.gguf", 0.99999),
    ];
    for (base, name, bar) in pairs {
        let worst = worst_cosine(base, &run(name));
        println!("{name}: worst cosine {worst:.7} against its group's reference file");
        assert!(worst >= bar, "{name}: worst cosine {worst} < {bar}");
    }
}

/// Copies `src` twice: `dst` with every F32 projection (`blk.*` matrices) stored as `ty` by our
/// writer, and `dst_f32` with the values `ty` kept, dequantized, as F32: the same weights, for
/// a comparison that differs only in the matmul's activation handling.
fn requantized_copies(src: &Path, ty: GgmlType, dst: &Path, dst_f32: &Path) {
    let map = MappedFile::open(src).unwrap();
    let g = map.gguf().unwrap();
    let (mut wq, mut wf) = (GgufWriter::default(), GgufWriter::default());
    for (k, v) in g.metadata() {
        wq.kv(k, OwnedValue::from_value(v));
        wf.kv(k, OwnedValue::from_value(v));
    }
    for t in g.tensors() {
        if t.name.starts_with("blk.") && t.dims.len() == 2 && t.ty == GgmlType::F32 {
            let n = t.n_elements as usize;
            let mut values = vec![0f32; n];
            quant::dequantize(GgmlType::F32, t.data, &mut values).unwrap();
            let mut q = vec![0u8; ty.tensor_bytes(n as u64).unwrap() as usize];
            quant::quantize(ty, &values, &mut q).unwrap();
            quant::dequantize(ty, &q, &mut values).unwrap();
            wq.tensor(t.name, &t.dims, ty, q).unwrap();
            wf.tensor_f32(t.name, &t.dims, &values).unwrap();
        } else {
            wq.tensor(t.name, &t.dims, t.ty, t.data.to_vec()).unwrap();
            wf.tensor(t.name, &t.dims, t.ty, t.data.to_vec()).unwrap();
        }
    }
    wq.write(dst).unwrap();
    wf.write(dst_f32).unwrap();
}

#[test]
fn q1_0_and_q2_0_projections_agree_with_their_f32_copies() {
    // The `bitnet` test model with its projections written as Q2_0 / Q1_0 runs them with Q8_0
    // activations (as the reference does); the F32 copy of the same values with float ones.
    // That int8 rounding costs about what it costs Q8_0 weights (same_weights_in_other_formats).
    let src = model("bitnet-spm-f32.gguf");
    let dir = scratch("q1_0_q2_0_copies");
    let tokens = prompt(&load("bitnet-spm-f32.gguf"));
    for ty in [GgmlType::Q2_0, GgmlType::Q1_0] {
        let (q, f) = (
            dir.join(format!("{ty}.gguf")),
            dir.join(format!("{ty}-f32.gguf")),
        );
        requantized_copies(&src, ty, &q, &f);
        let mq = Arc::new(Model::load(&q).unwrap());
        let steps = stepwise(&mq, &tokens);
        let worst = worst_cosine(
            &steps,
            &stepwise(&Arc::new(Model::load(&f).unwrap()), &tokens),
        );
        println!("{ty}: worst cosine {worst:.7} against the F32 copy");
        assert!(worst >= 0.999, "{ty}: worst cosine {worst}");
        // Prefill runs the same kernels in the same order as decode: identical logits.
        let mut c = ctx(&mq);
        prefill(&mut c, &tokens);
        for (i, s) in steps.iter().enumerate() {
            assert_eq!(c.logits(i).unwrap(), &s[..], "{ty}: position {i}");
        }
    }
}

#[test]
fn qwen3_files_agree_with_their_float_copies() {
    // The Bonsai-like qwen3 fixtures (tests/models/gen_models.py): each Q1_0 / Q2_0 file and its
    // float copy hold the same values; the quantized one runs Q8_0 activations, as the
    // reference does, the float one f16/f32 activations. Heads of 128: n_head * head_dim (512)
    // is not n_embd (256), so q and attn_output are not square.
    for (q, f) in [
        ("qwen3-q1_0.gguf", "qwen3-q1_0-f16.gguf"),
        ("qwen3-q2_0.gguf", "qwen3-q2_0-f32.gguf"),
    ] {
        let mq = load(q);
        let h = mq.hparams();
        assert_eq!(h.arch, bitnet::model::Arch::Qwen3);
        assert_eq!((h.n_embd, h.head_dim, h.n_q()), (256, 128, 512));
        let tokens = prompt(&mq);
        let steps = stepwise(&mq, &tokens);
        let worst = worst_cosine(&steps, &stepwise(&load(f), &tokens));
        println!("{q}: worst cosine {worst:.7} against {f}");
        assert!(worst >= 0.999, "{q}: worst cosine {worst} against {f}");
        // Prefill runs the same kernels in the same order as decode: identical logits.
        let mut c = ctx(&mq);
        prefill(&mut c, &tokens);
        for (i, s) in steps.iter().enumerate() {
            assert_eq!(c.logits(i).unwrap(), &s[..], "{q}: position {i}");
        }
    }
}

#[test]
fn bad_input_is_refused_and_the_context_stays_usable() {
    let m = load("bitnet-spm-tq2_0.gguf");
    let mut c = ctx(&m);
    let n_vocab = m.hparams().n_vocab as u32;
    let ok = Batch {
        tokens: &[1, 2],
        positions: &[0, 1],
        seqs: &[S0, S0],
        want_logits: &[false, true],
    };
    c.decode(&ok).unwrap();
    let before = c.logits(1).unwrap().to_vec();
    let bad_token = [n_vocab];
    let big = vec![1u32; 33];
    let big_pos: Vec<i32> = (0..33).collect();
    let big_seqs = vec![S0; 33];
    let cases: Vec<(Batch, &str)> = vec![
        (
            Batch {
                tokens: &[],
                positions: &[],
                seqs: &[],
                want_logits: &[],
            },
            "empty batch",
        ),
        (
            Batch {
                tokens: &bad_token,
                positions: &[2],
                seqs: &[S0],
                want_logits: &[true],
            },
            "outside the vocabulary",
        ),
        (
            Batch {
                tokens: &[1],
                positions: &[-1],
                seqs: &[S0],
                want_logits: &[true],
            },
            "negative",
        ),
        (
            Batch {
                tokens: &[1],
                positions: &[5],
                seqs: &[S0],
                want_logits: &[true],
            },
            "consecutive",
        ),
        (
            Batch {
                tokens: &[1, 1],
                positions: &[2, 4],
                seqs: &[S0, S0],
                want_logits: &[true, true],
            },
            "not continuous",
        ),
        (
            Batch {
                tokens: &[1],
                positions: &[2],
                seqs: &[S1],
                want_logits: &[true],
            },
            "outside 0..1",
        ),
        (
            Batch {
                tokens: &[1],
                positions: &[2],
                seqs: &[SeqSet::EMPTY],
                want_logits: &[true],
            },
            "no sequence",
        ),
        (
            Batch {
                tokens: &[1],
                positions: &[2, 3],
                seqs: &[S0],
                want_logits: &[true],
            },
            "differ in length",
        ),
        (
            Batch {
                tokens: &big,
                positions: &big_pos,
                seqs: &big_seqs,
                want_logits: &[false; 33],
            },
            "larger than n_batch",
        ),
    ];
    for (batch, expected) in cases {
        let err = c.decode(&batch).unwrap_err();
        assert!(err.message.contains(expected), "{}", err.message);
    }
    assert_eq!(
        c.logits(1).unwrap(),
        &before[..],
        "a refused batch changed the context"
    );
    // Still usable: continuing gives the same as a fresh run of the whole sequence.
    c.decode(&Batch {
        tokens: &[3],
        positions: &[2],
        seqs: &[S0],
        want_logits: &[true],
    })
    .unwrap();
    let fresh = stepwise(&m, &[1, 2, 3]);
    assert_eq!(c.logits(0).unwrap(), &fresh[2][..]);
    assert!(c.logits(1).is_none());
}

/// Decodes `tokens` for sequence `seq` from position `pos0`, returning each position's logits.
fn run_seq(c: &mut Context, seq: usize, pos0: i32, tokens: &[u32]) -> Vec<Vec<f32>> {
    bitnet::fixture::decode_rows(c, tokens, pos0, seq).unwrap()
}

fn multi_ctx(m: &Arc<Model>, n_ctx: usize, n_seq_max: usize) -> Context {
    let params = ContextParams {
        n_seq_max,
        ..ContextParams::new(n_ctx, 32)
    };
    Context::new(m.clone(), params).unwrap()
}

#[test]
fn sequences_in_one_context_do_not_see_each_other() {
    let m = load("bitnet-spm-f32.gguf");
    let a = prompt(&m);
    let b: Vec<u32> = a.iter().rev().copied().collect();
    let alone_a = stepwise(&m, &a);
    let alone_b = stepwise(&m, &b);
    // Interleave the two sequences token by token in one cache, then both in one batch.
    let mut c = multi_ctx(&m, 64, 2);
    for p in 0..6 {
        assert!(run_seq(&mut c, 0, p as i32, &a[p..p + 1])[0] == alone_a[p]);
        assert!(run_seq(&mut c, 1, p as i32, &b[p..p + 1])[0] == alone_b[p]);
    }
    let tokens = [a[6], b[6]];
    c.decode(&Batch {
        tokens: &tokens,
        positions: &[6, 6],
        seqs: &[SeqSet::one(0), SeqSet::one(1)],
        want_logits: &[true, true],
    })
    .unwrap();
    assert!(c.logits(0).unwrap() == &alone_a[6][..]);
    assert!(c.logits(1).unwrap() == &alone_b[6][..]);
    assert_eq!((c.seq_pos_min(0), c.seq_pos_max(0)), (0, 6));
    assert_eq!((c.seq_pos_min(1), c.seq_pos_max(1)), (0, 6));
    assert_eq!(c.n_outputs(), 2);
    assert_eq!(c.all_logits().len(), 2 * m.hparams().n_vocab);
}

/// The batches llama-server sends with its parallel slots (bitnet::fixture::server_batches: one
/// slot's prompt chunk mixed with single decode tokens of the others, in varying order), 4 and
/// 16 sequences in one context: every sequence's logits equal, bit for bit, what it gets
/// decoded alone. (One decode call computes all its tokens' projections as one matrix product,
/// so a step reads each weight once for every sequence; this checks it changes no result.)
#[test]
fn server_batches_give_each_sequence_what_it_gets_alone() {
    use bitnet::fixture::server_batches::{
        assert_each_sequence_alone, run_batches, server_batches,
    };
    for name in [
        "bitnet-spm-f32.gguf",
        "bitnet-spm-tq2_0.gguf",
        "bitnet-spm-tq1_0.gguf",
        "bitnet-b1.58-i2_s.gguf",
    ] {
        let m = load(name);
        for n_seq in [4, 16] {
            let batches = server_batches(n_seq, m.hparams().n_vocab);
            let mut c = multi_ctx(&m, 512, n_seq);
            let got = run_batches(&mut c, &batches, &|s| Some(s));
            let alone = |params| Context::new(Arc::clone(&m), params);
            assert_each_sequence_alone(
                &alone,
                &batches,
                &got,
                n_seq,
                &format!("{name} {n_seq} seqs"),
            );
        }
    }
}

#[test]
fn sequence_edits_rm_cp_keep_add() {
    let m = load("bitnet-spm-f32.gguf");
    let a = prompt(&m);
    let alone = stepwise(&m, &a);
    let mut c = multi_ctx(&m, 64, 3);
    run_seq(&mut c, 0, 0, &a[..8]);

    // rm the tail, then re-decode it: the same logits as the first time.
    assert!(c.seq_rm(0, 5, -1));
    assert_eq!(c.seq_pos_max(0), 4);
    assert!(run_seq(&mut c, 0, 5, &a[5..8]) == alone[5..8]);

    // cp a shared prefix to sequence 1 and continue it there.
    assert!(c.seq_cp(0, 1, 0, 6));
    assert_eq!((c.seq_pos_min(1), c.seq_pos_max(1)), (0, 5));
    assert!(run_seq(&mut c, 1, 6, &a[6..9]) == alone[6..9]);

    // keep sequence 1 only: sequence 0's own cells (6, 7) are gone, the prefix stays.
    assert!(c.seq_keep(1));
    assert_eq!(c.seq_pos_max(0), -1);
    assert_eq!(c.seq_pos_max(1), 8);
    // The new token lands in a freed cell before the others; attention reads positions in order.
    assert!(run_seq(&mut c, 1, 9, &a[9..10]) == alone[9..10]);

    // add: shift every cached position by +3 and continue; RoPE is relative, so the logits
    // stay close to the unshifted run (keys re-rotated in f32 and stored back as f16).
    assert!(c.seq_add(1, -1, -1, 3));
    assert_eq!((c.seq_pos_min(1), c.seq_pos_max(1)), (3, 12));
    let shifted = run_seq(&mut c, 1, 13, &a[10..11]);
    let cos = cosine(&shifted[0], &alone[10]);
    assert!(cos > 0.9999, "cosine after seq_add {cos}");
    // A shift below position 0 drops the cells.
    assert!(c.seq_add(1, -1, -1, -100));
    assert_eq!(c.seq_pos_max(1), -1);

    // Invalid sequence ids are refused, not panics.
    assert!(!c.seq_rm(3, -1, -1));
    assert!(!c.seq_cp(0, 7, -1, -1));
    assert!(!c.seq_keep(-2));
    assert!(!c.seq_div(0, -1, -1, 0));
    assert_eq!(c.seq_pos_max(99), -1);
}

#[test]
fn a_full_cache_is_reported_as_no_slot() {
    let m = load("bitnet-spm-f32.gguf");
    let a = prompt(&m);
    let mut c = multi_ctx(&m, 8, 1);
    run_seq(&mut c, 0, 0, &a[..6]);
    let err = c
        .decode(&Batch {
            tokens: &a[6..9],
            positions: &[6, 7, 8],
            seqs: &[S0; 3],
            want_logits: &[true; 3],
        })
        .unwrap_err();
    assert_eq!(err.kind, bitnet::ErrorKind::NoKvSlot, "{err}");
    // Freeing cells makes room again.
    assert!(c.seq_rm(0, 4, -1));
    assert_eq!(run_seq(&mut c, 0, 4, &a[4..8]).len(), 4);
}

#[test]
fn state_round_trips_whole_and_per_sequence() {
    let m = load("bitnet-spm-tq2_0.gguf");
    let a = prompt(&m);
    let mut c = multi_ctx(&m, 64, 2);
    run_seq(&mut c, 0, 0, &a[..8]);
    let mut whole = Vec::new();
    c.state_write(None, &mut whole);
    assert_eq!(whole.len(), c.state_size(None));
    let mut seq0 = Vec::new();
    c.state_write(Some(0), &mut seq0);
    assert_eq!(seq0.len(), c.state_size(Some(0)));
    let last = c.logits(7).unwrap().to_vec();
    let next = run_seq(&mut c, 0, 8, &a[8..11]);

    // Whole state into a fresh context: the same logits, then the same continuation.
    let mut d = multi_ctx(&m, 64, 2);
    assert_eq!(d.state_read(None, &whole).unwrap(), whole.len());
    assert!(d.logits(7).unwrap() == &last[..]);
    assert!(run_seq(&mut d, 0, 8, &a[8..11]) == next);

    // One sequence's state into sequence 1 of another context holding other cells.
    let mut e = multi_ctx(&m, 64, 2);
    run_seq(&mut e, 0, 0, &a[3..6]);
    assert_eq!(e.state_read(Some(1), &seq0).unwrap(), seq0.len());
    assert_eq!((e.seq_pos_min(1), e.seq_pos_max(1)), (0, 7));
    assert!(run_seq(&mut e, 1, 8, &a[8..11]) == next);

    // Damaged or foreign states are refused and change nothing.
    let before = e.seq_pos_max(1);
    for cut in [0, 3, 10, seq0.len() / 2, seq0.len() - 1] {
        assert!(e.state_read(Some(1), &seq0[..cut]).is_err());
    }
    let mut bad = seq0.clone();
    bad[4] = 9; // version
    assert!(e.state_read(Some(1), &bad).is_err());
    let other = load("bitnet-b1.58-i2_s.gguf");
    let mut f = Context::new(other, ContextParams::new(64, 32)).unwrap();
    assert!(f.state_read(None, &whole).is_err());
    assert!(e.state_read(Some(5), &seq0).is_err());
    assert_eq!(e.seq_pos_max(1), before);
}

#[test]
fn embeddings_and_pooling() {
    let m = load("bitnet-spm-f32.gguf");
    let n_embd = m.hparams().n_embd;
    let a = prompt(&m);
    let run = |pooling| {
        let params = ContextParams {
            n_seq_max: 2,
            embeddings: true,
            pooling,
            ..ContextParams::new(64, 32)
        };
        let mut c = Context::new(m.clone(), params).unwrap();
        let seqs: Vec<SeqSet> = (0..8).map(|i| SeqSet::one(i / 4)).collect();
        let positions: Vec<i32> = (0..8).map(|i| i % 4).collect();
        c.decode(&Batch {
            tokens: &a[..8],
            positions: &positions,
            seqs: &seqs,
            want_logits: &[true; 8],
        })
        .unwrap();
        c
    };
    let plain = run(Pooling::None);
    let rows: Vec<Vec<f32>> = (0..8)
        .map(|i| plain.embeddings(i).unwrap().to_vec())
        .collect();
    assert!(rows
        .iter()
        .all(|r| r.len() == n_embd && r.iter().all(|v| v.is_finite())));
    assert!(plain.embeddings_seq(0).is_none());
    let mean = run(Pooling::Mean);
    for s in 0..2 {
        let want: Vec<f32> = (0..n_embd)
            .map(|j| rows[s * 4..s * 4 + 4].iter().map(|r| r[j]).sum::<f32>() / 4.0)
            .collect();
        let got = mean.embeddings_seq(s as i32).unwrap();
        assert!(got
            .iter()
            .zip(&want)
            .all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs())));
    }
    assert!(run(Pooling::Cls).embeddings_seq(1).unwrap() == &rows[4][..]);
    assert!(run(Pooling::Last).embeddings_seq(0).unwrap() == &rows[3][..]);
    assert!(mean.embeddings_seq(2).is_none());
}
