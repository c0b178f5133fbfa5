//! Op-level exact checks: our activation quantizers and quantized dot products against the
//! reference's own CPU routines (`ggml_get_type_traits_cpu(type)->from_float / vec_dot`, the
//! very functions its matmuls call), on the same inputs. Quantizers must give identical bytes,
//! dot products bit-identical f32.
//!
//! Inputs: activation rows of several shapes (normal, small, all -1, all +1, big, zeros, exact
//! rounding ties, one outlier, tiny/subnormal, alternating signs), weight rows of random valid
//! blocks (ternary codes quantized by ggml itself, random bytes where every byte is valid,
//! finite random f16 scales), several row lengths. For the weight formats we write (Q1_0,
//! Q2_0), also our writer and reader against ggml's (`from_float_ref`, `to_float`).

use bitnet::kernels;
use bitnet::rng::SplitMix64;

use crate::reference::{types, GgmlCpuType};
use crate::Result;

/// The outcome of one op over all its cases.
#[derive(Clone, Debug)]
pub struct OpResult {
    pub op: String,
    pub cases: usize,
    pub mismatches: usize,
    /// The first few mismatches, described.
    pub examples: Vec<String>,
}

impl OpResult {
    fn new(op: &str) -> OpResult {
        OpResult {
            op: op.to_string(),
            cases: 0,
            mismatches: 0,
            examples: Vec::new(),
        }
    }
    fn record(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.cases += 1;
        if !ok {
            self.mismatches += 1;
            if self.examples.len() < 5 {
                self.examples.push(what());
            }
        }
    }
    pub fn passed(&self) -> bool {
        self.mismatches == 0 && self.cases > 0
    }
}

/// Named activation patterns of `n` values.
pub fn activation_patterns(n: usize, rng: &mut SplitMix64) -> Vec<(String, Vec<f32>)> {
    let mut v: Vec<(String, Vec<f32>)> = Vec::new();
    v.push(("normal".into(), (0..n).map(|_| rng.normal()).collect()));
    v.push((
        "normal*1e-3".into(),
        (0..n).map(|_| rng.normal() * 1e-3).collect(),
    ));
    v.push((
        "uniform[-1,1)".into(),
        (0..n).map(|_| 2.0 * rng.unit() - 1.0).collect(),
    ));
    v.push(("all -1".into(), vec![-1.0; n]));
    v.push(("all +1".into(), vec![1.0; n]));
    v.push(("zeros".into(), vec![0.0; n]));
    v.push((
        "big (normal*1e30)".into(),
        (0..n).map(|_| rng.normal() * 1e30).collect(),
    ));
    v.push((
        "big (normal*6e4)".into(),
        (0..n).map(|_| rng.normal() * 6e4).collect(),
    ));
    v.push((
        "subnormal".into(),
        (0..n).map(|_| rng.normal() * 1e-39).collect(),
    ));
    v.push((
        "alternating +-3".into(),
        (0..n)
            .map(|i| if i % 2 == 0 { 3.0 } else { -3.0 })
            .collect(),
    ));
    // One outlier per 32 values: most codes become 0 or +-1.
    v.push((
        "outliers".into(),
        (0..n)
            .map(|i| {
                if i % 32 == 7 {
                    100.0 * rng.normal()
                } else {
                    rng.normal()
                }
            })
            .collect(),
    ));
    // Exact rounding ties: with the largest magnitude 127 (or -127) in every 32-value group the
    // scale is 1 (Q8_0: d = 127/127; Q8_K: iscale = -127/max), so values k + 0.5 sit exactly
    // between two codes.
    v.push((
        "ties +127".into(),
        (0..n)
            .map(|i| {
                if i % 32 == 0 {
                    127.0
                } else {
                    (rng.below(254) as f32 - 127.0) + 0.5
                }
            })
            .collect(),
    ));
    v.push((
        "ties -127".into(),
        (0..n)
            .map(|i| {
                if i % 32 == 0 {
                    -127.0
                } else {
                    (rng.below(254) as f32 - 127.0) + 0.5
                }
            })
            .collect(),
    ));
    // Values a hair around ties at other scales.
    v.push((
        "near-ties".into(),
        (0..n)
            .map(|i| {
                let k = (i % 255) as f32 - 127.0 + 0.5;
                k * (1.0 + 1e-7 * rng.normal())
            })
            .collect(),
    ));
    v
}

