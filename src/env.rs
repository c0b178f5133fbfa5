//! Every environment variable the library and the `bitnet` program read, by name, in one place:
//! code names them only through the constants here (so `grep -rn '"BITNET_' src` finds this
//! file alone), and the library reads its knobs through `var` / `var_os`.
//!
//! | variable | read by | effect | default |
//! | --- | --- | --- | --- |
//! | `BITNET_ISA` | library (`kernels::isa`) | `scalar`, `avx2` or `avx512`: caps the CPU kernels' instruction set (never above what the CPU has; other values are ignored) | the best the CPU has |
//! | `BITNET_NO_AMX` | library (`kernels::isa`) | set (to anything): the AMX tile path is not used | AMX where the CPU and kernel allow it |
//! | `BITNET_HEAD` | library (`model::weights::HeadType::from_env`: the C API's model load, `bitnet run/chat --head`) | `f16` (the head as stored), `q8_0`, `q4_0` or `q6_k`: the output head the model is loaded with; another value fails the load | `f16` |
//! | `BITNET_HEAD_CACHE` | library (`model::head_cache`) | `0`/`off`/`false`: requantized heads are neither read from nor written to `$BITNET_CACHE_DIR/heads/` | the cache is used |
//! | `BITNET_TERNARY` | library (`kernels::ternary::Layout::from_env`: every model load that does not set `LoadOptions::ternary`) | `q2` (ternary weights repacked to 2 bits) or `q16` (1.6 bits, five per byte: fewer bytes per decode step, AVX2 and scalar kernels only); another value fails the load | `q2` |
//! | `BITNET_POOL_THREADS` | library (`kernels::pool`) | threads of the process-wide kernel pool (1..=256) | one per available core |
//! | `BITNET_NVRTC_LIB` | library, feature `cuda` (`kernels::cuda`) | path of a `libnvrtc.so.*` loaded before NVRTC is looked up by name | the system's search path |
//! | `BITNET_CACHE_DIR` | library (`cache::dir`: the `bitnet` program, the tests) | where the demo model and the C++ reference build live | `$HOME/.cache/bitnet-rs` |
//! | `BITNET_CPP_REF_DIR` | library (`cpp_ref`: `bitnet verify`, crossval, the tests) | the C++ reference's install (`dist/lib` below it) | `$BITNET_CACHE_DIR/cpp_ref` |
//! | `HF_ENDPOINT` | library (`hub`: `bitnet download`, `-hf`) | the Hugging Face hub to download from | `https://huggingface.co` |
//! | `HF_TOKEN` | library (`hub`) | the token sent as `Authorization: Bearer` (gated or private repositories) | the file `$HF_TOKEN_PATH`, else `$HF_HOME/token` (what `hf auth login` writes), else none |
//! | `HF_TOKEN_PATH` | library (`hub`) | where the stored token is read | `$HF_HOME/token` |
//! | `HF_HOME` | library (`hub`) | huggingface_hub's home; the download cache is `$HF_HOME/hub` | `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` |
//! | `HF_HUB_CACHE` | library (`hub`) | the download cache itself (overrides `$HF_HOME/hub`) | `$HF_HOME/hub` |
//! | `HF_HUB_OFFLINE` | library (`hub`) | `1`/`ON`/`YES`/`TRUE`: no network, cached files only | off |
//! | `TRANSFORMERS_OFFLINE` | library (`hub`) | the same as `HF_HUB_OFFLINE` (as in huggingface_hub) | off |
//!
//! The crossval harness and the tests read a few more (`BITNET_MODELS_DIR`,
//! `BITNET_CROSSVAL_NO_REF`, ...); README.md's "Environment variables" lists those too.

use std::ffi::OsString;

/// Caps the kernels' instruction set: `scalar`, `avx2` or `avx512`.
pub const ISA: &str = "BITNET_ISA";
/// Set: the AMX tile path is off.
pub const NO_AMX: &str = "BITNET_NO_AMX";
/// The output head the C API loads models with: `f16`, `q8_0`, `q4_0` or `q6_k`.
pub const HEAD: &str = "BITNET_HEAD";
/// `0`: requantized heads are neither read from nor written to the head cache
/// (`model::head_cache`).
pub const HEAD_CACHE: &str = "BITNET_HEAD_CACHE";
/// How ternary matrices are held after load: `q2` (2 bits) or `q16` (1.6 bits).
pub const TERNARY: &str = "BITNET_TERNARY";
/// Threads of the process-wide kernel pool.
pub const POOL_THREADS: &str = "BITNET_POOL_THREADS";
/// A path to libnvrtc, loaded before cudarc looks for NVRTC by name (feature `cuda`).
pub const NVRTC_LIB: &str = "BITNET_NVRTC_LIB";
/// The cache directory (demo model, C++ reference build): `cache::dir`.
pub const CACHE_DIR: &str = "BITNET_CACHE_DIR";
/// The C++ reference's install directory: `cpp_ref::dist_dir`.
pub const CPP_REF_DIR: &str = "BITNET_CPP_REF_DIR";

/// The Hugging Face hub's address (`hub::Config::from_env`).
pub const HF_ENDPOINT: &str = "HF_ENDPOINT";
/// The hub token.
pub const HF_TOKEN: &str = "HF_TOKEN";
/// The file the hub token is stored in.
pub const HF_TOKEN_PATH: &str = "HF_TOKEN_PATH";
/// huggingface_hub's home directory.
pub const HF_HOME: &str = "HF_HOME";
/// The hub download cache directory.
pub const HF_HUB_CACHE: &str = "HF_HUB_CACHE";
/// Offline mode: cached hub files only.
pub const HF_HUB_OFFLINE: &str = "HF_HUB_OFFLINE";
/// Offline mode too (transformers' older name, honoured by huggingface_hub).
pub const TRANSFORMERS_OFFLINE: &str = "TRANSFORMERS_OFFLINE";
/// The XDG cache base (`HF_HOME`'s default lies under it).
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";

/// The variable's value if it is set (to anything, even empty or not UTF-8).
pub fn var_os(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// The variable's value if it is set and valid UTF-8.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
