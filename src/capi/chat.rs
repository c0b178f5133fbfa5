//! Chat templates: `llama_chat_apply_template` and `llama_chat_builtin_templates` over
//! src/tokenizer/chat.rs.

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

use super::guard::{self, ffi};
use super::types::*;
use crate::tokenizer::chat;

/// Formats the messages with a template (a builtin name or a Jinja template it recognises;
/// NULL means "chatml"). Returns the full length of the prompt, copying at most `length`
/// bytes to `buf` as strncpy does; -1 for an unknown template or a bad argument.
#[no_mangle]
pub unsafe extern "C" fn llama_chat_apply_template(
    tmpl: *const c_char,
    msgs: *const llama_chat_message,
    n_msg: usize,
    add_ass: bool,
    buf: *mut c_char,
    length: i32,
) -> i32 {
    ffi!(-1, || {
        let tmpl: &[u8] = if tmpl.is_null() {
            b"chatml"
        } else {
            // SAFETY: a non-NULL tmpl is a C string (llama.h contract).
            unsafe { guard::c_bytes(tmpl, "tmpl") }?
        };
        // SAFETY: msgs holds n_msg messages (llama.h contract).
        let list = unsafe { guard::c_slice(msgs, n_msg, "chat") }?;
        let mut pairs: Vec<(&[u8], &[u8])> = Vec::with_capacity(list.len());
        for m in list {
            // SAFETY: each message holds two C strings (llama.h contract).
            let (role, content) = unsafe {
                (
                    guard::c_bytes(m.role, "chat[i].role")?,
                    guard::c_bytes(m.content, "chat[i].content")?,
                )
            };
            pairs.push((role, content));
        }
        let out = chat::apply_template_bytes(tmpl, &pairs, add_ass).map_err(|e| e.to_string())?;
        let n = i32::try_from(out.len()).map_err(|_| "prompt longer than i32::MAX")?;
        if !buf.is_null() && length > 0 {
            let cap = length as usize;
            let copy = out.len().min(cap);
            // SAFETY: buf has `length` writable bytes (llama.h contract); strncpy pads with NUL.
            unsafe {
                std::ptr::copy_nonoverlapping(out.as_ptr(), buf.cast::<u8>(), copy);
                std::ptr::write_bytes(buf.add(copy), 0, cap - copy);
            }
        }
        Ok(n)
    })
}

/// Writes up to `len` template names to `output`; returns how many there are in all.
#[no_mangle]
pub unsafe extern "C" fn llama_chat_builtin_templates(
    output: *mut *const c_char,
    len: usize,
) -> i32 {
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    ffi!(-1, || {
        let names = NAMES.get_or_init(|| {
            chat::builtin_templates()
                .iter()
                .map(|n| CString::new(*n).unwrap_or_default())
                .collect()
        });
        if len > 0 && output.is_null() {
            return Err("output is NULL".into());
        }
        for (i, name) in names.iter().take(len).enumerate() {
            // SAFETY: output has room for len pointers (llama.h contract), i < len.
            unsafe { *output.add(i) = name.as_ptr() };
        }
        Ok(names.len() as i32)
    })
}
