//! Ternary matrix kernels: weights repacked at load into plain 2-bit codes, activations as int8,
//! a scalar reference and AVX2 / AVX-512 VNNI paths picked at run time.
//!
//! Packed layout (`TernaryMat`), row-major, `cols / 4` bytes per row, in groups of 128 values
//! (32 bytes): byte j of a group holds, from its low bits up, the codes of values j, j + 32,
//! j + 64 and j + 96. Code c in 0..=2 stands for the weight c - 1 (TQ2_0's own layout; I2_S
//! has the same groups with the bit pairs in the opposite order; TQ1_0 is decoded from base 3).
//!
//! Activations (`ActBuf`) are int8 in "kernel order": inside every whole 256-value block the
//! 32-value chunks of its two groups A and B are interleaved A0 B0 A1 B1 A2 B2 A3 B3, so that
//! one 64-byte load of codes shifted by 2k lines up with one 64-byte load of activations.
//! A trailing half block (cols % 256 == 128) keeps its natural order.
//!
//! The integer dot product sum(code * q) is exact in any order; the weight value is code - 1,
//! so sum(w * q) = sum(code * q) - sum(q), with the activation sums precomputed.
//! AVX2 (`vpmaddubsw`): code (0..=3) * q (-128..=127) pairs give at most |768| in int16, and
//! at most 8 such vectors are added in int16 (|6144|) before widening to int32: no wrap.

use std::ops::Range;

use super::isa::{best_isa, Isa};
use super::pool::{self, SendPtr};
use crate::quant::float::f16_to_f32;

#[cfg(target_arch = "x86_64")]
mod amx;
mod base3;
use crate::quant::{i2_s, q8_k, tq1_0, tq2_0};

pub const GROUP: usize = 128;
pub const GROUP_BYTES: usize = 32;
/// Values per activation block (Q8_K's block; the per-block sums are kept at this size).
pub const QK: usize = 256;

/// 64 bytes, 64-byte aligned: the unit of the packed code storage.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// How a row's integer sums become its output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WeightScale {
    /// One scale for the whole tensor (I2_S): y = (isum - asum) / act_scale * scale.
    Tensor(f32),
    /// One scale per 256-value block of each row (TQ1_0/TQ2_0); `uniform` when they all agree.
    Blocks { uniform: Option<f32> },
}

/// How a `TernaryMat` stores its codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// 2 bits per code in groups of 128 (this file's header): every kernel, prefill's fastest.
    Bits2,
    /// Five codes per byte, 1.6 bits per weight (`ternary::base3`): the AVX2 kernels and the
    /// scalar reference only (AVX-512 and AMX machines run its AVX2 kernels).
    Base3,
}

impl Layout {
    /// The names `BITNET_TERNARY` takes: `q2` (2 bits) or `q16` (1.6 bits).
    pub fn parse(name: &str) -> Option<Layout> {
        match name {
            "q2" => Some(Layout::Bits2),
            "q16" => Some(Layout::Base3),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::Bits2 => "q2",
            Layout::Base3 => "q16",
        }
    }

    /// The layout `BITNET_TERNARY` names (unset or empty: 2 bits); an unknown name is an error.
    pub fn from_env() -> crate::Result<Layout> {
        match crate::env::var(crate::env::TERNARY) {
            None => Ok(Layout::Bits2),
            Some(v) if v.is_empty() => Ok(Layout::Bits2),
            Some(v) => Layout::parse(&v).ok_or_else(|| {
                crate::Error::bad_input(format!("{}={v:?}: want q2 or q16", crate::env::TERNARY))
            }),
        }
    }
}

/// A ternary matrix in the kernels' layout: `rows` outputs of `cols` inputs.
pub struct TernaryMat {
    pub rows: usize,
    pub cols: usize,
    layout: Layout,
    lines: Vec<Line>, // rows * row_bytes() bytes of codes (padded to whole lines)
    block_scales: Vec<f32>, // [rows, cols / 256] for WeightScale::Blocks, else empty
    pub scale: WeightScale,
}

impl TernaryMat {
    fn alloc(rows: usize, cols: usize, layout: Layout) -> TernaryMat {
        let bytes = rows
            * match layout {
                Layout::Bits2 => cols / 4,
                Layout::Base3 => base3::row_bytes(cols),
            };
        // SAFETY: a Line of zero bytes is a valid Line (it is 64 bytes).
        let lines: Vec<Line> = unsafe { super::zeroed_vec(bytes.div_ceil(64)) };
        TernaryMat {
            rows,
            cols,
            layout,
            lines,
            block_scales: Vec::new(),
            scale: WeightScale::Tensor(0.0),
        }
    }

    pub fn row_bytes(&self) -> usize {
        match self.layout {
            Layout::Bits2 => self.cols / 4,
            Layout::Base3 => base3::row_bytes(self.cols),
        }
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Bytes held in memory (codes and scales).
    pub fn bytes(&self) -> usize {
        self.lines.len() * 64 + self.block_scales.len() * 4
    }

    pub fn codes(&self) -> &[u8] {
        // SAFETY: `Line` is 64 plain bytes with no padding; the vector holds lines.len() * 64
        // initialized bytes.
        unsafe {
            std::slice::from_raw_parts(self.lines.as_ptr() as *const u8, self.lines.len() * 64)
        }
    }

    fn codes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `codes`, and the borrow of self is exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.lines.as_mut_ptr() as *mut u8,
                self.lines.len() * 64,
            )
        }
    }

    fn row(&self, r: usize) -> &[u8] {
        let n = self.row_bytes();
        &self.codes()[r * n..(r + 1) * n]
    }

    /// The unsigned code (0..=3) of value `e` of row `r`.
    pub fn code(&self, r: usize, e: usize) -> u8 {
        match self.layout {
            Layout::Bits2 => {
                let byte = self.row(r)[e / GROUP * GROUP_BYTES + e % 32];
                (byte >> (2 * ((e % GROUP) / 32))) & 3
            }
            Layout::Base3 => base3::code(self.row(r), kernel_pos(e, self.cols)),
        }
    }

    /// Whether a matrix of `cols` inputs in this type can be packed.
    pub fn can_pack(ty: crate::quant::GgmlType, cols: usize) -> bool {
        use crate::quant::GgmlType as T;
        match ty {
            T::I2_S => cols.is_multiple_of(GROUP),
            T::TQ1_0 | T::TQ2_0 => cols.is_multiple_of(QK),
            _ => false,
        }
    }

    /// Repacks an I2_S tensor (all rows, then the 32-byte tail holding the scale).
    pub fn from_i2_s(data: &[u8], rows: usize, cols: usize) -> TernaryMat {
        assert!(cols.is_multiple_of(GROUP) && data.len() >= rows * cols / 4 + i2_s::TAIL_BYTES);
        let mut m = TernaryMat::alloc(rows, cols, Layout::Bits2);
        // I2_S keeps value j at bits 7:6 and j + 96 at 1:0: reverse the four bit pairs.
        let mut flip = [0u8; 256];
        for (b, f) in flip.iter_mut().enumerate() {
            let b = b as u8;
            *f = (b >> 6) | ((b >> 2) & 0x0c) | ((b << 2) & 0x30) | (b << 6);
        }
        let n = rows * cols / 4;
        let codes = SendPtr(m.codes_mut().as_mut_ptr());
        let pool = pool::global();
        pool.run(pool.max_threads(), &|i, nt| {
            let part = pool::split(n, 4096, i, nt);
            // SAFETY: each thread writes its own disjoint byte range of the codes, which are
            // n bytes or more and outlive `run`.
            let out =
                unsafe { std::slice::from_raw_parts_mut(codes.get().add(part.start), part.len()) };
            for (o, &b) in out.iter_mut().zip(&data[part]) {
                *o = flip[b as usize];
            }
        });
        m.scale = WeightScale::Tensor(i2_s::scale(&data[..n + i2_s::TAIL_BYTES]));
        m
    }

    /// Repacks TQ2_0 blocks (64 bytes of codes already in our layout, then an f16 scale).
    pub fn from_tq2_0(data: &[u8], rows: usize, cols: usize) -> TernaryMat {
        Self::from_blocks(data, rows, cols, tq2_0::BLOCK_BYTES, 64, |block, out| {
            out.copy_from_slice(&block[..64]);
        })
    }

    /// Repacks TQ1_0 blocks, decoding their base-3 digits.
    pub fn from_tq1_0(data: &[u8], rows: usize, cols: usize) -> TernaryMat {
        #[cfg(target_arch = "x86_64")]
        if best_isa() >= Isa::Avx2 {
            return Self::from_blocks(data, rows, cols, tq1_0::BLOCK_BYTES, 52, |block, out| {
                // SAFETY: every level from Avx2 up has AVX2 (`kernels::isa`).
                unsafe { unpack_tq1_0_avx2(block, out) }
            });
        }
        Self::from_blocks(data, rows, cols, tq1_0::BLOCK_BYTES, 52, unpack_tq1_0)
    }

    fn from_blocks(
        data: &[u8],
        rows: usize,
        cols: usize,
        block_bytes: usize,
        d_offset: usize,
        unpack: impl Fn(&[u8], &mut [u8]) + Sync,
    ) -> TernaryMat {
        assert!(cols.is_multiple_of(QK));
        let nb = cols / QK;
        assert!(data.len() >= rows * nb * block_bytes);
        let mut m = TernaryMat::alloc(rows, cols, Layout::Bits2);
        m.block_scales = vec![0.0; rows * nb];
        let codes = SendPtr(m.codes_mut().as_mut_ptr());
        let scales = SendPtr(m.block_scales.as_mut_ptr());
        let total = rows * nb;
        let pool = pool::global();
        pool.run(pool.max_threads(), &|i, n| {
            for b in pool::split(total, 64, i, n) {
                let block = &data[b * block_bytes..(b + 1) * block_bytes];
                // SAFETY: block b owns bytes 64b..64b+64 of the codes and scale b; the ranges
                // handed to the threads are disjoint, and both buffers outlive `run`.
                let out = unsafe { std::slice::from_raw_parts_mut(codes.get().add(b * 64), 64) };
                unpack(block, out);
                let d = f16_to_f32(u16::from_le_bytes([block[d_offset], block[d_offset + 1]]));
                // SAFETY: as above.
                unsafe { *scales.get().add(b) = d };
            }
        });
        let first = m.block_scales.first().copied().unwrap_or(0.0);
        let uniform = m
            .block_scales
            .iter()
            .all(|&d| d.to_bits() == first.to_bits());
        m.scale = WeightScale::Blocks {
            uniform: uniform.then_some(first),
        };
        m
    }
}

