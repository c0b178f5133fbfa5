//! llama_state_*: a context's state (KV cells with their keys and values, and the last
//! decode's outputs) to memory and to files, whole or one sequence at a time.
//!
//! The bytes are the engine's state format (`Context::state_write`), not llama.cpp's: a state
//! saved by one library is read back by the same library. Files carry llama.h's magic and
//! version words, then the prompt tokens, then the state.

use std::ffi::c_char;
use std::fs::File;
use std::io::{Read, Write};

use super::context::llama_context;
use super::guard::{c_slice, c_str, with_handle, Fallible};
use super::types::*;

/// Most tokens a state file may list (a bound on what a hostile file can make us allocate).
const MAX_FILE_TOKENS: u64 = 1 << 24;

fn seq_arg(seq_id: llama_seq_id) -> Option<i32> {
    Some(seq_id)
}

/// The state bytes of the whole context (`seq` None) or one sequence.
fn state_bytes(c: &mut llama_context, seq: Option<i32>) -> Fallible<Vec<u8>> {
    let engine = c.engine_mut()?;
    if let Some(s) = seq {
        if s < 0 || s as usize >= engine.n_seq_max() {
            return Err(format!(
                "seq_id {s} is outside 0..{} (n_seq_max)",
                engine.n_seq_max()
            ));
        }
    }
    let mut out = Vec::with_capacity(engine.state_size(seq));
    engine.state_write(seq, &mut out);
    Ok(out)
}

/// Restores state bytes; returns the bytes read.
fn restore(c: &mut llama_context, dest: Option<i32>, bytes: &[u8]) -> Fallible<usize> {
    let engine = c.engine_mut()?;
    engine.state_read(dest, bytes).map_err(|e| e.to_string())
}

