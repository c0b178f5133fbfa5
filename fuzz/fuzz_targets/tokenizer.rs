//! Tokenizers: text through llama.cpp's test vocabularies (SPM, BPE with several
//! pre-tokenizers, the tiny model's SPM), with and without special-token parsing, then back to
//! text; and HF tokenizer.json files (the input carries the JSON after the text).
//!
//! Input: byte 0 picks the vocabulary, byte 1 the flags, then the text (the rest of the input;
//! for tokenizer.json: a length byte, the text, then the JSON).
//!
//! Round trips asserted (without special parsing, on valid UTF-8): byte-level BPE vocabularies
//! whose detokenizer keeps spaces as they are (deepseek-coder; llama-bpe, gpt-2 and qwen2 clean
//! up spaces before punctuation, as llama.cpp does, so `a '` comes back as `a'`) give back the
//! text exactly; SentencePiece ones too, since every byte has a fallback token
//! and the prefix space that tokenizing adds is removed again by detokenizing (texts holding
//! U+2581, SentencePiece's space marker, excepted).

#![no_main]

use std::sync::OnceLock;

use bitnet::gguf::MappedFile;
use bitnet::tokenizer::hf::HfTokenizer;
use bitnet::tokenizer::{Kind, Tokenizer};
use bitnet_fuzz::*;
use libfuzzer_sys::fuzz_target;

/// llama.cpp's test vocabularies (vocab-only GGUF files from the pinned sdist, found through
/// BITNET_FUZZ_VOCABS, which fuzz/run.sh sets), with whether the text round trip must hold.
const VOCABS: [(&str, bool); 10] = [
    ("llama-spm", true),
    ("phi-3", false),
    ("llama-bpe", false),
    ("gpt-2", false),
    ("qwen2", false),
    ("falcon", false),
    ("command-r", false),
    ("starcoder", false),
    ("deepseek-coder", true),
    ("gemma-4", false),
];

struct Loaded {
    name: String,
    tok: Tokenizer,
    round_trip: bool,
}

fn tokenizers() -> &'static [Loaded] {
    static ALL: OnceLock<Vec<Loaded>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = Vec::new();
        let tiny = MappedFile::open(tiny_model_path()).unwrap();
        all.push(Loaded {
            name: "tiny".into(),
            tok: Tokenizer::from_gguf(&tiny.gguf().unwrap()).unwrap(),
            round_trip: true,
        });
        match std::env::var_os("BITNET_FUZZ_VOCABS") {
            Some(dir) => {
                for (name, round_trip) in VOCABS {
                    let path = std::path::Path::new(&dir).join(format!("ggml-vocab-{name}.gguf"));
                    let file = MappedFile::open(&path)
                        .unwrap_or_else(|e| panic!("BITNET_FUZZ_VOCABS: {e}"));
                    let tok = Tokenizer::from_gguf(&file.gguf().unwrap()).unwrap();
                    all.push(Loaded {
                        name: name.into(),
                        tok,
                        round_trip,
                    });
                }
            }
            None => {
                eprintln!("tokenizer: BITNET_FUZZ_VOCABS not set, only the tiny SPM vocabulary")
            }
        }
        all
    })
}

fn gguf_tokenizer(t: &Loaded, flags: u8, text: &[u8]) {
    let add_special = flags & 1 != 0;
    let parse_special = flags & 2 != 0;
    let ids = t.tok.tokenize_bytes(text, add_special, parse_special);
    let n_vocab = t.tok.n_vocab() as u32;
    assert!(
        ids.iter().all(|&id| id < n_vocab),
        "{}: id out of range",
        t.name
    );
    let remove_special = flags & 4 != 0;
    let unparse = flags & 8 != 0;
    let back = t
        .tok
        .detokenize(&ids, remove_special, unparse)
        .expect("detokenize of own ids");
    // SentencePiece writes spaces as U+2581 and reads every U+2581 back as a space, so a text
    // that holds U+2581 itself cannot come back unchanged (llama.cpp's does the same).
    let spm_marker =
        t.tok.kind() == Kind::Spm && text.windows(3).any(|w| w == "\u{2581}".as_bytes());
    if t.round_trip
        && !add_special
        && !parse_special
        && !spm_marker
        && std::str::from_utf8(text).is_ok()
    {
        assert_eq!(
            String::from_utf8_lossy(&back),
            String::from_utf8_lossy(text),
            "{}: round trip of {text:?} through {ids:?}",
            t.name
        );
    }
    for &id in ids.iter().take(16) {
        let _ = t.tok.token_to_piece(id, (flags >> 4) as i32 & 3, unparse);
    }
    // Arbitrary ids (out of range included) are an error or text, never a crash.
    let raw: Vec<u32> = text
        .chunks(3)
        .map(|c| c.iter().fold(0u32, |a, &b| a << 8 | b as u32) % (n_vocab + 8))
        .collect();
    let _ = t.tok.detokenize(&raw, remove_special, unparse);
}

fn hf_tokenizer(flags: u8, input: &mut Input<'_>) {
    let text = String::from_utf8_lossy(input.chunk()).into_owned();
    let Ok(hf) = HfTokenizer::from_bytes(input.rest()) else {
        return;
    };
    let _ = hf.n_vocab();
    if let Ok(ids) = hf.tokenize(&text, flags & 1 != 0) {
        let _ = hf.detokenize(&ids, flags & 4 != 0);
        for &id in ids.iter().take(16) {
            if let Some(piece) = hf.token_text(id) {
                let _ = hf.token_id(&piece);
            }
        }
    }
    let _ = hf.detokenize(&[0, 1, u32::MAX], false);
}

/// HfTokenizer::from_bytes runs the tokenizers crate under the library's panic guard: some
/// hostile tokenizer.json files make that crate panic (an `expect("Helper")` in its decoder
/// deserializer), which the library turns into an error. libfuzzer-sys's hook aborts on every
/// panic, caught or not; this one lets the crate's own panics through to the guard.
fn tolerate_tokenizers_crate_panics() {
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info
            .location()
            .is_some_and(|l| l.file().contains("/tokenizers-"))
        {
            return;
        }
        abort(info)
    }));
}

// The vocabularies load in init (seconds), outside libFuzzer's per-input timeout.
fuzz_target!(init: { quiet(); tolerate_tokenizers_crate_panics(); tokenizers(); }, |data: &[u8]| {
    let all = tokenizers();
    let mut input = Input::new(data);
    let which = input.u8() as usize % (all.len() + 1);
    let flags = input.u8();
    if which == all.len() {
        hf_tokenizer(flags, &mut input);
    } else {
        gguf_tokenizer(&all[which], flags, input.rest());
    }
});
