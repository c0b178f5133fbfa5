//! bitnet-rs: a Rust engine for ternary (BitNet b1.58) language models.
//!
//! The data path, one module per stage:
//! `gguf` (zero-copy file view) -> `quant` (tensor formats) -> `kernels` (matmul) -> `model`
//! (hyperparameters, weights, forward pass).
//!
//! Beside it: `tokenizer` and `sampling` (text in, tokens out), `capi` (the llama.h C ABI),
//! `error`, `env` (every environment variable read), `cache` (the cache directory), `cpp_ref`
//! (opening the C++ reference for comparisons), `rng` (seeded generators) and `fixture`
//! (helpers the tests, crossval, the benches and the CLI share, incl. synthetic models).

pub mod cache;
pub mod capi;
pub mod cpp_ref;
pub mod env;
pub mod error;
pub mod fixture;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod quant;
pub mod rng;
pub mod sampling;
pub mod tokenizer;

pub use error::{Error, ErrorKind, Result};
