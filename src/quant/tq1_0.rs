//! TQ1_0 (ggml type 34): ternary values in blocks of 256, about 1.69 bits each. Five trits
//! (or four) are packed per byte in base 3; one f16 scale `d` per block; value = d * t with
//! t in {-1, 0, +1}.
//!
//! ```text
//! bytes  0..48  qs: 48 bytes of five trits
//! bytes 48..52  qh: 4 bytes of four trits
//! bytes 52..54  d, f16 little-endian
//! ```
//!
//! Which byte and which trit ("digit" m, most significant first) hold value e of a block:
//! - e in   0..160: byte `e % 32`,             digit `e / 32`         (5 digits)
//! - e in 160..240: byte `32 + (e - 160) % 16`, digit `(e - 160) / 16` (5 digits)
//! - e in 240..256: byte `48 + (e - 240) % 4`,  digit `(e - 240) / 4`  (4 digits, the 5th is 0)
//!
//! A byte holds its digits c_0..c_4 (each t + 1, so 0..2) as the number
//! `n = c_0 * 81 + c_1 * 27 + c_2 * 9 + c_3 * 3 + c_4` (0..242), stored scaled to a fixed-point
//! fraction of 1: `byte = ceil(n * 256 / 243)`. Digit m is read back by shifting it to the top:
//! `((byte * 3^m mod 256) * 3) >> 8`.
//!
//! `quantize` writes the same bytes as gguf-py's `TQ1_0.quantize_blocks`: `d = max|x|` over the
//! block, `t = round_half_away(x * (1/d))` (1/d taken as 0 when d is 0), `d` rounded to f16.

use super::float::{abs_max_like_numpy, f32_to_f16, round_to_i8_like_numpy};

pub const BLOCK: usize = 256;
pub const BLOCK_BYTES: usize = 54;

const PACKED_BYTES: usize = 52;
const D: usize = 52;
const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// The byte (0..52) and digit (0..5, most significant first) that hold value `e` of a block.
fn position(e: usize) -> (usize, usize) {
    if e < 160 {
        (e % 32, e / 32)
    } else if e < 240 {
        (32 + (e - 160) % 16, (e - 160) / 16)
    } else {
        (48 + (e - 240) % 4, (e - 240) / 4)
    }
}

/// Digit `m` (0..=2) of a packed byte. Never more than 2 for any byte: 255 * 3 >> 8 = 2.
fn digit(byte: u8, m: usize) -> u8 {
    let shifted = byte.wrapping_mul(POW3[m]);
    ((shifted as u16 * 3) >> 8) as u8
}

/// The unsigned code (0..=2, value code - 1) of element `e` of one block (for dot kernels).
pub fn code(block: &[u8], e: usize) -> i32 {
    let (byte, m) = position(e);
    digit(block[byte], m) as i32
}

/// Dequantizes whole TQ1_0 blocks.
pub fn dequantize(data: &[u8], out: &mut [f32]) {
    for (block, out) in super::blocks_out(data, BLOCK_BYTES, out, BLOCK) {
        let d = super::f16_at(block, D);
        for (e, o) in out.iter_mut().enumerate() {
            let (byte, m) = position(e);
            let t = digit(block[byte], m) as i8 - 1;
            *o = d * t as f32;
        }
    }
}

