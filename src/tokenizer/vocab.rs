//! The vocabulary read from GGUF metadata, with everything llama.cpp's vocabulary loader derives
//! from it: token attributes (including the overrides it applies by token text), the special
//! token ids and which tokens end generation, the merge table, and each token's piece.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::pretokenize::{self, PreTokenizer};
use super::unicode;
use crate::error::{Error, Result};
use crate::gguf::{Array, Gguf, Value, ValueType};

/// Token attributes (llama.h's `llama_token_attr` bits).
pub mod attr {
    pub const UNDEFINED: u32 = 0;
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;
    pub const NORMALIZED: u32 = 1 << 6;
    pub const LSTRIP: u32 = 1 << 7;
    pub const RSTRIP: u32 = 1 << 8;
    pub const SINGLE_WORD: u32 = 1 << 9;
}

/// The attribute a GGUF `tokenizer.ggml.token_type` value stands for.
fn attr_of_type(token_type: i32) -> u32 {
    match token_type {
        1 => attr::NORMAL,
        2 => attr::UNKNOWN,
        3 => attr::CONTROL,
        4 => attr::USER_DEFINED,
        5 => attr::UNUSED,
        6 => attr::BYTE,
        _ => attr::UNDEFINED,
    }
}

/// FxHash: the vocabulary maps are hit once or more per character of text, and their keys come
/// from the model file, so a fast non-keyed hash is the right trade.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.add(b as u64);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.add(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub type FxBuild = BuildHasherDefault<FxHasher>;

/// The tokenizer algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `llama`: SentencePiece-style, merges by score, byte fallback `<0xNN>`.
    Spm,
    /// `gpt2` (and `gemma4`): BPE with ranked merges after a pre-tokenizer.
    Bpe,
}

/// One merge rule: the rank (lower merges first) and the id of the text it makes: a token, or,
/// from `n_tokens()` on, a text that is no token (see `Vocab::merge_id`).
#[derive(Clone, Copy, Debug)]
pub struct Merge {
    pub rank: u32,
    pub result: u32,
}

/// Special token ids; None where the vocabulary has none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    /// The newline token (what `llama_vocab_nl` returns).
    pub nl: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

/// One of the `SpecialTokens` fields, to fill in by table.
type SpecialSlot = fn(&mut SpecialTokens) -> &mut Option<u32>;

/// The vocabulary and its settings.
pub struct Vocab {
    pub kind: Kind,
    /// `tokenizer.ggml.model` and `tokenizer.ggml.pre` as read.
    pub model_name: String,
    pub pre_name: Option<String>,
    texts: Vec<Box<[u8]>>,
    scores: Vec<f32>,
    attrs: Vec<u32>,
    ids: HashMap<Box<[u8]>, u32, FxBuild>,
    pub merges: HashMap<(u32, u32), Merge, FxBuild>,
    /// Texts that merges take or make but that are no tokens, numbered on from the last token
    /// (empty but for a damaged merge list; see `read_merges`).
    merge_texts: HashMap<Box<[u8]>, u32, FxBuild>,
    pub special: SpecialTokens,
    pub add_bos: bool,
    pub add_eos: bool,
    pub add_sep: bool,
    pub add_space_prefix: bool,
    pub clean_spaces: bool,
    pub ignore_merges: bool,
    /// Words made only of newlines that are tokens are taken whole (Gemma 4).
    pub newline_words_whole: bool,
    pub escape_whitespaces: bool,
    /// SPM: no token has a "▁" after a character other than "▁", so no merge crosses the start
    /// of a space-led word (true of every real SentencePiece vocabulary; `spm.rs` uses it to
    /// merge word by word).
    pub spm_words_independent: bool,
    /// The byte-level BPE pre-tokenizer (None for SPM).
    pub pre: Option<PreTokenizer>,
    /// BPE words are mapped to GPT-2's byte alphabet.
    pub byte_encode: bool,
    eog: BTreeSet<u32>,
    /// Control, user-defined and unknown tokens, longest text first: what text is searched for.
    pub special_tokens: Vec<u32>,
    /// Each token's piece with special tokens rendered (llama.cpp's token-to-piece cache).
    pieces: Vec<Box<[u8]>>,
}

