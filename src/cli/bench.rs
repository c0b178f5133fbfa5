//! `bitnet bench`: load time, prefill and decode speed, peak memory and the share of the
//! machine's read bandwidth a decode step reaches, measured like llama-bench (random tokens;
//! a prefill of p tokens in one batch with logits for the last; a decode of n tokens one at a
//! time from an empty cache, each with logits). The load is timed on a warm page cache: the
//! file is read through once first, so the figure measures our loading, not the disk.

use std::sync::Arc;
use std::time::Instant;

use bitnet::fixture;
use bitnet::kernels::isa::best_isa;
use bitnet::model::weights::{HeadType, LoadOptions};
use bitnet::model::{Context, ContextParams, Model};
use bitnet::rng::SplitMix64;
use bitnet::{Error, Result};

use super::json;

pub struct Args {
    pub model: String,
    pub prompts: Vec<usize>,
    pub n_gen: usize,
    pub threads: usize,
    pub head: HeadType,
    pub reps: usize,
    pub json: bool,
    /// Run on the GPU (feature `cuda`).
    pub gpu: bool,
    /// `--quality N`: only the head-quality run, over N teacher-forced positions.
    pub quality: Option<usize>,
}

pub fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args {
        model: String::new(),
        prompts: vec![128, 512],
        n_gen: 64,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        head: HeadType::AsStored,
        reps: 1,
        json: false,
        gpu: false,
        quality: None,
    };
    let num = |flag: &str, v: &str| -> Result<usize> {
        v.parse()
            .map_err(|_| Error::bad_input(format!("bench: {flag} wants a number, not {v:?}")))
    };
    let mut hf = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| Error::bad_input(format!("bench: {flag} needs a value")))
        };
        match arg.as_str() {
            "-m" | "--model" => a.model = value("--model")?,
            "-hf" | "--hf-repo" => hf = Some(value("-hf")?),
            "-p" => {
                let v = value("-p")?;
                a.prompts = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| num("-p", s))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .filter(|&p| p > 0) // as llama-bench: -p 0 runs no prefill test
                    .collect();
            }
            "-n" => a.n_gen = num("-n", &value("-n")?)?,
            "-t" => a.threads = num("-t", &value("-t")?)?.max(1),
            "-r" => a.reps = num("-r", &value("-r")?)?.max(1),
            "--head" => {
                let h = value("--head")?;
                a.head = HeadType::parse(&h).ok_or_else(|| {
                    Error::bad_input(format!("bench: --head f16|q8_0|q4_0|q6_k, not {h}"))
                })?;
            }
            "--json" => a.json = true,
            "--quality" => a.quality = Some(num("--quality", &value("--quality")?)?.max(1)),
            "--gpu" => a.gpu = true,
            s => return Err(Error::bad_input(format!("bench: unknown argument {s}"))),
        }
    }
    match (a.model.is_empty(), hf) {
        (true, None) => return Err(Error::bad_input("bench: -m MODEL or -hf REPO is required")),
        (false, Some(_)) => {
            return Err(Error::bad_input(
                "bench: give -m MODEL or -hf REPO, not both",
            ))
        }
        (true, Some(spec)) => a.model = super::download::hf_model(&spec)?,
        (false, None) => {}
    }
    Ok(a)
}

/// Peak resident memory of this process so far (VmHWM), bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Read bandwidth, bytes/s: `threads` threads each summing their part of a 512 MiB buffer,
/// best of three passes.
fn read_bandwidth(threads: usize) -> f64 {
    let words = (512usize << 20) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t0 = Instant::now();
        let sums: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(words.div_ceil(threads))
                .map(|part| s.spawn(move || sum_words(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0, u64::wrapping_add)
        });
        std::hint::black_box(sums);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    (words * 8) as f64 / best
}

/// A streaming read: eight independent lanes so the loop is bound by memory, not latency.
fn sum_words(part: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    for c in part.chunks_exact(8) {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a ^= v;
        }
    }
    acc.iter().fold(0, |a, &v| a ^ v)
}

fn random_tokens(rng: &mut SplitMix64, n: usize, n_vocab: usize) -> Vec<u32> {
    (0..n).map(|_| rng.below(n_vocab as u64) as u32).collect()
}

