//! The CUDA backend on a real GPU (feature `cuda`): GPU against CPU logits on models made
//! in-process (tests/gpu_models/: every weight type and both architectures), prefill against
//! token-by-token decode, clean errors (out of memory, no device), the C API's n_gpu_layers, and
//! the kernels compiling under NVRTC. Where there is no GPU (or no NVRTC) a test prints
//! "skipped: no GPU" ("skipped: no NVRTC") and returns; with BITNET_GPU_REQUIRE=1
//! (benches/gpu_check.sh on the device) that is a failure instead.
//!
//! `cargo test --release --features cuda --test gpu -- --test-threads 1`
//! `BITNET_GPU_MODELS_DIR=DIR cargo test --release --features cuda --test gpu -- --ignored`
//! writes the 2B-4T-shaped models that `bitnet bench --gpu` measures.

#![cfg(feature = "cuda")]

mod gpu_models;

use std::ffi::CString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bitnet::capi::*;
use bitnet::fixture::{argmax, cosine};
use bitnet::kernels::cuda::{self, CudaDevice, Device, OpenError};
use bitnet::model::gpu::GpuModel;
use bitnet::model::{Context, ContextParams, Model};
use bitnet::quant::GgmlType;
use gpu_models::Spec;

fn say(line: &str) {
    // Straight to fd 2, past the harness's capture, so that skips are visible.
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn skip(what: &str) {
    if std::env::var("BITNET_GPU_REQUIRE").as_deref() == Ok("1") {
        panic!("BITNET_GPU_REQUIRE=1 but {what}");
    }
    say(&format!("skipped: {what}"));
}

/// The GPU, or None after printing why not.
fn device() -> Option<Arc<CudaDevice>> {
    match cuda::shared_device() {
        Ok(d) => Some(d),
        Err(OpenError::Unavailable(why)) => {
            skip(&format!("no GPU ({why})"));
            None
        }
        Err(OpenError::Failed(e)) => panic!("a CUDA device is there but unusable: {e}"),
    }
}

fn tmp() -> PathBuf {
    std::env::temp_dir().join(format!("bitnet-gpu-tests-{}", std::process::id()))
}

/// The small test models, written once per process.
fn tiny_models() -> &'static Vec<(String, PathBuf, bool)> {
    static M: OnceLock<Vec<(String, PathBuf, bool)>> = OnceLock::new();
    M.get_or_init(|| {
        gpu_models::write_tiny_set(&tmp())
            .into_iter()
            .map(|(name, path, s)| {
                // Float weights and float activations: the strict checks (same greedy tokens).
                let float = s.shape.arch == "bitnet"
                    && matches!(s.wty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
                (name, path, float)
            })
            .collect()
    })
}

fn decode(c: &mut Context, tokens: &[u32], pos0: usize, all: bool) {
    bitnet::fixture::decode(c, tokens, pos0 as i32, 0, all).unwrap();
}

const PROMPT: [u32; 8] = [1, 300, 301, 512, 7, 999, 42, 640];
const STEPS: usize = 64;

/// Teacher-forced logits of `c` over the prompt and `forced` (one token at a time after the
/// prompt): one row per position.
fn forced_logits(c: &mut Context, forced: &[u32]) -> Vec<Vec<f32>> {
    c.clear();
    decode(c, &PROMPT, 0, true);
    let mut rows: Vec<Vec<f32>> = (0..PROMPT.len())
        .map(|i| c.logits(i).unwrap().to_vec())
        .collect();
    for (i, &t) in forced.iter().enumerate() {
        decode(c, &[t], PROMPT.len() + i, true);
        rows.push(c.logits(0).unwrap().to_vec());
    }
    rows
}

/// Greedy tokens after the prompt.
fn greedy(c: &mut Context, steps: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    c.clear();
    decode(c, &PROMPT, 0, true);
    let mut rows: Vec<Vec<f32>> = (0..PROMPT.len())
        .map(|i| c.logits(i).unwrap().to_vec())
        .collect();
    let mut toks = vec![];
    let mut next = argmax(rows.last().unwrap()) as u32;
    for i in 0..steps {
        toks.push(next);
        decode(c, &[next], PROMPT.len() + i, true);
        let l = c.logits(0).unwrap().to_vec();
        next = argmax(&l) as u32;
        rows.push(l);
    }
    (toks, rows)
}

fn params() -> ContextParams {
    ContextParams::new(PROMPT.len() + STEPS + 8, 32)
}

/// Float-weight models: cosine >= 0.99999 at every position and the same 64 greedy tokens.
/// Int8-activation models: teacher-forced on the CPU's greedy tokens, no further from the CPU
/// than the CPU is from itself with its norm weights scaled by 1 + 1e-6 (crossval's floor).
#[test]
fn gpu_matches_cpu() {
    let Some(dev) = device() else { return };
    let dev: Arc<dyn Device> = dev;
    for (name, path, float) in tiny_models() {
        let model = Arc::new(Model::load(path).unwrap());
        let gm = Arc::new(GpuModel::upload(Arc::clone(&dev), Arc::clone(&model)).unwrap());
        let mut cpu = Context::new(Arc::clone(&model), params()).unwrap();
        let mut gpu = Context::with_gpu(gm, params()).unwrap();
        if *float {
            let (tc, rc) = greedy(&mut cpu, STEPS);
            let (tg, rg) = greedy(&mut gpu, STEPS);
            let worst = rc
                .iter()
                .zip(&rg)
                .map(|(a, b)| cosine(a, b))
                .fold(1f64, f64::min);
            let identical = rc.iter().zip(&rg).filter(|(a, b)| a == b).count();
            say(&format!(
                "{name}: worst cosine {worst:.9}, {identical}/{} rows bit-identical",
                rc.len()
            ));
            assert_eq!(tc, tg, "{name}: greedy tokens differ");
            assert!(worst >= 0.99999, "{name}: worst cosine {worst}");
        } else {
            let (forced, rc) = greedy(&mut cpu, STEPS);
            let rg = forced_logits(&mut gpu, &forced);
            let mut noisy = Model::load(path).unwrap();
            let k = 1.0 + 1e-6f32;
            for l in &mut noisy.layers {
                for v in [
                    Some(&mut l.attn_norm),
                    l.attn_sub_norm.as_mut(),
                    Some(&mut l.ffn_norm),
                    l.ffn_sub_norm.as_mut(),
                ]
                .into_iter()
                .flatten()
                {
                    v.iter_mut().for_each(|x| *x *= k);
                }
            }
            noisy.output_norm.iter_mut().for_each(|x| *x *= k);
            let mut cn = Context::new(Arc::new(noisy), params()).unwrap();
            let rn = forced_logits(&mut cn, &forced);
            let stats = |r: &[Vec<f32>]| {
                let c: Vec<f64> = rc.iter().zip(r).map(|(a, b)| cosine(a, b)).collect();
                let worst = c.iter().cloned().fold(1f64, f64::min);
                let mean = c.iter().sum::<f64>() / c.len() as f64;
                let top1 = rc
                    .iter()
                    .zip(r)
                    .filter(|(a, b)| argmax(a) == argmax(b))
                    .count();
                (worst, mean, top1)
            };
            let (gw, gm_, gt) = stats(&rg);
            let (nw, nm, nt) = stats(&rn);
            let identical = rc.iter().zip(&rg).filter(|(a, b)| a == b).count();
            say(&format!(
                "{name}: GPU vs CPU worst {gw:.6} mean {gm_:.6} top-1 {gt}/{}; CPU noise floor \
                 worst {nw:.6} mean {nm:.6} top-1 {nt}; {identical} rows bit-identical",
                rc.len()
            ));
            assert!(
                gw >= nw.min(0.9999) && gm_ >= nm.min(0.99999),
                "{name}: GPU is further from the CPU than the noise floor"
            );
        }
    }
}

/// A prefill (the GEMM kernels, attention over many tokens) gives the logits of token-by-token
/// decode (GEMV kernels, the captured graph), bit for bit.
#[test]
fn prefill_equals_decode() {
    let Some(dev) = device() else { return };
    let dev: Arc<dyn Device> = dev;
    for (name, path, _) in tiny_models() {
        let model = Arc::new(Model::load(path).unwrap());
        let gm = Arc::new(GpuModel::upload(Arc::clone(&dev), model).unwrap());
        let mut c = Context::with_gpu(gm, params()).unwrap();
        let toks: Vec<u32> = (0..40).map(|i| (i * 53 + 5) % 1000).collect();
        decode(&mut c, &toks, 0, true);
        let batch: Vec<Vec<f32>> = (0..toks.len())
            .map(|i| c.logits(i).unwrap().to_vec())
            .collect();
        c.clear();
        for (i, &t) in toks.iter().enumerate() {
            decode(&mut c, &[t], i, true);
            let l = c.logits(0).unwrap();
            assert!(
                l == &batch[i][..],
                "{name}: position {i}: prefill and decode differ (cosine {})",
                cosine(l, &batch[i])
            );
        }
    }
}

/// The batches llama-server sends (gpu_models::server_batches: one slot's prompt chunk with
/// single decode tokens of the other slots, 4 and 16 sequences at their own positions): every
/// wanted row follows the CPU (float models: cosine >= 0.99999 and the same argmax; int8
/// models: cosine >= 0.99 and the same argmax on at least 80% of the rows, as
/// tests/gpu_emu.rs `models_match_the_cpu`), and equals bit for bit the sequence decoded alone.
#[test]
fn server_batches_follow_the_cpu_and_each_sequence_alone() {
    let Some(dev) = device() else { return };
    let dev: Arc<dyn Device> = dev;
    for (name, path, float) in tiny_models() {
        let model = Arc::new(Model::load(path).unwrap());
        let gm = Arc::new(GpuModel::upload(Arc::clone(&dev), Arc::clone(&model)).unwrap());
        let n_vocab = model.hparams().n_vocab;
        for n_seq in [4, 16] {
            let batches = gpu_models::server_batches(n_seq, n_vocab);
            let (want, got) = gpu_models::run_on_cpu_and_device(&model, &gm, &batches, n_seq);
            let (mut rows, mut top1, mut identical, mut worst) = (0, 0, 0, 1f64);
            for (w, g) in want.iter().zip(&got) {
                assert_eq!(w.len(), g.len());
                for ((sw, a), (sg, b)) in w.iter().zip(g) {
                    assert_eq!(sw, sg);
                    worst = worst.min(cosine(a, b));
                    top1 += (argmax(a) == argmax(b)) as usize;
                    identical += (a == b) as usize;
                    rows += 1;
                }
            }
            say(&format!(
                "{name}, {n_seq} sequences: worst cosine {worst:.9}, top-1 {top1}/{rows}, \
                 {identical} rows bit-identical"
            ));
            if *float {
                assert!(worst >= 0.99999, "{name}: worst cosine {worst}");
                assert_eq!(top1, rows, "{name}: argmax differs");
            } else {
                assert!(worst >= 0.99, "{name}: worst cosine {worst}");
                assert!(top1 * 10 >= rows * 8, "{name}: top-1 {top1}/{rows}");
            }
            gpu_models::assert_each_sequence_alone(&gm, &batches, &got, n_seq, name);
        }
    }
}

/// Models loaded with the Q8_0 head (`HeadType::Q8_0`): the device's int8 head follows the
/// CPU's (float models: cosine >= 0.99999 and the same greedy tokens; int8 models: cosine >=
/// 0.99), and token-by-token decode equals the prefill bit for bit.
#[test]
fn q8_head_matches_cpu() {
    use bitnet::model::weights::{HeadType, LoadOptions};
    let Some(dev) = device() else { return };
    let dev: Arc<dyn Device> = dev;
    let opts = LoadOptions {
        head: HeadType::Q8_0,
        ..LoadOptions::default()
    };
    for (name, path, float) in tiny_models() {
        let model = Arc::new(Model::load_with(path, &opts).unwrap());
        assert!(model.head_q8().is_some());
        let gm = Arc::new(GpuModel::upload(Arc::clone(&dev), Arc::clone(&model)).unwrap());
        let mut cpu = Context::new(Arc::clone(&model), params()).unwrap();
        let mut gpu = Context::with_gpu(gm, params()).unwrap();
        let (tc, rc) = greedy(&mut cpu, 16);
        let rg = if *float {
            let (tg, rg) = greedy(&mut gpu, 16);
            assert_eq!(tc, tg, "{name}: greedy tokens differ");
            rg
        } else {
            forced_logits(&mut gpu, &tc)
        };
        let worst = rc
            .iter()
            .zip(&rg)
            .map(|(a, b)| cosine(a, b))
            .fold(1f64, f64::min);
        say(&format!("{name}, Q8_0 head: worst cosine {worst:.9}"));
        assert!(
            worst >= if *float { 0.99999 } else { 0.99 },
            "{name}: worst cosine {worst}"
        );
        let prefill = forced_logits(&mut gpu, &[]);
        gpu.clear();
        for (i, &t) in PROMPT.iter().enumerate() {
            decode(&mut gpu, &[t], i, true);
            assert!(
                gpu.logits(0).unwrap() == &prefill[i][..],
                "{name}: Q8_0 head: prefill and decode differ at {i}"
            );
        }
    }
}

/// Asking for more device memory than there is: an error value naming it, no crash.
#[test]
fn out_of_memory_is_an_error() {
    let Some(dev) = device() else { return };
    let (_, path, _) = &tiny_models()[3];
    let model = Arc::new(Model::load(path).unwrap());
    let gm = Arc::new(GpuModel::upload(dev, model).unwrap());
    // 2 layers x 2^28 cells x 128 values x 2 bytes = 128 GiB of keys alone.
    match Context::with_gpu(gm, ContextParams::new(1 << 28, 8)) {
        Ok(_) => panic!("a 128 GiB cache was allocated"),
        Err(e) => {
            say(&format!("out of memory: {e}"));
            assert!(e.message.contains("out of memory"), "{e}");
        }
    }
}

/// No driver or no device: `CudaDevice::open` says so in an error value.
#[test]
fn no_device_is_an_error_value() {
    match CudaDevice::open(0) {
        Ok(d) => say(&format!("device: {}", d.describe())),
        Err(OpenError::Unavailable(why)) => {
            assert!(!why.is_empty());
            say(&format!("no device, as expected here: {why}"));
        }
        Err(OpenError::Failed(e)) => panic!("device present but failed: {e}"),
    }
}

/// The C API: n_gpu_layers 1..=n_layer (partial offload) is refused; more offloads the whole
/// model (or, without a GPU, loads on the CPU with a warning); the contexts decode.
#[test]
fn c_api_offload() {
    let (_, path, _) = &tiny_models()[4];
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    let has_gpu = cuda::shared_device().is_ok();
    assert_eq!(llama_supports_gpu_offload(), has_gpu);
    let mut p = llama_model_default_params();
    p.n_gpu_layers = 1;
    // SAFETY: a valid path and default parameters; a returned handle is freed below.
    let m = unsafe { llama_model_load_from_file(cpath.as_ptr(), p) };
    assert!(m.is_null(), "partial offload must be refused");
    p.n_gpu_layers = 99;
    // SAFETY: as above.
    unsafe {
        let m = llama_model_load_from_file(cpath.as_ptr(), p);
        assert!(!m.is_null());
        let mut cp = llama_context_default_params();
        cp.n_ctx = 64;
        cp.n_batch = 16;
        let c = llama_init_from_model(m, cp);
        assert!(!c.is_null());
        let mut toks: Vec<i32> = PROMPT.iter().map(|&t| t as i32).collect();
        assert_eq!(
            llama_decode(c, llama_batch_get_one(toks.as_mut_ptr(), toks.len() as i32)),
            0
        );
        let l = llama_get_logits_ith(c, -1);
        assert!(!l.is_null());
        let row = std::slice::from_raw_parts(l, 1000);
        assert!(row.iter().all(|v| v.is_finite()));
        llama_free(c);
        llama_model_free(m);
    }
    let info = unsafe { std::ffi::CStr::from_ptr(llama_print_system_info()) };
    say(&format!("system info: {}", info.to_string_lossy()));
    assert!(info.to_string_lossy().contains("CUDA : DEVICE = "));
}

/// The kernels compile under NVRTC for every architecture the backend may pick (the check that
/// runs on any machine with libnvrtc: BITNET_NVRTC_LIB or LD_LIBRARY_PATH).
#[test]
fn nvrtc_compiles_the_kernels() {
    if !cuda::nvrtc_present() {
        if std::env::var("BITNET_GPU_REQUIRE").as_deref() == Ok("1") {
            panic!("BITNET_GPU_REQUIRE=1 but no NVRTC");
        }
        say("skipped: no NVRTC");
        return;
    }
    // compute_90 must build; older architectures may be gone from a newer NVRTC (CUDA 13 dropped
    // those below 7.5).
    for arch in ["compute_90", "compute_80", "compute_75", "compute_61"] {
        let ptx = match cuda::compile(arch) {
            Ok(p) => p,
            Err(e) if arch != "compute_90" && e.message.contains("gpu-architecture") => {
                say(&format!("{arch}: not supported by this NVRTC"));
                continue;
            }
            Err(e) => panic!("{arch}: {e}"),
        };
        for k in cuda::KERNELS {
            assert!(
                ptx.contains(&format!(".entry {k}(")),
                "{arch}: no kernel {k} in the PTX"
            );
        }
        // Register spills to local memory cost speed, not correctness: reported, not failed.
        let local = ptx.matches(".local").count();
        say(&format!(
            "{arch}: {} bytes of PTX, {local} mentions of local memory",
            ptx.len()
        ));
    }
}

/// Writes the 2B-4T-shaped models `bitnet bench --gpu` measures into $BITNET_GPU_MODELS_DIR.
#[test]
#[ignore]
fn write_2b4t_models() {
    let Some(dir) = std::env::var_os("BITNET_GPU_MODELS_DIR") else {
        say("skipped: BITNET_GPU_MODELS_DIR is not set");
        return;
    };
    let dir = Path::new(&dir);
    for (name, arch, ty) in [
        ("bitnet-b1.58-i2_s.gguf", "bitnet-b1.58", GgmlType::I2_S),
        ("bitnet-tq2_0.gguf", "bitnet", GgmlType::TQ2_0),
    ] {
        let t = std::time::Instant::now();
        let mut s = Spec::b2b4t(arch, ty);
        s.uniform = true;
        gpu_models::write(&dir.join(name), &s, 2024);
        say(&format!(
            "wrote {name} in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
    }
}
