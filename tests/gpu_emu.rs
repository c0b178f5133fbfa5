//! The CUDA backend without a GPU: the kernels of src/kernels/cuda/kernels.cu compiled for the
//! host by g++ (tests/cuda_emu/) and run against the CPU engine's own kernels, bit for bit where
//! the CPU's float order is reproduced (quantizers, integer dot products, norms, the F16 head),
//! then whole models through `Context::with_gpu` on the emulated device against the CPU
//! `Context`.
//!
//! `cargo test --release --features cuda --test gpu_emu` (needs g++).

#![cfg(feature = "cuda")]

mod common;
mod cuda_emu;
mod gpu_models;

use std::sync::Arc;

use bitnet::kernels::attention::{self, AttnScratch, AttnShape};
use bitnet::kernels::cuda::ops::{self, ActPtrs, Heads, NormIn, Seg, Segs};
use bitnet::kernels::cuda::{as_bytes, as_bytes_mut, DevBuf, Device};
use bitnet::kernels::ternary::{self, ActBuf, ActMode, WeightScale};
use bitnet::kernels::{self, Activations, MatRef};
use bitnet::model::gpu::{ternary_block_scales, ternary_pack, GpuModel};
use bitnet::model::{Batch, Context, ContextParams, Model, SeqSet};
use bitnet::quant::{self, q8_k, GgmlType};
use common::{argmax, cosine, SplitMix64};
use cuda_emu::EmuDevice;

fn up<T: Copy>(d: &dyn Device, v: &[T]) -> DevBuf {
    let b = d.alloc(std::mem::size_of_val(v)).unwrap();
    d.upload(b.ptr(), as_bytes(v)).unwrap();
    b
}

fn down<T: Copy + Default>(d: &dyn Device, b: &DevBuf, n: usize) -> Vec<T> {
    let mut v = vec![T::default(); n];
    d.download(b.ptr(), as_bytes_mut(&mut v)).unwrap();
    v
}

/// Device activation buffers for up to n rows of `cols`.
struct Acts {
    q: DevBuf,
    tsum: DevBuf,
    tscale: DevBuf,
    bsum: DevBuf,
    bd: DevBuf,
    corr: DevBuf,
}

impl Acts {
    fn new(d: &dyn Device, n: usize, cols: usize) -> Acts {
        let nb = cols / 256 + 1;
        Acts {
            q: d.alloc(n * cols).unwrap(),
            tsum: d.alloc(n * 4).unwrap(),
            tscale: d.alloc(n * 4).unwrap(),
            bsum: d.alloc(n * nb * 4).unwrap(),
            bd: d.alloc(n * nb * 4).unwrap(),
            corr: d.alloc(n * nb * 32).unwrap(),
        }
    }
    fn ptrs(&self) -> ActPtrs {
        ActPtrs {
            q: self.q.ptr(),
            tsum: self.tsum.ptr(),
            tscale: self.tscale.ptr(),
            bsum: self.bsum.ptr(),
            bd: self.bd.ptr(),
            corr: self.corr.ptr(),
        }
    }
}

/// context.rs's rmsnorm, written out again.
fn rmsnorm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (o, x) in out.chunks_exact_mut(w.len()).zip(x.chunks_exact(w.len())) {
        let sum: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        let mean = (sum / x.len() as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(x).zip(w) {
            *o = v * scale * w;
        }
    }
    out
}

