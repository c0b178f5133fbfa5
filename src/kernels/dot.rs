//! Quantized dot products, scalar, reproducing the reference's x86 CPU routines bit for bit.
//!
//! llama.cpp's x86 `vec_dot` kernels for these types all share one shape: per block, exact
//! integer sums land in eight 32-bit lanes (lane u holds the products at bytes 4u..4u+3 of each
//! 32-value chunk, i.e. element e goes to lane (e % 32) / 4), minus a per-lane correction; the
//! lane sums become f32 and are accumulated as `acc[u] += lane[u] * d` (fused multiply-add);
//! at the end the eight lanes are summed pairwise (`hsum8`). The integer part is exact in any
//! order; only the float steps need this exact order, so they follow it here.

use super::isa::{best_isa, Isa};
use crate::quant::float::f16_to_f32;
use crate::quant::{q1_0, q2_0, q4_0, q6_k, q8_0, q8_k, tq1_0, tq2_0};

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

/// Q4_0 weights . Q8_0 activations, as llama.cpp's x86 kernel: codes - 8 times the
/// activations in the eight lanes, `acc[u] += (d_w * d_x) * lane[u]` fused, then `hsum8`.
pub fn dot_q4_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut acc = [0f32; 8];
    for (wb, ab) in w
        .chunks_exact(q4_0::BLOCK_BYTES)
        .zip(a.chunks_exact(q8_0::BLOCK_BYTES))
    {
        let d = d_of(wb) * d_of(ab);
        let mut lanes = [0i32; 8];
        for e in 0..32 {
            lanes[lane(e)] += (q4_0::code(wb, e) as i32 - 8) * (ab[2 + e] as i8) as i32;
        }
        for u in 0..8 {
            acc[u] = d.mul_add(lanes[u] as f32, acc[u]);
        }
    }
    hsum8(acc)
}

/// The f16 scale in the first two bytes of a Q8_0 / Q1_0 / Q2_0 block.
fn d_of(block: &[u8]) -> f32 {
    f16_to_f32(u16::from_le_bytes([block[0], block[1]]))
}

/// Bytes of the Q8_0 activations that pair with one Q1_0 block (four Q8_0 blocks).
const Q1_0_ACT_BYTES: usize = 4 * q8_0::BLOCK_BYTES;
/// Bytes of the Q8_0 activations that pair with one Q2_0 block (two Q8_0 blocks).
const Q2_0_ACT_BYTES: usize = 2 * q8_0::BLOCK_BYTES;

/// Q2_0 weights . Q8_0 activations on the CPU's level (`isa::best_isa`).
pub fn dot_q2_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    dot_q2_0_q8_0_isa(best_isa(), w, a)
}

/// Q2_0 weights (one row of 64-value blocks) . Q8_0 activations, as the reference's kernel,
/// which on x86 is its generic C loop: per Q8_0 half of a block an exact integer sum of
/// (code - 1) * q, then in f32 without fused operations `sumi = 0 + s0 * d1_0 + s1 * d1_1` and
/// `sum += d * sumi`, block after block. The vector levels change only how the integer sums are
/// formed, so every level returns the same bits.
pub fn dot_q2_0_q8_0_isa(isa: Isa, w: &[u8], a: &[u8]) -> f32 {
    debug_assert_eq!(w.len() / q2_0::BLOCK_BYTES * Q2_0_ACT_BYTES, a.len());
    match isa {
        // SAFETY: the level was detected (kernels::isa) before being chosen.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni | Isa::Amx => unsafe { x86::dot_q2_0_q8_0_vnni(w, a) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::dot_q2_0_q8_0_avx2(w, a) },
        _ => {
            let mut sum = 0f32;
            for (wb, ab) in w
                .chunks_exact(q2_0::BLOCK_BYTES)
                .zip(a.chunks_exact(Q2_0_ACT_BYTES))
            {
                let mut s = [0i32; 2];
                for (k, s) in s.iter_mut().enumerate() {
                    let q = &ab[k * q8_0::BLOCK_BYTES + 2..(k + 1) * q8_0::BLOCK_BYTES];
                    for (e, &q) in q.iter().enumerate() {
                        *s += (q2_0::code(wb, 32 * k + e) - 1) * (q as i8) as i32;
                    }
                }
                sum = q2_0_block_sum(sum, wb, ab, s);
            }
            sum
        }
    }
}

