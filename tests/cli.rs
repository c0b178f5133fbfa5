//! The llama.cpp-style commands (`run`, `chat`, `verify`) of the `bitnet` binary, which go
//! through the library's C API, checked on the tiny fixture models: greedy `run` prints what
//! the Rust engine's own greedy loop makes, -n is respected, speeds are reported, `chat` keeps
//! its KV cache across turns, `verify` passes good files and fails a damaged one, bad flags give
//! one error line.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use bitnet::gguf::MappedFile;
use bitnet::model::{Context, ContextParams, Model};
use bitnet::tokenizer::Tokenizer;
use common::*;

const PROMPT: &str = "Hello world";

/// What the engine's greedy loop prints for PROMPT: the pieces of up to `n` tokens, stopping
/// at an end-of-generation token (the same steps `bitnet run --temp 0` takes over the C API).
fn engine_greedy_text(name: &str, n: usize) -> (Vec<u8>, usize) {
    let path = model(name);
    let file = MappedFile::open(&path).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file.gguf().unwrap()).unwrap();
    let m = Arc::new(Model::load(&path).unwrap());
    let mut c = Context::new(m, ContextParams::new(64, 64)).unwrap();
    let prompt = tokenizer.tokenize(PROMPT, true, true);
    prefill(&mut c, &prompt);
    let mut last_row = prompt.len() - 1;
    let mut pos = prompt.len() as i32;
    let mut text = Vec::new();
    let mut n_made = 0;
    while n_made < n {
        let next = argmax(c.logits(last_row).unwrap()) as u32;
        if tokenizer.is_eog(next) {
            break;
        }
        text.extend(tokenizer.token_to_piece(next, 0, false).unwrap());
        n_made += 1;
        bitnet::fixture::decode(&mut c, &[next], pos, 0, true).unwrap();
        last_row = 0;
        pos += 1;
    }
    (text, n_made)
}

