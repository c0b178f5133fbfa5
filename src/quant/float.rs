//! Plain float formats: F32, F16 and BF16 tensors (one little-endian value per "block"), and
//! the scalar conversions the block formats share.
//!
//! Every conversion here gives the same bits as gguf-py's numpy code, NaNs included:
//! - f16 -> f32 is exact, and a NaN keeps its payload and its quiet/signalling bit (numpy's
//!   `astype(np.float32)` does; the `half` crate and x86's F16C set the quiet bit instead, so
//!   NaNs are handled here before `half` sees them);
//! - f32 -> f16 rounds to nearest even, and a NaN keeps the top 10 bits of its payload (numpy's
//!   rule, forced non-zero so that it stays a NaN);
//! - bf16 -> f32 is `bits << 16`; f32 -> bf16 is gguf-py's `BF16.quantize_blocks` (itself
//!   ggml's `ggml_compute_fp32_to_bf16`).

use half::f16;

/// Values per block (one value per element) for F32, F16 and BF16.
pub const BLOCK: usize = 1;

const F16_EXP_MASK: u16 = 0x7c00;
const F16_MAN_MASK: u16 = 0x03ff;
const F32_EXP_MASK: u32 = 0x7f80_0000;
const F32_MAN_MASK: u32 = 0x007f_ffff;

/// An IEEE half (binary16), given by its bits, as an f32. Exact; NaN payloads are kept.
pub fn f16_to_f32(bits: u16) -> f32 {
    let is_nan = bits & F16_EXP_MASK == F16_EXP_MASK && bits & F16_MAN_MASK != 0;
    if is_nan {
        let sign = ((bits & 0x8000) as u32) << 16;
        let payload = ((bits & F16_MAN_MASK) as u32) << 13;
        return f32::from_bits(sign | F32_EXP_MASK | payload);
    }
    f16::from_bits(bits).to_f32()
}

/// `x` as the bits of the nearest IEEE half (ties to even; overflow to infinity), as numpy's
/// `astype(np.float16)`. A NaN keeps its sign and the top 10 bits of its payload.
pub fn f32_to_f16(x: f32) -> u16 {
    if x.is_nan() {
        let bits = x.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let mut payload = ((bits & F32_MAN_MASK) >> 13) as u16;
        if payload == 0 {
            payload = 1; // the payload lived in the dropped low bits: stay a NaN
        }
        return sign | F16_EXP_MASK | payload;
    }
    f16::from_f32(x).to_bits()
}

/// A bfloat16, given by its bits, as an f32: the bits are the top half of the f32's.
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// `x` as bfloat16 bits, rounding to nearest even. A NaN is made quiet (bit 6 of the bf16 set)
/// and keeps its sign and the top 7 bits of its payload, as gguf-py and ggml do.
pub fn f32_to_bf16(x: f32) -> u16 {
    let mut bits = x.to_bits();
    if bits & 0x7fff_ffff > F32_EXP_MASK {
        bits = (bits & 0xffff_0000) | 0x0040_0000;
    }
    // Adding 0x7fff, plus one more when the kept part is odd, carries into the kept part
    // exactly when the dropped half is above one half, or equal to it with an odd kept part.
    // u64 because gguf-py adds in 64 bits (no value here can carry out of 32 anyway).
    let rounded = (bits as u64 + 0x7fff + ((bits as u64 >> 16) & 1)) >> 16;
    rounded as u16
}

