//! bitnet-rs: a Rust engine for ternary (BitNet b1.58) language models.
//!
//! The data path, one module per stage:
//! `gguf` (zero-copy file view) -> `quant` (tensor formats, scalar references) -> `kernels` (the
//! ops: ternary and float matmuls, activation quantizers, attention, norms, RoPE, with their ISA
//! variants chosen in `kernels::isa`, and the thread pool) -> `model` (hyperparameters, weights,
//! the KV cache in `model::kv_cache`, the forward pass read top to bottom in
//! `model/forward_cpu.rs`, the GPU backend, and `model::Context`, which runs batches).
//!
//! Beside it: `tokenizer` and `sampling` (text in, tokens out), `capi` (the llama.h C ABI),
//! `error`, `env` (every environment variable read), `cache` (the cache directory), `hub` (Hugging Face hub downloads), `cpp_ref`
//! (opening the C++ reference for comparisons), `rng` (seeded generators) and `fixture`
//! (helpers the tests, crossval, the benches and the CLI share, incl. synthetic models).
//! The spec the code follows is in `docs/`.

pub mod cache;
pub mod capi;
pub mod convert;
pub mod cpp_ref;
pub mod env;
pub mod error;
pub mod fixture;
pub mod gguf;
pub mod hub;
pub mod kernels;
pub mod model;
pub mod quant;
pub mod rng;
pub mod sampling;
pub mod tokenizer;

pub use error::{Error, ErrorKind, Result};
