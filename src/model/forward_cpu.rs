//! The forward pass on the CPU, for every architecture, read top to bottom: embed, then per
//! layer norm -> q/k/v -> (qwen3: per-head q/k norms) -> RoPE -> KV cache -> attention ->
//! (BitNet: sub-norm) -> o -> residual -> norm -> gate/up -> SiLU (`bitnet`, `qwen3`) or relu²
//! (`bitnet-b1.58`) -> (BitNet: sub-norm) -> down -> residual, then the final norm and the head
//! for the tokens that want logits.
//!
//! The math of each step is in docs/architectures.md; the kernels (`crate::kernels`) do the
//! arithmetic, each bit-identical to its scalar reference. What is here: the activation
//! buffers, allocated once, and the order of the steps.
//!
//! Activations per weight type (`project`): `bitnet-b1.58` quantizes every projection's input
//! per token to int8 whatever the storage (BitLinear); `bitnet` converts it to the weight
//! type's partner format as the reference does (Q8_K for TQ1_0/TQ2_0, f16 for F16, ...), and
//! so does `qwen3` (Q8_0 for Q1_0/Q2_0).

use std::ops::Range;

use super::hparams::{Arch, HParams};
use super::kv_cache::HostKv;
use super::weights::{Matrix, Model, Proj};
use super::Batch;
use crate::error::Result;
use crate::kernels::attention::{self, AttnScratch, AttnShape};
use crate::kernels::isa::best_isa;
use crate::kernels::ternary::ActBuf;
use crate::kernels::{exp, norm, pool, rope, Activations};

/// Tokens per forward pass: a longer batch runs in chunks of this many (`Context::decode`),
/// each chunk's keys and values in the cache before the next one attends to them, so the
/// activation buffers take this many tokens and not n_batch (a 512-token prefill: ~70 MB
/// less). Full tiles for the prefill kernels; every kernel gives the same bits whatever the
/// chunk.
pub(crate) const UBATCH: usize = 128;

/// Activation buffers for up to `t` tokens (row i of each belongs to token i).
struct Buffers {
    x: Vec<f32>,           // [T, n_embd] the residual stream
    xb: Vec<f32>,          // [T, n_embd] normed input of a block
    q: Vec<f32>,           // [T, n_q]
    k: Vec<f32>,           // [T, n_kv]
    v: Vec<f32>,           // [T, n_kv]
    att: Vec<f32>,         // [T, n_q] attention output (all heads)
    qk_norm: Vec<f32>,     // [head_dim] one head before its q/k RMSNorm (qwen3)
    proj: Vec<f32>,        // [T, n_embd] output of attn_output / ffn_down
    gate: Vec<f32>,        // [T, n_ff]
    up: Vec<f32>,          // [T, n_ff]
    rope: Vec<(f32, f32)>, // [T, n_rot / 2] (sin, cos) of each token's rotation angles
    act: ActBuf,           // int8 activations shared by the projections of one input
    attn: AttnScratch,     // f32 copies of the visible keys/values, per-thread scores
}

impl Buffers {
    fn new(t: usize, h: &HParams) -> Buffers {
        let (n_q, n_kv) = (h.n_q(), h.n_kv());
        Buffers {
            x: vec![0.0; t * h.n_embd],
            // The normed attention output (n_q wide) goes through xb too.
            xb: vec![0.0; t * h.n_embd.max(n_q)],
            q: vec![0.0; t * n_q],
            k: vec![0.0; t * n_kv],
            v: vec![0.0; t * n_kv],
            att: vec![0.0; t * n_q],
            qk_norm: vec![0.0; h.head_dim],
            proj: vec![0.0; t * h.n_embd],
            gate: vec![0.0; t * h.n_ff],
            up: vec![0.0; t * h.n_ff],
            rope: vec![(0.0, 0.0); t * (h.n_rot / 2)],
            act: ActBuf::default(),
            attn: AttnScratch::default(),
        }
    }

    /// Bytes of the f32 activation buffers (the scratch that grows on demand left out).
    fn bytes(&self) -> usize {
        let floats = [
            &self.x, &self.xb, &self.q, &self.k, &self.v, &self.att, &self.proj, &self.gate,
            &self.up,
        ]
        .iter()
        .map(|b| b.len())
        .sum::<usize>();
        floats * 4 + self.rope.len() * 8
    }

    /// Room for `t` tokens (a batch that cannot run in chunks of UBATCH).
    fn ensure(&mut self, t: usize, h: &HParams) {
        if self.x.len() < t * h.n_embd {
            let (act, attn) = (
                std::mem::take(&mut self.act),
                std::mem::take(&mut self.attn),
            );
            *self = Buffers {
                act,
                attn,
                ..Buffers::new(t, h)
            };
        }
    }
}

/// The CPU backend of a context: the KV cache in host memory and the activation buffers.
pub(crate) struct CpuForward {
    pub kv: HostKv,
    buf: Buffers,
}