/// Normalizes `x` ([n, cols]) on the device (weights `w`) into `mode` activations; returns the
/// normed rows as the device computed them.
fn norm_on_device(
    d: &dyn Device,
    x: &[f32],
    w: &[f32],
    n: usize,
    mode: i32,
    acts: &Acts,
) -> Vec<f32> {
    let cols = w.len();
    let (xb, wb) = (up(d, x), up(d, w));
    let out = d.alloc(n * cols * 4).unwrap();
    let inp = NormIn {
        x: xb.ptr(),
        y: 0,
        op: 0,
        stride: cols,
        rows: 0,
    };
    ops::norm_act(
        d,
        inp,
        n,
        out.ptr(),
        wb.ptr(),
        cols,
        1e-5,
        mode,
        &acts.ptrs(),
    )
    .unwrap();
    down(d, &out, n * cols)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn norm_and_quantizers_match_the_cpu() {
    let d = EmuDevice::new();
    let mut rng = SplitMix64(7);
    for &cols in &[256usize, 384, 2560, 6912] {
        let n = 3;
        let mut x: Vec<f32> = (0..n * cols).map(|_| rng.normal() * 3.0).collect();
        x[5] = 40.0; // an outlier, and an exact tie of magnitudes in row 1
        x[cols + 7] = -9.5;
        x[cols + 300 % cols] = 9.5;
        let w: Vec<f32> = (0..cols).map(|_| 1.0 + rng.normal() * 0.1).collect();
        let want = rmsnorm(&x, &w, 1e-5);
        for mode in [ops::ACT_NONE, ops::ACT_PER_TOKEN, ops::ACT_Q8K] {
            if mode == ops::ACT_Q8K && cols % 256 != 0 {
                continue;
            }
            let acts = Acts::new(&*d, n, cols);
            let got = norm_on_device(&*d, &x, &w, n, mode, &acts);
            assert_eq!(bits(&got), bits(&want), "rmsnorm {cols}");
            let q: Vec<i8> = down(&*d, &acts.q, n * cols);
            let tsum: Vec<i32> = down(&*d, &acts.tsum, n);
            let tscale: Vec<f32> = down(&*d, &acts.tscale, n);
            let nb = cols / 256;
            for t in 0..n {
                let row = &want[t * cols..(t + 1) * cols];
                let qt = &q[t * cols..(t + 1) * cols];
                if mode == ops::ACT_PER_TOKEN {
                    let (cq, csum, cscale) = kernels::quantize_i8_per_token(row);
                    assert_eq!(qt, &cq[..], "per-token q, {cols}");
                    assert_eq!((tsum[t], tscale[t].to_bits()), (csum, cscale.to_bits()));
                }
                if mode == ops::ACT_Q8K {
                    let mut blocks = vec![0u8; nb * q8_k::BLOCK_BYTES];
                    q8_k::quantize(row, &mut blocks);
                    let bd: Vec<f32> = down(&*d, &acts.bd, n * nb);
                    let corr: Vec<i32> = down(&*d, &acts.corr, n * nb * 8);
                    let mut sum = 0;
                    for (b, blk) in blocks.chunks_exact(q8_k::BLOCK_BYTES).enumerate() {
                        let dd = f32::from_le_bytes(blk[0..4].try_into().unwrap());
                        assert_eq!(bd[t * nb + b].to_bits(), dd.to_bits(), "Q8_K d");
                        for e in 0..256 {
                            assert_eq!(qt[b * 256 + e], blk[4 + e] as i8, "Q8_K q {e}");
                            sum += blk[4 + e] as i8 as i32;
                        }
                        for u in 0..8 {
                            let bs = |i: usize| {
                                i16::from_le_bytes([blk[260 + 2 * i], blk[261 + 2 * i]]) as i32
                            };
                            assert_eq!(corr[(t * nb + b) * 8 + u], bs(2 * u) + bs(2 * u + 1));
                        }
                    }
                    assert_eq!(tsum[t], sum);
                }
            }
        }
    }
}

/// A random ternary matrix in `ty` with one scale per row (`uniform`: one for all rows).
fn random_ternary(
    rng: &mut SplitMix64,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    uniform: bool,
    fill: Option<f32>,
) -> Vec<u8> {
    let mut vals = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let dsc = if uniform || ty == GgmlType::I2_S {
            0.75
        } else {
            0.5 + r as f32 * 0.01
        };
        for _ in 0..cols {
            let t = fill.unwrap_or_else(|| rng.below(3) as f32 - 1.0);
            vals.push(t * dsc);
        }
    }
    let bytes = match ty {
        GgmlType::I2_S => rows * cols / 4 + 32,
        _ => ty.tensor_bytes((rows * cols) as u64).unwrap() as usize,
    };
    let mut data = vec![0u8; bytes];
    match ty {
        GgmlType::I2_S => quant::i2_s::quantize(&vals, &mut data),
        _ => quant::quantize(ty, &vals, &mut data).unwrap(),
    }
    data
}

/// A ternary matrix on the device and the segment that finishes it as the CPU would under
/// `per_token` (else Q8_K) activations.
fn ternary_on_device(
    d: &dyn Device,
    ty: GgmlType,
    data: &[u8],
    rows: usize,
    cols: usize,
    per_token: bool,
) -> (DevBuf, Option<DevBuf>, Seg, bool) {
    let m = ternary_pack(ty, data, rows, cols);
    let codes = up(d, &m.codes()[..rows * cols / 4]);
    let (kind, wscale, blocks) = match (per_token, m.scale) {
        (true, WeightScale::Tensor(s)) => (ops::KIND_TENSOR, s, false),
        (true, WeightScale::Blocks { uniform: Some(s) }) => (ops::KIND_UNIFORM, s, false),
        (true, WeightScale::Blocks { uniform: None }) => (ops::KIND_BLOCKS, 0.0, true),
        (false, _) => (ops::KIND_Q8K, 0.0, true),
    };
    let wblk = blocks.then(|| up(d, &ternary_block_scales(ty, data, rows, cols)));
    let seg = Seg {
        row_end: rows as i32,
        kind,
        wscale,
        pscale: 1.0,
        out: 0,
        out_stride: rows as i32,
        accumulate: 0,
    };
    (codes, wblk, seg, blocks)
}

fn one(seg: Seg) -> Segs {
    Segs {
        s: [seg, Seg::default(), Seg::default()],
        n: 1,
    }
}

/// The CPU's ternary matmul of `x` ([n, cols], already normed) against the packed matrix.
fn cpu_ternary(
    ty: GgmlType,
    data: &[u8],
    rows: usize,
    cols: usize,
    mode: ActMode,
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let m = ternary_pack(ty, data, rows, cols);
    let mut act = ActBuf::default();
    act.quantize(mode, x, n, cols, 1);
    let mut out = vec![0f32; n * rows];
    ternary::matmul(&m, &act, &mut out, rows, 1);
    out
}

