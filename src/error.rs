//! One error type for the whole crate: a kind (what the C layer maps to a return value)
//! and a message that names the file, tensor or key at fault.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operating system refused (open, map, read, write).
    Io,
    /// The bytes are not a valid file of the expected format.
    Format,
    /// Valid input that this engine does not handle (a tensor type, an architecture...).
    Unsupported,
    /// A caller's argument is out of range or inconsistent.
    BadInput,
    /// The KV cache has no free cells for the batch (llama_decode's 1: retry smaller).
    NoKvSlot,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Messages are kept to one line: control characters (from names and keys read out of a
    /// file) are escaped.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: one_line(message.into()),
        }
    }
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Io, message)
    }
    pub fn format(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Format, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }
    /// The same error with `context: ` in front of its message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error::new(self.kind, format!("{context}: {}", self.message))
    }
}

fn one_line(message: String) -> String {
    if !message.chars().any(char::is_control) {
        return message;
    }
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        let e = Error::format("tensor a\nb\r\u{1}").context("file\n");
        assert_eq!(e.message, "file\\n: tensor a\\nb\\r\\u{1}");
        assert_eq!(Error::io("plain é").message, "plain é");
    }
}
