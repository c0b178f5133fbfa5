//! The tokenizer files of a checkpoint as GGUF `tokenizer.ggml.*` metadata:
//! - `tokenizer.json` with a byte-level BPE model (Llama-3's, Microsoft's 2B-4T): model `gpt2`,
//!   tokens, merges, token types, and the pre-tokenizer named from its split regex;
//! - `tokenizer.model`, a SentencePiece model (1bitLLM's Llama-2 vocabulary): model `llama`,
//!   pieces, scores and types read from its protobuf;
//! - `tokenizer_config.json`: added tokens, `add_bos_token` / `add_eos_token`, `chat_template`.
//!
//! Token ids the files leave empty below the config's `vocab_size` become `[PAD<id>]` (type
//! unused); ids at or past it are refused.

use std::path::Path;

use serde_json::Value as Json;

use super::config::{read_json, Config};
use crate::gguf::writer::OwnedValue;
use crate::gguf::ValueType;
use crate::{Error, Result};

/// llama.cpp's token types (the same numbers as SentencePiece's piece types; 6 is BYTE).
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

/// Llama-3's pre-tokenizer split (transformers' `tokenizer.json` spelling): llama.cpp's
/// `llama-bpe`.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The vocabulary as metadata entries, in file order.
pub struct Vocab {
    pub entries: Vec<(String, OwnedValue)>,
    /// A one-line summary for the report.
    pub summary: String,
}

/// The text of an id the tokenizer files leave empty.
fn pad_text(id: usize) -> Vec<u8> {
    format!("[PAD{id}]").into_bytes()
}

struct Tokens {
    pieces: Vec<Option<Vec<u8>>>,
    scores: Vec<f32>,
    types: Vec<i32>,
}

impl Tokens {
    fn new(n: usize) -> Tokens {
        Tokens {
            pieces: vec![None; n],
            scores: vec![0.0; n],
            types: vec![NORMAL; n],
        }
    }

    fn set(&mut self, id: u64, piece: &[u8], score: f32, ty: i32, file: &str) -> Result<()> {
        let n = self.pieces.len();
        let i = usize::try_from(id).ok().filter(|&i| i < n).ok_or_else(|| {
            Error::format(format!(
                "{file}: token id {id} ({}) is not below the config's vocab_size {n}",
                String::from_utf8_lossy(piece)
            ))
        })?;
        // The loader reads a BYTE token's byte from its text ("<0xNN>"); llama.cpp throws at
        // load on one too short to hold it, so such a file would load nowhere.
        if ty == BYTE && crate::tokenizer::vocab::byte_of_byte_token(piece).is_none() {
            return Err(Error::format(format!(
                "{file}: token {id} ({}) has the BYTE type but is not a <0xNN> token",
                String::from_utf8_lossy(piece)
            )));
        }
        self.pieces[i] = Some(piece.to_vec());
        self.scores[i] = score;
        self.types[i] = ty;
        Ok(())
    }

    /// Added tokens from `tokenizer_config.json`'s `added_tokens_decoder` ({id: {content,
    /// special}}) or `tokenizer.json`'s `added_tokens` ([{id, content, special}]).
    fn add(&mut self, id: u64, entry: &Json, file: &str) -> Result<()> {
        let content = entry
            .get("content")
            .and_then(Json::as_str)
            .ok_or_else(|| Error::format(format!("{file}: added token {id} has no content")))?;
        let special = entry
            .get("special")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let ty = if special { CONTROL } else { USER_DEFINED };
        self.set(id, content.as_bytes(), 0.0, ty, file)
    }

    fn find(&self, piece: &str) -> Option<u32> {
        self.pieces
            .iter()
            .position(|p| p.as_deref() == Some(piece.as_bytes()))
            .map(|i| i as u32)
    }