fn check_ternary(
    d: &dyn Device,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n: usize,
    uniform: bool,
    seed: u64,
) {
    let mut rng = SplitMix64(seed);
    let data = random_ternary(&mut rng, ty, rows, cols, uniform, None);
    let x: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
    let ones = vec![1f32; cols];
    let modes: &[bool] = if ty == GgmlType::I2_S {
        &[true]
    } else {
        &[true, false]
    };
    for &per_token in modes {
        let mode = if per_token {
            ops::ACT_PER_TOKEN
        } else {
            ops::ACT_Q8K
        };
        let acts = Acts::new(d, n, cols);
        let xn = norm_on_device(d, &x, &ones, n, mode, &acts);
        let cpu_mode = if per_token {
            ActMode::PerToken
        } else {
            ActMode::Q8K
        };
        let want = cpu_ternary(ty, &data, rows, cols, cpu_mode, &xn, n);
        let (codes, wblk, mut seg, blocks) = ternary_on_device(d, ty, &data, rows, cols, per_token);
        let out = d.alloc(n * rows * 4).unwrap();
        seg.out = out.ptr();
        let wb = wblk.as_ref().map_or(0, |b| b.ptr());
        ops::tern_matmul(
            d,
            codes.ptr(),
            rows,
            cols,
            &acts.ptrs(),
            n,
            wb,
            blocks,
            &one(seg),
        )
        .unwrap();
        let got: Vec<f32> = down(d, &out, n * rows);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{ty} kind {} {rows}x{cols} n{n} out {i}: {g} vs {w}",
                seg.kind
            );
        }
    }
}

#[test]
fn ternary_matmul_matches_the_cpu() {
    let d = EmuDevice::new();
    let mut seed = 100;
    for ty in [GgmlType::I2_S, GgmlType::TQ2_0, GgmlType::TQ1_0] {
        for &(rows, cols) in &[(1, 256), (17, 512), (33, 768), (40, 2560)] {
            for n in [1, 3, 4, 5, 16, 21] {
                for uniform in [false, true] {
                    seed += 1;
                    check_ternary(&*d, ty, rows, cols, n, uniform, seed);
                }
            }
        }
    }
    for n in [1, 5, 17] {
        check_ternary(&*d, GgmlType::I2_S, 19, 384, n, true, 7);
        check_ternary(&*d, GgmlType::I2_S, 3, 128, n, true, 8);
        check_ternary(&*d, GgmlType::TQ2_0, 9, 6912, n, false, 9);
    }
}

#[test]
fn ternary_extremes_are_exact() {
    // All -1 / all +1 weights against -128 / 127 activations (raw, scale 1): the exact sums,
    // by the GEMV (n < 16) and the GEMM (n >= 16).
    let d = EmuDevice::new();
    for cols in [2560usize, 6912, 384] {
        let rows = 16;
        for wcode in [0u8, 2] {
            let byte = wcode | (wcode << 2) | (wcode << 4) | (wcode << 6);
            let mut data = vec![byte; rows * cols / 4 + 32];
            let tail = rows * cols / 4;
            data[tail..tail + 4].copy_from_slice(&1.0f32.to_le_bytes());
            for qv in [-128i8, 127] {
                for n in [1usize, 9, 20] {
                    let acts = Acts::new(&*d, n, cols);
                    d.upload(acts.q.ptr(), as_bytes(&vec![qv; n * cols]))
                        .unwrap();
                    d.upload(acts.tsum.ptr(), as_bytes(&vec![qv as i32 * cols as i32; n]))
                        .unwrap();
                    d.upload(acts.tscale.ptr(), as_bytes(&vec![1f32; n]))
                        .unwrap();
                    let (codes, _, mut seg, _) =
                        ternary_on_device(&*d, GgmlType::I2_S, &data, rows, cols, true);
                    let out = d.alloc(n * rows * 4).unwrap();
                    seg.out = out.ptr();
                    ops::tern_matmul(
                        &*d,
                        codes.ptr(),
                        rows,
                        cols,
                        &acts.ptrs(),
                        n,
                        0,
                        false,
                        &one(seg),
                    )
                    .unwrap();
                    let got: Vec<f32> = down(&*d, &out, n * rows);
                    let want = ((wcode as i64 - 1) * qv as i64 * cols as i64) as f32;
                    assert!(
                        got.iter().all(|&v| v == want),
                        "{cols} code {wcode} q {qv} n {n}: {} vs {want}",
                        got[0]
                    );
                }
            }
        }
    }
}

