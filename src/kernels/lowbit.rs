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
//! **Q1_0** (`LowbitMat::from_q1_0`): rows in groups of 16 (`Q1_ROWS`, padded like Q2_0),
//! read through per-token lookup tables. Per (group, 128-value block), 288 bytes: eight
//! 32-byte nibble vectors, then the 16 rows' f16 scales (32 bytes).
//!
//! ```text
//! nibble vector v (0..8), half L (0..2) = byte 16L + r (row 16g + r), low nibble bit i:
//!     value 16v + 8L + i of the block; high nibble bit i: value 16v + 8L + 4 + i
//! ```
//!
//! Each nibble is four weight signs. For every four consecutive activations q0..q3 the
//! activation side (`LowAct`) holds a 16-entry table, entry n = the sum over i of q_i where
//! bit i of n is set and of the reference's negation of q_i where it is clear (a byte negation
//! with wrap-around: -128 stays -128), an int16 split into a low-byte and a high-byte table. One
//! `pshufb` per byte table then looks up 16 rows' four-value sums at once (32 per vector, the
//! two 128-bit halves holding different value groups); `unpack` rejoins the bytes as int16.
//!
//! Float order (the scalar twin `q1_group_scalar`): per row and Q8_0 block k of a Q1_0 block,
//! the exact integer sum s_k of the 32 signed activations, then `blk = d1_0 * s_0`,
//! `blk = fma(d1_k, s_k, blk)`, then `acc = fma(d, blk, acc)`. That is one float chain per row
//! where the reference's x86 kernel (`kernels::dot::dot_q1_0_q8_0`, which crossval checks bit
//! for bit) keeps eight lane chains and sums them at the end: the results differ from it by
//! float rounding only, and end-to-end crossval holds them to the int8 noise floor.

use std::ops::Range;

use super::isa::{best_isa, Isa};
use super::pool::{self, SendPtr};
use crate::quant::float::f16_to_f32;
use crate::quant::{q1_0, q2_0, q8_0, GgmlType};

/// Rows per Q2_0 group.
pub const Q2_ROWS: usize = 8;
/// Bytes per (group, block) of a repacked Q2_0 matrix.
const Q2_GROUP_BLOCK: usize = 4 * 32 + 2 * Q2_ROWS;
/// Rows per Q1_0 group.
pub const Q1_ROWS: usize = 16;
/// Bytes per (group, block) of a repacked Q1_0 matrix.
const Q1_GROUP_BLOCK: usize = 8 * 32 + 2 * Q1_ROWS;
/// Lookup-table bytes per 16 activations (four 32-byte vectors, see `q1_lut_token`).
const LUT_CHUNK: usize = 128;
/// Inputs of at most this many tokens are kept to recognize a repeated input.
const REUSE_MAX: usize = 4;
/// Bytes of Q1_0 lookup tables built at once (a tile of tokens): a core's L2.
const LUT_BUDGET: usize = 512 << 10;

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
        // SAFETY: zero is a valid u8.
        let data: Vec<u8> = unsafe { super::zeroed_vec(bytes) };
        LowbitMat {
            ty,
            rows,
            cols,
            data,
        }
    }

    /// The repacked bytes (what a product reads once).
    pub fn packed(&self) -> &[u8] {
        &self.data
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Rows per group of the layout and bytes per (group, block): Q2_0 8 and 144, Q1_0 16
    /// and 288.
    fn group_shape(ty: GgmlType) -> (usize, usize) {
        match ty {
            GgmlType::Q2_0 => (Q2_ROWS, Q2_GROUP_BLOCK),
            _ => (Q1_ROWS, Q1_GROUP_BLOCK),
        }
    }

    /// Bytes per group of rows.
    fn group_bytes(&self) -> usize {
        self.cols / self.ty.block_size() as usize * Self::group_shape(self.ty).1
    }

    /// Rows per group (a thread's share is a whole number of groups).
    fn row_unit(&self) -> usize {
        Self::group_shape(self.ty).0
    }

    /// Repacks Q2_0 rows (`rows * cols / 64` blocks of 18 bytes).
    pub fn from_q2_0(data: &[u8], rows: usize, cols: usize) -> LowbitMat {
        Self::repack(GgmlType::Q2_0, data, rows, cols, |r, src, dst| {
            dst[128 + 2 * r..130 + 2 * r].copy_from_slice(&src[..2]);
            for j in 0..q2_0::BLOCK {
                let (h, quad, i) = (j / 32, (j % 32) / 4, j % 4);
                let byte = 32 * (2 * h + quad / 4) + 4 * r + i;
                dst[byte] |= (q2_0::code(src, j) as u8) << (2 * (quad % 4));
            }
        })
    }

    /// Repacks Q1_0 rows (`rows * cols / 128` blocks of 18 bytes).
    pub fn from_q1_0(data: &[u8], rows: usize, cols: usize) -> LowbitMat {
        Self::repack(GgmlType::Q1_0, data, rows, cols, |r, src, dst| {
            dst[256 + 2 * r..258 + 2 * r].copy_from_slice(&src[..2]);
            // four values at a time: a nibble of the source's bits (value e is bit e % 8 of
            // byte e / 8) lands whole in one nibble of the layout
            for e in (0..q1_0::BLOCK).step_by(4) {
                let (byte, shift) = q1_bit_at(r, e);
                dst[byte] |= ((src[2 + e / 8] >> (e % 8)) & 0x0f) << shift;
            }
        })
    }

    /// Both repacks: rows in groups of `row_unit`, a (group, block) at a time on the pool's
    /// threads; `place(r, src, dst)` ORs row r's file block `src` into its group's block `dst`
    /// (zeroed beforehand; padding rows stay zero).
    fn repack(
        ty: GgmlType,
        data: &[u8],
        rows: usize,
        cols: usize,
        place: impl Fn(usize, &[u8], &mut [u8]) + Sync,
    ) -> LowbitMat {
        assert!(Self::can_pack(ty, cols));
        let (block, block_bytes) = (ty.block_size() as usize, ty.block_bytes() as usize);
        let nb = cols / block;
        assert!(data.len() >= rows * nb * block_bytes);
        let (unit, group_block) = Self::group_shape(ty);
        let groups = rows.div_ceil(unit);
        let gb = nb * group_block;
        let mut m = Self::alloc(ty, rows, cols, groups * gb);
        let out = SendPtr(m.data.as_mut_ptr());
        let pool = pool::global();
        pool.run(pool.max_threads(), &|i, n| {
            for g in pool::split(groups, 1, i, n) {
                // SAFETY: group g owns bytes g * gb .. (g + 1) * gb of the data; threads get
                // disjoint groups and the buffer outlives `run`.
                let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(g * gb), gb) };
                for r in 0..unit.min(rows - g * unit) {
                    let row = g * unit + r;
                    for b in 0..nb {
                        let src = &data[(row * nb + b) * block_bytes..][..block_bytes];
                        place(r, src, &mut dst[b * group_block..][..group_block]);
                    }
                }
            }
        });
        m
    }
}

