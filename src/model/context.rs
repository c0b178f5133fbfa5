//! `Context`: what one llama_context runs on. It checks a batch, claims its cells in the KV
//! cache (`kv_cache`), plans the chunks it runs in, calls the backend chosen at creation
//! (`forward_cpu`, or `forward_cuda` on a GPU) and owns the outputs of the last decode (logits,
//! hidden states, pooled embeddings), which the C layer lends out.
//!
//! The forward pass itself is read top to bottom in `forward_cpu.rs`.

use std::ops::Range;
use std::sync::Arc;

use super::forward_cpu::{CpuForward, UBATCH};
#[cfg(feature = "cuda")]
use super::forward_cuda::CudaForward;
use super::kv_cache::{state, Cells, HostKv, KeyShift};
pub use super::kv_cache::{SeqSet, MAX_SEQ};
use super::weights::Model;
use crate::error::{Error, ErrorKind, Result};
use crate::kernels::pool;

#[derive(Clone, Copy, Debug)]
pub struct ContextParams {
    /// KV cache size in cells (positions, summed over sequences).
    pub n_ctx: usize,
    /// Most tokens one `decode` call takes.
    pub n_batch: usize,
    /// Sequence ids run from 0 to n_seq_max - 1 (at most [`MAX_SEQ`]).
    pub n_seq_max: usize,
    /// Worker threads for the forward pass (0: all cores).
    pub n_threads: usize,
    /// Keep the final hidden states (after the output norm) of the entries that ask for output,
    /// and pool them per sequence as `pooling` says.
    pub embeddings: bool,
    pub pooling: Pooling,
}

/// How `decode` pools a sequence's hidden states when embeddings are on (llama_pooling_type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// One embedding per output entry, no pooling.
    None,
    /// The mean over the sequence's entries in the batch.
    Mean,
    /// The sequence's first entry in the batch.
    Cls,
    /// The sequence's last entry in the batch.
    Last,
}

impl ContextParams {
    /// One sequence, all cores.
    pub fn new(n_ctx: usize, n_batch: usize) -> Self {
        ContextParams {
            n_ctx,
            n_batch,
            n_seq_max: 1,
            n_threads: 0,
            embeddings: false,
            pooling: Pooling::None,
        }
    }
}

/// Tokens to run, the position of each, the sequences each belongs to, and which ones want
/// logits. Every slice has one entry per token.
pub struct Batch<'a> {
    pub tokens: &'a [u32],
    pub positions: &'a [i32],
    pub seqs: &'a [SeqSet],
    pub want_logits: &'a [bool],
}

/// Where the forward pass runs, chosen when the context is made.
enum Backend {
    /// The KV cache in host memory, the forward pass on the thread pool.
    Cpu(CpuForward),
    /// The KV cache and the forward pass on a device; the cells stay here.
    #[cfg(feature = "cuda")]
    Cuda(CudaForward),
}

pub struct Context {
    model: Arc<Model>,
    params: ContextParams,
    cells: Cells,
    backend: Backend,
    logits: Vec<f32>,                 // [n_outputs, n_vocab]
    logits_row: Vec<Option<usize>>,   // batch index -> row of `logits` (and of `embd`)
    embd: Vec<f32>, // [n_outputs, n_embd] final hidden states, when embeddings are on
    embd_seq: Vec<(usize, Vec<f32>)>, // (sequence id, pooled [n_embd]) of the last decode
}

/// Token ranges of a batch to run one after another: chunks of `ubatch` when no token attends
/// to a cell that a later chunk fills, else the whole batch at once.
#[allow(clippy::single_range_in_vec_init)] // one range: the whole batch as one chunk
fn chunk_plan(
    slots: &[usize],
    visible: &[Vec<usize>],
    n_cells: usize,
    ubatch: usize,
) -> Vec<Range<usize>> {
    let n = slots.len();
    if n <= ubatch {
        return vec![0..n];
    }
    let mut owner = vec![usize::MAX; n_cells]; // cell -> batch entry that fills it now
    for (t, &s) in slots.iter().enumerate() {
        owner[s] = t;
    }
    let chunks: Vec<Range<usize>> = (0..n)
        .step_by(ubatch)
        .map(|c| c..(c + ubatch).min(n))
        .collect();
    for c in &chunks {
        for t in c.clone() {
            if visible[t]
                .iter()
                .any(|&s| owner[s] != usize::MAX && owner[s] >= c.end)
            {
                return vec![0..n];
            }
        }
    }
    chunks
}

