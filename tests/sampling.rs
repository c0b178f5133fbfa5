//! The samplers' documented behaviour on edge cases (k > n, p = 0 / 1, ties, all-equal and
//! -inf logits, min_keep, seeds, state), independent of the C++ reference (crossval/tests/
//! samplers.rs compares against it).

use bitnet::rng::SplitMix64;
use bitnet::sampling::{self, Candidates, Chain, Sampler, TokenData, DEFAULT_SEED};

fn cands(logits: &[f32]) -> Vec<TokenData> {
    sampling::candidates_from_logits(logits)
}

/// Applies `s` to the logits; returns (live candidates, selected, sorted, start offset).
fn run(s: &mut dyn Sampler, logits: &[f32]) -> (Vec<TokenData>, i64, bool, usize) {
    let mut data = cands(logits);
    let base = data.as_ptr() as usize;
    let mut cur = Candidates::new(&mut data);
    s.apply(&mut cur);
    let offset = (cur.data.as_ptr() as usize - base) / std::mem::size_of::<TokenData>();
    (cur.live().to_vec(), cur.selected, cur.sorted, offset)
}

fn ids(v: &[TokenData]) -> Vec<i32> {
    v.iter().map(|d| d.id).collect()
}

#[test]
fn greedy_takes_the_first_maximum() {
    let (_, sel, _, _) = run(sampling::greedy().as_mut(), &[1.0, 3.0, 3.0, -2.0]);
    assert_eq!(sel, 1);
    let inf = f32::NEG_INFINITY;
    let (_, sel, _, _) = run(sampling::greedy().as_mut(), &[inf, inf, 0.5, inf]);
    assert_eq!(sel, 2);
    let (_, sel, _, _) = run(sampling::greedy().as_mut(), &[inf, inf]);
    assert_eq!(sel, 0);
    let (_, sel, _, _) = run(sampling::greedy().as_mut(), &[]);
    assert_eq!(sel, -1);
}

#[test]
fn top_k_edges() {
    let logits = [0.1, 2.0, -1.0, 5.0, 3.0];
    let (live, _, sorted, _) = run(sampling::top_k(2).as_mut(), &logits);
    assert_eq!(ids(&live), [3, 4]);
    assert!(sorted);
    // k > n keeps everything, sorted.
    let (live, _, sorted, _) = run(sampling::top_k(50).as_mut(), &logits);
    assert_eq!(ids(&live), [3, 4, 1, 0, 2]);
    assert!(sorted);
    // k <= 0 is a no-op with the reference's name.
    let mut off = sampling::top_k(0);
    assert_eq!(off.name(), "?top-k");
    let (live, _, sorted, _) = run(off.as_mut(), &logits);
    assert_eq!(ids(&live), [0, 1, 2, 3, 4]);
    assert!(!sorted);
    // Ties: all four kept out of four equal logits, k = 2 keeps two of them.
    let (live, _, _, _) = run(sampling::top_k(2).as_mut(), &[1.0; 4]);
    assert_eq!(live.len(), 2);
    // Large arrays go through the bucket sort: still the true top k.
    let mut rng = SplitMix64(3);
    let big: Vec<f32> = (0..5000).map(|_| rng.normal() * 4.0).collect();
    let (live, _, _, _) = run(sampling::top_k(300).as_mut(), &big);
    let mut want = big.clone();
    want.sort_by(|a, b| b.total_cmp(a));
    let got: Vec<f32> = live.iter().map(|d| d.logit).collect();
    assert_eq!(got, want[..300]);
}

#[test]
fn top_p_edges() {
    let logits = [1.0, 2.0, 3.0, 4.0];
    // p = 0 keeps the single most likely token (min_keep 0 or 1).
    for min_keep in [0, 1] {
        let (live, _, _, _) = run(sampling::top_p(0.0, min_keep).as_mut(), &logits);
        assert_eq!(ids(&live), [3]);
    }
    // min_keep wins over p.
    let (live, _, _, _) = run(sampling::top_p(0.0, 3).as_mut(), &logits);
    assert_eq!(ids(&live), [3, 2, 1]);
    // p >= 1: no-op.
    let mut off = sampling::top_p(1.0, 1);
    assert_eq!(off.name(), "?top-p");
    let (live, _, _, _) = run(off.as_mut(), &logits);
    assert_eq!(live.len(), 4);
    // p values are the softmax of the full array.
    let (live, _, sorted, _) = run(sampling::top_p(0.99, 1).as_mut(), &logits);
    assert!(sorted);
    let z: f32 = logits.iter().map(|l| (l - 4.0f32).exp()).sum();
    assert!((live[0].p - 1.0 / z).abs() < 1e-6);
    // -inf candidates have p = 0 and are never needed to reach p < 1.
    let inf = f32::NEG_INFINITY;
    let (live, _, _, _) = run(sampling::top_p(0.95, 1).as_mut(), &[inf, 0.0, inf, 0.0]);
    assert_eq!(live.len(), 2);
}

