//! llama.cpp's own tokenizer test suite, run against our tokenizers: every
//! `models/ggml-vocab-*.gguf` of the pinned sdist whose `tokenizer.ggml.model` we support, with
//! its `.gguf.inp` (inputs separated by a marker line) and `.gguf.out` (one line of ids per
//! input). Same call as llama.cpp's tests/test-tokenizer-0.cpp: no BOS/EOS, no special-token
//! parsing. Nothing from the sdist is copied into the repository; it is read at test time.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bitnet::gguf::MappedFile;
use bitnet::tokenizer::Tokenizer;

const MARKER: &str = "\n__ggml_vocab_test__\n";

/// (input, expected ids) pairs, as test-tokenizer-0.cpp reads them (a repeated input keeps its
/// last expectation, like its std::map).
fn read_cases(vocab: &Path) -> BTreeMap<Vec<u8>, Vec<u32>> {
    let inp = std::fs::read(with_suffix(vocab, ".inp")).unwrap();
    let out = std::fs::read_to_string(with_suffix(vocab, ".out")).unwrap();
    let mut inputs = vec![];
    let mut pos = 0;
    let marker = MARKER.as_bytes();
    while pos < inp.len() {
        match inp[pos..].windows(marker.len()).position(|w| w == marker) {
            Some(p) => {
                inputs.push(inp[pos..pos + p].to_vec());
                pos += p + marker.len();
            }
            None => {
                inputs.push(inp[pos..].to_vec());
                break;
            }
        }
    }
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(inputs.len(), outputs.len(), "{}", vocab.display());
    inputs.into_iter().zip(outputs).collect()
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn vocab_dir() -> PathBuf {
    common::fixtures().sdist.join("vendor/llama.cpp/models")
}

/// Every vocab file with a test pair, sorted.
fn vocab_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(vocab_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf") && with_suffix(p, ".inp").exists())
        .collect();
    v.sort();
    v
}

fn model_of(path: &Path) -> String {
    let f = MappedFile::open(path).unwrap();
    let g = f.gguf().unwrap();
    g.get_str("tokenizer.ggml.model")
        .unwrap()
        .unwrap_or("")
        .to_string()
}

/// Runs one vocab's suite; the failures, described.
fn run_suite(path: &Path) -> Vec<String> {
    let f = MappedFile::open(path).unwrap();
    let g = f.gguf().unwrap();
    let tok = match Tokenizer::from_gguf(&g) {
        Ok(t) => t,
        Err(e) => return vec![format!("load: {e}")],
    };
    let mut failures = vec![];
    let cases = read_cases(path);
    assert!(
        cases.len() >= 10,
        "{}: only {} cases",
        path.display(),
        cases.len()
    );
    for (input, want) in cases {
        let got = tok.tokenize_bytes(&input, false, false);
        if got != want {
            failures.push(format!(
                "{:?}\n      want {want:?}\n      got  {got:?}",
                String::from_utf8_lossy(&input)
            ));
        }
    }
    failures
}

fn suite(name: &str) {
    let path = vocab_dir().join(format!("ggml-vocab-{name}.gguf"));
    let failures = run_suite(&path);
    assert!(
        failures.is_empty(),
        "{name}: {} failing cases:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn llama_spm() {
    suite("llama-spm");
}

#[test]
fn phi_3() {
    suite("phi-3");
}

#[test]
fn llama_bpe() {
    suite("llama-bpe");
}

#[test]
fn gpt_2() {
    suite("gpt-2");
}

#[test]
fn mpt() {
    suite("mpt");
}

#[test]
fn starcoder() {
    suite("starcoder");
}

#[test]
fn refact() {
    suite("refact");
}

#[test]
fn command_r() {
    suite("command-r");
}

#[test]
fn falcon() {
    suite("falcon");
}

#[test]
fn deepseek_coder() {
    suite("deepseek-coder");
}

#[test]
fn deepseek_llm() {
    suite("deepseek-llm");
}

#[test]
fn qwen2() {
    suite("qwen2");
}

#[test]
fn qwen35() {
    suite("qwen35");
}

/// Gemma 4's SentencePiece-style BPE (`tokenizer.ggml.model = gemma4`).
#[test]
fn gemma_4() {
    suite("gemma-4");
}

/// Every vocab with a test pair and a `llama`, `gpt2` or `gemma4` tokenizer has a test above.
#[test]
fn every_llama_and_gpt2_vocab_is_covered() {
    let covered = [
        "llama-spm",
        "phi-3",
        "llama-bpe",
        "gpt-2",
        "mpt",
        "starcoder",
        "refact",
        "command-r",
        "falcon",
        "deepseek-coder",
        "deepseek-llm",
        "qwen2",
        "qwen35",
        "gemma-4",
    ];
    for p in vocab_files() {
        let model = model_of(&p);
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let short = name
            .trim_start_matches("ggml-vocab-")
            .trim_end_matches(".gguf");
        if matches!(model.as_str(), "llama" | "gpt2" | "gemma4") {
            assert!(covered.contains(&short), "{name} ({model}) has no test");
        }
    }
}
