//! Process-wide functions: default parameters (identical to the reference's), backend init,
//! logging, time, capability queries, system info, version, split paths.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Mutex;

use super::ggml::{
    enum_ggml_numa_strategy, ggml_log_callback, ggml_threadpool_t, ggml_type,
    GGML_DEFAULT_N_THREADS,
};
use super::guard::{self, ffi};
use super::types::*;

/// `llama_version`: the llama.cpp version this ABI follows (the pinned tree's 0.5.0), with
/// our crate's version after a `+`.
#[no_mangle]
pub extern "C" fn llama_version() -> *const c_char {
    static V: &std::ffi::CStr = c"0.5.0+bitnet-rs";
    V.as_ptr()
}

#[no_mangle]
pub extern "C" fn llama_model_default_params() -> llama_model_params {
    llama_model_params {
        devices: std::ptr::null_mut(),
        tensor_buft_overrides: std::ptr::null(),
        n_gpu_layers: -1,
        split_mode: llama_split_mode::LLAMA_SPLIT_MODE_LAYER as c_int,
        load_mode: llama_load_mode::LLAMA_LOAD_MODE_AUTO as c_int,
        lazy_mode: llama_lazy_mode::LLAMA_LAZY_MODE_AUTO as c_int,
        main_gpu: 0,
        tensor_split: std::ptr::null(),
        progress_callback: None,
        progress_callback_user_data: std::ptr::null_mut(),
        kv_overrides: std::ptr::null(),
        vocab_only: false,
        check_tensors: false,
        use_extra_bufts: true,
        no_host: false,
        no_alloc: false,
        load_mtp: false,
    }
}

#[no_mangle]
pub extern "C" fn llama_context_default_params() -> llama_context_params {
    llama_context_params {
        n_ctx: 512,
        n_batch: 2048,
        n_ubatch: 512,
        n_seq_max: 1,
        n_rs_seq: 0,
        n_outputs_max: 0,
        n_outputs_max_per_seq: 1,
        n_threads: GGML_DEFAULT_N_THREADS,
        n_threads_batch: GGML_DEFAULT_N_THREADS,
        ctx_type: llama_context_type::LLAMA_CONTEXT_TYPE_DEFAULT as c_int,
        rope_scaling_type: llama_rope_scaling_type::LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED as c_int,
        pooling_type: llama_pooling_type::LLAMA_POOLING_TYPE_UNSPECIFIED as c_int,
        attention_type: llama_attention_type::LLAMA_ATTENTION_TYPE_UNSPECIFIED as c_int,
        flash_attn_type: llama_flash_attn_type::LLAMA_FLASH_ATTN_TYPE_AUTO as c_int,
        rope_freq_base: 0.0,
        rope_freq_scale: 0.0,
        yarn_ext_factor: -1.0,
        yarn_attn_factor: -1.0,
        yarn_beta_fast: -1.0,
        yarn_beta_slow: -1.0,
        yarn_orig_ctx: 0,
        defrag_thold: -1.0,
        cb_eval: None,
        cb_eval_user_data: std::ptr::null_mut(),
        type_k: ggml_type::GGML_TYPE_F16 as c_int,
        type_v: ggml_type::GGML_TYPE_F16 as c_int,
        abort_callback: None,
        abort_callback_data: std::ptr::null_mut(),
        embeddings: false,
        offload_kqv: true,
        no_perf: true,
        op_offload: true,
        swa_full: true,
        kv_unified: false,
        samplers: std::ptr::null_mut(),
        n_samplers: 0,
        ctx_other: std::ptr::null_mut(),
    }
}

#[no_mangle]
pub extern "C" fn llama_sampler_chain_default_params() -> llama_sampler_chain_params {
    llama_sampler_chain_params { no_perf: true }
}

#[no_mangle]
pub extern "C" fn llama_model_quantize_default_params() -> llama_model_quantize_params {
    llama_model_quantize_params {
        nthread: 0,
        ftype: llama_ftype::LLAMA_FTYPE_MOSTLY_Q8_0 as c_int,
        output_tensor_type: ggml_type::GGML_TYPE_COUNT as c_int,
        token_embedding_type: ggml_type::GGML_TYPE_COUNT as c_int,
        allow_requantize: false,
        quantize_output_tensor: true,
        only_copy: false,
        pure: false,
        keep_split: false,
        dry_run: false,
        imatrix: std::ptr::null(),
        kv_overrides: std::ptr::null(),
        tt_overrides: std::ptr::null(),
        prune_layers: std::ptr::null(),
        max_buf_size: 8 << 30,
    }
}

