//! Models: load (with progress callback and `vocab_only`), free, hyperparameter queries and
//! GGUF metadata (`llama_model_meta_*`), in the reference's conventions.

use std::ffi::{c_char, c_int, CString};
use std::path::Path;
use std::sync::Arc;

use super::guard::{self, ffi, ffi_as, handle, with_handle, Fallible, LOG_INFO, LOG_WARN};
use super::types::*;
use super::vocab::llama_vocab;
use crate::gguf::{Gguf, MappedFile, Value};
use crate::model::weights::{HeadType, LoadOptions};
use crate::model::{HParams, Model};
use crate::quant::GgmlType;
use crate::tokenizer::Tokenizer;

/// A loaded model: the engine's weights (none when loaded `vocab_only`), the vocabulary and
/// the file's scalar metadata as the reference prints it.
pub struct llama_model {
    pub(crate) engine: Option<Arc<Model>>,
    /// The weights on the GPU when the model was loaded with n_gpu_layers > 0 and a device was
    /// found (contexts of this model then run there).
    #[cfg(feature = "cuda")]
    pub(crate) gpu: Option<Arc<crate::model::gpu::GpuModel>>,
    pub(crate) vocab: llama_vocab,
    /// Scalar metadata in file order: key, value as text (arrays omitted, as the reference).
    pub(crate) meta: Vec<(CString, CString)>,
    pub(crate) rope_freq_scale_train: f32,
    pub(crate) decoder_start_token: i32,
    pub(crate) n_params: u64,
    pub(crate) n_bytes: u64,
    pub(crate) ftype: c_int,
    pub(crate) desc: String,
}

impl llama_model {
    pub(crate) fn meta_value(&self, key: &[u8]) -> Option<&CString> {
        self.meta
            .iter()
            .find(|(k, _)| k.as_bytes() == key)
            .map(|(_, v)| v)
    }

    /// A hyperparameter as the llama_model_n_* getters report it: the engine's when the
    /// weights are loaded; a vocab_only model has none, so its file's integer metadata
    /// `<arch>.<key>` is read instead (`None` when absent).
    fn hparam(&self, engine: fn(&HParams) -> usize, key: &str) -> Option<i32> {
        if let Some(m) = &self.engine {
            return Some(i32::try_from(engine(m.hparams())).unwrap_or(i32::MAX));
        }
        let arch = self.meta_value(b"general.architecture");
        let arch = arch.map_or(&b""[..], |a| a.as_bytes());
        let key = [arch, b".", key.as_bytes()].concat();
        let v: i64 = self.meta_value(&key)?.to_str().ok()?.parse().ok()?;
        Some(v.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
    }

    pub(crate) fn n_ctx_train(&self) -> i32 {
        self.hparam(|h| h.n_ctx_train, "context_length")
            .unwrap_or(0)
    }

    pub(crate) fn n_embd(&self) -> i32 {
        self.hparam(|h| h.n_embd, "embedding_length").unwrap_or(0)
    }

    pub(crate) fn n_layer(&self) -> i32 {
        self.hparam(|h| h.n_layer, "block_count").unwrap_or(0)
    }

    pub(crate) fn n_head(&self) -> i32 {
        self.hparam(|h| h.n_head, "attention.head_count")
            .unwrap_or(0)
    }

    pub(crate) fn n_head_kv(&self) -> i32 {
        self.hparam(|h| h.n_head_kv, "attention.head_count_kv")
            .unwrap_or_else(|| self.n_head())
    }
}

/// A metadata value as the reference's `gguf_kv_to_str` prints it: integers in decimal,
/// floats as C's "%f", booleans as true/false, strings as they are. None for arrays.
pub(crate) fn meta_text(v: &Value<'_>) -> Option<Vec<u8>> {
    let float = |x: f64| -> String {
        if x.is_nan() {
            if x.is_sign_negative() { "-nan" } else { "nan" }.into()
        } else if x.is_infinite() {
            if x < 0.0 { "-inf" } else { "inf" }.into()
        } else {
            format!("{x:.6}")
        }
    };
    Some(match *v {
        Value::String(s) => s.to_vec(),
        Value::Array(_) => return None,
        Value::Bool(b) => if b { "true" } else { "false" }.into(),
        Value::F32(x) => float(x as f64).into_bytes(),
        Value::F64(x) => float(x).into_bytes(),
        _ => v.as_i128()?.to_string().into_bytes(),
    })
}

/// C strings cannot hold NUL; a NUL inside a metadata string ends it there, as in C.
fn c_string(mut bytes: Vec<u8>) -> CString {
    if let Some(p) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(p);
    }
    CString::new(bytes).unwrap_or_default()
}

