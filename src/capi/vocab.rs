//! The vocabulary: special tokens, token text/score/attributes, and llama_tokenize /
//! llama_token_to_piece / llama_detokenize with the reference's negative-size conventions.

use crate::sampling::grammar::GrammarVocab;
use std::ffi::{c_char, c_int, CString};
use std::sync::OnceLock;

use super::guard::{self, ffi, handle, with_handle, Fallible};
use super::types::*;
use crate::tokenizer::{attr, Kind, Tokenizer};

/// A model's vocabulary (`llama_model_get_vocab` points into the model).
pub struct llama_vocab {
    pub(crate) tok: Tokenizer,
    /// Token texts as C strings, made on the first `llama_vocab_get_text`.
    texts: OnceLock<Vec<CString>>,
    /// Every token's piece and end-of-generation flag, made for the first grammar sampler.
    grammar: OnceLock<GrammarVocab>,
}

impl llama_vocab {
    pub(crate) fn new(tok: Tokenizer) -> Self {
        llama_vocab {
            tok,
            texts: OnceLock::new(),
            grammar: OnceLock::new(),
        }
    }

    /// The token pieces grammar samplers match against (built once per vocabulary).
    pub(crate) fn grammar_vocab(&self) -> &GrammarVocab {
        self.grammar
            .get_or_init(|| GrammarVocab::from_tokenizer(&self.tok))
    }

    pub(crate) fn n_tokens(&self) -> usize {
        self.tok.n_vocab()
    }

    /// The token as an index into the vocabulary, or an error naming it.
    pub(crate) fn id(&self, token: llama_token) -> Fallible<u32> {
        u32::try_from(token)
            .ok()
            .filter(|&t| (t as usize) < self.n_tokens())
            .ok_or_else(|| {
                format!(
                    "token {token} is out of range (vocabulary of {})",
                    self.n_tokens()
                )
            })
    }
}

