//! Shared by crossval's integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Whether the C++ reference is available. When it is not, prints the skip line and returns
/// false, unless `BITNET_CROSSVAL_REQUIRE_REF=1` (CI), where a missing reference is a failure.
pub fn reference_available() -> bool {
    match crossval::reference::unavailable_reason() {
        None => true,
        Some(why) => {
            if std::env::var("BITNET_CROSSVAL_REQUIRE_REF").as_deref() == Ok("1") {
                panic!("BITNET_CROSSVAL_REQUIRE_REF=1 but {why}");
            }
            // Straight to fd 2, past the test harness's output capture, so the skip is visible.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: reference not built (run cpp_ref/build.sh): {why}"
            );
            false
        }
    }
}

/// The tiny fixture models (tests/models/prepare.sh, run once per test binary).
pub fn models_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        crossval::suite::tiny_models_dir().expect("tests/models/prepare.sh (fixture models)")
    })
    .clone()
}

/// The llama.cpp tree of the pinned sdist (tests/models/prepare.sh, run once per test binary).
pub fn llama_cpp_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        crossval::suite::sdist_llama_cpp().expect("tests/models/prepare.sh (the pinned sdist)")
    })
    .clone()
}
