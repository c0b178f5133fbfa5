//! bitnet-rs: a Rust engine for ternary (BitNet b1.58) language models.
//!
//! The data path, one module per stage:
//! `gguf` (zero-copy file view) -> `quant` (tensor formats) -> `kernels` (matmul) -> `model`
//! (hyperparameters, weights, forward pass).

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
