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

use super::{Cell, Context, SeqSet, FREE};
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"BNST";
const VERSION: u32 = 1;

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

impl Context {
    /// The cells a state covers: every used cell, or those `seq` sees.
    fn state_cells(&self, seq: Option<i32>) -> Vec<usize> {
        (0..self.cells.len())
            .filter(|&i| match seq {
                None => !self.cells[i].seqs.is_empty(),
                Some(s) => s >= 0 && self.cells[i].seqs.contains(s as usize),
            })
            .collect()
    }

    /// Appends the state (whole context when `seq` is None, else one sequence's cells) to `out`.
    pub fn state_write(&self, seq: Option<i32>, out: &mut Vec<u8>) {
        let h = self.model.hparams();
        let n_kv = h.n_head_kv * h.head_dim;
        let cells = self.state_cells(seq);
        out.extend_from_slice(MAGIC);
        for v in [VERSION, h.n_layer as u32, n_kv as u32, h.n_vocab as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(cells.len() as u32).to_le_bytes());
        for &i in &cells {
            let c = &self.cells[i];
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
        #[cfg(feature = "cuda")]
        let device_kv = self.gpu_kv_snapshot();
        #[cfg(feature = "cuda")]
        let caches: [&[f16]; 2] = match &device_kv {
            Some((k, v)) => [k, v],
            None => [&self.k_cache, &self.v_cache],
        };
        #[cfg(not(feature = "cuda"))]
        let caches = [&self.k_cache, &self.v_cache];
        for cache in caches {
            for l in 0..h.n_layer {
                for &i in &cells {
                    let row = &cache[(l * self.params.n_ctx + i) * n_kv..][..n_kv];
                    for v in row {
                        out.extend_from_slice(&v.to_bits().to_le_bytes());
                    }
                }
            }
        }
        let (n_out, rows): (usize, &[Option<usize>]) = match seq {
            None => (self.n_outputs(), &self.logits_row),
            Some(_) => (0, &[]),
        };
        out.extend_from_slice(&(n_out as u32).to_le_bytes());
        out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        for r in rows {
            out.extend_from_slice(&r.map_or(-1, |r| r as i32).to_le_bytes());
        }
        if seq.is_none() {
            for v in &self.logits {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// Size in bytes `state_write` would produce.
    pub fn state_size(&self, seq: Option<i32>) -> usize {
        let h = self.model.hparams();
        let n_kv = h.n_head_kv * h.head_dim;
        let n_cells = self.state_cells(seq).len();
        let logits = match seq {
            None => 4 * self.logits_row.len() + 4 * self.logits.len(),
            Some(_) => 0,
        };
        4 + 5 * 4 + n_cells * (4 + 32) + 2 * h.n_layer * n_cells * n_kv * 2 + 8 + logits
    }

    /// Length of the state whose bytes `peek(offset, len)` returns, read from its counts (for
    /// callers that have a pointer but no size); only bytes inside that length are peeked.
    pub fn state_len(&self, peek: &mut dyn FnMut(usize, usize) -> Vec<u8>) -> Result<usize> {
        let h = self.model.hparams();
        let n_kv = h.n_head_kv * h.head_dim;
        let head = peek(0, 24);
        let word = |b: &[u8], i: usize| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap());
        if &head[..4] != MAGIC || word(&head, 1) != VERSION {
            return Err(Error::bad_input("not a bitnet-rs context state"));
        }
        let n_cells = word(&head, 5) as usize;
        if n_cells > self.params.n_ctx {
            return Err(Error::bad_input("state holds more cells than this context"));
        }
        let at = 24 + n_cells * (4 + 32) + 2 * h.n_layer * n_cells * n_kv * 2;
        let counts = peek(at, 8);
        let (n_out, n_rows) = (word(&counts, 0) as usize, word(&counts, 1) as usize);
        if n_rows > self.params.n_batch || n_out > n_rows {
            return Err(Error::bad_input("state holds more outputs than n_batch"));
        }
        Ok(at + 8 + 4 * n_rows + 4 * n_out * h.n_vocab)
    }

    /// Restores a state from `bytes`: the whole context when `dest` is None (replacing every
    /// cell and the logits), else into sequence `dest` (replacing that sequence's cells).
    /// Returns the bytes read. On an error the context is unchanged.
    pub fn state_read(&mut self, dest: Option<i32>, bytes: &[u8]) -> Result<usize> {
        let h = self.model.hparams();
        let n_kv = h.n_head_kv * h.head_dim;
        let n_layer = h.n_layer;
        let n_vocab = h.n_vocab;
        if let Some(s) = dest {
            if s < 0 || s as usize >= self.params.n_seq_max {
                return Err(Error::bad_input(format!(
                    "sequence id {s} is outside 0..{}",
                    self.params.n_seq_max
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
        if n_cells > self.params.n_ctx {
            return Err(Error::bad_input(format!(
                "state holds {n_cells} cells, this context has {}",
                self.params.n_ctx
            )));
        }
        let mut cells = Vec::with_capacity(n_cells);
        for _ in 0..n_cells {
            let pos = r.i32()?;
            let mut seqs = SeqSet::EMPTY;
            for w in seqs.0.iter_mut() {
                *w = r.u64()?;
            }
            if pos < 0 || seqs.is_empty() || seqs.iter().any(|s| s >= self.params.n_seq_max) {
                return Err(Error::bad_input("state holds an invalid cell"));
            }
            cells.push(Cell { pos, seqs });
        }
        let kv_bytes = r.take(2 * n_layer * n_cells * n_kv * 2)?;
        let n_out = r.u32()? as usize;
        let n_rows = r.u32()? as usize;
        if n_rows > self.params.n_batch || n_out > n_rows {
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
        let logits_bytes = if dest.is_none() {
            r.take(n_out * n_vocab * 4)?
        } else {
            &[]
        };

        // Where the cells go: the same indices for a whole state, free cells for a sequence.
        let slots: Vec<usize> = match dest {
            None => (0..n_cells).collect(),
            Some(s) => {
                let free: Vec<usize> = (0..self.cells.len())
                    .filter(|&i| {
                        let c = &self.cells[i];
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

        // The device cache, if any, is edited through host copies.
        #[cfg(feature = "cuda")]
        self.gpu_kv_to_host(true)?;

        // Checks done: apply.
        match dest {
            None => self.cells.fill(FREE),
            Some(s) => {
                self.seq_rm(s, -1, -1);
            }
        }
        for (&slot, cell) in slots.iter().zip(&cells) {
            self.cells[slot] = match dest {
                None => *cell,
                Some(s) => Cell {
                    pos: cell.pos,
                    seqs: SeqSet::one(s as usize),
                },
            };
        }
        let mut words = kv_bytes
            .chunks_exact(2)
            .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])));
        let n_ctx = self.params.n_ctx;
        for cache in [&mut self.k_cache, &mut self.v_cache] {
            for l in 0..n_layer {
                for &slot in &slots {
                    for v in &mut cache[(l * n_ctx + slot) * n_kv..][..n_kv] {
                        *v = words.next().unwrap();
                    }
                }
            }
        }
        if dest.is_none() {
            self.logits = logits_bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            self.logits_row = rows;
        }
        #[cfg(feature = "cuda")]
        self.gpu_kv_to_device()?;
        Ok(r.at)
    }
}
