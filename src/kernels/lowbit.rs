//! Q2_0 and Q1_0 (PrismML's Bonsai types) matrix kernels: weights repacked at load, Q8_0
//! activations, a scalar twin and AVX2 / AVX-512 VNNI paths picked at run time, rows split
//! between pool threads. Every path returns the bits of `kernels::dot`'s reference dot products
//! (`dot_q2_0_q8_0_isa` / `dot_q1_0_q8_0_isa` with `Isa::Scalar`): the integer sums are exact
//! in any order, and the float steps run per (row, token) in the reference's order.
//!
//! **Q2_0** (`LowbitMat::from_q2_0`): rows in groups of 8 (`Q2_ROWS`; the last group padded
//! with code-0, scale-0 rows whose outputs are never written). Per (group, 64-value block), 144
//! bytes: four 32-byte code vectors, then the 8 rows' f16 scales (16 bytes).
//!
//! ```text
//! code vector 2h + v (h: Q8_0 half of the block, v: 0..2), byte 4r + i, bits 2k..2k+2:
//!     row 8g + r, value 32h + 4 * (4v + k) + i of the block
//! ```
//!
//! So `(vector >> 2k) & 3` holds, for each of the 8 rows, four consecutive codes, and one
//! `maddubs` against the four matching activations broadcast to every lane gives each row's
//! products in its own 32-bit lane: the reference's per-half integer sum of every row comes out
//! in one vector with no horizontal sums, and the float steps (`sumi = 0 + s0 * d1_0 + s1 *
//! d1_1`, `sum += d * sumi`) run on 8 rows at once.
//!
//! **Q1_0** (`LowbitMat::from_q1_0`): row by row, blocks in pairs; per pair 36 bytes: 32 bytes
//! of bits, then the two f16 scales (an odd last block leaves the second half zero).
//!
//! ```text
//! bit m (0..8) of byte j (0..32): value 32m + j of the pair (block m / 4, Q8_0 block m % 4)
//! ```
//!
//! `(bits >> m) & 1` gives a Q8_0 block's weight bits as 0/1 bytes. The reference's lane u
//! (values 4u..4u+3 of a Q8_0 block, a clear bit negating the activation with wrap-around) is
//! `2 * sum(bit * q) - sum(q)` unless the activation is -128 under a clear bit (-(-128) wraps to
//! -128): tokens with a -128 anywhere take the negate-and-sum form instead (`wraps`).

use std::ops::Range;

use super::isa::{best_isa, Isa};
use super::pool::{self, SendPtr};
use crate::quant::float::f16_to_f32;
use crate::quant::{q1_0, q2_0, q8_0, GgmlType};

/// Rows per Q2_0 group.
pub const Q2_ROWS: usize = 8;
/// Bytes per (group, block) of a repacked Q2_0 matrix.
const Q2_GROUP_BLOCK: usize = 4 * 32 + 2 * Q2_ROWS;
/// Bytes per pair of blocks of a repacked Q1_0 row.
const Q1_PAIR: usize = 32 + 4;

/// A Q2_0 or Q1_0 matrix in the kernels' layout: `rows` outputs of `cols` inputs.
pub struct LowbitMat {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    data: Vec<u8>,
}

impl LowbitMat {
    /// Whether a matrix of this type and width can be repacked.
    pub fn can_pack(ty: GgmlType, cols: usize) -> bool {
        match ty {
            GgmlType::Q2_0 => cols.is_multiple_of(q2_0::BLOCK) && cols > 0,
            GgmlType::Q1_0 => cols.is_multiple_of(q1_0::BLOCK) && cols > 0,
            _ => false,
        }
    }

