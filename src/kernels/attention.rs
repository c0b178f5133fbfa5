//! Attention over an f16 KV cache: the visible keys and values of one layer are converted to
//! f32 once (F16C / AVX-512 through `half`'s slice conversion), then every (token, head) pair
//! runs on the pool: scores = f16(q) . k * scale, softmax (sum in f64), out = sum f16(p) * v.
//! Rounding the query and the probabilities to f16 follows the reference's f16 cache path.
//!
//! Every score is the plain sequential sum over the head's dimensions (what the scalar engine
//! computed, and what crossval's float fixtures were checked with). It is vectorized across
//! keys instead: when every token's visible cells are a prefix of one list (one sequence, the
//! usual case) the keys are stored transposed, [kv head, dim, key], and the scores advance
//! together one dimension at a time (on AVX-512, 64 of them held in registers). The output
//! sums the values key by key in order, 64 dimensions at a time in registers on AVX-512.

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::isa::{best_isa, Isa};
#[cfg(target_arch = "x86_64")]
use super::lane_mask;
use super::{exp, pool};

/// Scratch reused across calls (sized on first use; no allocation afterwards).
#[derive(Default)]
pub struct AttnScratch {
    kf: Vec<f32>,         // [n_cells, n_kv] keys of the cells in use, as f32
    kt: Vec<f32>,         // [n_head_kv, head_dim, n_keys] keys of the longest list, transposed
    vf: Vec<f32>,         // [n_cells, n_kv] values
    converted: Vec<bool>, // [n_cells] which cells kf/vf hold for this call
    touched: Vec<usize>,  // the cells marked in `converted`
    per_thread: Vec<f32>, // [threads, n_cells + head_dim] scores and the rounded query
}

/// The shape of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Cells in the cache (rows of `k_cache` / `v_cache`).
    pub n_cells: usize,
    pub scale: f32,
}

/// scores[j] += q * k[j] for every j (one dimension of many keys' sequential dot products).
#[inline(always)]
fn scores_step_lanes(scores: &mut [f32], q: f32, k: &[f32]) {
    for (s, &k) in scores.iter_mut().zip(k) {
        *s += q * k;
    }
}

/// The same sums as `scores_step_lanes` over every d, 64 keys at a time held in registers
/// (each score still adds q[d] * k in order of d, a multiply then an add).
///
/// # Safety
/// AVX-512F present; `kt` holds `q.len()` rows of `stride` floats, each at least
/// `scores.len()` long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scores_avx512(scores: &mut [f32], q: &[f32], kt: &[f32], stride: usize) {
    use std::arch::x86_64::*;
    let n = scores.len();
    assert!(q.is_empty() || kt.len() >= (q.len() - 1) * stride + n);
    let mut j = 0;
    while j < n {
        let masks: [u16; 4] =
            std::array::from_fn(|c| lane_mask((n - j).saturating_sub(16 * c), 16));
        let mut acc = [_mm512_setzero_ps(); 4];
        for (d, &qd) in q.iter().enumerate() {
            let qv = _mm512_set1_ps(qd);
            let row = kt.as_ptr().add(d * stride + j);
            for c in 0..4 {
                // SAFETY (of the load): lanes past the row's end are masked off.
                let k = _mm512_maskz_loadu_ps(masks[c], row.add(16 * c));
                acc[c] = _mm512_add_ps(acc[c], _mm512_mul_ps(qv, k));
            }
        }
        for c in 0..4 {
            _mm512_mask_storeu_ps(scores.as_mut_ptr().add(j + 16 * c), masks[c], acc[c]);
        }
        j += 64;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scores_avx2(scores: &mut [f32], q: &[f32], kt: &[f32], stride: usize) {
    for (d, &qd) in q.iter().enumerate() {
        scores_step_lanes(scores, qd, &kt[d * stride..]);
    }
}

/// scores[j] = sum over d, in order, of q[d] * kt[d * stride + j].
fn scores_transposed(isa: Isa, scores: &mut [f32], q: &[f32], kt: &[f32], stride: usize) {
    scores.fill(0.0);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the ISA was detected (best_isa) before being chosen.
        Isa::Avx512Vnni | Isa::Amx => unsafe { scores_avx512(scores, q, kt, stride) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { scores_avx2(scores, q, kt, stride) },
        _ => {
            for (d, &qd) in q.iter().enumerate() {
                scores_step_lanes(scores, qd, &kt[d * stride..]);
            }
        }
    }
}

/// The sequential dot product (the fallback when tokens see different cells).
fn dot_sequential(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| x * y).sum()
}

