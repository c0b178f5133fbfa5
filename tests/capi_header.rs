//! include/*.h are generated from src/capi with cbindgen; this test regenerates them and fails
//! with a diff when the committed headers are stale. `BITNET_BLESS=1 cargo test --test
//! capi_header` rewrites them.
//!
//! What cbindgen cannot say is done here, in the open:
//! - C enums arrive as plain ints in Rust (`enum_llama_xxx` = c_int, so that no value C passes
//!   is undefined behaviour); `export.rename` turns each alias into `enum llama_xxx` and the
//!   alias itself is not exported. The Rust `enum llama_xxx` definitions carry the values.
//! - llama.h's typedef'd structs (`llama_batch`, ...) get `typedef struct X X;` lines.
//! - `llama_model_kv_override`'s value is an anonymous union in C: one text replacement
//!   (checked to apply exactly once) inlines it.
//! - `ggml_abort` is variadic: declared verbatim (with GGML_NORETURN / GGML_ABORT).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cbindgen::{Config, Language, Style};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const AUTOGEN: &str = "/* Generated from src/capi by tests/capi_header.rs (cbindgen); do not edit.\n   Regenerate: BITNET_BLESS=1 cargo test --test capi_header */";

/// The `enum_xxx` aliases in these files, renamed to `enum xxx` and not exported.
fn enum_aliases(files: &[PathBuf]) -> Vec<String> {
    let mut names = vec![];
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("pub type enum_") {
                let name = rest.split(' ').next().unwrap();
                names.push(format!("enum_{name}"));
            }
        }
    }
    names
}

/// Enums, consts and opaque types that no function signature reaches.
fn header_only_items(files: &[PathBuf]) -> Vec<String> {
    let mut names = vec![];
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines() {
            for prefix in ["pub enum ", "pub struct ", "pub type "] {
                if let Some(rest) = line.strip_prefix(prefix) {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.starts_with("enum_") {
                        names.push(name);
                    }
                }
            }
        }
    }
    names
}

struct Spec {
    file: &'static str,
    guard: &'static str,
    srcs: Vec<&'static str>,
    includes: Vec<&'static str>,
    sys_includes: Vec<&'static str>,
    after_includes: &'static str,
    exclude: Vec<&'static str>,
    /// Structs defined in another header: referenced as `struct X`.
    extern_structs: Vec<&'static str>,
}

fn specs() -> Vec<Spec> {
    let llama_srcs = vec![
        "src/capi/types.rs",
        "src/capi/model.rs",
        "src/capi/vocab.rs",
        "src/capi/context.rs",
        "src/capi/batch.rs",
        "src/capi/sampler.rs",
        "src/capi/chat.rs",
        "src/capi/state.rs",
        "src/capi/system.rs",
        "src/capi/unsupported.rs",
    ];
    vec![
        Spec {
            file: "ggml.h",
            guard: "GGML_H",
            srcs: vec!["src/capi/ggml/base.rs"],
            includes: vec![],
            sys_includes: vec!["stdbool.h", "stddef.h", "stdint.h", "stdio.h"],
            after_includes: GGML_EXTRA,
            exclude: vec!["ggml_abort"],
            extern_structs: vec![],
        },
        Spec {
            file: "ggml-cpu.h",
            guard: "GGML_CPU_H",
            srcs: vec!["src/capi/ggml/cpu.rs"],
            includes: vec!["ggml.h"],
            sys_includes: vec![],
            after_includes: "",
            exclude: vec![],
            extern_structs: vec![],
        },
        Spec {
            file: "ggml-backend.h",
            guard: "GGML_BACKEND_H",
            srcs: vec!["src/capi/ggml/backend.rs"],
            includes: vec!["ggml.h"],
            sys_includes: vec![],
            after_includes: "",
            exclude: vec![],
            extern_structs: vec!["ggml_tensor"],
        },
        Spec {
            file: "ggml-opt.h",
            guard: "GGML_OPT_H",
            srcs: vec!["src/capi/ggml/opt.rs"],
            includes: vec!["ggml.h", "ggml-backend.h"],
            sys_includes: vec![],
            after_includes: "",
            exclude: vec![],
            extern_structs: vec![],
        },
        Spec {
            file: "gguf.h",
            guard: "GGUF_H",
            srcs: vec!["src/capi/ggml/gguf.rs"],
            includes: vec!["ggml.h"],
            sys_includes: vec![],
            after_includes: "",
            exclude: vec![],
            extern_structs: vec![],
        },
        Spec {
            file: "llama.h",
            guard: "LLAMA_H",
            srcs: llama_srcs,
            includes: vec![
                "ggml.h",
                "ggml-cpu.h",
                "ggml-backend.h",
                "ggml-opt.h",
                "gguf.h",
            ],
            sys_includes: vec!["stddef.h", "stdint.h", "stdio.h", "stdbool.h"],
            after_includes: LLAMA_EXTRA,
            exclude: vec!["FILE"],
            extern_structs: vec![
                "ggml_tensor",
                "ggml_context",
                "ggml_cgraph",
                "ggml_threadpool",
                "gguf_context",
                "ggml_opt_optimizer_params",
            ],
        },
    ]
}

const GGML_EXTRA: &str = r#"
#ifdef __cplusplus
#    define GGML_NORETURN [[noreturn]]
#elif defined(_MSC_VER)
#    define GGML_NORETURN __declspec(noreturn)
#else
#    define GGML_NORETURN _Noreturn
#endif

