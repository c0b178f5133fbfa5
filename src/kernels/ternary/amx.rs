//! Prefill on Intel AMX tiles (`tdpbusd`): 16 rows x 16 tokens x 64 values per instruction,
//! for the whole-row integer sums of per-token activations (I2_S, uniform TQ scales).
//!
//! The intrinsics are unstable in Rust, so the five instructions are written with `asm!`.
//! Linux hands out the tile registers only after `arch_prctl(ARCH_REQ_XCOMP_PERM,
//! XFEATURE_XTILEDATA)`; `available` asks once and says no when the CPU or kernel refuses.
//!
//! Operands of `tdpbusd tC, tA, tB`: C[m][n] += sum over k of A[m][k] (u8) * B[k][n] (i8),
//! A a tile of 16 rows x 64 bytes, B stored with four consecutive k per (row, n): B's row kk
//! holds, for n = 0..16, the values k = 4kk..4kk+4. Here A is 16 weight rows' codes (0..=2)
//! for 64 values in kernel order, unpacked once per row tile into `Scratch::a`, and B is the
//! activations of 16 tokens, rearranged once per quantization into `ActBuf::amx_b`
//! (`layout_b`). Integer sums are exact, so the results equal the other paths bit for bit.

use std::arch::asm;
use std::arch::x86_64::*;
use std::ops::Range;
use std::sync::OnceLock;

use super::{finish_rows, ActBuf, Out, TernaryMat, TokenInfo, QK};

/// Tokens per tile and rows per tile.
pub const TILE: usize = 16;
/// Values per tile step (one tile row of 64 bytes).
const KSTEP: usize = 64;

/// Whether the CPU has AMX-INT8 and the kernel let this process use the tiles.
pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        if std::env::var_os("BITNET_NO_AMX").is_some() {
            return false;
        }
        let leaf7 = __cpuid_count(7, 0);
        let (tile, int8) = (leaf7.edx & (1 << 24) != 0, leaf7.edx & (1 << 25) != 0);
        tile && int8 && request_tiles()
    })
}

/// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0.
fn request_tiles() -> bool {
    #[cfg(target_os = "linux")]
    {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: a plain system call that only changes this process's permission to use
        // the AMX state; rcx and r11 are clobbered by `syscall`.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// Whether a product of this shape goes through the tiles.
pub fn suits(cols: usize, n: usize) -> bool {
    n >= TILE && cols.is_multiple_of(QK) && available()
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
/// `available()`; `act.amx_b` laid out by `layout_b` for `act`; cols % 256 == 0; `out` holds
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
