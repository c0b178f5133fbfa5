//! The part of ggml-backend.h that llama.h uses: opaque backend handles and the scheduler's
//! evaluation callback. We run on our own CPU kernels; no value of these types is ever made.

#![allow(non_camel_case_types)]

use std::ffi::c_void;

use super::base::ggml_tensor;

pub struct ggml_backend_buffer_type {
    _private: [u8; 0],
}
pub struct ggml_backend_buffer {
    _private: [u8; 0],
}
pub struct ggml_backend {
    _private: [u8; 0],
}
pub struct ggml_backend_device {
    _private: [u8; 0],
}
pub struct ggml_backend_sched {
    _private: [u8; 0],
}
pub type ggml_backend_buffer_type_t = *mut ggml_backend_buffer_type;
pub type ggml_backend_buffer_t = *mut ggml_backend_buffer;
pub type ggml_backend_t = *mut ggml_backend;
pub type ggml_backend_dev_t = *mut ggml_backend_device;
pub type ggml_backend_sched_t = *mut ggml_backend_sched;

pub type ggml_backend_sched_eval_callback =
    Option<unsafe extern "C" fn(t: *mut ggml_tensor, ask: bool, user_data: *mut c_void) -> bool>;