/// Quantizes whole blocks of 256 values into TQ1_0 blocks.
pub fn quantize(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(x.len() / BLOCK * BLOCK_BYTES, out.len());
    for (values, block) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let d = abs_max_like_numpy(values);
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let mut n = [0u16; PACKED_BYTES];
        for (e, &v) in values.iter().enumerate() {
            // t is -1, 0 or 1 for every input (NaN and overflow give 0); clamp documents it
            let t = round_to_i8_like_numpy(v * id).clamp(-1, 1);
            let (byte, m) = position(e);
            n[byte] += (t + 1) as u16 * POW3[4 - m] as u16;
        }
        for (b, &n) in block[..PACKED_BYTES].iter_mut().zip(n.iter()) {
            *b = (n * 256).div_ceil(243) as u8; // n <= 242, so n * 256 fits in u16
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
    const TY: GgmlType = GgmlType::TQ1_0;

    #[test]
    fn positions_cover_every_digit_once() {
        let mut seen = [[false; 5]; PACKED_BYTES];
        for e in 0..BLOCK {
            let (b, m) = position(e);
            assert!(!seen[b][m]);
            seen[b][m] = true;
        }
        // qh bytes hold 4 digits, the rest 5
        for (b, s) in seen.iter().enumerate() {
            let count = s.iter().filter(|&&v| v).count();
            assert_eq!(count, if b < 48 { 5 } else { 4 });
        }
    }

    #[test]
    fn every_byte_value_decodes_to_its_base3_digits() {
        // For a stored n (0..243), ceil(n * 256 / 243) must decode to n's digits.
        for n in 0..243u16 {
            let byte = (n * 256).div_ceil(243) as u8;
            let digits = [n / 81, n / 27 % 3, n / 9 % 3, n / 3 % 3, n % 3];
            for (m, &want) in digits.iter().enumerate() {
                assert_eq!(digit(byte, m) as u16, want, "n {n} digit {m}");
            }
        }
        // Any byte decodes to digits 0..=2.
        for byte in 0..=255u8 {
            for m in 0..5 {
                assert!(digit(byte, m) <= 2);
            }
        }
    }

    /// How a byte stores the base-3 number n: ceil(n * 256 / 243).
    fn stored(n: u16) -> u8 {
        (n * 256).div_ceil(243) as u8
    }

    #[test]
    fn hand_built_blocks() {
        // Every digit c (= t + 1) the same: a qs byte holds n = 121 c, a qh byte n = 120 c.
        for (c, want) in [(0u16, -1.0f32), (1, 0.0), (2, 1.0)] {
            let mut b = vec![stored(121 * c); 48];
            b.extend_from_slice(&[stored(120 * c); 4]);
            b.extend_from_slice(&0x4000u16.to_le_bytes()); // d = 2
            let out = dequantize_vec(TY, &b);
            assert!(out.iter().all(|&v| v == 2.0 * want), "digit {c}");
            let q = quantize_vec(TY, &out);
            assert_eq!(q[..D], b[..D]);
            // an all-zero block gets d = 0
            let d: [u8; 2] = if c == 1 { [0, 0] } else { [b[D], b[D + 1]] };
            assert_eq!(q[D..], d);
        }
        assert_eq!((stored(0), stored(121), stored(242)), (0, 128, 255));
        assert_eq!((stored(120), stored(240)), (127, 253));
        // One +1 at value 0 (byte 0, digit 0: weight 81) and one -1 at value 255
        // (byte 51, digit 3: weight 3).
        let mut x = [0f32; 256];
        x[0] = 1.0;
        x[255] = -1.0;
        let b = quantize_vec(TY, &x);
        assert_eq!(b[0], stored(121 + 81));
        assert_eq!(b[51], stored(120 - 3));
        assert!(b[1..48].iter().all(|&v| v == 128));
        assert!(b[48..51].iter().all(|&v| v == 127));
        assert_eq!(&b[D..], &0x3c00u16.to_le_bytes());
        assert_eq!(dequantize_vec(TY, &b), x);
        // Value 170 is byte 32 + 10 % 16 = 42, digit 0; value 239 is byte 47, digit 4.
        let mut b = vec![128u8; 48];
        b.extend_from_slice(&[127; 4]);
        b.extend_from_slice(&0x3c00u16.to_le_bytes());
        b[42] = stored(121 + 81);
        b[47] = stored(121 - 1);
        let y = dequantize_vec(TY, &b);
        assert_eq!((y[170], y[239]), (1.0, -1.0));
        assert_eq!(y.iter().filter(|&&v| v != 0.0).count(), 2);
    }

    #[test]
    fn gguf_py_vector() {
        // x[i] = ((i * 7) % 5 - 2) * 0.3 for i in 0..256, quantized by gguf-py (gguf 0.19.0).
        let x: Vec<f32> = (0..256).map(|i| ((i * 7) % 5) as f32 * 0.3 - 0.6).collect();
        // x / max is exactly -+0.5 at some values: they round away from zero.
        let want: [u8; 54] = [
            0x50, 0x5e, 0xee, 0x1b, 0xca, 0x50, 0x5e, 0xee, 0x1b, 0xca, 0x50, 0x5e, 0xee, 0x1b,
            0xca, 0x50, 0x5e, 0xee, 0x1b, 0xca, 0x50, 0x5e, 0xee, 0x1b, 0xca, 0x50, 0x5e, 0xee,
            0x1b, 0xca, 0x50, 0x5e, 0x32, 0x95, 0xbf, 0x3f, 0xbb, 0x32, 0x95, 0xbf, 0x3f, 0xbb,
            0x32, 0x95, 0xbf, 0x3f, 0xbb, 0x32, 0x40, 0x69, 0xce, 0x43, 0xcd, 0x38,
        ];
        assert_eq!(quantize_vec(TY, &x), want);
    }

    #[test]
    fn random_ternary_round_trip_exactly() {
        let mut rng = SplitMix64(0x0123_4567_89ab_cdef);
        for scale in [1.0f32, 0.0625, 3.5, 1e-3] {
            // scale is exact in f16 only for the first three; the round trip uses the stored d
            let x: Vec<f32> = (0..256 * 8)
                .map(|_| (rng.below(3) as f32 - 1.0) * scale)
                .collect();
            let b = quantize_vec(TY, &x);
            let y = dequantize_vec(TY, &b);
            let d = f16_to_f32(f32_to_f16(scale));
            for (a, b) in x.iter().zip(&y) {
                assert_eq!(*b, a.signum() * d * (*a != 0.0) as u8 as f32);
            }
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        let mut x = [0f32; 256];
        x[0] = 1.0;
        x[1] = 0.5;
        x[2] = -0.5;
        x[3] = 0.49999997;
        x[4] = -0.49999997;
        let y = dequantize_vec(TY, &quantize_vec(TY, &x));
        assert_eq!(&y[..5], &[1.0, 1.0, -1.0, 0.0, 0.0]);
    }

    #[test]
    fn edge_blocks() {
        let b = quantize_vec(TY, &[0.0; 256]);
        assert_eq!(b[..48], [128u8; 48]);
        assert_eq!(b[48..], [127, 127, 127, 127, 0, 0]);
        let mut x = [0.1f32; 256];
        x[200] = -7.0; // negative max: d = 7
        let b = quantize_vec(TY, &x);
        let y = dequantize_vec(TY, &b);
        assert_eq!(y[200], -7.0);
        assert!(y.iter().enumerate().all(|(i, &v)| i == 200 || v == 0.0));
        // big values: d overflows f16 to infinity; the trits are still right
        let mut x = [1e30f32; 256];
        x[1] = -1e30;
        x[2] = 1e29;
        let b = quantize_vec(TY, &x);
        assert_eq!(&b[D..], &0x7c00u16.to_le_bytes());
        assert_eq!(digit(b[0], 0), 2);
        assert_eq!(digit(b[1], 0), 0);
        assert_eq!(digit(b[2], 0), 1);
    }

    #[test]
    fn non_finite_inputs_match_gguf_py() {
        // gguf-py: NaN max -> d NaN, every trit 0; inf max -> d inf, every trit 0
        let zero_block = quantize_vec(TY, &[0.0; 256]);
        let mut x = [1.0f32; 256];
        x[9] = f32::NAN;
        let b = quantize_vec(TY, &x);
        assert_eq!(&b[..52], &zero_block[..52]);
        assert_eq!(&b[D..], &0x7e00u16.to_le_bytes());
        x[9] = f32::INFINITY;
        let b = quantize_vec(TY, &x);
        assert_eq!(&b[..52], &zero_block[..52]);
        assert_eq!(&b[D..], &0x7c00u16.to_le_bytes());
        let mut rng = SplitMix64(5);
        let data: Vec<u8> = (0..BLOCK_BYTES * 4).map(|_| rng.next_u64() as u8).collect();
        assert!(dequantize_vec(TY, &data).len() == 1024);
    }
}
