//! Hugging Face `tokenizer.json` files through the `tokenizers` crate (`bitnet::tokenizer::hf`):
//! a hand-written byte-level BPE file with ids worked out by hand, errors for bad files, the
//! `bitnet tokenize --tokenizer-json` command, and the GPT-2 vocabulary of llama.cpp's tests
//! converted to a tokenizer.json, token for token against our GGUF tokenizer.

mod common;

use bitnet::gguf::MappedFile;
use bitnet::tokenizer::hf::HfTokenizer;
use bitnet::tokenizer::Tokenizer;
use bitnet::ErrorKind;
use common::*;

/// A byte-level BPE (GPT-2 style) in the tokenizer.json schema. Byte-level maps every byte to
/// a printable character: a space is `Ġ` (U+0120), `é` (C3 A9) is `Ã` (U+00C3) `©` (U+00A9).
/// Ids 0-7 are single characters, 8-15 merges (in merge order), 16 `<s>` (an added special
/// token the post-processor puts in front), 17-19 the two bytes of `é` and their merge.
const TINY: &str = r#"{
  "version": "1.0",
  "truncation": null,
  "padding": null,
  "added_tokens": [
    {"id": 16, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false,
     "normalized": false, "special": true}
  ],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                    "use_regex": true},
  "post_processor": {
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
               {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
             {"Sequence": {"id": "A", "type_id": 0}},
             {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [16], "tokens": ["<s>"]}}
  },
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
              "use_regex": true},
  "model": {
    "type": "BPE",
    "dropout": null,
    "unk_token": null,
    "continuing_subword_prefix": null,
    "end_of_word_suffix": null,
    "fuse_unk": false,
    "byte_fallback": false,
    "vocab": {
      "h": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4, "w": 5, "r": 6, "d": 7,
      "he": 8, "ll": 9, "hell": 10, "hello": 11, "Ġw": 12, "or": 13, "Ġwor": 14, "ld": 15,
      "<s>": 16, "Ã": 17, "©": 18, "Ã©": 19
    },
    "merges": ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ã ©"]
  }
}"#;

fn tiny() -> HfTokenizer {
    HfTokenizer::from_bytes(TINY.as_bytes()).unwrap()
}

#[test]
fn hand_written_bpe_gives_hand_computed_ids() {
    let t = tiny();
    assert_eq!(t.n_vocab(), 20);
    for (text, ids) in [
        // h e l l o: "h e" (rank 0), "l l" (1), "he ll" (2), "hell o" (3).
        ("hello", vec![11]),
        // Pre-tokens "hello" and "Ġworld"; Ġ w o r l d: "Ġ w" (4), "o r" (5), "Ġw or" (6),
        // "l d" (7).
        ("hello world", vec![11, 14, 15]),
        // h o l d: only "l d" applies.
        ("hold", vec![0, 3, 15]),
        // e l l: "l l".
        ("ell", vec![1, 9]),
        // é is two bytes, merged.
        ("é", vec![19]),
        ("hellé", vec![10, 19]),
        // An added token written in the text is recognized.
        ("<s>hello", vec![16, 11]),
        ("", vec![]),
    ] {
        assert_eq!(t.tokenize(text, false).unwrap(), ids, "{text:?}");
        // add_special: the post-processor's <s> in front.
        let mut with_bos = vec![16];
        with_bos.extend(&ids);
        assert_eq!(t.tokenize(text, true).unwrap(), with_bos, "{text:?}");
        // Round trip.
        assert_eq!(t.detokenize(&ids, false).unwrap(), text, "{text:?}");
        let skipped = text.strip_prefix("<s>").unwrap_or(text);
        assert_eq!(t.detokenize(&with_bos, true).unwrap(), skipped, "{text:?}");
    }
    assert_eq!(t.detokenize(&[16, 11], false).unwrap(), "<s>hello");
    assert_eq!(t.token_text(14).as_deref(), Some("Ġwor"));
    assert_eq!(t.token_id("Ã©"), Some(19));
    // An id outside the vocabulary is an error, not silently dropped.
    let e = t.detokenize(&[11, 20], false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadInput, "{e}");
    assert!(e.message.contains("20"), "{e}");
}

#[test]
fn bad_files_are_errors_naming_the_file() {
    let dir = scratch("tokenizer_hf_bad");
    let missing = dir.join("missing.json");
    let e = HfTokenizer::from_file(&missing).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Io, "{e}");
    assert!(e.message.contains("missing.json"), "{e}");

    for (name, text) in [
        ("truncated.json", &TINY[..TINY.len() / 2]),
        ("not_json.json", "this is not json"),
        ("empty.json", ""),
        ("wrong_model.json", r#"{"model": {"type": "NoSuchModel"}}"#),
        (
            "bad_merge.json",
            r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}"#,
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let e = HfTokenizer::from_file(&path).err().unwrap();
        assert_eq!(e.kind, ErrorKind::Format, "{name}: {e}");
        assert!(
            e.message.contains(&path.display().to_string()),
            "{name}: {e}"
        );
        assert!(!e.message.contains('\n'), "{name}: {e}");
    }
    let e = HfTokenizer::from_bytes(b"\xff\xfe").err().unwrap();
    assert_eq!(e.kind, ErrorKind::Format, "{e}");
}

