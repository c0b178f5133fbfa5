//! exp over slices of f32 (softmax, SiLU), 8 values at a time on AVX-512.
//!
//! The scalar path is `f32::exp` (glibc's expf, accurate to 0.502 ulp). The vector path
//! computes exp in double (Taylor series of degree 12 after the usual reduction by ln 2,
//! relative error below 1e-15) and rounds once to f32: the correctly rounded result but for
//! values within 1e-15 of a rounding midpoint, so it equals expf except for the rare inputs
//! where expf itself is off by its last 0.002 ulp (a 1-ulp difference), and it is what the
//! CUDA kernels compute (exp in double rounded to float).

use super::isa::Isa;

/// x = exp(x) for every element.
pub fn exp_in_place(isa: Isa, x: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the ISA was detected (kernels::isa) before being chosen.
        Isa::Avx512Vnni | Isa::Amx => unsafe { x86::exp_slice(x) },
        _ => x.iter_mut().for_each(|v| *v = v.exp()),
    }
}

/// SiLU(g) = g / (1 + exp(-g)), in f32 after the exponential.
#[inline]
pub fn silu(g: f32) -> f32 {
    g / (1.0 + (-g).exp())
}

/// gate[i] = silu(gate[i]) * up[i] (the gated FFN of the `bitnet` architecture).
pub fn silu_mul(isa: Isa, gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx512Vnni | Isa::Amx => unsafe { x86::silu_mul(gate, up) },
        _ => {
            for (g, &u) in gate.iter_mut().zip(up) {
                *g = silu(*g) * u;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::kernels::lane_mask;
    use std::arch::x86_64::*;

    /// exp of eight doubles (inputs clamped to [-110, 100]: outside, the f32 result is 0 or
    /// inf either way; NaN stays NaN).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn exp_pd(x: __m512d) -> __m512d {
        // 1/k! for k = 12 down to 0.
        const C: [f64; 13] = {
            let mut c = [1.0f64; 13];
            let mut k = 1;
            while k <= 12 {
                c[12 - k] = c[12 - k + 1] / k as f64;
                k += 1;
            }
            c
        };
        // ln 2 = LN2_HI + LN2_LO, LN2_HI with 32 significant bits so that k * LN2_HI is exact.
        const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
        const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
        // max/min return their second operand when either is NaN.
        let x = _mm512_min_pd(
            _mm512_set1_pd(100.0),
            _mm512_max_pd(_mm512_set1_pd(-110.0), x),
        );
        let k = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_pd(x, _mm512_set1_pd(std::f64::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_pd(k, _mm512_set1_pd(LN2_HI), x);
        let r = _mm512_fnmadd_pd(k, _mm512_set1_pd(LN2_LO), r);
        let mut p = _mm512_set1_pd(C[0]);
        for &c in &C[1..] {
            p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c));
        }
        _mm512_scalef_pd(p, k)
    }

    /// # Safety
    /// AVX-512F and VL present.
    #[target_feature(enable = "avx512f,avx512vl")]
    pub unsafe fn exp_slice(x: &mut [f32]) {
        for chunk in x.chunks_mut(8) {
            let m = lane_mask(chunk.len(), 8) as u8;
            let p = chunk.as_mut_ptr();
            // SAFETY: the masked lanes stay inside the chunk.
            let v = unsafe { _mm256_maskz_loadu_ps(m, p) };
            let e = _mm512_cvtpd_ps(exp_pd(_mm512_cvtps_pd(v)));
            // SAFETY: as above.
            unsafe { _mm256_mask_storeu_ps(p, m, e) };
        }
    }

    /// # Safety
    /// AVX-512F and VL present; `up` at least as long as `gate`.
    #[target_feature(enable = "avx512f,avx512vl")]
    pub unsafe fn silu_mul(gate: &mut [f32], up: &[f32]) {
        for (g, u) in gate.chunks_mut(8).zip(up.chunks(8)) {
            let m = lane_mask(g.len(), 8) as u8;
            // SAFETY: the masked lanes stay inside both chunks (equal lengths).
            let (gv, uv) = unsafe {
                (
                    _mm256_maskz_loadu_ps(m, g.as_ptr()),
                    _mm256_maskz_loadu_ps(m, u.as_ptr()),
                )
            };
            let neg = _mm256_sub_ps(_mm256_setzero_ps(), gv);
            // -0.0 - g and -g differ only for g = 0 (-0.0 vs +0.0 - 0.0); exp gives 1 either way.
            let e = _mm512_cvtpd_ps(exp_pd(_mm512_cvtps_pd(neg)));
            let s = _mm256_div_ps(gv, _mm256_add_ps(_mm256_set1_ps(1.0), e));
            // SAFETY: as above.
            unsafe { _mm256_mask_storeu_ps(g.as_mut_ptr(), m, _mm256_mul_ps(s, uv)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::isa::{best_isa, isa_available};
    use crate::rng::SplitMix64;

    fn ulps(a: f32, b: f32) -> i64 {
        if a.is_nan() || b.is_nan() {
            return if a.is_nan() && b.is_nan() {
                0
            } else {
                i64::MAX
            };
        }
        let key = |x: f32| {
            let i = x.to_bits() as i32 as i64;
            if i < 0 {
                i64::from(i32::MIN) - i
            } else {
                i
            }
        };
        (key(a) - key(b)).abs()
    }

    fn inputs() -> Vec<f32> {
        let mut rng = SplitMix64(5);
        let mut unit = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let mut x: Vec<f32> = (0..200_000)
            .map(|i| match i % 4 {
                0 => (unit() * 120.0 - 110.0) as f32,
                1 => (unit() * 20.0 - 10.0) as f32,
                2 => (unit() * 2.0 - 1.0) as f32 * 1e-3,
                _ => (unit() * 200.0 - 100.0) as f32,
            })
            .collect();
        x.extend([
            0.0,
            -0.0,
            1.0,
            -1.0,
            88.72,
            88.73,
            -87.33,
            -103.9,
            -104.0,
            -150.0,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
        ]);
        x
    }

    #[test]
    fn exp_is_expf_to_one_ulp_and_almost_always_equal() {
        let isa = best_isa();
        for isa in [Isa::Scalar, isa] {
            if !isa_available(isa) {
                continue;
            }
            let x = inputs();
            // Odd lengths exercise the masked tails.
            for len in [x.len(), 13, 7, 1] {
                let mut got = x[..len].to_vec();
                exp_in_place(isa, &mut got);
                let mut differ = 0;
                for (&xi, &g) in x.iter().zip(&got) {
                    let want = xi.exp();
                    let d = ulps(g, want);
                    assert!(d <= 1, "{isa:?} exp({xi}) = {g}, expf {want}");
                    // The double-precision result rounded once, where it is clearly defined.
                    let exact = (xi as f64).exp() as f32;
                    if xi.is_finite() && !exact.is_subnormal() {
                        assert!(ulps(g, exact) <= 1, "{isa:?} exp({xi}) = {g}");
                    }
                    differ += (d != 0) as usize;
                }
                assert!(
                    differ * 1000 <= len,
                    "{isa:?}: {differ} of {len} differ from expf"
                );
            }
        }
    }

    /// The double-precision step itself: relative error under 1e-15 against f64::exp over
    /// the range the f32 results come from (what makes one rounding to f32 almost always exact).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn double_exp_is_accurate_to_1e_15() {
        use std::arch::x86_64::*;
        if best_isa() < Isa::Avx512Vnni {
            return;
        }
        let mut rng = SplitMix64(7);
        let mut worst = 0f64;
        for _ in 0..20_000 {
            let xs: [f64; 8] = std::array::from_fn(|_| {
                (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 190.0 - 104.0
            });
            let mut got = [0f64; 8];
            // SAFETY: AVX-512F present (the ISA above); 8 doubles in and out.
            unsafe {
                let v = x86::exp_pd(_mm512_loadu_pd(xs.as_ptr()));
                _mm512_storeu_pd(got.as_mut_ptr(), v);
            }
            for (&x, &g) in xs.iter().zip(&got) {
                let want = x.exp();
                worst = worst.max(((g - want) / want).abs());
            }
        }
        assert!(worst < 1e-15, "worst relative error {worst:e}");
    }

    #[test]
    fn silu_mul_matches_the_scalar_formula() {
        let x = inputs();
        let mut rng = SplitMix64(6);
        let up: Vec<f32> = x.iter().map(|_| rng.normal() * 3.0).collect();
        let mut want = x.clone();
        silu_mul(Isa::Scalar, &mut want, &up);
        for len in [x.len(), 9, 8, 3] {
            let mut got = x[..len].to_vec();
            silu_mul(best_isa(), &mut got, &up[..len]);
            let mut differ = 0;
            for i in 0..len {
                // One ulp of exp moves 1 + e by at most one ulp, the quotient by about two.
                let ok = ulps(got[i], want[i]) <= 4 || (got[i] - want[i]).abs() <= 1e-30;
                assert!(ok, "silu({}) * {} = {} vs {}", x[i], up[i], got[i], want[i]);
                differ += (got[i].to_bits() != want[i].to_bits()) as usize;
            }
            assert!(differ * 1000 <= len, "{differ} of {len} differ");
        }
    }
}
