//! Compiles src/capi/ext.cpp (the C++ half of libllama's extension API, see src/capi/ext.rs)
//! into a static library linked with the crate; its functions stay hidden, reached through the
//! Rust exports' jumps.

fn main() {
    println!("cargo:rerun-if-changed=src/capi/ext.cpp");
    cc::Build::new()
        .cpp(true)
        .file("src/capi/ext.cpp")
        .flag_if_supported("-std=c++17")
        .flag("-fvisibility=hidden")
        .warnings(true)
        .extra_warnings(true)
        .compile("bitnet_ext");
}
