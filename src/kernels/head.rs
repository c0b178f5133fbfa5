//! The 4-bit output head: Q4_0 blocks (0.5625 bytes per weight, a quarter of F16's stream per
//! decoded token and half of Q8_0's), requantized at load from the stored head or taken as
//! stored, times Q8_0 activations (the reference's partner type for Q4_0).
//!
//! Every output is `kernels::dot_q4_0_q8_0` (the reference's x86 order: eight exact integer
//! lanes per block, `acc[u] += (d_w * d_x) * lane[u]` fused, `hsum8`); the AVX2 kernel keeps
//! that order, so it is bit-identical. The blocks are held split, codes [rows, cols / 2] and
//! f16 scales [rows, cols / 32] (the same bytes as Q4_0), so that the kernel reads the codes
//! of two blocks per 32-byte load and converts eight scales at once: its cost per block is
//! about half of a block-by-block loop's, which is what lets it keep up with memory.

use std::cell::RefCell;

use super::isa::{best_isa, Isa};
use super::pool::{self, SendPtr};
use crate::quant::{q4_0, q8_0};

thread_local! {
    /// The activations of the tokens of one call, reused across calls.
    static XQ: RefCell<Acts> = const {
        RefCell::new(Acts { blocks: Vec::new(), d: Vec::new(), halves: Vec::new(), sums: Vec::new() })
    };
}

/// Q8_0 activations as the kernels read them, for n tokens of nb blocks.
struct Acts {
    /// The Q8_0 blocks themselves (the scalar path).
    blocks: Vec<u8>, // [n, nb * 34]
    /// Block scales as f32.
    d: Vec<f32>, // [n, nb]
    /// Per pair of blocks (2p, 2p + 1): values 0..16 of both, then values 16..32 of both, the
    /// order of the codes' low and high nibbles in one 32-byte load.
    halves: Vec<i8>, // [n, nb.div_ceil(2) * 64]
    /// 8 x the sum of each block's lane (values 4u..4u+3): what the codes' +8 offset adds.
    sums: Vec<i32>, // [n, nb * 8]
}

/// A Q4_0 head: `rows` rows of `cols / 32` blocks, split into codes and scales.
pub struct Q4Head {
    pub rows: usize,
    pub cols: usize,
    qs: Vec<u8>, // [rows, cols / 2]: each block's 16 code bytes, as in Q4_0
    d: Vec<u16>, // [rows, cols / 32]: f16 scales
}

impl Q4Head {
    /// A head of `cols` columns (a multiple of 32) and no rows yet.
    pub fn new(cols: usize) -> Q4Head {
        assert!(cols.is_multiple_of(q4_0::BLOCK));
        Q4Head {
            rows: 0,
            cols,
            qs: Vec::new(),
            d: Vec::new(),
        }
    }

    /// The head as stored: `data` holds `rows` rows of Q4_0 blocks.
    pub fn from_blocks(data: &[u8], rows: usize, cols: usize) -> Q4Head {
        let mut h = Q4Head::new(cols);
        assert_eq!(data.len(), rows * cols / q4_0::BLOCK * q4_0::BLOCK_BYTES);
        h.reserve(rows);
        h.grow(rows);
        h.set_blocks(0, data);
        h
    }

    /// Makes room for `rows` more rows at once (one allocation, not one per appended slice).
    /// (Advising huge pages here made the Q8_0 head's load slower on this VM: 1.5 s against
    /// 1.1 s, `benches/head_rounds.sh`; the fault-time zeroing of 2 MiB pages is not free.)
    pub fn reserve(&mut self, rows: usize) {
        self.qs.reserve_exact(rows * self.cols / 2);
        self.d.reserve_exact(rows * self.cols / q4_0::BLOCK);
    }

    /// `rows` more rows of zeros; returns the index of the first.
    fn grow(&mut self, rows: usize) -> usize {
        let r0 = self.rows;
        self.rows += rows;
        self.qs.resize(self.rows * self.cols / 2, 0);
        self.d.resize(self.rows * self.cols / q4_0::BLOCK, 0);
        r0
    }

    /// Writes whole Q4_0 blocks from block index `b0` on (blocks in row order).
    fn set_blocks(&mut self, b0: usize, data: &[u8]) {
        for (i, blk) in data.chunks_exact(q4_0::BLOCK_BYTES).enumerate() {
            self.d[b0 + i] = u16::from_le_bytes([blk[0], blk[1]]);
            self.qs[(b0 + i) * 16..(b0 + i + 1) * 16].copy_from_slice(&blk[2..]);
        }
    }

