//! crossval: bitnet-rs against the C++ reference (llama.cpp from the pinned
//! llama-cpp-python 0.3.36 sdist), loaded at run time with `dlopen` and checked for symbol
//! interposition.
//!
//! - `reference`: the bindgen bindings (run-time loaded), the loader and its canary, the
//!   reference runner (model, tokenizer, context with logits at every position) and ggml's CPU
//!   quantizers / dot products.
//! - `run`: one decode schedule for both sides (greedy and teacher-forced), and our engine.
//! - `metrics`: cosine, max |diff|, KL, top-1 per position, and summaries.
//! - `compare`: one model on both sides and its verdict (float models: cosine; int8 models:
//!   the reference's self-noise floor).
//! - `patch`: modified model copies (norm-scaled for the floor, a negated row for the canary).
//! - `ops`: op-level exact checks (quantizers and dot products vs ggml's own).
//! - `suite`: `--all`.

pub mod compare;
pub mod metrics;
pub mod ops;
pub mod patch;
pub mod reference;
pub mod run;
pub mod suite;

/// crossval's error type: any error, with a message.
pub type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;
