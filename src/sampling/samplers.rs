//! The samplers that shape or draw from the distribution itself: greedy, dist, top-k, top-p,
//! min-p, typical, temperature (plain and dynamic), XTC, top-n-sigma and mirostat v1/v2.
//!
//! Arithmetic follows the reference operation for operation, in the same precision (f32 where
//! it uses float, f64 where it uses double), through the same libm functions (`expf`, `logf`,
//! `powf`, `log2f` are what Rust's f32 methods call), so probabilities come out bit-identical.
//!
//! Where the reference asserts or reads out of bounds (an empty candidate array reaching a
//! softmax), these return without touching the array and leave `selected` as it was (-1 for a
//! fresh array).

use super::rng::{self, Mt19937};
use super::sort::{self, bucket_partial_sort, c_float_to_int, logit_greater};
use super::{empty, resolve_seed, Candidates, Sampler, TokenData};

/// `std::max(a, b)`: `a < b ? b : a` (NaN-handling differs from `f32::max`).
fn cpp_max(a: f32, b: f32) -> f32 {
    if a < b {
        b
    } else {
        a
    }
}

/// `llama_token_data_array_partial_sort_inplace`: keep the top `npartial` by logit, sorted.
fn partial_sort_inplace(cur: &mut Candidates<'_>, npartial: usize) {
    let live = cur.live_mut();
    let npartial = npartial.min(live.len());
    if npartial <= 128 {
        sort::partial_sort(live, npartial, &mut logit_greater);
    } else {
        let top = bucket_partial_sort(live, npartial);
        live[..npartial].copy_from_slice(&top[..npartial]);
    }
    cur.size = npartial;
    cur.sorted = true;
}

/// `llama_sampler_softmax_impl`: p = softmax(logit), optionally sorting first.
fn softmax(cur: &mut Candidates<'_>, do_sort: bool) {
    if cur.live().is_empty() {
        return;
    }
    if do_sort && !cur.sorted {
        let n = cur.size;
        partial_sort_inplace(cur, n);
    }
    let sorted = cur.sorted;
    let live = cur.live_mut();
    let mut max_l = live[0].logit;
    if !sorted {
        for d in &live[1..] {
            max_l = cpp_max(max_l, d.logit);
        }
    }
    let mut cum_sum = 0.0f32;
    for d in live.iter_mut() {
        let p = (d.logit - max_l).exp();
        d.p = p;
        cum_sum += p;
    }
    for d in live.iter_mut() {
        d.p /= cum_sum;
    }
}

/// `llama_sampler_top_k_impl`.
fn top_k_impl(cur: &mut Candidates<'_>, k: i32) {
    if k <= 0 {
        return;
    }
    let k = (k as usize).min(cur.live().len());
    if !cur.sorted {
        partial_sort_inplace(cur, k);
    }
    cur.size = k;
}

/// `llama_sampler_temp_impl`: logits / t; for t <= 0 only the (first) highest logit survives,
/// the rest become -inf.
fn temp_impl(cur: &mut Candidates<'_>, temp: f32) {
    let live = cur.live_mut();
    if live.is_empty() {
        return;
    }
    if temp <= 0.0 {
        let mut max_i = 0;
        let mut max_l = live[0].logit;
        for i in 1..live.len() {
            if live[i].logit > max_l {
                live[max_i].logit = f32::NEG_INFINITY;
                max_i = i;
                max_l = live[i].logit;
            } else {
                live[i].logit = f32::NEG_INFINITY;
            }
        }
        return;
    }
    for d in live.iter_mut() {
        d.logit /= temp;
    }
}

/// `llama_sample_dist`: a `std::discrete_distribution` over the live p values.
fn sample_discrete(cur: &Candidates<'_>, rng: &mut Mt19937) -> usize {
    rng::discrete(rng, cur.live().iter().map(|d| d.p))
}

// --- greedy ---

/// Picks the highest logit; on ties the first one. An empty array selects nothing (-1; the
/// reference would report index 0 of an empty array).
#[derive(Clone, Debug)]
pub struct Greedy;

pub fn greedy() -> Box<dyn Sampler> {
    Box::new(Greedy)
}