    /// Row r as Q4_0 blocks (tests, the scalar reference).
    pub fn row_blocks(&self, r: usize) -> Vec<u8> {
        let nb = self.cols / q4_0::BLOCK;
        let mut out = vec![0u8; nb * q4_0::BLOCK_BYTES];
        for (b, blk) in out.chunks_exact_mut(q4_0::BLOCK_BYTES).enumerate() {
            blk[..2].copy_from_slice(&self.d[r * nb + b].to_le_bytes());
            blk[2..].copy_from_slice(&self.qs[(r * nb + b) * 16..][..16]);
        }
        out
    }

    /// Requantizes `rows` more rows and appends them; `to_f32(r, out)` writes row r of the
    /// slice as f32 values. Rows are split over the pool's threads.
    pub fn append_rows(&mut self, rows: usize, to_f32: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        self.append_with(rows, &|r, blocks| {
            let mut row = vec![0f32; blocks.len() / q4_0::BLOCK_BYTES * q4_0::BLOCK];
            to_f32(r, &mut row);
            q4_0::quantize(&row, blocks);
        });
    }

    /// Appends `rows` rows whose Q4_0 blocks `make(r, blocks)` writes, on the pool's threads.
    fn append_with(&mut self, rows: usize, make: &(dyn Fn(usize, &mut [u8]) + Sync)) {
        let nb = self.cols / q4_0::BLOCK;
        let r0 = self.grow(rows);
        let qs = SendPtr(self.qs[r0 * nb * 16..].as_mut_ptr());
        let ds = SendPtr(self.d[r0 * nb..].as_mut_ptr());
        let pool = pool::global();
        pool.run(pool.max_threads(), &|i, nt| {
            let (qs, ds) = (qs, ds);
            let mut blocks = vec![0u8; nb * q4_0::BLOCK_BYTES];
            for r in pool::split(rows, 64, i, nt) {
                make(r, &mut blocks);
                for (b, blk) in blocks.chunks_exact(q4_0::BLOCK_BYTES).enumerate() {
                    // SAFETY: row r's codes and scales are written by this thread alone (rows
                    // split disjointly), inside the lengths grown above.
                    unsafe {
                        *ds.0.add(r * nb + b) = u16::from_le_bytes([blk[0], blk[1]]);
                        std::ptr::copy_nonoverlapping(
                            blk[2..].as_ptr(),
                            qs.0.add((r * nb + b) * 16),
                            16,
                        );
                    }
                }
            }
        });
    }

