//! Functions for features this engine does not have. Each returns llama.h's documented
//! failure value (NULL, false, 0, -1, LLAMA_TOKEN_NULL) and logs why; none pretends to
//! succeed.

use std::ffi::{c_char, c_void};
use std::sync::{Mutex, PoisonError};

use super::context::llama_context;
use super::ggml::gguf::gguf_context;
use super::ggml::{ggml_opt_dataset_t, ggml_opt_epoch_callback, ggml_opt_result_t, ggml_tensor};
use super::guard::{self, ffi, with_handle};
use super::model::llama_model;
use super::types::*;

/// `refuse!(value, why)`: logs `<export>: why` and returns `value`.
macro_rules! refuse {
    ($value:expr, $why:expr $(,)?) => {
        ffi!($value, || Err($why.to_string()))
    };
    // The meta getters clear C's buffer first, as the reference does on failure.
    ($value:expr, $why:expr, clearing $buf:ident[$size:ident]) => {{
        let (buf, size) = ($buf, $size);
        // SAFETY: the export's `buf` has `size` writable bytes (llama.h contract).
        unsafe { guard::clear_buf(buf, size) };
        refuse!($value, $why)
    }};
}

const NO_LORA: &str = "LoRA adapters are not supported";
const NO_BACKEND_SAMPLING: &str =
    "backend sampling is not supported (sample with llama_sampler_sample)";
const NO_TRAINING: &str = "training (llama_opt_*) is not supported";

// ---- Models we cannot make or write.

#[no_mangle]
pub extern "C" fn llama_model_init_from_user(
    _metadata: *mut gguf_context,
    _set_tensor_data: llama_model_set_tensor_data_t,
    _set_tensor_data_ud: *mut c_void,
    _params: llama_model_params,
) -> *mut llama_model {
    refuse!(
        std::ptr::null_mut(),
        "models built from user metadata are not supported (load a GGUF file)",
    )
}

#[no_mangle]
pub extern "C" fn llama_model_load_from_file_ptr(
    _file: *mut FILE,
    _params: llama_model_params,
) -> *mut llama_model {
    refuse!(
        std::ptr::null_mut(),
        "loading from a FILE pointer is not supported (use llama_model_load_from_file)",
    )
}

#[no_mangle]
pub extern "C" fn llama_model_save_to_file(_model: *const llama_model, _path_model: *const c_char) {
    refuse!((), "saving models is not supported: nothing written",)
}

/// Returns non-zero (failure); 0 would mean success.
#[no_mangle]
pub extern "C" fn llama_model_quantize(
    _fname_inp: *const c_char,
    _fname_out: *const c_char,
    _params: *const llama_model_quantize_params,
) -> u32 {
    refuse!(1, "model quantization is not supported: nothing written",)
}

// ---- LoRA adapters and control vectors.

#[no_mangle]
pub extern "C" fn llama_adapter_lora_init(
    _model: *mut llama_model,
    _path_lora: *const c_char,
) -> *mut llama_adapter_lora {
    refuse!(std::ptr::null_mut(), NO_LORA)
}

#[no_mangle]
pub extern "C" fn llama_adapter_lora_init_from_file_ptr(
    _model: *mut llama_model,
    _file: *mut FILE,
) -> *mut llama_adapter_lora {
    refuse!(std::ptr::null_mut(), NO_LORA,)
}

#[no_mangle]
pub unsafe extern "C" fn llama_adapter_meta_val_str(
    _adapter: *const llama_adapter_lora,
    _key: *const c_char,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    refuse!(-1, NO_LORA, clearing buf[buf_size])
}

#[no_mangle]
pub extern "C" fn llama_adapter_meta_count(_adapter: *const llama_adapter_lora) -> i32 {
    refuse!(-1, NO_LORA)
}

#[no_mangle]
pub unsafe extern "C" fn llama_adapter_meta_key_by_index(
    _adapter: *const llama_adapter_lora,
    _i: i32,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    refuse!(-1, NO_LORA, clearing buf[buf_size])
}

#[no_mangle]
pub unsafe extern "C" fn llama_adapter_meta_val_str_by_index(
    _adapter: *const llama_adapter_lora,
    _i: i32,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    refuse!(-1, NO_LORA, clearing buf[buf_size])
}

/// No adapter is ever made, so there is nothing to free (NULL is accepted silently).
#[no_mangle]
pub extern "C" fn llama_adapter_lora_free(adapter: *mut llama_adapter_lora) {
    if !adapter.is_null() {
        refuse!((), "not an adapter made by this library: left as it is",)
    }
}

#[no_mangle]
pub extern "C" fn llama_adapter_get_alora_n_invocation_tokens(
    _adapter: *const llama_adapter_lora,
) -> u64 {
    refuse!(0, NO_LORA)
}

#[no_mangle]
pub extern "C" fn llama_adapter_get_alora_invocation_tokens(
    _adapter: *const llama_adapter_lora,
) -> *const llama_token {
    refuse!(std::ptr::null(), NO_LORA,)
}

