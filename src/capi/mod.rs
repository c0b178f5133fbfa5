//! The llama.h C ABI (pinned to llama.cpp as vendored in llama-cpp-python 0.3.36).
//!
//! - `types`: every llama.h struct/enum/typedef as `#[repr(C)]`; `ggml`: the reduced ggml
//!   headers' types (include/*.h are generated from these files, see `header`);
//! - `guard`: the one wrapper every export goes through (panics and errors become the
//!   documented failure value plus a line through the log callback), C string/buffer helpers;
//! - `model`, `vocab`, `context`, `batch`, `sampler`, `chat`, `state`, `system`: the exports, by
//!   topic;
//! - `unsupported`: the functions for features we do not have, each refusing with its
//!   documented failure value and a log line saying why.
//!
//! Safety: every export is `unsafe extern "C"` where it takes pointers; the contract is
//! llama.h's (handles come from this library and are not used after free; arrays hold the
//! sizes passed). NULL handles, out-of-range values and too-small buffers are checked.

#![allow(non_camel_case_types, clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod batch;
pub mod chat;
pub mod context;
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
pub use ggml::*;
pub use model::*;
pub use sampler::*;
pub use state::*;
pub use system::*;
pub use types::*;
pub use unsupported::*;
pub use vocab::*;