#define GGML_UNUSED(x) (void)(x)
#define GGML_ABORT(...) ggml_abort(__FILE__, __LINE__, __VA_ARGS__)
#define GGML_ASSERT(x) if (!(x)) GGML_ABORT("GGML_ASSERT(%s) failed", #x)

#ifdef __cplusplus
extern "C" {
#endif
/* Prints "file:line: fmt" to stderr and aborts (format arguments are not expanded). */
GGML_NORETURN void ggml_abort(const char * file, int line, const char * fmt, ...);
#ifdef __cplusplus
}
#endif
"#;

const LLAMA_EXTRA: &str = r#"
#ifdef LLAMA_SHARED
#    if defined(_WIN32) && !defined(__MINGW32__)
#        ifdef LLAMA_BUILD
#            define LLAMA_API __declspec(dllexport)
#        else
#            define LLAMA_API __declspec(dllimport)
#        endif
#    else
#        define LLAMA_API __attribute__ ((visibility ("default")))
#    endif
#else
#    define LLAMA_API
#endif

#ifdef __GNUC__
#    define DEPRECATED(func, hint) func __attribute__((deprecated(hint)))
#elif defined(_MSC_VER)
#    define DEPRECATED(func, hint) __declspec(deprecated(hint)) func
#else
#    define DEPRECATED(func, hint) func
#endif

struct llama_vocab;
struct llama_model;
struct llama_context;
struct llama_sampler;
struct llama_adapter_lora;
struct llama_batch_ext;
struct llama_memory_i;

typedef struct llama_token_data llama_token_data;
typedef struct llama_token_data_array llama_token_data_array;
typedef struct llama_batch llama_batch;
typedef struct llama_model_quantize_params llama_model_quantize_params;
typedef struct llama_logit_bias llama_logit_bias;
typedef struct llama_sampler_chain_params llama_sampler_chain_params;
typedef struct llama_chat_message llama_chat_message;
"#;

/// Text fixes cbindgen cannot express; each must apply exactly once.
const FIXES: &[(&str, &str, &str)] = &[(
    "llama.h",
    "  union llama_model_kv_override_value value;",
    "  union {\n    int64_t val_i64;\n    double val_f64;\n    bool val_bool;\n    char val_str[128];\n  };",
)];

fn generate(spec: &Spec) -> String {
    let root = repo();
    let srcs: Vec<PathBuf> = spec.srcs.iter().map(|s| root.join(s)).collect();
    let mut config = Config {
        language: Language::C,
        style: Style::Tag,
        cpp_compat: true,
        include_guard: Some(spec.guard.to_string()),
        autogen_warning: Some(AUTOGEN.to_string()),
        no_includes: true,
        sys_includes: spec.sys_includes.iter().map(|s| s.to_string()).collect(),
        includes: spec.includes.iter().map(|s| s.to_string()).collect(),
        after_includes: Some(spec.after_includes.to_string()),
        usize_is_size_t: true,
        documentation: true,
        ..Config::default()
    };
    // Aliases of every file (llama.h's fields use ggml's enum aliases too).
    let all: Vec<PathBuf> = std::fs::read_dir(root.join("src/capi"))
        .unwrap()
        .chain(std::fs::read_dir(root.join("src/capi/ggml")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let mut rename = HashMap::new();
    for alias in enum_aliases(&all) {
        rename.insert(alias.clone(), format!("enum {}", &alias["enum_".len()..]));
        config.export.exclude.push(alias);
    }
    for name in &spec.extern_structs {
        rename.insert(name.to_string(), format!("struct {name}"));
        config.export.exclude.push(name.to_string());
    }
    config.export.rename = rename;
    config.export.include = header_only_items(&srcs);
    config
        .export
        .exclude
        .extend(spec.exclude.iter().map(|s| s.to_string()));
    config.enumeration.prefix_with_name = false;
    let mut builder = cbindgen::Builder::new().with_config(config);
    for s in &srcs {
        builder = builder.with_src(s);
    }
    let mut out = vec![];
    builder
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen failed for {}: {e}", spec.file))
        .write(&mut out);
    let mut text = String::from_utf8(out).unwrap();
    for (file, from, to) in FIXES {
        if *file == spec.file {
            assert_eq!(
                text.matches(from).count(),
                1,
                "fix for {file} no longer applies: {from:?}"
            );
            text = text.replace(from, to);
        }
    }
    text
}

fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut out = String::new();
    let n = a.len().max(b.len());
    for i in 0..n {
        let (x, y) = (a.get(i), b.get(i));
        if x != y {
            out += &format!(
                "line {}:\n- {}\n+ {}\n",
                i + 1,
                x.unwrap_or(&""),
                y.unwrap_or(&"")
            );
            if out.len() > 4000 {
                out += "...\n";
                break;
            }
        }
    }
    out
}

#[test]
fn committed_headers_match_the_rust_definitions() {
    let bless = std::env::var("BITNET_BLESS").is_ok_and(|v| v == "1");
    let dir = repo().join("include");
    let mut stale = vec![];
    for spec in specs() {
        let text = generate(&spec);
        let path: &Path = &dir.join(spec.file);
        let old = std::fs::read_to_string(path).unwrap_or_default();
        if old != text {
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(path, &text).unwrap();
            } else {
                stale.push(format!("{}:\n{}", spec.file, diff(&old, &text)));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "include/ is stale (BITNET_BLESS=1 cargo test --test capi_header rewrites it):\n{}",
        stale.join("\n")
    );
}
