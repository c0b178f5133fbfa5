//! The forward pass on a CUDA device (feature `cuda`): `GpuModel` holds a model's weights in
//! device memory, `GpuState` one context's KV cache and activation buffers there and runs
//! `decode` steps with the kernels of `kernels::cuda`.
//!
//! It computes what `Context::decode` computes on the CPU, step for step and in the same float
//! order wherever that order is reproducible (see kernels.cu): the same activation formats per
//! weight type (per-token int8 for BitNet b1.58 and I2_S, Q8_K for `bitnet` TQ1_0/TQ2_0, f16 /
//! bf16 rounding for F16 / BF16 weights), the same RoPE angles (the host computes the table as
//! the CPU does), attention over an f16 cache. Only the logits (and hidden states) asked for
//! come back to the host. A single-token step with logits is captured once per context as a
//! graph and replayed: one launch per token instead of one per kernel.
//!
//! Weights: ternary matrices (I2_S, TQ1_0, TQ2_0) in the CPU's repacked 2-bit layout
//! (`TernaryMat`), with their per-block scales when a format needs them; F32 / F16 / BF16
//! matrices as stored. Projections that share an input (q/k/v, gate/up) are stacked into one
//! matrix when their storage agrees, so that each is one launch. Supported heads: F32, F16,
//! BF16 (the model's head as stored) and the Q8_0 head requantized at load
//! (`HeadType::Q8_0`, int8 values and block scales, activations quantized on the device as
//! the CPU does); embeddings of any type (rows of types other than
//! F32 / F16 / BF16 are dequantized on the host and uploaded).

use std::sync::{Arc, Mutex};

use super::hparams::{Arch, HParams};
use super::weights::{Matrix, Model, Proj};
use crate::error::{Error, Result};
use crate::kernels::cuda::ops::{self, ActPtrs, Heads, NormIn, Seg, Segs};
use crate::kernels::cuda::{as_bytes, as_bytes_mut, DevBuf, Device, Graph};
use crate::kernels::ternary::{TernaryMat, WeightScale, QK};
use crate::quant::{tq1_0, tq2_0, GgmlType};

/// How one matrix of a stack is stored on the device.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Store {
    /// 2-bit codes (+ per-block scales when `blocks`).
    Ternary { blocks: bool },
    /// Float weights times f32 activations rounded as `xround` says.
    Float { wty: i32, xround: i32 },
    /// Float weights times per-token int8 activations.
    FloatI8 { wty: i32 },
}

/// One matrix of a stack: its rows, how its outputs are finished, and which of the group's
/// outputs it writes.
#[derive(Clone, Copy, Debug)]
struct SegSpec {
    rows: usize,
    kind: i32,
    wscale: f32,
    pscale: f32,
    out: usize,
}

/// A stack of matrices with one input, in device memory.
struct DevMat {
    store: Store,
    rows: usize,
    cols: usize,
    w: Arc<DevBuf>,
    wblk: Option<DevBuf>,
    segs: Vec<SegSpec>,
}

/// The matrices of one input (one or more stacks) and the activation format they read.
struct Group {
    mats: Vec<DevMat>,
    act: i32,
}

struct GpuLayer {
    attn_norm: DevBuf,
    attn_sub_norm: DevBuf,
    ffn_norm: DevBuf,
    ffn_sub_norm: DevBuf,
    qkv: Group,
    wo: Group,
    gate_up: Group,
    down: Group,
}

enum Embd {
    /// A float table on the device (possibly the head's buffer).
    Device { table: Arc<DevBuf>, ty: i32 },
    /// Rows dequantized on the host and uploaded per step.
    Host,
}

/// The output head on the device.
enum Head {
    /// The model's float head as stored.
    Float(DevMat),
    /// The Q8_0 head (`Model::head_q8`): int8 values [rows, cols], f32 block scales
    /// [rows, cols / 32].
    Q8 {
        qs: DevBuf,
        d: DevBuf,
        rows: usize,
        cols: usize,
    },
}

impl Head {
    fn bytes(&self) -> usize {
        match self {
            Head::Float(m) => m.w.bytes(),
            Head::Q8 { qs, d, .. } => qs.bytes() + d.bytes(),
        }
    }
}

/// A model's weights on a device.
pub struct GpuModel {
    model: Arc<Model>,
    dev: Arc<dyn Device>,
    /// One step at a time on the device's stream.
    run: Mutex<()>,
    embd: Embd,
    output_norm: DevBuf,
    head: Head,
    layers: Vec<GpuLayer>,
    weight_bytes: usize,
    decode_bytes: usize,
}

