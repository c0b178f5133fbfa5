//! The bindgen output for `llama.h` + `ggml-cpu.h` (run-time loading: `RefApi`).
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    unused_imports,
    clippy::all,
    clippy::pedantic
)]

include!(concat!(env!("OUT_DIR"), "/ref_bindings.rs"));
