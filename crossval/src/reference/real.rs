//! The reference runner over the loaded `RefApi`.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr::NonNull;

use super::ffi;
use super::loader::{self, take_log, RefLib};
use super::{FlashAttn, RefCtxParams};
use crate::Result;

/// The lines of the reference's log that say what went wrong (errors and warnings), for messages.
fn log_errors(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            [
                "error",
                "failed",
                "unknown",
                "invalid",
                "not a multiple",
                "removed",
                "unsupported",
                "wrong",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .collect();
    if lines.is_empty() {
        log.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
    } else {
        lines.join(" | ")
    }
}

/// A model loaded by the reference (CPU only).
pub struct RefModel {
    lib: &'static RefLib,
    model: NonNull<ffi::llama_model>,
    vocab: *const ffi::llama_vocab,
    n_vocab: usize,
}

// SAFETY: the reference model is immutable after loading; we never use it from two threads at
// once.
unsafe impl Send for RefModel {}

impl RefModel {
    pub fn load(path: &Path) -> Result<RefModel> {
        Self::load_with(path, false)
    }

    /// Loads only the vocabulary (works on vocab-only files, no tensors read).
    pub fn load_vocab_only(path: &Path) -> Result<RefModel> {
        Self::load_with(path, true)
    }

    fn load_with(path: &Path, vocab_only: bool) -> Result<RefModel> {
        let lib = loader::get()?;
        let api = &lib.api;
        let cpath = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
            .map_err(|_| format!("{}: path contains NUL", path.display()))?;
        take_log();
        // SAFETY: default params are plain data; we only change fields documented in llama.h.
        let model = unsafe {
            let mut mp = api.llama_model_default_params();
            mp.n_gpu_layers = 0;
            mp.check_tensors = false;
            mp.vocab_only = vocab_only;
            api.llama_model_load_from_file(cpath.as_ptr(), mp)
        };
        let Some(model) = NonNull::new(model) else {
            return Err(format!(
                "reference failed to load {}: {}",
                path.display(),
                log_errors(&take_log())
            )
            .into());
        };
        // SAFETY: `model` is a live model; the vocab pointer lives as long as it.
        let (vocab, n_vocab) = unsafe {
            let vocab = api.llama_model_get_vocab(model.as_ptr());
            (vocab, api.llama_vocab_n_tokens(vocab))
        };
        Ok(RefModel {
            lib,
            model,
            vocab,
            n_vocab: n_vocab.max(0) as usize,
        })
    }

    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    /// A metadata string (e.g. "general.architecture").
    pub fn meta(&self, key: &str) -> Option<String> {
        let key = CString::new(key).ok()?;
        let mut buf = vec![0u8; 512];
        // SAFETY: the buffer is writable for buf.len() bytes; the result is NUL-terminated within
        // it when non-negative and shorter than it.
        let n = unsafe {
            self.lib.api.llama_model_meta_val_str(
                self.model.as_ptr(),
                key.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return None;
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Some(String::from_utf8_lossy(&buf[..end]).into_owned())
    }

    /// Whether the reference puts a BOS token in front of a tokenized prompt.
    pub fn add_bos(&self) -> bool {
        // SAFETY: the vocab is live while the model is.
        unsafe { self.lib.api.llama_vocab_get_add_bos(self.vocab) }
    }

    /// Tokenizes like llama.cpp's examples do: special tokens added as the model wants (BOS),
    /// special-token text parsed.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenize_with(text.as_bytes(), true, true)
    }

    /// `llama_tokenize` with its two flags.
    pub fn tokenize_with(
        &self,
        text: &[u8],
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>> {
        let api = &self.lib.api;
        let len = i32::try_from(text.len()).map_err(|_| "text too long")?;
        let call = |out: &mut Vec<ffi::llama_token>| {
            // SAFETY: `text` is valid for `len` bytes (no NUL needed); `out` is writable for
            // its length, which we pass.
            unsafe {
                api.llama_tokenize(
                    self.vocab,
                    text.as_ptr().cast(),
                    len,
                    out.as_mut_ptr(),
                    out.len() as i32,
                    add_special,
                    parse_special,
                )
            }
        };
        let mut out = vec![0 as ffi::llama_token; text.len() + 8];
        let mut n = call(&mut out);
        if n < 0 && n != i32::MIN {
            // Too small: -n is the size it needs.
            out.resize((-n) as usize, 0);
            n = call(&mut out);
        }
        if n < 0 {
            return Err(format!("reference tokenizer failed ({n})").into());
        }
        out.truncate(n as usize);
        Ok(out.into_iter().map(|t| t as u32).collect())
    }

    /// `llama_detokenize` with its two flags.
    pub fn detokenize(
        &self,
        ids: &[u32],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<Vec<u8>> {
        let api = &self.lib.api;
        let tokens: Vec<ffi::llama_token> = ids.iter().map(|&t| t as ffi::llama_token).collect();
        let n_tokens = i32::try_from(tokens.len()).map_err(|_| "too many tokens")?;
        let call = |buf: &mut Vec<u8>| {
            // SAFETY: `tokens` holds `n_tokens` ids; `buf` is writable for its length.
            unsafe {
                api.llama_detokenize(
                    self.vocab,
                    tokens.as_ptr(),
                    n_tokens,
                    buf.as_mut_ptr().cast(),
                    buf.len() as i32,
                    remove_special,
                    unparse_special,
                )
            }
        };
        let mut buf = vec![0u8; 16 * ids.len() + 16];
        let mut n = call(&mut buf);
        if n < 0 && n != i32::MIN {
            buf.resize((-n) as usize, 0);
            n = call(&mut buf);
        }
        if n < 0 {
            return Err(format!("reference detokenizer failed ({n})").into());
        }
        buf.truncate(n as usize);
        Ok(buf)
    }

    /// The text of a token (for tables), special tokens rendered.
    pub fn token_text(&self, token: u32) -> String {
        let mut buf = vec![0u8; 64];
        for _ in 0..2 {
            // SAFETY: `buf` is writable for its length, which we pass.
            let n = unsafe {
                self.lib.api.llama_token_to_piece(
                    self.vocab,
                    token as ffi::llama_token,
                    buf.as_mut_ptr().cast(),
                    buf.len() as i32,
                    0,
                    true,
                )
            };
            if n >= 0 {
                return String::from_utf8_lossy(&buf[..n as usize]).into_owned();
            }
            buf.resize((-n) as usize, 0);
        }
        String::new()
    }
}

impl Drop for RefModel {
    fn drop(&mut self) {
        // SAFETY: we own the model; contexts borrow `self`, so none outlives it.
        unsafe { self.lib.api.llama_model_free(self.model.as_ptr()) }
    }
}

/// A reference context: one sequence, logits at every position of every batch.
pub struct RefContext<'m> {
    model: &'m RefModel,
    ctx: NonNull<ffi::llama_context>,
    n_batch: u32,
    /// The flash-attention setting asked for, and what the reference resolved it to.
    pub flash_attn_requested: FlashAttn,
    pub flash_attn_enabled: bool,
    pub n_ctx: u32,
    pub threads: i32,
}

impl<'m> RefContext<'m> {
    pub fn new(model: &'m RefModel, p: &RefCtxParams) -> Result<RefContext<'m>> {
        let api = &model.lib.api;
        take_log();
        // SAFETY: default params are plain data; the fields set are documented in llama.h.
        let ctx = unsafe {
            let mut cp = api.llama_context_default_params();
            cp.n_ctx = p.n_ctx;
            cp.n_batch = p.n_batch;
            cp.n_ubatch = p.n_batch;
            cp.n_seq_max = 1;
            cp.n_threads = p.threads;
            cp.n_threads_batch = p.threads;
            cp.flash_attn_type = match p.flash_attn {
                FlashAttn::Auto => ffi::LLAMA_FLASH_ATTN_TYPE_AUTO,
                FlashAttn::On => ffi::LLAMA_FLASH_ATTN_TYPE_ENABLED,
                FlashAttn::Off => ffi::LLAMA_FLASH_ATTN_TYPE_DISABLED,
            };
            cp.embeddings = false;
            cp.no_perf = true;
            cp.offload_kqv = false;
            cp.op_offload = false;
            api.llama_init_from_model(model.model.as_ptr(), cp)
        };
        let log = take_log();
        let Some(ctx) = NonNull::new(ctx) else {
            return Err(format!("reference context creation failed: {}", log_errors(&log)).into());
        };
        // llama.cpp logs how it resolved AUTO ("Flash Attention enabled" / "... not supported,
        // set to disabled") and prints "flash_attn = enabled|disabled|auto" for explicit ones.
        let flash_attn_enabled = match p.flash_attn {
            FlashAttn::On => true,
            FlashAttn::Off => false,
            FlashAttn::Auto => {
                if log.contains("Flash Attention enabled") {
                    true
                } else if log.contains("Flash Attention not supported") {
                    false
                } else {
                    return Err(format!(
                        "cannot tell how the reference resolved flash_attn=auto from its log: {}",
                        log_errors(&log)
                    )
                    .into());
                }
            }
        };
        // SAFETY: live context.
        let n_ctx = unsafe { api.llama_n_ctx(ctx.as_ptr()) };
        Ok(RefContext {
            model,
            ctx,
            n_batch: p.n_batch,
            flash_attn_requested: p.flash_attn,
            flash_attn_enabled,
            n_ctx,
            threads: p.threads,
        })
    }

    pub fn model(&self) -> &RefModel {
        self.model
    }

    /// Empties the KV cache.
    pub fn clear(&mut self) {
        let api = &self.model.lib.api;
        // SAFETY: live context; its memory handle lives as long as it.
        unsafe { api.llama_memory_clear(api.llama_get_memory(self.ctx.as_ptr()), true) }
    }

    /// Decodes `tokens` at positions `pos0..` (sequence 0) in one batch and returns the logits of
    /// every token.
    pub fn decode(&mut self, tokens: &[u32], pos0: u32) -> Result<Vec<Vec<f32>>> {
        let api = &self.model.lib.api;
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        if tokens.len() > self.n_batch as usize {
            return Err(format!(
                "batch of {} tokens exceeds the reference n_batch {}",
                tokens.len(),
                self.n_batch
            )
            .into());
        }
        let n = tokens.len() as i32;
        // SAFETY: llama_batch_init allocates arrays for `n` tokens with one sequence id each; we
        // write exactly `n` entries of each and free the batch below.
        let rc = unsafe {
            let mut batch = api.llama_batch_init(n, 0, 1);
            for (i, &t) in tokens.iter().enumerate() {
                *batch.token.add(i) = t as ffi::llama_token;
                *batch.pos.add(i) = (pos0 as usize + i) as ffi::llama_pos;
                *batch.n_seq_id.add(i) = 1;
                *(*batch.seq_id.add(i)) = 0;
                *batch.logits.add(i) = 1;
            }
            batch.n_tokens = n;
            let rc = api.llama_decode(self.ctx.as_ptr(), batch);
            api.llama_batch_free(batch);
            rc
        };
        if rc != 0 {
            return Err(format!(
                "reference llama_decode failed ({rc}): {}",
                log_errors(&take_log())
            )
            .into());
        }
        let n_vocab = self.model.n_vocab;
        let mut rows = Vec::with_capacity(tokens.len());
        for i in 0..n {
            // SAFETY: every token of the batch asked for logits; the row has n_vocab floats and
            // stays valid until the next decode (we copy it at once).
            let row = unsafe {
                let p = api.llama_get_logits_ith(self.ctx.as_ptr(), i);
                if p.is_null() {
                    return Err(format!("reference returned no logits for batch index {i}").into());
                }
                std::slice::from_raw_parts(p, n_vocab).to_vec()
            };
            rows.push(row);
        }
        Ok(rows)
    }
}

impl Drop for RefContext<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the context.
        unsafe { self.model.lib.api.llama_free(self.ctx.as_ptr()) }
    }
}

/// ggml's CPU routines for one type (`ggml_get_type_traits_cpu`): what the reference uses in its
/// matmuls.
pub struct GgmlCpuType {
    lib: &'static RefLib,
    pub ty: u32,
    pub name: String,
    pub block_size: usize,
    pub block_bytes: usize,
    pub vec_dot_type: u32,
    traits: ffi::ggml_type_traits_cpu,
    /// ggml-base's traits for the type: its dequantizer and reference writer.
    base: ffi::ggml_type_traits,
}

impl GgmlCpuType {
    pub fn get(ty: u32) -> Result<GgmlCpuType> {
        let lib = loader::get()?;
        let api = &lib.api;
        // SAFETY: ggml's type-table queries; the returned traits pointer is to a static table.
        unsafe {
            let t = api.ggml_get_type_traits_cpu(ty as ffi::ggml_type);
            if t.is_null() {
                return Err(format!("ggml has no CPU traits for type {ty}").into());
            }
            let base = api.ggml_get_type_traits(ty as ffi::ggml_type);
            if base.is_null() {
                return Err(format!("ggml has no traits for type {ty}").into());
            }
            let name = CStr::from_ptr(api.ggml_type_name(ty as ffi::ggml_type))
                .to_string_lossy()
                .into_owned();
            Ok(GgmlCpuType {
                lib,
                ty,
                name,
                block_size: api.ggml_blck_size(ty as ffi::ggml_type) as usize,
                block_bytes: api.ggml_type_size(ty as ffi::ggml_type),
                vec_dot_type: (*t).vec_dot_type as u32,
                traits: *t,
                base: *base,
            })
        }
    }

    /// ggml's `from_float` for this type (the CPU backend's, SIMD included): `x.len()` must be a
    /// whole number of blocks.
    pub fn from_float(&self, x: &[f32]) -> Result<Vec<u8>> {
        let f = self
            .traits
            .from_float
            .ok_or_else(|| format!("ggml type {} has no from_float", self.name))?;
        if !x.len().is_multiple_of(self.block_size) {
            return Err(format!("{} values are not whole {} blocks", x.len(), self.name).into());
        }
        let mut out = vec![0u8; x.len() / self.block_size * self.block_bytes];
        // SAFETY: `x` holds x.len() floats, `out` is sized for that many values of this type.
        unsafe { f(x.as_ptr(), out.as_mut_ptr().cast(), x.len() as i64) };
        let _ = self.lib;
        Ok(out)
    }

    /// ggml's reference writer `from_float_ref` for this type (what its quantize tool calls):
    /// `x.len()` must be a whole number of blocks.
    pub fn from_float_ref(&self, x: &[f32]) -> Result<Vec<u8>> {
        let f = self
            .base
            .from_float_ref
            .ok_or_else(|| format!("ggml type {} has no from_float_ref", self.name))?;
        if !x.len().is_multiple_of(self.block_size) {
            return Err(format!("{} values are not whole {} blocks", x.len(), self.name).into());
        }
        let mut out = vec![0u8; x.len() / self.block_size * self.block_bytes];
        // SAFETY: `x` holds x.len() floats, `out` is sized for that many values of this type.
        unsafe { f(x.as_ptr(), out.as_mut_ptr().cast(), x.len() as i64) };
        Ok(out)
    }

    /// ggml's dequantizer `to_float` for this type: `data` must be whole blocks.
    pub fn to_float(&self, data: &[u8]) -> Result<Vec<f32>> {
        let f = self
            .base
            .to_float
            .ok_or_else(|| format!("ggml type {} has no to_float", self.name))?;
        if !data.len().is_multiple_of(self.block_bytes) {
            return Err(format!("{} bytes are not whole {} blocks", data.len(), self.name).into());
        }
        let n = data.len() / self.block_bytes * self.block_size;
        let mut out = vec![0f32; n];
        // SAFETY: `data` holds n / block_size whole blocks, `out` has room for n floats.
        unsafe { f(data.as_ptr().cast(), out.as_mut_ptr(), n as i64) };
        Ok(out)
    }

    /// ggml's `vec_dot` (one row, nrc = 1): `w` holds `n` values of this type, `a` holds `n`
    /// values of `vec_dot_type`.
    pub fn vec_dot(&self, n: usize, w: &[u8], a: &[u8], a_type: &GgmlCpuType) -> Result<f32> {
        let f = self
            .traits
            .vec_dot
            .ok_or_else(|| format!("ggml type {} has no vec_dot", self.name))?;
        if a_type.ty != self.vec_dot_type {
            return Err(format!(
                "{} dots with type {}, not {}",
                self.name, self.vec_dot_type, a_type.name
            )
            .into());
        }
        if !n.is_multiple_of(self.block_size)
            || w.len() != n / self.block_size * self.block_bytes
            || a.len() != n / a_type.block_size * a_type.block_bytes
        {
            return Err(format!("vec_dot {}: buffer sizes do not match n = {n}", self.name).into());
        }
        let mut s = 0f32;
        // SAFETY: the buffers were size-checked above; nrc = 1 reads one row of each.
        unsafe {
            f(
                n as i32,
                &mut s,
                0,
                w.as_ptr().cast(),
                0,
                a.as_ptr().cast(),
                0,
                1,
            )
        };
        Ok(s)
    }
}