    /// Requantizes `rows` more F16 rows (`w`: rows x cols, little-endian) and appends them:
    /// `append_rows` on the F16 values, vectorized where the CPU allows (the same bytes).
    pub fn append_f16(&mut self, w: &[u8], rows: usize) {
        let cols = self.cols;
        assert!(w.len() >= rows * cols * 2);
        let to_f32 = |r: usize, out: &mut [f32]| {
            for (o, b) in out.iter_mut().zip(w[r * cols * 2..].chunks_exact(2)) {
                *o = crate::quant::float::f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        };
        #[cfg(target_arch = "x86_64")]
        if best_isa() != Isa::Scalar {
            self.append_with(rows, &|r, blocks| {
                // SAFETY: AVX2 and F16C come with every non-scalar ISA (`kernels::isa`); row
                // r's F16 values are inside `w` (asserted), `blocks` holds the row's blocks.
                unsafe { x86::q4_0_row_avx2(&w[r * cols * 2..(r + 1) * cols * 2], blocks) }
            });
            return;
        }
        self.append_rows(rows, &to_f32);
    }

    pub fn bytes(&self) -> usize {
        self.qs.len() + 2 * self.d.len()
    }

    /// out[t * out_stride + r] = Q4_0 row r . Q8_0(x_t), on the CPU's best level.
    pub fn matmul(&self, x: &[f32], n: usize, out: &mut [f32], out_stride: usize, threads: usize) {
        self.matmul_isa(best_isa(), x, n, out, out_stride, threads)
    }

    pub fn matmul_isa(
        &self,
        isa: Isa,
        x: &[f32],
        n: usize,
        out: &mut [f32],
        out_stride: usize,
        threads: usize,
    ) {
        let (rows, cols) = (self.rows, self.cols);
        assert!(x.len() >= n * cols);
        assert!(n == 0 || out.len() >= (n - 1) * out_stride + rows);
        let nb = cols / q8_0::BLOCK;
        let ab = nb * q8_0::BLOCK_BYTES;
        XQ.with(|cell| {
            let mut guard = cell.borrow_mut();
            let acts = &mut *guard;
            acts.prepare(&x[..n * cols], n, nb);
            let acts = &*acts;
            let out_ptr = SendPtr(out.as_mut_ptr());
            pool::global().run(threads, &|i, nt| {
                let rows = pool::split(rows, 16, i, nt);
                let out = out_ptr;
                // SAFETY: this thread writes only its rows (disjoint); `out` is long enough.
                let write = |r: usize, t: usize, v: f32| unsafe {
                    *out.0.add(t * out_stride + r) = v;
                };
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the ISA was detected before being chosen (AVX2, FMA and F16C come
                    // with every vector level, `kernels::isa`).
                    Isa::Avx2 | Isa::Avx512Vnni | Isa::Amx => unsafe {
                        x86::q4_avx2(self, acts, n, rows, &write)
                    },
                    _ => {
                        for r in rows {
                            let w = self.row_blocks(r);
                            for (t, a) in acts.blocks.chunks_exact(ab).take(n).enumerate() {
                                write(r, t, super::dot_q4_0_q8_0(&w, a));
                            }
                        }
                    }
                }
            });
        });
    }
}

/// The head cache (`model::head_cache`) holds it as its two arrays.
impl crate::model::head_cache::CachedHead for Q4Head {
    /// A head of `rows` rows of zeros, to be filled through `byte_parts_mut` (the head cache).
    fn zeroed(rows: usize, cols: usize) -> Self {
        assert!(cols.is_multiple_of(q4_0::BLOCK));
        // vec![0; n]: zeroed pages from the allocator, not written twice.
        Self {
            rows,
            cols,
            qs: vec![0; rows * cols / 2],
            d: vec![0; rows * cols / q4_0::BLOCK],
        }
    }

    /// The codes and the f16 scales as bytes (native order), for the head cache.
    fn byte_parts(&self) -> [&[u8]; 2] {
        // SAFETY: u16 is plain data; the view covers exactly the initialized scales.
        let d =
            unsafe { std::slice::from_raw_parts(self.d.as_ptr() as *const u8, self.d.len() * 2) };
        [&self.qs, d]
    }