fn string_array<'a>(g: &Gguf<'a>, key: &str) -> Result<Option<Array<'a>>> {
    match g.get_array(key)? {
        None => Ok(None),
        Some(a) if a.elem_type == ValueType::String => Ok(Some(a)),
        Some(a) => Err(Error::format(format!(
            "metadata key {key}: expected an array of strings, found an array of {}",
            a.elem_type.name()
        ))),
    }
}

fn warn(message: &str) {
    eprintln!("bitnet: warning: {message}");
}

/// The pre-tokenizer warning llama.cpp prints for files without `tokenizer.ggml.pre`, once per
/// process.
fn warn_missing_pre() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        warn(
            "tokenizer.ggml.pre is missing: using the 'default' pre-tokenizer, as llama.cpp does \
             (its tokens can differ from what the model was trained with)",
        )
    });
}

impl Vocab {
    pub fn n_tokens(&self) -> usize {
        self.texts.len()
    }

    pub fn text(&self, id: u32) -> Option<&[u8]> {
        self.texts.get(id as usize).map(|t| &t[..])
    }

    pub fn score(&self, id: u32) -> Option<f32> {
        self.scores.get(id as usize).copied()
    }

    pub fn attr(&self, id: u32) -> Option<u32> {
        self.attrs.get(id as usize).copied()
    }