/// llama_ftype from the tensor type of the weights, for files without general.file_type.
fn guess_ftype(g: &Gguf<'_>) -> c_int {
    let ty = g.tensor("blk.0.attn_q.weight").map(|t| t.ty);
    let f = match ty {
        Some(GgmlType::F32) => llama_ftype::LLAMA_FTYPE_ALL_F32,
        Some(GgmlType::F16) => llama_ftype::LLAMA_FTYPE_MOSTLY_F16,
        Some(GgmlType::BF16) => llama_ftype::LLAMA_FTYPE_MOSTLY_BF16,
        Some(GgmlType::Q8_0) => llama_ftype::LLAMA_FTYPE_MOSTLY_Q8_0,
        Some(GgmlType::TQ1_0) => llama_ftype::LLAMA_FTYPE_MOSTLY_TQ1_0,
        Some(GgmlType::TQ2_0) => llama_ftype::LLAMA_FTYPE_MOSTLY_TQ2_0,
        Some(GgmlType::Q1_0) => llama_ftype::LLAMA_FTYPE_MOSTLY_Q1_0,
        Some(GgmlType::Q2_0) => llama_ftype::LLAMA_FTYPE_MOSTLY_Q2_0,
        _ => llama_ftype::LLAMA_FTYPE_ALL_F32,
    };
    f as c_int | llama_ftype::LLAMA_FTYPE_GUESSED as c_int
}

