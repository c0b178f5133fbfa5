//! Matrix kernels: a weight matrix in its stored format times activation rows.
//!
//! Like the reference's CPU backend, each activation row is first converted to the weight
//! type's partner format (F16 -> f16, BF16 -> bf16, Q8_0 -> Q8_0, TQ1_0/TQ2_0/Q6_K -> Q8_K,
//! I2_S -> per-token int8), then every output is one dot product. These are the plain scalar
//! references; faster kernels must match them.

pub mod attention;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dot;
pub mod exp;
pub mod f16;
pub mod norm;
pub mod pool;
pub mod rope;
pub mod ternary;

pub use crate::quant::q8_k::quantize as quantize_q8_k;
pub use dot::{dot_q6_k_q8_k, dot_q8_0_q8_0, dot_tq1_0_q8_k, dot_tq2_0_q8_k};

use crate::error::{Error, Result};
use crate::quant::float::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
use crate::quant::{i2_s, q8_0, q8_k, GgmlType};

/// A weight matrix as stored: `rows` outputs, each a row of `cols` inputs (ne0 = cols).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

/// Asks Linux to back the 2 MiB-aligned interior of a fresh (untouched) heap buffer with
/// transparent huge pages (`MADV_HUGEPAGE`; this matters where THP is in `madvise` mode): the
/// decode kernels stream every weight once per token, and with 4 KiB pages each page costs a
/// TLB miss and restarts the hardware prefetcher. Advice only: failure changes nothing.
pub fn advise_huge_pages(ptr: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        const MADV_HUGEPAGE: i32 = 14;
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).div_ceil(HUGE) * HUGE;
        let end = (ptr as usize + len) / HUGE * HUGE;
        if end > start {
            // SAFETY: [start, end) lies inside a live allocation of the caller; MADV_HUGEPAGE
            // only changes how the kernel backs those pages, never their contents.
            unsafe { madvise(start as *mut _, end - start, MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// Whether `matmul` handles weights of this type.
pub fn supports(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::F32
            | GgmlType::F16
            | GgmlType::BF16
            | GgmlType::Q8_0
            | GgmlType::Q6_K
            | GgmlType::TQ1_0
            | GgmlType::TQ2_0
            | GgmlType::I2_S
    )
}

impl MatRef<'_> {
    /// Bytes of one row (I2_S: its packed codes; the scale sits after all rows).
    fn row_bytes(&self) -> usize {
        match self.ty {
            GgmlType::I2_S => self.cols / 4,
            ty => self.cols / ty.block_size() as usize * ty.block_bytes() as usize,
        }
    }

    fn row(&self, r: usize) -> &[u8] {
        let n = self.row_bytes();
        &self.data[r * n..(r + 1) * n]
    }
}

/// How a matmul treats its input rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activations {
    /// As the reference does for the weight type: f16/bf16 rounding for F16/BF16 weights,
    /// Q8_0 for Q8_0, Q8_K for TQ1_0/TQ2_0/Q6_K, per-token int8 for I2_S, f32 otherwise.
    ByWeightType,
    /// Per-token int8 whatever the storage: BitNet b1.58's BitLinear, so that I2_S, TQ2_0 and
    /// F32 copies of the same ternary weights compute the same function.
    PerTokenInt8,
}

/// One activation row in the weight type's partner format.
enum Act {
    Float(Vec<f32>),
    Blocks(Vec<u8>),
    /// I2_S: int8 values, their sum, and the scale they were multiplied by.
    Int8 {
        q: Vec<i8>,
        sum: i32,
        scale: f32,
    },
}

/// Q8_0 activation blocks as the reference's x86 CPU path makes them (`from_float` for Q8_0):
/// d = max|x| / 127 stored as f16, q = round-half-even(x * (127 / max|x|)). This differs from
/// the file writer `quant::q8_0::quantize` (gguf-py's, rounding half away from zero).
pub fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x
        .chunks_exact(q8_0::BLOCK)
        .zip(out.chunks_exact_mut(q8_0::BLOCK_BYTES))
    {
        let max = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max / 127.0;
        let id = if max != 0.0 { 127.0 / max } else { 0.0 };
        ob[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        for (o, &v) in ob[2..].iter_mut().zip(xb) {
            *o = x86_round_to_i8(v * id) as u8;
        }
    }
}

