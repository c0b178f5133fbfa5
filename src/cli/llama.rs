//! The C API as the CLI uses it: owned handles over `bitnet::capi`'s `llama_*` exports, called
//! exactly as a C program calls libllama (no internal engine API here). Handles are freed on
//! drop; every failure becomes an `Error` carrying the library's own log line.

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Mutex;

use bitnet::capi::*;
use bitnet::{Error, Result};

/// The last error (or warning) line the library logged, for our own one-line error messages.
static LAST_LOG_ERROR: Mutex<String> = Mutex::new(String::new());

/// Log callback: errors and warnings are kept for `last_error` (and warnings shown); the
/// informational lines are dropped unless `verbose`.
unsafe extern "C" fn quiet_log(
    level: enum_ggml_log_level,
    text: *const c_char,
    user_data: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: the library passes a NUL-terminated string valid during the call.
    let line = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let verbose = !user_data.is_null();
    let is_error = level == ggml_log_level::GGML_LOG_LEVEL_ERROR as enum_ggml_log_level;
    let is_warn = level == ggml_log_level::GGML_LOG_LEVEL_WARN as enum_ggml_log_level;
    if is_error || is_warn {
        let mut last = LAST_LOG_ERROR.lock().unwrap_or_else(|e| e.into_inner());
        *last = line.trim_end().to_string();
    }
    if verbose || is_warn {
        eprint!("{line}");
    }
}

/// Routes the library's log through `quiet_log` (all of it to stderr when `verbose`).
pub fn init(verbose: bool) {
    let user_data = if verbose {
        std::ptr::NonNull::<u8>::dangling()
            .as_ptr()
            .cast::<c_void>()
    } else {
        std::ptr::null_mut()
    };
    // SAFETY: quiet_log has the ggml_log_callback signature; the user-data pointer is only
    // compared with NULL, never dereferenced.
    unsafe { llama_log_set(Some(quiet_log), user_data) };
    llama_backend_init();
    default_sigpipe();
}

/// Lets a closed stdout (`bitnet run ... | head`) end the process quietly, as it ends a C
/// program, instead of Rust's ignored SIGPIPE turning every later write into an error.
#[cfg(unix)]
fn default_sigpipe() {
    extern "C" {
        fn signal(signum: std::ffi::c_int, handler: usize) -> usize;
    }
    const SIGPIPE: std::ffi::c_int = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: installing the default action for SIGPIPE touches no Rust state; the process has
    // no handler of its own for it.
    unsafe { signal(SIGPIPE, SIG_DFL) };
}

#[cfg(not(unix))]
fn default_sigpipe() {}

/// `what` failed: the message with the library's last logged error appended.
fn failed(what: &str) -> Error {
    let last = std::mem::take(&mut *LAST_LOG_ERROR.lock().unwrap_or_else(|e| e.into_inner()));
    if last.is_empty() {
        Error::bad_input(what.to_string())
    } else {
        Error::bad_input(format!("{what}: {last}"))
    }
}

fn c_string(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::bad_input(format!("{what} contains a NUL byte")))
}

/// A loaded model (`llama_model_load_from_file` / `llama_model_free`).
pub struct Model {
    ptr: *mut llama_model,
}

impl Model {
    pub fn load(path: &str, vocab_only: bool) -> Result<Model> {
        let c_path = c_string(path, "model path")?;
        let mut params = llama_model_default_params();
        params.vocab_only = vocab_only;
        // SAFETY: c_path is a NUL-terminated string alive for the call; params is a valid
        // struct by value.
        let ptr = unsafe { llama_model_load_from_file(c_path.as_ptr(), params) };
        if ptr.is_null() {
            return Err(failed(&format!("cannot load model {path}")));
        }
        Ok(Model { ptr })
    }