fn f16_bits(x: f32) -> [u8; 2] {
    bitnet::quant::float::f32_to_f16(x).to_le_bytes()
}

/// A random finite f16 scale, either sign, magnitudes from 1e-4 to 100 (and sometimes zero or
/// subnormal).
fn random_scale(rng: &mut SplitMix64) -> [u8; 2] {
    let r = rng.below(20);
    let mag = match r {
        0 => 0.0,
        1 => 3e-6, // f16 subnormal
        _ => 10f32.powf(rng.unit() * 6.0 - 4.0),
    };
    let s = if rng.below(2) == 0 { mag } else { -mag };
    f16_bits(s)
}

/// Random weight rows of `n` values for `ty`, named.
fn weight_rows(
    ty: u32,
    n: usize,
    ggml: &GgmlCpuType,
    rng: &mut SplitMix64,
) -> Result<Vec<(String, Vec<u8>)>> {
    let blocks = n / ggml.block_size;
    let bb = ggml.block_bytes;
    let mut rows = Vec::new();
    match ty {
        types::TQ1_0 | types::TQ2_0 => {
            // Ternary values times a scale, quantized by ggml itself: valid blocks by
            // construction.
            for (name, code) in [
                ("ternary random", None),
                ("ternary all -1", Some(-1.0f32)),
                ("ternary all +1", Some(1.0)),
            ] {
                let scale = 10f32.powf(rng.unit() * 4.0 - 2.0);
                let x: Vec<f32> = (0..n)
                    .map(|_| code.unwrap_or_else(|| rng.below(3) as f32 - 1.0) * scale)
                    .collect();
                rows.push((name.to_string(), ggml.from_float(&x)?));
            }
            // Random codes with random scales per block.
            let mut w = vec![0u8; blocks * bb];
            for b in w.chunks_exact_mut(bb) {
                if ty == types::TQ1_0 {
                    // Every byte value decodes to trits (base-3 fixed point).
                    for x in &mut b[..bb - 2] {
                        *x = rng.below(256) as u8;
                    }
                } else {
                    // 2-bit codes 0..=2 (-1, 0, +1).
                    for x in &mut b[..bb - 2] {
                        let mut v = 0u8;
                        for s in 0..4 {
                            v |= (rng.below(3) as u8) << (2 * s);
                        }
                        *x = v;
                    }
                }
                b[bb - 2..].copy_from_slice(&random_scale(rng));
            }
            rows.push(("random codes/scales".to_string(), w));
        }
        types::Q6_K => {
            for name in ["random bytes", "random bytes 2"] {
                let mut w = vec![0u8; blocks * bb];
                for b in w.chunks_exact_mut(bb) {
                    for x in &mut b[..bb - 2] {
                        *x = rng.below(256) as u8;
                    }
                    b[bb - 2..].copy_from_slice(&random_scale(rng));
                }
                rows.push((name.to_string(), w));
            }
            let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            rows.push(("quantized normal".to_string(), ggml.from_float(&x)?));
        }
        types::Q1_0 | types::Q2_0 => {
            // Every byte is a valid block body (Q2_0's code 3 is +2); finite random scales.
            for name in ["random codes/scales", "random codes/scales 2"] {
                let mut w = vec![0u8; blocks * bb];
                for b in w.chunks_exact_mut(bb) {
                    b[..2].copy_from_slice(&random_scale(rng));
                    for x in &mut b[2..] {
                        *x = rng.below(256) as u8;
                    }
                }
                rows.push((name.to_string(), w));
            }
            // Uniform codes, scale 1: all -1, 0x55 / 0xaa patterns, all +1 (Q1_0) or +2 (Q2_0).
            for fill in [0x00u8, 0x55, 0xaa, 0xff] {
                let mut w = vec![fill; blocks * bb];
                for b in w.chunks_exact_mut(bb) {
                    b[..2].copy_from_slice(&f16_bits(1.0));
                }
                rows.push((format!("uniform {fill:#04x}"), w));
            }
            let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            rows.push(("quantized normal".to_string(), ggml.from_float(&x)?));
        }
        types::Q8_0 | types::Q4_0 => {
            for name in ["random bytes", "random bytes 2"] {
                let mut w = vec![0u8; blocks * bb];
                for b in w.chunks_exact_mut(bb) {
                    b[..2].copy_from_slice(&random_scale(rng));
                    for x in &mut b[2..] {
                        *x = rng.below(256) as u8;
                    }
                }
                rows.push((name.to_string(), w));
            }
            let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            rows.push(("quantized normal".to_string(), ggml.from_float(&x)?));
        }
        _ => return Err(format!("no weight generator for ggml type {ty}").into()),
    }
    Ok(rows)
}

