//! `Context`: a KV cache of `n_ctx` cells (f16, like the reference) shared by up to `n_seq_max`
//! sequences, preallocated activation buffers, and `decode`, the forward pass over a batch of
//! tokens, read top to bottom.
//!
//! Each cell holds one position's keys and values and the set of sequences that see it; a token
//! attends to the cells of its sequence at positions up to its own, as llama.cpp's unified cache.

#[cfg(feature = "cuda")]
mod gpu;
mod state;

use std::ops::Range;
use std::sync::Arc;

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::hparams::Arch;
use super::weights::{Model, Proj};
use crate::error::{Error, ErrorKind, Result};
use crate::kernels::attention::{self, AttnScratch, AttnShape};
use crate::kernels::ternary::{best_isa, ActBuf};
use crate::kernels::{self, pool, Activations};
use crate::kernels::{exp, norm};

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

/// Most sequences one context can hold (llama.cpp's LLAMA_MAX_SEQ).
pub const MAX_SEQ: usize = 256;

/// A set of sequence ids (0..MAX_SEQ) as a bitset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqSet(pub [u64; MAX_SEQ / 64]);

impl SeqSet {
    pub const EMPTY: SeqSet = SeqSet([0; MAX_SEQ / 64]);

    /// The set holding only `id` (which must be below MAX_SEQ).
    pub fn one(id: usize) -> SeqSet {
        let mut s = SeqSet::EMPTY;
        s.insert(id);
        s
    }
    pub fn insert(&mut self, id: usize) {
        self.0[id / 64] |= 1 << (id % 64);
    }
    pub fn remove(&mut self, id: usize) {
        self.0[id / 64] &= !(1 << (id % 64));
    }
    pub fn contains(&self, id: usize) -> bool {
        id < MAX_SEQ && self.0[id / 64] & (1 << (id % 64)) != 0
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
    /// The smallest id in the set.
    pub fn first(&self) -> Option<usize> {
        let w = self.0.iter().position(|&w| w != 0)?;
        Some(w * 64 + self.0[w].trailing_zeros() as usize)
    }
    /// The ids in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_SEQ).filter(|&id| self.contains(id))
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

/// One KV-cache cell: the position whose keys/values it holds and the sequences that see it
/// (empty = free).
#[derive(Clone, Copy, Debug)]
struct Cell {
    pos: i32,
    seqs: SeqSet,
}

const FREE: Cell = Cell {
    pos: -1,
    seqs: SeqSet::EMPTY,
};

/// Activation buffers for up to `n_batch` tokens (row t of each belongs to token t).
struct Buffers {
    x: Vec<f32>,           // [T, n_embd] the residual stream
    xb: Vec<f32>,          // [T, n_embd] normed input of a block
    q: Vec<f32>,           // [T, n_embd]
    k: Vec<f32>,           // [T, n_kv]
    v: Vec<f32>,           // [T, n_kv]
    att: Vec<f32>,         // [T, n_embd] attention output (all heads)
    proj: Vec<f32>,        // [T, n_embd] output of attn_output / ffn_down
    gate: Vec<f32>,        // [T, n_ff]
    up: Vec<f32>,          // [T, n_ff]
    rope: Vec<(f32, f32)>, // [T, n_rot / 2] (sin, cos) of each token's rotation angles
    act: ActBuf,           // int8 activations shared by the projections of one input
    attn: AttnScratch,     // f32 copies of the visible keys/values, per-thread scores
}

/// Tokens per forward pass: a longer batch runs in chunks of this many, each chunk's keys and
/// values in the cache before the next one attends to them, so the activation buffers take
/// this many tokens and not n_batch (a 512-token prefill: ~70 MB less). Full tiles for the
/// prefill kernels; every kernel gives the same bits whatever the chunk.
const UBATCH: usize = 128;

impl Buffers {
    fn new(t: usize, h: &super::hparams::HParams) -> Buffers {
        let n_kv = h.n_head_kv * h.head_dim;
        Buffers {
            x: vec![0.0; t * h.n_embd],
            xb: vec![0.0; t * h.n_embd],
            q: vec![0.0; t * h.n_embd],
            k: vec![0.0; t * n_kv],
            v: vec![0.0; t * n_kv],
            att: vec![0.0; t * h.n_embd],
            proj: vec![0.0; t * h.n_embd],
            gate: vec![0.0; t * h.n_ff],
            up: vec![0.0; t * h.n_ff],
            rope: vec![(0.0, 0.0); t * (h.n_rot / 2)],
            act: ActBuf::default(),
            attn: AttnScratch::default(),
        }
    }

    /// Room for `t` tokens (a batch that cannot run in chunks of UBATCH).
    fn ensure(&mut self, t: usize, h: &super::hparams::HParams) {
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

/// Token ranges of a batch to run one after another: chunks of UBATCH when no token attends
/// to a cell that a later chunk fills, else the whole batch at once.
#[allow(clippy::single_range_in_vec_init)] // one range: the whole batch as one chunk
fn chunk_plan(slots: &[usize], visible: &[Vec<usize>], n_cells: usize) -> Vec<Range<usize>> {
    let n = slots.len();
    if n <= UBATCH {
        return vec![0..n];
    }
    let mut owner = vec![usize::MAX; n_cells]; // cell -> batch entry that fills it now
    for (t, &s) in slots.iter().enumerate() {
        owner[s] = t;
    }
    let chunks: Vec<Range<usize>> = (0..n)
        .step_by(UBATCH)
        .map(|c| c..(c + UBATCH).min(n))
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

pub struct Context {
    model: Arc<Model>,
    params: ContextParams,
    k_cache: Vec<f16>, // [n_layer, n_ctx, n_kv]
    v_cache: Vec<f16>, // [n_layer, n_ctx, n_kv]
    cells: Vec<Cell>,  // [n_ctx]
    buf: Buffers,
    logits: Vec<f32>,                 // [n_outputs, n_vocab]
    logits_row: Vec<Option<usize>>,   // batch index -> row of `logits` (and of `embd`)
    embd: Vec<f32>, // [n_outputs, n_embd] final hidden states, when embeddings are on
    embd_seq: Vec<(usize, Vec<f32>)>, // (sequence id, pooled [n_embd]) of the last decode
    /// The device state when the forward pass runs on a GPU (`Context::with_gpu`).
    #[cfg(feature = "cuda")]
    gpu: Option<Box<super::gpu::GpuState>>,
}

/// `norm::rmsnorm` of each row (w.len() values) of x, the rows split between pool threads.
fn rmsnorm_par(out: &mut [f32], x: &[f32], w: &[f32], eps: f32, threads: usize) {
    let isa = best_isa();
    pool::rows_mut(out, x, w.len(), threads, &|o, x| {
        norm::rmsnorm(isa, o, x, w, eps)
    });
}

/// NEOX RoPE angles of one position: pair i turns by pos * base^(-2i/n_rot), the angle
/// stepped by repeated multiplication as the reference does. `table` gets n_rot/2 (sin, cos).
fn rope_table(table: &mut [(f32, f32)], pos: i32, n_rot: usize, base: f32) {
    let theta_scale = base.powf(-2.0 / n_rot as f32);
    let mut theta = pos as f32;
    for sc in table[..n_rot / 2].iter_mut() {
        *sc = theta.sin_cos();
        theta *= theta_scale;
    }
}

/// NEOX RoPE on one head: pairs (i, i + n_rot/2) turned by the angles of `table`.
fn rope_neox(head: &mut [f32], table: &[(f32, f32)]) {
    let half = table.len();
    for (i, &(sin, cos)) in table.iter().enumerate() {
        let (x0, x1) = (head[i], head[i + half]);
        head[i] = x0 * cos - x1 * sin;
        head[i + half] = x0 * sin + x1 * cos;
    }
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
        Arch::Bitnet => Activations::ByWeightType,
    };
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
        if let Some(s) = p.scale {
            pool::parts_mut(&mut out[..n * w.rows], threads, &|part| {
                part.iter_mut().for_each(|v| *v *= s)
            });
        }
    }
    Ok(())
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
    pub fn new(model: Arc<Model>, params: ContextParams) -> Result<Context> {
        let h = model.hparams();
        if params.n_ctx == 0 || params.n_batch == 0 {
            return Err(Error::bad_input("n_ctx and n_batch must be at least 1"));
        }
        if params.n_seq_max == 0 || params.n_seq_max > MAX_SEQ {
            return Err(Error::bad_input(format!(
                "n_seq_max {} is outside 1..={MAX_SEQ}",
                params.n_seq_max
            )));
        }
        let n_kv = h.n_head_kv * h.head_dim;
        let cache = h
            .n_layer
            .checked_mul(params.n_ctx)
            .and_then(|v| v.checked_mul(n_kv))
            .filter(|&v| v <= (1usize << 36))
            .ok_or_else(|| Error::bad_input(format!("n_ctx {} is too large", params.n_ctx)))?;
        let buf = Buffers::new(params.n_batch.min(UBATCH), h);
        Ok(Context {
            params,
            k_cache: vec![f16::ZERO; cache],
            v_cache: vec![f16::ZERO; cache],
            cells: vec![FREE; params.n_ctx],
            buf,
            logits: Vec::new(),
            logits_row: Vec::new(),
            embd: Vec::new(),
            embd_seq: Vec::new(),
            #[cfg(feature = "cuda")]
            gpu: None,
            model,
        })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
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

    /// Forgets every cached position of every sequence.
    pub fn clear(&mut self) {
        self.cells.fill(FREE);
    }

    /// Number of rows of logits the last `decode` produced.
    pub fn n_outputs(&self) -> usize {
        self.logits.len() / self.model.hparams().n_vocab
    }

    /// The logits of the last `decode`, one row per entry that asked, in batch order.
    pub fn all_logits(&self) -> &[f32] {
        &self.logits
    }

    /// Whether decode keeps hidden states (llama_set_embeddings).
    pub fn set_embeddings(&mut self, on: bool) {
        self.params.embeddings = on;
    }

    pub fn params(&self) -> &ContextParams {
        &self.params
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
        let row = (*self.logits_row.get(i)?)?;
        Some(&self.logits[row * n_vocab..(row + 1) * n_vocab])
    }

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
        let free = self.cells.iter().filter(|c| c.seqs.is_empty()).count();
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

    /// Cells of sequence `seq` (any sequence when negative) with a position in [p0, p1)
    /// (p0 < 0: from 0; p1 < 0: to the end).
    fn cells_in(&self, seq: i32, p0: i32, p1: i32) -> impl Iterator<Item = usize> + '_ {
        let (p0, p1) = (p0.max(0), if p1 < 0 { i32::MAX } else { p1 });
        self.cells.iter().enumerate().filter_map(move |(i, c)| {
            let in_seq = if seq < 0 {
                !c.seqs.is_empty()
            } else {
                c.seqs.contains(seq as usize)
            };
            (in_seq && c.pos >= p0 && c.pos < p1).then_some(i)
        })
    }

    fn valid_seq(&self, seq: i32) -> bool {
        seq >= 0 && (seq as usize) < self.params.n_seq_max
    }

    /// Removes positions [p0, p1) from sequence `seq` (every sequence when negative). False
    /// when `seq` is not a sequence of this context.
    pub fn seq_rm(&mut self, seq: i32, p0: i32, p1: i32) -> bool {
        if seq >= 0 && !self.valid_seq(seq) {
            return false;
        }
        let hit: Vec<usize> = self.cells_in(seq, p0, p1).collect();
        for i in hit {
            let c = &mut self.cells[i];
            if seq < 0 {
                *c = FREE;
            } else {
                c.seqs.remove(seq as usize);
                if c.seqs.is_empty() {
                    *c = FREE;
                }
            }
        }
        true
    }

    /// Makes positions [p0, p1) of sequence `src` visible to sequence `dst` too.
    pub fn seq_cp(&mut self, src: i32, dst: i32, p0: i32, p1: i32) -> bool {
        if !self.valid_seq(src) || !self.valid_seq(dst) {
            return false;
        }
        let hit: Vec<usize> = self.cells_in(src, p0, p1).collect();
        for i in hit {
            self.cells[i].seqs.insert(dst as usize);
        }
        true
    }

    /// Drops every cell that sequence `seq` does not see, and every other sequence.
    pub fn seq_keep(&mut self, seq: i32) -> bool {
        if !self.valid_seq(seq) {
            return false;
        }
        for c in &mut self.cells {
            *c = if c.seqs.contains(seq as usize) {
                Cell {
                    pos: c.pos,
                    seqs: SeqSet::one(seq as usize),
                }
            } else {
                FREE
            };
        }
        true
    }

    /// Adds `delta` to positions [p0, p1) of sequence `seq`, re-rotating the cached keys;
    /// cells pushed below position 0 are dropped.
    pub fn seq_add(&mut self, seq: i32, p0: i32, p1: i32, delta: i32) -> bool {
        if !self.valid_seq(seq) {
            return false;
        }
        if delta == 0 {
            return true;
        }
        let hit: Vec<usize> = self.cells_in(seq, p0, p1).collect();
        #[cfg(feature = "cuda")]
        if self.gpu.is_some() {
            self.with_host_kv(false, |c| {
                for i in hit {
                    c.move_cell(i, c.cells[i].pos.saturating_add(delta));
                }
            });
            return true;
        }
        for i in hit {
            self.move_cell(i, self.cells[i].pos.saturating_add(delta));
        }
        true
    }

    /// Divides positions [p0, p1) of sequence `seq` by `d` (> 1), re-rotating the keys.
    pub fn seq_div(&mut self, seq: i32, p0: i32, p1: i32, d: i32) -> bool {
        if !self.valid_seq(seq) || d < 1 {
            return false;
        }
        let hit: Vec<usize> = self.cells_in(seq, p0, p1).collect();
        #[cfg(feature = "cuda")]
        if self.gpu.is_some() {
            self.with_host_kv(false, |c| {
                for i in hit {
                    c.move_cell(i, c.cells[i].pos / d);
                }
            });
            return true;
        }
        for i in hit {
            self.move_cell(i, self.cells[i].pos / d);
        }
        true
    }

    /// Gives cell `i` position `to`, rotating its cached keys by the difference (RoPE of a sum
    /// is the product of rotations), or frees it when `to` is negative.
    fn move_cell(&mut self, i: usize, to: i32) {
        if to < 0 {
            self.cells[i] = FREE;
            return;
        }
        let h = self.model.hparams();
        let shift = to.wrapping_sub(self.cells[i].pos);
        let (n_kv, hd) = (h.n_head_kv * h.head_dim, h.head_dim);
        let mut head = vec![0f32; hd];
        let mut table = vec![(0f32, 0f32); h.n_rot / 2];
        rope_table(&mut table, shift, h.n_rot, h.rope_theta);
        for l in 0..h.n_layer {
            let slot = (l * self.params.n_ctx + i) * n_kv;
            for k in self.k_cache[slot..slot + n_kv].chunks_exact_mut(hd) {
                head.iter_mut().zip(&*k).for_each(|(o, v)| *o = v.to_f32());
                rope_neox(&mut head, &table);
                k.iter_mut()
                    .zip(&head)
                    .for_each(|(o, &v)| *o = f16::from_f32(v));
            }
        }
        self.cells[i].pos = to;
    }

    /// Smallest cached position of sequence `seq`, -1 when it has none.
    pub fn seq_pos_min(&self, seq: i32) -> i32 {
        if !self.valid_seq(seq) {
            return -1;
        }
        self.cells_in(seq, -1, -1)
            .map(|i| self.cells[i].pos)
            .min()
            .unwrap_or(-1)
    }

    /// Largest cached position of sequence `seq`, -1 when it has none.
    pub fn seq_pos_max(&self, seq: i32) -> i32 {
        if !self.valid_seq(seq) {
            return -1;
        }
        self.cells_in(seq, -1, -1)
            .map(|i| self.cells[i].pos)
            .max()
            .unwrap_or(-1)
    }

    /// Claims the first free cells, one per token, in batch order, and lists the cells each
    /// token attends to: its (first) sequence's, at positions up to its own, in position order
    /// (so a result does not depend on where the cells lie). Shared by the CPU and GPU paths.
    fn claim_cells(&mut self, batch: &Batch<'_>) -> (Vec<usize>, Vec<Vec<usize>>) {
        let n = batch.tokens.len();
        let mut slots = Vec::with_capacity(n);
        for (i, cell) in self.cells.iter_mut().enumerate() {
            if slots.len() == n {
                break;
            }
            if cell.seqs.is_empty() {
                let t = slots.len();
                *cell = Cell {
                    pos: batch.positions[t],
                    seqs: batch.seqs[t],
                };
                slots.push(i);
            }
        }
        let visible = (0..n)
            .map(|t| {
                let (seq, pos) = (batch.seqs[t].first().unwrap_or(0), batch.positions[t]);
                let mut v: Vec<usize> = (0..self.cells.len())
                    .filter(|&s| self.cells[s].seqs.contains(seq) && self.cells[s].pos <= pos)
                    .collect();
                v.sort_by_key(|&s| self.cells[s].pos);
                v
            })
            .collect();
        (slots, visible)
    }

    /// Runs the batch through the model, filling the KV cache at the given positions and the
    /// logits of the entries that ask for them. On an error no cell has changed.
    pub fn decode(&mut self, batch: &Batch<'_>) -> Result<()> {
        self.check(batch)?;
        #[cfg(feature = "cuda")]
        if self.gpu.is_some() {
            return self.decode_gpu(batch);
        }
        let h = self.model.hparams().clone();
        let n = batch.tokens.len();
        let (slots, visible) = self.claim_cells(batch);
        let wanted: Vec<usize> = (0..n).filter(|&t| batch.want_logits[t]).collect();
        self.logits.clear();
        self.logits.resize(wanted.len() * h.n_vocab, 0.0);
        self.logits_row.clear();
        self.embd.clear();
        self.embd_seq.clear();
        let mut row0 = 0;
        for r in chunk_plan(&slots, &visible, self.params.n_ctx) {
            let outputs = r.clone().filter(|&t| batch.want_logits[t]).count();
            let run = self.forward(batch, r.clone(), &slots[r.clone()], &visible[r], row0);
            if let Err(e) = run {
                for &s in &slots {
                    self.cells[s] = FREE; // the cells this batch took were free before
                }
                return Err(e);
            }
            row0 += outputs;
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

    /// The forward pass of batch entries `r` (cells `slots`, attending to `visible`): their
    /// keys and values into the cache, their logits (and embeddings) from row `row0` on.
    fn forward(
        &mut self,
        batch: &Batch<'_>,
        r: Range<usize>,
        slots: &[usize],
        visible: &[Vec<usize>],
        row0: usize,
    ) -> Result<()> {
        let model = Arc::clone(&self.model);
        let h = model.hparams();
        let n = r.len();
        let (n_embd, n_ff, hd) = (h.n_embd, h.n_ff, h.head_dim);
        let n_kv = h.n_head_kv * hd;
        let att_scale = 1.0 / (hd as f32).sqrt();
        let threads = match self.params.n_threads {
            0 => kernels::pool::default_threads(),
            t => t,
        };
        let half_rot = h.n_rot / 2;
        self.buf.ensure(n, h);
        let b = &mut self.buf;
        for (t, &pos) in batch.positions[r.clone()].iter().enumerate() {
            rope_table(&mut b.rope[t * half_rot..], pos, h.n_rot, h.rope_theta);
        }

        // Embedding rows.
        for (t, &tok) in batch.tokens[r.clone()].iter().enumerate() {
            model.embedding_row(tok as usize, &mut b.x[t * n_embd..(t + 1) * n_embd])?;
        }

        for (l, layer) in model.layers.iter().enumerate() {
            // Attention block: norm -> q, k, v -> rope -> cache -> attention -> sub-norm -> o.
            rmsnorm_par(
                &mut b.xb[..n * n_embd],
                &b.x[..n * n_embd],
                &layer.attn_norm,
                h.rms_eps,
                threads,
            );
            project(
                &model,
                &mut [
                    (&layer.wq, &mut b.q[..]),
                    (&layer.wk, &mut b.k[..]),
                    (&layer.wv, &mut b.v[..]),
                ],
                &b.xb,
                n,
                &mut b.act,
                threads,
            )?;
            for (t, &cell) in slots.iter().enumerate() {
                let table = &b.rope[t * half_rot..(t + 1) * half_rot];
                for head in b.q[t * n_embd..(t + 1) * n_embd].chunks_exact_mut(hd) {
                    rope_neox(head, table);
                }
                for head in b.k[t * n_kv..(t + 1) * n_kv].chunks_exact_mut(hd) {
                    rope_neox(head, table);
                }
                let slot = (l * self.params.n_ctx + cell) * n_kv;
                // Round to nearest even, as f16::from_f32 (F16C where present).
                self.k_cache[slot..slot + n_kv]
                    .convert_from_f32_slice(&b.k[t * n_kv..(t + 1) * n_kv]);
                self.v_cache[slot..slot + n_kv]
                    .convert_from_f32_slice(&b.v[t * n_kv..(t + 1) * n_kv]);
            }
            // f16 keys times the query rounded to f16, as the reference (kernels::attention).
            let layer_cache = l * self.params.n_ctx * n_kv..(l + 1) * self.params.n_ctx * n_kv;
            attention::attention(
                AttnShape {
                    n_head: h.n_head,
                    n_head_kv: h.n_head_kv,
                    head_dim: hd,
                    n_cells: self.params.n_ctx,
                    scale: att_scale,
                },
                &b.q[..n * n_embd],
                &mut b.att[..n * n_embd],
                &self.k_cache[layer_cache.clone()],
                &self.v_cache[layer_cache],
                visible,
                threads,
                &mut b.attn,
            );
            rmsnorm_par(
                &mut b.xb[..n * n_embd],
                &b.att[..n * n_embd],
                &layer.attn_sub_norm,
                h.rms_eps,
                threads,
            );
            project(
                &model,
                &mut [(&layer.wo, &mut b.proj[..])],
                &b.xb,
                n,
                &mut b.act,
                threads,
            )?;
            pool::rows_mut(&mut b.x[..n * n_embd], &b.proj, n_embd, threads, &|x, o| {
                x.iter_mut().zip(o).for_each(|(x, &o)| *x += o)
            });

            // FFN block: norm -> gate, up -> act(gate) * up -> sub-norm -> down.
            rmsnorm_par(
                &mut b.xb[..n * n_embd],
                &b.x[..n * n_embd],
                &layer.ffn_norm,
                h.rms_eps,
                threads,
            );
            project(
                &model,
                &mut [
                    (&layer.w_gate, &mut b.gate[..]),
                    (&layer.w_up, &mut b.up[..]),
                ],
                &b.xb,
                n,
                &mut b.act,
                threads,
            )?;
            let (arch, isa) = (h.arch, best_isa());
            pool::rows_mut(
                &mut b.gate[..n * n_ff],
                &b.up,
                n_ff,
                threads,
                &|gate, up| match arch {
                    Arch::Bitnet => exp::silu_mul(isa, gate, up),
                    Arch::BitnetB158 => {
                        for (g, &u) in gate.iter_mut().zip(up) {
                            let r = g.max(0.0);
                            *g = r * r * u;
                        }
                    }
                },
            );
            rmsnorm_par(
                &mut b.up[..n * n_ff],
                &b.gate[..n * n_ff],
                &layer.ffn_sub_norm,
                h.rms_eps,
                threads,
            );
            project(
                &model,
                &mut [(&layer.w_down, &mut b.proj[..])],
                &b.up,
                n,
                &mut b.act,
                threads,
            )?;
            pool::rows_mut(&mut b.x[..n * n_embd], &b.proj, n_embd, threads, &|x, o| {
                x.iter_mut().zip(o).for_each(|(x, &o)| *x += o)
            });
        }

        // Final norm and head, only for the entries that want logits.
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
            &mut self.logits[row0 * h.n_vocab..(row0 + k) * h.n_vocab],
            threads,
        )?;
        if self.params.embeddings {
            self.embd.extend_from_slice(&b.xb[..k * n_embd]);
        }
        Ok(())
    }
}

// Outputs lent to the C layer (src/capi)
impl Context {
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
}