    pub fn vocab(&self) -> Vocab<'_> {
        // SAFETY: self.ptr is a live model; the vocab lives as long as the model (borrowed).
        let ptr = unsafe { llama_model_get_vocab(self.ptr) };
        Vocab {
            ptr,
            _model: std::marker::PhantomData,
        }
    }

    /// A metadata value as text (`llama_model_meta_val_str`), None when absent.
    pub fn meta(&self, key: &str) -> Option<String> {
        let c_key = CString::new(key).ok()?;
        // SAFETY: NULL buffer and size 0 ask only for the length.
        let n =
            unsafe { llama_model_meta_val_str(self.ptr, c_key.as_ptr(), std::ptr::null_mut(), 0) };
        if n < 0 {
            return None;
        }
        let mut buf = vec![0u8; n as usize + 1];
        // SAFETY: buf has buf.len() writable bytes; the result is NUL-terminated (snprintf).
        unsafe {
            llama_model_meta_val_str(self.ptr, c_key.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        };
        buf.truncate(n as usize);
        Some(String::from_utf8_lossy(&buf).into_owned())
    }

    /// `llama_model_desc`: e.g. "bitnet ?B TQ2_0 - 2.06 bpw".
    pub fn desc(&self) -> String {
        let mut buf = [0u8; 256];
        // SAFETY: buf has 256 writable bytes; the result is NUL-terminated (snprintf).
        let n = unsafe { llama_model_desc(self.ptr, buf.as_mut_ptr().cast(), buf.len()) };
        let n = (n.max(0) as usize).min(buf.len() - 1);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// (n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_params, size in bytes).
    pub fn shape(&self) -> ModelShape {
        // SAFETY: self.ptr is a live model for all these read-only queries.
        unsafe {
            ModelShape {
                n_ctx_train: llama_model_n_ctx_train(self.ptr),
                n_embd: llama_model_n_embd(self.ptr),
                n_layer: llama_model_n_layer(self.ptr),
                n_head: llama_model_n_head(self.ptr),
                n_head_kv: llama_model_n_head_kv(self.ptr),
                n_params: llama_model_n_params(self.ptr),
                n_bytes: llama_model_size(self.ptr),
            }
        }
    }

    /// The model's chat template (`tokenizer.chat_template`), None when it has none.
    pub fn chat_template(&self) -> Option<CString> {
        // SAFETY: NULL name asks for the default template; the returned string (if any) is
        // owned by the model, which outlives this copy.
        let p = unsafe { llama_model_chat_template(self.ptr, std::ptr::null()) };
        if p.is_null() {
            return None;
        }
        // SAFETY: a non-NULL result is a NUL-terminated string owned by the live model.
        Some(unsafe { CStr::from_ptr(p) }.to_owned())
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: self.ptr came from llama_model_load_from_file and is freed once; every
        // Context borrowing it has been dropped first (lifetimes).
        unsafe { llama_model_free(self.ptr) };
    }
}

pub struct ModelShape {
    pub n_ctx_train: i32,
    pub n_embd: i32,
    pub n_layer: i32,
    pub n_head: i32,
    pub n_head_kv: i32,
    pub n_params: u64,
    pub n_bytes: u64,
}

/// The model's vocabulary (borrowed from its model).
#[derive(Clone, Copy)]
pub struct Vocab<'m> {
    ptr: *const llama_vocab,
    _model: std::marker::PhantomData<&'m Model>,
}