fn hex_diff(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!(
            "first differing byte {i}: ours {:#04x} ggml {:#04x}",
            a[i], b[i]
        ),
        None => format!("lengths {} vs {}", a.len(), b.len()),
    }
}

/// Our quantizer vs ggml's `from_float` for `ty` (Q8_K or Q8_0).
pub fn check_quantizer(ty: u32, seed: u64) -> Result<OpResult> {
    let ggml = GgmlCpuType::get(ty)?;
    let ours: fn(&[f32], &mut [u8]) = match ty {
        types::Q8_K => kernels::quantize_q8_k,
        types::Q8_0 => kernels::quantize_q8_0,
        _ => return Err(format!("no quantizer of ours for ggml type {ty}").into()),
    };
    let mut res = OpResult::new(&format!("quantize_{}", ggml.name.to_lowercase()));
    let mut rng = SplitMix64(seed);
    for n in [256usize, 1024, 2560, 6912] {
        for (name, x) in activation_patterns(n, &mut rng) {
            let theirs = ggml.from_float(&x)?;
            let mut mine = vec![0u8; theirs.len()];
            ours(&x, &mut mine);
            res.record(mine == theirs, || {
                format!("n={n} {name}: {}", hex_diff(&mine, &theirs))
            });
        }
    }
    Ok(res)
}

/// Our dot product vs ggml's `vec_dot` for weight type `ty` (activations quantized by ggml's
/// own `from_float` of its `vec_dot_type`).
pub fn check_dot(ty: u32, seed: u64) -> Result<OpResult> {
    let wt = GgmlCpuType::get(ty)?;
    let at = GgmlCpuType::get(wt.vec_dot_type)?;
    let ours: fn(&[u8], &[u8]) -> f32 = match ty {
        types::TQ1_0 => kernels::dot_tq1_0_q8_k,
        types::TQ2_0 => kernels::dot_tq2_0_q8_k,
        types::Q6_K => kernels::dot_q6_k_q8_k,
        types::Q8_0 => kernels::dot_q8_0_q8_0,
        types::Q4_0 => kernels::dot_q4_0_q8_0,
        types::Q1_0 => kernels::dot_q1_0_q8_0,
        types::Q2_0 => kernels::dot_q2_0_q8_0,
        _ => return Err(format!("no dot product of ours for ggml type {ty}").into()),
    };
    let expected_partner = match ty {
        types::Q8_0 | types::Q4_0 | types::Q1_0 | types::Q2_0 => types::Q8_0,
        _ => types::Q8_K,
    };
    if wt.vec_dot_type != expected_partner {
        return Err(format!(
            "ggml's {} dots with type {} here, not {}: the engine's activation choice is wrong for this build",
            wt.name, at.name, expected_partner
        )
        .into());
    }
    let mut res = OpResult::new(&format!(
        "dot_{}_{}",
        wt.name.to_lowercase(),
        at.name.to_lowercase()
    ));
    let mut rng = SplitMix64(seed);
    for n in [256usize, 1024, 2560, 6912] {
        let acts = activation_patterns(n, &mut rng);
        for (wname, w) in weight_rows(ty, n, &wt, &mut rng)? {
            for (aname, x) in &acts {
                let a = at.from_float(x)?;
                let theirs = wt.vec_dot(n, &w, &a, &at)?;
                let mine = ours(&w, &a);
                res.record(mine.to_bits() == theirs.to_bits(), || {
                    format!("n={n} w={wname} a={aname}: ours {mine:e} ({:#010x}) ggml {theirs:e} ({:#010x})", mine.to_bits(), theirs.to_bits())
                });
            }
        }
    }
    Ok(res)
}