    fn alloc(ty: GgmlType, rows: usize, cols: usize, bytes: usize) -> LowbitMat {
        let mut data = Vec::with_capacity(bytes);
        // Before the first write, so that the faults already take huge pages.
        super::advise_huge_pages(data.as_ptr(), bytes);
        data.resize(bytes, 0);
        LowbitMat {
            ty,
            rows,
            cols,
            data,
        }
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    fn q2_group_bytes(&self) -> usize {
        self.cols / q2_0::BLOCK * Q2_GROUP_BLOCK
    }

    fn q1_row_bytes(&self) -> usize {
        (self.cols / q1_0::BLOCK).div_ceil(2) * Q1_PAIR
    }

    /// Repacks Q2_0 rows (`rows * cols / 64` blocks of 18 bytes).
    pub fn from_q2_0(data: &[u8], rows: usize, cols: usize) -> LowbitMat {
        assert!(Self::can_pack(GgmlType::Q2_0, cols));
        let nb = cols / q2_0::BLOCK;
        assert!(data.len() >= rows * nb * q2_0::BLOCK_BYTES);
        let groups = rows.div_ceil(Q2_ROWS);
        let mut m = Self::alloc(GgmlType::Q2_0, rows, cols, groups * nb * Q2_GROUP_BLOCK);
        let gb = m.q2_group_bytes();
        let out = SendPtr(m.data.as_mut_ptr());
        let pool = pool::global();
        pool.run(pool.max_threads(), &|i, n| {
            for g in pool::split(groups, 1, i, n) {
                // SAFETY: group g owns bytes g * gb .. (g + 1) * gb of the data; threads get
                // disjoint groups and the buffer outlives `run`.
                let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(g * gb), gb) };
                for r in 0..Q2_ROWS.min(rows - g * Q2_ROWS) {
                    let row = g * Q2_ROWS + r;
                    for b in 0..nb {
                        let src = &data[(row * nb + b) * q2_0::BLOCK_BYTES..][..q2_0::BLOCK_BYTES];
                        let dst = &mut dst[b * Q2_GROUP_BLOCK..][..Q2_GROUP_BLOCK];
                        dst[128 + 2 * r..130 + 2 * r].copy_from_slice(&src[..2]);
                        for j in 0..q2_0::BLOCK {
                            let (h, quad, i) = (j / 32, (j % 32) / 4, j % 4);
                            let byte = 32 * (2 * h + quad / 4) + 4 * r + i;
                            dst[byte] |= (q2_0::code(src, j) as u8) << (2 * (quad % 4));
                        }
                    }
                }
            }
        });
        m
    }

    /// Repacks Q1_0 rows (`rows * cols / 128` blocks of 18 bytes).
    pub fn from_q1_0(data: &[u8], rows: usize, cols: usize) -> LowbitMat {
        assert!(Self::can_pack(GgmlType::Q1_0, cols));
        let nb = cols / q1_0::BLOCK;
        assert!(data.len() >= rows * nb * q1_0::BLOCK_BYTES);
        let rb = nb.div_ceil(2) * Q1_PAIR;
        let mut m = Self::alloc(GgmlType::Q1_0, rows, cols, rows * rb);
        let out = SendPtr(m.data.as_mut_ptr());
        let pool = pool::global();
        pool.run(pool.max_threads(), &|i, n| {
            for row in pool::split(rows, 1, i, n) {
                // SAFETY: row `row` owns bytes row * rb .. (row + 1) * rb; threads get disjoint
                // rows and the buffer outlives `run`.
                let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(row * rb), rb) };
                for b in 0..nb {
                    let src = &data[(row * nb + b) * q1_0::BLOCK_BYTES..][..q1_0::BLOCK_BYTES];
                    let pair = &mut dst[b / 2 * Q1_PAIR..][..Q1_PAIR];
                    let half = b % 2;
                    pair[32 + 2 * half..34 + 2 * half].copy_from_slice(&src[..2]);
                    for e in 0..q1_0::BLOCK {
                        let m = 4 * half + e / 32;
                        pair[e % 32] |= (q1_0::bit(src, e) as u8) << m;
                    }
                }
            }
        });
        m
    }
}

/// Q8_0 activations of up to `n` tokens as the kernels read them. Reused across calls.
#[derive(Default)]
pub struct LowAct {
    pub n: usize,
    pub cols: usize,
    q: Vec<i8>,       // [n, cols] the int8 values
    d: Vec<f32>,      // [n, cols / 32] block scales (f16 widened)
    sums: Vec<i32>,   // [n, cols / 32] sum of each block's values
    lanes: Vec<i32>,  // [n, cols / 32, 8] sums of values 4u..4u+3 of each block
    wraps: Vec<bool>, // [n] some value of the token is -128
    q8: Vec<u8>,      // [n, cols / 32 * 34] Q8_0 scratch
}

impl LowAct {
    /// Quantizes `n` rows of `x` (each `cols` long, a multiple of 32) as the reference does
    /// for Q2_0/Q1_0 weights (`kernels::quantize_q8_0`).
    pub fn quantize(&mut self, x: &[f32], n: usize, cols: usize, threads: usize) {
        assert!(cols.is_multiple_of(q8_0::BLOCK) && x.len() >= n * cols);
        let bytes = cols / q8_0::BLOCK * q8_0::BLOCK_BYTES;
        grow(&mut self.q8, n * bytes);
        let q8 = SendPtr(self.q8.as_mut_ptr());
        let threads = if n >= 4 { threads } else { 1 };
        pool::global().run(threads, &|i, nt| {
            for t in pool::split(n, 1, i, nt) {
                // SAFETY: token t owns its `bytes` of the scratch (grown above); threads get
                // disjoint tokens and the scratch outlives `run`.
                let out = unsafe { std::slice::from_raw_parts_mut(q8.get().add(t * bytes), bytes) };
                super::quantize_q8_0(&x[t * cols..(t + 1) * cols], out);
            }
        });
        let q8 = std::mem::take(&mut self.q8);
        self.set_q8_0(&q8[..n * bytes], n, cols);
        self.q8 = q8;
    }

