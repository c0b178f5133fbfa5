//! libllama: bitnet-rs's llama.h C ABI under the library name C programs link with (`-lllama`).
//!
//! There is no code here. Naming the dependency makes rustc link it, and a cdylib or staticlib
//! exports every `#[no_mangle] pub extern "C"` function of the crates it links, so the exports
//! of `bitnet::capi` become the exports of libllama.so and libllama.a. build.rs sets the SONAME.

pub use bitnet;
