//! Tokenizers read from a Hugging Face `tokenizer.json`, through the `tokenizers` crate, for
//! models shipped with one. Independent of the GGUF tokenizer ([`super::Tokenizer`]): nothing
//! here changes what that one does.
//!
//! Every call into the crate runs under `catch_unwind`, so that a panic inside it (a file the
//! crate accepts but cannot handle) comes back as an [`Error`], never through the C ABI.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

/// A tokenizer loaded from a `tokenizer.json` file.
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
}

/// Runs `f`, turning a panic into an error of `kind` that says what was being done.
fn guarded<T>(kind: ErrorKind, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        Err(Error::new(
            kind,
            format!("{what}: the tokenizers crate failed: {detail}"),
        ))
    })
}

impl HfTokenizer {
    /// Loads a `tokenizer.json` file; an unreadable file is an I/O error, a file the crate
    /// cannot parse a format error, both naming the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<HfTokenizer> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("cannot read {}: {e}", path.display())))?;
        Self::from_bytes(&bytes).map_err(|e| e.context(path.display()))
    }

    /// Loads a tokenizer from the bytes of a `tokenizer.json` file.
    pub fn from_bytes(json: &[u8]) -> Result<HfTokenizer> {
        guarded(ErrorKind::Format, "tokenizer.json", || {
            tokenizers::Tokenizer::from_bytes(json)
                .map(|inner| HfTokenizer { inner })
                .map_err(|e| Error::format(format!("not a valid tokenizer.json: {e}")))
        })
    }

    /// Number of tokens, added tokens included.
    pub fn n_vocab(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The ids of `text`; `add_special` adds the special tokens the file's post-processor
    /// asks for (BOS/EOS, ...). Added tokens written in the text are always recognized, as the
    /// crate does.
    pub fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        guarded(ErrorKind::BadInput, "tokenize", || {
            self.inner
                .encode(text, add_special)
                .map(|enc| enc.get_ids().to_vec())
                .map_err(|e| Error::bad_input(format!("cannot tokenize: {e}")))
        })
    }

    /// The text of `ids`; `skip_special` leaves out special tokens. An id outside the
    /// vocabulary is an error (the crate alone would drop it silently).
    pub fn detokenize(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        if let Some(&bad) = ids.iter().find(|&&id| self.inner.id_to_token(id).is_none()) {
            return Err(Error::bad_input(format!(
                "token id {bad} is not in the vocabulary ({} tokens)",
                self.n_vocab()
            )));
        }
        guarded(ErrorKind::BadInput, "detokenize", || {
            self.inner
                .decode(ids, skip_special)
                .map_err(|e| Error::bad_input(format!("cannot detokenize: {e}")))
        })
    }

    /// The vocabulary string of one token (byte-level BPE: the mapped form, `Ġ` for a space).
    pub fn token_text(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a vocabulary string.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.inner.token_to_id(text)
    }
}