/// Decodes `tokens` from position `pos0` in one batch; logits for the last only, or for all.
fn decode(ctx: &mut Context, tokens: &[u32], pos0: usize, all_logits: bool) -> Result<()> {
    fixture::decode(ctx, tokens, pos0 as i32, 0, all_logits)
}

/// Reads `path` through once (8 MiB at a time, the bytes dropped) so that its pages are in the
/// page cache before the load is timed.
fn warm_page_cache(path: &str) -> Result<()> {
    use std::io::Read;
    let io = |e: std::io::Error| Error::io(format!("cannot read {path}: {e}"));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 8 << 20];
    while file.read(&mut buf).map_err(io)? > 0 {}
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(args: &[String]) -> Result<()> {
    let a = parse(args)?;
    let opts = LoadOptions {
        head: a.head,
        ..LoadOptions::default()
    };
    if let Some(n) = a.quality {
        return quality_only(&a, &opts, n);
    }
    let file_bytes = std::fs::metadata(&a.model)
        .map_err(|e| Error::io(format!("cannot stat {}: {e}", a.model)))?
        .len();
    warm_page_cache(&a.model)?;
    let t0 = Instant::now();
    let model = Arc::new(Model::load_with(&a.model, &opts)?);
    let gpu = open_gpu(&a, &model)?;
    let load_s = t0.elapsed().as_secs_f64();
    let h = model.hparams().clone();
    let max_p = a.prompts.iter().copied().max().unwrap_or(1).max(1);
    let params = ContextParams {
        n_threads: a.threads,
        ..ContextParams::new(max_p.max(a.n_gen) + 1, max_p)
    };
    let mut ctx = match &gpu {
        Some(g) => g.context(params)?,
        None => Context::new(Arc::clone(&model), params)?,
    };
    let mut rng = SplitMix64(42);
    decode(&mut ctx, &random_tokens(&mut rng, 1, h.n_vocab), 0, true)?;
    let first_token_s = t0.elapsed().as_secs_f64();

    // Prefill: p tokens in one batch, logits for the last (a warm-up run first).
    let mut pp = Vec::new();
    for &p in &a.prompts {
        let mut rates = Vec::new();
        for rep in 0..=a.reps {
            ctx.clear();
            let toks = random_tokens(&mut rng, p, h.n_vocab);
            let t = Instant::now();
            decode(&mut ctx, &toks, 0, false)?;
            if rep > 0 {
                rates.push(p as f64 / t.elapsed().as_secs_f64());
            }
        }
        pp.push((p, median(&mut rates)));
    }

    // Decode: n tokens one by one from an empty cache, each with logits.
    let mut rates = Vec::new();
    for rep in 0..=a.reps {
        ctx.clear();
        let toks = random_tokens(&mut rng, a.n_gen, h.n_vocab);
        let t = Instant::now();
        for (i, tok) in toks.iter().enumerate() {
            decode(&mut ctx, std::slice::from_ref(tok), i, true)?;
        }
        if rep > 0 || a.reps == 0 {
            rates.push(a.n_gen as f64 / t.elapsed().as_secs_f64());
        }
    }
    let tg = median(&mut rates);
    let rss = peak_rss();

    // Bytes a decode step reads: the weights, plus on average half a cache of n_gen
    // positions of f16 keys and values per layer.
    let n_kv = h.n_head_kv * h.head_dim;
    let kv_bytes = h.n_layer * (a.n_gen / 2) * n_kv * 2 * 2;
    let weight_bytes = gpu
        .as_ref()
        .map_or(model.decode_weight_bytes(), |g| g.decode_weight_bytes());
    let bytes_per_token = weight_bytes + kv_bytes;
    drop(ctx);
    let bandwidth = match &gpu {
        Some(g) => g.read_bandwidth()?,
        None => read_bandwidth(a.threads),
    };
    let share = bytes_per_token as f64 * tg / bandwidth;

    // The int8 head's accuracy cost: the same tokens through an F16-head model.
    let head_accuracy = if a.head != HeadType::AsStored {
        Some(head_quality(&a, &model, QUALITY_POSITIONS)?)
    } else {
        None
    };

    let head = a.head.name();
    let ternary = bitnet::kernels::ternary::Layout::from_env()?;
    if a.json {
        let mut o = String::from("{");
        let mut first = true;
        let mut field = |o: &mut String, k: &str, v: String| {
            json::key(o, &mut first, k);
            o.push_str(&v);
        };
        let mut s = String::new();
        json::string(&mut s, &a.model);
        field(&mut o, "model", s);
        field(&mut o, "model_bytes", file_bytes.to_string());
        field(&mut o, "threads", a.threads.to_string());
        field(&mut o, "head", format!("\"{head}\""));
        field(&mut o, "isa", format!("\"{:?}\"", best_isa()));
        field(&mut o, "ternary", format!("\"{}\"", ternary.name()));
        if let Some(g) = &gpu {
            let mut s = String::new();
            json::string(&mut s, &g.describe());
            field(&mut o, "device", s);
        }
        field(&mut o, "load_s", format!("{load_s:.4}"));
        field(
            &mut o,
            "load_to_first_token_s",
            format!("{first_token_s:.4}"),
        );
        for (p, r) in &pp {
            field(&mut o, &format!("pp{p}_tok_s"), format!("{r:.3}"));
        }
        field(&mut o, &format!("tg{}_tok_s", a.n_gen), format!("{tg:.3}"));
        field(&mut o, "peak_rss_bytes", rss.to_string());
        field(&mut o, "bytes_per_token", bytes_per_token.to_string());
        field(
            &mut o,
            "read_bandwidth_gb_s",
            format!("{:.3}", bandwidth / 1e9),
        );
        field(&mut o, "bandwidth_share", format!("{share:.4}"));
        if let Some(q) = head_accuracy {
            field(&mut o, "head_cosine_vs_f16", format!("{:.6}", q.cosine));
            field(&mut o, "head_kl_vs_f16", format!("{:.6e}", q.kl));
            field(&mut o, "head_top1_vs_f16", format!("{:.4}", q.top1));
        }
        o.push('}');
        println!("{o}");
    } else {
        println!(
            "model            {} ({:.1} MB)",
            a.model,
            file_bytes as f64 / 1e6
        );
        println!("threads / head   {} / {head} ({:?})", a.threads, best_isa());
        if let Some(g) = &gpu {
            println!("device           {}", g.describe());
        }
        println!("load             {load_s:.3} s (to first token {first_token_s:.3} s)");
        for (p, r) in &pp {
            println!("pp{p:<14} {r:.2} tok/s");
        }
        println!("tg{:<14} {tg:.2} tok/s", a.n_gen);
        println!("peak RSS         {:.1} MB", rss as f64 / 1e6);
        println!(
            "bandwidth        {:.1} GB/s read ({} threads); decode reads {:.1} MB/token = {:.0}% of it",
            bandwidth / 1e9,
            a.threads,
            bytes_per_token as f64 / 1e6,
            share * 100.0
        );
        if let Some(q) = head_accuracy {
            println!("{head} head vs f16 {}", q.describe());
        }
    }
    Ok(())
}