/// The reference's `llama_ftype_name`.
pub(crate) fn ftype_name(ftype: c_int) -> String {
    use llama_ftype::*;
    let guessed = ftype & LLAMA_FTYPE_GUESSED as c_int != 0;
    let base = ftype & !(LLAMA_FTYPE_GUESSED as c_int);
    let names: &[(llama_ftype, &str)] = &[
        (LLAMA_FTYPE_ALL_F32, "all F32"),
        (LLAMA_FTYPE_MOSTLY_F16, "F16"),
        (LLAMA_FTYPE_MOSTLY_BF16, "BF16"),
        (LLAMA_FTYPE_MOSTLY_Q1_0, "Q1_0"),
        (LLAMA_FTYPE_MOSTLY_Q2_0, "Q2_0"),
        (LLAMA_FTYPE_MOSTLY_Q4_0, "Q4_0"),
        (LLAMA_FTYPE_MOSTLY_Q4_1, "Q4_1"),
        (LLAMA_FTYPE_MOSTLY_Q5_0, "Q5_0"),
        (LLAMA_FTYPE_MOSTLY_Q5_1, "Q5_1"),
        (LLAMA_FTYPE_MOSTLY_Q8_0, "Q8_0"),
        (LLAMA_FTYPE_MOSTLY_MXFP4_MOE, "MXFP4 MoE"),
        (LLAMA_FTYPE_MOSTLY_NVFP4, "NVFP4"),
        (LLAMA_FTYPE_MOSTLY_Q2_K, "Q2_K - Medium"),
        (LLAMA_FTYPE_MOSTLY_Q2_K_S, "Q2_K - Small"),
        (LLAMA_FTYPE_MOSTLY_Q3_K_S, "Q3_K - Small"),
        (LLAMA_FTYPE_MOSTLY_Q3_K_M, "Q3_K - Medium"),
        (LLAMA_FTYPE_MOSTLY_Q3_K_L, "Q3_K - Large"),
        (LLAMA_FTYPE_MOSTLY_Q4_K_S, "Q4_K - Small"),
        (LLAMA_FTYPE_MOSTLY_Q4_K_M, "Q4_K - Medium"),
        (LLAMA_FTYPE_MOSTLY_Q5_K_S, "Q5_K - Small"),
        (LLAMA_FTYPE_MOSTLY_Q5_K_M, "Q5_K - Medium"),
        (LLAMA_FTYPE_MOSTLY_Q6_K, "Q6_K"),
        (LLAMA_FTYPE_MOSTLY_TQ1_0, "TQ1_0 - 1.69 bpw ternary"),
        (LLAMA_FTYPE_MOSTLY_TQ2_0, "TQ2_0 - 2.06 bpw ternary"),
        (LLAMA_FTYPE_MOSTLY_IQ2_XXS, "IQ2_XXS - 2.0625 bpw"),
        (LLAMA_FTYPE_MOSTLY_IQ2_XS, "IQ2_XS - 2.3125 bpw"),
        (LLAMA_FTYPE_MOSTLY_IQ2_S, "IQ2_S - 2.5 bpw"),
        (LLAMA_FTYPE_MOSTLY_IQ2_M, "IQ2_M - 2.7 bpw"),
        (LLAMA_FTYPE_MOSTLY_IQ3_XS, "IQ3_XS - 3.3 bpw"),
        (LLAMA_FTYPE_MOSTLY_IQ3_XXS, "IQ3_XXS - 3.0625 bpw"),
        (LLAMA_FTYPE_MOSTLY_IQ1_S, "IQ1_S - 1.5625 bpw"),
        (LLAMA_FTYPE_MOSTLY_IQ1_M, "IQ1_M - 1.75 bpw"),
        (LLAMA_FTYPE_MOSTLY_IQ4_NL, "IQ4_NL - 4.5 bpw"),
        (LLAMA_FTYPE_MOSTLY_IQ4_XS, "IQ4_XS - 4.25 bpw"),
        (LLAMA_FTYPE_MOSTLY_IQ3_S, "IQ3_S - 3.4375 bpw"),
        (LLAMA_FTYPE_MOSTLY_IQ3_M, "IQ3_S mix - 3.66 bpw"),
    ];
    let name = names
        .iter()
        .find(|(f, _)| *f as c_int == base)
        .map_or("unknown, may not work", |(_, n)| n);
    if guessed {
        format!("(guessed) {name}")
    } else {
        name.to_string()
    }
}

/// Calls the progress callback; false means the caller asked to stop.
fn progress(params: &llama_model_params, value: f32) -> bool {
    match params.progress_callback {
        // SAFETY: the caller registered this callback with this user data (llama.h contract).
        Some(cb) => unsafe { cb(value, params.progress_callback_user_data) },
        None => true,
    }
}

