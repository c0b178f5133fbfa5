//! Each fast kernel against its scalar reference on fixed 2B-4T sizes, one thread.
//!
//! `cargo bench --bench kernels` prints one JSON object: per kernel the median time of the
//! scalar reference and of each SIMD path, and their speed ratio. With `-- --check` it also
//! fails (exit 1) when a ratio falls under its floor in `FLOORS`: ratios against the scalar
//! reference on the same machine are robust to its load and clock, unlike absolute times.
//! `-- --out FILE` writes the JSON to FILE too. `-- --prefill` instead times the prefill-sized
//! products (128 tokens against the 2B-4T FFN shapes, one thread) and prints GMAC/s per path:
//! the figure to watch when working on the matrix-matrix kernels (no scalar run, no floor).
//! `-- --decode` times decode-sized ternary products on every pool thread over more weights
//! than the caches hold (the 2B-4T FFN shapes, 2-bit and 1.6-bit layouts; Q1_0 and Q2_0 at
//! Qwen3-8B's FFN shapes) against a plain read of the same bytes: GB/s and weights per second of each, the read loop's GB/s as the
//! bound (no floor).

use std::time::Instant;

use bitnet::kernels::exp::{exp_in_place, silu_mul};
use bitnet::kernels::f16::{matmul_f16_isa, Q8Head};
use bitnet::kernels::head::Q4Head;
use bitnet::kernels::head_q6_k::{self, Q6Head};
use bitnet::kernels::isa::{available_isas, Isa};
use bitnet::kernels::lowbit::{self, LowAct, LowbitMat};
use bitnet::kernels::ternary::{matmul, matmul_isa, ActBuf, ActMode, Layout, TernaryMat};
use bitnet::quant::{self, GgmlType};
use bitnet::rng::SplitMix64;

/// Lowest acceptable speed-up of the best SIMD path over the scalar reference: well under
/// what this machine measured (AVX-512: 145-330x ternary, 49-135x F16, 8-14x Q8_0, 2.8x exp
/// and 2.5x SiLU against glibc's expf; AVX2: 80-270x, 41-70x, 6.7x, no exp path), since the
/// ratios move about 2x with machine load.
const FLOORS: &[(&str, f64)] = &[
    ("tq2_0_q8k_matvec", 30.0),
    ("tq2_0_q8k_matmul8", 30.0),
    ("i2_s_pertoken_matvec", 30.0),
    ("tq2_0_q8k_matvec_q16", 30.0),
    ("i2_s_pertoken_matvec_q16", 30.0),
    ("q2_0_matvec", 20.0),
    ("q2_0_matmul8", 20.0),
    ("q1_0_matvec", 20.0),
    ("q1_0_matmul8", 20.0),
    ("f16_head_matvec", 12.0),
    ("q8_0_head_matvec", 3.0),
    ("q4_0_head_matvec", 3.0),
    ("q6_k_head_matvec", 3.0),
    ("exp", 1.4),
    ("silu_mul", 1.3),
];

/// Median seconds of `reps` runs of `f` (after one warm-up run).
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The vector levels this CPU has (every available one but the scalar reference).
fn isas() -> Vec<Isa> {
    available_isas()
        .into_iter()
        .filter(|&i| i > Isa::Scalar)
        .collect()
}

struct Row {
    name: &'static str,
    scalar_s: f64,
    simd: Vec<(Isa, f64)>,
}

/// A random ternary matrix (values -1, 0, 1) written as `ty` and repacked in `layout`.
fn random_ternary(
    rng: &mut SplitMix64,
    ty: GgmlType,
    layout: Layout,
    rows: usize,
    cols: usize,
) -> TernaryMat {
    let vals: Vec<f32> = (0..rows * cols)
        .map(|_| rng.below(3) as f32 - 1.0)
        .collect();
    let m = match ty {
        GgmlType::I2_S => {
            let mut data = vec![0u8; rows * cols / 4 + 32];
            quant::i2_s::quantize(&vals, &mut data);
            TernaryMat::from_i2_s(&data, rows, cols)
        }
        _ => {
            let mut data = vec![0u8; ty.tensor_bytes((rows * cols) as u64).unwrap() as usize];
            quant::quantize(ty, &vals, &mut data).unwrap();
            TernaryMat::from_tq2_0(&data, rows, cols)
        }
    };
    match layout {
        Layout::Bits2 => m,
        Layout::Base3 => m.into_base3(),
    }
}