#[test]
fn stacked_segments_scale_and_accumulate() {
    // Three I2_S matrices with their own scales in one launch, a projection scale on the
    // second, the third added into its output: each as the CPU computes it alone.
    let d = EmuDevice::new();
    let mut rng = SplitMix64(3);
    let cols = 512;
    let shapes = [24usize, 8, 8];
    for n in [1usize, 6, 20] {
        let x: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
        let acts = Acts::new(&*d, n, cols);
        let xn = norm_on_device(&*d, &x, &vec![1.0; cols], n, ops::ACT_PER_TOKEN, &acts);
        let mut codes = Vec::new();
        let mut segs = Segs::default();
        let mut outs = Vec::new();
        let mut wants = Vec::new();
        let mut end = 0;
        for (i, &rows) in shapes.iter().enumerate() {
            let data = random_ternary(&mut rng, GgmlType::I2_S, rows, cols, true, None);
            let m = ternary_pack(GgmlType::I2_S, &data, rows, cols);
            codes.extend_from_slice(&m.codes()[..rows * cols / 4]);
            let WeightScale::Tensor(s) = m.scale else {
                unreachable!()
            };
            let mut want =
                cpu_ternary(GgmlType::I2_S, &data, rows, cols, ActMode::PerToken, &xn, n);
            let prior: Vec<f32> = (0..n * rows).map(|_| rng.normal()).collect();
            let pscale = if i == 1 { 0.37 } else { 1.0 };
            let acc = i == 2;
            for (w, p) in want.iter_mut().zip(&prior) {
                *w *= pscale;
                if acc {
                    *w += p;
                }
            }
            let out = up(&*d, &prior);
            end += rows;
            segs.s[i] = Seg {
                row_end: end as i32,
                kind: ops::KIND_TENSOR,
                wscale: s,
                pscale,
                out: out.ptr(),
                out_stride: rows as i32,
                accumulate: acc as i32,
            };
            outs.push(out);
            wants.push(want);
        }
        segs.n = 3;
        let cb = up(&*d, &codes);
        ops::tern_matmul(&*d, cb.ptr(), end, cols, &acts.ptrs(), n, 0, false, &segs).unwrap();
        for (i, (out, want)) in outs.iter().zip(&wants).enumerate() {
            let got: Vec<f32> = down(&*d, out, want.len());
            assert_eq!(bits(&got), bits(want), "segment {i}, n {n}");
        }
    }
}

#[test]
fn float_matmul_matches_the_cpu() {
    let d = EmuDevice::new();
    let mut rng = SplitMix64(11);
    for (ty, wty) in [
        (GgmlType::F16, ops::FLT_F16),
        (GgmlType::BF16, ops::FLT_BF16),
        (GgmlType::F32, ops::FLT_F32),
    ] {
        for &(rows, cols) in &[(70usize, 256usize), (5, 40), (33, 2560), (3, 23)] {
            let vals: Vec<f32> = (0..rows * cols).map(|_| rng.normal()).collect();
            let data: Vec<u8> = match ty {
                GgmlType::F16 => vals
                    .iter()
                    .flat_map(|&v| quant::float::f32_to_f16(v).to_le_bytes())
                    .collect(),
                GgmlType::BF16 => vals
                    .iter()
                    .flat_map(|&v| quant::float::f32_to_bf16(v).to_le_bytes())
                    .collect(),
                _ => vals.iter().flat_map(|&v| v.to_le_bytes()).collect(),
            };
            let w = MatRef {
                ty,
                rows,
                cols,
                data: &data,
            };
            let wb = up(&*d, &data);
            for n in [1usize, 4, 7] {
                let x: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
                // As the reference: activations rounded for the weight type.
                let mut want = vec![0f32; n * rows];
                kernels::matmul_scalar(&w, Activations::ByWeightType, &x, n, &mut want).unwrap();
                let xb = up(&*d, &x);
                let out = d.alloc(n * rows * 4).unwrap();
                let seg = Seg {
                    row_end: rows as i32,
                    kind: 0,
                    wscale: 1.0,
                    pscale: 1.0,
                    out: out.ptr(),
                    out_stride: rows as i32,
                    accumulate: 0,
                };
                let xround = if wty == ops::FLT_F32 { -1 } else { wty };
                ops::flt_matmul(
                    &*d,
                    wb.ptr(),
                    wty,
                    rows,
                    cols,
                    xb.ptr(),
                    n,
                    xround,
                    &one(seg),
                )
                .unwrap();
                let got: Vec<f32> = down(&*d, &out, n * rows);
                assert_eq!(bits(&got), bits(&want), "{ty} {rows}x{cols} n{n}");

                // Per-token int8 (BitNet b1.58 stored as floats), on normed inputs.
                if cols % 128 == 0 {
                    let acts = Acts::new(&*d, n, cols);
                    let xn =
                        norm_on_device(&*d, &x, &vec![1.0; cols], n, ops::ACT_PER_TOKEN, &acts);
                    let mut want = vec![0f32; n * rows];
                    kernels::matmul_scalar(&w, Activations::PerTokenInt8, &xn, n, &mut want)
                        .unwrap();
                    ops::flt_i8_matmul(&*d, wb.ptr(), wty, rows, cols, &acts.ptrs(), n, &one(seg))
                        .unwrap();
                    let got: Vec<f32> = down(&*d, &out, n * rows);
                    assert_eq!(bits(&got), bits(&want), "{ty} int8 {rows}x{cols} n{n}");
                }
            }
        }
    }
}