    pub fn piece(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id as usize).map(|p| &p[..])
    }

    pub fn id(&self, text: &[u8]) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The id BPE merges `text` under: its token, else, if a merge takes or makes it, an id from
    /// `n_tokens()` on that stands for the text and is written out as the text's byte tokens.
    pub fn merge_id(&self, text: &[u8]) -> Option<u32> {
        self.id(text)
            .or_else(|| self.merge_texts.get(text).copied())
    }

    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    pub fn eog_tokens(&self) -> impl Iterator<Item = u32> + '_ {
        self.eog.iter().copied()
    }

    /// The token standing for one raw byte (SPM: `<0xNN>`, else the byte itself as text).
    pub fn byte_token(&self, byte: u8) -> Option<u32> {
        match self.kind {
            Kind::Spm => self
                .id(format!("<0x{byte:02X}>").as_bytes())
                .or_else(|| self.id(&[byte])),
            Kind::Bpe => {
                let mut s = vec![];
                unicode::push_utf8(&mut s, unicode::byte_to_codepoint(byte));
                self.id(&s)
            }
        }
    }

    pub fn from_gguf(g: &Gguf<'_>) -> Result<Vocab> {
        let model_name = g
            .get_str("tokenizer.ggml.model")?
            .ok_or_else(|| {
                Error::format("no tokenizer in this file (tokenizer.ggml.model is missing)")
            })?
            .to_string();
        let mut pre_name = g.get_str("tokenizer.ggml.pre")?.map(str::to_string);
        let kind = match model_name.as_str() {
            "llama" => Kind::Spm,
            "gpt2" => Kind::Bpe,
            "gemma4" => {
                pre_name = Some("gemma4".to_string());
                Kind::Bpe
            }
            other => {
                return Err(Error::unsupported(format!(
                    "tokenizer.ggml.model = {other:?} is not supported (only llama and gpt2)"
                )))
            }
        };

        let mut special = SpecialTokens::default();
        let add_bos;
        let mut add_sep = false;
        let mut add_space_prefix = false;
        let mut clean_spaces = false;
        let mut ignore_merges = false;
        let mut escape_whitespaces = true;
        let mut pre_settings = None;
        match kind {
            Kind::Spm => {
                special.bos = Some(1);
                special.eos = Some(2);
                special.unk = Some(0);
                add_space_prefix = true;
                add_bos = true;
            }
            Kind::Bpe => {
                if model_name == "gpt2" {
                    special.bos = Some(11);
                    special.eos = Some(11);
                }
                if pre_name.is_none() {
                    warn_missing_pre();
                }
                let s = pretokenize::settings(pre_name.as_deref())?;
                escape_whitespaces = s.escape_whitespaces;
                clean_spaces = s.clean_spaces;
                ignore_merges = s.ignore_merges;
                add_bos = s.add_bos;
                if s.no_bos {
                    special.bos = None;
                }
                add_sep = matches!(
                    pre_name.as_deref(),
                    Some("jina-v1-en" | "jina-v2-code" | "roberta-bpe")
                );
                pre_settings = Some(s);
            }
        }
        if let Some(v) = g.get_bool("tokenizer.ggml.add_space_prefix")? {
            add_space_prefix = v;
        }

        // Tokens, scores, types.
        let tokens = string_array(g, "tokenizer.ggml.tokens")?
            .ok_or_else(|| Error::format("tokenizer.ggml.tokens is missing"))?;
        let n = usize::try_from(tokens.len)
            .ok()
            .filter(|&n| n <= i32::MAX as usize)
            .ok_or_else(|| Error::format("tokenizer.ggml.tokens: too many tokens"))?;
        let scores = read_scores(g, n)?;
        let types = read_types(g, n)?;
        let mut texts = Vec::with_capacity(n);
        let mut ids: HashMap<Box<[u8]>, u32, FxBuild> =
            HashMap::with_capacity_and_hasher(n, FxBuild::default());
        let mut attrs = Vec::with_capacity(n);
        for (i, t) in tokens.strings().into_iter().flatten().enumerate() {
            let text: Box<[u8]> = if t.is_empty() {
                warn(&format!("empty token at index {i}"));
                format!("[EMPTY_{i}]").into_bytes().into()
            } else {
                t.into()
            };
            if let Some(first) = ids.insert(text.clone(), i as u32) {
                return Err(Error::format(format!(
                    "tokenizer.ggml.tokens: token {i} {:?} duplicates token {first}",
                    String::from_utf8_lossy(&text)
                )));
            }
            texts.push(text);
            attrs.push(types.as_ref().map_or(attr::NORMAL, |t| attr_of_type(t[i])));
        }

        let Merges {
            by_pair: merges,
            texts: merge_texts,
        } = match kind {
            Kind::Bpe => read_merges(g, &ids)?,
            Kind::Spm => Merges::default(),
        };

        let pre = match &pre_settings {
            Some(s) => Some(PreTokenizer::new(s.patterns, s.byte_encode)?),
            None => None,
        };
        let mut v = Vocab {
            kind,
            model_name,
            pre_name,
            texts,
            scores,
            attrs,
            ids,
            merges,
            merge_texts,
            special,
            add_bos,
            add_eos: false,
            add_sep,
            add_space_prefix,
            clean_spaces,
            ignore_merges,
            newline_words_whole: pre_settings.as_ref().is_some_and(|s| s.newline_words_whole),
            escape_whitespaces,
            spm_words_independent: false,
            byte_encode: pre_settings.as_ref().is_some_and(|s| s.byte_encode),
            pre,
            eog: BTreeSet::new(),
            special_tokens: vec![],
            pieces: vec![],
        };

        v.spm_words_independent = v.texts.iter().all(|t| space_only_after_spaces(t));
        v.special.nl = v.find_newline();
        v.read_special_ids(g)?;
        if let Some(b) = g.get_bool("tokenizer.ggml.add_bos_token")? {
            v.add_bos = b;
        }
        if let Some(b) = g.get_bool("tokenizer.ggml.add_eos_token")? {
            v.add_eos = b;
        }
        if let Some(b) = g.get_bool("tokenizer.ggml.add_sep_token")? {
            v.add_sep = b;
        }
        if v.pre_name.as_deref() == Some("gemma4") {
            v.add_bos = true;
        }
        v.detect_special_by_text();
        v.special_tokens = (0..v.n_tokens() as u32)
            .filter(|&id| {
                v.attrs[id as usize] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
            })
            .collect();
        // Longest first (llama.cpp's sort leaves ties in an unspecified order; ours keeps ids
        // ascending).
        v.special_tokens
            .sort_by_key(|&id| std::cmp::Reverse(v.texts[id as usize].len()));
        v.pieces = (0..v.n_tokens() as u32)
            .map(|id| v.make_piece(id))
            .collect::<Result<_>>()?;
        v.apply_model_specific_attrs(g)?;
        Ok(v)
    }

    /// The newline token: SPM's byte token for '\n'; for BPE the first token of "\n".
    fn find_newline(&self) -> Option<u32> {
        match self.kind {
            Kind::Spm => self.byte_token(b'\n').or(self.special.pad),
            Kind::Bpe => {
                let mut ids = vec![];
                super::bpe::tokenize(self, b"\n", &mut ids);
                ids.first().copied().or(self.special.pad)
            }
        }
    }

    fn read_special_ids(&mut self, g: &Gguf<'_>) -> Result<()> {
        let n = self.n_tokens() as u32;
        let slots: [(&str, SpecialSlot); 17] = [
            ("tokenizer.ggml.bos_token_id", |s| &mut s.bos),
            ("tokenizer.ggml.eos_token_id", |s| &mut s.eos),
            ("tokenizer.ggml.eot_token_id", |s| &mut s.eot),
            ("tokenizer.ggml.eom_token_id", |s| &mut s.eom),
            ("tokenizer.ggml.unknown_token_id", |s| &mut s.unk),
            ("tokenizer.ggml.seperator_token_id", |s| &mut s.sep),
            ("tokenizer.ggml.padding_token_id", |s| &mut s.pad),
            ("tokenizer.ggml.mask_token_id", |s| &mut s.mask),
            ("tokenizer.ggml.fim_pre_token_id", |s| &mut s.fim_pre),
            ("tokenizer.ggml.fim_suf_token_id", |s| &mut s.fim_suf),
            ("tokenizer.ggml.fim_mid_token_id", |s| &mut s.fim_mid),
            ("tokenizer.ggml.fim_pad_token_id", |s| &mut s.fim_pad),
            ("tokenizer.ggml.fim_rep_token_id", |s| &mut s.fim_rep),
            ("tokenizer.ggml.fim_sep_token_id", |s| &mut s.fim_sep),
            ("tokenizer.ggml.prefix_token_id", |s| &mut s.fim_pre),
            ("tokenizer.ggml.suffix_token_id", |s| &mut s.fim_suf),
            ("tokenizer.ggml.middle_token_id", |s| &mut s.fim_mid),
        ];
        for (key, slot) in slots {
            let slot = slot(&mut self.special);
            if slot.is_some_and(|id| id >= n) {
                warn(&format!(
                    "default special token {key} out of vocab range, disabling"
                ));
                *slot = None;
            }
            match g.get_u32(key)? {
                Some(id) if id < n => *slot = Some(id),
                Some(id) => warn(&format!(
                    "bad special token {key} = {id} (vocab has {n} tokens), keeping the default"
                )),
                None => {}
            }
        }
        Ok(())
    }

    /// llama.cpp finds EOT, EOM and FIM tokens by their text when the file does not name them,
    /// makes them control tokens, and builds the end-of-generation set from a list of texts.
    fn detect_special_by_text(&mut self) {
        const EOT: &[&str] = &[
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<|end_of_text|>",
            "<EOT>",
            "_<EOT>",
            "[EOT]",
            "<\u{FF5C}end\u{2581}of\u{2581}sentence\u{FF5C}>",
            "<end_of_utterance>",
        ];
        const EOM: &[&str] = &["<|eom_id|>"];
        const FIM_PRE: &[&str] = &[
            "<|fim_prefix|>",
            "<fim-prefix>",
            "<fim_prefix>",
            "<\u{FF5C}fim\u{2581}begin\u{FF5C}>",
            "<PRE>",
            "\u{2581}<PRE>",
            "<|code_prefix|>",
            "<|prefix|>",
        ];
        const FIM_SUF: &[&str] = &[
            "<|fim_suffix|>",
            "<fim-suffix>",
            "<fim_suffix>",
            "<\u{FF5C}fim\u{2581}hole\u{FF5C}>",
            "<SUF>",
            "\u{2581}<SUF>",
            "<|code_suffix|>",
            "<|suffix|>",
        ];
        const FIM_MID: &[&str] = &[
            "<|fim_middle|>",
            "<fim-middle>",
            "<fim_middle>",
            "<\u{FF5C}fim\u{2581}end\u{FF5C}>",
            "<MID>",
            "\u{2581}<MID>",
            "<|code_middle|>",
            "<|middle|>",
        ];
        const FIM_PAD: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
        const FIM_REP: &[&str] = &[
            "<|fim_repo|>",
            "<|repo_name|>",
            "<fim-repo>",
            "<REPO>",
            "<reponame>",
        ];
        const FIM_SEP: &[&str] = &["<|file_sep|>"];
        const EOG: &[&str] = &[
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<|return|>",
            "<|call|>",
            "<|flush|>",
            "<|calls|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "</s>",
            "<|eom_id|>",
            "<EOT>",
            "_<EOT>",
            "[EOT]",
            "[EOS]",
            "<|end_of_text|>",
            "<end_of_utterance>",
            "<eos>",
            "<turn|>",
            "<|tool_response>",
            "<\u{FF5C}end\u{2581}of\u{2581}sentence\u{FF5C}>",
            "[e~[",
        ];

        // llama.cpp walks its token-to-id hash map, whose order is libstdc++'s; for the texts
        // that compete (e.g. "<|eot_id|>" and "<|end_of_text|>" for EOT) that order puts the
        // later tokens of a vocabulary first, which walking ids downward reproduces.
        let order: Vec<u32> = (0..self.n_tokens() as u32).rev().collect();
        let text_is = |v: &Vocab, id: u32, list: &[&str]| {
            list.iter()
                .any(|t| t.as_bytes() == &v.texts[id as usize][..])
        };
        let lists: [(&[&str], SpecialSlot); 8] = [
            (EOT, |s| &mut s.eot),
            (EOM, |s| &mut s.eom),
            (FIM_PRE, |s| &mut s.fim_pre),
            (FIM_SUF, |s| &mut s.fim_suf),
            (FIM_MID, |s| &mut s.fim_mid),
            (FIM_PAD, |s| &mut s.fim_pad),
            (FIM_REP, |s| &mut s.fim_rep),
            (FIM_SEP, |s| &mut s.fim_sep),
        ];
        for &id in &order {
            for (list, slot) in &lists {
                if slot(&mut self.special).is_none() && text_is(self, id, list) {
                    *slot(&mut self.special) = Some(id);
                    self.attrs[id as usize] |= attr::CONTROL;
                }
            }
        }

        // Control tokens named "unused" are unused.
        for id in 0..self.n_tokens() {
            if self.attrs[id] & attr::CONTROL != 0
                && self.texts[id].windows(6).any(|w| w == b"unused")
            {
                self.attrs[id] |= attr::UNUSED;
            }
        }

        let s = self.special;
        self.eog
            .extend([s.fim_pad, s.fim_rep, s.fim_sep].into_iter().flatten());
        for &id in &order {
            if text_is(self, id, EOG) {
                self.eog.insert(id);
                self.attrs[id as usize] |= attr::CONTROL;
            }
        }
        // gpt-oss: these are always rendered.
        for &id in &order {
            if text_is(
                self,
                id,
                &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"],
            ) {
                self.attrs[id as usize] = attr::USER_DEFINED;
            }
        }
        self.eog.extend([s.eos, s.eot, s.eom].into_iter().flatten());

        // With "<|return|>" and "<|call|>" (or "<|calls|>" and "<|flush|>"), "<|end|>" does
        // not end generation.
        let eog_with = |v: &Vocab, text: &str| {
            v.eog.iter().copied().find(|&id| {
                v.texts
                    .get(id as usize)
                    .is_some_and(|t| &t[..] == text.as_bytes())
            })
        };
        let has_return = eog_with(self, "<|return|>").is_some();
        let has_call =
            eog_with(self, "<|call|>").is_some() || eog_with(self, "<|calls|>").is_some();
        let has_flush = eog_with(self, "<|flush|>").is_some();
        if let Some(end) = eog_with(self, "<|end|>") {
            if has_call && (has_return || has_flush) {
                self.eog.remove(&end);
                self.attrs[end as usize] = attr::USER_DEFINED;
            }
        }
        // Gemma 4 and PLaMo have a normal "</s>".
        let normal_s_marker = eog_with(self, "<|tool_response>").is_some()
            || eog_with(self, "<|plamo:eos|>").is_some();
        if let (true, Some(s_id)) = (normal_s_marker, eog_with(self, "</s>")) {
            self.eog.remove(&s_id);
            self.attrs[s_id as usize] = attr::NORMAL;
        }
    }

    /// The piece of a token with special tokens rendered, as llama.cpp caches it at load.
    fn make_piece(&self, id: u32) -> Result<Box<[u8]>> {
        let a = self.attrs[id as usize];
        let text = &self.texts[id as usize];
        if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
            return Ok(text.clone());
        }
        if a & attr::NORMAL != 0 {
            return Ok(match self.kind {
                Kind::Spm => unescape_whitespace(text).into(),
                Kind::Bpe if self.escape_whitespaces => unescape_whitespace(text).into(),
                Kind::Bpe => decode_byte_level(text).into(),
            });
        }
        if a & attr::BYTE != 0 {
            return Ok(Box::new([byte_of_byte_token(text).ok_or_else(|| {
                Error::format(format!(
                    "byte token {id} {:?} is not of the form <0xNN>",
                    String::from_utf8_lossy(text)
                ))
            })?]));
        }
        Ok(Box::new([]))
    }

    /// llama.cpp's per-model attribute fixes, chosen by model name, pre-tokenizer and
    /// architecture.
    fn apply_model_specific_attrs(&mut self, g: &Gguf<'_>) -> Result<()> {
        let name = g
            .get_str("general.name")
            .ok()
            .flatten()
            .unwrap_or("")
            .to_ascii_lowercase();
        let pre = self.pre_name.clone().unwrap_or_default();
        let arch = g
            .get_str("general.architecture")
            .ok()
            .flatten()
            .unwrap_or("");
        let has_any = |s: &str, subs: &[&str]| subs.iter().any(|x| s.contains(x));
        let required = |v: &Vocab, text: &str| {
            v.id(text.as_bytes()).ok_or_else(|| {
                Error::format(format!("token {text:?} is missing from this vocabulary"))
            })
        };
        if has_any(&pre, &["jina-v2-de", "jina-v2-es", "jina-v2-code"])
            || has_any(arch, &["nomic-bert-moe", "jina-bert-v3"])
        {
            match self.id(b"<mask>") {
                Some(id) => self.attrs[id as usize] |= attr::LSTRIP,
                None => warn("mask token is missing from the vocabulary"),
            }
        } else if has_any(&name, &["phi-3", "phi3"]) {
            for &id in &self.special_tokens {
                self.attrs[id as usize] |= attr::RSTRIP;
            }
            let id = required(self, "</s>")?;
            self.attrs[id as usize] |= attr::RSTRIP;
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                let id = required(self, t)?;
                self.attrs[id as usize] &= !attr::RSTRIP;
            }
        } else if has_any(&name, &["modern-bert"]) {
            match self.id(b"[MASK]") {
                Some(id) => self.attrs[id as usize] |= attr::LSTRIP,
                None => warn("mask token is missing from the vocabulary"),
            }
        }
        Ok(())
    }
}

