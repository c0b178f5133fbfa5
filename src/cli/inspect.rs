//! `bitnet inspect MODEL [--json] [--dequant TENSOR --out FILE]`: what a GGUF file holds.

use std::fmt::Write as _;
use std::io::Write as _;

use bitnet::gguf::{short_value, Gguf, MappedFile, Value};
use bitnet::model::HParams;
use bitnet::{quant, Error, Result};

use crate::json;

/// What the tokenizer metadata says, summarized (the tokenizer itself lives in its own module).
struct TokenizerSummary<'a> {
    model: Option<&'a str>,
    pre: Option<&'a str>,
    n_tokens: Option<u64>,
    n_merges: Option<u64>,
    has_scores: bool,
    has_token_types: bool,
    special: Vec<(&'static str, u64)>,
    flags: Vec<(&'static str, bool)>,
    chat_template_bytes: Option<usize>,
}

impl<'a> TokenizerSummary<'a> {
    fn read(g: &Gguf<'a>) -> Result<Option<TokenizerSummary<'a>>> {
        let model = g.get_str("tokenizer.ggml.model")?;
        let tokens = g.get_array("tokenizer.ggml.tokens")?;
        if model.is_none() && tokens.is_none() {
            return Ok(None);
        }
        let mut special = Vec::new();
        for (name, key) in [
            ("bos", "tokenizer.ggml.bos_token_id"),
            ("eos", "tokenizer.ggml.eos_token_id"),
            ("eot", "tokenizer.ggml.eot_token_id"),
            ("unk", "tokenizer.ggml.unknown_token_id"),
            ("pad", "tokenizer.ggml.padding_token_id"),
            ("sep", "tokenizer.ggml.seperator_token_id"),
        ] {
            if let Some(id) = g.get_u64(key)? {
                special.push((name, id));
            }
        }
        let mut flags = Vec::new();
        for (name, key) in [
            ("add_bos", "tokenizer.ggml.add_bos_token"),
            ("add_eos", "tokenizer.ggml.add_eos_token"),
            ("add_space_prefix", "tokenizer.ggml.add_space_prefix"),
        ] {
            if let Some(b) = g.get_bool(key)? {
                flags.push((name, b));
            }
        }
        Ok(Some(TokenizerSummary {
            model,
            pre: g.get_str("tokenizer.ggml.pre")?,
            n_tokens: tokens.map(|a| a.len),
            n_merges: g.get_array("tokenizer.ggml.merges")?.map(|a| a.len),
            has_scores: g.get("tokenizer.ggml.scores").is_some(),
            has_token_types: g.get("tokenizer.ggml.token_type").is_some(),
            special,
            flags,
            chat_template_bytes: g.get_str("tokenizer.chat_template")?.map(str::len),
        }))
    }

    fn line(&self) -> String {
        let mut s = self
            .model
            .unwrap_or("(no tokenizer.ggml.model)")
            .to_string();
        match self.pre {
            Some(pre) => {
                let _ = write!(s, ", pre {pre}");
            }
            None if self.model == Some("gpt2") => {
                s.push_str(", no tokenizer.ggml.pre (llama.cpp falls back to 'default')")
            }
            None => {}
        }
        if let Some(n) = self.n_tokens {
            let _ = write!(s, ", {n} tokens");
        }
        if let Some(n) = self.n_merges {
            let _ = write!(s, ", {n} merges");
        }
        if self.has_scores {
            s.push_str(", scores");
        }
        for (name, id) in &self.special {
            let _ = write!(s, ", {name} {id}");
        }
        for (name, b) in &self.flags {
            let _ = write!(s, ", {name} {b}");
        }
        if let Some(n) = self.chat_template_bytes {
            let _ = write!(s, ", chat template ({n} bytes)");
        }
        s
    }

    fn json(&self, out: &mut String) {
        let mut first = true;
        out.push('{');
        json::key(out, &mut first, "model");
        opt_str(out, self.model);
        json::key(out, &mut first, "pre");
        opt_str(out, self.pre);
        json::key(out, &mut first, "n_tokens");
        opt_num(out, self.n_tokens);
        json::key(out, &mut first, "n_merges");
        opt_num(out, self.n_merges);
        json::key(out, &mut first, "has_scores");
        out.push_str(if self.has_scores { "true" } else { "false" });
        json::key(out, &mut first, "has_token_types");
        out.push_str(if self.has_token_types {
            "true"
        } else {
            "false"
        });
        for (name, id) in &self.special {
            json::key(out, &mut first, &format!("{name}_id"));
            let _ = write!(out, "{id}");
        }
        for (name, b) in &self.flags {
            json::key(out, &mut first, name);
            out.push_str(if *b { "true" } else { "false" });
        }
        json::key(out, &mut first, "chat_template_bytes");
        opt_num(out, self.chat_template_bytes.map(|n| n as u64));
        out.push('}');
    }
}

fn opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json::string(out, s),
        None => out.push_str("null"),
    }
}

