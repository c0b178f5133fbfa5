//! `bitnet tokenize -m MODEL [--no-bos] [--special] [--ids] (TEXT | -f FILE | -f -)`: the
//! tokens a model's tokenizer makes of a text, as `llama_tokenize` makes them.
//! `--tokenizer-json FILE` tokenizes with a Hugging Face tokenizer.json instead (the GGUF
//! file is then not read).

use std::io::{Read, Write};

use bitnet::gguf::MappedFile;
use bitnet::tokenizer::hf::HfTokenizer;
use bitnet::tokenizer::Tokenizer;
use bitnet::{Error, Result};

pub struct Args {
    /// The GGUF model; None with `tokenizer_json`.
    pub model: Option<String>,
    /// A Hugging Face tokenizer.json used instead of the model's vocabulary.
    pub tokenizer_json: Option<String>,
    /// Add BOS/EOS where the vocabulary asks for them (off with --no-bos).
    pub add_special: bool,
    /// Recognize control tokens written in the text, and show their text (--special).
    pub special: bool,
    /// Print only the ids, on one line (--ids).
    pub ids_only: bool,
    pub text: Input,
}

pub enum Input {
    Text(String),
    /// A file, "-" for standard input.
    File(String),
}

/// A piece as one printable line: control characters and invalid UTF-8 escaped.
fn printable(piece: &[u8]) -> String {
    let mut out = String::new();
    for chunk in piece.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

pub fn run(args: &Args) -> Result<()> {
    let text = match &args.text {
        Input::Text(t) => t.clone().into_bytes(),
        Input::File(f) if f == "-" => {
            let mut buf = vec![];
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| Error::io(format!("cannot read standard input: {e}")))?;
            buf
        }
        Input::File(f) => {
            std::fs::read(f).map_err(|e| Error::io(format!("cannot read {f}: {e}")))?
        }
    };
    let mut out = String::new();
    let mut show = |ids: &[u32], piece: &dyn Fn(u32) -> Result<Vec<u8>>| -> Result<()> {
        if args.ids_only {
            let list: Vec<String> = ids.iter().map(u32::to_string).collect();
            out.push_str(&list.join(" "));
            out.push('\n');
        } else {
            for &id in ids {
                out.push_str(&format!("{id:>6} -> '{}'\n", printable(&piece(id)?)));
            }
        }
        Ok(())
    };
    if let Some(json) = &args.tokenizer_json {
        if args.special {
            return Err(Error::bad_input(
                "tokenize: --special does not apply to --tokenizer-json (its added tokens \
                 are always recognized)",
            ));
        }
        let tok = HfTokenizer::from_file(json)?;
        let text = String::from_utf8(text)
            .map_err(|_| Error::bad_input("tokenize: the text is not valid UTF-8"))?;
        let ids = tok.tokenize(&text, args.add_special)?;
        show(&ids, &|id| Ok(tok.detokenize(&[id], false)?.into_bytes()))?;
    } else {
        let model = args
            .model
            .as_deref()
            .ok_or_else(|| Error::bad_input("tokenize: no MODEL and no --tokenizer-json"))?;
        let file = MappedFile::open(model)?;
        let gguf = file.gguf()?;
        let tok = Tokenizer::from_gguf(&gguf).map_err(|e| e.context(model))?;
        let ids = tok.tokenize_bytes(&text, args.add_special, args.special);
        show(&ids, &|id| tok.token_to_piece(id, 0, true))?;
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::io(format!("cannot write the output: {e}")))
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn pieces_print_on_one_line() {
        assert_eq!(printable(b"a\nb"), "a\\nb");
        assert_eq!(printable(b"\xE2\x82"), "\\xe2\\x82");
        assert_eq!(printable(" é".as_bytes()), " é");
    }
}
