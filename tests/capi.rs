//! The llama.h exports called from Rust as a C program would: ABI layout against the pinned
//! reference header, load/free, metadata, tokenization conventions, decode and logits against
//! the Rust API, misuse (NULL, bad sizes, bad ids) returning the documented values, samplers.

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::process::Command;
use std::ptr::{null, null_mut};
use std::sync::{Arc, Mutex};

use bitnet::capi::*;
use bitnet::model::{Batch, Context, ContextParams, Model, SeqSet};
use common::*;

const F32_MODEL: &str = "bitnet-spm-f32.gguf";

fn cpath(p: &std::path::Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

fn load(name: &str) -> *mut llama_model {
    let p = cpath(&model(name));
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    let m = unsafe { llama_model_load_from_file(p.as_ptr(), llama_model_default_params()) };
    assert!(!m.is_null(), "cannot load {name}");
    m
}

fn new_ctx(m: *mut llama_model, n_ctx: u32, n_batch: u32) -> *mut llama_context {
    let mut p = llama_context_default_params();
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_threads = 1;
    p.n_threads_batch = 1;
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    let c = unsafe { llama_init_from_model(m, p) };
    assert!(!c.is_null());
    c
}

fn tokenize(vocab: *const llama_vocab, text: &str, add_special: bool) -> Vec<llama_token> {
    let mut out = vec![0; text.len() + 8];
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    let n = unsafe {
        llama_tokenize(
            vocab,
            text.as_ptr().cast(),
            text.len() as i32,
            out.as_mut_ptr(),
            out.len() as i32,
            add_special,
            false,
        )
    };
    assert!(n >= 0);
    out.truncate(n as usize);
    out
}

/// Every log line since the test process started (the callback is process-wide).
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn capture(_level: i32, text: *const c_char, _ud: *mut c_void) {
    // SAFETY: the library logs NUL-terminated text that lives for the call.
    let s = unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned();
    LOG.lock().unwrap().push(s);
}

fn capture_logs() {
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe { llama_log_set(Some(capture), null_mut()) };
}

fn logged(needle: &str) -> bool {
    LOG.lock().unwrap().iter().any(|l| l.contains(needle))
}

// ---- ABI against the reference header.

/// (C expression, Rust value) pairs: sizes, offsets, enum values.
fn layout_facts() -> Vec<(String, i64)> {
    use std::mem::{offset_of, size_of};
    let mut v: Vec<(String, i64)> = vec![];
    macro_rules! size {
        ($t:ident) => {
            v.push((
                format!("sizeof(struct {})", stringify!($t)),
                size_of::<$t>() as i64,
            ));
        };
    }
    macro_rules! off {
        ($t:ident, $($f:ident),*) => {$(
            v.push((format!("offsetof(struct {}, {})", stringify!($t), stringify!($f)), offset_of!($t, $f) as i64));
        )*};
    }
    macro_rules! val {
        ($($e:ident :: $c:ident),*) => {$(
            v.push((stringify!($c).to_string(), $e::$c as i64));
        )*};
    }
    size!(llama_token_data);
    off!(llama_token_data, id, logit, p);
    size!(llama_token_data_array);
    off!(llama_token_data_array, data, size, selected, sorted);
    size!(llama_batch);
    off!(
        llama_batch,
        n_tokens,
        token,
        embd,
        pos,
        n_seq_id,
        seq_id,
        logits
    );
    size!(llama_model_kv_override);
    off!(llama_model_kv_override, tag, key);
    v.push((
        "offsetof(struct llama_model_kv_override, val_i64)".into(),
        offset_of!(llama_model_kv_override, value) as i64,
    ));
    size!(llama_model_tensor_buft_override);
    size!(llama_model_params);
    off!(
        llama_model_params,
        devices,
        tensor_buft_overrides,
        n_gpu_layers,
        split_mode,
        load_mode,
        lazy_mode,
        main_gpu,
        tensor_split,
        progress_callback,
        progress_callback_user_data,
        kv_overrides,
        vocab_only,
        check_tensors,
        use_extra_bufts,
        no_host,
        no_alloc,
        load_mtp
    );
    size!(llama_sampler_seq_config);
    size!(llama_context_params);
    off!(
        llama_context_params,
        n_ctx,
        n_batch,
        n_ubatch,
        n_seq_max,
        n_rs_seq,
        n_outputs_max,
        n_outputs_max_per_seq,
        n_threads,
        n_threads_batch,
        ctx_type,
        rope_scaling_type,
        pooling_type,
        attention_type,
        flash_attn_type,
        rope_freq_base,
        rope_freq_scale,
        yarn_ext_factor,
        yarn_attn_factor,
        yarn_beta_fast,
        yarn_beta_slow,
        yarn_orig_ctx,
        defrag_thold,
        cb_eval,
        cb_eval_user_data,
        type_k,
        type_v,
        abort_callback,
        abort_callback_data,
        embeddings,
        offload_kqv,
        no_perf,
        op_offload,
        swa_full,
        kv_unified,
        samplers,
        n_samplers,
        ctx_other
    );
    size!(llama_model_tensor_override);
    size!(llama_model_imatrix_data);
    size!(llama_model_quantize_params);
    off!(
        llama_model_quantize_params,
        nthread,
        ftype,
        output_tensor_type,
        token_embedding_type,
        allow_requantize,
        quantize_output_tensor,
        only_copy,
        pure,
        keep_split,
        dry_run,
        imatrix,
        kv_overrides,
        tt_overrides,
        prune_layers,
        max_buf_size
    );
    size!(llama_logit_bias);
    size!(llama_sampler_chain_params);
    size!(llama_chat_message);
    size!(llama_embd);
    off!(llama_embd, data, n_rows, n_embd);
    size!(llama_sampler_data);
    size!(llama_sampler_i);
    off!(
        llama_sampler_i,
        name,
        accept,
        apply,
        reset,
        clone,
        free,
        backend_init,
        backend_accept,
        backend_apply,
        backend_set_input,
        backend_reset,
        copy_state
    );
    size!(llama_sampler);
    off!(llama_sampler, iface, ctx);
    size!(llama_perf_context_data);
    off!(
        llama_perf_context_data,
        t_start_ms,
        t_load_ms,
        t_p_eval_ms,
        t_eval_ms,
        n_p_eval,
        n_eval,
        n_reused
    );
    size!(llama_perf_sampler_data);
    size!(llama_opt_params);
    off!(
        llama_opt_params,
        n_ctx_train,
        param_filter,
        param_filter_ud,
        get_opt_pars,
        get_opt_pars_ud,
        optimizer_type
    );
    size!(ggml_opt_optimizer_params);
    val!(
        llama_rope_type::LLAMA_ROPE_TYPE_NEOX,
        llama_rope_type::LLAMA_ROPE_TYPE_IMROPE,
        llama_rope_type::LLAMA_ROPE_TYPE_VISION,
        llama_vocab_type::LLAMA_VOCAB_TYPE_TEST,
        llama_token_attr::LLAMA_TOKEN_ATTR_SINGLE_WORD,
        llama_ftype::LLAMA_FTYPE_MOSTLY_TQ1_0,
        llama_ftype::LLAMA_FTYPE_MOSTLY_TQ2_0,
        llama_ftype::LLAMA_FTYPE_MOSTLY_Q2_0,
        llama_ftype::LLAMA_FTYPE_GUESSED,
        llama_pooling_type::LLAMA_POOLING_TYPE_RANK,
        llama_load_mode::LLAMA_LOAD_MODE_DIRECT_IO,
        llama_split_mode::LLAMA_SPLIT_MODE_TENSOR,
        llama_model_meta_key::LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT_ETA,
        llama_process_type::LLAMA_PROCESS_TYPE_DECODE,
        ggml_type::GGML_TYPE_TQ2_0,
        ggml_type::GGML_TYPE_COUNT,
        ggml_type::GGML_TYPE_BF16,
        ggml_log_level::GGML_LOG_LEVEL_CONT,
        ggml_numa_strategy::GGML_NUMA_STRATEGY_COUNT,
        ggml_opt_optimizer_type::GGML_OPT_OPTIMIZER_TYPE_COUNT
    );
    v
}

/// Compiles a C program against `include_dirs` that prints each fact, and returns the values.
fn measure_in_c(
    include_dirs: &[std::path::PathBuf],
    facts: &[(String, i64)],
    name: &str,
) -> Vec<i64> {
    let dir = scratch(name);
    let mut src = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"llama.h\"\nint main(void) {\n",
    );
    for (expr, _) in facts {
        src += &format!("    printf(\"%lld\\n\", (long long)({expr}));\n");
    }
    src += "    return 0;\n}\n";
    std::fs::write(dir.join("abi.c"), src).unwrap();
    let mut cc = Command::new("cc");
    for d in include_dirs {
        cc.arg("-I").arg(d);
    }
    let out = cc
        .arg(dir.join("abi.c"))
        .arg("-o")
        .arg(dir.join("abi"))
        .output()
        .expect("no C compiler (cc)");
    assert_ok("cc abi.c", &out);
    let out = Command::new(dir.join("abi")).output().unwrap();
    assert_ok("abi", &out)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn abi_matches_the_reference_header_and_ours() {
    let facts = layout_facts();
    let llama = fixtures().sdist.join("vendor/llama.cpp");
    let reference = measure_in_c(
        &[llama.join("include"), llama.join("ggml/include")],
        &facts,
        "abi_ref",
    );
    let ours = measure_in_c(&[repo().join("include")], &facts, "abi_ours");
    for (((expr, rust), r), o) in facts.iter().zip(&reference).zip(&ours) {
        assert_eq!(
            (*rust, *o),
            (*r, *r),
            "{expr}: Rust {rust}, our header {o}, reference {r}"
        );
    }
    assert!(facts.len() > 150, "{} facts", facts.len());
}

#[test]
fn default_params_are_the_reference_values() {
    let m = llama_model_default_params();
    assert_eq!(
        (m.n_gpu_layers, m.split_mode, m.load_mode, m.lazy_mode),
        (-1, 1, -1, 1)
    );
    assert!(m.use_extra_bufts && !m.vocab_only && !m.check_tensors && !m.no_host);
    let c = llama_context_default_params();
    assert_eq!(
        (c.n_ctx, c.n_batch, c.n_ubatch, c.n_seq_max),
        (512, 2048, 512, 1)
    );
    assert_eq!(
        (c.n_outputs_max, c.n_outputs_max_per_seq, c.n_threads),
        (0, 1, 4)
    );
    assert_eq!(
        (c.pooling_type, c.flash_attn_type, c.type_k, c.type_v),
        (-1, -1, 1, 1)
    );
    assert_eq!((c.yarn_ext_factor, c.defrag_thold), (-1.0, -1.0));
    assert!(c.offload_kqv && c.no_perf && c.swa_full && !c.kv_unified && !c.embeddings);
    assert!(llama_sampler_chain_default_params().no_perf);
    let q = llama_model_quantize_default_params();
    assert_eq!(
        (q.ftype, q.output_tensor_type, q.max_buf_size),
        (7, 43, 8 << 30)
    );
}

// ---- Models.

#[test]
fn load_query_and_free() {
    let m = load(F32_MODEL);
    let engine = Model::load(model(F32_MODEL)).unwrap();
    let h = engine.hparams();
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        assert_eq!(llama_model_n_embd(m), h.n_embd as i32);
        assert_eq!(llama_model_n_layer(m), h.n_layer as i32);
        assert_eq!(llama_model_n_head(m), h.n_head as i32);
        assert_eq!(llama_model_n_head_kv(m), h.n_head_kv as i32);
        assert_eq!(llama_model_n_ctx_train(m), h.n_ctx_train as i32);
        assert_eq!(
            llama_model_rope_type(m),
            llama_rope_type::LLAMA_ROPE_TYPE_NEOX as i32
        );
        assert_eq!(llama_model_rope_freq_scale_train(m), 1.0);
        assert!(llama_model_n_params(m) > 0 && llama_model_size(m) > 0);
        assert!(llama_model_has_decoder(m) && !llama_model_has_encoder(m));
        assert_eq!(llama_model_decoder_start_token(m), -1);
        assert!(!llama_model_is_recurrent(m));
        let vocab = llama_model_get_vocab(m);
        assert_eq!(llama_vocab_n_tokens(vocab), h.n_vocab as i32);
        let mut buf = [0 as c_char; 128];
        let n = llama_model_desc(m, buf.as_mut_ptr(), buf.len());
        let desc = CStr::from_ptr(buf.as_ptr()).to_str().unwrap();
        assert_eq!(n as usize, desc.len());
        assert!(desc.starts_with("bitnet "), "{desc}");
        llama_model_free(m);
        llama_model_free(null_mut());
    }
}

