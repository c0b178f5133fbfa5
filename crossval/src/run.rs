//! Running a token sequence through either side with one schedule: the prompt as one batch, then
//! one token per decode (what a generating client does). Both the greedy run and the
//! teacher-forced run use it, so their logits are computed the same way.

use std::path::Path;
use std::sync::Arc;

use bitnet::model::{Context, ContextParams, Model};

use crate::metrics::argmax;
use crate::reference::RefContext;
use crate::Result;

/// Something that decodes tokens of one sequence into logits.
pub trait Evaluator {
    fn n_vocab(&self) -> usize;
    /// Empties the KV cache.
    fn clear(&mut self) -> Result<()>;
    /// Decodes `tokens` at positions `pos0..` as one batch; returns every token's logits.
    fn eval(&mut self, tokens: &[u32], pos0: usize) -> Result<Vec<Vec<f32>>>;
}

/// A sequence and the logits of every evaluated position: `logits[p]` is the distribution of the
/// token at `p + 1`. The last token of `tokens` is not evaluated.
#[derive(Clone, Debug)]
pub struct Trace {
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
    pub logits: Vec<Vec<f32>>,
}

impl Trace {
    /// The greedy tokens (generated part).
    pub fn generated(&self) -> &[u32] {
        &self.tokens[self.prompt_len..]
    }
}

/// The prompt, then `n_predict` greedy tokens (argmax, first of ties). Logits for
/// `prompt_len + n_predict - 1` positions.
pub fn greedy(ev: &mut dyn Evaluator, prompt: &[u32], n_predict: usize) -> Result<Trace> {
    if prompt.is_empty() {
        return Err("empty prompt".into());
    }
    ev.clear()?;
    let mut tokens = prompt.to_vec();
    let mut logits = ev.eval(prompt, 0)?;
    for step in 0..n_predict {
        let next = argmax(logits.last().expect("logits of the last position")) as u32;
        tokens.push(next);
        if step + 1 == n_predict {
            break;
        }
        let pos = tokens.len() - 1;
        let mut row = ev.eval(&[next], pos)?;
        logits.push(row.pop().ok_or("no logits returned")?);
    }
    Ok(Trace {
        tokens,
        prompt_len: prompt.len(),
        logits,
    })
}

/// Evaluates a given sequence with the same schedule as `greedy`: `tokens[..prompt_len]` as one
/// batch, then the rest one at a time (the last token is not evaluated).
pub fn teacher_forced(
    ev: &mut dyn Evaluator,
    tokens: &[u32],
    prompt_len: usize,
) -> Result<Vec<Vec<f32>>> {
    if prompt_len == 0 || prompt_len > tokens.len() {
        return Err(format!("prompt length {prompt_len} of {} tokens", tokens.len()).into());
    }
    ev.clear()?;
    let mut logits = ev.eval(&tokens[..prompt_len], 0)?;
    for pos in prompt_len..tokens.len().saturating_sub(1) {
        let mut row = ev.eval(&tokens[pos..pos + 1], pos)?;
        logits.push(row.pop().ok_or("no logits returned")?);
    }
    Ok(logits)
}

impl Evaluator for RefContext<'_> {
    fn n_vocab(&self) -> usize {
        self.model().n_vocab()
    }
    fn clear(&mut self) -> Result<()> {
        RefContext::clear(self);
        Ok(())
    }
    fn eval(&mut self, tokens: &[u32], pos0: usize) -> Result<Vec<Vec<f32>>> {
        self.decode(tokens, pos0 as u32)
    }
}

/// Our engine (the root crate's `bitnet::model`).
pub struct Ours {
    model: Arc<Model>,
    ctx: Context,
}

impl Ours {
    pub fn load(path: &Path, n_ctx: usize, n_batch: usize) -> Result<Ours> {
        let model = Arc::new(Model::load(path)?);
        let ctx = Context::new(model.clone(), ContextParams::new(n_ctx, n_batch))?;
        Ok(Ours { model, ctx })
    }
}

impl Evaluator for Ours {
    fn n_vocab(&self) -> usize {
        self.model.hparams().n_vocab
    }
    fn clear(&mut self) -> Result<()> {
        self.ctx.clear();
        Ok(())
    }
    fn eval(&mut self, tokens: &[u32], pos0: usize) -> Result<Vec<Vec<f32>>> {
        Ok(bitnet::fixture::decode_rows(
            &mut self.ctx,
            tokens,
            pos0 as i32,
            0,
        )?)
    }
}