/// The GPU side of `bench --gpu`: the model's weights on the first CUDA device.
#[cfg(feature = "cuda")]
struct Gpu(Arc<bitnet::model::gpu::GpuModel>);

#[cfg(feature = "cuda")]
impl Gpu {
    fn context(&self, params: ContextParams) -> Result<Context> {
        Context::with_gpu(Arc::clone(&self.0), params)
    }
    fn decode_weight_bytes(&self) -> usize {
        self.0.decode_weight_bytes()
    }
    fn read_bandwidth(&self) -> Result<f64> {
        bitnet::model::gpu::read_bandwidth(&**self.0.device(), 1 << 30)
    }
    fn describe(&self) -> String {
        self.0.device().describe()
    }
}

#[cfg(feature = "cuda")]
fn open_gpu(a: &Args, model: &Arc<Model>) -> Result<Option<Gpu>> {
    if !a.gpu {
        return Ok(None);
    }
    let dev = bitnet::kernels::cuda::shared_device().map_err(Error::from)?;
    let g = bitnet::model::gpu::GpuModel::upload(dev, Arc::clone(model))?;
    Ok(Some(Gpu(Arc::new(g))))
}

/// Without the CUDA backend `--gpu` is an error.
#[cfg(not(feature = "cuda"))]
enum Gpu {}

#[cfg(not(feature = "cuda"))]
impl Gpu {
    fn context(&self, _: ContextParams) -> Result<Context> {
        match *self {}
    }
    fn decode_weight_bytes(&self) -> usize {
        match *self {}
    }
    fn read_bandwidth(&self) -> Result<f64> {
        match *self {}
    }
    fn describe(&self) -> String {
        match *self {}
    }
}