/// The float steps of one Q2_0 block given its two integer sums (every level shares them).
#[inline(always)]
fn q2_0_block_sum(sum: f32, wb: &[u8], ab: &[u8], s: [i32; 2]) -> f32 {
    let mut sumi = 0f32;
    sumi += s[0] as f32 * d_of(ab);
    sumi += s[1] as f32 * d_of(&ab[q8_0::BLOCK_BYTES..]);
    sum + d_of(wb) * sumi
}

/// Q1_0 weights . Q8_0 activations on the CPU's level (`isa::best_isa`).
pub fn dot_q1_0_q8_0(w: &[u8], a: &[u8]) -> f32 {
    dot_q1_0_q8_0_isa(best_isa(), w, a)
}

/// Q1_0 weights (one row of 128-value blocks) . Q8_0 activations, as the reference's x86 AVX2
/// kernel: per Q8_0 block, the activations with the sign of their weight bit summed exactly
/// into the usual eight lanes (`lane`), where a clear bit negates an int8 with wrap-around (so
/// -128 stays -128, as the kernel's byte negation does); per lane, `blk = d1_0 * l0`, then
/// `blk = fma(d1_k, l_k, blk)` for the other three, then `acc = fma(d, blk, acc)`; `hsum8` at
/// the end.
pub fn dot_q1_0_q8_0_isa(isa: Isa, w: &[u8], a: &[u8]) -> f32 {
    debug_assert_eq!(w.len() / q1_0::BLOCK_BYTES * Q1_0_ACT_BYTES, a.len());
    match isa {
        // SAFETY: the level was detected (kernels::isa) before being chosen.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni | Isa::Amx => unsafe { x86::dot_q1_0_q8_0_vnni(w, a) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::dot_q1_0_q8_0_avx2(w, a) },
        _ => {
            let mut acc = [0f32; 8];
            for (wb, ab) in w
                .chunks_exact(q1_0::BLOCK_BYTES)
                .zip(a.chunks_exact(Q1_0_ACT_BYTES))
            {
                let mut blk = [0f32; 8];
                for (k, yb) in ab.chunks_exact(q8_0::BLOCK_BYTES).enumerate() {
                    let mut lanes = [0i32; 8];
                    for (e, &q) in yb[2..].iter().enumerate() {
                        let q = q as i8;
                        let v = if q1_0::bit(wb, 32 * k + e) {
                            q
                        } else {
                            q.wrapping_neg()
                        };
                        lanes[lane(e)] += v as i32;
                    }
                    let d1 = d_of(yb);
                    for u in 0..8 {
                        blk[u] = if k == 0 {
                            d1 * lanes[u] as f32
                        } else {
                            d1.mul_add(lanes[u] as f32, blk[u])
                        };
                    }
                }
                let d = d_of(wb);
                for u in 0..8 {
                    acc[u] = d.mul_add(blk[u], acc[u]);
                }
            }
            hsum8(acc)
        }
    }
}