/// Decodes one TQ1_0 block's 256 codes (natural order). Byte j < 32 holds values 32m + j
/// (digits m = 0..5), 32 <= j < 48 holds 160 + 16m + (j - 32), 48 <= j < 52 holds
/// 240 + 4m + (j - 48) (m = 0..4); digit m of byte b is ((b * 3^m mod 256) * 3) >> 8
/// (see quant::tq1_0).
#[inline(always)]
fn tq1_0_codes(block: &[u8], codes: &mut [u8; QK]) {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    let digit = |b: u8, m: usize| ((b.wrapping_mul(POW3[m]) as u16 * 3) >> 8) as u8;
    // Digit-major loops: each inner loop is one run of bytes (vectorizes).
    for m in 0..5 {
        for j in 0..32 {
            codes[32 * m + j] = digit(block[j], m);
        }
    }
    for m in 0..5 {
        for j in 0..16 {
            codes[160 + 16 * m + j] = digit(block[32 + j], m);
        }
    }
    for m in 0..4 {
        for j in 0..4 {
            codes[240 + 4 * m + j] = digit(block[48 + j], m);
        }
    }
}

/// One TQ1_0 block (54 bytes) into 64 bytes of our layout.
#[inline(always)]
fn unpack_tq1_0(block: &[u8], out: &mut [u8]) {
    let mut codes = [0u8; QK];
    tq1_0_codes(block, &mut codes);
    pack_codes(&codes, out);
}

/// `unpack_tq1_0` on AVX2: the same digit arithmetic (b * 3^m mod 256, times 3, over 256) on
/// 32 bytes at a time, then the digits moved to where `pack_codes` puts them.
///
/// # Safety
/// AVX2 present; `block` holds at least 52 bytes of digits, `out` 64 bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn unpack_tq1_0_avx2(block: &[u8], out: &mut [u8]) {
    use std::arch::x86_64::*;
    assert!(block.len() >= 52 && out.len() >= 64);
    let zero = _mm256_setzero_si256();
    let (ff, three) = (_mm256_set1_epi16(0xff), _mm256_set1_epi16(3));
    let digit = |v: __m256i, pow: i16| {
        let f = |x: __m256i| {
            let r = _mm256_and_si256(_mm256_mullo_epi16(x, _mm256_set1_epi16(pow)), ff);
            _mm256_srli_epi16::<8>(_mm256_mullo_epi16(r, three))
        };
        // Unpacking against zero and packing back keeps the byte order.
        _mm256_packus_epi16(
            f(_mm256_unpacklo_epi8(v, zero)),
            f(_mm256_unpackhi_epi8(v, zero)),
        )
    };
    // a: bytes 0..32 (five digits each: codes 32m + j); b: bytes 32..48 (codes 160 + 16m + j)
    // then 48..52 (four digits: codes 240 + 4m + j).
    let mut tail = [0u8; 32];
    tail[..20].copy_from_slice(&block[32..52]);
    // SAFETY: 32 bytes at the block's start (asserted) and the local `tail`.
    let (a, b) = unsafe {
        (
            _mm256_loadu_si256(block.as_ptr() as *const __m256i),
            _mm256_loadu_si256(tail.as_ptr() as *const __m256i),
        )
    };
    const POW3: [i16; 5] = [1, 3, 9, 27, 81];
    let da: [__m256i; 5] = std::array::from_fn(|m| digit(a, POW3[m]));
    let db: [__m256i; 5] = std::array::from_fn(|m| digit(b, POW3[m]));
    let pack4 = |c: [__m256i; 4]| {
        let c1 = _mm256_slli_epi16::<2>(c[1]);
        let c2 = _mm256_slli_epi16::<4>(c[2]);
        let c3 = _mm256_slli_epi16::<6>(c[3]);
        _mm256_or_si256(_mm256_or_si256(c[0], c1), _mm256_or_si256(c2, c3))
    };
    // Group 0: codes 0..128 = digits 0..3 of bytes 0..32.
    let g0 = pack4([da[0], da[1], da[2], da[3]]);
    // Group 1: codes 128..160 = digit 4 of a; 160..192 = digits 0, 1 of b's first 16 bytes;
    // 192..224 = digits 2, 3; 224..240 = digit 4; 240..256 = digits 0..3 of b's bytes 16..20.
    let low_halves = |x: __m256i, y: __m256i| _mm256_permute2x128_si256::<0x20>(x, y);
    let hi = |x: __m256i| _mm256_extracti128_si256::<1>(x);
    let last = _mm_unpacklo_epi64(
        _mm_unpacklo_epi32(hi(db[0]), hi(db[1])),
        _mm_unpacklo_epi32(hi(db[2]), hi(db[3])),
    );
    let g1 = pack4([
        da[4],
        low_halves(db[0], db[1]),
        low_halves(db[2], db[3]),
        _mm256_inserti128_si256::<1>(db[4], last),
    ]);
    // SAFETY: 64 bytes of `out` (asserted).
    unsafe {
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, g0);
        _mm256_storeu_si256(out.as_mut_ptr().add(32) as *mut __m256i, g1);
    }
}

/// Packs 256 codes (natural order) into 64 bytes of our layout.
#[inline(always)]
fn pack_codes(codes: &[u8; QK], out: &mut [u8]) {
    for (g, out) in out.chunks_exact_mut(GROUP_BYTES).enumerate() {
        let c = &codes[g * GROUP..(g + 1) * GROUP];
        for (j, o) in out.iter_mut().enumerate() {
            *o = c[j] | (c[j + 32] << 2) | (c[j + 64] << 4) | (c[j + 96] << 6);
        }
    }
}

/// How activations are quantized to int8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActMode {
    /// One scale per token: 127 / max(1e-5, max|x|), round half to even (BitNet b1.58).
    PerToken,
    /// Q8_K: one scale per 256 values, as llama.cpp quantizes for TQ1_0/TQ2_0.
    Q8K,
}

/// int8 activations of up to `n` tokens in kernel order, with their sums and scales.
/// Reused across calls: after the first call of a size, quantizing allocates nothing.
#[derive(Default)]
pub struct ActBuf {
    pub mode: Option<ActMode>,
    pub cols: usize,
    pub n: usize,
    q: Vec<i8>,            // [n, cols] kernel order
    block_d: Vec<f32>,     // [n, cols / 256] Q8_K scales (Q8K mode)
    block_sum: Vec<i32>,   // [n, cols / 256] activation sum per whole block (PerToken)
    lane_corr: Vec<i32>,   // [n, cols / 256, 8] Q8K: sum of values 32u..32u+32 of each block
    neg_corr: Vec<i32>,    // [n, cols / 256, 8] Q8K: -lane_corr (the tile kernels start from it)
    d_pairs: Vec<f32>,     // [n / 2, cols / 256, 16] Q8K: block_d of tokens 2p (x8), 2p + 1 (x8)
    token_sum: Vec<i32>,   // [n]
    token_scale: Vec<f32>, // [n] PerToken: 127 / amax
    q8k: Vec<u8>,          // [n, cols / 256 * 292] Q8_K scratch
    amx_b: Vec<i8>, // when the AMX path takes this shape: q laid out as B tiles (amx::layout_b*)
    amx_d: Vec<f32>, // Q8K on AMX: block scales by token tile
    amx_c: Vec<i32>, // Q8K on AMX: lane corrections by token tile
    amx_ready: bool,
}

/// Index in kernel order of value `e` of a row of `cols` values.
pub fn kernel_pos(e: usize, cols: usize) -> usize {
    let b = e / QK;
    if (b + 1) * QK > cols {
        return e; // the trailing half block keeps its order
    }
    let r = e % QK;
    let (g, k, j) = (r / GROUP, (r % GROUP) / 32, r % 32);
    b * QK + 64 * k + 32 * g + j
}

/// Writes one row of int8 values (natural order) in kernel order.
fn to_kernel_order(src: &[i8], dst: &mut [i8]) {
    let cols = src.len();
    let whole = cols / QK * QK;
    for (s, d) in src[..whole]
        .chunks_exact(QK)
        .zip(dst[..whole].chunks_exact_mut(QK))
    {
        for k in 0..4 {
            for g in 0..2 {
                d[64 * k + 32 * g..][..32].copy_from_slice(&s[g * GROUP + 32 * k..][..32]);
            }
        }
    }
    dst[whole..].copy_from_slice(&src[whole..]);
}