#[cfg(not(feature = "cuda"))]
fn open_gpu(a: &Args, _: &Arc<Model>) -> Result<Option<Gpu>> {
    if a.gpu {
        return Err(Error::unsupported(
            "bench: --gpu needs a build with the CUDA backend (cargo build --release --features cuda)",
        ));
    }
    Ok(None)
}

/// Mean cosine and top-1 agreement of the logits of `model` (int8 head) against the same file
/// with its F16 head, over 32 random tokens decoded one by one.
/// Teacher-forced positions of the head-quality run inside a speed run.
const QUALITY_POSITIONS: usize = 32;

/// How a requantized head's logits compare with the stored (F16) head's over one fixed
/// teacher-forced run: means over positions of the logits' cosine and of KL(P_f16 || P_head)
/// (nats, softmax in f64), and the share of positions where both pick the same top token.
struct Quality {
    positions: usize,
    cosine: f64,
    kl: f64,
    top1: f64,
}

impl Quality {
    fn describe(&self) -> String {
        format!(
            "over {} teacher-forced positions: mean KL {:.3e} nats, top-1 agreement {:.1}%, mean logit cosine {:.6}",
            self.positions,
            self.kl,
            self.top1 * 100.0,
            self.cosine
        )
    }
}

/// KL(P || Q) of the softmax distributions of logits `p` and `q`, in f64.
fn kl_divergence(p: &[f32], q: &[f32]) -> f64 {
    let log_softmax = |x: &[f32]| -> Vec<f64> {
        let m = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let lse = m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        x.iter().map(|&v| v as f64 - lse).collect()
    };
    let (lp, lq) = (log_softmax(p), log_softmax(q));
    let kl: f64 = lp.iter().zip(&lq).map(|(&a, &b)| a.exp() * (a - b)).sum();
    // Rounding can leave a hair below 0 when both distributions are (nearly) one-hot.
    kl.max(0.0)
}

/// The model as loaded (`model`) against the same file with its stored head, fed the same
/// fixed tokens (seed 7, `n` of them, one batch, every position's logits).
fn head_quality(a: &Args, model: &Arc<Model>, n: usize) -> Result<Quality> {
    let stored = Arc::new(Model::load(&a.model)?);
    let params = ContextParams {
        n_threads: a.threads,
        ..ContextParams::new(n, n.min(512))
    };
    let toks = random_tokens(&mut SplitMix64(7), n, model.hparams().n_vocab);
    let logits = |m: &Arc<Model>| -> Result<Vec<Vec<f32>>> {
        let mut ctx = Context::new(Arc::clone(m), params)?;
        let mut rows = Vec::with_capacity(n);
        for (i, chunk) in toks.chunks(512).enumerate() {
            rows.extend(fixture::decode_rows(&mut ctx, chunk, (i * 512) as i32, 0)?);
        }
        Ok(rows)
    };
    let (x, y) = (logits(model)?, logits(&stored)?);
    let (mut cos, mut kl, mut agree) = (0f64, 0f64, 0usize);
    for (x, y) in x.iter().zip(&y) {
        cos += fixture::cosine(x, y);
        kl += kl_divergence(y, x);
        agree += (fixture::argmax(x) == fixture::argmax(y)) as usize;
    }
    Ok(Quality {
        positions: n,
        cosine: cos / n as f64,
        kl: kl / n as f64,
        top1: agree as f64 / n as f64,
    })
}

/// `bitnet bench --quality N`: the head-quality run alone.
fn quality_only(a: &Args, opts: &LoadOptions, n: usize) -> Result<()> {
    let model = Arc::new(Model::load_with(&a.model, opts)?);
    let q = head_quality(a, &model, n)?;
    let head = a.head.name();
    if a.json {
        let mut s = String::new();
        json::string(&mut s, &a.model);
        println!(
            "{{\"model\":{s},\"head\":\"{head}\",\"positions\":{n},\"head_cosine_vs_f16\":{:.6},\"head_kl_vs_f16\":{:.6e},\"head_top1_vs_f16\":{:.4}}}",
            q.cosine, q.kl, q.top1
        );
    } else {
        println!("{} {head} head vs stored head {}", a.model, q.describe());
    }
    Ok(())
}