/// F32 tensor: 4 little-endian bytes per value, copied bit for bit.
pub fn dequantize_f32(data: &[u8], out: &mut [f32]) {
    debug_assert_eq!(data.len(), out.len() * 4);
    for (bytes, o) in data.chunks_exact(4).zip(out.iter_mut()) {
        *o = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
}

/// F16 tensor: 2 little-endian bytes per value.
pub fn dequantize_f16(data: &[u8], out: &mut [f32]) {
    debug_assert_eq!(data.len(), out.len() * 2);
    for (bytes, o) in data.chunks_exact(2).zip(out.iter_mut()) {
        *o = f16_to_f32(u16::from_le_bytes([bytes[0], bytes[1]]));
    }
}

/// BF16 tensor: 2 little-endian bytes per value.
pub fn dequantize_bf16(data: &[u8], out: &mut [f32]) {
    debug_assert_eq!(data.len(), out.len() * 2);
    for (bytes, o) in data.chunks_exact(2).zip(out.iter_mut()) {
        *o = bf16_to_f32(u16::from_le_bytes([bytes[0], bytes[1]]));
    }
}

/// gguf-py's `np_roundf` (round half away from zero) followed by numpy's `astype(np.int8)`, as
/// the Q8_0 and TQ quantizers use them. For finite values `np_roundf` is `f32::round`; the cast
/// truncates to i32 and keeps the low byte, and turns NaN, infinities and anything outside
/// the i32 range into 0 (x86's "integer indefinite" 0x8000_0000, whose low byte is 0).
/// Rust's saturating `as i8` would differ outside -128..=127, hence this function.
pub(crate) fn round_to_i8_like_numpy(x: f32) -> i8 {
    let r = x.round();
    if r.is_finite() && r.abs() < 2_147_483_648.0 {
        r as i32 as i8
    } else {
        0
    }
}

/// The largest `|x|` of `values` as numpy's `abs(values).max()` finds it: a NaN anywhere wins,
/// and an empty slice gives 0. The NaN returned is the default quiet NaN (0x7fc0_0000), which
/// is what numpy's vectorized max returns most of the time; in some blocks it returns the
/// payload of one of the input NaNs instead, which no simple rule reproduces, so a block
/// with NaN inputs may get a different NaN `d` than gguf-py's (its codes still match).
pub(crate) fn abs_max_like_numpy(values: &[f32]) -> f32 {
    let mut max = 0.0f32;
    for &v in values {
        let a = v.abs();
        if a.is_nan() {
            return f32::from_bits(0x7fc0_0000);
        }
        if a > max {
            max = a;
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn f32_bytes_are_copied_bit_for_bit() {
        let values: [u32; 6] = [
            0,
            0x8000_0000,
            0x3f80_0000,
            0x7f80_0001,
            0xffc1_2345,
            0x0000_0001,
        ];
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = [0f32; 6];
        dequantize_f32(&data, &mut out);
        for (v, o) in values.iter().zip(out) {
            assert_eq!(o.to_bits(), *v);
        }
    }

    #[test]
    fn f16_known_values() {
        let cases: [(u16, u32); 10] = [
            (0x0000, 0x0000_0000),
            (0x8000, 0x8000_0000),
            (0x3c00, 0x3f80_0000), // 1.0
            (0xc000, 0xc000_0000), // -2.0
            (0x7bff, 0x477f_e000), // 65504
            (0x0001, 0x3380_0000), // smallest subnormal, 2^-24
            (0x7c00, 0x7f80_0000), // +inf
            (0xfc00, 0xff80_0000), // -inf
            (0x7c01, 0x7f80_2000), // signalling NaN stays signalling (as numpy)
            (0xfe00, 0xffc0_0000), // quiet NaN
        ];
        let data: Vec<u8> = cases.iter().flat_map(|c| c.0.to_le_bytes()).collect();
        let mut out = [0f32; 10];
        dequantize_f16(&data, &mut out);
        for (c, o) in cases.iter().zip(out) {
            assert_eq!(o.to_bits(), c.1, "f16 {:#06x}", c.0);
        }
    }

    #[test]
    fn f16_every_non_nan_value_round_trips() {
        for bits in 0..=u16::MAX {
            let x = f16_to_f32(bits);
            if x.is_nan() {
                assert_eq!(bits & F16_EXP_MASK, F16_EXP_MASK);
                // the payload survives both ways
                assert_eq!(f32_to_f16(x), bits);
            } else {
                assert_eq!(f32_to_f16(x), bits, "f16 {bits:#06x}");
                assert_eq!(x, f16::from_bits(bits).to_f32());
            }
        }
    }

    #[test]
    fn f32_to_f16_rounds_to_nearest_even() {
        // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties to even (1.0).
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9: goes up.
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // rounds up to infinity
        assert_eq!(f32_to_f16(65519.99), 0x7bff);
        assert_eq!(f32_to_f16(-1e-10), 0x8000);
        assert_eq!(f32_to_f16(f32::from_bits(0x7fc0_0000)), 0x7e00);
        assert_eq!(f32_to_f16(f32::from_bits(0x7f80_0001)), 0x7c01);
        assert_eq!(f32_to_f16(f32::from_bits(0xffc1_2345)), 0xfe09);
        assert_eq!(f32_to_f16(f32::from_bits(0x7fa0_0000)), 0x7d00);
    }

    #[test]
    fn bf16_is_the_top_half() {
        let cases: [u16; 7] = [0x0000, 0x8000, 0x3f80, 0xc2f7, 0x7f80, 0x7f81, 0xffff];
        let data: Vec<u8> = cases.iter().flat_map(|c| c.to_le_bytes()).collect();
        let mut out = [0f32; 7];
        dequantize_bf16(&data, &mut out);
        for (c, o) in cases.iter().zip(out) {
            assert_eq!(o.to_bits(), (*c as u32) << 16);
        }
    }

    #[test]
    fn f32_to_bf16_known_values() {
        // values checked against gguf-py's BF16.quantize_blocks
        let cases: [(u32, u16); 12] = [
            (0x3f80_0000, 0x3f80), // exact
            (0x3f80_8000, 0x3f80), // tie, kept part even: down
            (0x3f81_8000, 0x3f82), // tie, kept part odd: up
            (0x3f80_8001, 0x3f81), // above the tie: up
            (0x3f80_7fff, 0x3f80), // below the tie: down
            (0x7f7f_ffff, 0x7f80), // largest finite rounds to infinity
            (0xff80_0000, 0xff80), // -inf
            (0x7f80_0001, 0x7fc0), // signalling NaN with a low payload: quiet NaN
            (0x7fa1_2345, 0x7fe1), // NaN keeps the top payload bits, quiet bit set
            (0xffff_ffff, 0xffff),
            (0x8000_0000, 0x8000),
            (0x0000_8000, 0x0000), // tiny subnormal, tie to even
        ];
        for (x, want) in cases {
            assert_eq!(f32_to_bf16(f32::from_bits(x)), want, "{x:#010x}");
        }
    }

    #[test]
    fn f32_to_bf16_random_values_round_to_nearest() {
        let mut rng = SplitMix64(0x1234_5678_9abc_def1);
        for _ in 0..200_000 {
            let x = f32::from_bits((rng.next_u64() >> 32) as u32);
            let b = f32_to_bf16(x);
            let y = bf16_to_f32(b);
            if x.is_nan() {
                assert!(y.is_nan());
                assert_eq!(b & 0x0040, 0x0040);
                continue;
            }
            // no bf16 lies strictly closer to x (compare in f64, which holds both exactly)
            let err = (y as f64 - x as f64).abs();
            if y.is_finite() {
                for nb in [b.wrapping_sub(1), b.wrapping_add(1)] {
                    let z = bf16_to_f32(nb) as f64;
                    if z.is_finite() && (nb ^ b) & 0x8000 == 0 {
                        assert!((z - x as f64).abs() >= err, "{:#010x}", x.to_bits());
                    }
                }
            }
        }
    }

    #[test]
    fn numpy_style_rounding_and_cast() {
        assert_eq!(round_to_i8_like_numpy(0.5), 1);
        assert_eq!(round_to_i8_like_numpy(-0.5), -1);
        assert_eq!(round_to_i8_like_numpy(0.49999997), 0);
        assert_eq!(round_to_i8_like_numpy(2.5), 3);
        assert_eq!(round_to_i8_like_numpy(-127.5), -128);
        assert_eq!(round_to_i8_like_numpy(300.0), 44); // wraps like numpy
        assert_eq!(round_to_i8_like_numpy(-129.0), 127);
        assert_eq!(round_to_i8_like_numpy(3e9), 0);
        assert_eq!(round_to_i8_like_numpy(f32::NAN), 0);
        assert_eq!(round_to_i8_like_numpy(f32::INFINITY), 0);
        assert_eq!(round_to_i8_like_numpy(f32::NEG_INFINITY), 0);
    }

    #[test]
    fn abs_max_propagates_nan() {
        assert_eq!(abs_max_like_numpy(&[]), 0.0);
        assert_eq!(abs_max_like_numpy(&[1.0, -3.0, 2.0]), 3.0);
        let m = abs_max_like_numpy(&[1.0, f32::from_bits(0xff81_2345), 9.0]);
        assert_eq!(m.to_bits(), 0x7fc0_0000);
        assert_eq!(abs_max_like_numpy(&[f32::NEG_INFINITY, 1.0]), f32::INFINITY);
    }
}
