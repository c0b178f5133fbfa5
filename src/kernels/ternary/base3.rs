//! The 1.6-bit layout of a `TernaryMat` (`Layout::Base3`): five ternary codes per byte, read by
//! decode at 0.2 bytes per weight instead of the 2-bit layout's 0.25.
//!
//! A row is a run of 32-byte vectors over the activations' kernel order (`kernel_pos`): chunk
//! c holds the 32 codes of kernel positions 32c..32c + 32, and vector v holds chunks 5v..5v + 5,
//! byte j of the vector carrying position j of each of the five (the last vector may carry
//! fewer; its unused digits are 0). `row_bytes` = ceil(cols / 160) * 32: 512 bytes for 2560
//! columns (1.6 bits per weight), 1408 for 6912 (1.63).
//!
//! A byte holds codes d0..d4 (0..=2) as the base-3 fraction q = d0 d1 d2 d3 d4 (q = 81 d0 +
//! 27 d1 + 9 d2 + 3 d3 + d4): y = ceil(q * 256 / 243), then digit m is the integer part of
//! 3 * frac(y * 3^m / 256), i.e. with y_m = y * 3^m mod 256, d_m = 0 below 86, 1 below 171,
//! else 2 (TQ1_0's arithmetic). We store z = y - 128 (y ^ 0x80) as a signed byte: z_m = y_m -
//! 128 obeys the same recurrence (z_{m+1} = 3 z_m mod 256, since 3 * 128 - 128 = 256), and the
//! thresholds become signed compares (z_m > -43, z_m > 42) that AVX2 has for bytes. So the
//! unpack of 32 codes is two byte adds (z * 3), two compares, an add and an abs: no multiply,
//! no widening.

#[cfg(test)]
use super::{kernel_pos, GROUP};
use super::{Layout, TernaryMat};
use crate::kernels::pool::{self, SendPtr};
use std::sync::atomic::{AtomicBool, Ordering};

/// Codes per chunk, and bytes per vector.
const CHUNK: usize = 32;
/// Chunks (base-3 digits) per vector.
const DIGITS: usize = 5;

/// Bytes of one row of `cols` codes.
pub(super) fn row_bytes(cols: usize) -> usize {
    (cols / CHUNK).div_ceil(DIGITS) * CHUNK
}

/// The stored byte of codes `d` (each 0..=2; `d[m]` is digit m).
pub(super) fn encode(d: [u8; DIGITS]) -> u8 {
    let q = d.iter().fold(0u32, |q, &c| q * 3 + c as u32);
    let y = (q * 256).div_ceil(243);
    (y as u8) ^ 0x80
}

/// Digit m (0..5) of a stored byte.
#[inline(always)]
pub(super) fn digit(stored: u8, m: usize) -> u8 {
    let mut z = stored as i8;
    for _ in 0..m {
        z = z.wrapping_mul(3);
    }
    (z > -43) as u8 + (z > 42) as u8
}

/// The code (0..=2) at kernel position p of a row in this layout.
pub(super) fn code(row: &[u8], p: usize) -> u8 {
    let c = p / CHUNK;
    digit(row[c / DIGITS * CHUNK + p % CHUNK], c % DIGITS)
}

/// The codes of a 2-bit row in kernel order (`digits[p]` for kernel position p): chunk c of a
/// whole block b is value group k = (c % 8) / 2 of the block's group g = c % 2 (bit pair k of
/// the group's bytes); chunk k of a trailing half block is its bit pair k.
fn bits2_kernel_order(row: &[u8], cols: usize, digits: &mut [u8]) {
    let nb = cols / super::QK;
    for c in 0..cols / CHUNK {
        let (base, k) = if c < 8 * nb {
            (c / 8 * 64 + c % 2 * 32, (c % 8) / 2)
        } else {
            (nb * 64, c - 8 * nb)
        };
        for (d, &b) in digits[c * CHUNK..][..CHUNK]
            .iter_mut()
            .zip(&row[base..base + CHUNK])
        {
            *d = (b >> (2 * k)) & 3;
        }
    }
}

