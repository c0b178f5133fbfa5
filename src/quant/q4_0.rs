//! Q4_0 (ggml type 2): blocks of 32 values, each block an f16 scale `d` then 16 bytes of 4-bit
//! codes `q` (0..=15); value = (q - 8) * d.
//!
//! ```text
//! bytes 0..2   d, f16 little-endian
//! bytes 2..18  byte j: value j in its low nibble, value j + 16 in its high nibble
//! ```
//!
//! `quantize` follows ggml's `quantize_row_q4_0_ref` (which its x86 CPU backend also uses):
//! the value of largest magnitude `max` (the first one on ties) gives `d = max / -8` in f32,
//! so that value becomes code 0 (-8); each code is `min(15, trunc(x * (1/d) + 8.5))`, with
//! `1/d` taken as 0 when `d` is 0; `d` is stored rounded to f16.

use super::float::f32_to_f16;

pub const BLOCK: usize = 32;
pub const BLOCK_BYTES: usize = 18;

/// Code (0..=15) of value `e` (0..32) of a block.
pub fn code(block: &[u8], e: usize) -> u8 {
    let b = block[2 + e % 16];
    if e < 16 {
        b & 15
    } else {
        b >> 4
    }
}

/// Dequantizes whole Q4_0 blocks: `out[i] = (q[i] - 8) as f32 * d`.
pub fn dequantize(data: &[u8], out: &mut [f32]) {
    for (block, out) in super::blocks_out(data, BLOCK_BYTES, out, BLOCK) {
        let d = super::f16_at(block, 0);
        for (e, o) in out.iter_mut().enumerate() {
            *o = (code(block, e) as i32 - 8) as f32 * d;
        }
    }
}

/// C's `(int8_t)x` as the reference's x86 build computes it: truncation to int32 (`cvttss2si`:
/// NaN and values outside the int32 range give i32::MIN), then the low byte. Only reached
/// outside 0..=16 when the scale is subnormal or not finite.
fn x86_trunc_i32(x: f32) -> i32 {
    if x.is_nan() || !(-2147483648.0..2147483648.0).contains(&x) {
        i32::MIN
    } else {
        x as i32
    }
}

/// Quantizes whole blocks of 32 values into Q4_0 blocks (ggml's reference rules).
pub fn quantize(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(x.len() / BLOCK * BLOCK_BYTES, out.len());
    for (values, block) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in values {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        block[0..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        let q = |v: f32| (x86_trunc_i32(v * id + 8.5) as i8).min(15) as u8;
        for j in 0..16 {
            block[2 + j] = q(values[j]) | (q(values[16 + j]) << 4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::testing::{dequantize_vec, quantize_vec};
    use crate::quant::GgmlType;
    use crate::rng::SplitMix64;

    const TY: GgmlType = GgmlType::Q4_0;

    #[test]
    fn dequantize_hand_built_block() {
        let mut block = [0u8; BLOCK_BYTES];
        block[0..2].copy_from_slice(&0x3800u16.to_le_bytes()); // d = 0.5
        block[2] = 0xf0; // value 0: code 0 (-8); value 16: code 15 (+7)
        block[3] = 0x98; // value 1: code 8 (0); value 17: code 9 (+1)
        let out = dequantize_vec(TY, &block);
        assert_eq!((out[0], out[16], out[1], out[17]), (-4.0, 3.5, 0.0, 0.5));
        assert_eq!(out[2], -4.0); // code 0
    }

    #[test]
    fn largest_magnitude_maps_to_minus_eight_and_round_trips() {
        let mut rng = SplitMix64(40);
        let x: Vec<f32> = (0..32 * 64).map(|_| rng.normal()).collect();
        let q = quantize_vec(TY, &x);
        let back = dequantize_vec(TY, &q);
        for (b, (xb, yb)) in x.chunks_exact(32).zip(back.chunks_exact(32)).enumerate() {
            let (i, &m) = xb
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .unwrap();
            assert_eq!(code(&q[b * BLOCK_BYTES..], i), 0, "block {b}");
            let d = m.abs() / 8.0;
            for (&a, &y) in xb.iter().zip(yb) {
                // Half a step of rounding (a whole step where code 16 is clamped to 15), plus
                // the f16 rounding of d times up to 8 steps.
                assert!((a - y).abs() <= d * 1.01 + 1e-6, "{a} vs {y}");
            }
        }
        // All zeros: d = 0, every code 8 (value 0).
        let z = quantize_vec(TY, &[0.0; 32]);
        assert!(z[2..].iter().all(|&b| b == 0x88));
        assert!(dequantize_vec(TY, &z).iter().all(|&v| v == 0.0));
    }
}
