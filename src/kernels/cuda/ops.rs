//! Typed launchers for the kernels of `kernels.cu`: one function per kernel, its arguments in
//! the order of the C signature, and the launch shape it expects. Addresses are device
//! addresses (`DevBuf::ptr`); 0 stands for a null pointer where the kernel allows one.

use super::{Arg, Device};
use crate::error::{Error, Result};

/// Activation formats `norm_act` can produce (kernels.cu's ACT_*).
pub const ACT_NONE: i32 = 0;
pub const ACT_PER_TOKEN: i32 = 1;
pub const ACT_Q8K: i32 = 2;

/// How a ternary segment finishes its integer sums (kernels.cu's KIND_*).
pub const KIND_TENSOR: i32 = 0;
pub const KIND_UNIFORM: i32 = 1;
pub const KIND_BLOCKS: i32 = 2;
pub const KIND_Q8K: i32 = 3;

/// Float element types (weights, embedding tables).
pub const FLT_F32: i32 = 0;
pub const FLT_F16: i32 = 1;
pub const FLT_BF16: i32 = 2;

/// Most matrices in one stack.
pub const MAX_SEGS: usize = 3;

/// One matrix of a stack sharing an input (kernels.cu's `struct Seg`, same layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Seg {
    /// Rows of the stack up to the end of this matrix.
    pub row_end: i32,
    pub kind: i32,
    pub wscale: f32,
    pub pscale: f32,
    /// f32 output, `out_stride` floats per token.
    pub out: u64,
    pub out_stride: i32,
    /// 1: add into `out` (a residual), 0: overwrite.
    pub accumulate: i32,
}

/// kernels.cu's `struct Segs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Segs {
    pub s: [Seg; MAX_SEGS],
    pub n: i32,
}

/// Device addresses of int8 activation rows and their per-token and per-block numbers (as
/// `norm_act` writes them): q [n, cols] i8, tsum [n] i32, tscale [n] f32, bsum [n, cols/256]
/// i32, bd [n, cols/256] f32, corr [n, cols/256, 8] i32.
#[derive(Clone, Copy, Debug, Default)]
pub struct ActPtrs {
    pub q: u64,
    pub tsum: u64,
    pub tscale: u64,
    pub bsum: u64,
    pub bd: u64,
    pub corr: u64,
}

fn dim(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v)
        .ok()
        .filter(|&v| v > 0 && v < (1 << 31))
        .ok_or_else(|| Error::bad_input(format!("CUDA: {what} = {v} is out of range")))
}

fn i32v(v: usize) -> Arg {
    Arg::I32(v as i32)
}

/// x[t] = table[tokens[t]] as f32 for `n` tokens (`ty`: FLT_*).
pub fn embed_rows(
    dev: &dyn Device,
    table: u64,
    ty: i32,
    tokens: u64,
    x: u64,
    n: usize,
    n_embd: usize,
) -> Result<()> {
    dev.launch(
        "embed_rows",
        [dim(n, "tokens")?, 1, 1],
        [256, 1, 1],
        &[
            Arg::Ptr(table),
            Arg::I32(ty),
            Arg::Ptr(tokens),
            Arg::Ptr(x),
            i32v(n_embd),
        ],
    )
}

/// The input of `norm_act`: rows of `x` (and `y` for a pre-op), `stride` floats apart, picked
/// by the index list `rows` (0: rows 0..n in order).
#[derive(Clone, Copy, Debug)]
pub struct NormIn {
    pub x: u64,
    pub y: u64,
    /// 0 none, 1 silu(x) * y, 2 relu(x)^2 * y.
    pub op: i32,
    pub stride: usize,
    pub rows: u64,
}

/// RMSNorm of `n_rows` rows of `cols` values into `out` ([n_rows, cols]), then their
/// activations in format `mode` (ACT_*) into `act`.
#[allow(clippy::too_many_arguments)]
pub fn norm_act(
    dev: &dyn Device,
    inp: NormIn,
    n_rows: usize,
    out: u64,
    w: u64,
    cols: usize,
    eps: f32,
    mode: i32,
    act: &ActPtrs,
) -> Result<()> {
    dev.launch(
        "norm_act",
        [dim(n_rows, "rows")?, 1, 1],
        [256, 1, 1],
        &[
            Arg::Ptr(inp.x),
            Arg::Ptr(inp.y),
            Arg::I32(inp.op),
            i32v(inp.stride),
            Arg::Ptr(inp.rows),
            Arg::Ptr(out),
            Arg::Ptr(w),
            i32v(cols),
            Arg::F32(eps),
            Arg::I32(mode),
            Arg::Ptr(act.q),
            Arg::Ptr(act.tsum),
            Arg::Ptr(act.tscale),
            Arg::Ptr(act.bsum),
            Arg::Ptr(act.bd),
            Arg::Ptr(act.corr),
        ],
    )
}