impl TernaryMat {
    /// The same matrix in the 1.6-bit layout (the 2-bit codes are dropped), rows converted in
    /// parallel on the kernel pool. A matrix holding code 3 (weight +2: only a malformed
    /// I2_S or TQ2_0 file has one) has no base-3 form and is returned as it is.
    pub fn into_base3(self) -> TernaryMat {
        if self.layout == Layout::Base3 {
            return self;
        }
        let (rows, cols) = (self.rows, self.cols);
        let mut out = TernaryMat::alloc(rows, cols, Layout::Base3);
        let rb = out.row_bytes();
        let dst = SendPtr(out.codes_mut().as_mut_ptr());
        let src = &self;
        let code3 = AtomicBool::new(false);
        let pool = pool::global();
        pool.run(pool.max_threads(), &|i, n| {
            // The row's codes in kernel order, padded to whole vectors with 0.
            let mut digits = vec![0u8; rb / CHUNK * DIGITS * CHUNK];
            for r in pool::split(rows, 16, i, n) {
                bits2_kernel_order(src.row(r), cols, &mut digits);
                if digits.iter().any(|&c| c > 2) {
                    code3.store(true, Ordering::Relaxed);
                    return;
                }
                // SAFETY: row r's bytes of the new codes belong to this thread alone (the row
                // ranges are disjoint) and lie inside them; `out` outlives `run`.
                let row = unsafe { std::slice::from_raw_parts_mut(dst.get().add(r * rb), rb) };
                for (v, bytes) in row.chunks_exact_mut(CHUNK).enumerate() {
                    let base = v * DIGITS * CHUNK;
                    for (j, b) in bytes.iter_mut().enumerate() {
                        *b = encode(std::array::from_fn(|m| digits[base + m * CHUNK + j]));
                    }
                }
            }
        });
        if code3.load(Ordering::Relaxed) {
            return self;
        }
        out.block_scales = self.block_scales;
        out.scale = self.scale;
        out
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::{CHUNK, DIGITS};
    use crate::kernels::ternary::x86::PREFETCH;
    use crate::kernels::ternary::QK;
    use std::arch::x86_64::*;

    /// The five code vectors (bytes 0..=2) of one stored vector. Written without closures:
    /// a closure would not inherit the caller's AVX2 and its intrinsics would become calls.
    #[inline(always)]
    unsafe fn digits(stored: __m256i) -> [__m256i; DIGITS] {
        let (lo, hi) = (_mm256_set1_epi8(-43), _mm256_set1_epi8(42));
        let mut z = stored;
        let mut out = [z; DIGITS];
        for (m, o) in out.iter_mut().enumerate() {
            if m > 0 {
                z = _mm256_add_epi8(_mm256_add_epi8(z, z), z);
            }
            // Each compare is -1 past its threshold: their sum is -code.
            let neg = _mm256_add_epi8(_mm256_cmpgt_epi8(z, lo), _mm256_cmpgt_epi8(z, hi));
            *o = _mm256_abs_epi8(neg);
        }
        out
    }

    /// The five code vectors of stored vector v of row `w`, the stream prefetched ahead on
    /// decode (one token).
    #[inline(always)]
    unsafe fn vector_digits<const NT: usize>(w: *const u8, v: usize) -> [__m256i; DIGITS] {
        if NT == 1 {
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(v * CHUNK + PREFETCH) as *const i8);
        }
        digits(_mm256_loadu_si256(w.add(v * CHUNK) as *const _))
    }

