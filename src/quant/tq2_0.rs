//! TQ2_0 (ggml type 35): ternary values in blocks of 256, 2 bits each, one f16 scale `d` per
//! block; value = d * (code - 1).
//!
//! ```text
//! bytes  0..64  qs: four 2-bit codes per byte
//! bytes 64..66  d, f16 little-endian
//! ```
//!
//! The block is two halves of 128 values. Value `r` (0..128) of half `h` is in byte
//! `32h + r % 32`, bits `2 * (r / 32)` and up (so byte j of a half holds values j, j+32, j+64
//! and j+96 from its low bits up). Codes: 0 = -1, 1 = 0, 2 = +1. Code 3 is never written; it
//! reads as +2 (d * (3 - 1)), as in gguf-py and ggml.
//!
//! `quantize` writes the same bytes as gguf-py's `TQ2_0.quantize_blocks`: `d = max|x|` over the
//! block, `t = round_half_away(x * (1/d))` (1/d taken as 0 when d is 0), `d` rounded to f16.

use super::float::{abs_max_like_numpy, f32_to_f16, round_to_i8_like_numpy};

pub const BLOCK: usize = 256;
pub const BLOCK_BYTES: usize = 66;

const D: usize = 64;

/// The byte (0..64) and bit shift of value `e` (0..256) of a block.
fn position(e: usize) -> (usize, usize) {
    let (h, r) = (e / 128, e % 128);
    (32 * h + r % 32, 2 * (r / 32))
}

/// The unsigned code (0..=3, value code - 1) of element `e` of one block (for dot kernels).
pub fn code(block: &[u8], e: usize) -> i32 {
    let (byte, shift) = position(e);
    ((block[byte] >> shift) & 3) as i32
}

/// Dequantizes whole TQ2_0 blocks.
pub fn dequantize(data: &[u8], out: &mut [f32]) {
    for (block, out) in super::blocks_out(data, BLOCK_BYTES, out, BLOCK) {
        let d = super::f16_at(block, D);
        for (e, o) in out.iter_mut().enumerate() {
            let (byte, shift) = position(e);
            let code = (block[byte] >> shift) & 3;
            *o = d * (code as i8 - 1) as f32;
        }
    }
}

