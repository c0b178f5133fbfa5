//! The output head: F16 weights times activations rounded to f16 (as the reference), and an
//! opt-in int8 head (Q8_0 blocks requantized at load) that reads about half the bytes.
//!
//! F16: every output is the scalar `dot_f32` of kernels/mod.rs: 16 lanes (value i goes to
//! lane i % 16, fused multiply-add), then summed pairwise 16 -> 8 -> 4 -> 2 -> 1. The AVX-512
//! and AVX2/F16C paths keep exactly that order, so they are bit-identical to it.

use std::cell::RefCell;

use super::isa::{best_isa, Isa};
use super::pool::{self, SendPtr};
use crate::quant::float::{f16_to_f32, f32_to_f16};
use crate::quant::q8_0;

thread_local! {
    /// Activations rounded to f16 (as f32) / quantized to Q8_0: reused, so the head allocates
    /// nothing after its first call.
    static X16: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static XQ8: RefCell<XQ8Buf> = const { RefCell::new(XQ8Buf { q: Vec::new(), d: Vec::new() }) };
}

/// Q8_0 activations of the int8 head: values and block scales (f16-rounded, as f32).
struct XQ8Buf {
    q: Vec<i8>,
    d: Vec<f32>,
}

/// The reference's order: 16 lanes, then pairwise (`kernels::dot_f32`).
fn dot_f16_scalar(w: &[u8], x: &[f32]) -> f32 {
    super::dot_f32(
        w.chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        x,
    )
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
        let out_ptr = SendPtr(out.as_mut_ptr());
        let chunk = pool::chunk_len(rows, threads, 4, 16, 16);
        pool::chunks(threads, rows, chunk, &|rows| {
            // The whole (Sync) wrapper, not its raw field.
            let out = out_ptr;
            // SAFETY: this thread writes only its rows of each token's output (disjoint from
            // the other threads'); `out` is long enough (asserted) and outlives `run`.
            let write = |r: usize, t: usize, v: f32| unsafe {
                *out.0.add(t * out_stride + r) = v;
            };
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the ISA was detected before being chosen.
                Isa::Avx512Vnni | Isa::Amx => unsafe {
                    x86::f16_avx512(w, cols, xs, n, rows, &write)
                },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above (AVX2 implies FMA and F16C, `kernels::isa`).
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
        head.reserve(rows);
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

    /// Makes room for `rows` more rows at once (one allocation, not one per appended slice).
    /// (Advising huge pages here made the Q8_0 head's load slower on this VM: 1.5 s against
    /// 1.1 s, `benches/head_rounds.sh`; the fault-time zeroing of 2 MiB pages is not free.)
    pub fn reserve(&mut self, rows: usize) {
        let nb = self.cols / q8_0::BLOCK;
        self.qs.reserve_exact(rows * self.cols);
        self.d.reserve_exact(rows * nb);
    }

    /// Requantizes `rows` more F16 rows (`w`: rows x cols) and appends them.
    pub fn append_f16(&mut self, w: &[u8], rows: usize) {
        let cols = self.cols;
        assert!(w.len() >= rows * cols * 2);
        let nb = cols / q8_0::BLOCK;
        let (q0, d0) = (self.qs.len(), self.d.len());
        self.qs.reserve_exact(rows * cols);
        self.d.reserve_exact(rows * nb);
        // The new rows are zeroed by the thread that fills them, not here: the first touch of
        // fresh pages (the kernel clearing them) is then split between the threads too.
        let qs = SendPtr(self.qs.as_mut_ptr().wrapping_add(q0));
        let ds = SendPtr(self.d.as_mut_ptr().wrapping_add(d0));
        let pool = pool::global();
        pool.run(pool.max_threads(), &|i, nt| {
            let (qs, ds) = (qs, ds);
            let mut row = vec![0f32; cols];
            let mut blocks = vec![0u8; nb * q8_0::BLOCK_BYTES];
            let mine = pool::split(rows, 64, i, nt);
            // SAFETY: rows `mine` of both arrays are this thread's alone (split gives disjoint
            // ranges) and lie inside the capacity reserved above.
            unsafe {
                std::ptr::write_bytes(qs.0.add(mine.start * cols), 0, mine.len() * cols);
                std::ptr::write_bytes(ds.0.add(mine.start * nb), 0, mine.len() * nb);
            }
            for r in mine {
                #[cfg(target_arch = "x86_64")]
                if best_isa() != Isa::Scalar {
                    // SAFETY: AVX2 and F16C come with every non-scalar ISA (`kernels::isa`); row r's
                    // F16 bytes are inside `w` (asserted) and its values and scales are this
                    // thread's (rows split disjointly), inside the capacity reserved above.
                    unsafe {
                        x86::q8_0_row_avx2(
                            &w[r * cols * 2..(r + 1) * cols * 2],
                            std::slice::from_raw_parts_mut(qs.0.add(r * cols), cols),
                            std::slice::from_raw_parts_mut(ds.0.add(r * nb), nb),
                        )
                    };
                    continue;
                }
                for (o, b) in row.iter_mut().zip(w[r * cols * 2..].chunks_exact(2)) {
                    *o = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                }
                q8_0::quantize(&row, &mut blocks);
                for (b, blk) in blocks.chunks_exact(q8_0::BLOCK_BYTES).enumerate() {
                    // SAFETY: row r's values and scales are written by this thread only
                    // (rows split disjointly), inside the capacity reserved above.
                    unsafe {
                        *ds.0.add(r * nb + b) = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
                        for (j, &q) in blk[2..].iter().enumerate() {
                            *qs.0.add(r * cols + b * 32 + j) = q as i8;
                        }
                    }
                }
            }
        });
        // SAFETY: every new row was zeroed and filled above (split covers 0..rows), within
        // the capacity.
        unsafe {
            self.qs.set_len(q0 + rows * cols);
            self.d.set_len(d0 + rows * nb);
        }
        self.rows += rows;
    }

    /// Row `r` . one token's Q8_0 activations (values `xq`, block scales `xd`) in the
    /// reference's x86 order (`kernels::dot_q8_0_q8_0`): per block eight exact lanes of four
    /// products, `acc[u] += lane[u] * (d_w * d_x)` fused, then `hsum8`. The vector kernel
    /// returns the same bits.
    fn dot_scalar(&self, r: usize, xq: &[i8], xd: &[f32]) -> f32 {
        let cols = self.cols;
        let nb = cols / q8_0::BLOCK;
        let mut acc = [0f32; 8];
        for b in 0..nb {
            let (w, a) = (&self.qs[r * cols + b * 32..][..32], &xq[b * 32..][..32]);
            let d = self.d[r * nb + b] * xd[b];
            for (u, acc) in acc.iter_mut().enumerate() {
                let lane: i32 = (4 * u..4 * u + 4).map(|e| w[e] as i32 * a[e] as i32).sum();
                *acc = d.mul_add(lane as f32, *acc);
            }
        }
        super::dot::hsum8(acc)
    }

    pub fn bytes(&self) -> usize {
        self.qs.len() + self.d.len() * 4
    }

    /// The int8 values, [rows, cols] (for a device copy).
    pub fn values(&self) -> &[i8] {
        &self.qs
    }

    /// The block scales (f16-rounded, as f32), [rows, cols / 32] (for a device copy).
    pub fn scales(&self) -> &[f32] {
        &self.d
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
            let buf = &mut *guard;
            if buf.q.len() < n * cols {
                buf.q.resize(n * cols, 0);
                buf.d.resize(n * nb, 0.0);
            }
            let mut blk = [0u8; q8_0::BLOCK_BYTES];
            for (b, xb) in x[..n * cols].chunks_exact(q8_0::BLOCK).enumerate() {
                super::quantize_q8_0(xb, &mut blk);
                buf.d[b] = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
                for (o, &q) in buf.q[b * 32..(b + 1) * 32].iter_mut().zip(&blk[2..]) {
                    *o = q as i8;
                }
            }
            let (xq, xd) = (&buf.q[..n * cols], &buf.d[..n * nb]);
            let out_ptr = SendPtr(out.as_mut_ptr());
            pool::global().run(threads, &|i, nt| {
                let rows = pool::split(rows, 16, i, nt);
                // The whole (Sync) wrapper, not its raw field.
                let out = out_ptr;
                // SAFETY: this thread writes only its rows (disjoint); `out` is long enough.
                let write = |r: usize, t: usize, v: f32| unsafe {
                    *out.0.add(t * out_stride + r) = v;
                };
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the ISA was detected before being chosen (AVX2 and FMA come with
                    // every vector level, `kernels::isa`).
                    Isa::Avx2 | Isa::Avx512Vnni | Isa::Amx => unsafe {
                        x86::q8_avx2(&self.qs, &self.d, cols, xq, xd, n, rows, &write)
                    },
                    _ => {
                        for r in rows {
                            for t in 0..n {
                                write(r, t, self.dot_scalar(r, &xq[t * cols..], &xd[t * nb..]));
                            }
                        }
                    }
                }
            });
        });
    }
}

