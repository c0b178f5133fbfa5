//! RMSNorm: y = x / sqrt(mean(x^2) + eps) * w, one row at a time.
//!
//! The squares are exact in f64 (an f32 times itself fits in 48 bits) and summed in f64, as the
//! reference does. The scalar path sums them in order; the AVX-512 path keeps 32 partial sums
//! (as the CUDA kernel keeps one per thread), which moves the f64 sum by an ulp or so and the
//! f32 mean almost never.

use super::isa::Isa;

/// Sum of x[i]^2 in f64.
pub fn sum_of_squares(isa: Isa, x: &[f32]) -> f64 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the ISA was detected (kernels::isa) before being chosen.
        Isa::Avx512Vnni | Isa::Amx => unsafe { sum_of_squares_avx512(x) },
        _ => x.iter().map(|&v| v as f64 * v as f64).sum(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn sum_of_squares_avx512(x: &[f32]) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_pd(); 4];
    let mut chunks = x.chunks_exact(32);
    for c in &mut chunks {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: 8 floats at 8k inside the 32-float chunk.
            let v = _mm512_cvtps_pd(unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * k)) });
            // v * v is exact in f64, so the fused form rounds exactly as mul-then-add would.
            *a = _mm512_fmadd_pd(v, v, *a);
        }
    }
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| v as f64 * v as f64)
        .sum();
    let s = _mm512_add_pd(_mm512_add_pd(acc[0], acc[1]), _mm512_add_pd(acc[2], acc[3]));
    _mm512_reduce_add_pd(s) + tail
}

/// One row per `w.len()` values of `x`: out = x * (1 / sqrt(mean + eps)) * w.
pub fn rmsnorm(isa: Isa, out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    for (out, x) in out.chunks_exact_mut(w.len()).zip(x.chunks_exact(w.len())) {
        let mean = (sum_of_squares(isa, x) / x.len() as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, &v), &w) in out.iter_mut().zip(x).zip(w) {
            *o = v * scale * w;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::isa::best_isa;
    use crate::rng::SplitMix64;

    #[test]
    fn vector_sum_is_the_ordered_sum_to_rounding() {
        let mut rng = SplitMix64(12);
        for (n, spread) in [
            (1, 1.0),
            (31, 1.0),
            (33, 1e3),
            (2560, 1.0),
            (6912, 1e4),
            (777, 1e-20),
        ] {
            let x: Vec<f32> = (0..n)
                .map(|i| rng.normal() * if i % 7 == 0 { spread } else { 1.0 })
                .collect();
            let want = sum_of_squares(Isa::Scalar, &x);
            let got = sum_of_squares(best_isa(), &x);
            assert!((got - want).abs() <= want * 1e-14, "{n}: {got} vs {want}");
            let w: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            rmsnorm(Isa::Scalar, &mut a, &x, &w, 1e-5);
            rmsnorm(best_isa(), &mut b, &x, &w, 1e-5);
            for (p, q) in a.iter().zip(&b) {
                assert!(
                    (p - q).abs() <= 1e-6 * p.abs().max(1e-30),
                    "{n}: {p} vs {q}"
                );
            }
        }
        // All-equal rows are exact either way.
        let x = vec![3.0f32; 6912];
        assert_eq!(sum_of_squares(best_isa(), &x), 9.0 * 6912.0);
    }
}
