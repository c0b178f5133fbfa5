//! `--all`: the whole fixture suite, one line per item.
//!
//! 1. the loader canary (where every reference symbol came from);
//! 2. op-level exact checks (quantizers, dot products) against ggml's CPU routines;
//! 3. every `bitnet-*.gguf` and `qwen3-*.gguf` (Bonsai-like Q1_0 / Q2_0 files and their float
//!    copies) of the tiny fixture set that the reference loads, fixed prompt,
//!    64 greedy steps, judged as in `compare`; the ones the reference cannot load
//!    (`bitnet-b1.58` or I2_S weights: upstream llama.cpp knows neither) are skipped with the
//!    reference's own error;
//! 4. the divergence canary: ours on a copy of a model with one `ffn_down` row negated against
//!    the reference on the original must be reported divergent (once for a float-weight model,
//!    once for an int8 one).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::compare::{self, Class, Input, Options, TempDir};
use crate::reference::{self, FlashAttn, RefModel};
use crate::{ops, patch, Result};

pub const SUITE_PROMPT: &str = "The quick brown fox jumps over the lazy dog. Ternary weights are";
pub const SUITE_N_PREDICT: usize = 64;
/// The models the divergence canary modifies (one float-weight, one int8-activation).
pub const CANARY_MODELS: [&str; 2] = ["bitnet-spm-f32.gguf", "bitnet-spm-tq2_0.gguf"];
pub const CANARY_TENSOR: &str = "blk.0.ffn_down.weight";

#[derive(Clone, Debug)]
pub struct SuiteOptions {
    pub models_dir: Option<PathBuf>,
    pub threads: i32,
    pub flash_attn: FlashAttn,
    pub n_predict: usize,
    pub json: Option<PathBuf>,
}

/// The tiny fixture set: `$BITNET_MODELS_DIR`, else what `tests/models/prepare.sh` prints.
pub fn tiny_models_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("BITNET_MODELS_DIR") {
        return Ok(PathBuf::from(d));
    }
    prepared("models")
}

/// The llama.cpp tree of the pinned llama-cpp-python sdist (its `models/ggml-vocab-*.gguf`,
/// grammars, ...), unpacked by `tests/models/prepare.sh`.
pub fn sdist_llama_cpp() -> Result<PathBuf> {
    Ok(prepared("sdist")?.join("vendor/llama.cpp"))
}

/// Runs `tests/models/prepare.sh` (idempotent, locked) and returns its `NAME=` line's path.
fn prepared(name: &str) -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/models/prepare.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", script.display(), out.status).into());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .map(PathBuf::from)
        .ok_or_else(|| format!("{} printed no {name}= line", script.display()).into())
}

/// The `bitnet-*.gguf` and `qwen3-*.gguf` files of a directory, sorted.
pub fn suite_models(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (name.starts_with("bitnet-") || name.starts_with("qwen3-")) && name.ends_with(".gguf")
        })
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(format!(
            "no bitnet-*.gguf or qwen3-*.gguf models in {}",
            dir.display()
        )
        .into());
    }
    Ok(v)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn base_options(model: &Path, o: &SuiteOptions) -> Options {
    Options {
        model: model.to_path_buf(),
        ref_model: None,
        input: Input::Prompt(SUITE_PROMPT.to_string()),
        n_predict: o.n_predict,
        threads: o.threads,
        flash_attn: o.flash_attn,
        floor_eps: compare::FLOOR_EPS,
        table: false,
    }
}

