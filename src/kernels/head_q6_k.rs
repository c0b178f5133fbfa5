//! Q6_K matrices times Q8_K activations on the pool's threads: the 6-bit output head
//! (`Q6Head`, requantized at load by `quant::q6_k::quantize`, 0.82 bytes per weight) and any
//! matrix stored as Q6_K (Microsoft's `--quant-embd` heads; `kernels::matmul` sends them here).
//!
//! Every output is `kernels::dot_q6_k_q8_k` (the reference's x86 order: eight exact integer
//! lanes per block, lane u holding values 4u..4u+3 of every 32, the -32 offset taken out
//! through the activation sums, then `acc[u] += (d_w * d_x) * lane[u]` fused, `hsum8`). The
//! AVX2 kernel forms the same integer lanes (`maddubs` of codes and values, `madd` by the
//! group scales) and the same float steps, so it is bit-identical.

use super::isa::{best_isa, Isa};
use super::pool::{self, SendPtr};
use crate::quant::{q6_k, q8_k};

/// A Q6_K head: `rows` rows of `cols / 256` blocks, as in the format.
pub struct Q6Head {
    pub rows: usize,
    pub cols: usize,
    blocks: Vec<u8>, // [rows, cols / 256 * 210]
}

impl Q6Head {
    /// A head of `cols` columns (a multiple of 256) and no rows yet, with room for `capacity`
    /// rows (one allocation).
    pub fn new(cols: usize, capacity: usize) -> Q6Head {
        assert!(cols.is_multiple_of(q6_k::BLOCK));
        let mut blocks = Vec::new();
        blocks.reserve_exact(capacity * cols / q6_k::BLOCK * q6_k::BLOCK_BYTES);
        Q6Head {
            rows: 0,
            cols,
            blocks,
        }
    }

    /// Quantizes `rows` more rows with `quant::q6_k::quantize` and appends them; `to_f32(r,
    /// out)` writes row r of the slice as f32 values. Rows are split over the pool's threads.
    pub fn append_rows(&mut self, rows: usize, to_f32: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        let cols = self.cols;
        let row_bytes = cols / q6_k::BLOCK * q6_k::BLOCK_BYTES;
        let start = self.blocks.len();
        self.blocks.reserve_exact(rows * row_bytes);
        // The new rows are zeroed by the thread that quantizes them, not here: the first touch
        // of fresh pages (the kernel clearing them) is then split between the threads too.
        let out = SendPtr(self.blocks.as_mut_ptr().wrapping_add(start));
        let pool = pool::global();
        pool.run(pool.max_threads(), &|i, nt| {
            let mut row = vec![0f32; cols];
            for r in pool::split(rows, 64, i, nt) {
                to_f32(r, &mut row);
                // SAFETY: row r's bytes are written by this thread alone (rows split
                // disjointly), inside the capacity reserved above (zeroed before the slice is
                // made); the buffer outlives `run`.
                let dst = unsafe {
                    let p = out.get().add(r * row_bytes);
                    std::ptr::write_bytes(p, 0, row_bytes);
                    std::slice::from_raw_parts_mut(p, row_bytes)
                };
                q6_k::quantize(&row, dst);
            }
        });
        // SAFETY: every new row was initialized above (split covers 0..rows), within capacity.
        unsafe { self.blocks.set_len(start + rows * row_bytes) };
        self.rows += rows;
    }

    pub fn bytes(&self) -> usize {
        self.blocks.len()
    }

    /// The Q6_K blocks, [rows, cols / 256 * 210].
    pub fn blocks(&self) -> &[u8] {
        &self.blocks
    }

    /// out[t * out_stride + r] = Q6_K row r . Q8_K(x_t).
    pub fn matmul(&self, x: &[f32], n: usize, out: &mut [f32], out_stride: usize, threads: usize) {
        matmul(
            &self.blocks,
            self.rows,
            self.cols,
            x,
            n,
            out,
            out_stride,
            threads,
        )
    }
}

/// The head cache (`model::head_cache`) holds it as its blocks.
impl crate::model::head_cache::CachedHead for Q6Head {
    fn zeroed(rows: usize, cols: usize) -> Self {
        assert!(cols.is_multiple_of(q6_k::BLOCK));
        Q6Head {
            rows,
            cols,
            blocks: vec![0; rows * cols / q6_k::BLOCK * q6_k::BLOCK_BYTES],
        }
    }

    fn byte_parts(&self) -> [&[u8]; 2] {
        [&self.blocks, &[]]
    }

