//! Q8_K (ggml type 15): llama.cpp's activation format for dot products with K-quants and the
//! TQ formats. Blocks of 256 values:
//!
//! ```text
//! bytes   0..4    d, f32 little-endian
//! bytes   4..260  q[0..256], i8
//! bytes 260..292  bsums[0..16], i16 little-endian: bsums[g] = sum of q[16g..16g+16]
//! ```
//!
//! value = d * q. `quantize` follows ggml's `quantize_row_q8_K_ref`: the value of largest
//! magnitude (the first one on ties) is `max`, kept with its sign; `iscale = -127 / max`;
//! `q = min(127, nearest_int(iscale * x))` where `nearest_int` is ggml's float trick (round
//! half to even for |v| < 2^22); `d = 1 / iscale`. The value of largest magnitude is therefore
//! always stored as -127 and `d` has the opposite sign of `max`. A block whose largest
//! magnitude is 0 (or whose values are all NaN) gets `d = 0` and all-zero codes and bsums
//! (ggml leaves the bsums of such a block unwritten; we write zeros, their true sum).
//! gguf-py does not implement Q8_K.

pub const BLOCK: usize = 256;
pub const BLOCK_BYTES: usize = 292;

/// Byte offset of the codes q in a block.
pub const QS: usize = 4;
/// Byte offset of the bsums in a block.
pub const BSUMS: usize = 260;

/// ggml's `nearest_int`: adding 1.5 * 2^23 leaves `round_half_even(v)` in the low mantissa
/// bits of the sum. Exact for |v| < 2^22; any other input (NaN, huge) still gives some i32.
fn nearest_int(v: f32) -> i32 {
    let sum = v + 12_582_912.0;
    ((sum.to_bits() as i32) & 0x007f_ffff) - 0x0040_0000
}

/// Dequantizes whole Q8_K blocks: `out[i] = d * q[i] as f32`.
pub fn dequantize(data: &[u8], out: &mut [f32]) {
    for (block, out) in super::blocks_out(data, BLOCK_BYTES, out, BLOCK) {
        let d = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        for (&q, o) in block[QS..BSUMS].iter().zip(out.iter_mut()) {
            *o = d * (q as i8) as f32;
        }
    }
}

