//! The llama.h C ABI from the outside: C and C++ programs compiled with the system compilers
//! against our `include/` and `libllama` (libllama/, built here with cargo), and against the C++
//! reference (cpp_ref/build.sh), then run and compared.
//!
//! - `exports`: libllama.so's SONAME is libllama.so.0 and it exports every llama_* function the
//!   reference's libllama.so exports.
//! - `abi_layout`: tests/c/abi_layout.c prints sizeof/offsetof of every llama.h struct and field,
//!   every enum value, the macros and the four default-params results; both builds print the same.
//! - `simple_examples`: llama.cpp's examples/simple and examples/simple-chat (from the cached
//!   sdist, never copied here) give the same greedy text with both libraries on the float-weight
//!   fixtures.
//! - `installed_tree`: `cmake/` installs into a temporary prefix; tests/c/cmake_consumer
//!   (find_package(llama), shared and static) and a `pkg-config --cflags --libs llama` build of
//!   tests/c/consumer.c run from it and print what the reference build prints.
//! - `misuse`: tests/c/misuse.c (NULL handles, bad batches, too-small buffers) under valgrind.
//! - `valgrind_clean`: examples/simple and tests/c/consumer.c on our library under valgrind.
//! - `sanitizers`: misuse.c, consumer.c, examples/simple and examples/simple-chat built with
//!   `-fsanitize=address,undefined` (the C/C++ side instrumented, every malloc/free of the
//!   process checked, leaks included) and run on our library.
//! - `generated_sources_current`: the two generated C files match their generators.
//! - `ggml_coexistence`: tests/c/ggml_coexist.c linked against our library and the reference's
//!   real libggml-base.so (as llama.cpp's tools are when run on ours), in both link orders: the
//!   two copies of `ggml_time_us` read one clock, and `ggml_abort` formats its message and
//!   reaches the real ggml's abort callback; against our library alone it prints the message.
//!
//! Without the reference, the comparisons are skipped with a message (a failure when
//! BITNET_CROSSVAL_REQUIRE_REF=1, as in CI); what needs only our library still runs.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{assert_ok, fixtures, model, our_lib_dir, reference, repo, scratch};

fn our_include() -> PathBuf {
    let dir = repo().join("include");
    assert!(
        dir.join("llama.h").exists(),
        "{} is missing (generated from src/capi with cbindgen)",
        dir.join("llama.h").display()
    );
    dir
}

/// Which library a program is built against.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Lib {
    Ours,
    Reference,
}

/// Compiler flags (include dirs, libraries, rpath) for one side.
fn link_flags(lib: Lib, reference_dist: Option<&Path>) -> (Vec<String>, Vec<String>) {
    match lib {
        Lib::Ours => {
            let libdir = our_lib_dir().display().to_string();
            (
                vec![format!("-I{}", our_include().display())],
                vec![
                    format!("-L{libdir}"),
                    "-Wl,--no-as-needed".into(),
                    "-lllama".into(),
                    format!("-Wl,-rpath,{libdir}"),
                ],
            )
        }
        Lib::Reference => {
            let dist = reference_dist.unwrap();
            let libdir = dist.join("lib").display().to_string();
            (
                vec![
                    format!("-I{}", dist.join("include").display()),
                    format!("-I{}", dist.join("ggml/include").display()),
                ],
                vec![
                    format!("-L{libdir}"),
                    "-Wl,--no-as-needed".into(),
                    "-lllama".into(),
                    "-lggml".into(),
                    "-lggml-base".into(),
                    format!("-Wl,-rpath,{libdir}"),
                ],
            )
        }
    }
}