/// `norm::rmsnorm` of each row (w.len() values) of x, the rows split between pool threads.
fn rmsnorm_par(out: &mut [f32], x: &[f32], w: &[f32], eps: f32, threads: usize) {
    let isa = best_isa();
    pool::rows_mut(out, x, w.len(), threads, &|o, x| {
        norm::rmsnorm(isa, o, x, w, eps)
    });
}

/// x += y, row by row over the pool threads (the residual adds).
fn add_rows(x: &mut [f32], y: &[f32], width: usize, threads: usize) {
    pool::rows_mut(x, y, width, threads, &|x, y| {
        x.iter_mut().zip(y).for_each(|(x, &y)| *x += y)
    });
}

/// outs[i] = projs[i](x) for `n` rows, each times its projection's scale when it has one.
/// Projections of one input share its int8 quantization (`act`) when they were repacked.
fn project(
    model: &Model,
    projs: &mut [(&Proj, &mut [f32])],
    x: &[f32],
    n: usize,
    act: &mut ActBuf,
    threads: usize,
) -> Result<()> {
    // BitNet b1.58 (Microsoft's arch) quantizes every projection's input per token to int8,
    // whatever the weights' storage; upstream's `bitnet` treats activations by weight type.
    let mode = match model.hparams().arch {
        Arch::BitnetB158 => Activations::PerTokenInt8,
        Arch::Bitnet | Arch::Qwen3 => Activations::ByWeightType,
    };
    if projs.len() > 1 && projs.iter().all(|(p, _)| Model::is_lowbit(&p.w, mode)) {
        // Q2_0 / Q1_0 (qwen3): all of them in one pool hand-off.
        let mut mats: Vec<(&Matrix, &mut [f32])> = projs
            .iter_mut()
            .map(|(p, out)| (&p.w, &mut **out))
            .collect();
        model.matmul_lowbit_many(&mut mats, x, n, threads);
    } else {
        let mut quantized = false;
        for (p, out) in projs.iter_mut() {
            let w = &p.w;
            if !quantized || !Model::act_fits(w, mode, act) {
                quantized = model.quantize_for(w, mode, x, n, act, threads);
            }
            if quantized {
                model.matmul_quantized(w, act, out, threads);
            } else {
                model.matmul(w, mode, x, n, out, threads)?;
            }
        }
    }
    for (p, out) in projs.iter_mut() {
        let w = &p.w;
        if let Some(s) = p.scale {
            pool::parts_mut(&mut out[..n * w.rows], threads, &|part| {
                part.iter_mut().for_each(|v| *v *= s)
            });
        }
    }
    Ok(())
}

impl CpuForward {
    pub fn new(h: &HParams, n_ctx: usize, n_batch: usize) -> CpuForward {
        CpuForward {
            kv: HostKv::new(h, n_ctx),
            buf: Buffers::new(n_batch.min(UBATCH), h),
        }
    }

    /// Bytes held: (the KV cache, the activation buffers).
    pub fn memory_bytes(&self) -> (usize, usize) {
        (self.kv.bytes(), self.buf.bytes())
    }

    /// The forward pass of batch entries `r` (cells `slots`, each attending to its list in
    /// `visible`): their keys and values into the cache, the logits of those that want them
    /// into `logits` (one row each, in batch order), and their final hidden states appended
    /// to `embd` when it is given.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        model: &Model,
        threads: usize,
        batch: &Batch<'_>,
        r: Range<usize>,
        slots: &[usize],
        visible: &[Vec<usize>],
        logits: &mut [f32],
        embd: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        let h = model.hparams();
        let n = r.len();
        let (n_embd, n_ff, hd) = (h.n_embd, h.n_ff, h.head_dim);
        let (n_q, n_kv) = (h.n_q(), h.n_kv());
        let half_rot = h.n_rot / 2;
        self.buf.ensure(n, h);
        let (b, kv) = (&mut self.buf, &mut self.kv);
        for (t, &pos) in batch.positions[r.clone()].iter().enumerate() {
            rope::table(&mut b.rope[t * half_rot..], pos, h.n_rot, h.rope_theta);
        }

        // Embedding rows: x [n, n_embd].
        for (t, &tok) in batch.tokens[r.clone()].iter().enumerate() {
            model.embedding_row(tok as usize, &mut b.x[t * n_embd..(t + 1) * n_embd])?;
        }

