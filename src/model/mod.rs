//! The model: hyperparameters from metadata, the weights of each layer, the KV cache, the
//! forward pass on the CPU (`forward_cpu`, read top to bottom) or a GPU (`forward_cuda` over
//! `gpu`), and the context that runs batches through them.

pub mod context;
mod forward_cpu;
#[cfg(feature = "cuda")]
mod forward_cuda;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod head_cache;
pub mod hparams;
pub mod kv_cache;
pub mod weights;

pub use context::{Batch, Context, ContextParams, Pooling};
pub use hparams::{Arch, HParams};
pub use kv_cache::{SeqSet, MAX_SEQ};
pub use weights::Model;