/// Weight values for a writer check: the activation patterns plus what only a weight file
/// meets (non-finite values, signed zeros, a lone huge value).
fn weight_patterns(n: usize, rng: &mut SplitMix64) -> Vec<(String, Vec<f32>)> {
    let mut v = activation_patterns(n, rng);
    let with = |rng: &mut SplitMix64, special: f32, every: usize| -> Vec<f32> {
        (0..n)
            .map(|i| {
                if i % every == 5 {
                    special
                } else {
                    rng.normal()
                }
            })
            .collect()
    };
    v.push(("NaN per 64".into(), with(rng, f32::NAN, 64)));
    v.push(("NaN per 7".into(), with(rng, f32::NAN, 7)));
    v.push(("+inf per 64".into(), with(rng, f32::INFINITY, 64)));
    v.push(("-inf per 200".into(), with(rng, f32::NEG_INFINITY, 200)));
    v.push(("3e38 per 9 (sums overflow)".into(), with(rng, 3e38, 9)));
    v.push(("-0.0 per 3".into(), with(rng, -0.0, 3)));
    v.push(("all -0.0".into(), vec![-0.0; n]));
    v.push(("all NaN".into(), vec![f32::NAN; n]));
    v
}

/// Our writer and reader of weight type `ty` (Q1_0, Q2_0 or Q4_0) against ggml's: `quant::quantize`
/// against both ggml writers (`from_float_ref` and the CPU backend's `from_float`), byte for
/// byte; `quant::dequantize` against `to_float`, bit for bit, on random blocks (any bytes,
/// scales NaN and infinite included) and on ggml's own output.
pub fn check_weight_format(ty: u32, seed: u64) -> Result<OpResult> {
    use bitnet::quant::{self, GgmlType};
    let ggml = GgmlCpuType::get(ty)?;
    let ours = match ty {
        types::Q1_0 => GgmlType::Q1_0,
        types::Q2_0 => GgmlType::Q2_0,
        types::Q4_0 => GgmlType::Q4_0,
        _ => return Err(format!("no weight format check for ggml type {ty}").into()),
    };
    if ours.block_size() as usize != ggml.block_size
        || ours.block_bytes() as usize != ggml.block_bytes
    {
        return Err(format!("{}: block geometry differs from ggml's", ggml.name).into());
    }
    let mut res = OpResult::new(&format!("format_{}", ggml.name.to_lowercase()));
    let mut rng = SplitMix64(seed);
    for n in [128usize, 384, 1152, 2560, 6912] {
        for (name, x) in weight_patterns(n, &mut rng) {
            let mut mine = vec![0u8; ggml.block_bytes * n / ggml.block_size];
            quant::quantize(ours, &x, &mut mine)?;
            let reference = ggml.from_float_ref(&x)?;
            let cpu = ggml.from_float(&x)?;
            res.record(mine == reference, || {
                format!("quantize n={n} {name}: {}", hex_diff(&mine, &reference))
            });
            res.record(mine == cpu, || {
                format!("quantize (cpu) n={n} {name}: {}", hex_diff(&mine, &cpu))
            });
        }
        let random: Vec<u8> = (0..ggml.block_bytes * n / ggml.block_size)
            .map(|_| rng.below(256) as u8)
            .collect();
        let normal: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        for (name, data) in [
            ("random bytes", random),
            ("ggml-quantized normal", ggml.from_float_ref(&normal)?),
        ] {
            let theirs = ggml.to_float(&data)?;
            let mut mine = vec![0f32; n];
            quant::dequantize(ours, &data, &mut mine)?;
            let first = mine
                .iter()
                .zip(&theirs)
                .position(|(a, b)| a.to_bits() != b.to_bits());
            res.record(first.is_none(), || {
                let i = first.unwrap_or(0);
                format!(
                    "dequantize n={n} {name}: value {i}: ours {:#010x} ggml {:#010x}",
                    mine[i].to_bits(),
                    theirs[i].to_bits()
                )
            });
        }
    }
    Ok(res)
}

/// Every op check.
pub fn run_all(seed: u64) -> Result<Vec<OpResult>> {
    Ok(vec![
        check_quantizer(types::Q8_K, seed)?,
        check_quantizer(types::Q8_0, seed + 1)?,
        check_dot(types::TQ1_0, seed + 2)?,
        check_dot(types::TQ2_0, seed + 3)?,
        check_dot(types::Q6_K, seed + 4)?,
        check_dot(types::Q8_0, seed + 5)?,
        check_weight_format(types::Q1_0, seed + 6)?,
        check_weight_format(types::Q2_0, seed + 7)?,
        check_dot(types::Q1_0, seed + 8)?,
        check_dot(types::Q2_0, seed + 9)?,
        check_weight_format(types::Q4_0, seed + 10)?,
        check_dot(types::Q4_0, seed + 11)?,
    ])
}
