//! Contexts: creation from a model and `llama_context_params`, llama_decode / llama_encode,
//! the logits getters, the memory (KV cache) functions, threads and perf counters.

use std::ffi::{c_int, c_void};
use std::sync::Arc;
use std::time::Instant;

use super::ggml::ggml_abort_callback;
use super::guard::{self, ffi, handle, with_handle, Fallible, LOG_ERROR, LOG_INFO, LOG_WARN};
use super::model::llama_model;
use super::types::*;
use crate::error::ErrorKind;
use crate::model::context::Pooling;
use crate::model::context::{SeqSet, MAX_SEQ};
use crate::model::{Batch, Context, ContextParams};

/// A context: the engine's context (none on a vocab-only model), the parameters it was made
/// with as the reference reports them, and perf counters. The outputs of the last decode
/// (logits, embeddings) stay in the engine's context: the getters lend pointers into them.
pub struct llama_context {
    model: *const llama_model,
    engine: Option<Context>,
    pub(crate) n_vocab: usize,
    n_ctx: u32,
    /// Cells one sequence may use: all of n_ctx with a unified KV cache, else its share.
    n_ctx_seq: u32,
    n_batch: u32,
    n_ubatch: u32,
    n_seq_max: u32,
    n_threads: i32,
    n_threads_batch: i32,
    embeddings: bool,
    /// The effective llama_pooling_type (NONE, MEAN, CLS or LAST).
    pooling: c_int,
    abort_callback: ggml_abort_callback,
    abort_callback_data: *mut c_void,
    /// `llama_context_params.ctx_other`, returned by `llama_get_ctx_other` (llama-ext.h).
    pub(crate) ctx_other: *mut llama_context,
    perf: Perf,
}

/// Perf counters as the reference keeps them: token counts always, times unless `no_perf`;
/// the "load time" is from context creation to the first decode.
#[derive(Default)]
struct Perf {
    no_perf: bool,
    evaluated_once: bool,
    t_start_us: i64,
    t_load_ms: f64,
    t_p_eval_us: i64,
    t_eval_us: i64,
    n_p_eval: i32,
    n_eval: i32,
}

/// One decode's entries, from a `llama_batch` or a `llama_batch_ext`.
pub(crate) struct Entries {
    pub tokens: Vec<u32>,
    pub positions: Vec<i32>,
    pub seqs: Vec<SeqSet>,
    pub want_logits: Vec<bool>,
}

impl llama_context {
    pub(crate) fn n_batch(&self) -> usize {
        self.n_batch as usize
    }
    pub(crate) fn n_seq_max(&self) -> usize {
        self.n_seq_max as usize
    }

    /// Bytes held for llama_get_memory_breakdown: (the model's weights, the KV cache, the
    /// activation buffers); the last two are 0 when they live on a device or there is no engine.
    pub(crate) fn memory_bytes(&self) -> (u64, usize, usize) {
        // SAFETY: a context keeps a pointer to the model it was made from, which llama.h
        // requires to outlive it.
        let model = unsafe { &*self.model };
        let (kv, compute) = self
            .engine
            .as_ref()
            .and_then(|e| e.host_memory_bytes())
            .unwrap_or((0, 0));
        (model.n_bytes, kv, compute)
    }

    /// Largest cached position of `seq` (-1 when empty or no memory).
    pub(crate) fn seq_pos_max(&self, seq: i32) -> i32 {
        self.engine.as_ref().map_or(-1, |e| e.seq_pos_max(seq))
    }

