//! I2_S (type 36): Microsoft bitnet.cpp's 2-bit ternary format, not in upstream ggml. Sized per
//! whole tensor: n values take n/4 bytes of codes in blocks of 128 values (32 bytes), then a
//! 32-byte tail whose first 4 bytes are one little-endian f32 `scale` for the whole tensor (the
//! other 28 bytes are zero when we write them and ignored when we read).
//!
//! In each block, byte b (0..32) holds, from its high bits down:
//!
//! ```text
//! bits 7:6  value b        bits 5:4  value b + 32
//! bits 3:2  value b + 64   bits 1:0  value b + 96
//! ```
//!
//! Codes: 0 = -1, 1 = 0, 2 = +1, and value = (code - 1) * scale. Code 3 is never written by
//! `quantize`; `dequantize` reads it by the same formula, as +2 * scale, which is what
//! bitnet.cpp's `(code - 1)` arithmetic gives it too.
//!
//! `quantize` takes `scale = max|x|` over the whole tensor and stores each value as the nearest
//! of {-scale, 0, +scale} (|x| exactly scale/2 goes away from zero), so ternary tensors
//! {-s, 0, +s} round-trip exactly. An all-zero tensor gets scale 0 and every code 1. NaN inputs
//! are skipped by the max and stored as 0.

pub const BLOCK: usize = 128;
pub const BLOCK_BYTES: usize = 32;
pub const TAIL_BYTES: usize = 32;

/// The byte index (in the packed part) and bit shift of value `i`.
fn position(i: usize) -> (usize, usize) {
    let (block, r) = (i / BLOCK, i % BLOCK);
    (block * BLOCK_BYTES + r % 32, 6 - 2 * (r / 32))
}

/// The tensor's scale: the f32 in the first 4 bytes of the 32-byte tail at the end of `data`.
/// `data` is a whole I2_S tensor (packed codes then tail); shorter than the tail gives 0.
pub fn scale(data: &[u8]) -> f32 {
    match data.len().checked_sub(TAIL_BYTES) {
        Some(t) => f32::from_le_bytes([data[t], data[t + 1], data[t + 2], data[t + 3]]),
        None => 0.0,
    }
}

/// The 2-bit code (0..=3) of value `i`; `data` is the tensor's bytes (or just its packed part).
/// Panics if `i` is beyond the packed bytes.
pub fn code_at(data: &[u8], i: usize) -> u8 {
    let (byte, shift) = position(i);
    (data[byte] >> shift) & 3
}

/// Dequantizes a whole I2_S tensor: `data` is `out.len() / 4` packed bytes then the tail.
pub fn dequantize(data: &[u8], out: &mut [f32]) {
    debug_assert_eq!(data.len(), out.len() / 4 + TAIL_BYTES);
    debug_assert_eq!(out.len() % BLOCK, 0);
    let scale = scale(data);
    for (block, out) in data
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK))
    {
        for (r, o) in out.iter_mut().enumerate() {
            let code = (block[r % 32] >> (6 - 2 * (r / 32))) & 3;
            *o = (code as i32 - 1) as f32 * scale;
        }
    }
}

