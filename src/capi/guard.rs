//! The guard exports run their bodies under, the log callback, and small helpers for C strings
//! and buffers.
//!
//! `ffi_as(name, on_error, body)` runs `body` under `catch_unwind`; an `Err(message)` or a
//! panic becomes `on_error` (the value llama.h documents for failure) plus one log line
//! `name: message` through the callback set with `llama_log_set` (default: stderr, as the
//! reference). Exports do not write their name: `ffi!(on_error, || body)` passes the name of
//! the function it is written in (`fn_name!`), and `with_handle!(&h, on_error, |x| body)` does
//! the same after turning the handle argument `h` into a reference (NULL: an error "h is
//! NULL"). `ffi_as` with a written name is left for helpers that run on behalf of an export
//! (`fn_name!()` passed in) and for the sampler interface callbacks, which log under the
//! public function that calls them.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use super::ggml::{enum_ggml_log_level, ggml_log_callback, ggml_log_level};

pub const LOG_DEBUG: enum_ggml_log_level = ggml_log_level::GGML_LOG_LEVEL_DEBUG as c_int;
pub const LOG_INFO: enum_ggml_log_level = ggml_log_level::GGML_LOG_LEVEL_INFO as c_int;
pub const LOG_WARN: enum_ggml_log_level = ggml_log_level::GGML_LOG_LEVEL_WARN as c_int;
pub const LOG_ERROR: enum_ggml_log_level = ggml_log_level::GGML_LOG_LEVEL_ERROR as c_int;

/// The error side of an export's body: a message for the log.
pub type Fallible<T> = Result<T, String>;

/// The log callback and its user data (a pointer kept as an integer so the static is Sync).
struct Logger {
    callback: ggml_log_callback,
    user_data: usize,
}

static LOGGER: Mutex<Logger> = Mutex::new(Logger {
    callback: None,
    user_data: 0,
});

/// The default logger: the text to stderr whatever the level, as the reference's.
pub unsafe extern "C" fn log_to_stderr(
    _level: enum_ggml_log_level,
    text: *const c_char,
    _user_data: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: `log` below passes a NUL-terminated CString; other callers follow llama.h.
    let text = unsafe { CStr::from_ptr(text) };
    eprint!("{}", text.to_string_lossy());
}

pub fn set_logger(callback: ggml_log_callback, user_data: *mut c_void) {
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    l.callback = callback;
    l.user_data = user_data as usize;
}

pub fn logger() -> (ggml_log_callback, *mut c_void) {
    let l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    match l.callback {
        Some(cb) => (Some(cb), l.user_data as *mut c_void),
        None => (Some(log_to_stderr), std::ptr::null_mut()),
    }
}

/// Sends one line to the log callback (a newline is added when missing).
pub fn log(level: enum_ggml_log_level, message: &str) {
    let mut text = message.replace('\0', "\\0");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let Ok(text) = CString::new(text) else { return };
    let (callback, user_data) = logger();
    if let Some(cb) = callback {
        // SAFETY: the callback was registered through llama_log_set with this user data (or
        // is our default); `text` outlives the call.
        unsafe { cb(level, text.as_ptr(), user_data) };
    }
}

/// Runs an export's body: panics and errors become `on_error` and a logged line.
pub fn ffi_as<T>(name: &str, on_error: T, body: impl FnOnce() -> Fallible<T>) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(message)) => {
            log(LOG_ERROR, &format!("{name}: {message}"));
            on_error
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            log(LOG_ERROR, &format!("{name}: internal error: {what}"));
            on_error
        }
    }
}

