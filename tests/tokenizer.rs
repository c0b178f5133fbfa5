//! The tokenizer beyond llama.cpp's test files: vocabulary-only files, the "default"
//! pre-tokenizer of files without `tokenizer.ggml.pre` (Microsoft's BitNet 2B-4T), special
//! tokens and BOS/EOS, llama.cpp's round-trip guarantees, bad vocabularies and bad input, speed
//! and the `bitnet tokenize` command.
//!
//! Expected ids below were produced by the pinned llama.cpp (`llama_tokenize` on the same
//! vocabulary) and are kept here as literals.

mod common;

use bitnet::gguf::writer::{GgufWriter, OwnedValue};
use bitnet::gguf::{Gguf, MappedFile, ValueType};
use bitnet::tokenizer::{attr, Kind, Tokenizer};
use bitnet::ErrorKind;
use common::*;

fn load(name: &str) -> Tokenizer {
    let f = MappedFile::open(sdist_vocab(name)).unwrap();
    let g = f.gguf().unwrap();
    Tokenizer::from_gguf(&g).unwrap()
}

/// A test vocabulary's metadata, edited, as the bytes of a new vocabulary-only GGUF file.
fn edited(name: &str, edit: impl FnOnce(&mut Vec<(String, OwnedValue)>)) -> Vec<u8> {
    let f = MappedFile::open(sdist_vocab(name)).unwrap();
    let g = f.gguf().unwrap();
    let mut w = GgufWriter {
        metadata: g
            .metadata()
            .iter()
            .map(|(k, v)| (k.to_string(), OwnedValue::from_value(v)))
            .collect(),
        ..GgufWriter::default()
    };
    edit(&mut w.metadata);
    w.to_bytes()
}

fn from_bytes(bytes: &[u8]) -> bitnet::Result<Tokenizer> {
    Tokenizer::from_gguf(&Gguf::parse(bytes)?)
}

fn set(meta: &mut Vec<(String, OwnedValue)>, key: &str, value: OwnedValue) {
    meta.retain(|(k, _)| k != key);
    meta.push((key.to_string(), value));
}

fn strings(items: &[&str]) -> OwnedValue {
    OwnedValue::Array(
        ValueType::String,
        items.iter().map(|s| OwnedValue::str(s)).collect(),
    )
}

#[test]
fn vocabulary_only_files_load() {
    for (name, kind, n) in [
        ("llama-spm", Kind::Spm, 32000),
        ("baichuan", Kind::Spm, 64000),
        ("llama-bpe", Kind::Bpe, 128256),
        ("gpt-neox", Kind::Bpe, 50432),
        ("gemma-4", Kind::Bpe, 262144),
    ] {
        let f = MappedFile::open(sdist_vocab(name)).unwrap();
        let g = f.gguf().unwrap();
        assert!(g.tensors().is_empty(), "{name} has tensors");
        let t = Tokenizer::from_gguf(&g).unwrap();
        assert_eq!((t.kind(), t.n_vocab()), (kind, n), "{name}");
    }
    // Tokenizers we do not implement are refused, not mistaken for others.
    for name in ["bert-bge", "nomic-bert-moe"] {
        let f = MappedFile::open(sdist_vocab(name)).unwrap();
        let e = Tokenizer::from_gguf(&f.gguf().unwrap()).err().unwrap();
        assert_eq!(e.kind, ErrorKind::Unsupported, "{name}: {e}");
    }
}

