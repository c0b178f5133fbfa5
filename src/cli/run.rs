//! `bitnet run -m MODEL -p PROMPT [-n N] ...`: text generation over the C API, streamed to
//! stdout as it is made; prompt and generation speed on stderr.

use std::io::Write as _;
use std::time::Instant;

use bitnet::Result;

use crate::llama::{self, Context, Model, Sampler, SamplingParams, Utf8Stream};

pub struct Args {
    pub model: String,
    pub prompt: String,
    /// At most this many new tokens; negative: until end of generation or a full context.
    pub n_predict: i32,
    /// 0: the model's training context.
    pub n_ctx: u32,
    /// 0: the library's default.
    pub n_threads: i32,
    pub sampling: SamplingParams,
    pub display_prompt: bool,
    pub verbose: bool,
}

/// One speed line: `what: N tokens, T ms, S tok/s`.
pub fn speed_line(what: &str, n_tokens: usize, seconds: f64) -> String {
    let ms = seconds * 1e3;
    let rate = if seconds > 0.0 {
        n_tokens as f64 / seconds
    } else {
        0.0
    };
    format!("{what}: {n_tokens} tokens, {ms:.2} ms, {rate:.2} tok/s")
}

pub fn run(args: &Args) -> Result<()> {
    llama::init(args.verbose);
    let model = Model::load(&args.model, false)?;
    let vocab = model.vocab();
    let mut ctx = Context::new(&model, args.n_ctx, args.n_threads)?;
    let mut sampler = Sampler::new(&args.sampling, vocab.n_tokens())?;

    let prompt = vocab.tokenize(args.prompt.as_bytes(), true, true)?;
    let n_ctx = ctx.n_ctx() as usize;
    if prompt.is_empty() {
        return Err(bitnet::Error::bad_input("run: the prompt makes no tokens"));
    }
    if prompt.len() >= n_ctx {
        return Err(bitnet::Error::bad_input(format!(
            "run: the prompt is {} tokens, the context only {n_ctx} (raise -c)",
            prompt.len()
        )));
    }

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let write = |out: &mut std::io::StdoutLock<'_>, bytes: &[u8]| -> Result<()> {
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(|e| bitnet::Error::io(format!("stdout: {e}")))
    };
    if args.display_prompt {
        write(&mut out, args.prompt.as_bytes())?;
    }

    let t_prompt = Instant::now();
    ctx.decode(&prompt)?;
    let prompt_seconds = t_prompt.elapsed().as_secs_f64();

    let t_gen = Instant::now();
    let mut text = Utf8Stream::default();
    let mut n_generated = 0usize;
    let mut n_past = prompt.len();
    let mut stop = "limit";
    while args.n_predict < 0 || n_generated < args.n_predict as usize {
        let token = sampler.sample(&ctx)?;
        if vocab.is_eog(token) {
            stop = "end of generation";
            break;
        }
        n_generated += 1;
        write(&mut out, &text.push(&vocab.piece(token, false)))?;
        if args.n_predict >= 0 && n_generated == args.n_predict as usize {
            break;
        }
        if n_past >= n_ctx {
            stop = "context full";
            break;
        }
        ctx.decode(&[token])?;
        n_past += 1;
    }
    let gen_seconds = t_gen.elapsed().as_secs_f64();
    write(&mut out, &text.finish())?;
    write(&mut out, b"\n")?;
    drop(out);

    eprintln!("{}", speed_line("prompt", prompt.len(), prompt_seconds));
    eprintln!(
        "{} (stop: {stop})",
        speed_line("generation", n_generated, gen_seconds)
    );
    Ok(())
}
