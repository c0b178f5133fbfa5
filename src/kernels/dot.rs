//! Quantized dot products, scalar, reproducing the reference's x86 CPU routines bit for bit.
//!
//! llama.cpp's x86 `vec_dot` kernels for these types all share one shape: per block, exact
//! integer sums land in eight 32-bit lanes (lane u holds the products at bytes 4u..4u+3 of each
//! 32-value chunk, i.e. element e goes to lane (e % 32) / 4), minus a per-lane correction; the
//! lane sums become f32 and are accumulated as `acc[u] += lane[u] * d` (fused multiply-add);
//! at the end the eight lanes are summed pairwise (`hsum8`). The integer part is exact in any
//! order; only the float steps need this exact order, so they follow it here.

use crate::quant::float::f16_to_f32;
use crate::quant::{q6_k, q8_0, q8_k, tq1_0, tq2_0};

/// The reference's horizontal sum of eight f32 lanes: ((a4+a0) + (a6+a2)) + ((a5+a1) + (a7+a3)).
pub fn hsum8(a: [f32; 8]) -> f32 {
    let r = [a[4] + a[0], a[5] + a[1], a[6] + a[2], a[7] + a[3]];
    let r = [r[0] + r[2], r[1] + r[3]];
    r[0] + r[1]
}

/// `hsum8` of the eight lanes of an AVX register, in the same order (so the same sum); the one
/// horizontal sum of the vector kernels (f16, ternary).
///
/// # Safety
/// The CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
pub(crate) unsafe fn hsum8_avx(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// Lane of element `e` of a block.
fn lane(e: usize) -> usize {
    (e % 32) / 4
}

/// A Q8_K block's parts: scale, the 256 int8 values, the 16 sums of 16.
fn q8_k_parts(a: &[u8]) -> (f32, &[u8], [i32; 16]) {
    let d = f32::from_le_bytes([a[0], a[1], a[2], a[3]]);
    let qs = &a[4..4 + 256];
    let mut bsums = [0i32; 16];
    for (i, s) in bsums.iter_mut().enumerate() {
        *s = i16::from_le_bytes([a[260 + 2 * i], a[261 + 2 * i]]) as i32;
    }
    (d, qs, bsums)
}

/// Ternary blocks against Q8_K: `code(e)` is element e's unsigned code 0..=2 (value code - 1).
fn dot_ternary_q8_k(
    w: &[u8],
    a: &[u8],
    block_bytes: usize,
    code: impl Fn(&[u8], usize) -> i32,
    d_offset: usize,
) -> f32 {
    let mut acc = [0f32; 8];
    for (wb, ab) in w
        .chunks_exact(block_bytes)
        .zip(a.chunks_exact(q8_k::BLOCK_BYTES))
    {
        let (ad, qs, bsums) = q8_k_parts(ab);
        let mut lanes = [0i32; 8];
        for (e, &q) in qs.iter().enumerate() {
            lanes[lane(e)] += code(wb, e) * (q as i8) as i32;
        }
        let d = ad * f16_to_f32(u16::from_le_bytes([wb[d_offset], wb[d_offset + 1]]));
        for u in 0..8 {
            let l = lanes[u] - bsums[2 * u] - bsums[2 * u + 1];
            acc[u] = (l as f32).mul_add(d, acc[u]);
        }
    }
    hsum8(acc)
}

/// TQ2_0 weights (one row of blocks) . Q8_K activations, as llama.cpp's x86 kernel.
pub fn dot_tq2_0_q8_k(w: &[u8], a: &[u8]) -> f32 {
    dot_ternary_q8_k(w, a, tq2_0::BLOCK_BYTES, tq2_0::code, 64)
}

/// TQ1_0 weights . Q8_K activations, as llama.cpp's x86 kernel.
pub fn dot_tq1_0_q8_k(w: &[u8], a: &[u8]) -> f32 {
    dot_ternary_q8_k(w, a, tq1_0::BLOCK_BYTES, tq1_0::code, 52)
}

/// Q8_0 weights . Q8_0 activations, as llama.cpp's x86 kernel.
pub fn dot_q8_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut acc = [0f32; 8];
    for (wb, ab) in w
        .chunks_exact(q8_0::BLOCK_BYTES)
        .zip(a.chunks_exact(q8_0::BLOCK_BYTES))
    {
        let d = f16_to_f32(u16::from_le_bytes([wb[0], wb[1]]))
            * f16_to_f32(u16::from_le_bytes([ab[0], ab[1]]));
        let mut lanes = [0i32; 8];
        for e in 0..32 {
            lanes[lane(e)] += (wb[2 + e] as i8) as i32 * (ab[2 + e] as i8) as i32;
        }
        for u in 0..8 {
            acc[u] = d.mul_add(lanes[u] as f32, acc[u]);
        }
    }
    hsum8(acc)
}

