//! Generates run-time-loading bindings for the C++ reference (llama.cpp as built by
//! `cpp_ref/build.sh`): bindgen over `llama.h` and `ggml-cpu.h`, with `dynamic_library_name`, so
//! nothing links against `libllama` at build time. The reference is loaded with `dlopen` when
//! crossval runs (`src/reference/loader.rs`, through the engine's `bitnet::cpp_ref`).
//!
//! `cpp_ref/build.sh` is idempotent (about 0.1 s when the reference is up to date), so it is run
//! every time this script runs: it builds the reference on the first run (about 10 minutes on
//! 2 cores) and prints where it is.
//!
//! When the reference cannot be built (no cmake, no network for the sdist...), or when
//! `BITNET_CROSSVAL_NO_REF=1`, the crate still compiles with `cfg(crossval_no_ref)`: every
//! reference call then fails with "reference not built", and the integration tests print
//! "skipped: reference not built (run cpp_ref/build.sh)".

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

struct RefPaths {
    include: PathBuf,
    ggml_include: PathBuf,
    lib: PathBuf,
    bin: PathBuf,
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest_dir.parent().unwrap().to_path_buf();
    let script = repo.join("cpp_ref/build.sh");

    println!("cargo:rustc-check-cfg=cfg(crossval_no_ref)");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", script.display());
    println!(
        "cargo:rerun-if-changed={}",
        repo.join("cpp_ref/fetch_sdist.sh").display()
    );
    // Where the reference lives (bitnet::cpp_ref::dist_dir's rule) is build.sh's to work out: a
    // build script cannot call the library, so it only reruns when those variables change.
    for var in [
        "BITNET_CPP_REF_DIR",
        "BITNET_CACHE_DIR",
        "BITNET_CPP_REF_NATIVE",
        "BITNET_CROSSVAL_NO_REF",
        "HOME",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    if env::var("BITNET_CROSSVAL_NO_REF").as_deref() == Ok("1") {
        no_ref("BITNET_CROSSVAL_NO_REF=1");
        return;
    }

    let paths = match run_build_script(&script) {
        Ok(p) => p,
        Err(e) => {
            no_ref(&e);
            return;
        }
    };

    let dist = paths.lib.parent().unwrap().to_path_buf();
    let stamp_path = dist.join(".bitnet-cpp-ref.stamp");
    let stamp = std::fs::read_to_string(&stamp_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", stamp_path.display()));
    // A rebuilt reference (new stamp) regenerates the bindings.
    println!("cargo:rerun-if-changed={}", stamp_path.display());
    let llama_h = paths.include.join("llama.h");
    let ggml_cpu_h = paths.ggml_include.join("ggml-cpu.h");
    println!("cargo:rerun-if-changed={}", llama_h.display());
    println!("cargo:rerun-if-changed={}", ggml_cpu_h.display());

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    generate(&paths, &llama_h, &ggml_cpu_h, &out.join("ref_bindings.rs"));

    println!(
        "cargo:rustc-env=CROSSVAL_REF_LIB_DIR={}",
        paths.lib.display()
    );
    println!(
        "cargo:rustc-env=CROSSVAL_REF_BIN_DIR={}",
        paths.bin.display()
    );
    println!("cargo:rustc-env=CROSSVAL_REF_STAMP={}", stamp.trim());
}

fn no_ref(why: &str) {
    println!("cargo:warning=crossval: C++ reference unavailable ({why}); building without it");
    println!("cargo:rustc-cfg=crossval_no_ref");
    println!("cargo:rustc-env=CROSSVAL_NO_REF_REASON={why}");
}

fn run_build_script(script: &Path) -> Result<RefPaths, String> {
    let out = Command::new("bash")
        .arg(script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", script.display(), out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Result<PathBuf, String> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(PathBuf::from)
            .ok_or_else(|| format!("{} printed no {name}= line", script.display()))
    };
    let paths = RefPaths {
        include: field("include")?,
        ggml_include: field("ggml_include")?,
        lib: field("lib")?,
        bin: field("bin")?,
    };
    if !paths.lib.join("libllama.so").is_file() {
        return Err(format!("no libllama.so in {}", paths.lib.display()));
    }
    if !paths.bin.is_dir() {
        return Err(format!("no bin directory {}", paths.bin.display()));
    }
    Ok(paths)
}

fn generate(paths: &RefPaths, llama_h: &Path, ggml_cpu_h: &Path, out: &Path) {
    let wrapper = format!(
        "#include \"{}\"\n#include \"{}\"\n",
        llama_h.display(),
        ggml_cpu_h.display()
    );
    let bindings = bindgen::Builder::default()
        .header_contents("crossval_wrapper.h", &wrapper)
        .clang_arg(format!("-I{}", paths.include.display()))
        .clang_arg(format!("-I{}", paths.ggml_include.display()))
        // Everything the crossval runner and the op tests call; one struct, resolved from the
        // libllama handle (dlsym on a handle searches its dependencies: libggml*, too).
        .allowlist_function("llama_.*")
        .allowlist_function("ggml_get_type_traits_cpu")
        .allowlist_function("ggml_get_type_traits")
        .allowlist_function("ggml_cpu_init")
        .allowlist_function("ggml_cpu_has_.*")
        .allowlist_function("ggml_type_name")
        .allowlist_function("ggml_type_size")
        .allowlist_function("ggml_blck_size")
        .allowlist_type("ggml_type_traits_cpu")
        .allowlist_type("ggml_type_traits")
        .allowlist_type("llama_.*")
        .dynamic_library_name("RefApi")
        .dynamic_link_require_all(false)
        .derive_default(false)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .generate()
        .expect("bindgen failed on llama.h / ggml-cpu.h");
    bindings
        .write_to_file(out)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
