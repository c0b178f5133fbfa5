//! Prefill on Intel AMX tiles (`tdpbusd`): 16 rows x 16 tokens x 64 values per instruction,
//! for the whole-row integer sums of per-token activations (I2_S, uniform TQ scales).
//!
//! The intrinsics are unstable in Rust, so the five instructions are written with `asm!`.
//! Whether the CPU and the OS allow the tiles is `kernels::isa::amx_available`.
//!
//! Operands of `tdpbusd tC, tA, tB`: C[m][n] += sum over k of A[m][k] (u8) * B[k][n] (i8),
//! A a tile of 16 rows x 64 bytes, B stored with four consecutive k per (row, n): B's row kk
//! holds, for n = 0..16, the values k = 4kk..4kk+4. Here A is 16 weight rows' codes (0..=2)
//! for 64 values in kernel order, unpacked once per row tile into `Scratch::a`, and B is the
//! activations of 16 tokens, rearranged once per quantization into `ActBuf::amx_b`
//! (`layout_b`). Integer sums are exact, so the results equal the other paths bit for bit.

use std::arch::asm;
use std::arch::x86_64::*;
use std::mem::MaybeUninit;
use std::ops::Range;

use crate::kernels::isa::amx_available;

use super::{finish_rows, ActBuf, Out, TernaryMat, TokenInfo, QK};

/// Tokens per tile and rows per tile.
pub const TILE: usize = 16;
/// Values per tile step (one tile row of 64 bytes).
const KSTEP: usize = 64;

/// Whether a product of this shape goes through the tiles.
pub fn suits(cols: usize, n: usize) -> bool {
    n >= TILE && cols.is_multiple_of(QK) && amx_available()
}

/// Rearranges `n` tokens of kernel-order activations (`q`, rows of `cols`) into B tiles:
/// tile (j, s) (tokens 16j.., values 64s..) at ((j * steps + s) * 1024), padded with zeros.
pub fn layout_b(q: &[i8], n: usize, cols: usize, out: &mut Vec<i8>) {
    let steps = cols / KSTEP;
    let tiles = n.div_ceil(TILE);
    out.clear();
    out.resize(tiles * steps * 1024, 0);
    for t in 0..n {
        let (j, col) = (t / TILE, t % TILE);
        let src = &q[t * cols..(t + 1) * cols];
        for s in 0..steps {
            let tile = &mut out[(j * steps + s) * 1024..][..1024];
            for kk in 0..16 {
                let from = &src[s * KSTEP + 4 * kk..][..4];
                tile[kk * 64 + col * 4..][..4].copy_from_slice(from);
            }
        }
    }
}

/// The tile configuration (palette 1): tmm0..3 the four 16x16 int32 sums, tmm4/5 two A tiles,
/// tmm6/7 two B tiles, each 16 rows of 64 bytes.
#[repr(C, align(64))]
struct Config([u8; 64]);

fn config() -> Config {
    let mut c = [0u8; 64];
    c[0] = 1; // palette
    for t in 0..8 {
        c[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes()); // bytes per row
        c[48 + t] = 16; // rows
    }
    Config(c)
}