    /// Runs one decode; llama_decode's return values (0, 1, 2, -1, < -1).
    pub(crate) fn decode(&mut self, entries: &Entries) -> i32 {
        let n = entries.tokens.len();
        if n == 0 {
            guard::log(LOG_ERROR, "llama_decode: n_tokens == 0");
            return -1;
        }
        if n > self.n_batch as usize {
            guard::log(
                LOG_ERROR,
                &format!("llama_decode: n_tokens = {n} > n_batch = {}", self.n_batch),
            );
            return -1;
        }
        if let Some(cb) = self.abort_callback {
            // SAFETY: registered through llama_set_abort_callback / the context params with
            // this data pointer (llama.h contract).
            if unsafe { cb(self.abort_callback_data) } {
                guard::log(LOG_WARN, "llama_decode: aborted by the abort callback");
                return 2;
            }
        }
        let threads = if n > 1 {
            self.n_threads_batch
        } else {
            self.n_threads
        };
        let Some(engine) = self.engine.as_mut() else {
            guard::log(
                LOG_ERROR,
                "llama_decode: the model was loaded vocab_only: it has no weights to run",
            );
            return -1;
        };
        engine.set_n_threads(threads.max(0) as usize);
        // As the reference: when computing embeddings, every token is an output.
        let all_outputs;
        let want_logits = if self.embeddings && entries.want_logits.contains(&false) {
            guard::log(
                LOG_WARN,
                "llama_decode: embeddings required but some input tokens were not marked as outputs -> overriding",
            );
            all_outputs = vec![true; n];
            &all_outputs
        } else {
            &entries.want_logits
        };
        let start = Instant::now();
        let batch = Batch {
            tokens: &entries.tokens,
            positions: &entries.positions,
            seqs: &entries.seqs,
            want_logits,
        };
        if let Err(e) = engine.decode(&batch) {
            let (code, level) = match e.kind {
                ErrorKind::BadInput => (-1, LOG_ERROR),
                ErrorKind::NoKvSlot => (1, LOG_WARN),
                _ => (-3, LOG_ERROR),
            };
            guard::log(level, &format!("llama_decode: {e} (returns {code})"));
            return code;
        }
        let us = if self.perf.no_perf {
            0
        } else {
            start.elapsed().as_micros() as i64
        };
        if n > 1 {
            self.perf.t_p_eval_us += us;
            self.perf.n_p_eval += n as i32;
        } else {
            self.perf.t_eval_us += us;
            self.perf.n_eval += 1;
        }
        if !self.perf.evaluated_once {
            self.perf.evaluated_once = true;
            self.perf.t_load_ms = 1e-3 * (guard::monotonic_us() - self.perf.t_start_us) as f64;
        }
        0
    }

    /// The engine, or an error for a vocab-only context.
    pub(crate) fn engine_mut(&mut self) -> Fallible<&mut Context> {
        self.engine
            .as_mut()
            .ok_or_else(|| "the model was loaded vocab_only: this context has no state".to_string())
    }

    /// Row of the outputs for `i` as llama_get_logits_ith counts it: a batch index, or from
    /// the last output row back when negative. A vocab-only context has no outputs.
    pub(crate) fn output_row(&self, i: i32) -> Fallible<usize> {
        let (n_outputs, n_entries) = self
            .engine
            .as_ref()
            .map_or((0, 0), |e| (e.n_outputs(), e.n_entries()));
        if i < 0 {
            let j = n_outputs as i64 + i as i64;
            if j < 0 {
                return Err(format!(
                    "negative index {i} out of range [-{n_outputs}, 0) of the outputs"
                ));
            }
            return Ok(j as usize);
        }
        if i as usize >= n_entries {
            return Err(format!(
                "index {i} out of range [0, {n_entries}) of the last batch"
            ));
        }
        self.engine
            .as_ref()
            .and_then(|e| e.output_row(i as usize))
            .ok_or_else(|| format!("batch entry {i} did not ask for logits"))
    }

    /// The logits of the last decode, lent from the engine (C may write into them).
    pub(crate) fn logits_mut(&mut self) -> Fallible<&mut [f32]> {
        match self.engine.as_mut().map(|e| e.all_logits_mut()) {
            Some(l) if !l.is_empty() => Ok(l),
            _ => Err("no logits: the last decode produced none".into()),
        }
    }

    pub(crate) fn logits_row(&mut self, i: i32) -> Fallible<&mut [f32]> {
        let row = self.output_row(i)?;
        let n_vocab = self.engine_mut()?.model().hparams().n_vocab;
        self.logits_mut()?
            .get_mut(row * n_vocab..(row + 1) * n_vocab)
            .ok_or_else(|| format!("no logits row for index {i}"))
    }

