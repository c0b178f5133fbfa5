//! Q6_K (ggml type 14): super-blocks of 256 values in 16 groups of 16. Each value is a 6-bit
//! code `q` (0..63, stored as 4 low bits plus 2 high bits); each group has a signed 8-bit
//! scale; the super-block has one f16 `d`. value = (d * scale[group]) * (q - 32).
//!
//! ```text
//! bytes   0..128  ql: low 4 bits of the codes
//! bytes 128..192  qh: high 2 bits of the codes
//! bytes 192..208  scales[16], i8
//! bytes 208..210  d, f16 little-endian
//! ```
//!
//! The 256 values are two halves of 128. Value `r` (0..128) of half `h` takes
//! - its low 4 bits from `ql[64h + r % 64]`: the low nibble when `r < 64`, else the high one;
//! - its high 2 bits from `qh[32h + r % 32]`, bits `2 * (r / 32)` and up.
//!
//! The float work is done as gguf-py does it, so results are the same bits: `d * scale` in
//! f32 first, then times `q - 32`.

pub const BLOCK: usize = 256;
pub const BLOCK_BYTES: usize = 210;

const QL: usize = 0;
const QH: usize = 128;
const SCALES: usize = 192;
const D: usize = 208;

/// The unsigned 6-bit code (0..63; the value is code - 32) of value `e` (0..256) of one block.
pub fn code(block: &[u8], e: usize) -> u8 {
    let (h, r) = (e / 128, e % 128);
    let low = (block[QL + 64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
    let high = (block[QH + 32 * h + r % 32] >> (2 * (r / 32))) & 0x03;
    low | (high << 4)
}

/// Dequantizes whole Q6_K blocks.
pub fn dequantize(data: &[u8], out: &mut [f32]) {
    for (block, out) in super::blocks_out(data, BLOCK_BYTES, out, BLOCK) {
        let d = super::f16_at(block, D);
        for (group, out) in out.chunks_exact_mut(16).enumerate() {
            let scaled = d * (block[SCALES + group] as i8) as f32;
            for (k, o) in out.iter_mut().enumerate() {
                let q = code(block, 16 * group + k) as i32 - 32;
                *o = scaled * q as f32;
            }
        }
    }
}

/// Quantizes whole blocks of 256 values to Q6_K by our own rule (not ggml's search over
/// trial scales, whose bytes depend on float evaluation order; any valid Q6_K bytes are read
/// the same by every dequantizer):
/// - each group of 16 takes `s = -m / 32`, `m` its value of largest magnitude (the first on
///   ties), so that `m` itself is code 0 (value -32) and the group spans -32..=31 steps;
/// - the block's `d` is `max |s| / 127` rounded to f16, each group's scale `round(s / d)`
///   (ties away from zero, clamped to -127..=127);
/// - each value's code is `clamp(round(x / (d * scale)), -32, 31) + 32` with the f16 `d` and
///   the int scale, exactly the step the dequantizer multiplies by (`d * scale` in f32);
///   a group whose step is 0 (all zeros, or too small beside the block's largest) is code 32.
///
/// Per value the error is at most half a step, or, for a value pushed past the range by the
/// rounding of its group's scale, `|x| - 31 * step` (at most `step + 16 * d`; tested below). NaN
/// inputs give code 32 (0); a block holding an infinity has no finite `d` and is all zeros.
/// `v.round() as i32` (half away from zero) for |v| <= 40, without libm's `roundf` (a call on
/// baseline x86-64, most of the quantizer's time): |v| + 0.5 is exact in f64 (v has 24
/// significant bits and at most 6 integer bits), so its truncation is the rounded magnitude.
/// Larger magnitudes come out as +-40 or more, which the caller's clamp treats alike; NaN
/// gives 0 like `as`.
fn round_small(v: f32) -> i32 {
    let v = v.clamp(-40.0, 40.0);
    let r = (v.abs() as f64 + 0.5) as i32;
    if v < 0.0 {
        -r
    } else {
        r
    }
}

pub fn quantize(x: &[f32], out: &mut [u8]) {
    use super::float::{f16_to_f32, f32_to_f16};
    debug_assert_eq!(x.len() / BLOCK * BLOCK_BYTES, out.len());
    for (values, block) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let mut group_scale = [0f32; 16];
        for (s, g) in group_scale.iter_mut().zip(values.chunks_exact(16)) {
            let m = g
                .iter()
                .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
            *s = -m / 32.0;
        }
        let max = group_scale.iter().fold(0f32, |a, s| a.max(s.abs()));
        let d_bits = f32_to_f16(max / 127.0);
        let d = f16_to_f32(d_bits);
        block.fill(0);
        for (g, &s) in group_scale.iter().enumerate() {
            let sc = if d > 0.0 && d.is_finite() {
                (s / d).round().clamp(-127.0, 127.0) as i8
            } else {
                0
            };
            block[SCALES + g] = sc as u8;
            let step = d * sc as f32;
            for k in 0..16 {
                let e = 16 * g + k;
                let q = if step != 0.0 && step.is_finite() {
                    // NaN: `as` gives 0 and clamp keeps it.
                    round_small(values[e] / step).clamp(-32, 31) + 32
                } else {
                    32
                } as u8;
                let (h, r) = (e / 128, e % 128);
                block[QL + 64 * h + r % 64] |= (q & 0x0f) << (4 * (r / 64));
                block[QH + 32 * h + r % 32] |= (q >> 4) << (2 * (r / 32));
            }
        }
        block[D..D + 2].copy_from_slice(&d_bits.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::float::f16_to_f32;
    use crate::quant::testing::dequantize_vec;
    use crate::quant::GgmlType;
    use crate::rng::SplitMix64;

    /// The format under test, for the shared helpers.
    const TY: GgmlType = GgmlType::Q6_K;

    #[test]
    fn round_small_is_round_half_away_from_zero() {
        let mut rng = SplitMix64(6);
        let mut vals = vec![
            0.0f32, -0.0, 0.5, -0.5, 1.5, -2.5, 31.5, -32.5, 40.0, -41.0, 1e30,
        ];
        vals.extend([
            f32::MIN_POSITIVE,
            -1e-40,
            0.49999997,
            -0.49999997,
            2.4999998,
        ]);
        vals.extend((0..100_000).map(|_| (rng.unit() - 0.5) * 90.0));
        vals.extend((0..=80).map(|k| k as f32 * 0.5 - 20.0));
        for v in vals {
            let want = (v.round() as i32).clamp(-40, 40);
            assert_eq!(round_small(v).clamp(-40, 40), want, "{v:e}");
        }
        assert_eq!(round_small(f32::NAN), 0);
    }

    /// A block with d = 1, every scale 1 and the given codes, packed from the layout facts.
    fn pack(codes: &[u8; 256], scales: &[i8; 16], d_bits: u16) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK_BYTES];
        for (e, &q) in codes.iter().enumerate() {
            assert!(q < 64);
            let (h, r) = (e / 128, e % 128);
            b[QL + 64 * h + r % 64] |= (q & 0x0f) << (4 * (r / 64));
            b[QH + 32 * h + r % 32] |= (q >> 4) << (2 * (r / 32));
        }
        for (i, &s) in scales.iter().enumerate() {
            b[SCALES + i] = s as u8;
        }
        b[D..].copy_from_slice(&d_bits.to_le_bytes());
        b
    }

    #[test]
    fn every_position_decodes_from_its_own_bits() {
        // code 32 means 0; put a distinct non-zero code at one position at a time
        for e in 0..256 {
            let mut codes = [32u8; 256];
            codes[e] = 63;
            let out = dequantize_vec(TY, &pack(&codes, &[1; 16], 0x3c00));
            for (i, &v) in out.iter().enumerate() {
                assert_eq!(v, if i == e { 31.0 } else { 0.0 }, "set {e}, read {i}");
            }
        }
    }

    #[test]
    fn hand_built_bytes() {
        // all ql = 0, all qh = 0: every code 0, value = d * scale * -32
        let mut b = vec![0u8; BLOCK_BYTES];
        for (i, s) in b[SCALES..D].iter_mut().enumerate() {
            *s = (i as i8 - 8) as u8;
        }
        b[D..].copy_from_slice(&0x3800u16.to_le_bytes()); // d = 0.5
        let out = dequantize_vec(TY, &b);
        for (e, &v) in out.iter().enumerate() {
            assert_eq!(v, (0.5 * ((e / 16) as f32 - 8.0)) * -32.0, "{e}");
        }
        // ql[0] = 0xa5: value 0 gets low nibble 5, value 64 high nibble 10.
        // qh[0] = 0b11_10_01_00: values 0, 32, 64, 96 get high bits 0, 1, 2, 3.
        let mut b = vec![0u8; BLOCK_BYTES];
        b[QL] = 0xa5;
        b[QH] = 0b1110_0100;
        b[SCALES..D].fill(1);
        b[D..].copy_from_slice(&0x3c00u16.to_le_bytes());
        let out = dequantize_vec(TY, &b);
        assert_eq!(out[0], (5 - 32) as f32);
        assert_eq!(out[32], (16 - 32) as f32);
        assert_eq!(out[64], (10 + 32 - 32) as f32);
        assert_eq!(out[96], (48 - 32) as f32);
        assert_eq!(out[128], -32.0); // second half reads ql[64..], qh[32..]
    }

    #[test]
    fn float_order_is_d_times_scale_first() {
        // d * scale rounds in f32 before multiplying by q: pick values where the order shows.
        let d = f16_to_f32(0x3c01); // 1 + 2^-10
        let mut codes = [0u8; 256];
        codes[0] = 63;
        let mut scales = [0i8; 16];
        scales[0] = 127;
        let out = dequantize_vec(TY, &pack(&codes, &scales, 0x3c01));
        assert_eq!(out[0].to_bits(), ((d * 127.0) * 31.0).to_bits());
    }

    #[test]
    fn gguf_py_vector() {
        // bytes b[i] = (i * 37 + 11) % 256 for i in 0..208, d = 0x2e66 (about 0.1), dequantized
        // by gguf-py (gguf 0.19.0); a few outputs checked bit for bit.
        let mut b: Vec<u8> = (0..208u32).map(|i| ((i * 37 + 11) % 256) as u8).collect();
        b.extend_from_slice(&0x2e66u16.to_le_bytes());
        let out = dequantize_vec(TY, &b);
        let want: [(usize, u32); 8] = [
            (0, 0xc30f_10a8),   // -143.06506
            (1, 0x4329_8f00),   // 169.5586
            (17, 0x424c_c000),  // 51.1875
            (100, 0x437c_3d08), // 252.2384
            (128, 0xc20c_5da0), // -35.09143
            (200, 0x42d9_bf30), // 108.87341
            (254, 0xc07f_f000), // -3.9990234
            (255, 0xc0bf_f400), // -5.998535
        ];
        for (i, bits) in want {
            assert_eq!(out[i].to_bits(), bits, "value {i}");
        }
    }

    #[test]
    fn any_bytes_decode_without_panicking() {
        let mut rng = SplitMix64(99);
        let data: Vec<u8> = (0..BLOCK_BYTES * 8).map(|_| rng.next_u64() as u8).collect();
        let out = dequantize_vec(TY, &data);
        for (block, out) in data.chunks(BLOCK_BYTES).zip(out.chunks(BLOCK)) {
            let d = f16_to_f32(u16::from_le_bytes([block[D], block[D + 1]]));
            for (e, &v) in out.iter().enumerate() {
                let want =
                    (d * (block[SCALES + e / 16] as i8) as f32) * (code(block, e) as f32 - 32.0);
                assert_eq!(v.to_bits(), want.to_bits());
            }
        }
    }

    #[test]
    fn quantize_error_is_bounded_and_bytes_decode() {
        let mut rng = SplitMix64(5);
        let n = 64 * BLOCK;
        // Blocks of mixed magnitudes: each group gets its own range, some groups tiny.
        let x: Vec<f32> = (0..n)
            .map(|i| {
                let g = i / 16;
                let mag = [1.0, 0.01, 30.0, 1e-6, 0.5][g % 5];
                (rng.unit() * 2.0 - 1.0) * mag
            })
            .collect();
        let mut q = vec![0u8; n / BLOCK * BLOCK_BYTES];
        quantize(&x, &mut q);
        let y = dequantize_vec(TY, &q);
        for (b, (xb, yb)) in x.chunks(BLOCK).zip(y.chunks(BLOCK)).enumerate() {
            let d = f16_to_f32(u16::from_le_bytes([
                q[b * BLOCK_BYTES + D],
                q[b * BLOCK_BYTES + D + 1],
            ]));
            for (g, (xg, yg)) in xb.chunks(16).zip(yb.chunks(16)).enumerate() {
                let sc = q[b * BLOCK_BYTES + SCALES + g] as i8 as f32;
                let step = (d * sc).abs();
                let amax = xg.iter().fold(0f32, |a, v| a.max(v.abs()));
                for (&a, &v) in xg.iter().zip(yg) {
                    // Half a step, or the overshoot of a scale rounded down (at most step + 16 d),
                    // and never more than the group's largest magnitude (code 32 = 0).
                    let bound = (step / 2.0).max(a.abs() - 31.0 * step).min(amax) + 1e-6 * amax;
                    assert!(
                        (a - v).abs() <= bound,
                        "block {b} group {g}: {a} -> {v}, step {step}"
                    );
                    assert!((a - v).abs() <= 16.0 * d + step + 1e-6 * amax);
                }
            }
        }
        let rms = |v: &[f32]| (v.iter().map(|a| a * a).sum::<f32>() / v.len() as f32).sqrt();
        let err: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a - b).collect();
        assert!(
            rms(&err) < 0.02 * rms(&x),
            "relative rms error {}",
            rms(&err) / rms(&x)
        );
    }

    #[test]
    fn quantize_special_values() {
        let mut x = vec![0f32; BLOCK];
        let mut q = vec![0u8; BLOCK_BYTES];
        quantize(&x, &mut q);
        assert!(
            dequantize_vec(TY, &q).iter().all(|&v| v == 0.0),
            "zeros stay zeros"
        );
        x[3] = f32::NAN;
        x[17] = 1.0;
        x[40] = -2.0;
        quantize(&x, &mut q);
        let y = dequantize_vec(TY, &q);
        assert_eq!(y[3], 0.0);
        assert!(
            (y[17] - 1.0).abs() < 0.02 && (y[40] + 2.0).abs() < 0.04,
            "{} {}",
            y[17],
            y[40]
        );
        x[100] = f32::INFINITY;
        quantize(&x, &mut q);
        assert!(dequantize_vec(TY, &q)
            .iter()
            .all(|v| v.is_finite() || v.is_nan()));
    }
}