/// Microsoft's BitNet 2B-4T file has the Llama 3 vocabulary but no `tokenizer.ggml.pre`:
/// llama.cpp then splits words with its "default" patterns (and adds no BOS by default).
#[test]
fn missing_pre_tokenizer_means_default() {
    let bytes = edited("llama-bpe", |m| {
        m.retain(|(k, _)| k != "tokenizer.ggml.pre")
    });
    let t = from_bytes(&bytes).unwrap();
    assert_eq!(t.pre_name(), None);
    assert!(!t.add_bos());
    let llama3 = load("llama-bpe");

    let text = "Hello world! 12345 1,000,000 don't I'M x+y=z <tag> café 你好 😀\n\n  indented";
    let default_ids = [
        9906, 1917, 0, 220, 4513, 1774, 220, 16, 11, 931, 11, 931, 1541, 6, 83, 358, 6, 44, 865,
        10, 88, 28, 89, 220, 27, 4681, 29, 53050, 118195, 53901, 91416, 271, 220, 1280, 16243,
    ];
    let llama3_ids = [
        9906, 1917, 0, 220, 4513, 1774, 220, 16, 11, 931, 11, 931, 1541, 956, 358, 28703, 865,
        44110, 83670, 366, 4681, 29, 53050, 118195, 53901, 91416, 271, 220, 1280, 16243,
    ];
    assert_eq!(t.tokenize(text, false, false), default_ids);
    assert_eq!(llama3.tokenize(text, false, false), llama3_ids);

    let code = "    def f(x):\n        return x**2 + 1234567\n";
    assert_eq!(
        t.tokenize(code, true, false),
        [
            262, 711, 282, 7, 87, 1680, 198, 286, 471, 865, 334, 17, 220, 10, 220, 4513, 10961, 22,
            198
        ]
    );
    let prices = "The year 2024's price: $1,299.99 (approx.)|~^<=>";
    assert_eq!(
        t.tokenize(prices, false, false),
        [
            791, 1060, 220, 2366, 19, 6, 82, 3430, 25, 220, 3, 16, 11, 15531, 13, 1484, 220, 7,
            49153, 6266, 91, 93, 61, 27, 2228
        ]
    );
}

/// The 2B-4T chat format: special tokens written in the prompt are parsed only when asked.
#[test]
fn llama3_special_tokens() {
    let t = load("llama-bpe");
    assert_eq!(
        (t.bos(), t.eos(), t.eot()),
        (Some(128000), Some(128001), Some(128009))
    );
    assert!(t.add_bos() && !t.add_eos());
    assert!(t.is_eog(128001) && t.is_eog(128009) && !t.is_eog(128000) && !t.is_eog(9906));
    assert_ne!(t.token_attr(128009).unwrap() & attr::CONTROL, 0);

    let prompt = "System: You are helpful.<|eot_id|>User: hi<|eot_id|>Assistant: ";
    assert_eq!(
        t.tokenize(prompt, true, true),
        [128000, 2374, 25, 1472, 527, 11190, 13, 128009, 1502, 25, 15960, 128009, 72803, 25, 220]
    );
    // Not parsed: the text of the control token is tokenized like any text.
    let plain = t.tokenize(prompt, false, false);
    assert!(!plain.contains(&128009));
    assert_eq!(
        t.detokenize(&plain, false, false).unwrap(),
        prompt.as_bytes()
    );
    // A BOS written in the text and the one added.
    assert_eq!(
        t.tokenize("<|begin_of_text|>Hi", true, true),
        [128000, 128000, 13347]
    );

    // Pieces: control tokens render only when asked.
    assert_eq!(t.token_to_piece(128009, 0, true).unwrap(), b"<|eot_id|>");
    assert_eq!(t.token_to_piece(128009, 0, false).unwrap(), b"");
    assert_eq!(t.token_to_piece(1917, 0, false).unwrap(), b" world");
    assert_eq!(t.token_to_piece(1917, 1, false).unwrap(), b"world");
    let ids = t.tokenize(prompt, true, true);
    assert_eq!(
        t.detokenize(&ids, false, true).unwrap(),
        format!("<|begin_of_text|>{prompt}").as_bytes()
    );
    assert_eq!(
        t.detokenize(&ids, true, false).unwrap(),
        b"System: You are helpful.User: hiAssistant: "
    );
}

