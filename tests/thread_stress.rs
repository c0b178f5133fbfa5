//! Thread stress through the C API: one model (a synthetic 2-layer `bitnet-b1.58` file with
//! I2_S projections, written here, so no fixture is needed) shared by 8 worker threads, each with its own
//! context generating greedily from its own prompt, while 2 more threads create and free
//! contexts and sampler chains on the same model; for a bounded time (BITNET_STRESS_SECS,
//! default 3 s), every worker round must give the tokens and the final logits (bit for bit) of
//! the same work done alone before the stress started.
//!
//! Under ThreadSanitizer (see fuzz/README.md, "Sanitizers"): the same test, built with
//! `-Zsanitizer=thread`.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitnet::capi::*;
use bitnet::fixture::synthetic::{self, Projection, Shape, Vocab};
use bitnet::quant::float::f32_to_f16;
use bitnet::quant::{i2_s, GgmlType};
use bitnet::rng::SplitMix64;

const WORKERS: usize = 8;
const CHURNERS: usize = 2;
const STEPS: usize = 6;

/// 2 layers, n_embd 256, 4 heads (2 KV), 512 tokens (`<unk>`, `<s>`, `</s>`, the byte tokens,
/// filler pieces), random ternary I2_S projections and an F16 embedding.
fn write_model(path: &std::path::Path) {
    let n_vocab = 512;
    let mut pieces = vec![
        (b"<unk>".to_vec(), 0.0, 2),
        (b"<s>".to_vec(), 0.0, 3),
        (b"</s>".to_vec(), 0.0, 3),
    ];
    pieces.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>").into_bytes(), 0.0, 6)));
    while pieces.len() < n_vocab {
        let i = pieces.len();
        pieces.push((format!("\u{2581}p{i}").into_bytes(), -(i as f32), 1));
    }
    let shape = Shape {
        arch: "bitnet-b1.58",
        name: "thread stress",
        context_length: 256,
        n_embd: 256,
        n_ff: 512,
        n_layer: 2,
        n_head: 4,
        n_head_kv: 2,
        n_vocab,
        rope_theta: 10000.0,
    };
    let vocab = Vocab {
        pieces,
        add_bos_eos: None,
    };
    let embedding = |rng: &mut SplitMix64| {
        (0..n_vocab * shape.n_embd)
            .flat_map(|_| f32_to_f16((rng.unit() - 0.5) * 0.2).to_le_bytes())
            .collect()
    };
    let projection = |rng: &mut SplitMix64, rows: usize, cols: usize| {
        let x: Vec<f32> = (0..rows * cols)
            .map(|_| (rng.below(3) as f32 - 1.0) * 0.05)
            .collect();
        let mut data = vec![0u8; x.len() / 4 + i2_s::TAIL_BYTES];
        i2_s::quantize(&x, &mut data);
        Projection {
            ty: GgmlType::I2_S,
            data,
            scale: None,
        }
    };
    synthetic::write(
        path,
        &shape,
        Some(&vocab),
        &mut SplitMix64(7),
        embedding,
        projection,
    )
    .unwrap();
}

struct Shared(*mut llama_model);
// SAFETY: llama.h allows one model to be used by contexts on several threads; it is only read.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

fn params(n_threads: i32) -> llama_context_params {
    let mut p = llama_context_default_params();
    p.n_ctx = 64;
    p.n_batch = 16;
    p.n_ubatch = 16;
    p.n_threads = n_threads;
    p.n_threads_batch = n_threads;
    p
}

/// Worker `w`'s job: its prompt, then STEPS greedy tokens; returns the tokens and the bits of
/// the last logits row.
fn generate(model: *mut llama_model, w: usize) -> (Vec<i32>, Vec<u32>) {
    // SAFETY: a live model; each context is used by this thread only and freed here.
    unsafe {
        let vocab = llama_model_get_vocab(model);
        let n_vocab = llama_vocab_n_tokens(vocab) as usize;
        let ctx = llama_init_from_model(model, params(1 + (w % 2) as i32));
        assert!(!ctx.is_null(), "worker {w}: no context");
        let smpl = llama_sampler_init_greedy();
        let mut tokens: Vec<i32> = vec![1, 10 + w as i32 * 7, 20 + w as i32 * 3, 5 + w as i32];
        let mut batch = tokens.clone();
        let mut logits = Vec::new();
        for _ in 0..STEPS {
            let rc = llama_decode(
                ctx,
                llama_batch_get_one(batch.as_mut_ptr(), batch.len() as i32),
            );
            assert_eq!(rc, 0, "worker {w}: decode failed");
            let row = std::slice::from_raw_parts(llama_get_logits_ith(ctx, -1), n_vocab);
            logits = row.iter().map(|v| v.to_bits()).collect();
            let t = llama_sampler_sample(smpl, ctx, -1);
            tokens.push(t);
            batch = vec![t];
        }
        llama_sampler_free(smpl);
        llama_free(ctx);
        (tokens, logits)
    }
}

