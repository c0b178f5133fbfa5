//! One model, both sides: the reference's greedy run, ours teacher-forced on the reference's
//! tokens (so one divergence does not hide the rest), per-position metrics, and the verdict.
//!
//! Verdicts (docs/parity.md):
//! - float-weight models (every projection and the output head F32/F16/BF16): worst cosine
//!   >= 0.99999 and ours, free running, produces the reference's greedy tokens exactly;
//! - int8-activation models (any projection or head TQ1_0/TQ2_0/Q8_0/Q6_K/I2_S): judged against
//!   the reference's self-noise floor, measured here as reference vs reference on a copy whose
//!   F32 `*_norm.weight` tensors are scaled by (1 + 1e-6), teacher-forced on the same tokens:
//!   ours needs mean KL <= the floor's, worst cosine >= the floor's, top-1 agreement >= the
//!   floor's.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bitnet::gguf::MappedFile;
use bitnet::quant::GgmlType;
use serde_json::{json, Value};

use crate::metrics::{compare_rows, summarize, PositionMetrics, Summary};
use crate::patch;
use crate::reference::{FlashAttn, RefContext, RefCtxParams, RefModel};
use crate::run::{greedy, teacher_forced, Evaluator, Ours, Trace};
use crate::Result;

/// Float-weight models: the lowest cosine allowed at any position.
pub const FLOAT_MIN_COSINE: f64 = 0.99999;
/// Norm-weight scale of the self-noise floor copy.
pub const FLOOR_EPS: f64 = 1e-6;

#[derive(Clone, Debug)]
pub enum Input {
    Prompt(String),
    Tokens(Vec<u32>),
}

#[derive(Clone, Debug)]
pub struct Options {
    /// What our engine loads.
    pub model: PathBuf,
    /// What the reference loads (default: `model`).
    pub ref_model: Option<PathBuf>,
    pub input: Input,
    pub n_predict: usize,
    pub threads: i32,
    pub flash_attn: FlashAttn,
    pub floor_eps: f64,
    /// Print the per-position table.
    pub table: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Float,
    Int8,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Float => "float",
            Class::Int8 => "int8",
        }
    }
}

/// Which weights a model's projections and output head use, and so its class.
#[derive(Clone, Debug)]
pub struct ModelKind {
    pub arch: String,
    pub projection_types: Vec<String>,
    pub head_type: String,
    pub class: Class,
}

const PROJECTIONS: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

pub fn model_kind(path: &Path) -> Result<ModelKind> {
    let map = MappedFile::open(path)?;
    let gguf = map.gguf()?;
    let arch = gguf.architecture().unwrap_or("?").to_string();
    let mut proj = Vec::new();
    for t in gguf.tensors() {
        let is_proj = t.name.starts_with("blk.")
            && PROJECTIONS
                .iter()
                .any(|p| t.name.ends_with(&format!(".{p}.weight")));
        if is_proj && !proj.contains(&t.ty) {
            proj.push(t.ty);
        }
    }
    let head = gguf
        .tensor("output.weight")
        .or_else(|| gguf.tensor("token_embd.weight"))
        .map(|t| t.ty)
        .ok_or_else(|| format!("{}: no output.weight or token_embd.weight", path.display()))?;
    let float = |t: &GgmlType| matches!(t, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
    let class = if !proj.is_empty() && proj.iter().all(float) && float(&head) {
        Class::Float
    } else {
        Class::Int8
    };
    Ok(ModelKind {
        arch,
        projection_types: proj.iter().map(|t| t.name().to_string()).collect(),
        head_type: head.name().to_string(),
        class,
    })
}

/// A comparison's per-position rows and their summary.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub rows: Vec<PositionMetrics>,
    pub summary: Summary,
}