/// SentencePiece: the space prefix, BOS, and the leading-space rules of detokenization.
#[test]
fn spm_space_prefix_and_bos() {
    let t = load("llama-spm");
    assert_eq!(t.tokenize("Hello world", false, false), [15043, 3186]);
    assert_eq!(t.tokenize(" Hello", false, false), [29871, 15043]);
    assert_eq!(t.tokenize("", true, false), [1]);
    assert_eq!(t.tokenize("", false, false), Vec::<u32>::new());
    // Control tokens are parsed only when asked; after one the text gets a space prefix again.
    assert_eq!(
        t.tokenize("<s>Hi</s> there\n", true, false),
        [1, 529, 29879, 29958, 18567, 829, 29879, 29958, 727, 13]
    );
    assert_eq!(
        t.tokenize("<s>Hi</s> there\n", true, true),
        [1, 1, 6324, 2, 29871, 727, 13]
    );
    // Byte fallback.
    assert_eq!(
        t.tokenize("été 😀 你好", false, false),
        [4370, 29871, 243, 162, 155, 131, 29871, 30919, 31076]
    );

    let ids = [1, 15043, 3186];
    assert_eq!(t.detokenize(&ids, false, true).unwrap(), b"<s> Hello world");
    assert_eq!(t.detokenize(&ids, false, false).unwrap(), b" Hello world");
    assert_eq!(t.detokenize(&ids, true, false).unwrap(), b" Hello world");
    assert_eq!(
        t.detokenize(&ids[1..], false, false).unwrap(),
        b"Hello world"
    );
    assert_eq!(
        t.detokenize(&[1, 1, 6324, 2, 29871, 727, 13], false, true)
            .unwrap(),
        b"<s><s> Hi</s>  there\n"
    );
}

fn is_utf8(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok()
}

/// llama.cpp's tests/test-tokenizer-1-{spm,bpe}.cpp: every token's text tokenizes back to text
/// that detokenizes to the same (for texts that are UTF-8), and so does every codepoint.
fn round_trips(name: &str) {
    let t = load(name);
    for id in 0..t.n_vocab() as u32 {
        let text = t.detokenize(&[id], false, true).unwrap();
        if !is_utf8(&text) {
            continue;
        }
        let ids = t.tokenize_bytes(&text, false, true);
        let back = t.detokenize(&ids, false, true).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&back),
            String::from_utf8_lossy(&text),
            "{name}: token {id}"
        );
    }
    for cp in (0..0x110000u32)
        .filter(|c| !(0xD800..=0xDFFF).contains(c) && !(0x40000..=0xE0000).contains(c))
    {
        if cp == 0x2581 {
            continue;
        }
        let s = char::from_u32(cp).unwrap().to_string();
        let ids = t.tokenize(&s, false, false);
        let back = t.detokenize(&ids, false, true).unwrap();
        assert_eq!(back, s.as_bytes(), "{name}: U+{cp:04X} -> {ids:?}");
    }
}

#[test]
fn spm_round_trips() {
    round_trips("llama-spm");
}

#[test]
fn bpe_round_trips() {
    round_trips("llama-bpe");
}

/// Text without the patterns llama.cpp's space clean-up rewrites comes back byte for byte.
#[test]
fn random_text_round_trips() {
    let pieces = [
        "a",
        "Zeta",
        " ",
        "  ",
        "\n",
        "\t",
        "42",
        "1234567",
        "é",
        "中文",
        "😀",
        "-",
        "(",
        ")",
        "\"",
        "Привет",
        " the",
        "\r\n",
        "<|eot_id|>",
        "<s>",
    ];
    let mut rng = SplitMix64(99);
    for name in ["llama-spm", "llama-bpe"] {
        let t = load(name);
        for _ in 0..2000 {
            let n = rng.below(20) as usize;
            let s: String = (0..n)
                .map(|_| pieces[rng.below(pieces.len() as u64) as usize])
                .collect();
            let ids = t.tokenize(&s, false, false);
            assert_eq!(
                String::from_utf8(t.detokenize(&ids, false, false).unwrap()).unwrap(),
                s,
                "{name}"
            );
        }
    }
}

