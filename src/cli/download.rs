//! `bitnet download REPO[:QUANT] [FILE...] [--revision REV]` and the `-hf REPO[:FILE_OR_QUANT]`
//! option of run, chat, bench and verify: files from the Hugging Face hub into huggingface_hub's
//! cache (`bitnet::hub`).

use bitnet::hub::{self, Hub};
use bitnet::{Error, Result};

pub struct Args {
    /// `ORG/NAME` or `ORG/NAME:QUANT`.
    pub spec: String,
    pub files: Vec<String>,
    pub revision: String,
}

/// Prints each file's local path on stdout, one a line; with no FILE, the repository's GGUF
/// file (the one `-hf` would use).
pub fn run(args: &Args) -> Result<()> {
    let hub = Hub::from_env()?;
    if args.files.is_empty() {
        let path = model_path(&hub, &args.spec, &args.revision)?;
        println!("{path}");
        return Ok(());
    }
    let (repo, selector) = hub::parse_spec(&args.spec)?;
    if let Some(s) = selector {
        return Err(Error::bad_input(format!(
            "download: give either {repo}:{s} or FILE arguments, not both"
        )));
    }
    for file in &args.files {
        let path = hub.download(&repo, file, &args.revision)?;
        println!("{}", path.display());
    }
    Ok(())
}

fn model_path(hub: &Hub, spec: &str, revision: &str) -> Result<String> {
    let (file, path) = hub.model(spec, revision)?;
    eprintln!("bitnet: {spec}: using {file} ({})", path.display());
    Ok(path.to_string_lossy().into_owned())
}

/// `-hf REPO[:FILE_OR_QUANT]`: the local path of the model file it names, at the main branch.
pub fn hf_model(spec: &str) -> Result<String> {
    model_path(&Hub::from_env()?, spec, "main")
}

/// `convert -hf REPO`: the checkpoint files a conversion reads (`*.json`, `*.safetensors`,
/// `tokenizer.model`) of the repository's main branch, downloaded if needed; returns the
/// snapshot folder that holds them.
pub fn hf_checkpoint(spec: &str) -> Result<std::path::PathBuf> {
    let (repo, selector) = hub::parse_spec(spec)?;
    if let Some(s) = selector {
        return Err(Error::bad_input(format!(
            "convert: -hf takes a repository (ORG/NAME), not {repo}:{s}"
        )));
    }
    let wanted =
        |f: &str| f.ends_with(".json") || f.ends_with(".safetensors") || f == "tokenizer.model";
    let dir = Hub::from_env()?.snapshot(&repo, "main", wanted)?;
    eprintln!("bitnet: {repo}: checkpoint in {}", dir.display());
    Ok(dir)
}
