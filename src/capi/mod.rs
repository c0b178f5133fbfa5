//! The llama.h C ABI (pinned to llama.cpp as vendored in llama-cpp-python 0.3.36).
//!
//! - `types`: every llama.h struct/enum/typedef as `#[repr(C)]`; `ggml`: the reduced ggml
//!   headers' types (include/*.h are generated from these files, see `header`);
//! - `guard`: the guard exports run their bodies under (panics and errors become the
//!   documented failure value plus a line through the log callback, named after the export),
//!   the log callback, C string/buffer helpers;
//! - `model`, `vocab`, `context`, `batch`, `sampler`, `chat`, `state`, `system`: the exports, by
//!   topic;
//! - `unsupported`: the functions for features we do not have, each refusing with its
//!   documented failure value and a log line saying why.
//!
//! Which exports go through the guard: every one that takes a pointer or can fail, by one of
//! `guard::ffi!` (the body as a closure), `guard::with_handle!` (the same, after turning the
//! export's handle argument into a reference or refusing NULL), `context::with_memory!`, or a
//! `refuse!` in `unsupported`/`sampler`; each logs under the export's own name, which the macro
//! takes from the compiler (`guard::fn_name!`). Outside it, on purpose: deprecated aliases
//! that only call their current form (which is guarded and logs under its own name, as the
//! reference's aliases do); constant and parameter-default getters without pointers
//! (`llama_*_default_params`, `llama_supports_*`, `llama_max_*`, `llama_time_us`, the
//! initializers of the simple samplers, the `llama_get_sampled_*` getters whose "none" is the
//! normal answer); the log plumbing itself (`llama_log_set`, `llama_log_get`, the default
//! logger); and `ggml_abort`, which prints and aborts the process.
//! The exported items stay written out as functions: cbindgen reads them (it does not expand
//! macros) to generate include/llama.h.
//!
//! Safety: every export is `unsafe extern "C"` where it takes pointers; the contract is
//! llama.h's (handles come from this library and are not used after free; arrays hold the
//! sizes passed). NULL handles, out-of-range values and too-small buffers are checked. The
//! handle conversion's `unsafe` lives once in `with_handle!`; the `// SAFETY:` comments left in
//! the exports are about their other pointers (buffers, arrays, strings, callbacks).

#![allow(non_camel_case_types, clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod batch;
pub mod chat;
pub mod context;
pub mod ext;
pub mod ggml;
pub mod guard;
pub mod model;
pub mod sampler;
pub mod state;
pub mod system;
pub mod types;
pub mod unsupported;
pub mod vocab;

pub use batch::*;
pub use chat::*;
pub use context::*;
pub use ext::*;
pub use ggml::*;
pub use model::*;
pub use sampler::*;
pub use state::*;
pub use system::*;
pub use types::*;
pub use unsupported::*;
pub use vocab::*;