fn ternary(
    name: &'static str,
    (ty, layout): (GgmlType, Layout),
    mode: ActMode,
    rows: usize,
    cols: usize,
    n: usize,
) -> Row {
    let mut rng = SplitMix64(7);
    let m = random_ternary(&mut rng, ty, layout, rows, cols);
    let x: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
    let mut act = ActBuf::default();
    act.quantize(mode, &x, n, cols, 1);
    let mut out = vec![0f32; n * rows];
    let scalar_s = time(3, || matmul_isa(Isa::Scalar, &m, &act, &mut out, rows, 1));
    let simd = isas()
        .into_iter()
        .map(|isa| {
            (
                isa,
                time(15, || matmul_isa(isa, &m, &act, &mut out, rows, 1)),
            )
        })
        .collect();
    Row {
        name,
        scalar_s,
        simd,
    }
}

/// A Q2_0 / Q1_0 matrix of random codes and scales, repacked, against `n` tokens.
fn lowbit_row(name: &'static str, ty: GgmlType, rows: usize, cols: usize, n: usize) -> Row {
    let mut rng = SplitMix64(11);
    let m = random_lowbit(&mut rng, ty, rows, cols);
    let x: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
    let mut act = LowAct::default();
    act.quantize(&x, n, cols, 1);
    let mut out = vec![0f32; n * rows];
    let scalar_s = time(3, || {
        lowbit::matmul_isa(Isa::Scalar, &m, &mut act, &mut out, rows, 1)
    });
    let simd = isas()
        .into_iter()
        .map(|isa| {
            let s = time(15, || {
                lowbit::matmul_isa(isa, &m, &mut act, &mut out, rows, 1)
            });
            (isa, s)
        })
        .collect();
    Row {
        name,
        scalar_s,
        simd,
    }
}

fn f16_head(rows: usize, cols: usize) -> (Row, Row, Row, Row) {
    let mut rng = SplitMix64(8);
    let w: Vec<u8> = (0..rows * cols)
        .flat_map(|_| half::f16::from_f32(rng.normal() * 0.05).to_le_bytes())
        .collect();
    let x: Vec<f32> = (0..cols).map(|_| rng.normal()).collect();
    let mut out = vec![0f32; rows];
    let scalar_s = time(3, || {
        matmul_f16_isa(Isa::Scalar, &w, rows, cols, &x, 1, &mut out, rows, 1)
    });
    let simd = isas()
        .into_iter()
        .map(|isa| {
            let s = time(15, || {
                matmul_f16_isa(isa, &w, rows, cols, &x, 1, &mut out, rows, 1)
            });
            (isa, s)
        })
        .collect();
    let f16 = Row {
        name: "f16_head_matvec",
        scalar_s,
        simd,
    };
    let q8 = Q8Head::from_f16(&w, rows, cols);
    let scalar_s = time(3, || q8.matmul_isa(Isa::Scalar, &x, 1, &mut out, rows, 1));
    let simd = isas()
        .into_iter()
        .map(|isa| {
            (
                isa,
                time(15, || q8.matmul_isa(isa, &x, 1, &mut out, rows, 1)),
            )
        })
        .collect();
    let q8 = Row {
        name: "q8_0_head_matvec",
        scalar_s,
        simd,
    };
    let mut q4 = Q4Head::new(cols);
    q4.append_f16(&w, rows);
    let scalar_s = time(3, || q4.matmul_isa(Isa::Scalar, &x, 1, &mut out, rows, 1));
    let simd = isas()
        .into_iter()
        .map(|isa| {
            (
                isa,
                time(15, || q4.matmul_isa(isa, &x, 1, &mut out, rows, 1)),
            )
        })
        .collect();
    let q4 = Row {
        name: "q4_0_head_matvec",
        scalar_s,
        simd,
    };
    let mut q6 = Q6Head::new(cols, rows);
    q6.append_rows(rows, &|r, row| {
        for (o, b) in row.iter_mut().zip(w[r * cols * 2..].chunks_exact(2)) {
            *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        }
    });
    let mut q6_s = |isa| {
        time(if isa == Isa::Scalar { 3 } else { 15 }, || {
            head_q6_k::matmul_isa(isa, q6.blocks(), rows, cols, &x, 1, &mut out, rows, 1)
        })
    };
    let q6 = Row {
        name: "q6_k_head_matvec",
        scalar_s: q6_s(Isa::Scalar),
        simd: isas().into_iter().map(|isa| (isa, q6_s(isa))).collect(),
    };
    (f16, q8, q4, q6)
}