/// The last segment of a function's path as `std::any::type_name` writes it, after the
/// helper item `here` and any closures: `crate::capi::context::llama_decode::here` ->
/// `llama_decode`. Used by `fn_name!`.
pub fn fn_name_of(path: &'static str) -> &'static str {
    let mut p = path.strip_suffix("::here").unwrap_or(path);
    while let Some(outer) = p.strip_suffix("::{{closure}}") {
        p = outer;
    }
    p.rsplit("::").next().unwrap_or(p)
}

/// The name of the function it is written in (closures aside): in an export, its C name,
/// kept right by the compiler instead of written out a second time.
macro_rules! fn_name {
    () => {{
        fn here() {}
        $crate::capi::guard::fn_name_of(::std::any::type_name_of_val(&here))
    }};
}
pub(crate) use fn_name;

/// `ffi!(on_error, || body)`: [`ffi_as`] under the name of the export it is written in.
macro_rules! ffi {
    ($on_error:expr, $body:expr $(,)?) => {
        $crate::capi::guard::ffi_as($crate::capi::guard::fn_name!(), $on_error, $body)
    };
}
pub(crate) use ffi;

/// `with_handle!(&h, on_error, |x| body)` (or `&mut h`, or `&mut h as T` for an opaque
/// pointer type that is a `T`): [`ffi!`] around `body` with `x` the object behind the
/// export's handle argument `h`. A NULL `h` is refused with "h is NULL" and `on_error`;
/// `body` returns a [`Fallible`].
///
/// `h` must be one of the export's own pointer arguments: C's promise under llama.h (NULL or
/// a live handle this library returned, used by one thread at a time) is what makes the
/// conversion sound, so the macro's one `unsafe` block carries it for every export.
macro_rules! with_handle {
    (& $h:ident, $on_error:expr, $f:expr $(,)?) => {
        $crate::capi::guard::ffi!($on_error, || {
            let p = $h;
            // SAFETY: `p` is the export's handle argument: NULL or live (llama.h contract).
            let x = unsafe { $crate::capi::guard::handle(p, stringify!($h)) }?;
            $crate::capi::guard::apply(x, $f)
        })
    };
    (&mut $h:ident $(as $t:ty)?, $on_error:expr, $f:expr $(,)?) => {
        $crate::capi::guard::ffi!($on_error, || {
            let p = $h $(.cast::<$t>())?;
            // SAFETY: `p` is the export's handle argument: NULL or live, and used by one
            // thread at a time (llama.h contract).
            let x = unsafe { $crate::capi::guard::handle_mut(p, stringify!($h)) }?;
            $crate::capi::guard::apply(x, $f)
        })
    };
}
pub(crate) use with_handle;

/// `f(a)`: lets `with_handle!` give its closure the handle's type before the closure is read.
pub fn apply<A, R>(a: A, f: impl FnOnce(A) -> R) -> R {
    f(a)
}

/// `&T` from a handle C gave us, or an error naming the NULL argument.
///
/// # Safety
/// `p` is NULL or points to a live `T` (a handle this library returned and that was not freed).
pub unsafe fn handle<'a, T>(p: *const T, what: &str) -> Fallible<&'a T> {
    // SAFETY: per this function's contract.
    unsafe { p.as_ref() }.ok_or_else(|| format!("{what} is NULL"))
}

/// `&mut T` from a handle C gave us (see `handle`); C uses one handle from one thread at a time.
///
/// # Safety
/// As `handle`, and no other reference to `*p` is alive during the call.
pub unsafe fn handle_mut<'a, T>(p: *mut T, what: &str) -> Fallible<&'a mut T> {
    // SAFETY: per this function's contract.
    unsafe { p.as_mut() }.ok_or_else(|| format!("{what} is NULL"))
}

/// Frees a handle this library made with `Box::into_raw`; NULL does nothing (llama.h's free
/// functions accept it).
///
/// # Safety
/// `p` is NULL or came from `Box::into_raw` here, and is not used again.
pub unsafe fn free_box<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: per this function's contract.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// A NUL-terminated C string as bytes.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives `'a`.
pub unsafe fn c_bytes<'a>(p: *const c_char, what: &str) -> Fallible<&'a [u8]> {
    if p.is_null() {
        return Err(format!("{what} is NULL"));
    }
    // SAFETY: per this function's contract.
    Ok(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// A NUL-terminated C string that must be UTF-8.
///
/// # Safety
/// As `c_bytes`.
pub unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Fallible<&'a str> {
    // SAFETY: per this function's contract.
    let b = unsafe { c_bytes(p, what) }?;
    std::str::from_utf8(b).map_err(|_| format!("{what} is not UTF-8"))
}

/// A C array as a slice (`n` == 0 gives an empty slice whatever `p` is).
///
/// # Safety
/// `p` is NULL or points to `n` initialized values that outlive `'a`.
pub unsafe fn c_slice<'a, T>(p: *const T, n: usize, what: &str) -> Fallible<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(format!("{what} is NULL"));
    }
    // SAFETY: per this function's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// snprintf("%s") into a C buffer: writes at most `size - 1` bytes and a NUL (nothing when
