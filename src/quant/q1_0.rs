//! Q1_0 (ggml type 41, PrismML's 1-bit Bonsai models): blocks of 128 values, an f16 scale `d`
//! then sixteen bytes of sign bits; value = +d where the bit is set, -d where it is clear.
//!
//! ```text
//! bytes 0..2   d, f16 little-endian
//! bytes 2..18  qs: value j at byte 2 + j / 8, bit j % 8 (lowest bit first)
//! ```
//!
//! `quantize` writes what the reference's `quantize_row_q1_0_ref` writes: `d` is the mean of
//! |x| over the block (summed in f32 in order, then divided by 128), stored rounded to f16; the
//! bit is set where `x >= 0` (so -0.0 counts as positive and NaN as negative).

use super::float::f32_to_f16;

pub const BLOCK: usize = 128;
pub const BLOCK_BYTES: usize = 18;

/// Whether element `j` of one block is +d (else -d).
pub fn bit(block: &[u8], j: usize) -> bool {
    (block[2 + j / 8] >> (j % 8)) & 1 == 1
}

/// Dequantizes whole Q1_0 blocks. A signaling-NaN scale comes out quiet (its payload kept), as
/// the reference's f16 conversion (x86 F16C) gives it; the other formats multiply the scale,
/// which quiets it anyway.
pub fn dequantize(data: &[u8], out: &mut [f32]) {
    for (block, out) in super::blocks_out(data, BLOCK_BYTES, out, BLOCK) {
        let d = super::f16_at(block, 0);
        let d = if d.is_nan() {
            f32::from_bits(d.to_bits() | 0x0040_0000)
        } else {
            d
        };
        for (j, o) in out.iter_mut().enumerate() {
            *o = if bit(block, j) { d } else { -d };
        }
    }
}

/// Quantizes whole blocks of 128 values into Q1_0 blocks, as the reference's writer.
pub fn quantize(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(x.len() / BLOCK * BLOCK_BYTES, out.len());
    for (values, block) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let mut sum = 0f32;
        for &v in values {
            sum += v.abs();
        }
        let d = sum / BLOCK as f32;
        block[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        block[2..].fill(0);
        for (j, &v) in values.iter().enumerate() {
            if v >= 0.0 {
                block[2 + j / 8] |= 1 << (j % 8);
            }
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
    const TY: GgmlType = GgmlType::Q1_0;

    fn block_of(byte: u8, d_bits: u16) -> Vec<u8> {
        let mut b = d_bits.to_le_bytes().to_vec();
        b.extend_from_slice(&[byte; 16]);
        b
    }

    #[test]
    fn uniform_bytes() {
        for (byte, want) in [(0x00u8, -0.5f32), (0xff, 0.5)] {
            let out = dequantize_vec(TY, &block_of(byte, 0x3800));
            assert!(out.iter().all(|&v| v == want), "{byte:#04x}");
        }
        assert_eq!(quantize_vec(TY, &[-0.5; 128]), block_of(0x00, 0x3800));
        assert_eq!(quantize_vec(TY, &[0.5; 128]), block_of(0xff, 0x3800));
        // zeros (either sign) are non-negative: all bits set, d = 0
        assert_eq!(quantize_vec(TY, &[0.0; 128]), block_of(0xff, 0x0000));
        assert_eq!(quantize_vec(TY, &[-0.0; 128]), block_of(0xff, 0x0000));
    }

    #[test]
    fn one_value_set_in_each_slot() {
        for j in 0..128 {
            let mut x = [-1f32; 128];
            x[j] = 1.0;
            let b = quantize_vec(TY, &x);
            let mut want = block_of(0x00, 0x3c00);
            want[2 + j / 8] = 1 << (j % 8);
            assert_eq!(b, want, "j {j}");
            let y = dequantize_vec(TY, &b);
            assert_eq!(y, x.to_vec());
        }
    }

    #[test]
    fn scale_is_the_mean_magnitude() {
        let mut rng = SplitMix64(3);
        let x: Vec<f32> = (0..128 * 5).map(|_| rng.normal()).collect();
        let b = quantize_vec(TY, &x);
        for (xb, bb) in x.chunks(128).zip(b.chunks(18)) {
            let mut s = 0f32;
            for v in xb {
                s += v.abs();
            }
            assert_eq!(u16::from_le_bytes([bb[0], bb[1]]), f32_to_f16(s / 128.0));
            let y = dequantize_vec(TY, bb);
            let d = f16_to_f32(f32_to_f16(s / 128.0));
            for (a, b) in xb.iter().zip(&y) {
                assert_eq!(*b, if *a >= 0.0 { d } else { -d });
            }
        }
    }

    #[test]
    fn non_finite_inputs() {
        // NaN: its bit is clear, and the sum (so d) is NaN; an infinity makes d infinite
        let mut x = [1f32; 128];
        x[0] = f32::NAN;
        let b = quantize_vec(TY, &x);
        assert_eq!(&b[..2], &0x7e00u16.to_le_bytes());
        assert_eq!(b[2], 0xfe);
        x[0] = f32::NEG_INFINITY;
        let b = quantize_vec(TY, &x);
        assert_eq!(&b[..2], &0x7c00u16.to_le_bytes());
        assert_eq!(b[2], 0xfe);
        // a signaling-NaN scale (f16 0x7d01) reads back quiet, payload kept, either sign
        let mut b = block_of(0x01, 0x7d01);
        b[2] = 0x01;
        let y = dequantize_vec(TY, &b);
        assert_eq!((y[0].to_bits(), y[1].to_bits()), (0x7fe0_2000, 0xffe0_2000));
        // big finite values: the f32 sum overflows to infinity too
        let b = quantize_vec(TY, &[3e38; 128]);
        assert_eq!(&b[..2], &0x7c00u16.to_le_bytes());
    }
}
