//! Our tokenizer against the reference's `llama_tokenize` / `llama_detokenize` on thousands of
//! random strings per vocabulary: identical ids and identical text back, with and without
//! special-token parsing. Vocabularies: llama.cpp's own `ggml-vocab-*.gguf` test files (loaded
//! vocab-only on both sides), a copy of llama-bpe without `tokenizer.ggml.pre`, as in
//! Microsoft's 2B-4T file, and vocabularies with damaged merges (parts or results that are no
//! tokens, entries without two parts).

mod common;

use std::path::Path;

use bitnet::gguf::writer::{GgufWriter, OwnedValue};
use bitnet::gguf::{MappedFile, ValueType};
use bitnet::rng::SplitMix64;
use bitnet::tokenizer::Tokenizer;
use crossval::reference::RefModel;

/// Pieces random strings are built from: several scripts, emoji, digits, whitespace runs,
/// control characters, contractions and text that looks like special tokens.
const PIECES: &[&str] = &[
    "hello",
    " world",
    "The",
    " quick",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    " \n ",
    "123",
    "4567890",
    "3.14",
    "'s",
    "'re",
    "n't",
    "'LL",
    "Ünïcödé",
    "ß",
    "日本語",
    "中文字符",
    "한국어",
    "Русский",
    "العربية",
    "עברית",
    "ไทย",
    "हिन्दी",
    "😀",
    "👍🏽",
    "🇺🇸",
    "👨‍👩‍👧",
    "\u{0}",
    "\u{7}",
    "\u{1b}[0m",
    "\u{a0}",
    "\u{2028}",
    "\u{feff}",
    "<s>",
    "</s>",
    "<unk>",
    "<|eot_id|>",
    "<|begin_of_text|>",
    "<|endoftext|>",
    "<|im_start|>",
    "<|",
    "|>",
    "<0x41>",
    "▁",
    "Ġ",
    "a",
    "Z",
    "_",
    "-",
    "--",
    "...",
    "!?",
    "(",
    ")",
    "{\"k\": [1, 2]}",
    "def f(x):",
    "    return",
    "http://x.y/z?q=1",
    "@user",
    "#tag",
    "$100",
    "%",
    "&amp;",
    "\\",
    "/",
    "`code`",
];

fn random_text(rng: &mut SplitMix64) -> String {
    let n = rng.below(12);
    let mut s = String::new();
    for _ in 0..n {
        if rng.below(8) == 0 {
            // A random codepoint, any plane.
            let c = char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}');
            s.push(c);
        } else {
            s.push_str(PIECES[rng.below(PIECES.len() as u64) as usize]);
        }
    }
    s
}

/// Our ids and text back against the reference's for `extra` and `n_strings` random strings.
fn compare(path: &Path, extra: &[&str], n_strings: usize) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let file = MappedFile::open(path).unwrap();
    let ours = Tokenizer::from_gguf(&file.gguf().unwrap()).unwrap();
    let theirs = RefModel::load_vocab_only(path).unwrap();
    let mut rng = SplitMix64(0x70c);
    let mut texts: Vec<String> = vec![String::new(), " ".into(), "\n".into()];
    texts.extend(extra.iter().map(|t| t.to_string()));
    texts.extend((0..n_strings).map(|_| random_text(&mut rng)));
    for text in &texts {
        for (add_special, parse_special) in [(true, false), (true, true), (false, true)] {
            let a = ours.tokenize(text, add_special, parse_special);
            let b = theirs
                .tokenize_with(text.as_bytes(), add_special, parse_special)
                .unwrap();
            assert_eq!(
                a, b,
                "{name}: {text:?} (add_special {add_special}, parse_special {parse_special})"
            );
            for (remove, unparse) in [(false, false), (true, true)] {
                let da = ours.detokenize(&a, remove, unparse).unwrap();
                let db = theirs.detokenize(&b, remove, unparse).unwrap();
                assert_eq!(
                    da, db,
                    "{name}: detokenize {a:?} (remove {remove}, unparse {unparse})"
                );
            }
        }
    }
}

#[test]
fn tokenizers_agree_with_the_reference() {
    if !common::reference_available() {
        return;
    }
    let dir = common::llama_cpp_dir().join("models");
    for vocab in [
        "llama-spm",
        "llama-bpe",
        "gpt-2",
        "phi-3",
        "qwen2",
        "falcon",
        "command-r",
    ] {
        compare(&dir.join(format!("ggml-vocab-{vocab}.gguf")), &[], 2000);
    }
}