impl ActBuf {
    /// Quantizes `n` rows of `x` (each `cols` long). Q8K needs cols % 256 == 0; PerToken
    /// needs cols % 128 == 0.
    pub fn quantize(&mut self, mode: ActMode, x: &[f32], n: usize, cols: usize, threads: usize) {
        assert!(x.len() >= n * cols && cols.is_multiple_of(GROUP));
        assert!(mode == ActMode::PerToken || cols.is_multiple_of(QK));
        let nb = cols / QK;
        self.mode = Some(mode);
        self.cols = cols;
        self.n = n;
        grow(&mut self.q, n * cols);
        grow(&mut self.block_d, n * nb);
        grow(&mut self.block_sum, n * nb);
        grow(&mut self.token_sum, n);
        grow(&mut self.token_scale, n);
        if mode == ActMode::Q8K {
            grow(&mut self.q8k, n * nb * q8_k::BLOCK_BYTES);
            grow(&mut self.lane_corr, n * nb * 8);
        }
        let q = SendPtr(self.q.as_mut_ptr());
        let block_d = SendPtr(self.block_d.as_mut_ptr());
        let block_sum = SendPtr(self.block_sum.as_mut_ptr());
        let token_sum = SendPtr(self.token_sum.as_mut_ptr());
        let token_scale = SendPtr(self.token_scale.as_mut_ptr());
        let q8k = SendPtr(self.q8k.as_mut_ptr());
        let lane_corr = SendPtr(self.lane_corr.as_mut_ptr());
        let threads = if n >= 4 { threads } else { 1 };
        pool::global().run(threads, &|i, nt| {
            for t in pool::split(n, 1, i, nt) {
                let xt = &x[t * cols..(t + 1) * cols];
                // SAFETY: token t owns row t of every buffer (sizes grown above); threads get
                // disjoint tokens and the buffers outlive `run`.
                let (qt, bd, bs, ts, tsc) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(q.get().add(t * cols), cols),
                        std::slice::from_raw_parts_mut(block_d.get().add(t * nb), nb),
                        std::slice::from_raw_parts_mut(block_sum.get().add(t * nb), nb),
                        &mut *token_sum.get().add(t),
                        &mut *token_scale.get().add(t),
                    )
                };
                match mode {
                    ActMode::PerToken => {
                        let amax = abs_max(xt);
                        let scale = 127.0 / amax.max(1e-5);
                        let mut natural = [0i8; QK];
                        let mut sum = 0i32;
                        for (c, chunk) in xt.chunks(QK).enumerate() {
                            let nat = &mut natural[..chunk.len()];
                            for (o, &v) in nat.iter_mut().zip(chunk) {
                                *o = round_to_i8(v * scale);
                            }
                            let s: i32 = nat.iter().map(|&v| v as i32).sum();
                            if chunk.len() == QK {
                                bs[c] = s;
                            }
                            sum += s;
                            to_kernel_order(nat, &mut qt[c * QK..c * QK + chunk.len()]);
                        }
                        *ts = sum;
                        *tsc = scale;
                    }
                    ActMode::Q8K => {
                        let bytes = nb * q8_k::BLOCK_BYTES;
                        // SAFETY: as above, token t's slice of the Q8_K scratch.
                        let blocks = unsafe {
                            std::slice::from_raw_parts_mut(q8k.get().add(t * bytes), bytes)
                        };
                        super::quantize_q8_k(xt, blocks);
                        let mut sum = 0;
                        for (b, blk) in blocks.chunks_exact(q8_k::BLOCK_BYTES).enumerate() {
                            bd[b] = f32::from_le_bytes([blk[0], blk[1], blk[2], blk[3]]);
                            // SAFETY: i8 and u8 have the same layout.
                            let vals: &[i8] = unsafe {
                                std::slice::from_raw_parts(blk[4..260].as_ptr() as *const i8, QK)
                            };
                            bs[b] = vals.iter().map(|&v| v as i32).sum();
                            sum += bs[b];
                            for u in 0..8 {
                                let bsum = |i: usize| {
                                    i16::from_le_bytes([blk[260 + 2 * i], blk[261 + 2 * i]]) as i32
                                };
                                // SAFETY: token t's block b entries of lane_corr (grown above);
                                // disjoint per token.
                                unsafe {
                                    *lane_corr.get().add((t * nb + b) * 8 + u) =
                                        bsum(2 * u) + bsum(2 * u + 1)
                                };
                            }
                            to_kernel_order(vals, &mut qt[b * QK..(b + 1) * QK]);
                        }
                        *ts = sum;
                        *tsc = 1.0;
                    }
                }
            }
        });
        if mode == ActMode::Q8K {
            grow(&mut self.neg_corr, n * nb * 8);
            for (d, &c) in self.neg_corr.iter_mut().zip(&self.lane_corr[..n * nb * 8]) {
                *d = -c;
            }
            grow(&mut self.d_pairs, n / 2 * nb * 16);
            for p in 0..n / 2 {
                for b in 0..nb {
                    let dst = &mut self.d_pairs[(p * nb + b) * 16..][..16];
                    dst[..8].fill(self.block_d[2 * p * nb + b]);
                    dst[8..].fill(self.block_d[(2 * p + 1) * nb + b]);
                }
            }
        }
        self.prepare_amx();
    }

    /// Raw int8 activations (natural order, `n` rows of `cols`) with scale 1, for tests of
    /// extreme values the quantizers never produce (-128).
    pub fn set_raw_per_token(&mut self, q: &[i8], n: usize, cols: usize) {
        assert!(q.len() >= n * cols && cols.is_multiple_of(GROUP));
        let nb = cols / QK;
        self.mode = Some(ActMode::PerToken);
        self.cols = cols;
        self.n = n;
        grow(&mut self.q, n * cols);
        grow(&mut self.block_d, n * nb);
        grow(&mut self.block_sum, n * nb);
        grow(&mut self.token_sum, n);
        grow(&mut self.token_scale, n);
        for t in 0..n {
            let src = &q[t * cols..(t + 1) * cols];
            to_kernel_order(src, &mut self.q[t * cols..(t + 1) * cols]);
            for b in 0..nb {
                self.block_sum[t * nb + b] =
                    src[b * QK..(b + 1) * QK].iter().map(|&v| v as i32).sum();
            }
            self.token_sum[t] = src.iter().map(|&v| v as i32).sum();
            self.token_scale[t] = 1.0;
        }
        self.prepare_amx();
    }

    fn token(&self, t: usize) -> &[i8] {
        &self.q[t * self.cols..(t + 1) * self.cols]
    }

    /// Lays the activations out as AMX B tiles when the tile path will take them.
    fn prepare_amx(&mut self) {
        self.amx_ready = false;
        #[cfg(target_arch = "x86_64")]
        if best_isa() == Isa::Amx && amx::suits(self.cols, self.n) {
            match self.mode {
                Some(ActMode::PerToken) => {
                    amx::layout_b(&self.q, self.n, self.cols, &mut self.amx_b)
                }
                Some(ActMode::Q8K) => amx::layout_b_q8k(self),
                None => return,
            }
            self.amx_ready = true;
        }
    }
}

/// max |x| (0 for an empty slice; NaNs ignored), in sixteen lanes so that it vectorizes: max
/// is order-free, so the result equals a left-to-right fold.
fn abs_max(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            *m = m.max(v.abs());
        }
    }
    rest.iter()
        .fold(lanes.iter().fold(0f32, |a, &b| a.max(b)), |a, v| {
            a.max(v.abs())
        })
}

/// `x.round_ties_even().clamp(-128.0, 127.0) as i8` in plain arithmetic that vectorizes (no
/// libm call): clamping first gives the same result (the bounds are integers), and adding then
/// subtracting 1.5 * 2^23 rounds any |x| <= 2^22 to the nearest integer, ties to even, in the
/// default rounding mode. NaN stays NaN and converts to 0, as before.
#[inline(always)]
fn round_to_i8(x: f32) -> i8 {
    const MAGIC: f32 = 12_582_912.0;
    let c = x.clamp(-128.0, 127.0);
    ((c + MAGIC) - MAGIC) as i8
}

fn grow<T: Default + Clone>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar reference: sum over values of code * q, per 256-value block.

/// Integer sums sum(code * q) of row `r` against one token, one per whole 256 block, plus the
/// trailing half block last (if any). Reference for the SIMD kernels.
fn block_isums_scalar(m: &TernaryMat, r: usize, q: &[i8], out: &mut [i32]) {
    out.fill(0);
    for e in 0..m.cols {
        out[e / QK] += m.code(r, e) as i32 * q[kernel_pos(e, m.cols)] as i32;
    }
}

/// One row against one token's Q8_K activations exactly as `kernels::dot` (llama.cpp's x86
/// order): per block, eight int32 lanes (value e in lane (e % 32) / 4) minus the lane's
/// correction (the sum of activations 32u..32u+32), each lane accumulated in f32 as
/// fma(lane, d_a * d_w, acc), then the reference's pairwise sum of the eight lanes.
fn q8k_row_scalar(m: &TernaryMat, r: usize, act: &ActBuf, t: usize) -> f32 {
    let nb = m.cols / QK;
    let q = act.token(t);
    let mut acc = [0f32; 8];
    for b in 0..nb {
        let mut lanes = [0i32; 8];
        for e in b * QK..(b + 1) * QK {
            lanes[(e % 32) / 4] += m.code(r, e) as i32 * q[kernel_pos(e, m.cols)] as i32;
        }
        let d = act.block_d[t * nb + b] * m.block_scales[r * nb + b];
        for u in 0..8 {
            let l = lanes[u] - act.lane_corr[(t * nb + b) * 8 + u];
            acc[u] = (l as f32).mul_add(d, acc[u]);
        }
    }
    super::dot::hsum8(acc)
}

// ---------------------------------------------------------------------------------------------
// The output formulas, shared by every ISA so the paths differ only in integer sums.

/// Per token, what the output formula needs.
struct TokenInfo {
    sum: i32,
    scale: f32,
}

/// y from the whole-row integer sum (PerToken activations, Tensor or uniform Blocks scale).
fn finish_total(w: WeightScale, isum: i32, t: &TokenInfo) -> f32 {
    match w {
        // As the scalar I2_S path: (isum - sum) / act_scale * w_scale, in f32.
        WeightScale::Tensor(s) => (isum - t.sum) as f32 / t.scale * s,
        // As the generic per-token path: the exact sum d * (isum - sum) in f64, then / scale.
        WeightScale::Blocks { uniform: Some(d) } => {
            (d as f64 * (isum - t.sum) as f64) as f32 / t.scale
        }
        WeightScale::Blocks { uniform: None } => unreachable!("per-block scales need block sums"),
    }
}

// ---------------------------------------------------------------------------------------------
// Entry point.

