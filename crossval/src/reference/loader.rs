//! The reference `libllama.so` for crossval: opened and checked by the engine's own loader
//! (`bitnet::cpp_ref`: `dlopen` with `RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND`, never the global
//! scope, and the `dladdr` canary), with bindgen's function table (`RefApi`) bound on its
//! handle, once per process (docs/reference.md, "The symbol-interposition trap").
//!
//! The canary runs every time the library is loaded: the resolved `llama_model_load_from_file`,
//! `ggml_get_type_traits_cpu` (libggml-cpu) and `ggml_type_size` (libggml-base) must lie in
//! files inside the reference lib directory, and the global scope must not see the reference's
//! `llama_model_load_from_file`. Anything else is a hard error.

// Most of this module is the real loader; a crossval_no_ref build keeps only the skip path.
#![cfg_attr(crossval_no_ref, allow(unused_imports, dead_code))]

use std::ffi::{c_void, CStr};
use std::os::raw::c_char;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

pub use bitnet::cpp_ref::{Canary, SymbolOrigin};

use super::ffi::RefApi;
use crate::Result;

/// The loaded reference: one per process, never unloaded (OpenMP worker threads and static
/// destructors make `dlclose` of libllama unsafe while a process runs on).
pub struct RefLib {
    pub api: RefApi,
    pub lib_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub canary: Canary,
}

// SAFETY: `RefApi` is a table of function pointers plus the library handle; llama.cpp's model and
// context objects are what carry state, and crossval never shares one across threads at once.
unsafe impl Sync for RefLib {}
// SAFETY: as above; the handle and pointers may move between threads.
unsafe impl Send for RefLib {}

static REF: OnceLock<std::result::Result<RefLib, String>> = OnceLock::new();

/// Why the reference is unavailable, if it is (for skip messages): None when it is built.
pub fn unavailable_reason() -> Option<String> {
    #[cfg(crossval_no_ref)]
    {
        Some(env!("CROSSVAL_NO_REF_REASON").to_string())
    }
    #[cfg(not(crossval_no_ref))]
    {
        let dir = lib_dir();
        if dir.join("libllama.so").is_file() {
            None
        } else {
            Some(format!("no {}", dir.join("libllama.so").display()))
        }
    }
}

/// The reference lib directory: `$BITNET_CPP_REF_DIR/dist/lib` when that variable is set at run
/// time, else the directory `cpp_ref/build.sh` printed when crossval was built.
pub fn lib_dir() -> PathBuf {
    bitnet::cpp_ref::lib_dir_from_env().unwrap_or_else(|| {
        PathBuf::from(
            option_env!("CROSSVAL_REF_LIB_DIR").unwrap_or("/nonexistent/cpp_ref/dist/lib"),
        )
    })
}

/// Loads the reference once per process (later calls return the same one, or the same error).
pub fn get() -> Result<&'static RefLib> {
    REF.get_or_init(|| load(&lib_dir()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| e.clone().into())
}

#[cfg(crossval_no_ref)]
fn load(_dir: &Path) -> Result<RefLib> {
    Err(format!(
        "reference not built ({}): run cpp_ref/build.sh, then rebuild crossval",
        unavailable_reason().unwrap_or_default()
    )
    .into())
}

#[cfg(not(crossval_no_ref))]
fn load(dir: &Path) -> Result<RefLib> {
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("reference not built: {}: {e}", dir.display()))?;
    let dist = dir.parent().unwrap_or(&dir).to_path_buf();

    // The headers the bindings came from must be the ones this library was built with.
    let stamp_path = dist.join(".bitnet-cpp-ref.stamp");
    let stamp = std::fs::read_to_string(&stamp_path)
        .map_err(|e| format!("cannot read {}: {e}", stamp_path.display()))?;
    let built_with = env!("CROSSVAL_REF_STAMP");
    if stamp.trim() != built_with {
        return Err(format!(
            "the reference in {} (stamp {}) is not the one crossval was compiled against \
             (stamp {built_with}): rebuild crossval (cargo build -p crossval)",
            dist.display(),
            stamp.trim()
        )
        .into());
    }

    let lib = bitnet::cpp_ref::Library::open(&dir)?;
    // SAFETY: the handle comes from dlopen (bitnet::cpp_ref::Library::open) and is never closed
    // by anyone else; the RefApi that owns it lives in a process-wide static and is never
    // dropped, so libloading never closes it either.
    let handle = unsafe { libloading::os::unix::Library::from_raw(lib.handle()) };
    // SAFETY: bindgen's loader only looks symbols up (dlsym) on the handle; missing ones stay
    // `Err` and are reported when called.
    let api = unsafe { RefApi::from_library(libloading::Library::from(handle)) }
        .map_err(|e| format!("cannot bind {}: {e}", dir.join("libllama.so").display()))?;

    let canary = run_canary(&api, &lib)?;
    let bin_dir = dist.join("bin");
    let lib = RefLib {
        api,
        lib_dir: dir,
        bin_dir,
        canary,
    };
    lib.init();
    Ok(lib)
}