/// Compiles one C (`.c`) or C++ source into `out` with gcc or g++ ($CC / $CXX override).
fn compile(src: &Path, out: &Path, lib: Lib, dist: Option<&Path>, extra: &[&str]) {
    let cpp = src.extension().is_some_and(|e| e == "cpp");
    let compiler = if cpp {
        std::env::var("CXX").unwrap_or_else(|_| "g++".into())
    } else {
        std::env::var("CC").unwrap_or_else(|_| "gcc".into())
    };
    let (cflags, libs) = link_flags(lib, dist);
    let std = if cpp { "-std=c++17" } else { "-std=c11" };
    let out = Command::new(&compiler)
        .args([
            std,
            "-O1",
            "-g",
            "-Wall",
            "-Wextra",
            "-Wno-deprecated-declarations",
        ])
        .args(extra)
        .args(&cflags)
        .arg(src)
        .arg("-o")
        .arg(out)
        .args(&libs)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert_ok(&format!("{compiler} {} ({lib:?})", src.display()), &out);
}

fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Panics with the first differing line of two program outputs.
fn assert_same_output(what: &str, ours: &str, reference: &str) {
    if ours == reference {
        return;
    }
    let (o, r): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), reference.lines().collect());
    let i = (0..o.len().max(r.len()))
        .find(|&i| o.get(i) != r.get(i))
        .unwrap_or(0);
    panic!(
        "{what}: outputs differ at line {}:\n  ours:      {:?}\n  reference: {:?}\n(ours {} lines, reference {} lines)",
        i + 1,
        o.get(i).unwrap_or(&"<end>"),
        r.get(i).unwrap_or(&"<end>"),
        o.len(),
        r.len()
    );
}

fn c_dir() -> PathBuf {
    repo().join("tests/c")
}

fn examples_dir() -> PathBuf {
    fixtures().sdist.join("vendor/llama.cpp/examples")
}

#[test]
fn generated_sources_current() {
    let llama_cpp = fixtures().sdist.join("vendor/llama.cpp");
    for (script, generated) in [
        ("gen_abi_layout.py", "abi_layout.c"),
        ("gen_misuse_null.py", "misuse_null.h"),
    ] {
        let out = Command::new("python3")
            .arg(c_dir().join(script))
            .arg(&llama_cpp)
            .output()
            .expect("cannot run python3");
        let fresh = assert_ok(script, &out);
        let committed = std::fs::read_to_string(c_dir().join(generated)).unwrap();
        assert_same_output(
            &format!("tests/c/{generated} vs python3 tests/c/{script} (regenerate it)"),
            &fresh,
            &committed,
        );
    }
}

/// The functions a shared library defines and exports (`nm -D --defined-only`, type T).
fn exported_functions(lib: &Path) -> Vec<String> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib)
        .output()
        .expect("cannot run nm");
    let text = assert_ok(&format!("nm -D {}", lib.display()), &out);
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [_, "T", name] => Some(name.to_string()),
            _ => None,
        })
        .collect();
    names.sort();
    names
}

/// libllama.so has the reference's SONAME, and exports every llama_* function the reference's
/// libllama.so exports (the engine's `#[no_mangle]` functions come through the packaging crate).
#[test]
fn exports() {
    let ours = our_lib_dir().join("libllama.so");
    let dynamic = Command::new("readelf")
        .arg("-d")
        .arg(&ours)
        .output()
        .unwrap();
    let dynamic = assert_ok("readelf -d libllama.so", &dynamic);
    assert!(
        dynamic.contains("Library soname: [libllama.so.0]"),
        "no SONAME libllama.so.0:\n{dynamic}"
    );
    assert_eq!(
        std::fs::read_link(our_lib_dir().join("libllama.so.0")).unwrap(),
        Path::new("libllama.so")
    );
    let our_exports = exported_functions(&ours);
    assert!(
        our_exports
            .iter()
            .filter(|n| n.starts_with("llama_"))
            .count()
            > 200,
        "{our_exports:?}"
    );
    let Some(dist) = reference() else { return };
    let missing: Vec<String> = exported_functions(&dist.join("lib/libllama.so"))
        .into_iter()
        .filter(|n| n.starts_with("llama_") && our_exports.binary_search(n).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} llama_* functions the reference exports are missing from ours: {missing:?}",
        missing.len()
    );
}

