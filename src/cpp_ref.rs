//! Finding and opening the C++ reference `libllama.so` (the build of cpp_ref/build.sh) at run
//! time, without letting its symbols and ours mix, and the canary that proves they did not. Used
//! by `bitnet verify` (a few functions looked up with [`Library::symbol`]) and by crossval (its
//! bindgen function table, built on [`Library::handle`]).
//!
//! The symbol trap (docs/reference.md, "The symbol-interposition trap"): this library exports
//! `llama_*` functions of its own. Were the reference loaded into the global symbol scope, or did
//! it resolve its own calls through that scope, a call meant for the reference could land in our
//! code, and a comparison would compare us with ourselves. So:
//!
//! - `libllama.so` is opened with `RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND`: its symbols stay out
//!   of the global scope, and its own references (and those of the libggml* it pulls in) bind
//!   inside its own dependency tree first.
//! - Every function is looked up on that handle, never in the global scope.
//! - [`canary`] checks, with `dladdr`, that the looked-up functions lie in files of the
//!   reference's lib directory, that the reference's `llama_model_load_from_file` is not ours,
//!   and that the global scope does not see the reference's copy.
//!
//! The library is never closed: llama.cpp's static state and OpenMP worker threads make
//! `dlclose` unsafe while the process runs on.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

/// The reference's install tree (`dist`: lib/, include/, bin/ and the build stamp):
/// `$BITNET_CPP_REF_DIR/dist`, else `<cache>/cpp_ref/dist` (see [`crate::cache::dir`]); None
/// when neither can be named.
pub fn dist_dir() -> Option<PathBuf> {
    crate::cache::env_path(crate::env::CPP_REF_DIR)
        .or_else(|| crate::cache::dir().map(|c| c.join("cpp_ref")))
        .map(|root| root.join("dist"))
}

/// The reference's lib directory, `dist_dir()/lib`.
pub fn lib_dir() -> Option<PathBuf> {
    dist_dir().map(|d| d.join("lib"))
}

/// `$BITNET_CPP_REF_DIR/dist/lib`, when that variable is set (and not empty).
pub fn lib_dir_from_env() -> Option<PathBuf> {
    crate::cache::env_path(crate::env::CPP_REF_DIR).map(|d| d.join("dist/lib"))
}

// glibc's values (dlfcn.h).
const RTLD_NOW: c_int = 2;
const RTLD_LOCAL: c_int = 0;
const RTLD_DEEPBIND: c_int = 8;
/// glibc's `RTLD_DEFAULT`: look a name up in the global scope.
const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

#[repr(C)]
struct DlInfo {
    dli_fname: *const c_char,
    dli_fbase: *mut c_void,
    dli_sname: *const c_char,
    dli_saddr: *mut c_void,
}

extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *const c_char;
    fn dladdr(addr: *const c_void, info: *mut DlInfo) -> c_int;
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl* call.
    let p = unsafe { dlerror() };
    if p.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-NULL and NUL-terminated (above); copied at once.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// The opened reference `libllama.so`. Never closed (module doc).
pub struct Library {
    handle: *mut c_void,
    dir: PathBuf,
}

// SAFETY: the handle is an opaque token of the dynamic loader, which is thread-safe (dlsym and
// dladdr may be called from any thread); the reference's state lives in the objects its
// functions return, not in this struct.
unsafe impl Send for Library {}
// SAFETY: as above; `&Library` only allows lookups.
unsafe impl Sync for Library {}

impl Library {
    /// Opens `dir/libllama.so` with `RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND`. `dir` is made
    /// canonical, as the canary compares paths.
    pub fn open(dir: &Path) -> Result<Library, String> {
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("reference not built: {}: {e}", dir.display()))?;
        let path = dir.join("libllama.so");
        let c_path = CString::new(path.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: loading runs the reference's (and libggml*'s) static initialisers, which only
        // set up their own tables; RTLD_LOCAL | RTLD_DEEPBIND keep its symbols away from ours
        // (module doc).
        let handle = unsafe { dlopen(c_path.as_ptr(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND) };
        if handle.is_null() {
            return Err(format!("cannot dlopen {}: {}", path.display(), dl_error()));
        }
        Ok(Library { handle, dir })
    }

    /// The `dlopen` handle, for binding a function table on it. The handle stays valid for the
    /// whole process; whoever wraps it must never `dlclose` it.
    pub fn handle(&self) -> *mut c_void {
        self.handle
    }