fn read_scores(g: &Gguf<'_>, n: usize) -> Result<Vec<f32>> {
    let key = "tokenizer.ggml.scores";
    let Some(a) = g.get_array(key)? else {
        return Ok(vec![0.0; n]);
    };
    if !matches!(a.elem_type, ValueType::F32 | ValueType::I32) {
        return Err(Error::format(format!(
            "{key}: expected f32 or i32 elements, found {}",
            a.elem_type.name()
        )));
    }
    if a.len < n as u64 {
        return Err(Error::format(format!(
            "{key}: {} scores for {n} tokens",
            a.len
        )));
    }
    Ok(a.iter()
        .take(n)
        .map(|v| match v {
            Value::F32(f) => f,
            Value::I32(i) => i as f32,
            _ => 0.0,
        })
        .collect())
}

fn read_types(g: &Gguf<'_>, n: usize) -> Result<Option<Vec<i32>>> {
    let key = "tokenizer.ggml.token_type";
    let Some(a) = g.get_array(key)? else {
        return Ok(None);
    };
    if a.elem_type != ValueType::I32 {
        return Err(Error::format(format!(
            "{key}: expected i32 elements, found {}",
            a.elem_type.name()
        )));
    }
    if a.len < n as u64 {
        return Err(Error::format(format!(
            "{key}: {} types for {n} tokens",
            a.len
        )));
    }
    Ok(Some(
        a.iter()
            .take(n)
            .map(|v| if let Value::I32(i) = v { i } else { 0 })
            .collect(),
    ))
}

