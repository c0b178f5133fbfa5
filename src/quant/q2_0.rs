//! Q2_0 (ggml type 42, PrismML's Bonsai models): blocks of 64 values, an f16 scale `d` then
//! sixteen bytes of 2-bit codes; value = d * (code - 1).
//!
//! ```text
//! bytes 0..2   d, f16 little-endian
//! bytes 2..18  qs: four 2-bit codes per byte
//! ```
//!
//! Value j (0..64) of a block is in byte `2 + j / 4`, bits `2 * (j % 4)` and up: four
//! consecutive values per byte, the first in the low bits (unlike TQ2_0, whose bytes hold values
//! 32 apart). Codes: 0 = -1, 1 = 0, 2 = +1, 3 = +2. Code 3 is a legal value here (the writer
//! produces it for a value of about twice the scale, which its rule below never meets, but
//! readers must take it as +2).
//!
//! `quantize` writes what the reference's `quantize_row_q2_0_ref` writes: `d` is the largest
//! |x| of the block found by "greater than" comparisons (so a NaN never becomes it), `1/d`
//! (0 when `d` is not positive), each code `trunc_i32(round_half_away(x * (1/d))) + 1` clamped
//! to 0..=3, where the float -> int32 conversion is x86's (NaN and out-of-range give i32::MIN,
//! so code 0), and `d` stored rounded to f16.

use super::float::f32_to_f16;

pub const BLOCK: usize = 64;
pub const BLOCK_BYTES: usize = 18;

/// The unsigned code (0..=3, value code - 1) of element `j` of one block.
pub fn code(block: &[u8], j: usize) -> i32 {
    ((block[2 + j / 4] >> (2 * (j % 4))) & 3) as i32
}

/// Dequantizes whole Q2_0 blocks: `out[j] = (code - 1) as f32 * d`.
pub fn dequantize(data: &[u8], out: &mut [f32]) {
    for (block, out) in super::blocks_out(data, BLOCK_BYTES, out, BLOCK) {
        let d = super::f16_at(block, 0);
        for (j, o) in out.iter_mut().enumerate() {
            *o = (code(block, j) - 1) as f32 * d;
        }
    }
}

/// x86's truncating float -> int32 conversion (`cvttss2si`): NaN and values outside the int32
/// range give i32::MIN. The reference's C `(int)` cast compiles to it.
pub(crate) fn x86_f32_to_i32(v: f32) -> i32 {
    if v.is_nan() || !(-2147483648.0..2147483648.0).contains(&v) {
        i32::MIN
    } else {
        v as i32
    }
}