    /// `byte_parts`, writable: any bytes are valid codes and u16 scales.
    fn byte_parts_mut(&mut self) -> [&mut [u8]; 2] {
        let n = self.d.len() * 2;
        // SAFETY: every bit pattern is a valid u16; the view covers exactly the scales and
        // is disjoint from the codes, both under one exclusive borrow of self.
        let d = unsafe { std::slice::from_raw_parts_mut(self.d.as_mut_ptr() as *mut u8, n) };
        [&mut self.qs, d]
    }
}

impl Acts {
    /// Quantizes n tokens of nb blocks to Q8_0 and lays them out for the kernels.
    fn prepare(&mut self, x: &[f32], n: usize, nb: usize) {
        let (ab, pairs) = (nb * q8_0::BLOCK_BYTES, nb.div_ceil(2));
        self.blocks.resize(n * ab, 0);
        self.d.resize(n * nb, 0.0);
        self.halves.resize(n * pairs * 64, 0);
        self.sums.resize(n * nb * 8, 0);
        for (t, xt) in x.chunks_exact(nb * q8_0::BLOCK).enumerate() {
            let blocks = &mut self.blocks[t * ab..(t + 1) * ab];
            super::quantize_q8_0(xt, blocks);
            let halves = &mut self.halves[t * pairs * 64..(t + 1) * pairs * 64];
            halves.fill(0);
            for (b, blk) in blocks.chunks_exact(q8_0::BLOCK_BYTES).enumerate() {
                self.d[t * nb + b] =
                    crate::quant::float::f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
                let q = &blk[2..];
                let (p, k) = (b / 2, b % 2);
                for j in 0..16 {
                    halves[p * 64 + 16 * k + j] = q[j] as i8;
                    halves[p * 64 + 32 + 16 * k + j] = q[16 + j] as i8;
                }
                for u in 0..8 {
                    let s: i32 = q[4 * u..4 * u + 4].iter().map(|&v| v as i8 as i32).sum();
                    self.sums[(t * nb + b) * 8 + u] = 8 * s;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::kernels::dot::hsum8_avx;
    use crate::quant::q4_0;
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// One F16 row requantized to Q4_0 exactly as `q4_0::quantize`, eight values per step:
    /// the first value of largest magnitude found through a mask of |v| == max|v|, codes as
    /// `min(15, trunc(v * (1/d) + 8.5))` (multiply, then add: no fused step, as the scalar
    /// rule). A block holding NaN, or whose max or inverse scale is not finite, goes through
    /// `q4_0::quantize` itself.
    ///
    /// # Safety
    /// The CPU has AVX2 and F16C; `w` holds out.len() / 18 * 32 F16 values.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn q4_0_row_avx2(w: &[u8], out: &mut [u8]) {
        use crate::quant::float::f32_to_f16;
        let nb = out.len() / q4_0::BLOCK_BYTES;
        assert!(w.len() >= nb * 64);
        let sign = _mm256_set1_ps(-0.0);
        let half8 = _mm256_set1_ps(8.5);
        let fifteen = _mm256_set1_epi32(15);
        for (b, blk) in out.chunks_exact_mut(q4_0::BLOCK_BYTES).enumerate() {
            let v: [__m256; 4] = std::array::from_fn(|i| {
                _mm256_cvtph_ps(_mm_loadu_si128(
                    w.as_ptr().add((b * 32 + 8 * i) * 2) as *const _
                ))
            });
            let a: [__m256; 4] = std::array::from_fn(|i| _mm256_andnot_ps(sign, v[i]));
            let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
            let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps(m2, m2, 1)));
            let nan = a
                .iter()
                .any(|&x| _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(x, x)) != 0);
            let mut vals = [0f32; 32];
            for (i, x) in v.iter().enumerate() {
                _mm256_storeu_ps(vals[8 * i..].as_mut_ptr(), *x);
            }
            let am = _mm256_set1_ps(amax);
            let hits = a.iter().enumerate().fold(0u32, |acc, (i, &x)| {
                acc | ((_mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(x, am)) as u32) << (8 * i))
            });
            // amax 0: no strict improvement over 0 in the scalar rule, so max stays 0.
            let max = if amax == 0.0 {
                0.0
            } else {
                vals[hits.trailing_zeros() as usize]
            };
            let d = max / -8.0;
            let id = if d == 0.0 { 0.0 } else { 1.0 / d };
            if nan || !amax.is_finite() || !id.is_finite() {
                q4_0::quantize(&vals, blk);
                continue;
            }
            blk[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
            let idv = _mm256_set1_ps(id);
            let q: [__m256i; 4] = std::array::from_fn(|i| {
                let t = _mm256_add_ps(_mm256_mul_ps(v[i], idv), half8);
                _mm256_min_epi32(_mm256_cvttps_epi32(t), fifteen)
            });
            // byte j: value j (low nibble) | value j + 16 (high nibble)
            let c0 = _mm256_or_si256(q[0], _mm256_slli_epi32(q[2], 4));
            let c1 = _mm256_or_si256(q[1], _mm256_slli_epi32(q[3], 4));
            let p16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(c0, c1), 0b11_01_10_00);
            let p8 = _mm_packus_epi16(
                _mm256_castsi256_si128(p16),
                _mm256_extracti128_si256(p16, 1),
            );
            _mm_storeu_si128(blk[2..].as_mut_ptr() as *mut _, p8);
        }
    }