/// Runs the suite, prints one line per item; returns whether everything passed.
pub fn run(o: &SuiteOptions) -> Result<bool> {
    let start = Instant::now();
    let mut ok = true;
    let mut out = json!({
        "prompt": SUITE_PROMPT,
        "n_predict": o.n_predict,
        "threads": o.threads,
        "flash_attn": o.flash_attn.name(),
    });

    // 1. Loader canary.
    let lib = reference::load_library()?;
    println!("reference: {}", lib.lib_dir.display());
    for s in &lib.canary.resolved {
        println!(
            "  canary: {} -> {} ({:#x})",
            s.symbol,
            s.file.display(),
            s.address
        );
    }
    match &lib.canary.global_llama_symbol {
        Some(g) => println!(
            "  canary: the global scope's llama_model_load_from_file is {} ({:#x}), not the reference's",
            g.file.display(),
            g.address
        ),
        None => println!("  canary: no llama_model_load_from_file in the global symbol scope"),
    }
    println!("  ggml-cpu features: {}", lib.cpu_features());
    out["reference"] = json!({
        "lib_dir": lib.lib_dir.display().to_string(),
        "canary": lib.canary.resolved.iter().map(|s| json!({
            "symbol": s.symbol, "file": s.file.display().to_string(), "address": s.address,
        })).collect::<Vec<_>>(),
        "global_llama_symbol": lib.canary.global_llama_symbol.as_ref().map(|g| g.file.display().to_string()),
        "cpu_features": lib.cpu_features(),
    });

    // 2. Op-level checks.
    println!("op-level (bit-exact vs ggml_get_type_traits_cpu):");
    let t = Instant::now();
    let mut ops_json = Vec::new();
    for r in ops::run_all(0x5eed)? {
        println!(
            "  {:24} {:4} cases  {}",
            r.op,
            r.cases,
            if r.passed() {
                "PASS".to_string()
            } else {
                format!(
                    "FAIL ({} mismatches; {})",
                    r.mismatches,
                    r.examples.join("; ")
                )
            }
        );
        ok &= r.passed();
        ops_json.push(json!({
            "op": r.op, "cases": r.cases, "mismatches": r.mismatches,
            "examples": r.examples, "passed": r.passed(),
        }));
    }
    println!("  ({:.1} s)", t.elapsed().as_secs_f64());
    out["ops"] = Value::Array(ops_json);

    // 3. Models.
    let dir = match &o.models_dir {
        Some(d) => d.clone(),
        None => tiny_models_dir()?,
    };
    println!(
        "models in {} (prompt {:?}, {} greedy steps; reference: threads {}, flash_attn {}):",
        dir.display(),
        SUITE_PROMPT,
        o.n_predict,
        o.threads,
        o.flash_attn.name()
    );
    let mut models_json = Vec::new();
    for path in suite_models(&dir)? {
        let name = file_name(&path);
        let kind = compare::model_kind(&path)?;
        // Probe: can the reference load it at all?
        if let Err(e) = RefModel::load(&path) {
            // Upstream llama.cpp knows neither Microsoft's architecture names nor I2_S.
            let b158 = kind.arch == "bitnet-b1.58" || kind.arch == "bitnet-25";
            let i2_s = kind.projection_types.iter().any(|t| t == "I2_S");
            if b158 || i2_s {
                let what = if b158 {
                    format!("arch {}", kind.arch)
                } else {
                    "I2_S".into()
                };
                println!("  {name:34} SKIP  reference cannot load {what}: {e}");
                models_json.push(json!({
                    "model": name, "arch": kind.arch, "skipped": true, "reason": e.to_string(),
                }));
            } else {
                println!("  {name:34} FAIL  reference cannot load it: {e}");
                ok = false;
                models_json.push(json!({
                    "model": name, "arch": kind.arch, "passed": false, "error": e.to_string(),
                }));
            }
            continue;
        }
        let t = Instant::now();
        match compare::run(&base_options(&path, o)) {
            Ok(rep) => {
                let s = &rep.ours.summary;
                let floor = rep
                    .floor
                    .as_ref()
                    .map(|f| {
                        format!(
                            " | floor cos {:.6} KL {:.2e} top1 {:5.1}%",
                            f.summary.worst_cosine,
                            f.summary.mean_kl,
                            100.0 * f.summary.top1_agreement
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "  {name:34} {}  {:5} cos {:.7} KL {:.2e} top1 {:5.1}% tokens {}{floor}  ({:.1} s){}",
                    if rep.passed() { "PASS" } else { "FAIL" },
                    rep.kind.class.name(),
                    s.worst_cosine,
                    s.mean_kl,
                    100.0 * s.top1_agreement,
                    if rep.first_token_mismatch.is_none() { "same" } else { "diff" },
                    t.elapsed().as_secs_f64(),
                    if rep.passed() {
                        String::new()
                    } else {
                        format!("\n      {}", rep.failures.join("; "))
                    }
                );
                ok &= rep.passed();
                let mut j = rep.to_json();
                j["name"] = json!(name);
                models_json.push(j);
            }
            Err(e) => {
                println!("  {name:34} FAIL  {e}");
                ok = false;
                models_json.push(json!({"model": name, "passed": false, "error": e.to_string()}));
            }
        }
    }
    out["models"] = Value::Array(models_json);

    // 4. Divergence canary.
    println!("divergence canary (ours on a copy with row 0 of {CANARY_TENSOR} negated, reference on the original):");
    let mut canary_json = Vec::new();
    for name in CANARY_MODELS {
        let original = dir.join(name);
        let t = Instant::now();
        let r = canary(&original, o);
        match r {
            Ok((rep, class)) => {
                let detected = !rep.passed();
                println!(
                    "  {name:34} {}  {:5} cos {:.7} KL {:.2e} top1 {:5.1}%: {}  ({:.1} s)",
                    if detected { "PASS" } else { "FAIL" },
                    class.name(),
                    rep.ours.summary.worst_cosine,
                    rep.ours.summary.mean_kl,
                    100.0 * rep.ours.summary.top1_agreement,
                    if detected {
                        format!("reported divergent ({})", rep.failures.join("; "))
                    } else {
                        "NOT reported divergent".to_string()
                    },
                    t.elapsed().as_secs_f64()
                );
                ok &= detected;
                canary_json.push(json!({
                    "model": name, "detected": detected, "failures": rep.failures,
                    "summary": compare::summary_line(&rep.ours.summary),
                }));
            }
            Err(e) => {
                println!("  {name:34} FAIL  {e}");
                ok = false;
                canary_json.push(json!({"model": name, "detected": false, "error": e.to_string()}));
            }
        }
    }
    out["divergence_canary"] = Value::Array(canary_json);

    let secs = start.elapsed().as_secs_f64();
    out["passed"] = json!(ok);
    out["seconds"] = json!(secs);
    if let Some(p) = &o.json {
        std::fs::write(p, serde_json::to_string_pretty(&out)?)
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    println!(
        "crossval --all: {} ({:.1} s)",
        if ok { "PASS" } else { "FAIL" },
        secs
    );
    Ok(ok)
}

/// Ours on a copy of `original` with row 0 of `CANARY_TENSOR` negated, the reference on the
/// original. The caller expects the report to fail.
pub fn canary(original: &Path, o: &SuiteOptions) -> Result<(compare::Report, Class)> {
    let tmp = TempDir::new("canary")?;
    let modified = tmp.0.join(file_name(original));
    patch::negated_row_copy(original, &modified, CANARY_TENSOR, 0)?;
    let mut opts = base_options(&modified, o);
    opts.ref_model = Some(original.to_path_buf());
    let rep = compare::run(&opts)?;
    let class = rep.kind.class;
    Ok((rep, class))
}