#[test]
fn abi_layout() {
    let Some(dist) = reference() else { return };
    let dir = scratch("c_abi_layout");
    let src = c_dir().join("abi_layout.c");
    let mut outputs = Vec::new();
    for lib in [Lib::Ours, Lib::Reference] {
        let exe = dir.join(format!("abi_layout_{lib:?}"));
        compile(&src, &exe, lib, Some(&dist), &["-Werror"]);
        outputs.push(assert_ok("abi_layout", &run(&mut Command::new(&exe), b"")));
    }
    assert!(outputs[1].lines().count() > 400, "{}", outputs[1]);
    assert_same_output("abi_layout (ours vs reference)", &outputs[0], &outputs[1]);
}

/// Forces simple-chat's final sampler to greedy (it samples with a random seed otherwise), without
/// touching its source: tests/c/greedy_chat.h is included first and redefines the call.
fn greedy_chat_flags() -> Vec<String> {
    vec![
        "-include".into(),
        c_dir().join("greedy_chat.h").display().to_string(),
    ]
}

#[test]
fn simple_examples() {
    let dist = reference();
    let dir = scratch("c_simple_examples");
    let mut sides = vec![Lib::Ours];
    if dist.is_some() {
        sides.push(Lib::Reference);
    }
    let chat_flags = greedy_chat_flags();
    let chat_flags: Vec<&str> = chat_flags.iter().map(String::as_str).collect();
    for lib in &sides {
        let simple = examples_dir().join("simple/simple.cpp");
        compile(
            &simple,
            &dir.join(format!("simple_{lib:?}")),
            *lib,
            dist.as_deref(),
            &[],
        );
        let chat = examples_dir().join("simple-chat/simple-chat.cpp");
        compile(
            &chat,
            &dir.join(format!("chat_{lib:?}")),
            *lib,
            dist.as_deref(),
            &chat_flags,
        );
    }

    let prompt = "Once upon a time, in a small village,";
    let chat_input = b"Hello! Who are you?\nTell me a story.\n";
    // Upstream llama.cpp cannot load arch bitnet-b1.58: that fixture runs on ours alone.
    for (name, compare) in [
        ("bitnet-spm-f32.gguf", true),
        ("bitnet-spm-f16.gguf", true),
        ("bitnet-b1.58-f32.gguf", false),
    ] {
        let path = model(name);
        let mut texts = Vec::new();
        for lib in &sides {
            if *lib == Lib::Reference && !compare {
                continue;
            }
            let out = run(
                Command::new(dir.join(format!("simple_{lib:?}")))
                    .arg("-m")
                    .arg(&path)
                    .args(["-n", "32", prompt]),
                b"",
            );
            let simple = assert_ok(&format!("simple ({lib:?}, {name})"), &out);
            let out = run(
                Command::new(dir.join(format!("chat_{lib:?}")))
                    .arg("-m")
                    .arg(&path)
                    .args(["-c", "160"]),
                chat_input,
            );
            let chat = assert_ok(&format!("simple-chat ({lib:?}, {name})"), &out);
            eprintln!("{name} {lib:?}: simple: {simple:?}\n  simple-chat: {chat:?}");
            assert!(
                simple.len() > prompt.len(),
                "simple printed no text: {simple:?}"
            );
            assert!(
                chat.contains("\x1b[33m"),
                "simple-chat printed no reply: {chat:?}"
            );
            texts.push((simple, chat));
        }
        if texts.len() == 2 {
            assert_same_output(&format!("simple, {name}"), &texts[0].0, &texts[1].0);
            assert_same_output(&format!("simple-chat, {name}"), &texts[0].1, &texts[1].1);
        }
    }
}