fn flt_type(ty: GgmlType) -> Option<i32> {
    match ty {
        GgmlType::F32 => Some(ops::FLT_F32),
        GgmlType::F16 => Some(ops::FLT_F16),
        GgmlType::BF16 => Some(ops::FLT_BF16),
        _ => None,
    }
}

/// Per-row, per-256-block scales of a TQ1_0 / TQ2_0 tensor.
pub fn ternary_block_scales(ty: GgmlType, data: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let (block_bytes, d_off) = match ty {
        GgmlType::TQ2_0 => (tq2_0::BLOCK_BYTES, 64),
        _ => (tq1_0::BLOCK_BYTES, 52),
    };
    let nb = rows * (cols / QK);
    (0..nb)
        .map(|b| {
            let o = b * block_bytes + d_off;
            crate::quant::float::f16_to_f32(u16::from_le_bytes([data[o], data[o + 1]]))
        })
        .collect()
}

/// A ternary matrix (I2_S, TQ1_0 or TQ2_0 bytes) in the kernels' 2-bit layout.
pub fn ternary_pack(ty: GgmlType, data: &[u8], rows: usize, cols: usize) -> TernaryMat {
    match ty {
        GgmlType::I2_S => TernaryMat::from_i2_s(data, rows, cols),
        GgmlType::TQ2_0 => TernaryMat::from_tq2_0(data, rows, cols),
        _ => TernaryMat::from_tq1_0(data, rows, cols),
    }
}

/// One matrix prepared on the host, before stacking and upload.
struct HostMat {
    store: Store,
    rows: usize,
    cols: usize,
    bytes: Vec<u8>,
    blk: Vec<f32>,
    seg: SegSpec,
}

fn prepare(model: &Model, p: &Proj, out: usize) -> Result<HostMat> {
    let m = &p.w;
    let arch = model.hparams().arch;
    let data = model.mat(m).data;
    let pscale = p.scale.unwrap_or(1.0);
    if TernaryMat::can_pack(m.ty, m.cols) {
        let per_token = arch == Arch::BitnetB158 || m.ty == GgmlType::I2_S;
        let t = ternary_pack(m.ty, data, m.rows, m.cols);
        let codes = t.codes()[..m.rows * m.cols / 4].to_vec();
        let (kind, wscale, blocks) = match (per_token, t.scale) {
            (true, WeightScale::Tensor(s)) => (ops::KIND_TENSOR, s, false),
            (true, WeightScale::Blocks { uniform: Some(d) }) => (ops::KIND_UNIFORM, d, false),
            (true, WeightScale::Blocks { uniform: None }) => (ops::KIND_BLOCKS, 0.0, true),
            (false, _) => (ops::KIND_Q8K, 0.0, true),
        };
        let blk = if blocks {
            ternary_block_scales(m.ty, data, m.rows, m.cols)
        } else {
            Vec::new()
        };
        return Ok(HostMat {
            store: Store::Ternary { blocks },
            rows: m.rows,
            cols: m.cols,
            bytes: codes,
            blk,
            seg: SegSpec {
                rows: m.rows,
                kind,
                wscale,
                pscale,
                out,
            },
        });
    }
    let Some(wty) = flt_type(m.ty) else {
        return Err(Error::unsupported(format!(
            "the CUDA backend has no kernel for {} weights ({}); supported: I2_S, TQ1_0, TQ2_0, \
             F32, F16, BF16",
            m.ty, m.name
        )));
    };
    let store = match arch {
        Arch::BitnetB158 => Store::FloatI8 { wty },
        // qwen3 never gets here (`GpuModel::upload` refuses it first).
        Arch::Bitnet | Arch::Qwen3 => Store::Float {
            wty,
            xround: if wty == ops::FLT_F32 { -1 } else { wty },
        },
    };
    Ok(HostMat {
        store,
        rows: m.rows,
        cols: m.cols,
        bytes: data.to_vec(),
        blk: Vec::new(),
        seg: SegSpec {
            rows: m.rows,
            kind: ops::KIND_TENSOR,
            wscale: 1.0,
            pscale,
            out,
        },
    })
}

fn act_of(store: Store) -> i32 {
    match store {
        Store::Ternary { blocks: true } => -1, // decided by the segment kind
        Store::Ternary { blocks: false } | Store::FloatI8 { .. } => ops::ACT_PER_TOKEN,
        Store::Float { .. } => ops::ACT_NONE,
    }
}

