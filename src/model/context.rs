//! `Context`: one sequence's KV cache (f16, like the reference), preallocated activation
//! buffers, and `decode`, the forward pass over a batch of tokens, read top to bottom.

use std::sync::Arc;

use half::f16;

use super::hparams::Arch;
use super::weights::{Model, Proj};
use crate::error::{Error, Result};
use crate::kernels::{self, Activations};

#[derive(Clone, Copy, Debug)]
pub struct ContextParams {
    /// KV cache size in positions.
    pub n_ctx: usize,
    /// Most tokens one `decode` call takes.
    pub n_batch: usize,
}

/// Tokens to run, the KV-cache position of each, and which ones want logits.
pub struct Batch<'a> {
    pub tokens: &'a [u32],
    pub positions: &'a [u32],
    pub want_logits: &'a [bool],
}

/// Activation buffers for up to `n_batch` tokens (row t of each belongs to token t).
struct Buffers {
    x: Vec<f32>,      // [T, n_embd] the residual stream
    xb: Vec<f32>,     // [T, n_embd] normed input of a block
    q: Vec<f32>,      // [T, n_embd]
    k: Vec<f32>,      // [T, n_kv]
    v: Vec<f32>,      // [T, n_kv]
    att: Vec<f32>,    // [T, n_embd] attention output (all heads)
    proj: Vec<f32>,   // [T, n_embd] output of attn_output / ffn_down
    gate: Vec<f32>,   // [T, n_ff]
    up: Vec<f32>,     // [T, n_ff]
    scores: Vec<f32>, // [n_ctx] one head's attention weights
}

pub struct Context {
    model: Arc<Model>,
    params: ContextParams,
    k_cache: Vec<f16>, // [n_layer, n_ctx, n_kv]
    v_cache: Vec<f16>, // [n_layer, n_ctx, n_kv]
    filled: Vec<bool>, // [n_ctx] which positions hold keys/values
    buf: Buffers,
    logits: Vec<f32>,               // [n_outputs, n_vocab]
    logits_row: Vec<Option<usize>>, // batch index -> row of `logits`
}

/// Each row (w.len() values) of x: y = x / sqrt(mean(x^2) + eps) * w, the mean accumulated in
/// f64 as the reference does. `out` and `x` hold the same number of rows.
fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    for (out, x) in out.chunks_exact_mut(w.len()).zip(x.chunks_exact(w.len())) {
        let sum: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        let mean = (sum / x.len() as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, &v), &w) in out.iter_mut().zip(x).zip(w) {
            *o = v * scale * w;
        }
    }
}

/// NEOX RoPE on one head: pairs (i, i + n_rot/2), angle pos * base^(-2i/n_rot), the angle
/// stepped by repeated multiplication as the reference does.
fn rope_neox(head: &mut [f32], pos: u32, n_rot: usize, base: f32) {
    let theta_scale = base.powf(-2.0 / n_rot as f32);
    let half = n_rot / 2;
    let mut theta = pos as f32;
    for i in 0..half {
        let (sin, cos) = theta.sin_cos();
        let (x0, x1) = (head[i], head[i + half]);
        head[i] = x0 * cos - x1 * sin;
        head[i + half] = x0 * sin + x1 * cos;
        theta *= theta_scale;
    }
}

/// Softmax in place; the sum of exponentials in f64 as the reference does.
fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// out = proj(x) for `n` rows, times the projection's scale when it has one.
fn project(model: &Model, p: &Proj, x: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
    let w = model.mat(&p.w);
    // BitNet b1.58 (Microsoft's arch) quantizes every projection's input per token to int8,
    // whatever the weights' storage; upstream's `bitnet` treats activations by weight type.
    let mode = match model.hparams().arch {
        Arch::BitnetB158 => Activations::PerTokenInt8,
        Arch::Bitnet => Activations::ByWeightType,
    };
    kernels::matmul(&w, mode, &x[..n * w.cols], n, &mut out[..n * w.rows])?;
    if let Some(s) = p.scale {
        out[..n * w.rows].iter_mut().for_each(|v| *v *= s);
    }
    Ok(())
}