    /// Q4_0 rows . Q8_0 tokens in `dot_q4_0_q8_0`'s order, four rows per pass (the
    /// activations loaded once for the four), the codes prefetched four rows ahead. Per pair of
    /// blocks one 32-byte load of codes: its low nibbles times `halves`' first 32 values, its
    /// high nibbles times the next 32 (`vpmaddubsw`, codes unsigned 0..15: no wrap), widened
    /// (`vpmaddwd`), the 128-bit halves regrouped per block (`vperm2i128`) into the reference's
    /// eight lanes, less 8 x the activations' lane sums (so (code - 8) * a, exact); then per
    /// block `acc += (d_w * d_x) * lanes` fused, the eight weight scales of eight blocks
    /// converted and multiplied by the activation scales at once.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `acts` was prepared for n tokens of this head's width.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn q4_avx2(
        h: &super::Q4Head,
        acts: &super::Acts,
        n: usize,
        rows: Range<usize>,
        write: &dyn Fn(usize, usize, f32),
    ) {
        const R: usize = 4;
        let nb = h.cols / 32;
        let pairs = nb.div_ceil(2);
        assert!(h.qs.len() >= rows.end * nb * 16 && h.d.len() >= rows.end * nb);
        assert!(acts.halves.len() >= n * pairs * 64 && acts.sums.len() >= n * nb * 8);
        let ones = _mm256_set1_epi16(1);
        let low = _mm256_set1_epi8(15);
        let mut r = rows.start;
        while r < rows.end {
            let nr = (rows.end - r).min(R);
            // Rows past the end repeat the last one (computed, not written).
            let row = |i: usize| r + i.min(nr - 1);
            let w: [*const u8; R] = std::array::from_fn(|i| h.qs.as_ptr().add(row(i) * nb * 16));
            let wd: [*const u16; R] = std::array::from_fn(|i| h.d.as_ptr().add(row(i) * nb));
            for t in 0..n {
                let halves = acts.halves.as_ptr().add(t * pairs * 64);
                let sums = acts.sums.as_ptr().add(t * nb * 8);
                let xd = &acts.d[t * nb..(t + 1) * nb];
                let mut acc = [_mm256_setzero_ps(); R];
                // Each row's d_w * d_x for the current eight blocks.
                let mut scales = [[0f32; 8]; R];
                for b in (0..nb).step_by(2) {
                    if b % 8 == 0 {
                        for i in 0..R {
                            if nb - b >= 8 {
                                let dw = _mm256_cvtph_ps(_mm_loadu_si128(wd[i].add(b) as *const _));
                                let dx = _mm256_loadu_ps(xd.as_ptr().add(b));
                                _mm256_storeu_ps(scales[i].as_mut_ptr(), _mm256_mul_ps(dw, dx));
                            } else {
                                for j in 0..nb - b {
                                    scales[i][j] =
                                        crate::quant::float::f16_to_f32(*wd[i].add(b + j))
                                            * xd[b + j];
                                }
                            }
                        }
                    }
                    let two = b + 1 < nb;
                    let a_lo = _mm256_loadu_si256(halves.add(b * 32) as *const _);
                    let a_hi = _mm256_loadu_si256(halves.add(b * 32 + 32) as *const _);
                    let s0 = _mm256_loadu_si256(sums.add(b * 8) as *const _);
                    for i in 0..R {
                        let p = w[i].add(b * 16);
                        if t == 0 && b % 4 == 0 {
                            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(R * nb * 16) as *const i8);
                        }
                        let v = if two {
                            _mm256_loadu_si256(p as *const _)
                        } else {
                            _mm256_castsi128_si256(_mm_loadu_si128(p as *const _))
                        };
                        let lo = _mm256_and_si256(v, low);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                        let plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a_lo), ones);
                        let phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a_hi), ones);
                        let l0 = _mm256_sub_epi32(_mm256_permute2x128_si256(plo, phi, 0x20), s0);
                        let sc = &scales[i][b % 8..];
                        acc[i] =
                            _mm256_fmadd_ps(_mm256_set1_ps(sc[0]), _mm256_cvtepi32_ps(l0), acc[i]);
                        if two {
                            let s1 = _mm256_loadu_si256(sums.add(b * 8 + 8) as *const _);
                            let l1 =
                                _mm256_sub_epi32(_mm256_permute2x128_si256(plo, phi, 0x31), s1);
                            acc[i] = _mm256_fmadd_ps(
                                _mm256_set1_ps(sc[1]),
                                _mm256_cvtepi32_ps(l1),
                                acc[i],
                            );
                        }
                    }
                }
                for (i, v) in acc.iter().enumerate().take(nr) {
                    write(r + i, t, hsum8_avx(*v));
                }
            }
            r += nr;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::isa::isa_available;
    use crate::rng::SplitMix64;

    #[test]
    fn q4_head_is_bit_identical_to_the_scalar_dot() {
        let mut rng = SplitMix64(41);
        for &(rows, cols) in &[(37, 2560), (5, 32), (9, 96), (7, 416)] {
            let w: Vec<f32> = (0..rows * cols).map(|_| rng.normal() * 0.05).collect();
            let mut head = Q4Head::new(cols);
            // Two appends, as the loader's slices do.
            let first = rows / 2;
            head.append_rows(first, &|r, out| out.copy_from_slice(&w[r * cols..][..cols]));
            head.append_rows(rows - first, &|r, out| {
                out.copy_from_slice(&w[(first + r) * cols..][..cols])
            });
            let mut blocks = vec![0u8; rows * cols / 32 * q4_0::BLOCK_BYTES];
            q4_0::quantize(&w, &mut blocks);
            let held: Vec<u8> = (0..rows).flat_map(|r| head.row_blocks(r)).collect();
            assert_eq!(held, blocks);
            let n = 3;
            let x: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
            let mut scalar = vec![0f32; n * rows];
            head.matmul_isa(Isa::Scalar, &x, n, &mut scalar, rows, 1);
            for isa in [Isa::Avx2, Isa::Avx512Vnni] {
                if !isa_available(isa) {
                    continue;
                }
                for (n, threads) in [(1, 1), (1, 2), (3, 2)] {
                    let mut got = vec![f32::NAN; n * rows];
                    head.matmul_isa(isa, &x, n, &mut got, rows, threads);
                    for (g, e) in got.iter().zip(&scalar) {
                        assert_eq!(g.to_bits(), e.to_bits(), "{isa:?} {rows}x{cols} n{n}");
                    }
                }
            }
            // Close to the f32 product (4-bit weights, 8-bit activations).
            let exact: Vec<f32> = (0..rows)
                .map(|r| (0..cols).map(|c| w[r * cols + c] * x[c]).sum())
                .collect();
            let dot: f64 = scalar[..rows]
                .iter()
                .zip(&exact)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            let na: f64 = scalar[..rows].iter().map(|&a| (a as f64).powi(2)).sum();
            let nb: f64 = exact.iter().map(|&a| (a as f64).powi(2)).sum();
            assert!(dot / (na.sqrt() * nb.sqrt()) > 0.98, "{rows}x{cols}");
        }
    }

    #[test]
    fn f16_requantization_matches_quant_q4_0() {
        let mut rng = SplitMix64(43);
        let mut vals: Vec<f32> = (0..32 * 300).map(|_| rng.normal() * 0.05).collect();
        // Ties of magnitude (the first wins), halves, zeros, NaN, infinities, subnormal maxima,
        // the f16 extremes, a negative maximum.
        let special: [&[f32]; 8] = [
            &[0.5, -0.5, 0.25],
            &[-0.5, 0.5, 0.25],
            &[0.0],
            &[f32::NAN, 1.0],
            &[f32::INFINITY, -1.0],
            &[6e-8, -6e-8, 1e-7],
            &[65504.0, -65504.0, 0.000061],
            &[-3.0, 1.0, 2.9, -1.3125, 0.1875],
        ];
        for (i, sp) in special.iter().enumerate() {
            let blk = &mut vals[i * 32..(i + 1) * 32];
            blk.fill(0.0);
            for (j, &v) in sp.iter().enumerate() {
                blk[j * 5 % 32] = v;
            }
        }
        let w: Vec<u8> = vals
            .iter()
            .flat_map(|&v| crate::quant::float::f32_to_f16(v).to_le_bytes())
            .collect();
        let rows = vals.len() / 64;
        let mut generic = Q4Head::new(64);
        generic.append_rows(rows, &|r, out| {
            for (o, b) in out.iter_mut().zip(w[r * 128..].chunks_exact(2)) {
                *o = crate::quant::float::f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        });
        let mut fast = Q4Head::new(64);
        fast.append_f16(&w, rows);
        for r in 0..rows {
            assert_eq!(fast.row_blocks(r), generic.row_blocks(r), "row {r}");
        }
    }

    #[test]
    fn as_stored_blocks_are_kept() {
        let mut rng = SplitMix64(42);
        let (rows, cols) = (3, 64);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.normal()).collect();
        let mut blocks = vec![0u8; rows * cols / 32 * q4_0::BLOCK_BYTES];
        q4_0::quantize(&w, &mut blocks);
        let head = Q4Head::from_blocks(&blocks, rows, cols);
        assert_eq!((head.rows, head.bytes()), (rows, blocks.len()));
        let x: Vec<f32> = (0..cols).map(|_| rng.normal()).collect();
        let mut out = vec![0f32; rows];
        head.matmul(&x, 1, &mut out, rows, 1);
        let mut want = vec![0f32; rows];
        let m = crate::kernels::MatRef {
            ty: crate::quant::GgmlType::Q4_0,
            rows,
            cols,
            data: &blocks,
        };
        crate::kernels::matmul_scalar(
            &m,
            crate::kernels::Activations::ByWeightType,
            &x,
            1,
            &mut want,
        )
        .unwrap();
        assert_eq!(out, want);
    }
}