/// `bitnet run -m PATH -p PROMPT -n N` with `extra` options.
fn run_prompt(path: &Path, n: usize, extra: &[&str]) -> Output {
    let n = n.to_string();
    let mut args = vec!["run", "-m", path.to_str().unwrap(), "-p", PROMPT, "-n", &n];
    args.extend_from_slice(extra);
    bitnet(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `generation: N tokens, T ms, S tok/s (stop: ...)` line's N.
fn generated_count(err: &str) -> usize {
    let line = err
        .lines()
        .find(|l| l.starts_with("generation: "))
        .unwrap_or_else(|| panic!("no generation line in stderr:\n{err}"));
    line["generation: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn greedy_run_prints_what_the_engine_makes() {
    for name in [
        "bitnet-spm-f32.gguf",
        "bitnet-spm-tq2_0.gguf",
        "bitnet-b1.58-i2_s.gguf",
    ] {
        let out = run_prompt(
            &model(name),
            12,
            &["--temp", "0", "-c", "64", "--no-display-prompt"],
        );
        assert_ok(name, &out);
        let (expected, n_made) = engine_greedy_text(name, 12);
        let mut want = expected.clone();
        want.push(b'\n');
        assert_eq!(
            out.stdout,
            want,
            "{name}: run printed {:?}, the engine's greedy loop {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&expected)
        );
        let err = stderr(&out);
        assert_eq!(generated_count(&err), n_made, "{name}: {err}");
        assert!(n_made > 0, "{name}: nothing generated");
    }
}

#[test]
fn run_respects_n_and_reports_speed() {
    let path = model("bitnet-spm-tq1_0.gguf");
    for n in [0usize, 1, 5] {
        let out = run_prompt(&path, n, &["--temp", "0.7", "--seed", "42"]);
        let stdout = assert_ok("run", &out);
        assert!(
            stdout.starts_with(PROMPT),
            "the prompt is echoed: {stdout:?}"
        );
        let err = stderr(&out);
        assert!(generated_count(&err) <= n, "-n {n}: {err}");
        let prompt_line = err
            .lines()
            .find(|l| l.starts_with("prompt: "))
            .unwrap_or_else(|| panic!("no prompt speed line: {err}"));
        assert!(
            prompt_line.contains(" tokens, ") && prompt_line.ends_with(" tok/s"),
            "{prompt_line}"
        );
        assert!(err.contains(" ms, "), "{err}");
    }
    // A fixed seed gives the same sampled text twice; the sampling flags change it.
    let run = |seed| {
        let sampling = [
            "--temp", "1.5", "--top-k", "1000", "--top-p", "1", "--min-p", "0", "-s", seed,
        ];
        let out = run_prompt(&path, 16, &sampling);
        assert_ok("run", &out);
        out.stdout
    };
    assert_eq!(run("7"), run("7"));
    assert_ne!(run("7"), run("8"));
}

#[test]
fn run_without_a_model_uses_the_demo_model() {
    fixtures();
    let out = bitnet(&["run", "-p", "Hello", "-n", "4"]);
    let stdout = assert_ok("run with no -m", &out);
    assert!(stdout.starts_with("Hello"));
    assert_eq!(generated_count(&stderr(&out)), 4, "{}", stderr(&out));
}

fn chat(model_name: &str, input: &str, extra: &[&str]) -> Output {
    let path = model(model_name);
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(["chat", "-m", path.to_str().unwrap(), "-c", "256"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn chat_answers_each_line_and_keeps_the_cache() {
    let greedy = ["-n", "8", "--temp", "0"];
    for template in [None, Some("bitnet")] {
        let mut extra = greedy.to_vec();
        if let Some(t) = template {
            extra.extend(["--chat-template", t, "-sys", "Be brief."]);
        }
        let two = chat("bitnet-spm-f32.gguf", "Hi there\nHow are you?\n", &extra);
        assert_ok("chat", &two);
        let err = stderr(&two);
        let replies: Vec<&str> = err.lines().filter(|l| l.starts_with("reply: ")).collect();
        assert_eq!(replies.len(), 2, "{template:?}: {err}");
        for r in &replies {
            assert!(
                r.ends_with("(stop: limit)") || r.ends_with("(stop: end of turn)"),
                "{r}"
            );
            assert!(r.starts_with("reply: 8 tokens") || r.ends_with("(stop: end of turn)"));
        }
        // The first turn does not depend on what comes after it.
        let one = chat("bitnet-spm-f32.gguf", "Hi there\n", &extra);
        assert_ok("chat", &one);
        assert!(
            two.stdout.starts_with(&one.stdout),
            "{template:?}: {:?} vs {:?}",
            String::from_utf8_lossy(&one.stdout),
            String::from_utf8_lossy(&two.stdout)
        );
        assert!(two.stdout.len() > one.stdout.len());
    }
    // The cache is kept: the second turn decodes only what follows the first turn's prompt
    // and its 8 reply tokens.
    let verbose = chat(
        "bitnet-spm-f32.gguf",
        "Hi there\nHow are you?\n",
        &[&greedy[..], &["-v"]].concat(),
    );
    assert_ok("chat -v", &verbose);
    let err = stderr(&verbose);
    let turns: Vec<(usize, usize)> = err
        .lines()
        .filter_map(|l| l.strip_prefix("chat: decoding "))
        .map(|l| {
            let words: Vec<&str> = l.split(' ').collect();
            (words[0].parse().unwrap(), words[4].parse().unwrap())
        })
        .collect();
    assert_eq!(turns.len(), 2, "{err}");
    assert_eq!(turns[0].1, 0, "{err}");
    let first_reply = err.lines().find(|l| l.starts_with("reply: ")).unwrap();
    assert!(turns[1].1 > turns[0].0, "{err}");
    if first_reply.starts_with("reply: 8 tokens") {
        assert_eq!(turns[1].1, turns[0].0 + 8, "{err}");
    }

    // Empty input: no reply, clean exit.
    let none = chat("bitnet-spm-f32.gguf", "", &greedy);
    assert_ok("chat", &none);
    assert!(none.stdout.is_empty());
}

#[test]
fn verify_passes_good_files() {
    for name in [
        "bitnet-spm-f32.gguf",
        "bitnet-bpe-tq2_0.gguf",
        "bitnet-b1.58-i2_s.gguf",
    ] {
        let path = model(name);
        let out = bitnet(&["verify", path.to_str().unwrap()]);
        let stdout = assert_ok(name, &out);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 4, "{name}: {stdout}");
        for (line, check) in lines
            .iter()
            .zip(["load", "tokenizer", "greedy", "reference"])
        {
            let ok = line.starts_with(&format!("PASS {check}: "))
                || (check == "reference" && line.starts_with("SKIP reference: "));
            assert!(ok, "{name}: {line}");
        }
        if name.starts_with("bitnet-b1.58") {
            assert!(lines[3].starts_with("SKIP"), "{}", lines[3]);
        }
    }
}

#[test]
fn verify_fails_a_truncated_file() {
    let good = std::fs::read(model("bitnet-spm-tq2_0.gguf")).unwrap();
    let dir = scratch("cli-verify");
    let bad = dir.join("truncated.gguf");
    std::fs::write(&bad, &good[..good.len() / 2]).unwrap();
    let out = bitnet(&["verify", "-m", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("FAIL load: ") && first.contains("past the end of the file"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().filter(|l| l.starts_with("SKIP")).count(), 3);
}

#[test]
fn bad_flags_give_one_error_line() {
    let m = model("bitnet-spm-f32.gguf");
    let m = m.to_str().unwrap();
    for (args, says) in [
        (
            vec!["run", "-m", m, "-p", "x", "--bogus"],
            "unknown option --bogus",
        ),
        (
            vec!["run", "-m", m, "-p", "x", "-n", "many"],
            "-n expects a number",
        ),
        (vec!["run", "-m", m, "-p", "x", "--top-p", "2"], "--top-p"),
        (vec!["run", "-m", m], "no prompt"),
        (vec!["run", "-m", m, "-p"], "-p needs a value"),
        (vec!["chat", "-m", m, "--temp"], "--temp needs a value"),
        (vec!["chat", "-m", m, "extra"], "unexpected argument"),
        (vec!["verify", "-m", m, "--json"], "unknown option --json"),
        (
            vec!["run", "-m", "/nonexistent.gguf", "-p", "x"],
            "cannot load model",
        ),
    ] {
        let out = bitnet(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(
            lines[0].starts_with("bitnet: error: ") && lines[0].contains(says),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn bench_writes_the_asked_tests_as_json() {
    let m = model("bitnet-bpe-tq2_0.gguf");
    let m = m.to_str().unwrap();
    // As llama-bench, -p 0 runs no prefill test.
    for (p, want, not) in [
        ("0,8", &["\"pp8_tok_s\":", "\"tg2_tok_s\":"][..], "pp0"),
        ("0", &["\"tg2_tok_s\":"][..], "pp"),
    ] {
        let out = bitnet(&[
            "bench", "-m", m, "-t", "1", "-p", p, "-n", "2", "-r", "1", "--json",
        ]);
        let stdout = assert_ok("bench", &out);
        for key in want {
            assert!(stdout.contains(key), "-p {p}: {stdout}");
        }
        assert!(!stdout.contains(not), "-p {p}: {stdout}");
        assert!(stdout.contains("\"peak_rss_bytes\":"), "{stdout}");
    }
}
