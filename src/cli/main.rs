//! The `bitnet` command line.

mod bench;
mod chat;
mod convert;
mod demo;
mod download;
mod inspect;
mod json;
mod llama;
mod reference;
mod run;
mod tokenize;
mod verify;

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
  bitnet bench -m MODEL [-p 128,512] [-n 64] [-t THREADS] [-r REPS] [--head f16|q8_0|q4_0|q6_k] [--json] [--gpu]
                                           prefill/decode tok/s, load time, peak RSS, bandwidth share
  bitnet bench -m MODEL --head q8_0|q4_0|q6_k --quality N [--json]
                                           the head against the stored head over N teacher-forced
                                           positions: mean KL, top-1 agreement, logit cosine
  bitnet run [-m MODEL] -p PROMPT [-n 128] [-t THREADS] [-c CTX] [--temp 0.8] [--top-k 40]
             [--top-p 0.95] [--min-p 0.05] [--seed S] [--repeat-penalty 1.0] [--no-display-prompt]
             [--head f16|q8_0|q4_0|q6_k]
                                           generate text (streamed to stdout; prompt and
                                           generation speed on stderr); --temp 0: greedy;
                                           -n -1: until end of generation or a full context
                                           (-c 0, the default: the model's training context)
  bitnet chat [-m MODEL] [-sys SYSTEM] [--chat-template NAME] [the run options]
                                           chat: one user turn per stdin line, replies until
                                           end of turn (or -n tokens), until EOF
  bitnet verify [-m] MODEL [-n 16]          is the file usable: loads, tokenizer round-trips,
                                           greedy run with finite logits, same greedy tokens
                                           as the C++ reference when it is built and can load
                                           the model; PASS/FAIL/SKIP per check, exit code 0
                                           only when no check fails
  bitnet convert HF_DIR|-hf REPO -o OUT.gguf [--type i2_s|tq1_0|tq2_0|f16|bf16|f32]
                                           a Hugging Face checkpoint folder (BitNet b1.58 2B-4T,
                                           its -bf16 masters, 1bitLLM bitnet_b1_58) to GGUF;
                                           default type: i2_s where the shape allows, else f16
  bitnet download REPO[:QUANT] [FILE...] [--revision REV]
                                           files of a Hugging Face hub repository into
                                           huggingface_hub's cache (shared with it), resumed,
                                           verified (sha256); prints each local path; with no
                                           FILE, the repository's GGUF file (the only one, the
                                           I2_S one, or the one of QUANT)
  bitnet help | --help | --version

run, chat, bench and verify take -hf REPO[:FILE_OR_QUANT] instead of -m MODEL: that file of
the hub repository, downloaded on first use (HF_TOKEN, HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE
as in huggingface_hub).

run, chat and verify go through the library's llama.h C API, as a C program would.

With no MODEL, a small demo model is used: made on first use, in-process, into
$BITNET_CACHE_DIR/models/demo (default ~/.cache/bitnet-rs); its weights are synthetic
(seeded random ternary values), so its text is gibberish.
";

/// The demo model's path (`$BITNET_CACHE_DIR/models/demo/bitnet-demo-i2_s.gguf`), made on
/// first use by `demo::write` (in-process: no network, no Python).
fn default_model() -> Result<String> {
    let cache = bitnet::cache::dir().ok_or_else(|| {
        Error::bad_input("no MODEL given and neither BITNET_CACHE_DIR nor HOME is set")
    })?;
    let model = cache.join("models/demo/bitnet-demo-i2_s.gguf");
    if !model.exists() {
        eprintln!(
            "bitnet: making the demo model (synthetic weights) at {}",
            model.display()
        );
        demo::write(&model)?;
    }
    Ok(model.to_string_lossy().into_owned())
}

/// One option of a command: its spellings, and whether a value follows it.
#[derive(Clone, Copy)]
struct Opt {
    names: &'static [&'static str],
    takes_value: bool,
}

const fn flag(names: &'static [&'static str]) -> Opt {
    Opt {
        names,
        takes_value: false,
    }
}

const fn value(names: &'static [&'static str]) -> Opt {
    Opt {
        names,
        takes_value: true,
    }
}

