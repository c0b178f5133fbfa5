//! The `bitnet` command line.

mod inspect;
mod json;
mod tokenize;

use std::path::PathBuf;
use std::process::ExitCode;

use bitnet::{Error, Result};

const USAGE: &str = "\
bitnet: BitNet b1.58 models in Rust

usage:
  bitnet inspect [MODEL] [--json]          what a GGUF file holds: architecture, hyperparameters,
                                           tokenizer, metadata, tensors (name, type, shape, offset, bytes)
  bitnet inspect MODEL --dequant TENSOR --out FILE
                                           write one tensor dequantized as raw little-endian f32
  bitnet tokenize [-m MODEL] [--no-bos] [--special] [--ids] (TEXT | -f FILE | -f -)
                                           the tokens of a text, as llama_tokenize makes them
                                           (--no-bos: no BOS/EOS; --special: control tokens
                                           written in the text are parsed; --ids: ids only)
  bitnet tokenize --tokenizer-json FILE [--no-bos] [--ids] (TEXT | -f FILE | -f -)
                                           the same with a Hugging Face tokenizer.json
                                           instead of the model's vocabulary (no MODEL needed;
                                           --no-bos: no post-processor special tokens)
  bitnet help | --help | --version

With no MODEL, the small default model is used (generated on first use by
tests/models/prepare.sh into $BITNET_CACHE_DIR, default ~/.cache/bitnet-rs).
";

/// The default model's path, generating the test-model set first if it is not there.
fn default_model() -> Result<String> {
    let cache = std::env::var_os("BITNET_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bitnet-rs")))
        .ok_or_else(|| {
            Error::bad_input("no MODEL given and neither BITNET_CACHE_DIR nor HOME is set")
        })?;
    let model = cache.join("models/tiny/bitnet-b1.58-i2_s.gguf");
    if !model.exists() {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/models/prepare.sh");
        if !script.exists() {
            return Err(Error::bad_input(format!(
                "no MODEL given and the default model {} is missing (make it with \
                 tests/models/prepare.sh from the bitnet-rs source tree)",
                model.display()
            )));
        }
        eprintln!(
            "bitnet: making the default model with {} ...",
            script.display()
        );
        let status = std::process::Command::new("bash")
            .arg(&script)
            .env("BITNET_CACHE_DIR", &cache)
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| Error::io(format!("cannot run {}: {e}", script.display())))?;
        if !status.success() || !model.exists() {
            return Err(Error::io(format!("{} failed ({status})", script.display())));
        }
    }
    Ok(model.to_string_lossy().into_owned())
}

/// The value after a flag that takes one.
fn flag_value(it: &mut std::slice::Iter<'_, String>, flag: &str) -> Result<String> {
    it.next()
        .cloned()
        .ok_or_else(|| Error::bad_input(format!("{flag} needs a value")))
}

fn parse_inspect(args: &[String]) -> Result<inspect::Args> {
    let mut model = None;
    let mut json = false;
    let mut dequant = None;
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| flag_value(&mut it, flag);
        match a.as_str() {
            "--json" => json = true,
            "--dequant" => dequant = Some(value("--dequant")?),
            "--out" | "-o" => out = Some(value("--out")?),
            "-m" | "--model" => model = Some(value("--model")?),
            s if s.starts_with('-') => {
                return Err(Error::bad_input(format!("inspect: unknown option {s}")))
            }
            s if model.is_none() => model = Some(s.to_string()),
            s => {
                return Err(Error::bad_input(format!(
                    "inspect: unexpected argument {s}"
                )))
            }
        }
    }
    let model = match model {
        Some(m) => m,
        None => default_model()?,
    };
    Ok(inspect::Args {
        model,
        json,
        dequant,
        out,
    })
}

fn parse_tokenize(args: &[String]) -> Result<tokenize::Args> {
    let mut model = None;
    let mut tokenizer_json = None;
    let mut add_special = true;
    let mut special = false;
    let mut ids_only = false;
    let mut text = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| flag_value(&mut it, flag);
        let input = match a.as_str() {
            "-m" | "--model" => {
                model = Some(value("--model")?);
                continue;
            }
            "--tokenizer-json" => {
                tokenizer_json = Some(value("--tokenizer-json")?);
                continue;
            }
            "--no-bos" => {
                add_special = false;
                continue;
            }
            "--special" => {
                special = true;
                continue;
            }
            "--ids" => {
                ids_only = true;
                continue;
            }
            "-f" | "--file" => tokenize::Input::File(value("--file")?),
            "--" => tokenize::Input::Text(it.by_ref().cloned().collect::<Vec<_>>().join(" ")),
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(Error::bad_input(format!("tokenize: unknown option {s}")))
            }
            s => tokenize::Input::Text(s.to_string()),
        };
        if text.replace(input).is_some() {
            return Err(Error::bad_input(
                "tokenize: give one TEXT or one -f FILE (quote a text with spaces)",
            ));
        }
    }
    let text = text.ok_or_else(|| Error::bad_input("tokenize: no TEXT and no -f FILE"))?;
    // With a tokenizer.json the model is not read: no default model is made.
    let model = match (model, &tokenizer_json) {
        (Some(m), _) => Some(m),
        (None, Some(_)) => None,
        (None, None) => Some(default_model()?),
    };
    Ok(tokenize::Args {
        model,
        tokenizer_json,
        add_special,
        special,
        ids_only,
        text,
    })
}

fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("inspect") => inspect::run(&parse_inspect(&args[1..])?),
        Some("tokenize") => tokenize::run(&parse_tokenize(&args[1..])?),
        None | Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(())
        }
        Some("--version" | "-V") => {
            println!("bitnet {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(cmd) => Err(Error::bad_input(format!(
            "unknown command {cmd:?} (try bitnet help)"
        ))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the message names the file, key or tensor at fault.
            eprintln!("bitnet: error: {}", e.message.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