/// Per sequence (ascending id), the pooled rows of `rows` ([n, n_embd], row i belonging to the
/// sequences in the i-th set).
fn pool(
    how: Pooling,
    rows: &[f32],
    n_embd: usize,
    seqs: impl Iterator<Item = SeqSet> + Clone,
) -> Vec<(usize, Vec<f32>)> {
    let mut out = Vec::new();
    for s in 0..MAX_SEQ {
        let mine: Vec<usize> = seqs
            .clone()
            .enumerate()
            .filter(|(_, set)| set.contains(s))
            .map(|(i, _)| i)
            .collect();
        let (Some(&first), Some(&last)) = (mine.first(), mine.last()) else {
            continue;
        };
        let row = |i: usize| &rows[i * n_embd..(i + 1) * n_embd];
        let pooled = match how {
            Pooling::Cls => row(first).to_vec(),
            Pooling::Last => row(last).to_vec(),
            Pooling::Mean | Pooling::None => {
                let mut sum = vec![0f32; n_embd];
                for &i in &mine {
                    sum.iter_mut().zip(row(i)).for_each(|(a, &v)| *a += v);
                }
                let inv = 1.0 / mine.len() as f32;
                sum.iter_mut().for_each(|v| *v *= inv);
                sum
            }
        };
        out.push((s, pooled));
    }
    out
}

impl Context {
    /// A context whose forward pass runs on the CPU.
    pub fn new(model: Arc<Model>, params: ContextParams) -> Result<Context> {
        Self::check_params(&model, &params)?;
        let backend = Backend::Cpu(CpuForward::new(
            model.hparams(),
            params.n_ctx,
            params.n_batch,
        ));
        Ok(Self::with_backend(model, params, backend))
    }

    /// A context whose forward pass runs on the device that holds `gpu`'s weights.
    #[cfg(feature = "cuda")]
    pub fn with_gpu(gpu: Arc<super::gpu::GpuModel>, params: ContextParams) -> Result<Context> {
        let model = Arc::clone(gpu.model());
        Self::check_params(&model, &params)?;
        let backend = Backend::Cuda(CudaForward::new(gpu, params.n_ctx, params.n_batch)?);
        Ok(Self::with_backend(model, params, backend))
    }

    fn check_params(model: &Model, params: &ContextParams) -> Result<()> {
        if params.n_ctx == 0 || params.n_batch == 0 {
            return Err(Error::bad_input("n_ctx and n_batch must be at least 1"));
        }
        if params.n_seq_max == 0 || params.n_seq_max > MAX_SEQ {
            return Err(Error::bad_input(format!(
                "n_seq_max {} is outside 1..={MAX_SEQ}",
                params.n_seq_max
            )));
        }
        HostKv::len_for(model.hparams(), params.n_ctx).map(|_| ())
    }

