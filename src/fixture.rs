//! Small helpers that the integration tests, crossval, the benches and the CLI share, so that
//! each exists once: a one-sequence decode, argmax and cosine as crossval measures them, and the
//! writer of seeded synthetic BitNet models (`synthetic`: the CLI's demo model and the GPU tests'
//! models). Seeded randomness is [`crate::rng::SplitMix64`].

pub mod server_batches;
pub mod synthetic;

use crate::model::{Batch, Context, SeqSet};
use crate::{Error, Result};

/// Decodes `tokens` for sequence `seq` at positions `pos0..` in one batch, asking for the last
/// token's logits only, or for every token's when `all_logits`.
pub fn decode(
    ctx: &mut Context,
    tokens: &[u32],
    pos0: i32,
    seq: usize,
    all_logits: bool,
) -> Result<()> {
    let n = tokens.len();
    let positions: Vec<i32> = (0..n as i32).map(|i| pos0 + i).collect();
    let seqs = vec![SeqSet::one(seq); n];
    let want: Vec<bool> = (0..n).map(|i| all_logits || i + 1 == n).collect();
    ctx.decode(&Batch {
        tokens,
        positions: &positions,
        seqs: &seqs,
        want_logits: &want,
    })
}

/// Decodes `tokens` like [`decode`], with every token's logits, and returns them: one row per
/// token.
pub fn decode_rows(
    ctx: &mut Context,
    tokens: &[u32],
    pos0: i32,
    seq: usize,
) -> Result<Vec<Vec<f32>>> {
    decode(ctx, tokens, pos0, seq, true)?;
    (0..tokens.len())
        .map(|i| {
            ctx.logits(i).map(<[f32]>::to_vec).ok_or_else(|| {
                Error::bad_input(format!("the engine returned no logits for batch index {i}"))
            })
        })
        .collect()
}

/// First index of the largest value (ties: the lowest index, like a greedy sampler that scans
/// in order and keeps strict improvements). NaN never wins.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best
}

/// Cosine similarity in f64: 1 for two zero vectors, 0 when only one is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 && nb == 0.0 {
        return 1.0;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, f32::NAN]), 1);
        assert_eq!(argmax(&[f32::NAN, -1.0]), 1);
    }

    #[test]
    fn cosine_edges() {
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-12);
    }
}