fn opt_num(out: &mut String, n: Option<u64>) {
    match n {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("null"),
    }
}

fn hparams_line(h: &HParams) -> String {
    format!(
        "{} ({:?}): {} layers, n_embd {}, n_ff {}, {} heads ({} kv), head_dim {}, rope dims {} \
         theta {}, rms eps {:e}, train ctx {}, vocab {}",
        h.arch_name,
        h.arch,
        h.n_layer,
        h.n_embd,
        h.n_ff,
        h.n_head,
        h.n_head_kv,
        h.head_dim,
        h.n_rot,
        h.rope_theta,
        h.rms_eps,
        h.n_ctx_train,
        h.n_vocab
    )
}

fn hparams_json(out: &mut String, h: &HParams) {
    let mut first = true;
    out.push('{');
    json::key(out, &mut first, "arch");
    json::string(out, &h.arch_name);
    for (k, v) in [
        ("n_layer", h.n_layer),
        ("n_embd", h.n_embd),
        ("n_ff", h.n_ff),
        ("n_head", h.n_head),
        ("n_head_kv", h.n_head_kv),
        ("head_dim", h.head_dim),
        ("n_rot", h.n_rot),
        ("n_ctx_train", h.n_ctx_train),
        ("n_vocab", h.n_vocab),
    ] {
        json::key(out, &mut first, k);
        let _ = write!(out, "{v}");
    }
    json::key(out, &mut first, "rope_theta");
    json::f32(out, h.rope_theta);
    json::key(out, &mut first, "rms_eps");
    json::f32(out, h.rms_eps);
    out.push('}');
}

/// The `--json` document (schema in README.md).
pub fn to_json(path: &str, g: &Gguf<'_>) -> Result<String> {
    let mut out = String::new();
    let mut first = true;
    out.push('{');
    json::key(&mut out, &mut first, "file");
    json::string(&mut out, path);
    for (k, v) in [
        ("version", g.version as u64),
        ("alignment", g.alignment),
        ("data_offset", g.data_offset),
        ("file_size", g.file_size),
    ] {
        json::key(&mut out, &mut first, k);
        let _ = write!(out, "{v}");
    }
    json::key(&mut out, &mut first, "metadata");
    out.push('[');
    for (i, (key, value)) in g.metadata().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut f = true;
        out.push('{');
        json::key(&mut out, &mut f, "key");
        json::string(&mut out, key);
        json::key(&mut out, &mut f, "type");
        json::string(&mut out, value.value_type().name());
        if let Value::Array(a) = value {
            json::key(&mut out, &mut f, "elem_type");
            json::string(&mut out, a.elem_type.name());
        }
        json::key(&mut out, &mut f, "value");
        json::value(&mut out, value);
        out.push('}');
    }
    out.push(']');

    json::key(&mut out, &mut first, "architecture");
    opt_str(&mut out, g.architecture());
    let hparams = HParams::from_gguf(g);
    json::key(&mut out, &mut first, "hyperparameters");
    match &hparams {
        Ok(h) => hparams_json(&mut out, h),
        Err(_) => out.push_str("null"),
    }
    json::key(&mut out, &mut first, "hyperparameters_error");
    opt_str(&mut out, hparams.as_ref().err().map(|e| e.message.as_str()));
    json::key(&mut out, &mut first, "tokenizer");
    match TokenizerSummary::read(g)? {
        Some(t) => t.json(&mut out),
        None => out.push_str("null"),
    }

    json::key(&mut out, &mut first, "tensors");
    out.push('[');
    for (i, t) in g.tensors().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut f = true;
        out.push('{');
        json::key(&mut out, &mut f, "name");
        json::string(&mut out, t.name);
        json::key(&mut out, &mut f, "type");
        json::string(&mut out, t.ty.name());
        json::key(&mut out, &mut f, "type_id");
        let _ = write!(out, "{}", t.ty.id());
        json::key(&mut out, &mut f, "shape");
        let dims: Vec<String> = t.dims.iter().map(|d| d.to_string()).collect();
        let _ = write!(out, "[{}]", dims.join(","));
        for (k, v) in [
            ("n_elements", t.n_elements),
            ("offset", t.offset),
            ("file_offset", t.file_offset(g)),
            ("n_bytes", t.n_bytes),
        ] {
            json::key(&mut out, &mut f, k);
            let _ = write!(out, "{v}");
        }
        out.push('}');
    }
    out.push_str("]}");
    Ok(out)
}

