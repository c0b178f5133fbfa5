//! The CUDA backend of a context (feature `cuda`): the forward pass runs on the device in
//! `model::gpu` (`GpuState`, the same steps as `forward_cpu` in the same float order wherever
//! that order is reproducible) and only the wanted logits come back. The cells, positions and
//! sequences stay on the host in the context, exactly as for the CPU; this file turns a
//! batch's cells and positions into the device step's inputs, and moves the device's KV cache
//! through host memory when positions are shifted or a state is saved or restored.

use std::sync::Arc;

use super::gpu::{GpuModel, GpuState, Step};
use super::hparams::HParams;
use super::kv_cache::{HostKv, KeyShift};
use super::{Batch, Model};
use crate::error::Result;
use crate::kernels::{self, rope};

pub(crate) struct CudaForward {
    state: GpuState,
    n_ctx: usize,
}

impl CudaForward {
    pub fn new(gpu: Arc<GpuModel>, n_ctx: usize, n_batch: usize) -> Result<CudaForward> {
        Ok(CudaForward {
            state: GpuState::new(gpu, n_ctx, n_batch)?,
            n_ctx,
        })
    }

    /// The forward pass of the whole batch (cells `slots`, each token attending to its list
    /// in `visible`): keys and values into the device cache, the logits of the entries in
    /// `wanted` into `logits`, their final hidden states into `embd` when it is given.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        model: &Model,
        batch: &Batch<'_>,
        slots: &[usize],
        visible: &[Vec<usize>],
        wanted: &[usize],
        logits: &mut Vec<f32>,
        embd: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        if let Some(e) = self.state.poisoned.take() {
            return Err(e);
        }
        let h = model.hparams();
        let n = batch.tokens.len();
        let n_embd = h.n_embd;
        // Embedding rows dequantized here when the table's type stays on the host.
        let host_x = if self.state.model().embeds_on_host() {
            let table = model.mat(&model.token_embd);
            let mut x = vec![0f32; n * n_embd];
            for (t, &tok) in batch.tokens.iter().enumerate() {
                kernels::row_to_f32(&table, tok as usize, &mut x[t * n_embd..(t + 1) * n_embd])?;
            }
            Some(x)
        } else {
            None
        };
        // RoPE angles computed on the host as the CPU does: [n, n_rot / 2] (sin, cos).
        let half_rot = h.n_rot / 2;
        let mut table = vec![(0f32, 0f32); half_rot];
        let mut angles = Vec::with_capacity(n * half_rot * 2);
        for &pos in batch.positions {
            rope::table(&mut table, pos, h.n_rot, h.rope_theta);
            for &(s, c) in &table {
                angles.push(s);
                angles.push(c);
            }
        }
        // The visible cells, flattened: one shared list when every token's list is a prefix
        // of the longest (a single sequence), else one list per token.
        let longest = visible
            .iter()
            .max_by_key(|l| l.len())
            .cloned()
            .unwrap_or_default();
        let shared = visible.iter().all(|l| longest.starts_with(l));
        let (mut cells, mut offs) = (Vec::new(), Vec::with_capacity(n));
        if shared {
            cells.extend(longest.iter().map(|&c| c as i32));
            offs.resize(n, 0);
        } else {
            for l in visible {
                offs.push(cells.len() as i32);
                cells.extend(l.iter().map(|&c| c as i32));
            }
        }
        let lens: Vec<i32> = visible.iter().map(|l| l.len() as i32).collect();
        let step = Step {
            tokens: batch.tokens,
            slots,
            rope: &angles,
            cells: &cells,
            offs: &offs,
            lens: &lens,
            wanted,
            host_x: host_x.as_deref(),
        };
        self.state.forward(&step, logits, embd)
    }

    /// The device cache (keys, and values when `values`) copied into host memory.
    pub fn download(&self, h: &HParams, values: bool) -> Result<HostKv> {
        let mut kv = HostKv::new(h, self.n_ctx);
        self.state.read_cache(false, &mut kv.k)?;
        if values {
            self.state.read_cache(true, &mut kv.v)?;
        }
        Ok(kv)
    }

    /// Writes host copies back into the device cache (values only when `values`).
    pub fn upload(&self, kv: &HostKv, values: bool) -> Result<()> {
        self.state.write_cache(false, &kv.k)?;
        if values {
            self.state.write_cache(true, &kv.v)?;
        }
        Ok(())
    }

    /// Turns cached keys (seq_add / seq_div) through a host copy; a device error is kept and
    /// returned by the next `forward`.
    pub fn shift_keys(&mut self, h: &HParams, shifts: &[KeyShift]) {
        let r = self.download(h, false).and_then(|mut kv| {
            kv.shift_keys(h, shifts);
            self.upload(&kv, false)
        });
        if let Err(e) = r {
            self.state.poisoned = Some(e);
        }
    }

    /// The device cache as host copies for a saved state; zeros after a device error (saving
    /// cannot fail), which the next `forward` reports.
    pub fn snapshot(&self, h: &HParams) -> HostKv {
        let mut kv = HostKv::new(h, self.n_ctx);
        if self.state.read_cache(false, &mut kv.k).is_err()
            || self.state.read_cache(true, &mut kv.v).is_err()
        {
            kv.k.fill(half::f16::ZERO);
            kv.v.fill(half::f16::ZERO);
        }
        kv
    }
}
