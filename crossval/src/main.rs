//! crossval: bitnet-rs against the C++ reference.
//!
//! ```text
//! crossval --model FILE [--ref-model FILE] (--prompt TEXT | --tokens 1,2,3) --n-predict N
//!          [--json OUT] [--threads T] [--flash-attn auto|on|off] [--no-table]
//! crossval --all [--models-dir DIR] [--json OUT] [--threads T] [--flash-attn ...] [--n-predict N]
//! crossval --ops                      op-level exact checks only
//! crossval --ref-only --model FILE (--prompt TEXT | --tokens ...) --n-predict N
//!                                     the reference alone: tokens and logits
//! ```
//! Exit status: 0 pass, 1 a threshold failed, 2 usage or run error.

use std::path::PathBuf;
use std::process::ExitCode;

use crossval::compare::{self, Input, Options};
use crossval::reference::{self, FlashAttn, RefContext, RefCtxParams, RefModel};
use crossval::{ops, run, suite, Result};

const USAGE: &str = "usage:
  crossval --model FILE [--ref-model FILE] (--prompt TEXT | --tokens 1,2,3) --n-predict N
           [--json OUT] [--threads T] [--flash-attn auto|on|off] [--no-table]
  crossval --all [--models-dir DIR] [--json OUT] [--threads T] [--flash-attn auto|on|off] [--n-predict N]
  crossval --ops
  crossval --ref-only --model FILE (--prompt TEXT | --tokens 1,2,3) --n-predict N [--threads T]";

#[derive(Default)]
struct Args {
    all: bool,
    ops: bool,
    ref_only: bool,
    model: Option<PathBuf>,
    ref_model: Option<PathBuf>,
    models_dir: Option<PathBuf>,
    prompt: Option<String>,
    tokens: Option<Vec<u32>>,
    n_predict: Option<usize>,
    json: Option<PathBuf>,
    threads: Option<i32>,
    flash_attn: Option<FlashAttn>,
    no_table: bool,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> std::result::Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match key.as_str() {
            "--all" => a.all = true,
            "--ops" => a.ops = true,
            "--ref-only" => a.ref_only = true,
            "--no-table" => a.no_table = true,
            "--model" => a.model = Some(value("--model")?.into()),
            "--ref-model" => a.ref_model = Some(value("--ref-model")?.into()),
            "--models-dir" => a.models_dir = Some(value("--models-dir")?.into()),
            "--prompt" => a.prompt = Some(value("--prompt")?),
            "--tokens" => {
                let v = value("--tokens")?;
                let t: std::result::Result<Vec<u32>, _> =
                    v.split(',').map(|s| s.trim().parse::<u32>()).collect();
                a.tokens = Some(t.map_err(|_| format!("--tokens: not a list of token ids: {v}"))?);
            }
            "--n-predict" => {
                let v = value("--n-predict")?;
                a.n_predict = Some(v.parse().map_err(|_| format!("--n-predict: {v}"))?);
            }
            "--json" => a.json = Some(value("--json")?.into()),
            "--threads" => {
                let v = value("--threads")?;
                let t: i32 = v.parse().map_err(|_| format!("--threads: {v}"))?;
                if t < 1 {
                    return Err("--threads must be at least 1".into());
                }
                a.threads = Some(t);
            }
            "--flash-attn" => {
                let v = value("--flash-attn")?;
                a.flash_attn =
                    Some(FlashAttn::parse(&v).ok_or_else(|| format!("--flash-attn: {v}"))?);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("crossval: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match real_main(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("crossval: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main(a: Args) -> Result<bool> {
    let threads = a.threads.unwrap_or(reference::DEFAULT_THREADS);
    let flash_attn = a.flash_attn.unwrap_or(reference::DEFAULT_FLASH_ATTN);
    if a.all {
        return suite::run(&suite::SuiteOptions {
            models_dir: a.models_dir,
            threads,
            flash_attn,
            n_predict: a.n_predict.unwrap_or(suite::SUITE_N_PREDICT),
            json: a.json,
        });
    }
    if a.ops {
        let mut ok = true;
        for r in ops::run_all(0x5eed)? {
            println!(
                "{:24} {:4} cases  {}",
                r.op,
                r.cases,
                if r.passed() { "PASS" } else { "FAIL" }
            );
            for e in &r.examples {
                println!("    {e}");
            }
            ok &= r.passed();
        }
        return Ok(ok);
    }
    let model = a.model.ok_or("--model is required (or --all)")?;
    let input = match (a.prompt, a.tokens) {
        (Some(p), None) => Input::Prompt(p),
        (None, Some(t)) => Input::Tokens(t),
        _ => return Err("give exactly one of --prompt and --tokens".into()),
    };
    let n_predict = a.n_predict.ok_or("--n-predict is required")?;
    if a.ref_only {
        return ref_only(&model, &input, n_predict, threads, flash_attn);
    }
    let opts = Options {
        model,
        ref_model: a.ref_model,
        input,
        n_predict,
        threads,
        flash_attn,
        floor_eps: compare::FLOOR_EPS,
        table: !a.no_table,
    };
    let rep = compare::run(&opts)?;
    if opts.table {
        print!("{}", rep.table());
    }
    print!("{}", rep.summary_text());
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&rep.to_json())?)
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    Ok(rep.passed())
}

/// The reference alone: its tokens, greedy continuation and a glimpse of the logits.
fn ref_only(
    model: &std::path::Path,
    input: &Input,
    n_predict: usize,
    threads: i32,
    flash_attn: FlashAttn,
) -> Result<bool> {
    let lib = reference::load_library()?;
    for s in &lib.canary.resolved {
        println!("canary: {} -> {}", s.symbol, s.file.display());
    }
    let m = RefModel::load(model)?;
    let prompt = match input {
        Input::Prompt(t) => m.tokenize(t)?,
        Input::Tokens(t) => t.clone(),
    };
    println!(
        "arch {:?}, n_vocab {}, add_bos {}, prompt tokens {:?}",
        m.meta("general.architecture"),
        m.n_vocab(),
        m.add_bos(),
        prompt
    );
    let mut ctx = RefContext::new(
        &m,
        &RefCtxParams {
            n_ctx: (prompt.len() + n_predict).max(16) as u32,
            n_batch: prompt.len() as u32,
            threads,
            flash_attn,
        },
    )?;
    println!(
        "flash_attn {} -> {}",
        flash_attn.name(),
        if ctx.flash_attn_enabled {
            "enabled"
        } else {
            "disabled"
        }
    );
    let trace = run::greedy(&mut ctx, &prompt, n_predict)?;
    for (pos, row) in trace.logits.iter().enumerate() {
        let top = crossval::metrics::argmax(row);
        println!(
            "pos {pos:3} token {:6} -> top1 {:6} {:?} logit {:.4}  first {:?}",
            trace.tokens[pos],
            top,
            m.token_text(top as u32),
            row[top],
            &row[..4.min(row.len())]
        );
    }
    println!("generated: {:?}", trace.generated());
    Ok(true)
}