#[test]
fn metadata_by_key_and_index() {
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let n = llama_model_meta_count(m);
        assert!(n > 5);
        let mut keys = vec![];
        for i in 0..n {
            let mut buf = [0 as c_char; 256];
            let len = llama_model_meta_key_by_index(m, i, buf.as_mut_ptr(), buf.len());
            let k = CStr::from_ptr(buf.as_ptr()).to_str().unwrap().to_string();
            assert_eq!(len as usize, k.len());
            keys.push(k);
        }
        // Arrays are omitted, as the reference does.
        assert!(!keys.iter().any(|k| k == "tokenizer.ggml.tokens"));
        assert!(keys.iter().any(|k| k == "general.architecture"));

        let key = c"general.architecture";
        let mut buf = [0 as c_char; 64];
        assert_eq!(
            llama_model_meta_val_str(m, key.as_ptr(), buf.as_mut_ptr(), buf.len()),
            6
        );
        assert_eq!(CStr::from_ptr(buf.as_ptr()).to_str().unwrap(), "bitnet");
        // snprintf semantics: the full length comes back, the text is cut and terminated.
        let mut small = [b'x' as c_char; 4];
        assert_eq!(
            llama_model_meta_val_str(m, key.as_ptr(), small.as_mut_ptr(), small.len()),
            6
        );
        assert_eq!(CStr::from_ptr(small.as_ptr()).to_str().unwrap(), "bit");
        assert_eq!(llama_model_meta_val_str(m, key.as_ptr(), null_mut(), 0), 6);
        // Floats print as C's "%f".
        let eps = c"bitnet.attention.layer_norm_rms_epsilon";
        let len = llama_model_meta_val_str(m, eps.as_ptr(), buf.as_mut_ptr(), buf.len());
        let text = CStr::from_ptr(buf.as_ptr()).to_str().unwrap();
        assert_eq!(len as usize, text.len());
        let (int, frac) = text.split_once('.').unwrap();
        assert!(int.parse::<u64>().is_ok() && frac.len() == 6, "{text}");
        // Missing key, bad index: -1 and a cleared buffer.
        assert_eq!(
            llama_model_meta_val_str(m, c"no.such.key".as_ptr(), buf.as_mut_ptr(), buf.len()),
            -1
        );
        assert_eq!(buf[0], 0);
        buf[0] = b'x' as c_char;
        assert_eq!(
            llama_model_meta_val_str_by_index(m, n, buf.as_mut_ptr(), buf.len()),
            -1
        );
        assert_eq!(buf[0], 0);
        assert_eq!(
            llama_model_meta_key_by_index(m, -1, buf.as_mut_ptr(), buf.len()),
            -1
        );
        assert_eq!(
            CStr::from_ptr(llama_model_meta_key_str(
                llama_model_meta_key::LLAMA_MODEL_META_KEY_SAMPLING_TOP_K as i32
            )),
            c"general.sampling.top_k"
        );
        assert!(llama_model_meta_key_str(99).is_null());
        llama_model_free(m);
    }
}

static PROGRESS: Mutex<Vec<f32>> = Mutex::new(Vec::new());

unsafe extern "C" fn record_progress(p: f32, ud: *mut c_void) -> bool {
    PROGRESS.lock().unwrap().push(p);
    // user data: 1 = continue, 0 = cancel.
    !ud.is_null()
}

#[test]
fn progress_callback_is_called_and_can_cancel() {
    let path = cpath(&model(F32_MODEL));
    let mut p = llama_model_default_params();
    p.progress_callback = Some(record_progress);
    p.progress_callback_user_data = std::ptr::dangling_mut::<c_void>();
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    let m = unsafe { llama_model_load_from_file(path.as_ptr(), p) };
    assert!(!m.is_null());
    assert_eq!(*PROGRESS.lock().unwrap(), vec![0.0, 1.0]);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe { llama_model_free(m) };
    p.progress_callback_user_data = null_mut();
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    let m = unsafe { llama_model_load_from_file(path.as_ptr(), p) };
    assert!(m.is_null(), "a false from the callback aborts the load");
}

#[test]
fn vocab_only_model_tokenizes_but_does_not_decode() {
    capture_logs();
    let path = cpath(&model(F32_MODEL));
    let mut p = llama_model_default_params();
    p.vocab_only = true;
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let m = llama_model_load_from_file(path.as_ptr(), p);
        assert!(!m.is_null());
        let vocab = llama_model_get_vocab(m);
        let toks = tokenize(vocab, "Hello world", true);
        assert!(toks.len() >= 2);
        let c = new_ctx(m, 64, 16);
        assert!(llama_get_memory(c).is_null());
        let mut t = toks.clone();
        assert_eq!(
            llama_decode(c, llama_batch_get_one(t.as_mut_ptr(), t.len() as i32)),
            -1
        );
        assert!(logged("vocab_only"));
        llama_free(c);
        llama_model_free(m);
    }
}

#[test]
fn missing_file_and_null_path_give_null() {
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let p = c"/nonexistent/model.gguf";
        assert!(llama_model_load_from_file(p.as_ptr(), llama_model_default_params()).is_null());
        assert!(llama_model_load_from_file(null(), llama_model_default_params()).is_null());
        assert!(llama_load_model_from_file(null(), llama_model_default_params()).is_null());
    }
}