    /// The final hidden states of the last decode, lent from the engine; none when pooled
    /// (llama_get_embeddings gives per-sequence embeddings only then) or off.
    pub(crate) fn embd_mut(&mut self) -> Fallible<&mut [f32]> {
        let pooled = self.pooling != llama_pooling_type::LLAMA_POOLING_TYPE_NONE as c_int;
        match self.engine.as_mut().map(|e| e.all_embeddings_mut()) {
            Some(e) if !pooled && !e.is_empty() => Ok(e),
            _ => Err("no embeddings (embeddings off, pooled, or nothing decoded)".into()),
        }
    }

    pub(crate) fn embd_row(&mut self, i: i32) -> Fallible<&mut [f32]> {
        self.embd_mut()?;
        let row = self.output_row(i)?;
        let n_embd = self.engine_mut()?.model().hparams().n_embd;
        self.embd_mut()?
            .get_mut(row * n_embd..(row + 1) * n_embd)
            .ok_or_else(|| format!("no embeddings row for index {i}"))
    }
}

/// The reference's GGML_PAD(x, 256).
fn pad256(x: u32) -> u32 {
    x.div_ceil(256).saturating_mul(256)
}

/// The pooling a context uses, as llama_pooling_type and as the engine's. UNSPECIFIED means the
/// model's own, NONE for these generative models; RANK needs a classifier head we do not have;
/// an unknown value is logged and taken as NONE.
fn pooling_from_c(p: c_int) -> Fallible<(c_int, Pooling)> {
    use llama_pooling_type::*;
    let none = LLAMA_POOLING_TYPE_NONE as c_int;
    Ok(match p {
        x if x == LLAMA_POOLING_TYPE_UNSPECIFIED as c_int || x == none => (none, Pooling::None),
        x if x == LLAMA_POOLING_TYPE_MEAN as c_int => (x, Pooling::Mean),
        x if x == LLAMA_POOLING_TYPE_CLS as c_int => (x, Pooling::Cls),
        x if x == LLAMA_POOLING_TYPE_LAST as c_int => (x, Pooling::Last),
        x if x == LLAMA_POOLING_TYPE_RANK as c_int => {
            return Err("pooling type RANK needs a classification head: not supported".into())
        }
        x => {
            guard::log(
                LOG_WARN,
                &format!("llama_init_from_model: unknown pooling type {x}: using NONE"),
            );
            (none, Pooling::None)
        }
    })
}