    /// Takes `n` tokens of ready Q8_0 blocks (each `cols / 32` blocks), e.g. raw test blocks.
    pub fn set_q8_0(&mut self, blocks: &[u8], n: usize, cols: usize) {
        let nb = cols / q8_0::BLOCK;
        assert!(blocks.len() >= n * nb * q8_0::BLOCK_BYTES);
        self.n = n;
        self.cols = cols;
        grow(&mut self.q, n * cols);
        grow(&mut self.d, n * nb);
        grow(&mut self.sums, n * nb);
        grow(&mut self.lanes, n * nb * 8);
        grow(&mut self.wraps, n);
        for t in 0..n {
            let mut wraps = false;
            for b in 0..nb {
                let i = t * nb + b;
                let blk = &blocks[i * q8_0::BLOCK_BYTES..][..q8_0::BLOCK_BYTES];
                self.d[i] = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
                let q = &mut self.q[i * q8_0::BLOCK..][..q8_0::BLOCK];
                for (o, &v) in q.iter_mut().zip(&blk[2..]) {
                    *o = v as i8;
                }
                self.sums[i] = q.iter().map(|&v| v as i32).sum();
                for u in 0..8 {
                    self.lanes[i * 8 + u] = q[4 * u..4 * u + 4].iter().map(|&v| v as i32).sum();
                }
                wraps |= q.contains(&-128);
            }
            self.wraps[t] = wraps;
        }
    }

    fn token(&self, t: usize) -> &[i8] {
        &self.q[t * self.cols..(t + 1) * self.cols]
    }
}

fn grow<T: Default + Clone>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar twin: the repacked layout read value by value, the float steps as `kernels::dot`.

/// The 8 outputs of Q2_0 group `g` for token `t`.
fn q2_group_scalar(m: &LowbitMat, g: usize, act: &LowAct, t: usize) -> [f32; Q2_ROWS] {
    let nb = m.cols / q2_0::BLOCK;
    let w = &m.data[g * m.q2_group_bytes()..][..m.q2_group_bytes()];
    let q = act.token(t);
    let mut sum = [0f32; Q2_ROWS];
    for b in 0..nb {
        let blk = &w[b * Q2_GROUP_BLOCK..][..Q2_GROUP_BLOCK];
        for (r, sum) in sum.iter_mut().enumerate() {
            let mut s = [0i32; 2];
            for (h, s) in s.iter_mut().enumerate() {
                for e in 0..32 {
                    let (quad, i) = (e / 4, e % 4);
                    let byte = blk[32 * (2 * h + quad / 4) + 4 * r + i];
                    let code = ((byte >> (2 * (quad % 4))) & 3) as i32;
                    *s += (code - 1) * q[b * q2_0::BLOCK + 32 * h + e] as i32;
                }
            }
            let a = t * (m.cols / q8_0::BLOCK) + 2 * b;
            let mut sumi = 0f32;
            sumi += s[0] as f32 * act.d[a];
            sumi += s[1] as f32 * act.d[a + 1];
            let d = f16_to_f32(u16::from_le_bytes([blk[128 + 2 * r], blk[129 + 2 * r]]));
            *sum += d * sumi;
        }
    }
    sum
}

/// The output of Q1_0 row `r` for token `t`.
fn q1_row_scalar(m: &LowbitMat, r: usize, act: &LowAct, t: usize) -> f32 {
    let nb = m.cols / q1_0::BLOCK;
    let w = &m.data[r * m.q1_row_bytes()..][..m.q1_row_bytes()];
    let q = act.token(t);
    let mut acc = [0f32; 8];
    for b in 0..nb {
        let pair = &w[b / 2 * Q1_PAIR..][..Q1_PAIR];
        let mut blk = [0f32; 8];
        for k in 0..4 {
            let m = 4 * (b % 2) + k;
            let mut lanes = [0i32; 8];
            for e in 0..32 {
                let v = q[b * q1_0::BLOCK + 32 * k + e];
                let v = if (pair[e] >> m) & 1 == 1 {
                    v
                } else {
                    v.wrapping_neg()
                };
                lanes[e / 4] += v as i32;
            }
            let d1 = act.d[t * (m_blocks(nb)) + 4 * b + k];
            for u in 0..8 {
                blk[u] = if k == 0 {
                    d1 * lanes[u] as f32
                } else {
                    d1.mul_add(lanes[u] as f32, blk[u])
                };
            }
        }
        let o = 32 + 2 * (b % 2);
        let d = f16_to_f32(u16::from_le_bytes([pair[o], pair[o + 1]]));
        for u in 0..8 {
            acc[u] = d.mul_add(blk[u], acc[u]);
        }
    }
    super::dot::hsum8(acc)
}

