//! The part of ggml-opt.h that llama.h's training functions use. We do not train
//! (`llama_opt_*` refuse); these types keep the signatures ABI-identical.

#![allow(non_camel_case_types)]

use std::ffi::{c_int, c_void};

pub struct ggml_opt_dataset {
    _private: [u8; 0],
}
pub struct ggml_opt_context {
    _private: [u8; 0],
}
pub struct ggml_opt_result {
    _private: [u8; 0],
}
pub type ggml_opt_dataset_t = *mut ggml_opt_dataset;
pub type ggml_opt_context_t = *mut ggml_opt_context;
pub type ggml_opt_result_t = *mut ggml_opt_result;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ggml_opt_optimizer_type {
    GGML_OPT_OPTIMIZER_TYPE_ADAMW,
    GGML_OPT_OPTIMIZER_TYPE_SGD,
    GGML_OPT_OPTIMIZER_TYPE_COUNT,
}
pub type enum_ggml_opt_optimizer_type = c_int;

/// AdamW parameters (an anonymous struct inside `ggml_opt_optimizer_params` in the reference;
/// same fields and layout).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ggml_opt_adamw_params {
    pub alpha: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub wd: f32,
}

/// SGD parameters (anonymous in the reference, same layout).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ggml_opt_sgd_params {
    pub alpha: f32,
    pub wd: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ggml_opt_optimizer_params {
    pub adamw: ggml_opt_adamw_params,
    pub sgd: ggml_opt_sgd_params,
}

pub type ggml_opt_get_optimizer_params =
    Option<unsafe extern "C" fn(userdata: *mut c_void) -> ggml_opt_optimizer_params>;

pub type ggml_opt_epoch_callback = Option<
    unsafe extern "C" fn(
        train: bool,
        opt_ctx: ggml_opt_context_t,
        dataset: ggml_opt_dataset_t,
        result: ggml_opt_result_t,
        ibatch: i64,
        ibatch_max: i64,
        t_start_us: i64,
    ),
>;