// ---- Vocabulary and tokenization.

#[test]
fn tokenize_round_trips_and_small_buffers() {
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let vocab = llama_model_get_vocab(m);
        let text = "Hello world, this is a test.";
        let toks = tokenize(vocab, text, true);
        assert_eq!(toks[0], llama_vocab_bos(vocab));
        // Too small: minus the count needed, nothing written.
        let mut two = [-7; 2];
        let n = llama_tokenize(
            vocab,
            text.as_ptr().cast(),
            text.len() as i32,
            two.as_mut_ptr(),
            2,
            true,
            false,
        );
        assert_eq!(n, -(toks.len() as i32));
        assert_eq!(two, [-7, -7]);
        assert_eq!(
            llama_tokenize(
                vocab,
                text.as_ptr().cast(),
                text.len() as i32,
                null_mut(),
                0,
                true,
                false
            ),
            n
        );
        assert_eq!(
            llama_tokenize(
                vocab,
                text.as_ptr().cast(),
                -1,
                two.as_mut_ptr(),
                2,
                true,
                false
            ),
            i32::MIN
        );
        assert_eq!(
            llama_tokenize(
                null(),
                text.as_ptr().cast(),
                3,
                two.as_mut_ptr(),
                2,
                true,
                false
            ),
            i32::MIN
        );

        // Detokenize back (without BOS, SPM's leading space is removed).
        let mut buf = vec![0 as c_char; 256];
        let body = &toks[1..];
        let n = llama_detokenize(
            vocab,
            body.as_ptr(),
            body.len() as i32,
            buf.as_mut_ptr(),
            256,
            false,
            false,
        );
        assert!(n > 0);
        let back = std::str::from_utf8(std::slice::from_raw_parts(
            buf.as_ptr().cast::<u8>(),
            n as usize,
        ))
        .unwrap();
        assert_eq!(back, text);
        let mut tiny = [0 as c_char; 3];
        assert_eq!(
            llama_detokenize(
                vocab,
                body.as_ptr(),
                body.len() as i32,
                tiny.as_mut_ptr(),
                3,
                false,
                false
            ),
            -n
        );

        // Pieces: the concatenation gives the text back (with SPM's leading space).
        let mut joined = Vec::new();
        for &t in &toks[1..] {
            let mut piece = [0 as c_char; 64];
            let len = llama_token_to_piece(vocab, t, piece.as_mut_ptr(), 64, 0, false);
            assert!(len >= 0);
            joined.extend(piece[..len as usize].iter().map(|&c| c as u8));
            if len > 0 {
                let mut short = [0 as c_char; 0];
                assert_eq!(
                    llama_token_to_piece(vocab, t, short.as_mut_ptr(), 0, 0, false),
                    -len
                );
            }
        }
        assert_eq!(String::from_utf8(joined).unwrap().trim_start(), text);
        // Invalid token ids.
        let mut piece = [0 as c_char; 8];
        assert_eq!(
            llama_token_to_piece(vocab, -5, piece.as_mut_ptr(), 8, 0, false),
            0
        );
        assert_eq!(
            llama_token_to_piece(vocab, 1 << 30, piece.as_mut_ptr(), 8, 0, false),
            0
        );
        assert!(llama_vocab_get_text(vocab, -1).is_null());
        let bad = [1 << 30];
        assert_eq!(
            llama_detokenize(vocab, bad.as_ptr(), 1, buf.as_mut_ptr(), 256, false, false),
            0
        );
        let bos = llama_vocab_bos(vocab);
        assert!(!llama_vocab_get_text(vocab, bos).is_null());
        assert!(llama_vocab_is_control(vocab, bos));
        assert!(llama_vocab_is_eog(vocab, llama_vocab_eos(vocab)));
        assert!(!llama_vocab_is_eog(vocab, -1));
        assert_eq!(
            llama_vocab_type(vocab),
            llama_vocab_type::LLAMA_VOCAB_TYPE_SPM as i32
        );
        assert_eq!(llama_vocab_bos(null()), -1);
        llama_model_free(m);
    }
}

// ---- Decoding and logits.

/// Logits from the Rust API for `tokens` decoded at once, every position.
fn rust_logits(tokens: &[i32]) -> Vec<Vec<f32>> {
    let m = Arc::new(Model::load(model(F32_MODEL)).unwrap());
    let mut c = Context::new(m, ContextParams::new(256, 64)).unwrap();
    let toks: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
    bitnet::fixture::decode_rows(&mut c, &toks, 0, 0).unwrap()
}

#[test]
fn decode_logits_equal_the_rust_api() {
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let vocab = llama_model_get_vocab(m);
        let n_vocab = llama_vocab_n_tokens(vocab) as usize;
        let toks = tokenize(vocab, "The quick brown fox", true);
        let want = rust_logits(&toks);
        let c = new_ctx(m, 256, 64);
        assert_eq!(llama_n_ctx(c), 256);
        assert_eq!(llama_n_batch(c), 64);
        assert_eq!(llama_get_model(c), m.cast_const());

        let n = toks.len() as i32;
        let b = llama_batch_init(n, 0, 1);
        for (i, &tok) in toks.iter().enumerate() {
            *b.token.add(i) = tok;
            *b.pos.add(i) = i as i32;
            *b.n_seq_id.add(i) = 1;
            **b.seq_id.add(i) = 0;
            *b.logits.add(i) = 1;
        }
        let mut b = b;
        b.n_tokens = n;
        assert_eq!(llama_decode(c, b), 0);
        for (i, w) in want.iter().enumerate() {
            let got = std::slice::from_raw_parts(llama_get_logits_ith(c, i as i32), n_vocab);
            assert_eq!(got, &w[..], "row {i}");
        }
        // Negative indices count back from the last output row.
        let last = std::slice::from_raw_parts(llama_get_logits_ith(c, -1), n_vocab);
        assert_eq!(last, &want[want.len() - 1][..]);
        let first = std::slice::from_raw_parts(llama_get_logits_ith(c, -n), n_vocab);
        assert_eq!(first, &want[0][..]);
        assert!(llama_get_logits_ith(c, -n - 1).is_null());
        assert!(llama_get_logits_ith(c, n).is_null());
        let all = std::slice::from_raw_parts(llama_get_logits(c), n_vocab * n as usize);
        assert_eq!(&all[..n_vocab], &want[0][..]);

        // Memory: positions, then removing the tail and decoding it again.
        let mem = llama_get_memory(c);
        assert_eq!(llama_memory_seq_pos_min(mem, 0), 0);
        assert_eq!(llama_memory_seq_pos_max(mem, 0), n - 1);
        assert!(llama_memory_seq_rm(mem, 0, n - 1, -1));
        assert_eq!(llama_memory_seq_pos_max(mem, 0), n - 2);
        let mut last_tok = [toks[n as usize - 1]];
        // llama_batch_get_one: position tracked automatically, only the last token outputs.
        assert_eq!(
            llama_decode(c, llama_batch_get_one(last_tok.as_mut_ptr(), 1)),
            0
        );
        let again = std::slice::from_raw_parts(llama_get_logits_ith(c, 0), n_vocab);
        assert!(cosine(again, &want[want.len() - 1]) > 0.99999);
        llama_memory_clear(mem, true);
        assert_eq!(llama_memory_seq_pos_max(mem, 0), -1);

        llama_batch_free(b);
        llama_free(c);
        llama_model_free(m);
    }
}

#[test]
fn batch_ext_process_equals_decode() {
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let vocab = llama_model_get_vocab(m);
        let n_vocab = llama_vocab_n_tokens(vocab) as usize;
        let toks = tokenize(vocab, "Hello there", true);
        let want = rust_logits(&toks);
        let c = new_ctx(m, 256, 8);
        let b = llama_batch_ext_init(c);
        assert!(!b.is_null());
        for (i, &t) in toks.iter().enumerate() {
            let idx = llama_batch_ext_add_token(b, 0, t);
            assert_eq!(idx, i as i32);
            assert!(llama_batch_ext_set_pos(b, idx, &(i as i32)));
            assert!(llama_batch_ext_set_output_logits(
                b,
                idx,
                i + 1 == toks.len()
            ));
        }
        assert_eq!(
            llama_process(c, llama_process_type::LLAMA_PROCESS_TYPE_DECODE as i32, b),
            0
        );
        let got = std::slice::from_raw_parts(llama_get_logits_ith(c, -1), n_vocab);
        assert_eq!(got, &want[want.len() - 1][..]);
        // Return codes of the builder.
        assert_eq!(
            llama_batch_ext_add_token(b, 1, toks[0]),
            -3,
            "seq 1 >= n_seq_max"
        );
        assert_eq!(llama_batch_ext_add_token(b, -1, toks[0]), -3);
        llama_batch_ext_clear(b);
        for _ in 0..8 {
            assert!(llama_batch_ext_add_token(b, 0, toks[0]) >= 0);
        }
        assert_eq!(
            llama_batch_ext_add_token(b, 0, toks[0]),
            -1,
            "full at n_batch"
        );
        llama_batch_ext_clear(b);
        let idx = llama_batch_ext_add_token(b, 0, n_vocab as i32);
        assert_eq!(idx, -2, "token out of range");
        assert!(!llama_batch_ext_set_pos(b, 5, &0));
        assert!(!llama_batch_ext_add_seq(b, 99, 0));
        assert_eq!(
            llama_process(c, llama_process_type::LLAMA_PROCESS_TYPE_ENCODE as i32, b),
            -1
        );
        assert_eq!(llama_process(c, 7, b), -1);
        assert_eq!(llama_process(c, 1, null_mut()), -1);
        llama_batch_ext_free(b);
        llama_batch_ext_free(null_mut());
        llama_free(c);
        llama_model_free(m);
    }
}