/// out[t * out_stride + r] = row r . token t, for every row and the `act.n` tokens, on up to
/// `threads` pool threads, which take chunks of rows (`pool::chunks`).
pub fn matmul(m: &TernaryMat, act: &ActBuf, out: &mut [f32], out_stride: usize, threads: usize) {
    matmul_isa(best_isa(), m, act, out, out_stride, threads)
}

pub fn matmul_isa(
    isa: Isa,
    m: &TernaryMat,
    act: &ActBuf,
    out: &mut [f32],
    out_stride: usize,
    threads: usize,
) {
    assert_eq!(act.cols, m.cols);
    assert!(act.n == 0 || out.len() >= (act.n - 1) * out_stride + m.rows);
    let mode = act.mode.expect("quantized activations");
    // The 1.6-bit layout has AVX2 kernels only.
    let isa = match m.layout {
        Layout::Base3 => isa.min(Isa::Avx2),
        Layout::Bits2 => isa,
    };
    let out = Out {
        ptr: SendPtr(out.as_mut_ptr()),
        stride: out_stride,
    };
    // Threads take chunks of rows as they finish the last, so a thread the machine slows
    // down does not leave the others waiting. Decode (a few tokens) takes few, long chunks
    // (each a sequential weight stream for the prefetchers), prefill more, shorter ones.
    let per_thread = if act.n < 16 { 4 } else { 8 };
    let chunk = pool::chunk_len(m.rows, threads, per_thread, 32, 32);
    pool::chunks(threads, m.rows, chunk, &|rows| {
        // SAFETY: each chunk of rows is handed out once, so this thread alone writes those
        // rows of each token's output; `out` is long enough (asserted) and outlives the call.
        unsafe { rows_dispatch(isa, mode, m, act, rows, &out) };
    });
}

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

    /// Token t's outputs for rows r0.. as a slice of `len`.
    ///
    /// # Safety
    /// As `put`, for every row of the slice.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows(&self, t: usize, r0: usize, len: usize) -> &mut [f32] {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.get().add(t * self.stride + r0), len) }
    }
}

/// `finish_total` over a run of rows of one token (a loop the compiler vectorizes; the same
/// f32/f64 operations per element, so the same bits).
fn finish_rows(w: WeightScale, isums: &[i32], t: &TokenInfo, out: &mut [f32]) {
    match w {
        WeightScale::Tensor(s) => {
            for (o, &i) in out.iter_mut().zip(isums) {
                *o = (i - t.sum) as f32 / t.scale * s;
            }
        }
        WeightScale::Blocks { uniform: Some(d) } => {
            for (o, &i) in out.iter_mut().zip(isums) {
                *o = (d as f64 * (i - t.sum) as f64) as f32 / t.scale;
            }
        }
        WeightScale::Blocks { uniform: None } => unreachable!("per-block scales need block sums"),
    }
}