/// The vector levels of the Q1_0 / Q2_0 dot products. Each level differs only in how four
/// bytes are summed into an int32 lane (AVX2: `maddubs` then `madd`; AVX-512 VNNI: `dpbusd`).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{d_of, hsum8_avx, q2_0_block_sum, Q1_0_ACT_BYTES, Q2_0_ACT_BYTES};
    use crate::quant::{q1_0, q2_0, q8_0};
    use std::arch::x86_64::*;

    /// Lane u of the result: bytes 4u..4u+3 of `u8s` (unsigned) times those of `i8s` (signed),
    /// summed, with AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn sum4_avx2(u8s: __m256i, i8s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u8s, i8s), _mm256_set1_epi16(1))
    }

    /// `sum4_avx2` in one AVX-512 VNNI instruction.
    #[target_feature(enable = "avx512f,avx512vl,avx512vnni")]
    #[inline]
    fn sum4_vnni(u8s: __m256i, i8s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u8s, i8s)
    }

    /// The sum of eight int32 lanes (exact in any order).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn hsum_i32(v: __m256i) -> i32 {
        let x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0b01_00_11_10));
        let x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0b10_11_00_01));
        _mm_cvtsi128_si32(x)
    }

    /// The 32 codes of half `k` of a Q2_0 block, one per byte, in value order: the 8 code bytes
    /// broadcast, shifted by 0/2/4/6 per 64-bit lane (lane i then holds value 4b + i of byte b
    /// in its byte b), then transposed back to value order.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn q2_0_codes(block: &[u8], k: usize) -> __m256i {
        let b = &block[2 + 8 * k..10 + 8 * k];
        let bytes = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let planes = _mm256_and_si256(
            _mm256_srlv_epi64(
                _mm256_set1_epi64x(bytes as i64),
                _mm256_setr_epi64x(0, 2, 4, 6),
            ),
            _mm256_set1_epi8(3),
        );
        // dwords (plane i, bytes 4h..4h+3) to 128-bit lane h, plane order; then within a lane
        // byte 4i + r (value 4r + i) goes to byte 4r + i.
        let by_half =
            _mm256_permutevar8x32_epi32(planes, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        let transpose = _mm256_setr_epi8(
            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6,
            10, 14, 3, 7, 11, 15,
        );
        _mm256_shuffle_epi8(by_half, transpose)
    }

    /// The 32 int8 values of a Q8_0 block.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn q8_0_values(block: &[u8]) -> __m256i {
        let q = &block[2..q8_0::BLOCK_BYTES];
        // SAFETY: 32 bytes at q.
        unsafe { _mm256_loadu_si256(q.as_ptr().cast()) }
    }

    macro_rules! q2_0_kernel {
        ($name:ident, $features:literal, $sum4:ident) => {
            /// `dot_q2_0_q8_0_isa` at one vector level.
            ///
            /// # Safety
            /// The CPU has the features named.
            #[target_feature(enable = $features)]
            pub unsafe fn $name(w: &[u8], a: &[u8]) -> f32 {
                let ones = _mm256_set1_epi8(1);
                let mut sum = 0f32;
                for (wb, ab) in w
                    .chunks_exact(q2_0::BLOCK_BYTES)
                    .zip(a.chunks_exact(Q2_0_ACT_BYTES))
                {
                    let mut s = [0i32; 2];
                    for (k, s) in s.iter_mut().enumerate() {
                        let q = q8_0_values(&ab[k * q8_0::BLOCK_BYTES..]);
                        // sum(code * q) - sum(q) = sum((code - 1) * q), each lane exact
                        let lanes = _mm256_sub_epi32($sum4(q2_0_codes(wb, k), q), $sum4(ones, q));
                        *s = hsum_i32(lanes);
                    }
                    sum = q2_0_block_sum(sum, wb, ab, s);
                }
                sum
            }
        };
    }
    q2_0_kernel!(dot_q2_0_q8_0_avx2, "avx2", sum4_avx2);
    q2_0_kernel!(
        dot_q2_0_q8_0_vnni,
        "avx2,avx512f,avx512vl,avx512vnni",
        sum4_vnni
    );

    macro_rules! q1_0_kernel {
        ($name:ident, $features:literal, $sum4:ident) => {
            /// `dot_q1_0_q8_0_isa` at one vector level.
            ///
            /// # Safety
            /// The CPU has the features named.
            #[target_feature(enable = $features)]
            pub unsafe fn $name(w: &[u8], a: &[u8]) -> f32 {
                let ones = _mm256_set1_epi8(1);
                // byte e of a Q8_0 block takes bit e % 8 of code byte e / 8
                let spread = _mm256_setr_epi8(
                    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                    3, 3, 3, 3, 3, 3,
                );
                let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
                let mut acc = _mm256_setzero_ps();
                for (wb, ab) in w
                    .chunks_exact(q1_0::BLOCK_BYTES)
                    .zip(a.chunks_exact(Q1_0_ACT_BYTES))
                {
                    let mut blk = _mm256_setzero_ps();
                    for (k, yb) in ab.chunks_exact(q8_0::BLOCK_BYTES).enumerate() {
                        let m = &wb[2 + 4 * k..6 + 4 * k];
                        let m = i32::from_le_bytes([m[0], m[1], m[2], m[3]]);
                        let set = _mm256_and_si256(
                            _mm256_shuffle_epi8(_mm256_set1_epi32(m), spread),
                            bit,
                        );
                        // -1 where the bit is clear: (q ^ -1) - (-1) = -q, wrapping
                        let neg = _mm256_cmpeq_epi8(set, _mm256_setzero_si256());
                        let q = q8_0_values(yb);
                        let signed = _mm256_sub_epi8(_mm256_xor_si256(q, neg), neg);
                        let lanes = _mm256_cvtepi32_ps($sum4(ones, signed));
                        let d1 = _mm256_set1_ps(d_of(yb));
                        blk = if k == 0 {
                            _mm256_mul_ps(d1, lanes)
                        } else {
                            _mm256_fmadd_ps(d1, lanes, blk)
                        };
                    }
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(d_of(wb)), blk, acc);
                }
                // SAFETY: AVX is part of every level here.
                unsafe { hsum8_avx(acc) }
            }
        };
    }
    q1_0_kernel!(dot_q1_0_q8_0_avx2, "avx2,fma", sum4_avx2);
    q1_0_kernel!(
        dot_q1_0_q8_0_vnni,
        "avx2,fma,avx512f,avx512vl,avx512vnni",
        sum4_vnni
    );
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

    /// Q1_0 (`q1 = true`) or Q2_0 weight rows of `n` values: random bytes (every code, Q2_0's
    /// +2 included) with random finite scales, and uniform rows (every value -1, +1, +2).
    fn q1_q2_rows(q1: bool, n: usize, rng: &mut SplitMix64) -> Vec<Vec<u8>> {
        let (block, bb) = if q1 { (128, 18) } else { (64, 18) };
        let scale = |rng: &mut SplitMix64| {
            let m = 10f32.powf(rng.unit() * 8.0 - 6.0);
            let m = if rng.below(2) == 0 { m } else { -m };
            crate::quant::float::f32_to_f16(if rng.below(10) == 0 { 0.0 } else { m })
        };
        let mut rows = Vec::new();
        let mut random = vec![0u8; n / block * bb];
        for b in random.chunks_exact_mut(bb) {
            b[..2].copy_from_slice(&scale(rng).to_le_bytes());
            b[2..].iter_mut().for_each(|v| *v = rng.next_u64() as u8);
        }
        rows.push(random);
        for fill in [0x00u8, 0x55, 0xaa, 0xff] {
            let mut r = vec![fill; n / block * bb];
            for b in r.chunks_exact_mut(bb) {
                b[..2].copy_from_slice(&0x3c00u16.to_le_bytes());
            }
            rows.push(r);
        }
        rows
    }

    /// Q8_0 activation rows of `n` values: the activation quantizer on normal, big, tiny
    /// (subnormal: every code -128), zero and constant inputs, and raw random blocks.
    fn q8_0_rows(n: usize, rng: &mut SplitMix64) -> Vec<Vec<u8>> {
        let mut inputs: Vec<Vec<f32>> = vec![
            (0..n).map(|_| rng.normal()).collect(),
            (0..n).map(|_| rng.normal() * 1e30).collect(),
            (0..n).map(|_| rng.normal() * 1e-39).collect(),
            vec![0.0; n],
            vec![-1.0; n],
            vec![1.0; n],
        ];
        inputs.push(
            (0..n)
                .map(|i| if i % 3 == 0 { -127.0 } else { 0.5 })
                .collect(),
        );
        let mut rows: Vec<Vec<u8>> = inputs
            .iter()
            .map(|x| {
                let mut a = vec![0u8; n / 32 * 34];
                crate::kernels::quantize_q8_0(x, &mut a);
                a
            })
            .collect();
        let mut raw = vec![0u8; n / 32 * 34];
        for b in raw.chunks_exact_mut(34) {
            let d = crate::quant::float::f32_to_f16(rng.normal() * 1e-2);
            b[..2].copy_from_slice(&d.to_le_bytes());
            b[2..].iter_mut().for_each(|v| *v = rng.next_u64() as u8);
        }
        rows.push(raw);
        rows
    }

    #[test]
    fn q1_0_q2_0_every_level_matches_the_scalar_bits() {
        use crate::kernels::isa::available_isas;
        let mut rng = SplitMix64(0x5150_2000);
        for q1 in [true, false] {
            let block = if q1 { 128 } else { 64 };
            // odd block counts, one block, a model-sized row
            for blocks in [1usize, 3, 7, 40, 2560 / block + 1] {
                let n = blocks * block;
                let acts = q8_0_rows(n, &mut rng);
                for (wi, w) in q1_q2_rows(q1, n, &mut rng).iter().enumerate() {
                    for (ai, a) in acts.iter().enumerate() {
                        let dot = |isa| {
                            if q1 {
                                dot_q1_0_q8_0_isa(isa, w, a)
                            } else {
                                dot_q2_0_q8_0_isa(isa, w, a)
                            }
                        };
                        let want = dot(Isa::Scalar);
                        for isa in available_isas() {
                            let got = dot(isa);
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "q1 {q1} n {n} w {wi} a {ai} {isa:?}: {got:e} vs {want:e}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn q1_0_q2_0_dots_agree_with_dequantized_sums() {
        let mut rng = SplitMix64(77);
        for (ty, block) in [(GgmlType::Q1_0, 128usize), (GgmlType::Q2_0, 64)] {
            let n = block * 9;
            for case in 0..10 {
                let x: Vec<f32> = (0..n).map(|_| rng.normal() * (1 + case) as f32).collect();
                let wv: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
                let mut a = vec![0u8; n / 32 * 34];
                crate::kernels::quantize_q8_0(&x, &mut a);
                let mut w = vec![0u8; ty.tensor_bytes(n as u64).unwrap() as usize];
                quant::quantize(ty, &wv, &mut w).unwrap();
                let ours = match ty {
                    GgmlType::Q1_0 => dot_q1_0_q8_0(&w, &a),
                    _ => dot_q2_0_q8_0(&w, &a),
                } as f64;
                let want = reference(ty, &w, GgmlType::Q8_0, &a, n);
                assert!(
                    (ours - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{ty}: {ours} vs {want}"
                );
            }
        }
    }

    #[test]
    fn q1_0_negates_minus_128_with_wrap_around() {
        // Every bit clear (-1 weights), every activation -128 with d = 1: the reference's x86
        // kernel negates the bytes, and -(-128) wraps to -128, so the sum is -128 * 128, not
        // +128 * 128. Q2_0's code 0 (-1) has no such wrap: its products are exact.
        let w = [0x00u8, 0x3c]
            .into_iter()
            .chain([0u8; 16])
            .collect::<Vec<u8>>();
        let a: Vec<u8> = (0..4)
            .flat_map(|_| [0x00u8, 0x3c].into_iter().chain([0x80u8; 32]))
            .collect();
        for isa in crate::kernels::isa::available_isas() {
            assert_eq!(dot_q1_0_q8_0_isa(isa, &w, &a), -16384.0, "{isa:?}");
        }
        let w2: Vec<u8> = (0..2).flat_map(|_| w.iter().copied()).collect();
        for isa in crate::kernels::isa::available_isas() {
            assert_eq!(dot_q2_0_q8_0_isa(isa, &w2, &a), 16384.0, "{isa:?}");
        }
    }
}