#[test]
fn sampled_logits_without_backend_sampling_are_the_whole_vocabulary() {
    // llama-server's n_probs (get_token_probabilities) reads llama_get_logits_ith through these
    // two: a count of 0 gave every request empty top_logprobs.
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
        let c = new_ctx(m, 256, 4);
        assert_eq!(llama_get_sampled_logits_count_ith(c, 0), n_vocab as u32);
        assert_eq!(llama_get_sampled_logits_count_ith(c, -1), n_vocab as u32);
        let ids = llama_get_sampled_candidates_ith(c, 0);
        assert!(!ids.is_null());
        let ids = std::slice::from_raw_parts(ids, n_vocab as usize);
        assert!(ids.iter().enumerate().all(|(i, &t)| t == i as llama_token));
        assert_eq!(llama_get_sampled_candidates_count_ith(c, 0), 0);
        assert!(llama_get_sampled_logits_ith(c, 0).is_null());
        assert_eq!(llama_get_sampled_logits_count_ith(null_mut(), 0), 0);
        assert!(llama_get_sampled_candidates_ith(null_mut(), 0).is_null());
        llama_free(c);
        llama_model_free(m);
    }
}

#[test]
fn misuse_returns_the_documented_values() {
    capture_logs();
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let vocab = llama_model_get_vocab(m);
        let n_vocab = llama_vocab_n_tokens(vocab);
        let c = new_ctx(m, 256, 4);
        // NULL handles.
        let mut t = [1, 2];
        assert_eq!(
            llama_decode(null_mut(), llama_batch_get_one(t.as_mut_ptr(), 2)),
            -1
        );
        assert!(llama_get_logits_ith(null_mut(), 0).is_null());
        assert!(llama_get_logits(null_mut()).is_null());
        assert!(llama_get_memory(null()).is_null());
        assert_eq!(llama_n_ctx(null()), 0);
        assert_eq!(llama_model_n_embd(null()), 0);
        assert_eq!(llama_vocab_n_tokens(null()), 0);
        assert!(llama_model_get_vocab(null()).is_null());
        assert!(llama_init_from_model(null_mut(), llama_context_default_params()).is_null());
        assert!(!llama_memory_seq_rm(null_mut(), 0, 0, -1));
        assert_eq!(llama_memory_seq_pos_max(null_mut(), 0), -1);
        llama_memory_clear(null_mut(), true);
        llama_free(null_mut());
        assert_eq!(llama_sampler_sample(null_mut(), c, 0), -1);
        assert!(logged("is NULL"));
        // Nothing decoded yet: no logits.
        assert!(llama_get_logits_ith(c, 0).is_null());
        assert!(llama_get_logits_ith(c, -1).is_null());
        // Batches: empty, too large, bad token, bad sequence, bad positions.
        assert_eq!(llama_decode(c, llama_batch_get_one(t.as_mut_ptr(), 0)), -1);
        assert_eq!(llama_decode(c, llama_batch_get_one(null_mut(), 2)), -1);
        let mut five = [1; 5];
        assert_eq!(
            llama_decode(c, llama_batch_get_one(five.as_mut_ptr(), 5)),
            -1,
            "n_tokens > n_batch"
        );
        let mut bad = [1, n_vocab];
        assert_eq!(
            llama_decode(c, llama_batch_get_one(bad.as_mut_ptr(), 2)),
            -1
        );
        let mut neg = [-3];
        assert_eq!(
            llama_decode(c, llama_batch_get_one(neg.as_mut_ptr(), 1)),
            -1
        );
        let b = llama_batch_init(2, 0, 1);
        let mut b2 = b;
        b2.n_tokens = 2;
        for i in 0..2 {
            *b.token.add(i) = 1;
            *b.pos.add(i) = i as i32;
            *b.n_seq_id.add(i) = 1;
            **b.seq_id.add(i) = 0;
            *b.logits.add(i) = 1;
        }
        **b.seq_id.add(1) = 1;
        assert_eq!(llama_decode(c, b2), -1, "seq id 1 >= n_seq_max 1");
        **b.seq_id.add(1) = 0;
        *b.n_seq_id.add(1) = 0;
        assert_eq!(llama_decode(c, b2), -1, "n_seq_id 0");
        *b.n_seq_id.add(1) = 1;
        *b.pos.add(1) = 5;
        assert_eq!(llama_decode(c, b2), -1, "positions with a gap");
        *b.pos.add(1) = 1;
        assert_eq!(llama_decode(c, b2), 0, "the context is still usable");
        *b.pos.add(0) = 7;
        *b.pos.add(1) = 8;
        assert_eq!(
            llama_decode(c, b2),
            -1,
            "does not continue the sequence (Y = X + 1)"
        );
        // Outputs of the last good decode are intact; a batch entry without logits gives NULL.
        assert!(!llama_get_logits_ith(c, 1).is_null());
        // Batch allocation misuse.
        let e = llama_batch_init(-1, 0, 1);
        assert!(e.token.is_null() && e.pos.is_null());
        llama_batch_free(e);
        llama_batch_free(b);
        llama_batch_free(b); // double free: logged, not done
        llama_batch_free(llama_batch_get_one(t.as_mut_ptr(), 2)); // not ours: logged, not done
        assert!(logged("not made by llama_batch_init"));
        // Context creation misuse.
        let mut p = llama_context_default_params();
        p.n_seq_max = 1000;
        assert!(llama_init_from_model(m, p).is_null());
        p.n_seq_max = 1;
        p.n_batch = 0;
        p.n_ubatch = 0;
        assert!(llama_init_from_model(m, p).is_null());
        // Encoder: this model has none.
        assert_eq!(llama_encode(c, llama_batch_get_one(t.as_mut_ptr(), 1)), -1);
        // Unsupported features refuse.
        assert!(llama_adapter_lora_init(m, c"x".as_ptr()).is_null());
        assert!(llama_get_embeddings(c).is_null());
        let g = llama_sampler_init_grammar(vocab, c"root ::= \"a\"".as_ptr(), c"root".as_ptr());
        assert!(!g.is_null());
        llama_sampler_free(g);
        for bad in [c"root ::= (\"a\"", c"root ::= b", c"x ::= \"a\""] {
            assert!(llama_sampler_init_grammar(vocab, bad.as_ptr(), c"root".as_ptr()).is_null());
        }
        assert!(logged("failed to parse grammar"));
        assert!(
            llama_sampler_init_grammar(null(), c"root ::= \"a\"".as_ptr(), c"root".as_ptr())
                .is_null()
        );
        assert!(llama_sampler_init_grammar(vocab, c"root ::= \"a\"".as_ptr(), null()).is_null());
        assert_ne!(
            llama_model_quantize(c"a".as_ptr(), c"b".as_ptr(), null()),
            0
        );
        llama_free(c);
        llama_model_free(m);
    }
}

#[test]
fn n_ctx_zero_takes_the_training_context_and_batch_is_capped() {
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let mut p = llama_context_default_params();
        p.n_ctx = 0;
        p.n_batch = 100_000;
        let c = llama_init_from_model(m, p);
        assert!(!c.is_null());
        let train = llama_model_n_ctx_train(m) as u32;
        assert_eq!(llama_n_ctx(c), train.div_ceil(256) * 256);
        assert_eq!(llama_n_batch(c), train.min(100_000));
        assert_eq!(llama_n_ubatch(c), 512.min(train));
        llama_set_n_threads(c, 2, 3);
        assert_eq!((llama_n_threads(c), llama_n_threads_batch(c)), (2, 3));
        llama_free(c);
        llama_model_free(m);
    }
}