    /// Every token's text as it goes into the file: its piece, `[PAD<id>]` for an id left
    /// empty, and `[EMPTY_<id>]` for an empty piece (what the loader reads an empty one as).
    fn texts(&self) -> impl Iterator<Item = std::borrow::Cow<'_, [u8]>> {
        use std::borrow::Cow;
        self.pieces
            .iter()
            .enumerate()
            .map(|(i, p)| match p.as_deref() {
                None => Cow::Owned(pad_text(i)),
                Some([]) => Cow::Owned(format!("[EMPTY_{i}]").into_bytes()),
                Some(p) => Cow::Borrowed(p),
            })
    }

    /// The loader (like llama.cpp, which asserts it) needs every token's text to be distinct:
    /// a vocabulary with two equal tokens is refused here rather than written to a file that
    /// does not load.
    fn check_distinct(&self) -> Result<()> {
        let mut seen = std::collections::HashMap::with_capacity(self.pieces.len());
        for (i, text) in self.texts().enumerate() {
            if let Some(first) = seen.insert(text.clone(), i) {
                return Err(Error::format(format!(
                    "token {i} {:?} is the same text as token {first}: a GGUF vocabulary needs \
                     distinct tokens (tokenizer files and tokenizer_config.json's added tokens \
                     together)",
                    String::from_utf8_lossy(&text)
                )));
            }
        }
        Ok(())
    }

    fn into_entries(self, model: &str, pre: &str) -> Vec<(String, OwnedValue)> {
        let types = (self.types.iter().zip(&self.pieces))
            .map(|(&t, p)| OwnedValue::I32(if p.is_some() { t } else { UNUSED }))
            .collect();
        let pieces = self
            .pieces
            .into_iter()
            .enumerate()
            .map(|(i, p)| OwnedValue::String(p.unwrap_or_else(|| pad_text(i))))
            .collect();
        let scores = self.scores.iter().map(|&s| OwnedValue::F32(s)).collect();
        vec![
            ("tokenizer.ggml.model".into(), OwnedValue::str(model)),
            ("tokenizer.ggml.pre".into(), OwnedValue::str(pre)),
            (
                "tokenizer.ggml.tokens".into(),
                OwnedValue::Array(ValueType::String, pieces),
            ),
            (
                "tokenizer.ggml.scores".into(),
                OwnedValue::Array(ValueType::F32, scores),
            ),
            (
                "tokenizer.ggml.token_type".into(),
                OwnedValue::Array(ValueType::I32, types),
            ),
        ]
    }
}

/// A tokenizer file read: the tokens and what the model type adds.
struct Parsed {
    tokens: Tokens,
    model: &'static str,
    pre: &'static str,
    add_bos: Option<bool>,
    merges: Option<OwnedValue>,
}