/// Starts the clock; nothing else to set up (no backends to register).
#[no_mangle]
pub extern "C" fn llama_backend_init() {
    guard::monotonic_us();
}

#[no_mangle]
pub extern "C" fn llama_backend_free() {}

/// NUMA placement is left to the operating system (a no-op, as on one-node machines).
#[no_mangle]
pub extern "C" fn llama_numa_init(_numa: enum_ggml_numa_strategy) {}

#[no_mangle]
pub extern "C" fn llama_attach_threadpool(
    _ctx: *mut super::context::llama_context,
    _threadpool: ggml_threadpool_t,
    _threadpool_batch: ggml_threadpool_t,
) {
    ffi!((), || {
        Err("ggml threadpools are not used: the context keeps its own worker threads".into())
    })
}

#[no_mangle]
pub extern "C" fn llama_detach_threadpool(_ctx: *mut super::context::llama_context) {}

#[no_mangle]
pub extern "C" fn llama_time_us() -> i64 {
    guard::monotonic_us()
}

#[no_mangle]
pub extern "C" fn llama_max_devices() -> usize {
    1
}

#[no_mangle]
pub extern "C" fn llama_max_parallel_sequences() -> usize {
    crate::model::context::MAX_SEQ
}

#[no_mangle]
pub extern "C" fn llama_max_tensor_buft_overrides() -> usize {
    0
}

/// Model files are memory-mapped.
#[no_mangle]
pub extern "C" fn llama_supports_mmap() -> bool {
    true
}

/// We never lock pages in memory (`use_mlock` has no effect).
#[no_mangle]
pub extern "C" fn llama_supports_mlock() -> bool {
    false
}

/// True when this build has the CUDA backend (feature `cuda`) and a usable device is present.
#[no_mangle]
pub extern "C" fn llama_supports_gpu_offload() -> bool {
    gpu_present()
}

#[cfg(feature = "cuda")]
fn gpu_present() -> bool {
    crate::kernels::cuda::available()
}

#[cfg(not(feature = "cuda"))]
fn gpu_present() -> bool {
    false
}

#[no_mangle]
pub extern "C" fn llama_supports_rpc() -> bool {
    false
}

