//! `bitnet convert HF_DIR -o OUT.gguf [--type TYPE]`: a Hugging Face checkpoint folder to a
//! GGUF file (the work is `bitnet::convert`).

use std::path::PathBuf;

use bitnet::convert::{self, OutType};
use bitnet::Result;

pub struct Args {
    pub dir: PathBuf,
    pub out: PathBuf,
    pub out_type: Option<OutType>,
}

pub fn run(args: &Args) -> Result<()> {
    let r = convert::convert(&args.dir, &args.out, args.out_type)?;
    eprintln!(
        "bitnet: wrote {} ({}, {} weights, {} tensors, {:.1} MB; {})",
        args.out.display(),
        r.arch,
        r.out_type.name(),
        r.n_tensors,
        r.bytes as f64 / 1e6,
        r.vocab
    );
    Ok(())
}
