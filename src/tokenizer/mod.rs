//! Tokenizers read from GGUF metadata, token for token what llama.cpp's `llama_tokenize`,
//! `llama_token_to_piece` and `llama_detokenize` give.
//!
//! - `vocab`: the vocabulary and everything derived from it at load (attributes, special ids,
//!   end-of-generation set, merges, pieces);
//! - `spm`: SentencePiece-style tokenization (`tokenizer.ggml.model = llama`);
//! - `bpe` and `pretokenize`: byte-level BPE (`gpt2`) and its pre-tokenizers, with `regex` (a
//!   std::regex-compatible engine) and `unicode` (llama.cpp's codepoint tables and UTF-8
//!   handling) under them.
//!
//! This module splits text around special tokens, adds BOS/EOS, and turns ids back into text.
//! `hf` (a separate tokenizer, not used by the GGUF path) loads a Hugging Face
//! `tokenizer.json` through the `tokenizers` crate.

mod bpe;
pub mod chat;
pub mod hf;
pub mod pretokenize;
pub mod regex;
mod spm;
pub mod unicode;
mod unicode_tables;
pub mod vocab;

use crate::error::{Error, Result};
use crate::gguf::Gguf;
use vocab::Vocab;
pub use vocab::{attr, Kind, SpecialTokens};

/// A tokenizer loaded from a GGUF file's `tokenizer.ggml.*` metadata (tensors are not needed).
pub struct Tokenizer {
    vocab: Vocab,
}

/// A stretch of the input: text still to tokenize, or a special token found in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fragment {
    Text { start: usize, end: usize },
    Token(u32),
}

impl Tokenizer {
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Tokenizer> {
        Ok(Tokenizer {
            vocab: Vocab::from_gguf(g).map_err(|e| e.context("tokenizer"))?,
        })
    }

    pub fn kind(&self) -> Kind {
        self.vocab.kind
    }

    /// `tokenizer.ggml.model` and `tokenizer.ggml.pre` (None when missing).
    pub fn model_name(&self) -> &str {
        &self.vocab.model_name
    }

    pub fn pre_name(&self) -> Option<&str> {
        self.vocab.pre_name.as_deref()
    }