/// Loads a model file; Ok(None) when the progress callback cancelled the load.
pub(crate) fn load(path: &Path, params: &llama_model_params) -> Fallible<Option<llama_model>> {
    #[cfg(not(feature = "cuda"))]
    if params.n_gpu_layers > 0 {
        guard::log(
            LOG_WARN,
            &format!(
                "llama_model_load: n_gpu_layers = {} but this build has no GPU backend: \
                 the model runs on the CPU",
                params.n_gpu_layers
            ),
        );
    }
    if !progress(params, 0.0) {
        guard::log(LOG_INFO, "llama_model_load: cancelled model load");
        return Ok(None);
    }
    let file = MappedFile::open(path).map_err(|e| e.to_string())?;
    let g = file.gguf().map_err(|e| e.to_string())?;
    let tokenizer = Tokenizer::from_gguf(&g).map_err(|e| format!("{}: {e}", path.display()))?;
    let arch = g.architecture().unwrap_or("").to_string();
    let meta: Vec<(CString, CString)> = g
        .metadata()
        .iter()
        .filter_map(|(k, v)| Some((c_string(k.as_bytes().to_vec()), c_string(meta_text(v)?))))
        .collect();
    let int = |k: &str| -> Option<i64> {
        let v = g.get(&format!("{arch}.{k}"))?;
        v.as_i128().and_then(|v| i64::try_from(v).ok())
    };
    let clamp = |v: i64| v.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    let rope_factor = g
        .get(&format!("{arch}.rope.scaling.factor"))
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    let ftype = match g.get_u32("general.file_type") {
        Ok(Some(f)) => f as c_int,
        _ => guess_ftype(&g),
    };
    let n_layer = clamp(int("block_count").unwrap_or(0));
    // The reference's size labels for the layer counts it knows (llama_model_*::load_arch_hparams).
    let n_embd = int("embedding_length").unwrap_or(0);
    let size_label = match (arch.as_str(), n_layer) {
        (a, 26) if a.starts_with("bitnet") => "3B",
        ("qwen3", 28) if n_embd == 1024 => "0.6B",
        ("qwen3", 28) => "1.7B",
        ("qwen3", 36) if n_embd == 2560 => "4B",
        ("qwen3", 36) => "8B",
        ("qwen3", 40) => "14B",
        ("qwen3", 64) => "32B",
        _ => "?B",
    };
    // Microsoft's converter writes file_type 40 (its LLAMA_FTYPE_MOSTLY_I2_S), which the pinned
    // enum calls Q1_0: name the weights by what the file holds instead.
    let type_label = if g.tensors().iter().any(|t| t.ty == GgmlType::I2_S) {
        "I2_S".to_string()
    } else {
        ftype_name(ftype)
    };
    let mut model = llama_model {
        engine: None,
        #[cfg(feature = "cuda")]
        gpu: None,
        vocab: llama_vocab::new(tokenizer),
        meta,
        rope_freq_scale_train: if rope_factor == 0.0 {
            1.0
        } else {
            (1.0 / rope_factor) as f32
        },
        decoder_start_token: clamp(int("decoder_start_token_id").unwrap_or(-1)),
        n_params: g.tensors().iter().map(|t| t.n_elements).sum(),
        n_bytes: g.tensors().iter().map(|t| t.n_bytes).sum(),
        desc: format!("{arch} {size_label} {type_label}"),
        ftype,
    };
    drop(g);
    drop(file);
    if !params.vocab_only {
        // The head as BITNET_HEAD asks (default: as stored).
        let opts = LoadOptions {
            head: HeadType::from_env().map_err(|e| e.to_string())?,
            ..LoadOptions::default()
        };
        let engine = Arc::new(Model::load_with(path, &opts).map_err(|e| e.to_string())?);
        #[cfg(feature = "cuda")]
        {
            model.gpu = offload(params, &engine)?;
        }
        model.engine = Some(engine);
    }
    if !progress(params, 1.0) {
        guard::log(LOG_INFO, "llama_model_load: cancelled model load");
        return Ok(None);
    }
    Ok(Some(model))
}

