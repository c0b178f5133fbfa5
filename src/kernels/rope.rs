//! Rotary position embedding, NEOX style (pairs (i, i + n_rot/2) of a head), as the reference
//! computes it: the angle of pair i is pos * base^(-2i/n_rot), stepped by repeated
//! multiplication rather than a power per pair, so the angles match the reference's bits.

/// The (sin, cos) of each pair's angle at position `pos`: `table` gets n_rot/2 entries.
pub fn table(table: &mut [(f32, f32)], pos: i32, n_rot: usize, base: f32) {
    let theta_scale = base.powf(-2.0 / n_rot as f32);
    let mut theta = pos as f32;
    for sc in table[..n_rot / 2].iter_mut() {
        *sc = theta.sin_cos();
        theta *= theta_scale;
    }
}

/// Turns one head in place: pair (i, i + half) by the angle whose (sin, cos) is `table[i]`
/// (half = table.len(); dimensions past 2 * half are left as they are).
pub fn rotate_neox(head: &mut [f32], table: &[(f32, f32)]) {
    let half = table.len();
    for (i, &(sin, cos)) in table.iter().enumerate() {
        let (x0, x1) = (head[i], head[i + half]);
        head[i] = x0 * cos - x1 * sin;
        head[i + half] = x0 * sin + x1 * cos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_the_identity() {
        let mut t = vec![(0.0, 0.0); 4];
        table(&mut t, 0, 8, 10000.0);
        let mut head: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
        let before = head.clone();
        rotate_neox(&mut head, &t);
        assert_eq!(head, before);
    }

    #[test]
    fn rotations_compose_and_keep_the_norm() {
        // Turning by p then by q equals turning by p + q (to rounding), and lengths stay.
        let (n_rot, base) = (16, 500000.0);
        let (mut tp, mut tq, mut tpq) = (
            vec![(0.0, 0.0); 8],
            vec![(0.0, 0.0); 8],
            vec![(0.0, 0.0); 8],
        );
        table(&mut tp, 5, n_rot, base);
        table(&mut tq, 9, n_rot, base);
        table(&mut tpq, 14, n_rot, base);
        let x: Vec<f32> = (0..16)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3)
            .collect();
        let (mut a, mut b) = (x.clone(), x.clone());
        rotate_neox(&mut a, &tp);
        rotate_neox(&mut a, &tq);
        rotate_neox(&mut b, &tpq);
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-5, "{u} vs {v}");
        }
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
        assert!((norm(&a) - norm(&x)).abs() < 1e-4);
    }

    #[test]
    fn pair_zero_turns_by_the_position() {
        // Pair 0's angle is pos itself (base^0 = 1).
        let mut t = vec![(0.0, 0.0); 2];
        table(&mut t, 3, 4, 10000.0);
        let mut head = [1.0, 0.0, 0.0, 0.0];
        rotate_neox(&mut head, &t);
        assert_eq!(head[0], 3f32.cos());
        assert_eq!(head[2], 3f32.sin());
    }
}