/// Quantizes whole blocks of 64 values into Q2_0 blocks, as the reference's writer.
pub fn quantize(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(x.len() / BLOCK * BLOCK_BYTES, out.len());
    for (values, block) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let mut d = 0f32;
        for &v in values {
            if v.abs() > d {
                d = v.abs();
            }
        }
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        block[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        block[2..].fill(0);
        for (j, &v) in values.iter().enumerate() {
            let q = x86_f32_to_i32((v * id).round()).wrapping_add(1).clamp(0, 3);
            block[2 + j / 4] |= (q as u8) << (2 * (j % 4));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::testing::{dequantize_vec, quantize_vec};
    use crate::quant::GgmlType;
    use crate::rng::SplitMix64;

    /// The format under test, for the shared helpers.
    const TY: GgmlType = GgmlType::Q2_0;

    fn block_of(byte: u8, d_bits: u16) -> Vec<u8> {
        let mut b = d_bits.to_le_bytes().to_vec();
        b.extend_from_slice(&[byte; 16]);
        b
    }

    #[test]
    fn uniform_bytes() {
        // d = 0.5; 0x00: all -1, 0x55: all 0, 0xaa: all +1, 0xff: all +2
        for (byte, want) in [(0x00u8, -0.5f32), (0x55, 0.0), (0xaa, 0.5), (0xff, 1.0)] {
            let out = dequantize_vec(TY, &block_of(byte, 0x3800));
            assert!(out.iter().all(|&v| v == want), "{byte:#04x}");
        }
        assert_eq!(quantize_vec(TY, &[-0.5; 64]), block_of(0x00, 0x3800));
        assert_eq!(quantize_vec(TY, &[0.0; 64]), block_of(0x55, 0x0000));
        assert_eq!(quantize_vec(TY, &[0.5; 64]), block_of(0xaa, 0x3800));
    }

    #[test]
    fn one_value_set_in_each_slot() {
        // byte b holds values 4b (bits 1:0), 4b+1 (3:2), 4b+2 (5:4), 4b+3 (7:6)
        for j in 0..64 {
            let mut b = block_of(0x55, 0x3c00);
            b[2 + j / 4] = (0x55 & !(3 << (2 * (j % 4)))) | (2 << (2 * (j % 4)));
            let out = dequantize_vec(TY, &b);
            for (i, &v) in out.iter().enumerate() {
                assert_eq!(v, if i == j { 1.0 } else { 0.0 }, "j {j}");
            }
            let mut x = [0f32; 64];
            x[j] = 1.0;
            assert_eq!(quantize_vec(TY, &x), b);
        }
    }

    #[test]
    fn random_ternary_round_trip_exactly() {
        let mut rng = SplitMix64(0x0102_0304_0506_0708);
        for scale in [1.0f32, 0.0625, -3.5, 1e-3] {
            let x: Vec<f32> = (0..64 * 9)
                .map(|_| (rng.below(3) as f32 - 1.0) * scale)
                .collect();
            let y = dequantize_vec(TY, &quantize_vec(TY, &x));
            let d = crate::quant::float::f16_to_f32(f32_to_f16(scale.abs()));
            for (a, b) in x.iter().zip(&y) {
                assert_eq!(*b, a.signum() * d * (*a != 0.0) as i32 as f32);
            }
        }
    }

    #[test]
    fn rounding_and_edges() {
        // half away from zero; |x| / d never exceeds 1, so code 3 is never written
        let mut x = [0f32; 64];
        x[0] = 1.0;
        x[1] = 0.5;
        x[2] = -0.5;
        x[3] = 0.49999997;
        let y = dequantize_vec(TY, &quantize_vec(TY, &x));
        assert_eq!(&y[..4], &[1.0, 1.0, -1.0, 0.0]);
        // a negative max: d = 9
        let mut x = [0.1f32; 64];
        x[9] = -9.0;
        let b = quantize_vec(TY, &x);
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), f32_to_f16(9.0));
        assert_eq!((b[2 + 2] >> 2) & 3, 0);
        // big values: d overflows f16 to infinity; the codes are computed in f32
        let mut x = [1e30f32; 64];
        x[1] = -1e30;
        x[2] = 1e29;
        let b = quantize_vec(TY, &x);
        assert_eq!(&b[..2], &0x7c00u16.to_le_bytes());
        assert_eq!(b[2], 0b10_01_00_10);
    }

    #[test]
    fn non_finite_inputs_follow_the_reference() {
        // NaN never becomes the max; its own code is x86's NaN conversion (i32::MIN + 1 -> 0)
        let mut x = [0.5f32; 64];
        x[0] = f32::NAN;
        let b = quantize_vec(TY, &x);
        assert_eq!(&b[..2], &0x3800u16.to_le_bytes());
        assert_eq!(b[2], 0b10_10_10_00);
        // an infinite max: 1/d = 0, finite values become code 1, the infinity 0 * inf = NaN
        x[0] = f32::INFINITY;
        let b = quantize_vec(TY, &x);
        assert_eq!(&b[..2], &0x7c00u16.to_le_bytes());
        assert_eq!(b[2], 0b01_01_01_00);
        // a subnormal max: 1/d is infinite; x * inf is +-inf (code 0), 0 * inf NaN (code 0)
        let mut x = [0f32; 64];
        x[0] = 1e-45;
        x[1] = -1e-45;
        let b = quantize_vec(TY, &x);
        assert!(b[2..].iter().all(|&v| v == 0));
        // an all-NaN block: d = 0, 1/d = 0, NaN * 0 = NaN: every code 0
        let b = quantize_vec(TY, &[f32::NAN; 64]);
        assert_eq!(b, vec![0u8; 18]);
    }

    #[test]
    fn dequantize_any_bytes() {
        let mut rng = SplitMix64(5);
        let data: Vec<u8> = (0..BLOCK_BYTES * 7).map(|_| rng.next_u64() as u8).collect();
        let out = dequantize_vec(TY, &data);
        for (block, out) in data.chunks(BLOCK_BYTES).zip(out.chunks(BLOCK)) {
            let d = crate::quant::float::f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
            for (j, o) in out.iter().enumerate() {
                let c = (block[2 + j / 4] >> (2 * (j % 4))) & 3;
                assert_eq!(o.to_bits(), ((c as i32 - 1) as f32 * d).to_bits());
            }
        }
    }
}
