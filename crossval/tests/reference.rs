//! The reference side alone: loading without interposition, tokenizer, determinism, and what
//! upstream llama.cpp does with Microsoft's `bitnet-b1.58` files.

mod common;

use std::sync::Mutex;

use crossval::reference::{self, FlashAttn, RefContext, RefCtxParams, RefModel};
use crossval::run::{greedy, teacher_forced};

/// The reference logs through one global callback into one buffer, and errors are quoted from
/// it: tests that load models take turns so one test's load does not read another's log.
static SERIAL: Mutex<()> = Mutex::new(());

fn params(n_ctx: u32, n_batch: u32) -> RefCtxParams {
    RefCtxParams {
        n_ctx,
        n_batch,
        threads: 2,
        flash_attn: FlashAttn::Auto,
    }
}

#[test]
fn canary_every_symbol_comes_from_the_reference_lib_dir() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !common::reference_available() {
        return;
    }
    let lib = reference::load_library().unwrap();
    let dir = lib.lib_dir.canonicalize().unwrap();
    assert_eq!(lib.canary.resolved.len(), 3);
    for s in &lib.canary.resolved {
        assert_eq!(
            s.file.parent(),
            Some(dir.as_path()),
            "{} from {}",
            s.symbol,
            s.file.display()
        );
    }
    let files: Vec<String> = lib
        .canary
        .resolved
        .iter()
        .map(|s| s.file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(files[0].starts_with("libllama.so"), "{files:?}");
    assert!(files[1].starts_with("libggml-cpu.so"), "{files:?}");
    assert!(files[2].starts_with("libggml-base.so"), "{files:?}");
    if let Some(g) = &lib.canary.global_llama_symbol {
        assert_ne!(g.address, lib.canary.resolved[0].address);
    }
}

#[test]
fn tokenizer_adds_bos_and_runs_deterministically() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !common::reference_available() {
        return;
    }
    let m = RefModel::load(&common::models_dir().join("bitnet-spm-f32.gguf")).unwrap();
    assert_eq!(m.n_vocab(), 32000);
    assert!(m.add_bos());
    let toks = m.tokenize("Hello world").unwrap();
    assert_eq!(toks[0], 1, "SPM BOS first: {toks:?}");
    assert!(toks.len() >= 3);

    let mut ctx = RefContext::new(&m, &params(64, 16)).unwrap();
    // llama.cpp's default (auto) resolves to flash attention on the CPU backend.
    assert!(ctx.flash_attn_enabled);
    let t = greedy(&mut ctx, &toks, 8).unwrap();
    assert_eq!(t.tokens.len(), toks.len() + 8);
    assert_eq!(t.logits.len(), toks.len() + 7);
    assert!(t
        .logits
        .iter()
        .all(|r| r.len() == 32000 && r.iter().all(|v| v.is_finite())));
    let again = teacher_forced(&mut ctx, &t.tokens, t.prompt_len).unwrap();
    assert_eq!(again, t.logits, "reference not deterministic");
}

#[test]
fn reference_cannot_load_bitnet_b158() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !common::reference_available() {
        return;
    }
    let dir = common::models_dir();
    // Arch unknown to upstream llama.cpp.
    let e = RefModel::load(&dir.join("bitnet-b1.58-tq2_0.gguf"))
        .err()
        .expect("upstream llama.cpp loaded a bitnet-b1.58 file")
        .to_string();
    assert!(
        e.contains("unknown model architecture: 'bitnet-b1.58'"),
        "{e}"
    );
    // Type 36 (I2_S) is a removed type id upstream: the file is rejected while reading tensor
    // info, before the architecture is even looked at.
    let e = RefModel::load(&dir.join("bitnet-b1.58-i2_s.gguf"))
        .err()
        .expect("upstream llama.cpp loaded an I2_S file")
        .to_string();
    assert!(e.contains("type 36"), "{e}");
}

#[test]
fn thread_count_does_not_change_reference_logits() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // crossval runs the reference with one thread by default (OpenMP barriers on a busy 2-core
    // machine are slow); that is only fair if the logits do not depend on it.
    if !common::reference_available() {
        return;
    }
    for name in ["bitnet-spm-f32.gguf", "bitnet-spm-tq2_0.gguf"] {
        let m = RefModel::load(&common::models_dir().join(name)).unwrap();
        let toks = m.tokenize(crossval::suite::SUITE_PROMPT).unwrap();
        let run = |threads| {
            let mut p = params(128, toks.len() as u32);
            p.threads = threads;
            p.flash_attn = reference::DEFAULT_FLASH_ATTN;
            let mut ctx = RefContext::new(&m, &p).unwrap();
            greedy(&mut ctx, &toks, 16).unwrap()
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one.tokens, two.tokens, "{name}");
        assert!(
            one.logits
                .iter()
                .flatten()
                .zip(two.logits.iter().flatten())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: logits differ between 1 and 2 threads"
        );
    }
}
