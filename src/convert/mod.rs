//! `bitnet convert`: a Hugging Face checkpoint folder (safetensors weights, `config.json`,
//! tokenizer files) to one GGUF file our engine runs. One file a concern:
//! - `safetensors`: the zero-copy reader of the weights (single file or shards);
//! - `config`: `config.json`, the family and the hyperparameters;
//! - `plan`: the per-family tensor mapping, checked in full before anything is written, and the
//!   bytes of each output tensor;
//! - `ternary`: packed ternary weights unpacked, float masters made ternary (absmean);
//! - `vocab`: `tokenizer.json` / `tokenizer.model` / `tokenizer_config.json` as metadata.
//!
//! The output is written under a temporary name in the destination folder and renamed into
//! place at the end; on any error the temporary file is removed, so a failed conversion leaves
//! nothing behind. docs/convert.md describes the families and the checks.

pub mod config;
pub mod plan;
pub mod safetensors;
pub mod ternary;
pub mod vocab;

use std::path::{Path, PathBuf};

use crate::fixture::synthetic::put_hparams;
use crate::gguf::writer::{GgufWriter, OwnedValue};
use crate::quant::GgmlType;
use crate::{Error, Result};
use config::Config;

/// The `--type` of the output: how the seven projections are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutType {
    I2S,
    TQ1_0,
    TQ2_0,
    F16,
    BF16,
    F32,
}