/// Random bytes (mostly invalid UTF-8) and random ids never panic; bad ids are errors.
#[test]
fn bad_input_never_panics() {
    let mut rng = SplitMix64(7);
    for name in [
        "llama-spm",
        "phi-3",
        "llama-bpe",
        "gpt-2",
        "deepseek-llm",
        "falcon",
        "qwen35",
    ] {
        let t = load(name);
        let n = t.n_vocab() as u64;
        for _ in 0..300 {
            let len = rng.below(64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.below(4) {
                    0 => b"<|>s/ \n"[rng.below(7) as usize],
                    _ => rng.below(256) as u8,
                })
                .collect();
            for (add, parse) in [(false, false), (true, true)] {
                let ids = t.tokenize_bytes(&bytes, add, parse);
                assert!(ids.iter().all(|&i| (i as u64) < n));
                t.detokenize(&ids, false, true).unwrap();
                t.detokenize(&ids, true, false).unwrap();
            }
            let ids: Vec<u32> = (0..rng.below(10))
                .map(|_| rng.below(n + 10) as u32)
                .collect();
            match t.detokenize(&ids, false, true) {
                Ok(_) => assert!(ids.iter().all(|&i| (i as u64) < n)),
                Err(e) => assert_eq!(e.kind, ErrorKind::BadInput),
            }
        }
        assert!(t.token_to_piece(u32::MAX, 0, true).is_err());
        assert!(t.token_to_piece(n as u32, 0, false).is_err());
        // Long runs of one class (the regex engine backtracks without recursion).
        for run in ["!", " ", "9", "a", "\n", "é", "\u{3000}"] {
            let s = run.repeat(100_000);
            let ids = t.tokenize(&s, false, false);
            assert_eq!(
                t.detokenize(&ids, false, false).unwrap(),
                s.as_bytes(),
                "{name}"
            );
        }
    }
}

fn load_err(bytes: &[u8]) -> bitnet::Error {
    match from_bytes(bytes) {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    }
}

/// A merge list with entries that are no merges of two tokens into a token loads, and tokenizes
/// as llama.cpp does: merges are pairs of texts (split at the first space after the first byte,
/// ranked by position, a repeated pair keeping its first rank), symbols merge by text, and a
/// symbol whose text is no token is written as the byte tokens of its bytes (dropping bytes that
/// are no token). An entry without two parts never applies. The ids below follow those rules by
/// hand; crossval's tokenizer test checks a damaged real vocabulary against llama.cpp itself.
#[test]
fn damaged_merges_tokenize_as_llama_cpp() {
    let tokens = [
        "a", "b", "c", "d", "e", "abc", "de", "bd", "x", "qxd", "!", "Ġ",
    ];
    let merges = [
        "a b",   // 0: the result "ab" is not a token
        "ab c",  // 1: the left part is not a token; uses the result of 0
        "d e",   // 2: a normal merge
        "b d",   // 3: a normal merge, but "a b" comes first
        "q x",   // 4: "q" is not even a byte token; the result "qx" is not a token
        "qx d",  // 5: uses the result of 4, makes a token
        "abcde", // no space: never applies
        "e ",    // nothing after the space: never applies
        " d",    // the space is the first byte: no split, never applies
        "e d",   // 9: a normal merge that is not shadowed by the entries above
        "d e",   // repeated: keeps rank 2
        "x z",   // 11: the right part is not a token
        "de e",  // 12: the result "dee" is not a token
    ];
    let mut w = GgufWriter::default();
    w.kv("general.architecture", OwnedValue::str("gpt2"))
        .kv("tokenizer.ggml.model", OwnedValue::str("gpt2"))
        .kv("tokenizer.ggml.pre", OwnedValue::str("gpt-2"))
        .kv("tokenizer.ggml.tokens", strings(&tokens))
        .kv("tokenizer.ggml.merges", strings(&merges));
    let tok = from_bytes(&w.to_bytes()).unwrap();
    let ids = |text: &str| tok.tokenize(text, false, false);
    // a,b,c -> "ab" (0) -> "abc" (1).
    assert_eq!(ids("abc"), [5]);
    // a,b,d: "a b" (rank 0) beats "b d" (rank 3); "ab" is no token: its bytes a, b.
    assert_eq!(ids("abd"), [0, 1, 3]);
    assert_eq!(ids("bd"), [7]);
    // "ab" alone: bytes.
    assert_eq!(ids("ab"), [0, 1]);
    // a,b,c,d,e -> ab -> abc, then d,e -> de.
    assert_eq!(ids("abcde"), [5, 6]);
    // q,x,d -> "qx" -> "qxd" (a token), though "q" is none.
    assert_eq!(ids("qxd"), [9]);
    // q,x -> "qx", no token: its bytes; "q" is no token either and is dropped.
    assert_eq!(ids("qx"), [8]);
    // q alone: dropped.
    assert_eq!(ids("q!"), [10]);
    // d,e,e: "d e" (rank 2) then "de e" (12) -> "dee", no token: d, e, e. "e d" never fires.
    assert_eq!(ids("dee"), [3, 4, 4]);
    // e,d: "e d" (rank 9), not a token: e, d.
    assert_eq!(ids("ed"), [4, 3]);
    // e,d,e: "d e" (2) beats "e d" (9): e, de.
    assert_eq!(ids("ede"), [4, 6]);
    // x,z: "z" is no token, so x, then z dropped.
    assert_eq!(ids("xz"), [8]);
    // Words stay apart: " abc" is "Ġabc" and "Ġ" never merges.
    assert_eq!(ids("abc abd"), [5, 11, 0, 1, 3]);
}

