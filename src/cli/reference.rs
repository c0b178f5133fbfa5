//! The C++ reference libllama (cpp_ref/build.sh's build), loaded at run time for `bitnet verify`:
//! opened and checked by `bitnet::cpp_ref` (the symbol trap and its canary), and the few
//! functions the greedy check needs looked up on its handle. The reference's llama.h is
//! ABI-identical to ours (tests/capi.rs), so our `#[repr(C)]` structs describe its parameters;
//! its handles stay opaque.

use std::ffi::{c_char, c_void, CString};
use std::path::Path;

use bitnet::capi::{
    enum_ggml_log_level, ggml_log_callback, llama_batch, llama_context_params, llama_model_params,
};
use bitnet::cpp_ref::{self, Library};

pub use bitnet::cpp_ref::lib_dir;

type Handle = *mut c_void;

type FnBackendInit = unsafe extern "C" fn();
type FnLogSet = unsafe extern "C" fn(ggml_log_callback, *mut c_void);
type FnModelDefaultParams = unsafe extern "C" fn() -> llama_model_params;
type FnModelLoadFromFile = unsafe extern "C" fn(*const c_char, llama_model_params) -> Handle;
type FnModelFree = unsafe extern "C" fn(Handle);
type FnModelGetVocab = unsafe extern "C" fn(Handle) -> Handle;
type FnVocabNTokens = unsafe extern "C" fn(Handle) -> i32;
type FnTokenize =
    unsafe extern "C" fn(Handle, *const c_char, i32, *mut i32, i32, bool, bool) -> i32;
type FnContextDefaultParams = unsafe extern "C" fn() -> llama_context_params;
type FnInitFromModel = unsafe extern "C" fn(Handle, llama_context_params) -> Handle;
type FnFree = unsafe extern "C" fn(Handle);
type FnBatchGetOne = unsafe extern "C" fn(*mut i32, i32) -> llama_batch;
type FnDecode = unsafe extern "C" fn(Handle, llama_batch) -> i32;
type FnGetLogitsIth = unsafe extern "C" fn(Handle, i32) -> *mut f32;

/// The reference functions the greedy check needs (signatures of the pinned llama.h).
pub struct RefApi {
    pub backend_init: FnBackendInit,
    pub log_set: FnLogSet,
    pub model_default_params: FnModelDefaultParams,
    pub model_load_from_file: FnModelLoadFromFile,
    pub model_free: FnModelFree,
    pub model_get_vocab: FnModelGetVocab,
    pub vocab_n_tokens: FnVocabNTokens,
    pub tokenize: FnTokenize,
    pub context_default_params: FnContextDefaultParams,
    pub init_from_model: FnInitFromModel,
    pub free: FnFree,
    pub batch_get_one: FnBatchGetOne,
    pub decode: FnDecode,
    pub get_logits_ith: FnGetLogitsIth,
}

unsafe extern "C" fn silent_log(
    _level: enum_ggml_log_level,
    _text: *const c_char,
    _user: *mut c_void,
) {
}

/// Loads the reference (the process keeps it), binds the functions and checks the canary.
pub fn load(dir: &Path) -> Result<RefApi, String> {
    let lib = Library::open(dir)?;
    macro_rules! bind {
        ($name:literal, $ty:ty) => {
            // SAFETY: the symbol is the pinned llama.h function of that name, whose signature
            // the field's type spells (ABI-identical headers); a data pointer and a function
            // pointer have the same size here.
            unsafe { std::mem::transmute::<*mut c_void, $ty>(lib.symbol($name)?) }
        };
    }
    let api = RefApi {
        backend_init: bind!("llama_backend_init", FnBackendInit),
        log_set: bind!("llama_log_set", FnLogSet),
        model_default_params: bind!("llama_model_default_params", FnModelDefaultParams),
        model_load_from_file: bind!("llama_model_load_from_file", FnModelLoadFromFile),
        model_free: bind!("llama_model_free", FnModelFree),
        model_get_vocab: bind!("llama_model_get_vocab", FnModelGetVocab),
        vocab_n_tokens: bind!("llama_vocab_n_tokens", FnVocabNTokens),
        tokenize: bind!("llama_tokenize", FnTokenize),
        context_default_params: bind!("llama_context_default_params", FnContextDefaultParams),
        init_from_model: bind!("llama_init_from_model", FnInitFromModel),
        free: bind!("llama_free", FnFree),
        batch_get_one: bind!("llama_batch_get_one", FnBatchGetOne),
        decode: bind!("llama_decode", FnDecode),
        get_logits_ith: bind!("llama_get_logits_ith", FnGetLogitsIth),
    };
    cpp_ref::canary(
        &lib,
        &[(
            "llama_model_load_from_file",
            api.model_load_from_file as usize,
        )],
    )?;
    // SAFETY: plain calls into the loaded reference with a no-op callback of the right type.
    unsafe {
        (api.log_set)(Some(silent_log), std::ptr::null_mut());
        (api.backend_init)();
    }
    Ok(api)
}