impl OutType {
    pub const ALL: [OutType; 6] = [
        OutType::I2S,
        OutType::TQ1_0,
        OutType::TQ2_0,
        OutType::F16,
        OutType::BF16,
        OutType::F32,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OutType::I2S => "i2_s",
            OutType::TQ1_0 => "tq1_0",
            OutType::TQ2_0 => "tq2_0",
            OutType::F16 => "f16",
            OutType::BF16 => "bf16",
            OutType::F32 => "f32",
        }
    }

    pub fn parse(s: &str) -> Result<OutType> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                Error::bad_input(format!(
                    "unknown --type {s:?} (one of i2_s, tq1_0, tq2_0, f16, bf16, f32)"
                ))
            })
    }

    /// The GGUF type of the projections.
    pub fn projection_type(self) -> GgmlType {
        match self {
            OutType::I2S => GgmlType::I2_S,
            OutType::TQ1_0 => GgmlType::TQ1_0,
            OutType::TQ2_0 => GgmlType::TQ2_0,
            OutType::F16 => GgmlType::F16,
            OutType::BF16 => GgmlType::BF16,
            OutType::F32 => GgmlType::F32,
        }
    }

    /// The GGUF type of the embedding and an untied head: F16 (the engine's fast head) except
    /// for the bf16 and f32 outputs.
    pub fn float_type(self) -> GgmlType {
        match self {
            OutType::BF16 => GgmlType::BF16,
            OutType::F32 => GgmlType::F32,
            _ => GgmlType::F16,
        }
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`; 40 is bitnet.cpp's MOSTLY_I2_S).
    fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::BF16 => 32,
            OutType::TQ1_0 => 36,
            OutType::TQ2_0 => 37,
            OutType::I2S => 40,
        }
    }

    /// Whether every projection's input length (n_embd, n_ff) is a whole number of blocks.
    fn holds(self, c: &Config) -> bool {
        let block = self.projection_type().block_size() as usize;
        c.shape.n_embd.is_multiple_of(block) && c.shape.n_ff.is_multiple_of(block)
    }

    /// The names of the types that can hold a model of this shape.
    pub fn holding(c: &Config) -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|t| t.holds(c))
            .map(OutType::name)
            .collect()
    }

    /// The default: I2_S where the shape allows it, else F16 (1bitLLM 3B: n_ff 8640). For
    /// `bitnet-b1.58` the three ternary types run the same kernel (per-token int8 activations,
    /// one scale per tensor); for `bitnet` I2_S took the least CPU per decoded token of the
    /// three (`benches/out_types.sh`, docs/convert.md) and is the families' own BitLinear.
    pub fn default_for(c: &Config) -> OutType {
        if OutType::I2S.holds(c) {
            OutType::I2S
        } else {
            OutType::F16
        }
    }
}

/// What a conversion did, for the command line.
#[derive(Clone, Debug)]
pub struct Report {
    pub arch: &'static str,
    pub out_type: OutType,
    pub n_tensors: usize,
    pub bytes: u64,
    pub vocab: String,
}

/// Removes a temporary file on drop unless it was moved into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Converts checkpoint folder `dir` into the GGUF file `out` (`out_type` None: the default
/// for the model).
/// `general.name`: the folder's name, or NAME for a hub snapshot folder
/// (`.../models--ORG--NAME/snapshots/COMMIT`, as `bitnet convert -hf` and huggingface_hub lay
/// it out), so a checkpoint converted from the hub cache is named like its repository.
fn model_name(dir: &Path) -> String {
    let name_of = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let snapshots = dir.parent();
    let repo = snapshots.and_then(Path::parent).and_then(name_of);
    match (snapshots.and_then(name_of).as_deref(), repo) {
        (Some("snapshots"), Some(repo)) if repo.starts_with("models--") => {
            repo.rsplit("--").next().unwrap_or("model").to_string()
        }
        _ => name_of(dir).unwrap_or_else(|| "model".into()),
    }
}

pub fn convert(dir: &Path, out: &Path, out_type: Option<OutType>) -> Result<Report> {
    if !dir.is_dir() {
        return Err(Error::bad_input(format!(
            "{} is not a checkpoint folder",
            dir.display()
        )));
    }
    let mut config = Config::read(&dir.join("config.json"))?;
    let gen_path = dir.join("generation_config.json");
    if gen_path.exists() {
        let gen = config::read_json(&gen_path)?;
        let first = |key: &str| match gen.get(key) {
            Some(serde_json::Value::Array(a)) => a.first().and_then(|v| v.as_u64()),
            Some(v) => v.as_u64(),
            None => None,
        };
        config.bos = config.bos.or(first("bos_token_id").map(|v| v as u32));
        config.eos = config.eos.or(first("eos_token_id").map(|v| v as u32));
    }
    let out_type = out_type.unwrap_or_else(|| OutType::default_for(&config));
    let ckpt = safetensors::Checkpoint::open(dir)?;
    let planned = plan::plan(&config, &ckpt, out_type)?;
    let vocab = vocab::read(dir, &config)?;

    let mut g = GgufWriter::default();
    let arch = config.family.arch();
    let name = model_name(dir);
    put_hparams(&mut g, &config.shape, &name, config.rms_eps);
    g.kv("general.file_type", OwnedValue::U32(out_type.file_type()))
        .kv("general.quantization_version", OwnedValue::U32(2))
        .kv(
            &format!("{arch}.rope.dimension_count"),
            OwnedValue::U32(config.head_dim() as u32),
        );
    for (k, v) in vocab.entries {
        g.kv(&k, v);
    }

    let out_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = out
        .file_name()
        .ok_or_else(|| Error::bad_input(format!("{} is not a file name", out.display())))?;
    let mut tmp = TempFile {
        path: out_dir.join(format!(
            ".{}.partial-{}",
            file_name.to_string_lossy(),
            std::process::id()
        )),
        keep: false,
    };
    let file = std::fs::File::create(&tmp.path)
        .map_err(|e| Error::io(format!("cannot create {}: {e}", tmp.path.display())))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let list: Vec<(String, Vec<u64>, GgmlType)> = planned
        .iter()
        .map(|p| (p.name.clone(), p.dims.clone(), p.ty))
        .collect();
    let mut producer = plan::Producer::new(&config, &ckpt);
    g.write_streaming(&mut w, &list, |i| {
        producer
            .bytes(&planned[i])
            .map_err(|e| e.context(&planned[i].name))
    })?;
    let file = w
        .into_inner()
        .map_err(|e| Error::io(format!("cannot write {}: {e}", tmp.path.display())))?;
    file.sync_all()
        .map_err(|e| Error::io(format!("cannot write {}: {e}", tmp.path.display())))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    drop(file);
    std::fs::rename(&tmp.path, out).map_err(|e| {
        Error::io(format!(
            "cannot move {} to {}: {e}",
            tmp.path.display(),
            out.display()
        ))
    })?;
    tmp.keep = true;
    Ok(Report {
        arch,
        out_type,
        n_tensors: planned.len(),
        bytes,
        vocab: vocab.summary,
    })
}