/// Tokens at and above which the ternary GEMM is used (total kinds only).
pub const GEMM_MIN_TOKENS: usize = 16;

/// A stack of ternary matrices (`rows` x `cols` codes at `codes`) times `n` tokens of int8
/// activations. `wblk`: per-row block scales [rows, cols/256] (0 if no segment needs them);
/// `blocks`: some segment is KIND_BLOCKS or KIND_Q8K.
#[allow(clippy::too_many_arguments)]
pub fn tern_matmul(
    dev: &dyn Device,
    codes: u64,
    rows: usize,
    cols: usize,
    act: &ActPtrs,
    n: usize,
    wblk: u64,
    blocks: bool,
    segs: &Segs,
) -> Result<()> {
    if !blocks && n >= GEMM_MIN_TOKENS {
        return dev.launch(
            "tern_gemm",
            [
                dim(rows.div_ceil(64), "rows")?,
                dim(n.div_ceil(64), "tokens")?,
                1,
            ],
            [256, 1, 1],
            &[
                Arg::Ptr(codes),
                i32v(rows),
                i32v(cols),
                Arg::Ptr(act.q),
                i32v(n),
                Arg::Ptr(act.tsum),
                Arg::Ptr(act.tscale),
                Arg::Segs(*segs),
            ],
        );
    }
    dev.launch(
        "tern_gemv",
        [
            dim(rows.div_ceil(8), "rows")?,
            dim(n.div_ceil(4), "tokens")?,
            1,
        ],
        [256, 1, 1],
        &[
            Arg::Ptr(codes),
            i32v(rows),
            i32v(cols),
            Arg::Ptr(act.q),
            i32v(n),
            Arg::Ptr(act.tsum),
            Arg::Ptr(act.tscale),
            Arg::Ptr(act.bsum),
            Arg::Ptr(act.bd),
            Arg::Ptr(act.corr),
            Arg::Ptr(wblk),
            Arg::I32(blocks as i32),
            Arg::Segs(*segs),
        ],
    )
}

/// A stack of float matrices (`wty`: FLT_*) times `n` f32 rows of `x`, each rounded as `xround`
/// says (FLT_F16 / FLT_BF16, anything else: not rounded).
#[allow(clippy::too_many_arguments)]
pub fn flt_matmul(
    dev: &dyn Device,
    w: u64,
    wty: i32,
    rows: usize,
    cols: usize,
    x: u64,
    n: usize,
    xround: i32,
    segs: &Segs,
) -> Result<()> {
    dev.launch(
        "flt_gemv",
        [
            dim(rows.div_ceil(64), "rows")?,
            dim(n.div_ceil(4), "tokens")?,
            1,
        ],
        [128, 1, 1],
        &[
            Arg::Ptr(w),
            Arg::I32(wty),
            i32v(rows),
            i32v(cols),
            Arg::Ptr(x),
            i32v(n),
            Arg::I32(xround),
            Arg::Segs(*segs),
        ],
    )
}

/// A stack of float matrices times `n` tokens of per-token int8 activations (f64 sums).
#[allow(clippy::too_many_arguments)]
pub fn flt_i8_matmul(
    dev: &dyn Device,
    w: u64,
    wty: i32,
    rows: usize,
    cols: usize,
    act: &ActPtrs,
    n: usize,
    segs: &Segs,
) -> Result<()> {
    dev.launch(
        "flt_i8_gemv",
        [
            dim(rows.div_ceil(8), "rows")?,
            dim(n.div_ceil(4), "tokens")?,
            1,
        ],
        [256, 1, 1],
        &[
            Arg::Ptr(w),
            Arg::I32(wty),
            i32v(rows),
            i32v(cols),
            Arg::Ptr(act.q),
            i32v(n),
            Arg::Ptr(act.tscale),
            Arg::Segs(*segs),
        ],
    )
}

/// The shape of the attention heads.
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_rot: usize,
}