#[test]
fn min_p_edges() {
    // p = 1 keeps only the maximum (and its ties).
    let (live, _, _, _) = run(sampling::min_p(1.0, 1).as_mut(), &[1.0, 3.0, 3.0, 0.0]);
    assert_eq!(ids(&live), [1, 2]);
    // All equal: everything passes.
    let (live, _, _, _) = run(sampling::min_p(0.5, 1).as_mut(), &[2.0; 6]);
    assert_eq!(live.len(), 6);
    // min_keep larger than what passes: falls back to the sorted path and keeps min_keep.
    let (live, _, sorted, _) = run(sampling::min_p(0.9, 3).as_mut(), &[0.0, 5.0, 1.0, 2.0]);
    assert_eq!(ids(&live), [1, 3, 2]);
    assert!(sorted);
    assert_eq!(sampling::min_p(0.0, 1).name(), "?min-p");
}

#[test]
fn typical_on_uniform_logits() {
    // Uniform over 4: every token is equally typical; cumulative p must exceed 0.5 strictly.
    let (live, _, sorted, _) = run(sampling::typical(0.5, 1).as_mut(), &[0.0; 4]);
    assert_eq!(live.len(), 3);
    assert!(!sorted);
    let (live, _, _, _) = run(
        sampling::typical(0.1, 4).as_mut(),
        &[0.0, 1.0, 2.0, 3.0, 4.0],
    );
    assert_eq!(live.len(), 4, "min_keep");
}

#[test]
fn temperature_edges() {
    let (live, _, _, _) = run(sampling::temp(2.0).as_mut(), &[2.0, -4.0]);
    assert_eq!([live[0].logit, live[1].logit], [1.0, -2.0]);
    // t <= 0: the first maximum survives, the rest become -inf.
    let (live, _, _, _) = run(sampling::temp(0.0).as_mut(), &[1.0, 7.0, 7.0, 3.0]);
    let l: Vec<f32> = live.iter().map(|d| d.logit).collect();
    let inf = f32::NEG_INFINITY;
    assert_eq!(l, [inf, 7.0, inf, inf]);
    assert_eq!(sampling::temp(1.0).name(), "?temp");
    // temp_ext without delta is plain temperature.
    let (live, _, _, _) = run(sampling::temp_ext(0.5, 0.0, 1.0).as_mut(), &[1.0, -1.0]);
    assert_eq!([live[0].logit, live[1].logit], [2.0, -2.0]);
    // With delta: probabilities are set and sum to 1.
    let (live, _, _, _) = run(sampling::temp_ext(1.0, 0.5, 1.0).as_mut(), &[1.0, 2.0, 0.5]);
    let sum: f32 = live.iter().map(|d| d.p).sum();
    assert!((sum - 1.0).abs() < 1e-6);
}

#[test]
fn dist_is_seeded_and_follows_the_probabilities() {
    let logits = [0.7f32.ln(), 0.2f32.ln(), 0.1f32.ln(), f32::NEG_INFINITY];
    let mut a = sampling::dist(42);
    let mut b = sampling::dist(42);
    assert_eq!(a.get_seed(), 42);
    let mut counts = [0usize; 4];
    for _ in 0..20000 {
        let (_, sa, _, _) = run(a.as_mut(), &logits);
        let (_, sb, _, _) = run(b.as_mut(), &logits);
        assert_eq!(sa, sb);
        counts[sa as usize] += 1;
    }
    assert_eq!(counts[3], 0, "-inf is never drawn");
    for (i, want) in [0.7, 0.2, 0.1].iter().enumerate() {
        let got = counts[i] as f64 / 20000.0;
        assert!((got - want).abs() < 0.015, "token {i}: {got} vs {want}");
    }
    // Reset replays the sequence.
    a.reset();
    let mut c = sampling::dist(42);
    for _ in 0..50 {
        assert_eq!(run(a.as_mut(), &logits).1, run(c.as_mut(), &logits).1);
    }
    // One candidate: selected, p = 1.
    let (live, sel, _, _) = run(a.as_mut(), &[3.0]);
    assert_eq!((sel, live[0].p), (0, 1.0));
    // DEFAULT_SEED draws a seed and reports it.
    let r1 = sampling::dist(DEFAULT_SEED).get_seed();
    let r2 = sampling::dist(DEFAULT_SEED).get_seed();
    assert!(r1 != DEFAULT_SEED || r2 != DEFAULT_SEED);
    assert_eq!(sampling::greedy().get_seed(), DEFAULT_SEED);
}

