//! Saving and restoring a context's state (llama_state_* / llama_state_seq_*): the KV cells
//! with their keys and values, and, for the whole state, the last decode's logits.
//!
//! Layout (little endian), all counts checked against the context before anything changes:
//! ```text
//! magic "BNST" | version u32 | n_layer u32 | n_kv u32 | n_vocab u32 | n_cells u32
//! per cell:  pos i32 | seq words [u64; 4]
//! per layer: k rows [n_cells][n_kv] f16, v rows [n_cells][n_kv] f16
//! n_outputs u32 | n_batch_entries u32 | per entry: row i32 (-1: none) | logits [n_outputs][n_vocab] f32
//! ```
//! The logits part is present (with zero counts) in sequence states too, so one reader serves both.

use half::f16;

use super::{Cell, Cells, HostKv, SeqSet};
use crate::error::{Error, Result};
use crate::model::hparams::HParams;

const MAGIC: &[u8; 4] = b"BNST";
const VERSION: u32 = 1;

/// The sizes a state is checked against.
pub(crate) struct Limits {
    pub n_ctx: usize,
    pub n_batch: usize,
    pub n_seq_max: usize,
}

/// The last decode's outputs as a state carries them.
pub(crate) struct Outputs<'a> {
    pub logits: &'a [f32],
    pub rows: &'a [Option<usize>],
}

/// Reads little-endian values from a byte slice, failing cleanly at its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| Error::bad_input("state data is truncated"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

/// The cells a state covers: every used cell, or those `seq` sees.
fn state_cells(cells: &Cells, seq: Option<i32>) -> Vec<usize> {
    (0..cells.len())
        .filter(|&i| match seq {
            None => !cells.get(i).seqs.is_empty(),
            Some(s) => s >= 0 && cells.get(i).seqs.contains(s as usize),
        })
        .collect()
}