/// What x86's round-to-nearest-even, float -> int32 conversion and saturating packs give:
/// NaN, infinities and anything outside int32 become int32::MIN, so -128. (A block whose max is
/// subnormal has 127/max = inf, and every value of it, zeros included, comes out as -128.)
fn x86_round_to_i8(v: f32) -> i8 {
    let r = v.round_ties_even();
    if !(-2147483648.0..2147483648.0).contains(&r) {
        return -128;
    }
    (r as i32).clamp(-128, 127) as i8
}

/// Per-token int8 quantization for I2_S (docs/architectures.md): scale = 127 / max(1e-5, max|x|),
/// q = round-half-even(x * scale) clamped to [-128, 127].
pub fn quantize_i8_per_token(x: &[f32]) -> (Vec<i8>, i32, f32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = 127.0 / amax.max(1e-5);
    let q: Vec<i8> = x
        .iter()
        .map(|&v| (v * scale).round_ties_even().clamp(-128.0, 127.0) as i8)
        .collect();
    let sum = q.iter().map(|&v| v as i32).sum();
    (q, sum, scale)
}

fn convert(ty: GgmlType, mode: Activations, x: &[f32]) -> Act {
    if mode == Activations::PerTokenInt8 {
        let (q, sum, scale) = quantize_i8_per_token(x);
        return Act::Int8 { q, sum, scale };
    }
    match ty {
        GgmlType::F16 => Act::Float(x.iter().map(|&v| f16_to_f32(f32_to_f16(v))).collect()),
        GgmlType::BF16 => Act::Float(x.iter().map(|&v| bf16_to_f32(f32_to_bf16(v))).collect()),
        GgmlType::Q8_0 => {
            let mut b = vec![0u8; x.len() / q8_0::BLOCK * q8_0::BLOCK_BYTES];
            quantize_q8_0(x, &mut b);
            Act::Blocks(b)
        }
        GgmlType::TQ1_0 | GgmlType::TQ2_0 | GgmlType::Q6_K => {
            let mut b = vec![0u8; x.len() / q8_k::BLOCK * q8_k::BLOCK_BYTES];
            q8_k::quantize(x, &mut b);
            Act::Blocks(b)
        }
        GgmlType::I2_S => {
            let (q, sum, scale) = quantize_i8_per_token(x);
            Act::Int8 { q, sum, scale }
        }
        _ => Act::Float(x.to_vec()),
    }
}

/// f32 dot product accumulated in 16 lanes, summed pairwise.
fn dot_f32(w: impl Iterator<Item = f32>, x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for (i, (w, &x)) in w.zip(x).enumerate() {
        acc[i % 16] = w.mul_add(x, acc[i % 16]);
    }
    let mut n = 16;
    while n > 1 {
        n /= 2;
        for i in 0..n {
            acc[i] += acc[i + n];
        }
    }
    acc[0]
}