/// Q6_K weights . Q8_K activations, as llama.cpp's x86 kernel: unsigned 6-bit values times
/// the sub-block scale, with the -32 offset taken out through the activation block sums.
pub fn dot_q6_k_q8_k(w: &[u8], a: &[u8]) -> f32 {
    let mut acc = [0f32; 8];
    for (wb, ab) in w
        .chunks_exact(q6_k::BLOCK_BYTES)
        .zip(a.chunks_exact(q8_k::BLOCK_BYTES))
    {
        let (ad, qs, bsums) = q8_k_parts(ab);
        let scales = &wb[192..208];
        let sc = |i: usize| (scales[i] as i8) as i32;
        let mut lanes = [0i32; 8];
        for (e, &q) in qs.iter().enumerate() {
            lanes[lane(e)] += sc(e / 16) * q6_k::code(wb, e) as i32 * (q as i8) as i32;
        }
        let d = ad * f16_to_f32(u16::from_le_bytes([wb[208], wb[209]]));
        for u in 0..8 {
            let offset = 32 * (bsums[2 * u] * sc(2 * u) + bsums[2 * u + 1] * sc(2 * u + 1));
            acc[u] = d.mul_add((lanes[u] - offset) as f32, acc[u]);
        }
    }
    hsum8(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{self, GgmlType};
    use crate::rng::SplitMix64;

    fn q8k(x: &[f32]) -> Vec<u8> {
        let mut a = vec![0u8; x.len() / 256 * q8_k::BLOCK_BYTES];
        quant::quantize(GgmlType::Q8_K, x, &mut a).unwrap();
        a
    }

    /// The dot product of the dequantized values in f64: the float kernels must land within a
    /// few ulps of the block-scaled sum.
    fn reference(ty: GgmlType, w: &[u8], aty: GgmlType, a: &[u8], n: usize) -> f64 {
        let (mut wf, mut af) = (vec![0f32; n], vec![0f32; n]);
        quant::dequantize(ty, w, &mut wf).unwrap();
        quant::dequantize(aty, a, &mut af).unwrap();
        wf.iter().zip(&af).map(|(&x, &y)| x as f64 * y as f64).sum()
    }

    #[test]
    fn hsum8_order() {
        // Large and small values expose the order: (1e8 + 1) - 1e8 in f32 loses the 1.
        let a = [1e8, 0.0, 0.0, 0.0, 1.0, 0.0, -1e8, 0.0];
        assert_eq!(hsum8(a), 1e8 + 1.0 - 1e8);
        assert_eq!(hsum8([1.0; 8]), 8.0);
    }

    #[test]
    fn dots_agree_with_dequantized_sums() {
        let mut rng = SplitMix64(99);
        let n = 256 * 3;
        for case in 0..20 {
            let x: Vec<f32> = (0..n).map(|_| rng.normal() * (1 + case) as f32).collect();
            let wt: Vec<f32> = (0..n).map(|_| rng.below(3) as f32 - 1.0).collect();
            let a = q8k(&x);
            for ty in [GgmlType::TQ1_0, GgmlType::TQ2_0] {
                let mut w = vec![0u8; ty.tensor_bytes(n as u64).unwrap() as usize];
                quant::quantize(ty, &wt, &mut w).unwrap();
                let ours = match ty {
                    GgmlType::TQ1_0 => dot_tq1_0_q8_k(&w, &a),
                    _ => dot_tq2_0_q8_k(&w, &a),
                } as f64;
                let want = reference(ty, &w, GgmlType::Q8_K, &a, n);
                assert!(
                    (ours - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{ty}: {ours} vs {want}"
                );
            }
            let mut w8 = vec![0u8; n / 32 * 34];
            let mut a8 = vec![0u8; n / 32 * 34];
            quant::quantize(GgmlType::Q8_0, &wt, &mut w8).unwrap();
            quant::quantize(GgmlType::Q8_0, &x, &mut a8).unwrap();
            let ours = dot_q8_0_q8_0(&w8, &a8) as f64;
            let want = reference(GgmlType::Q8_0, &w8, GgmlType::Q8_0, &a8, n);
            assert!(
                (ours - want).abs() <= 1e-5 * want.abs().max(1.0),
                "Q8_0: {ours} vs {want}"
            );

            // Q6_K: random blocks with sane scales.
            let mut w6 = vec![0u8; n / 256 * 210];
            for b in w6.chunks_exact_mut(210) {
                for v in b[..208].iter_mut() {
                    *v = rng.below(256) as u8;
                }
                b[208..].copy_from_slice(&half::f16::from_f32(0.01).to_bits().to_le_bytes());
            }
            let ours = dot_q6_k_q8_k(&w6, &a) as f64;
            let want = reference(GgmlType::Q6_K, &w6, GgmlType::Q8_K, &a, n);
            assert!(
                (ours - want).abs() <= 1e-5 * want.abs().max(1.0),
                "Q6_K: {ours} vs {want}"
            );
        }
    }

    #[test]
    fn extreme_activations_do_not_overflow() {
        for v in [127.0f32, -128.0, 1e30, -1e30] {
            let x = vec![v; 512];
            let a = q8k(&x);
            let mut w = vec![0u8; 2 * 66];
            quant::quantize(GgmlType::TQ2_0, &vec![1.0; 512], &mut w).unwrap();
            let got = dot_tq2_0_q8_k(&w, &a);
            let want = reference(GgmlType::TQ2_0, &w, GgmlType::Q8_K, &a, 512);
            assert!(
                ((got as f64) - want).abs() <= 1e-5 * want.abs(),
                "{got} vs {want}"
            );
        }
    }
}