/// The human-readable listing.
pub fn to_text(path: &str, g: &Gguf<'_>) -> Result<String> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{path}: GGUF v{}, {} bytes, alignment {}, tensor data at offset {}",
        g.version, g.file_size, g.alignment, g.data_offset
    );
    let _ = writeln!(s, "architecture: {}", g.architecture().unwrap_or("(none)"));
    match HParams::from_gguf(g) {
        Ok(h) => {
            let _ = writeln!(s, "hyperparameters: {}", hparams_line(&h));
        }
        Err(e) => {
            let _ = writeln!(s, "hyperparameters: not a runnable model: {e}");
        }
    }
    match TokenizerSummary::read(g)? {
        Some(t) => {
            let _ = writeln!(s, "tokenizer: {}", t.line());
        }
        None => s.push_str("tokenizer: none\n"),
    }
    let _ = writeln!(s, "\nmetadata ({} keys):", g.metadata().len());
    for (key, value) in g.metadata() {
        let ty = match value {
            Value::Array(a) => format!("array<{}>", a.elem_type.name()),
            v => v.value_type().name().to_string(),
        };
        let mut shown = short_value(value);
        if shown.chars().count() > 100 {
            shown = shown.chars().take(97).collect::<String>() + "...";
        }
        let _ = writeln!(s, "  {key:<44} {ty:<14} {shown}");
    }
    let total: u64 = g.tensors().iter().map(|t| t.n_bytes).sum();
    let _ = writeln!(
        s,
        "\ntensors ({}, {} bytes of data):",
        g.tensors().len(),
        total
    );
    let _ = writeln!(
        s,
        "  {:>4}  {:<32} {:<6} {:<22} {:>12} {:>12}",
        "#", "name", "type", "shape (ne0 first)", "file offset", "bytes"
    );
    for (i, t) in g.tensors().iter().enumerate() {
        let _ = writeln!(
            s,
            "  {:>4}  {:<32} {:<6} {:<22} {:>12} {:>12}",
            i,
            t.name,
            t.ty.name(),
            t.shape_string(),
            t.file_offset(g),
            t.n_bytes
        );
    }
    Ok(s)
}

/// Writes tensor `name` dequantized to little-endian f32 (ne0 fastest) into `out_path`.
pub fn dequant_to_file(g: &Gguf<'_>, name: &str, out_path: &str) -> Result<()> {
    let t = g
        .tensor(name)
        .ok_or_else(|| Error::bad_input(format!("no tensor named {name:?} in the file")))?;
    let n = usize::try_from(t.n_elements)
        .map_err(|_| Error::bad_input(format!("tensor {name} is too large")))?;
    let mut values = vec![0f32; n];
    quant::dequantize(t.ty, t.data, &mut values)
        .map_err(|e| e.context(format!("tensor {name}")))?;
    let file = std::fs::File::create(out_path)
        .map_err(|e| Error::io(format!("cannot create {out_path}: {e}")))?;
    let mut w = std::io::BufWriter::new(file);
    for chunk in values.chunks(4096) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.write_all(&bytes)
            .map_err(|e| Error::io(format!("cannot write {out_path}: {e}")))?;
    }
    w.flush()
        .map_err(|e| Error::io(format!("cannot write {out_path}: {e}")))
}

pub struct Args {
    pub model: String,
    pub json: bool,
    pub dequant: Option<String>,
    pub out: Option<String>,
}

pub fn run(args: &Args) -> Result<()> {
    let file = MappedFile::open(&args.model)?;
    let g = file.gguf()?;
    if let Some(name) = &args.dequant {
        let out = args
            .out
            .as_deref()
            .ok_or_else(|| Error::bad_input("--dequant needs --out FILE"))?;
        return dequant_to_file(&g, name, out);
    }
    let text = if args.json {
        to_json(&args.model, &g)?
    } else {
        to_text(&args.model, &g)?
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`bitnet inspect ... | head`) is not an error worth reporting.
    let _ = stdout.write_all(text.as_bytes());
    if args.json {
        let _ = stdout.write_all(b"\n");
    }
    Ok(())
}
