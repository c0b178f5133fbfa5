//! Per-position comparison of two logit rows, and the summary over a run.

/// How far one logit row (ours, or a perturbed reference) is from the reference row.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionMetrics {
    /// Position in the sequence (index into the KV cache).
    pub pos: usize,
    pub cosine: f64,
    pub max_abs_diff: f64,
    /// `max_abs_diff` divided by the reference row's range (max - min).
    pub max_rel_diff: f64,
    /// KL(p_ref || p_other) of the softmaxes, in nats.
    pub kl: f64,
    pub ref_top1: usize,
    pub other_top1: usize,
}

impl PositionMetrics {
    pub fn top1_agrees(&self) -> bool {
        self.ref_top1 == self.other_top1
    }
}

pub use bitnet::fixture::{argmax, cosine};

/// log-softmax in f64.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let sum: f64 = row.iter().map(|&v| ((v as f64) - max).exp()).sum();
    let lse = max + sum.ln();
    row.iter().map(|&v| v as f64 - lse).collect()
}

/// KL(softmax(p) || softmax(q)) in nats.
pub fn kl_divergence(p: &[f32], q: &[f32]) -> f64 {
    let lp = log_softmax(p);
    let lq = log_softmax(q);
    let kl: f64 = lp
        .iter()
        .zip(&lq)
        .map(|(&a, &b)| {
            if a == f64::NEG_INFINITY {
                0.0
            } else {
                a.exp() * (a - b)
            }
        })
        .sum();
    kl.max(0.0)
}

pub fn compare_rows(pos: usize, reference: &[f32], other: &[f32]) -> PositionMetrics {
    assert_eq!(
        reference.len(),
        other.len(),
        "logit rows of different lengths"
    );
    let finite = reference.iter().chain(other).all(|v| v.is_finite());
    let max_abs_diff = reference
        .iter()
        .zip(other)
        .map(|(&a, &b)| ((a as f64) - (b as f64)).abs())
        .fold(0f64, f64::max);
    let (lo, hi) = reference
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v as f64), hi.max(v as f64))
        });
    let range = hi - lo;
    let mut m = PositionMetrics {
        pos,
        cosine: cosine(reference, other),
        max_abs_diff,
        max_rel_diff: if range > 0.0 {
            max_abs_diff / range
        } else {
            max_abs_diff
        },
        kl: kl_divergence(reference, other),
        ref_top1: argmax(reference),
        other_top1: argmax(other),
    };
    if !finite {
        // A NaN or infinity anywhere is a failure, whatever the other figures say.
        m.cosine = f64::NAN;
        m.max_abs_diff = f64::INFINITY;
        m.max_rel_diff = f64::INFINITY;
        m.kl = f64::INFINITY;
    }
    m
}

/// Summary of one comparison (reference vs ours, or reference vs perturbed reference).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub n_positions: usize,
    /// Lowest cosine (NaN-poisoned: a NaN anywhere makes this NaN).
    pub worst_cosine: f64,
    pub worst_cosine_pos: usize,
    pub mean_cosine: f64,
    pub max_abs_diff: f64,
    pub max_rel_diff: f64,
    pub mean_kl: f64,
    pub max_kl: f64,
    /// Fraction of positions whose top-1 token agrees.
    pub top1_agreement: f64,
    /// First position whose top-1 differs.
    pub first_divergent_pos: Option<usize>,
}

pub fn summarize(rows: &[PositionMetrics]) -> Summary {
    let n = rows.len().max(1) as f64;
    let mut worst = f64::INFINITY;
    let mut worst_pos = 0;
    let mut any_nan = false;
    for r in rows {
        if r.cosine.is_nan() {
            any_nan = true;
            worst_pos = r.pos;
        } else if r.cosine < worst && !any_nan {
            worst = r.cosine;
            worst_pos = r.pos;
        }
    }
    Summary {
        n_positions: rows.len(),
        worst_cosine: if any_nan {
            f64::NAN
        } else if rows.is_empty() {
            1.0
        } else {
            worst
        },
        worst_cosine_pos: worst_pos,
        mean_cosine: rows.iter().map(|r| r.cosine).sum::<f64>() / n,
        max_abs_diff: rows.iter().map(|r| r.max_abs_diff).fold(0.0, f64::max),
        max_rel_diff: rows.iter().map(|r| r.max_rel_diff).fold(0.0, f64::max),
        mean_kl: rows.iter().map(|r| r.kl).sum::<f64>() / n,
        max_kl: rows.iter().map(|r| r.kl).fold(0.0, f64::max),
        top1_agreement: rows.iter().filter(|r| r.top1_agrees()).count() as f64 / n,
        first_divergent_pos: rows.iter().find(|r| !r.top1_agrees()).map(|r| r.pos),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_rows() {
        let a = [1.0f32, -2.0, 3.5, 0.25];
        let m = compare_rows(0, &a, &a);
        assert!((m.cosine - 1.0).abs() < 1e-15);
        assert_eq!(m.max_abs_diff, 0.0);
        assert!(m.kl.abs() < 1e-15);
        assert!(m.top1_agrees());
    }

    #[test]
    fn known_values() {
        let a = [0.0f32, 1.0];
        let b = [1.0f32, 0.0];
        let m = compare_rows(3, &a, &b);
        assert_eq!(m.cosine, 0.0);
        assert_eq!(m.max_abs_diff, 1.0);
        assert_eq!(m.max_rel_diff, 1.0);
        assert!(!m.top1_agrees());
        // p = softmax(a) = (1/(1+e), e/(1+e)); KL(p||q) = (e-1)/(1+e).
        let e = std::f64::consts::E;
        assert!((m.kl - (e - 1.0) / (1.0 + e)).abs() < 1e-12);
        let s = summarize(&[m]);
        assert_eq!(s.first_divergent_pos, Some(3));
        assert_eq!(s.top1_agreement, 0.0);
    }

    #[test]
    fn nan_poisons() {
        let a = [0.0f32, 1.0];
        let b = [f32::NAN, 1.0];
        let s = summarize(&[compare_rows(0, &a, &a), compare_rows(1, &a, &b)]);
        assert!(s.worst_cosine.is_nan());
        assert_eq!(s.worst_cosine_pos, 1);
        assert!(s.mean_kl.is_infinite());
    }
}