thread_local! {
    /// Unpacked codes of one row tile (32 rows x cols bytes) and the stored sums.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Unpacks rows r0..r0+nr of `m` (whole 256 blocks) into bytes 0..=2 in kernel order, row i
/// at a[i * cols..].
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn unpack_rows(m: &TernaryMat, r0: usize, nr: usize, a: &mut [u8]) {
    let cols = m.cols;
    let codes = m.codes();
    let mask = _mm512_set1_epi8(3);
    for i in 0..nr {
        let row = &codes[(r0 + i) * m.row_bytes()..][..m.row_bytes()];
        let dst = &mut a[i * cols..(i + 1) * cols];
        for b in 0..cols / QK {
            let wv = _mm512_loadu_si512(row.as_ptr().add(b * 64) as *const _);
            let parts = [
                _mm512_and_si512(wv, mask),
                _mm512_and_si512(_mm512_srli_epi16::<2>(wv), mask),
                _mm512_and_si512(_mm512_srli_epi16::<4>(wv), mask),
                _mm512_and_si512(_mm512_srli_epi16::<6>(wv), mask),
            ];
            for (k, p) in parts.iter().enumerate() {
                _mm512_storeu_si512(dst.as_mut_ptr().add(b * QK + 64 * k) as *mut _, *p);
            }
        }
    }
}

/// C tiles tmm0..3 <- sum over the steps of A (tmm4: rows of `a0`, tmm5: rows of `a1`) times
/// B (tmm6: tile `b0`, tmm7: tile `b1`), then stored to `c` (four 16x16 int32 blocks: a0b0,
/// a0b1, a1b0, a1b1).
///
/// # Safety
/// The tile configuration is loaded; a0/a1 address 16 rows of `a_stride` bytes with `steps`
/// tile steps each; b0/b1 `steps` consecutive 1 KB tiles; c 4 KB.
unsafe fn tiles_2x2(
    a0: *const u8,
    a1: *const u8,
    a_stride: usize,
    b0: *const i8,
    b1: *const i8,
    steps: usize,
    c: *mut i32,
) {
    // SAFETY (each asm block): the caller guarantees the addresses; the instructions touch
    // only tile registers and the named memory.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        for s in 0..steps {
            asm!(
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tileloadd tmm6, [{b0} + {sb}*1]",
                "tileloadd tmm7, [{b1} + {sb}*1]",
                "tdpbusd tmm0, tmm4, tmm6",
                "tdpbusd tmm1, tmm4, tmm7",
                "tdpbusd tmm2, tmm5, tmm6",
                "tdpbusd tmm3, tmm5, tmm7",
                a0 = in(reg) a0.add(s * KSTEP),
                a1 = in(reg) a1.add(s * KSTEP),
                b0 = in(reg) b0.add(s * 1024),
                b1 = in(reg) b1.add(s * 1024),
                sa = in(reg) a_stride,
                sb = in(reg) 64usize,
                options(nostack, readonly),
            );
        }
        asm!(
            "tilestored [{c} + {s}*1], tmm0",
            "tilestored [{c1} + {s}*1], tmm1",
            "tilestored [{c2} + {s}*1], tmm2",
            "tilestored [{c3} + {s}*1], tmm3",
            c = in(reg) c,
            c1 = in(reg) c.add(256),
            c2 = in(reg) c.add(512),
            c3 = in(reg) c.add(768),
            s = in(reg) 64usize,
            options(nostack),
        );
    }
}

/// Whole-row sums and outputs of rows `rows` (a multiple of 16 long) for every token, on the
/// tiles. Row tiles of 32 (a last one of 16 pairs with itself, its duplicate sums unused),
/// token tiles in pairs likewise.
///
/// # Safety
/// `amx_available()`; `act.amx_b` laid out by `layout_b` for `act`; cols % 256 == 0; `out` holds
/// rows `rows` of every token, written by this caller alone.
pub unsafe fn totals(
    m: &TernaryMat,
    act: &ActBuf,
    rows: Range<usize>,
    info: &dyn Fn(usize) -> TokenInfo,
    out: &Out,
) {
    debug_assert!(rows.len().is_multiple_of(TILE) && m.cols.is_multiple_of(QK));
    let cols = m.cols;
    let steps = cols / KSTEP;
    let token_tiles = act.n.div_ceil(TILE);
    let cfg = config();
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        if scratch.len() < 2 * TILE * cols + 4096 {
            scratch.resize(2 * TILE * cols + 4096, 0);
        }
        let (a, c) = scratch.split_at_mut(2 * TILE * cols);
        // The stored sums, 4-byte aligned inside the byte scratch.
        let c = c.as_mut_ptr().add(c.as_ptr().align_offset(4)) as *mut i32;
        // SAFETY: `cfg` is a valid palette-1 configuration.
        asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
        let mut isum = [0i32; TILE];
        let mut r0 = rows.start;
        while r0 < rows.end {
            let nr = if rows.end - r0 >= 2 * TILE {
                2 * TILE
            } else {
                TILE
            };
            unpack_rows(m, r0, nr, a);
            let a0 = a.as_ptr();
            let a1 = a.as_ptr().add((nr - TILE) * cols);
            let mut j = 0;
            while j < token_tiles {
                let j1 = (j + 1).min(token_tiles - 1);
                let b = act.amx_b.as_ptr();
                tiles_2x2(
                    a0,
                    a1,
                    cols,
                    b.add(j * steps * 1024),
                    b.add(j1 * steps * 1024),
                    steps,
                    c,
                );
                // Block (row tile ri, token tile ji) at c + (2 * ri + ji) * 256, [row][token].
                for (ji, tj) in [j, j1].into_iter().enumerate().take(1 + (j1 > j) as usize) {
                    for ri in 0..nr / TILE {
                        let blk = c.add((2 * ri + ji) * 256);
                        for n in 0..TILE {
                            let t = tj * TILE + n;
                            if t >= act.n {
                                break;
                            }
                            for (mrow, s) in isum.iter_mut().enumerate() {
                                *s = *blk.add(mrow * TILE + n);
                            }
                            let r = r0 + ri * TILE;
                            finish_rows(m.scale, &isum, &info(t), out.rows(t, r, TILE));
                        }
                    }
                }
                j += 2;
            }
            r0 += nr;
        }
        asm!("tilerelease", options(nostack, nomem));
    });
}