/// Microsoft's 2B-4T file has no `tokenizer.ggml.pre`: a copy of llama-bpe with that key renamed
/// (same length, so the file stays valid) must tokenize as the reference's "default".
#[test]
fn missing_pre_tokenizer_agrees_with_the_reference() {
    if !common::reference_available() {
        return;
    }
    let src = common::llama_cpp_dir()
        .join("models")
        .join("ggml-vocab-llama-bpe.gguf");
    let mut bytes = std::fs::read(&src).unwrap();
    let key = b"tokenizer.ggml.pre";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("the key is there");
    bytes[at + key.len() - 1] = b'X';
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let copy = dir.join("ggml-vocab-llama-bpe-no-pre.gguf");
    std::fs::write(&copy, bytes).unwrap();
    compare(&copy, &[], 2000);
}

fn strings(items: &[&str]) -> OwnedValue {
    OwnedValue::Array(
        ValueType::String,
        items.iter().map(|s| OwnedValue::str(s)).collect(),
    )
}

/// A merge list with damaged entries must load on both sides and tokenize alike: llama.cpp merges
/// texts, so a merge whose part or result is no token still fires (and a result that is no token
/// is written as its bytes' tokens), and an entry without two parts never applies. First
/// llama.cpp's gpt-2 vocabulary with such entries ranked before its own merges, on text that
/// meets them (" quick", " world", "hello"); then the small vocabulary of the main crate's
/// `damaged_merges_tokenize_as_llama_cpp`.
#[test]
fn damaged_merges_agree_with_the_reference() {
    if !common::reference_available() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = common::llama_cpp_dir().join("models/ggml-vocab-gpt-2.gguf");
    let file = MappedFile::open(&src).unwrap();
    let g = file.gguf().unwrap();
    let ours = Tokenizer::from_gguf(&g).unwrap();
    for (text, is_token) in [
        ("uick", false),
        ("wor", false),
        ("Ġquick", true),
        ("world", true),
    ] {
        assert_eq!(ours.token_id(text.as_bytes()).is_some(), is_token, "{text}");
    }
    let damaged = [
        "i c",     // normal
        "ic k",    // normal
        "u ick",   // the result "uick" is no token
        "Ġq uick", // the right part is no token, made by the merge above
        "w o",     // normal (gpt-2's own "w o" below is a repeat)
        "wo r",    // the result "wor" is no token
        "wor ld",  // the left part is no token, made by the merge above
        "hello",   // no space
        "l ",      // nothing after the space
        " l",      // the space is the first byte
        "zzqq xx", // the left part and the result are no tokens
        "el lo",   // normal
        "Ġ hello", // normal
        "Th e",    // normal
        "The l",   // the result "Thel" is no token
    ];
    let mut w = GgufWriter::default();
    for (key, value) in g.metadata().iter() {
        let mut value = OwnedValue::from_value(value);
        if *key == "tokenizer.ggml.merges" {
            let OwnedValue::Array(_, merges) = &mut value else {
                panic!("merges are an array")
            };
            merges.splice(0..0, damaged.iter().map(|m| OwnedValue::str(m)));
        }
        w.kv(key, value);
    }
    let copy = dir.join("ggml-vocab-gpt-2-damaged-merges.gguf");
    w.write(&copy).unwrap();
    let extra = [
        "hello world",
        " quick",
        "The quick world",
        "Thelma",
        " world",
        "world",
        "wor",
        "uick",
        "zzqq",
        "Hello, hello world!",
    ];
    compare(&copy, &extra, 2000);

    let mut w = GgufWriter::default();
    w.kv("general.architecture", OwnedValue::str("gpt2"))
        .kv("tokenizer.ggml.model", OwnedValue::str("gpt2"))
        .kv("tokenizer.ggml.pre", OwnedValue::str("gpt-2"))
        .kv(
            "tokenizer.ggml.tokens",
            strings(&[
                "a", "b", "c", "d", "e", "abc", "de", "bd", "x", "qxd", "!", "Ġ",
            ]),
        )
        .kv(
            "tokenizer.ggml.merges",
            strings(&[
                "a b", "ab c", "d e", "b d", "q x", "qx d", "abcde", "e ", " d", "e d", "d e",
                "x z", "de e",
            ]),
        );
    let small = dir.join("small-damaged-merges.gguf");
    w.write(&small).unwrap();
    let extra = [
        "abc",
        "abd",
        "bd",
        "ab",
        "abcde",
        "qxd",
        "qx",
        "q!",
        "dee",
        "ed",
        "ede",
        "xz",
        "abc abd",
        "abcdeqxdbd",
    ];
    compare(&small, &extra, 500);
}
