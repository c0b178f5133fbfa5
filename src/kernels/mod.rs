//! Matrix kernels: a weight matrix in its stored format times activation rows.
//!
//! Like the reference's CPU backend, each activation row is first converted to the weight
//! type's partner format (F16 -> f16, BF16 -> bf16, Q8_0/Q4_0/Q1_0/Q2_0 -> Q8_0,
//! TQ1_0/TQ2_0/Q6_K -> Q8_K, I2_S -> per-token int8), then every output is one dot product. The
//! functions here are the plain scalar references; faster kernels must match them.
//!
//! `isa` says which instruction set the CPU kernels use (detected once); each op then has one
//! file with its ISA variants beside its scalar twin: `ternary` (repacked ternary weights),
//! `lowbit` (repacked Q2_0 / Q1_0 weights),
//! `f16`, `dot` (block formats), `quantize` (activation quantizers), `attention`, `exp`,
//! `norm`. `pool` runs them on threads; `cuda` (feature `cuda`) is the GPU backend.

pub mod attention;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dot;
pub mod exp;
pub mod f16;
pub mod head;
pub mod head_q6_k;
pub mod isa;
pub mod lowbit;
pub mod norm;
pub mod pool;
pub mod quantize;
pub mod rope;
pub mod ternary;

pub use dot::{
    dot_q1_0_q8_0, dot_q2_0_q8_0, dot_q4_0_q8_0, dot_q6_k_q8_k, dot_q8_0_q8_0, dot_tq1_0_q8_k,
    dot_tq2_0_q8_k,
};
pub use quantize::{quantize_i8_per_token, quantize_q8_0, quantize_q8_k};

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

/// F16 values (2 little-endian bytes each, any alignment) to f32, exactly: F16C at every vector
/// level (`isa`), `quant::float::f16_to_f32` per value at the scalar one. For rows converted
/// in bulk (a head requantized at load): the per-value conversion costs more than the
/// quantizer.
pub fn f16_bytes_to_f32(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), out.len() * 2);
    #[cfg(target_arch = "x86_64")]
    if isa::best_isa() != isa::Isa::Scalar {
        // SAFETY: every vector level has F16C (`isa`); `bytes` holds `out.len()` values.
        unsafe { f16_to_f32_f16c(bytes.as_ptr(), out) };
        return;
    }
    crate::quant::float::dequantize_f16(bytes, out)
}

/// `out.len()` F16 values at `src` to f32, eight at a time.
///
/// # Safety
/// AVX and F16C; `src` points to `2 * out.len()` readable bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
pub(crate) unsafe fn f16_to_f32_f16c(src: *const u8, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n8 = out.len() / 8 * 8;
    for i in (0..n8).step_by(8) {
        // SAFETY: values i..i + 8 lie inside both (i + 8 <= n8 <= out.len()).
        unsafe {
            let h = _mm_loadu_si128(src.add(2 * i) as *const __m128i);
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        }
    }
    for (i, o) in out.iter_mut().enumerate().skip(n8) {
        // SAFETY: value i < out.len() lies inside `src` (the caller's promise).
        *o = f16_to_f32(unsafe { std::ptr::read_unaligned(src.add(2 * i) as *const u16) }.to_le());
    }
}

/// Asks Linux to back the 2 MiB-aligned interior of a fresh (untouched) heap buffer with
/// transparent huge pages (`MADV_HUGEPAGE`; this matters where THP is in `madvise` mode): the
/// decode kernels stream every weight once per token, and with 4 KiB pages each page costs a
/// TLB miss and restarts the hardware prefetcher. Advice only: failure changes nothing.
pub fn advise_huge_pages(ptr: *const u8, len: usize) {
    const MADV_HUGEPAGE: i32 = 14;
    const HUGE: usize = 2 << 20;
    let start = (ptr as usize).div_ceil(HUGE) * HUGE;
    let end = (ptr as usize + len) / HUGE * HUGE;
    // SAFETY: [start, end) lies inside a live allocation of the caller; MADV_HUGEPAGE only
    // changes how the kernel backs those pages, never their contents.
    unsafe { madvise(start, end, MADV_HUGEPAGE) };
}