// ---------------------------------------------------------------------------------------------
// Q8_K activations (TQ1_0/TQ2_0 under arch `bitnet`): the reference sums each block in eight
// lanes, lane u holding values 32c + 4u..32c + 4u + 4 (c = 0..8, kernel order), and takes
// each lane to f32 on its own. So the tiles here run over one lane of one block (32 values):
// A rows are a weight row's lane-u codes, B rows the tokens' lane-u values, and each 16 x 16
// result is scaled and accumulated in f32 exactly as `q8k_row_scalar` does, for 16 tokens at
// once.

/// Per (token tile j, block b): B tiles of lane u at ((j * nb + b) * 8 + u) * 512 (row c:
/// for n = 0..16 values 32c + 4u.. of token 16j + n), the tokens' scales at (j * nb + b) * 16,
/// and their lane corrections (minus the lane's activation sum) at ((j * nb + b) * 8 + u) * 16.
pub fn layout_b_q8k(act: &mut ActBuf) {
    let (n, cols) = (act.n, act.cols);
    let nb = cols / QK;
    let tiles = n.div_ceil(TILE);
    act.amx_b.clear();
    act.amx_b.resize(tiles * nb * 8 * 512, 0);
    act.amx_d.clear();
    act.amx_d.resize(tiles * nb * TILE, 0.0);
    act.amx_c.clear();
    act.amx_c.resize(tiles * nb * 8 * TILE, 0);
    for t in 0..n {
        let (j, col) = (t / TILE, t % TILE);
        let src = &act.q[t * cols..(t + 1) * cols];
        for b in 0..nb {
            act.amx_d[(j * nb + b) * TILE + col] = act.block_d[t * nb + b];
            for u in 0..8 {
                let tile = ((j * nb + b) * 8 + u) * 512;
                for c in 0..8 {
                    let from = &src[b * QK + 32 * c + 4 * u..][..4];
                    act.amx_b[tile + c * 64 + col * 4..][..4].copy_from_slice(from);
                }
                act.amx_c[((j * nb + b) * 8 + u) * TILE + col] = act.neg_corr[(t * nb + b) * 8 + u];
            }
        }
    }
}

/// Unpacks rows r0..r0+nr (nr <= 32) into lane order: for block b and lane pair p (lanes 2p,
/// 2p+1), row i's 64 bytes at ((b * 4 + p) * 32 + i) * 64, lane 2p's 32 codes first.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn unpack_lanes(m: &TernaryMat, r0: usize, nr: usize, a: &mut [u8]) {
    let codes = m.codes();
    let mask = _mm512_set1_epi8(3);
    // Words (4 codes) of a block: unpacked vector k holds words 16k..16k+16; lane u is words
    // u, 8 + u, .., 56 + u. Step 1 gathers, from vectors x and y, lanes 0..4 (or 4..8) as
    // [x[u], x[8+u], y[u], y[8+u]] per lane; step 2 joins the halves of two lanes.
    let s1_lo = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27);
    let s1_hi = _mm512_setr_epi32(4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31);
    let s2_lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    let s2_hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    for i in 0..nr {
        let row = &codes[(r0 + i) * m.row_bytes()..][..m.row_bytes()];
        for b in 0..m.cols / QK {
            let wv = _mm512_loadu_si512(row.as_ptr().add(b * 64) as *const _);
            let z = [
                _mm512_and_si512(wv, mask),
                _mm512_and_si512(_mm512_srli_epi16::<2>(wv), mask),
                _mm512_and_si512(_mm512_srli_epi16::<4>(wv), mask),
                _mm512_and_si512(_mm512_srli_epi16::<6>(wv), mask),
            ];
            let (a01_lo, a01_hi) = (
                _mm512_permutex2var_epi32(z[0], s1_lo, z[1]),
                _mm512_permutex2var_epi32(z[0], s1_hi, z[1]),
            );
            let (a23_lo, a23_hi) = (
                _mm512_permutex2var_epi32(z[2], s1_lo, z[3]),
                _mm512_permutex2var_epi32(z[2], s1_hi, z[3]),
            );
            let pairs = [
                _mm512_permutex2var_epi32(a01_lo, s2_lo, a23_lo),
                _mm512_permutex2var_epi32(a01_lo, s2_hi, a23_lo),
                _mm512_permutex2var_epi32(a01_hi, s2_lo, a23_hi),
                _mm512_permutex2var_epi32(a01_hi, s2_hi, a23_hi),
            ];
            for (p, v) in pairs.iter().enumerate() {
                let dst = a.as_mut_ptr().add(((b * 4 + p) * 32 + i) * 64);
                _mm512_storeu_si512(dst as *mut _, *v);
            }
        }
    }
}