pub fn compare(reference: &[Vec<f32>], other: &[Vec<f32>]) -> Result<Comparison> {
    if reference.len() != other.len() {
        return Err(format!(
            "{} reference positions vs {} compared positions",
            reference.len(),
            other.len()
        )
        .into());
    }
    let rows: Vec<PositionMetrics> = reference
        .iter()
        .zip(other)
        .enumerate()
        .map(|(pos, (r, o))| compare_rows(pos, r, o))
        .collect();
    let summary = summarize(&rows);
    Ok(Comparison { rows, summary })
}

#[derive(Clone, Debug)]
pub struct Report {
    pub model: PathBuf,
    pub ref_model: PathBuf,
    pub kind: ModelKind,
    pub prompt_len: usize,
    pub n_predict: usize,
    pub threads: i32,
    pub flash_attn_requested: FlashAttn,
    pub flash_attn_enabled: bool,
    pub ref_trace: Trace,
    pub ours: Comparison,
    /// Ours, free running from the same prompt.
    pub ours_tokens: Vec<u32>,
    pub first_token_mismatch: Option<usize>,
    pub floor: Option<Comparison>,
    pub floor_eps: f64,
    pub failures: Vec<String>,
    pub token_texts: Vec<String>,
    pub seconds_ref: f64,
    pub seconds_ours: f64,
    pub seconds_floor: f64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "crossval-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ref_params(n_tokens: usize, n_batch: usize, o: &Options) -> RefCtxParams {
    RefCtxParams {
        n_ctx: n_tokens.max(16) as u32,
        n_batch: n_batch.max(1) as u32,
        threads: o.threads,
        flash_attn: o.flash_attn,
    }
}

/// `a >= b`, false when either is NaN (a NaN figure never passes).
fn at_least(a: f64, b: f64) -> bool {
    a >= b
}