fn init_from_model(
    model: *mut llama_model,
    params: llama_context_params,
) -> Fallible<*mut llama_context> {
    // SAFETY: model is NULL or a live handle from llama_model_load_* (llama.h contract).
    let m = unsafe { handle(model.cast_const(), "model") }?;
    if params.n_batch == 0 && params.n_ubatch == 0 {
        return Err("n_batch and n_ubatch cannot both be zero".into());
    }
    let n_seq_max = params.n_seq_max.max(1);
    if n_seq_max as usize > MAX_SEQ {
        return Err(format!("n_seq_max must be <= {MAX_SEQ}"));
    }
    let n_ctx_train = u32::try_from(m.n_ctx_train()).unwrap_or(0);
    let mut n_ctx = if params.n_ctx == 0 {
        n_ctx_train
    } else {
        params.n_ctx
    };
    if n_ctx == 0 {
        return Err("n_ctx and the model's n_ctx_train cannot both be zero".into());
    }
    let n_batch_asked = if params.n_batch == 0 {
        params.n_ubatch
    } else {
        params.n_batch
    };
    let n_batch = n_ctx.min(n_batch_asked);
    let n_ubatch = n_batch.min(if params.n_ubatch == 0 {
        n_batch
    } else {
        params.n_ubatch
    });
    n_ctx = pad256(n_ctx);
    // A unified KV cache is one pool every sequence draws on (llama-server's --kv-unified:
    // a slot may use the whole context); otherwise each sequence has its share.
    let mut n_ctx_seq = n_ctx;
    if !params.kv_unified {
        n_ctx_seq = pad256(n_ctx / n_seq_max);
        if n_ctx_seq == 0 {
            return Err("n_ctx_seq == 0".into());
        }
        if n_ctx != n_ctx_seq.saturating_mul(n_seq_max) {
            n_ctx = n_ctx_seq.saturating_mul(n_seq_max);
            guard::log(
                LOG_WARN,
                &format!("llama_init_from_model: n_ctx is not divisible by n_seq_max - rounding down to {n_ctx}"),
            );
        }
    }
    let (pooling, engine_pooling) = pooling_from_c(params.pooling_type)?;
    let engine_params = ContextParams {
        n_ctx: n_ctx as usize,
        n_batch: n_batch as usize,
        n_seq_max: n_seq_max as usize,
        n_threads: params.n_threads.max(0) as usize,
        embeddings: params.embeddings,
        pooling: engine_pooling,
    };
    let engine = match &m.engine {
        Some(weights) => {
            // A model offloaded to the GPU (feature `cuda`) gets a device context.
            #[cfg(feature = "cuda")]
            let made = match &m.gpu {
                Some(g) => Context::with_gpu(Arc::clone(g), engine_params),
                None => Context::new(Arc::clone(weights), engine_params),
            };
            #[cfg(not(feature = "cuda"))]
            let made = Context::new(Arc::clone(weights), engine_params);
            Some(made.map_err(|e| e.to_string())?)
        }
        None => None,
    };
    guard::log(
        LOG_INFO,
        &format!("llama_init_from_model: n_ctx = {n_ctx}, n_batch = {n_batch}, n_ubatch = {n_ubatch}, n_seq_max = {n_seq_max}"),
    );
    if params.flash_attn_type != llama_flash_attn_type::LLAMA_FLASH_ATTN_TYPE_DISABLED as c_int {
        // The reference's CPU flash attention sums values in f16 on its one-query path; ours
        // has one attention, its non-flash path (f32 sums over the f16 cache): say which.
        let asked = super::system::llama_flash_attn_type_name(params.flash_attn_type);
        // SAFETY: llama_flash_attn_type_name returns a static NUL-terminated string.
        let asked = unsafe { std::ffi::CStr::from_ptr(asked) }.to_string_lossy();
        guard::log(
            LOG_INFO,
            &format!("llama_init_from_model: flash_attn = {asked} -> disabled (one attention: f32 sums over the f16 KV cache, as the reference with flash_attn disabled)"),
        );
    }
    let ctx = llama_context {
        model,
        engine,
        n_vocab: m.vocab.n_tokens(),
        n_ctx,
        n_ctx_seq,
        n_batch,
        n_ubatch,
        n_seq_max,
        n_threads: params.n_threads,
        n_threads_batch: params.n_threads_batch,
        embeddings: params.embeddings,
        pooling,
        abort_callback: params.abort_callback,
        abort_callback_data: params.abort_callback_data,
        ctx_other: params.ctx_other,
        perf: Perf {
            no_perf: params.no_perf,
            t_start_us: guard::monotonic_us(),
            ..Perf::default()
        },
    };
    Ok(Box::into_raw(Box::new(ctx)))
}

#[no_mangle]
pub unsafe extern "C" fn llama_init_from_model(
    model: *mut llama_model,
    params: llama_context_params,
) -> *mut llama_context {
    ffi!(std::ptr::null_mut(), || init_from_model(model, params))
}

#[no_mangle]
pub unsafe extern "C" fn llama_new_context_with_model(
    model: *mut llama_model,
    params: llama_context_params,
) -> *mut llama_context {
    ffi!(std::ptr::null_mut(), || init_from_model(model, params))
}