/// Where value `e` (0..128) of row `r` (0..16) of a Q1_0 group's block sits: (byte, bit).
fn q1_bit_at(r: usize, e: usize) -> (usize, usize) {
    let (v, half, hi, i) = (e / 16, (e / 8) % 2, (e / 4) % 2, e % 4);
    (32 * v + 16 * half + r, 4 * hi + i)
}

/// Q8_0 activations of up to `n` tokens as the kernels read them. Reused across calls.
#[derive(Default)]
pub struct LowAct {
    pub n: usize,
    pub cols: usize,
    q: Vec<i8>,             // [n, cols] the int8 values
    d: Vec<f32>,            // [n, cols / 32] block scales (f16 widened)
    sums: Vec<i32>,         // [n, cols / 32] sum of each block's values
    lut: Vec<u8>,           // [tile, cols / 16, 128] Q1_0 lookup tables of a tile of tokens
    lut_toks: Range<usize>, // the tokens `lut` holds (empty: none)
    x: Vec<f32>,            // [n, cols] the input last quantized, when small (`REUSE_MAX`)
    q8: Vec<u8>,            // [n, cols / 32 * 34] Q8_0 scratch
}

impl LowAct {
    /// Quantizes `n` rows of `x` (each `cols` long, a multiple of 32) as the reference does
    /// for Q2_0/Q1_0 weights (`kernels::quantize_q8_0`).
    /// The same input as the last call (several matrices read one input: q, k and v; gate
    /// and up) keeps its quantization and Q1_0 tables.
    pub fn quantize(&mut self, x: &[f32], n: usize, cols: usize, threads: usize) {
        assert!(cols.is_multiple_of(q8_0::BLOCK) && x.len() >= n * cols);
        let x = &x[..n * cols];
        if n <= REUSE_MAX {
            let same =
                |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
            if self.n == n && self.cols == cols && self.x.len() == x.len() && same(&self.x, x) {
                return;
            }
            self.x.clear();
            self.x.extend_from_slice(x);
        } else {
            self.x.clear();
        }
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
        self.fill(&q8[..n * bytes], n, cols);
        self.q8 = q8;
    }