/// Runs one model on both sides and judges it.
pub fn run(o: &Options) -> Result<Report> {
    let ref_path = o.ref_model.clone().unwrap_or_else(|| o.model.clone());
    let kind = model_kind(&o.model)?;

    // --- Reference: tokenize, prompt + n_predict greedy steps. ---
    let t0 = Instant::now();
    let rmodel = RefModel::load(&ref_path)?;
    let prompt = match &o.input {
        Input::Prompt(text) => rmodel.tokenize(text)?,
        Input::Tokens(t) => t.clone(),
    };
    if prompt.is_empty() {
        return Err("the prompt tokenized to nothing".into());
    }
    if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= rmodel.n_vocab()) {
        return Err(format!(
            "token {bad} is outside the vocabulary ({})",
            rmodel.n_vocab()
        )
        .into());
    }
    let n_tokens = prompt.len() + o.n_predict;
    let params = ref_params(n_tokens, prompt.len(), o);
    let (ref_trace, flash_attn_enabled) = {
        let mut rctx = RefContext::new(&rmodel, &params)?;
        let trace = greedy(&mut rctx, &prompt, o.n_predict)?;
        // The reference must be deterministic for its self-noise floor to mean anything: the
        // same tokens teacher-forced through a cleared cache give bit-identical logits.
        let again = teacher_forced(&mut rctx, &trace.tokens, trace.prompt_len)?;
        if let Some(pos) = (0..again.len()).find(|&p| {
            again[p]
                .iter()
                .zip(&trace.logits[p])
                .any(|(a, b)| a.to_bits() != b.to_bits())
        }) {
            return Err(format!(
                "the reference is not deterministic: teacher-forcing its own tokens changes the \
                 logits at position {pos}"
            )
            .into());
        }
        (trace, rctx.flash_attn_enabled)
    };
    let token_texts = ref_trace
        .tokens
        .iter()
        .map(|&t| rmodel.token_text(t))
        .collect();
    let seconds_ref = t0.elapsed().as_secs_f64();

    // --- Ours: teacher-forced on the reference's tokens, and free running. ---
    let t1 = Instant::now();
    let mut ours = Ours::load(&o.model, n_tokens.max(16), prompt.len())?;
    if ours.n_vocab() != rmodel.n_vocab() {
        return Err(format!(
            "vocabulary sizes differ: ours {} vs reference {}",
            ours.n_vocab(),
            rmodel.n_vocab()
        )
        .into());
    }
    let ours_logits = teacher_forced(&mut ours, &ref_trace.tokens, ref_trace.prompt_len)?;
    let ours_free = greedy(&mut ours, &prompt, o.n_predict)?;
    drop(ours);
    let seconds_ours = t1.elapsed().as_secs_f64();
    let ours_cmp = compare(&ref_trace.logits, &ours_logits)?;
    let first_token_mismatch = ref_trace
        .generated()
        .iter()
        .zip(ours_free.generated())
        .position(|(a, b)| a != b);

    // --- The self-noise floor (int8-activation models). ---
    let t2 = Instant::now();
    let floor = if kind.class == Class::Int8 {
        Some(noise_floor(&ref_path, &ref_trace, &params, o.floor_eps)?)
    } else {
        None
    };
    let seconds_floor = t2.elapsed().as_secs_f64();
    drop(rmodel);

    let mut failures = Vec::new();
    let s = &ours_cmp.summary;
    match (&kind.class, &floor) {
        (Class::Float, _) => {
            if !at_least(s.worst_cosine, FLOAT_MIN_COSINE) {
                failures.push(format!(
                    "worst cosine {:.7} at position {} < {FLOAT_MIN_COSINE}",
                    s.worst_cosine, s.worst_cosine_pos
                ));
            }
            if let Some(step) = first_token_mismatch {
                failures.push(format!(
                    "free-running greedy tokens differ from step {step}: ours {} vs reference {}",
                    ours_free.generated()[step],
                    ref_trace.generated()[step]
                ));
            }
        }
        (Class::Int8, Some(f)) => {
            let fs = &f.summary;
            if !at_least(fs.mean_kl, s.mean_kl) {
                failures.push(format!(
                    "mean KL {:.3e} > floor {:.3e}",
                    s.mean_kl, fs.mean_kl
                ));
            }
            if !at_least(s.worst_cosine, fs.worst_cosine) {
                failures.push(format!(
                    "worst cosine {:.6} < floor {:.6}",
                    s.worst_cosine, fs.worst_cosine
                ));
            }
            if !at_least(s.top1_agreement, fs.top1_agreement) {
                failures.push(format!(
                    "top-1 agreement {:.1}% < floor {:.1}%",
                    100.0 * s.top1_agreement,
                    100.0 * fs.top1_agreement
                ));
            }
        }
        (Class::Int8, None) => unreachable!(),
    }

    Ok(Report {
        model: o.model.clone(),
        ref_model: ref_path,
        kind,
        prompt_len: prompt.len(),
        n_predict: o.n_predict,
        threads: o.threads,
        flash_attn_requested: o.flash_attn,
        flash_attn_enabled,
        ref_trace,
        ours: ours_cmp,
        ours_tokens: ours_free.tokens,
        first_token_mismatch,
        floor,
        floor_eps: o.floor_eps,
        failures,
        token_texts,
        seconds_ref,
        seconds_ours,
        seconds_floor,
    })
}

/// Reference vs reference on a copy of `ref_path` with norm weights scaled by (1 + eps),
/// teacher-forced on `trace`'s tokens.
pub fn noise_floor(
    ref_path: &Path,
    trace: &Trace,
    params: &RefCtxParams,
    eps: f64,
) -> Result<Comparison> {
    let tmp = TempDir::new("floor")?;
    let copy = tmp.0.join("norm-scaled.gguf");
    patch::scaled_norm_copy(ref_path, &copy, 1.0 + eps)?;
    let m = RefModel::load(&copy)?;
    let mut ctx = RefContext::new(&m, params)?;
    let logits = teacher_forced(&mut ctx, &trace.tokens, trace.prompt_len)?;
    compare(&trace.logits, &logits)
}