/// The merge table `read_merges` makes.
#[derive(Default)]
struct Merges {
    by_pair: HashMap<(u32, u32), Merge, FxBuild>,
    texts: HashMap<Box<[u8]>, u32, FxBuild>,
}

/// `tokenizer.ggml.merges`, read as llama.cpp reads it: "left right" strings split at the first
/// space after the first byte, ranked by position (a repeated pair keeps its first rank).
///
/// llama.cpp merges texts, not tokens, so a part or a result need not be a token (which happens
/// only in a damaged or hand-made list): such a text gets an id from the token count on, in
/// `Vocab::merge_texts`, so BPE still merges by id and gives llama.cpp's ids, and a symbol left
/// with such a text is written as the byte tokens of its bytes (`bpe.rs`). An entry with no space
/// after its first byte, or with nothing after the space, can never apply (llama.cpp files it
/// under a pair with an empty part, which no symbol matches) and is skipped. These entries load
/// with one warning. Refused: a missing key, elements that are not strings, and more texts than
/// u32 ids can number.
fn read_merges(g: &Gguf<'_>, ids: &HashMap<Box<[u8]>, u32, FxBuild>) -> Result<Merges> {
    let key = "tokenizer.ggml.merges";
    let merges = string_array(g, key)?.ok_or_else(|| Error::format(format!("{key} is missing")))?;
    let n = usize::try_from(merges.len).unwrap_or(usize::MAX);
    let mut out = Merges {
        by_pair: HashMap::with_capacity_and_hasher(n, FxBuild::default()),
        texts: HashMap::default(),
    };
    // The id of `text` and whether it is a token: its token, else its number among the merge
    // texts, which start at the token count (`ids` has one entry per token: no duplicates).
    let intern = |texts: &mut HashMap<Box<[u8]>, u32, FxBuild>, text: &[u8]| {
        if let Some(&id) = ids.get(text) {
            return Ok((id, true));
        }
        if let Some(&id) = texts.get(text) {
            return Ok((id, false));
        }
        let id = u32::try_from(ids.len() + texts.len())
            .ok()
            .filter(|&id| id != u32::MAX)
            .ok_or_else(|| Error::format(format!("{key}: too many texts that are no tokens")))?;
        texts.insert(text.into(), id);
        Ok::<_, Error>((id, false))
    };
    let mut damaged = 0usize;
    let mut first_damaged = None;
    let mut joined = vec![];
    for (rank, m) in merges.strings().into_iter().flatten().enumerate() {
        let mut note = |why: &str| {
            damaged += 1;
            first_damaged
                .get_or_insert_with(|| format!("[{rank}] {:?}: {why}", String::from_utf8_lossy(m)));
        };
        let space = m.iter().skip(1).position(|&b| b == b' ').map(|p| p + 1);
        let Some((left, right)) = space
            .map(|s| (&m[..s], &m[s + 1..]))
            .filter(|(_, right)| !right.is_empty())
        else {
            note("no two parts, so it never applies");
            continue;
        };
        joined.clear();
        joined.extend_from_slice(left);
        joined.extend_from_slice(right);
        let (l, l_token) = intern(&mut out.texts, left)?;
        let (r, r_token) = intern(&mut out.texts, right)?;
        let (result, result_token) = intern(&mut out.texts, &joined)?;
        if !l_token {
            note("the left part is not a token");
        } else if !r_token {
            note("the right part is not a token");
        } else if !result_token {
            note("the merged text is not a token");
        }
        out.by_pair.entry((l, r)).or_insert(Merge {
            rank: rank as u32,
            result,
        });
    }
    if let Some(first) = first_damaged {
        warn(&format!(
            "{key}: {damaged} entries are not merges of two tokens into a token (first: {first}); \
             they are applied to text as llama.cpp applies them"
        ));
    }
    Ok(out)
}

