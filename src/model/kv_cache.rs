//! The KV cache, as llama.cpp's unified cache: `n_ctx` cells shared by up to `n_seq_max`
//! sequences. Each cell holds one position's keys and values and the set of sequences that see
//! it; a token attends to the cells of its sequence at positions up to its own.
//!
//! - [`Cells`]: the bookkeeping (which position each cell holds, for which sequences), the
//!   `seq_*` operations of llama.h's memory API, and `claim`, which gives a batch its cells and
//!   lists what each token sees. The same for every backend.
//! - [`HostKv`]: keys and values in host memory, f16 as in the reference, [n_layer, n_ctx, n_kv]
//!   each. The CPU backend keeps one; a GPU backend keeps its cache on the device and fills a
//!   `HostKv` only while positions are shifted or a state is saved or restored.
//! - `state`: the byte format of a saved state (cells, keys and values, then the outputs).

pub mod state;

use half::f16;

use super::hparams::HParams;
use super::Batch;
use crate::error::{Error, Result};
use crate::kernels::rope;

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

/// One cell: the position whose keys/values it holds and the sequences that see it
/// (empty = free).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cell {
    pub pos: i32,
    pub seqs: SeqSet,
}

pub(crate) const FREE: Cell = Cell {
    pos: -1,
    seqs: SeqSet::EMPTY,
};

/// A cell whose position changed by `shift` (seq_add / seq_div): its cached keys must turn
/// by that many positions (RoPE of a sum is the product of rotations).
pub(crate) type KeyShift = (usize, i32);

/// The cells of a cache and the sequences that see them.
pub(crate) struct Cells {
    cells: Vec<Cell>,
    n_seq_max: usize,
}

impl Cells {
    pub fn new(n_ctx: usize, n_seq_max: usize) -> Cells {
        Cells {
            cells: vec![FREE; n_ctx],
            n_seq_max,
        }
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn get(&self, i: usize) -> Cell {
        self.cells[i]
    }

    pub fn set(&mut self, i: usize, cell: Cell) {
        self.cells[i] = cell;
    }

    /// Forgets every cached position of every sequence.
    pub fn clear(&mut self) {
        self.cells.fill(FREE);
    }

    pub fn n_free(&self) -> usize {
        self.cells.iter().filter(|c| c.seqs.is_empty()).count()
    }

    /// Gives back cells a failed batch had claimed (they were free before).
    pub fn free(&mut self, slots: &[usize]) {
        for &s in slots {
            self.cells[s] = FREE;
        }
    }

    pub fn valid_seq(&self, seq: i32) -> bool {
        seq >= 0 && (seq as usize) < self.n_seq_max
    }

    /// Cells of sequence `seq` (any sequence when negative) with a position in [p0, p1)
    /// (p0 < 0: from 0; p1 < 0: to the end).
    pub fn cells_in(&self, seq: i32, p0: i32, p1: i32) -> impl Iterator<Item = usize> + '_ {
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

    /// Removes positions [p0, p1) from sequence `seq` (every sequence when negative). False
    /// when `seq` is not a sequence of this cache.
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

    /// Moves positions [p0, p1) of sequence `seq` to `to(pos)`; cells pushed below 0 are
    /// freed. Returns the cells whose keys must turn, and by how much (seq_add, seq_div).
    pub fn seq_move(
        &mut self,
        seq: i32,
        p0: i32,
        p1: i32,
        to: impl Fn(i32) -> i32,
    ) -> Vec<KeyShift> {
        let hit: Vec<usize> = self.cells_in(seq, p0, p1).collect();
        let mut shifts = Vec::with_capacity(hit.len());
        for i in hit {
            let (from, to) = (self.cells[i].pos, to(self.cells[i].pos));
            if to < 0 {
                self.cells[i] = FREE;
            } else {
                shifts.push((i, to.wrapping_sub(from)));
                self.cells[i].pos = to;
            }
        }
        shifts
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
    /// (so a result does not depend on where the cells lie). The caller has checked that
    /// enough cells are free.
    pub fn claim(&mut self, batch: &Batch<'_>) -> (Vec<usize>, Vec<Vec<usize>>) {
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
}

/// Keys and values in host memory, f16, [n_layer, n_ctx, n_kv] each.
pub(crate) struct HostKv {
    pub k: Vec<f16>,
    pub v: Vec<f16>,
    n_ctx: usize,
    n_kv: usize,
}

impl HostKv {
    /// Elements of one of the two caches, checked against a bound (64 Gi values) so that a
    /// hostile n_ctx is an error and not an allocation failure.
    pub fn len_for(h: &HParams, n_ctx: usize) -> Result<usize> {
        h.n_layer
            .checked_mul(n_ctx)
            .and_then(|v| v.checked_mul(h.n_head_kv * h.head_dim))
            .filter(|&v| v <= (1usize << 36))
            .ok_or_else(|| Error::bad_input(format!("n_ctx {n_ctx} is too large")))
    }

    /// A zeroed cache (`n_ctx` checked with `len_for` first).
    pub fn new(h: &HParams, n_ctx: usize) -> HostKv {
        let n_kv = h.n_head_kv * h.head_dim;
        let len = h.n_layer * n_ctx * n_kv;
        HostKv {
            k: vec![f16::ZERO; len],
            v: vec![f16::ZERO; len],
            n_ctx,
            n_kv,
        }
    }

    /// Bytes of the keys and values together (f16).
    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * std::mem::size_of::<f16>()
    }

    /// Cells per layer.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Element range of layer `l`'s rows (all cells).
    pub fn layer(&self, l: usize) -> std::ops::Range<usize> {
        l * self.n_ctx * self.n_kv..(l + 1) * self.n_ctx * self.n_kv
    }

    /// Element range of the row of layer `l`, cell `cell`.
    pub fn row(&self, l: usize, cell: usize) -> std::ops::Range<usize> {
        let at = (l * self.n_ctx + cell) * self.n_kv;
        at..at + self.n_kv
    }

    /// Stores one token's keys and values (f32, rounded to nearest even f16).
    pub fn store(&mut self, l: usize, cell: usize, k: &[f32], v: &[f32]) {
        use half::slice::HalfFloatSliceExt;
        let r = self.row(l, cell);
        self.k[r.clone()].convert_from_f32_slice(k);
        self.v[r].convert_from_f32_slice(v);
    }

    /// Turns the cached keys of each cell by its shift, in every layer.
    pub fn shift_keys(&mut self, h: &HParams, shifts: &[KeyShift]) {
        let hd = h.head_dim;
        let mut head = vec![0f32; hd];
        let mut table = vec![(0f32, 0f32); h.n_rot / 2];
        for &(cell, shift) in shifts {
            rope::table(&mut table, shift, h.n_rot, h.rope_theta);
            for l in 0..h.n_layer {
                let r = self.row(l, cell);
                for k in self.k[r].chunks_exact_mut(hd) {
                    head.iter_mut().zip(&*k).for_each(|(o, v)| *o = v.to_f32());
                    rope::rotate_neox(&mut head, &table);
                    k.iter_mut()
                        .zip(&head)
                        .for_each(|(o, &v)| *o = f16::from_f32(v));
                }
            }
        }
    }
}