fn or_null(t: Option<u32>) -> llama_token {
    t.map_or(LLAMA_TOKEN_NULL, |t| t as llama_token)
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_type(vocab: *const llama_vocab) -> enum_llama_vocab_type {
    with_handle!(
        &vocab,
        llama_vocab_type::LLAMA_VOCAB_TYPE_NONE as c_int,
        |v| {
            Ok(match v.tok.kind() {
                Kind::Spm => llama_vocab_type::LLAMA_VOCAB_TYPE_SPM as c_int,
                Kind::Bpe => llama_vocab_type::LLAMA_VOCAB_TYPE_BPE as c_int,
            })
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_n_tokens(vocab: *const llama_vocab) -> i32 {
    with_handle!(&vocab, 0, |v| Ok(v.n_tokens() as i32),)
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_vocab(vocab: *const llama_vocab) -> i32 {
    with_handle!(&vocab, 0, |v| Ok(v.n_tokens() as i32))
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_get_text(
    vocab: *const llama_vocab,
    token: llama_token,
) -> *const c_char {
    with_handle!(&vocab, std::ptr::null(), |v| {
        let id = v.id(token)?;
        let texts = v.texts.get_or_init(|| {
            (0..v.n_tokens() as u32)
                .map(|i| {
                    let mut t = v.tok.token_text(i).unwrap_or_default().to_vec();
                    t.retain(|&b| b != 0);
                    CString::new(t).unwrap_or_default()
                })
                .collect()
        });
        Ok(texts[id as usize].as_ptr())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_get_score(
    vocab: *const llama_vocab,
    token: llama_token,
) -> f32 {
    with_handle!(&vocab, 0.0, |v| {
        Ok(v.tok.token_score(v.id(token)?).unwrap_or(0.0))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_get_attr(
    vocab: *const llama_vocab,
    token: llama_token,
) -> enum_llama_token_attr {
    with_handle!(&vocab, 0, |v| {
        Ok(v.tok.token_attr(v.id(token)?).unwrap_or(0) as c_int)
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_is_eog(vocab: *const llama_vocab, token: llama_token) -> bool {
    with_handle!(&vocab, false, |v| {
        Ok(token >= 0 && v.tok.is_eog(token as u32))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_is_control(
    vocab: *const llama_vocab,
    token: llama_token,
) -> bool {
    with_handle!(&vocab, false, |v| {
        let a = u32::try_from(token).ok().and_then(|t| v.tok.token_attr(t));
        Ok(a.is_some_and(|a| a & attr::CONTROL != 0))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_bos(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().bos))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_eos(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().eos))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_eot(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().eot))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_sep(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().sep))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_nl(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().nl))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_pad(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().pad))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_mask(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().mask))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_cls(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().bos))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_fim_pre(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().fim_pre))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_fim_suf(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().fim_suf))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_fim_mid(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().fim_mid))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_fim_pad(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().fim_pad))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_fim_rep(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().fim_rep))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_fim_sep(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().fim_sep))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_bos(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().bos))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_eos(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().eos))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_eot(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().eot))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_cls(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().bos))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_sep(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().sep))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_nl(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().nl))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_pad(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().pad))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_fim_pre(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().fim_pre))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_fim_suf(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().fim_suf))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_fim_mid(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().fim_mid))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_fim_pad(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().fim_pad))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_fim_rep(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().fim_rep))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_fim_sep(vocab: *const llama_vocab) -> llama_token {
    with_handle!(&vocab, LLAMA_TOKEN_NULL, |v| {
        Ok(or_null(v.tok.special_tokens().fim_sep))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_get_add_bos(vocab: *const llama_vocab) -> bool {
    with_handle!(&vocab, false, |v| { Ok(v.tok.add_bos()) })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_get_add_eos(vocab: *const llama_vocab) -> bool {
    with_handle!(&vocab, false, |v| { Ok(v.tok.add_eos()) })
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_get_add_sep(vocab: *const llama_vocab) -> bool {
    with_handle!(&vocab, false, |_| Ok(false))
}

#[no_mangle]
pub unsafe extern "C" fn llama_add_bos_token(vocab: *const llama_vocab) -> bool {
    // SAFETY: forwarded C argument.
    unsafe { llama_vocab_get_add_bos(vocab) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_add_eos_token(vocab: *const llama_vocab) -> bool {
    // SAFETY: forwarded C argument.
    unsafe { llama_vocab_get_add_eos(vocab) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_vocab_get_suppress_tokens(
    vocab: *const llama_vocab,
    n_suppress_tokens: *mut i32,
) -> *const llama_token {
    ffi!(std::ptr::null(), || {
        // SAFETY: n_suppress_tokens is NULL or writable (llama.h contract).
        if let Some(n) = unsafe { n_suppress_tokens.as_mut() } {
            *n = 0;
        }
        // SAFETY: vocab is NULL or a live handle (llama.h contract).
        unsafe { handle(vocab, "vocab") }?;
        // Our tokenizer reads no tokenizer.ggml.suppress_tokens: the list is empty.
        Ok(std::ptr::null())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_get_text(
    vocab: *const llama_vocab,
    token: llama_token,
) -> *const c_char {
    // SAFETY: forwarded C arguments.
    unsafe { llama_vocab_get_text(vocab, token) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_get_score(
    vocab: *const llama_vocab,
    token: llama_token,
) -> f32 {
    // SAFETY: forwarded C arguments.
    unsafe { llama_vocab_get_score(vocab, token) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_get_attr(
    vocab: *const llama_vocab,
    token: llama_token,
) -> enum_llama_token_attr {
    // SAFETY: forwarded C arguments.
    unsafe { llama_vocab_get_attr(vocab, token) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_is_eog(vocab: *const llama_vocab, token: llama_token) -> bool {
    // SAFETY: forwarded C arguments.
    unsafe { llama_vocab_is_eog(vocab, token) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_token_is_control(
    vocab: *const llama_vocab,
    token: llama_token,
) -> bool {
    // SAFETY: forwarded C arguments.
    unsafe { llama_vocab_is_control(vocab, token) }
}

/// `llama_tokenize`: the number of tokens written, or minus the number needed when
/// `n_tokens_max` is too small (nothing written then), or INT32_MIN on a bad argument or a
/// result longer than i32::MAX.
#[no_mangle]
pub unsafe extern "C" fn llama_tokenize(
    vocab: *const llama_vocab,
    text: *const c_char,
    text_len: i32,
    tokens: *mut llama_token,
    n_tokens_max: i32,
    add_special: bool,
    parse_special: bool,
) -> i32 {
    with_handle!(&vocab, i32::MIN, |v| {
        let len =
            usize::try_from(text_len).map_err(|_| format!("text_len {text_len} is negative"))?;
        // SAFETY: text points to text_len bytes (llama.h contract).
        let text = unsafe { guard::c_slice(text.cast::<u8>(), len, "text") }?;
        let ids = v.tok.tokenize_bytes(text, add_special, parse_special);
        let n = i32::try_from(ids.len()).map_err(|_| "more than i32::MAX tokens")?;
        if n > n_tokens_max {
            return Ok(-n);
        }
        if n > 0 {
            if tokens.is_null() {
                return Err("tokens is NULL".into());
            }
            // SAFETY: tokens has room for n_tokens_max >= n values (llama.h contract).
            let out = unsafe { std::slice::from_raw_parts_mut(tokens, ids.len()) };
            for (o, &id) in out.iter_mut().zip(&ids) {
                *o = id as llama_token;
            }
        }
        Ok(n)
    })
}

/// `llama_token_to_piece`: bytes written, or minus the length when `length` is too small.
/// An invalid token writes nothing and returns 0 (with a log line).
#[no_mangle]
pub unsafe extern "C" fn llama_token_to_piece(
    vocab: *const llama_vocab,
    token: llama_token,
    buf: *mut c_char,
    length: i32,
    lstrip: i32,
    special: bool,
) -> i32 {
    with_handle!(&vocab, 0, |v| {
        let piece = v
            .tok
            .token_to_piece(v.id(token)?, lstrip, special)
            .map_err(|e| e.to_string())?;
        // SAFETY: buf has `length` writable bytes (llama.h contract).
        unsafe { guard::copy_or_negative(&piece, buf, length) }
    })
}

/// `llama_detokenize`: bytes written, or minus the length when `text_len_max` is too small.
/// An invalid token id or a NULL argument gives 0 (with a log line).
#[no_mangle]
pub unsafe extern "C" fn llama_detokenize(
    vocab: *const llama_vocab,
    tokens: *const llama_token,
    n_tokens: i32,
    text: *mut c_char,
    text_len_max: i32,
    remove_special: bool,
    unparse_special: bool,
) -> i32 {
    with_handle!(&vocab, 0, |v| {
        let n =
            usize::try_from(n_tokens).map_err(|_| format!("n_tokens {n_tokens} is negative"))?;
        // SAFETY: tokens points to n_tokens values (llama.h contract).
        let ids = unsafe { guard::c_slice(tokens, n, "tokens") }?;
        let ids: Vec<u32> = ids.iter().map(|&t| v.id(t)).collect::<Fallible<_>>()?;
        let bytes = v
            .tok
            .detokenize(&ids, remove_special, unparse_special)
            .map_err(|e| e.to_string())?;
        // SAFETY: text has text_len_max writable bytes (llama.h contract).
        unsafe { guard::copy_or_negative(&bytes, text, text_len_max) }
    })
}