    fn byte_parts_mut(&mut self) -> [&mut [u8]; 2] {
        [&mut self.blocks, &mut []]
    }
}

/// out[t * out_stride + r] = row r of the Q6_K matrix `w` (rows x cols) . Q8_K(x_t), on the
/// CPU's best level.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n: usize,
    out: &mut [f32],
    out_stride: usize,
    threads: usize,
) {
    matmul_isa(best_isa(), w, rows, cols, x, n, out, out_stride, threads)
}

/// `matmul` on a given ISA level (Scalar: `kernels::dot_q6_k_q8_k` per output).
#[allow(clippy::too_many_arguments)]
pub fn matmul_isa(
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
    assert!(cols.is_multiple_of(q6_k::BLOCK));
    let nb = cols / q6_k::BLOCK;
    let (wb, ab) = (nb * q6_k::BLOCK_BYTES, nb * q8_k::BLOCK_BYTES);
    assert!(w.len() >= rows * wb && x.len() >= n * cols);
    assert!(n == 0 || out.len() >= (n - 1) * out_stride + rows);
    let mut acts = vec![0u8; n * ab];
    for (xt, a) in x.chunks_exact(cols).zip(acts.chunks_exact_mut(ab)) {
        super::quantize_q8_k(xt, a);
    }
    let acts = &acts;
    let out_ptr = SendPtr(out.as_mut_ptr());
    pool::global().run(threads, &|i, nt| {
        for r in pool::split(rows, 16, i, nt) {
            let row = &w[r * wb..(r + 1) * wb];
            for (t, a) in acts.chunks_exact(ab).enumerate() {
                let v = match isa {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the ISA was detected before being chosen (AVX2 and FMA come with
                    // every vector level, `kernels::isa`); row and a are whole blocks.
                    Isa::Avx2 | Isa::Avx512Vnni | Isa::Amx => unsafe {
                        x86::dot_q6_k_q8_k_avx2(row, a)
                    },
                    _ => super::dot_q6_k_q8_k(row, a),
                };
                // SAFETY: this thread writes only its rows (disjoint); `out` is long enough
                // (asserted).
                unsafe { *out_ptr.get().add(t * out_stride + r) = v };
            }
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::kernels::dot::hsum8_avx;
    use crate::quant::float::f16_to_f32;
    use crate::quant::{q6_k, q8_k};

    /// `kernels::dot_q6_k_q8_k` with AVX2, the same bits: per 32 values, `maddubs` of the
    /// unsigned codes and the int8 values (pairs, at most 2 * 63 * 128: no saturation), `madd`
    /// by the two groups' scales gives lane u = values 4u..4u+3 scaled, exactly the scalar's
    /// integer lanes; the offset 32 * (bsums . scales) per lane is a `madd` too.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; `w` and `a` hold the same number of whole blocks.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q6_k_q8_k_avx2(w: &[u8], a: &[u8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let low4 = _mm256_set1_epi8(0x0f);
        let low2 = _mm256_set1_epi8(0x03);
        for (wb, ab) in w
            .chunks_exact(q6_k::BLOCK_BYTES)
            .zip(a.chunks_exact(q8_k::BLOCK_BYTES))
        {
            let (ql, qh, sc) = (&wb[..128], &wb[128..192], &wb[192..208]);
            let qs = &ab[q8_k::QS..q8_k::BSUMS];
            let mut lanes = _mm256_setzero_si256();
            for c in 0..8 {
                let (h, j) = (c / 4, c % 4);
                // SAFETY (all loads): ql[64h + 32(j % 2)..][..32], qh[32h..][..32] and
                // qs[32c..][..32] lie inside the block slices (128, 64 and 256 bytes).
                let lo = _mm256_loadu_si256(ql[64 * h + 32 * (j % 2)..].as_ptr() as *const __m256i);
                let hi = _mm256_loadu_si256(qh[32 * h..].as_ptr() as *const __m256i);
                let lo = _mm256_and_si256(
                    _mm256_srl_epi16(lo, _mm_cvtsi32_si128(4 * (j / 2) as i32)),
                    low4,
                );
                let hi =
                    _mm256_and_si256(_mm256_srl_epi16(hi, _mm_cvtsi32_si128(2 * j as i32)), low2);
                let codes = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
                let q = _mm256_loadu_si256(qs[32 * c..].as_ptr() as *const __m256i);
                let pairs = _mm256_maddubs_epi16(codes, q);
                let scales = _mm256_setr_m128i(
                    _mm_set1_epi16(sc[2 * c] as i8 as i16),
                    _mm_set1_epi16(sc[2 * c + 1] as i8 as i16),
                );
                lanes = _mm256_add_epi32(lanes, _mm256_madd_epi16(pairs, scales));
            }
            let bsums = _mm256_loadu_si256(ab[q8_k::BSUMS..].as_ptr() as *const __m256i);
            let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(sc.as_ptr() as *const __m128i));
            let offset = _mm256_slli_epi32(_mm256_madd_epi16(bsums, sc16), 5);
            let lanes = _mm256_cvtepi32_ps(_mm256_sub_epi32(lanes, offset));
            let ad = f32::from_le_bytes([ab[0], ab[1], ab[2], ab[3]]);
            let d = ad * f16_to_f32(u16::from_le_bytes([wb[208], wb[209]]));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), lanes, acc);
        }
        // SAFETY: AVX is part of AVX2.
        unsafe { hsum8_avx(acc) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn random(rows: usize, cols: usize, seed: u64) -> (Q6Head, Vec<f32>) {
        let mut rng = SplitMix64(seed);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.normal()).collect();
        let mut head = Q6Head::new(cols, rows);
        head.append_rows(rows, &|r, out| {
            out.copy_from_slice(&w[r * cols..(r + 1) * cols])
        });
        (head, w)
    }

    #[test]
    fn avx2_is_bit_identical_to_the_scalar_dot() {
        if best_isa() == Isa::Scalar {
            return;
        }
        // nb odd and even; tokens of ordinary, large and tiny magnitudes.
        for (rows, cols) in [(37, 256), (64, 768), (19, 2560)] {
            let (head, _) = random(rows, cols, rows as u64);
            let mut rng = SplitMix64(9);
            let n = 3;
            let x: Vec<f32> = (0..n * cols)
                .map(|i| rng.normal() * [1.0, 300.0, 1e-3][i / cols])
                .collect();
            let mut want = vec![0f32; n * rows];
            let mut got = vec![0f32; n * rows];
            matmul_isa(
                Isa::Scalar,
                head.blocks(),
                rows,
                cols,
                &x,
                n,
                &mut want,
                rows,
                1,
            );
            for threads in [1, 2] {
                head.matmul(&x, n, &mut got, rows, threads);
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{rows}x{cols}, {threads} threads"
                );
            }
        }
    }

    #[test]
    fn random_bytes_too() {
        // Any bytes are a Q6_K block (scales of -128 included): the kernels still agree.
        if best_isa() == Isa::Scalar {
            return;
        }
        let mut rng = SplitMix64(3);
        let (rows, cols) = (8, 512);
        let mut w: Vec<u8> = (0..rows * 2 * q6_k::BLOCK_BYTES)
            .map(|_| rng.next_u64() as u8)
            .collect();
        for b in w.chunks_exact_mut(q6_k::BLOCK_BYTES) {
            b[208..].copy_from_slice(&0x2c00u16.to_le_bytes()); // d = 1/16: finite sums
        }
        let x: Vec<f32> = (0..cols).map(|_| rng.normal()).collect();
        let (mut want, mut got) = (vec![0f32; rows], vec![0f32; rows]);
        matmul_isa(Isa::Scalar, &w, rows, cols, &x, 1, &mut want, rows, 1);
        matmul(&w, rows, cols, &x, 1, &mut got, rows, 2);
        assert_eq!(got, want);
    }

    #[test]
    fn head_is_close_to_its_f32_values() {
        let (rows, cols) = (32, 512);
        let (head, w) = random(rows, cols, 1);
        let mut rng = SplitMix64(2);
        let x: Vec<f32> = (0..cols).map(|_| rng.normal()).collect();
        let mut got = vec![0f32; rows];
        head.matmul(&x, 1, &mut got, rows, 1);
        for (r, &g) in got.iter().enumerate() {
            let exact: f32 = w[r * cols..(r + 1) * cols]
                .iter()
                .zip(&x)
                .map(|(a, b)| a * b)
                .sum();
            // Unit-normal weights: a group's step is about 2 / 32, the rounding error's sd 0.018;
            // Q8_K activations add about 0.007: the sum's sd is under 0.02 sqrt(cols). 5 sd.
            assert!(
                (g - exact).abs() < 0.1 * (cols as f32).sqrt(),
                "row {r}: {g} vs {exact}"
            );
        }
    }
}
