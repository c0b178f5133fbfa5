//! The output head: F16 weights times activations rounded to f16 (as the reference), and an
//! opt-in int8 head (Q8_0 blocks requantized at load) that reads about half the bytes.
//!
//! F16: every output is the scalar `dot_f32` of kernels/mod.rs: 16 lanes (value i goes to
//! lane i % 16, fused multiply-add), then summed pairwise 16 -> 8 -> 4 -> 2 -> 1. The AVX-512
//! and AVX2/F16C paths keep exactly that order, so they are bit-identical to it.

use std::cell::RefCell;

use super::pool;
use super::ternary::{best_isa, Isa};
use crate::quant::float::{f16_to_f32, f32_to_f16};
use crate::quant::q8_0;

thread_local! {
    /// Activations rounded to f16 (as f32) / quantized to Q8_0: reused, so the head allocates
    /// nothing after its first call.
    static X16: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static XQ8: RefCell<(Vec<i8>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A raw pointer handed to pool threads that write disjoint parts of it.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every thread writes a disjoint set of rows within one `pool::run`.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// The reference's order: 16 lanes, then pairwise.
fn dot_f16_scalar(w: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for (i, (b, &x)) in w.chunks_exact(2).zip(x).enumerate() {
        let w = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
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

/// out[t * out_stride + r] = row r of `w` (F16, rows x cols) . f16(x_t), for n tokens.
#[allow(clippy::too_many_arguments)]
pub fn matmul_f16(
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n: usize,
    out: &mut [f32],
    out_stride: usize,
    threads: usize,
) {
    matmul_f16_isa(best_isa(), w, rows, cols, x, n, out, out_stride, threads)
}

#[allow(clippy::too_many_arguments)]
pub fn matmul_f16_isa(
    isa: Isa,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n: usize,
    out: &mut [f32],
    out_stride: usize,
    threads: usize,
) {
    assert!(w.len() >= rows * cols * 2 && x.len() >= n * cols);
    assert!(n == 0 || out.len() >= (n - 1) * out_stride + rows);
    X16.with(|cell| {
        let mut xs = cell.borrow_mut();
        if xs.len() < n * cols {
            xs.resize(n * cols, 0.0);
        }
        for (o, &v) in xs[..n * cols].iter_mut().zip(x) {
            *o = f16_to_f32(f32_to_f16(v));
        }
        let xs = &xs[..n * cols];
        let isa = if cols.is_multiple_of(16) {
            isa
        } else {
            Isa::Scalar
        };
        let out_ptr = OutPtr(out.as_mut_ptr());
        pool::global().run(threads, &|i, nt| {
            let rows = pool::split(rows, 16, i, nt);
            let out = out_ptr; // the whole (Sync) wrapper, not its raw field
                               // SAFETY: this thread writes only its rows of each token's output (disjoint from
                               // the other threads'); `out` is long enough (asserted) and outlives `run`.
            let write = |r: usize, t: usize, v: f32| unsafe {
                *out.0.add(t * out_stride + r) = v;
            };
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the ISA was detected before being chosen.
                Isa::Avx512Vnni => unsafe { x86::f16_avx512(w, cols, xs, n, rows, &write) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above (AVX2 implies FMA and F16C in `detect`).
                Isa::Avx2 => unsafe { x86::f16_avx2(w, cols, xs, n, rows, &write) },
                _ => {
                    for r in rows {
                        let wr = &w[r * cols * 2..(r + 1) * cols * 2];
                        for t in 0..n {
                            write(r, t, dot_f16_scalar(wr, &xs[t * cols..(t + 1) * cols]));
                        }
                    }
                }
            }
        });
    });
}

/// The lower-byte head: Q8_0 requantized from F16 at load, stored split for the kernels.
pub struct Q8Head {
    pub rows: usize,
    pub cols: usize,
    qs: Vec<i8>, // [rows, cols]
    d: Vec<f32>, // [rows, cols / 32]
}

impl Q8Head {
    /// Requantizes an F16 matrix (rows x cols, cols % 32 == 0) to Q8_0 (gguf-py's rounding).
    pub fn from_f16(w: &[u8], rows: usize, cols: usize) -> Q8Head {
        let mut head = Q8Head::new(cols);
        head.append_f16(w, rows);
        head
    }

    /// A head of `cols` columns and no rows yet (fill it with `append_f16`).
    pub fn new(cols: usize) -> Q8Head {
        assert!(cols.is_multiple_of(q8_0::BLOCK));
        Q8Head {
            rows: 0,
            cols,
            qs: Vec::new(),
            d: Vec::new(),
        }
    }

    /// Requantizes `rows` more F16 rows (`w`: rows x cols) and appends them.
    pub fn append_f16(&mut self, w: &[u8], rows: usize) {
        let cols = self.cols;
        assert!(w.len() >= rows * cols * 2);
        let nb = cols / q8_0::BLOCK;
        let (q0, d0) = (self.qs.len(), self.d.len());
        self.qs.resize(q0 + rows * cols, 0);
        self.d.resize(d0 + rows * nb, 0.0);
        self.rows += rows;
        let qs = OutPtrI8(self.qs[q0..].as_mut_ptr());
        let ds = OutPtr(self.d[d0..].as_mut_ptr());
        let pool = pool::global();
        pool.run(pool.max_threads(), &|i, nt| {
            let (qs, ds) = (qs, ds);
            let mut row = vec![0f32; cols];
            let mut blocks = vec![0u8; nb * q8_0::BLOCK_BYTES];
            for r in pool::split(rows, 64, i, nt) {
                for (o, b) in row.iter_mut().zip(w[r * cols * 2..].chunks_exact(2)) {
                    *o = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                }
                q8_0::quantize(&row, &mut blocks);
                for (b, blk) in blocks.chunks_exact(q8_0::BLOCK_BYTES).enumerate() {
                    // SAFETY: row r's values and scales are written by this thread only
                    // (rows split disjointly), inside the lengths resized above.
                    unsafe {
                        *ds.0.add(r * nb + b) = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
                        for (j, &q) in blk[2..].iter().enumerate() {
                            *qs.0.add(r * cols + b * 32 + j) = q as i8;
                        }
                    }
                }
            }
        });
    }

    pub fn bytes(&self) -> usize {
        self.qs.len() + self.d.len() * 4
    }

    /// out[t * out_stride + r] = Q8_0 row r . Q8_0(x_t) (the reference's x86 activation
    /// quantizer, `quantize_q8_0`).
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
        let nb = cols / q8_0::BLOCK;
        assert!(x.len() >= n * cols);
        assert!(n == 0 || out.len() >= (n - 1) * out_stride + rows);
        XQ8.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (xq, xd) = &mut *guard;
            if xq.len() < n * cols {
                xq.resize(n * cols, 0);
                xd.resize(n * nb, 0.0);
            }
            let mut blk = [0u8; q8_0::BLOCK_BYTES];
            for (b, xb) in x[..n * cols].chunks_exact(q8_0::BLOCK).enumerate() {
                super::quantize_q8_0(xb, &mut blk);
                xd[b] = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
                for (o, &q) in xq[b * 32..(b + 1) * 32].iter_mut().zip(&blk[2..]) {
                    *o = q as i8;
                }
            }
            let (xq, xd) = (&xq[..n * cols], &xd[..n * nb]);
            let out_ptr = OutPtr(out.as_mut_ptr());
            let isa = match isa {
                Isa::Avx512Vnni if !cols.is_multiple_of(64) => Isa::Avx2,
                isa => isa,
            };
            pool::global().run(threads, &|i, nt| {
                let rows = pool::split(rows, 16, i, nt);
                let out = out_ptr; // the whole (Sync) wrapper, not its raw field
                                   // SAFETY: this thread writes only its rows (disjoint); `out` is long enough.
                let write = |r: usize, t: usize, v: f32| unsafe {
                    *out.0.add(t * out_stride + r) = v;
                };
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the ISA was detected before being chosen.
                    Isa::Avx512Vnni => unsafe {
                        x86::q8_avx512(&self.qs, &self.d, cols, xq, xd, n, rows, &write)
                    },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: as above (AVX2 implies FMA in `detect`).
                    Isa::Avx2 => unsafe {
                        x86::q8_avx2(&self.qs, &self.d, cols, xq, xd, n, rows, &write)
                    },
                    _ => {
                        for r in rows {
                            for t in 0..n {
                                let mut acc = 0f32;
                                for b in 0..nb {
                                    let (w, a) = (
                                        &self.qs[r * cols + b * 32..][..32],
                                        &xq[t * cols + b * 32..][..32],
                                    );
                                    let s: i32 =
                                        w.iter().zip(a).map(|(&w, &a)| w as i32 * a as i32).sum();
                                    let d = self.d[r * nb + b] * xd[t * nb + b];
                                    acc = (s as f32).mul_add(d, acc);
                                }
                                write(r, t, acc);
                            }
                        }
                    }
                }
            });
        });
    }
}

