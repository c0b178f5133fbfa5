//! Activation quantizers: each converts f32 activation rows into the partner format of a weight
//! type before the dot products (Q8_0 for Q8_0 weights, Q8_K for TQ1_0/TQ2_0/Q6_K, per-token
//! int8 for I2_S). The Q8_K one has an AVX-512 variant, byte-identical to its scalar reference
//! `quant::q8_k::quantize`; the ternary kernels' own activation layout is `ternary::ActBuf`.

use super::isa::{best_isa, Isa};
use crate::quant::float::f32_to_f16;
use crate::quant::{q8_0, q8_k};

/// Q8_0 activation blocks as the reference's x86 CPU path makes them (`from_float` for Q8_0):
/// d = max|x| / 127 stored as f16, q = round-half-even(x * (127 / max|x|)). This differs from
/// the file writer `quant::q8_0::quantize` (gguf-py's, rounding half away from zero).
pub fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if best_isa() >= Isa::Avx2 {
        // SAFETY: every level from Avx2 up has AVX2 (`kernels::isa`).
        return unsafe { x86::quantize_q8_0_avx2(x, out) };
    }
    quantize_q8_0_scalar(x, out)
}

/// `quantize_q8_0` value by value (the reference the vector path is tested against).
pub fn quantize_q8_0_scalar(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x
        .chunks_exact(q8_0::BLOCK)
        .zip(out.chunks_exact_mut(q8_0::BLOCK_BYTES))
    {
        let max = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max / 127.0;
        let id = if max != 0.0 { 127.0 / max } else { 0.0 };
        ob[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        for (o, &v) in ob[2..].iter_mut().zip(xb) {
            *o = x86_round_to_i8(v * id) as u8;
        }
    }
}

/// What x86's round-to-nearest-even, float -> int32 conversion and saturating packs give:
/// NaN, infinities and anything outside int32 become int32::MIN, so -128. (A block whose max is
/// subnormal has 127/max = inf, and every value of it, zeros included, comes out as -128.)
fn x86_round_to_i8(v: f32) -> i8 {
    let r = v.round_ties_even();
    if !(-2147483648.0..2147483648.0).contains(&r) {
        return -128;
    }
    (r as i32).clamp(-128, 127) as i8
}

/// Per-token int8 quantization for I2_S (docs/architectures.md): scale = 127 / max(1e-5, max|x|),
/// q = round-half-even(x * scale) clamped to [-128, 127].
pub fn quantize_i8_per_token(x: &[f32]) -> (Vec<i8>, i32, f32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = 127.0 / amax.max(1e-5);
    let q: Vec<i8> = x
        .iter()
        .map(|&v| (v * scale).round_ties_even().clamp(-128.0, 127.0) as i8)
        .collect();
    let sum = q.iter().map(|&v| v as i32).sum();
    (q, sum, scale)
}

/// Quantizes whole blocks of 256 values into Q8_K blocks: AVX-512 where the CPU has it, the
/// same bytes as the scalar reference `quant::q8_k::quantize`.
pub fn quantize_q8_k(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(x.len() / q8_k::BLOCK * q8_k::BLOCK_BYTES, out.len());
    #[cfg(target_arch = "x86_64")]
    if best_isa() >= Isa::Avx512Vnni {
        // SAFETY: every level from Avx512Vnni up has AVX-512F/BW (`kernels::isa`).
        return unsafe { x86::quantize_avx512(x, out) };
    }
    q8_k::quantize(x, out)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::quant::float::f32_to_f16;
    use crate::quant::q8_0;
    use crate::quant::q8_k::{BLOCK, BLOCK_BYTES, BSUMS, QS};
    use std::arch::x86_64::*;

    /// `quantize_q8_0_scalar` eight values at a time: the same max (NaNs never win: `vmaxps`
    /// returns its second operand, the running max, when the first is NaN), the same product,
    /// and `cvtps2dq` + saturating packs are the x86 rounding the scalar code spells out (NaN
    /// and out-of-range values become int32::MIN, so -128).
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_q8_0_avx2(x: &[f32], out: &mut [u8]) {
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (xb, ob) in x
            .chunks_exact(q8_0::BLOCK)
            .zip(out.chunks_exact_mut(q8_0::BLOCK_BYTES))
        {
            // SAFETY: four loads of eight values inside the 32-value block. (No closures here:
            // they would not inherit the function's target features.)
            let p = xb.as_ptr();
            let v = [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ];
            let mut m = _mm256_setzero_ps();
            for &vk in &v {
                m = _mm256_max_ps(_mm256_and_ps(vk, abs_mask), m);
            }
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), m);
            let max = lanes.iter().fold(0f32, |a, &b| a.max(b));
            let d = max / 127.0;
            let id = _mm256_set1_ps(if max != 0.0 { 127.0 / max } else { 0.0 });
            ob[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
            let q = [
                _mm256_cvtps_epi32(_mm256_mul_ps(v[0], id)),
                _mm256_cvtps_epi32(_mm256_mul_ps(v[1], id)),
                _mm256_cvtps_epi32(_mm256_mul_ps(v[2], id)),
                _mm256_cvtps_epi32(_mm256_mul_ps(v[3], id)),
            ];
            let bytes = _mm256_packs_epi16(
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            );
            let bytes = _mm256_permutevar8x32_epi32(bytes, order);
            // SAFETY: bytes 2..34 are the block's codes.
            unsafe { _mm256_storeu_si256(ob.as_mut_ptr().add(2) as *mut __m256i, bytes) };
        }
    }

    /// `quant::q8_k::quantize` sixteen values at a time: the same f32 operations per value (|v|,
    /// iscale * v, + 1.5 * 2^23, the mantissa bits), so the same bytes, NaN and inf included.
    ///
    /// # Safety
    /// The CPU has AVX-512F and AVX-512BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn quantize_avx512(x: &[f32], out: &mut [u8]) {
        let abs_mask = _mm512_set1_epi32(0x7fff_ffff);
        for (values, block) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
            // SAFETY: 16 loads of 16 values inside the 256-value block.
            let v: [__m512; 16] =
                std::array::from_fn(|k| unsafe { _mm512_loadu_ps(values.as_ptr().add(16 * k)) });
            let abs =
                |a: __m512| _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), abs_mask));
            // vmaxps returns its second operand when the first is NaN: NaNs never win, as in
            // the scalar `>` test.
            let mut m = _mm512_setzero_ps();
            for &vk in &v {
                m = _mm512_max_ps(abs(vk), m);
            }
            let amax = _mm512_reduce_max_ps(m);
            if amax == 0.0 {
                block.fill(0);
                continue;
            }
            // The first value of that magnitude, as the scalar loop keeps it.
            let amaxv = _mm512_set1_ps(amax);
            let mut max = 0.0f32;
            for (k, &vk) in v.iter().enumerate() {
                let hit = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(abs(vk), amaxv);
                if hit != 0 {
                    max = values[16 * k + hit.trailing_zeros() as usize];
                    break;
                }
            }
            let iscale = -127.0 / max;
            let (iscalev, magic) = (_mm512_set1_ps(iscale), _mm512_set1_ps(12_582_912.0));
            let (low, half) = (
                _mm512_set1_epi32(0x007f_ffff),
                _mm512_set1_epi32(0x0040_0000),
            );
            for (k, &vk) in v.iter().enumerate() {
                let sum = _mm512_add_ps(_mm512_mul_ps(iscalev, vk), magic);
                let q = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(sum), low), half);
                let q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
                // The low byte, as C's int8_t store; the group sum over those bytes.
                let bytes = _mm512_cvtepi32_epi8(q);
                // SAFETY: bytes 4 + 16k .. 4 + 16k + 16 lie inside the block's codes.
                unsafe {
                    _mm_storeu_si128(block.as_mut_ptr().add(QS + 16 * k) as *mut __m128i, bytes)
                };
                let total = _mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(bytes));
                block[BSUMS + 2 * k..BSUMS + 2 * k + 2]
                    .copy_from_slice(&(total as i16).to_le_bytes());
            }
            block[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::float::f16_to_f32;
    use crate::rng::SplitMix64;

    #[test]
    fn q8_0_vector_path_writes_the_scalar_bytes() {
        let mut rng = SplitMix64(31);
        for style in 0..7 {
            let x: Vec<f32> = (0..32 * 64)
                .map(|i| match style {
                    0 => rng.normal(),
                    1 => rng.normal() * 1e30,
                    2 => rng.normal() * 1e-39,
                    3 => 0.0,
                    4 if i % 37 == 3 => f32::NAN,
                    5 if i % 41 == 1 => f32::INFINITY * if i % 2 == 0 { 1.0 } else { -1.0 },
                    // exact halves: round-half-to-even decides
                    6 => (i % 64) as f32 - 31.5,
                    _ => rng.normal(),
                })
                .collect();
            let mut want = vec![0u8; 64 * 34];
            quantize_q8_0_scalar(&x, &mut want);
            let mut got = vec![0u8; 64 * 34];
            quantize_q8_0(&x, &mut got);
            assert!(got == want, "style {style}");
        }
    }

    #[test]
    fn q8_0_activations_round_half_to_even() {
        let mut x = [0f32; 32];
        x[0] = 127.0; // max 127: id = 1, d = 1
        x[1..5].copy_from_slice(&[2.5, 3.5, -2.5, -0.5]);
        let mut b = [0u8; 34];
        quantize_q8_0(&x, &mut b);
        assert_eq!(f16_to_f32(u16::from_le_bytes([b[0], b[1]])), 1.0);
        let q: Vec<i8> = b[2..7].iter().map(|&v| v as i8).collect();
        assert_eq!(q, vec![127, 2, 4, -2, 0]);
        let mut tiny = [1e-40f32; 32];
        tiny[1] = 0.0;
        tiny[2] = -1e-40;
        quantize_q8_0(&tiny, &mut b);
        assert!(
            b[2..].iter().all(|&v| v as i8 == -128),
            "127/max is inf: all -128"
        );
        let mut zeros = [0u8; 34];
        quantize_q8_0(&[0.0; 32], &mut zeros);
        assert!(zeros.iter().all(|&v| v == 0));
    }

    #[test]
    fn i8_per_token() {
        let (q, sum, scale) = quantize_i8_per_token(&[0.5, -1.0, 0.25, 0.0]);
        assert_eq!(scale, 127.0);
        assert_eq!(q, vec![64, -127, 32, 0]); // 63.5 rounds to even 64; 31.75 -> 32
        assert_eq!(sum, -31);
        let (q, _, scale) = quantize_i8_per_token(&[0.0; 8]);
        assert_eq!((q, scale), (vec![0; 8], 127.0 / 1e-5));
    }

    #[test]
    fn q8_k_simd_matches_scalar() {
        let mut rng = SplitMix64(0x9e37_79b9_7f4a_7c15);
        let mut x: Vec<f32> = (0..256 * 40)
            .map(|_| (rng.unit() * 2.0 - 1.0) * 8.0)
            .collect();
        // Edge blocks: NaNs, infinities, signed zeros, subnormals, ties of magnitude, halves.
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            1e-40,
            -1e-40,
            f32::MAX,
            -f32::MAX,
        ];
        for (b, &sp) in specials.iter().enumerate() {
            for i in (0..256).step_by(7 + b) {
                x[b * 256 + i] = sp;
            }
        }
        x[10 * 256..11 * 256].fill(f32::NAN);
        x[11 * 256..12 * 256].fill(0.0);
        x[12 * 256..13 * 256].fill(-0.0);
        for i in 0..256 {
            x[13 * 256 + i] = if i % 3 == 0 { -5.0 } else { 5.0 };
            x[14 * 256 + i] = (i as f32 - 128.0) * 0.5;
            x[15 * 256 + i] = if i == 200 { -3.0 } else { 1e-40 };
        }
        let mut want = vec![0u8; 40 * q8_k::BLOCK_BYTES];
        q8_k::quantize(&x, &mut want);
        let mut got = vec![1u8; 40 * q8_k::BLOCK_BYTES];
        quantize_q8_k(&x, &mut got);
        for (b, (g, w)) in got
            .chunks(q8_k::BLOCK_BYTES)
            .zip(want.chunks(q8_k::BLOCK_BYTES))
            .enumerate()
        {
            assert_eq!(g, w, "block {b}");
        }
    }
}