/// exp (softmax) and SiLU x up (the `bitnet` FFN gate) over a 128-token prefill's gate
/// activations (128 x 6912 values). Only AVX-512 has a vector path; elsewhere no SIMD row.
fn activations() -> [Row; 2] {
    let n = 128 * 6912;
    let mut rng = SplitMix64(10);
    let x: Vec<f32> = (0..n).map(|_| rng.normal() * 4.0).collect();
    let up: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let vector_isas: Vec<Isa> = isas()
        .into_iter()
        .filter(|&i| i >= Isa::Avx512Vnni)
        .collect();
    let mut buf = x.clone();
    let mut exp_time = |isa: Isa| {
        time(5, || {
            buf.copy_from_slice(&x);
            exp_in_place(isa, &mut buf);
        })
    };
    let exp = Row {
        name: "exp",
        scalar_s: exp_time(Isa::Scalar),
        simd: vector_isas.iter().map(|&i| (i, exp_time(i))).collect(),
    };
    let mut silu_time = |isa: Isa| {
        time(5, || {
            buf.copy_from_slice(&x);
            silu_mul(isa, &mut buf, &up);
        })
    };
    let silu = Row {
        name: "silu_mul",
        scalar_s: silu_time(Isa::Scalar),
        simd: vector_isas.iter().map(|&i| (i, silu_time(i))).collect(),
    };
    [exp, silu]
}

/// Prefill-sized ternary products: GMAC/s of each SIMD path and of the activation quantizer.
fn prefill() {
    let mut json = String::from("{\"threads\":1,\"tokens\":128,\"gmacs\":{");
    let mut first = true;
    for (ty, mode, tag) in [
        (GgmlType::I2_S, ActMode::PerToken, "i2_s_pertoken"),
        (GgmlType::TQ2_0, ActMode::Q8K, "tq2_0_q8k"),
    ] {
        for (rows, cols) in [(6912, 2560), (2560, 6912)] {
            let (n, mut rng) = (128, SplitMix64(9));
            let vals: Vec<f32> = (0..rows * cols)
                .map(|_| rng.below(3) as f32 - 1.0)
                .collect();
            let m = match ty {
                GgmlType::I2_S => {
                    let mut data = vec![0u8; rows * cols / 4 + 32];
                    quant::i2_s::quantize(&vals, &mut data);
                    TernaryMat::from_i2_s(&data, rows, cols)
                }
                _ => {
                    let bytes = ty.tensor_bytes((rows * cols) as u64).unwrap() as usize;
                    let mut data = vec![0u8; bytes];
                    quant::quantize(ty, &vals, &mut data).unwrap();
                    TernaryMat::from_tq2_0(&data, rows, cols)
                }
            };
            let x: Vec<f32> = (0..n * cols).map(|_| rng.normal()).collect();
            let mut act = ActBuf::default();
            let quant_s = time(5, || act.quantize(mode, &x, n, cols, 1));
            let mut out = vec![0f32; n * rows];
            let macs = (rows * cols * n) as f64 / 1e9;
            for isa in isas() {
                let s = time(5, || matmul_isa(isa, &m, &act, &mut out, rows, 1));
                json.push_str(&format!(
                    "{}\"{tag}_{rows}x{cols}_{isa:?}\":{:.1}",
                    if first { "" } else { "," },
                    macs / s
                ));
                first = false;
            }
            json.push_str(&format!(
                ",\"{tag}_{rows}x{cols}_quantize_share\":{:.3}",
                quant_s
                    / (quant_s
                        + time(3, || matmul_isa(
                            isas()[isas().len() - 1],
                            &m,
                            &act,
                            &mut out,
                            rows,
                            1
                        )))
            ));
        }
    }
    json.push_str("}}");
    println!("{json}");
}