    fn with_backend(model: Arc<Model>, params: ContextParams, backend: Backend) -> Context {
        Context {
            cells: Cells::new(params.n_ctx, params.n_seq_max),
            backend,
            params,
            logits: Vec::new(),
            logits_row: Vec::new(),
            embd: Vec::new(),
            embd_seq: Vec::new(),
            model,
        }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Host bytes held: (the KV cache, the activation buffers); None when they live on a device.
    pub fn host_memory_bytes(&self) -> Option<(usize, usize)> {
        match &self.backend {
            Backend::Cpu(cpu) => Some(cpu.memory_bytes()),
            #[cfg(feature = "cuda")]
            Backend::Cuda(_) => None,
        }
    }

    pub fn n_ctx(&self) -> usize {
        self.params.n_ctx
    }

    pub fn n_batch(&self) -> usize {
        self.params.n_batch
    }

    pub fn n_seq_max(&self) -> usize {
        self.params.n_seq_max
    }

    pub fn n_threads(&self) -> usize {
        self.params.n_threads
    }

    /// Worker threads for the next decodes (0: all cores).
    pub fn set_n_threads(&mut self, n: usize) {
        self.params.n_threads = n;
    }

    /// Whether decode keeps hidden states (llama_set_embeddings).
    pub fn set_embeddings(&mut self, on: bool) {
        self.params.embeddings = on;
    }

    pub fn params(&self) -> &ContextParams {
        &self.params
    }

    // --- Outputs of the last decode (the C layer lends these, writable as llama.h allows) ---

    /// Number of rows of logits the last `decode` produced.
    pub fn n_outputs(&self) -> usize {
        self.logits.len() / self.model.hparams().n_vocab
    }

    /// The logits of the last `decode`, one row per entry that asked, in batch order.
    pub fn all_logits(&self) -> &[f32] {
        &self.logits
    }

    /// Number of entries of the last decoded batch (restored with a whole state).
    pub fn n_entries(&self) -> usize {
        self.logits_row.len()
    }

    /// Row of `all_logits` that batch entry `i` of the last `decode` filled, if it asked.
    pub fn output_row(&self, i: usize) -> Option<usize> {
        *self.logits_row.get(i)?
    }

    /// Logits of batch entry `i` of the last `decode`, if it asked for them.
    pub fn logits(&self, i: usize) -> Option<&[f32]> {
        let n_vocab = self.model.hparams().n_vocab;
        let row = self.output_row(i)?;
        Some(&self.logits[row * n_vocab..(row + 1) * n_vocab])
    }

    /// Final hidden state (after the output norm) of batch entry `i` of the last `decode`, if
    /// embeddings were on and it asked for output.
    pub fn embeddings(&self, i: usize) -> Option<&[f32]> {
        let n_embd = self.model.hparams().n_embd;
        let row = self.output_row(i)?;
        self.embd.get(row * n_embd..(row + 1) * n_embd)
    }

    /// All output rows of hidden states of the last `decode`, in batch order.
    pub fn all_embeddings(&self) -> &[f32] {
        &self.embd
    }

    /// Pooled embedding of sequence `seq` from the last `decode` (pooling other than None).
    pub fn embeddings_seq(&self, seq: i32) -> Option<&[f32]> {
        let seq = usize::try_from(seq).ok()?;
        self.embd_seq
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, e)| &e[..])
    }

    /// The logits of the last `decode` (as `all_logits`), writable: llama.h lets C write into
    /// the array llama_get_logits returns.
    pub fn all_logits_mut(&mut self) -> &mut [f32] {
        &mut self.logits
    }

    /// The hidden states of the last `decode` (as `all_embeddings`), writable for C.
    pub fn all_embeddings_mut(&mut self) -> &mut [f32] {
        &mut self.embd
    }

    /// The pooled embedding of sequence `seq` (as `embeddings_seq`), writable for C.
    pub fn embeddings_seq_mut(&mut self, seq: i32) -> Option<&mut [f32]> {
        let seq = usize::try_from(seq).ok()?;
        self.embd_seq
            .iter_mut()
            .find(|(s, _)| *s == seq)
            .map(|(_, e)| &mut e[..])
    }

    // --- The KV cache (llama.h's memory functions) ---

    /// Forgets every cached position of every sequence.
    pub fn clear(&mut self) {
        self.cells.clear();
    }

    /// Removes positions [p0, p1) from sequence `seq` (every sequence when negative). False
    /// when `seq` is not a sequence of this context.
    pub fn seq_rm(&mut self, seq: i32, p0: i32, p1: i32) -> bool {
        self.cells.seq_rm(seq, p0, p1)
    }

    /// Makes positions [p0, p1) of sequence `src` visible to sequence `dst` too.
    pub fn seq_cp(&mut self, src: i32, dst: i32, p0: i32, p1: i32) -> bool {
        self.cells.seq_cp(src, dst, p0, p1)
    }

    /// Drops every cell that sequence `seq` does not see, and every other sequence.
    pub fn seq_keep(&mut self, seq: i32) -> bool {
        self.cells.seq_keep(seq)
    }

    /// Adds `delta` to positions [p0, p1) of sequence `seq`, re-rotating the cached keys;
    /// cells pushed below position 0 are dropped.
    pub fn seq_add(&mut self, seq: i32, p0: i32, p1: i32, delta: i32) -> bool {
        if !self.cells.valid_seq(seq) {
            return false;
        }
        if delta != 0 {
            let shifts = self
                .cells
                .seq_move(seq, p0, p1, |p| p.saturating_add(delta));
            self.shift_keys(&shifts);
        }
        true
    }

    /// Divides positions [p0, p1) of sequence `seq` by `d` (> 1), re-rotating the keys.
    pub fn seq_div(&mut self, seq: i32, p0: i32, p1: i32, d: i32) -> bool {
        if !self.cells.valid_seq(seq) || d < 1 {
            return false;
        }
        let shifts = self.cells.seq_move(seq, p0, p1, |p| p / d);
        self.shift_keys(&shifts);
        true
    }

    fn shift_keys(&mut self, shifts: &[KeyShift]) {
        let h = self.model.hparams();
        match &mut self.backend {
            Backend::Cpu(cpu) => cpu.kv.shift_keys(h, shifts),
            #[cfg(feature = "cuda")]
            Backend::Cuda(gpu) => gpu.shift_keys(h, shifts),
        }
    }

    /// Smallest cached position of sequence `seq`, -1 when it has none.
    pub fn seq_pos_min(&self, seq: i32) -> i32 {
        self.cells.seq_pos_min(seq)
    }

    /// Largest cached position of sequence `seq`, -1 when it has none.
    pub fn seq_pos_max(&self, seq: i32) -> i32 {
        self.cells.seq_pos_max(seq)
    }

    // --- Decoding ---

    fn check(&self, batch: &Batch<'_>) -> Result<()> {
        let n = batch.tokens.len();
        if n == 0 {
            return Err(Error::bad_input("empty batch"));
        }
        if batch.positions.len() != n || batch.seqs.len() != n || batch.want_logits.len() != n {
            return Err(Error::bad_input(
                "batch tokens, positions, sequence sets and logits flags differ in length",
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
        if let Some(&p) = batch.positions.iter().find(|&&p| p < 0) {
            return Err(Error::bad_input(format!("position {p} is negative")));
        }
        let n_seq = self.params.n_seq_max;
        for (i, seqs) in batch.seqs.iter().enumerate() {
            if seqs.is_empty() {
                return Err(Error::bad_input(format!(
                    "batch entry {i} belongs to no sequence"
                )));
            }
            if let Some(id) = seqs.iter().find(|&id| id >= n_seq) {
                return Err(Error::bad_input(format!(
                    "sequence id {id} is outside 0..{n_seq} (n_seq_max)"
                )));
            }
        }
        // Each sequence's positions in the batch continue its cached ones without gaps.
        for s in (0..n_seq).filter(|&s| batch.seqs.iter().any(|set| set.contains(s))) {
            let mut pos: Vec<i32> = (0..n)
                .filter(|&i| batch.seqs[i].contains(s))
                .map(|i| batch.positions[i])
                .collect();
            pos.sort_unstable();
            pos.dedup();
            let last = self.seq_pos_max(s as i32);
            if last >= 0 && pos[0] != last + 1 {
                return Err(Error::bad_input(format!(
                    "sequence {s} continues at position {} but its last cached position is {last}; positions must stay consecutive",
                    pos[0]
                )));
            }
            if (pos[pos.len() - 1] - pos[0]) as usize + 1 != pos.len() {
                return Err(Error::bad_input(format!(
                    "positions of sequence {s} in the batch are not continuous"
                )));
            }
        }
        let free = self.cells.n_free();
        if free < n {
            return Err(Error::new(
                ErrorKind::NoKvSlot,
                format!(
                    "the KV cache has {free} free cells of {} for a batch of {n} tokens",
                    self.params.n_ctx
                ),
            ));
        }
        Ok(())
    }

    /// Runs the batch through the model, filling the KV cache at the given positions and the
    /// logits of the entries that ask for them. On an error no cell has changed.
    pub fn decode(&mut self, batch: &Batch<'_>) -> Result<()> {
        self.check(batch)?;
        let model = Arc::clone(&self.model);
        let h = model.hparams();
        let n = batch.tokens.len();
        let (slots, visible) = self.cells.claim(batch);
        let wanted: Vec<usize> = (0..n).filter(|&t| batch.want_logits[t]).collect();
        self.logits.clear();
        self.logits.resize(wanted.len() * h.n_vocab, 0.0);
        self.logits_row.clear();
        self.embd.clear();
        self.embd_seq.clear();
        let embd = self.params.embeddings.then_some(&mut self.embd);
        let run = match &mut self.backend {
            Backend::Cpu(cpu) => {
                let threads = match self.params.n_threads {
                    0 => pool::default_threads(),
                    t => t,
                };
                let mut embd = embd;
                let mut row0 = 0;
                chunk_plan(&slots, &visible, self.params.n_ctx, UBATCH)
                    .into_iter()
                    .try_for_each(|r| {
                        let outputs = r.clone().filter(|&t| batch.want_logits[t]).count();
                        let logits = &mut self.logits[row0 * h.n_vocab..];
                        let (s, v) = (&slots[r.clone()], &visible[r.clone()]);
                        row0 += outputs;
                        cpu.forward(&model, threads, batch, r, s, v, logits, embd.as_deref_mut())
                    })
            }
            #[cfg(feature = "cuda")]
            Backend::Cuda(gpu) => gpu.forward(
                &model,
                batch,
                &slots,
                &visible,
                &wanted,
                &mut self.logits,
                embd,
            ),
        };
        if let Err(e) = run {
            self.cells.free(&slots); // the cells this batch took were free before
            return Err(e);
        }
        self.logits_row = vec![None; n];
        for (row, &t) in wanted.iter().enumerate() {
            self.logits_row[t] = Some(row);
        }
        if self.params.embeddings && self.params.pooling != Pooling::None {
            self.embd_seq = pool(
                self.params.pooling,
                &self.embd,
                h.n_embd,
                wanted.iter().map(|&t| batch.seqs[t]),
            );
        }
        Ok(())
    }

    // --- Saved states (llama_state_*), in the format of `kv_cache::state` ---

    fn limits(&self) -> state::Limits {
        state::Limits {
            n_ctx: self.params.n_ctx,
            n_batch: self.params.n_batch,
            n_seq_max: self.params.n_seq_max,
        }
    }

    fn saved_outputs(&self) -> state::Outputs<'_> {
        state::Outputs {
            logits: &self.logits,
            rows: &self.logits_row,
        }
    }

    /// Appends the state (whole context when `seq` is None, else one sequence's cells) to `out`.
    pub fn state_write(&self, seq: Option<i32>, out: &mut Vec<u8>) {
        let h = self.model.hparams();
        match &self.backend {
            Backend::Cpu(cpu) => {
                state::write(h, &self.cells, &cpu.kv, self.saved_outputs(), seq, out)
            }
            #[cfg(feature = "cuda")]
            Backend::Cuda(gpu) => {
                let kv = gpu.snapshot(h);
                state::write(h, &self.cells, &kv, self.saved_outputs(), seq, out)
            }
        }
    }

    /// Size in bytes `state_write` would produce.
    pub fn state_size(&self, seq: Option<i32>) -> usize {
        state::size(self.model.hparams(), &self.cells, self.saved_outputs(), seq)
    }

    /// Length of the state whose bytes `peek(offset, len)` returns, read from its counts (for
    /// callers that have a pointer but no size); only bytes inside that length are peeked.
    pub fn state_len(&self, peek: &mut dyn FnMut(usize, usize) -> Vec<u8>) -> Result<usize> {
        state::len(self.model.hparams(), &self.limits(), peek)
    }

    /// Restores a state from `bytes`: the whole context when `dest` is None (replacing every
    /// cell and the logits), else into sequence `dest` (replacing that sequence's cells).
    /// Returns the bytes read. On an error the context is unchanged.
    pub fn state_read(&mut self, dest: Option<i32>, bytes: &[u8]) -> Result<usize> {
        let model = Arc::clone(&self.model);
        let h = model.hparams();
        let restore = state::parse(h, &self.limits(), &self.cells, dest, bytes)?;
        let stored = match &mut self.backend {
            Backend::Cpu(cpu) => {
                state::apply(h, &restore, &mut self.cells, &mut cpu.kv);
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Backend::Cuda(gpu) => {
                // The device cache is edited through host copies.
                let mut kv = gpu.download(h, true)?;
                state::apply(h, &restore, &mut self.cells, &mut kv);
                gpu.upload(&kv, true)
            }
        };
        let read = restore.read;
        if dest.is_none() {
            self.logits = restore.logits;
            self.logits_row = restore.rows;
        }
        stored.map(|()| read)
    }
}