/// Setting no adapters (n_adapters == 0) succeeds: that is the state we are always in.
#[no_mangle]
pub extern "C" fn llama_set_adapters_lora(
    ctx: *mut llama_context,
    _adapters: *mut *mut llama_adapter_lora,
    n_adapters: usize,
    _scales: *mut f32,
) -> i32 {
    ffi!(-1, || {
        if ctx.is_null() {
            return Err("ctx is NULL".into());
        }
        if n_adapters == 0 {
            return Ok(0);
        }
        Err(NO_LORA.into())
    })
}

/// Clearing (data == NULL) succeeds: no control vector is ever loaded.
#[no_mangle]
pub extern "C" fn llama_set_adapter_cvec(
    ctx: *mut llama_context,
    data: *const f32,
    _len: usize,
    _n_embd: i32,
    _il_start: i32,
    _il_end: i32,
) -> i32 {
    ffi!(-1, || {
        if ctx.is_null() {
            return Err("ctx is NULL".into());
        }
        if data.is_null() {
            return Ok(0);
        }
        Err("control vectors are not supported".into())
    })
}

// ---- Backend sampling.

#[no_mangle]
pub extern "C" fn llama_set_sampler(
    _ctx: *mut llama_context,
    _seq_id: llama_seq_id,
    _smpl: *mut llama_sampler,
) -> bool {
    refuse!(false, NO_BACKEND_SAMPLING)
}

/// No backend sampler is ever attached, so there is never a sampled token (no log: this is
/// the normal answer, as the reference's for a context without backend samplers).
#[no_mangle]
pub extern "C" fn llama_get_sampled_token_ith(_ctx: *mut llama_context, _i: i32) -> llama_token {
    LLAMA_TOKEN_NULL
}

#[no_mangle]
pub extern "C" fn llama_get_sampled_probs_ith(_ctx: *mut llama_context, _i: i32) -> *mut f32 {
    std::ptr::null_mut()
}

#[no_mangle]
pub extern "C" fn llama_get_sampled_probs_count_ith(_ctx: *mut llama_context, _i: i32) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn llama_get_sampled_logits_ith(_ctx: *mut llama_context, _i: i32) -> *mut f32 {
    std::ptr::null_mut()
}

/// Without backend sampling the reference reports every output row's sampled logits as the
/// whole vocabulary: `n_vocab` of them (llama-server reads `llama_get_logits_ith` through this
/// count for `n_probs`), whatever `i`.
#[no_mangle]
pub extern "C" fn llama_get_sampled_logits_count_ith(ctx: *mut llama_context, _i: i32) -> u32 {
    with_handle!(&ctx, 0, |c| Ok(c.n_vocab as u32))
}

/// Without backend sampling the reference's candidates are the whole vocabulary in id order,
/// `[0, 1, ..., n_vocab - 1]`, whatever `i`.
#[no_mangle]
pub extern "C" fn llama_get_sampled_candidates_ith(
    ctx: *mut llama_context,
    _i: i32,
) -> *mut llama_token {
    with_handle!(&ctx, std::ptr::null_mut(), |c| Ok(vocab_ids(c.n_vocab)))
}

/// The ids `0..n` (at least): one table for the whole process, grown by leaking a longer one, so
/// every pointer handed out stays valid for the process's life (C only reads it).
fn vocab_ids(n: usize) -> *mut llama_token {
    static IDS: Mutex<&'static [llama_token]> = Mutex::new(&[]);
    let mut ids = IDS.lock().unwrap_or_else(PoisonError::into_inner);
    if ids.len() < n {
        let len = n.max(2 * ids.len());
        *ids = (0..len as llama_token).collect::<Vec<_>>().leak();
    }
    ids.as_ptr().cast_mut()
}

#[no_mangle]
pub extern "C" fn llama_get_sampled_candidates_count_ith(_ctx: *mut llama_context, _i: i32) -> u32 {
    0
}

// ---- Training.

/// Always true, as the reference's (a filter, not training itself).
#[no_mangle]
pub extern "C" fn llama_opt_param_filter_all(
    _tensor: *const ggml_tensor,
    _userdata: *mut c_void,
) -> bool {
    true
}

#[no_mangle]
pub extern "C" fn llama_opt_init(
    _lctx: *mut llama_context,
    _model: *mut llama_model,
    _lopt_params: llama_opt_params,
) {
    refuse!((), NO_TRAINING)
}

#[no_mangle]
pub extern "C" fn llama_opt_epoch(
    _lctx: *mut llama_context,
    _dataset: ggml_opt_dataset_t,
    _result_train: ggml_opt_result_t,
    _result_eval: ggml_opt_result_t,
    _idata_split: i64,
    _callback_train: ggml_opt_epoch_callback,
    _callback_eval: ggml_opt_epoch_callback,
) {
    refuse!((), NO_TRAINING)
}
