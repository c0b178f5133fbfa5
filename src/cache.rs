//! The one cache directory of bitnet-rs: `$BITNET_CACHE_DIR`, else `~/.cache/bitnet-rs`. It
//! holds what is made once per machine outside the repository: the C++ reference build
//! (`cpp_ref/`), the generated fixture models and the demo model (`models/`).
//!
//! The shell scripts (cpp_ref/build.sh, tests/models/prepare.sh) and crossval's build script,
//! which cannot call the library, spell the same rule themselves.

use std::path::PathBuf;

/// `$BITNET_CACHE_DIR` when it is set and not empty, else `$HOME/.cache/bitnet-rs`; None when
/// neither variable is set.
pub fn dir() -> Option<PathBuf> {
    env_path(crate::env::CACHE_DIR)
        .or_else(|| env_path("HOME").map(|home| home.join(".cache/bitnet-rs")))
}

/// The value of an environment variable that names a path, when it is set and not empty.
pub fn env_path(name: &str) -> Option<PathBuf> {
    crate::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