/// A command line parsed against its option table: options by their first spelling (the last
/// one given wins, as in llama-cli), and the positional arguments. `--` ends the options: what
/// follows is one positional argument, joined with spaces.
struct Parsed {
    command: &'static str,
    values: Vec<(&'static str, String)>,
    flags: Vec<&'static str>,
    positional: Vec<String>,
}

fn parse(command: &'static str, table: &[Opt], args: &[String]) -> Result<Parsed> {
    let mut parsed = Parsed {
        command,
        values: Vec::new(),
        flags: Vec::new(),
        positional: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            parsed
                .positional
                .push(it.by_ref().cloned().collect::<Vec<_>>().join(" "));
            break;
        }
        if !arg.starts_with('-') || arg.len() == 1 {
            parsed.positional.push(arg.clone());
            continue;
        }
        // `--name=value` as well as `--name value`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let opt = table
            .iter()
            .find(|o| o.names.contains(&name))
            .ok_or_else(|| Error::bad_input(format!("{command}: unknown option {name}")))?;
        let key = opt.names[0];
        if opt.takes_value {
            let v = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| Error::bad_input(format!("{command}: {name} needs a value")))?,
            };
            parsed.values.retain(|(k, _)| *k != key);
            parsed.values.push((key, v));
        } else if inline.is_some() {
            return Err(Error::bad_input(format!(
                "{command}: {name} takes no value"
            )));
        } else if !parsed.flags.contains(&key) {
            parsed.flags.push(key);
        }
    }
    Ok(parsed)
}

impl Parsed {
    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, key: &str) -> bool {
        self.flags.contains(&key)
    }

    /// A number option, or `default` when absent.
    fn number<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| {
                Error::bad_input(format!(
                    "{}: {key} expects a number, got {v:?}",
                    self.command
                ))
            }),
        }
    }

    /// At most `max` positional arguments.
    fn positional(&self, max: usize) -> Result<&[String]> {
        match self.positional.get(max) {
            Some(extra) => Err(Error::bad_input(format!(
                "{}: unexpected argument {extra:?}",
                self.command
            ))),
            None => Ok(&self.positional),
        }
    }

    /// `-m MODEL`, `-hf REPO[:FILE_OR_QUANT]` (downloaded if needed), or the default model.
    fn model_or_default(&self) -> Result<String> {
        match (self.get("-m"), self.get("-hf")) {
            (Some(_), Some(_)) => Err(Error::bad_input(format!(
                "{}: give -m MODEL or -hf REPO, not both",
                self.command
            ))),
            (Some(m), None) => Ok(m.to_string()),
            (None, Some(spec)) => download::hf_model(spec),
            (None, None) => default_model(),
        }
    }
}

fn parse_inspect(args: &[String]) -> Result<inspect::Args> {
    const TABLE: &[Opt] = &[
        flag(&["--json"]),
        value(&["--dequant"]),
        value(&["--out", "-o"]),
        value(&["-m", "--model"]),
    ];
    let p = parse("inspect", TABLE, args)?;
    let model = match (p.get("-m"), p.positional(1)?.first()) {
        (Some(_), Some(extra)) => {
            return Err(Error::bad_input(format!(
                "inspect: unexpected argument {extra:?}"
            )))
        }
        (Some(m), None) => m.to_string(),
        (None, Some(m)) => m.clone(),
        (None, None) => default_model()?,
    };
    Ok(inspect::Args {
        model,
        json: p.has("--json"),
        dequant: p.get("--dequant").map(str::to_string),
        out: p.get("--out").map(str::to_string),
    })
}

fn parse_tokenize(args: &[String]) -> Result<tokenize::Args> {
    const TABLE: &[Opt] = &[
        value(&["-m", "--model"]),
        value(&["--tokenizer-json"]),
        flag(&["--no-bos"]),
        flag(&["--special"]),
        flag(&["--ids"]),
        value(&["-f", "--file"]),
    ];
    let p = parse("tokenize", TABLE, args)?;
    let text = match (p.get("-f"), p.positional.as_slice()) {
        (Some(file), []) => tokenize::Input::File(file.to_string()),
        (None, [text]) => tokenize::Input::Text(text.clone()),
        (None, []) => return Err(Error::bad_input("tokenize: no TEXT and no -f FILE")),
        _ => {
            return Err(Error::bad_input(
                "tokenize: give one TEXT or one -f FILE (quote a text with spaces)",
            ))
        }
    };
    let tokenizer_json = p.get("--tokenizer-json").map(str::to_string);
    // With a tokenizer.json the model is not read: no default model is made.
    let model = match (p.get("-m"), &tokenizer_json) {
        (Some(m), _) => Some(m.to_string()),
        (None, Some(_)) => None,
        (None, None) => Some(default_model()?),
    };
    Ok(tokenize::Args {
        model,
        tokenizer_json,
        add_special: !p.has("--no-bos"),
        special: p.has("--special"),
        ids_only: p.has("--ids"),
        text,
    })
}