/// Appends the state (whole context when `seq` is None, else one sequence's cells) to `out`.
pub(crate) fn write(
    h: &HParams,
    cells: &Cells,
    kv: &HostKv,
    outputs: Outputs<'_>,
    seq: Option<i32>,
    out: &mut Vec<u8>,
) {
    let n_kv = h.n_head_kv * h.head_dim;
    let chosen = state_cells(cells, seq);
    out.extend_from_slice(MAGIC);
    for v in [VERSION, h.n_layer as u32, n_kv as u32, h.n_vocab as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(chosen.len() as u32).to_le_bytes());
    for &i in &chosen {
        let c = cells.get(i);
        out.extend_from_slice(&c.pos.to_le_bytes());
        let seqs = match seq {
            // A sequence state carries only that sequence; the reader retargets it.
            Some(_) => SeqSet::one(0),
            None => c.seqs,
        };
        for w in seqs.0 {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
    for cache in [&kv.k, &kv.v] {
        for l in 0..h.n_layer {
            for &i in &chosen {
                for v in &cache[kv.row(l, i)] {
                    out.extend_from_slice(&v.to_bits().to_le_bytes());
                }
            }
        }
    }
    let (n_out, rows): (usize, &[Option<usize>]) = match seq {
        None => (outputs.logits.len() / h.n_vocab, outputs.rows),
        Some(_) => (0, &[]),
    };
    out.extend_from_slice(&(n_out as u32).to_le_bytes());
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for r in rows {
        out.extend_from_slice(&r.map_or(-1, |r| r as i32).to_le_bytes());
    }
    if seq.is_none() {
        for v in outputs.logits {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Size in bytes `write` would produce.
pub(crate) fn size(h: &HParams, cells: &Cells, outputs: Outputs<'_>, seq: Option<i32>) -> usize {
    let n_kv = h.n_head_kv * h.head_dim;
    let n_cells = state_cells(cells, seq).len();
    let logits = match seq {
        None => 4 * outputs.rows.len() + 4 * outputs.logits.len(),
        Some(_) => 0,
    };
    4 + 5 * 4 + n_cells * (4 + 32) + 2 * h.n_layer * n_cells * n_kv * 2 + 8 + logits
}

/// Length of the state whose bytes `peek(offset, len)` returns, read from its counts (for
/// callers that have a pointer but no size); only bytes inside that length are peeked.
pub(crate) fn len(
    h: &HParams,
    limits: &Limits,
    peek: &mut dyn FnMut(usize, usize) -> Vec<u8>,
) -> Result<usize> {
    let n_kv = h.n_head_kv * h.head_dim;
    let head = peek(0, 24);
    let word = |b: &[u8], i: usize| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap());
    if &head[..4] != MAGIC || word(&head, 1) != VERSION {
        return Err(Error::bad_input("not a bitnet-rs context state"));
    }
    let n_cells = word(&head, 5) as usize;
    if n_cells > limits.n_ctx {
        return Err(Error::bad_input("state holds more cells than this context"));
    }
    let at = 24 + n_cells * (4 + 32) + 2 * h.n_layer * n_cells * n_kv * 2;
    let counts = peek(at, 8);
    let (n_out, n_rows) = (word(&counts, 0) as usize, word(&counts, 1) as usize);
    if n_rows > limits.n_batch || n_out > n_rows {
        return Err(Error::bad_input("state holds more outputs than n_batch"));
    }
    Ok(at + 8 + 4 * n_rows + 4 * n_out * h.n_vocab)
}

/// A state read and checked against a context, not yet applied.
pub(crate) struct Restore<'a> {
    dest: Option<i32>,
    cells: Vec<Cell>,
    /// Where each cell goes: the same indices for a whole state, free cells for a sequence.
    slots: Vec<usize>,
    kv_bytes: &'a [u8],
    /// The outputs of a whole state: batch entry -> row, and the logits rows.
    pub rows: Vec<Option<usize>>,
    pub logits: Vec<f32>,
    /// Bytes of the state read.
    pub read: usize,
}

/// Reads and checks a state from `bytes` for the whole context (`dest` None) or for sequence
/// `dest`; nothing changes until `apply`.
pub(crate) fn parse<'a>(
    h: &HParams,
    limits: &Limits,
    cells_now: &Cells,
    dest: Option<i32>,
    bytes: &'a [u8],
) -> Result<Restore<'a>> {
    let n_kv = h.n_head_kv * h.head_dim;
    let (n_layer, n_vocab) = (h.n_layer, h.n_vocab);
    if let Some(s) = dest {
        if s < 0 || s as usize >= limits.n_seq_max {
            return Err(Error::bad_input(format!(
                "sequence id {s} is outside 0..{}",
                limits.n_seq_max
            )));
        }
    }
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return Err(Error::bad_input("not a bitnet-rs context state"));
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(Error::bad_input(format!(
            "state version {version} (this build reads {VERSION})"
        )));
    }
    let shape = [r.u32()?, r.u32()?, r.u32()?];
    if shape != [n_layer as u32, n_kv as u32, n_vocab as u32] {
        return Err(Error::bad_input(format!(
            "state is for another model shape (layers, kv width, vocab) {shape:?}"
        )));
    }
    let n_cells = r.u32()? as usize;
    if n_cells > limits.n_ctx {
        return Err(Error::bad_input(format!(
            "state holds {n_cells} cells, this context has {}",
            limits.n_ctx
        )));
    }
    let mut cells = Vec::with_capacity(n_cells);
    for _ in 0..n_cells {
        let pos = r.i32()?;
        let mut seqs = SeqSet::EMPTY;
        for w in seqs.0.iter_mut() {
            *w = r.u64()?;
        }
        if pos < 0 || seqs.is_empty() || seqs.iter().any(|s| s >= limits.n_seq_max) {
            return Err(Error::bad_input("state holds an invalid cell"));
        }
        cells.push(Cell { pos, seqs });
    }
    let kv_bytes = r.take(2 * n_layer * n_cells * n_kv * 2)?;
    let n_out = r.u32()? as usize;
    let n_rows = r.u32()? as usize;
    if n_rows > limits.n_batch || n_out > n_rows {
        return Err(Error::bad_input("state holds more outputs than n_batch"));
    }
    let mut rows = Vec::with_capacity(n_rows);
    for _ in 0..n_rows {
        let row = r.i32()?;
        if row >= n_out as i32 || row < -1 {
            return Err(Error::bad_input("state holds an invalid output row"));
        }
        rows.push((row >= 0).then_some(row as usize));
    }
    let logits = match dest {
        None => r
            .take(n_out * n_vocab * 4)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        Some(_) => Vec::new(),
    };
    let slots: Vec<usize> = match dest {
        None => (0..n_cells).collect(),
        Some(s) => {
            let free: Vec<usize> = (0..cells_now.len())
                .filter(|&i| {
                    let c = cells_now.get(i);
                    c.seqs.is_empty() || c.seqs == SeqSet::one(s as usize)
                })
                .take(n_cells)
                .collect();
            if free.len() < n_cells {
                return Err(Error::bad_input(format!(
                    "no room for {n_cells} cells of sequence {s}"
                )));
            }
            free
        }
    };
    Ok(Restore {
        dest,
        cells,
        slots,
        kv_bytes,
        rows,
        logits,
        read: r.at,
    })
}

/// Applies a checked state to the cells and the host cache (the caller takes the outputs).
pub(crate) fn apply(h: &HParams, restore: &Restore<'_>, cells: &mut Cells, kv: &mut HostKv) {
    match restore.dest {
        None => cells.clear(),
        Some(s) => {
            cells.seq_rm(s, -1, -1);
        }
    }
    for (&slot, cell) in restore.slots.iter().zip(&restore.cells) {
        cells.set(
            slot,
            match restore.dest {
                None => *cell,
                Some(s) => Cell {
                    pos: cell.pos,
                    seqs: SeqSet::one(s as usize),
                },
            },
        );
    }
    let mut words = restore
        .kv_bytes
        .chunks_exact(2)
        .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])));
    for values in [false, true] {
        for l in 0..h.n_layer {
            for &slot in &restore.slots {
                let r = kv.row(l, slot);
                let cache = if values { &mut kv.v } else { &mut kv.k };
                for v in &mut cache[r] {
                    *v = words.next().unwrap();
                }
            }
        }
    }
}
