//! Q8_0 (ggml type 8): blocks of 32 values, each block an f16 scale `d` then 32 signed bytes
//! `q`; value = q * d.
//!
//! ```text
//! bytes 0..2   d, f16 little-endian
//! bytes 2..34  q[0..32], i8
//! ```
//!
//! `quantize` writes the same bytes as gguf-py's `Q8_0.quantize_blocks` (itself bit-exact with
//! ggml's `quantize_row_q8_0_ref`): `d = max|x| / 127` in f32, `q = round_half_away(x * (1/d))`
//! (with `1/d` taken as 0 when `d` is 0), and `d` stored rounded to f16.

use super::float::{abs_max_like_numpy, f32_to_f16, round_to_i8_like_numpy};

pub const BLOCK: usize = 32;
pub const BLOCK_BYTES: usize = 34;

/// Dequantizes whole Q8_0 blocks: `out[i] = q[i] as f32 * d`.
pub fn dequantize(data: &[u8], out: &mut [f32]) {
    for (block, out) in super::blocks_out(data, BLOCK_BYTES, out, BLOCK) {
        let d = super::f16_at(block, 0);
        for (&q, o) in block[2..].iter().zip(out.iter_mut()) {
            *o = (q as i8) as f32 * d;
        }
    }
}

/// Quantizes whole blocks of 32 values into Q8_0 blocks.
pub fn quantize(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(x.len() / BLOCK * BLOCK_BYTES, out.len());
    for (values, block) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let d = abs_max_like_numpy(values) / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        block[0..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        for (&v, q) in values.iter().zip(block[2..].iter_mut()) {
            *q = round_to_i8_like_numpy(v * id) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::float::f16_to_f32;
    use crate::quant::testing::{dequantize_vec, quantize_vec};
    use crate::quant::GgmlType;
    use crate::rng::SplitMix64;

    /// The format under test, for the shared helpers.
    const TY: GgmlType = GgmlType::Q8_0;

    #[test]
    fn dequantize_hand_built_block() {
        let mut block = [0u8; BLOCK_BYTES];
        block[0..2].copy_from_slice(&0x3800u16.to_le_bytes()); // d = 0.5
        block[2] = 0x7f; // 127
        block[3] = 0x80; // -128
        block[4] = 0xff; // -1
        block[5] = 2;
        let out = dequantize_vec(TY, &block);
        assert_eq!(&out[..5], &[63.5, -64.0, -0.5, 1.0, 0.0]);
        assert!(out[4..].iter().all(|&v| v == 0.0 && v.is_sign_positive()));
    }

    #[test]
    fn quantize_matches_gguf_py_vectors() {
        // x[i] = (i - 13) * 0.37 for i in 0..32, quantized by gguf-py (gguf 0.19.0).
        let x: Vec<f32> = (0..32).map(|i| (i as f32 - 13.0) * 0.37).collect();
        let want: [u8; 34] = [
            0xb6, 0x2a, 0xa4, 0xab, 0xb2, 0xb9, 0xc1, 0xc8, 0xcf, 0xd6, 0xdd, 0xe4, 0xeb, 0xf2,
            0xf9, 0x00, 0x07, 0x0e, 0x15, 0x1c, 0x23, 0x2a, 0x31, 0x38, 0x3f, 0x47, 0x4e, 0x55,
            0x5c, 0x63, 0x6a, 0x71, 0x78, 0x7f,
        ];
        assert_eq!(quantize_vec(TY, &x), want);
    }

    #[test]
    fn quantize_rounds_half_away_from_zero() {
        // max 127 gives d = 1, so x * (1/d) = x exactly and the rounding shows directly.
        let mut x = [0f32; 32];
        x[0] = 127.0;
        x[1] = 0.5;
        x[2] = -0.5;
        x[3] = 1.5;
        x[4] = -2.5;
        x[5] = 0.49999997;
        let q = quantize_vec(TY, &x);
        assert_eq!(&q[0..2], &0x3c00u16.to_le_bytes());
        let q: Vec<i8> = q[2..].iter().map(|&b| b as i8).collect();
        assert_eq!(&q[..7], &[127, 1, -1, 2, -3, 0, 0]);
    }

    #[test]
    fn edge_blocks() {
        // all zeros: d = 0, q = 0
        assert_eq!(quantize_vec(TY, &[0.0; 32]), vec![0u8; 34]);
        // all equal: every q is +-127
        let q = quantize_vec(TY, &[-3.0; 32]);
        assert!(q[2..].iter().all(|&b| b as i8 == -127));
        let q = quantize_vec(TY, &[2.0; 32]);
        assert!(q[2..].iter().all(|&b| b as i8 == 127));
        // negative max works the same as positive
        let mut x = [0.25f32; 32];
        x[7] = -1000.0;
        let q = quantize_vec(TY, &x);
        assert_eq!(q[2 + 7] as i8, -127);
        // big values: d overflows f16 to infinity, the codes are still computed in f32
        let mut x = [1e30f32; 32];
        x[1] = -5e29;
        let q = quantize_vec(TY, &x);
        assert_eq!(u16::from_le_bytes([q[0], q[1]]), 0x7c00);
        assert_eq!(q[2] as i8, 127);
        assert_eq!(q[3] as i8, -64);
    }

    #[test]
    fn non_finite_inputs_do_not_panic() {
        let mut x = [1.0f32; 32];
        x[3] = f32::NAN;
        let q = quantize_vec(TY, &x);
        // gguf-py: NaN max -> d NaN (f16 0x7e00), every code 0
        assert_eq!(u16::from_le_bytes([q[0], q[1]]), 0x7e00);
        assert!(q[2..].iter().all(|&b| b == 0));
        x[3] = f32::INFINITY;
        let q = quantize_vec(TY, &x);
        assert_eq!(u16::from_le_bytes([q[0], q[1]]), 0x7c00);
        assert!(q[2..].iter().all(|&b| b == 0));
        // a subnormal max: 1/d overflows, gguf-py's codes all become 0
        let q = quantize_vec(TY, &[1e-40; 32]);
        assert!(q[2..].iter().all(|&b| b == 0));
    }

    #[test]
    fn random_round_trip_error_is_within_half_a_step() {
        let mut rng = SplitMix64(0x9e37_79b9_7f4a_7c15);
        let x: Vec<f32> = (0..32 * 64)
            .map(|i| (rng.unit() * 2.0 - 1.0) * (1 + i % 7) as f32)
            .collect();
        let y = dequantize_vec(TY, &quantize_vec(TY, &x));
        for (xb, yb) in x.chunks(32).zip(y.chunks(32)) {
            let max = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = max / 127.0;
            for (a, b) in xb.iter().zip(yb) {
                // half a step, plus the f16 rounding of d (relative 2^-11) times 127 steps
                assert!((a - b).abs() <= d * 0.5 + max * 1e-3, "{a} {b}");
            }
        }
    }

    #[test]
    fn dequantize_any_bytes_without_panicking() {
        let mut rng = SplitMix64(7);
        let data: Vec<u8> = (0..BLOCK_BYTES * 16)
            .map(|_| rng.next_u64() as u8)
            .collect();
        let out = dequantize_vec(TY, &data);
        for (block, out) in data.chunks(BLOCK_BYTES).zip(out.chunks(BLOCK)) {
            let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
            for (q, o) in block[2..].iter().zip(out) {
                assert_eq!(o.to_bits(), ((*q as i8) as f32 * d).to_bits());
            }
        }
    }
}