/// A vector of `n` all-zero `T`s for a large buffer filled right after (a repacked matrix): huge
/// pages asked for first (`advise_huge_pages`), then the zeroing split over the pool's
/// threads, so the kernel clears the fresh pages on both cores instead of on the loading
/// thread alone (a single-threaded `resize` was a fifth of a 2B-4T load).
///
/// # Safety
/// The all-zero bit pattern is a valid `T`.
pub(crate) unsafe fn zeroed_vec<T>(n: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    let bytes = n * std::mem::size_of::<T>();
    advise_huge_pages(v.as_ptr() as *const u8, bytes);
    let base = pool::SendPtr(v.as_mut_ptr() as *mut u8);
    let pool = pool::global();
    let threads = if bytes >= 1 << 22 {
        pool.max_threads()
    } else {
        1
    };
    pool.run(threads, &|i, nt| {
        let part = pool::split(bytes, 4096, i, nt);
        // SAFETY: `part` lies inside the capacity (split stays within `bytes`) and is this
        // thread's alone (split gives disjoint ranges); `v` outlives `run`.
        unsafe { std::ptr::write_bytes(base.get().add(part.start), 0, part.len()) };
    });
    // SAFETY: the n elements are all-zero bytes, a valid T (the caller's promise), and lie
    // within the capacity.
    unsafe { v.set_len(n) };
    v
}

/// Linux's madvise(2) on the pages [start, end) (page-aligned) when the range is not empty;
/// nothing elsewhere. Advice only: a failure leaves the pages as they were.
///
/// # Safety
/// [start, end) lies inside a live mapping of this process, and `advice` never changes what a
/// later read of memory still in use sees.
pub(crate) unsafe fn madvise(start: usize, end: usize, advice: i32) {
    #[cfg(target_os = "linux")]
    if end > start {
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        // SAFETY: as the caller promises.
        unsafe { madvise(start as *mut _, end - start, advice) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, end, advice);
}

/// The mask of an AVX-512 masked load or store over `left` remaining values of a vector of
/// `lanes` (8 or 16) values: the low min(left, lanes) bits set.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn lane_mask(left: usize, lanes: usize) -> u16 {
    ((1u32 << left.min(lanes)) - 1) as u16
}

/// Whether `matmul` handles weights of this type.
pub fn supports(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::F32
            | GgmlType::F16
            | GgmlType::BF16
            | GgmlType::Q8_0
            | GgmlType::Q4_0
            | GgmlType::Q6_K
            | GgmlType::TQ1_0
            | GgmlType::TQ2_0
            | GgmlType::I2_S
            | GgmlType::Q1_0
            | GgmlType::Q2_0
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

    /// The stored bytes of row r.
    pub fn row(&self, r: usize) -> &[u8] {
        let n = self.row_bytes();
        &self.data[r * n..(r + 1) * n]
    }
}

/// How a matmul treats its input rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activations {
    /// As the reference does for the weight type: f16/bf16 rounding for F16/BF16 weights,
    /// Q8_0 for Q8_0/Q1_0/Q2_0, Q8_K for TQ1_0/TQ2_0/Q6_K, per-token int8 for I2_S, f32
    /// otherwise.
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

fn convert(ty: GgmlType, mode: Activations, x: &[f32]) -> Act {
    if mode == Activations::PerTokenInt8 {
        let (q, sum, scale) = quantize_i8_per_token(x);
        return Act::Int8 { q, sum, scale };
    }
    match ty {
        GgmlType::F16 => Act::Float(x.iter().map(|&v| f16_to_f32(f32_to_f16(v))).collect()),
        GgmlType::BF16 => Act::Float(x.iter().map(|&v| bf16_to_f32(f32_to_bf16(v))).collect()),
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q1_0 | GgmlType::Q2_0 => {
            let mut b = vec![0u8; x.len() / q8_0::BLOCK * q8_0::BLOCK_BYTES];
            quantize_q8_0(x, &mut b);
            Act::Blocks(b)
        }
        GgmlType::TQ1_0 | GgmlType::TQ2_0 | GgmlType::Q6_K => {
            let mut b = vec![0u8; x.len() / q8_k::BLOCK * q8_k::BLOCK_BYTES];
            quantize_q8_k(x, &mut b);
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
        (GgmlType::Q4_0, Act::Blocks(a)) => dot_q4_0_q8_0(row, a),
        (GgmlType::TQ1_0, Act::Blocks(a)) => dot_tq1_0_q8_k(row, a),
        (GgmlType::TQ2_0, Act::Blocks(a)) => dot_tq2_0_q8_k(row, a),
        (GgmlType::Q6_K, Act::Blocks(a)) => dot_q6_k_q8_k(row, a),
        (GgmlType::Q1_0, Act::Blocks(a)) => dot_q1_0_q8_0(row, a),
        (GgmlType::Q2_0, Act::Blocks(a)) => dot_q2_0_q8_0(row, a),
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
/// pool's default threads. F16 and Q6_K weights take their vectorized paths (bit-identical to
/// the scalar ones; Q6_K: `head_q6_k`); other types the scalar reference (ternary weights repacked at load go through
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
    if w.ty == GgmlType::Q6_K && mode == Activations::ByWeightType {
        debug_assert_eq!(x.len(), n * w.cols);
        debug_assert_eq!(out.len(), n * w.rows);
        head_q6_k::matmul(w.data, w.rows, w.cols, x, n, out, w.rows, threads);
        return Ok(());
    }
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