/// Decode-sized products over 16 matrices of each 2B-4T FFN shape (88 MB of 2-bit codes,
/// well past the caches), every pool thread, each layout and activation mode, against the
/// bound: a plain read of the same bytes on the same threads.
fn decode() {
    let threads = bitnet::kernels::pool::global().max_threads();
    let mut json = format!("{{\"threads\":{threads},\"decode\":{{");
    let mut rng = SplitMix64(3);
    let shapes = [(6912, 2560), (2560, 6912)];
    for (i, (ty, mode, tag)) in [
        (GgmlType::I2_S, ActMode::PerToken, "i2_s_pertoken"),
        (GgmlType::TQ2_0, ActMode::Q8K, "tq2_0_q8k"),
    ]
    .into_iter()
    .enumerate()
    {
        for layout in [Layout::Bits2, Layout::Base3] {
            let mats: Vec<TernaryMat> = (0..16)
                .map(|k| {
                    let (rows, cols) = shapes[k % 2];
                    random_ternary(&mut rng, ty, layout, rows, cols)
                })
                .collect();
            let acts: Vec<ActBuf> = shapes
                .iter()
                .map(|&(_, cols)| {
                    let x: Vec<f32> = (0..cols).map(|_| rng.normal()).collect();
                    let mut a = ActBuf::default();
                    a.quantize(mode, &x, 1, cols, 1);
                    a
                })
                .collect();
            let mut out = vec![0f32; 6912];
            let bytes: usize = mats.iter().map(|m| m.bytes()).sum();
            let weights: usize = mats.iter().map(|m| m.rows * m.cols).sum();
            let kernel_s = time(9, || {
                for (k, m) in mats.iter().enumerate() {
                    matmul(m, &acts[k % 2], &mut out[..m.rows], m.rows, threads);
                }
            });
            let read_s = time(9, || {
                for m in &mats {
                    std::hint::black_box(read_all(m.codes(), threads));
                }
            });
            if i > 0 || layout == Layout::Base3 {
                json.push(',');
            }
            let name = format!("{tag}_{layout:?}");
            json.push_str(&decode_entry(&name, bytes, weights, kernel_s, read_s));
        }
    }
    // Q1_0 / Q2_0 at Qwen3-8B's FFN shapes: 8 matrices of each (100 / 200 MB).
    let shapes = [(12288, 4096), (4096, 12288)];
    for ty in [GgmlType::Q1_0, GgmlType::Q2_0] {
        let mats: Vec<LowbitMat> = (0..16)
            .map(|k| {
                let (rows, cols) = shapes[k % 2];
                random_lowbit(&mut rng, ty, rows, cols)
            })
            .collect();
        let mut acts: Vec<LowAct> = shapes
            .iter()
            .map(|&(_, cols)| {
                let x: Vec<f32> = (0..cols).map(|_| rng.normal()).collect();
                let mut a = LowAct::default();
                a.quantize(&x, 1, cols, 1);
                a
            })
            .collect();
        let mut out = vec![0f32; 12288];
        let bytes: usize = mats.iter().map(|m| m.bytes()).sum();
        let weights: usize = mats.iter().map(|m| m.rows * m.cols).sum();
        let kernel_s = time(9, || {
            for (k, m) in mats.iter().enumerate() {
                lowbit::matmul(m, &mut acts[k % 2], &mut out[..m.rows], m.rows, threads);
            }
        });
        let read_s = time(9, || {
            for m in &mats {
                std::hint::black_box(read_all(m.packed(), threads));
            }
        });
        let name = ty.name().to_lowercase();
        json.push(',');
        json.push_str(&decode_entry(&name, bytes, weights, kernel_s, read_s));
    }
    json.push_str("}}");
    println!("{json}");
}

/// One `--decode` entry: the kernel's and the plain read's GB/s over the same `bytes`, the
/// kernel's weights per second, and the read's time over the kernel's (its bandwidth share).
fn decode_entry(name: &str, bytes: usize, weights: usize, kernel_s: f64, read_s: f64) -> String {
    format!(
        "\"{name}\":{{\"bytes\":{bytes},\"kernel_gb_s\":{:.2},\"read_gb_s\":{:.2},\"gweights_s\":{:.2},\"bandwidth_share\":{:.3}}}",
        bytes as f64 / kernel_s / 1e9,
        bytes as f64 / read_s / 1e9,
        weights as f64 / kernel_s / 1e9,
        read_s / kernel_s,
    )
}

/// A Q2_0 / Q1_0 matrix of random codes and scales, repacked.
fn random_lowbit(rng: &mut SplitMix64, ty: GgmlType, rows: usize, cols: usize) -> LowbitMat {
    let mut data = vec![0u8; ty.tensor_bytes((rows * cols) as u64).unwrap() as usize];
    for b in data.chunks_exact_mut(18) {
        let d = half::f16::from_f32(0.01 + rng.unit() * 0.05).to_bits();
        b[..2].copy_from_slice(&d.to_le_bytes());
        b[2..].iter_mut().for_each(|v| *v = rng.next_u64() as u8);
    }
    match ty {
        GgmlType::Q2_0 => LowbitMat::from_q2_0(&data, rows, cols),
        _ => LowbitMat::from_q1_0(&data, rows, cols),
    }
}