#[test]
fn n_ctx_seq_is_the_whole_context_when_the_kv_cache_is_unified() {
    // llama-server sizes its slots with llama_n_ctx_seq: with --kv-unified each slot may use
    // the whole context (the reference's cparams.n_ctx_seq = n_ctx), otherwise its share,
    // padded to 256 cells, and n_ctx becomes n_seq_max shares.
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once.
    unsafe {
        for (unified, n_ctx, n_seq_max, want_ctx, want_seq) in [
            (true, 256, 4, 256, 256),
            (true, 300, 3, 512, 512),
            (false, 256, 4, 1024, 256),
            (false, 1024, 4, 1024, 256),
            (false, 512, 1, 512, 512),
        ] {
            let mut p = llama_context_default_params();
            p.n_ctx = n_ctx;
            p.n_seq_max = n_seq_max;
            p.kv_unified = unified;
            let c = llama_init_from_model(m, p);
            assert!(!c.is_null());
            assert_eq!(
                (llama_n_ctx(c), llama_n_ctx_seq(c)),
                (want_ctx, want_seq),
                "kv_unified {unified}, n_ctx {n_ctx}, n_seq_max {n_seq_max}"
            );
            llama_free(c);
        }
        llama_model_free(m);
    }
}

// ---- Samplers.

/// A foreign sampler that sets only `apply`: picks the candidate with the lowest logit.
unsafe extern "C" fn pick_lowest(_s: *mut llama_sampler, cur: *mut llama_token_data_array) {
    // SAFETY: llama_sampler_apply passes a valid array whose data holds size entries.
    let cur = unsafe { &mut *cur };
    // SAFETY: as above.
    let data = unsafe { std::slice::from_raw_parts(cur.data, cur.size) };
    let mut best = 0;
    for (i, d) in data.iter().enumerate() {
        if d.logit < data[best].logit {
            best = i;
        }
    }
    cur.selected = best as i64;
}

static APPLY_ONLY: llama_sampler_i = llama_sampler_i {
    name: None,
    accept: None,
    apply: Some(pick_lowest),
    reset: None,
    clone: None,
    free: None,
    backend_init: None,
    backend_accept: None,
    backend_apply: None,
    backend_set_input: None,
    backend_reset: None,
    copy_state: None,
};

/// A context of `m` that decoded "Once upon a time" with llama_batch_get_one; with n_vocab
/// and the prompt's length in tokens.
///
/// # Safety
/// `m` is a live model.
unsafe fn once_upon_a_time(m: *mut llama_model) -> (*mut llama_context, usize, usize) {
    // SAFETY: m is live (contract); the token buffer outlives the decode.
    unsafe {
        let vocab = llama_model_get_vocab(m);
        let c = new_ctx(m, 256, 32);
        let mut toks = tokenize(vocab, "Once upon a time", true);
        assert_eq!(
            llama_decode(c, llama_batch_get_one(toks.as_mut_ptr(), toks.len() as i32)),
            0
        );
        (c, llama_vocab_n_tokens(vocab) as usize, toks.len())
    }
}

/// The logits live once, in the engine: what C writes through one getter's pointer is what
/// the other getter, the sampler and the state see (llama.h lets C write into them).
#[test]
fn logits_written_by_c_are_the_ones_sampled_and_saved() {
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let (c, n_vocab, n_prompt) = once_upon_a_time(m);
        let row = std::slice::from_raw_parts_mut(llama_get_logits_ith(c, -1), n_vocab);
        let top = argmax(row);
        let pick = (top + 1) % n_vocab;
        row[pick] = row[top] + 100.0;
        assert_eq!(
            llama_get_logits(c),
            row.as_mut_ptr(),
            "one output row, one buffer"
        );
        let last = n_prompt as i32 - 1; // llama_batch_get_one: only the last entry outputs
        assert_eq!(llama_get_logits_ith(c, last), row.as_mut_ptr());
        assert!(llama_get_logits_ith(c, 0).is_null());

        let greedy = llama_sampler_init_greedy();
        assert_eq!(llama_sampler_sample(greedy, c, -1), pick as i32);
        llama_sampler_free(greedy);

        // The whole state carries the written logits; restoring it into a fresh context
        // lends them back.
        let size = llama_state_get_size(c);
        let mut buf = vec![0u8; size];
        assert_eq!(llama_state_get_data(c, buf.as_mut_ptr(), size), size);
        let g = new_ctx(m, 256, 32);
        assert_eq!(llama_state_set_data(g, buf.as_ptr(), size), size);
        let restored = std::slice::from_raw_parts(llama_get_logits_ith(g, -1), n_vocab);
        assert_eq!(argmax(restored), pick);

        // The _ext state forms log under their own names.
        capture_logs();
        assert_eq!(llama_state_seq_get_size_ext(c, 99, 0), 0);
        assert!(logged("llama_state_seq_get_size_ext: seq_id 99"));

        llama_free(g);
        llama_free(c);
        llama_model_free(m);
    }
}

#[test]
fn samplers_chain_and_foreign_sampler() {
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let (c, n_vocab, _) = once_upon_a_time(m);
        let logits = std::slice::from_raw_parts(llama_get_logits_ith(c, -1), n_vocab).to_vec();

        let chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
        llama_sampler_chain_add(chain, llama_sampler_init_top_k(40));
        llama_sampler_chain_add(chain, llama_sampler_init_greedy());
        assert_eq!(llama_sampler_chain_n(chain), 2);
        assert_eq!(llama_sampler_chain_get(chain, -1), chain);
        assert!(llama_sampler_chain_get(chain, 2).is_null());
        assert_eq!(sampler_name(llama_sampler_chain_get(chain, 1)), "greedy");
        assert_eq!(llama_sampler_sample(chain, c, -1), argmax(&logits) as i32);

        // The foreign sampler, alone and in a chain (replacing greedy).
        let foreign = llama_sampler_init(
            (&APPLY_ONLY as *const llama_sampler_i).cast_mut(),
            null_mut(),
        );
        let lowest = (0..n_vocab).fold(0, |b, i| if logits[i] < logits[b] { i } else { b });
        assert_eq!(llama_sampler_sample(foreign, c, -1), lowest as i32);
        assert_eq!(sampler_name(foreign), "(null)");
        let greedy = llama_sampler_chain_remove(chain, 1);
        assert_eq!(sampler_name(greedy), "greedy");
        llama_sampler_free(greedy);
        llama_sampler_chain_add(chain, foreign);
        let sampled = llama_sampler_sample(chain, c, -1);
        // top-k 40 keeps the 40 best; the foreign sampler picks the worst of those.
        let mut sorted: Vec<usize> = (0..n_vocab).collect();
        sorted.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        assert_eq!(sampled, sorted[39] as i32);
        // Clone of a sampler with no clone function and a NULL ctx works.
        let copy = llama_sampler_clone(chain);
        assert_eq!(llama_sampler_chain_n(copy), 2);
        assert_eq!(llama_sampler_sample(copy, c, -1), sampled);
        llama_sampler_free(copy);

        // Seeds and seeded sampling: the same seed gives the same token.
        let d1 = llama_sampler_init_dist(1234);
        let d2 = llama_sampler_init_dist(1234);
        assert_eq!(llama_sampler_get_seed(d1), 1234);
        assert_eq!(
            llama_sampler_sample(d1, c, -1),
            llama_sampler_sample(d2, c, -1)
        );
        let seeded = llama_sampler_chain_init(llama_sampler_chain_default_params());
        llama_sampler_chain_add(seeded, llama_sampler_init_temp(0.8));
        llama_sampler_chain_add(seeded, d1);
        assert_eq!(llama_sampler_get_seed(seeded), 1234);
        assert_eq!(
            llama_sampler_get_seed(llama_sampler_init_greedy()),
            LLAMA_DEFAULT_SEED
        ); // leaks one small sampler
        llama_sampler_free(seeded);
        llama_sampler_free(d2);

        // Misuse: bad index, non-chain, NULL.
        assert_eq!(llama_sampler_sample(chain, c, 5), -1);
        assert!(llama_sampler_chain_remove(chain, 9).is_null());
        assert_eq!(llama_sampler_chain_n(foreign), 0);
        assert!(llama_sampler_chain_get(foreign, 0).is_null());
        llama_sampler_apply(null_mut(), null_mut());
        llama_sampler_free(null_mut());

        let perf = llama_perf_sampler(chain);
        assert!(perf.n_sample >= 2);
        llama_sampler_free(chain);
        llama_free(c);
        llama_model_free(m);
    }
}

// ---- Chat templates and process-wide functions.

#[test]
fn chat_template_apply_and_builtins() {
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let msgs = [
            llama_chat_message {
                role: c"system".as_ptr(),
                content: c"Be brief.".as_ptr(),
            },
            llama_chat_message {
                role: c"user".as_ptr(),
                content: c"Hi".as_ptr(),
            },
        ];
        let mut buf = vec![0 as c_char; 256];
        let n = llama_chat_apply_template(
            c"chatml".as_ptr(),
            msgs.as_ptr(),
            2,
            true,
            buf.as_mut_ptr(),
            256,
        );
        let text = CStr::from_ptr(buf.as_ptr()).to_str().unwrap();
        assert_eq!(n as usize, text.len());
        assert!(
            text.contains("<|im_start|>user\nHi<|im_end|>")
                && text.ends_with("<|im_start|>assistant\n")
        );
        // NULL template means chatml; a short buffer still gets the full length back.
        let mut small = [0 as c_char; 4];
        assert_eq!(
            llama_chat_apply_template(null(), msgs.as_ptr(), 2, true, small.as_mut_ptr(), 4),
            n
        );
        assert_eq!(
            llama_chat_apply_template(
                c"no-such-template".as_ptr(),
                msgs.as_ptr(),
                2,
                true,
                buf.as_mut_ptr(),
                256
            ),
            -1
        );
        let total = llama_chat_builtin_templates(null_mut(), 0);
        assert!(total > 10);
        let mut names = vec![null(); total as usize];
        assert_eq!(
            llama_chat_builtin_templates(names.as_mut_ptr(), names.len()),
            total
        );
        assert!(names.iter().any(|&p| CStr::from_ptr(p) == c"chatml"));
    }
}