/// Whether every "▁" in `text` comes at the start or after another "▁".
fn space_only_after_spaces(text: &[u8]) -> bool {
    let space = "\u{2581}".as_bytes();
    let mut leading = true;
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(space) {
            if !leading {
                return false;
            }
            i += space.len();
        } else {
            leading = false;
            i += 1;
        }
    }
    true
}

/// U+2581 ("▁") back to spaces.
pub fn unescape_whitespace(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with("\u{2581}".as_bytes()) {
            out.push(b' ');
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// A byte-level BPE token's text back to bytes. A codepoint outside GPT-2's byte alphabet is
/// written, as llama.cpp does, as "[UNK_BYTE_0x" + its UTF-8 in hex + the whole token text + "]".
pub fn decode_byte_level(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in unicode::decode_utf8(text) {
        match unicode::codepoint_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut utf8 = vec![];
                unicode::push_utf8(&mut utf8, c);
                for b in utf8 {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text);
                out.push(b']');
            }
        }
    }
    out
}

/// The byte of a `<0xNN>` token: the two characters after "<0x" read as C's strtol does in
/// base 16 (leading blanks, a sign and a "0x" are allowed; digits stop at the first non-digit).
/// None for texts shorter than three bytes (llama.cpp throws on those).
pub fn byte_of_byte_token(text: &[u8]) -> Option<u8> {
    let digits = text.get(3..)?;
    let digits = &digits[..digits.len().min(2)];
    let mut s = digits;
    while let [b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C, rest @ ..] = s {
        s = rest;
    }
    let negative = matches!(s.first(), Some(b'-'));
    if matches!(s.first(), Some(b'-' | b'+')) {
        s = &s[1..];
    }
    if s.len() >= 2
        && s[0] == b'0'
        && (s[1] | 0x20) == b'x'
        && s.get(2).is_some_and(u8::is_ascii_hexdigit)
    {
        s = &s[2..];
    }
    let mut v: i64 = 0;
    for &b in s {
        match (b as char).to_digit(16) {
            Some(d) => v = v * 16 + d as i64,
            None => break,
        }
    }
    Some((if negative { -v } else { v }) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens_read_like_strtol() {
        assert_eq!(byte_of_byte_token(b"<0x0A>"), Some(0x0A));
        assert_eq!(byte_of_byte_token(b"<0xff>"), Some(0xFF));
        assert_eq!(byte_of_byte_token(b"<0xZ>"), Some(0));
        assert_eq!(byte_of_byte_token(b"<0x-1>"), Some(0xFF));
        assert_eq!(byte_of_byte_token(b"<0x"), Some(0));
        assert_eq!(byte_of_byte_token(b"<0"), None);
    }

    #[test]
    fn byte_level_decoding() {
        assert_eq!(decode_byte_level("Ġhello".as_bytes()), b" hello");
        assert_eq!(decode_byte_level("Ċ".as_bytes()), b"\n");
        assert_eq!(
            decode_byte_level("a€".as_bytes()),
            b"a[UNK_BYTE_0xe282aca\xE2\x82\xAC]"
        );
    }

    #[test]
    fn spaces_after_spaces() {
        assert!(space_only_after_spaces("▁▁ab".as_bytes()));
        assert!(space_only_after_spaces(b"ab"));
        assert!(!space_only_after_spaces("a▁".as_bytes()));
        assert!(!space_only_after_spaces("▁a▁b".as_bytes()));
    }

    #[test]
    fn whitespace_unescaping() {
        assert_eq!(unescape_whitespace("▁a▁▁b".as_bytes()), b" a  b");
    }
}
