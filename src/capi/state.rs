//! llama_state_*: a context's state (KV cells with their keys and values, and the last
//! decode's outputs) to memory and to files, whole or one sequence at a time.
//!
//! The bytes are the engine's state format (`Context::state_write`), not llama.cpp's: a state
//! saved by one library is read back by the same library. Files carry llama.h's magic and
//! version words, then the prompt tokens, then the state.

use std::ffi::c_char;
use std::fs::File;
use std::io::{Read, Write};

use super::context::{llama_context, with_ctx_mut};
use super::guard::{c_slice, c_str, Fallible};
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
    let read = engine.state_read(dest, bytes).map_err(|e| e.to_string())?;
    if dest.is_none() {
        let n = engine.n_entries();
        c.copy_outputs(n);
    }
    Ok(read)
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
    // SAFETY: forwarded handle (llama.h contract).
    unsafe {
        with_ctx_mut("llama_state_get_size", ctx, 0, |c| {
            let engine = c.engine_mut()?;
            Ok(engine.state_size(None))
        })
    }
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
    // SAFETY: forwarded handle; dst holds `size` bytes (llama.h contract).
    unsafe {
        with_ctx_mut("llama_state_get_data", ctx, 0, |c| {
            copy_out(&state_bytes(c, None)?, dst, size)
        })
    }
}

/// The deprecated form without a size: llama.h says the buffer must hold
/// llama_state_get_size bytes.
#[no_mangle]
pub unsafe extern "C" fn llama_copy_state_data(ctx: *mut llama_context, dst: *mut u8) -> usize {
    // SAFETY: forwarded handle; dst holds llama_state_get_size bytes (llama.h contract).
    unsafe {
        with_ctx_mut("llama_copy_state_data", ctx, 0, |c| {
            let bytes = state_bytes(c, None)?;
            copy_out(&bytes, dst, bytes.len())
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_set_data(
    ctx: *mut llama_context,
    src: *const u8,
    size: usize,
) -> usize {
    // SAFETY: forwarded handle; src holds `size` bytes (llama.h contract).
    unsafe {
        with_ctx_mut("llama_state_set_data", ctx, 0, |c| {
            let bytes = c_slice(src, size, "src")?;
            restore(c, None, bytes)
        })
    }
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
    // SAFETY: forwarded handle (llama.h contract).
    unsafe { with_ctx_mut("llama_set_state_data", ctx, 0, body) }
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
    // SAFETY: forwarded handle; path is a C string; tokens holds n_token_count tokens.
    unsafe {
        with_ctx_mut("llama_state_save_file", ctx, false, |c| {
            let path = c_str(path_session, "path_session")?;
            let tokens = c_slice(tokens, n_token_count, "tokens")?;
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
    // SAFETY: forwarded handle; C strings and buffers as llama.h describes.
    unsafe {
        with_ctx_mut("llama_state_load_file", ctx, false, |c| {
            let path = c_str(path_session, "path_session")?;
            let (tokens, state) =
                read_file(path, LLAMA_SESSION_MAGIC, LLAMA_SESSION_VERSION as u32)?;
            tokens_out(&tokens, tokens_out_p, n_token_capacity, n_token_count_out)?;
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

// ---- One sequence.

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_get_size(
    ctx: *mut llama_context,
    seq_id: llama_seq_id,
) -> usize {
    // SAFETY: forwarded handle.
    unsafe { llama_state_seq_get_size_ext(ctx, seq_id, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_get_data(
    ctx: *mut llama_context,
    dst: *mut u8,
    size: usize,
    seq_id: llama_seq_id,
) -> usize {
    // SAFETY: forwarded C arguments.
    unsafe { llama_state_seq_get_data_ext(ctx, dst, size, seq_id, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_set_data(
    ctx: *mut llama_context,
    src: *const u8,
    size: usize,
    dest_seq_id: llama_seq_id,
) -> usize {
    // SAFETY: forwarded C arguments.
    unsafe { llama_state_seq_set_data_ext(ctx, src, size, dest_seq_id, 0) }
}

/// The flags change nothing here: this cache has no sliding-window or recurrent part (the
/// PARTIAL_ONLY state is the whole one) and lives in host memory (ON_DEVICE is moot).
#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_get_size_ext(
    ctx: *mut llama_context,
    seq_id: llama_seq_id,
    _flags: llama_state_seq_flags,
) -> usize {
    // SAFETY: forwarded handle.
    unsafe {
        with_ctx_mut("llama_state_seq_get_size", ctx, 0, |c| {
            Ok(state_bytes(c, seq_arg(seq_id))?.len())
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_get_data_ext(
    ctx: *mut llama_context,
    dst: *mut u8,
    size: usize,
    seq_id: llama_seq_id,
    _flags: llama_state_seq_flags,
) -> usize {
    // SAFETY: forwarded handle; dst holds `size` bytes.
    unsafe {
        with_ctx_mut("llama_state_seq_get_data", ctx, 0, |c| {
            copy_out(&state_bytes(c, seq_arg(seq_id))?, dst, size)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_set_data_ext(
    ctx: *mut llama_context,
    src: *const u8,
    size: usize,
    dest_seq_id: llama_seq_id,
    _flags: llama_state_seq_flags,
) -> usize {
    // SAFETY: forwarded handle; src holds `size` bytes.
    unsafe {
        with_ctx_mut("llama_state_seq_set_data", ctx, 0, |c| {
            let bytes = c_slice(src, size, "src")?;
            restore(c, Some(dest_seq_id), bytes)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn llama_state_seq_save_file(
    ctx: *mut llama_context,
    filepath: *const c_char,
    seq_id: llama_seq_id,
    tokens: *const llama_token,
    n_token_count: usize,
) -> usize {
    // SAFETY: forwarded handle; C string and token array as llama.h describes.
    unsafe {
        with_ctx_mut("llama_state_seq_save_file", ctx, 0, |c| {
            let path = c_str(filepath, "filepath")?;
            let tokens = c_slice(tokens, n_token_count, "tokens")?;
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
    // SAFETY: forwarded handle; C string and buffers as llama.h describes.
    unsafe {
        with_ctx_mut("llama_state_seq_load_file", ctx, 0, |c| {
            let path = c_str(filepath, "filepath")?;
            let (tokens, state) =
                read_file(path, LLAMA_STATE_SEQ_MAGIC, LLAMA_STATE_SEQ_VERSION as u32)?;
            if tokens_out_p.is_null() {
                // Only the count is asked for; no state is loaded (llama.h).
                if let Some(n) = n_token_count_out.as_mut() {
                    *n = tokens.len();
                }
                return Ok(12 + 4 * tokens.len() + state.len());
            }
            tokens_out(&tokens, tokens_out_p, n_token_capacity, n_token_count_out)?;
            let read = restore(c, Some(dest_seq_id), &state)?;
            Ok(12 + 4 * tokens.len() + read)
        })
    }
}