/// Reads the tokenizer of checkpoint folder `dir` (`tokenizer.model` for SentencePiece, else
/// `tokenizer.json` for byte-level BPE).
pub fn read(dir: &Path, config: &Config) -> Result<Vocab> {
    let tok_config_path = dir.join("tokenizer_config.json");
    let tok_config = if tok_config_path.exists() {
        Some(read_json(&tok_config_path)?)
    } else {
        None
    };
    let json_path = dir.join("tokenizer.json");
    let spm_path = dir.join("tokenizer.model");
    let mut p = if spm_path.exists() {
        let bytes = std::fs::read(&spm_path)
            .map_err(|e| Error::io(format!("cannot read {}: {e}", spm_path.display())))?;
        read_spm(&bytes, config.shape.n_vocab).map_err(|e| e.context(spm_path.display()))?
    } else if json_path.exists() {
        let json = read_json(&json_path)?;
        read_bpe(&json, config.shape.n_vocab).map_err(|e| e.context(json_path.display()))?
    } else {
        return Err(Error::bad_input(format!(
            "{}: no tokenizer.model and no tokenizer.json",
            dir.display()
        )));
    };
    let mut add_eos = None;
    let mut template = None;
    if let Some(tc) = &tok_config {
        let file = "tokenizer_config.json";
        if let Some(decoder) = tc.get("added_tokens_decoder").and_then(Json::as_object) {
            for (id, entry) in decoder {
                let id: u64 = id
                    .parse()
                    .map_err(|_| Error::format(format!("{file}: added token id {id:?}")))?;
                // a SentencePiece model's own pieces keep their scores and types
                let own = p.model == "llama"
                    && p.tokens
                        .pieces
                        .get(id as usize)
                        .is_some_and(Option::is_some);
                if !own {
                    p.tokens.add(id, entry, file)?;
                }
            }
        }
        if let Some(b) = tc.get("add_bos_token").and_then(Json::as_bool) {
            p.add_bos = Some(b);
        }
        add_eos = tc.get("add_eos_token").and_then(Json::as_bool);
        template = match tc.get("chat_template") {
            Some(Json::String(t)) => Some(t.clone()),
            Some(Json::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(Json::as_str)
                .map(str::to_string),
            _ => None,
        };
    }
    let n = p.tokens.pieces.len();
    let mut ids: Vec<(String, OwnedValue)> = vec![];
    let unknown = p.tokens.types.iter().position(|&t| t == UNKNOWN);
    for (key, id) in [
        ("bos_token_id", config.bos),
        ("eos_token_id", config.eos),
        ("padding_token_id", config.pad),
        ("eot_token_id", p.tokens.find("<|eot_id|>")),
        ("unknown_token_id", unknown.map(|i| i as u32)),
    ] {
        match id {
            Some(i) if (i as usize) >= n => {
                return Err(Error::format(format!(
                    "config {key} {i} is not below vocab_size {n}"
                )))
            }
            Some(i) => ids.push((format!("tokenizer.ggml.{key}"), OwnedValue::U32(i))),
            None => {}
        }
    }
    for (key, flag) in [("add_bos_token", p.add_bos), ("add_eos_token", add_eos)] {
        if let Some(b) = flag {
            ids.push((format!("tokenizer.ggml.{key}"), OwnedValue::Bool(b)));
        }
    }
    let summary = format!(
        "{} vocabulary of {n} tokens, pre-tokenizer {}",
        p.model, p.pre
    );
    p.tokens.check_distinct()?;
    let mut entries = p.tokens.into_entries(p.model, p.pre);
    if let Some(m) = p.merges {
        entries.push(("tokenizer.ggml.merges".into(), m));
    }
    entries.extend(ids);
    if let Some(t) = template {
        entries.push(("tokenizer.chat_template".into(), OwnedValue::str(&t)));
    }
    Ok(Vocab { entries, summary })
}

/// The split regexes of a `tokenizer.json` pre-tokenizer (a `Split` alone or in a `Sequence`).
fn split_patterns(pre: &Json) -> Vec<&str> {
    match pre.get("type").and_then(Json::as_str) {
        Some("Sequence") => pre
            .get("pretokenizers")
            .and_then(Json::as_array)
            .map(|l| l.iter().flat_map(split_patterns).collect())
            .unwrap_or_default(),
        Some("Split") => pre
            .get("pattern")
            .and_then(|p| p.get("Regex"))
            .and_then(Json::as_str)
            .into_iter()
            .collect(),
        _ => vec![],
    }
}

/// A byte-level BPE `tokenizer.json`.
fn read_bpe(json: &Json, n_vocab: usize) -> Result<Parsed> {
    let model = json
        .get("model")
        .ok_or_else(|| Error::format("no \"model\""))?;
    let kind = model.get("type").and_then(Json::as_str).unwrap_or("");
    if kind != "BPE" {
        return Err(Error::unsupported(format!(
            "tokenizer model {kind:?}: only byte-level \"BPE\" tokenizer.json files are converted"
        )));
    }
    let pre_tok = json.get("pre_tokenizer").unwrap_or(&Json::Null);
    let patterns = split_patterns(pre_tok);
    let pre = match patterns[..] {
        [p] if p == LLAMA3_SPLIT => "llama-bpe",
        [] if pre_tok.get("type").and_then(Json::as_str) == Some("ByteLevel")
            && pre_tok.get("use_regex").and_then(Json::as_bool) != Some(false) =>
        {
            "gpt-2"
        }
        _ => {
            return Err(Error::unsupported(format!(
                "pre-tokenizer split {patterns:?} is not one we name (Llama-3's or GPT-2's): \
                 a wrong pre-tokenizer would tokenize silently wrong"
            )))
        }
    };
    let vocab = model
        .get("vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| Error::format("model.vocab is not an object"))?;
    let mut tokens = Tokens::new(n_vocab);
    for (piece, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| Error::format(format!("model.vocab[{piece:?}] is not an id")))?;
        tokens.set(id, piece.as_bytes(), 0.0, NORMAL, "tokenizer.json")?;
    }
    for entry in json
        .get("added_tokens")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let id = entry
            .get("id")
            .and_then(Json::as_u64)
            .ok_or_else(|| Error::format("an added token has no id"))?;
        tokens.add(id, entry, "tokenizer.json")?;
    }
    let merges = model
        .get("merges")
        .and_then(Json::as_array)
        .ok_or_else(|| Error::format("model.merges is not a list"))?
        .iter()
        .map(|m| match m {
            Json::String(s) => Ok(OwnedValue::str(s)),
            Json::Array(pair) => match &pair[..] {
                [Json::String(a), Json::String(b)] => Ok(OwnedValue::str(&format!("{a} {b}"))),
                _ => Err(Error::format(format!("merge {m} is not a pair of strings"))),
            },
            _ => Err(Error::format(format!(
                "merge {m} is not a string or a pair"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    // transformers adds BOS when the post-processor's template starts with a special token
    let add_bos = json
        .get("post_processor")
        .map(|pp| pp.to_string().contains("<|begin_of_text|>"));
    Ok(Parsed {
        tokens,
        model: "gpt2",
        pre,
        add_bos,
        merges: Some(OwnedValue::Array(ValueType::String, merges)),
    })
}

/// A protobuf reader for the few messages of a SentencePiece model: fields are
/// (number, wire type) followed by a varint, 8 or 4 bytes, or a length-delimited payload.
struct Proto<'a> {
    bytes: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    Other,
}

impl<'a> Proto<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .bytes
                .get(self.pos)
                .ok_or_else(|| Error::format("protobuf ends inside a varint"))?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::format("protobuf varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(Error::format(format!(
                "protobuf field of {n} bytes runs past the end ({left} left)"
            )));
        }
        let out = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(out)
    }

    /// The next (field number, value), or None at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>> {
        if self.pos == self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Other
            }
            2 => {
                let n = self.varint()?;
                Field::Bytes(self.take(n)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().expect("4"))),
            w => {
                return Err(Error::format(format!(
                    "protobuf wire type {w} is not supported"
                )))
            }
        };
        Ok(Some((key >> 3, field)))
    }
}