#[test]
fn system_functions() {
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        llama_backend_init();
        llama_numa_init(0);
        let info = CStr::from_ptr(llama_print_system_info()).to_str().unwrap();
        assert!(info.starts_with("CPU : "), "{info}");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            info.contains("AVX2 = 1"),
            std::is_x86_feature_detected!("avx2")
        );
        let t0 = llama_time_us();
        let t1 = ggml_time_us();
        assert!(t1 >= t0 && t0 > 0);
        assert!(llama_supports_mmap() && !llama_supports_gpu_offload() && !llama_supports_rpc());
        assert_eq!(llama_max_devices(), 1);
        let mut buf = [0 as c_char; 64];
        let n = llama_split_path(buf.as_mut_ptr(), 64, c"/m/x".as_ptr(), 1, 4);
        assert_eq!(CStr::from_ptr(buf.as_ptr()), c"/m/x-00002-of-00004.gguf");
        assert_eq!(n, 24);
        let n = llama_split_prefix(
            buf.as_mut_ptr(),
            64,
            c"/m/x-00002-of-00004.gguf".as_ptr(),
            1,
            4,
        );
        assert_eq!((n, CStr::from_ptr(buf.as_ptr())), (4, c"/m/x"));
        assert_eq!(
            CStr::from_ptr(llama_ftype_name(37)),
            c"TQ2_0 - 2.06 bpw ternary"
        );
        assert_eq!(CStr::from_ptr(llama_ftype_name(1024 | 1)), c"(guessed) F16");
        assert_eq!(
            CStr::from_ptr(llama_ftype_name(999)),
            c"unknown, may not work"
        );
        assert_eq!(llama_load_mode_from_str(c"mmap".as_ptr()), 1);
        assert_eq!(CStr::from_ptr(llama_load_mode_name(4)), c"dio");
        llama_backend_free();
    }
}

// ---- Every function of the pinned llama.h is declared in ours and exported.

/// Function names declared in a llama.h (`name(` after a return type, outside comments).
fn declared_functions(header: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut text = String::new();
    for line in header.lines() {
        let code = line.split("//").next().unwrap();
        text += code;
        text.push('\n');
    }
    // Drop /* ... */ comments.
    while let Some(a) = text.find("/*") {
        let b = text[a..].find("*/").map_or(text.len(), |b| a + b + 2);
        text.replace_range(a..b, " ");
    }
    for (i, _) in text.match_indices("llama_") {
        let rest = &text[i..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = rest[name.len()..].trim_start();
        let before = text[..i].trim_end();
        // A declaration: `<type> name(` where the type ends the previous token (not a call).
        let is_decl = after.starts_with('(')
            && (before.ends_with('*')
                || before.ends_with("LLAMA_API")
                || before
                    .rsplit(|c: char| c.is_whitespace() || c == '(' || c == ',')
                    .next()
                    .is_some_and(|w| {
                        matches!(
                            w,
                            "void"
                                | "bool"
                                | "float"
                                | "int32_t"
                                | "uint32_t"
                                | "int64_t"
                                | "uint64_t"
                                | "size_t"
                                | "llama_token"
                                | "llama_pos"
                                | "llama_memory_t"
                                | "llama_batch"
                                | "llama_sampler_chain_params"
                                | "llama_model_params"
                                | "llama_context_params"
                                | "llama_model_quantize_params"
                                | "llama_perf_context_data"
                                | "llama_perf_sampler_data"
                        ) || w.starts_with("llama_") && !before.ends_with(',')
                    }));
        if is_decl && !before.ends_with("(*") && !before.ends_with('(') {
            names.insert(name);
        }
    }
    names
}

/// The crate's cdylib (target/<profile>/libbitnet.so). `cargo test` builds only the rlib, so
/// when the cdylib is missing or older than this test binary it is built here, with the same
/// profile and target directory.
fn cdylib() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let lib = profile_dir.join("libbitnet.so");
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&lib) < modified(&exe) {
        let target_dir = profile_dir.parent().unwrap();
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--lib", "-p", "bitnet-rs"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(repo());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        assert_ok(
            "cargo build --lib",
            &cargo.output().expect("cannot run cargo"),
        );
    }
    lib
}

#[test]
fn every_pinned_function_is_declared_and_exported() {
    let reference =
        std::fs::read_to_string(fixtures().sdist.join("vendor/llama.cpp/include/llama.h")).unwrap();
    let ours = std::fs::read_to_string(repo().join("include/llama.h")).unwrap();
    let want = declared_functions(&reference);
    let have = declared_functions(&ours);
    eprintln!(
        "reference declares {} functions, ours {}",
        want.len(),
        have.len()
    );
    assert!(
        want.len() >= 250,
        "parsed only {} functions from the reference",
        want.len()
    );
    let missing: Vec<_> = want.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "not declared in include/llama.h: {missing:?}"
    );

    // llama-cpp-python binds these at import.
    let py = std::fs::read_to_string(fixtures().sdist.join("llama_cpp/llama_cpp.py")).unwrap();
    let bound: Vec<&str> = py
        .split("@ctypes_function(")
        .skip(1)
        .filter_map(|s| s.trim_start().strip_prefix('"')?.split('"').next())
        .collect();
    assert!(bound.len() >= 253, "found {} bindings", bound.len());

    let lib = cdylib();
    let out = Command::new("nm")
        .arg("-D")
        .arg("--defined-only")
        .arg(&lib)
        .output()
        .expect("nm");
    let exported: std::collections::BTreeSet<String> = assert_ok("nm -D", &out)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    let unexported: Vec<_> = want
        .iter()
        .map(String::as_str)
        .chain(bound.iter().copied())
        .chain(["ggml_time_us", "ggml_abort"])
        .filter(|f| !exported.contains(*f))
        .collect();
    assert!(
        unexported.is_empty(),
        "not exported by {}: {unexported:?}",
        lib.display()
    );
}

/// The reference's function declarations (`LLAMA_API ...;`, deprecated ones included), as text.
fn reference_prototypes(header: &str) -> Vec<String> {
    let mut text = String::new();
    for line in header.lines() {
        let code = line.split("//").next().unwrap();
        if !code.trim_start().starts_with('#') {
            text += code;
            text.push('\n');
        }
    }
    text.split([';', '{', '}'])
        .map(str::trim)
        .filter(|s| s.starts_with("LLAMA_API") || s.starts_with("DEPRECATED(LLAMA_API"))
        .map(|s| format!("{s};"))
        .collect()
}

/// Every reference prototype, redeclared after including our header, compiles as C++: an
/// extern "C" function redeclared with other parameter or return types is an error there.
#[test]
fn every_prototype_matches_the_reference_signature() {
    let reference =
        std::fs::read_to_string(fixtures().sdist.join("vendor/llama.cpp/include/llama.h")).unwrap();
    let protos = reference_prototypes(&reference);
    assert!(protos.len() >= 250, "{} prototypes", protos.len());
    let dir = scratch("capi_prototypes");
    let src = format!(
        "#include \"llama.h\"\nextern \"C\" {{\n{}\n}}\nint main() {{ return 0; }}\n",
        protos.join("\n")
    );
    std::fs::write(dir.join("protos.cpp"), src).unwrap();
    let out = Command::new("c++")
        .args([
            "-std=c++17",
            "-fsyntax-only",
            "-Wno-deprecated-declarations",
            "-I",
        ])
        .arg(repo().join("include"))
        .arg(dir.join("protos.cpp"))
        .output()
        .expect("no C++ compiler (c++)");
    assert_ok("c++ -fsyntax-only protos.cpp", &out);
}

/// Fills a llama_batch (from llama_batch_init) with one sequence id per token.
unsafe fn fill(b: &mut llama_batch, tokens: &[i32], pos: &[i32], seqs: &[i32], logits: &[bool]) {
    for i in 0..tokens.len() {
        // SAFETY: handles come from this test's own llama_* calls and are freed once;
        // every buffer passed is as long as the size given with it.
        unsafe {
            *b.token.add(i) = tokens[i];
            *b.pos.add(i) = pos[i];
            *b.n_seq_id.add(i) = 1;
            **b.seq_id.add(i) = seqs[i];
            *b.logits.add(i) = logits[i] as i8;
        }
    }
    b.n_tokens = tokens.len() as i32;
}