fn seg_act(store: Store, seg: &SegSpec) -> i32 {
    match act_of(store) {
        -1 if seg.kind == ops::KIND_Q8K => ops::ACT_Q8K,
        -1 => ops::ACT_PER_TOKEN,
        a => a,
    }
}

fn upload(dev: &dyn Device, bytes: &[u8]) -> Result<DevBuf> {
    let b = dev.alloc(bytes.len())?;
    dev.upload(b.ptr(), bytes)?;
    Ok(b)
}

/// Uploads the projections of one input, stacking those stored alike.
fn group(dev: &dyn Device, model: &Model, projs: &[&Proj]) -> Result<Group> {
    let mut host = Vec::new();
    for (i, p) in projs.iter().enumerate() {
        host.push(prepare(model, p, i)?);
    }
    let act = seg_act(host[0].store, &host[0].seg);
    if let Some(h) = host.iter().find(|h| seg_act(h.store, &h.seg) != act) {
        return Err(Error::unsupported(format!(
            "the CUDA backend needs one activation format per input; {} differs from {}",
            projs[h.seg.out].w.name, projs[0].w.name
        )));
    }
    let mut mats: Vec<DevMat> = Vec::new();
    let mut pending: Vec<HostMat> = Vec::new();
    let flush = |pending: &mut Vec<HostMat>, mats: &mut Vec<DevMat>| -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        let mut blk = Vec::new();
        let mut segs = Vec::new();
        let mut rows = 0;
        let any_blocks = pending
            .iter()
            .any(|h| matches!(h.store, Store::Ternary { blocks: true }));
        for h in pending.iter() {
            bytes.extend_from_slice(&h.bytes);
            if any_blocks {
                if h.blk.is_empty() {
                    blk.extend(std::iter::repeat_n(h.seg.wscale, h.rows * (h.cols / QK)));
                } else {
                    blk.extend_from_slice(&h.blk);
                }
            }
            segs.push(h.seg);
            rows += h.rows;
        }
        let store = match pending[0].store {
            Store::Ternary { .. } => Store::Ternary { blocks: any_blocks },
            s => s,
        };
        mats.push(DevMat {
            store,
            rows,
            cols: pending[0].cols,
            w: Arc::new(upload(dev, &bytes)?),
            wblk: if any_blocks {
                Some(upload(dev, as_bytes(&blk))?)
            } else {
                None
            },
            segs,
        });
        pending.clear();
        Ok(())
    };
    for h in host {
        let same = pending.first().is_some_and(|p| {
            let kind_ok = match (p.store, h.store) {
                (Store::Ternary { .. }, Store::Ternary { .. }) => true,
                (a, b) => a == b,
            };
            kind_ok && p.cols == h.cols && pending.len() < ops::MAX_SEGS
        });
        if !same {
            flush(&mut pending, &mut mats)?;
        }
        pending.push(h);
    }
    flush(&mut pending, &mut mats)?;
    Ok(Group { mats, act })
}

fn vec_buf(dev: &dyn Device, v: &[f32]) -> Result<DevBuf> {
    upload(dev, as_bytes(v))
}