/// The options `run` and `chat` share (llama-cli's names).
const GENERATION_OPTS: &[Opt] = &[
    value(&["-m", "--model"]),
    value(&["-hf", "--hf-repo"]),
    value(&["-n", "--n-predict", "--predict"]),
    value(&["-t", "--threads"]),
    value(&["-c", "--ctx-size"]),
    value(&["--temp"]),
    value(&["--top-k"]),
    value(&["--top-p"]),
    value(&["--min-p"]),
    value(&["-s", "--seed"]),
    value(&["--repeat-penalty"]),
    value(&["--repeat-last-n"]),
    value(&["--head"]),
    flag(&["-v", "--verbose"]),
];

/// `--head f16|q8_0|q4_0|q6_k`: checked, then passed to the library's model load as `BITNET_HEAD`
/// (the C API reads it there), for this process only.
fn head_option(p: &Parsed) -> Result<()> {
    if let Some(h) = p.get("--head") {
        if bitnet::model::weights::HeadType::parse(h).is_none() {
            return Err(Error::bad_input(format!(
                "{}: --head f16|q8_0|q4_0|q6_k, not {h}",
                p.command
            )));
        }
        std::env::set_var(bitnet::env::HEAD, h);
    }
    Ok(())
}

fn sampling_params(p: &Parsed) -> Result<llama::SamplingParams> {
    let d = llama::SamplingParams::default();
    let s = llama::SamplingParams {
        temp: p.number("--temp", d.temp)?,
        top_k: p.number("--top-k", d.top_k)?,
        top_p: p.number("--top-p", d.top_p)?,
        min_p: p.number("--min-p", d.min_p)?,
        // -1 (llama-cli's "random") is LLAMA_DEFAULT_SEED.
        seed: p.number::<i64>("-s", d.seed as i64)? as u32,
        repeat_penalty: p.number("--repeat-penalty", d.repeat_penalty)?,
        repeat_last_n: p.number("--repeat-last-n", d.repeat_last_n)?,
    };
    let bad = |what: &str| Err(Error::bad_input(format!("{}: {what}", p.command)));
    if !s.temp.is_finite() {
        return bad("--temp must be a finite number");
    }
    if !(0.0..=1.0).contains(&s.top_p) || !(0.0..=1.0).contains(&s.min_p) {
        return bad("--top-p and --min-p must lie in [0, 1]");
    }
    if !(s.repeat_penalty > 0.0 && s.repeat_penalty.is_finite()) {
        return bad("--repeat-penalty must be > 0");
    }
    if s.repeat_last_n < -1 {
        return bad("--repeat-last-n must be >= -1");
    }
    Ok(s)
}

/// -c, -t, -n: (n_ctx, n_threads, n_predict), checked.
fn sizes(p: &Parsed) -> Result<(u32, i32, i32)> {
    let n_ctx: u32 = p.number("-c", 0)?;
    let n_threads: i32 = p.number("-t", 0)?;
    let n_predict: i32 = p.number("-n", 128)?;
    if !(0..=1024).contains(&n_threads) {
        return Err(Error::bad_input(format!(
            "{}: -t must lie in 0..=1024 (0: all cores)",
            p.command
        )));
    }
    if n_predict < -1 {
        return Err(Error::bad_input(format!(
            "{}: -n must be >= -1 (-1: no limit)",
            p.command
        )));
    }
    Ok((n_ctx, n_threads, n_predict))
}

fn parse_run(args: &[String]) -> Result<run::Args> {
    let mut table = GENERATION_OPTS.to_vec();
    table.extend([
        value(&["-p", "--prompt"]),
        value(&["-f", "--file"]),
        flag(&["--no-display-prompt"]),
    ]);
    let p = parse("run", &table, args)?;
    p.positional(0)?;
    head_option(&p)?;
    let prompt = match (p.get("-p"), p.get("-f")) {
        (Some(text), None) => text.to_string(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("run: cannot read {file}: {e}")))?,
        (Some(_), Some(_)) => {
            return Err(Error::bad_input("run: give -p PROMPT or -f FILE, not both"))
        }
        (None, None) => return Err(Error::bad_input("run: no prompt (-p PROMPT or -f FILE)")),
    };
    let (n_ctx, n_threads, n_predict) = sizes(&p)?;
    let sampling = sampling_params(&p)?;
    Ok(run::Args {
        model: p.model_or_default()?,
        prompt,
        n_predict,
        n_ctx,
        n_threads,
        sampling,
        display_prompt: !p.has("--no-display-prompt"),
        verbose: p.has("-v"),
    })
}