/// cmake/ into a fresh prefix; returns the prefix.
fn install_tree(dir: &Path) -> PathBuf {
    let prefix = dir.join("prefix");
    let build = dir.join("build");
    let target_dir = our_lib_dir().parent().unwrap();
    let configure = Command::new("cmake")
        .arg("-S")
        .arg(repo().join("cmake"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_INSTALL_PREFIX={}", prefix.display()))
        .arg(format!("-DLLAMA_CARGO_TARGET_DIR={}", target_dir.display()))
        .arg(format!(
            "-DCARGO={}",
            std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
        ))
        .output()
        .expect("cannot run cmake");
    assert_ok("cmake configure (cmake/)", &configure);
    let b = Command::new("cmake")
        .arg("--build")
        .arg(&build)
        .output()
        .unwrap();
    assert_ok("cmake --build (cmake/)", &b);
    let i = Command::new("cmake")
        .arg("--install")
        .arg(&build)
        .output()
        .unwrap();
    assert_ok("cmake --install (cmake/)", &i);
    prefix
}

#[test]
fn installed_tree() {
    let dist = reference();
    let dir = scratch("c_installed_tree");
    let prefix = install_tree(&dir);
    let lib = prefix.join("lib");
    for f in [
        "libllama.so",
        "libllama.so.0",
        "libllama.a",
        "pkgconfig/llama.pc",
        "cmake/llama/llama-config.cmake",
        "cmake/llama/llama-config-version.cmake",
    ] {
        assert!(
            lib.join(f).exists(),
            "{} not installed",
            lib.join(f).display()
        );
    }
    assert_eq!(
        std::fs::read_link(lib.join("libllama.so")).unwrap(),
        Path::new("libllama.so.0")
    );
    for h in [
        "llama.h",
        "ggml.h",
        "ggml-cpu.h",
        "ggml-backend.h",
        "ggml-opt.h",
        "gguf.h",
    ] {
        assert!(
            prefix.join("include").join(h).exists(),
            "include/{h} not installed"
        );
    }

    // find_package(llama): the shared (llama::llama) and static (llama_static) consumers.
    let consumer_build = dir.join("consumer");
    let out = Command::new("cmake")
        .arg("-S")
        .arg(c_dir().join("cmake_consumer"))
        .arg("-B")
        .arg(&consumer_build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .output()
        .unwrap();
    assert_ok("cmake configure (tests/c/cmake_consumer)", &out);
    let out = Command::new("cmake")
        .arg("--build")
        .arg(&consumer_build)
        .output()
        .unwrap();
    assert_ok("cmake --build (tests/c/cmake_consumer)", &out);
    let shared_exe = consumer_build.join("consumer");
    let needed = Command::new("readelf")
        .arg("-d")
        .arg(&shared_exe)
        .output()
        .unwrap();
    let needed = assert_ok("readelf -d consumer", &needed);
    assert!(
        needed.contains("[libllama.so.0]"),
        "consumer does not need libllama.so.0:\n{needed}"
    );

    // pkg-config --cflags --libs llama
    let pkg = Command::new("pkg-config")
        .args(["--cflags", "--libs", "llama"])
        .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
        .output()
        .expect("cannot run pkg-config");
    let flags = assert_ok("pkg-config --cflags --libs llama", &pkg);
    let pkg_exe = dir.join("consumer_pkg_config");
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(c_dir().join("consumer.c"))
        .arg("-o")
        .arg(&pkg_exe)
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .output()
        .unwrap();
    assert_ok(
        &format!("{cc} consumer.c $(pkg-config --cflags --libs llama)"),
        &out,
    );

    let fixture = model("bitnet-spm-f32.gguf");
    let mut outputs = Vec::new();
    for exe in [shared_exe, consumer_build.join("consumer_static"), pkg_exe] {
        let out = run(Command::new(&exe).arg(&fixture), b"");
        outputs.push((exe.clone(), assert_ok(&exe.display().to_string(), &out)));
    }
    eprintln!("consumer: {}", outputs[0].1);
    for (exe, text) in &outputs[1..] {
        assert_same_output(&exe.display().to_string(), text, &outputs[0].1);
    }
    if let Some(dist) = dist {
        let ref_exe = dir.join("consumer_reference");
        compile(
            &c_dir().join("consumer.c"),
            &ref_exe,
            Lib::Reference,
            Some(&dist),
            &[],
        );
        let out = run(Command::new(&ref_exe).arg(&fixture), b"");
        let reference = assert_ok("consumer (reference)", &out);
        assert_same_output(
            "consumer (installed ours vs reference)",
            &outputs[0].1,
            &reference,
        );
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Our libllama.so next to llama.cpp's libggml-base.so in one process (module doc): we keep
/// exporting `ggml_time_us` and `ggml_abort` (programs linked against our library alone call
/// them), so both copies must behave as one whichever the call binds to.
#[test]
fn ggml_coexistence() {
    let dir = scratch("c_ggml_coexist");
    let src = c_dir().join("ggml_coexist.c");
    let abort_run = |exe: &Path| {
        let out = run(Command::new(exe).arg("abort"), b"");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(6),
            "{}: ggml_abort did not abort ({}): {stderr}",
            exe.display(),
            out.status
        );
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    };

    let alone = dir.join("coexist_alone");
    compile(&src, &alone, Lib::Ours, None, &["-Werror", "-ldl"]);
    let (stdout, stderr) = abort_run(&alone);
    assert_eq!(stdout, "no ggml\n");
    assert!(
        stderr.contains("coexist.c:42: 3 apples and pears\n"),
        "our ggml_abort did not format its message: {stderr}"
    );

    let Some(dist) = reference() else { return };
    let ggml_dir = dist.join("lib").display().to_string();
    let ggml = [
        format!("-L{ggml_dir}"),
        "-lggml-base".into(),
        format!("-Wl,-rpath,{ggml_dir}"),
    ];
    let (cflags, ours) = link_flags(Lib::Ours, None);
    for ours_first in [true, false] {
        let exe = dir.join(format!("coexist_ours_first_{ours_first}"));
        let mut libs: Vec<&String> = Vec::new();
        if ours_first {
            libs.extend(ours.iter().chain(&ggml));
        } else {
            libs.extend(ggml.iter().chain(&ours));
        }
        let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()))
            .args(["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror"])
            .args(&cflags)
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .arg("-Wl,--no-as-needed")
            .args(libs)
            .arg("-ldl")
            .output()
            .expect("cannot run the C compiler");
        assert_ok(
            &format!("cc ggml_coexist.c (ours first: {ours_first})"),
            &out,
        );
        let (stdout, stderr) = abort_run(&exe);
        assert_eq!(
            stdout, "clocks agree\n",
            "ours first: {ours_first}: {stderr}"
        );
        assert!(
            stderr.contains("abort callback: coexist.c:42: 3 apples and pears\n"),
            "ours first: {ours_first}: the real ggml's abort callback did not get the formatted \
             message: {stderr}"
        );
    }
}

#[test]
fn misuse() {
    let dist = reference();
    let dir = scratch("c_misuse");
    let src = c_dir().join("misuse.c");
    let fixture = model("bitnet-spm-f32.gguf");

    if let Some(dist) = &dist {
        // The checks the reference survives, as a check of the checks.
        let exe = dir.join("misuse_reference");
        compile(&src, &exe, Lib::Reference, Some(dist), &["-Werror"]);
        let out = run(Command::new(&exe).arg(&fixture).arg("--reference"), b"");
        assert_ok("misuse --reference", &out);
    }

    let exe = dir.join("misuse_ours");
    compile(&src, &exe, Lib::Ours, None, &["-Werror"]);
    let out = run(&mut under_valgrind(&exe, &[fixture.as_os_str()]), b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        out.status.success(),
        "misuse (ours) failed ({}): {} failed checks:\n{}\n\nlast lines:\n{}\n\nstderr tail:\n{}",
        out.status,
        failed.len(),
        failed.join("\n"),
        stdout.lines().rev().take(5).collect::<Vec<_>>().join("\n"),
        tail(&String::from_utf8_lossy(&out.stderr), 40)
    );
}

/// `valgrind --error-exitcode=99 --leak-check=full` (definite leaks are errors) around `exe`, or
/// `exe` alone with a note where valgrind is missing (a failure under
/// BITNET_CROSSVAL_REQUIRE_REF=1: CI installs it).
fn under_valgrind(exe: &Path, args: &[&std::ffi::OsStr]) -> Command {
    if have("valgrind") {
        let mut cmd = Command::new("valgrind");
        cmd.args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
            "--track-origins=yes",
        ])
        .arg(exe)
        .args(args);
        return cmd;
    }
    assert!(
        std::env::var("BITNET_CROSSVAL_REQUIRE_REF").as_deref() != Ok("1"),
        "valgrind is not installed (Debian: apt-get install valgrind)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "valgrind not installed: running {} without it",
        exe.display()
    );
    let mut cmd = Command::new(exe);
    cmd.args(args);
    cmd
}