impl GpuModel {
    /// Uploads `model`'s weights to `dev`. Unsupported weight types are an `Unsupported` error
    /// (the model can still run on the CPU); device errors (out of memory) come as they are.
    pub fn upload(dev: Arc<dyn Device>, model: Arc<Model>) -> Result<GpuModel> {
        let h = model.hparams().clone();
        let d = &*dev;
        // The device graph has the BitNet sub-norms and no per-head q/k norms: a qwen3 model
        // is refused rather than run through the wrong math.
        if h.arch == Arch::Qwen3 {
            return Err(Error::unsupported(
                "the CUDA backend does not run qwen3 models yet (per-head q/k norms); use the CPU",
            ));
        }
        if h.head_dim > ops::ATT_MAX_HD {
            return Err(Error::unsupported(format!(
                "the CUDA backend takes heads of up to {} dimensions, not {}",
                ops::ATT_MAX_HD,
                h.head_dim
            )));
        }
        if model.head_q4().is_some() || model.head_q6().is_some() {
            return Err(Error::unsupported(
                "the CUDA backend has no Q4_0 or Q6_K head: load with the stored head or HeadType::Q8_0",
            ));
        }
        // The head first: the embedding may share its buffer.
        let out = &model.output;
        let (head, head_buf) = if let Some(q8) = model.head_q8() {
            let head = Head::Q8 {
                qs: upload(d, as_bytes(q8.values()))?,
                d: vec_buf(d, q8.scales())?,
                rows: q8.rows,
                cols: q8.cols,
            };
            (head, None)
        } else {
            let Some(head_ty) = flt_type(out.ty) else {
                return Err(Error::unsupported(format!(
                    "the CUDA backend has no kernel for a {} output head ({}); supported: F32, \
                     F16, BF16, and Q8_0 requantized at load",
                    out.ty, out.name
                )));
            };
            let head_buf = Arc::new(upload(d, model.mat(out).data)?);
            let head = Head::Float(DevMat {
                store: Store::Float {
                    wty: head_ty,
                    xround: if head_ty == ops::FLT_F32 { -1 } else { head_ty },
                },
                rows: out.rows,
                cols: out.cols,
                w: Arc::clone(&head_buf),
                wblk: None,
                segs: vec![SegSpec {
                    rows: out.rows,
                    kind: ops::KIND_TENSOR,
                    wscale: 1.0,
                    pscale: 1.0,
                    out: 0,
                }],
            });
            (head, Some(head_buf))
        };
        let te: &Matrix = &model.token_embd;
        let embd = match (flt_type(te.ty), &head_buf) {
            (Some(ty), Some(hb)) if te.name == out.name => Embd::Device {
                table: Arc::clone(hb),
                ty,
            },
            (Some(ty), _) => Embd::Device {
                table: Arc::new(upload(d, model.mat(te).data)?),
                ty,
            },
            (None, _) => Embd::Host,
        };
        let mut layers = Vec::with_capacity(h.n_layer);
        // Every BitNet layer has both sub-norms (the loader requires them; qwen3 was refused).
        let sub_norm = |v: &Option<Vec<f32>>| -> Result<DevBuf> {
            let v = v
                .as_deref()
                .ok_or_else(|| Error::unsupported("the CUDA backend needs the BitNet sub-norms"))?;
            vec_buf(d, v)
        };
        for l in &model.layers {
            layers.push(GpuLayer {
                attn_norm: vec_buf(d, &l.attn_norm)?,
                attn_sub_norm: sub_norm(&l.attn_sub_norm)?,
                ffn_norm: vec_buf(d, &l.ffn_norm)?,
                ffn_sub_norm: sub_norm(&l.ffn_sub_norm)?,
                qkv: group(d, &model, &[&l.wq, &l.wk, &l.wv])?,
                wo: group(d, &model, &[&l.wo])?,
                gate_up: group(d, &model, &[&l.w_gate, &l.w_up])?,
                down: group(d, &model, &[&l.w_down])?,
            });
        }
        let output_norm = vec_buf(d, &model.output_norm)?;
        let mut decode_bytes = head.bytes();
        let mut weight_bytes = head.bytes();
        if let Embd::Device { table, .. } = &embd {
            if !head_buf.as_ref().is_some_and(|hb| Arc::ptr_eq(table, hb)) {
                weight_bytes += table.bytes();
            }
        }
        for l in &layers {
            for g in [&l.qkv, &l.wo, &l.gate_up, &l.down] {
                for m in &g.mats {
                    let b = m.w.bytes() + m.wblk.as_ref().map_or(0, |b| b.bytes());
                    decode_bytes += b;
                    weight_bytes += b;
                }
            }
        }
        d.sync()?;
        Ok(GpuModel {
            model,
            dev,
            run: Mutex::new(()),
            embd,
            output_norm,
            head,
            layers,
            weight_bytes,
            decode_bytes,
        })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Whether embedding rows are made on the host (a table type without a device kernel).
    pub fn embeds_on_host(&self) -> bool {
        matches!(self.embd, Embd::Host)
    }

    pub fn device(&self) -> &Arc<dyn Device> {
        &self.dev
    }

    /// Device memory the weights take, bytes.
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    /// Weight bytes a decode step reads (every projection and the head).
    pub fn decode_weight_bytes(&self) -> usize {
        self.decode_bytes
    }

    /// Launches the matrices of `g` on `n` tokens: f32 input `x` (for float weights) or the
    /// int8 activations in `act`; segment i of each stack writes `outs[seg.out]`.
    fn project(
        &self,
        g: &Group,
        x: u64,
        act: &ActPtrs,
        n: usize,
        outs: [u64; 3],
        accumulate: bool,
    ) -> Result<()> {
        let d = &*self.dev;
        for m in &g.mats {
            let mut segs = Segs::default();
            let mut end = 0;
            for (i, s) in m.segs.iter().enumerate() {
                end += s.rows;
                segs.s[i] = Seg {
                    row_end: end as i32,
                    kind: s.kind,
                    wscale: s.wscale,
                    pscale: s.pscale,
                    out: outs[s.out],
                    out_stride: s.rows as i32,
                    accumulate: accumulate as i32,
                };
            }
            segs.n = m.segs.len() as i32;
            match m.store {
                Store::Ternary { blocks } => ops::tern_matmul(
                    d,
                    m.w.ptr(),
                    m.rows,
                    m.cols,
                    act,
                    n,
                    m.wblk.as_ref().map_or(0, |b| b.ptr()),
                    blocks,
                    &segs,
                )?,
                Store::Float { wty, xround } => {
                    ops::flt_matmul(d, m.w.ptr(), wty, m.rows, m.cols, x, n, xround, &segs)?
                }
                Store::FloatI8 { wty } => {
                    ops::flt_i8_matmul(d, m.w.ptr(), wty, m.rows, m.cols, act, n, &segs)?
                }
            }
        }
        Ok(())
    }
}

/// One decode step's inputs, as the context prepared them on the host.
pub struct Step<'a> {
    pub tokens: &'a [u32],
    /// The cache cell of each token.
    pub slots: &'a [usize],
    /// [n, n_rot / 2] (sin, cos) of each token's rotation angles, flattened.
    pub rope: &'a [f32],
    /// Per token, the cells it attends to (in position order): `cells[offs[t]..][..lens[t]]`.
    pub cells: &'a [i32],
    pub offs: &'a [i32],
    pub lens: &'a [i32],
    /// Batch indices of the tokens whose logits are wanted, in order.
    pub wanted: &'a [usize],
    /// The embedding rows when the table stays on the host ([n, n_embd]).
    pub host_x: Option<&'a [f32]>,
}