impl Vocab<'_> {
    pub fn n_tokens(&self) -> i32 {
        // SAFETY: self.ptr is the live model's vocab.
        unsafe { llama_vocab_n_tokens(self.ptr) }
    }

    pub fn is_eog(&self, token: llama_token) -> bool {
        // SAFETY: as above.
        unsafe { llama_vocab_is_eog(self.ptr, token) }
    }

    /// `llama_tokenize`, growing the buffer when the first guess is too small.
    pub fn tokenize(
        &self,
        text: &[u8],
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<llama_token>> {
        let text_len = i32::try_from(text.len()).map_err(|_| Error::bad_input("text too long"))?;
        let mut tokens = vec![0; text.len() + 2];
        for _ in 0..2 {
            // SAFETY: text holds text_len bytes; tokens has tokens.len() writable slots.
            let n = unsafe {
                llama_tokenize(
                    self.ptr,
                    text.as_ptr().cast(),
                    text_len,
                    tokens.as_mut_ptr(),
                    tokens.len() as i32,
                    add_special,
                    parse_special,
                )
            };
            if n == i32::MIN {
                return Err(failed("llama_tokenize failed"));
            }
            if n >= 0 {
                tokens.truncate(n as usize);
                return Ok(tokens);
            }
            tokens.resize((-n) as usize, 0);
        }
        Err(failed(
            "llama_tokenize: the needed size changed between calls",
        ))
    }

    /// `llama_token_to_piece` (no lstrip): the bytes the token reads as in output.
    pub fn piece(&self, token: llama_token, special: bool) -> Vec<u8> {
        let mut buf = vec![0u8; 64];
        for _ in 0..2 {
            // SAFETY: buf has buf.len() writable bytes.
            let n = unsafe {
                llama_token_to_piece(
                    self.ptr,
                    token,
                    buf.as_mut_ptr().cast(),
                    buf.len() as i32,
                    0,
                    special,
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return buf;
            }
            buf.resize((-n) as usize, 0);
        }
        Vec::new()
    }

    /// `llama_detokenize`.
    pub fn detokenize(
        &self,
        tokens: &[llama_token],
        remove_special: bool,
        unparse_special: bool,
    ) -> Vec<u8> {
        let mut buf = vec![0u8; tokens.len() * 8 + 16];
        for _ in 0..2 {
            // SAFETY: tokens holds tokens.len() ids; buf has buf.len() writable bytes.
            let n = unsafe {
                llama_detokenize(
                    self.ptr,
                    tokens.as_ptr(),
                    tokens.len() as i32,
                    buf.as_mut_ptr().cast(),
                    buf.len() as i32,
                    remove_special,
                    unparse_special,
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return buf;
            }
            buf.resize((-n) as usize, 0);
        }
        Vec::new()
    }
}

/// An inference context over a model (`llama_init_from_model` / `llama_free`).
pub struct Context<'m> {
    ptr: *mut llama_context,
    n_batch: usize,
    n_vocab: usize,
    _model: std::marker::PhantomData<&'m Model>,
}

impl<'m> Context<'m> {
    /// n_ctx 0: the model's training context; n_threads 0: the library's default.
    pub fn new(model: &'m Model, n_ctx: u32, n_threads: i32) -> Result<Context<'m>> {
        let mut params = llama_context_default_params();
        params.n_ctx = n_ctx;
        params.n_batch = if n_ctx > 0 {
            n_ctx.min(params.n_batch)
        } else {
            params.n_batch
        };
        if n_threads > 0 {
            params.n_threads = n_threads;
            params.n_threads_batch = n_threads;
        }
        params.no_perf = false;
        // SAFETY: model.ptr is a live model that outlives the context ('m); params by value.
        let ptr = unsafe { llama_init_from_model(model.ptr, params) };
        if ptr.is_null() {
            return Err(failed("cannot create a context"));
        }
        // SAFETY: ptr is the live context just made.
        let n_batch = unsafe { llama_n_batch(ptr) }.max(1) as usize;
        let n_vocab = model.vocab().n_tokens().max(0) as usize;
        Ok(Context {
            ptr,
            n_batch,
            n_vocab,
            _model: std::marker::PhantomData,
        })
    }

    pub fn n_ctx(&self) -> u32 {
        // SAFETY: live context.
        unsafe { llama_n_ctx(self.ptr) }
    }

    pub fn raw(&self) -> *mut llama_context {
        self.ptr
    }

    /// The next position of sequence 0 (the number of tokens its KV cache holds).
    pub fn n_past(&self) -> i32 {
        // SAFETY: live context; the memory handle belongs to it.
        let pos_max = unsafe { llama_memory_seq_pos_max(llama_get_memory(self.ptr), 0) };
        pos_max + 1
    }

    /// Decodes `tokens` after what the cache holds (`llama_batch_get_one`, split at n_batch),
    /// with logits for the last one.
    pub fn decode(&mut self, tokens: &[llama_token]) -> Result<()> {
        let mut owned = tokens.to_vec();
        for chunk in owned.chunks_mut(self.n_batch) {
            // SAFETY: chunk is a live array of chunk.len() tokens for the duration of the
            // decode call, which copies what it needs.
            let rc = unsafe {
                let batch = llama_batch_get_one(chunk.as_mut_ptr(), chunk.len() as i32);
                llama_decode(self.ptr, batch)
            };
            if rc != 0 {
                return Err(failed(&format!("llama_decode returned {rc}")));
            }
        }
        Ok(())
    }

    /// The logits of the last decoded token (`llama_get_logits_ith(ctx, -1)`), n_vocab values.
    pub fn last_logits(&self) -> Result<&[f32]> {
        // SAFETY: live context; -1 is the last output of the last decode.
        let p = unsafe { llama_get_logits_ith(self.ptr, -1) };
        if p.is_null() {
            return Err(failed("no logits"));
        }
        // SAFETY: a non-NULL row holds n_vocab floats, valid until the next decode (which needs
        // &mut self, so this borrow ends first).
        Ok(unsafe { std::slice::from_raw_parts(p, self.n_vocab) })
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: self.ptr came from llama_init_from_model and is freed once.
        unsafe { llama_free(self.ptr) };
    }
}

/// What to sample with (llama-cli's names and defaults).
#[derive(Clone, Debug)]
pub struct SamplingParams {
    pub temp: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub seed: u32,
    pub repeat_penalty: f32,
    pub repeat_last_n: i32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temp: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            seed: LLAMA_DEFAULT_SEED,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
        }
    }
}

