//! `Context` on a CUDA device (feature `cuda`): the cells, positions and sequences are kept on
//! the host exactly as for the CPU (the same claiming of free cells, the same visibility
//! lists); the forward pass runs in `model::gpu` and only the wanted logits come back. The KV
//! cache lives on the device; the host copies (`k_cache`, `v_cache`) are filled only while a
//! state is restored or positions are shifted, and emptied again afterwards.

use std::sync::Arc;

use half::f16;

use super::{pool, rope_table, Batch, Context, ContextParams, Pooling};
use crate::error::{Error, Result};
use crate::kernels;
use crate::model::gpu::{GpuModel, GpuState, Step};

impl Context {
    /// A context whose forward pass runs on the device that holds `gpu`'s weights.
    pub fn with_gpu(gpu: Arc<GpuModel>, params: ContextParams) -> Result<Context> {
        let mut c = Context::new(Arc::clone(gpu.model()), params)?;
        c.k_cache = Vec::new();
        c.v_cache = Vec::new();
        c.gpu = Some(Box::new(GpuState::new(gpu, params.n_ctx, params.n_batch)?));
        Ok(c)
    }

    /// The device model this context runs on, if any.
    pub fn gpu_model(&self) -> Option<&Arc<GpuModel>> {
        self.gpu.as_ref().map(|g| g.model())
    }

    /// `decode` on the device (called after `check`).
    pub(super) fn decode_gpu(&mut self, batch: &Batch<'_>) -> Result<()> {
        let model = Arc::clone(&self.model);
        let h = model.hparams();
        let n = batch.tokens.len();
        let n_embd = h.n_embd;
        let Some(gpu) = self.gpu.as_mut() else {
            return Err(Error::bad_input("not a device context"));
        };
        if let Some(e) = gpu.poisoned.take() {
            return Err(e);
        }
        // Fallible host work first: on an error nothing has changed.
        let host_x = if gpu.model().embeds_on_host() {
            let embd = model.mat(&model.token_embd);
            let mut x = vec![0f32; n * n_embd];
            for (t, &tok) in batch.tokens.iter().enumerate() {
                kernels::row_to_f32(&embd, tok as usize, &mut x[t * n_embd..(t + 1) * n_embd])?;
            }
            Some(x)
        } else {
            None
        };
        let half_rot = h.n_rot / 2;
        let mut table = vec![(0f32, 0f32); half_rot];
        let mut rope = Vec::with_capacity(n * half_rot * 2);
        for &pos in batch.positions {
            rope_table(&mut table, pos, h.n_rot, h.rope_theta);
            for &(s, c) in &table {
                rope.push(s);
                rope.push(c);
            }
        }

        let saved = self.cells.clone();
        let (slots, visible) = self.claim_cells(batch);
        let Some(gpu) = self.gpu.as_mut() else {
            self.cells = saved;
            return Err(Error::bad_input("not a device context"));
        };
        let longest = visible
            .iter()
            .max_by_key(|l| l.len())
            .cloned()
            .unwrap_or_default();
        let shared = visible.iter().all(|l| longest.starts_with(l));
        let (mut cells, mut offs, mut lens) = (Vec::new(), Vec::with_capacity(n), Vec::new());
        if shared {
            cells.extend(longest.iter().map(|&c| c as i32));
            offs.resize(n, 0);
        } else {
            for l in &visible {
                offs.push(cells.len() as i32);
                cells.extend(l.iter().map(|&c| c as i32));
            }
        }
        lens.extend(visible.iter().map(|l| l.len() as i32));
        let wanted: Vec<usize> = (0..n).filter(|&t| batch.want_logits[t]).collect();
        let step = Step {
            tokens: batch.tokens,
            slots: &slots,
            rope: &rope,
            cells: &cells,
            offs: &offs,
            lens: &lens,
            wanted: &wanted,
            host_x: host_x.as_deref(),
        };
        let embd = self.params.embeddings.then_some(&mut self.embd);
        if let Err(e) = gpu.forward(&step, &mut self.logits, embd) {
            self.cells = saved;
            return Err(e);
        }
        self.logits_row = vec![None; n];
        for (row, &t) in wanted.iter().enumerate() {
            self.logits_row[t] = Some(row);
        }
        self.embd_seq.clear();
        if self.params.embeddings {
            if self.params.pooling != Pooling::None {
                self.embd_seq = pool(
                    self.params.pooling,
                    &self.embd,
                    n_embd,
                    wanted.iter().map(|&t| batch.seqs[t]),
                );
            }
        } else {
            self.embd.clear();
        }
        Ok(())
    }

    /// Copies the device cache (keys, and values when `values`) into the host vectors.
    pub(super) fn gpu_kv_to_host(&mut self, values: bool) -> Result<()> {
        let Some(g) = self.gpu.as_ref() else {
            return Ok(());
        };
        let n = g.cache_len();
        self.k_cache.resize(n, f16::ZERO);
        g.read_cache(false, &mut self.k_cache)?;
        if values {
            self.v_cache.resize(n, f16::ZERO);
            g.read_cache(true, &mut self.v_cache)?;
        }
        Ok(())
    }

    /// Writes the host vectors back to the device cache and empties them.
    pub(super) fn gpu_kv_to_device(&mut self) -> Result<()> {
        let Some(g) = self.gpu.as_ref() else {
            return Ok(());
        };
        let r = (|| {
            if !self.k_cache.is_empty() {
                g.write_cache(false, &self.k_cache)?;
            }
            if !self.v_cache.is_empty() {
                g.write_cache(true, &self.v_cache)?;
            }
            Ok(())
        })();
        self.k_cache = Vec::new();
        self.v_cache = Vec::new();
        r
    }

    /// Runs `f` on host copies of the device cache (keys only unless `values`), then writes
    /// them back; a device error is kept and returned by the next `decode`.
    pub(super) fn with_host_kv(&mut self, values: bool, f: impl FnOnce(&mut Context)) {
        if self.gpu.is_none() {
            return f(self);
        }
        let r = self.gpu_kv_to_host(values).map(|()| {
            f(self);
        });
        let r = r.and_then(|()| self.gpu_kv_to_device());
        if let (Err(e), Some(g)) = (r, self.gpu.as_mut()) {
            self.k_cache = Vec::new();
            self.v_cache = Vec::new();
            g.poisoned = Some(e);
        }
    }

    /// For `state_write`: the device cache as host vectors (None on the CPU path).
    pub(super) fn gpu_kv_snapshot(&self) -> Option<(Vec<f16>, Vec<f16>)> {
        let g = self.gpu.as_ref()?;
        let n = g.cache_len();
        let (mut k, mut v) = (vec![f16::ZERO; n], vec![f16::ZERO; n]);
        // A device error leaves zeros (state_write cannot fail); the next decode reports it.
        if g.read_cache(false, &mut k).is_err() || g.read_cache(true, &mut v).is_err() {
            k.fill(f16::ZERO);
            v.fill(f16::ZERO);
        }
        Some((k, v))
    }
}