#[test]
fn xtc_drops_the_head_by_moving_the_start() {
    // Always triggers (p = 1); tokens at p >= 0.1 except the least likely of them go.
    let logits = [3.0, 2.9, 2.8, -5.0, -6.0];
    let (live, _, sorted, offset) = run(sampling::xtc(1.0, 0.1, 1, 1).as_mut(), &logits);
    assert!(sorted);
    assert_eq!(offset, 2);
    assert_eq!(ids(&live), [2, 3, 4]);
    // min_keep larger than what would remain: nothing happens.
    let (live, _, _, offset) = run(sampling::xtc(1.0, 0.1, 4, 1).as_mut(), &logits);
    assert_eq!((offset, live.len()), (0, 5));
    assert_eq!(sampling::xtc(1.0, 0.6, 1, 1).name(), "?xtc");
}

#[test]
fn top_n_sigma_ignores_minus_infinity() {
    let inf = f32::NEG_INFINITY;
    let (live, _, _, _) = run(
        sampling::top_n_sigma(1.0).as_mut(),
        &[0.0, 10.0, inf, 9.0, 1.0],
    );
    let kept: Vec<i32> = live
        .iter()
        .filter(|d| d.logit.is_finite())
        .map(|d| d.id)
        .collect();
    assert_eq!(kept, [1, 3]);
    let (live, _, _, _) = run(sampling::top_n_sigma(100.0).as_mut(), &[0.0, 10.0, 9.0]);
    assert!(live.iter().all(|d| d.logit.is_finite()));
}

#[test]
fn mirostat_selects_live_tokens_and_adapts() {
    let mut rng = SplitMix64(9);
    let logits: Vec<f32> = (0..1000).map(|_| rng.normal() * 3.0).collect();
    for s in [
        sampling::mirostat(1000, 5, 5.0, 0.1, 100),
        sampling::mirostat_v2(5, 5.0, 0.1),
    ] {
        let mut s = s;
        for _ in 0..20 {
            let (live, sel, _, _) = run(s.as_mut(), &logits);
            assert!(sel >= 0 && (sel as usize) < live.len());
        }
        assert_eq!(s.get_seed(), 5);
    }
}

#[test]
fn penalties_use_the_window() {
    let mut s = sampling::penalties(10, 2, 2.0, 0.5, 1.0);
    s.accept(1);
    s.accept(1);
    let (live, _, _, _) = run(s.as_mut(), &[4.0, 4.0, -4.0]);
    // Token 1 seen twice: 4 / 2 - (2 * 0.5 + 1).
    assert_eq!(live[1].logit, 0.0);
    assert_eq!(live[0].logit, 4.0);
    s.accept(2);
    s.accept(2); // token 1 has left the 2-token window
    let (live, _, _, _) = run(s.as_mut(), &[4.0, 4.0, -4.0]);
    assert_eq!(live[1].logit, 4.0);
    assert_eq!(live[2].logit, -4.0 * 2.0 - 2.0);
    assert_eq!(
        sampling::penalties(10, 0, 2.0, 0.0, 0.0).name(),
        "?penalties"
    );
}

#[test]
fn logit_bias_finds_shuffled_ids() {
    let mut s = sampling::logit_bias(10, &[(2, 1.5), (7, -100.0), (99, 3.0)]);
    let mut data = cands(&[0.0, 0.0, 0.0]);
    data.reverse(); // ids 2, 1, 0 at positions 0, 1, 2
    let mut cur = Candidates::new(&mut data);
    s.apply(&mut cur);
    assert_eq!(
        cur.live()[0],
        TokenData {
            id: 2,
            logit: 1.5,
            p: 0.0
        }
    );
    assert_eq!(cur.live()[2].logit, 0.0);
}