#[no_mangle]
pub unsafe extern "C" fn llama_free(ctx: *mut llama_context) {
    ffi!((), || {
        // SAFETY: ctx is NULL or came from llama_init_from_model and is freed once.
        unsafe { guard::free_box(ctx) };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_ctx(ctx: *const llama_context) -> u32 {
    with_handle!(&ctx, 0, |c| Ok(c.n_ctx))
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_ctx_seq(ctx: *const llama_context) -> u32 {
    with_handle!(&ctx, 0, |c| Ok(c.n_ctx_seq))
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_batch(ctx: *const llama_context) -> u32 {
    with_handle!(&ctx, 0, |c| Ok(c.n_batch))
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_ubatch(ctx: *const llama_context) -> u32 {
    with_handle!(&ctx, 0, |c| Ok(c.n_ubatch))
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_seq_max(ctx: *const llama_context) -> u32 {
    with_handle!(&ctx, 0, |c| Ok(c.n_seq_max))
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_rs_seq(ctx: *const llama_context) -> u32 {
    with_handle!(&ctx, 0, |_c| Ok(0))
}

#[no_mangle]
pub unsafe extern "C" fn llama_get_model(ctx: *const llama_context) -> *const llama_model {
    with_handle!(&ctx, std::ptr::null(), |c| Ok(c.model))
}

/// The memory handle is the context itself seen through `llama_memory_t` (NULL when the
/// context has no memory: a vocab-only model).
#[no_mangle]
pub unsafe extern "C" fn llama_get_memory(ctx: *const llama_context) -> llama_memory_t {
    with_handle!(&ctx, std::ptr::null_mut(), |c| {
        Ok(match c.engine {
            Some(_) => ctx.cast_mut().cast::<llama_memory_i>(),
            None => std::ptr::null_mut(),
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_pooling_type(ctx: *const llama_context) -> enum_llama_pooling_type {
    with_handle!(
        &ctx,
        llama_pooling_type::LLAMA_POOLING_TYPE_UNSPECIFIED as c_int,
        |c| Ok(c.pooling),
    )
}

/// Converts a `llama_batch` into entries, checking every array read against the C contract:
/// Err(message) means llama_decode's -1.
///
/// # Safety
/// The batch's non-NULL arrays hold `n_tokens` entries (and `seq_id[i]` `n_seq_id[i]`).
unsafe fn entries_from_batch(c: &llama_context, b: &llama_batch) -> Fallible<Entries> {
    if b.n_tokens <= 0 {
        return Err("n_tokens == 0".into());
    }
    let n = b.n_tokens as usize;
    if n > c.n_batch as usize {
        return Err(format!("n_tokens = {n} > n_batch = {}", c.n_batch));
    }
    if b.token.is_null() {
        return Err("batch.token is NULL: embedding inputs are not supported".into());
    }
    // SAFETY: token holds n_tokens values (contract).
    let tokens = unsafe { guard::c_slice(b.token, n, "batch.token") }?;
    let mut out = Entries {
        tokens: Vec::with_capacity(n),
        positions: Vec::with_capacity(n),
        seqs: Vec::with_capacity(n),
        want_logits: Vec::with_capacity(n),
    };
    for (i, &t) in tokens.iter().enumerate() {
        if t < 0 || t as usize >= c.n_vocab {
            return Err(format!("invalid token[{i}] = {t}"));
        }
        out.tokens.push(t as u32);
    }
    for i in 0..n {
        let mut set = SeqSet::EMPTY;
        if b.seq_id.is_null() {
            set.insert(0);
        } else {
            let n_seq = if b.n_seq_id.is_null() {
                1
            } else {
                // SAFETY: n_seq_id holds n_tokens values (contract).
                unsafe { *b.n_seq_id.add(i) }
            };
            if n_seq < 1 || n_seq as usize > MAX_SEQ {
                return Err(format!("invalid n_seq_id[{i}] = {n_seq}"));
            }
            // SAFETY: seq_id holds n_tokens pointers, each to n_seq_id[i] ids (contract).
            let ids =
                unsafe { guard::c_slice(*b.seq_id.add(i), n_seq as usize, "batch.seq_id[i]") }?;
            for (s, &id) in ids.iter().enumerate() {
                if id < 0 || id as u32 >= c.n_seq_max {
                    return Err(format!(
                        "invalid seq_id[{i}][{s}] = {id} >= {}",
                        c.n_seq_max
                    ));
                }
                set.insert(id as usize);
            }
        }
        out.seqs.push(set);
    }
    if b.pos.is_null() {
        // Positions continue each token's first sequence, as the reference tracks them.
        let mut next: Vec<i32> = (0..c.n_seq_max as i32)
            .map(|s| c.seq_pos_max(s) + 1)
            .collect();
        for set in &out.seqs {
            let s = set.first().unwrap_or(0);
            out.positions.push(next[s]);
            next[s] += 1;
        }
    } else {
        // SAFETY: pos holds n_tokens values (contract).
        out.positions
            .extend_from_slice(unsafe { guard::c_slice(b.pos, n, "batch.pos") }?);
    }
    if b.logits.is_null() {
        out.want_logits.extend((0..n).map(|i| i == n - 1));
    } else {
        // SAFETY: logits holds n_tokens flags (contract).
        let flags = unsafe { guard::c_slice(b.logits, n, "batch.logits") }?;
        out.want_logits.extend(flags.iter().map(|&f| f != 0));
    }
    Ok(out)
}

#[no_mangle]
pub unsafe extern "C" fn llama_decode(ctx: *mut llama_context, batch: llama_batch) -> i32 {
    let body = |c: &mut llama_context| -> Fallible<i32> {
        // SAFETY: the batch arrays follow llama.h's contract.
        let entries = match unsafe { entries_from_batch(c, &batch) } {
            Ok(e) => e,
            Err(msg) => {
                guard::log(LOG_ERROR, &format!("llama_decode: {msg} (returns -1)"));
                return Ok(-1);
            }
        };
        Ok(c.decode(&entries))
    };
    with_handle!(&mut ctx, -1, body)
}

#[no_mangle]
pub unsafe extern "C" fn llama_encode(ctx: *mut llama_context, _batch: llama_batch) -> i32 {
    with_handle!(&mut ctx, -1, |_| {
        Err("this model has no encoder (decoder-only): use llama_decode; returns -1".into())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_get_logits(ctx: *mut llama_context) -> *mut f32 {
    with_handle!(&mut ctx, std::ptr::null_mut(), |c| {
        Ok(c.logits_mut()?.as_mut_ptr())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_get_logits_ith(ctx: *mut llama_context, i: i32) -> *mut f32 {
    with_handle!(&mut ctx, std::ptr::null_mut(), |c| {
        Ok(c.logits_row(i)?.as_mut_ptr())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_set_n_threads(
    ctx: *mut llama_context,
    n_threads: i32,
    n_threads_batch: i32,
) {
    with_handle!(&mut ctx, (), |c| {
        c.n_threads = n_threads;
        c.n_threads_batch = n_threads_batch;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_threads(ctx: *mut llama_context) -> i32 {
    with_handle!(&ctx, 0, |c| Ok(c.n_threads))
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_threads_batch(ctx: *mut llama_context) -> i32 {
    with_handle!(&ctx, 0, |c| Ok(c.n_threads_batch))
}

#[no_mangle]
pub unsafe extern "C" fn llama_set_embeddings(ctx: *mut llama_context, embeddings: bool) {
    with_handle!(&mut ctx, (), |c| {
        c.embeddings = embeddings;
        if let Some(e) = c.engine.as_mut() {
            e.set_embeddings(embeddings);
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_set_causal_attn(ctx: *mut llama_context, causal_attn: bool) {
    with_handle!(&mut ctx, (), |_| {
        if causal_attn {
            Ok(())
        } else {
            Err("non-causal attention is not supported: attention stays causal".into())
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_get_causal_attn(ctx: *const llama_context) -> bool {
    with_handle!(&ctx, false, |_| Ok(true))
}

#[no_mangle]
pub unsafe extern "C" fn llama_set_warmup(ctx: *mut llama_context, _warmup: bool) {
    // Warmup only matters for lazily loaded GPU/MoE weights; ours are mapped: nothing to do.
    with_handle!(&mut ctx, (), |_| Ok(()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_set_abort_callback(
    ctx: *mut llama_context,
    abort_callback: ggml_abort_callback,
    abort_callback_data: *mut c_void,
) {
    with_handle!(&mut ctx, (), |c| {
        c.abort_callback = abort_callback;
        c.abort_callback_data = abort_callback_data;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_synchronize(ctx: *mut llama_context) {
    // Decoding is synchronous: nothing to wait for.
    with_handle!(&mut ctx, (), |_| Ok(()))
}

// ---- Memory: the llama_memory_t handle is the context (see llama_get_memory).

/// `with_memory!(mem, on_error, |engine| value)`: `with_handle!` on the export's
/// `llama_memory_t` argument (the context itself, see llama_get_memory); a context without
/// memory (vocab-only) is refused.
macro_rules! with_memory {
    ($mem:ident, $on_error:expr, $f:expr $(,)?) => {
        with_handle!(&mut $mem as llama_context, $on_error, |c| {
            let engine = c.engine.as_mut().ok_or("the context has no memory")?;
            Ok(guard::apply(engine, $f))
        })
    };
}

#[no_mangle]
pub unsafe extern "C" fn llama_memory_clear(mem: llama_memory_t, _data: bool) {
    with_memory!(mem, (), |e| e.clear())
}

#[no_mangle]
pub unsafe extern "C" fn llama_memory_seq_rm(
    mem: llama_memory_t,
    seq_id: llama_seq_id,
    p0: llama_pos,
    p1: llama_pos,
) -> bool {
    with_memory!(mem, false, |e| { e.seq_rm(seq_id, p0, p1) })
}

#[no_mangle]
pub unsafe extern "C" fn llama_memory_seq_cp(
    mem: llama_memory_t,
    seq_id_src: llama_seq_id,
    seq_id_dst: llama_seq_id,
    p0: llama_pos,
    p1: llama_pos,
) {
    with_memory!(mem, (), |e| {
        if !e.seq_cp(seq_id_src, seq_id_dst, p0, p1) {
            guard::log(
                LOG_ERROR,
                &format!("llama_memory_seq_cp: invalid sequence {seq_id_src} -> {seq_id_dst}"),
            );
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_memory_seq_keep(mem: llama_memory_t, seq_id: llama_seq_id) {
    with_memory!(mem, (), |e| {
        if !e.seq_keep(seq_id) {
            guard::log(
                LOG_ERROR,
                &format!("llama_memory_seq_keep: invalid sequence {seq_id}"),
            );
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_memory_seq_add(
    mem: llama_memory_t,
    seq_id: llama_seq_id,
    p0: llama_pos,
    p1: llama_pos,
    delta: llama_pos,
) {
    with_memory!(mem, (), |e| {
        if !e.seq_add(seq_id, p0, p1, delta) {
            guard::log(
                LOG_ERROR,
                &format!("llama_memory_seq_add: invalid sequence {seq_id}"),
            );
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_memory_seq_div(
    mem: llama_memory_t,
    seq_id: llama_seq_id,
    p0: llama_pos,
    p1: llama_pos,
    d: c_int,
) {
    with_memory!(mem, (), |e| {
        if !e.seq_div(seq_id, p0, p1, d) {
            guard::log(
                LOG_ERROR,
                &format!("llama_memory_seq_div: invalid sequence {seq_id} or divisor {d}"),
            );
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_memory_seq_pos_min(
    mem: llama_memory_t,
    seq_id: llama_seq_id,
) -> llama_pos {
    with_memory!(mem, -1, |e| { e.seq_pos_min(seq_id) })
}

#[no_mangle]
pub unsafe extern "C" fn llama_memory_seq_pos_max(
    mem: llama_memory_t,
    seq_id: llama_seq_id,
) -> llama_pos {
    with_memory!(mem, -1, |e| { e.seq_pos_max(seq_id) })
}

#[no_mangle]
pub unsafe extern "C" fn llama_memory_can_shift(mem: llama_memory_t) -> bool {
    // Positions can be shifted (seq_add / seq_div re-rotate the cached keys).
    with_memory!(mem, false, |_| true)
}

// ---- Perf.

#[no_mangle]
pub unsafe extern "C" fn llama_perf_context(ctx: *const llama_context) -> llama_perf_context_data {
    ffi!(llama_perf_context_data::default(), || {
        // SAFETY: ctx is NULL (zeros, as the reference) or a live handle.
        let Some(c) = (unsafe { ctx.as_ref() }) else {
            return Ok(llama_perf_context_data::default());
        };
        let p = &c.perf;
        Ok(llama_perf_context_data {
            t_start_ms: 1e-3 * p.t_start_us as f64,
            t_load_ms: p.t_load_ms,
            t_p_eval_ms: 1e-3 * p.t_p_eval_us as f64,
            t_eval_ms: 1e-3 * p.t_eval_us as f64,
            n_p_eval: p.n_p_eval.max(1),
            n_eval: p.n_eval.max(1),
            n_reused: 0,
        })
    },)
}

#[no_mangle]
pub unsafe extern "C" fn llama_perf_context_print(ctx: *const llama_context) {
    ffi!((), || {
        // SAFETY: forwarded C argument.
        let d = unsafe { llama_perf_context(ctx) };
        let t_end_ms = 1e-3 * guard::monotonic_us() as f64;
        let f = guard::fn_name!();
        guard::log(
            LOG_INFO,
            &format!("{f}:        load time = {:10.2} ms", d.t_load_ms),
        );
        guard::log(
            LOG_INFO,
            &format!(
                "{f}: prompt eval time = {:10.2} ms / {:5} tokens {}",
                d.t_p_eval_ms,
                d.n_p_eval,
                guard::per_token(d.t_p_eval_ms, d.n_p_eval)
            ),
        );
        guard::log(
            LOG_INFO,
            &format!(
                "{f}:        eval time = {:10.2} ms / {:5} runs   {}",
                d.t_eval_ms,
                d.n_eval,
                guard::per_token(d.t_eval_ms, d.n_eval)
            ),
        );
        guard::log(
            LOG_INFO,
            &format!(
                "{f}:       total time = {:10.2} ms / {:5} tokens",
                t_end_ms - d.t_start_ms,
                d.n_p_eval + d.n_eval
            ),
        );
        guard::log(
            LOG_INFO,
            &format!("{f}:    graphs reused = {:10}", d.n_reused),
        );
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_perf_context_reset(ctx: *mut llama_context) {
    with_handle!(&mut ctx, (), |c| {
        // As the reference: the clock and the eval counters restart; the load time stays.
        let p = &mut c.perf;
        p.t_start_us = guard::monotonic_us();
        (p.t_eval_us, p.n_eval, p.t_p_eval_us, p.n_p_eval) = (0, 0, 0, 0);
        Ok(())
    })
}

// ---- Embeddings (the final hidden states, after the output norm, as the reference's).

#[no_mangle]
pub unsafe extern "C" fn llama_get_embeddings(ctx: *mut llama_context) -> *mut f32 {
    with_handle!(&mut ctx, std::ptr::null_mut(), |c| {
        Ok(c.embd_mut()?.as_mut_ptr())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_get_embeddings_ith(ctx: *mut llama_context, i: i32) -> *mut f32 {
    with_handle!(&mut ctx, std::ptr::null_mut(), |c| {
        Ok(c.embd_row(i)?.as_mut_ptr())
    })
}

/// The pooled embedding of a sequence; NULL (no log, as the reference) when there is none.
#[no_mangle]
pub unsafe extern "C" fn llama_get_embeddings_seq(
    ctx: *mut llama_context,
    seq_id: llama_seq_id,
) -> *mut f32 {
    with_handle!(&mut ctx, std::ptr::null_mut(), |c| {
        Ok(c.engine
            .as_mut()
            .and_then(|e| e.embeddings_seq_mut(seq_id))
            .map_or(std::ptr::null_mut(), |e| e.as_mut_ptr()))
    })
}