/// Rows of logits computed per head launch (and downloaded per step of that many).
const HEAD_CHUNK: usize = 64;
/// Bound on the attention score scratch, bytes.
const SCORES_BYTES: usize = 64 << 20;

/// A context's device state: the KV cache, activation buffers, the captured decode graph.
pub struct GpuState {
    gm: Arc<GpuModel>,
    n_ctx: usize,
    n_batch: usize,
    kc: DevBuf,
    vc: DevBuf,
    x: DevBuf,
    xb: DevBuf,
    q: DevBuf,
    k: DevBuf,
    v: DevBuf,
    att: DevBuf,
    gate: DevBuf,
    up: DevBuf,
    hff: DevBuf,
    act_q: DevBuf,
    act_tsum: DevBuf,
    act_tscale: DevBuf,
    act_bsum: DevBuf,
    act_bd: DevBuf,
    act_corr: DevBuf,
    /// i32: tokens, slots, offs, lens, wanted (n each), then the cell lists.
    ints: DevBuf,
    cells_cap: usize,
    rope: DevBuf,
    scores: DevBuf,
    att_chunk: usize,
    logits: DevBuf,
    /// The Q8_0 head's activations (int8 values, block scales) for one chunk of rows.
    head_act: Option<(DevBuf, DevBuf)>,
    graph: Option<Box<dyn Graph>>,
    /// A captured graph failed once: run steps directly from then on.
    no_graph: bool,
    /// A device error outside `forward` (a cache copy), returned by the next step.
    pub poisoned: Option<Error>,
}