#[test]
fn attention_matches_the_cpu() {
    let d = EmuDevice::new();
    let mut rng = SplitMix64(21);
    let (n_head, n_head_kv, hd, n_cells) = (8, 2, 40, 37);
    let shape = AttnShape {
        n_head,
        n_head_kv,
        head_dim: hd,
        n_cells,
        scale: 1.0 / (hd as f32).sqrt(),
    };
    let n_kv = n_head_kv * hd;
    let k: Vec<half::f16> = (0..n_cells * n_kv)
        .map(|_| half::f16::from_f32(rng.normal()))
        .collect();
    let v: Vec<half::f16> = (0..n_cells * n_kv)
        .map(|_| half::f16::from_f32(rng.normal()))
        .collect();
    let n = 5;
    let q: Vec<f32> = (0..n * n_head * hd).map(|_| rng.normal()).collect();
    let prefixes: Vec<Vec<usize>> = (0..n).map(|t| (0..20 + 3 * t).rev().collect()).collect();
    let scattered: Vec<Vec<usize>> = (0..n)
        .map(|t| (0..30 + t).rev().step_by(1 + t % 2).collect())
        .collect();
    let (kb, vb, qb) = (up(&*d, &k), up(&*d, &v), up(&*d, &q));
    let out = d.alloc(n * n_head * hd * 4).unwrap();
    let scores = d.alloc(n * n_head * n_cells * 4).unwrap();
    let heads = Heads {
        n_head,
        n_head_kv,
        head_dim: hd,
        n_rot: hd,
    };
    let (mut exact, mut total) = (0, 0);
    for visible in [prefixes, scattered] {
        let mut want = vec![0f32; n * n_head * hd];
        attention::attention(
            shape,
            &q,
            &mut want,
            &k,
            &v,
            &visible,
            1,
            &mut AttnScratch::default(),
        );
        let mut cells = Vec::new();
        let mut offs = Vec::new();
        for l in &visible {
            offs.push(cells.len() as i32);
            cells.extend(l.iter().map(|&c| c as i32));
        }
        let lens: Vec<i32> = visible.iter().map(|l| l.len() as i32).collect();
        let (cb, ob, lb) = (up(&*d, &cells), up(&*d, &offs), up(&*d, &lens));
        // Two launches of tokens (chunks), as the forward pass makes them.
        for (t0, nt) in [(0, 2), (2, 3)] {
            ops::attention(
                &*d,
                qb.ptr(),
                out.ptr(),
                kb.ptr(),
                vb.ptr(),
                (cb.ptr(), ob.ptr(), lb.ptr()),
                scores.ptr(),
                t0,
                nt,
                heads,
                shape.scale,
                n_cells,
            )
            .unwrap();
        }
        let got: Vec<f32> = down(&*d, &out, want.len());
        for (g, w) in got.iter().zip(&want) {
            total += 1;
            exact += (g.to_bits() == w.to_bits()) as usize;
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
        }
    }
    // Only exp's rounding may differ (glibc's expf vs exp in double rounded to float).
    assert!(
        exact * 100 >= total * 95,
        "{exact} of {total} bit-identical"
    );
}

// ---------------------------------------------------------------------------------------------
// Whole models on the emulated device.

fn decode(c: &mut Context, tokens: &[u32], pos0: i32, seq: usize, all: bool) {
    bitnet::fixture::decode(c, tokens, pos0, seq, all).unwrap();
}

/// Float-weight models: the same logits (cosine >= 0.99999 at every position, in practice
/// bit-identical but for exp) and the same greedy tokens. Int8-activation models: the same
/// greedy tokens on most steps and cosine close to 1 (one flipped int8 rounding moves a random
/// model's logits a little; crossval's noise floors are the bar on a real GPU).
#[test]
fn models_match_the_cpu() {
    let models = [
        ("bitnet-spm-f32.gguf", true),
        ("bitnet-spm-f16.gguf", true),
        ("bitnet-spm-bf16.gguf", true),
        ("bitnet-spm-f32-noscale.gguf", true),
        ("bitnet-spm-tq2_0-noscale.gguf", false),
        ("bitnet-spm-tq1_0.gguf", false),
        ("bitnet-spm-i2_s.gguf", false),
        ("bitnet-b1.58-i2_s.gguf", false),
        ("bitnet-b1.58-tq2_0.gguf", false),
        ("bitnet-b1.58-f32.gguf", false),
    ];
    let dev: Arc<dyn Device> = EmuDevice::new();
    for (name, float) in models {
        let path = common::model(name);
        let model = Arc::new(Model::load(&path).unwrap());
        let gm = match GpuModel::upload(Arc::clone(&dev), Arc::clone(&model)) {
            Ok(g) => Arc::new(g),
            Err(e) => panic!("{name}: {e}"),
        };
        let params = ContextParams::new(64, 16);
        let mut cpu = Context::new(Arc::clone(&model), params).unwrap();
        let mut gpu = Context::with_gpu(Arc::clone(&gm), params).unwrap();
        let n_vocab = model.hparams().n_vocab;
        let prompt: Vec<u32> = (0..7)
            .map(|i| (i * 37 + 11) as u32 % n_vocab as u32)
            .collect();
        decode(&mut cpu, &prompt, 0, 0, true);
        decode(&mut gpu, &prompt, 0, 0, true);
        let mut worst = 1f64;
        let mut same = 0;
        let mut steps = 0;
        for i in 0..prompt.len() {
            let (a, b) = (cpu.logits(i).unwrap(), gpu.logits(i).unwrap());
            worst = worst.min(cosine(a, b));
            same += (argmax(a) == argmax(b)) as usize;
            steps += 1;
        }
        // Greedy continuation, each side on its own tokens (a graph replay per step on the
        // device).
        let (mut tc, mut tg) = (
            argmax(cpu.logits(6).unwrap()),
            argmax(gpu.logits(6).unwrap()),
        );
        for s in 0..6 {
            let pos = prompt.len() as i32 + s;
            decode(&mut cpu, &[tc as u32], pos, 0, true);
            decode(&mut gpu, &[tg as u32], pos, 0, true);
            let (a, b) = (cpu.logits(0).unwrap(), gpu.logits(0).unwrap());
            if tc == tg {
                worst = worst.min(cosine(a, b));
            }
            same += (tc == tg) as usize;
            steps += 1;
            tc = argmax(a);
            tg = argmax(b);
        }
        eprintln!("{name}: worst cosine {worst:.9}, same argmax {same}/{steps}");
        if float {
            assert!(worst >= 0.99999, "{name}: worst cosine {worst}");
            assert_eq!(same, steps, "{name}: greedy tokens differ");
        } else {
            assert!(worst >= 0.99, "{name}: worst cosine {worst}");
            assert!(same * 10 >= steps * 8, "{name}: {same}/{steps} same tokens");
        }
    }
}

