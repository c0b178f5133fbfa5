//! The model: hyperparameters from metadata (and, with the engine, weights and `forward`).

pub mod hparams;

pub use hparams::{Arch, HParams};