/// The GPU copy of the weights for n_gpu_layers > 0 (feature `cuda`): the whole model or
/// nothing. A count that leaves layers on the CPU (1..=n_layer; n_layer + 1 counts the head as
/// llama.cpp does) is refused; no driver or no device keeps the model on the CPU with a
/// warning, as llama.cpp does; weight types without a device kernel likewise; a device that
/// fails (out of memory, too old, no NVRTC) is an error.
#[cfg(feature = "cuda")]
fn offload(
    params: &llama_model_params,
    engine: &Arc<Model>,
) -> Fallible<Option<Arc<crate::model::gpu::GpuModel>>> {
    use crate::kernels::cuda::{self, OpenError};
    use crate::model::gpu::GpuModel;
    let n = params.n_gpu_layers;
    if n <= 0 {
        return Ok(None);
    }
    let n_layer = engine.hparams().n_layer as i32;
    if n <= n_layer {
        return Err(format!(
            "llama_model_load: n_gpu_layers = {n} asks for {n} of {n_layer} layers on the GPU; \
             partial offload is not supported: use n_gpu_layers >= {} for the whole model, or 0 \
             for the CPU",
            n_layer + 1
        ));
    }
    let dev = match cuda::shared_device() {
        Ok(d) => d,
        Err(OpenError::Unavailable(why)) => {
            guard::log(
                LOG_WARN,
                &format!(
                    "llama_model_load: n_gpu_layers = {n} but no CUDA device ({why}): the model \
                     runs on the CPU"
                ),
            );
            return Ok(None);
        }
        Err(OpenError::Failed(e)) => return Err(format!("llama_model_load: {e}")),
    };
    let desc = cuda::Device::describe(&*dev);
    match GpuModel::upload(dev, Arc::clone(engine)) {
        Ok(g) => {
            guard::log(
                LOG_INFO,
                &format!(
                    "llama_model_load: offloaded {} layers and the output head to {desc} \
                     ({:.1} MiB of weights)",
                    n_layer,
                    g.weight_bytes() as f64 / (1u64 << 20) as f64
                ),
            );
            Ok(Some(Arc::new(g)))
        }
        Err(e) if e.kind == crate::ErrorKind::Unsupported => {
            guard::log(
                LOG_WARN,
                &format!("llama_model_load: {e}: the model runs on the CPU"),
            );
            Ok(None)
        }
        Err(e) => Err(format!("llama_model_load: {e}")),
    }
}