/// A sampler chain (`llama_sampler_chain_*`), in llama.cpp's common order: penalties, top-k,
/// top-p, min-p, temperature, then dist(seed); temp <= 0 is greedy (argmax) instead.
pub struct Sampler {
    ptr: *mut llama_sampler,
}

impl Sampler {
    pub fn new(p: &SamplingParams, n_vocab: i32) -> Result<Sampler> {
        let mut cp = llama_sampler_chain_default_params();
        cp.no_perf = false;
        let chain = llama_sampler_chain_init(cp);
        if chain.is_null() {
            return Err(failed("cannot make a sampler chain"));
        }
        let sampler = Sampler { ptr: chain };
        // Each init takes plain values and returns a new sampler (or NULL).
        let stages = {
            let mut stages = Vec::new();
            if p.repeat_penalty != 1.0 && p.repeat_last_n != 0 {
                stages.push(llama_sampler_init_penalties(
                    n_vocab,
                    p.repeat_last_n,
                    p.repeat_penalty,
                    0.0,
                    0.0,
                ));
            }
            if p.temp <= 0.0 {
                stages.push(llama_sampler_init_greedy());
            } else {
                stages.push(llama_sampler_init_top_k(p.top_k));
                stages.push(llama_sampler_init_top_p(p.top_p, 1));
                stages.push(llama_sampler_init_min_p(p.min_p, 1));
                stages.push(llama_sampler_init_temp(p.temp));
                stages.push(llama_sampler_init_dist(p.seed));
            }
            stages
        };
        if stages.iter().any(|s| s.is_null()) {
            for stage in stages {
                // SAFETY: NULL or a live sampler not yet in the chain: freed once.
                unsafe { llama_sampler_free(stage) };
            }
            return Err(failed("cannot make a sampler (bad sampling parameter)"));
        }
        for stage in stages {
            // SAFETY: the chain takes ownership of the live stage.
            unsafe { llama_sampler_chain_add(sampler.ptr, stage) };
        }
        Ok(sampler)
    }