#[test]
fn tokenize_command_takes_a_tokenizer_json() {
    let dir = scratch("tokenizer_hf_cli");
    let json = dir.join("tokenizer.json");
    std::fs::write(&json, TINY).unwrap();
    let json = json.to_str().unwrap();
    // No -m: the model is not needed (nor made).
    let out = bitnet(&["tokenize", "--tokenizer-json", json, "--ids", "hello world"]);
    assert_eq!(assert_ok("tokenize --ids", &out), "16 11 14 15\n");
    let out = bitnet(&[
        "tokenize",
        "--tokenizer-json",
        json,
        "--no-bos",
        "hello world",
    ]);
    assert_eq!(
        assert_ok("tokenize", &out),
        "    11 -> 'hello'\n    14 -> ' wor'\n    15 -> 'ld'\n"
    );
    let out = bitnet(&["tokenize", "--tokenizer-json", "/nonexistent/tok.json", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/tok.json"), "{err}");
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A GGUF byte-level BPE vocabulary (`tokenizer.ggml.model = gpt2`) as a tokenizer.json: the
/// GGUF keeps the byte-level strings and the merges as the HF files do.
fn gguf_bpe_to_json(g: &bitnet::gguf::Gguf<'_>) -> String {
    let strings = |key: &str| -> Vec<String> {
        g.get_array(key)
            .unwrap()
            .unwrap()
            .strings()
            .unwrap()
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens");
    let merges = strings("tokenizer.ggml.merges");
    let mut seen = std::collections::HashSet::new();
    let vocab: Vec<String> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| seen.insert(t.as_str()))
        .map(|(i, t)| format!("{}: {i}", json_str(t)))
        .collect();
    let merges: Vec<String> = merges.iter().map(|m| json_str(m)).collect();
    format!(
        r#"{{"version": "1.0", "added_tokens": [], "normalizer": null,
  "pre_tokenizer": {{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                     "use_regex": true}},
  "post_processor": null,
  "decoder": {{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
               "use_regex": true}},
  "model": {{"type": "BPE", "dropout": null, "unk_token": null,
             "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
             "byte_fallback": false, "vocab": {{{}}}, "merges": [{}]}}}}"#,
        vocab.join(", "),
        merges.join(", ")
    )
}

/// Test texts: llama.cpp's inputs for the vocabulary, then random mixes of words, numbers,
/// punctuation, contractions, whitespace runs and non-ASCII scripts.
fn corpus(vocab: &std::path::Path) -> Vec<String> {
    let mut inp = vocab.as_os_str().to_owned();
    inp.push(".inp");
    let inp = std::fs::read_to_string(inp).unwrap();
    let mut texts: Vec<String> = inp
        .split("\n__ggml_vocab_test__\n")
        .map(str::to_string)
        .collect();
    const PIECES: &[&str] = &[
        "the",
        "Hello",
        "world",
        " ",
        "  ",
        "   ",
        "\n",
        "\n\n",
        "\t",
        " \n ",
        "don't",
        "I'm",
        "we've",
        "they'll",
        "'s",
        "'RE",
        "'d",
        "123",
        "3.14",
        "1,000,000",
        "!",
        "?!",
        "...",
        "(",
        ")",
        "[x]",
        "{}",
        "#",
        "@user",
        "a_b",
        "C++",
        "e-mail",
        "é",
        "naïve",
        "Ünïcödé",
        "中文",
        "日本語のテキスト",
        "한국어",
        "Привет",
        "مرحبا",
        "ελληνικά",
        "🦙",
        "👍🏽",
        "ﬁ",
        "\u{00A0}",
        "\u{3000}",
        "\u{200B}",
        "x²",
        "½",
        "٣",
        "𝕏",
        "<|endoftext|>",
        "\r\n",
        "Ⅻ",
    ];
    let mut rng = SplitMix64(0x5eed_f00d);
    for _ in 0..400 {
        let n = 1 + rng.below(12) as usize;
        let text: String = (0..n)
            .map(|_| PIECES[rng.below(PIECES.len() as u64) as usize])
            .collect();
        texts.push(text);
    }
    texts
}

#[test]
fn gpt2_vocab_as_tokenizer_json_agrees_with_gguf() {
    let path = sdist_vocab("gpt-2");
    let f = MappedFile::open(&path).unwrap();
    let g = f.gguf().unwrap();
    let gguf = Tokenizer::from_gguf(&g).unwrap();
    let hf = HfTokenizer::from_bytes(gguf_bpe_to_json(&g).as_bytes()).unwrap();
    assert_eq!(hf.n_vocab(), gguf.n_vocab());

    let texts = corpus(&path);
    let mut differ = vec![];
    for text in &texts {
        let ours = gguf.tokenize(text, false, false);
        let theirs = hf.tokenize(text, false).unwrap();
        if ours != theirs {
            differ.push(format!("{text:?}: gguf {ours:?} hf {theirs:?}"));
        }
        assert_eq!(hf.detokenize(&theirs, false).unwrap(), *text, "{text:?}");
    }
    eprintln!(
        "gpt-2: {} of {} texts tokenize the same",
        texts.len() - differ.len(),
        texts.len()
    );
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