/// Q8_0 blocks per token for `nb` Q1_0 blocks.
fn m_blocks(nb: usize) -> usize {
    4 * nb
}

// ---------------------------------------------------------------------------------------------
// Entry point.

/// Where a matmul's outputs go: token t's row r at `ptr + t * stride + r`.
struct Out {
    ptr: SendPtr<f32>,
    stride: usize,
}

impl Out {
    /// # Safety
    /// Row r of token t lies inside the output, and no other thread writes it.
    unsafe fn put(&self, r: usize, t: usize, v: f32) {
        // SAFETY: as the caller promises.
        unsafe { *self.ptr.get().add(t * self.stride + r) = v };
    }
}

/// out[t * out_stride + r] = row r . token t, for every row and the `act.n` tokens, on up to
/// `threads` pool threads, at the CPU's level.
pub fn matmul(m: &LowbitMat, act: &LowAct, out: &mut [f32], out_stride: usize, threads: usize) {
    matmul_isa(best_isa(), m, act, out, out_stride, threads)
}

/// `matmul` at a given level (tests and benches compare them; `isa` must be available).
pub fn matmul_isa(
    isa: Isa,
    m: &LowbitMat,
    act: &LowAct,
    out: &mut [f32],
    out_stride: usize,
    threads: usize,
) {
    assert_eq!(act.cols, m.cols);
    assert!(act.n == 0 || out.len() >= (act.n - 1) * out_stride + m.rows);
    assert!(super::isa::isa_available(isa));
    let out = Out {
        ptr: SendPtr(out.as_mut_ptr()),
        stride: out_stride,
    };
    // One contiguous run of rows (whole Q2_0 groups) per thread keeps each weight stream
    // sequential.
    pool::global().run(threads, &|i, n| {
        let rows = pool::split(m.rows, Q2_ROWS, i, n);
        // SAFETY: this thread writes only rows `rows` of each token's output, disjoint from the
        // other threads' rows; `out` is long enough (asserted) and outlives `run`.
        unsafe { rows_dispatch(isa, m, act, rows, &out) };
    });
}

