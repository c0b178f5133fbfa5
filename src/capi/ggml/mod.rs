//! The reduced ggml headers that llama.h includes, one file per header (include/ is generated
//! from them): base.rs -> ggml.h, cpu.rs -> ggml-cpu.h, backend.rs -> ggml-backend.h,
//! opt.rs -> ggml-opt.h, gguf.rs -> gguf.h.

pub mod backend;
pub mod base;
pub mod cpu;
pub mod gguf;
pub mod opt;

pub use backend::*;
pub use base::*;
pub use cpu::*;
pub use gguf::*;
pub use opt::*;