/// The head cache (`model::head_cache`) holds it as its two arrays.
impl crate::model::head_cache::CachedHead for Q8Head {
    /// A head of `rows` rows of zeros, to be filled through `byte_parts_mut` (the head cache).
    fn zeroed(rows: usize, cols: usize) -> Self {
        assert!(cols.is_multiple_of(q8_0::BLOCK));
        Self {
            rows,
            cols,
            qs: vec![0; rows * cols],
            d: vec![0.0; rows * cols / q8_0::BLOCK],
        }
    }

    /// The values and the scales as bytes (native order), for the head cache.
    fn byte_parts(&self) -> [&[u8]; 2] {
        // SAFETY: i8 and f32 are plain data with no padding; the views cover exactly the
        // vectors' initialized elements and borrow self.
        unsafe {
            [
                std::slice::from_raw_parts(self.qs.as_ptr() as *const u8, self.qs.len()),
                std::slice::from_raw_parts(self.d.as_ptr() as *const u8, self.d.len() * 4),
            ]
        }
    }

    /// `byte_parts`, writable: any bytes are valid i8 values and f32 bit patterns.
    fn byte_parts_mut(&mut self) -> [&mut [u8]; 2] {
        // SAFETY: as in `byte_parts`; every bit pattern is a valid i8 and f32, and the two
        // views are of distinct vectors under one exclusive borrow of self.
        unsafe {
            [
                std::slice::from_raw_parts_mut(self.qs.as_mut_ptr() as *mut u8, self.qs.len()),
                std::slice::from_raw_parts_mut(self.d.as_mut_ptr() as *mut u8, self.d.len() * 4),
            ]
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::kernels::dot::hsum8_avx;
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
                if NT == 1 {
                    // Decode streams the head once: lines 4 KiB ahead (see ternary::x86).
                    _mm_prefetch::<_MM_HINT_T0>(w[r].add(2 * i + 4096) as *const i8);
                }
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
                out[r][t] = hsum8_avx(v8);
            }
        }
        out
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
                out[r][t] = hsum8_avx(_mm256_add_ps(lo[r][t], hi[r][t]));
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
                // Register tiles (AVX2 has 16 vector registers; each (row, token) pair holds
                // two accumulators): one token goes 4 rows at a time (four weight streams),
                // several tokens 2 rows x 2 tokens (each converted weight used twice, no
                // spills), a last odd row 1 x 4 tokens.
                let mut r = rows.start;
                while r < rows.end {
                    let left = rows.end - r;
                    let nr = match (n, left) {
                        (1, 4..) => 4,
                        (_, 2..) => 2,
                        _ => 1,
                    };
                    let mut t = 0;
                    while t < n {
                        let nt = match (nr, n - t) {
                            (2, 2..) => 2,
                            (1, 4..) => 4,
                            _ => 1,
                        };
                        let rs: [usize; 4] = std::array::from_fn(|i| r + i.min(nr - 1));
                        let ts: [usize; 4] = std::array::from_fn(|i| t + i.min(nt - 1));
                        match (nr, nt) {
                            (4, _) => {
                                let y = $tile::<4, 1>(rs.map(row), [tok(t)], cols);
                                for (i, yr) in y.iter().enumerate() {
                                    write(r + i, t, yr[0]);
                                }
                            }
                            (2, 2) => {
                                let y =
                                    $tile::<2, 2>([row(r), row(r + 1)], [tok(t), tok(t + 1)], cols);
                                for (i, yr) in y.iter().enumerate() {
                                    write(r + i, t, yr[0]);
                                    write(r + i, t + 1, yr[1]);
                                }
                            }
                            (2, _) => {
                                let y = $tile::<2, 1>([row(r), row(r + 1)], [tok(t)], cols);
                                for (i, yr) in y.iter().enumerate() {
                                    write(r + i, t, yr[0]);
                                }
                            }
                            (_, 4) => {
                                let y = $tile::<1, 4>([row(r)], ts.map(tok), cols);
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

    /// One F16 row requantized to Q8_0 exactly as `q8_0::quantize` (then split into values and
    /// f32 scales), eight lanes at a time: round half away from zero as trunc plus a step where
    /// the (exact) fraction is at least 0.5. A block whose max or inverse scale is not finite
    /// (NaN, infinities, subnormal maxima) goes through `q8_0::quantize` itself.
    ///
    /// # Safety
    /// The CPU has AVX2 and F16C; `w` holds qs.len() F16 values, qs.len() == 32 * ds.len().
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn q8_0_row_avx2(w: &[u8], qs: &mut [i8], ds: &mut [f32]) {
        use super::{f16_to_f32, f32_to_f16, q8_0};
        assert!(w.len() >= qs.len() * 2 && qs.len() == ds.len() * 32);
        let sign = _mm256_set1_ps(-0.0);
        let half = _mm256_set1_ps(0.5);
        let one = _mm256_set1_ps(1.0);
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (b, d_out) in ds.iter_mut().enumerate() {
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
            let d = amax / 127.0;
            let id = if d == 0.0 { 0.0 } else { 1.0 / d };
            let q = &mut qs[b * 32..(b + 1) * 32];
            if nan || !amax.is_finite() || !id.is_finite() {
                let mut vals = [0f32; 32];
                for (i, x) in v.iter().enumerate() {
                    _mm256_storeu_ps(vals[8 * i..].as_mut_ptr(), *x);
                }
                let mut blk = [0u8; q8_0::BLOCK_BYTES];
                q8_0::quantize(&vals, &mut blk);
                *d_out = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
                for (o, &c) in q.iter_mut().zip(&blk[2..]) {
                    *o = c as i8;
                }
                continue;
            }
            *d_out = f16_to_f32(f32_to_f16(d));
            let idv = _mm256_set1_ps(id);
            let ints: [__m256i; 4] = std::array::from_fn(|i| {
                let x = _mm256_mul_ps(v[i], idv);
                let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(x);
                let frac = _mm256_andnot_ps(sign, _mm256_sub_ps(x, t));
                let away = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, half);
                let step = _mm256_and_ps(away, _mm256_or_ps(_mm256_and_ps(x, sign), one));
                _mm256_cvtps_epi32(_mm256_add_ps(t, step))
            });
            // |values| <= 127 here, so the saturating packs keep them; then undo their lane order.
            let p16 = [
                _mm256_packs_epi32(ints[0], ints[1]),
                _mm256_packs_epi32(ints[2], ints[3]),
            ];
            let p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16[0], p16[1]), order);
            _mm256_storeu_si256(q.as_mut_ptr() as *mut _, p8);
        }
    }

    /// Q8_0 . Q8_0 over rows in `dot_scalar`'s order, four rows per pass (each activation
    /// block loaded once for the four), each row prefetched four rows ahead. Per block:
    /// |w| times the activation with w's sign (`vpsignb`), pairs summed in int16 (|.| <=
    /// 2 * 127 * 128, no wrap for weights in -127..=127 as Q8_0 quantization gives), widened
    /// with `vpmaddwd` into the eight lanes of four products.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; cols % 32 == 0; `qs`/`d` hold `rows`, `xq`/`xd` n tokens.
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
        const R: usize = 4;
        let nb = cols / 32;
        let ones = _mm256_set1_epi16(1);
        let mut r = rows.start;
        while r < rows.end {
            let nr = (rows.end - r).min(R);
            // Rows past the end repeat the last one (computed, not written).
            let w: [*const i8; R] =
                std::array::from_fn(|i| qs.as_ptr().add((r + i.min(nr - 1)) * cols));
            let wd: [*const f32; R] =
                std::array::from_fn(|i| d.as_ptr().add((r + i.min(nr - 1)) * nb));
            for t in 0..n {
                let a = xq.as_ptr().add(t * cols);
                let ad = xd.as_ptr().add(t * nb);
                let mut acc = [_mm256_setzero_ps(); R];
                for b in 0..nb {
                    let av = _mm256_loadu_si256(a.add(b * 32) as *const _);
                    let adb = *ad.add(b);
                    for i in 0..R {
                        if t == 0 && b % 2 == 0 {
                            // The same line of the row four rows on (the next pass).
                            _mm_prefetch::<_MM_HINT_T0>(w[i].wrapping_add(b * 32 + R * cols));
                        }
                        let wv = _mm256_loadu_si256(w[i].add(b * 32) as *const _);
                        let p16 = _mm256_maddubs_epi16(
                            _mm256_sign_epi8(wv, wv),
                            _mm256_sign_epi8(av, wv),
                        );
                        let p32 = _mm256_madd_epi16(p16, ones);
                        let scale = _mm256_set1_ps(*wd[i].add(b) * adb);
                        acc[i] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(p32), acc[i]);
                    }
                }
                for (i, a) in acc.iter().enumerate().take(nr) {
                    write(r + i, t, hsum8_avx(*a));
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
            for n in [1, 2, 3, 4, 5, 8] {
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
    #[cfg(target_arch = "x86_64")]
    fn q8_0_requantization_matches_quant_q8_0() {
        if !isa_available(Isa::Avx2) {
            eprintln!("skipped: no AVX2/F16C");
            return;
        }
        let mut rng = SplitMix64(21);
        let mut vals: Vec<f32> = (0..32 * 200).map(|_| rng.normal() * 0.05).collect();
        // Blocks whose scaled values land on halves (max 127 -> scale 1), zeros, NaN and
        // infinities, subnormal maxima, the f16 extremes.
        let special: [&[f32]; 6] = [
            &[127.0, 0.5, -0.5, 1.5, -2.5, 126.5, -126.5, 3.0],
            &[0.0],
            &[f32::NAN, 1.0],
            &[f32::INFINITY, -1.0],
            &[6e-8, -6e-8, 1e-7],
            &[65504.0, -65504.0, 0.000061],
        ];
        for (i, sp) in special.iter().enumerate() {
            let blk = &mut vals[i * 32..(i + 1) * 32];
            blk.fill(0.0);
            for (j, &v) in sp.iter().enumerate() {
                blk[j * 3 % 32] = v;
            }
        }
        let w: Vec<u8> = vals
            .iter()
            .flat_map(|&v| crate::quant::float::f32_to_f16(v).to_le_bytes())
            .collect();
        let as_f32: Vec<f32> = w
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect();
        let mut want = vec![0u8; vals.len() / 32 * q8_0::BLOCK_BYTES];
        q8_0::quantize(&as_f32, &mut want);
        let (mut qs, mut ds) = (vec![0i8; vals.len()], vec![0f32; vals.len() / 32]);
        // SAFETY: AVX2 and F16C checked above; sizes as the function asks.
        unsafe { x86::q8_0_row_avx2(&w, &mut qs, &mut ds) };
        for (b, blk) in want.chunks_exact(q8_0::BLOCK_BYTES).enumerate() {
            let d = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
            assert_eq!(ds[b].to_bits(), d.to_bits(), "block {b} scale");
            for j in 0..32 {
                assert_eq!(qs[b * 32 + j], blk[2 + j] as i8, "block {b} value {j}");
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
        // The scalar head is the reference's Q8_0 dot on the same blocks.
        let nb = cols / 32;
        for t in 0..n {
            let mut act = vec![0u8; nb * q8_0::BLOCK_BYTES];
            crate::kernels::quantize_q8_0(&x[t * cols..(t + 1) * cols], &mut act);
            for r in 0..rows {
                let mut row = vec![0u8; nb * q8_0::BLOCK_BYTES];
                for (b, blk) in row.chunks_exact_mut(q8_0::BLOCK_BYTES).enumerate() {
                    let d = crate::quant::float::f32_to_f16(head.d[r * nb + b]);
                    blk[..2].copy_from_slice(&d.to_le_bytes());
                    for (o, &q) in blk[2..].iter_mut().zip(&head.qs[r * cols + b * 32..]) {
                        *o = q as u8;
                    }
                }
                let want = crate::kernels::dot_q8_0_q8_0(&row, &act);
                assert_eq!(scalar[t * rows + r].to_bits(), want.to_bits(), "row {r}");
            }
        }
        let mut f16 = vec![0f32; n * rows];
        matmul_f16(&w, rows, cols, &x, n, &mut f16, rows, 1);
        for isa in [Isa::Avx2, Isa::Avx512Vnni] {
            if !isa_available(isa) {
                continue;
            }
            for (n, threads) in [(1, 1), (1, 2), (3, 2)] {
                let mut got = vec![f32::NAN; n * rows];
                head.matmul_isa(isa, &x, n, &mut got, rows, threads);
                for (g, e) in got.iter().zip(&scalar) {
                    assert_eq!(g.to_bits(), e.to_bits(), "{isa:?} n{n} t{threads}");
                }
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