#[test]
fn two_sequences_in_one_context_match_separate_contexts() {
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let vocab = llama_model_get_vocab(m);
        let n_vocab = llama_vocab_n_tokens(vocab) as usize;
        let a = tokenize(vocab, "Alpha beta", true);
        let b = tokenize(vocab, "Gamma delta epsilon", true);
        let alone_a = rust_logits(&a);
        let alone_b = rust_logits(&b);

        let mut p = llama_context_default_params();
        (
            p.n_ctx,
            p.n_batch,
            p.n_seq_max,
            p.n_threads,
            p.n_threads_batch,
        ) = (512, 64, 2, 1, 1);
        let c = llama_init_from_model(m, p);
        assert!(!c.is_null());
        assert_eq!(llama_n_seq_max(c), 2);
        // Both prompts in one batch, sequence 0 and 1, every position outputs.
        let tokens: Vec<i32> = a.iter().chain(&b).copied().collect();
        let pos: Vec<i32> = (0..a.len() as i32).chain(0..b.len() as i32).collect();
        let seqs: Vec<i32> = a.iter().map(|_| 0).chain(b.iter().map(|_| 1)).collect();
        let mut batch = llama_batch_init(tokens.len() as i32, 0, 1);
        fill(&mut batch, &tokens, &pos, &seqs, &vec![true; tokens.len()]);
        assert_eq!(llama_decode(c, batch), 0);
        for (i, want) in alone_a.iter().chain(&alone_b).enumerate() {
            let got = std::slice::from_raw_parts(llama_get_logits_ith(c, i as i32), n_vocab);
            assert!(cosine(got, want) > 0.99999, "entry {i}");
        }
        let mem = llama_get_memory(c);
        assert_eq!(llama_memory_seq_pos_max(mem, 0), a.len() as i32 - 1);
        assert_eq!(llama_memory_seq_pos_max(mem, 1), b.len() as i32 - 1);
        // Copy sequence 0 into 1 after dropping 1: both continue the same way.
        assert!(llama_memory_seq_rm(mem, 1, -1, -1));
        assert_eq!(llama_memory_seq_pos_max(mem, 1), -1);
        llama_memory_seq_cp(mem, 0, 1, -1, -1);
        assert_eq!(llama_memory_seq_pos_max(mem, 1), a.len() as i32 - 1);
        let next = a.len() as i32;
        fill(
            &mut batch,
            &[b[1], b[1]],
            &[next, next],
            &[0, 1],
            &[true, true],
        );
        assert_eq!(llama_decode(c, batch), 0);
        let l0 = std::slice::from_raw_parts(llama_get_logits_ith(c, 0), n_vocab).to_vec();
        let l1 = std::slice::from_raw_parts(llama_get_logits_ith(c, 1), n_vocab);
        assert!(cosine(&l0, l1) > 0.99999);
        // Keep only sequence 1; sequence 0 is then empty.
        llama_memory_seq_keep(mem, 1);
        assert_eq!(llama_memory_seq_pos_max(mem, 0), -1);
        assert_eq!(llama_memory_seq_pos_min(mem, 1), 0);
        // Shift sequence 1 by +3, then halve its positions.
        llama_memory_seq_add(mem, 1, -1, -1, 3);
        assert_eq!(llama_memory_seq_pos_min(mem, 1), 3);
        llama_memory_seq_div(mem, 1, -1, -1, 2);
        assert_eq!(llama_memory_seq_pos_min(mem, 1), 1);
        assert!(llama_memory_can_shift(mem));
        llama_batch_free(batch);
        llama_free(c);
        llama_model_free(m);
    }
}

#[test]
fn garbage_enum_values_from_c_are_harmless() {
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let mut p = llama_context_default_params();
        (p.pooling_type, p.flash_attn_type, p.rope_scaling_type) = (12345, -77, i32::MIN);
        (p.attention_type, p.ctx_type, p.type_k, p.type_v) = (9, 4, 999, -1);
        p.n_ctx = 64;
        let c = llama_init_from_model(m, p);
        assert!(!c.is_null());
        assert_eq!(
            llama_pooling_type(c),
            llama_pooling_type::LLAMA_POOLING_TYPE_NONE as i32
        );
        llama_free(c);
        assert!(CStr::from_ptr(llama_flash_attn_type_name(42)).to_bytes() == b"unknown");
        assert!(llama_model_meta_key_str(-3).is_null());
        llama_numa_init(-9);
        let mut mp = llama_model_default_params();
        (mp.split_mode, mp.load_mode, mp.lazy_mode) = (77, 88, 99);
        let path = cpath(&model(F32_MODEL));
        let m2 = llama_model_load_from_file(path.as_ptr(), mp);
        assert!(!m2.is_null());
        llama_model_free(m2);
        llama_model_free(m);
    }
}

#[test]
fn log_callback_get_and_reset() {
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        capture_logs();
        let (mut cb, mut ud): (ggml_log_callback, *mut c_void) = (None, null_mut());
        llama_log_get(&mut cb, &mut ud);
        assert!(cb.is_some());
        llama_log_get(null_mut(), null_mut());
        // An error goes through the callback with the function's name.
        assert!(llama_vocab_get_text(null(), 0).is_null());
        assert!(logged("llama_vocab_get_text: vocab is NULL"));
    }
}

#[test]
fn embeddings_per_token_and_pooled() {
    let m = load(F32_MODEL);
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let vocab = llama_model_get_vocab(m);
        let n_embd = llama_model_n_embd(m) as usize;
        let toks = tokenize(vocab, "Hello there world", true);
        let n = toks.len();
        // The Rust API's hidden states for the same tokens.
        let engine = Arc::new(Model::load(model(F32_MODEL)).unwrap());
        let mut rc = Context::new(
            engine,
            ContextParams {
                embeddings: true,
                ..ContextParams::new(256, 64)
            },
        )
        .unwrap();
        let utoks: Vec<u32> = toks.iter().map(|&t| t as u32).collect();
        let pos: Vec<i32> = (0..n as i32).collect();
        rc.decode(&Batch {
            tokens: &utoks,
            positions: &pos,
            seqs: &vec![SeqSet::one(0); n],
            want_logits: &vec![true; n],
        })
        .unwrap();

        let mut p = llama_context_default_params();
        (p.n_ctx, p.n_batch, p.n_threads, p.n_threads_batch) = (256, 64, 1, 1);
        p.embeddings = true;
        let c = llama_init_from_model(m, p);
        assert_eq!(
            llama_pooling_type(c),
            llama_pooling_type::LLAMA_POOLING_TYPE_NONE as i32
        );
        let mut t = toks.clone();
        // llama_batch_get_one marks only the last token; embeddings make every token output.
        assert_eq!(
            llama_decode(c, llama_batch_get_one(t.as_mut_ptr(), n as i32)),
            0
        );
        for i in 0..n {
            let got = std::slice::from_raw_parts(llama_get_embeddings_ith(c, i as i32), n_embd);
            assert_eq!(got, rc.embeddings(i).unwrap(), "row {i}");
            assert!(!llama_get_logits_ith(c, i as i32).is_null());
        }
        let all = std::slice::from_raw_parts(llama_get_embeddings(c), n * n_embd);
        assert_eq!(&all[..n_embd], rc.embeddings(0).unwrap());
        assert!(llama_get_embeddings_seq(c, 0).is_null(), "no pooling");
        assert!(llama_get_embeddings_ith(c, n as i32).is_null());
        llama_free(c);

        // Mean pooling: one vector per sequence, the mean of the rows above.
        p.pooling_type = llama_pooling_type::LLAMA_POOLING_TYPE_MEAN as i32;
        let c = llama_init_from_model(m, p);
        assert_eq!(
            llama_pooling_type(c),
            llama_pooling_type::LLAMA_POOLING_TYPE_MEAN as i32
        );
        assert_eq!(
            llama_decode(c, llama_batch_get_one(t.as_mut_ptr(), n as i32)),
            0
        );
        let pooled = std::slice::from_raw_parts(llama_get_embeddings_seq(c, 0), n_embd);
        let mean: Vec<f32> = (0..n_embd)
            .map(|j| (0..n).map(|i| rc.embeddings(i).unwrap()[j]).sum::<f32>() / n as f32)
            .collect();
        assert!(cosine(pooled, &mean) > 0.99999);
        assert!(
            llama_get_embeddings(c).is_null(),
            "pooled: per-token embeddings are NULL"
        );
        assert!(llama_get_embeddings_seq(c, 1).is_null());
        llama_free(c);

        // RANK needs a classifier head.
        p.pooling_type = llama_pooling_type::LLAMA_POOLING_TYPE_RANK as i32;
        assert!(llama_init_from_model(m, p).is_null());
        llama_model_free(m);
    }
}