impl GpuState {
    pub fn new(gm: Arc<GpuModel>, n_ctx: usize, n_batch: usize) -> Result<GpuState> {
        let h = gm.model.hparams().clone();
        let d = &*gm.dev;
        let n_kv = h.n_head_kv * h.head_dim;
        let f32s = |n: usize| d.alloc(n * 4);
        let cols = h.n_embd.max(h.n_ff);
        let nb = cols / QK + 1;
        let cache = h.n_layer * n_ctx * n_kv * 2;
        let kc = d
            .alloc(cache)
            .map_err(|e| e.context("the KV cache (keys)"))?;
        let vc = d
            .alloc(cache)
            .map_err(|e| e.context("the KV cache (values)"))?;
        let att_chunk = (SCORES_BYTES / (h.n_head * n_ctx * 4)).clamp(1, n_batch);
        let cells_cap = n_ctx;
        let chunk = HEAD_CHUNK.min(n_batch);
        let head_act = match &gm.head {
            Head::Q8 { cols, .. } => Some((d.alloc(chunk * cols)?, f32s(chunk * (cols / 32))?)),
            Head::Float(_) => None,
        };
        Ok(GpuState {
            n_ctx,
            n_batch,
            kc,
            vc,
            x: f32s(n_batch * h.n_embd)?,
            xb: f32s(n_batch * h.n_embd)?,
            q: f32s(n_batch * h.n_embd)?,
            k: f32s(n_batch * n_kv)?,
            v: f32s(n_batch * n_kv)?,
            att: f32s(n_batch * h.n_embd)?,
            gate: f32s(n_batch * h.n_ff)?,
            up: f32s(n_batch * h.n_ff)?,
            hff: f32s(n_batch * h.n_ff)?,
            act_q: d.alloc(n_batch * cols)?,
            act_tsum: d.alloc(n_batch * 4)?,
            act_tscale: d.alloc(n_batch * 4)?,
            act_bsum: d.alloc(n_batch * nb * 4)?,
            act_bd: d.alloc(n_batch * nb * 4)?,
            act_corr: d.alloc(n_batch * nb * 8 * 4)?,
            ints: d.alloc((5 * n_batch + cells_cap) * 4)?,
            cells_cap,
            rope: f32s(n_batch * h.n_rot.max(2))?,
            scores: f32s(att_chunk * h.n_head * n_ctx)?,
            att_chunk,
            logits: f32s(chunk * h.n_vocab)?,
            head_act,
            graph: None,
            no_graph: false,
            poisoned: None,
            gm,
        })
    }

    pub fn model(&self) -> &Arc<GpuModel> {
        &self.gm
    }

    fn act(&self) -> ActPtrs {
        ActPtrs {
            q: self.act_q.ptr(),
            tsum: self.act_tsum.ptr(),
            tscale: self.act_tscale.ptr(),
            bsum: self.act_bsum.ptr(),
            bd: self.act_bd.ptr(),
            corr: self.act_corr.ptr(),
        }
    }

    /// Everything from the embeddings to the final norm of the wanted rows (into xb rows
    /// 0..n_out), for `n` tokens whose inputs are in `ints` / `rope`.
    fn enqueue_body(&self, n: usize, n_out: usize, host_embd: bool) -> Result<()> {
        let gm = &*self.gm;
        let d = &*gm.dev;
        let h: &HParams = gm.model.hparams();
        let (n_embd, n_ff, hd) = (h.n_embd, h.n_ff, h.head_dim);
        let n_kv = h.n_head_kv * hd;
        let eps = h.rms_eps;
        let act = self.act();
        let int_at = |i: usize| self.ints.at(i * 4);
        let (tokens, slots, offs, lens, wanted, cells) = (
            int_at(0),
            int_at(n),
            int_at(2 * n),
            int_at(3 * n),
            int_at(4 * n),
            int_at(5 * n),
        );
        let heads = Heads {
            n_head: h.n_head,
            n_head_kv: h.n_head_kv,
            head_dim: hd,
            n_rot: h.n_rot,
        };
        let att_scale = 1.0 / (hd as f32).sqrt();
        if !host_embd {
            if let Embd::Device { table, ty } = &gm.embd {
                ops::embed_rows(d, table.ptr(), *ty, tokens, self.x.ptr(), n, n_embd)?;
            }
        }
        let plain = |x: u64, stride: usize| NormIn {
            x,
            y: 0,
            op: 0,
            stride,
            rows: 0,
        };
        let layer_bytes = self.n_ctx * n_kv * 2;
        for (l, layer) in gm.layers.iter().enumerate() {
            // Attention block.
            ops::norm_act(
                d,
                plain(self.x.ptr(), n_embd),
                n,
                self.xb.ptr(),
                layer.attn_norm.ptr(),
                n_embd,
                eps,
                layer.qkv.act,
                &act,
            )?;
            gm.project(
                &layer.qkv,
                self.xb.ptr(),
                &act,
                n,
                [self.q.ptr(), self.k.ptr(), self.v.ptr()],
                false,
            )?;
            let (kc, vc) = (self.kc.at(l * layer_bytes), self.vc.at(l * layer_bytes));
            ops::rope_kv(
                d,
                self.q.ptr(),
                self.k.ptr(),
                self.v.ptr(),
                self.rope.ptr(),
                slots,
                kc,
                vc,
                n,
                heads,
            )?;
            let mut t0 = 0;
            while t0 < n {
                let nt = self.att_chunk.min(n - t0);
                ops::attention(
                    d,
                    self.q.ptr(),
                    self.att.ptr(),
                    kc,
                    vc,
                    (cells, offs, lens),
                    self.scores.ptr(),
                    t0,
                    nt,
                    heads,
                    att_scale,
                    self.n_ctx,
                )?;
                t0 += nt;
            }
            ops::norm_act(
                d,
                plain(self.att.ptr(), n_embd),
                n,
                self.xb.ptr(),
                layer.attn_sub_norm.ptr(),
                n_embd,
                eps,
                layer.wo.act,
                &act,
            )?;
            gm.project(&layer.wo, self.xb.ptr(), &act, n, [self.x.ptr(); 3], true)?;

            // FFN block.
            ops::norm_act(
                d,
                plain(self.x.ptr(), n_embd),
                n,
                self.xb.ptr(),
                layer.ffn_norm.ptr(),
                n_embd,
                eps,
                layer.gate_up.act,
                &act,
            )?;
            gm.project(
                &layer.gate_up,
                self.xb.ptr(),
                &act,
                n,
                [self.gate.ptr(), self.up.ptr(), 0],
                false,
            )?;
            let op = match h.arch {
                Arch::Bitnet | Arch::Qwen3 => 1,
                Arch::BitnetB158 => 2,
            };
            ops::norm_act(
                d,
                NormIn {
                    x: self.gate.ptr(),
                    y: self.up.ptr(),
                    op,
                    stride: n_ff,
                    rows: 0,
                },
                n,
                self.hff.ptr(),
                layer.ffn_sub_norm.ptr(),
                n_ff,
                eps,
                layer.down.act,
                &act,
            )?;
            gm.project(
                &layer.down,
                self.hff.ptr(),
                &act,
                n,
                [self.x.ptr(); 3],
                true,
            )?;
        }
        if n_out > 0 {
            ops::norm_act(
                d,
                NormIn {
                    x: self.x.ptr(),
                    y: 0,
                    op: 0,
                    stride: n_embd,
                    rows: wanted,
                },
                n_out,
                self.xb.ptr(),
                gm.output_norm.ptr(),
                n_embd,
                eps,
                ops::ACT_NONE,
                &act,
            )?;
        }
        Ok(())
    }