    /// s16[t] += the int16 pair sums of chunk c's codes `dm` times token t's activations.
    #[inline(always)]
    unsafe fn add_chunk<const NT: usize>(
        dm: __m256i,
        c: usize,
        q: &[*const i8; NT],
        s16: &mut [__m256i; NT],
    ) {
        for t in 0..NT {
            let a = _mm256_loadu_si256(q[t].add(c * CHUNK) as *const _);
            s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(dm, a));
        }
    }

    /// Whole-row integer sums sum(code * q) of row `w` for NT tokens (the totals path). Codes
    /// are at most 2, so a maddubs pair is at most |512| and twelve vectors of five chunks
    /// (|30720|) are added in int16 before widening.
    ///
    /// # Safety
    /// AVX2; `w` holds `row_bytes(cols)` bytes, each `q[t]` `cols` activations.
    #[target_feature(enable = "avx2")]
    pub unsafe fn row_totals_avx2<const NT: usize>(
        w: *const u8,
        cols: usize,
        q: [*const i8; NT],
    ) -> [i32; NT] {
        let ones = _mm256_set1_epi16(1);
        let chunks = cols / CHUNK;
        let nv = chunks.div_ceil(DIGITS);
        let mut acc = [_mm256_setzero_si256(); NT];
        let mut v0 = 0;
        while v0 < nv {
            let mut s16 = [_mm256_setzero_si256(); NT];
            for v in v0..(v0 + 12).min(nv) {
                let d = vector_digits::<NT>(w, v);
                for (m, &dm) in d.iter().enumerate() {
                    let c = v * DIGITS + m;
                    if c >= chunks {
                        break;
                    }
                    add_chunk(dm, c, &q, &mut s16);
                }
            }
            for t in 0..NT {
                acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(s16[t], ones));
            }
            v0 += 12;
        }
        let mut out = [0i32; NT];
        for t in 0..NT {
            out[t] = crate::kernels::ternary::x86::hsum256_epi32(acc[t]);
        }
        out
    }

    /// The Q8_K dot of `q8k_row_scalar` for NT tokens of one row, bit for bit: each 256 block
    /// is chunks 8b..8b + 8, whose int16 sums (|4096| at most) give the same eight int32 lanes
    /// as the 2-bit kernel's, then the same correction, conversion and fma per block.
    ///
    /// # Safety
    /// AVX2 and FMA; `w` holds `row_bytes(256 nb)` bytes, `w_d` nb scales, each token `q[t]`
    /// 256 nb activations, `a_d[t]` nb scales and `corr[t]` 8 nb corrections.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn row_blocks_avx2<const NT: usize>(
        w: *const u8,
        w_d: *const f32,
        nb: usize,
        q: [*const i8; NT],
        a_d: [*const f32; NT],
        corr: [*const i32; NT],
    ) -> [f32; NT] {
        let ones = _mm256_set1_epi16(1);
        let chunks = nb * QK / CHUNK;
        let mut accf = [_mm256_setzero_ps(); NT];
        let mut s16 = [_mm256_setzero_si256(); NT];
        for v in 0..chunks.div_ceil(DIGITS) {
            let d = vector_digits::<NT>(w, v);
            for (m, &dm) in d.iter().enumerate() {
                let c = v * DIGITS + m;
                if c >= chunks {
                    break;
                }
                add_chunk(dm, c, &q, &mut s16);
                if c % 8 == 7 {
                    let b = c / 8;
                    let wd = *w_d.add(b);
                    for t in 0..NT {
                        let cr = _mm256_loadu_si256(corr[t].add(b * 8) as *const _);
                        let lanes = _mm256_sub_epi32(_mm256_madd_epi16(s16[t], ones), cr);
                        let dd = _mm256_set1_ps(*a_d[t].add(b) * wd);
                        accf[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), dd, accf[t]);
                        s16[t] = _mm256_setzero_si256();
                    }
                }
            }
        }
        let mut out = [0f32; NT];
        for t in 0..NT {
            out[t] = crate::kernels::dot::hsum8_avx(accf[t]);
        }
        out
    }

    #[cfg(test)]
    #[test]
    fn digits_match_scalar() {
        if !is_x86_feature_detected!("avx2") {
            return;
        }
        // Every byte value, valid encodings or not, unpacks as the scalar `digit` does.
        for base in (0..256).step_by(32) {
            let bytes: [u8; 32] = std::array::from_fn(|j| (base + j) as u8);
            let mut got = [[0u8; 32]; DIGITS];
            // SAFETY: AVX2 detected above; 32-byte loads and stores of local arrays.
            unsafe {
                let d = digits(_mm256_loadu_si256(bytes.as_ptr() as *const _));
                for (g, v) in got.iter_mut().zip(d) {
                    _mm256_storeu_si256(g.as_mut_ptr() as *mut _, v);
                }
            }
            for (m, g) in got.iter().enumerate() {
                for (j, &b) in bytes.iter().enumerate() {
                    assert_eq!(g[j], super::digit(b, m), "byte {b} digit {m}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_tuple_round_trips() {
        for q in 0..243u32 {
            let d: [u8; DIGITS] = std::array::from_fn(|m| (q / 3u32.pow(4 - m as u32) % 3) as u8);
            let b = encode(d);
            for (m, &want) in d.iter().enumerate() {
                assert_eq!(digit(b, m), want, "q {q} digit {m}");
            }
        }
    }

    #[test]
    fn bits2_kernel_order_matches_kernel_pos() {
        // A row of distinct codes per position pattern: the fast reordering against code().
        for cols in [256, 384, 2560, 640] {
            let row: Vec<u8> = (0..cols / 4).map(|i| (i * 37 % 251) as u8).collect();
            let mut got = vec![9u8; cols];
            bits2_kernel_order(&row, cols, &mut got);
            for e in 0..cols {
                let want = (row[e / GROUP * 32 + e % 32] >> (2 * ((e % GROUP) / 32))) & 3;
                assert_eq!(got[kernel_pos(e, cols)], want, "cols {cols} e {e}");
            }
        }
    }

    #[test]
    fn row_bytes_are_ceil_of_a_fifth() {
        assert_eq!(row_bytes(2560), 512);
        assert_eq!(row_bytes(6912), 1408);
        assert_eq!(row_bytes(128), 32);
        assert_eq!(row_bytes(800), 160);
    }
}