/// Quantizes a whole tensor into I2_S: `out` is `x.len() / 4` packed bytes then the tail.
pub fn quantize(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(out.len(), x.len() / 4 + TAIL_BYTES);
    debug_assert_eq!(x.len() % BLOCK, 0);
    let scale = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (packed, tail) = out.split_at_mut(x.len() / 4);
    for (values, block) in x
        .chunks_exact(BLOCK)
        .zip(packed.chunks_exact_mut(BLOCK_BYTES))
    {
        block.fill(0);
        for (r, &v) in values.iter().enumerate() {
            // nearest of {-scale, 0, scale}, compared in f64 where 2|v| is exact
            let code: u8 = if scale == 0.0 || 2.0 * (v.abs() as f64) < scale as f64 || v.is_nan() {
                1
            } else if v > 0.0 {
                2
            } else {
                0
            };
            block[r % 32] |= code << (6 - 2 * (r / 32));
        }
    }
    tail.fill(0);
    tail[..4].copy_from_slice(&scale.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::testing::dequantize_vec;
    use crate::quant::GgmlType;
    use crate::rng::SplitMix64;

    /// The format under test, for the shared helpers.
    const TY: GgmlType = GgmlType::I2_S;

    /// A tensor of `n` values from a packed byte pattern and a scale, built by hand.
    fn tensor(packed: Vec<u8>, scale: f32) -> Vec<u8> {
        let mut data = packed;
        data.extend_from_slice(&scale.to_le_bytes());
        data.extend_from_slice(&[0u8; 28]);
        data
    }

    fn quantize_vec(x: &[f32]) -> Vec<u8> {
        let mut out = vec![0xeeu8; x.len() / 4 + TAIL_BYTES];
        quantize(x, &mut out);
        out
    }

    #[test]
    fn uniform_bytes() {
        for (byte, want) in [(0x00u8, -1.5f32), (0x55, 0.0), (0xaa, 1.5), (0xff, 3.0)] {
            let data = tensor(vec![byte; 64], 1.5);
            assert_eq!(scale(&data), 1.5);
            let out = dequantize_vec(TY, &data);
            assert_eq!(out.len(), 256);
            assert!(out.iter().all(|&v| v == want), "{byte:#04x}");
            match byte {
                0xff => {} // code 3 is never written
                0x55 => assert_eq!(quantize_vec(&out), tensor(vec![byte; 64], 0.0)),
                _ => assert_eq!(quantize_vec(&out), data),
            }
        }
    }

    #[test]
    fn alternating_bytes() {
        // 0x22 = 00 10 00 10: values b, b+64 are -1, values b+32, b+96 are +1.
        // 0x98 = 10 01 10 00: b -> +1, b+32 -> 0, b+64 -> +1, b+96 -> -1.
        let data = tensor([0x22u8, 0x98].repeat(32), 2.0);
        let out = dequantize_vec(TY, &data);
        for (i, &v) in out.iter().enumerate() {
            let (b, slot) = (i % 128 % 32, i % 128 / 32);
            let want = if b % 2 == 0 {
                [-2.0, 2.0, -2.0, 2.0][slot]
            } else {
                [2.0, 0.0, 2.0, -2.0][slot]
            };
            assert_eq!(v, want, "value {i}");
        }
        assert_eq!(quantize_vec(&out), data);
    }

    #[test]
    fn one_value_set_at_each_slot() {
        // two blocks; set one code to +1 (2) among zeros (1) at byte b of block k, each slot
        for block in 0..2 {
            for b in [0usize, 1, 17, 31] {
                for (slot, shift) in [(0usize, 6u32), (1, 4), (2, 2), (3, 0)] {
                    let mut packed = vec![0x55u8; 64];
                    packed[32 * block + b] = (0x55 & !(3u8 << shift)) | (2u8 << shift);
                    let data = tensor(packed, 0.25);
                    let out = dequantize_vec(TY, &data);
                    let want_i = 128 * block + 32 * slot + b;
                    for (i, &v) in out.iter().enumerate() {
                        assert_eq!(v, if i == want_i { 0.25 } else { 0.0 }, "i {i}");
                        assert_eq!(code_at(&data, i), if i == want_i { 2 } else { 1 });
                    }
                    assert_eq!(quantize_vec(&out), data);
                }
            }
        }
    }

    #[test]
    fn scale_is_read_from_the_tail_only() {
        let mut data = tensor(vec![0xaa; 32], -0.75);
        data[36..].fill(0x7f); // the rest of the tail is ignored
        assert_eq!(scale(&data), -0.75);
        assert!(dequantize_vec(TY, &data).iter().all(|&v| v == -0.75));
        assert_eq!(scale(&[1, 2, 3]), 0.0);
    }

    #[test]
    fn random_ternary_round_trip() {
        let mut rng = SplitMix64(0x5eed_5eed_5eed_5eed);
        for s in [1.0f32, 0.0123, 7.5, 1e-30] {
            let x: Vec<f32> = (0..128 * 12)
                .map(|_| (rng.below(3) as f32 - 1.0) * s)
                .collect();
            let data = quantize_vec(&x);
            assert_eq!(scale(&data), s);
            assert!(data[data.len() - 28..].iter().all(|&b| b == 0));
            assert!((0..x.len()).all(|i| code_at(&data, i) != 3));
            assert_eq!(dequantize_vec(TY, &data), x);
        }
    }

    #[test]
    fn quantize_picks_the_nearest_level() {
        let mut x = vec![0f32; 128];
        x[0] = -4.0; // the max: scale 4
        x[1] = 2.0; // exactly half: away from zero
        x[2] = -2.0;
        x[3] = 1.9999999;
        x[4] = 3.0;
        x[5] = -0.1;
        x[6] = f32::NAN;
        let y = dequantize_vec(TY, &quantize_vec(&x));
        assert_eq!(&y[..7], &[-4.0, 4.0, -4.0, 0.0, 4.0, 0.0, 0.0]);
    }

    #[test]
    fn all_zero_and_all_same() {
        let data = quantize_vec(&[0.0; 256]);
        assert_eq!(data, tensor(vec![0x55; 64], 0.0));
        assert!(dequantize_vec(TY, &data).iter().all(|&v| v == 0.0));
        let data = quantize_vec(&[-1.0; 128]);
        assert_eq!(data, tensor(vec![0x00; 32], 1.0));
        let data = quantize_vec(&[1e38; 128]);
        assert_eq!(data, tensor(vec![0xaa; 32], 1e38));
    }
}