impl Sampler for Greedy {
    fn name(&self) -> &'static str {
        "greedy"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        let live = cur.live();
        if live.is_empty() {
            cur.selected = -1;
            return;
        }
        let mut best = 0;
        for i in 1..live.len() {
            if live[i].logit > live[best].logit {
                best = i;
            }
        }
        cur.selected = best as i64;
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

// --- dist ---

/// Draws from softmax(logits) with a seeded `std::mt19937`: one uniform double per call, then
/// the first candidate whose running (unnormalised, double) sum reaches sum * u. Also writes
/// the normalised p values.
#[derive(Clone, Debug)]
pub struct Dist {
    seed: u32,
    seed_cur: u32,
    rng: Mt19937,
}

/// `llama_sampler_init_dist(seed)`; `DEFAULT_SEED` draws a random seed.
pub fn dist(seed: u32) -> Box<dyn Sampler> {
    let seed_cur = resolve_seed(seed);
    Box::new(Dist {
        seed,
        seed_cur,
        rng: Mt19937::new(seed_cur),
    })
}

impl Sampler for Dist {
    fn name(&self) -> &'static str {
        "dist"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        let n = cur.live().len();
        if n == 0 {
            cur.selected = -1;
            return;
        }
        cur.selected = 0;
        if n == 1 {
            // The reference still draws once, to stay aligned with its GPU path.
            rng::uniform_f64(&mut self.rng);
            cur.data[0].p = 1.0;
            return;
        }
        let sorted = cur.sorted;
        let live = cur.live_mut();
        let mut max_l = live[0].logit;
        if !sorted {
            for d in &live[1..] {
                max_l = cpp_max(max_l, d.logit);
            }
        }
        let mut sum_cum = 0.0f64;
        for d in live.iter_mut() {
            let p = (d.logit - max_l).exp();
            d.p = p;
            sum_cum += p as f64;
        }
        let rnd = rng::uniform_f64(&mut self.rng);
        let sum_tgt = sum_cum * rnd;
        let mut sum_run = 0.0f64;
        let mut selected = None;
        for (i, d) in live.iter_mut().enumerate() {
            if selected.is_none() {
                sum_run += d.p as f64;
                if sum_run >= sum_tgt {
                    selected = Some(i);
                }
            }
            d.p = (d.p as f64 / sum_cum) as f32;
        }
        cur.selected = selected.unwrap_or(n - 1) as i64;
    }
    fn reset(&mut self) {
        self.seed_cur = resolve_seed(self.seed);
        self.rng.seed(self.seed_cur);
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
    fn get_seed(&self) -> u32 {
        self.seed_cur
    }
}

// --- top-k ---

#[derive(Clone, Debug)]
pub struct TopK {
    k: i32,
}

/// `llama_sampler_init_top_k(k)`: keeps the k highest logits, sorted; k <= 0 is a no-op
/// ("?top-k"); k > n keeps all (and sorts them).
pub fn top_k(k: i32) -> Box<dyn Sampler> {
    if k <= 0 {
        return empty("?top-k");
    }
    Box::new(TopK { k })
}

impl Sampler for TopK {
    fn name(&self) -> &'static str {
        "top-k"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        top_k_impl(cur, self.k);
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

// --- top-p ---

#[derive(Clone, Debug)]
pub struct TopP {
    p: f32,
    min_keep: usize,
}

/// `llama_sampler_init_top_p(p, min_keep)`: the smallest head (by probability) whose
/// cumulative p reaches `p`, at least `min_keep` long; p >= 1 is a no-op ("?top-p").
pub fn top_p(p: f32, min_keep: usize) -> Box<dyn Sampler> {
    if p >= 1.0 {
        return empty("?top-p");
    }
    Box::new(TopP { p, min_keep })
}

impl Sampler for TopP {
    fn name(&self) -> &'static str {
        "top-p"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        if self.p >= 1.0 || cur.live().is_empty() {
            return;
        }
        softmax(cur, false);
        let size = cur.live().len();
        let mut k = size;
        // Unsorted large arrays: sort only a top-256 guess first, the rest when needed.
        let mut buf: Option<Vec<TokenData>> = None;
        if !cur.sorted && size > 1024 {
            k = size.min(256);
            buf = Some(bucket_partial_sort(cur.live(), k));
        } else if !cur.sorted {
            partial_sort_inplace(cur, k);
        }
        let mut cum_sum = 0.0f32;
        let mut last_idx = size;
        for i in 0..size {
            let p = match &buf {
                Some(b) => b[i].p,
                None => cur.data[i].p,
            };
            cum_sum += p;
            if cum_sum >= self.p && i + 1 >= self.min_keep {
                last_idx = i + 1;
                break;
            }
            if !cur.sorted && i == k - 1 {
                k = size;
                buf = Some(bucket_partial_sort(cur.live(), k));
            }
        }
        if !cur.sorted {
            if let Some(b) = &buf {
                cur.data[..last_idx].copy_from_slice(&b[..last_idx]);
            }
            cur.sorted = true;
        }
        cur.size = last_idx;
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

// --- min-p ---

#[derive(Clone, Debug)]
pub struct MinP {
    p: f32,
    min_keep: usize,
}

/// `llama_sampler_init_min_p(p, min_keep)`: keeps candidates with logit >= max + ln(p), i.e.
/// probability >= p * p_max; p <= 0 is a no-op ("?min-p").
pub fn min_p(p: f32, min_keep: usize) -> Box<dyn Sampler> {
    if p <= 0.0 {
        return empty("?min-p");
    }
    Box::new(MinP { p, min_keep })
}

impl Sampler for MinP {
    fn name(&self) -> &'static str {
        "min-p"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        if self.p <= 0.0 || cur.live().is_empty() {
            return;
        }
        let mut applied = false;
        if !cur.sorted {
            // Unsorted: filter in place order, if that leaves enough.
            let mut max_logit = -f32::MAX;
            for d in cur.live() {
                max_logit = cpp_max(max_logit, d.logit);
            }
            let min_logit = max_logit + self.p.ln();
            let kept: Vec<TokenData> = cur
                .live()
                .iter()
                .filter(|d| d.logit >= min_logit)
                .copied()
                .collect();
            if !kept.is_empty() && kept.len() >= self.min_keep {
                cur.data[..kept.len()].copy_from_slice(&kept);
                cur.size = kept.len();
                applied = true;
            }
        }
        if !applied {
            if !cur.sorted {
                let n = cur.size;
                partial_sort_inplace(cur, n);
            }
            let live = cur.live();
            let min_logit = live[0].logit + self.p.ln();
            let mut i = 1;
            while i < live.len() {
                if live[i].logit < min_logit && i >= self.min_keep {
                    break;
                }
                i += 1;
            }
            cur.size = i;
        }
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

// --- typical ---

#[derive(Clone, Debug)]
pub struct Typical {
    p: f32,
    min_keep: usize,
}

/// `llama_sampler_init_typical(p, min_keep)`: locally typical sampling; p >= 1 is a no-op
/// ("?typical"). Leaves the array unsorted (ordered by typicality).
pub fn typical(p: f32, min_keep: usize) -> Box<dyn Sampler> {
    if p >= 1.0 {
        return empty("?typical");
    }
    Box::new(Typical { p, min_keep })
}

impl Sampler for Typical {
    fn name(&self) -> &'static str {
        "typical"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        if self.p >= 1.0 || cur.live().is_empty() {
            return;
        }
        softmax(cur, true);
        let live = cur.live();
        let mut entropy = 0.0f32;
        for d in live {
            entropy += -d.p * d.p.ln();
        }
        let shifted: Vec<f32> = live.iter().map(|d| (-d.p.ln() - entropy).abs()).collect();
        let mut indices: Vec<usize> = (0..live.len()).collect();
        sort::sort(&mut indices, &mut |&a, &b| shifted[a] < shifted[b]);
        let mut cum_sum = 0.0f32;
        let mut last_idx = indices.len();
        for (i, &idx) in indices.iter().enumerate() {
            cum_sum += live[idx].p;
            if cum_sum > self.p && (self.min_keep == 0 || i + 1 >= self.min_keep) {
                last_idx = i + 1;
                break;
            }
        }
        let kept: Vec<TokenData> = indices[..last_idx].iter().map(|&i| live[i]).collect();
        cur.data[..kept.len()].copy_from_slice(&kept);
        cur.size = kept.len();
        cur.sorted = false;
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

// --- temp ---

#[derive(Clone, Debug)]
pub struct Temp {
    temp: f32,
}

/// `llama_sampler_init_temp(t)`: logits / t; t <= 0 keeps only the highest logit (the others
/// become -inf); t == 1 is a no-op ("?temp").
pub fn temp(t: f32) -> Box<dyn Sampler> {
    if t == 1.0 {
        return empty("?temp");
    }
    Box::new(Temp { temp: t })
}

impl Sampler for Temp {
    fn name(&self) -> &'static str {
        "temp"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        temp_impl(cur, self.temp);
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

// --- temp-ext ---

#[derive(Clone, Debug)]
pub struct TempExt {
    temp: f32,
    delta: f32,
    exponent: f32,
}

/// `llama_sampler_init_temp_ext(t, delta, exponent)`: entropy-based dynamic temperature in
/// [t - delta, t + delta] when delta > 0, else plain temperature; t == 1 with delta <= 0 is a
/// no-op ("?temp-ext").
pub fn temp_ext(t: f32, delta: f32, exponent: f32) -> Box<dyn Sampler> {
    if t == 1.0 && delta <= 0.0 {
        return empty("?temp-ext");
    }
    Box::new(TempExt {
        temp: t,
        delta,
        exponent,
    })
}

impl Sampler for TempExt {
    fn name(&self) -> &'static str {
        "temp-ext"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        if self.delta <= 0.0 {
            temp_impl(cur, self.temp);
            return;
        }
        let min_temp = cpp_max(0.0, self.temp - self.delta);
        let max_temp = self.temp + self.delta;
        let n = cur.live().len();
        if n <= 1 {
            return;
        }
        let max_entropy = -(1.0f32 / n as f32).ln();
        softmax(cur, true);
        let mut entropy = 0.0f32;
        for d in cur.live() {
            if d.p > 0.0 {
                entropy -= d.p * d.p.ln();
            }
        }
        let normalized_entropy = entropy / max_entropy;
        let dyn_temp = min_temp + (max_temp - min_temp) * normalized_entropy.powf(self.exponent);
        temp_impl(cur, dyn_temp);
        // Probabilities again, in double.
        let live = cur.live_mut();
        let max_l = live[0].logit as f64;
        let mut cum_sum = 0.0f64;
        for d in live.iter_mut() {
            let p = (d.logit as f64 - max_l).exp();
            d.p = p as f32;
            cum_sum += p;
        }
        for d in live.iter_mut() {
            d.p = (d.p as f64 / cum_sum) as f32;
        }
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

// --- xtc ---

#[derive(Clone, Debug)]
pub struct Xtc {
    probability: f32,
    threshold: f32,
    min_keep: usize,
    seed: u32,
    rng: Mt19937,
}

/// `llama_sampler_init_xtc(p, t, min_keep, seed)`: with probability p (one uniform float per
/// call), drops every candidate at or above probability t except the least likely of them, by
/// advancing the start of the array; p <= 0 or t > 0.5 is a no-op ("?xtc").
pub fn xtc(p: f32, t: f32, min_keep: usize, seed: u32) -> Box<dyn Sampler> {
    if p <= 0.0 || t > 0.5 {
        return empty("?xtc");
    }
    Box::new(Xtc {
        probability: p,
        threshold: t,
        min_keep,
        seed,
        rng: Mt19937::new(resolve_seed(seed)),
    })
}

impl Sampler for Xtc {
    fn name(&self) -> &'static str {
        "xtc"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        if self.probability <= 0.0 || self.threshold > 0.5 || cur.live().len() < 2 {
            return;
        }
        let chance = rng::uniform_f32(&mut self.rng);
        if chance > self.probability {
            return;
        }
        softmax(cur, true);
        let live = cur.live();
        let mut pos_last = 0usize;
        for (i, d) in live.iter().enumerate() {
            if d.p >= self.threshold {
                pos_last = i;
            } else {
                break;
            }
        }
        if live.len() - pos_last >= self.min_keep && pos_last > 0 {
            cur.advance(pos_last);
        }
    }
    fn reset(&mut self) {
        self.rng.seed(resolve_seed(self.seed));
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

// --- top-n-sigma ---

#[derive(Clone, Debug)]
pub struct TopNSigma {
    n: f32,
}

/// `llama_sampler_init_top_n_sigma(n)`: logits below max - n * stddev (over the finite ones)
/// become -inf; n <= 0 is a no-op ("?top-n-sigma").
pub fn top_n_sigma(n: f32) -> Box<dyn Sampler> {
    if n <= 0.0 {
        return empty("?top-n-sigma");
    }
    Box::new(TopNSigma { n })
}

impl Sampler for TopNSigma {
    fn name(&self) -> &'static str {
        "top-n-sigma"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        let live = cur.live_mut();
        if self.n <= 0.0 || live.len() <= 1 {
            return;
        }
        let mut max = live[0].logit;
        let mut logits_sum = 0.0f32;
        let mut valid_count = 0usize;
        for d in live.iter() {
            if d.logit != f32::NEG_INFINITY {
                max = cpp_max(max, d.logit);
                logits_sum += d.logit;
                valid_count += 1;
            }
        }
        let mean = if valid_count > 0 {
            logits_sum / valid_count as f32
        } else {
            0.0
        };
        // The reference accumulates pow(x - mean, 2) (double) into a float.
        let mut acc = 0.0f32;
        for d in live.iter() {
            if d.logit != f32::NEG_INFINITY {
                let diff = (d.logit - mean) as f64;
                acc = (acc as f64 + diff * diff) as f32;
            }
        }
        let std = if valid_count > 0 {
            (acc / valid_count as f32).sqrt()
        } else {
            0.0
        };
        let cut = max - self.n * std;
        for d in live.iter_mut() {
            if d.logit < cut {
                d.logit = f32::NEG_INFINITY;
            }
        }
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

// --- mirostat ---

#[derive(Clone, Debug)]
pub struct Mirostat {
    n_vocab: i32,
    seed: u32,
    seed_cur: u32,
    tau: f32,
    eta: f32,
    m: i32,
    mu: f32,
    rng: Mt19937,
}

/// `llama_sampler_init_mirostat(n_vocab, seed, tau, eta, m)`: Mirostat 1.0, selects a token.
pub fn mirostat(n_vocab: i32, seed: u32, tau: f32, eta: f32, m: i32) -> Box<dyn Sampler> {
    let seed_cur = resolve_seed(seed);
    Box::new(Mirostat {
        n_vocab,
        seed,
        seed_cur,
        tau,
        eta,
        m,
        mu: 2.0 * tau,
        rng: Mt19937::new(seed_cur),
    })
}

/// `powf(2, x)` kept as a `powf` call: LLVM would otherwise turn it into `exp2f`, which can
/// round differently from the reference's `powf`.
fn powf_two(x: f32) -> f32 {
    std::hint::black_box(2.0f32).powf(x)
}

impl Sampler for Mirostat {
    fn name(&self) -> &'static str {
        "mirostat"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        if cur.live().is_empty() {
            cur.selected = -1;
            return;
        }
        softmax(cur, true);
        // Estimate s_hat from the m most probable tokens.
        let live = cur.live();
        let mut sum_ti_bi = 0.0f32;
        let mut sum_ti_sq = 0.0f32;
        let m_limit = (self.m as i64 - 1) as u64 as usize; // size_t(m - 1), as in C
        let mut i = 0usize;
        while i < m_limit && i < live.len() - 1 {
            let t_i = ((i + 2) as f32 / (i + 1) as f32).ln();
            let b_i = (live[i].p / live[i + 1].p).ln();
            sum_ti_bi += t_i * b_i;
            sum_ti_sq += t_i * t_i;
            i += 1;
        }
        let s_hat = sum_ti_bi / sum_ti_sq;
        let epsilon_hat = s_hat - 1.0;
        let k = ((epsilon_hat * powf_two(self.mu))
            / (1.0 - (self.n_vocab as f32).powf(-epsilon_hat)))
        .powf(1.0 / s_hat);
        top_k_impl(cur, c_float_to_int(k).max(1));
        softmax(cur, true);
        let idx = sample_discrete(cur, &mut self.rng);
        cur.selected = idx as i64;
        let observed_surprise = -cur.data[idx].p.log2();
        let e = observed_surprise - self.tau;
        self.mu -= self.eta * e;
    }
    fn reset(&mut self) {
        self.mu = 2.0 * self.tau;
        self.seed_cur = resolve_seed(self.seed);
        self.rng.seed(self.seed_cur);
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
    fn get_seed(&self) -> u32 {
        self.seed_cur
    }
}

// --- mirostat v2 ---

#[derive(Clone, Debug)]
pub struct MirostatV2 {
    seed: u32,
    seed_cur: u32,
    tau: f32,
    eta: f32,
    mu: f32,
    rng: Mt19937,
}

/// `llama_sampler_init_mirostat_v2(seed, tau, eta)`: Mirostat 2.0, selects a token.
pub fn mirostat_v2(seed: u32, tau: f32, eta: f32) -> Box<dyn Sampler> {
    let seed_cur = resolve_seed(seed);
    Box::new(MirostatV2 {
        seed,
        seed_cur,
        tau,
        eta,
        mu: 2.0 * tau,
        rng: Mt19937::new(seed_cur),
    })
}

impl Sampler for MirostatV2 {
    fn name(&self) -> &'static str {
        "mirostat-v2"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        if cur.live().is_empty() {
            cur.selected = -1;
            return;
        }
        softmax(cur, true);
        // Truncate at the first token whose surprise exceeds mu (keep at least one).
        let keep = cur
            .live()
            .iter()
            .position(|d| -d.p.log2() > self.mu)
            .unwrap_or(cur.live().len());
        cur.size = keep.max(1);
        softmax(cur, true);
        let idx = sample_discrete(cur, &mut self.rng);
        cur.selected = idx as i64;
        let observed_surprise = -cur.data[idx].p.log2();
        let e = observed_surprise - self.tau;
        self.mu -= self.eta * e;
    }
    fn reset(&mut self) {
        self.mu = 2.0 * self.tau;
        self.seed_cur = resolve_seed(self.seed);
        self.rng.seed(self.seed_cur);
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
    fn get_seed(&self) -> u32 {
        self.seed_cur
    }
}