/// llama.cpp's examples/simple (8 tokens) and tests/c/consumer.c on our library under valgrind:
/// no invalid reads or writes, no definite leaks.
#[test]
fn valgrind_clean() {
    let dir = scratch("c_valgrind");
    let fixture = model("bitnet-spm-f16.gguf");
    let simple = dir.join("simple");
    compile(
        &examples_dir().join("simple/simple.cpp"),
        &simple,
        Lib::Ours,
        None,
        &[],
    );
    let consumer = dir.join("consumer");
    compile(&c_dir().join("consumer.c"), &consumer, Lib::Ours, None, &[]);
    let runs: [(&Path, Vec<&std::ffi::OsStr>); 2] = [
        (
            &simple,
            vec![
                "-m".as_ref(),
                fixture.as_os_str(),
                "-n".as_ref(),
                "8".as_ref(),
                "Hello there".as_ref(),
            ],
        ),
        (&consumer, vec![fixture.as_os_str()]),
    ];
    for (exe, args) in runs {
        let out = run(&mut under_valgrind(exe, &args), b"");
        assert!(
            out.status.success(),
            "{} under valgrind failed ({}):\n{}",
            exe.display(),
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 60)
        );
    }
}

/// The C tests and examples with AddressSanitizer + UndefinedBehaviorSanitizer on the C side:
/// a bad pointer handed across the boundary, a buffer overrun in what we write into a C buffer,
/// a double free or a leak of anything malloc'ed (ASan intercepts malloc for the whole process,
/// our Rust allocations included) ends the program with an error.
#[test]
fn sanitizers() {
    let dir = scratch("c_sanitizers");
    let fixture = model("bitnet-spm-f16.gguf");
    let asan = [
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer",
    ];
    let chat_flags = greedy_chat_flags();
    let mut chat_args: Vec<&str> = chat_flags.iter().map(String::as_str).collect();
    chat_args.extend(asan);
    let programs: [(&str, PathBuf, Vec<&str>); 4] = [
        ("misuse", c_dir().join("misuse.c"), asan.to_vec()),
        ("consumer", c_dir().join("consumer.c"), asan.to_vec()),
        (
            "simple",
            examples_dir().join("simple/simple.cpp"),
            asan.to_vec(),
        ),
        (
            "simple-chat",
            examples_dir().join("simple-chat/simple-chat.cpp"),
            chat_args,
        ),
    ];
    let f = fixture.as_os_str();
    for (name, src, flags) in &programs {
        let exe = dir.join(name);
        compile(src, &exe, Lib::Ours, None, flags);
        let args: Vec<&std::ffi::OsStr> = match *name {
            "simple" => vec![
                "-m".as_ref(),
                f,
                "-n".as_ref(),
                "8".as_ref(),
                "Hello".as_ref(),
            ],
            "simple-chat" => vec!["-m".as_ref(), f, "-c".as_ref(), "256".as_ref()],
            _ => vec![f],
        };
        let out = run(
            Command::new(&exe)
                .args(&args)
                .env(
                    "ASAN_OPTIONS",
                    "detect_leaks=1:abort_on_error=0:exitcode=98",
                )
                .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
            b"Hello!\nTell me more.\n",
        );
        assert!(
            out.status.success(),
            "{name} with -fsanitize=address,undefined failed ({}):\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 60)
        );
        eprintln!("sanitizers: {name} clean");
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