#[test]
fn state_save_and_load_in_memory_and_files() {
    let m = load(F32_MODEL);
    let dir = scratch("capi-state");
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let vocab = llama_model_get_vocab(m);
        let n_vocab = llama_vocab_n_tokens(vocab) as usize;
        let prompt = tokenize(vocab, "Alpha beta gamma", true);
        let more = tokenize(vocab, " delta epsilon", false);
        let mut p = llama_context_default_params();
        (p.n_ctx, p.n_batch, p.n_seq_max, p.n_threads) = (256, 32, 2, 1);
        let c = llama_init_from_model(m, p);
        let mut batch = llama_batch_init(32, 0, 1);
        let run =
            |c: *mut llama_context, batch: &mut llama_batch, toks: &[i32], pos0: i32, seq: i32| {
                let pos: Vec<i32> = (0..toks.len() as i32).map(|i| pos0 + i).collect();
                let outs: Vec<bool> = (0..toks.len()).map(|i| i + 1 == toks.len()).collect();
                fill(batch, toks, &pos, &vec![seq; toks.len()], &outs);
                assert_eq!(llama_decode(c, *batch), 0);
                std::slice::from_raw_parts(llama_get_logits_ith(c, -1), n_vocab).to_vec()
            };
        let last = run(c, &mut batch, &prompt, 0, 0);

        // In memory: get_size == get_data's count; a too-small buffer gives 0.
        let size = llama_state_get_size(c);
        assert!(size > 0);
        let mut buf = vec![0u8; size];
        assert_eq!(llama_state_get_data(c, buf.as_mut_ptr(), size - 1), 0);
        assert_eq!(llama_state_get_data(c, buf.as_mut_ptr(), size), size);
        let p1 = prompt.len() as i32;
        let cont = run(c, &mut batch, &more, p1, 0);

        // Restore into a fresh context: the restored logits, then the same continuation.
        let d = llama_init_from_model(m, p);
        assert_eq!(llama_state_set_data(d, buf.as_ptr(), size), size);
        let restored = std::slice::from_raw_parts(llama_get_logits_ith(d, -1), n_vocab);
        assert!(restored == &last[..]);
        assert!(run(d, &mut batch, &more, p1, 0) == cont);
        // The deprecated pointer-only form reads the same state.
        let e = llama_init_from_model(m, p);
        assert_eq!(llama_set_state_data(e, buf.as_ptr()), size);
        assert!(run(e, &mut batch, &more, p1, 0) == cont);
        // Damaged states are refused (0) and leave the context as it was.
        assert_eq!(llama_state_set_data(e, buf.as_ptr(), size / 2), 0);
        assert_eq!(llama_state_set_data(e, null(), size), 0);
        assert_eq!(llama_state_get_size(null_mut()), 0);

        // Files, with the prompt tokens.
        let path = cpath(&dir.join("session.bin"));
        llama_memory_clear(llama_get_memory(c), true);
        run(c, &mut batch, &prompt, 0, 0);
        assert!(llama_state_save_file(
            c,
            path.as_ptr(),
            prompt.as_ptr(),
            prompt.len()
        ));
        let f = llama_init_from_model(m, p);
        let mut toks = vec![0i32; 64];
        let mut n = 0usize;
        assert!(!llama_state_load_file(
            f,
            path.as_ptr(),
            toks.as_mut_ptr(),
            1,
            &mut n
        ));
        assert_eq!(
            n,
            prompt.len(),
            "the count is reported even when the tokens do not fit"
        );
        assert!(llama_state_load_file(
            f,
            path.as_ptr(),
            toks.as_mut_ptr(),
            toks.len(),
            &mut n
        ));
        assert_eq!(&toks[..n], &prompt[..]);
        assert!(run(f, &mut batch, &more, p1, 0) == cont);

        // One sequence: saved from seq 0, loaded into seq 1 of a context that holds other cells.
        let seq_size = llama_state_seq_get_size(c, 0);
        let mut sbuf = vec![0u8; seq_size];
        assert_eq!(
            llama_state_seq_get_data(c, sbuf.as_mut_ptr(), seq_size, 0),
            seq_size
        );
        let g = llama_init_from_model(m, p);
        run(g, &mut batch, &more, 0, 0);
        assert_eq!(
            llama_state_seq_set_data(g, sbuf.as_ptr(), seq_size, 1),
            seq_size
        );
        let mem = llama_get_memory(g);
        assert_eq!(llama_memory_seq_pos_max(mem, 1), p1 - 1);
        assert!(run(g, &mut batch, &more, p1, 1) == cont);
        assert_eq!(llama_state_seq_get_size(c, 7), 0, "seq id beyond n_seq_max");
        let spath = cpath(&dir.join("seq.bin"));
        assert!(llama_state_seq_save_file(c, spath.as_ptr(), 0, prompt.as_ptr(), prompt.len()) > 0);
        let h = llama_init_from_model(m, p);
        assert!(llama_state_seq_load_file(h, spath.as_ptr(), 0, null_mut(), 0, &mut n) > 0);
        assert_eq!(n, prompt.len());
        assert_eq!(
            llama_memory_seq_pos_max(llama_get_memory(h), 0),
            -1,
            "count only: no load"
        );
        assert!(llama_state_seq_load_file(h, spath.as_ptr(), 0, toks.as_mut_ptr(), 64, &mut n) > 0);
        assert!(run(h, &mut batch, &more, p1, 0) == cont);
        // A session file is not a sequence file, and garbage is not a state file.
        assert_eq!(
            llama_state_seq_load_file(h, path.as_ptr(), 0, toks.as_mut_ptr(), 64, &mut n),
            0
        );
        std::fs::write(dir.join("junk.bin"), b"junk").unwrap();
        let junk = cpath(&dir.join("junk.bin"));
        assert!(!llama_state_load_file(
            h,
            junk.as_ptr(),
            toks.as_mut_ptr(),
            64,
            &mut n
        ));

        llama_batch_free(batch);
        for ctx in [c, d, e, f, g, h] {
            llama_free(ctx);
        }
        llama_model_free(m);
    }
}

/// A model handle shared by threads: llama.h allows several contexts on one model at once.
#[derive(Clone, Copy)]
struct SharedModel(*mut llama_model);
// SAFETY: the model is read-only after load; contexts made from it are per thread.
unsafe impl Send for SharedModel {}
// SAFETY: as above.
unsafe impl Sync for SharedModel {}

/// Greedy tokens after `prompt`, on a fresh context of `m` (sequence `seq`).
fn greedy_run(m: SharedModel, prompt: &str, seq: i32, steps: usize) -> Vec<i32> {
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    unsafe {
        let vocab = llama_model_get_vocab(m.0);
        let n_vocab = llama_vocab_n_tokens(vocab) as usize;
        let mut p = llama_context_default_params();
        (
            p.n_ctx,
            p.n_batch,
            p.n_seq_max,
            p.n_threads,
            p.n_threads_batch,
        ) = (256, 32, 4, 1, 1);
        let c = llama_init_from_model(m.0, p);
        assert!(!c.is_null());
        let mut batch = llama_batch_init(32, 0, 1);
        let mut toks = tokenize(vocab, prompt, true);
        let mut out = Vec::new();
        let mut pos = 0;
        for _ in 0..steps {
            let positions: Vec<i32> = (pos..pos + toks.len() as i32).collect();
            let outs: Vec<bool> = (0..toks.len()).map(|i| i + 1 == toks.len()).collect();
            fill(&mut batch, &toks, &positions, &vec![seq; toks.len()], &outs);
            assert_eq!(llama_decode(c, batch), 0);
            pos += toks.len() as i32;
            let l = std::slice::from_raw_parts(llama_get_logits_ith(c, -1), n_vocab);
            let next = argmax(l) as i32;
            out.push(next);
            toks = vec![next];
        }
        llama_batch_free(batch);
        llama_free(c);
        out
    }
}

#[test]
fn contexts_on_one_model_run_in_parallel_threads() {
    let m = SharedModel(load("bitnet-spm-tq2_0.gguf"));
    let prompts = [
        "One two three",
        "The sky is",
        "Lorem ipsum dolor",
        "fn main() {",
    ];
    let alone: Vec<Vec<i32>> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| greedy_run(m, p, i as i32, 12))
        .collect();
    // Twice over, all at once: each thread must see exactly its single-threaded result.
    for _ in 0..2 {
        let handles: Vec<_> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let p = p.to_string();
                std::thread::spawn(move || greedy_run(m, &p, i as i32, 12))
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), alone[i], "thread {i}");
        }
    }
    // SAFETY: every context made from the model is freed (threads joined).
    unsafe { llama_model_free(m.0) };
}

#[test]
fn model_desc_names_i2_s_weights() {
    let m = load("bitnet-b1.58-i2_s.gguf");
    let mut buf = [0 as c_char; 128];
    // SAFETY: handles come from this test's own llama_* calls and are freed once;
    // every buffer passed is as long as the size given with it.
    let desc = unsafe {
        assert!(llama_model_desc(m, buf.as_mut_ptr(), buf.len()) > 0);
        let d = CStr::from_ptr(buf.as_ptr()).to_str().unwrap().to_string();
        llama_model_free(m);
        d
    };
    assert!(
        desc.starts_with("bitnet-b1.58 ") && desc.ends_with(" I2_S"),
        "{desc}"
    );
}
