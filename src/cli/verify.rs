//! `bitnet verify -m MODEL`: is this model file usable? One line per check (PASS/FAIL/SKIP):
//! it loads (metadata and tensors sane), its tokenizer round-trips normal text, a short greedy
//! run gives finite logits, and, when the C++ reference is built and can load the model, the
//! reference gives the same prompt tokens and first greedy tokens. Exit code 0 only when every
//! check that ran passed.

use std::path::Path;

use bitnet::gguf::MappedFile;
use bitnet::quant::GgmlType;
use bitnet::{Error, Result};

use crate::llama::{self, Context, Model};
use crate::reference;

pub struct Args {
    pub model: String,
    pub n_steps: usize,
    pub verbose: bool,
}

/// Texts the tokenizer must give back unchanged (tokenize, then detokenize).
const ROUND_TRIP_TEXTS: &[&str] = &[
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  two leading spaces and trailing  ",
    "Numbers 12345 and 3.14159, punctuation!? (brackets) [x] {y}",
    "tabs\tand\nnew lines\n\nparagraph",
    "Unicode: café, naïve, Größe, 日本語, emoji 😀",
];

const PROMPT: &str = "Hello, my name is";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Fail,
    Skip,
}

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, status: Status, check: &str, detail: &str) {
        let word = match status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        };
        self.failed |= status == Status::Fail;
        println!("{word} {check}: {detail}");
    }
}

/// Tensor types the reference cannot read (Microsoft's I2_S), if the file holds any.
fn reference_blocker(path: &str, arch: &str) -> Option<String> {
    if arch != "bitnet" {
        return Some(format!("the reference cannot load arch {arch}"));
    }
    let file = MappedFile::open(path).ok()?;
    let gguf = file.gguf().ok()?;
    if gguf.tensors().iter().any(|t| t.ty == GgmlType::I2_S) {
        return Some("the reference cannot load I2_S tensors".into());
    }
    None
}

pub fn run(args: &Args) -> Result<()> {
    llama::init(args.verbose);
    let mut report = Report { failed: false };

    // 1. Load: the library reads the metadata, checks every tensor's type, shape and extent.
    let model = match Model::load(&args.model, false) {
        Ok(m) => m,
        Err(e) => {
            report.line(Status::Fail, "load", &e.message.replace('\n', " "));
            for check in ["tokenizer", "greedy", "reference"] {
                report.line(Status::Skip, check, "the model does not load");
            }
            return Err(Error::bad_input(format!(
                "verify: {} is not usable",
                args.model
            )));
        }
    };
    let arch = model.meta("general.architecture").unwrap_or_default();
    let s = model.shape();
    let vocab = model.vocab();
    let n_vocab = vocab.n_tokens();
    let sane = n_vocab > 0 && s.n_layer > 0 && s.n_embd > 0 && s.n_head > 0 && s.n_ctx_train > 0;
    report.line(
        if sane { Status::Pass } else { Status::Fail },
        "load",
        &format!(
            "{} (arch {arch}): n_vocab {n_vocab}, n_ctx_train {}, n_embd {}, n_layer {}, n_head {}, \
             n_head_kv {}, {} params, {} bytes",
            model.desc(),
            s.n_ctx_train,
            s.n_embd,
            s.n_layer,
            s.n_head,
            s.n_head_kv,
            s.n_params,
            s.n_bytes
        ),
    );

    // 2. Tokenizer round trip.
    let mut bad = Vec::new();
    for text in ROUND_TRIP_TEXTS {
        let tokens = vocab.tokenize(text.as_bytes(), false, false)?;
        let back = vocab.detokenize(&tokens, true, false);
        if back != text.as_bytes() {
            bad.push(format!("{text:?} -> {:?}", String::from_utf8_lossy(&back)));
        }
    }
    if bad.is_empty() {
        report.line(
            Status::Pass,
            "tokenizer",
            &format!("{} texts round-trip", ROUND_TRIP_TEXTS.len()),
        );
    } else {
        report.line(Status::Fail, "tokenizer", &bad.join("; "));
    }

    // 3. A short greedy run over the C API: every logit finite.
    let ours = greedy(&model, args.n_steps);
    match &ours {
        Ok((_, generated)) => report.line(
            Status::Pass,
            "greedy",
            &format!("{} tokens, logits finite: {generated:?}", generated.len()),
        ),
        Err(e) => report.line(Status::Fail, "greedy", e),
    }

    // 4. The C++ reference, when built and able to load this model.
    let (status, detail) = match &ours {
        Ok((prompt, tokens)) => {
            reference_check(&model, &args.model, &arch, prompt, tokens, args.n_steps)
        }
        Err(_) => (Status::Skip, "our greedy run failed".to_string()),
    };
    report.line(status, "reference", &detail);

    if report.failed {
        return Err(Error::bad_input(format!(
            "verify: {} failed a check",
            args.model
        )));
    }
    Ok(())
}

/// Whether the file's tensors are all float (F32/F16/BF16): then both engines compute in
/// float and the greedy tokens must be identical. Otherwise activations are quantized to 8 bits
/// (TQ1_0/TQ2_0/Q8_0/Q6_K/I2_S), differently rounded on each side.
fn float_weights(path: &str) -> bool {
    let Ok(file) = MappedFile::open(path) else {
        return false;
    };
    let Ok(gguf) = file.gguf() else { return false };
    gguf.tensors()
        .iter()
        .all(|t| matches!(t.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16))
}