/// # Safety
/// `out` holds every row in `rows` for each of `act.n` tokens, written by this caller alone;
/// `rows.start` is a multiple of `Q2_ROWS`.
unsafe fn rows_dispatch(isa: Isa, m: &LowbitMat, act: &LowAct, rows: Range<usize>, out: &Out) {
    if rows.is_empty() {
        return;
    }
    match (isa, m.ty) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the level was detected before being chosen; the caller's promise.
        (Isa::Avx2, GgmlType::Q2_0) => unsafe { x86::q2_avx2(m, act, rows, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (Isa::Avx512Vnni | Isa::Amx, GgmlType::Q2_0) => unsafe { x86::q2_vnni(m, act, rows, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (Isa::Avx2, GgmlType::Q1_0) => unsafe { x86::q1_avx2(m, act, rows, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (Isa::Avx512Vnni | Isa::Amx, GgmlType::Q1_0) => unsafe { x86::q1_vnni(m, act, rows, out) },
        (_, GgmlType::Q2_0) => {
            for g in rows.start / Q2_ROWS..rows.end.div_ceil(Q2_ROWS) {
                for t in 0..act.n {
                    let y = q2_group_scalar(m, g, act, t);
                    for (r, &v) in y.iter().enumerate() {
                        let row = g * Q2_ROWS + r;
                        if row < rows.end {
                            // SAFETY: the caller hands over rows `rows`.
                            unsafe { out.put(row, t, v) };
                        }
                    }
                }
            }
        }
        _ => {
            for r in rows {
                for t in 0..act.n {
                    // SAFETY: as above.
                    unsafe { out.put(r, t, q1_row_scalar(m, r, act, t)) };
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// x86 SIMD paths: one macro per format, instantiated for AVX2 (`maddubs` + `madd`) and
// AVX-512 VNNI (`dpbusd`), which differ only in how four byte products reach an int32 lane.

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::kernels::dot::hsum8_avx;
    use std::arch::x86_64::*;

    /// How far ahead (bytes) the decode kernels prefetch the weight stream.
    const PREFETCH: usize = 4096;

    /// Token tiles of 4, then 2, then 1: `f(t0, len)`.
    fn token_tiles(n: usize, mut f: impl FnMut(usize, usize)) {
        let mut t = 0;
        while t < n {
            let len = match n - t {
                4.. => 4,
                2 | 3 => 2,
                _ => 1,
            };
            f(t, len);
            t += len;
        }
    }

    /// The four int8 activations at `p`, broadcast to every 32-bit lane.
    #[inline(always)]
    unsafe fn bcast4(p: *const i8) -> __m256i {
        _mm256_set1_epi32(std::ptr::read_unaligned(p as *const i32))
    }

    /// Codes 2k..2k+2 of each byte of `v` (k = 0..4).
    #[inline(always)]
    unsafe fn crumb(v: __m256i, k: usize) -> __m256i {
        let mask = _mm256_set1_epi8(3);
        match k {
            0 => _mm256_and_si256(v, mask),
            1 => _mm256_and_si256(_mm256_srli_epi16::<2>(v), mask),
            2 => _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask),
            _ => _mm256_and_si256(_mm256_srli_epi16::<6>(v), mask),
        }
    }

    /// AVX2: int16 accumulation of u8 x i8 pairs (Q2_0: 8 steps of |.| <= 768 fit).
    #[inline(always)]
    unsafe fn step_avx2(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_add_epi16(acc, _mm256_maddubs_epi16(u, s))
    }

    #[inline(always)]
    unsafe fn finish_avx2(acc: __m256i) -> __m256i {
        _mm256_madd_epi16(acc, _mm256_set1_epi16(1))
    }

    /// AVX-512 VNNI: four u8 x i8 products straight into each int32 lane.
    #[inline(always)]
    unsafe fn step_vnni(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, u, s)
    }

    #[inline(always)]
    unsafe fn finish_vnni(acc: __m256i) -> __m256i {
        acc
    }

    macro_rules! q2_kernels {
        ($tile:ident, $rows:ident, $features:literal, $step:ident, $finish:ident) => {
            /// 8 rows (one group at `w`) x NT tokens: the sums of `q2_group_scalar`, bit for
            /// bit. Each code vector is unpacked once for the NT tokens.
            #[target_feature(enable = $features)]
            unsafe fn $tile<const NT: usize>(
                w: *const u8,
                nb: usize,
                q: [*const i8; NT],
                d1: [*const f32; NT],
                s1: [*const i32; NT],
            ) -> [__m256; NT] {
                let mut sum = [_mm256_setzero_ps(); NT];
                for b in 0..nb {
                    let base = w.add(b * Q2_GROUP_BLOCK);
                    if NT == 1 {
                        // a hint only: past the end it reads nothing
                        for ahead in [0, 64, 128] {
                            let at = base.wrapping_add(PREFETCH + ahead);
                            _mm_prefetch::<_MM_HINT_T0>(at as *const i8);
                        }
                    }
                    let d = _mm256_cvtph_ps(_mm_loadu_si128(base.add(128) as *const _));
                    let mut sumi = [_mm256_setzero_ps(); NT];
                    for h in 0..2 {
                        let mut acc = [_mm256_setzero_si256(); NT];
                        for v in 0..2 {
                            let p = _mm256_loadu_si256(base.add(32 * (2 * h + v)) as *const _);
                            for k in 0..4 {
                                let c = crumb(p, k);
                                let off = b * 64 + 32 * h + 16 * v + 4 * k;
                                for t in 0..NT {
                                    acc[t] = $step(acc[t], c, bcast4(q[t].add(off)));
                                }
                            }
                        }
                        for t in 0..NT {
                            let a = 2 * b + h;
                            let s =
                                _mm256_sub_epi32($finish(acc[t]), _mm256_set1_epi32(*s1[t].add(a)));
                            let p =
                                _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(*d1[t].add(a)));
                            sumi[t] = _mm256_add_ps(sumi[t], p);
                        }
                    }
                    for t in 0..NT {
                        sum[t] = _mm256_add_ps(sum[t], _mm256_mul_ps(d, sumi[t]));
                    }
                }
                sum
            }

            /// # Safety
            /// The CPU has the features named; as `rows_dispatch`.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $rows(m: &LowbitMat, act: &LowAct, rows: Range<usize>, out: &Out) {
                let nb = m.cols / q2_0::BLOCK;
                let ab = m.cols / q8_0::BLOCK;
                let gb = m.q2_group_bytes();
                let emit = |g: usize, t: usize, y: __m256| {
                    let mut v = [0f32; Q2_ROWS];
                    _mm256_storeu_ps(v.as_mut_ptr(), y);
                    for (r, &v) in v.iter().enumerate() {
                        let row = g * Q2_ROWS + r;
                        if row < rows.end {
                            // SAFETY: the caller hands over rows `rows`.
                            unsafe { out.put(row, t, v) };
                        }
                    }
                };
                for g in rows.start / Q2_ROWS..rows.end.div_ceil(Q2_ROWS) {
                    let w = m.data.as_ptr().add(g * gb);
                    token_tiles(act.n, |t0, len| {
                        // SAFETY (each call): group g and tokens t0..t0 + len lie inside their
                        // buffers; the features are present (the caller's promise).
                        let qp = |t: usize| act.token(t0 + t).as_ptr();
                        let dp = |t: usize| act.d[(t0 + t) * ab..].as_ptr();
                        let sp = |t: usize| act.sums[(t0 + t) * ab..].as_ptr();
                        match len {
                            4 => {
                                let y = unsafe {
                                    $tile::<4>(
                                        w,
                                        nb,
                                        std::array::from_fn(qp),
                                        std::array::from_fn(dp),
                                        std::array::from_fn(sp),
                                    )
                                };
                                y.iter().enumerate().for_each(|(t, &y)| emit(g, t0 + t, y));
                            }
                            2 => {
                                let y = unsafe {
                                    $tile::<2>(
                                        w,
                                        nb,
                                        std::array::from_fn(qp),
                                        std::array::from_fn(dp),
                                        std::array::from_fn(sp),
                                    )
                                };
                                y.iter().enumerate().for_each(|(t, &y)| emit(g, t0 + t, y));
                            }
                            _ => {
                                let y = unsafe { $tile::<1>(w, nb, [qp(0)], [dp(0)], [sp(0)]) };
                                emit(g, t0, y[0]);
                            }
                        }
                    });
                }
            }
        };
    }
    q2_kernels!(
        q2_tile_avx2,
        q2_avx2,
        "avx2,fma,f16c",
        step_avx2,
        finish_avx2
    );
    q2_kernels!(
        q2_tile_vnni,
        q2_vnni,
        "avx2,fma,f16c,avx512f,avx512vl,avx512vnni",
        step_vnni,
        finish_vnni
    );

    /// Bit `m` (0..8) of each byte of `v` as a 0/1 byte.
    #[inline(always)]
    unsafe fn bit_plane(v: __m256i, m: usize) -> __m256i {
        _mm256_and_si256(
            _mm256_srl_epi16(v, _mm_cvtsi32_si128(m as i32)),
            _mm256_set1_epi8(1),
        )
    }

    macro_rules! q1_kernels {
        ($tile:ident, $rows:ident, $features:literal, $step:ident, $finish:ident) => {
            /// One row at `w` x NT tokens: `q1_row_scalar`, bit for bit. WRAP: some token holds
            /// a -128, so the activations are negated (with wrap-around) under clear bits
            /// instead of taking 2 * sum(bit * q) - sum(q).
            #[target_feature(enable = $features)]
            unsafe fn $tile<const NT: usize, const WRAP: bool>(
                w: *const u8,
                nb: usize,
                q: [*const i8; NT],
                d1: [*const f32; NT],
                lanes: [*const i32; NT],
            ) -> [f32; NT] {
                let zero = _mm256_setzero_si256();
                let ones = _mm256_set1_epi8(1);
                let mut acc = [_mm256_setzero_ps(); NT];
                for b in 0..nb {
                    let pair = w.add(b / 2 * Q1_PAIR);
                    if NT == 1 && b % 2 == 0 {
                        // a hint only: past the end it reads nothing
                        _mm_prefetch::<_MM_HINT_T0>(pair.wrapping_add(PREFETCH) as *const i8);
                    }
                    let p = _mm256_loadu_si256(pair as *const _);
                    let dh = std::ptr::read_unaligned(pair.add(32 + 2 * (b % 2)) as *const u16);
                    let d = _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(dh as i32)));
                    let mut blk = [_mm256_setzero_ps(); NT];
                    for k in 0..4 {
                        let bits = bit_plane(p, 4 * (b % 2) + k);
                        let a = 4 * b + k;
                        for t in 0..NT {
                            let qv = _mm256_loadu_si256(q[t].add(32 * a) as *const _);
                            let l = if WRAP {
                                let neg = _mm256_cmpeq_epi8(bits, zero);
                                let signed = _mm256_sub_epi8(_mm256_xor_si256(qv, neg), neg);
                                $finish($step(zero, ones, signed))
                            } else {
                                let set = $finish($step(zero, bits, qv));
                                let all = _mm256_loadu_si256(lanes[t].add(8 * a) as *const _);
                                _mm256_sub_epi32(_mm256_add_epi32(set, set), all)
                            };
                            let d1v = _mm256_set1_ps(*d1[t].add(a));
                            let lf = _mm256_cvtepi32_ps(l);
                            blk[t] = if k == 0 {
                                _mm256_mul_ps(d1v, lf)
                            } else {
                                _mm256_fmadd_ps(d1v, lf, blk[t])
                            };
                        }
                    }
                    for t in 0..NT {
                        acc[t] = _mm256_fmadd_ps(d, blk[t], acc[t]);
                    }
                }
                std::array::from_fn(|t| hsum8_avx(acc[t]))
            }

            /// # Safety
            /// The CPU has the features named; as `rows_dispatch`.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $rows(m: &LowbitMat, act: &LowAct, rows: Range<usize>, out: &Out) {
                let nb = m.cols / q1_0::BLOCK;
                let ab = m.cols / q8_0::BLOCK;
                let rb = m.q1_row_bytes();
                for r in rows {
                    let w = m.data.as_ptr().add(r * rb);
                    token_tiles(act.n, |t0, len| {
                        // SAFETY (each call): row r and tokens t0..t0 + len lie inside their
                        // buffers; the features are present (the caller's promise).
                        let qp = |t: usize| act.token(t0 + t).as_ptr();
                        let dp = |t: usize| act.d[(t0 + t) * ab..].as_ptr();
                        let lp = |t: usize| act.lanes[(t0 + t) * ab * 8..].as_ptr();
                        let wrap = act.wraps[t0..t0 + len].iter().any(|&w| w);
                        macro_rules! call {
                            ($nt:literal) => {{
                                let (q, d, l) = (
                                    std::array::from_fn::<_, $nt, _>(qp),
                                    std::array::from_fn::<_, $nt, _>(dp),
                                    std::array::from_fn::<_, $nt, _>(lp),
                                );
                                let y = if wrap {
                                    unsafe { $tile::<$nt, true>(w, nb, q, d, l) }
                                } else {
                                    unsafe { $tile::<$nt, false>(w, nb, q, d, l) }
                                };
                                for (t, &y) in y.iter().enumerate() {
                                    // SAFETY: the caller hands over row r.
                                    unsafe { out.put(r, t0 + t, y) };
                                }
                            }};
                        }
                        match len {
                            4 => call!(4),
                            2 => call!(2),
                            _ => call!(1),
                        }
                    });
                }
            }
        };
    }
    q1_kernels!(
        q1_tile_avx2,
        q1_avx2,
        "avx2,fma,f16c",
        step_avx2,
        finish_avx2
    );
    q1_kernels!(
        q1_tile_vnni,
        q1_vnni,
        "avx2,fma,f16c,avx512f,avx512vl,avx512vnni",
        step_vnni,
        finish_vnni
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::dot::{dot_q1_0_q8_0_isa, dot_q2_0_q8_0_isa};
    use crate::kernels::isa::available_isas;
    use crate::quant::float::f32_to_f16;
    use crate::rng::SplitMix64;

    /// Weight scales worth testing: ordinary, zero, the largest f16, infinities and NaNs
    /// (quiet and signaling, either sign).
    const SCALES: [u16; 9] = [
        0x3c00, 0x2e66, 0x0000, 0x8000, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0xfd01,
    ];

    /// `rows` rows of `ty` blocks of a given style: 0 random bytes and ordinary scales, 1 random
    /// bytes with scales from `SCALES`, 2.. one byte everywhere (0x00, 0x55, 0xaa, 0xff: every
    /// value -1 / 0 / +1 / +2 for Q2_0, -1 / mixed / +1 for Q1_0).
    fn weights(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        style: usize,
        rng: &mut SplitMix64,
    ) -> Vec<u8> {
        let block = ty.block_size() as usize;
        let mut w = vec![0u8; rows * cols / block * 18];
        for b in w.chunks_exact_mut(18) {
            let d = match style {
                0 => f32_to_f16((rng.unit() - 0.5) * 0.1),
                1 => SCALES[rng.below(SCALES.len() as u64) as usize],
                _ => 0x3c00,
            };
            b[..2].copy_from_slice(&d.to_le_bytes());
            match style {
                0 | 1 => b[2..].iter_mut().for_each(|v| *v = rng.next_u64() as u8),
                s => b[2..].fill([0x00, 0x55, 0xaa, 0xff][(s - 2) % 4]),
            }
        }
        w
    }

    /// `n` tokens of Q8_0 activations of a given style: the activation quantizer on normal,
    /// huge, subnormal (every code -128), zero, NaN-holding inputs, or raw random blocks.
    fn acts(n: usize, cols: usize, style: usize, rng: &mut SplitMix64) -> Vec<u8> {
        let mut out = vec![0u8; n * cols / 32 * 34];
        if style == 5 {
            for b in out.chunks_exact_mut(34) {
                b[..2].copy_from_slice(&f32_to_f16(rng.normal() * 1e-2).to_le_bytes());
                b[2..].iter_mut().for_each(|v| *v = rng.next_u64() as u8);
            }
            return out;
        }
        let x: Vec<f32> = (0..n * cols)
            .map(|i| match style {
                0 => rng.normal(),
                1 => rng.normal() * 1e30,
                2 => rng.normal() * 1e-39,
                3 => 0.0,
                _ => {
                    if i % 97 == 5 {
                        f32::NAN
                    } else {
                        rng.normal()
                    }
                }
            })
            .collect();
        crate::kernels::quantize_q8_0(&x, &mut out);
        out
    }

    /// Every level and thread count against the reference dot product of each (row, token).
    fn check(ty: GgmlType, rows: usize, cols: usize, n: usize, wstyle: usize, astyle: usize) {
        let mut rng = SplitMix64((rows * 1000 + cols * 10 + n) as u64 + 77 * wstyle as u64);
        let w = weights(ty, rows, cols, wstyle, &mut rng);
        let a = acts(n, cols, astyle, &mut rng);
        let m = match ty {
            GgmlType::Q2_0 => LowbitMat::from_q2_0(&w, rows, cols),
            _ => LowbitMat::from_q1_0(&w, rows, cols),
        };
        let mut act = LowAct::default();
        act.set_q8_0(&a, n, cols);
        let (wr, ar) = (w.len() / rows, a.len() / n.max(1));
        let mut want = vec![0f32; n * rows];
        for t in 0..n {
            for r in 0..rows {
                let (wrow, arow) = (&w[r * wr..(r + 1) * wr], &a[t * ar..(t + 1) * ar]);
                want[t * rows + r] = match ty {
                    GgmlType::Q2_0 => dot_q2_0_q8_0_isa(Isa::Scalar, wrow, arow),
                    _ => dot_q1_0_q8_0_isa(Isa::Scalar, wrow, arow),
                };
            }
        }
        for isa in available_isas() {
            for threads in [1, 2] {
                let mut got = vec![f32::from_bits(0x7fc0_dead); n * rows];
                matmul_isa(isa, &m, &act, &mut got, rows, threads);
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    // NaN for NaN: which NaN (sign, payload) comes out when two meet depends on
                    // the operand order the compiler picks for the reference's own scalar code
                    // (x86 keeps the first operand's), so only NaN-ness is compared.
                    let same = g.to_bits() == e.to_bits() || (g.is_nan() && e.is_nan());
                    assert!(
                        same,
                        "{ty} {isa:?} t{threads} {rows}x{cols} n{n} w{wstyle} a{astyle} out {i}: {g:e} vs {e:e}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_level_matches_the_reference_dot_bit_for_bit() {
        for ty in [GgmlType::Q2_0, GgmlType::Q1_0] {
            let b = ty.block_size() as usize;
            // one block, odd block counts, a model-sized row; rows around the group of 8
            for (rows, cols) in [
                (1, b),
                (7, 3 * b),
                (8, 5 * b),
                (9, 2 * b),
                (17, 2560),
                (33, 7 * b),
            ] {
                for n in 1..=9 {
                    check(ty, rows, cols, n, (rows + n) % 6, n % 6);
                }
            }
            for wstyle in 0..6 {
                for astyle in 0..6 {
                    check(ty, 11, 4 * b, 5, wstyle, astyle);
                    check(ty, 3, 3 * b, 1, wstyle, astyle);
                }
            }
        }
    }

    #[test]
    fn minus_128_under_clear_bits_wraps() {
        // Q1_0 all -1 weights against activations of -128 (d = 1): -128 per value, as the
        // reference's byte negation gives; a token without -128 beside it in the same tile.
        let cols = 256;
        let w: Vec<u8> = (0..2 * 4)
            .flat_map(|_| [0x00u8, 0x3c].into_iter().chain([0u8; 16]))
            .collect();
        let m = LowbitMat::from_q1_0(&w, 4, cols);
        let mut a = Vec::new();
        for t in 0..4 {
            for _ in 0..cols / 32 {
                a.extend_from_slice(&[0x00, 0x3c]);
                a.extend(std::iter::repeat_n(if t == 2 { 0x80u8 } else { 0x01 }, 32));
            }
        }
        let mut act = LowAct::default();
        act.set_q8_0(&a, 4, cols);
        for isa in available_isas() {
            let mut out = vec![0f32; 16];
            matmul_isa(isa, &m, &act, &mut out, 4, 1);
            for t in 0..4 {
                let want = if t == 2 { -128.0 * 256.0 } else { -256.0 };
                assert!(
                    out[4 * t..4 * t + 4].iter().all(|&v| v == want),
                    "{isa:?} t{t}: {out:?}"
                );
            }
        }
    }
}
