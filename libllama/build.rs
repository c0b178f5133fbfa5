//! Gives libllama.so the SONAME of the reference build, `libllama.so.0`, so a program linked
//! against either library runs against the other, and adds the `libllama.so.0` link next to
//! `libllama.so` in target/<profile>/ so such a program also runs straight from the build tree
//! (`LD_LIBRARY_PATH=target/release`). `cmake/` installs the usual three-name layout.

use std::env;
use std::path::{Path, PathBuf};

const SONAME: &str = "libllama.so.0";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{SONAME}");

    // OUT_DIR is <target>/<profile>/build/llama-<hash>/out (also with --target <triple>), so the
    // third ancestor is the directory that receives libllama.so.
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let Some(profile_dir) = out_dir.ancestors().nth(3) else {
        return;
    };
    let link = profile_dir.join(SONAME);
    if std::fs::read_link(&link).is_ok_and(|target| target == Path::new("libllama.so")) {
        return;
    }
    let _ = std::fs::remove_file(&link);
    // A failure here only costs the convenience link; the library itself is unaffected.
    if let Err(e) = std::os::unix::fs::symlink("libllama.so", &link) {
        println!("cargo:warning=cannot create {}: {e}", link.display());
    }
}
