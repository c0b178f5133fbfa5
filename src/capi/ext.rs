//! libllama's C++-linkage extension API (`src/llama-ext.h` of the pinned llama.cpp), the part
//! llama.cpp's own programs call: everything built on its `common` library (llama-server,
//! llama-cli, llama-perplexity, llama-batched-bench) stops at model load without it. These are
//! not in llama.h and keep C++ linkage, so each export carries its Itanium-mangled name
//! (`export_name`); the argument and return types here are all ones the C++ ABI passes exactly
//! as C does (pointers, 32-bit integers, bool), except `llama_get_memory_breakdown`, which
//! returns a `std::map` by value and is built in C++ (src/capi/ext.cpp, compiled by build.rs).
//!
//! What each one means on this engine (the reference's meaning on its CPU build, since that is
//! what the tools are built as):
//! - devices: the reference lists GPUs and other accelerators in a model's devices, never the
//!   CPU; a CPU-only model has none. Our weights are in host memory (or on a device ggml knows
//!   nothing of), so `llama_model_n_devices` is 0 and `llama_model_get_device` NULL for every i.
//! - memory breakdown: the model's weight bytes, the KV cache's and the activation buffers',
//!   all under the process's real ggml CPU buffer type (see ext.cpp).
//! - experts, NextN (MTP) heads, draft-model target layers, the DFlash selector: the
//!   architectures we run have none of them, so the getters give the reference's "none" (0 or
//!   NULL) and the setters are accepted without effect; asking for a layer's input embeddings
//!   is refused with a log line (we do not keep them), as is reading them back.
//! - `llama_get_ctx_other`: the `ctx_other` given in the context's parameters.
//! - `llama_model_get_tok_embd`: the token embedding matrix dequantized to f32.
//!
//! Not exported (no tool of the pinned version calls them): `llama_graph_reserve`,
//! `llama_ftype_get_default_type` and the `llama_quant_*` quantization-planning functions.
//!
//! `ggml_abort` (ggml.h, variadic) also lives here, as a jump to ext.cpp, which formats the
//! message and hands it to the process's real ggml_abort when a libggml is loaded after us.

use std::ffi::c_int;

use super::context::llama_context;
use super::ggml::ggml_backend_dev_t;
use super::guard::{self, with_handle, LOG_DEBUG};
use super::model::llama_model;

/// `tail_jump!("symbol", rust_name => target)`: exports `symbol` as a function whose whole body
/// is a jump to the C/C++ function `target` (hidden, in ext.cpp), so that registers, stack and
/// the return slot reach `target` untouched: the way to export, from a cdylib whose exports
/// rustc limits to Rust items, a function Rust cannot write (C varargs, a C++ class returned by
/// value: its hidden return pointer is in rdi on x86-64 but in x8 on AArch64).
macro_rules! tail_jump {
    ($symbol:literal, $name:ident => $target:ident) => {
        extern "C" {
            fn $target();
        }

        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        #[unsafe(naked)]
        #[export_name = $symbol]
        pub extern "C" fn $name() {
            #[cfg(target_arch = "x86_64")]
            core::arch::naked_asm!("jmp {t}", t = sym $target);
            #[cfg(target_arch = "aarch64")]
            core::arch::naked_asm!("b {t}", t = sym $target);
        }
    };
}

// llama_memory_breakdown llama_get_memory_breakdown(const llama_context * ctx);
tail_jump!(
    "_Z26llama_get_memory_breakdownPK13llama_context",
    llama_get_memory_breakdown => bitnet_ext_memory_breakdown
);

// void ggml_abort(const char * file, int line, const char * fmt, ...);
tail_jump!("ggml_abort", ggml_abort => bitnet_ext_ggml_abort);

/// For ext.cpp's `llama_get_memory_breakdown`: the bytes of the model's weights, of the
/// context's KV cache and of its activation buffers; false (nothing written) for a NULL context
/// or a NULL out-pointer.
#[no_mangle]
pub unsafe extern "C" fn bitnet_ext_memory_sizes(
    ctx: *const llama_context,
    model: *mut usize,
    context: *mut usize,
    compute: *mut usize,
) -> bool {
    with_handle!(&ctx, false, |c| {
        if model.is_null() || context.is_null() || compute.is_null() {
            return Err("an output pointer is NULL".into());
        }
        let (m, kv, buf) = c.memory_bytes();
        // SAFETY: non-NULL (checked) pointers to size_t that ext.cpp owns.
        unsafe {
            *model = m as usize;
            *context = kv;
            *compute = buf;
        }
        Ok(true)
    })
}

#[export_name = "_Z20llama_model_n_expertPK11llama_model"]
pub unsafe extern "C" fn llama_model_n_expert(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |_m| Ok(0))
}

#[export_name = "_Z21llama_model_n_devicesPK11llama_model"]
pub unsafe extern "C" fn llama_model_n_devices(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |_m| Ok(0))
}

#[export_name = "_Z22llama_model_get_devicePK11llama_modeli"]
pub unsafe extern "C" fn llama_model_get_device(
    model: *const llama_model,
    _i: c_int,
) -> ggml_backend_dev_t {
    with_handle!(&model, std::ptr::null_mut(), |_m| Ok(std::ptr::null_mut()))
}