/// Makes and frees contexts (of several sizes, some decoding a token) and sampler chains.
fn churn(model: *mut llama_model, id: usize, stop: &AtomicBool, made: &AtomicUsize) {
    let mut k = id;
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: a live model; every handle made here is freed here.
        unsafe {
            let mut p = params(1);
            p.n_ctx = [16, 32, 128][k % 3];
            let ctx = llama_init_from_model(model, p);
            assert!(!ctx.is_null(), "churn {id}: no context");
            if k.is_multiple_of(2) {
                let mut t = [1, (k % 50) as i32];
                assert_eq!(llama_decode(ctx, llama_batch_get_one(t.as_mut_ptr(), 2)), 0);
            }
            let chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
            llama_sampler_chain_add(chain, llama_sampler_init_top_k(40));
            llama_sampler_chain_add(chain, llama_sampler_init_temp(0.8));
            llama_sampler_chain_add(chain, llama_sampler_init_dist(k as u32));
            if k.is_multiple_of(2) {
                let t = llama_sampler_sample(chain, ctx, -1);
                assert!(t >= 0, "churn {id}: sampled {t}");
            }
            llama_sampler_free(chain);
            llama_free(ctx);
        }
        made.fetch_add(1, Ordering::Relaxed);
        k += CHURNERS;
    }
}

#[test]
fn workers_match_their_single_threaded_runs_under_churn() {
    let dir = std::env::temp_dir().join(format!("bitnet-thread-stress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tiny-i2_s.gguf");
    write_model(&file);
    let path = CString::new(file.to_str().unwrap()).unwrap();
    // SAFETY: a valid path and default params.
    let model = unsafe { llama_model_load_from_file(path.as_ptr(), llama_model_default_params()) };
    assert!(!model.is_null());
    let expected: Vec<_> = (0..WORKERS).map(|w| generate(model, w)).collect();
    let secs = std::env::var("BITNET_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let shared = Arc::new(Shared(model));
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let rounds = Arc::new(AtomicUsize::new(0));
    let churners: Vec<_> = (0..CHURNERS)
        .map(|id| {
            let (shared, stop, made) = (shared.clone(), stop.clone(), made.clone());
            std::thread::spawn(move || churn(shared.0, id, &stop, &made))
        })
        .collect();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (shared, rounds, want) = (shared.clone(), rounds.clone(), expected[w].clone());
            std::thread::spawn(move || loop {
                let got = generate(shared.0, w);
                assert_eq!(
                    got.0, want.0,
                    "worker {w}: tokens differ from its run alone"
                );
                assert!(
                    got.1 == want.1,
                    "worker {w}: logits differ from its run alone"
                );
                rounds.fetch_add(1, Ordering::Relaxed);
                if Instant::now() >= deadline {
                    break;
                }
            })
        })
        .collect();
    let mut failed = Vec::new();
    for (w, h) in workers.into_iter().enumerate() {
        if h.join().is_err() {
            failed.push(format!("worker {w}"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for (id, h) in churners.into_iter().enumerate() {
        if h.join().is_err() {
            failed.push(format!("churn {id}"));
        }
    }
    eprintln!(
        "thread stress: {} worker rounds, {} contexts made and freed by the churn threads, {secs} s",
        rounds.load(Ordering::Relaxed),
        made.load(Ordering::Relaxed)
    );
    assert!(failed.is_empty(), "threads failed: {failed:?}");
    // SAFETY: every context on it is gone.
    unsafe { llama_model_free(model) };
    let _ = std::fs::remove_dir_all(&dir);
}