/// Ours against the reference: same prompt tokens; float models: the same free-running greedy
/// tokens; int8-activation models: the same, or, teacher-forced on the reference's tokens, every
/// step's top-1 equal or the top two swapped (a near tie that 8-bit rounding can flip).
fn reference_check(
    model: &Model,
    path: &str,
    arch: &str,
    our_prompt: &[i32],
    our_tokens: &[i32],
    n_steps: usize,
) -> (Status, String) {
    if let Some(why) = reference_blocker(path, arch) {
        return (Status::Skip, why);
    }
    let Some(dir) = reference::lib_dir() else {
        return (Status::Skip, "reference not built (no HOME)".into());
    };
    let lib = dir.join("libllama.so");
    if !lib.is_file() {
        return (
            Status::Skip,
            format!(
                "reference not built (no {}; run cpp_ref/build.sh)",
                lib.display()
            ),
        );
    }
    let run = match reference::load(&dir)
        .and_then(|api| reference::greedy(&api, Path::new(path), PROMPT, n_steps))
    {
        Ok(r) => r,
        Err(e) => return (Status::Fail, e),
    };
    if run.prompt != our_prompt {
        return (
            Status::Fail,
            format!(
                "prompt tokens differ: ours {our_prompt:?}, reference {:?}",
                run.prompt
            ),
        );
    }
    let ref_tokens = run.tokens();
    let same = ref_tokens
        .iter()
        .zip(our_tokens)
        .take_while(|(a, b)| a == b)
        .count();
    if same == ref_tokens.len() {
        return (
            Status::Pass,
            format!("same {same} greedy tokens as {}", lib.display()),
        );
    }
    let diverged = format!(
        "greedy tokens differ from step {same}: ours {our_tokens:?}, reference {ref_tokens:?}"
    );
    if float_weights(path) {
        return (
            Status::Fail,
            format!("{diverged} (float weights: must be identical)"),
        );
    }
    let ours_forced = match teacher_forced_top2(model, our_prompt, &ref_tokens) {
        Ok(t) => t,
        Err(e) => return (Status::Fail, e),
    };
    let mut n_equal = 0;
    let mut swaps = Vec::new();
    let mut others = Vec::new();
    for (step, (o, r)) in ours_forced.iter().zip(&run.top2).enumerate() {
        if o[0] == r[0] {
            n_equal += 1;
        } else if o[0] == r[1] && o[1] == r[0] {
            swaps.push(step);
        } else {
            others.push(step);
        }
    }
    let n = ours_forced.len();
    if others.is_empty() {
        return (
            Status::Pass,
            format!(
                "same first {same} greedy tokens; teacher-forced on the reference's tokens: \
                 {n_equal}/{n} top-1 equal, top-two swaps (near ties under 8-bit activation \
                 rounding) at steps {swaps:?}"
            ),
        );
    }
    // 8-bit activations are rounded differently on each side; in a model whose logits are
    // that sensitive (synthetic weights, many layers) the reference is as far from itself
    // under a 1e-6 perturbation, and only that noise floor (crossval) can judge.
    (
        Status::Skip,
        format!(
            "inconclusive for 8-bit activations: {diverged}; teacher-forced top-1 equal at \
             {n_equal}/{n} steps, top-two swaps at {swaps:?}, other choices at {others:?} \
             (crossval measures the reference's own noise floor for such models)"
        ),
    )
}

/// Our two best tokens at each step when fed the prompt and then `forced` one at a time.
fn teacher_forced_top2(
    model: &Model,
    prompt: &[i32],
    forced: &[i32],
) -> std::result::Result<Vec<[i32; 2]>, String> {
    let n_ctx = (prompt.len() + forced.len() + 8) as u32;
    let mut ctx = Context::new(model, n_ctx, 0).map_err(|e| e.message)?;
    let mut out = Vec::new();
    let mut feed = prompt.to_vec();
    for &next in forced {
        ctx.decode(&feed).map_err(|e| e.message)?;
        out.push(reference::top_two(
            ctx.last_logits().map_err(|e| e.message)?,
        ));
        feed = vec![next];
    }
    Ok(out)
}

/// Our prompt tokens and `n_steps` greedy tokens for PROMPT, checking every logit is finite.
fn greedy(model: &Model, n_steps: usize) -> std::result::Result<(Vec<i32>, Vec<i32>), String> {
    let vocab = model.vocab();
    let prompt = vocab
        .tokenize(PROMPT.as_bytes(), true, true)
        .map_err(|e| e.message)?;
    let n_ctx = (prompt.len() + n_steps + 8) as u32;
    let mut ctx = Context::new(model, n_ctx, 0).map_err(|e| e.message)?;
    let mut generated = Vec::new();
    let mut feed = prompt.clone();
    for step in 0..n_steps {
        ctx.decode(&feed).map_err(|e| e.message)?;
        let logits = ctx.last_logits().map_err(|e| e.message)?;
        if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
            return Err(format!("step {step}: logit {i} is {}", logits[i]));
        }
        let next = reference::top_two(logits)[0];
        generated.push(next);
        feed = vec![next];
    }
    Ok((prompt, generated))
}
