//! Chat templates: arbitrary messages and template names (the builtin names, arbitrary bytes,
//! NULL) through `llama_chat_apply_template`, with buffers of every size. The returned length
//! must not depend on the buffer, and what is copied must be the prompt's prefix.

#![no_main]

use std::ffi::{c_char, CStr, CString};
use std::sync::OnceLock;

use bitnet::capi::*;
use bitnet_fuzz::*;
use libfuzzer_sys::fuzz_target;

fn builtin_names() -> &'static [CString] {
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    NAMES.get_or_init(|| {
        // SAFETY: NULL output with length 0 asks for the count; then a buffer of that size.
        unsafe {
            let n = llama_chat_builtin_templates(std::ptr::null_mut(), 0);
            let mut out = vec![std::ptr::null::<c_char>(); n as usize];
            llama_chat_builtin_templates(out.as_mut_ptr(), out.len());
            out.iter().map(|&p| CStr::from_ptr(p).to_owned()).collect()
        }
    })
}

fuzz_target!(init: quiet(), |data: &[u8]| {
    let names = builtin_names();
    let mut input = Input::new(data);
    let sel = input.u8() as usize;
    let custom;
    let tmpl: *const c_char = match sel % 4 {
        0 => std::ptr::null(),
        1 | 2 => names[(sel / 4) % names.len()].as_ptr(),
        _ => {
            let n = input.u16() as usize % 16384;
            custom = c_string(input.bytes(n));
            custom.as_ptr()
        }
    };
    let add_ass = input.bool();
    let n_msg = input.u8() as usize % 16;
    let strings: Vec<(CString, CString)> = (0..n_msg)
        .map(|_| {
            let role = match input.u8() % 5 {
                0 => c"system".to_owned(),
                1 => c"user".to_owned(),
                2 => c"assistant".to_owned(),
                3 => c"tool".to_owned(),
                _ => c_string(input.chunk()),
            };
            (role, c_string(input.chunk()))
        })
        .collect();
    let msgs: Vec<llama_chat_message> = strings
        .iter()
        .map(|(r, c)| llama_chat_message { role: r.as_ptr(), content: c.as_ptr() })
        .collect();
    let length = input.i32_near(300);
    // SAFETY: msgs holds n_msg messages of live C strings; buf holds max(length, 0) bytes.
    unsafe {
        let full = llama_chat_apply_template(tmpl, msgs.as_ptr(), msgs.len(), add_ass, std::ptr::null_mut(), 0);
        if full < 0 {
            return;
        }
        let mut whole = vec![0u8; full as usize + 1];
        let again = llama_chat_apply_template(tmpl, msgs.as_ptr(), msgs.len(), add_ass, whole.as_mut_ptr().cast(), whole.len() as i32);
        assert_eq!(full, again, "the length depends on the buffer");
        if (0..=1 << 16).contains(&length) {
            let mut buf = vec![0xAAu8; length as usize];
            let n = llama_chat_apply_template(tmpl, msgs.as_ptr(), msgs.len(), add_ass, buf.as_mut_ptr().cast(), length);
            assert_eq!(n, full);
            let copied = (full as usize).min(buf.len());
            assert_eq!(&buf[..copied], &whole[..copied], "the copy is not the prompt's prefix");
        }
    }
});
