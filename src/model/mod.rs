//! The model: hyperparameters from metadata, the weights of each layer, and a context that
//! runs the forward pass over a KV cache.

pub mod context;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod hparams;
pub mod weights;

pub use context::{Batch, Context, ContextParams, Pooling, SeqSet, MAX_SEQ};
pub use hparams::{Arch, HParams};
pub use weights::Model;
