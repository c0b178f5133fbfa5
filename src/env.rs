//! Every environment variable the library and the `bitnet` program read, by name, in one place:
//! code names them only through the constants here (so `grep -rn '"BITNET_' src` finds this
//! file alone), and the library reads its knobs through `var` / `var_os`.
//!
//! | variable | read by | effect | default |
//! | --- | --- | --- | --- |
//! | `BITNET_ISA` | library (`kernels::isa`) | `scalar`, `avx2` or `avx512`: caps the CPU kernels' instruction set (never above what the CPU has; other values are ignored) | the best the CPU has |
//! | `BITNET_NO_AMX` | library (`kernels::isa`) | set (to anything): the AMX tile path is not used | AMX where the CPU and kernel allow it |
//! | `BITNET_POOL_THREADS` | library (`kernels::pool`) | threads of the process-wide kernel pool (1..=256) | one per available core |
//! | `BITNET_NVRTC_LIB` | library, feature `cuda` (`kernels::cuda`) | path of a `libnvrtc.so.*` loaded before NVRTC is looked up by name | the system's search path |
//! | `BITNET_CACHE_DIR` | library (`cache::dir`: the `bitnet` program, the tests) | where the demo model and the C++ reference build live | `$HOME/.cache/bitnet-rs` |
//! | `BITNET_CPP_REF_DIR` | library (`cpp_ref`: `bitnet verify`, crossval, the tests) | the C++ reference's install (`dist/lib` below it) | `$BITNET_CACHE_DIR/cpp_ref` |
//!
//! The crossval harness and the tests read a few more (`BITNET_MODELS_DIR`,
//! `BITNET_CROSSVAL_NO_REF`, ...); README.md's "Environment variables" lists those too.

use std::ffi::OsString;

/// Caps the kernels' instruction set: `scalar`, `avx2` or `avx512`.
pub const ISA: &str = "BITNET_ISA";
/// Set: the AMX tile path is off.
pub const NO_AMX: &str = "BITNET_NO_AMX";
/// Threads of the process-wide kernel pool.
pub const POOL_THREADS: &str = "BITNET_POOL_THREADS";
/// A path to libnvrtc, loaded before cudarc looks for NVRTC by name (feature `cuda`).
pub const NVRTC_LIB: &str = "BITNET_NVRTC_LIB";
/// The cache directory (demo model, C++ reference build): `cache::dir`.
pub const CACHE_DIR: &str = "BITNET_CACHE_DIR";
/// The C++ reference's install directory: `cpp_ref::dist_dir`.
pub const CPP_REF_DIR: &str = "BITNET_CPP_REF_DIR";

/// The variable's value if it is set (to anything, even empty or not UTF-8).
pub fn var_os(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// The variable's value if it is set and valid UTF-8.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