        let isa = best_isa();
        for (l, layer) in model.layers.iter().enumerate() {
            // Attention block: norm -> q, k, v -> (q/k norms) -> rope -> cache -> attention ->
            // (sub-norm) -> o.
            let xn = &mut b.xb[..n * n_embd];
            rmsnorm_par(xn, &b.x[..n * n_embd], &layer.attn_norm, h.rms_eps, threads);
            project(
                model,
                &mut [
                    (&layer.wq, &mut b.q[..]), // [n, n_q]
                    (&layer.wk, &mut b.k[..]), // [n, n_kv]
                    (&layer.wv, &mut b.v[..]), // [n, n_kv]
                ],
                &b.xb,
                n,
                &mut b.act,
                threads,
            )?;
            for (t, &cell) in slots.iter().enumerate() {
                let table = &b.rope[t * half_rot..(t + 1) * half_rot];
                let (q, k) = (
                    &mut b.q[t * n_q..(t + 1) * n_q],
                    &mut b.k[t * n_kv..(t + 1) * n_kv],
                );
                // qwen3: every head of q (and of k) RMS-normed with the same head_dim weights,
                // before the rotation.
                for (heads, w) in [(&mut *q, &layer.attn_q_norm), (&mut *k, &layer.attn_k_norm)] {
                    let Some(w) = w else { continue };
                    for head in heads.chunks_exact_mut(hd) {
                        b.qk_norm.copy_from_slice(head);
                        norm::rmsnorm(isa, head, &b.qk_norm, w, h.rms_eps);
                    }
                }
                for head in q.chunks_exact_mut(hd) {
                    rope::rotate_neox(head, table);
                }
                for head in k.chunks_exact_mut(hd) {
                    rope::rotate_neox(head, table);
                }
                kv.store(l, cell, k, &b.v[t * n_kv..(t + 1) * n_kv]);
            }
            // f16 keys times the query rounded to f16, as the reference (kernels::attention).
            attention::attention(
                AttnShape {
                    n_head: h.n_head,
                    n_head_kv: h.n_head_kv,
                    head_dim: hd,
                    n_cells: kv.n_ctx(),
                    scale: 1.0 / (hd as f32).sqrt(),
                },
                &b.q[..n * n_q],
                &mut b.att[..n * n_q],
                &kv.k[kv.layer(l)],
                &kv.v[kv.layer(l)],
                visible,
                threads,
                &mut b.attn,
            );
            let o_in = match &layer.attn_sub_norm {
                Some(w) => {
                    rmsnorm_par(
                        &mut b.xb[..n * n_q],
                        &b.att[..n * n_q],
                        w,
                        h.rms_eps,
                        threads,
                    );
                    &b.xb
                }
                None => &b.att,
            };
            project(
                model,
                &mut [(&layer.wo, &mut b.proj[..])],
                o_in,
                n,
                &mut b.act,
                threads,
            )?;
            add_rows(&mut b.x[..n * n_embd], &b.proj, n_embd, threads);

            // FFN block: norm -> gate, up -> act(gate) * up -> (sub-norm) -> down.
            let xn = &mut b.xb[..n * n_embd];
            rmsnorm_par(xn, &b.x[..n * n_embd], &layer.ffn_norm, h.rms_eps, threads);
            project(
                model,
                &mut [
                    (&layer.w_gate, &mut b.gate[..]), // [n, n_ff]
                    (&layer.w_up, &mut b.up[..]),     // [n, n_ff]
                ],
                &b.xb,
                n,
                &mut b.act,
                threads,
            )?;
            let arch = h.arch;
            pool::rows_mut(
                &mut b.gate[..n * n_ff],
                &b.up,
                n_ff,
                threads,
                &|gate, up| match arch {
                    Arch::Bitnet | Arch::Qwen3 => exp::silu_mul(isa, gate, up),
                    // relu(g)² * u, in f32 (relu² overflows f16).
                    Arch::BitnetB158 => {
                        for (g, &u) in gate.iter_mut().zip(up) {
                            let r = g.max(0.0);
                            *g = r * r * u;
                        }
                    }
                },
            );
            let down_in = match &layer.ffn_sub_norm {
                Some(w) => {
                    rmsnorm_par(
                        &mut b.up[..n * n_ff],
                        &b.gate[..n * n_ff],
                        w,
                        h.rms_eps,
                        threads,
                    );
                    &b.up
                }
                None => &b.gate,
            };
            project(
                model,
                &mut [(&layer.w_down, &mut b.proj[..])],
                down_in,
                n,
                &mut b.act,
                threads,
            )?;
            add_rows(&mut b.x[..n * n_embd], &b.proj, n_embd, threads);
        }

        // Final norm and head, only for the entries that want logits: logits [k, n_vocab].
        let wanted: Vec<usize> = (0..n).filter(|&t| batch.want_logits[r.start + t]).collect();
        for (row, &t) in wanted.iter().enumerate() {
            let (src, dst) = (
                t * n_embd..(t + 1) * n_embd,
                row * n_embd..(row + 1) * n_embd,
            );
            norm::rmsnorm(
                best_isa(),
                &mut b.xb[dst],
                &b.x[src],
                &model.output_norm,
                h.rms_eps,
            );
        }
        let k = wanted.len();
        model.head_matmul(
            &b.xb[..k * n_embd],
            k,
            &mut logits[..k * h.n_vocab],
            threads,
        )?;
        if let Some(embd) = embd {
            embd.extend_from_slice(&b.xb[..k * n_embd]);
        }
        Ok(())
    }
}