/// The reference against itself on a modified copy (teacher-forced): used to check that a
/// change is visible at all (e.g. the canary's negated row).
pub fn ref_vs_ref(
    original: &Path,
    modified: &Path,
    prompt: &[u32],
    n_predict: usize,
    o: &Options,
) -> Result<Comparison> {
    let m = RefModel::load(original)?;
    let params = ref_params(prompt.len() + n_predict, prompt.len(), o);
    let trace = {
        let mut ctx = RefContext::new(&m, &params)?;
        greedy(&mut ctx, prompt, n_predict)?
    };
    drop(m);
    let m2 = RefModel::load(modified)?;
    let mut ctx = RefContext::new(&m2, &params)?;
    let logits = teacher_forced(&mut ctx, &trace.tokens, trace.prompt_len)?;
    compare(&trace.logits, &logits)
}

fn summary_json(s: &Summary) -> Value {
    json!({
        "n_positions": s.n_positions,
        "worst_cosine": num(s.worst_cosine),
        "worst_cosine_pos": s.worst_cosine_pos,
        "mean_cosine": num(s.mean_cosine),
        "max_abs_diff": num(s.max_abs_diff),
        "max_rel_diff": num(s.max_rel_diff),
        "mean_kl": num(s.mean_kl),
        "max_kl": num(s.max_kl),
        "top1_agreement": num(s.top1_agreement),
        "first_divergent_pos": s.first_divergent_pos,
    })
}

/// JSON has no NaN or infinity: those become strings.
fn num(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        json!(v.to_string())
    }
}

fn rows_json(rows: &[PositionMetrics]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "pos": r.pos,
                    "cosine": num(r.cosine),
                    "max_abs_diff": num(r.max_abs_diff),
                    "max_rel_diff": num(r.max_rel_diff),
                    "kl": num(r.kl),
                    "ref_top1": r.ref_top1,
                    "other_top1": r.other_top1,
                    "top1_agrees": r.top1_agrees(),
                })
            })
            .collect(),
    )
}

impl Report {
    pub fn to_json(&self) -> Value {
        json!({
            "model": self.model.display().to_string(),
            "ref_model": self.ref_model.display().to_string(),
            "arch": self.kind.arch,
            "class": self.kind.class.name(),
            "projection_types": self.kind.projection_types,
            "head_type": self.kind.head_type,
            "prompt_len": self.prompt_len,
            "n_predict": self.n_predict,
            "threads": self.threads,
            "reference": {
                "flash_attn_requested": self.flash_attn_requested.name(),
                "flash_attn_enabled": self.flash_attn_enabled,
                "tokens": self.ref_trace.tokens,
                "token_texts": self.token_texts,
            },
            "ours_free_running_tokens": self.ours_tokens,
            "first_token_mismatch_step": self.first_token_mismatch,
            "first_divergent_step": self.ours.summary.first_divergent_pos
                .map(|p| p as i64 + 1 - self.prompt_len as i64),
            "ours_vs_ref": {
                "summary": summary_json(&self.ours.summary),
                "positions": rows_json(&self.ours.rows),
            },
            "noise_floor": self.floor.as_ref().map(|f| json!({
                "norm_scale_eps": self.floor_eps,
                "summary": summary_json(&f.summary),
                "positions": rows_json(&f.rows),
            })),
            "thresholds": match self.kind.class {
                Class::Float => json!({
                    "min_worst_cosine": FLOAT_MIN_COSINE,
                    "free_running_tokens": "identical",
                }),
                Class::Int8 => json!({
                    "mean_kl": "<= noise floor",
                    "worst_cosine": ">= noise floor",
                    "top1_agreement": ">= noise floor",
                }),
            },
            "passed": self.passed(),
            "failures": self.failures,
            "seconds": {
                "reference": self.seconds_ref,
                "ours": self.seconds_ours,
                "noise_floor": self.seconds_floor,
            },
        })
    }