fn dot_row(w: &MatRef<'_>, r: usize, act: &Act) -> f32 {
    let row = w.row(r);
    match (w.ty, act) {
        (GgmlType::F32, Act::Float(x)) => dot_f32(
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            x,
        ),
        (GgmlType::F16, Act::Float(x)) => dot_f32(
            row.chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            x,
        ),
        (GgmlType::BF16, Act::Float(x)) => dot_f32(
            row.chunks_exact(2)
                .map(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            x,
        ),
        (GgmlType::Q8_0, Act::Blocks(a)) => dot_q8_0_q8_0(row, a),
        (GgmlType::TQ1_0, Act::Blocks(a)) => dot_tq1_0_q8_k(row, a),
        (GgmlType::TQ2_0, Act::Blocks(a)) => dot_tq2_0_q8_k(row, a),
        (GgmlType::Q6_K, Act::Blocks(a)) => dot_q6_k_q8_k(row, a),
        (GgmlType::I2_S, Act::Int8 { q, sum, scale }) => {
            let mut isum = 0i32;
            for (i, &v) in q.iter().enumerate() {
                isum += i2_s::code_at(row, i) as i32 * v as i32;
            }
            let w_scale = i2_s::scale(w.data);
            (isum - sum) as f32 / scale * w_scale
        }
        (_, Act::Int8 { q, scale, .. }) => {
            // Other storage under per-token int8: the stored weights times the int8 values,
            // summed in f64 (exact for ternary weights), then divided by the token's scale.
            let mut wr = vec![0f32; w.cols];
            row_to_f32(w, r, &mut wr).expect("supported type, whole row");
            let acc: f64 = wr.iter().zip(q).map(|(&a, &b)| a as f64 * b as f64).sum();
            acc as f32 / scale
        }
        _ => unreachable!("convert() picks the partner format of the weight type"),
    }
}

/// `out[t][r] = w.row(r) . x[t]` for `n` activation rows `x` (each `w.cols` long), on the
/// pool's default threads. F16 weights take the vectorized path (bit-identical to the scalar
/// one); other types the scalar reference (ternary weights repacked at load go through
/// `ternary::matmul` instead, see `Model::matmul`).
pub fn matmul(
    w: &MatRef<'_>,
    mode: Activations,
    x: &[f32],
    n: usize,
    out: &mut [f32],
) -> Result<()> {
    matmul_threads(w, mode, x, n, out, pool::default_threads())
}

/// `matmul` on up to `threads` pool threads.
pub fn matmul_threads(
    w: &MatRef<'_>,
    mode: Activations,
    x: &[f32],
    n: usize,
    out: &mut [f32],
    threads: usize,
) -> Result<()> {
    if w.ty == GgmlType::F16 && mode == Activations::ByWeightType {
        debug_assert_eq!(x.len(), n * w.cols);
        debug_assert_eq!(out.len(), n * w.rows);
        f16::matmul_f16(w.data, w.rows, w.cols, x, n, out, w.rows, threads);
        return Ok(());
    }
    matmul_scalar(w, mode, x, n, out)
}

/// The plain scalar reference of `matmul`: one dot product per output, one thread.
pub fn matmul_scalar(
    w: &MatRef<'_>,
    mode: Activations,
    x: &[f32],
    n: usize,
    out: &mut [f32],
) -> Result<()> {
    if !supports(w.ty) {
        return Err(Error::unsupported(format!(
            "no matmul for tensor type {} (id {})",
            w.ty,
            w.ty.id()
        )));
    }
    debug_assert_eq!(x.len(), n * w.cols);
    debug_assert_eq!(out.len(), n * w.rows);
    for (xt, ot) in x.chunks_exact(w.cols).zip(out.chunks_exact_mut(w.rows)) {
        let act = convert(w.ty, mode, xt);
        for (r, o) in ot.iter_mut().enumerate() {
            *o = dot_row(w, r, &act);
        }
    }
    Ok(())
}

/// Row `r` of `w` as f32 (an embedding lookup).
pub fn row_to_f32(w: &MatRef<'_>, r: usize, out: &mut [f32]) -> Result<()> {
    match w.ty {
        GgmlType::I2_S => {
            let scale = i2_s::scale(w.data);
            for (i, o) in out.iter_mut().enumerate() {
                *o = (i2_s::code_at(w.row(r), i) as i32 - 1) as f32 * scale;
            }
            Ok(())
        }
        ty => crate::quant::dequantize(ty, w.row(r), out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_activations_round_half_to_even() {
        let mut x = [0f32; 32];
        x[0] = 127.0; // max 127: id = 1, d = 1
        x[1..5].copy_from_slice(&[2.5, 3.5, -2.5, -0.5]);
        let mut b = [0u8; 34];
        quantize_q8_0(&x, &mut b);
        assert_eq!(f16_to_f32(u16::from_le_bytes([b[0], b[1]])), 1.0);
        let q: Vec<i8> = b[2..7].iter().map(|&v| v as i8).collect();
        assert_eq!(q, vec![127, 2, 4, -2, 0]);
        let mut tiny = [1e-40f32; 32];
        tiny[1] = 0.0;
        tiny[2] = -1e-40;
        quantize_q8_0(&tiny, &mut b);
        assert!(
            b[2..].iter().all(|&v| v as i8 == -128),
            "127/max is inf: all -128"
        );
        let mut zeros = [0u8; 34];
        quantize_q8_0(&[0.0; 32], &mut zeros);
        assert!(zeros.iter().all(|&v| v == 0));
    }

    #[test]
    fn i8_per_token() {
        let (q, sum, scale) = quantize_i8_per_token(&[0.5, -1.0, 0.25, 0.0]);
        assert_eq!(scale, 127.0);
        assert_eq!(q, vec![64, -127, 32, 0]); // 63.5 rounds to even 64; 31.75 -> 32
        assert_eq!(sum, -31);
        let (q, _, scale) = quantize_i8_per_token(&[0.0; 8]);
        assert_eq!((q, scale), (vec![0; 8], 127.0 / 1e-5));
    }
}
