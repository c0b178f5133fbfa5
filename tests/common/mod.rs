//! Shared by the integration tests: the generated fixture models (made once per machine by
//! tests/models/prepare.sh, cached outside the repo), the `bitnet` binary and the gguf-py oracle.

#![allow(dead_code)]

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

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Index of the largest value (the first of equals), as greedy sampling picks it.
pub fn argmax(x: &[f32]) -> usize {
    (0..x.len()).fold(0, |best, i| if x[i] > x[best] { i } else { best })
}

/// Decodes `tokens` at positions 0.. in one batch, asking for every position's logits.
pub fn prefill(c: &mut bitnet::model::Context, tokens: &[u32]) {
    let positions: Vec<i32> = (0..tokens.len() as i32).collect();
    let want = vec![true; tokens.len()];
    let seqs = vec![bitnet::model::SeqSet::one(0); tokens.len()];
    let batch = bitnet::model::Batch {
        tokens,
        positions: &positions,
        seqs: &seqs,
        want_logits: &want,
    };
    c.decode(&batch).unwrap();
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