/// Quantizes whole blocks of 256 values into TQ2_0 blocks.
pub fn quantize(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(x.len() / BLOCK * BLOCK_BYTES, out.len());
    for (values, block) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let d = abs_max_like_numpy(values);
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        block[..D].fill(0);
        for (e, &v) in values.iter().enumerate() {
            // t is -1, 0 or 1 for every input (NaN and overflow give 0); clamp documents it
            let t = round_to_i8_like_numpy(v * id).clamp(-1, 1);
            let (byte, shift) = position(e);
            block[byte] |= ((t + 1) as u8) << shift;
        }
        block[D..].copy_from_slice(&f32_to_f16(d).to_le_bytes());
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
    const TY: GgmlType = GgmlType::TQ2_0;

    fn block_of(byte: u8, d_bits: u16) -> Vec<u8> {
        let mut b = vec![byte; D];
        b.extend_from_slice(&d_bits.to_le_bytes());
        b
    }

    #[test]
    fn uniform_bytes() {
        // d = 0.5; 0x00: all -1, 0x55: all 0, 0xaa: all +1, 0xff: all code 3 (+2)
        for (byte, want) in [(0x00u8, -0.5f32), (0x55, 0.0), (0xaa, 0.5), (0xff, 1.0)] {
            let out = dequantize_vec(TY, &block_of(byte, 0x3800));
            assert!(out.iter().all(|&v| v == want), "{byte:#04x}");
        }
        assert_eq!(quantize_vec(TY, &[-0.5; 256]), block_of(0x00, 0x3800));
        assert_eq!(quantize_vec(TY, &[0.0; 256]), block_of(0x55, 0x0000));
        assert_eq!(quantize_vec(TY, &[0.5; 256]), block_of(0xaa, 0x3800));
    }

    #[test]
    fn one_value_set_in_each_slot() {
        // byte j of half h holds values 128h + j (bits 1:0), +32 (3:2), +64 (5:4), +96 (7:6)
        for h in 0..2 {
            for j in [0usize, 5, 31] {
                for k in 0..4 {
                    let mut b = block_of(0x55, 0x3c00);
                    b[32 * h + j] = (0x55 & !(3 << (2 * k))) | (2 << (2 * k));
                    let out = dequantize_vec(TY, &b);
                    let e = 128 * h + 32 * k + j;
                    for (i, &v) in out.iter().enumerate() {
                        assert_eq!(v, if i == e { 1.0 } else { 0.0 }, "h {h} j {j} k {k}");
                    }
                    let mut x = [0f32; 256];
                    x[e] = 1.0;
                    assert_eq!(quantize_vec(TY, &x), b);
                }
            }
        }
    }

    #[test]
    fn gguf_py_vector() {
        // x[i] = ((i * 7) % 5 - 2) * 0.3 for i in 0..256, quantized by gguf-py (gguf 0.19.0).
        // x / max is exactly -+0.5 at some values: they round away from zero.
        let x: Vec<f32> = (0..256).map(|i| ((i * 7) % 5) as f32 * 0.3 - 0.6).collect();
        let want: [u8; 66] = [
            0x68, 0x81, 0x1a, 0xa0, 0x06, 0x68, 0x81, 0x1a, 0xa0, 0x06, 0x68, 0x81, 0x1a, 0xa0,
            0x06, 0x68, 0x81, 0x1a, 0xa0, 0x06, 0x68, 0x81, 0x1a, 0xa0, 0x06, 0x68, 0x81, 0x1a,
            0xa0, 0x06, 0x68, 0x81, 0xa0, 0x06, 0x68, 0x81, 0x1a, 0xa0, 0x06, 0x68, 0x81, 0x1a,
            0xa0, 0x06, 0x68, 0x81, 0x1a, 0xa0, 0x06, 0x68, 0x81, 0x1a, 0xa0, 0x06, 0x68, 0x81,
            0x1a, 0xa0, 0x06, 0x68, 0x81, 0x1a, 0xa0, 0x06, 0xcd, 0x38,
        ];
        assert_eq!(quantize_vec(TY, &x), want);
    }

    #[test]
    fn random_ternary_round_trip_exactly() {
        let mut rng = SplitMix64(0xfeed_f00d_1234_5678);
        for scale in [1.0f32, 0.0625, -3.5, 1e-3] {
            let x: Vec<f32> = (0..256 * 8)
                .map(|_| (rng.below(3) as f32 - 1.0) * scale)
                .collect();
            let b = quantize_vec(TY, &x);
            assert!(b
                .chunks(BLOCK_BYTES)
                .all(|b| b[..D].iter().all(|&v| v & 0x55 & (v >> 1) == 0)));
            let y = dequantize_vec(TY, &b);
            let d = f16_to_f32(f32_to_f16(scale.abs()));
            for (a, b) in x.iter().zip(&y) {
                let t = if *a > 0.0 {
                    1.0
                } else if *a < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                assert_eq!(*b, t * d);
            }
        }
    }

    #[test]
    fn edge_blocks() {
        let mut x = [0.1f32; 256];
        x[77] = -9.0; // negative max: d = 9
        let y = dequantize_vec(TY, &quantize_vec(TY, &x));
        assert_eq!(y[77], -9.0);
        assert!(y.iter().enumerate().all(|(i, &v)| i == 77 || v == 0.0));
        // big values: d overflows f16 to infinity; the codes are still right
        let mut x = [1e30f32; 256];
        x[32] = -1e30;
        x[64] = 1e29;
        let b = quantize_vec(TY, &x);
        assert_eq!(&b[D..], &0x7c00u16.to_le_bytes());
        assert_eq!(b[0], 0b10_01_00_10);
        // half away from zero
        let mut x = [0f32; 256];
        x[0] = 1.0;
        x[1] = 0.5;
        x[2] = -0.5;
        x[3] = 0.49999997;
        let y = dequantize_vec(TY, &quantize_vec(TY, &x));
        assert_eq!(&y[..4], &[1.0, 1.0, -1.0, 0.0]);
    }

    #[test]
    fn non_finite_inputs_match_gguf_py() {
        // gguf-py: NaN max -> d NaN (0x7e00), every code 1; inf max -> d inf, every code 1;
        // a subnormal max: 1/d overflows, every code 1, d rounds to 0
        let mut x = [1.0f32; 256];
        x[0] = f32::NAN;
        assert_eq!(quantize_vec(TY, &x), block_of(0x55, 0x7e00));
        x[0] = f32::INFINITY;
        assert_eq!(quantize_vec(TY, &x), block_of(0x55, 0x7c00));
        let mut x = [0f32; 256];
        x[0] = 1e-45;
        x[1] = -1e-45;
        assert_eq!(quantize_vec(TY, &x), block_of(0x55, 0x0000));
        let mut rng = SplitMix64(11);
        let data: Vec<u8> = (0..BLOCK_BYTES * 4).map(|_| rng.next_u64() as u8).collect();
        assert_eq!(dequantize_vec(TY, &data).len(), 1024);
    }
}