/// Weights without a device kernel are refused with an `Unsupported` error at upload (the C API
/// then keeps the model on the CPU).
#[test]
fn unsupported_weights_are_refused() {
    let dev: Arc<dyn Device> = EmuDevice::new();
    for name in ["bitnet-spm-q8_0.gguf", "bitnet-b1.58-i2_s-q6k.gguf"] {
        let model = Arc::new(Model::load(common::model(name)).unwrap());
        match GpuModel::upload(Arc::clone(&dev), model) {
            Ok(_) => panic!("{name}: uploaded"),
            Err(e) => {
                assert_eq!(e.kind, bitnet::ErrorKind::Unsupported, "{name}: {e}");
                eprintln!("{name}: {e}");
            }
        }
    }
}

/// Two sequences in one context, a sequence copy, a removal, a position shift and a state
/// round trip: the device context follows the CPU one.
#[test]
fn sequences_and_state_follow_the_cpu() {
    let path = common::model("bitnet-spm-f32.gguf");
    let model = Arc::new(Model::load(&path).unwrap());
    let dev: Arc<dyn Device> = EmuDevice::new();
    let gm = Arc::new(GpuModel::upload(dev, Arc::clone(&model)).unwrap());
    let params = ContextParams {
        n_seq_max: 3,
        ..ContextParams::new(64, 8)
    };
    let mut cpu = Context::new(Arc::clone(&model), params).unwrap();
    let mut gpu = Context::with_gpu(gm, params).unwrap();
    let check = |a: &Context, b: &Context, what: &str| {
        for i in 0..a.n_entries() {
            if let (Some(x), Some(y)) = (a.logits(i), b.logits(i)) {
                let c = cosine(x, y);
                assert!(c >= 0.99999, "{what}: entry {i} cosine {c}");
            }
        }
    };
    for c in [&mut cpu, &mut gpu] {
        decode(c, &[1, 2, 3, 4], 0, 0, true);
        decode(c, &[5, 6, 7], 0, 1, true);
    }
    check(&cpu, &gpu, "two sequences");
    // Both sequences in one batch.
    for c in [&mut cpu, &mut gpu] {
        let toks = [8u32, 9];
        let pos = [4, 3];
        let seqs = [SeqSet::one(0), SeqSet::one(1)];
        c.decode(&Batch {
            tokens: &toks,
            positions: &pos,
            seqs: &seqs,
            want_logits: &[true, true],
        })
        .unwrap();
    }
    check(&cpu, &gpu, "mixed batch");
    for c in [&mut cpu, &mut gpu] {
        assert!(c.seq_cp(0, 2, -1, -1));
        assert!(c.seq_rm(0, 3, -1));
        assert!(c.seq_add(2, 2, -1, 3));
        decode(c, &[10, 11], 8, 2, true);
    }
    check(&cpu, &gpu, "after seq_cp / seq_rm / seq_add");
    let mut sc = Vec::new();
    let mut sg = Vec::new();
    cpu.state_write(None, &mut sc);
    gpu.state_write(None, &mut sg);
    assert_eq!(sc.len(), sg.len());
    for c in [&mut cpu, &mut gpu] {
        c.clear();
    }
    // Each side restores the other's state.
    cpu.state_read(None, &sg).unwrap();
    gpu.state_read(None, &sc).unwrap();
    for c in [&mut cpu, &mut gpu] {
        decode(c, &[12], 10, 2, true);
    }
    check(&cpu, &gpu, "after a state round trip");
}

