//! Batches: `llama_batch_init/get_one/free` (C-visible arrays we allocate) and the
//! `llama_batch_ext_*` builder with `llama_process`, in the reference's return conventions.

use std::alloc::{self, Layout};
use std::collections::HashSet;
use std::sync::Mutex;

use super::context::{llama_context, Entries};
use super::guard::{self, ffi, handle, with_handle, Fallible, LOG_ERROR};
use super::types::*;
use crate::model::context::SeqSet;

/// Bytes in front of each array we hand out, holding its element count (as malloc does).
const HEADER: usize = 16;

/// Arrays we allocated and not yet freed, so that `llama_batch_free` frees only those
/// (a batch from `llama_batch_get_one`, a double free or a foreign pointer is logged and left).
static LIVE: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

fn layout<T>(n: usize) -> Option<Layout> {
    let bytes = n
        .checked_mul(std::mem::size_of::<T>())?
        .checked_add(HEADER)?;
    Layout::from_size_align(bytes, HEADER.max(std::mem::align_of::<T>())).ok()
}

/// A zeroed array of `n` T's that `free_array` can release; NULL when it cannot be allocated.
fn alloc_array<T>(n: usize) -> *mut T {
    let Some(l) = layout::<T>(n) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout has a nonzero size (HEADER > 0).
    let base = unsafe { alloc::alloc_zeroed(l) };
    if base.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `base` has HEADER + n * size_of::<T>() bytes, aligned for usize and T.
    let p = unsafe {
        base.cast::<usize>().write(n);
        base.add(HEADER).cast::<T>()
    };
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(p as usize);
    p
}

/// Frees an array from `alloc_array`; false (nothing done) for any other pointer.
fn free_array<T>(p: *mut T) -> bool {
    if p.is_null() {
        return true;
    }
    let known = LIVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .is_some_and(|s| s.remove(&(p as usize)));
    if !known {
        return false;
    }
    // SAFETY: `p` came from alloc_array::<T> (it was in LIVE), so HEADER bytes before it hold
    // the count it was made with, and that count gives back the same layout.
    unsafe {
        let base = p.cast::<u8>().sub(HEADER);
        let n = base.cast::<usize>().read();
        if let Some(l) = layout::<T>(n) {
            alloc::dealloc(base, l);
        }
    }
    true
}

fn empty_batch() -> llama_batch {
    llama_batch {
        n_tokens: 0,
        token: std::ptr::null_mut(),
        embd: std::ptr::null_mut(),
        pos: std::ptr::null_mut(),
        n_seq_id: std::ptr::null_mut(),
        seq_id: std::ptr::null_mut(),
        logits: std::ptr::null_mut(),
    }
}

fn free_batch(b: &llama_batch) -> bool {
    let mut ok = free_array(b.token) & free_array(b.embd) & free_array(b.pos);
    ok &= free_array(b.n_seq_id) & free_array(b.logits);
    if !b.seq_id.is_null() {
        // seq_id ends with a NULL sentinel (as the reference allocates it).
        let mut i = 0;
        loop {
            let known = LIVE
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_some_and(|s| s.contains(&(b.seq_id as usize)));
            if !known {
                ok = false;
                break;
            }
            // SAFETY: seq_id is our array (checked above) of n+1 pointers, the last NULL.
            let p = unsafe { *b.seq_id.add(i) };
            if p.is_null() {
                ok &= free_array(b.seq_id);
                break;
            }
            ok &= free_array(p);
            i += 1;
        }
    }
    ok
}