/// Q8_K outputs of rows `rows` (a multiple of 16 long) for every token, bit-identical to
/// `q8k_row_scalar`.
///
/// # Safety
/// `amx_available()`; `act` in Q8K mode with `layout_b_q8k` done; `out` holds rows `rows` of
/// every token, written by this caller alone.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
#[allow(clippy::needless_range_loop)] // (row tile, token tile, row) index several arrays at once
pub unsafe fn blocks(m: &TernaryMat, act: &ActBuf, rows: Range<usize>, out: &Out) {
    debug_assert!(rows.len().is_multiple_of(TILE) && m.cols.is_multiple_of(QK));
    let nb = m.cols / QK;
    let token_tiles = act.n.div_ceil(TILE);
    let mut c = [0u8; 64];
    c[0] = 1;
    for t in 0..8 {
        let (colsb, nrows) = match t {
            0..=3 => (64u16, 16u8), // sums
            4 | 5 => (32, 16),      // A: 16 rows x one lane (32 codes)
            _ => (64, 8),           // B: 8 rows of four values x 16 tokens
        };
        c[16 + 2 * t..18 + 2 * t].copy_from_slice(&colsb.to_le_bytes());
        c[48 + t] = nrows;
    }
    let cfg = Config(c);
    // f32 accumulators: [row tile 2][token tile 2][lane 8][row 16][token 16].
    let acc_len = 2 * 2 * 8 * TILE * TILE;
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let a_len = nb * 4 * 32 * 64;
        let need = a_len + 4096 + acc_len * 4 + 64;
        if scratch.len() < need {
            scratch.resize(need, 0);
        }
        let (a, rest) = scratch.split_at_mut(a_len);
        let base = rest.as_mut_ptr();
        let cbuf = base.add(base.align_offset(64)) as *mut i32;
        let acc = (cbuf as *mut u8).add(4096) as *mut f32;
        asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
        let mut r0 = rows.start;
        while r0 < rows.end {
            let nr = if rows.end - r0 >= 2 * TILE {
                2 * TILE
            } else {
                TILE
            };
            let row_tiles = nr / TILE;
            unpack_lanes(m, r0, nr, a);
            let mut j = 0;
            while j < token_tiles {
                let j1 = (j + 1).min(token_tiles - 1);
                let tjs = [j, j1];
                let n_tj = 1 + (j1 > j) as usize;
                for b in 0..nb {
                    // d = token scale x row scale, per (row tile, token tile, row).
                    // Only the (row tile, token tile) pairs in use are written and read; left
                    // uninitialized otherwise (zeroing 4 KB per block showed in profiles).
                    let mut d = [[[MaybeUninit::<__m512>::uninit(); TILE]; 2]; 2];
                    for (ri, dr) in d.iter_mut().enumerate().take(row_tiles) {
                        for (ji, dj) in dr.iter_mut().enumerate().take(n_tj) {
                            let da =
                                _mm512_loadu_ps(act.amx_d.as_ptr().add((tjs[ji] * nb + b) * TILE));
                            for (i, v) in dj.iter_mut().enumerate() {
                                let wd = m.block_scales[(r0 + ri * TILE + i) * nb + b];
                                v.write(_mm512_mul_ps(da, _mm512_set1_ps(wd)));
                            }
                        }
                    }
                    for u in 0..8 {
                        let (p, half) = (u / 2, u % 2);
                        let a0 = a.as_ptr().add((b * 4 + p) * 32 * 64 + half * 32);
                        let a1 = a0.add((nr - TILE) * 64);
                        let bt = |tj: usize| act.amx_b.as_ptr().add(((tj * nb + b) * 8 + u) * 512);
                        asm!(
                            "tilezero tmm0",
                            "tilezero tmm1",
                            "tilezero tmm2",
                            "tilezero tmm3",
                            "tileloadd tmm4, [{a0} + {s}*1]",
                            "tileloadd tmm5, [{a1} + {s}*1]",
                            "tileloadd tmm6, [{b0} + {s}*1]",
                            "tileloadd tmm7, [{b1} + {s}*1]",
                            "tdpbusd tmm0, tmm4, tmm6",
                            "tdpbusd tmm1, tmm4, tmm7",
                            "tdpbusd tmm2, tmm5, tmm6",
                            "tdpbusd tmm3, tmm5, tmm7",
                            "tilestored [{c0} + {s}*1], tmm0",
                            "tilestored [{c1} + {s}*1], tmm1",
                            "tilestored [{c2} + {s}*1], tmm2",
                            "tilestored [{c3} + {s}*1], tmm3",
                            a0 = in(reg) a0,
                            a1 = in(reg) a1,
                            b0 = in(reg) bt(j),
                            b1 = in(reg) bt(j1),
                            c0 = in(reg) cbuf,
                            c1 = in(reg) cbuf.add(256),
                            c2 = in(reg) cbuf.add(512),
                            c3 = in(reg) cbuf.add(768),
                            s = in(reg) 64usize,
                            options(nostack),
                        );
                        for ri in 0..row_tiles {
                            for ji in 0..n_tj {
                                let corr = _mm512_loadu_si512(
                                    act.amx_c.as_ptr().add(((tjs[ji] * nb + b) * 8 + u) * TILE)
                                        as *const _,
                                );
                                let blk = cbuf.add((2 * ri + ji) * 256);
                                let accp = acc.add((((ri * 2 + ji) * 8 + u) * TILE) * TILE);
                                for i in 0..TILE {
                                    let l = _mm512_add_epi32(
                                        _mm512_loadu_si512(blk.add(i * TILE) as *const _),
                                        corr,
                                    );
                                    let ap = accp.add(i * TILE);
                                    // The first block starts from 0.0 (as the reference) rather
                                    // than from zeroed memory.
                                    let prev = if b == 0 {
                                        _mm512_setzero_ps()
                                    } else {
                                        _mm512_loadu_ps(ap)
                                    };
                                    // SAFETY: written above for every ri < row_tiles, ji < n_tj.
                                    let di = d[ri][ji][i].assume_init();
                                    let v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(l), di, prev);
                                    _mm512_storeu_ps(ap, v);
                                }
                            }
                        }
                    }
                }
                // The reference's sum of the eight lanes: ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).
                for ri in 0..row_tiles {
                    for (ji, &tj) in tjs.iter().enumerate().take(n_tj) {
                        for i in 0..TILE {
                            let lane = |u: usize| {
                                _mm512_loadu_ps(
                                    acc.add((((ri * 2 + ji) * 8 + u) * TILE + i) * TILE),
                                )
                            };
                            let s = _mm512_add_ps(
                                _mm512_add_ps(
                                    _mm512_add_ps(lane(0), lane(4)),
                                    _mm512_add_ps(lane(2), lane(6)),
                                ),
                                _mm512_add_ps(
                                    _mm512_add_ps(lane(1), lane(5)),
                                    _mm512_add_ps(lane(3), lane(7)),
                                ),
                            );
                            let mut y = [0f32; TILE];
                            _mm512_storeu_ps(y.as_mut_ptr(), s);
                            let r = r0 + ri * TILE + i;
                            for (nn, &v) in y.iter().enumerate() {
                                let t = tj * TILE + nn;
                                if t < act.n {
                                    out.put(r, t, v);
                                }
                            }
                        }
                    }
                }
                j += 2;
            }
            r0 += nr;
        }
        asm!("tilerelease", options(nostack, nomem));
    });
}