    /// Logits of final hidden rows r0..r0+nr (xb) into the logits scratch.
    fn enqueue_head(&self, r0: usize, nr: usize) -> Result<()> {
        let gm = &*self.gm;
        let n_embd = gm.model.hparams().n_embd;
        let m = match &gm.head {
            Head::Float(m) => m,
            Head::Q8 { qs, d, rows, cols } => {
                let Some((aq, ad)) = &self.head_act else {
                    unreachable!("a Q8_0 head has its activation buffers");
                };
                let dev = &*gm.dev;
                ops::q8_quant(
                    dev,
                    self.xb.at(r0 * n_embd * 4),
                    nr,
                    *cols,
                    aq.ptr(),
                    ad.ptr(),
                )?;
                return ops::q8_head(
                    dev,
                    qs.ptr(),
                    d.ptr(),
                    *rows,
                    *cols,
                    aq.ptr(),
                    ad.ptr(),
                    nr,
                    self.logits.ptr(),
                    *rows,
                );
            }
        };
        let Store::Float { wty, xround } = m.store else {
            unreachable!("the head is a float matrix");
        };
        let segs = Segs {
            s: [
                Seg {
                    row_end: m.rows as i32,
                    kind: ops::KIND_TENSOR,
                    wscale: 1.0,
                    pscale: 1.0,
                    out: self.logits.ptr(),
                    out_stride: m.rows as i32,
                    accumulate: 0,
                },
                Seg::default(),
                Seg::default(),
            ],
            n: 1,
        };
        ops::flt_matmul(
            &*gm.dev,
            m.w.ptr(),
            wty,
            m.rows,
            m.cols,
            self.xb.at(r0 * n_embd * 4),
            nr,
            xround,
            &segs,
        )
    }