#[derive(Clone, Copy)]
struct OutPtrI8(*mut i8);
// SAFETY: threads write disjoint rows within one `pool::run`.
unsafe impl Send for OutPtrI8 {}
// SAFETY: as above.
unsafe impl Sync for OutPtrI8 {}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// R rows x NT tokens of F16 dots, 16 lanes each, reduced in the reference's order.
    #[target_feature(enable = "avx512f,avx512vl,f16c")]
    unsafe fn tile_f16_avx512<const R: usize, const NT: usize>(
        w: [*const u8; R],
        x: [*const f32; NT],
        cols: usize,
    ) -> [[f32; NT]; R] {
        let mut acc = [[_mm512_setzero_ps(); NT]; R];
        let mut i = 0;
        while i < cols {
            let mut wv = [_mm512_setzero_ps(); R];
            for r in 0..R {
                wv[r] = _mm512_cvtph_ps(_mm256_loadu_si256(w[r].add(2 * i) as *const _));
            }
            for t in 0..NT {
                let xv = _mm512_loadu_ps(x[t].add(i));
                for r in 0..R {
                    acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
                }
            }
            i += 16;
        }
        let mut out = [[0f32; NT]; R];
        for r in 0..R {
            for t in 0..NT {
                let a = acc[r][t];
                let v8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
                out[r][t] = reduce8(v8);
            }
        }
        out
    }

    /// Lanes 0..8 summed as the reference: (l + l+4), then (l + l+2), then (0 + 1).
    #[target_feature(enable = "avx")]
    unsafe fn reduce8(v8: __m256) -> f32 {
        let v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
        let v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
        let v1 = _mm_add_ss(v2, _mm_shuffle_ps(v2, v2, 1));
        _mm_cvtss_f32(v1)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn tile_f16_avx2<const R: usize, const NT: usize>(
        w: [*const u8; R],
        x: [*const f32; NT],
        cols: usize,
    ) -> [[f32; NT]; R] {
        // lo: lanes 0..8, hi: lanes 8..16 of the reference's 16.
        let mut lo = [[_mm256_setzero_ps(); NT]; R];
        let mut hi = [[_mm256_setzero_ps(); NT]; R];
        let mut i = 0;
        while i < cols {
            let mut wl = [_mm256_setzero_ps(); R];
            let mut wh = [_mm256_setzero_ps(); R];
            for r in 0..R {
                wl[r] = _mm256_cvtph_ps(_mm_loadu_si128(w[r].add(2 * i) as *const _));
                wh[r] = _mm256_cvtph_ps(_mm_loadu_si128(w[r].add(2 * i + 16) as *const _));
            }
            for t in 0..NT {
                let xl = _mm256_loadu_ps(x[t].add(i));
                let xh = _mm256_loadu_ps(x[t].add(i + 8));
                for r in 0..R {
                    lo[r][t] = _mm256_fmadd_ps(wl[r], xl, lo[r][t]);
                    hi[r][t] = _mm256_fmadd_ps(wh[r], xh, hi[r][t]);
                }
            }
            i += 16;
        }
        let mut out = [[0f32; NT]; R];
        for r in 0..R {
            for t in 0..NT {
                out[r][t] = reduce8(_mm256_add_ps(lo[r][t], hi[r][t]));
            }
        }
        out
    }

    macro_rules! f16_driver {
        ($name:ident, $tile:ident, $feat:literal) => {
            /// # Safety
            /// The CPU has the features the tile kernel enables.
            #[target_feature(enable = $feat)]
            pub unsafe fn $name(
                w: &[u8],
                cols: usize,
                x: &[f32],
                n: usize,
                rows: Range<usize>,
                write: &dyn Fn(usize, usize, f32),
            ) {
                let row = |r: usize| w.as_ptr().add(r * cols * 2);
                let tok = |t: usize| x.as_ptr().add(t * cols);
                let mut r = rows.start;
                while r < rows.end {
                    let nr = if rows.end - r >= 4 { 4 } else { 1 };
                    let mut t = 0;
                    while t < n {
                        let nt = if nr == 4 && n - t >= 2 {
                            2
                        } else if nr == 1 && n - t >= 4 {
                            4
                        } else {
                            1
                        };
                        match (nr, nt) {
                            (4, 2) => {
                                let y = $tile::<4, 2>(
                                    std::array::from_fn(|i| row(r + i)),
                                    [tok(t), tok(t + 1)],
                                    cols,
                                );
                                for (i, yr) in y.iter().enumerate() {
                                    write(r + i, t, yr[0]);
                                    write(r + i, t + 1, yr[1]);
                                }
                            }
                            (4, _) => {
                                let y = $tile::<4, 1>(
                                    std::array::from_fn(|i| row(r + i)),
                                    [tok(t)],
                                    cols,
                                );
                                for (i, yr) in y.iter().enumerate() {
                                    write(r + i, t, yr[0]);
                                }
                            }
                            (_, 4) => {
                                let y = $tile::<1, 4>(
                                    [row(r)],
                                    std::array::from_fn(|i| tok(t + i)),
                                    cols,
                                );
                                for (i, &v) in y[0].iter().enumerate() {
                                    write(r, t + i, v);
                                }
                            }
                            _ => {
                                let y = $tile::<1, 1>([row(r)], [tok(t)], cols);
                                write(r, t, y[0][0]);
                            }
                        }
                        t += nt;
                    }
                    r += nr;
                }
            }
        };
    }

    f16_driver!(f16_avx512, tile_f16_avx512, "avx512f,avx512vl,f16c");
    f16_driver!(f16_avx2, tile_f16_avx2, "avx2,fma,f16c");

    /// Q8_0 . Q8_0 over rows, one block of 32 per step: |w| times the activation with w's
    /// sign (`vpsignb`), pairs summed in int16 (|.| <= 2 * 127 * 128, no wrap for weights
    /// in -127..=127 as Q8_0 quantization gives), widened with `vpmaddwd`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; cols % 32 == 0.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn q8_avx2(
        qs: &[i8],
        d: &[f32],
        cols: usize,
        xq: &[i8],
        xd: &[f32],
        n: usize,
        rows: Range<usize>,
        write: &dyn Fn(usize, usize, f32),
    ) {
        let nb = cols / 32;
        let ones = _mm256_set1_epi16(1);
        for r in rows {
            let w = qs.as_ptr().add(r * cols);
            let wd = d.as_ptr().add(r * nb);
            for t in 0..n {
                let a = xq.as_ptr().add(t * cols);
                let ad = xd.as_ptr().add(t * nb);
                let mut acc = _mm256_setzero_ps();
                for b in 0..nb {
                    let wv = _mm256_loadu_si256(w.add(b * 32) as *const _);
                    let av = _mm256_loadu_si256(a.add(b * 32) as *const _);
                    let p16 =
                        _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(av, wv));
                    let p32 = _mm256_madd_epi16(p16, ones);
                    let scale = _mm256_set1_ps(*wd.add(b) * *ad.add(b));
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), scale, acc);
                }
                let v4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
                let v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
                write(
                    r,
                    t,
                    _mm_cvtss_f32(_mm_add_ss(v2, _mm_shuffle_ps(v2, v2, 1))),
                );
            }
        }
    }

    /// Q8_0 . Q8_0 over rows, two blocks (64 values) per step: |w| (unsigned) times the
    /// activation with w's sign moved onto it, so `vpdpbusd` applies. Assumes activations are
    /// never -128 (quantize_q8_0 gives -128 only for NaN/infinite/subnormal-max blocks).
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL and VNNI; cols % 64 == 0.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn q8_avx512(
        qs: &[i8],
        d: &[f32],
        cols: usize,
        xq: &[i8],
        xd: &[f32],
        n: usize,
        rows: Range<usize>,
        write: &dyn Fn(usize, usize, f32),
    ) {
        let nb = cols / 32;
        let idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        let zero = _mm512_setzero_si512();
        for r in rows {
            let w = qs.as_ptr().add(r * cols);
            let wd = d.as_ptr().add(r * nb);
            for t in 0..n {
                let a = xq.as_ptr().add(t * cols);
                let ad = xd.as_ptr().add(t * nb);
                let mut acc = _mm512_setzero_ps();
                let mut b = 0;
                while b < nb {
                    let wv = _mm512_loadu_si512(w.add(b * 32) as *const _);
                    let av = _mm512_loadu_si512(a.add(b * 32) as *const _);
                    let neg = _mm512_movepi8_mask(wv);
                    let sa = _mm512_mask_sub_epi8(av, neg, zero, av);
                    let dot = _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(wv), sa);
                    let s2 = _mm_mul_ps(
                        _mm_castpd_ps(_mm_load_sd(wd.add(b) as *const f64)),
                        _mm_castpd_ps(_mm_load_sd(ad.add(b) as *const f64)),
                    );
                    let scale = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(s2));
                    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc);
                    b += 2;
                }
                write(r, t, _mm512_reduce_add_ps(acc));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::ternary::isa_available;
    use crate::rng::SplitMix64;

    fn random_f16(rng: &mut SplitMix64, n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|_| f32_to_f16(rng.normal() * 0.05).to_le_bytes())
            .collect()
    }

    #[test]
    fn f16_paths_are_bit_identical_to_scalar() {
        let mut rng = SplitMix64(3);
        for &(rows, cols) in &[(1, 16), (7, 64), (33, 2560), (5, 40)] {
            let w = random_f16(&mut rng, rows * cols);
            for n in [1, 2, 3, 5] {
                let x: Vec<f32> = (0..n * cols).map(|_| rng.normal() * 3.0).collect();
                let mut want = vec![0f32; n * rows];
                matmul_f16_isa(Isa::Scalar, &w, rows, cols, &x, n, &mut want, rows, 1);
                for isa in [Isa::Avx2, Isa::Avx512Vnni] {
                    if !isa_available(isa) {
                        continue;
                    }
                    for threads in [1, 2] {
                        let mut got = vec![f32::NAN; n * rows];
                        matmul_f16_isa(isa, &w, rows, cols, &x, n, &mut got, rows, threads);
                        for (g, e) in got.iter().zip(&want) {
                            assert_eq!(g.to_bits(), e.to_bits(), "{isa:?} {rows}x{cols} n{n}");
                        }
                    }
                }
                // And the scalar path is the legacy matmul's F16 dot.
                let m = crate::kernels::MatRef {
                    ty: crate::quant::GgmlType::F16,
                    rows,
                    cols,
                    data: &w,
                };
                let mut legacy = vec![0f32; n * rows];
                crate::kernels::matmul_scalar(
                    &m,
                    crate::kernels::Activations::ByWeightType,
                    &x,
                    n,
                    &mut legacy,
                )
                .unwrap();
                assert_eq!(want, legacy);
            }
        }
    }

    #[test]
    fn q8_head_matches_scalar_and_f16() {
        let mut rng = SplitMix64(4);
        let (rows, cols) = (37, 2560);
        let w = random_f16(&mut rng, rows * cols);
        let head = Q8Head::from_f16(&w, rows, cols);
        let n = 3;
        let x: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
        let mut scalar = vec![0f32; n * rows];
        head.matmul_isa(Isa::Scalar, &x, n, &mut scalar, rows, 1);
        let mut f16 = vec![0f32; n * rows];
        matmul_f16(&w, rows, cols, &x, n, &mut f16, rows, 1);
        for isa in [Isa::Avx2, Isa::Avx512Vnni] {
            if !isa_available(isa) {
                continue;
            }
            let mut got = vec![0f32; n * rows];
            head.matmul_isa(isa, &x, n, &mut got, rows, 2);
            for (g, e) in got.iter().zip(&scalar) {
                assert!((g - e).abs() <= 1e-4 * e.abs().max(1.0), "{g} vs {e}");
            }
        }
        // Int8 weights and activations stay close to the F16 head: cosine over all logits.
        let dot: f64 = scalar
            .iter()
            .zip(&f16)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let na: f64 = scalar.iter().map(|&a| a as f64 * a as f64).sum();
        let nb: f64 = f16.iter().map(|&a| a as f64 * a as f64).sum();
        let cos = dot / (na.sqrt() * nb.sqrt());
        assert!(cos > 0.999, "cosine {cos}");
    }
}