    /// The per-position table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str(
            "  pos  next-token(ref)          cosine      max|d|    rel       KL        top1\n",
        );
        for r in &self.ours.rows {
            let next = self.ref_trace.tokens.get(r.pos + 1).copied().unwrap_or(0);
            let text = self
                .token_texts
                .get(r.pos + 1)
                .map(|t| short(t, 14))
                .unwrap_or_default();
            let marker = if r.pos + 1 == self.prompt_len {
                '>'
            } else {
                ' '
            };
            s.push_str(&format!(
                "{marker}{:4}  {:6} {:16} {:.7}  {:9.3e} {:9.3e} {:9.3e} {}\n",
                r.pos,
                next,
                text,
                r.cosine,
                r.max_abs_diff,
                r.max_rel_diff,
                r.kl,
                if r.top1_agrees() {
                    "ok".to_string()
                } else {
                    format!("DIFF ours {} ref {}", r.other_top1, r.ref_top1)
                },
            ));
        }
        s
    }

    /// Summary lines.
    pub fn summary_text(&self) -> String {
        let s = &self.ours.summary;
        let mut t = format!(
            "model {} ({}; projections {}, head {}; class {})\n",
            self.model.display(),
            self.kind.arch,
            self.kind.projection_types.join("/"),
            self.kind.head_type,
            self.kind.class.name()
        );
        if self.ref_model != self.model {
            t.push_str(&format!("reference model {}\n", self.ref_model.display()));
        }
        t.push_str(&format!(
            "prompt {} tokens + {} greedy steps ({} positions compared); reference: {} threads, flash_attn {} -> {}\n",
            self.prompt_len,
            self.n_predict,
            s.n_positions,
            self.threads,
            self.flash_attn_requested.name(),
            if self.flash_attn_enabled { "enabled" } else { "disabled" },
        ));
        t.push_str(&format!("ours vs ref:  {}\n", summary_line(s)));
        if let Some(p) = s.first_divergent_pos {
            t.push_str(&format!(
                "first divergent (top-1) position: {}\n",
                describe_pos(p, self.prompt_len)
            ));
        }
        if let Some(f) = &self.floor {
            t.push_str(&format!(
                "noise floor:  {}   (ref vs ref, norms x (1 + {:e}))\n",
                summary_line(&f.summary),
                self.floor_eps
            ));
        }
        t.push_str(&format!(
            "free-running greedy tokens: {}\n",
            match self.first_token_mismatch {
                None => format!("identical ({} steps)", self.n_predict),
                Some(step) => format!("first differ at step {step}"),
            }
        ));
        t.push_str(&format!(
            "time: reference {:.2} s, ours {:.2} s, floor {:.2} s\n",
            self.seconds_ref, self.seconds_ours, self.seconds_floor
        ));
        if self.passed() {
            t.push_str("PASS\n");
        } else {
            for f in &self.failures {
                t.push_str(&format!("FAIL: {f}\n"));
            }
        }
        t
    }
}

/// "pos N (prompt)" or "pos N (step k)": step k is the k-th greedy token's prediction.
pub fn describe_pos(pos: usize, prompt_len: usize) -> String {
    if pos + 1 < prompt_len {
        format!("pos {pos} (prompt)")
    } else {
        format!("pos {pos} (step {})", pos + 1 - prompt_len)
    }
}

pub fn summary_line(s: &Summary) -> String {
    format!(
        "worst cos {:.7} (pos {}), mean cos {:.7}, max|d| {:.3e} (rel {:.3e}), mean KL {:.3e}, top-1 {:.1}%, first divergent pos {}",
        s.worst_cosine,
        s.worst_cosine_pos,
        s.mean_cosine,
        s.max_abs_diff,
        s.max_rel_diff,
        s.mean_kl,
        100.0 * s.top1_agreement,
        s.first_divergent_pos
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into())
    )
}

fn short(t: &str, n: usize) -> String {
    let t: String = t
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let t = format!("{t:?}");
    if t.chars().count() > n {
        let mut s: String = t.chars().take(n - 1).collect();
        s.push('~');
        s
    } else {
        t
    }
}