/// `size` is 0) and returns the full length of `text`.
///
/// # Safety
/// `buf` is NULL (then `size` must be 0) or points to `size` writable bytes.
pub unsafe fn snprintf(buf: *mut c_char, size: usize, text: &[u8]) -> i32 {
    if !buf.is_null() && size > 0 {
        let n = text.len().min(size - 1);
        // SAFETY: n + 1 <= size bytes are writable at `buf` (contract); `text` has n bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
        }
    }
    i32::try_from(text.len()).unwrap_or(i32::MAX)
}

/// Clears a C string buffer (the reference's failure convention for meta getters).
///
/// # Safety
/// As `snprintf`.
pub unsafe fn clear_buf(buf: *mut c_char, size: usize) {
    if !buf.is_null() && size > 0 {
        // SAFETY: at least one byte is writable (contract).
        unsafe { *buf = 0 };
    }
}

/// Copies `bytes` into a C buffer of `len` bytes when it fits; returns its length, or its
/// negated length when it does not fit (llama_token_to_piece / llama_detokenize convention).
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes (`len` < 0 counts as 0).
pub unsafe fn copy_or_negative(bytes: &[u8], buf: *mut c_char, len: i32) -> Fallible<i32> {
    let n = i32::try_from(bytes.len()).map_err(|_| "result is longer than i32::MAX")?;
    if n > len.max(0) {
        return Ok(-n);
    }
    if n > 0 {
        if buf.is_null() {
            return Err("output buffer is NULL".into());
        }
        // SAFETY: n <= len writable bytes at `buf` (contract).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len()) };
    }
    Ok(n)
}

/// The rate part of the reference's perf lines: `(  x.xx ms per token,   y.yy tokens per
/// second)` for `n` runs that took `ms` milliseconds.
pub fn per_token(ms: f64, n: i32) -> String {
    format!(
        "({:8.2} ms per token, {:8.2} tokens per second)",
        ms / n as f64,
        1e3 / ms * n as f64
    )
}

/// CLOCK_MONOTONIC in microseconds, the clock of ggml's `ggml_time_us`: a program of llama.cpp
/// that has the real libggml loaded next to us gets the same answer from either copy of
/// `ggml_time_us`, and can subtract our perf timestamps from its own.
pub fn monotonic_us() -> i64 {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: c_int, ts: *mut Timespec) -> c_int;
    }
    // Linux's CLOCK_MONOTONIC.
    const CLOCK_MONOTONIC: c_int = 1;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec (two 64-bit fields on 64-bit Linux).
    let rc = unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        // Cannot fail for CLOCK_MONOTONIC with a valid pointer; a clock standing still would
        // only make timings zero.
        return 1;
    }
    ts.tv_sec * 1_000_000 + ts.tv_nsec / 1_000
}

#[cfg(test)]
mod tests {
    fn llama_example_export() -> &'static str {
        fn_name!()
    }

    #[test]
    fn fn_name_is_the_enclosing_function() {
        assert_eq!(llama_example_export(), "llama_example_export");
        let in_closure = || fn_name!();
        assert_eq!(in_closure(), "fn_name_is_the_enclosing_function");
    }

    #[test]
    fn per_token_is_the_reference_perf_rate() {
        assert_eq!(
            super::per_token(10.0, 4),
            "(    2.50 ms per token,   400.00 tokens per second)"
        );
    }

    #[test]
    fn with_handle_refuses_null_and_lends_the_object() {
        fn get(h: *const u32) -> u32 {
            with_handle!(&h, 0, |x| Ok(*x + 1))
        }
        let v = 41u32;
        assert_eq!(get(&v), 42);
        assert_eq!(get(std::ptr::null()), 0);
    }
}
