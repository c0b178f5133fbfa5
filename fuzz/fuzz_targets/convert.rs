//! `bitnet convert`: one input is a checkpoint folder (config.json, model.safetensors or an
//! index and its shards, tokenizer files, generation_config.json), written into a fresh folder
//! and converted by `bitnet::convert::convert`, the function the command runs (config, the
//! safetensors reader, the plan, the vocabulary, then the GGUF written under a temporary name
//! and renamed). The stages are also called one by one, so a refusal early in the chain does
//! not hide the later readers from the fuzzer.
//!
//! Input: [type selector] then files, each `SEP name '\n' bytes` (see `files`). Asserts besides
//! "no crash, no hang, no runaway memory": every tensor the reader lists has exactly
//! dtype x shape bytes; a failed conversion leaves no file behind (neither the output nor its
//! temporary); a successful one is a GGUF file that parses, holds the tensors the report
//! counts, and loads as a model through `llama_model_load_from_file` with the vocabulary size
//! the config names.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bitnet::capi::*;
use bitnet::convert::{self, config::Config, plan, safetensors::Checkpoint, vocab, OutType};
use bitnet::gguf::Gguf;
use bitnet_fuzz::*;
use libfuzzer_sys::fuzz_target;

/// What starts a file in the input (make_seeds writes the same).
const SEP: &[u8] = bitnet_fuzz::CONVERT_FILE_SEP;

/// The folders of this process: the checkpoint and the output (on tmpfs where there is one:
/// the converter syncs its output, which a disk would make slow).
fn dirs() -> &'static (PathBuf, PathBuf) {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIRS.get_or_init(|| {
        let base = fast_dir("convert");
        (base.join("ckpt"), base.join("out"))
    })
}

/// A file name the harness may create: one plain component.
fn plain_name(name: &[u8]) -> Option<&str> {
    let name = std::str::from_utf8(name).ok()?;
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then_some(name)
}

/// The files of the input: each separator is followed by `name '\n' bytes`; at most 8 files,
/// names the harness cannot create are skipped.
fn files(data: &[u8]) -> Vec<(&str, &[u8])> {
    let mut starts = vec![];
    let mut i = 0;
    while i + SEP.len() <= data.len() {
        if &data[i..i + SEP.len()] == SEP {
            starts.push(i);
            i += SEP.len();
        } else {
            i += 1;
        }
    }
    let mut out = vec![];
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(data.len());
        let part = &data[s + SEP.len()..end];
        let nl = part.iter().position(|&b| b == b'\n').unwrap_or(part.len());
        if let Some(name) = plain_name(&part[..nl]) {
            out.push((name, part.get(nl + 1..).unwrap_or(&[])));
        }
        if out.len() == 8 {
            break;
        }
    }
    out
}

fn reset(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("cannot make the fuzz folder");
}

/// The stages one by one, with their own checks.
fn stages(dir: &Path, out_type: Option<OutType>) {
    let config = Config::read(&dir.join("config.json"));
    if let Ok(ckpt) = Checkpoint::open(dir) {
        for name in ckpt.names() {
            let t = ckpt.get(name).expect("a listed tensor is there");
            let size = t
                .shape
                .iter()
                .try_fold(t.dtype.size(), |a, &d| a.checked_mul(d));
            assert_eq!(
                size,
                Some(t.data.len()),
                "tensor {name}: bytes != dtype x shape"
            );
            if t.dtype.is_float() && t.data.len() <= 1 << 16 {
                let values = t.to_f32().expect("a float tensor converts");
                assert_eq!(values.len(), t.n_elements());
            }
        }
        if let Ok(c) = &config {
            let ty = out_type.unwrap_or_else(|| OutType::default_for(c));
            if let Ok(planned) = plan::plan(c, &ckpt, ty) {
                assert!(!planned.is_empty());
            }
        }
    }
    // The converter reads the vocabulary only once the plan has checked the embedding
    // [vocab_size, n_embd] against the weights, which bounds it by the input's size; called on
    // its own it would take the config's vocab_size (up to 2^24) as given.
    if let Some(c) = config.as_ref().ok().filter(|c| c.shape.n_vocab <= 1 << 16) {
        let _ = vocab::read(dir, c);
    }
}

/// A converted file: parses, holds the tensors the report counts, loads as a model.
fn check_output(path: &Path, report: &convert::Report, dir: &Path) {
    let bytes = std::fs::read(path).expect("the converted file is there");
    assert_eq!(bytes.len() as u64, report.bytes, "the report's size");
    let g = Gguf::parse(&bytes).unwrap_or_else(|e| panic!("the output does not parse: {e}"));
    assert_eq!(g.tensors().len(), report.n_tensors, "tensor count");
    assert_eq!(g.architecture(), Some(report.arch));
    let n_vocab = Config::read(&dir.join("config.json"))
        .expect("a converted config reads")
        .shape
        .n_vocab;
    let cpath = c_string(path.to_str().unwrap().as_bytes());
    // SAFETY: a valid path string and default params; the model is freed once.
    unsafe {
        let model = llama_model_load_from_file(cpath.as_ptr(), llama_model_default_params());
        assert!(
            !model.is_null(),
            "bitnet convert wrote a file the library does not load (BITNET_FUZZ_VERBOSE=1 says why)"
        );
        let vocab = llama_model_get_vocab(model);
        assert_eq!(llama_vocab_n_tokens(vocab) as usize, n_vocab);
        llama_model_free(model);
    }
}

fuzz_target!(init: quiet(), |data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let out_type = match sel % 8 {
        k @ 1..=6 => Some(OutType::ALL[k as usize - 1]),
        _ => None,
    };
    let (dir, out_dir) = dirs();
    reset(dir);
    reset(out_dir);
    for (name, bytes) in files(rest) {
        std::fs::write(dir.join(name), bytes).expect("cannot write an input file");
    }
    stages(dir, out_type);
    let out = out_dir.join("model.gguf");
    let result = convert::convert(dir, &out, out_type);
    if std::env::var_os("BITNET_FUZZ_VERBOSE").is_some() {
        eprintln!("convert: {:?}", result.as_ref().map(|r| (r.arch, r.out_type, r.n_tensors)));
    }
    match result {
        Ok(report) => check_output(&out, &report, dir),
        Err(_) => {
            let left: Vec<_> = std::fs::read_dir(out_dir)
                .expect("the output folder")
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(left.is_empty(), "a failed conversion left {left:?}");
        }
    }
});