/// Quantizes whole blocks of 256 values into Q8_K blocks. The plain reference of
/// `kernels::quantize_q8_k` (AVX-512 where the CPU has it, the same bytes).
pub fn quantize(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(x.len() / BLOCK * BLOCK_BYTES, out.len());
    for (values, block) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let mut max = 0.0f32;
        let mut amax = 0.0f32;
        for &v in values {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            block.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (&v, q) in values.iter().zip(block[QS..BSUMS].iter_mut()) {
            // C stores the int into an int8_t, keeping the low byte; reachable values are
            // -127..=127 for finite inputs.
            *q = nearest_int(iscale * v).min(127) as i8 as u8;
        }
        let (head, bsums) = block.split_at_mut(BSUMS);
        for (group, sum) in head[QS..].chunks_exact(16).zip(bsums.chunks_exact_mut(2)) {
            let total: i32 = group.iter().map(|&q| (q as i8) as i32).sum();
            sum.copy_from_slice(&(total as i16).to_le_bytes());
        }
        block[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::testing::{dequantize_vec, quantize_vec};
    use crate::quant::GgmlType;
    use crate::rng::SplitMix64;

    /// The format under test, for the shared helpers.
    const TY: GgmlType = GgmlType::Q8_K;

    fn d_of(block: &[u8]) -> f32 {
        f32::from_le_bytes([block[0], block[1], block[2], block[3]])
    }

    fn qs_of(block: &[u8]) -> Vec<i8> {
        block[QS..BSUMS].iter().map(|&b| b as i8).collect()
    }

    fn bsums_of(block: &[u8]) -> Vec<i16> {
        block[BSUMS..]
            .chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    #[test]
    fn nearest_int_rounds_half_to_even() {
        let cases = [
            (0.0, 0),
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (126.49, 126),
            (-127.0, -127),
            (0.49999997, 0),
            (4_194_303.0, 4_194_303),
        ];
        for (v, want) in cases {
            assert_eq!(nearest_int(v), want, "{v}");
        }
        assert_eq!(nearest_int(f32::NAN), 0);
    }

    #[test]
    fn hand_computed_block_positive_max() {
        // max = 127 gives iscale = -1 and d = -1: q = nearest_int(-x).
        let mut x = [0f32; 256];
        x[0] = 127.0;
        x[1] = 63.5; // -63.5 -> -64 (even)
        x[2] = -1.0;
        x[3] = 0.5; // -0.5 -> 0 (even)
        x[4] = 1.5; // -1.5 -> -2
        x[5] = 2.5; // -2.5 -> -2 (even)
        x[16] = -100.25; // 100.25 -> 100
        x[255] = 126.75; // -126.75 -> -127
        let b = quantize_vec(TY, &x);
        assert_eq!(d_of(&b), -1.0);
        let q = qs_of(&b);
        assert_eq!(&q[..6], &[-127, -64, 1, 0, -2, -2]);
        assert_eq!(q[16], 100);
        assert_eq!(q[255], -127);
        let bsums = bsums_of(&b);
        assert_eq!(bsums[0], -127 - 64 + 1 - 2 - 2);
        assert_eq!(bsums[1], 100);
        assert_eq!(bsums[15], -127);
        assert!(bsums[2..15].iter().all(|&s| s == 0));
        let y = dequantize_vec(TY, &b);
        assert_eq!(&y[..6], &[127.0, 64.0, -1.0, 0.0, 2.0, 2.0]);
    }

    #[test]
    fn hand_computed_block_negative_max() {
        // max = -254 gives iscale = 0.5 and d = 2: the max is stored as -127, d positive.
        let mut x = [1.0f32; 256]; // 0.5 -> 0 (even)
        x[5] = -254.0;
        x[6] = 3.0; // 1.5 -> 2
        x[7] = 254.0; // same magnitude as x[5] but later: not the max; 127
        let b = quantize_vec(TY, &x);
        assert_eq!(d_of(&b), 2.0);
        let q = qs_of(&b);
        assert_eq!(&q[4..9], &[0, -127, 2, 127, 0]);
        assert_eq!(bsums_of(&b)[0], 2);
        let y = dequantize_vec(TY, &b);
        assert_eq!(&y[4..9], &[0.0, -254.0, 4.0, 254.0, 0.0]);
    }

    #[test]
    fn first_of_equal_magnitudes_is_the_max() {
        let mut x = [0f32; 256];
        x[3] = 3.0;
        x[9] = -3.0;
        let b = quantize_vec(TY, &x);
        let q = qs_of(&b);
        assert_eq!((q[3], q[9]), (-127, 127));
        assert!(d_of(&b) < 0.0);
    }

    #[test]
    fn all_zero_block() {
        let b = quantize_vec(TY, &[0.0; 256]);
        assert_eq!(b, vec![0u8; BLOCK_BYTES]);
        // -0.0 has magnitude 0 too
        let b = quantize_vec(TY, &[-0.0; 256]);
        assert_eq!(b, vec![0u8; BLOCK_BYTES]);
        assert!(dequantize_vec(TY, &b).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn all_minus_one_and_all_plus_one() {
        let b = quantize_vec(TY, &[-1.0; 256]);
        assert!(qs_of(&b).iter().all(|&q| q == -127));
        assert!(bsums_of(&b).iter().all(|&s| s == -127 * 16));
        assert!(dequantize_vec(TY, &b)
            .iter()
            .all(|&v| (v + 1.0).abs() < 1e-6));
        let b = quantize_vec(TY, &[1.0; 256]);
        assert!(qs_of(&b).iter().all(|&q| q == -127));
        assert!(d_of(&b) < 0.0);
        assert!(dequantize_vec(TY, &b)
            .iter()
            .all(|&v| (v - 1.0).abs() < 1e-6));
    }

    #[test]
    fn big_values() {
        let mut x = [0f32; 256];
        // powers of two keep every product exact: iscale = -2^-120
        let big = 2f32.powi(120);
        x[0] = 127.0 * big;
        x[1] = -63.5 * big; // 63.5 -> 64 (even)
        x[2] = 1e30; // tiny next to the max: 0
        let b = quantize_vec(TY, &x);
        assert_eq!(d_of(&b), -big);
        let q = qs_of(&b);
        assert_eq!(&q[..3], &[-127, 64, 0]);
        let y = dequantize_vec(TY, &b);
        assert_eq!(&y[..3], &[127.0 * big, -64.0 * big, 0.0]);
    }

    #[test]
    fn random_blocks_bsums_and_error_bound() {
        let mut rng = SplitMix64(0xdead_beef_cafe_f00d);
        let x: Vec<f32> = (0..256 * 32)
            .map(|i| (rng.unit() * 2.0 - 1.0) * [1.0f32, 1e-3, 50.0, 1e6][i / 256 % 4])
            .collect();
        let b = quantize_vec(TY, &x);
        let y = dequantize_vec(TY, &b);
        for ((xb, bb), yb) in x.chunks(256).zip(b.chunks(BLOCK_BYTES)).zip(y.chunks(256)) {
            let q = qs_of(bb);
            assert!(q.iter().all(|&q| (-127..=127).contains(&q)));
            for (g, &s) in bsums_of(bb).iter().enumerate() {
                assert_eq!(
                    s as i32,
                    q[16 * g..16 * g + 16]
                        .iter()
                        .map(|&v| v as i32)
                        .sum::<i32>()
                );
            }
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = d_of(bb).abs();
            assert!((d - amax / 127.0).abs() <= amax / 127.0 * 1e-6);
            for (a, b) in xb.iter().zip(yb) {
                // half a step, plus f32 rounding of iscale * x and of d * q
                assert!((a - b).abs() <= d * 0.5 + amax * 1e-6, "{a} {b}");
            }
        }
    }

    #[test]
    fn non_finite_inputs_do_not_panic() {
        let mut x = [1.0f32; 256];
        x[0] = f32::NAN; // never the max (NaN > amax is false); codes for NaN are 0
        let b = quantize_vec(TY, &x);
        assert_eq!(qs_of(&b)[0], 0);
        assert_eq!(qs_of(&b)[1], -127);
        let b = quantize_vec(TY, &[f32::NAN; 256]);
        assert_eq!(b, vec![0u8; BLOCK_BYTES]);
        x[0] = f32::INFINITY;
        let _ = quantize_vec(TY, &x);
        let mut rng = SplitMix64(3);
        let data: Vec<u8> = (0..BLOCK_BYTES * 4).map(|_| rng.next_u64() as u8).collect();
        let _ = dequantize_vec(TY, &data);
    }
}
