//! `bitnet chat -m MODEL [-sys SYSTEM]`: an interactive chat over the C API. Each stdin line is
//! a user turn; the conversation is formatted with the model's chat template
//! (`llama_chat_apply_template`, chatml when the model has none, as llama.cpp's examples), only
//! the new part of it is decoded (the KV cache is kept across turns), and the reply streams to
//! stdout until end of turn (an end-of-generation token), -n tokens or a full context.

use std::ffi::CString;
use std::io::{BufRead as _, IsTerminal as _};
use std::time::Instant;

use bitnet::{Error, Result};

use crate::llama::{self, Context, Model, Sampler, SamplingParams, Utf8Stream};
use crate::run::speed_line;

pub struct Args {
    pub model: String,
    pub system: Option<String>,
    /// A template name or text that overrides the model's (`--chat-template`).
    pub template: Option<String>,
    /// At most this many tokens per reply; negative: until end of turn or a full context.
    pub n_predict: i32,
    pub n_ctx: u32,
    pub n_threads: i32,
    pub sampling: SamplingParams,
    pub verbose: bool,
}

fn c_text(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::bad_input(format!("chat: {what} contains a NUL byte")))
}

fn write_flush(out: &mut impl std::io::Write, bytes: &[u8]) -> Result<()> {
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io(format!("stdout: {e}")))
}

pub fn run(args: &Args) -> Result<()> {
    llama::init(args.verbose);
    let model = Model::load(&args.model, false)?;
    let vocab = model.vocab();
    let mut ctx = Context::new(&model, args.n_ctx, args.n_threads)?;
    let mut sampler = Sampler::new(&args.sampling, vocab.n_tokens())?;
    let n_ctx = ctx.n_ctx() as usize;

    let template = match &args.template {
        Some(t) => Some(c_text(t, "--chat-template")?),
        None => model.chat_template(),
    };
    if template.is_none() {
        eprintln!("chat: the model has no chat template; using chatml");
    }

    let mut messages: Vec<(CString, CString)> = Vec::new();
    if let Some(system) = &args.system {
        messages.push((c_text("system", "role")?, c_text(system, "system prompt")?));
    }
    // Bytes of the formatted conversation already in the KV cache.
    let mut formatted_len = 0usize;

    let interactive = std::io::stdin().is_terminal();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        if interactive {
            write_flush(&mut out, b"> ")?;
        }
        let Some(line) = lines.next() else { break };
        let line = line.map_err(|e| Error::io(format!("stdin: {e}")))?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        messages.push((c_text("user", "role")?, c_text(line, "input")?));

        // The new part of the conversation: what the template adds after the cached part.
        let formatted = llama::apply_chat_template(template.as_deref(), &messages, true)?;
        let new_part = formatted.get(formatted_len..).unwrap_or_default();
        let is_first = ctx.n_past() == 0;
        let tokens = vocab.tokenize(new_part, is_first, true)?;
        if ctx.n_past() as usize + tokens.len() >= n_ctx {
            return Err(Error::bad_input(format!(
                "chat: context full ({n_ctx} tokens); start again with a larger -c"
            )));
        }
        if args.verbose {
            eprintln!(
                "chat: decoding {} new tokens after {} in the cache",
                tokens.len(),
                ctx.n_past()
            );
        }
        let t_turn = Instant::now();
        ctx.decode(&tokens)?;

        let mut reply = Vec::new();
        let mut text = Utf8Stream::default();
        let mut n_reply = 0usize;
        let stop = loop {
            if args.n_predict >= 0 && n_reply >= args.n_predict as usize {
                break "limit";
            }
            if ctx.n_past() as usize >= n_ctx {
                break "context full";
            }
            let token = sampler.sample(&ctx)?;
            if vocab.is_eog(token) {
                break "end of turn";
            }
            let piece = vocab.piece(token, false);
            reply.extend_from_slice(&piece);
            write_flush(&mut out, &text.push(&piece))?;
            n_reply += 1;
            // Every reply token goes into the cache, so the next turn starts after it.
            ctx.decode(&[token])?;
        };
        write_flush(&mut out, &text.finish())?;
        write_flush(&mut out, b"\n")?;
        eprintln!(
            "{} (stop: {stop})",
            speed_line("reply", n_reply, t_turn.elapsed().as_secs_f64())
        );

        let reply = CString::new(reply.into_iter().filter(|&b| b != 0).collect::<Vec<u8>>())
            .map_err(|_| Error::bad_input("chat: reply has a NUL byte"))?;
        messages.push((c_text("assistant", "role")?, reply));
        formatted_len = llama::apply_chat_template(template.as_deref(), &messages, false)?.len();
    }
    Ok(())
}