    /// The canonical lib directory the library was opened from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The address of `name`, looked up on the reference's handle (never the global scope).
    pub fn symbol(&self, name: &str) -> Result<*mut c_void, String> {
        let c_name = CString::new(name).map_err(|e| e.to_string())?;
        // SAFETY: the handle is live (never closed) and c_name is NUL-terminated.
        let p = unsafe { dlsym(self.handle, c_name.as_ptr()) };
        if p.is_null() {
            Err(format!("reference symbol {name} missing"))
        } else {
            Ok(p)
        }
    }
}

/// Where one symbol came from.
#[derive(Clone, Debug)]
pub struct SymbolOrigin {
    pub symbol: String,
    pub address: usize,
    pub file: PathBuf,
}

/// The canary's findings, kept for reports.
#[derive(Clone, Debug)]
pub struct Canary {
    pub lib_dir: PathBuf,
    /// The checked reference functions and the files `dladdr` names for them (all in
    /// `lib_dir`).
    pub resolved: Vec<SymbolOrigin>,
    /// What the *global* scope resolves `llama_model_load_from_file` to, if anything (this
    /// library's own export, once it is loaded in the process). Never the reference's.
    pub global_llama_symbol: Option<SymbolOrigin>,
}

/// The file that holds the code at `addr` (`dladdr`), if the loader knows it.
fn symbol_origin(name: &str, addr: usize) -> Option<SymbolOrigin> {
    let mut info = DlInfo {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr only reads the loader's tables for `addr` and fills `info`.
    let ok = unsafe { dladdr(addr as *const c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader, valid while the object
    // stays loaded; copied at once.
    let file = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(SymbolOrigin {
        symbol: name.to_string(),
        address: addr,
        file: PathBuf::from(file.to_string_lossy().into_owned()),
    })
}

/// Proves that the reference functions `symbols` (name, address as looked up on the
/// reference's handle) come from the reference: each lies in a file of `lib.dir()`; and, where
/// `llama_model_load_from_file` is among them, it is neither this library's export nor what the
/// global scope resolves that name to. Anything else is an error that says what went wrong.
pub fn canary(lib: &Library, symbols: &[(&str, usize)]) -> Result<Canary, String> {
    const LOAD: &str = "llama_model_load_from_file";
    let dir = lib.dir();
    let mut resolved = Vec::new();
    for &(name, addr) in symbols {
        let origin = symbol_origin(name, addr).ok_or_else(|| {
            format!("canary: dladdr cannot place reference symbol {name} at {addr:#x}")
        })?;
        let file = origin.file.canonicalize().unwrap_or(origin.file.clone());
        if file.parent() != Some(dir) {
            return Err(format!(
                "canary: SYMBOL INTERPOSITION: reference symbol {name} resolved to {} (at \
                 {addr:#x}), not to a library in {}",
                origin.file.display(),
                dir.display()
            ));
        }
        resolved.push(SymbolOrigin { file, ..origin });
    }
    let theirs = resolved
        .iter()
        .find(|o| o.symbol == LOAD)
        .map(|o| o.address);
    let ours = crate::capi::llama_model_load_from_file as *const c_void as usize;
    if theirs == Some(ours) {
        return Err(format!(
            "canary: SYMBOL INTERPOSITION: the reference's {LOAD} is this library's own"
        ));
    }
    // What a plain dlsym(RTLD_DEFAULT) gives: ours, or nothing. The reference's own pointer
    // there means RTLD_LOCAL did not hold.
    let global = {
        let c_name = CString::new(LOAD).expect("no NUL in a symbol name");
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads the loader's
        // tables.
        let p = unsafe { dlsym(RTLD_DEFAULT, c_name.as_ptr()) };
        if p.is_null() {
            None
        } else {
            symbol_origin(LOAD, p as usize)
        }
    };
    if let (Some(g), Some(theirs)) = (&global, theirs) {
        if g.address == theirs {
            return Err(format!(
                "canary: the reference's {LOAD} is visible in the global symbol scope ({}): \
                 RTLD_LOCAL did not hold",
                g.file.display()
            ));
        }
    }
    Ok(Canary {
        lib_dir: dir.to_path_buf(),
        resolved,
        global_llama_symbol: global,
    })
}