#[no_mangle]
pub extern "C" fn llama_batch_init(n_tokens_alloc: i32, embd: i32, n_seq_max: i32) -> llama_batch {
    ffi!(empty_batch(), || {
        if n_tokens_alloc < 0 || embd < 0 || n_seq_max < 0 {
            return Err(format!(
                "negative size (n_tokens {n_tokens_alloc}, embd {embd}, n_seq_max {n_seq_max})"
            ));
        }
        let n = n_tokens_alloc as usize;
        let mut b = empty_batch();
        if embd > 0 {
            b.embd = alloc_array::<f32>(n.checked_mul(embd as usize).ok_or("size overflow")?);
        } else {
            b.token = alloc_array::<llama_token>(n);
        }
        b.pos = alloc_array::<llama_pos>(n);
        b.n_seq_id = alloc_array::<i32>(n);
        b.seq_id = alloc_array::<*mut llama_seq_id>(n + 1);
        b.logits = alloc_array::<i8>(n);
        let arrays_null = [
            b.pos.is_null(),
            b.n_seq_id.is_null(),
            b.seq_id.is_null(),
            b.logits.is_null(),
            b.token.is_null() && b.embd.is_null(),
        ];
        let mut ok = !arrays_null.contains(&true);
        if ok {
            for i in 0..n {
                let ids = alloc_array::<llama_seq_id>(n_seq_max as usize);
                // SAFETY: seq_id has n + 1 entries; entry n stays NULL (the sentinel).
                unsafe { *b.seq_id.add(i) = ids };
                if ids.is_null() {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            free_batch(&b);
            return Err(format!("cannot allocate a batch of {n} tokens"));
        }
        Ok(b)
    })
}

#[no_mangle]
pub extern "C" fn llama_batch_get_one(tokens: *mut llama_token, n_tokens: i32) -> llama_batch {
    llama_batch {
        n_tokens,
        token: tokens,
        ..empty_batch()
    }
}

#[no_mangle]
pub extern "C" fn llama_batch_free(batch: llama_batch) {
    ffi!((), || {
        if free_batch(&batch) {
            Ok(())
        } else {
            Err("the batch holds arrays not made by llama_batch_init (or already freed): left as they are".into())
        }
    })
}

// ---- llama_batch_ext.

struct ExtToken {
    id: llama_token,
    seqs: SeqSet,
    pos: llama_pos,
    output: bool,
}

/// A batch built entry by entry for one context (its n_batch, n_seq_max and vocabulary).
pub struct llama_batch_ext {
    n_tokens_max: usize,
    n_seq_max: i32,
    n_vocab: i32,
    tokens: Vec<ExtToken>,
}

impl llama_batch_ext {
    fn add(&mut self, seq_id: llama_seq_id) -> i32 {
        if self.tokens.len() >= self.n_tokens_max {
            return -1;
        }
        if seq_id < 0 || seq_id >= self.n_seq_max {
            return -3;
        }
        self.tokens.push(ExtToken {
            id: LLAMA_TOKEN_NULL,
            seqs: SeqSet::one(seq_id as usize),
            pos: 0,
            output: false,
        });
        (self.tokens.len() - 1) as i32
    }

    fn get(&mut self, idx: i32) -> Option<&mut ExtToken> {
        usize::try_from(idx)
            .ok()
            .and_then(|i| self.tokens.get_mut(i))
    }
}

#[no_mangle]
pub unsafe extern "C" fn llama_batch_ext_init(ctx: *mut llama_context) -> *mut llama_batch_ext {
    with_handle!(&ctx, std::ptr::null_mut(), |c| {
        Ok(Box::into_raw(Box::new(llama_batch_ext {
            n_tokens_max: c.n_batch(),
            n_seq_max: c.n_seq_max() as i32,
            n_vocab: c.n_vocab as i32,
            tokens: Vec::new(),
        })))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_batch_ext_free(batch: *mut llama_batch_ext) {
    ffi!((), || {
        // SAFETY: batch is NULL or came from llama_batch_ext_init and is freed once.
        unsafe { guard::free_box(batch) };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_batch_ext_clear(batch: *mut llama_batch_ext) {
    with_handle!(&mut batch, (), |b| {
        b.tokens.clear();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_batch_ext_add(
    batch: *mut llama_batch_ext,
    seq_id: llama_seq_id,
) -> i32 {
    with_handle!(&mut batch, -1, |b| Ok(b.add(seq_id)))
}

#[no_mangle]
pub unsafe extern "C" fn llama_batch_ext_add_token(
    batch: *mut llama_batch_ext,
    seq_id: llama_seq_id,
    id: llama_token,
) -> i32 {
    with_handle!(&mut batch, -1, |b| {
        let idx = b.add(seq_id);
        if idx < 0 {
            return Ok(idx);
        }
        if id < 0 || id >= b.n_vocab {
            // The entry stays, without a token id, as in the reference.
            return Ok(-2);
        }
        b.tokens[idx as usize].id = id;
        Ok(idx)
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_batch_ext_add_embd(
    batch: *mut llama_batch_ext,
    seq_id: llama_seq_id,
    _embd: llama_embd,
) -> i32 {
    with_handle!(&mut batch, -1, |b| {
        let idx = b.add(seq_id);
        if idx < 0 {
            return Ok(idx);
        }
        guard::log(
            LOG_ERROR,
            "llama_batch_ext_add_embd: embedding inputs are not supported",
        );
        Ok(-2)
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_batch_ext_add_seq(
    batch: *mut llama_batch_ext,
    idx: i32,
    seq_id: llama_seq_id,
) -> bool {
    with_handle!(&mut batch, false, |b| Ok({
        let n_seq_max = b.n_seq_max;
        match b.get(idx) {
            Some(t) if seq_id >= 0 && seq_id < n_seq_max => {
                t.seqs.insert(seq_id as usize);
                true
            }
            _ => false,
        }
    }))
}

#[no_mangle]
pub unsafe extern "C" fn llama_batch_ext_set_embd_token(
    batch: *mut llama_batch_ext,
    _idx: i32,
    _embd: llama_embd,
) -> bool {
    with_handle!(&mut batch, false, |_| Ok({
        guard::log(
            LOG_ERROR,
            "llama_batch_ext_set_embd_token: embedding inputs are not supported",
        );
        false
    }))
}

#[no_mangle]
pub unsafe extern "C" fn llama_batch_ext_set_embd_state(
    batch: *mut llama_batch_ext,
    _idx: i32,
    _embd: llama_embd,
) -> bool {
    // The reference does not implement it either (returns false).
    with_handle!(&mut batch, false, |_| Ok(false))
}

#[no_mangle]
pub unsafe extern "C" fn llama_batch_ext_set_output_embd(
    batch: *mut llama_batch_ext,
    idx: i32,
    value: bool,
) -> bool {
    // SAFETY: forwarded C argument.
    unsafe { llama_batch_ext_set_output_logits(batch, idx, value) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_batch_ext_set_output_logits(
    batch: *mut llama_batch_ext,
    idx: i32,
    value: bool,
) -> bool {
    with_handle!(&mut batch, false, |b| Ok(match b.get(idx) {
        Some(t) => {
            t.output = value;
            true
        }
        None => false,
    }))
}

#[no_mangle]
pub unsafe extern "C" fn llama_batch_ext_set_pos(
    batch: *mut llama_batch_ext,
    idx: i32,
    pos: *const llama_pos,
) -> bool {
    let body = |b: &mut llama_batch_ext| {
        if pos.is_null() {
            return false;
        }
        match b.get(idx) {
            Some(t) => {
                // SAFETY: a token entry takes one position; pos points to at least one.
                t.pos = unsafe { *pos };
                true
            }
            None => false,
        }
    };
    with_handle!(&mut batch, false, |x| Ok((body)(x)))
}

/// Return values as llama_decode's.
#[no_mangle]
pub unsafe extern "C" fn llama_process(
    ctx: *mut llama_context,
    r#type: enum_llama_process_type,
    batch: *mut llama_batch_ext,
) -> i32 {
    let body = |c: &mut llama_context| -> Fallible<i32> {
        // SAFETY: batch is NULL or a live handle from llama_batch_ext_init.
        let b = unsafe { handle(batch.cast_const(), "batch") }?;
        if r#type == llama_process_type::LLAMA_PROCESS_TYPE_ENCODE as i32 {
            return Err("this model has no encoder (decoder-only): returns -1".into());
        }
        if r#type != llama_process_type::LLAMA_PROCESS_TYPE_DECODE as i32 {
            return Err(format!("unknown process type {type} (returns -1)", type = r#type));
        }
        if b.tokens.iter().any(|t| t.id == LLAMA_TOKEN_NULL) {
            return Err("batch has neither token ids nor embeddings (returns -1)".into());
        }
        let entries = Entries {
            tokens: b.tokens.iter().map(|t| t.id as u32).collect(),
            positions: b.tokens.iter().map(|t| t.pos).collect(),
            seqs: b.tokens.iter().map(|t| t.seqs).collect(),
            want_logits: b.tokens.iter().map(|t| t.output).collect(),
        };
        Ok(c.decode(&entries))
    };
    with_handle!(&mut ctx, -1, body)
}
