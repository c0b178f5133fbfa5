//! Writes the seed inputs of every target into a directory per target (fuzz/run.sh merge then
//! minimizes them into fuzz/corpus/). Sources: the tiny models (written here), the fixture set's
//! formats.gguf, and from the pinned llama.cpp sdist its test vocabularies' inputs (.inp), its
//! GBNF grammars and its chat templates.
//!
//!   make_seeds OUT_DIR SDIST_LLAMA_CPP_DIR FIXTURE_MODELS_DIR

use std::fs;
use std::path::{Path, PathBuf};

use bitnet::quant::GgmlType;
use bitnet::rng::SplitMix64;
use bitnet_fuzz::write_tiny_model;
// Built with the fuzz targets' coverage flags, this program needs the sanitizer-coverage hooks that
// libFuzzer's runtime defines (it does not run libFuzzer).
use libfuzzer_sys as _;

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    v
}

fn random_bytes(rng: &mut SplitMix64, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.below(256) as u8).collect()
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [out, llama_cpp, models] = &args[..] else {
        panic!("usage: make_seeds OUT_DIR SDIST_LLAMA_CPP_DIR FIXTURE_MODELS_DIR");
    };
    let mut rng = SplitMix64(0x5EED);

    let gguf = out.join("gguf");
    fs::create_dir_all(&gguf).unwrap();
    write_tiny_model(&gguf.join("tiny-i2_s"), GgmlType::I2_S, false, None);
    write_tiny_model(&gguf.join("tiny-f16"), GgmlType::F16, false, Some(32));
    fs::copy(models.join("formats.gguf"), gguf.join("formats")).unwrap();

    // Tokenizer: [vocabulary, flags, text]; index 11 is tokenizer.json (see the target).
    let tok = out.join("tokenizer");
    let inps = files(&llama_cpp.join("models"), ".gguf.inp");
    for (k, inp) in inps.iter().enumerate() {
        let text = fs::read(inp).unwrap();
        for (j, case) in text
            .split(|&b| b == b'\n')
            .filter(|c| !c.is_empty())
            .take(6)
            .enumerate()
        {
            let mut seed = vec![(k % 11) as u8, (j * 5) as u8];
            seed.extend_from_slice(case);
            put(&tok, &format!("inp-{k}-{j}"), &seed);
        }
    }
    for (k, json) in [HF_BPE, HF_WORDLEVEL].iter().enumerate() {
        let text = b"hello world <s> ab";
        let mut seed = vec![11, 1, text.len() as u8];
        seed.extend_from_slice(text);
        seed.extend_from_slice(json.as_bytes());
        put(&tok, &format!("hf-{k}"), &seed);
    }

    // Grammar: [mode, grammar, NUL, token picks].
    let grammar = out.join("grammar");
    for (k, g) in files(&llama_cpp.join("grammars"), ".gbnf")
        .iter()
        .enumerate()
    {
        for mode in [0x80u8, 0x81, 0x05] {
            let mut seed = vec![mode];
            seed.extend_from_slice(&fs::read(g).unwrap());
            seed.push(0);
            if mode & 1 == 1 {
                seed.extend_from_slice(b"\x06\\{[^}]*");
            }
            for _ in 0..24 {
                seed.extend_from_slice(&[0x82, rng.below(256) as u8, rng.below(2) as u8]);
            }
            put(&grammar, &format!("g{k}-{mode:x}"), &seed);
        }
    }

    // Chat templates: builtin names by index, and the sdist's Jinja templates verbatim.
    let chat = out.join("chat_template");
    let messages = |seed: &mut Vec<u8>| {
        seed.extend_from_slice(&[1, 3]);
        for (role, content) in [
            (0u8, &b"You are terse."[..]),
            (1, b"Hi there"),
            (2, b"Hello!"),
        ] {
            seed.push(role);
            seed.push(content.len() as u8);
            seed.extend_from_slice(content);
        }
        seed.extend_from_slice(&[2, 40]);
    };
    for k in 0..48u8 {
        let mut seed = vec![1 + 4 * k];
        messages(&mut seed);
        put(&chat, &format!("builtin-{k}"), &seed);
    }
    for (k, t) in files(&llama_cpp.join("models/templates"), ".jinja")
        .iter()
        .enumerate()
    {
        let text = fs::read(t).unwrap();
        if text.len() >= 16384 {
            continue;
        }
        let mut seed = vec![3];
        seed.extend_from_slice(&(text.len() as u16).to_le_bytes());
        seed.extend_from_slice(&text);
        messages(&mut seed);
        put(&chat, &format!("jinja-{k}"), &seed);
    }

    // State: every mode, with a few patches or raw bytes.
    let state = out.join("state");
    for mode in 0..32u8 {
        let mut seed = vec![mode, 0, 0x40, 0];
        seed.extend(random_bytes(&mut rng, 12));
        put(&state, &format!("mode-{mode}"), &seed);
    }

    // The C API: random programs (the target reads any bytes as one).
    let capi = out.join("capi");
    for k in 0..32 {
        let n = 64 + rng.below(400) as usize;
        put(&capi, &format!("prog-{k}"), &random_bytes(&mut rng, n));
    }
}

/// A byte-level BPE tokenizer.json: bytes as printable characters (space is U+0120 `Ġ`),
/// a few merges, one added special token.
const HF_BPE: &str = r#"{"version":"1.0","truncation":null,"padding":null,
"added_tokens":[{"id":9,"content":"<s>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],
"normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
"post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},
"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,
"fuse_unk":false,"byte_fallback":false,
"vocab":{"a":0,"b":1,"Ġ":2,"ab":3,"Ġa":4,"Ġab":5,"h":6,"i":7,"hi":8,"<s>":9},
"merges":["a b","Ġ a","Ġa b","h i"]}}"#;

/// A word-level tokenizer.json with a whitespace pre-tokenizer and an unknown token.
const HF_WORDLEVEL: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
"normalizer":{"type":"Lowercase"},"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
"model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1,"world":2,"ab":3},"unk_token":"[UNK]"}}"#;