#[inline(always)]
fn axpy_lanes(out: &mut [f32], p: f32, v: &[f32]) {
    for (o, &v) in out.iter_mut().zip(v) {
        *o += p * v;
    }
}

/// out = sum over keys, in order, of p[key] * v[cells[key] * row + off..][..out.len()]: what
/// `axpy` over the keys gives, with 64 outputs at a time held in registers.
///
/// # Safety
/// AVX-512F present; every cell's slice lies inside `v` (checked).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn weighted_values_avx512(
    out: &mut [f32],
    p: &[f32],
    cells: &[usize],
    v: &[f32],
    row: usize,
    off: usize,
) {
    use std::arch::x86_64::*;
    let hd = out.len();
    assert!(cells.iter().all(|&c| c * row + off + hd <= v.len()));
    let mut d0 = 0;
    while d0 < hd {
        let masks: [u16; 4] =
            std::array::from_fn(|c| lane_mask((hd - d0).saturating_sub(16 * c), 16));
        let mut acc = [_mm512_setzero_ps(); 4];
        for (&pk, &c) in p.iter().zip(cells) {
            let pv = _mm512_set1_ps(pk);
            let src = v.as_ptr().add(c * row + off + d0);
            for i in 0..4 {
                // In bounds: the slice check above, and lanes past `hd` are masked off.
                let x = _mm512_maskz_loadu_ps(masks[i], src.add(16 * i));
                acc[i] = _mm512_add_ps(acc[i], _mm512_mul_ps(pv, x));
            }
        }
        for i in 0..4 {
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(d0 + 16 * i), masks[i], acc[i]);
        }
        d0 += 64;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn axpy_avx2(out: &mut [f32], p: f32, v: &[f32]) {
    axpy_lanes(out, p, v)
}

/// out += p * v, element by element (AVX-512 sums the values in `weighted_values_avx512`).
fn axpy(isa: Isa, out: &mut [f32], p: f32, v: &[f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the ISA was detected before being chosen.
        Isa::Avx2 => unsafe { axpy_avx2(out, p, v) },
        _ => axpy_lanes(out, p, v),
    }
}

/// Softmax in place; the sum of exponentials in f64 as the reference does (`exp` for the
/// exponentials).
pub fn softmax(isa: Isa, x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for v in x.iter_mut() {
        *v -= max;
    }
    exp::exp_in_place(isa, x);
    let sum: f64 = x.iter().map(|&v| v as f64).sum();
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// x = f32(f16(x)) for every element (round to nearest even, as `half`'s conversion).
fn round_to_f16(isa: Isa, x: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the ISA was detected before being chosen.
        Isa::Avx512Vnni | Isa::Amx => unsafe { round_to_f16_avx512(x) },
        _ => x.iter_mut().for_each(|v| *v = f16::from_f32(*v).to_f32()),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn round_to_f16_avx512(x: &mut [f32]) {
    use std::arch::x86_64::*;
    for chunk in x.chunks_mut(16) {
        let m = lane_mask(chunk.len(), 16);
        let p = chunk.as_mut_ptr();
        // SAFETY: the masked lanes stay inside the chunk.
        let v = unsafe { _mm512_maskz_loadu_ps(m, p) };
        let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        // SAFETY: as above.
        unsafe { _mm512_mask_storeu_ps(p, m, _mm512_cvtph_ps(h)) };
    }
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: each pool thread writes a disjoint part of what it points to (see each use).
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// out[t, head] = softmax(f16(q[t, head]) . K[visible[t]] * scale) . V[visible[t]] for every
/// token t (rows of `q` and `out`: n_head * head_dim) and head; `k_cache` / `v_cache` are one
/// layer's [n_cells, n_head_kv * head_dim] f16 rows; `visible[t]` lists the cells token t sees.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    shape: AttnShape,
    q: &[f32],
    out: &mut [f32],
    k_cache: &[f16],
    v_cache: &[f16],
    visible: &[Vec<usize>],
    threads: usize,
    s: &mut AttnScratch,
) {
    let AttnShape {
        n_head,
        n_head_kv,
        head_dim: hd,
        n_cells,
        scale,
    } = shape;
    let n_kv = n_head_kv * hd;
    let n_embd = n_head * hd;
    let group = n_head / n_head_kv;
    let n = visible.len();
    assert!(q.len() >= n * n_embd && out.len() >= n * n_embd);
    assert!(k_cache.len() >= n_cells * n_kv && v_cache.len() >= n_cells * n_kv);
    let threads = threads.clamp(1, pool::global().max_threads());
    let stride = n_cells + hd;
    // Per thread: the scores and the rounded query, or eight keys while converting.
    let slot = stride.max(KEYS_AT_ONCE * hd);
    grow(&mut s.kf, n_cells * n_kv);
    grow(&mut s.vf, n_cells * n_kv);
    grow(&mut s.converted, n_cells);
    grow(&mut s.per_thread, threads * slot);

    // The longest list; when every list is a prefix of it, its keys go transposed.
    let longest: &[usize] = visible
        .iter()
        .max_by_key(|l| l.len())
        .map_or(&[], |l| &l[..]);
    let shared = visible.iter().all(|l| longest.starts_with(l));
    let n_keys = longest.len();
    if shared {
        grow(&mut s.kt, n_kv * n_keys);
    }
    // The visible cells, each once.
    for list in visible {
        for &c in list {
            if !s.converted[c] {
                s.converted[c] = true;
                s.touched.push(c);
            }
        }
    }
    for &c in &s.touched {
        s.converted[c] = false;
    }
    // Their values as f32, and their keys (shared lists: only transposed), a run of kv heads
    // per pool thread.
    let cells = &s.touched[..];
    let (kf_p, kt_p, vf_p) = (
        OutPtr(s.kf.as_mut_ptr()),
        OutPtr(s.kt.as_mut_ptr()),
        OutPtr(s.vf.as_mut_ptr()),
    );
    let per_thread = OutPtr(s.per_thread.as_mut_ptr());
    let isa = best_isa();
    let convert = |i: usize, nt: usize| {
        let (kf_p, kt_p, vf_p, per_thread) = (kf_p, kt_p, vf_p, per_thread);
        // SAFETY: thread i owns its `slot` floats of per_thread (threads <= the scratch's
        // thread count); below, it writes only kv heads `split(..)` of it: their hd columns of
        // the cells' rows of kf/vf (grown to n_cells * n_kv, every cell < n_cells) and their
        // hd rows of kt (grown to n_kv * n_keys when shared), disjoint from other threads'.
        let tmp = unsafe { std::slice::from_raw_parts_mut(per_thread.0.add(i * slot), slot) };
        for h in pool::split(n_head_kv, 1, i, nt) {
            let off = h * hd;
            for &c in cells {
                let r = c * n_kv + off..c * n_kv + off + hd;
                // SAFETY: as above.
                let vf = unsafe { std::slice::from_raw_parts_mut(vf_p.0.add(r.start), hd) };
                to_f32(isa, &v_cache[r.clone()], vf);
                if !shared {
                    // SAFETY: as above.
                    let kf = unsafe { std::slice::from_raw_parts_mut(kf_p.0.add(r.start), hd) };
                    to_f32(isa, &k_cache[r], kf);
                }
            }
            if shared {
                // Eight keys converted at a time, then written down the head's kt rows.
                for (j0, keys) in longest.chunks(KEYS_AT_ONCE).enumerate() {
                    for (j, &c) in keys.iter().enumerate() {
                        to_f32(
                            isa,
                            &k_cache[c * n_kv + off..][..hd],
                            &mut tmp[j * hd..(j + 1) * hd],
                        );
                    }
                    for d in 0..hd {
                        // SAFETY: as above (row off + d of kt, keys j0 * 8.. of it).
                        let row = unsafe {
                            std::slice::from_raw_parts_mut(
                                kt_p.0.add((off + d) * n_keys + j0 * KEYS_AT_ONCE),
                                keys.len(),
                            )
                        };
                        for (j, o) in row.iter_mut().enumerate() {
                            *o = tmp[j * hd + d];
                        }
                    }
                }
            }
        }
    };
    let convert_threads = if n_head_kv >= 2 && cells.len() >= 16 {
        threads
    } else {
        1
    };
    pool::global().run(convert_threads, &convert);
    s.touched.clear();

    let (kf, kt, vf) = (&s.kf[..], &s.kt[..], &s.vf[..]);
    let per_thread = OutPtr(s.per_thread.as_mut_ptr());
    let out_ptr = OutPtr(out.as_mut_ptr());
    let tasks = n * n_head;
    let work = |i: usize, nt: usize| {
        let (per_thread, out_ptr) = (per_thread, out_ptr);
        // SAFETY: thread i owns its `slot` floats of per_thread (threads <= the scratch's
        // thread count), and writes only the out slices of its own (token, head) tasks.
        let mine = unsafe { std::slice::from_raw_parts_mut(per_thread.0.add(i * slot), stride) };
        let (scores, qh) = mine.split_at_mut(n_cells);
        let qh = &mut qh[..hd];
        // Every nt-th task: with a causal mask later tokens see more keys, so contiguous
        // halves would leave the first thread idle half the time.
        for task in (i..tasks).step_by(nt) {
            let (t, head) = (task / n_head, task % n_head);
            let kv_off = (head / group) * hd;
            qh.copy_from_slice(&q[t * n_embd + head * hd..][..hd]);
            round_to_f16(isa, qh);
            let list = &visible[t];
            let sc = &mut scores[..list.len()];
            if shared {
                scores_transposed(isa, sc, qh, &kt[kv_off * n_keys..], n_keys);
                sc.iter_mut().for_each(|v| *v *= scale);
            } else {
                for (o, &c) in sc.iter_mut().zip(list) {
                    *o = dot_sequential(qh, &kf[c * n_kv + kv_off..][..hd]) * scale;
                }
            }
            softmax(isa, sc);
            // SAFETY: (t, head) is this task's own output slice, inside `out` (asserted).
            let o = unsafe {
                std::slice::from_raw_parts_mut(out_ptr.0.add(t * n_embd + head * hd), hd)
            };
            round_to_f16(isa, sc);
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the ISA was detected before being chosen.
                Isa::Avx512Vnni | Isa::Amx => unsafe {
                    weighted_values_avx512(o, sc, list, vf, n_kv, kv_off)
                },
                _ => {
                    o.fill(0.0);
                    for (&p, &c) in sc.iter().zip(list) {
                        axpy(isa, o, p, &vf[c * n_kv + kv_off..][..hd]);
                    }
                }
            }
        }
    };
    let threads = if tasks >= 2 { threads } else { 1 };
    pool::global().run(threads, &work);
}

/// dst = src as f32 (exact), eight at a time with F16C at the AVX2 level and above: the
/// `half` slice conversion picks its path per call of eight, which costs more than the
/// conversion for a head's 64-128 values.
fn to_f32(isa: Isa, src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the level was detected before being chosen, and every x86 level here has
        // F16C (`isa`); `src` holds dst.len() values (asserted).
        Isa::Avx2 | Isa::Avx512Vnni | Isa::Amx => unsafe {
            super::f16_to_f32_f16c(src.as_ptr() as *const u8, dst)
        },
        _ => src.convert_to_f32_slice(dst),
    }
}

/// Keys converted together before they are written transposed (`attention`).
const KEYS_AT_ONCE: usize = 8;

fn grow<T: Default + Clone>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// The plain per-element version (what the context computed before).
    #[allow(clippy::too_many_arguments)]
    fn reference(
        shape: AttnShape,
        q: &[f32],
        k: &[f16],
        v: &[f16],
        visible: &[Vec<usize>],
    ) -> Vec<f32> {
        let hd = shape.head_dim;
        let n_kv = shape.n_head_kv * hd;
        let n_embd = shape.n_head * hd;
        let group = shape.n_head / shape.n_head_kv;
        let mut out = vec![0f32; visible.len() * n_embd];
        for (t, list) in visible.iter().enumerate() {
            for head in 0..shape.n_head {
                let kv_off = (head / group) * hd;
                let qh: Vec<f32> = q[t * n_embd + head * hd..][..hd]
                    .iter()
                    .map(|&x| f16::from_f32(x).to_f32())
                    .collect();
                let mut sc: Vec<f32> = list
                    .iter()
                    .map(|&c| {
                        let kk = &k[c * n_kv + kv_off..][..hd];
                        qh.iter()
                            .zip(kk)
                            .map(|(&a, &b)| a * b.to_f32())
                            .sum::<f32>()
                            * shape.scale
                    })
                    .collect();
                softmax(best_isa(), &mut sc);
                let o = &mut out[t * n_embd + head * hd..][..hd];
                for (&p, &c) in sc.iter().zip(list) {
                    let p = f16::from_f32(p).to_f32();
                    for (o, &vv) in o.iter_mut().zip(&v[c * n_kv + kv_off..][..hd]) {
                        *o += p * vv.to_f32();
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_plain_attention() {
        let mut rng = SplitMix64(21);
        // Small heads; heads of 64 + 8 dims over more keys than one 64-key register block; an
        // odd number of kv heads (split between two threads while converting).
        for (n_head, n_head_kv, head_dim, n_cells, base) in
            [(8, 2, 40, 37, 20), (4, 2, 72, 150, 100), (6, 3, 16, 60, 17)]
        {
            let shape = AttnShape {
                n_head,
                n_head_kv,
                head_dim,
                n_cells,
                scale: 1.0 / (head_dim as f32).sqrt(),
            };
            let n_kv = shape.n_head_kv * shape.head_dim;
            let k: Vec<f16> = (0..shape.n_cells * n_kv)
                .map(|_| f16::from_f32(rng.normal()))
                .collect();
            let v: Vec<f16> = (0..shape.n_cells * n_kv)
                .map(|_| f16::from_f32(rng.normal()))
                .collect();
            let n = 5;
            let q: Vec<f32> = (0..n * shape.n_head * shape.head_dim)
                .map(|_| rng.normal())
                .collect();
            // Lists that are prefixes of one (the transposed path) and lists that are not.
            let prefixes: Vec<Vec<usize>> =
                (0..n).map(|t| (0..base + 3 * t).rev().collect()).collect();
            let scattered: Vec<Vec<usize>> = (0..n)
                .map(|t| (0..base + 10 + t).rev().step_by(1 + t % 2).collect())
                .collect();
            let mut s = AttnScratch::default();
            for visible in [prefixes, scattered] {
                let want = reference(shape, &q, &k, &v, &visible);
                for threads in [1, 2] {
                    let mut out = vec![f32::NAN; want.len()];
                    attention(shape, &q, &mut out, &k, &v, &visible, threads, &mut s);
                    assert_eq!(out, want, "{threads} threads, head_dim {head_dim}");
                }
            }
        }
    }
}