#[cfg(not(crossval_no_ref))]
fn run_canary(api: &RefApi, lib: &bitnet::cpp_ref::Library) -> Result<Canary> {
    fn fn_addr<T: Copy>(
        name: &'static str,
        f: &std::result::Result<T, libloading::Error>,
    ) -> Result<(&'static str, usize)> {
        match f {
            // SAFETY: `T` is an `unsafe extern "C" fn(...)`, pointer-sized; we only read its
            // address.
            Ok(p) => Ok((name, unsafe { std::mem::transmute_copy::<T, usize>(p) })),
            Err(e) => Err(format!("reference symbol {name} missing: {e}").into()),
        }
    }
    let checks = [
        fn_addr(
            "llama_model_load_from_file",
            &api.llama_model_load_from_file,
        )?,
        fn_addr("ggml_get_type_traits_cpu", &api.ggml_get_type_traits_cpu)?,
        fn_addr("ggml_type_size", &api.ggml_type_size)?,
    ];
    Ok(bitnet::cpp_ref::canary(lib, &checks)?)
}

// --- Logging: llama.cpp's log goes to a buffer; errors are quoted from it. ---

static LOG: Mutex<String> = Mutex::new(String::new());

/// Takes (and clears) what the reference logged since the last call.
pub fn take_log() -> String {
    std::mem::take(&mut *LOG.lock().unwrap_or_else(|p| p.into_inner()))
}

#[cfg(not(crossval_no_ref))]
unsafe extern "C" fn log_callback(
    _level: super::ffi::ggml_log_level,
    text: *const c_char,
    _user: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated message valid for the duration of the call.
    let s = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let mut log = LOG.lock().unwrap_or_else(|p| p.into_inner());
    // Bounded: keep the tail only.
    if log.len() > 1 << 20 {
        let cut = log.len() - (1 << 19);
        let cut = (cut..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        log.drain(..cut);
    }
    log.push_str(&s);
    if std::env::var_os("CROSSVAL_REF_LOG").is_some() {
        eprint!("[ref] {s}");
    }
}

impl RefLib {
    #[cfg(not(crossval_no_ref))]
    fn init(&self) {
        // SAFETY: plain calls into the reference; the callback is a 'static function that never
        // unwinds (it only appends to a mutex-guarded String).
        unsafe {
            self.api
                .llama_log_set(Some(log_callback), std::ptr::null_mut());
            self.api.llama_backend_init();
            self.api.ggml_cpu_init();
        }
    }

    /// The CPU features ggml-cpu was compiled for/detects (for the report).
    #[cfg(not(crossval_no_ref))]
    pub fn cpu_features(&self) -> String {
        let mut v = Vec::new();
        // SAFETY: argument-less queries of static build/CPU facts.
        unsafe {
            let api = &self.api;
            for (name, on) in [
                ("avx", api.ggml_cpu_has_avx()),
                ("avx2", api.ggml_cpu_has_avx2()),
                ("f16c", api.ggml_cpu_has_f16c()),
                ("fma", api.ggml_cpu_has_fma()),
                ("avx_vnni", api.ggml_cpu_has_avx_vnni()),
                ("avx512", api.ggml_cpu_has_avx512()),
                ("avx512_vnni", api.ggml_cpu_has_avx512_vnni()),
                ("avx512_bf16", api.ggml_cpu_has_avx512_bf16()),
                ("llamafile", api.ggml_cpu_has_llamafile()),
            ] {
                if on != 0 {
                    v.push(name);
                }
            }
        }
        v.join(",")
    }

    #[cfg(crossval_no_ref)]
    pub fn cpu_features(&self) -> String {
        String::new()
    }

    #[cfg(crossval_no_ref)]
    fn init(&self) {}
}