/// Broken vocabularies are refused at load with a message saying what is wrong.
#[test]
fn bad_vocabularies_are_clear_errors() {
    let expect = |bytes: Vec<u8>, words: &str| {
        let e = load_err(&bytes);
        assert!(
            e.message.contains(words),
            "{words:?} not in {:?}",
            e.message
        );
    };
    expect(
        edited("gpt-2", |m| m.retain(|(k, _)| k != "tokenizer.ggml.tokens")),
        "tokenizer.ggml.tokens is missing",
    );
    expect(
        edited("gpt-2", |m| m.retain(|(k, _)| k != "tokenizer.ggml.merges")),
        "tokenizer.ggml.merges is missing",
    );
    expect(
        edited("gpt-2", |m| m.retain(|(k, _)| k != "tokenizer.ggml.model")),
        "tokenizer.ggml.model is missing",
    );
    expect(
        edited("gpt-2", |m| {
            set(m, "tokenizer.ggml.model", OwnedValue::str("t5"))
        }),
        "not supported",
    );
    expect(
        edited("gpt-2", |m| {
            set(m, "tokenizer.ggml.pre", OwnedValue::str("no-such-pre"))
        }),
        "unknown pre-tokenizer",
    );
    expect(
        edited("gpt-2", |m| {
            set(m, "tokenizer.ggml.tokens", OwnedValue::U32(3))
        }),
        "tokenizer.ggml.tokens",
    );
    expect(
        edited("gpt-2", |m| {
            set(
                m,
                "tokenizer.ggml.merges",
                OwnedValue::Array(ValueType::U32, vec![OwnedValue::U32(1)]),
            )
        }),
        "tokenizer.ggml.merges: expected an array of strings",
    );
    expect(
        edited("llama-spm", |m| {
            set(
                m,
                "tokenizer.ggml.tokens",
                strings(&["<unk>", "<s>", "a", "a"]),
            );
            set(
                m,
                "tokenizer.ggml.scores",
                OwnedValue::Array(ValueType::F32, vec![OwnedValue::F32(0.0); 4]),
            );
            set(
                m,
                "tokenizer.ggml.token_type",
                OwnedValue::Array(ValueType::I32, vec![OwnedValue::I32(1); 4]),
            );
        }),
        "duplicates token 2",
    );
    expect(
        edited("llama-spm", |m| {
            set(
                m,
                "tokenizer.ggml.scores",
                OwnedValue::Array(ValueType::F32, vec![OwnedValue::F32(0.0); 10]),
            );
        }),
        "10 scores for 32000 tokens",
    );
    expect(
        edited("llama-spm", |m| {
            set(
                m,
                "tokenizer.ggml.token_type",
                OwnedValue::Array(ValueType::F32, vec![]),
            );
        }),
        "expected i32 elements",
    );
    expect(
        edited("llama-spm", |m| {
            set(
                m,
                "tokenizer.ggml.tokens",
                strings(&["<unk>", "<s>", "</s>", "<0"]),
            );
            set(
                m,
                "tokenizer.ggml.scores",
                OwnedValue::Array(ValueType::F32, vec![OwnedValue::F32(0.0); 4]),
            );
            let types = [2, 3, 3, 6].map(OwnedValue::I32).to_vec();
            set(
                m,
                "tokenizer.ggml.token_type",
                OwnedValue::Array(ValueType::I32, types),
            );
        }),
        "not of the form <0xNN>",
    );
    expect(
        edited("gpt-2", |m| {
            set(m, "tokenizer.ggml.bos_token_id", OwnedValue::F32(1.0))
        }),
        "tokenizer.ggml.bos_token_id",
    );

    // Out-of-range special ids are warned about and ignored, as llama.cpp does.
    let t = from_bytes(&edited("llama-spm", |m| {
        set(m, "tokenizer.ggml.eos_token_id", OwnedValue::U32(1_000_000));
    }))
    .unwrap();
    assert_eq!(t.eos(), Some(2));

    // Random damage to the metadata of a real vocabulary: errors or a working tokenizer.
    let clean = edited("llama-spm", |_| {});
    let mut rng = SplitMix64(5);
    for _ in 0..200 {
        let mut bytes = clean.clone();
        for _ in 0..4 {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
        }
        if let Ok(t) = from_bytes(&bytes) {
            let ids = t.tokenize("Hello <s> world", true, true);
            let _ = t.detokenize(&ids, false, true);
        }
    }
}