/// # Safety
/// `out` holds every row in `rows` for each of `act.n` tokens, written by this caller alone.
unsafe fn rows_dispatch(
    isa: Isa,
    mode: ActMode,
    m: &TernaryMat,
    act: &ActBuf,
    rows: Range<usize>,
    out: &Out,
) {
    // SAFETY: the caller hands over rows `rows` of the output.
    let write = |r: usize, t: usize, v: f32| unsafe { out.put(r, t, v) };
    let nb = m.cols / QK;
    let info = |t: usize| TokenInfo {
        sum: act.token_sum[t],
        scale: act.token_scale[t],
    };
    // Which kind of sum the output needs.
    let total = match (mode, m.scale) {
        (ActMode::PerToken, WeightScale::Tensor(_)) => true,
        (ActMode::PerToken, WeightScale::Blocks { uniform: Some(_) }) => true,
        (ActMode::PerToken, WeightScale::Blocks { uniform: None }) => false,
        (ActMode::Q8K, WeightScale::Blocks { .. }) => false,
        (ActMode::Q8K, WeightScale::Tensor(_)) => panic!("I2_S weights take per-token activations"),
    };
    if total {
        let emit =
            |r: usize, t: usize, isum: i32| write(r, t, finish_total(m.scale, isum, &info(t)));
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the ISA was detected (kernels::isa) before being chosen.
            Isa::Avx512Vnni => unsafe { x86::totals_avx512(m, act, rows, &info, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above; the tile path gets whole tiles of rows of activations laid out
            // for it (`amx_ready`), the rest goes through AVX-512.
            Isa::Amx => unsafe {
                if act.amx_ready && m.cols.is_multiple_of(QK) {
                    let whole = rows.start + rows.len() / amx::TILE * amx::TILE;
                    amx::totals(m, act, rows.start..whole, &info, out);
                    x86::totals_avx512(m, act, whole..rows.end, &info, out);
                } else {
                    x86::totals_avx512(m, act, rows, &info, out);
                }
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 => unsafe { x86::totals_avx2(m, act, rows, &emit) },
            _ => {
                let mut sums = vec![0i32; m.cols.div_ceil(QK)];
                for r in rows {
                    for t in 0..act.n {
                        block_isums_scalar(m, r, act.token(t), &mut sums);
                        emit(r, t, sums.iter().sum());
                    }
                }
            }
        }
        return;
    }
    if mode == ActMode::PerToken {
        // Per-token activations with per-block weight scales that differ: the exact f64 sum
        // of d_b * (isum_b - asum_b), as the generic per-token path computes it. Rare (a
        // BitNet b1.58 model stored as TQ); scalar.
        let mut sums = vec![0i32; nb];
        for r in rows {
            for t in 0..act.n {
                block_isums_scalar(m, r, act.token(t), &mut sums);
                let mut acc = 0f64;
                for (b, &isum) in sums.iter().enumerate() {
                    let d = m.block_scales[r * nb + b] as f64;
                    acc += d * (isum - act.block_sum[t * nb + b]) as f64;
                }
                write(r, t, acc as f32 / act.token_scale[t]);
            }
        }
        return;
    }
    // Q8_K activations: sum over blocks of d_w * d_a * (isum_b - asum_b) in f32.
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the ISA was detected before being chosen.
        Isa::Avx512Vnni => unsafe { x86::blocks_avx512(m, act, rows, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above; whole tiles of rows to the tile path when the activations were
        // laid out for it, the rest through AVX-512.
        Isa::Amx => unsafe {
            if act.amx_ready {
                let whole = rows.start + rows.len() / amx::TILE * amx::TILE;
                amx::blocks(m, act, rows.start..whole, out);
                x86::blocks_avx512(m, act, whole..rows.end, out);
            } else {
                x86::blocks_avx512(m, act, rows, out);
            }
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { x86::blocks_avx2(m, act, rows, &write) },
        _ => {
            for r in rows {
                for t in 0..act.n {
                    write(r, t, q8k_row_scalar(m, r, act, t));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// x86 SIMD paths.

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use crate::kernels::dot::hsum8_avx;
    use std::arch::x86_64::*;

    /// How far ahead (bytes) the decode kernels prefetch the weight stream.
    pub(super) const PREFETCH: usize = 4096;

    /// Rows handled together per weight tile, and tokens per activation tile: a tile of 32
    /// rows (20 KB of codes at 2560 columns) and 8 tokens (20 KB) stays in L1.
    const ROW_TILE: usize = 32;

    /// Token tiles of 8, then 4, then 1.
    fn token_tiles(n: usize, mut f: impl FnMut(usize, usize)) {
        let mut t = 0;
        while t < n {
            let len = if n - t >= 8 {
                8
            } else if n - t >= 4 {
                4
            } else {
                1
            };
            f(t, len);
            t += len;
        }
    }

    // ---- AVX-512 VNNI ----

    /// Whole-row integer sums for NT tokens of row `w` (cols / 4 bytes).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn row_totals_avx512<const NT: usize>(
        w: *const u8,
        cols: usize,
        q: [*const i8; NT],
    ) -> [i32; NT] {
        let mask = _mm512_set1_epi8(3);
        // Independent accumulators so that the dpbusd latency chains overlap: four for one
        // token, two per token for a tile.
        let mut acc = [[_mm512_setzero_si512(); 4]; NT];
        let nb = cols / QK;
        for b in 0..nb {
            let wv = _mm512_loadu_si512(w.add(b * 64) as *const _);
            if NT == 1 {
                _mm_prefetch::<_MM_HINT_T0>(w.add(b * 64 + PREFETCH) as *const i8);
            }
            let c = [
                _mm512_and_si512(wv, mask),
                _mm512_and_si512(_mm512_srli_epi16(wv, 2), mask),
                _mm512_and_si512(_mm512_srli_epi16(wv, 4), mask),
                _mm512_and_si512(_mm512_srli_epi16(wv, 6), mask),
            ];
            for t in 0..NT {
                let a = q[t].add(b * QK);
                for (k, ck) in c.iter().enumerate() {
                    let slot = if NT == 1 { k } else { k & 1 };
                    let av = _mm512_loadu_si512(a.add(64 * k) as *const _);
                    acc[t][slot] = _mm512_dpbusd_epi32(acc[t][slot], *ck, av);
                }
            }
        }
        let mut out = [0i32; NT];
        for t in 0..NT {
            let a = &acc[t];
            let s = _mm512_add_epi32(_mm512_add_epi32(a[0], a[1]), _mm512_add_epi32(a[2], a[3]));
            out[t] = _mm512_reduce_add_epi32(s);
        }
        if !cols.is_multiple_of(QK) {
            // The trailing group of 128 in natural order.
            let mask = _mm256_set1_epi8(3);
            let wv = _mm256_loadu_si256(w.add(nb * 64) as *const _);
            for t in 0..NT {
                let a = q[t].add(nb * QK);
                let mut acc = _mm256_setzero_si256();
                for k in 0..4 {
                    let ck = _mm256_and_si256(_mm256_srl_epi16(wv, _mm_cvtsi32_si128(2 * k)), mask);
                    let av = _mm256_loadu_si256(a.add(32 * k as usize) as *const _);
                    acc = _mm256_dpbusd_epi32(acc, ck, av);
                }
                out[t] += hsum256_epi32(acc);
            }
        }
        out
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn hsum256_epi32(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    fn token_ptrs<const NT: usize>(act: &ActBuf, t0: usize) -> [*const i8; NT] {
        std::array::from_fn(|i| act.token(t0 + i).as_ptr())
    }

    /// The codes of value group k (0..4) of a 64-byte step as bytes 0..=3.
    #[inline(always)]
    unsafe fn unpack_avx512(wv: __m512i, k: usize) -> __m512i {
        let mask = _mm512_set1_epi8(3);
        match k {
            0 => _mm512_and_si512(wv, mask),
            1 => _mm512_and_si512(_mm512_srli_epi16::<2>(wv), mask),
            2 => _mm512_and_si512(_mm512_srli_epi16::<4>(wv), mask),
            _ => _mm512_and_si512(_mm512_srli_epi16::<6>(wv), mask),
        }
    }

    /// Integer sums of MR rows against NT tokens over the whole 256 blocks (the prefill
    /// micro-kernel): each unpacked code vector feeds NT dpbusd and each activation load feeds
    /// MR, so loads and unpacking are shared. S accumulators per pair split the dpbusd
    /// latency chains when NT alone is too few to hide them.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn tile_totals_avx512<const MR: usize, const NT: usize, const S: usize>(
        w: [*const u8; MR],
        nb: usize,
        q: [*const i8; NT],
    ) -> [[i32; NT]; MR] {
        let mut acc = [[[_mm512_setzero_si512(); S]; NT]; MR];
        for b in 0..nb {
            let wv: [__m512i; MR] =
                std::array::from_fn(|r| _mm512_loadu_si512(w[r].add(b * 64) as *const _));
            for k in 0..4 {
                let c: [__m512i; MR] = std::array::from_fn(|r| unpack_avx512(wv[r], k));
                for t in 0..NT {
                    let av = _mm512_loadu_si512(q[t].add(b * QK + 64 * k) as *const _);
                    for r in 0..MR {
                        acc[r][t][k % S] = _mm512_dpbusd_epi32(acc[r][t][k % S], c[r], av);
                    }
                }
            }
        }
        let mut out = [[0i32; NT]; MR];
        for r in 0..MR {
            for t in 0..NT {
                let v = acc[r][t][1..]
                    .iter()
                    .fold(acc[r][t][0], |a, &b| _mm512_add_epi32(a, b));
                out[r][t] = _mm512_reduce_add_epi32(v);
            }
        }
        out
    }

    fn store_pair<const NT: usize>(s: [[i32; NT]; 2], isum: &mut [[i32; ROW_TILE]; 8], ri: usize) {
        for (i, sums) in s.iter().enumerate() {
            for (t, &v) in sums.iter().enumerate() {
                isum[t][ri + i] = v;
            }
        }
    }

    /// sum(code * q) over a trailing group of 128 in natural order.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn half_total_avx512(w: *const u8, a: *const i8) -> i32 {
        let mask = _mm256_set1_epi8(3);
        let wv = _mm256_loadu_si256(w as *const _);
        let mut acc = _mm256_setzero_si256();
        for k in 0..4 {
            let ck = _mm256_and_si256(_mm256_srl_epi16(wv, _mm_cvtsi32_si128(2 * k)), mask);
            let av = _mm256_loadu_si256(a.add(32 * k as usize) as *const _);
            acc = _mm256_dpbusd_epi32(acc, ck, av);
        }
        hsum256_epi32(acc)
    }

    /// Row tiles x token tiles: every row pair of a tile through `tile_totals_avx512` (single
    /// tokens and a last odd row through `row_totals_avx512`), the tile's sums finished and
    /// stored a token at a time.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL and VNNI; `out` holds rows `rows` of every token, written
    /// by this caller alone.
    pub unsafe fn totals_avx512(
        m: &TernaryMat,
        act: &ActBuf,
        rows: Range<usize>,
        info: &dyn Fn(usize) -> TokenInfo,
        out: &Out,
    ) {
        let codes = m.codes().as_ptr();
        let rb = m.row_bytes();
        let nb = m.cols / QK;
        let tail = !m.cols.is_multiple_of(QK);
        let mut isum = [[0i32; ROW_TILE]; 8];
        let mut r0 = rows.start;
        while r0 < rows.end {
            let r1 = (r0 + ROW_TILE).min(rows.end);
            token_tiles(act.n, |t0, len| {
                // SAFETY: rows r..r+MR lie inside the codes; token pointers address whole rows
                // of `act`; AVX-512 VNNI is present (the caller's promise).
                let w = |r: usize| unsafe { codes.add(r * rb) };
                let mut r = r0;
                while r < r1 {
                    if len > 1 && r + 2 <= r1 {
                        let ws = [w(r), w(r + 1)];
                        let q8 = token_ptrs::<8>;
                        let q4 = token_ptrs::<4>;
                        match len {
                            // SAFETY: as above.
                            8 => store_pair(
                                unsafe { tile_totals_avx512::<2, 8, 1>(ws, nb, q8(act, t0)) },
                                &mut isum,
                                r - r0,
                            ),
                            // SAFETY: as above.
                            _ => store_pair(
                                unsafe { tile_totals_avx512::<2, 4, 2>(ws, nb, q4(act, t0)) },
                                &mut isum,
                                r - r0,
                            ),
                        }
                        if tail {
                            for i in 0..2 {
                                for (t, sums) in isum.iter_mut().enumerate().take(len) {
                                    // SAFETY: the trailing 32 bytes of row r + i and the last
                                    // 128 activations of token t0 + t.
                                    sums[r + i - r0] += unsafe {
                                        half_total_avx512(
                                            w(r + i).add(nb * 64),
                                            act.token(t0 + t).as_ptr().add(nb * QK),
                                        )
                                    };
                                }
                            }
                        }
                        r += 2;
                    } else {
                        for t in t0..t0 + len {
                            let s =
                                unsafe { row_totals_avx512::<1>(w(r), m.cols, token_ptrs(act, t)) };
                            isum[t - t0][r - r0] = s[0];
                        }
                        r += 1;
                    }
                }
                for (t, sums) in isum.iter().enumerate().take(len) {
                    // SAFETY: rows r0..r1 of token t0 + t belong to this caller.
                    let dst = unsafe { out.rows(t0 + t, r0, r1 - r0) };
                    finish_rows(m.scale, &sums[..r1 - r0], &info(t0 + t), dst);
                }
            });
            r0 = r1;
        }
    }

    /// The Q8_K dot of `q8k_row_scalar` for NT tokens, bit for bit: dpbusd lane L of a
    /// 64-byte step holds values 4L..4L+3 of a 32-value chunk of group A (L < 8) or B (L >= 8),
    /// so the reference's lane u is lane u + lane u + 8.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn row_blocks_avx512<const NT: usize>(
        w: *const u8,
        w_d: *const f32,
        nb: usize,
        q: [*const i8; NT],
        a_d: [*const f32; NT],
        a_corr: [*const i32; NT],
    ) -> [f32; NT] {
        let mask = _mm512_set1_epi8(3);
        let mut accf = [_mm256_setzero_ps(); NT];
        for b in 0..nb {
            let wv = _mm512_loadu_si512(w.add(b * 64) as *const _);
            let c = [
                _mm512_and_si512(wv, mask),
                _mm512_and_si512(_mm512_srli_epi16(wv, 2), mask),
                _mm512_and_si512(_mm512_srli_epi16(wv, 4), mask),
                _mm512_and_si512(_mm512_srli_epi16(wv, 6), mask),
            ];
            let wd = *w_d.add(b);
            for t in 0..NT {
                let a = q[t].add(b * QK);
                // Two chains of two dpbusd each, added.
                let mut acc0 = _mm512_setzero_si512();
                let mut acc1 = _mm512_setzero_si512();
                for (k, ck) in c.iter().enumerate() {
                    let av = _mm512_loadu_si512(a.add(64 * k) as *const _);
                    if k & 1 == 0 {
                        acc0 = _mm512_dpbusd_epi32(acc0, *ck, av);
                    } else {
                        acc1 = _mm512_dpbusd_epi32(acc1, *ck, av);
                    }
                }
                let acc = _mm512_add_epi32(acc0, acc1);
                let lanes = _mm256_add_epi32(
                    _mm512_castsi512_si256(acc),
                    _mm512_extracti64x4_epi64(acc, 1),
                );
                let corr = _mm256_loadu_si256(a_corr[t].add(b * 8) as *const _);
                let lanes = _mm256_sub_epi32(lanes, corr);
                let d = _mm256_set1_ps(*a_d[t].add(b) * wd);
                accf[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), d, accf[t]);
            }
        }
        let mut out = [0f32; NT];
        for t in 0..NT {
            out[t] = hsum8_avx(accf[t]);
        }
        out
    }

    fn block_ptrs<const NT: usize>(
        act: &ActBuf,
        t0: usize,
        nb: usize,
    ) -> ([*const i8; NT], [*const f32; NT], [*const i32; NT]) {
        (
            token_ptrs(act, t0),
            std::array::from_fn(|i| act.block_d[(t0 + i) * nb..].as_ptr()),
            std::array::from_fn(|i| act.lane_corr[(t0 + i) * nb * 8..].as_ptr()),
        )
    }

    /// The Q8_K dot of `q8k_row_scalar` for MR rows against NP pairs of tokens (the prefill
    /// micro-kernel), bit for bit. Per block, a pair's two tokens meet in one vector: lanes 0..8
    /// of token 2p's and 2p+1's dpbusd sums side by side plus the same of lanes 8..16 gives
    /// the reference's eight lanes of both tokens, so the correction (folded into the starting
    /// value), conversion, scale and fma run once per pair instead of once per token.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn tile_blocks_avx512<const MR: usize, const NP: usize>(
        w: [*const u8; MR],
        w_d: [*const f32; MR],
        nb: usize,
        q: [[*const i8; 2]; NP],
        neg_corr: [[*const i32; 2]; NP],
        d_pairs: [*const f32; NP],
    ) -> [[[f32; 2]; NP]; MR] {
        let lo = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        let hi = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
        let mut accf = [[_mm512_setzero_ps(); NP]; MR];
        for b in 0..nb {
            let c: [[__m512i; 4]; MR] = std::array::from_fn(|r| {
                let wv = _mm512_loadu_si512(w[r].add(b * 64) as *const _);
                std::array::from_fn(|k| unpack_avx512(wv, k))
            });
            let wd: [__m512; MR] = std::array::from_fn(|r| _mm512_set1_ps(*w_d[r].add(b)));
            for p in 0..NP {
                let start = |h: usize| {
                    _mm512_zextsi256_si512(
                        _mm256_loadu_si256(neg_corr[p][h].add(b * 8) as *const _),
                    )
                };
                let mut acc = [[start(0), start(1)]; MR];
                for (k, _) in c[0].iter().enumerate() {
                    for h in 0..2 {
                        let av = _mm512_loadu_si512(q[p][h].add(b * QK + 64 * k) as *const _);
                        for r in 0..MR {
                            acc[r][h] = _mm512_dpbusd_epi32(acc[r][h], c[r][k], av);
                        }
                    }
                }
                let da = _mm512_loadu_ps(d_pairs[p].add(b * 16));
                for r in 0..MR {
                    let lanes = _mm512_add_epi32(
                        _mm512_permutex2var_epi32(acc[r][0], lo, acc[r][1]),
                        _mm512_permutex2var_epi32(acc[r][0], hi, acc[r][1]),
                    );
                    let d = _mm512_mul_ps(da, wd[r]);
                    accf[r][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes), d, accf[r][p]);
                }
            }
        }
        let mut out = [[[0f32; 2]; NP]; MR];
        for r in 0..MR {
            for p in 0..NP {
                let v = accf[r][p];
                let upper = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
                out[r][p] = [hsum8_avx(_mm512_castps512_ps256(v)), hsum8_avx(upper)];
            }
        }
        out
    }

    /// The Q8_K dot of `q8k_row_scalar` for two rows against one token (decode), bit for bit:
    /// as `tile_blocks_avx512` with the rows paired instead of tokens (lanes of row r, then of
    /// row r + 1, in one vector per block).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn pair_rows_blocks_avx512(
        w: [*const u8; 2],
        w_d: [*const f32; 2],
        nb: usize,
        q: *const i8,
        a_d: *const f32,
        neg_corr: *const i32,
    ) -> [f32; 2] {
        let lo = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        let hi = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
        let mut accf = _mm512_setzero_ps();
        for b in 0..nb {
            let wv = [
                _mm512_loadu_si512(w[0].add(b * 64) as *const _),
                _mm512_loadu_si512(w[1].add(b * 64) as *const _),
            ];
            // Decode streams every weight once: ask for the lines 4 KiB ahead of both rows
            // (measured +25% decode on this machine; the hardware prefetcher alone lags).
            _mm_prefetch::<_MM_HINT_T0>(w[0].add(b * 64 + PREFETCH) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(w[1].add(b * 64 + PREFETCH) as *const i8);
            let start = _mm512_zextsi256_si512(_mm256_loadu_si256(neg_corr.add(b * 8) as *const _));
            // Two chains per row (even and odd k) so the dpbusd latencies overlap.
            let mut acc = [[start, _mm512_setzero_si512()]; 2];
            for k in 0..4 {
                let av = _mm512_loadu_si512(q.add(b * QK + 64 * k) as *const _);
                for r in 0..2 {
                    acc[r][k & 1] = _mm512_dpbusd_epi32(acc[r][k & 1], unpack_avx512(wv[r], k), av);
                }
            }
            let a0 = _mm512_add_epi32(acc[0][0], acc[0][1]);
            let a1 = _mm512_add_epi32(acc[1][0], acc[1][1]);
            let lanes = _mm512_add_epi32(
                _mm512_permutex2var_epi32(a0, lo, a1),
                _mm512_permutex2var_epi32(a0, hi, a1),
            );
            let da = _mm512_set1_ps(*a_d.add(b));
            let wd = _mm512_mask_blend_ps(
                0xff00,
                _mm512_set1_ps(*w_d[0].add(b)),
                _mm512_set1_ps(*w_d[1].add(b)),
            );
            let d = _mm512_mul_ps(da, wd);
            accf = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes), d, accf);
        }
        let upper = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(accf)));
        [hsum8_avx(_mm512_castps512_ps256(accf)), hsum8_avx(upper)]
    }

    /// Token, correction and pair-scale pointers of the NP pairs from token t0 (even).
    #[allow(clippy::type_complexity)]
    fn pair_ptrs<const NP: usize>(
        act: &ActBuf,
        t0: usize,
        nb: usize,
    ) -> (
        [[*const i8; 2]; NP],
        [[*const i32; 2]; NP],
        [*const f32; NP],
    ) {
        (
            std::array::from_fn(|p| std::array::from_fn(|h| act.token(t0 + 2 * p + h).as_ptr())),
            std::array::from_fn(|p| {
                std::array::from_fn(|h| act.neg_corr[(t0 + 2 * p + h) * nb * 8..].as_ptr())
            }),
            std::array::from_fn(|p| act.d_pairs[(t0 / 2 + p) * nb * 16..].as_ptr()),
        )
    }

    fn store_blocks<const MR: usize, const NP: usize>(
        y: [[[f32; 2]; NP]; MR],
        tile: &mut [[f32; ROW_TILE]; 8],
        ri: usize,
    ) {
        for (i, pairs) in y.iter().enumerate() {
            for (p, v) in pairs.iter().enumerate() {
                tile[2 * p][ri + i] = v[0];
                tile[2 * p + 1][ri + i] = v[1];
            }
        }
    }

    /// # Safety
    /// The CPU has AVX-512 F/BW/VL and VNNI; `out` holds rows `rows` of every token, written
    /// by this caller alone; `act` is in Q8K mode.
    pub unsafe fn blocks_avx512(m: &TernaryMat, act: &ActBuf, rows: Range<usize>, out: &Out) {
        let codes = m.codes().as_ptr();
        let rb = m.row_bytes();
        let nb = m.cols / QK;
        let mut tile = [[0f32; ROW_TILE]; 8];
        let mut r0 = rows.start;
        while r0 < rows.end {
            let r1 = (r0 + ROW_TILE).min(rows.end);
            token_tiles(act.n, |t0, len| {
                // SAFETY (every kernel call below): rows r, r + 1 and their scales lie inside
                // the matrix; token t0's tile (t0 even for tiles of 4 and 8) lies inside `act`;
                // AVX-512 VNNI is present (the caller's promise).
                let w = |r: usize| unsafe { codes.add(r * rb) };
                let wd = |r: usize| unsafe { m.block_scales.as_ptr().add(r * nb) };
                let mut r = r0;
                while r < r1 {
                    let two = r + 2 <= r1;
                    let ri = r - r0;
                    match (len, two) {
                        (8, true) => {
                            let (q, c, d) = pair_ptrs::<4>(act, t0, nb);
                            let y = unsafe {
                                tile_blocks_avx512::<2, 4>(
                                    [w(r), w(r + 1)],
                                    [wd(r), wd(r + 1)],
                                    nb,
                                    q,
                                    c,
                                    d,
                                )
                            };
                            store_blocks(y, &mut tile, ri);
                        }
                        (8, false) => {
                            let (q, c, d) = pair_ptrs::<4>(act, t0, nb);
                            let y =
                                unsafe { tile_blocks_avx512::<1, 4>([w(r)], [wd(r)], nb, q, c, d) };
                            store_blocks(y, &mut tile, ri);
                        }
                        (4, true) => {
                            let (q, c, d) = pair_ptrs::<2>(act, t0, nb);
                            let y = unsafe {
                                tile_blocks_avx512::<2, 2>(
                                    [w(r), w(r + 1)],
                                    [wd(r), wd(r + 1)],
                                    nb,
                                    q,
                                    c,
                                    d,
                                )
                            };
                            store_blocks(y, &mut tile, ri);
                        }
                        (4, false) => {
                            let (q, c, d) = pair_ptrs::<2>(act, t0, nb);
                            let y =
                                unsafe { tile_blocks_avx512::<1, 2>([w(r)], [wd(r)], nb, q, c, d) };
                            store_blocks(y, &mut tile, ri);
                        }
                        (_, true) => {
                            let y = unsafe {
                                pair_rows_blocks_avx512(
                                    [w(r), w(r + 1)],
                                    [wd(r), wd(r + 1)],
                                    nb,
                                    act.token(t0).as_ptr(),
                                    act.block_d[t0 * nb..].as_ptr(),
                                    act.neg_corr[t0 * nb * 8..].as_ptr(),
                                )
                            };
                            tile[0][ri..ri + 2].copy_from_slice(&y);
                        }
                        _ => {
                            for i in 0..if two { 2 } else { 1 } {
                                let (q, d, s) = block_ptrs::<1>(act, t0, nb);
                                let y = unsafe {
                                    row_blocks_avx512::<1>(w(r + i), wd(r + i), nb, q, d, s)
                                };
                                tile[0][ri + i] = y[0];
                            }
                        }
                    }
                    r += if two { 2 } else { 1 };
                }
                for (t, ys) in tile.iter().enumerate().take(len) {
                    // SAFETY: rows r0..r1 of token t0 + t belong to this caller.
                    unsafe { out.rows(t0 + t, r0, r1 - r0) }.copy_from_slice(&ys[..r1 - r0]);
                }
            });
            r0 = r1;
        }
    }

    // ---- AVX2 ----

    /// The trailing natural-order group of 128 (four products in int16: |.| <= 3072).
    #[target_feature(enable = "avx2")]
    unsafe fn half_block_avx2(w: *const u8, a: *const i8) -> __m256i {
        let mask = _mm256_set1_epi8(3);
        let wv = _mm256_loadu_si256(w as *const _);
        let mut s16 = _mm256_setzero_si256();
        for k in 0..4 {
            let c = _mm256_and_si256(_mm256_srl_epi16(wv, _mm_cvtsi32_si128(2 * k)), mask);
            let av = _mm256_loadu_si256(a.add(32 * k as usize) as *const _);
            s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(c, av));
        }
        _mm256_madd_epi16(s16, _mm256_set1_epi16(1))
    }

    /// The codes of value group k (0..4) of a 32-byte step as bytes 0..=3 (immediate shifts).
    #[inline(always)]
    unsafe fn unpack_avx2(wv: __m256i, k: usize) -> __m256i {
        let mask = _mm256_set1_epi8(3);
        match k {
            0 => _mm256_and_si256(wv, mask),
            1 => _mm256_and_si256(_mm256_srli_epi16::<2>(wv), mask),
            2 => _mm256_and_si256(_mm256_srli_epi16::<4>(wv), mask),
            _ => _mm256_and_si256(_mm256_srli_epi16::<6>(wv), mask),
        }
    }

    /// int16 sums of one whole 256-value block of row `w` against NT tokens: the block's
    /// codes are unpacked once and used for every token. Lane layout and bounds as
    /// `half_block_avx2` (eight maddubs products per token in int16: |.| <= 6144). With NT == 1 the weight
    /// stream is prefetched PREFETCH bytes ahead (decode reads every weight once).
    #[inline(always)]
    unsafe fn block_tile_avx2<const NT: usize>(
        w: *const u8,
        q: &[*const i8; NT],
        off: usize,
    ) -> [__m256i; NT] {
        if NT == 1 {
            _mm_prefetch::<_MM_HINT_T0>(w.add(PREFETCH) as *const i8);
        }
        let wa = _mm256_loadu_si256(w as *const _);
        let wb = _mm256_loadu_si256(w.add(32) as *const _);
        let mut s16 = [_mm256_setzero_si256(); NT];
        for k in 0..4 {
            let ca = unpack_avx2(wa, k);
            let cb = unpack_avx2(wb, k);
            for t in 0..NT {
                let a = q[t].add(off + 64 * k);
                let pa = _mm256_maddubs_epi16(ca, _mm256_loadu_si256(a as *const _));
                let pb = _mm256_maddubs_epi16(cb, _mm256_loadu_si256(a.add(32) as *const _));
                s16[t] = _mm256_add_epi16(s16[t], _mm256_add_epi16(pa, pb));
            }
        }
        s16
    }

    /// Whole-row integer sums sum(code * q) of row `w` for NT tokens (the totals path).
    #[target_feature(enable = "avx2")]
    unsafe fn row_totals_avx2<const NT: usize>(
        w: *const u8,
        cols: usize,
        q: [*const i8; NT],
    ) -> [i32; NT] {
        let ones = _mm256_set1_epi16(1);
        let nb = cols / QK;
        let mut acc = [_mm256_setzero_si256(); NT];
        for b in 0..nb {
            let s16 = block_tile_avx2::<NT>(w.add(b * 64), &q, b * QK);
            for t in 0..NT {
                acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(s16[t], ones));
            }
        }
        if !cols.is_multiple_of(QK) {
            for t in 0..NT {
                acc[t] =
                    _mm256_add_epi32(acc[t], half_block_avx2(w.add(nb * 64), q[t].add(nb * QK)));
            }
        }
        std::array::from_fn(|t| hsum256_epi32(acc[t]))
    }

    /// The Q8_K dot of `q8k_row_scalar` for NT tokens of one row, bit for bit: per block the
    /// same eight int32 lanes minus the lane corrections, converted and accumulated with
    /// fma(lanes, d_a * d_w, acc) per token, then the pairwise sum of the lanes.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn row_blocks_avx2<const NT: usize>(
        w: *const u8,
        w_d: *const f32,
        nb: usize,
        q: [*const i8; NT],
        a_d: [*const f32; NT],
        corr: [*const i32; NT],
    ) -> [f32; NT] {
        let ones = _mm256_set1_epi16(1);
        let mut accf = [_mm256_setzero_ps(); NT];
        for b in 0..nb {
            let s16 = block_tile_avx2::<NT>(w.add(b * 64), &q, b * QK);
            let wd = *w_d.add(b);
            for t in 0..NT {
                let c = _mm256_loadu_si256(corr[t].add(b * 8) as *const _);
                let lanes = _mm256_sub_epi32(_mm256_madd_epi16(s16[t], ones), c);
                let d = _mm256_set1_ps(*a_d[t].add(b) * wd);
                accf[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), d, accf[t]);
            }
        }
        std::array::from_fn(|t| hsum8_avx(accf[t]))
    }

    /// `row_totals_avx2` of the 2-bit or the 1.6-bit layout (`base3`) for tokens t0..t0 + NT.
    ///
    /// # Safety
    /// AVX2; `w` is a whole row of the layout, tokens t0..t0 + NT lie inside `act`.
    #[inline(always)]
    unsafe fn totals_layout<const NT: usize>(
        base3: bool,
        w: *const u8,
        cols: usize,
        act: &ActBuf,
        t0: usize,
    ) -> [i32; NT] {
        // SAFETY: as the caller promises.
        unsafe {
            if base3 {
                super::base3::x86::row_totals_avx2::<NT>(w, cols, token_ptrs(act, t0))
            } else {
                row_totals_avx2::<NT>(w, cols, token_ptrs(act, t0))
            }
        }
    }

    /// `row_blocks_avx2` of either layout for tokens t0..t0 + NT.
    ///
    /// # Safety
    /// AVX2 and FMA; `w` is a whole row of the layout and `wd` its nb block scales, tokens
    /// t0..t0 + NT lie inside `act` (Q8K mode).
    #[inline(always)]
    unsafe fn blocks_layout<const NT: usize>(
        base3: bool,
        w: *const u8,
        wd: *const f32,
        nb: usize,
        act: &ActBuf,
        t0: usize,
    ) -> [f32; NT] {
        let (q, d, c) = block_ptrs::<NT>(act, t0, nb);
        // SAFETY: as the caller promises.
        unsafe {
            if base3 {
                super::base3::x86::row_blocks_avx2::<NT>(w, wd, nb, q, d, c)
            } else {
                row_blocks_avx2::<NT>(w, wd, nb, q, d, c)
            }
        }
    }

    /// Tiles for the AVX2 paths: ROW_TILE rows at a time (their codes stay in L1), inside
    /// which tokens go 4 at a time, then 2, then 1: `f(r0..r1, t0, len)`.
    fn tiles_avx2(rows: Range<usize>, n: usize, mut f: impl FnMut(Range<usize>, usize, usize)) {
        let mut r0 = rows.start;
        while r0 < rows.end {
            let r1 = (r0 + ROW_TILE).min(rows.end);
            let mut t = 0;
            while t < n {
                let len = match n - t {
                    4.. => 4,
                    2 | 3 => 2,
                    _ => 1,
                };
                f(r0..r1, t, len);
                t += len;
            }
            r0 = r1;
        }
    }

    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn totals_avx2(
        m: &TernaryMat,
        act: &ActBuf,
        rows: Range<usize>,
        emit: &dyn Fn(usize, usize, i32),
    ) {
        let codes = m.codes().as_ptr();
        let rb = m.row_bytes();
        let base3 = m.layout == Layout::Base3;
        tiles_avx2(rows, act.n, |rs, t0, len| {
            for r in rs {
                // SAFETY: row r and tokens t0..t0 + len lie inside their buffers; AVX2 is
                // present (the caller's promise).
                let w = unsafe { codes.add(r * rb) };
                // SAFETY (the three calls): as above; the row is in the matrix's layout.
                match len {
                    4 => {
                        let s = unsafe { totals_layout::<4>(base3, w, m.cols, act, t0) };
                        s.iter().enumerate().for_each(|(i, &v)| emit(r, t0 + i, v));
                    }
                    2 => {
                        let s = unsafe { totals_layout::<2>(base3, w, m.cols, act, t0) };
                        s.iter().enumerate().for_each(|(i, &v)| emit(r, t0 + i, v));
                    }
                    _ => {
                        let s = unsafe { totals_layout::<1>(base3, w, m.cols, act, t0) };
                        emit(r, t0, s[0]);
                    }
                }
            }
        });
    }

    /// # Safety
    /// The CPU has AVX2 and FMA; `act` is in Q8K mode.
    pub unsafe fn blocks_avx2(
        m: &TernaryMat,
        act: &ActBuf,
        rows: Range<usize>,
        write: &dyn Fn(usize, usize, f32),
    ) {
        let codes = m.codes().as_ptr();
        let rb = m.row_bytes();
        let nb = m.cols / QK;
        let base3 = m.layout == Layout::Base3;
        tiles_avx2(rows, act.n, |rs, t0, len| {
            for r in rs {
                // SAFETY: row r, its block scales and tokens t0..t0 + len lie inside their
                // buffers; FMA comes with every AVX2 CPU we dispatch to (`kernels::isa`
                // requires both for Avx2).
                let w = unsafe { codes.add(r * rb) };
                let wd = unsafe { m.block_scales.as_ptr().add(r * nb) };
                // SAFETY (the three calls): as above; the row is in the matrix's layout.
                match len {
                    4 => {
                        let y = unsafe { blocks_layout::<4>(base3, w, wd, nb, act, t0) };
                        y.iter().enumerate().for_each(|(i, &v)| write(r, t0 + i, v));
                    }
                    2 => {
                        let y = unsafe { blocks_layout::<2>(base3, w, wd, nb, act, t0) };
                        y.iter().enumerate().for_each(|(i, &v)| write(r, t0 + i, v));
                    }
                    _ => {
                        let y = unsafe { blocks_layout::<1>(base3, w, wd, nb, act, t0) };
                        write(r, t0, y[0]);
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::isa::available_isas as isas;
    use crate::quant::{self, GgmlType};
    use crate::rng::SplitMix64;

    /// A random ternary matrix written in `ty` and its values (rows x cols, f32).
    fn random_mat(
        rng: &mut SplitMix64,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        fill: Option<f32>,
    ) -> (Vec<u8>, Vec<f32>) {
        let mut vals: Vec<f32> = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            let d = 0.5 + r as f32 * 0.01;
            for _ in 0..cols {
                let t = fill.unwrap_or_else(|| rng.below(3) as f32 - 1.0);
                vals.push(t * d);
            }
        }
        let bytes = match ty {
            GgmlType::I2_S => rows * cols / 4 + 32,
            _ => ty.tensor_bytes((rows * cols) as u64).unwrap() as usize,
        };
        let mut data = vec![0u8; bytes];
        match ty {
            GgmlType::I2_S => {
                // One scale per tensor: make the values share it.
                let v: Vec<f32> = vals
                    .iter()
                    .map(|&v| v.signum() * (v != 0.0) as i32 as f32)
                    .collect();
                quant::i2_s::quantize(&v, &mut data);
            }
            _ => quant::quantize(ty, &vals, &mut data).unwrap(),
        }
        let mut deq = vec![0f32; rows * cols];
        quant::dequantize(ty, &data, &mut deq).unwrap();
        (data, deq)
    }

    fn pack(ty: GgmlType, data: &[u8], rows: usize, cols: usize) -> TernaryMat {
        match ty {
            GgmlType::I2_S => TernaryMat::from_i2_s(data, rows, cols),
            GgmlType::TQ2_0 => TernaryMat::from_tq2_0(data, rows, cols),
            _ => TernaryMat::from_tq1_0(data, rows, cols),
        }
    }

    fn relayout(m: TernaryMat, layout: Layout) -> TernaryMat {
        match layout {
            Layout::Bits2 => m,
            Layout::Base3 => m.into_base3(),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tq1_0_unpack_avx2_matches_scalar() {
        if !is_x86_feature_detected!("avx2") {
            return;
        }
        let mut rng = SplitMix64(17);
        // Every byte value (243..=255 are not valid base-3 digits but must decode the same).
        for k in 0..300 {
            let block: Vec<u8> = (0..54)
                .map(|i| {
                    if k < 256 && i < 52 {
                        k as u8
                    } else {
                        rng.below(256) as u8
                    }
                })
                .collect();
            let (mut want, mut got) = ([0u8; 64], [0u8; 64]);
            unpack_tq1_0(&block, &mut want);
            // SAFETY: AVX2 detected above; 54-byte block, 64-byte output.
            unsafe { unpack_tq1_0_avx2(&block, &mut got) };
            assert_eq!(got, want, "block {block:?}");
        }
    }

    #[test]
    fn packing_keeps_every_value() {
        let mut rng = SplitMix64(5);
        for (ty, layout) in [GgmlType::I2_S, GgmlType::TQ2_0, GgmlType::TQ1_0]
            .into_iter()
            .flat_map(|ty| [(ty, Layout::Bits2), (ty, Layout::Base3)])
        {
            let (rows, cols) = (5, 512 + 128 * (ty == GgmlType::I2_S) as usize);
            let (data, deq) = random_mat(&mut rng, ty, rows, cols, None);
            let m = relayout(pack(ty, &data, rows, cols), layout);
            assert_eq!(m.layout(), layout);
            for r in 0..rows {
                for e in 0..cols {
                    let w = deq[r * cols + e];
                    let code = m.code(r, e) as i32 - 1;
                    assert_eq!(
                        code as f32,
                        w.signum() * (w != 0.0) as i32 as f32,
                        "{ty} r{r} e{e}"
                    );
                }
            }
        }
    }

    /// The kernels' results against the legacy scalar matmul on the original bytes.
    fn check(ty: GgmlType, rows: usize, cols: usize, n: usize, fill: Option<f32>, act: &[f32]) {
        let mut rng = SplitMix64(rows as u64 * 31 + cols as u64);
        let (data, _) = random_mat(&mut rng, ty, rows, cols, fill);
        let mats = [
            pack(ty, &data, rows, cols),
            pack(ty, &data, rows, cols).into_base3(),
        ];
        assert_eq!(mats[1].layout(), Layout::Base3);
        let w = crate::kernels::MatRef {
            ty,
            rows,
            cols,
            data: &data,
        };
        let modes: &[(ActMode, crate::kernels::Activations)] = match ty {
            GgmlType::I2_S => &[(ActMode::PerToken, crate::kernels::Activations::PerTokenInt8)],
            _ => &[
                (ActMode::PerToken, crate::kernels::Activations::PerTokenInt8),
                (ActMode::Q8K, crate::kernels::Activations::ByWeightType),
            ],
        };
        for &(mode, legacy) in modes {
            let mut want = vec![0f32; n * rows];
            crate::kernels::matmul_scalar(&w, legacy, act, n, &mut want).unwrap();
            let mut buf = ActBuf::default();
            buf.quantize(mode, act, n, cols, 2);
            for (m, isa) in mats
                .iter()
                .flat_map(|m| isas().into_iter().map(move |i| (m, i)))
            {
                let layout = m.layout();
                for threads in [1, 2] {
                    let mut got = vec![f32::NAN; n * rows];
                    matmul_isa(isa, m, &buf, &mut got, rows, threads);
                    for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            g.to_bits() == e.to_bits(),
                            "{ty} {layout:?} {mode:?} {isa:?} t{threads} {rows}x{cols} n{n} out {i}: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }

    fn random_acts(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.normal()).collect()
    }

    #[test]
    fn kernels_match_reference_random() {
        let mut rng = SplitMix64(11);
        for ty in [GgmlType::I2_S, GgmlType::TQ2_0, GgmlType::TQ1_0] {
            for &(rows, cols) in &[(1, 256), (17, 512), (33, 768), (40, 2560)] {
                for n in [1, 2, 3, 4, 5, 9, 13, 16, 35] {
                    let x = random_acts(&mut rng, n * cols);
                    check(ty, rows, cols, n, None, &x);
                }
            }
        }
        // I2_S allows odd multiples of 128.
        for n in [1, 5, 8] {
            let x = random_acts(&mut rng, n * 384);
            check(GgmlType::I2_S, 19, 384, n, None, &x);
            let x = random_acts(&mut rng, n * 128);
            check(GgmlType::I2_S, 3, 128, n, None, &x);
        }
    }

    #[test]
    fn round_to_i8_is_round_half_even_then_clamp() {
        let mut xs = vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            126.5,
            127.5,
            128.0,
            -127.5,
            -128.5,
            -129.0,
            0.49999997,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            1e-45,
            4194304.5,
            8388609.0,
        ];
        let mut rng = SplitMix64(3);
        xs.extend((0..10_000).map(|_| rng.normal() * 100.0));
        for x in xs {
            let want = x.round_ties_even().clamp(-128.0, 127.0) as i8;
            assert_eq!(round_to_i8(x), want, "{x}");
        }
        let v: Vec<f32> = (0..37).map(|i| (i as f32 - 20.0) * 0.37).collect();
        assert_eq!(abs_max(&v), v.iter().fold(0f32, |m, x| m.max(x.abs())));
        assert_eq!(abs_max(&[f32::NAN, -3.0]), 3.0);
    }

    #[test]
    fn raw_extreme_activations_are_exact() {
        // -128 and 127 against all -1 / all +1 / code 3 weights, on every ISA: the exact sum.
        for cols in [2560, 6912, 384] {
            let rows = 16;
            for wcode in [0u8, 2, 3] {
                let byte = wcode | (wcode << 2) | (wcode << 4) | (wcode << 6);
                let mut data = vec![byte; rows * cols / 4 + 32];
                let tail = rows * cols / 4;
                data[tail..tail + 4].copy_from_slice(&1.0f32.to_le_bytes());
                // I2_S reverses bit pairs; a byte of four equal codes is the same either way.
                let m2 = TernaryMat::from_i2_s(&data, rows, cols);
                let m3 = TernaryMat::from_i2_s(&data, rows, cols).into_base3();
                // Code 3 (weight +2) has no base-3 form: that matrix stays in 2 bits.
                let want_layout = if wcode == 3 {
                    Layout::Bits2
                } else {
                    Layout::Base3
                };
                assert_eq!(m3.layout(), want_layout);
                for (qv, n) in [(-128i8, 9), (127, 9), (-128, 33), (127, 17), (-128, 1)] {
                    let q = vec![qv; n * cols];
                    let mut act = ActBuf::default();
                    act.set_raw_per_token(&q, n, cols);
                    let want = ((wcode as i64 - 1) * qv as i64 * cols as i64) as f32;
                    for (m, isa) in [&m2, &m3]
                        .iter()
                        .flat_map(|m| isas().into_iter().map(move |i| (m, i)))
                    {
                        let mut out = vec![0f32; n * rows];
                        matmul_isa(isa, m, &act, &mut out, rows, 2);
                        assert!(
                            out.iter().all(|&v| v == want),
                            "{isa:?} {:?} {cols} code {wcode} q {qv}: {} vs {want}",
                            m.layout(),
                            out[0]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn kernels_match_reference_extremes() {
        // All -1 / all +1 weights against activations that quantize to -128 / 127 / mixed:
        // the largest sums an int16 accumulator could wrap on.
        for fill in [Some(-1.0), Some(1.0), None] {
            for ty in [GgmlType::I2_S, GgmlType::TQ2_0, GgmlType::TQ1_0] {
                for &(rows, cols) in &[(16, 2560), (3, 6912)] {
                    let n = 9;
                    let mut x = Vec::new();
                    for t in 0..n {
                        for e in 0..cols {
                            x.push(match t % 3 {
                                0 => -1.0, // -127 per token, and Q8_K's -127
                                1 => {
                                    if e == 0 {
                                        1.0
                                    } else {
                                        -1.0 - 1.0 / 127.0
                                    }
                                } // -128s
                                _ => {
                                    if e % 2 == 0 {
                                        1.0
                                    } else {
                                        -1.0
                                    }
                                }
                            });
                        }
                    }
                    check(ty, rows, cols, n, fill, &x);
                }
            }
        }
    }
}
