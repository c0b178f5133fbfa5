//! Shared by the integration tests: the generated fixture models (made once per machine by
//! tests/models/prepare.sh, cached outside the repo), the `bitnet` binary and the gguf-py oracle.

// Each test binary uses a part of this module (functions and re-exports alike).
#![allow(dead_code, unused_imports)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub struct Fixtures {
    pub python: PathBuf,
    pub sdist: PathBuf,
    pub models: PathBuf,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs tests/models/prepare.sh (idempotent, locked) once per test process.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let script = repo().join("tests/models/prepare.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .expect("cannot run bash");
        assert!(
            out.status.success(),
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let field = |name: &str| {
            let prefix = format!("{name}=");
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("prepare.sh printed no {name}= line:\n{stdout}"))
        };
        Fixtures {
            python: field("venv_python"),
            sdist: field("sdist"),
            models: field("models"),
        }
    })
}

/// The python of tests/python/venv.sh (llama-cpp-python, huggingface_hub; created once).
pub fn api_python() -> &'static PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("tests/python/venv.sh"))
            .output()
            .expect("cannot run bash");
        assert_ok("tests/python/venv.sh", &out);
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// Every generated .gguf file, sorted by name.
pub fn models() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(&fixtures().models)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 10,
        "expected the generated model set, found {v:?}"
    );
    v
}

pub fn model(name: &str) -> PathBuf {
    let p = fixtures().models.join(name);
    assert!(p.exists(), "missing fixture {}", p.display());
    p
}

pub fn bitnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(args)
        .output()
        .expect("cannot run bitnet")
}

/// Runs tests/models/oracle.py (gguf-py) with the fixture venv's python.
pub fn oracle(args: &[&str]) -> Output {
    Command::new(&fixtures().python)
        .arg(repo().join("tests/models/oracle.py"))
        .args(args)
        .output()
        .expect("cannot run the oracle")
}

pub fn assert_ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh scratch directory under the target dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub use bitnet::rng::SplitMix64;

pub use bitnet::fixture::{argmax, cosine};

/// Decodes `tokens` at positions 0.. in one batch, asking for every position's logits.
pub fn prefill(c: &mut bitnet::model::Context, tokens: &[u32]) {
    bitnet::fixture::decode(c, tokens, 0, 0, true).unwrap();
}

/// A vocabulary of llama.cpp's tokenizer tests: `models/ggml-vocab-NAME.gguf` in the sdist
/// (vocabulary-only GGUF files, read in place, never copied into the repository).
pub fn sdist_vocab(name: &str) -> PathBuf {
    let p = fixtures()
        .sdist
        .join("vendor/llama.cpp/models")
        .join(format!("ggml-vocab-{name}.gguf"));
    assert!(p.exists(), "missing {}", p.display());
    p
}

/// The reference build tree (cpp_ref/build.sh's `dist`), or why it is unusable.
pub fn reference_dist() -> Result<PathBuf, String> {
    let dist = bitnet::cpp_ref::dist_dir().ok_or("neither BITNET_CACHE_DIR nor HOME is set")?;
    for needed in [
        ".bitnet-cpp-ref.stamp",
        "lib/libllama.so",
        "include/llama.h",
    ] {
        if !dist.join(needed).exists() {
            return Err(format!("{} is missing", dist.join(needed).display()));
        }
    }
    Ok(dist)
}

/// The reference tree, or None after printing the skip line (a panic under
/// BITNET_CROSSVAL_REQUIRE_REF=1).
pub fn reference() -> Option<PathBuf> {
    built_or_skip(
        reference_dist(),
        "reference not built (run cpp_ref/build.sh)",
    )
}

/// A built C++ tree, or None after printing `skipped: WHAT: why` (a panic under
/// BITNET_CROSSVAL_REQUIRE_REF=1, as in CI, where a missing build is a failure).
pub fn built_or_skip(dist: Result<PathBuf, String>, what: &str) -> Option<PathBuf> {
    match dist {
        Ok(dist) => Some(dist),
        Err(why) => {
            if std::env::var("BITNET_CROSSVAL_REQUIRE_REF").as_deref() == Ok("1") {
                panic!("BITNET_CROSSVAL_REQUIRE_REF=1 but {what}: {why}");
            }
            // Straight to fd 2, past the test harness's output capture, so the skip is visible.
            let _ = writeln!(std::io::stderr(), "skipped: {what}: {why}");
            None
        }
    }
}

/// target/<profile>: this test binary lives in target/<profile>/deps/.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Builds libllama/ (target/<profile>/libllama.{so,a}) once per test process: `cargo test` of
/// this package alone does not build the workspace's other members.
pub fn our_lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = profile_dir();
        let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cargo
            .args(["build", "-p", "llama"])
            .current_dir(repo())
            .env("CARGO_TARGET_DIR", dir.parent().unwrap());
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let out = cargo.output().expect("cannot run cargo");
        assert_ok("cargo build -p llama", &out);
        assert!(dir.join("libllama.so").exists() && dir.join("libllama.a").exists());
        dir
    })
}