    /// Takes `n` tokens of ready Q8_0 blocks (each `cols / 32` blocks), e.g. raw test blocks.
    pub fn set_q8_0(&mut self, blocks: &[u8], n: usize, cols: usize) {
        self.x.clear();
        self.fill(blocks, n, cols);
    }

    fn fill(&mut self, blocks: &[u8], n: usize, cols: usize) {
        let nb = cols / q8_0::BLOCK;
        assert!(blocks.len() >= n * nb * q8_0::BLOCK_BYTES);
        self.n = n;
        self.cols = cols;
        self.lut_toks = 0..0;
        grow(&mut self.q, n * cols);
        grow(&mut self.d, n * nb);
        grow(&mut self.sums, n * nb);
        for t in 0..n {
            for b in 0..nb {
                let i = t * nb + b;
                let blk = &blocks[i * q8_0::BLOCK_BYTES..][..q8_0::BLOCK_BYTES];
                self.d[i] = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
                let q = &mut self.q[i * q8_0::BLOCK..][..q8_0::BLOCK];
                for (o, &v) in q.iter_mut().zip(&blk[2..]) {
                    *o = v as i8;
                }
                self.sums[i] = q.iter().map(|&v| v as i32).sum();
            }
        }
    }

    /// Tokens per Q1_0 lookup-table tile: as many as keep the tables within `LUT_BUDGET`.
    fn lut_tile(&self) -> usize {
        (LUT_BUDGET / (self.cols / 16 * LUT_CHUNK)).clamp(1, self.n.max(1))
    }