/// A SentencePiece `tokenizer.model`: ModelProto field 1 holds the pieces (piece = 1,
/// score = 2, type = 3).
fn read_spm(bytes: &[u8], n_vocab: usize) -> Result<Parsed> {
    let mut tokens = Tokens::new(n_vocab);
    let mut model = Proto { bytes, pos: 0 };
    let mut id = 0u64;
    while let Some((number, field)) = model.next()? {
        let (1, Field::Bytes(piece_msg)) = (number, field) else {
            continue;
        };
        let (mut piece, mut score, mut ty) = (None, 0f32, NORMAL);
        let mut msg = Proto {
            bytes: piece_msg,
            pos: 0,
        };
        while let Some((n, f)) = msg.next()? {
            match (n, f) {
                (1, Field::Bytes(p)) => piece = Some(p),
                (2, Field::Fixed32(s)) => score = f32::from_bits(s),
                (3, Field::Varint(t)) if (1..=6).contains(&t) => ty = t as i32,
                (3, Field::Varint(t)) => {
                    return Err(Error::format(format!("piece {id} has type {t}")))
                }
                _ => {}
            }
        }
        let piece = piece.ok_or_else(|| Error::format(format!("piece {id} has no text")))?;
        tokens.set(id, piece, score, ty, "tokenizer.model")?;
        id += 1;
    }
    if id == 0 {
        return Err(Error::format("no pieces: not a SentencePiece model"));
    }
    Ok(Parsed {
        tokens,
        model: "llama",
        pre: "default",
        add_bos: Some(true),
        merges: None,
    })
}
