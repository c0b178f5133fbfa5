//! ggml.h (reduced): what llama.h and llama.cpp's examples use, ABI-identical to the
//! reference: `enum ggml_type`, `enum ggml_log_level`, the callback typedefs, the opaque
//! tensor/context/graph/threadpool types, `ggml_time_us` and `ggml_abort`.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

use crate::capi::guard;

pub const GGML_DEFAULT_N_THREADS: c_int = 4;
pub const GGML_ROPE_TYPE_NORMAL: c_int = 0;
pub const GGML_ROPE_TYPE_NEOX: c_int = 2;
pub const GGML_ROPE_TYPE_MROPE: c_int = 8;
pub const GGML_ROPE_TYPE_VISION: c_int = 24;
pub const GGML_ROPE_TYPE_IMROPE: c_int = 40;

/// Tensor element types (header only; values travel as `enum_ggml_type`, a plain int).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ggml_type {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_IQ2_XXS = 16,
    GGML_TYPE_IQ2_XS = 17,
    GGML_TYPE_IQ3_XXS = 18,
    GGML_TYPE_IQ1_S = 19,
    GGML_TYPE_IQ4_NL = 20,
    GGML_TYPE_IQ3_S = 21,
    GGML_TYPE_IQ2_S = 22,
    GGML_TYPE_IQ4_XS = 23,
    GGML_TYPE_I8 = 24,
    GGML_TYPE_I16 = 25,
    GGML_TYPE_I32 = 26,
    GGML_TYPE_I64 = 27,
    GGML_TYPE_F64 = 28,
    GGML_TYPE_IQ1_M = 29,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_TQ1_0 = 34,
    GGML_TYPE_TQ2_0 = 35,
    GGML_TYPE_MXFP4 = 39,
    GGML_TYPE_NVFP4 = 40,
    GGML_TYPE_Q1_0 = 41,
    GGML_TYPE_Q2_0 = 42,
    GGML_TYPE_COUNT = 43,
}
pub type enum_ggml_type = c_int;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ggml_log_level {
    GGML_LOG_LEVEL_NONE = 0,
    GGML_LOG_LEVEL_DEBUG = 1,
    GGML_LOG_LEVEL_INFO = 2,
    GGML_LOG_LEVEL_WARN = 3,
    GGML_LOG_LEVEL_ERROR = 4,
    GGML_LOG_LEVEL_CONT = 5,
}
pub type enum_ggml_log_level = c_int;

/// A tensor of the ggml graph library: we have none; only pointers to it appear in signatures.
pub struct ggml_tensor {
    _private: [u8; 0],
}
pub struct ggml_context {
    _private: [u8; 0],
}
pub struct ggml_cgraph {
    _private: [u8; 0],
}
pub struct ggml_threadpool {
    _private: [u8; 0],
}
pub type ggml_threadpool_t = *mut ggml_threadpool;

pub type ggml_log_callback = Option<
    unsafe extern "C" fn(level: enum_ggml_log_level, text: *const c_char, user_data: *mut c_void),
>;
pub type ggml_abort_callback = Option<unsafe extern "C" fn(data: *mut c_void) -> bool>;

/// Microseconds on CLOCK_MONOTONIC, the same clock as ggml's own `ggml_time_us`.
#[no_mangle]
pub extern "C" fn ggml_time_us() -> i64 {
    guard::monotonic_us()
}

// `ggml_abort` (variadic) is exported from src/capi/ext.rs.