    /// Writes the Q1_0 lookup tables of tokens `toks` into `lut` (layout in `q1_lut_token`),
    /// a token per pool thread, unless it holds them already.
    fn build_lut(&mut self, isa: Isa, toks: Range<usize>, threads: usize) {
        if self.lut_toks == toks {
            return;
        }
        let bytes = self.cols / 16 * LUT_CHUNK;
        grow(&mut self.lut, toks.len() * bytes);
        let lut = SendPtr(self.lut.as_mut_ptr());
        let this = &*self;
        let threads = if toks.len() >= 2 { threads } else { 1 };
        pool::global().run(threads, &|i, nt| {
            for t in pool::split(toks.len(), 1, i, nt) {
                // SAFETY: token t owns its `bytes` of the tables (grown above); threads get
                // disjoint tokens and the buffer outlives `run`.
                let out =
                    unsafe { std::slice::from_raw_parts_mut(lut.get().add(t * bytes), bytes) };
                q1_lut_token_isa(isa, this.token(toks.start + t), out);
            }
        });
        self.lut_toks = toks;
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

/// The reference's contribution of activation `q` under a clear Q1_0 bit: its byte negation,
/// so -128 stays -128.
fn q1_neg(q: i8) -> i32 {
    q.wrapping_neg() as i32
}

/// `q1_lut_token` at a level: the same bytes.
fn q1_lut_token_isa(isa: Isa, q: &[i8], out: &mut [u8]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the level was detected before being chosen; every x86 level has AVX2.
        Isa::Avx2 | Isa::Avx512Vnni | Isa::Amx => unsafe { x86::q1_lut_token_avx2(q, out) },
        _ => q1_lut_token(q, out),
    }
}

/// One token's Q1_0 lookup tables (`cols / 16 * 128` bytes). For the four activations at `c`
/// (c a multiple of 4), table entry n (0..16) = sum over i of `q[c + i]` where bit i of n is
/// set, `q1_neg(q[c + i])` where it is clear: an int16 in [-512, 508] whose low byte goes to
/// byte `32 * (2h + 0) + 16l + n` and high byte to `32 * (2h + 1) + 16l + n` of the 128 bytes
/// of the 16 values holding c, with c = 16V + 8l + 4h (so half l of vectors 2h, 2h + 1 is the
/// table of the nibbles in half l of a weight vector; h: low or high nibble).
fn q1_lut_token(q: &[i8], out: &mut [u8]) {
    for (chunk, out) in q.chunks_exact(16).zip(out.chunks_exact_mut(LUT_CHUNK)) {
        for (g, q) in chunk.chunks_exact(4).enumerate() {
            let (l, h) = (g / 2, g % 2);
            let mut table = [0i32; 16];
            table[0] = q.iter().map(|&v| q1_neg(v)).sum();
            for (i, &v) in q.iter().enumerate() {
                let step = v as i32 - q1_neg(v);
                for n in 0..1 << i {
                    table[n | 1 << i] = table[n] + step;
                }
            }
            for (n, &e) in table.iter().enumerate() {
                let [lo, hi] = (e as i16).to_le_bytes();
                out[32 * (2 * h) + 16 * l + n] = lo;
                out[32 * (2 * h + 1) + 16 * l + n] = hi;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar twin: the repacked layout read value by value, the float steps as `kernels::dot`.

/// The 8 outputs of Q2_0 group `g` for token `t`.
fn q2_group_scalar(m: &LowbitMat, g: usize, act: &LowAct, t: usize) -> [f32; Q2_ROWS] {
    let nb = m.cols / q2_0::BLOCK;
    let w = &m.data[g * m.group_bytes()..][..m.group_bytes()];
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

/// The 16 outputs of Q1_0 group `g` for token `t`, the float steps in the module doc's order.
fn q1_group_scalar(m: &LowbitMat, g: usize, act: &LowAct, t: usize) -> [f32; Q1_ROWS] {
    let nb = m.cols / q1_0::BLOCK;
    let w = &m.data[g * m.group_bytes()..][..m.group_bytes()];
    let q = act.token(t);
    let mut acc = [0f32; Q1_ROWS];
    for b in 0..nb {
        let blk = &w[b * Q1_GROUP_BLOCK..][..Q1_GROUP_BLOCK];
        for (r, acc) in acc.iter_mut().enumerate() {
            let mut sum = 0f32;
            for k in 0..4 {
                let mut s = 0i32;
                for e in 32 * k..32 * (k + 1) {
                    let (byte, shift) = q1_bit_at(r, e);
                    let v = q[b * q1_0::BLOCK + e];
                    s += if (blk[byte] >> shift) & 1 == 1 {
                        v as i32
                    } else {
                        q1_neg(v)
                    };
                }
                let d1 = act.d[t * m_blocks(nb) + 4 * b + k];
                sum = if k == 0 {
                    d1 * s as f32
                } else {
                    d1.mul_add(s as f32, sum)
                };
            }
            let d = f16_to_f32(u16::from_le_bytes([blk[256 + 2 * r], blk[257 + 2 * r]]));
            *acc = d.mul_add(sum, *acc);
        }
    }
    acc
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
/// `threads` pool threads, at the CPU's level. `act` is mutable for its Q1_0 table scratch.
pub fn matmul(m: &LowbitMat, act: &mut LowAct, out: &mut [f32], out_stride: usize, threads: usize) {
    matmul_isa(best_isa(), m, act, out, out_stride, threads)
}

/// `matmul` at a given level (tests and benches compare them; `isa` must be available).
pub fn matmul_isa(
    isa: Isa,
    m: &LowbitMat,
    act: &mut LowAct,
    out: &mut [f32],
    out_stride: usize,
    threads: usize,
) {
    matmul_many_isa(isa, &mut [(m, out, out_stride)], act, threads)
}

/// `matmul` of several matrices that read the same input (q, k and v; gate and up), each
/// `(matrix, out, out_stride)`: one pool hand-off per token tile for all of them, the rows of
/// every matrix handed out in chunks (whole groups) as threads finish, so a thread the
/// machine takes off its core holds up one chunk, not the step.
pub fn matmul_many(mats: &mut [(&LowbitMat, &mut [f32], usize)], act: &mut LowAct, threads: usize) {
    matmul_many_isa(best_isa(), mats, act, threads)
}

/// `matmul_many` at a given level (`isa` must be available).
pub fn matmul_many_isa(
    isa: Isa,
    mats: &mut [(&LowbitMat, &mut [f32], usize)],
    act: &mut LowAct,
    threads: usize,
) {
    assert!(super::isa::isa_available(isa));
    // Per matrix: its output, its chunk of rows and the first work item that is its own.
    let mut jobs = Vec::with_capacity(mats.len());
    let mut items = 0;
    for (m, out, stride) in mats.iter_mut() {
        assert_eq!(act.cols, m.cols);
        assert!(act.n == 0 || out.len() >= (act.n - 1) * *stride + m.rows);
        let unit = m.row_unit();
        let chunk = pool::chunk_len(m.rows, threads, 4, unit, unit);
        let out = Out {
            ptr: SendPtr(out.as_mut_ptr()),
            stride: *stride,
        };
        jobs.push((&**m, out, chunk, items));
        items += m.rows.div_ceil(chunk);
    }
    // Q1_0 reads per-token tables built a tile of tokens at a time; Q2_0 takes every token.
    let q1 = mats.iter().any(|(m, ..)| m.ty == GgmlType::Q1_0);
    let tile = if q1 { act.lut_tile() } else { act.n.max(1) };
    let mut t0 = 0;
    while t0 < act.n {
        let toks = t0..(t0 + tile).min(act.n);
        if q1 && isa != Isa::Scalar {
            act.build_lut(isa, toks.clone(), threads);
        }
        let act = &*act;
        let jobs = &jobs;
        pool::chunks(threads, items, 1, &|range| {
            for item in range {
                let j = jobs
                    .iter()
                    .rposition(|job| job.3 <= item)
                    .expect("item 0 is a job's");
                let (m, out, chunk, first) = &jobs[j];
                let start = (item - first) * chunk;
                let rows = start..(start + chunk).min(m.rows);
                // SAFETY: item `item` is taken by one thread alone (`chunks`) and names rows
                // `rows` of matrix j, disjoint from every other item's; each output is long
                // enough (asserted) and outlives `chunks`; `start` is a multiple of the row
                // unit; the Q1_0 tables hold tokens `toks` (built above).
                unsafe { rows_dispatch(isa, m, act, rows, toks.clone(), out) };
            }
        });
        t0 = toks.end;
    }
}

/// # Safety
/// `out` holds every row in `rows` for each token in `toks`, written by this caller alone;
/// `rows.start` is a multiple of `m.row_unit()`; for Q1_0, `act.lut` holds the tables of
/// `toks`.
unsafe fn rows_dispatch(
    isa: Isa,
    m: &LowbitMat,
    act: &LowAct,
    rows: Range<usize>,
    toks: Range<usize>,
    out: &Out,
) {
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
        // SAFETY: as above (table lookups need AVX2 only, which every x86 level here has).
        (Isa::Avx2 | Isa::Avx512Vnni | Isa::Amx, GgmlType::Q1_0) => unsafe {
            x86::q1_avx2(m, act, rows, toks, out)
        },
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
            for g in rows.start / Q1_ROWS..rows.end.div_ceil(Q1_ROWS) {
                for t in toks.clone() {
                    let y = q1_group_scalar(m, g, act, t);
                    for (r, &v) in y.iter().enumerate() {
                        let row = g * Q1_ROWS + r;
                        if row < rows.end {
                            // SAFETY: the caller hands over rows `rows` of tokens `toks`.
                            unsafe { out.put(row, t, v) };
                        }
                    }
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
                let gb = m.group_bytes();
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

    /// `q1_lut_token` with AVX2: per four activations, their bytes in every 32-bit lane,
    /// signed per table entry (`sign_epi8` negates with wrap-around, as the reference),
    /// summed to int32, packed to int16 and split into the low- and high-byte tables.
    ///
    /// # Safety
    /// The CPU has AVX2; `out` holds `q.len() / 16 * LUT_CHUNK` bytes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q1_lut_token_avx2(q: &[i8], out: &mut [u8]) {
        // 32-bit lane n: byte i = +1 where bit i of entry n is set, else -1
        let sign = |first: i32| {
            let lane = |n: i32| {
                i32::from_le_bytes(std::array::from_fn(|i| {
                    if (n >> i) & 1 == 1 {
                        1
                    } else {
                        -1i8 as u8
                    }
                }))
            };
            _mm256_setr_epi32(
                lane(first),
                lane(first + 1),
                lane(first + 2),
                lane(first + 3),
                lane(first + 4),
                lane(first + 5),
                lane(first + 6),
                lane(first + 7),
            )
        };
        let (sign0, sign1) = (sign(0), sign(8));
        let ones8 = _mm256_set1_epi8(1);
        let ones16 = _mm256_set1_epi16(1);
        // per 128-bit half: the low bytes of its eight int16, then their high bytes
        let split = _mm256_setr_epi8(
            0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3,
            5, 7, 9, 11, 13, 15,
        );
        // after `packs` and `split` the dwords hold entries' bytes in the order
        // lo 0-3, lo 8-11, hi 0-3, hi 8-11, lo 4-7, lo 12-15, hi 4-7, hi 12-15
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        assert!(out.len() >= q.len() / 16 * LUT_CHUNK);
        for (c, chunk) in q.chunks_exact(16).enumerate() {
            let dst = out.as_mut_ptr().add(c * LUT_CHUNK);
            for g in 0..4 {
                let (l, h) = (g / 2, g % 2);
                let four = std::ptr::read_unaligned(chunk.as_ptr().add(4 * g) as *const i32);
                let b = _mm256_set1_epi32(four);
                // entries 0..8 and 8..16, int32 (the four signed bytes of a lane summed)
                let s0 = _mm256_maddubs_epi16(ones8, _mm256_sign_epi8(b, sign0));
                let s1 = _mm256_maddubs_epi16(ones8, _mm256_sign_epi8(b, sign1));
                let (e0, e1) = (_mm256_madd_epi16(s0, ones16), _mm256_madd_epi16(s1, ones16));
                let bytes = _mm256_permutevar8x32_epi32(
                    _mm256_shuffle_epi8(_mm256_packs_epi32(e0, e1), split),
                    order,
                );
                let lo = dst.add(32 * (2 * h) + 16 * l) as *mut __m128i;
                let hi = dst.add(32 * (2 * h + 1) + 16 * l) as *mut __m128i;
                _mm_storeu_si128(lo, _mm256_castsi256_si128(bytes));
                _mm_storeu_si128(hi, _mm256_extracti128_si256::<1>(bytes));
            }
        }
    }

    /// Q1_0 group (16 rows at `w`, `nb` blocks) x NT tokens, through each token's tables at
    /// `lut[t]` (`q1_lut_token`) and its Q8_0 scales at `d1[t]`: per token rows 0..8 and
    /// 8..16, the sums of `q1_group_scalar`, bit for bit. Each weight vector's nibbles are
    /// taken apart once for the NT tokens.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q1_group<const NT: usize>(
        w: *const u8,
        nb: usize,
        lut: [*const u8; NT],
        d1: [*const f32; NT],
    ) -> [[__m256; 2]; NT] {
        let low = _mm256_set1_epi8(0x0f);
        let mut acc = [[_mm256_setzero_ps(); 2]; NT];
        for b in 0..nb {
            let base = w.add(b * Q1_GROUP_BLOCK);
            if NT == 1 {
                // a hint only: past the end it reads nothing
                for ahead in [0, 64, 128, 192, 256] {
                    _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(PREFETCH + ahead) as *const i8);
                }
            }
            let mut blk = [[_mm256_setzero_ps(); 2]; NT];
            for k in 0..4 {
                // int16 sums: rows 0..8 (`lo`) and 8..16 (`hi`), a 128-bit half per value group
                let mut lo = [_mm256_setzero_si256(); NT];
                let mut hi = [_mm256_setzero_si256(); NT];
                for v in 2 * k..2 * k + 2 {
                    let x = _mm256_loadu_si256(base.add(32 * v) as *const _);
                    let n0 = _mm256_and_si256(x, low);
                    let n1 = _mm256_and_si256(_mm256_srli_epi16::<4>(x), low);
                    for t in 0..NT {
                        let tab = lut[t].add((8 * b + v) * LUT_CHUNK) as *const __m256i;
                        let l0 = _mm256_shuffle_epi8(_mm256_loadu_si256(tab), n0);
                        let h0 = _mm256_shuffle_epi8(_mm256_loadu_si256(tab.add(1)), n0);
                        let l1 = _mm256_shuffle_epi8(_mm256_loadu_si256(tab.add(2)), n1);
                        let h1 = _mm256_shuffle_epi8(_mm256_loadu_si256(tab.add(3)), n1);
                        lo[t] = _mm256_add_epi16(
                            lo[t],
                            _mm256_add_epi16(
                                _mm256_unpacklo_epi8(l0, h0),
                                _mm256_unpacklo_epi8(l1, h1),
                            ),
                        );
                        hi[t] = _mm256_add_epi16(
                            hi[t],
                            _mm256_add_epi16(
                                _mm256_unpackhi_epi8(l0, h0),
                                _mm256_unpackhi_epi8(l1, h1),
                            ),
                        );
                    }
                }
                for t in 0..NT {
                    let d = _mm256_set1_ps(*d1[t].add(4 * b + k));
                    for (blk, s) in blk[t].iter_mut().zip([lo[t], hi[t]]) {
                        let s = _mm_add_epi16(
                            _mm256_castsi256_si128(s),
                            _mm256_extracti128_si256::<1>(s),
                        );
                        let s = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(s));
                        *blk = if k == 0 {
                            _mm256_mul_ps(d, s)
                        } else {
                            _mm256_fmadd_ps(d, s, *blk)
                        };
                    }
                }
            }
            let scales = base.add(256) as *const __m128i;
            for h in 0..2 {
                let d = _mm256_cvtph_ps(_mm_loadu_si128(scales.add(h)));
                for t in 0..NT {
                    acc[t][h] = _mm256_fmadd_ps(d, blk[t][h], acc[t][h]);
                }
            }
        }
        acc
    }

    /// Writes the 16 sums of group g (two vectors) for token t, rows past `rows.end` left out.
    ///
    /// # Safety
    /// As `rows_dispatch`: the caller owns rows `rows` of token t.
    #[inline(always)]
    unsafe fn q1_put(y: [__m256; 2], g: usize, t: usize, rows: &Range<usize>, out: &Out) {
        let mut v = [0f32; Q1_ROWS];
        _mm256_storeu_ps(v.as_mut_ptr(), y[0]);
        _mm256_storeu_ps(v.as_mut_ptr().add(8), y[1]);
        for (r, &v) in v.iter().enumerate() {
            let row = g * Q1_ROWS + r;
            if row < rows.end {
                // SAFETY: the caller hands over rows `rows` of token t.
                unsafe { out.put(row, t, v) };
            }
        }
    }

    /// # Safety
    /// The CPU has AVX2, FMA and F16C; as `rows_dispatch`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn q1_avx2(
        m: &LowbitMat,
        act: &LowAct,
        rows: Range<usize>,
        toks: Range<usize>,
        out: &Out,
    ) {
        let nb = m.cols / q1_0::BLOCK;
        let ab = m.cols / q8_0::BLOCK;
        let gb = m.group_bytes();
        let lut_bytes = m.cols / 16 * LUT_CHUNK;
        for g in rows.start / Q1_ROWS..rows.end.div_ceil(Q1_ROWS) {
            let w = m.data.as_ptr().add(g * gb);
            let mut t = toks.start;
            while t < toks.end {
                let len = match toks.end - t {
                    4.. => 4,
                    2 | 3 => 2,
                    _ => 1,
                };
                let lut = |i: usize| act.lut.as_ptr().add((t + i - toks.start) * lut_bytes);
                let d1 = |i: usize| act.d[(t + i) * ab..].as_ptr();
                let mut y = [[_mm256_setzero_ps(); 2]; 4];
                match len {
                    4 => {
                        y = q1_group::<4>(w, nb, std::array::from_fn(lut), std::array::from_fn(d1))
                    }
                    2 => y[..2].copy_from_slice(&q1_group::<2>(
                        w,
                        nb,
                        [lut(0), lut(1)],
                        [d1(0), d1(1)],
                    )),
                    _ => y[0] = q1_group::<1>(w, nb, [lut(0)], [d1(0)])[0],
                }
                for (i, &y) in y.iter().take(len).enumerate() {
                    q1_put(y, g, t + i, &rows, out);
                }
                t += len;
            }
        }
    }
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
        let mut reference = vec![0f32; n * rows];
        for t in 0..n {
            for r in 0..rows {
                let (wrow, arow) = (&w[r * wr..(r + 1) * wr], &a[t * ar..(t + 1) * ar]);
                reference[t * rows + r] = match ty {
                    GgmlType::Q2_0 => dot_q2_0_q8_0_isa(Isa::Scalar, wrow, arow),
                    _ => dot_q1_0_q8_0_isa(Isa::Scalar, wrow, arow),
                };
            }
        }
        // Q2_0: the reference's bits. Q1_0: the scalar twin's (one float chain per row), which
        // must agree with the reference's eight-lane order up to rounding.
        let want = match ty {
            GgmlType::Q2_0 => reference,
            _ => {
                let mut twin = vec![0f32; n * rows];
                matmul_isa(Isa::Scalar, &m, &mut act, &mut twin, rows, 1);
                for (i, (&t, &r)) in twin.iter().zip(&reference).enumerate() {
                    let close = (t - r).abs() <= 1e-5 * (1.0 + r.abs())
                        || t.to_bits() == r.to_bits()
                        || (t.is_nan() && r.is_nan())
                        || !r.is_finite()
                        || !t.is_finite();
                    assert!(
                        close,
                        "Q1_0 twin {rows}x{cols} n{n} out {i}: {t:e} vs {r:e}"
                    );
                }
                twin
            }
        };
        for isa in available_isas() {
            for threads in [1, 2] {
                let mut got = vec![f32::from_bits(0x7fc0_dead); n * rows];
                matmul_isa(isa, &m, &mut act, &mut got, rows, threads);
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
    fn every_level_matches_its_scalar_reference_bit_for_bit() {
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
            // more tokens than one Q1_0 table tile holds (4096 columns: 8 tokens a tile)
            check(ty, 19, 4096, 21, 0, 0);
            for wstyle in 0..6 {
                for astyle in 0..6 {
                    check(ty, 11, 4 * b, 5, wstyle, astyle);
                    check(ty, 3, 3 * b, 1, wstyle, astyle);
                }
            }
        }
    }

    #[test]
    fn many_matrices_in_one_hand_off_match_one_at_a_time() {
        // q/k/v-like: different row counts (not multiples of a group), both types in one call,
        // decode and prefill token counts, a tile boundary (4096 columns: 8 tokens a tile).
        let mut rng = SplitMix64(5);
        for (cols, n) in [(256, 1), (512, 3), (4096, 11)] {
            let shapes = [
                (GgmlType::Q1_0, 37),
                (GgmlType::Q2_0, 19),
                (GgmlType::Q1_0, 64),
            ];
            let mats: Vec<LowbitMat> = shapes
                .iter()
                .map(|&(ty, rows)| {
                    let w = weights(ty, rows, cols, 0, &mut rng);
                    match ty {
                        GgmlType::Q2_0 => LowbitMat::from_q2_0(&w, rows, cols),
                        _ => LowbitMat::from_q1_0(&w, rows, cols),
                    }
                })
                .collect();
            let a = acts(n, cols, 0, &mut rng);
            let mut act = LowAct::default();
            act.set_q8_0(&a, n, cols);
            for isa in available_isas() {
                for threads in [1, 2] {
                    let mut outs: Vec<Vec<f32>> =
                        mats.iter().map(|m| vec![f32::NAN; n * m.rows]).collect();
                    let mut many: Vec<(&LowbitMat, &mut [f32], usize)> = mats
                        .iter()
                        .zip(outs.iter_mut())
                        .map(|(m, o)| (m, o.as_mut_slice(), m.rows))
                        .collect();
                    matmul_many_isa(isa, &mut many, &mut act, threads);
                    for (m, got) in mats.iter().zip(&outs) {
                        let mut want = vec![0f32; n * m.rows];
                        matmul_isa(isa, m, &mut act, &mut want, m.rows, 1);
                        let same = got
                            .iter()
                            .zip(&want)
                            .all(|(g, w)| g.to_bits() == w.to_bits());
                        assert!(same, "{:?} {isa:?} t{threads} {}x{cols} n{n}", m.ty, m.rows);
                    }
                }
            }
        }
    }

    #[test]
    fn q1_tables_are_the_same_bytes_at_every_level() {
        let mut rng = SplitMix64(5);
        for style in 0..3 {
            let q: Vec<i8> = (0..4096)
                .map(|i| match style {
                    0 => rng.next_u64() as i8,
                    1 => [-128, 127, -127, 0][i % 4],
                    _ => -128,
                })
                .collect();
            let mut want = vec![0u8; q.len() / 16 * LUT_CHUNK];
            q1_lut_token(&q, &mut want);
            // spot check: entry 0b0101 of the first four values
            let e = |i: usize| q[i] as i32;
            let n5 = e(0) + q1_neg(q[1]) + e(2) + q1_neg(q[3]);
            assert_eq!(i16::from_le_bytes([want[5], want[32 + 5]]) as i32, n5);
            for isa in available_isas() {
                let mut got = vec![0xa5u8; want.len()];
                q1_lut_token_isa(isa, &q, &mut got);
                assert!(got == want, "{isa:?} style {style}");
            }
        }
    }

    #[test]
    fn a_new_input_replaces_a_kept_one() {
        // The kept input (REUSE_MAX) must be recognized only when it is bit for bit the same.
        let (rows, cols) = (20, 512);
        let mut rng = SplitMix64(9);
        let w = weights(GgmlType::Q1_0, rows, cols, 0, &mut rng);
        let m = LowbitMat::from_q1_0(&w, rows, cols);
        let x1: Vec<f32> = (0..2 * cols).map(|_| rng.normal()).collect();
        let mut x2 = x1.clone();
        x2[cols + 7] = -x2[cols + 7];
        let run = |act: &mut LowAct, x: &[f32]| {
            act.quantize(x, 2, cols, 1);
            let mut out = vec![0f32; 2 * rows];
            matmul(&m, act, &mut out, rows, 1);
            out
        };
        let mut kept = LowAct::default();
        let (a1, a1_again, a2) = (
            run(&mut kept, &x1),
            run(&mut kept, &x1),
            run(&mut kept, &x2),
        );
        assert_eq!(a1, a1_again);
        assert_eq!(a2, run(&mut LowAct::default(), &x2));
        assert_ne!(a1[rows..], a2[rows..]);
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
            matmul_isa(isa, &m, &mut act, &mut out, 4, 1);
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