/// Copies `bytes` into C's buffer of `size` bytes, or fails when it is too small.
///
/// # Safety
/// `dst` is NULL or points to `size` writable bytes.
unsafe fn copy_out(bytes: &[u8], dst: *mut u8, size: usize) -> Fallible<usize> {
    if dst.is_null() {
        return Err("dst is NULL".into());
    }
    if size < bytes.len() {
        return Err(format!(
            "buffer of {size} bytes is too small for a state of {} bytes",
            bytes.len()
        ));
    }
    // SAFETY: dst has room for `size` >= bytes.len() bytes (caller's contract), and a C buffer
    // cannot overlap our freshly made Vec.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
    Ok(bytes.len())
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_get_size(ctx: *mut llama_context) -> usize {
    with_handle!(&mut ctx, 0, |c| {
        let engine = c.engine_mut()?;
        Ok(engine.state_size(None))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_get_state_size(ctx: *mut llama_context) -> usize {
    // SAFETY: forwarded handle.
    unsafe { llama_state_get_size(ctx) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_get_data(
    ctx: *mut llama_context,
    dst: *mut u8,
    size: usize,
) -> usize {
    with_handle!(&mut ctx, 0, |c| {
        // SAFETY: dst holds `size` writable bytes (llama.h contract).
        unsafe { copy_out(&state_bytes(c, None)?, dst, size) }
    })
}

/// The deprecated form without a size: llama.h says the buffer must hold
/// llama_state_get_size bytes.
#[no_mangle]
pub unsafe extern "C" fn llama_copy_state_data(ctx: *mut llama_context, dst: *mut u8) -> usize {
    with_handle!(&mut ctx, 0, |c| {
        let bytes = state_bytes(c, None)?;
        // SAFETY: dst holds llama_state_get_size bytes (llama.h contract).
        unsafe { copy_out(&bytes, dst, bytes.len()) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_set_data(
    ctx: *mut llama_context,
    src: *const u8,
    size: usize,
) -> usize {
    with_handle!(&mut ctx, 0, |c| {
        // SAFETY: src holds `size` readable bytes (llama.h contract).
        let bytes = unsafe { c_slice(src, size, "src") }?;
        restore(c, None, bytes)
    })
}

/// The deprecated form without a size: the state's own counts say how long it is (peeked
/// step by step, never past the end of a complete state, which C promises here).
#[no_mangle]
pub unsafe extern "C" fn llama_set_state_data(ctx: *mut llama_context, src: *const u8) -> usize {
    let body = |c: &mut llama_context| {
        if src.is_null() {
            return Err("src is NULL".to_string());
        }
        let engine = c.engine_mut()?;
        let len = engine
            .state_len(&mut |at, n| {
                // SAFETY: the engine peeks only inside the state whose earlier counts it has
                // checked, and C promises the whole state is there.
                unsafe { std::slice::from_raw_parts(src.add(at), n) }.to_vec()
            })
            .map_err(|e| e.to_string())?;
        // SAFETY: as above: `len` bytes of a complete state.
        let bytes = unsafe { std::slice::from_raw_parts(src, len) };
        restore(c, None, bytes)
    };
    with_handle!(&mut ctx, 0, body)
}

// ---- Files: magic u32 | version u32 | n_tokens u32 | tokens [i32] | state bytes.

fn write_file(
    path: &str,
    magic: u32,
    version: u32,
    tokens: &[i32],
    state: &[u8],
) -> Fallible<usize> {
    let mut f = File::create(path).map_err(|e| format!("cannot create {path}: {e}"))?;
    let mut head = Vec::with_capacity(12 + 4 * tokens.len());
    head.extend_from_slice(&magic.to_le_bytes());
    head.extend_from_slice(&version.to_le_bytes());
    head.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
    for t in tokens {
        head.extend_from_slice(&t.to_le_bytes());
    }
    f.write_all(&head)
        .and_then(|_| f.write_all(state))
        .map_err(|e| format!("cannot write {path}: {e}"))?;
    Ok(head.len() + state.len())
}

/// A state file's tokens and state bytes, checked against its magic and version.
fn read_file(path: &str, magic: u32, version: u32) -> Fallible<(Vec<i32>, Vec<u8>)> {
    let mut f = File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let mut head = [0u8; 12];
    f.read_exact(&mut head)
        .map_err(|_| format!("{path} is too short to be a state file"))?;
    let word = |i: usize| u32::from_le_bytes(head[4 * i..4 * i + 4].try_into().unwrap());
    if word(0) != magic || word(1) != version {
        return Err(format!(
            "{path} is not a state file of this library (magic {:#x}, version {})",
            word(0),
            word(1)
        ));
    }
    let n = word(2) as u64;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if n > MAX_FILE_TOKENS || 12 + 4 * n > len {
        return Err(format!("{path} lists {n} tokens, more than it holds"));
    }
    let mut toks = vec![0u8; 4 * n as usize];
    f.read_exact(&mut toks)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    let tokens = toks
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let mut state = Vec::with_capacity((len - 12 - 4 * n) as usize);
    f.read_to_end(&mut state)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok((tokens, state))
}

/// Hands a file's tokens to C: the count always (when asked), the tokens when they fit.
///
/// # Safety
/// `tokens_out` is NULL or holds `capacity` tokens; `count_out` is NULL or writable.
unsafe fn tokens_out(
    tokens: &[i32],
    out: *mut llama_token,
    capacity: usize,
    count_out: *mut usize,
) -> Fallible<()> {
    // SAFETY: count_out is NULL or writable (caller's contract).
    if let Some(c) = unsafe { count_out.as_mut() } {
        *c = tokens.len();
    }
    if tokens.len() > capacity {
        return Err(format!(
            "the file holds {} tokens, more than the capacity {capacity}",
            tokens.len()
        ));
    }
    if !tokens.is_empty() {
        if out.is_null() {
            return Err("tokens_out is NULL".into());
        }
        // SAFETY: out holds `capacity` >= tokens.len() tokens (caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(tokens.as_ptr(), out, tokens.len()) };
    }
    Ok(())
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_save_file(
    ctx: *mut llama_context,
    path_session: *const c_char,
    tokens: *const llama_token,
    n_token_count: usize,
) -> bool {
    with_handle!(&mut ctx, false, |c| {
        // SAFETY: a C string and an array of n_token_count tokens (llama.h contract).
        let (path, tokens) = unsafe {
            (
                c_str(path_session, "path_session")?,
                c_slice(tokens, n_token_count, "tokens")?,
            )
        };
        let state = state_bytes(c, None)?;
        write_file(
            path,
            LLAMA_SESSION_MAGIC,
            LLAMA_SESSION_VERSION as u32,
            tokens,
            &state,
        )?;
        Ok(true)
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_save_session_file(
    ctx: *mut llama_context,
    path_session: *const c_char,
    tokens: *const llama_token,
    n_token_count: usize,
) -> bool {
    // SAFETY: forwarded C arguments.
    unsafe { llama_state_save_file(ctx, path_session, tokens, n_token_count) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_load_file(
    ctx: *mut llama_context,
    path_session: *const c_char,
    tokens_out_p: *mut llama_token,
    n_token_capacity: usize,
    n_token_count_out: *mut usize,
) -> bool {
    with_handle!(&mut ctx, false, |c| {
        // SAFETY: path_session is NULL or a C string (llama.h contract).
        let path = unsafe { c_str(path_session, "path_session") }?;
        let (tokens, state) = read_file(path, LLAMA_SESSION_MAGIC, LLAMA_SESSION_VERSION as u32)?;
        // SAFETY: the token buffer holds n_token_capacity tokens, the count is NULL or
        // a size_t (llama.h contract).
        unsafe { tokens_out(&tokens, tokens_out_p, n_token_capacity, n_token_count_out) }?;
        let read = restore(c, None, &state)?;
        if read != state.len() {
            return Err(format!(
                "{path}: {} bytes after the state",
                state.len() - read
            ));
        }
        Ok(true)
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_load_session_file(
    ctx: *mut llama_context,
    path_session: *const c_char,
    tokens_out: *mut llama_token,
    n_token_capacity: usize,
    n_token_count_out: *mut usize,
) -> bool {
    // SAFETY: forwarded C arguments.
    unsafe {
        llama_state_load_file(
            ctx,
            path_session,
            tokens_out,
            n_token_capacity,
            n_token_count_out,
        )
    }
}

// ---- One sequence. The `_ext` forms have their own bodies so that their log lines carry
// their own names.

/// Copies the state of sequence `seq` into C's buffer.
///
/// # Safety
/// `dst` is NULL or points to `size` writable bytes.
unsafe fn seq_get_data(
    c: &mut llama_context,
    dst: *mut u8,
    size: usize,
    seq: i32,
) -> Fallible<usize> {
    // SAFETY: per this function's contract.
    unsafe { copy_out(&state_bytes(c, seq_arg(seq))?, dst, size) }
}

/// Restores a sequence state from C's buffer into sequence `dest`.
///
/// # Safety
/// `src` is NULL or points to `size` readable bytes.
unsafe fn seq_set_data(
    c: &mut llama_context,
    src: *const u8,
    size: usize,
    dest: i32,
) -> Fallible<usize> {
    // SAFETY: per this function's contract.
    let bytes = unsafe { c_slice(src, size, "src") }?;
    restore(c, Some(dest), bytes)
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_get_size(
    ctx: *mut llama_context,
    seq_id: llama_seq_id,
) -> usize {
    with_handle!(&mut ctx, 0, |c| Ok(state_bytes(c, seq_arg(seq_id))?.len()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_get_data(
    ctx: *mut llama_context,
    dst: *mut u8,
    size: usize,
    seq_id: llama_seq_id,
) -> usize {
    // SAFETY: dst holds `size` writable bytes (llama.h contract).
    with_handle!(&mut ctx, 0, |c| unsafe {
        seq_get_data(c, dst, size, seq_id)
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_set_data(
    ctx: *mut llama_context,
    src: *const u8,
    size: usize,
    dest_seq_id: llama_seq_id,
) -> usize {
    // SAFETY: src holds `size` readable bytes (llama.h contract).
    with_handle!(&mut ctx, 0, |c| unsafe {
        seq_set_data(c, src, size, dest_seq_id)
    })
}

/// The flags change nothing here: this cache has no sliding-window or recurrent part (the
/// PARTIAL_ONLY state is the whole one) and lives in host memory (ON_DEVICE is moot).
#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_get_size_ext(
    ctx: *mut llama_context,
    seq_id: llama_seq_id,
    _flags: llama_state_seq_flags,
) -> usize {
    with_handle!(&mut ctx, 0, |c| Ok(state_bytes(c, seq_arg(seq_id))?.len()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_get_data_ext(
    ctx: *mut llama_context,
    dst: *mut u8,
    size: usize,
    seq_id: llama_seq_id,
    _flags: llama_state_seq_flags,
) -> usize {
    // SAFETY: dst holds `size` writable bytes (llama.h contract).
    with_handle!(&mut ctx, 0, |c| unsafe {
        seq_get_data(c, dst, size, seq_id)
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_set_data_ext(
    ctx: *mut llama_context,
    src: *const u8,
    size: usize,
    dest_seq_id: llama_seq_id,
    _flags: llama_state_seq_flags,
) -> usize {
    // SAFETY: src holds `size` readable bytes (llama.h contract).
    with_handle!(&mut ctx, 0, |c| unsafe {
        seq_set_data(c, src, size, dest_seq_id)
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_save_file(
    ctx: *mut llama_context,
    filepath: *const c_char,
    seq_id: llama_seq_id,
    tokens: *const llama_token,
    n_token_count: usize,
) -> usize {
    with_handle!(&mut ctx, 0, |c| {
        // SAFETY: a C string and an array of n_token_count tokens (llama.h contract).
        let (path, tokens) = unsafe {
            (
                c_str(filepath, "filepath")?,
                c_slice(tokens, n_token_count, "tokens")?,
            )
        };
        let state = state_bytes(c, seq_arg(seq_id))?;
        write_file(
            path,
            LLAMA_STATE_SEQ_MAGIC,
            LLAMA_STATE_SEQ_VERSION as u32,
            tokens,
            &state,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_load_file(
    ctx: *mut llama_context,
    filepath: *const c_char,
    dest_seq_id: llama_seq_id,
    tokens_out_p: *mut llama_token,
    n_token_capacity: usize,
    n_token_count_out: *mut usize,
) -> usize {
    with_handle!(&mut ctx, 0, |c| {
        // SAFETY: filepath is NULL or a C string (llama.h contract).
        let path = unsafe { c_str(filepath, "filepath") }?;
        let (tokens, state) =
            read_file(path, LLAMA_STATE_SEQ_MAGIC, LLAMA_STATE_SEQ_VERSION as u32)?;
        if tokens_out_p.is_null() {
            // Only the count is asked for; no state is loaded (llama.h).
            // SAFETY: n_token_count_out is NULL or points to a size_t (llama.h contract).
            if let Some(n) = unsafe { n_token_count_out.as_mut() } {
                *n = tokens.len();
            }
            return Ok(12 + 4 * tokens.len() + state.len());
        }
        // SAFETY: the token buffer holds n_token_capacity tokens, the count is NULL or
        // a size_t (llama.h contract).
        unsafe { tokens_out(&tokens, tokens_out_p, n_token_capacity, n_token_count_out) }?;
        let read = restore(c, Some(dest_seq_id), &state)?;
        Ok(12 + 4 * tokens.len() + read)
    })
}