    /// Samples from the last logits and accepts the token (`llama_sampler_sample`).
    pub fn sample(&mut self, ctx: &Context<'_>) -> Result<llama_token> {
        // SAFETY: both handles are live; -1 is the last output of the last decode.
        let t = unsafe { llama_sampler_sample(self.ptr, ctx.raw(), -1) };
        if t == LLAMA_TOKEN_NULL {
            return Err(failed("sampling failed"));
        }
        Ok(t)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        // SAFETY: the chain is ours and freed once (with the stages it owns).
        unsafe { llama_sampler_free(self.ptr) };
    }
}

/// `llama_chat_apply_template` over (role, content) pairs; `template` None means the default
/// (chatml), as llama.cpp's examples fall back when the model has no template.
pub fn apply_chat_template(
    template: Option<&CStr>,
    messages: &[(CString, CString)],
    add_assistant: bool,
) -> Result<Vec<u8>> {
    let list: Vec<llama_chat_message> = messages
        .iter()
        .map(|(role, content)| llama_chat_message {
            role: role.as_ptr(),
            content: content.as_ptr(),
        })
        .collect();
    let tmpl = template.map_or(std::ptr::null(), CStr::as_ptr);
    let mut buf = vec![0u8; 256];
    for _ in 0..2 {
        // SAFETY: list holds list.len() messages whose strings live in `messages`; buf has
        // buf.len() writable bytes; tmpl is NULL or a live C string.
        let n = unsafe {
            llama_chat_apply_template(
                tmpl,
                list.as_ptr(),
                list.len(),
                add_assistant,
                buf.as_mut_ptr().cast(),
                buf.len() as i32,
            )
        };
        if n < 0 {
            return Err(failed("llama_chat_apply_template: template not supported"));
        }
        if n as usize <= buf.len() {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        buf.resize(n as usize, 0);
    }
    Err(failed(
        "llama_chat_apply_template: size changed between calls",
    ))
}

/// Writes token pieces to a stream as they come, holding back an incomplete UTF-8 sequence at
/// the end until the next piece completes it (bytes that can never be valid UTF-8 are written
/// through as they are).
#[derive(Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The bytes that can be written now (the pending bytes plus `piece`, less an incomplete
    /// tail).
    pub fn push(&mut self, piece: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(piece);
        let keep = incomplete_tail(&self.pending);
        let ready = self.pending.len() - keep;
        let tail = self.pending.split_off(ready);
        std::mem::replace(&mut self.pending, tail)
    }

    /// Whatever is still held back (at the end of the output).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

/// How many bytes at the end of `bytes` start a UTF-8 sequence that is not complete yet.
fn incomplete_tail(bytes: &[u8]) -> usize {
    // A sequence is at most 4 bytes: look for its lead byte among the last 3.
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // continuation byte: keep looking for the lead
        }
        let need = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0, // ASCII or invalid lead: nothing to wait for
        };
        return if back < need { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_stream_holds_back_split_characters() {
        let text = "aé€😀b".as_bytes();
        for split in 0..=text.len() {
            let mut s = Utf8Stream::default();
            let mut out = s.push(&text[..split]);
            assert!(std::str::from_utf8(&out).is_ok(), "split {split}");
            out.extend(s.push(&text[split..]));
            out.extend(s.finish());
            assert_eq!(out, text);
        }
        // One byte at a time: every chunk written is whole characters.
        let mut s = Utf8Stream::default();
        let mut out = Vec::new();
        for b in text {
            let chunk = s.push(&[*b]);
            assert!(std::str::from_utf8(&chunk).is_ok());
            out.extend(chunk);
        }
        assert_eq!(out, text);
        // Invalid bytes pass through.
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(&[0xFF, b'x']), vec![0xFF, b'x']);
    }
}