/// Tokenizing 1 MB of English should take well under a second in release builds.
#[test]
fn a_megabyte_is_fast() {
    let sentence = "The quick brown fox jumps over the lazy dog; it's 42 degrees, isn't it? \
                    Numbers like 3.14159 and 2024 appear in text.\n";
    let text = sentence.repeat((1 << 20) / sentence.len());
    for name in ["llama-bpe", "llama-spm"] {
        let t = load(name);
        let start = std::time::Instant::now();
        let ids = t.tokenize(&text, true, true);
        let took = start.elapsed();
        eprintln!(
            "{name}: {} bytes -> {} tokens in {took:?}",
            text.len(),
            ids.len()
        );
        assert_eq!(
            t.detokenize(&ids, true, false).unwrap().len(),
            text.len() + usize::from(name == "llama-spm")
        );
        if !cfg!(debug_assertions) {
            assert!(took.as_secs_f64() < 2.0, "{name}: {took:?}");
        }
    }
    // Without a pre-tokenizer name, llama.cpp's default patterns (regex-based) are used.
    let t = from_bytes(&edited("llama-bpe", |m| {
        m.retain(|(k, _)| k != "tokenizer.ggml.pre")
    }))
    .unwrap();
    let start = std::time::Instant::now();
    let ids = t.tokenize(&text, false, false);
    eprintln!("default: {} tokens in {:?}", ids.len(), start.elapsed());
    if !cfg!(debug_assertions) {
        assert!(start.elapsed().as_secs_f64() < 2.0);
    }
}

#[test]
fn cli_tokenize() {
    let vocab = sdist_vocab("llama-bpe");
    let vocab = vocab.to_str().unwrap();
    let out = assert_ok(
        "bitnet tokenize",
        &bitnet(&["tokenize", "-m", vocab, "Hello world<|eot_id|>"]),
    );
    assert_eq!(
        out.lines().next().unwrap().trim(),
        "128000 -> '<|begin_of_text|>'"
    );
    assert!(out.contains("  1917 -> ' world'"));
    let out = assert_ok(
        "bitnet tokenize --ids --special",
        &bitnet(&[
            "tokenize",
            "-m",
            vocab,
            "--special",
            "--ids",
            "Hello world<|eot_id|>",
        ]),
    );
    assert_eq!(out, "128000 9906 1917 128009\n");
    let out = assert_ok(
        "bitnet tokenize --no-bos",
        &bitnet(&[
            "tokenize", "-m", vocab, "--no-bos", "--ids", "--", "-x", "y",
        ]),
    );
    assert_eq!(out, "6695 379\n");

    // -f - reads standard input.
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(["tokenize", "-m", vocab, "--ids", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"Hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "128000 9906 198\n");

    let out = bitnet(&["tokenize", "-m", vocab]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no TEXT"));
    let out = bitnet(&["tokenize", "-m", "/nonexistent.gguf", "x"]);
    assert!(!out.status.success());
}

/// Full model files load for tokenization too (the tensors are not looked at).
#[test]
fn fixture_models_load() {
    let mut loaded = 0;
    for path in models() {
        let f = MappedFile::open(&path).unwrap();
        let g = f.gguf().unwrap();
        if g.get("tokenizer.ggml.model").is_none() {
            continue;
        }
        let t = Tokenizer::from_gguf(&g).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let ids = t.tokenize("Hello world", false, false);
        assert_eq!(t.detokenize(&ids, false, false).unwrap(), b"Hello world");
        loaded += 1;
    }
    assert!(loaded >= 5, "{loaded} fixture models have a tokenizer");
}