/// The models tests/gpu.rs runs on a real GPU (every weight type, both architectures, an odd
/// number of 256-blocks in n_ff, GQA, a vocabulary that is no multiple of the row tiles): on
/// the emulated device a prefill (the GEMM path) equals the CPU's logits, and then equals
/// token-by-token decode (GEMV kernels and the captured graph) bit for bit.
#[test]
fn generated_models_match_the_cpu_and_prefill_equals_decode() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("gpu_emu_models");
    let dev: Arc<dyn Device> = EmuDevice::new();
    for (_, path, spec) in gpu_models::write_tiny_set(&dir) {
        let (arch, ty, uniform) = (spec.shape.arch, spec.wty, spec.uniform);
        let model = Arc::new(Model::load(&path).unwrap());
        let gm = Arc::new(GpuModel::upload(Arc::clone(&dev), Arc::clone(&model)).unwrap());
        let params = ContextParams::new(64, 32);
        let mut cpu = Context::new(Arc::clone(&model), params).unwrap();
        let mut gpu = Context::with_gpu(gm, params).unwrap();
        let toks: Vec<u32> = (0..20).map(|i| (i * 53 + 5) % 1000).collect();
        decode(&mut cpu, &toks, 0, 0, true);
        decode(&mut gpu, &toks, 0, 0, true);
        let mut identical = 0;
        for t in 0..toks.len() {
            let (a, b) = (cpu.logits(t).unwrap(), gpu.logits(t).unwrap());
            let c = cosine(a, b);
            assert!(c >= 0.99999, "{arch} {ty}: position {t} cosine {c}");
            identical += (a == b) as usize;
        }
        let batch: Vec<Vec<f32>> = (0..toks.len())
            .map(|t| gpu.logits(t).unwrap().to_vec())
            .collect();
        gpu.clear();
        for (t, &tok) in toks.iter().enumerate().take(6) {
            decode(&mut gpu, &[tok], t as i32, 0, true);
            assert!(
                gpu.logits(0).unwrap() == &batch[t][..],
                "{arch} {ty}: prefill and decode differ at {t}"
            );
        }
        eprintln!("{arch} {ty} uniform={uniform}: {identical}/20 rows bit-identical to the CPU");
    }
}