/// The CPU features this process sees, as `CPU : NAME = 0/1 | ...` (the reference's format).
pub fn system_info() -> String {
    let mut s = String::from("CPU : ");
    #[cfg(target_arch = "x86_64")]
    {
        let features = [
            ("SSE3", std::is_x86_feature_detected!("sse3")),
            ("SSSE3", std::is_x86_feature_detected!("ssse3")),
            ("AVX", std::is_x86_feature_detected!("avx")),
            ("AVX2", std::is_x86_feature_detected!("avx2")),
            ("F16C", std::is_x86_feature_detected!("f16c")),
            ("FMA", std::is_x86_feature_detected!("fma")),
            ("AVX512", std::is_x86_feature_detected!("avx512f")),
            ("AVX512_VNNI", std::is_x86_feature_detected!("avx512vnni")),
            ("AVX512_BF16", std::is_x86_feature_detected!("avx512bf16")),
        ];
        for (name, on) in features {
            s += &format!("{name} = {} | ", on as u8);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        s += &format!(
            "NEON = {} | ",
            std::arch::is_aarch64_feature_detected!("neon") as u8
        );
    }
    s += &format!(
        "THREADS = {} | ",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    #[cfg(feature = "cuda")]
    {
        s += &match crate::kernels::cuda::shared_device() {
            Ok(d) => format!(
                "CUDA : DEVICE = {} | ",
                crate::kernels::cuda::Device::describe(&*d)
            ),
            Err(e) => format!("CUDA : DEVICE = none ({e}) | "),
        };
    }
    s
}

#[no_mangle]
pub extern "C" fn llama_print_system_info() -> *const c_char {
    static INFO: Mutex<Option<CString>> = Mutex::new(None);
    ffi!(c"".as_ptr(), || {
        let mut info = INFO.lock().unwrap_or_else(|e| e.into_inner());
        // Made once: the pointer stays valid for the process, as the reference's static string.
        let s = info.get_or_insert_with(|| CString::new(system_info()).unwrap_or_default());
        Ok(s.as_ptr())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_log_set(log_callback: ggml_log_callback, user_data: *mut c_void) {
    guard::set_logger(log_callback, user_data);
}

#[no_mangle]
pub unsafe extern "C" fn llama_log_get(
    log_callback: *mut ggml_log_callback,
    user_data: *mut *mut c_void,
) {
    let (cb, ud) = guard::logger();
    // SAFETY: the out-pointers are NULL or writable (llama.h contract).
    unsafe {
        if let Some(p) = log_callback.as_mut() {
            *p = cb;
        }
        if let Some(p) = user_data.as_mut() {
            *p = ud;
        }
    }
}

/// `llama_split_path`: `<prefix>-%05d-of-%05d.gguf` with split_no + 1, snprintf semantics.
#[no_mangle]
pub unsafe extern "C" fn llama_split_path(
    split_path: *mut c_char,
    maxlen: usize,
    path_prefix: *const c_char,
    split_no: i32,
    split_count: i32,
) -> i32 {
    ffi!(0, || {
        // SAFETY: path_prefix is a C string (contract).
        let prefix = unsafe { guard::c_bytes(path_prefix, "path_prefix") }?;
        let text = [
            prefix,
            format!(
                "-{:05}-of-{:05}.gguf",
                split_no.wrapping_add(1),
                split_count
            )
            .as_bytes(),
        ]
        .concat();
        // SAFETY: split_path has maxlen writable bytes (contract).
        Ok(unsafe { guard::snprintf(split_path, maxlen, &text) })
    })
}

/// `llama_split_prefix`: the prefix of `split_path` when it ends with this split's postfix
/// (its length, written snprintf-style), else 0.
#[no_mangle]
pub unsafe extern "C" fn llama_split_prefix(
    split_prefix: *mut c_char,
    maxlen: usize,
    split_path: *const c_char,
    split_no: i32,
    split_count: i32,
) -> i32 {
    ffi!(0, || {
        // SAFETY: split_path is a C string (contract).
        let path = unsafe { guard::c_bytes(split_path, "split_path") }?;
        let postfix = format!(
            "-{:05}-of-{:05}.gguf",
            split_no.wrapping_add(1),
            split_count
        );
        match path.strip_suffix(postfix.as_bytes()) {
            // SAFETY: split_prefix has maxlen writable bytes (contract).
            Some(prefix) => Ok(unsafe { guard::snprintf(split_prefix, maxlen, prefix) }),
            None => Ok(0),
        }
    })
}

#[no_mangle]
pub extern "C" fn llama_flash_attn_type_name(
    flash_attn_type: enum_llama_flash_attn_type,
) -> *const c_char {
    use llama_flash_attn_type::*;
    match flash_attn_type {
        x if x == LLAMA_FLASH_ATTN_TYPE_AUTO as c_int => c"auto".as_ptr(),
        x if x == LLAMA_FLASH_ATTN_TYPE_DISABLED as c_int => c"disabled".as_ptr(),
        x if x == LLAMA_FLASH_ATTN_TYPE_ENABLED as c_int => c"enabled".as_ptr(),
        _ => c"unknown".as_ptr(),
    }
}

const LOAD_MODES: [(llama_load_mode, &std::ffi::CStr); 6] = [
    (llama_load_mode::LLAMA_LOAD_MODE_AUTO, c"auto"),
    (llama_load_mode::LLAMA_LOAD_MODE_NONE, c"none"),
    (llama_load_mode::LLAMA_LOAD_MODE_MMAP, c"mmap"),
    (llama_load_mode::LLAMA_LOAD_MODE_MLOCK, c"mlock"),
    (llama_load_mode::LLAMA_LOAD_MODE_MMAP_MLOCK, c"mmap+mlock"),
    (llama_load_mode::LLAMA_LOAD_MODE_DIRECT_IO, c"dio"),
];

#[no_mangle]
pub extern "C" fn llama_load_mode_name(load_mode: enum_llama_load_mode) -> *const c_char {
    LOAD_MODES
        .iter()
        .find(|(m, _)| *m as c_int == load_mode)
        .map_or(c"unknown".as_ptr(), |(_, n)| n.as_ptr())
}

/// The mode a name stands for; AUTO for an unknown name or NULL.
#[no_mangle]
pub unsafe extern "C" fn llama_load_mode_from_str(s: *const c_char) -> enum_llama_load_mode {
    ffi!(llama_load_mode::LLAMA_LOAD_MODE_AUTO as c_int, || {
        // SAFETY: s is NULL or a C string (contract).
        let s = unsafe { guard::c_bytes(s, "str") }?;
        LOAD_MODES
            .iter()
            .find(|(_, n)| n.to_bytes() == s)
            .map(|(m, _)| *m as c_int)
            .ok_or_else(|| format!("unknown load mode {:?}", String::from_utf8_lossy(s)))
    },)
}