    /// Runs one step: fills `logits` ([wanted, n_vocab]) and, when `embd` is given, the final
    /// hidden states of the wanted rows ([wanted, n_embd]).
    pub fn forward(
        &mut self,
        s: &Step<'_>,
        logits: &mut Vec<f32>,
        embd: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        let gm = Arc::clone(&self.gm);
        let _run = gm.run.lock().unwrap_or_else(|e| e.into_inner());
        let d = &*gm.dev;
        let h = gm.model.hparams();
        let n = s.tokens.len();
        let n_out = s.wanted.len();
        if n == 0 || n > self.n_batch {
            return Err(Error::bad_input(format!(
                "CUDA step of {n} tokens (n_batch {})",
                self.n_batch
            )));
        }
        // Inputs: one upload of the integers, one of the rope table, one of host embeddings.
        let n_cells = s.cells.len();
        if n_cells > self.cells_cap {
            self.graph = None;
            self.ints = d.alloc((5 * self.n_batch + n_cells) * 4)?;
            self.cells_cap = n_cells;
        }
        let mut ints: Vec<i32> = Vec::with_capacity(5 * n + n_cells);
        ints.extend(s.tokens.iter().map(|&t| t as i32));
        ints.extend(s.slots.iter().map(|&c| c as i32));
        ints.extend_from_slice(s.offs);
        ints.extend_from_slice(s.lens);
        ints.extend(s.wanted.iter().map(|&w| w as i32));
        // The wanted list takes n slots whatever its length: the cells start at 5n.
        ints.resize(5 * n, 0);
        ints.extend_from_slice(s.cells);
        d.upload(self.ints.ptr(), as_bytes(&ints))?;
        d.upload(self.rope.ptr(), as_bytes(s.rope))?;
        let host_embd = s.host_x.is_some();
        if let Some(x) = s.host_x {
            d.upload(self.x.ptr(), as_bytes(&x[..n * h.n_embd]))?;
        }

        let graphable = n == 1 && n_out == 1 && !self.no_graph;
        let mut ran = false;
        if graphable {
            if self.graph.is_none() {
                let this = &*self;
                match d.capture(&mut || {
                    this.enqueue_body(1, 1, host_embd)?;
                    this.enqueue_head(0, 1)
                }) {
                    Ok(g) => self.graph = Some(g),
                    Err(_) => self.no_graph = true,
                }
            }
            if let Some(g) = &self.graph {
                // Host embeddings change which kernels run: the graph was captured for one
                // choice, which is fixed per model.
                g.launch()?;
                ran = true;
            }
        }
        if !ran {
            self.enqueue_body(n, n_out, host_embd)?;
        }
        logits.clear();
        logits.resize(n_out * h.n_vocab, 0.0);
        let chunk = HEAD_CHUNK.min(self.n_batch);
        let mut r0 = 0;
        while r0 < n_out {
            let nr = chunk.min(n_out - r0);
            if !ran {
                self.enqueue_head(r0, nr)?;
            }
            d.download(
                self.logits.ptr(),
                as_bytes_mut(&mut logits[r0 * h.n_vocab..(r0 + nr) * h.n_vocab]),
            )?;
            r0 += nr;
        }
        if let Some(e) = embd {
            e.clear();
            e.resize(n_out * h.n_embd, 0.0);
            d.download(self.xb.ptr(), as_bytes_mut(e))?;
        }
        if n_out == 0 {
            d.sync()?;
        }
        Ok(())
    }

    /// The whole cache (keys or values) as f16 bits, [n_layer, n_ctx, n_kv].
    pub fn read_cache(&self, values: bool, out: &mut [half::f16]) -> Result<()> {
        let _run = self.gm.run.lock().unwrap_or_else(|e| e.into_inner());
        let buf = if values { &self.vc } else { &self.kc };
        self.gm.dev.download(buf.ptr(), as_bytes_mut(out))
    }

    /// Replaces the whole cache (keys or values) with `data` ([n_layer, n_ctx, n_kv]).
    pub fn write_cache(&self, values: bool, data: &[half::f16]) -> Result<()> {
        let _run = self.gm.run.lock().unwrap_or_else(|e| e.into_inner());
        let buf = if values { &self.vc } else { &self.kc };
        self.gm.dev.upload(buf.ptr(), as_bytes(data))?;
        self.gm.dev.sync()
    }

    /// Elements of one cache (keys or values).
    pub fn cache_len(&self) -> usize {
        self.kc.bytes() / 2
    }
}

/// Reads the device's memory bandwidth (bytes/s): a read of `bytes` bytes, best of three.
pub fn read_bandwidth(dev: &dyn Device, bytes: usize) -> Result<f64> {
    let buf = dev.alloc(bytes)?;
    let out = dev.alloc(4)?;
    let words = bytes / 16;
    ops::read_sum(dev, buf.ptr(), words, out.ptr())?;
    dev.sync()?;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        ops::read_sum(dev, buf.ptr(), words, out.ptr())?;
        dev.sync()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok((words * 16) as f64 / best)
}
