//! Inputs the fuzz targets of fuzz/ found crashing, each reduced to a plain test beside its
//! fix (fuzz/README.md lists them with the target that found them).

use bitnet::sampling::{self, Candidates, TokenData};

fn cands(n: usize) -> Vec<TokenData> {
    (0..n as i32)
        .map(|id| TokenData {
            id,
            logit: id as f32 * 0.5,
            p: 0.0,
        })
        .collect()
}

/// capi target: DRY with a negative allowed_length, applied before any token was accepted, took
/// `0 - 1` as the last index of its (empty) window (overflow panic; out-of-bounds with
/// overflow checks off). Nothing seen means nothing repeats: the candidates stay as they are.
#[test]
fn dry_with_negative_allowed_length_and_no_history() {
    for allowed in [-1, -4, i32::MIN] {
        let mut s = sampling::dry_with_token_breakers(0.8, 1.75, allowed, 16, &[vec![1]]);
        let mut data = cands(8);
        let before = data.clone();
        s.apply(&mut Candidates::new(&mut data));
        assert_eq!(
            data.iter().map(|d| d.logit.to_bits()).collect::<Vec<_>>(),
            before.iter().map(|d| d.logit.to_bits()).collect::<Vec<_>>(),
            "allowed_length {allowed}"
        );
        // With history the sampler works as usual.
        for t in [3, 4, 3, 4, 3] {
            s.accept(t);
        }
        s.apply(&mut Candidates::new(&mut data));
    }
}