/// RoPE on q (in place) and k of `n` tokens, k and v stored as f16 at their cells (`slots`)
/// of one layer's cache (`kc`, `vc`). `table`: [n, n_rot/2] (sin, cos) pairs.
#[allow(clippy::too_many_arguments)]
pub fn rope_kv(
    dev: &dyn Device,
    q: u64,
    k: u64,
    v: u64,
    table: u64,
    slots: u64,
    kc: u64,
    vc: u64,
    n: usize,
    h: Heads,
) -> Result<()> {
    dev.launch(
        "rope_kv",
        [dim(n, "tokens")?, 1, 1],
        [256, 1, 1],
        &[
            Arg::Ptr(q),
            Arg::Ptr(k),
            Arg::Ptr(v),
            Arg::Ptr(table),
            Arg::Ptr(slots),
            Arg::Ptr(kc),
            Arg::Ptr(vc),
            i32v(h.n_head),
            i32v(h.n_head_kv),
            i32v(h.head_dim),
            i32v(h.n_rot),
        ],
    )
}

/// Largest head dimension the attention kernel takes.
pub const ATT_MAX_HD: usize = 256;

/// Attention of tokens t0..t0+nt over their listed cells; `scores` holds nt * n_head * n_ctx
/// floats.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    dev: &dyn Device,
    q: u64,
    out: u64,
    kc: u64,
    vc: u64,
    lists: (u64, u64, u64),
    scores: u64,
    t0: usize,
    nt: usize,
    h: Heads,
    scale: f32,
    n_ctx: usize,
) -> Result<()> {
    if h.head_dim > ATT_MAX_HD {
        return Err(Error::unsupported(format!(
            "CUDA: head dimension {} is above {ATT_MAX_HD}",
            h.head_dim
        )));
    }
    let threads = if h.head_dim <= 128 { 128 } else { 256 };
    let (cells, offs, lens) = lists;
    dev.launch(
        "attention",
        [dim(h.n_head, "heads")?, dim(nt, "tokens")?, 1],
        [threads, 1, 1],
        &[
            Arg::Ptr(q),
            Arg::Ptr(out),
            Arg::Ptr(kc),
            Arg::Ptr(vc),
            Arg::Ptr(cells),
            Arg::Ptr(offs),
            Arg::Ptr(lens),
            Arg::Ptr(scores),
            i32v(t0),
            i32v(h.n_head),
            i32v(h.n_head_kv),
            i32v(h.head_dim),
            Arg::F32(scale),
            i32v(n_ctx),
        ],
    )
}

/// Reads `words16` 16-byte words at `p` (bandwidth measurement); `out`: one u32.
pub fn read_sum(dev: &dyn Device, p: u64, words16: usize, out: u64) -> Result<()> {
    dev.launch(
        "read_sum",
        [1024, 1, 1],
        [256, 1, 1],
        &[Arg::Ptr(p), Arg::I64(words16 as i64), Arg::Ptr(out)],
    )
}

/// Q8_0 activations of `n` rows of `cols` floats (cols % 32 == 0): int8 values into `q`
/// ([n, cols]) and the f16-rounded block scales as f32 into `d` ([n, cols / 32]), as the
/// CPU's `quantize_q8_0`.
pub fn q8_quant(dev: &dyn Device, x: u64, n: usize, cols: usize, q: u64, d: u64) -> Result<()> {
    dev.launch(
        "q8_quant",
        [dim(n, "tokens")?, 1, 1],
        [128, 1, 1],
        &[Arg::Ptr(x), i32v(cols), Arg::Ptr(q), Arg::Ptr(d)],
    )
}

/// The Q8_0 head: out[t * out_stride + r] = row r (int8 `wq`, block scales `wd`) . token t's
/// Q8_0 activations (`xq`, `xd` from `q8_quant`), for `rows` rows and `n` tokens.
#[allow(clippy::too_many_arguments)]
pub fn q8_head(
    dev: &dyn Device,
    wq: u64,
    wd: u64,
    rows: usize,
    cols: usize,
    xq: u64,
    xd: u64,
    n: usize,
    out: u64,
    out_stride: usize,
) -> Result<()> {
    dev.launch(
        "q8_head",
        [dim(rows.div_ceil(4), "rows")?, dim(n, "tokens")?, 1],
        [128, 1, 1],
        &[
            Arg::Ptr(wq),
            Arg::Ptr(wd),
            i32v(rows),
            i32v(cols),
            Arg::Ptr(xq),
            Arg::Ptr(xd),
            Arg::Ptr(out),
            i32v(out_stride),
        ],
    )
}
