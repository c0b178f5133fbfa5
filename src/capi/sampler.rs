//! The sampler API: `struct llama_sampler { iface, ctx }` exactly as llama.h, so C programs can
//! bring their own samplers (only `apply` is required); our samplers (src/sampling) behind a
//! shared interface; the chain (which may hold foreign samplers); llama_sampler_sample.

use std::ffi::{c_char, CStr};
use std::time::Instant;

use super::context::llama_context;
use super::guard::{self, ffi, ffi_as, handle, handle_mut, with_handle, Fallible, LOG_INFO};
use super::types::*;
use super::vocab::llama_vocab;
use crate::sampling::{self, grammar, Candidates, Sampler, TokenData};

// llama_token_data and the sampling module's TokenData are the same three fields.
const _: () = assert!(std::mem::size_of::<TokenData>() == std::mem::size_of::<llama_token_data>());
const _: () =
    assert!(std::mem::align_of::<TokenData>() == std::mem::align_of::<llama_token_data>());

/// The state behind one of our samplers.
struct RustSampler {
    inner: Box<dyn Sampler>,
    /// The name as a C string (llama_sampler_name returns a pointer to it).
    name: std::ffi::CString,
}

/// The state behind a chain: the samplers it owns (ours or foreign) and perf counters.
struct Chain {
    samplers: Vec<*mut llama_sampler>,
    no_perf: bool,
    t_sample_us: i64,
    n_sample: i32,
}

static RUST_IFACE: llama_sampler_i = llama_sampler_i {
    name: Some(rust_name),
    accept: Some(rust_accept),
    apply: Some(rust_apply),
    reset: Some(rust_reset),
    clone: Some(rust_clone),
    free: Some(rust_free),
    backend_init: None,
    backend_accept: None,
    backend_apply: None,
    backend_set_input: None,
    backend_reset: None,
    copy_state: Some(rust_copy_state),
};

static CHAIN_IFACE: llama_sampler_i = llama_sampler_i {
    name: Some(chain_name),
    accept: Some(chain_accept),
    apply: Some(chain_apply),
    reset: Some(chain_reset),
    clone: Some(chain_clone),
    free: Some(chain_free),
    backend_init: None,
    backend_accept: None,
    backend_apply: None,
    backend_set_input: None,
    backend_reset: None,
    copy_state: None,
};

/// The interfaces are shared and never written; C gets them as `*mut` because llama.h says so.
fn iface_ptr(i: &'static llama_sampler_i) -> *mut llama_sampler_i {
    (i as *const llama_sampler_i).cast_mut()
}

fn new_sampler(iface: &'static llama_sampler_i, ctx: *mut std::ffi::c_void) -> *mut llama_sampler {
    Box::into_raw(Box::new(llama_sampler {
        iface: iface_ptr(iface),
        ctx,
    }))
}

fn wrap(inner: Box<dyn Sampler>) -> *mut llama_sampler {
    let name = std::ffi::CString::new(inner.name()).unwrap_or_default();
    let state = Box::new(RustSampler { inner, name });
    new_sampler(&RUST_IFACE, Box::into_raw(state).cast())
}

/// Our sampler's state, if `smpl` is one of ours.
///
/// # Safety
/// `smpl` points to a live sampler.
unsafe fn rust_state<'a>(smpl: *const llama_sampler) -> Option<&'a mut RustSampler> {
    // SAFETY: per the contract, smpl is live; a sampler with our iface has a RustSampler ctx
    // (only `wrap` makes such samplers) that no one else references during the call.
    unsafe {
        let s = &*smpl;
        if std::ptr::eq(s.iface, &RUST_IFACE) {
            s.ctx.cast::<RustSampler>().as_mut()
        } else {
            None
        }
    }
}