impl Context {
    pub fn new(model: Arc<Model>, params: ContextParams) -> Result<Context> {
        let h = model.hparams();
        if params.n_ctx == 0 || params.n_batch == 0 {
            return Err(Error::bad_input("n_ctx and n_batch must be at least 1"));
        }
        let n_kv = h.n_head_kv * h.head_dim;
        let cache = h
            .n_layer
            .checked_mul(params.n_ctx)
            .and_then(|v| v.checked_mul(n_kv))
            .filter(|&v| v <= (1usize << 36))
            .ok_or_else(|| Error::bad_input(format!("n_ctx {} is too large", params.n_ctx)))?;
        let t = params.n_batch;
        let buf = Buffers {
            x: vec![0.0; t * h.n_embd],
            xb: vec![0.0; t * h.n_embd],
            q: vec![0.0; t * h.n_embd],
            k: vec![0.0; t * n_kv],
            v: vec![0.0; t * n_kv],
            att: vec![0.0; t * h.n_embd],
            proj: vec![0.0; t * h.n_embd],
            gate: vec![0.0; t * h.n_ff],
            up: vec![0.0; t * h.n_ff],
            scores: vec![0.0; params.n_ctx],
        };
        Ok(Context {
            params,
            k_cache: vec![f16::ZERO; cache],
            v_cache: vec![f16::ZERO; cache],
            filled: vec![false; params.n_ctx],
            buf,
            logits: Vec::new(),
            logits_row: Vec::new(),
            model,
        })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    pub fn n_ctx(&self) -> usize {
        self.params.n_ctx
    }

    /// Forgets every cached position.
    pub fn clear(&mut self) {
        self.filled.fill(false);
    }

    /// Logits of batch entry `i` of the last `decode`, if it asked for them.
    pub fn logits(&self, i: usize) -> Option<&[f32]> {
        let n_vocab = self.model.hparams().n_vocab;
        let row = (*self.logits_row.get(i)?)?;
        Some(&self.logits[row * n_vocab..(row + 1) * n_vocab])
    }

    fn check(&self, batch: &Batch<'_>) -> Result<()> {
        let n = batch.tokens.len();
        if n == 0 {
            return Err(Error::bad_input("empty batch"));
        }
        if batch.positions.len() != n || batch.want_logits.len() != n {
            return Err(Error::bad_input(
                "batch tokens, positions and logits flags differ in length",
            ));
        }
        if n > self.params.n_batch {
            return Err(Error::bad_input(format!(
                "batch of {n} tokens is larger than n_batch {}",
                self.params.n_batch
            )));
        }
        let n_vocab = self.model.hparams().n_vocab;
        if let Some(&t) = batch.tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::bad_input(format!(
                "token id {t} is outside the vocabulary (0..{n_vocab})"
            )));
        }
        if let Some(&p) = batch
            .positions
            .iter()
            .find(|&&p| p as usize >= self.params.n_ctx)
        {
            return Err(Error::bad_input(format!(
                "position {p} is beyond the context size n_ctx {}",
                self.params.n_ctx
            )));
        }
        Ok(())
    }

    /// Runs the batch through the model, filling the KV cache at the given positions and the
    /// logits of the entries that ask for them. On an error nothing has changed.
    pub fn decode(&mut self, batch: &Batch<'_>) -> Result<()> {
        self.check(batch)?;
        let model = Arc::clone(&self.model);
        let h = model.hparams();
        let n = batch.tokens.len();
        let (n_embd, n_ff, hd) = (h.n_embd, h.n_ff, h.head_dim);
        let n_kv = h.n_head_kv * hd;
        let group = h.n_head / h.n_head_kv;
        let att_scale = 1.0 / (hd as f32).sqrt();
        let b = &mut self.buf;

        // Embedding rows.
        let embd = model.mat(&model.token_embd);
        for (t, &tok) in batch.tokens.iter().enumerate() {
            kernels::row_to_f32(&embd, tok as usize, &mut b.x[t * n_embd..(t + 1) * n_embd])?;
        }
        for &p in batch.positions {
            self.filled[p as usize] = true;
        }

        for (l, layer) in model.layers.iter().enumerate() {
            // Attention block: norm -> q, k, v -> rope -> cache -> attention -> sub-norm -> o.
            rmsnorm(
                &mut b.xb[..n * n_embd],
                &b.x[..n * n_embd],
                &layer.attn_norm,
                h.rms_eps,
            );
            project(&model, &layer.wq, &b.xb, n, &mut b.q)?;
            project(&model, &layer.wk, &b.xb, n, &mut b.k)?;
            project(&model, &layer.wv, &b.xb, n, &mut b.v)?;
            for (t, &pos) in batch.positions.iter().enumerate() {
                for head in b.q[t * n_embd..(t + 1) * n_embd].chunks_exact_mut(hd) {
                    rope_neox(head, pos, h.n_rot, h.rope_theta);
                }
                for head in b.k[t * n_kv..(t + 1) * n_kv].chunks_exact_mut(hd) {
                    rope_neox(head, pos, h.n_rot, h.rope_theta);
                }
                let slot = (l * self.params.n_ctx + pos as usize) * n_kv;
                for i in 0..n_kv {
                    self.k_cache[slot + i] = f16::from_f32(b.k[t * n_kv + i]);
                    self.v_cache[slot + i] = f16::from_f32(b.v[t * n_kv + i]);
                }
            }
            let layer_base = l * self.params.n_ctx * n_kv;
            for (t, &pos) in batch.positions.iter().enumerate() {
                let visible: Vec<usize> = (0..=pos as usize).filter(|&s| self.filled[s]).collect();
                for head in 0..h.n_head {
                    let kv_off = (head / group) * hd;
                    // The reference multiplies f16 keys by the query rounded to f16.
                    let q: Vec<f32> = b.q[t * n_embd + head * hd..][..hd]
                        .iter()
                        .map(|&v| f16::from_f32(v).to_f32())
                        .collect();
                    let scores = &mut b.scores[..visible.len()];
                    for (sc, &s) in scores.iter_mut().zip(&visible) {
                        let k = &self.k_cache[layer_base + s * n_kv + kv_off..][..hd];
                        let dot: f32 = q.iter().zip(k).map(|(&a, &b)| a * b.to_f32()).sum();
                        *sc = dot * att_scale;
                    }
                    softmax(scores);
                    let out = &mut b.att[t * n_embd + head * hd..][..hd];
                    out.fill(0.0);
                    for (&p, &s) in scores.iter().zip(&visible) {
                        let p = f16::from_f32(p).to_f32();
                        let v = &self.v_cache[layer_base + s * n_kv + kv_off..][..hd];
                        for (o, &v) in out.iter_mut().zip(v) {
                            *o += p * v.to_f32();
                        }
                    }
                }
            }
            rmsnorm(
                &mut b.xb[..n * n_embd],
                &b.att[..n * n_embd],
                &layer.attn_sub_norm,
                h.rms_eps,
            );
            project(&model, &layer.wo, &b.xb, n, &mut b.proj)?;
            for (x, &o) in b.x[..n * n_embd].iter_mut().zip(&b.proj) {
                *x += o;
            }

            // FFN block: norm -> gate, up -> act(gate) * up -> sub-norm -> down.
            rmsnorm(
                &mut b.xb[..n * n_embd],
                &b.x[..n * n_embd],
                &layer.ffn_norm,
                h.rms_eps,
            );
            project(&model, &layer.w_gate, &b.xb, n, &mut b.gate)?;
            project(&model, &layer.w_up, &b.xb, n, &mut b.up)?;
            for (g, &u) in b.gate[..n * n_ff].iter_mut().zip(&b.up) {
                *g = match h.arch {
                    Arch::Bitnet => silu(*g) * u,
                    Arch::BitnetB158 => {
                        let r = g.max(0.0);
                        r * r * u
                    }
                };
            }
            rmsnorm(
                &mut b.up[..n * n_ff],
                &b.gate[..n * n_ff],
                &layer.ffn_sub_norm,
                h.rms_eps,
            );
            project(&model, &layer.w_down, &b.up, n, &mut b.proj)?;
            for (x, &o) in b.x[..n * n_embd].iter_mut().zip(&b.proj) {
                *x += o;
            }
        }

        // Final norm and head, only for the entries that want logits.
        let wanted: Vec<usize> = (0..n).filter(|&t| batch.want_logits[t]).collect();
        for (row, &t) in wanted.iter().enumerate() {
            let (src, dst) = (
                t * n_embd..(t + 1) * n_embd,
                row * n_embd..(row + 1) * n_embd,
            );
            rmsnorm(&mut b.xb[dst], &b.x[src], &model.output_norm, h.rms_eps);
        }
        self.logits.resize(wanted.len() * h.n_vocab, 0.0);
        let head = model.mat(&model.output);
        kernels::matmul(
            &head,
            Activations::ByWeightType,
            &b.xb[..wanted.len() * n_embd],
            wanted.len(),
            &mut self.logits,
        )?;
        self.logits_row = vec![None; n];
        for (row, &t) in wanted.iter().enumerate() {
            self.logits_row[t] = Some(row);
        }
        Ok(())
    }
}