unsafe fn load_from_file(
    name: &str,
    path_model: *const c_char,
    params: llama_model_params,
) -> *mut llama_model {
    ffi_as(name, std::ptr::null_mut(), || {
        // SAFETY: path_model is NULL or a NUL-terminated string (llama.h contract).
        let path = unsafe { guard::c_bytes(path_model, "path_model") }?;
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(path));
        match load(path, &params)? {
            Some(m) => Ok(Box::into_raw(Box::new(m))),
            None => Err("model load cancelled by the progress callback".into()),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_load_from_file(
    path_model: *const c_char,
    params: llama_model_params,
) -> *mut llama_model {
    // SAFETY: forwarded C arguments.
    unsafe { load_from_file(guard::fn_name!(), path_model, params) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_load_model_from_file(
    path_model: *const c_char,
    params: llama_model_params,
) -> *mut llama_model {
    // SAFETY: forwarded C arguments.
    unsafe { load_from_file(guard::fn_name!(), path_model, params) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_load_from_splits(
    paths: *mut *const c_char,
    n_paths: usize,
    params: llama_model_params,
) -> *mut llama_model {
    ffi!(std::ptr::null_mut(), || {
        // SAFETY: paths points to n_paths C strings (llama.h contract).
        let list = unsafe { guard::c_slice(paths.cast_const(), n_paths, "paths") }?;
        match list {
            // SAFETY: forwarded C arguments.
            [one] => Ok(unsafe { load_from_file(guard::fn_name!(), *one, params) }),
            _ => Err(format!(
                "split GGUF files are not supported ({n_paths} paths given; pass one file)"
            )),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_free(model: *mut llama_model) {
    ffi!((), || {
        // SAFETY: model is NULL or was returned by a llama_model_load_* call and is freed once
        // (llama.h contract); contexts hold their own Arc of the weights.
        unsafe { guard::free_box(model) };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_free_model(model: *mut llama_model) {
    // SAFETY: forwarded C argument.
    unsafe { llama_model_free(model) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_get_vocab(model: *const llama_model) -> *const llama_vocab {
    with_handle!(&model, std::ptr::null(), |m| Ok(&m.vocab as *const _))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_rope_type(model: *const llama_model) -> enum_llama_rope_type {
    with_handle!(
        &model,
        llama_rope_type::LLAMA_ROPE_TYPE_NONE as c_int,
        |_| Ok(llama_rope_type::LLAMA_ROPE_TYPE_NEOX as c_int)
    )
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_n_ctx_train(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |m| Ok(m.n_ctx_train()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_n_embd(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |m| Ok(m.n_embd()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_n_embd_inp(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |m| Ok(m.n_embd()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_n_embd_out(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |m| Ok(m.n_embd()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_n_layer(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |m| Ok(m.n_layer()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_n_head(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |m| Ok(m.n_head()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_n_head_kv(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |m| Ok(m.n_head_kv()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_ctx_train(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |m| Ok(m.n_ctx_train()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_embd(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |m| Ok(m.n_embd()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_layer(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |m| Ok(m.n_layer()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_n_head(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |m| Ok(m.n_head()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_n_layer_nextn(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |_| Ok(0))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_n_swa(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |_| Ok(0))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_rope_freq_scale_train(model: *const llama_model) -> f32 {
    with_handle!(&model, 0.0, |m| Ok(m.rope_freq_scale_train))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_n_cls_out(model: *const llama_model) -> u32 {
    with_handle!(&model, 0, |_| Ok(0))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_cls_label(
    model: *const llama_model,
    _i: u32,
) -> *const c_char {
    with_handle!(&model, std::ptr::null(), |_| Ok(std::ptr::null()))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_meta_val_str(
    model: *const llama_model,
    key: *const c_char,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    ffi!(-1, || {
        // SAFETY: buf is NULL or has buf_size writable bytes (llama.h contract).
        unsafe { guard::clear_buf(buf, buf_size) };
        // SAFETY: model is NULL or a live handle; key NULL or a C string (llama.h contract).
        let (m, key) = unsafe { (handle(model, "model")?, guard::c_bytes(key, "key")?) };
        match m.meta_value(key) {
            // SAFETY: as above for buf.
            Some(v) => Ok(unsafe { guard::snprintf(buf, buf_size, v.as_bytes()) }),
            None => Ok(-1),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_meta_count(model: *const llama_model) -> i32 {
    with_handle!(&model, -1, |m| Ok(m.meta.len() as i32))
}

#[no_mangle]
pub extern "C" fn llama_model_meta_key_str(key: enum_llama_model_meta_key) -> *const c_char {
    use llama_model_meta_key::*;
    let keys: [(llama_model_meta_key, &'static std::ffi::CStr); 12] = [
        (
            LLAMA_MODEL_META_KEY_SAMPLING_SEQUENCE,
            c"general.sampling.sequence",
        ),
        (
            LLAMA_MODEL_META_KEY_SAMPLING_TOP_K,
            c"general.sampling.top_k",
        ),
        (
            LLAMA_MODEL_META_KEY_SAMPLING_TOP_P,
            c"general.sampling.top_p",
        ),
        (
            LLAMA_MODEL_META_KEY_SAMPLING_MIN_P,
            c"general.sampling.min_p",
        ),
        (
            LLAMA_MODEL_META_KEY_SAMPLING_XTC_PROBABILITY,
            c"general.sampling.xtc_probability",
        ),
        (
            LLAMA_MODEL_META_KEY_SAMPLING_XTC_THRESHOLD,
            c"general.sampling.xtc_threshold",
        ),
        (LLAMA_MODEL_META_KEY_SAMPLING_TEMP, c"general.sampling.temp"),
        (
            LLAMA_MODEL_META_KEY_SAMPLING_PENALTY_LAST_N,
            c"general.sampling.penalty_last_n",
        ),
        (
            LLAMA_MODEL_META_KEY_SAMPLING_PENALTY_REPEAT,
            c"general.sampling.penalty_repeat",
        ),
        (
            LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT,
            c"general.sampling.mirostat",
        ),
        (
            LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT_TAU,
            c"general.sampling.mirostat_tau",
        ),
        (
            LLAMA_MODEL_META_KEY_SAMPLING_MIROSTAT_ETA,
            c"general.sampling.mirostat_eta",
        ),
    ];
    keys.iter()
        .find(|(k, _)| *k as c_int == key)
        .map_or(std::ptr::null(), |(_, s)| s.as_ptr())
}

unsafe fn meta_by_index(
    name: &str,
    model: *const llama_model,
    i: i32,
    buf: *mut c_char,
    buf_size: usize,
    value: bool,
) -> i32 {
    ffi_as(name, -1, || {
        // SAFETY: buf is NULL or has buf_size writable bytes (llama.h contract).
        unsafe { guard::clear_buf(buf, buf_size) };
        // SAFETY: model is NULL or a live handle (llama.h contract).
        let m = unsafe { handle(model, "model") }?;
        let Some((k, v)) = usize::try_from(i).ok().and_then(|i| m.meta.get(i)) else {
            return Ok(-1);
        };
        let text = if value { v } else { k };
        // SAFETY: as above for buf.
        Ok(unsafe { guard::snprintf(buf, buf_size, text.as_bytes()) })
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_meta_key_by_index(
    model: *const llama_model,
    i: i32,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    // SAFETY: forwarded C arguments.
    unsafe { meta_by_index(guard::fn_name!(), model, i, buf, buf_size, false) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_meta_val_str_by_index(
    model: *const llama_model,
    i: i32,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    // SAFETY: forwarded C arguments.
    unsafe { meta_by_index(guard::fn_name!(), model, i, buf, buf_size, true) }
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_desc(
    model: *const llama_model,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    with_handle!(&model, -1, |m| {
        // SAFETY: buf is NULL or has buf_size writable bytes (llama.h contract).
        Ok(unsafe { guard::snprintf(buf, buf_size, m.desc.as_bytes()) })
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_ftype(model: *const llama_model) -> enum_llama_ftype {
    with_handle!(&model, 0, |m| Ok(m.ftype))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_size(model: *const llama_model) -> u64 {
    with_handle!(&model, 0, |m| Ok(m.n_bytes))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_n_params(model: *const llama_model) -> u64 {
    with_handle!(&model, 0, |m| Ok(m.n_params))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_chat_template(
    model: *const llama_model,
    name: *const c_char,
) -> *const c_char {
    with_handle!(&model, std::ptr::null(), |m| {
        let key = if name.is_null() {
            b"tokenizer.chat_template".to_vec()
        } else {
            // SAFETY: a non-NULL name is a C string (llama.h contract).
            let n = unsafe { guard::c_bytes(name, "name") }?;
            [b"tokenizer.chat_template.", n].concat()
        };
        Ok(m.meta_value(&key).map_or(std::ptr::null(), |v| v.as_ptr()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_has_encoder(model: *const llama_model) -> bool {
    with_handle!(&model, false, |_| Ok(false))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_has_decoder(model: *const llama_model) -> bool {
    with_handle!(&model, false, |_| Ok(true))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_decoder_start_token(model: *const llama_model) -> llama_token {
    with_handle!(&model, LLAMA_TOKEN_NULL, |m| Ok(m.decoder_start_token))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_is_recurrent(model: *const llama_model) -> bool {
    with_handle!(&model, false, |_| Ok(false))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_is_hybrid(model: *const llama_model) -> bool {
    with_handle!(&model, false, |_| Ok(false))
}

#[no_mangle]
pub unsafe extern "C" fn llama_model_is_diffusion(model: *const llama_model) -> bool {
    with_handle!(&model, false, |_| Ok(false))
}

#[no_mangle]
pub extern "C" fn llama_ftype_name(ftype: enum_llama_ftype) -> *const c_char {
    // The names form a small fixed set (about 80 with the "(guessed) " forms): each is made
    // into a C string once and kept for the life of the process.
    static NAMES: std::sync::Mutex<Vec<&'static std::ffi::CStr>> =
        std::sync::Mutex::new(Vec::new());
    ffi!(std::ptr::null(), || {
        let name = c_string(ftype_name(ftype).into_bytes());
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = names.iter().find(|s| s.to_bytes() == name.as_bytes()) {
            return Ok(s.as_ptr());
        }
        let s: &'static std::ffi::CStr = Box::leak(name.into_boxed_c_str());
        names.push(s);
        Ok(s.as_ptr())
    })
}