/// What the reference did on a prompt: its prompt tokens, and per greedy step the two best
/// tokens of its logits (best first; the best one is the token fed next).
pub struct RefRun {
    pub prompt: Vec<i32>,
    pub top2: Vec<[i32; 2]>,
}

impl RefRun {
    pub fn tokens(&self) -> Vec<i32> {
        self.top2.iter().map(|t| t[0]).collect()
    }
}

/// The reference's greedy run of `n_steps` tokens after `prompt` (one thread, flash attention
/// off, as crossval runs it), or why it could not run.
pub fn greedy(
    api: &RefApi,
    model_path: &Path,
    prompt: &str,
    n_steps: usize,
) -> Result<RefRun, String> {
    let c_path =
        CString::new(model_path.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: reference calls with the pinned llama.h contract: valid C strings, arrays of the
    // sizes passed, params by value, handles used only while alive and freed once at the end.
    unsafe {
        let model = (api.model_load_from_file)(c_path.as_ptr(), (api.model_default_params)());
        if model.is_null() {
            return Err("the reference cannot load this model".into());
        }
        let vocab = (api.model_get_vocab)(model);
        let n_vocab = (api.vocab_n_tokens)(vocab).max(0) as usize;
        let mut tokens = vec![0i32; prompt.len() + 8];
        let n = (api.tokenize)(
            vocab,
            prompt.as_ptr().cast(),
            prompt.len() as i32,
            tokens.as_mut_ptr(),
            tokens.len() as i32,
            true,
            true,
        );
        if n < 0 {
            (api.model_free)(model);
            return Err(format!("reference llama_tokenize returned {n}"));
        }
        tokens.truncate(n as usize);
        let mut cparams = (api.context_default_params)();
        cparams.n_ctx = (tokens.len() + n_steps + 8) as u32;
        cparams.n_batch = cparams.n_ctx;
        cparams.n_threads = 1;
        cparams.n_threads_batch = 1;
        cparams.flash_attn_type =
            bitnet::capi::llama_flash_attn_type::LLAMA_FLASH_ATTN_TYPE_DISABLED as i32;
        let ctx = (api.init_from_model)(model, cparams);
        if ctx.is_null() {
            (api.model_free)(model);
            return Err("the reference cannot make a context".into());
        }
        let mut top2 = Vec::new();
        let mut feed = tokens.clone();
        let mut result = Ok(());
        for _ in 0..n_steps {
            let rc = (api.decode)(
                ctx,
                (api.batch_get_one)(feed.as_mut_ptr(), feed.len() as i32),
            );
            let logits = (api.get_logits_ith)(ctx, -1);
            if rc != 0 || logits.is_null() {
                result = Err(format!("reference llama_decode returned {rc}"));
                break;
            }
            let best = top_two(std::slice::from_raw_parts(logits, n_vocab));
            top2.push(best);
            feed = vec![best[0]];
        }
        (api.free)(ctx);
        (api.model_free)(model);
        result.map(|()| RefRun {
            prompt: tokens,
            top2,
        })
    }
}

/// The two largest values' indices, best first (the first of equals, as greedy picks).
pub fn top_two(x: &[f32]) -> [i32; 2] {
    let mut best = [0usize, usize::MAX];
    for i in 1..x.len() {
        if x[i] > x[best[0]] {
            best = [i, best[0]];
        } else if best[1] == usize::MAX || x[i] > x[best[1]] {
            best[1] = i;
        }
    }
    if best[1] == usize::MAX {
        best[1] = best[0];
    }
    [best[0] as i32, best[1] as i32]
}