/// The batches llama-server sends (tests/gpu_models `server_batches`: one slot's prompt chunk
/// mixed with single decode tokens of the other slots, 4 and 16 sequences, each at its own
/// positions): on the emulated device every wanted row follows the CPU context by the criteria
/// of `generated_models_match_the_cpu_and_prefill_equals_decode` (cosine >= 0.99999, the same
/// argmax for float weights), and equals bit for bit what the sequence gets decoded alone
/// (the same chunks, no other sequence in the context).
#[test]
fn server_batches_follow_the_cpu_and_each_sequence_alone() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("gpu_emu_models");
    let dev: Arc<dyn Device> = EmuDevice::new();
    for (i, (name, path, spec)) in gpu_models::write_tiny_set(&dir).into_iter().enumerate() {
        let float = spec.shape.arch == "bitnet"
            && matches!(spec.wty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
        // 16 sequences on two models (one per kind of activation), 4 on all.
        let counts: &[usize] = if i == 0 || i == 5 { &[4, 16] } else { &[4] };
        let model = Arc::new(Model::load(&path).unwrap());
        let gm = Arc::new(GpuModel::upload(Arc::clone(&dev), Arc::clone(&model)).unwrap());
        for &n_seq in counts {
            let batches = gpu_models::server_batches(n_seq, spec.shape.n_vocab);
            let (want, got) = gpu_models::run_on_cpu_and_device(&model, &gm, &batches, n_seq);
            let (mut rows, mut identical) = (0, 0);
            for (k, (w, g)) in want.iter().zip(&got).enumerate() {
                assert_eq!(w.len(), g.len());
                for ((sw, a), (sg, b)) in w.iter().zip(g) {
                    assert_eq!(sw, sg);
                    let c = cosine(a, b);
                    assert!(
                        c >= 0.99999,
                        "{name} {n_seq} seqs: step {k} seq {sw} cosine {c}"
                    );
                    if float {
                        assert_eq!(argmax(a), argmax(b), "{name}: step {k} seq {sw} argmax");
                    }
                    rows += 1;
                    identical += (a == b) as usize;
                }
            }
            gpu_models::assert_each_sequence_alone(
                &gm,
                &batches,
                &got,
                n_seq,
                &format!("{name} {n_seq} seqs"),
            );
            eprintln!(
                "{name}, {n_seq} sequences: {rows} rows, {identical} bit-identical to the CPU, \
                 all equal to each sequence decoded alone"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The Q8_0 head.

/// `q8_quant` + `q8_head` against Q8Head's scalar reference, bit for bit: random and extreme
/// activations (zero blocks, values near f32's largest, subnormal blocks whose scale overflows,
/// lone spikes), odd row counts, block counts that are and are not multiples of 32.
#[test]
fn q8_head_matches_the_cpu_scalar_reference() {
    use bitnet::kernels::f16::Q8Head;
    use bitnet::kernels::isa::Isa;
    let d = EmuDevice::new();
    let mut rng = SplitMix64(41);
    for &(rows, cols) in &[(37usize, 2560usize), (5, 64), (1, 96), (70, 1024)] {
        let w: Vec<u8> = (0..rows * cols)
            .flat_map(|_| quant::float::f32_to_f16(rng.normal() * 0.05).to_le_bytes())
            .collect();
        let head = Q8Head::from_f16(&w, rows, cols);
        let (qs, sc) = (up(&*d, head.values()), up(&*d, head.scales()));
        for n in [1usize, 3, 7] {
            let mut x: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
            if n > 1 {
                let nb = n * cols / 32;
                for b in 0..nb {
                    let blk = &mut x[b * 32..(b + 1) * 32];
                    match b % 6 {
                        1 => blk.fill(0.0),
                        2 => blk.iter_mut().for_each(|v| *v *= 1e37),
                        3 => blk.iter_mut().for_each(|v| *v *= 1e-41),
                        4 => blk[b % 32] = 1e6,
                        _ => {}
                    }
                }
            }
            let mut want = vec![0f32; n * rows];
            head.matmul_isa(Isa::Scalar, &x, n, &mut want, rows, 1);
            let xb = up(&*d, &x);
            let aq = d.alloc(n * cols).unwrap();
            let ad = d.alloc(n * cols / 32 * 4).unwrap();
            let out = d.alloc(n * rows * 4).unwrap();
            ops::q8_quant(&*d, xb.ptr(), n, cols, aq.ptr(), ad.ptr()).unwrap();
            ops::q8_head(
                &*d,
                qs.ptr(),
                sc.ptr(),
                rows,
                cols,
                aq.ptr(),
                ad.ptr(),
                n,
                out.ptr(),
                rows,
            )
            .unwrap();
            let got: Vec<f32> = down(&*d, &out, n * rows);
            assert_eq!(bits(&got), bits(&want), "{rows}x{cols} n{n}");
        }
    }
}

/// Models loaded with the Q8_0 head (`HeadType::Q8_0`) on the emulated device: the prefill
/// follows the CPU (cosine >= 0.99999; the CPU's SIMD head rounds differently from its scalar
/// reference) and its logits are, bit for bit, the scalar reference head applied to the
/// device's final hidden states; greedy decoding gives the CPU's tokens on float
/// models, and token-by-token decode equals the prefill bit for bit.
#[test]
fn q8_head_models_match_the_cpu() {
    use bitnet::kernels::isa::Isa;
    use bitnet::model::weights::{HeadType, LoadOptions};
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("gpu_emu_models");
    let dev: Arc<dyn Device> = EmuDevice::new();
    let opts = LoadOptions {
        head: HeadType::Q8_0,
        ..LoadOptions::default()
    };
    for (name, path, spec) in gpu_models::write_tiny_set(&dir) {
        let float = spec.shape.arch == "bitnet"
            && matches!(spec.wty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
        let model = Arc::new(Model::load_with(&path, &opts).unwrap());
        assert!(model.head_q8().is_some(), "{name}: no Q8_0 head");
        let gm = Arc::new(GpuModel::upload(Arc::clone(&dev), Arc::clone(&model)).unwrap());
        let params = ContextParams {
            embeddings: true,
            ..ContextParams::new(64, 32)
        };
        let mut cpu = Context::new(Arc::clone(&model), params).unwrap();
        let mut gpu = Context::with_gpu(gm, params).unwrap();
        let toks: Vec<u32> = (0..12).map(|i| (i * 53 + 5) % 1000).collect();
        decode(&mut cpu, &toks, 0, 0, true);
        decode(&mut gpu, &toks, 0, 0, true);
        let head = model.head_q8().unwrap();
        let mut prefill = Vec::new();
        for t in 0..toks.len() {
            let (a, b) = (cpu.logits(t).unwrap(), gpu.logits(t).unwrap());
            let c = cosine(a, b);
            assert!(c >= 0.99999, "{name}: position {t} cosine {c}");
            // Bit for bit: the CPU's scalar head on the device's own final hidden state.
            let mut want = vec![0f32; head.rows];
            let x = gpu.embeddings(t).unwrap();
            head.matmul_isa(Isa::Scalar, x, 1, &mut want, head.rows, 1);
            assert_eq!(
                bits(b),
                bits(&want),
                "{name}: position {t}: head not bit-exact"
            );
            prefill.push(b.to_vec());
        }
        // Greedy continuation on each side.
        let n = toks.len() as i32;
        let last = toks.len() - 1;
        let (mut tc, mut tg) = (argmax(cpu.logits(last).unwrap()), argmax(&prefill[last]));
        let mut same = 0;
        for s in 0..6 {
            decode(&mut cpu, &[tc as u32], n + s, 0, true);
            decode(&mut gpu, &[tg as u32], n + s, 0, true);
            same += (tc == tg) as usize;
            tc = argmax(cpu.logits(0).unwrap());
            tg = argmax(gpu.logits(0).unwrap());
        }
        if float {
            assert_eq!(same, 6, "{name}: greedy tokens differ");
        }
        // Token-by-token decode equals the prefill (GEMV head launches, the captured graph).
        gpu.clear();
        for (t, &tok) in toks.iter().enumerate().take(5) {
            decode(&mut gpu, &[tok], t as i32, 0, true);
            assert!(
                gpu.logits(0).unwrap() == &prefill[t][..],
                "{name}: prefill and decode differ at {t}"
            );
        }
        eprintln!("{name}: Q8_0 head follows the CPU, {same}/6 greedy tokens the same");
    }
}