fn parse_chat(args: &[String]) -> Result<chat::Args> {
    let mut table = GENERATION_OPTS.to_vec();
    table.extend([
        value(&["-sys", "--system-prompt"]),
        value(&["--chat-template"]),
    ]);
    let p = parse("chat", &table, args)?;
    p.positional(0)?;
    head_option(&p)?;
    let (n_ctx, n_threads, n_predict) = sizes(&p)?;
    let sampling = sampling_params(&p)?;
    Ok(chat::Args {
        model: p.model_or_default()?,
        system: p.get("-sys").map(str::to_string),
        template: p.get("--chat-template").map(str::to_string),
        n_predict,
        n_ctx,
        n_threads,
        sampling,
        verbose: p.has("-v"),
    })
}

fn parse_verify(args: &[String]) -> Result<verify::Args> {
    const TABLE: &[Opt] = &[
        value(&["-m", "--model"]),
        value(&["-hf", "--hf-repo"]),
        value(&["-n", "--n-predict"]),
        flag(&["-v", "--verbose"]),
    ];
    let p = parse("verify", TABLE, args)?;
    let model = match (p.get("-m").or(p.get("-hf")), p.positional(1)?.first()) {
        (None, Some(m)) => m.clone(),
        (Some(_), Some(extra)) => {
            return Err(Error::bad_input(format!(
                "verify: unexpected argument {extra:?}"
            )))
        }
        (_, None) => p.model_or_default()?,
    };
    let n_steps: usize = p.number("-n", 16)?;
    if !(1..=4096).contains(&n_steps) {
        return Err(Error::bad_input("verify: -n must lie in 1..=4096"));
    }
    Ok(verify::Args {
        model,
        n_steps,
        verbose: p.has("-v"),
    })
}

fn parse_convert(args: &[String]) -> Result<convert::Args> {
    const TABLE: &[Opt] = &[
        value(&["-o", "--outfile"]),
        value(&["--type", "--outtype"]),
        value(&["-hf", "--hf-repo"]),
    ];
    let p = parse("convert", TABLE, args)?;
    let dir = match (p.positional(1)?, p.get("-hf")) {
        ([dir], None) => dir.into(),
        ([], Some(spec)) => download::hf_checkpoint(spec)?,
        ([_], Some(_)) => {
            return Err(Error::bad_input(
                "convert: give HF_DIR or -hf REPO, not both",
            ))
        }
        _ => {
            return Err(Error::bad_input(
                "convert: no HF_DIR (a checkpoint folder) or -hf REPO",
            ))
        }
    };
    let out = p
        .get("-o")
        .ok_or_else(|| Error::bad_input("convert: no -o OUT.gguf"))?
        .into();
    let out_type = p
        .get("--type")
        .map(bitnet::convert::OutType::parse)
        .transpose()?;
    Ok(convert::Args { dir, out, out_type })
}

fn parse_download(args: &[String]) -> Result<download::Args> {
    const TABLE: &[Opt] = &[value(&["--revision", "-r"])];
    let p = parse("download", TABLE, args)?;
    let Some((spec, files)) = p.positional.split_first() else {
        return Err(Error::bad_input(
            "download: no repository (bitnet download ORG/NAME[:QUANT] [FILE...])",
        ));
    };
    Ok(download::Args {
        spec: spec.clone(),
        files: files.to_vec(),
        revision: p.get("--revision").unwrap_or("main").to_string(),
    })
}

fn dispatch(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("inspect") => inspect::run(&parse_inspect(&args[1..])?),
        Some("tokenize") => tokenize::run(&parse_tokenize(&args[1..])?),
        Some("bench") => bench::run(&args[1..]),
        Some("run") => run::run(&parse_run(&args[1..])?),
        Some("chat") => chat::run(&parse_chat(&args[1..])?),
        Some("verify") => verify::run(&parse_verify(&args[1..])?),
        Some("convert") => convert::run(&parse_convert(&args[1..])?),
        Some("download") => download::run(&parse_download(&args[1..])?),
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
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the message names the file, key or tensor at fault.
            eprintln!("bitnet: error: {}", e.message.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