#[export_name = "_Z33llama_model_dflash_selector_top_kPK11llama_model"]
pub unsafe extern "C" fn llama_model_dflash_selector_top_k(model: *const llama_model) -> i32 {
    with_handle!(&model, 0, |_m| Ok(0))
}

#[export_name = "_Z28llama_model_target_layer_idsPK11llama_model"]
pub unsafe extern "C" fn llama_model_target_layer_ids(model: *const llama_model) -> *const i32 {
    with_handle!(&model, std::ptr::null(), |_m| Ok(std::ptr::null()))
}

#[export_name = "_Z30llama_model_target_layer_ids_nPK11llama_model"]
pub unsafe extern "C" fn llama_model_target_layer_ids_n(model: *const llama_model) -> u32 {
    with_handle!(&model, 0, |_m| Ok(0))
}

/// The token embedding matrix as f32, `n_vocab * n_embd` values, row by row (token 0 first);
/// `out` NULL: only the count. 0 on a vocab-only model or an error.
#[export_name = "_Z24llama_model_get_tok_embdPK11llama_modelPf"]
pub unsafe extern "C" fn llama_model_get_tok_embd(model: *const llama_model, out: *mut f32) -> u32 {
    with_handle!(&model, 0, |m| {
        let Some(engine) = m.engine.as_ref() else {
            return Ok(0);
        };
        let h = engine.hparams();
        let n = h
            .n_vocab
            .checked_mul(h.n_embd)
            .filter(|&n| n <= u32::MAX as usize)
            .ok_or("the embedding matrix has more than 2^32 values")?;
        if out.is_null() {
            return Ok(n as u32);
        }
        // SAFETY: the caller allocated `n` floats (llama-ext.h: call with NULL first for n).
        let out = unsafe { std::slice::from_raw_parts_mut(out, n) };
        for (tok, row) in out.chunks_exact_mut(h.n_embd).enumerate() {
            engine.embedding_row(tok, row).map_err(|e| e.to_string())?;
        }
        Ok(n as u32)
    })
}

#[export_name = "_Z26llama_set_embeddings_nextnP13llama_contextbb"]
pub unsafe extern "C" fn llama_set_embeddings_nextn(
    ctx: *mut llama_context,
    value: bool,
    masked: bool,
) {
    with_handle!(&mut ctx, (), |_c| {
        // The reference stores the flags; with no NextN block in the model nothing is computed.
        guard::log(
            LOG_DEBUG,
            &format!(
                "{}: value = {value}, masked = {masked} (the model has no NextN heads)",
                guard::fn_name!()
            ),
        );
        Ok(())
    })
}

#[export_name = "_Z28llama_set_nextn_layer_offsetP13llama_contexti"]
pub unsafe extern "C" fn llama_set_nextn_layer_offset(ctx: *mut llama_context, _offset: i32) {
    with_handle!(&mut ctx, (), |_c| Ok(()))
}

#[export_name = "_Z26llama_get_embeddings_nextnP13llama_context"]
pub unsafe extern "C" fn llama_get_embeddings_nextn(ctx: *mut llama_context) -> *mut f32 {
    with_handle!(
        &mut ctx,
        std::ptr::null_mut(),
        |_c| Ok(std::ptr::null_mut())
    )
}

#[export_name = "_Z30llama_get_embeddings_nextn_ithP13llama_contexti"]
pub unsafe extern "C" fn llama_get_embeddings_nextn_ith(
    ctx: *mut llama_context,
    i: i32,
) -> *mut f32 {
    with_handle!(&mut ctx, std::ptr::null_mut(), |_c| -> guard::Fallible<
        *mut f32,
    > {
        Err(format!(
            "invalid nextn embeddings id {i}, reason: no nextn embeddings"
        ))
    })
}

#[export_name = "_Z30llama_set_embeddings_layer_inpP13llama_contextjb"]
pub unsafe extern "C" fn llama_set_embeddings_layer_inp(
    ctx: *mut llama_context,
    lid: u32,
    value: bool,
) {
    with_handle!(&mut ctx, (), |_c| {
        if value {
            return Err(format!(
                "layer {lid}: per-layer input embeddings are not kept by this engine (used by \
                 EAGLE/DFlash speculative drafts, not supported)"
            ));
        }
        Ok(())
    })
}

#[export_name = "_Z30llama_get_embeddings_layer_inpP13llama_contextj"]
pub unsafe extern "C" fn llama_get_embeddings_layer_inp(
    ctx: *mut llama_context,
    lid: u32,
) -> *mut f32 {
    with_handle!(&mut ctx, std::ptr::null_mut(), |_c| -> guard::Fallible<
        *mut f32,
    > {
        Err(format!(
            "layer {lid}: no per-layer input embeddings (not supported)"
        ))
    })
}

#[export_name = "_Z19llama_get_ctx_otherP13llama_context"]
pub unsafe extern "C" fn llama_get_ctx_other(ctx: *mut llama_context) -> *mut llama_context {
    with_handle!(&mut ctx, std::ptr::null_mut(), |c| Ok(c.ctx_other))
}