#[test]
fn dry_penalises_a_repeat_and_respects_breakers() {
    let history = [1, 2, 3, 1, 2];
    let logits = [0.0f32; 5];
    // "1 2" was followed by 3: emitting 3 extends a repeat of length 2 = allowed_length,
    // penalty = 1.0 * 2^0.
    let mut s = sampling::dry_with_token_breakers(1.0, 2.0, 2, 16, &[vec![4]]);
    for t in history {
        s.accept(t);
    }
    let (live, _, _, _) = run(s.as_mut(), &logits);
    let l: Vec<f32> = live.iter().map(|d| d.logit).collect();
    assert_eq!(l, [0.0, 0.0, 0.0, -1.0, 0.0]);
    // Token 3 as a single-token breaker is never penalised.
    let mut s = sampling::dry_with_token_breakers(1.0, 2.0, 2, 16, &[vec![3]]);
    for t in history {
        s.accept(t);
    }
    assert_eq!(run(s.as_mut(), &logits).0[3].logit, 0.0);
    // A breaker as the last token stops the matching altogether.
    let mut s = sampling::dry_with_token_breakers(1.0, 2.0, 2, 16, &[vec![2]]);
    for t in history {
        s.accept(t);
    }
    assert!(run(s.as_mut(), &logits).0.iter().all(|d| d.logit == 0.0));
    assert_eq!(
        sampling::dry_with_token_breakers(0.0, 2.0, 2, 16, &[]).name(),
        "?dry"
    );
}

#[test]
fn chain_runs_in_order_and_reports_the_last_seed() {
    let mut chain = Chain::new()
        .with(sampling::top_k(2))
        .with(sampling::dist(7))
        .with(sampling::mirostat_v2(11, 5.0, 0.1));
    assert_eq!(chain.len(), 3);
    assert_eq!(chain.get_seed(), 11);
    let removed = chain.remove(2).unwrap();
    assert_eq!(removed.name(), "mirostat-v2");
    assert!(chain.remove(5).is_none());
    assert_eq!(chain.get_seed(), 7);
    for _ in 0..100 {
        let t = chain.sample(&[0.0, 5.0, 4.9, -1.0]).unwrap();
        assert!(t == 1 || t == 2);
    }
    // A chain that selects nothing samples nothing.
    let mut no_pick = Chain::new().with(sampling::top_k(3));
    assert_eq!(no_pick.sample(&[1.0, 2.0]), None);
    assert_eq!(Chain::new().with(sampling::greedy()).sample(&[]), None);
}

/// NaN logits and a size larger than the array: no panic, whatever the order.
#[test]
fn hostile_inputs_do_not_panic() {
    let mut rng = SplitMix64(1);
    let logits: Vec<f32> = (0..2000)
        .map(|i| match i % 7 {
            0 => f32::NAN,
            1 => f32::NEG_INFINITY,
            2 => f32::INFINITY,
            _ => rng.normal() * 20.0,
        })
        .collect();
    let all = || -> Vec<Box<dyn Sampler>> {
        vec![
            sampling::greedy(),
            sampling::dist(1),
            sampling::top_k(40),
            sampling::top_k(1500),
            sampling::top_p(0.9, 1),
            sampling::min_p(0.05, 1),
            sampling::typical(0.9, 1),
            sampling::temp(0.7),
            sampling::temp_ext(0.8, 0.5, 1.0),
            sampling::xtc(1.0, 0.1, 1, 1),
            sampling::top_n_sigma(1.0),
            sampling::mirostat(2000, 1, 5.0, 0.1, 100),
            sampling::mirostat_v2(1, 5.0, 0.1),
            sampling::penalties(2000, 8, 1.1, 0.1, 0.1),
            sampling::logit_bias(2000, &[(5, 1.0), (-3, 1.0)]),
            sampling::dry_with_token_breakers(0.8, 1.75, 2, 32, &[vec![1]]),
        ]
    };
    for n in [0usize, 1, 2, 200, 2000] {
        for mut s in all() {
            for t in [1, 2, 1, 2, 1] {
                s.accept(t);
            }
            let mut data = cands(&logits[..n]);
            let mut cur = Candidates::new(&mut data);
            cur.size = n + 5; // inconsistent on purpose
            s.apply(&mut cur);
            let mut data = cands(&logits[..n]);
            let mut cur = Candidates::new(&mut data);
            cur.sorted = true; // a false claim
            s.apply(&mut cur);
        }
    }
}