/// The wrapping sum of `bytes` as u64 words, read on `threads` pool threads (the bandwidth
/// bound of a kernel that reads them once).
fn read_all(bytes: &[u8], threads: usize) -> u64 {
    let words: Vec<u64> = (0..threads).map(|_| 0).collect();
    let sums = std::sync::Mutex::new(words);
    let pool = bitnet::kernels::pool::global();
    pool.run(threads, &|i, n| {
        let part = bitnet::kernels::pool::split(bytes.len() / 64, 64, i, n);
        let mut acc = [0u64; 8];
        for line in bytes[part.start * 64..part.end * 64].chunks_exact(64) {
            for (a, w) in acc.iter_mut().zip(line.chunks_exact(8)) {
                *a = a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()));
            }
        }
        sums.lock().unwrap()[i] = acc.iter().fold(0, |s, &a| s.wrapping_add(a));
    });
    let v = sums.into_inner().unwrap();
    v.iter().fold(0, |s, &a| s.wrapping_add(a))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--prefill") {
        prefill();
        return;
    }
    if args.iter().any(|a| a == "--decode") {
        decode();
        return;
    }
    let check = args.iter().any(|a| a == "--check");
    let out_file = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1).cloned());

    let (f16, q8, q4, q6) = f16_head(8192, 2560);
    let [exp, silu] = activations();
    let rows = [
        ternary(
            "tq2_0_q8k_matvec",
            (GgmlType::TQ2_0, Layout::Bits2),
            ActMode::Q8K,
            2560,
            6912,
            1,
        ),
        ternary(
            "tq2_0_q8k_matmul8",
            (GgmlType::TQ2_0, Layout::Bits2),
            ActMode::Q8K,
            2560,
            2560,
            8,
        ),
        ternary(
            "i2_s_pertoken_matvec",
            (GgmlType::I2_S, Layout::Bits2),
            ActMode::PerToken,
            6912,
            2560,
            1,
        ),
        ternary(
            "tq2_0_q8k_matvec_q16",
            (GgmlType::TQ2_0, Layout::Base3),
            ActMode::Q8K,
            2560,
            6912,
            1,
        ),
        ternary(
            "i2_s_pertoken_matvec_q16",
            (GgmlType::I2_S, Layout::Base3),
            ActMode::PerToken,
            6912,
            2560,
            1,
        ),
        lowbit_row("q2_0_matvec", GgmlType::Q2_0, 6912, 2560, 1),
        lowbit_row("q2_0_matmul8", GgmlType::Q2_0, 2560, 2560, 8),
        lowbit_row("q1_0_matvec", GgmlType::Q1_0, 6912, 2560, 1),
        lowbit_row("q1_0_matmul8", GgmlType::Q1_0, 2560, 2560, 8),
        f16,
        q8,
        q4,
        q6,
        exp,
        silu,
    ];

    let mut json = String::from("{\"threads\":1,\"kernels\":{");
    let mut failures = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!("\"{}\":{{\"scalar_s\":{:.6e}", r.name, r.scalar_s));
        let mut best = 0f64;
        for (isa, s) in &r.simd {
            let ratio = r.scalar_s / s;
            best = best.max(ratio);
            json.push_str(&format!(
                ",\"{isa:?}_s\":{s:.6e},\"{isa:?}_speedup\":{ratio:.2}"
            ));
        }
        json.push('}');
        let floor = FLOORS.iter().find(|f| f.0 == r.name).map_or(0.0, |f| f.1);
        if !r.simd.is_empty() && best < floor {
            failures.push(format!(
                "{}: best speed-up {best:.2} < floor {floor}",
                r.name
            ));
        }
    }
    json.push_str("}}");
    println!("{json}");
    if let Some(path) = out_file {
        std::fs::write(&path, format!("{json}\n")).expect("write --out file");
    }
    if check {
        if failures.is_empty() {
            eprintln!("kernels: every SIMD kernel is above its floor");
        } else {
            for f in &failures {
                eprintln!("kernels: REGRESSION {f}");
            }
            std::process::exit(1);
        }
    }
}