/// A chain's state, if `smpl` is a chain.
///
/// # Safety
/// `smpl` points to a live sampler.
unsafe fn chain_state<'a>(smpl: *const llama_sampler) -> Option<&'a mut Chain> {
    // SAFETY: as rust_state, for chains (made only by llama_sampler_chain_init).
    unsafe {
        let s = &*smpl;
        if std::ptr::eq(s.iface, &CHAIN_IFACE) {
            s.ctx.cast::<Chain>().as_mut()
        } else {
            None
        }
    }
}

/// Runs `f` on a token data array as `Candidates`, writing back what the sampler changed
/// (`data` may advance, as the reference's XTC moves the pointer).
///
/// # Safety
/// `cur_p` points to a valid llama_token_data_array whose `data` holds `size` entries.
unsafe fn with_candidates(
    cur_p: *mut llama_token_data_array,
    f: impl FnOnce(&mut Candidates<'_>),
) -> Fallible<()> {
    // SAFETY: per the contract.
    let cur = unsafe { handle_mut(cur_p, "cur_p") }?;
    // SAFETY: data holds size entries (contract); TokenData has llama_token_data's layout.
    let data = unsafe { guard::c_slice(cur.data.cast_const(), cur.size, "cur_p->data") }?;
    let data = data.as_ptr().cast_mut().cast::<TokenData>();
    // SAFETY: the same memory, mutably, for the duration of the call (C owns it, no Rust alias).
    let data = unsafe { std::slice::from_raw_parts_mut(data, cur.size) };
    let mut c = Candidates {
        data,
        size: cur.size,
        selected: cur.selected,
        sorted: cur.sorted,
    };
    f(&mut c);
    cur.data = c.data.as_mut_ptr().cast::<llama_token_data>();
    cur.size = c.size.min(c.data.len());
    cur.selected = c.selected;
    cur.sorted = c.sorted;
    Ok(())
}

unsafe extern "C" fn rust_name(smpl: *const llama_sampler) -> *const c_char {
    // SAFETY: called through our iface on a live sampler.
    match unsafe { rust_state(smpl) } {
        Some(s) => s.name.as_ptr(),
        None => c"(null)".as_ptr(),
    }
}

unsafe extern "C" fn rust_accept(smpl: *mut llama_sampler, token: llama_token) {
    // SAFETY: called through our iface on a live sampler.
    if let Some(s) = unsafe { rust_state(smpl) } {
        s.inner.accept(token);
    }
}

unsafe extern "C" fn rust_apply(smpl: *mut llama_sampler, cur_p: *mut llama_token_data_array) {
    ffi_as("llama_sampler_apply", (), || {
        // SAFETY: called through our iface on a live sampler.
        let s = unsafe { rust_state(smpl) }.ok_or("not one of our samplers")?;
        // SAFETY: cur_p follows llama.h's contract.
        unsafe { with_candidates(cur_p, |c| s.inner.apply(c)) }
    })
}

unsafe extern "C" fn rust_reset(smpl: *mut llama_sampler) {
    // SAFETY: called through our iface on a live sampler.
    if let Some(s) = unsafe { rust_state(smpl) } {
        s.inner.reset();
    }
}

unsafe extern "C" fn rust_clone(smpl: *const llama_sampler) -> *mut llama_sampler {
    // SAFETY: called through our iface on a live sampler.
    match unsafe { rust_state(smpl) } {
        Some(s) => wrap(s.inner.clone_box()),
        None => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn rust_free(smpl: *mut llama_sampler) {
    // SAFETY: called once through our iface (llama_sampler_free) on a live sampler; its ctx
    // is the Box made in `wrap`.
    unsafe {
        if rust_state(smpl).is_some() {
            drop(Box::from_raw((*smpl).ctx.cast::<RustSampler>()));
            (*smpl).ctx = std::ptr::null_mut();
        }
    }
}

unsafe extern "C" fn rust_copy_state(src: *const llama_sampler, dst: *mut llama_sampler) {
    // SAFETY: called through our iface on live samplers.
    unsafe {
        if let (Some(s), Some(d)) = (rust_state(src), rust_state(dst)) {
            d.inner = s.inner.clone_box();
        }
    }
}

unsafe extern "C" fn chain_name(_smpl: *const llama_sampler) -> *const c_char {
    c"chain".as_ptr()
}

unsafe extern "C" fn chain_accept(smpl: *mut llama_sampler, token: llama_token) {
    // SAFETY: called through the chain iface on a live chain; its members are live.
    unsafe {
        if let Some(c) = chain_state(smpl) {
            for &s in &c.samplers {
                llama_sampler_accept(s, token);
            }
            c.n_sample += 1;
        }
    }
}

unsafe extern "C" fn chain_apply(smpl: *mut llama_sampler, cur_p: *mut llama_token_data_array) {
    // SAFETY: called through the chain iface on a live chain; its members are live.
    unsafe {
        if let Some(c) = chain_state(smpl) {
            let start = Instant::now();
            for &s in &c.samplers {
                llama_sampler_apply(s, cur_p);
            }
            if !c.no_perf {
                c.t_sample_us += start.elapsed().as_micros() as i64;
            }
        }
    }
}

unsafe extern "C" fn chain_reset(smpl: *mut llama_sampler) {
    // SAFETY: called through the chain iface on a live chain; its members are live.
    unsafe {
        if let Some(c) = chain_state(smpl) {
            for &s in &c.samplers {
                llama_sampler_reset(s);
            }
        }
    }
}

unsafe extern "C" fn chain_clone(smpl: *const llama_sampler) -> *mut llama_sampler {
    // SAFETY: called through the chain iface on a live chain; its members are live.
    unsafe {
        let Some(c) = chain_state(smpl) else {
            return std::ptr::null_mut();
        };
        let copy = llama_sampler_chain_init(llama_sampler_chain_params { no_perf: c.no_perf });
        for &s in &c.samplers {
            let s2 = llama_sampler_clone(s);
            if s2.is_null() {
                llama_sampler_free(copy);
                return std::ptr::null_mut();
            }
            llama_sampler_chain_add(copy, s2);
        }
        copy
    }
}

unsafe extern "C" fn chain_free(smpl: *mut llama_sampler) {
    // SAFETY: called once through the chain iface; the chain owns its members and its ctx is
    // the Box made in llama_sampler_chain_init.
    unsafe {
        if chain_state(smpl).is_some() {
            let c = Box::from_raw((*smpl).ctx.cast::<Chain>());
            for &s in &c.samplers {
                llama_sampler_free(s);
            }
            (*smpl).ctx = std::ptr::null_mut();
        }
    }
}

// ---- The llama_sampler_* functions.

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_init(
    iface: *mut llama_sampler_i,
    ctx: llama_sampler_context_t,
) -> *mut llama_sampler {
    ffi!(std::ptr::null_mut(), || {
        if iface.is_null() {
            return Err("iface is NULL".into());
        }
        Ok(Box::into_raw(Box::new(llama_sampler { iface, ctx })))
    })
}

/// The interface of a live sampler, or an error.
///
/// # Safety
/// `smpl` is NULL or a live sampler whose `iface` is NULL or valid.
unsafe fn iface<'a>(smpl: *const llama_sampler) -> Fallible<&'a llama_sampler_i> {
    // SAFETY: per the contract.
    let s = unsafe { handle(smpl, "smpl") }?;
    // SAFETY: per the contract.
    unsafe { handle(s.iface.cast_const(), "smpl->iface") }
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_name(smpl: *const llama_sampler) -> *const c_char {
    ffi!(c"(null)".as_ptr(), || {
        // SAFETY: smpl is NULL or live (llama.h contract).
        let i = unsafe { iface(smpl) }?;
        Ok(match i.name {
            // SAFETY: the sampler's own callback, on itself.
            Some(f) => unsafe { f(smpl) },
            None => c"(null)".as_ptr(),
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_accept(smpl: *mut llama_sampler, token: llama_token) {
    ffi!((), || {
        // SAFETY: smpl is NULL or live (llama.h contract).
        let i = unsafe { iface(smpl) }?;
        if let Some(f) = i.accept {
            // SAFETY: the sampler's own callback, on itself.
            unsafe { f(smpl, token) };
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_apply(
    smpl: *mut llama_sampler,
    cur_p: *mut llama_token_data_array,
) {
    ffi!((), || {
        // A NULL sampler applies nothing, silently, as the reference's: llama.cpp's common
        // sampler calls it on each of its optional stages (grammar, reasoning budget) per token.
        if smpl.is_null() {
            return Ok(());
        }
        // SAFETY: smpl is live (llama.h contract).
        let i = unsafe { iface(smpl) }?;
        if cur_p.is_null() {
            return Err("cur_p is NULL".into());
        }
        let f = i.apply.ok_or("the sampler has no apply function")?;
        // SAFETY: the sampler's own callback, on itself and the caller's array.
        unsafe { f(smpl, cur_p) };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_reset(smpl: *mut llama_sampler) {
    ffi!((), || {
        // SAFETY: smpl is NULL or live (llama.h contract).
        let i = unsafe { iface(smpl) }?;
        if let Some(f) = i.reset {
            // SAFETY: the sampler's own callback, on itself.
            unsafe { f(smpl) };
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_clone(smpl: *const llama_sampler) -> *mut llama_sampler {
    ffi!(std::ptr::null_mut(), || {
        // SAFETY: smpl is NULL or live (llama.h contract).
        let i = unsafe { iface(smpl) }?;
        if let Some(f) = i.clone {
            // SAFETY: the sampler's own callback, on itself.
            return Ok(unsafe { f(smpl) });
        }
        // SAFETY: smpl is live (checked by iface above).
        let s = unsafe { &*smpl };
        if s.ctx.is_null() {
            return Ok(Box::into_raw(Box::new(llama_sampler {
                iface: s.iface,
                ctx: std::ptr::null_mut(),
            })));
        }
        Err("the sampler does not support cloning (no clone function and a non-NULL ctx)".into())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_copy(src: *const llama_sampler, dst: *mut llama_sampler) {
    ffi!((), || {
        // SAFETY: src and dst are NULL or live (llama.h contract).
        let (i, _) = unsafe { (iface(src)?, iface(dst)?) };
        let f = i
            .copy_state
            .ok_or("the sampler has no copy_state function")?;
        // SAFETY: the sampler's own callback, on samplers of the same type (llama.h contract).
        unsafe { f(src, dst) };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_free(smpl: *mut llama_sampler) {
    ffi!((), || {
        if smpl.is_null() {
            return Ok(());
        }
        // SAFETY: a non-NULL smpl is live and made by llama_sampler_init / our init functions
        // (a Box), freed once (llama.h contract).
        unsafe {
            if let Some(i) = (*smpl).iface.as_ref() {
                if let Some(f) = i.free {
                    f(smpl);
                }
            }
            drop(Box::from_raw(smpl));
        }
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn llama_sampler_chain_init(
    params: llama_sampler_chain_params,
) -> *mut llama_sampler {
    let chain = Box::new(Chain {
        samplers: Vec::new(),
        no_perf: params.no_perf,
        t_sample_us: 0,
        n_sample: 0,
    });
    new_sampler(&CHAIN_IFACE, Box::into_raw(chain).cast())
}

/// The chain behind `chain`, or an error.
///
/// # Safety
/// `chain` is NULL or a live sampler.
unsafe fn chain_of<'a>(chain: *const llama_sampler) -> Fallible<&'a mut Chain> {
    if chain.is_null() {
        return Err("chain is NULL".into());
    }
    // SAFETY: per the contract.
    unsafe { chain_state(chain) }.ok_or_else(|| "the sampler is not a chain".into())
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_chain_add(
    chain: *mut llama_sampler,
    smpl: *mut llama_sampler,
) {
    ffi!((), || {
        // SAFETY: chain is NULL or live (llama.h contract).
        let c = unsafe { chain_of(chain) }?;
        if smpl.is_null() {
            return Err("smpl is NULL".into());
        }
        if std::ptr::eq(smpl, chain) || c.samplers.contains(&smpl) {
            return Err("the sampler is already in the chain (or is the chain)".into());
        }
        c.samplers.push(smpl);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_chain_get(
    chain: *mut llama_sampler,
    i: i32,
) -> *mut llama_sampler {
    ffi!(std::ptr::null_mut(), || {
        if chain.is_null() {
            return Ok(std::ptr::null_mut());
        }
        // SAFETY: chain is live (llama.h contract).
        let Some(c) = (unsafe { chain_state(chain) }) else {
            return Ok(std::ptr::null_mut());
        };
        if i == -1 {
            return Ok(chain);
        }
        Ok(usize::try_from(i)
            .ok()
            .and_then(|i| c.samplers.get(i).copied())
            .unwrap_or(std::ptr::null_mut()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_chain_n(chain: *const llama_sampler) -> i32 {
    ffi!(0, || {
        // SAFETY: chain is NULL or live (llama.h contract).
        Ok(unsafe { chain_of(chain) }?.samplers.len() as i32)
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_chain_remove(
    chain: *mut llama_sampler,
    i: i32,
) -> *mut llama_sampler {
    ffi!(std::ptr::null_mut(), || {
        // SAFETY: chain is NULL or live (llama.h contract).
        let c = unsafe { chain_of(chain) }?;
        match usize::try_from(i).ok().filter(|&i| i < c.samplers.len()) {
            Some(i) => Ok(c.samplers.remove(i)),
            None => Err(format!("index {i} out of range [0, {})", c.samplers.len())),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_get_seed(smpl: *const llama_sampler) -> u32 {
    ffi!(LLAMA_DEFAULT_SEED, || {
        if smpl.is_null() {
            return Err("smpl is NULL".into());
        }
        // SAFETY: smpl is live (llama.h contract).
        unsafe {
            if let Some(s) = rust_state(smpl) {
                return Ok(s.inner.get_seed());
            }
            if let Some(c) = chain_state(smpl) {
                for &s in c.samplers.iter().rev() {
                    let seed = llama_sampler_get_seed(s);
                    if seed != LLAMA_DEFAULT_SEED {
                        return Ok(seed);
                    }
                }
            }
        }
        Ok(LLAMA_DEFAULT_SEED)
    })
}

/// Samples from the logits of output `idx` (negative: from the last output back), accepts
/// the token and returns it; LLAMA_TOKEN_NULL (-1) with a log line on any error.
#[no_mangle]
pub unsafe extern "C" fn llama_sampler_sample(
    smpl: *mut llama_sampler,
    ctx: *mut llama_context,
    idx: i32,
) -> llama_token {
    let body = |c: &mut llama_context| -> Fallible<llama_token> {
        if smpl.is_null() {
            return Err("smpl is NULL".into());
        }
        let logits = c.logits_row(idx)?;
        let mut data: Vec<llama_token_data> = logits
            .iter()
            .enumerate()
            .map(|(id, &logit)| llama_token_data {
                id: id as i32,
                logit,
                p: 0.0,
            })
            .collect();
        let mut cur = llama_token_data_array {
            data: data.as_mut_ptr(),
            size: data.len(),
            selected: -1,
            sorted: false,
        };
        // SAFETY: smpl is live; cur describes `data`, alive for the call.
        unsafe { llama_sampler_apply(smpl, &mut cur) };
        let lo = data.as_ptr() as usize;
        let hi = lo + data.len() * std::mem::size_of::<llama_token_data>();
        let start = cur.data as usize;
        if start < lo
            || start > hi
            || cur.size > (hi - start) / std::mem::size_of::<llama_token_data>()
        {
            return Err("the sampler left cur_p outside the candidate array".into());
        }
        let i = usize::try_from(cur.selected)
            .ok()
            .filter(|&i| i < cur.size)
            .ok_or_else(|| {
                format!(
                    "no token selected (selected = {}, size = {})",
                    cur.selected, cur.size
                )
            })?;
        // SAFETY: start..start+size lies inside `data` (checked above), i < size.
        let token = unsafe { (*cur.data.add(i)).id };
        // SAFETY: smpl is live.
        unsafe { llama_sampler_accept(smpl, token) };
        Ok(token)
    };
    with_handle!(&mut ctx, LLAMA_TOKEN_NULL, body)
}

// ---- Our samplers.

#[no_mangle]
pub extern "C" fn llama_sampler_init_greedy() -> *mut llama_sampler {
    wrap(sampling::greedy())
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_dist(seed: u32) -> *mut llama_sampler {
    wrap(sampling::dist(seed))
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_top_k(k: i32) -> *mut llama_sampler {
    wrap(sampling::top_k(k))
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_top_p(p: f32, min_keep: usize) -> *mut llama_sampler {
    wrap(sampling::top_p(p, min_keep))
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_min_p(p: f32, min_keep: usize) -> *mut llama_sampler {
    wrap(sampling::min_p(p, min_keep))
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_typical(p: f32, min_keep: usize) -> *mut llama_sampler {
    wrap(sampling::typical(p, min_keep))
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_temp(t: f32) -> *mut llama_sampler {
    wrap(sampling::temp(t))
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_temp_ext(
    t: f32,
    delta: f32,
    exponent: f32,
) -> *mut llama_sampler {
    wrap(sampling::temp_ext(t, delta, exponent))
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_xtc(
    p: f32,
    t: f32,
    min_keep: usize,
    seed: u32,
) -> *mut llama_sampler {
    wrap(sampling::xtc(p, t, min_keep, seed))
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_top_n_sigma(n: f32) -> *mut llama_sampler {
    wrap(sampling::top_n_sigma(n))
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_mirostat(
    n_vocab: i32,
    seed: u32,
    tau: f32,
    eta: f32,
    m: i32,
) -> *mut llama_sampler {
    wrap(sampling::mirostat(n_vocab, seed, tau, eta, m))
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_mirostat_v2(
    seed: u32,
    tau: f32,
    eta: f32,
) -> *mut llama_sampler {
    wrap(sampling::mirostat_v2(seed, tau, eta))
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_penalties(
    n_vocab: i32,
    penalty_last_n: i32,
    penalty_repeat: f32,
    penalty_freq: f32,
    penalty_present: f32,
) -> *mut llama_sampler {
    wrap(sampling::penalties(
        n_vocab,
        penalty_last_n,
        penalty_repeat,
        penalty_freq,
        penalty_present,
    ))
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_init_dry(
    vocab: *const llama_vocab,
    dry_multiplier: f32,
    dry_base: f32,
    dry_allowed_length: i32,
    dry_penalty_last_n: i32,
    seq_breakers: *mut *const c_char,
    num_breakers: usize,
) -> *mut llama_sampler {
    ffi!(std::ptr::null_mut(), || {
        // SAFETY: vocab is NULL or live; seq_breakers holds num_breakers C strings (contract).
        let (v, list) = unsafe {
            (
                handle(vocab, "vocab")?,
                guard::c_slice(seq_breakers.cast_const(), num_breakers, "seq_breakers")?,
            )
        };
        let mut breakers: Vec<&[u8]> = Vec::with_capacity(list.len());
        for &p in list {
            // SAFETY: each entry is a C string (contract).
            breakers.push(unsafe { guard::c_bytes(p, "seq_breakers[i]") }?);
        }
        Ok(wrap(sampling::dry(
            &v.tok,
            dry_multiplier,
            dry_base,
            dry_allowed_length,
            dry_penalty_last_n,
            &breakers,
        )))
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_init_logit_bias(
    n_vocab: i32,
    n_logit_bias: i32,
    logit_bias: *const llama_logit_bias,
) -> *mut llama_sampler {
    ffi!(std::ptr::null_mut(), || {
        let n = usize::try_from(n_logit_bias)
            .map_err(|_| format!("n_logit_bias {n_logit_bias} is negative"))?;
        // SAFETY: logit_bias holds n_logit_bias entries (contract).
        let list = unsafe { guard::c_slice(logit_bias, n, "logit_bias") }?;
        let biases: Vec<(i32, f32)> = list.iter().map(|b| (b.token, b.bias)).collect();
        Ok(wrap(sampling::logit_bias(n_vocab, &biases)))
    },)
}

/// `refuse!(why)`: logs `<export>: why` and returns NULL (no sampler).
macro_rules! refuse {
    ($why:expr $(,)?) => {
        ffi!(std::ptr::null_mut(), || Err($why.to_string()))
    };
}

/// The C strings of a `char **` array as UTF-8 text.
///
/// # Safety
/// `list` is NULL (then `n` must be 0) or holds `n` C strings.
unsafe fn c_str_list<'a>(list: *mut *const c_char, n: usize, what: &str) -> Fallible<Vec<&'a str>> {
    // SAFETY: list holds n entries (caller's contract).
    let entries = unsafe { guard::c_slice(list.cast_const(), n, what) }?;
    // SAFETY: each entry is a C string (caller's contract).
    entries
        .iter()
        .map(|&p| unsafe { guard::c_str(p, what) })
        .collect()
}

/// A grammar sampler over `vocab`: `lazy` holds (trigger patterns, trigger tokens). A NULL or
/// empty grammar gives a sampler that constrains nothing, as the reference.
///
/// # Safety
/// `vocab` is NULL or live; the strings are NULL or C strings.
unsafe fn init_grammar(
    vocab: *const llama_vocab,
    grammar_str: *const c_char,
    grammar_root: *const c_char,
    lazy: Option<(Vec<&str>, &[llama_token])>,
) -> Fallible<*mut llama_sampler> {
    // SAFETY: as the function's contract.
    let v = unsafe { handle(vocab, "vocab") }?;
    let text = if grammar_str.is_null() {
        ""
    } else {
        // SAFETY: a C string (contract).
        unsafe { guard::c_str(grammar_str, "grammar_str") }?
    };
    let root = if text.is_empty() && grammar_root.is_null() {
        "root"
    } else {
        // SAFETY: a C string (contract); NULL is refused by c_str.
        unsafe { guard::c_str(grammar_root, "grammar_root") }?
    };
    let tokenize = |t: &[u8]| -> Vec<i32> {
        v.tok
            .tokenize_bytes(t, false, true)
            .into_iter()
            .map(|id| id as i32)
            .collect()
    };
    let sampler = match lazy {
        None => grammar::grammar(v.grammar_vocab(), text, root, Some(&tokenize)),
        Some((patterns, tokens)) => grammar::grammar_lazy(
            v.grammar_vocab(),
            text,
            root,
            &patterns,
            tokens,
            Some(&tokenize),
        ),
    }
    .map_err(|e| format!("failed to parse grammar: {e}"))?;
    Ok(wrap(Box::new(sampler)))
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_init_grammar(
    vocab: *const llama_vocab,
    grammar_str: *const c_char,
    grammar_root: *const c_char,
) -> *mut llama_sampler {
    ffi!(std::ptr::null_mut(), || {
        // SAFETY: forwarded C arguments (llama.h contract).
        unsafe { init_grammar(vocab, grammar_str, grammar_root, None) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_init_grammar_lazy(
    vocab: *const llama_vocab,
    grammar_str: *const c_char,
    grammar_root: *const c_char,
    trigger_words: *mut *const c_char,
    num_trigger_words: usize,
    trigger_tokens: *const llama_token,
    num_trigger_tokens: usize,
) -> *mut llama_sampler {
    ffi!(std::ptr::null_mut(), || {
        // SAFETY: forwarded C arguments: arrays of the given lengths (llama.h contract).
        unsafe {
            let words = c_str_list(trigger_words, num_trigger_words, "trigger_words")?;
            let tokens = guard::c_slice(trigger_tokens, num_trigger_tokens, "trigger_tokens")?;
            let pattern = grammar::trigger_words_pattern(&words);
            let patterns = if words.is_empty() {
                vec![]
            } else {
                vec![pattern.as_str()]
            };
            init_grammar(vocab, grammar_str, grammar_root, Some((patterns, tokens)))
        }
    },)
}

#[no_mangle]
pub unsafe extern "C" fn llama_sampler_init_grammar_lazy_patterns(
    vocab: *const llama_vocab,
    grammar_str: *const c_char,
    grammar_root: *const c_char,
    trigger_patterns: *mut *const c_char,
    num_trigger_patterns: usize,
    trigger_tokens: *const llama_token,
    num_trigger_tokens: usize,
) -> *mut llama_sampler {
    ffi!(std::ptr::null_mut(), || {
        // SAFETY: forwarded C arguments: arrays of the given lengths (llama.h contract).
        unsafe {
            let patterns = c_str_list(trigger_patterns, num_trigger_patterns, "trigger_patterns")?;
            let tokens = guard::c_slice(trigger_tokens, num_trigger_tokens, "trigger_tokens")?;
            init_grammar(vocab, grammar_str, grammar_root, Some((patterns, tokens)))
        }
    },)
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_adaptive_p(
    _target: f32,
    _decay: f32,
    _seed: u32,
) -> *mut llama_sampler {
    refuse!("the adaptive-p sampler is not supported yet",)
}

#[no_mangle]
pub extern "C" fn llama_sampler_init_infill(_vocab: *const llama_vocab) -> *mut llama_sampler {
    refuse!("the infill sampler is not supported yet",)
}

// ---- Sampler perf.

#[no_mangle]
pub unsafe extern "C" fn llama_perf_sampler(
    chain: *const llama_sampler,
) -> llama_perf_sampler_data {
    ffi!(llama_perf_sampler_data::default(), || {
        // SAFETY: chain is NULL or live (llama.h contract).
        let c = unsafe { chain_of(chain) }?;
        Ok(llama_perf_sampler_data {
            t_sample_ms: 1e-3 * c.t_sample_us as f64,
            n_sample: c.n_sample.max(1),
        })
    },)
}

#[no_mangle]
pub unsafe extern "C" fn llama_perf_sampler_print(chain: *const llama_sampler) {
    ffi!((), || {
        // SAFETY: chain is NULL or live (llama.h contract).
        unsafe { chain_of(chain) }?;
        // SAFETY: as above.
        let d = unsafe { llama_perf_sampler(chain) };
        guard::log(
            LOG_INFO,
            &format!(
                "{}:    sampling time = {:10.2} ms / {:5} runs   {}",
                guard::fn_name!(),
                d.t_sample_ms,
                d.n_sample,
                guard::per_token(d.t_sample_ms, d.n_sample)
            ),
        );
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn llama_perf_sampler_reset(chain: *mut llama_sampler) {
    ffi!((), || {
        // SAFETY: chain is NULL or live (llama.h contract).
        let c = unsafe { chain_of(chain) }?;
        c.t_sample_us = 0;
        c.n_sample = 0;
        Ok(())
    })
}

/// The name of a sampler as Rust text (for tests and logs).
///
/// # Safety
/// `smpl` is NULL or a live sampler.
pub unsafe fn sampler_name(smpl: *const llama_sampler) -> String {
    // SAFETY: smpl is NULL or live (contract); llama_sampler_name returns a static or
    // sampler-owned C string, or "(null)".
    unsafe { CStr::from_ptr(llama_sampler_name(smpl)) }
        .to_string_lossy()
        .into_owned()
}