    pub fn n_vocab(&self) -> usize {
        self.vocab.n_tokens()
    }

    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.vocab.special
    }

    pub fn bos(&self) -> Option<u32> {
        self.vocab.special.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.vocab.special.eos
    }

    pub fn eot(&self) -> Option<u32> {
        self.vocab.special.eot
    }

    /// Whether tokenizing with `add_special` puts BOS first / EOS last.
    pub fn add_bos(&self) -> bool {
        self.vocab.add_bos
    }

    pub fn add_eos(&self) -> bool {
        self.vocab.add_eos
    }

    /// Whether generation stops at this token (EOS, EOT, `<|eot_id|>`, `<|im_end|>`, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.vocab.is_eog(id)
    }

    /// The end-of-generation tokens, ascending.
    pub fn eog_tokens(&self) -> Vec<u32> {
        self.vocab.eog_tokens().collect()
    }

    /// A token's text as stored in the vocabulary.
    pub fn token_text(&self, id: u32) -> Option<&[u8]> {
        self.vocab.text(id)
    }

    pub fn token_score(&self, id: u32) -> Option<f32> {
        self.vocab.score(id)
    }

    /// A token's attribute bits (`attr::*`).
    pub fn token_attr(&self, id: u32) -> Option<u32> {
        self.vocab.attr(id)
    }

    /// The id of the token whose text is exactly `text`.
    pub fn token_id(&self, text: &[u8]) -> Option<u32> {
        self.vocab.id(text)
    }

    /// `llama_tokenize` on UTF-8 text.
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        self.tokenize_bytes(text.as_bytes(), add_special, parse_special)
    }

    /// `llama_tokenize` on any bytes (invalid UTF-8 is handled as llama.cpp handles it).
    ///
    /// `add_special` adds BOS (and EOS) where the vocabulary asks for them; `parse_special`
    /// lets control tokens written in the text (e.g. `<|eot_id|>`) become those tokens.
    /// User-defined tokens are always recognized, as in llama.cpp.
    pub fn tokenize_bytes(&self, text: &[u8], add_special: bool, parse_special: bool) -> Vec<u32> {
        let v = &self.vocab;
        let fragments = self.split_special(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        let bos = v.special.bos.filter(|_| add_special && v.add_bos);
        out.extend(bos);
        match v.kind {
            Kind::Spm => {
                // A space goes before the text at the start and after each special token.
                let mut prev_special = true;
                let mut buf = vec![];
                for f in fragments {
                    match f {
                        Fragment::Text { start, end } => {
                            buf.clear();
                            if v.add_space_prefix && prev_special {
                                buf.extend_from_slice("\u{2581}".as_bytes());
                            }
                            escape_whitespace(&text[start..end], &mut buf);
                            spm::tokenize(v, &buf, &mut out);
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            Kind::Bpe => {
                let mut buf = vec![];
                for f in fragments {
                    match f {
                        Fragment::Text { start, end } if v.escape_whitespaces => {
                            buf.clear();
                            escape_whitespace(&text[start..end], &mut buf);
                            bpe::tokenize(v, &buf, &mut out);
                        }
                        Fragment::Text { start, end } => {
                            bpe::tokenize(v, &text[start..end], &mut out)
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        out.extend(v.special.eos.filter(|_| add_special && v.add_eos));
        out
    }

    /// Splits the text around special tokens, longest tokens first, as llama.cpp's
    /// `tokenizer_st_partition`: control and unknown tokens only when `parse_special`,
    /// user-defined ones always; LSTRIP/RSTRIP tokens eat the whitespace beside them.
    fn split_special(&self, text: &[u8], parse_special: bool) -> Vec<Fragment> {
        let v = &self.vocab;
        let mut fragments = vec![];
        if text.is_empty() {
            return fragments;
        }
        fragments.push(Fragment::Text {
            start: 0,
            end: text.len(),
        });
        let mut next = Vec::new();
        for &id in &v.special_tokens {
            let a = v.attr(id).unwrap_or(0);
            if !parse_special && a & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let needle = v.text(id).unwrap_or_default();
            if needle.is_empty() {
                continue;
            }
            let mut changed = false;
            next.clear();
            for &f in &fragments {
                let Fragment::Text { mut start, end } = f else {
                    next.push(f);
                    continue;
                };
                while let Some(at) = find(&text[start..end], needle).map(|p| start + p) {
                    changed = true;
                    let mut left_end = at;
                    if a & attr::LSTRIP != 0 {
                        while left_end > start && text[left_end - 1].is_ascii_whitespace_c() {
                            left_end -= 1;
                        }
                    }
                    if left_end > start {
                        next.push(Fragment::Text {
                            start,
                            end: left_end,
                        });
                    }
                    next.push(Fragment::Token(id));
                    start = at + needle.len();
                    if a & attr::RSTRIP != 0 {
                        while start < end && text[start].is_ascii_whitespace_c() {
                            start += 1;
                        }
                    }
                }
                if start < end {
                    next.push(Fragment::Text { start, end });
                }
            }
            if changed {
                std::mem::swap(&mut fragments, &mut next);
            }
        }
        fragments
    }

    /// `llama_token_to_piece`: the token's text as it reads in output. Control and unknown
    /// tokens are empty unless `special`; up to `lstrip` leading spaces are dropped.
    pub fn token_to_piece(&self, id: u32, lstrip: i32, special: bool) -> Result<Vec<u8>> {
        let mut out = vec![];
        self.push_piece(id, lstrip, special, &mut out)?;
        Ok(out)
    }

    fn push_piece(&self, id: u32, lstrip: i32, special: bool, out: &mut Vec<u8>) -> Result<()> {
        let v = &self.vocab;
        let (Some(a), Some(piece)) = (v.attr(id), v.piece(id)) else {
            return Err(Error::bad_input(format!(
                "token id {id} is out of range (vocabulary of {})",
                v.n_tokens()
            )));
        };
        if !special && a & (attr::UNKNOWN | attr::CONTROL) != 0 {
            return Ok(());
        }
        let skip = piece
            .iter()
            .take(lstrip.max(0) as usize)
            .take_while(|&&b| b == b' ')
            .count();
        out.extend_from_slice(&piece[skip..]);
        Ok(())
    }

    /// `llama_detokenize`: the text of a token sequence. `remove_special` drops a leading BOS
    /// and trailing EOS the vocabulary adds; `unparse_special` renders control tokens. The
    /// leading space SentencePiece adds is removed, and vocabularies that ask for it get
    /// llama.cpp's space clean-up (" ," -> ",", " 's" -> "'s", ...).
    pub fn detokenize(
        &self,
        ids: &[u32],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<Vec<u8>> {
        let v = &self.vocab;
        let mut ids = ids;
        let mut remove_space = v.add_space_prefix;
        if remove_special && v.add_bos && !ids.is_empty() && Some(ids[0]) == v.special.bos {
            remove_space = false;
            ids = &ids[1..];
        }
        if remove_special
            && v.add_eos
            && !ids.is_empty()
            && Some(ids[ids.len() - 1]) == v.special.eos
        {
            ids = &ids[..ids.len() - 1];
        }
        let mut out = vec![];
        for &id in ids {
            self.push_piece(id, remove_space as i32, unparse_special, &mut out)?;
            remove_space = false;
        }
        if v.clean_spaces {
            clean_up_spaces(&mut out);
        }
        Ok(out)
    }
}

trait CSpace {
    fn is_ascii_whitespace_c(&self) -> bool;
}

impl CSpace for u8 {
    /// C's `isspace` in the "C" locale (Rust's `is_ascii_whitespace` omits \v).
    fn is_ascii_whitespace_c(&self) -> bool {
        matches!(*self, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
    }
}

/// The first occurrence of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let p = from
            + haystack[from..=haystack.len() - needle.len()]
                .iter()
                .position(|&b| b == first)?;
        if haystack[p + 1..p + needle.len()] == *rest {
            return Some(p);
        }
        from = p + 1;
    }
    None
}

/// Spaces to U+2581, as SentencePiece-style vocabularies spell them.
fn escape_whitespace(text: &[u8], out: &mut Vec<u8>) {
    for &b in text {
        if b == b' ' {
            out.extend_from_slice("\u{2581}".as_bytes());
        } else {
            out.push(b);
        }
    }
}

/// llama.cpp's `clean_up_tokenization_spaces`, three passes over the bytes in place:
/// " ?", " !", " .", " ," lose the space; " ' " loses both spaces; " 's", " 'm", " 're",
/// " 've" lose the space.
fn clean_up_spaces(text: &mut Vec<u8>) {
    // Pass 1.
    let n = text.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
    // Pass 2: the byte after " '" is blanked and skipped when it is a space.
    let n = text.len();
    let mut total = usize::from(n > 0);
    let mut i = 1;
    while i < n {
        let x = text[i];
        if x == b'\'' && i + 1 < n && text[i - 1] == b' ' && text[i + 1] == b' ' {
            total -= 1;
            i += 1;
            text[i] = 0;
        }
        text[total] = x;
        total += 1;
        i += 1;
    }
    text.truncate(total);
    // Pass 3.
    let n = text.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = text[i];
        if text[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = text[i + 1];
            let drop_space = match x1 {
                b's' | b'm' => true,
                b'r' | b'v' => i + 2 < n && text[i + 2] == b'e',
                _ => false,
            };
            if drop_space {
                total -= 1;
            }
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean_up_spaces(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn space_clean_up_matches_llama_cpp() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("a ' b"), "a'b");
        assert_eq!(
            clean("it 's I 'm we 're you 've they 'll don 't"),
            "it's I'm we're you've they 'll don 't"
        );
        assert_eq!(clean(" ."), ".");
        assert_eq!(clean(""), "");
    }

    #[test]
    fn substring_search() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"xx<s>", b"<s>"), Some(2));
    }
}
