//! Each output head's decode step alone against this machine's read bandwidth, in one process.
//!
//! `cargo bench --bench heads [-- ROUNDS]` (default 7) builds a 2B-4T-sized head (128256 x 2560, random
//! F16 weights, requantized to Q8_0 and Q4_0 as `Model::load_with` does, that time reported as
//! `requantize_s`) and, round after round,
//! times a plain streaming read of 512 MiB and one token through each head (2 threads, the
//! pool's threads, as `bitnet bench -t 2`). Prints one JSON object: per head its bytes, the
//! median seconds per token, GB/s, and the median over rounds of (head GB/s / the same round's
//! read GB/s): the share of the bound, robust to the machine's drift since both are measured
//! back to back.

use std::time::Instant;

use bitnet::kernels::f16::{matmul_f16, Q8Head};
use bitnet::kernels::head::Q4Head;
use bitnet::rng::SplitMix64;

const ROWS: usize = 128256;
const COLS: usize = 2560;
const THREADS: usize = 2;

fn read_seconds(buf: &[u64]) -> f64 {
    let t = Instant::now();
    let sum: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = buf
            .chunks(buf.len().div_ceil(THREADS))
            .map(|part| {
                s.spawn(move || {
                    let mut acc = [0u64; 8];
                    for c in part.chunks_exact(8) {
                        for (a, &v) in acc.iter_mut().zip(c) {
                            *a ^= v;
                        }
                    }
                    acc.iter().fold(0, |a, &v| a ^ v)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .fold(0, |a, v| a ^ v)
    });
    std::hint::black_box(sum);
    t.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(7);
    let mut rng = SplitMix64(21);
    let w: Vec<u8> = (0..ROWS * COLS)
        .flat_map(|_| half::f16::from_f32(rng.normal() * 0.05).to_le_bytes())
        .collect();
    // Requantization at load (the pool's threads), timed.
    let t = Instant::now();
    let mut q8 = Q8Head::new(COLS);
    q8.reserve(ROWS);
    q8.append_f16(&w, ROWS);
    let q8_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut q4 = Q4Head::new(COLS);
    q4.reserve(ROWS);
    q4.append_f16(&w, ROWS);
    let q4_s = t.elapsed().as_secs_f64();
    let x: Vec<f32> = (0..COLS).map(|_| rng.normal()).collect();
    let mut out = vec![0f32; ROWS];
    let stream: Vec<u64> = (0..(512usize << 20) / 8).map(|i| i as u64).collect();
    let stream_bytes = (stream.len() * 8) as f64;

    let heads: [(&str, usize, f64); 3] = [
        ("f16", w.len(), 0.0),
        ("q8_0", q8.bytes(), q8_s),
        ("q4_0", q4.bytes(), q4_s),
    ];
    let mut secs = vec![Vec::new(); heads.len()];
    let mut shares = vec![Vec::new(); heads.len()];
    let mut reads = Vec::new();
    for round in 0..=rounds {
        let read = stream_bytes / read_seconds(&stream);
        for (i, &(name, bytes, _)) in heads.iter().enumerate() {
            let t = Instant::now();
            match name {
                "f16" => matmul_f16(&w, ROWS, COLS, &x, 1, &mut out, ROWS, THREADS),
                "q8_0" => q8.matmul(&x, 1, &mut out, ROWS, THREADS),
                _ => q4.matmul(&x, 1, &mut out, ROWS, THREADS),
            }
            let s = t.elapsed().as_secs_f64();
            if round > 0 {
                secs[i].push(s);
                shares[i].push(bytes as f64 / s / read);
            }
        }
        if round > 0 {
            reads.push(read);
        }
    }
    let mut json = format!(
        "{{\"threads\":{THREADS},\"rounds\":{rounds},\"read_gb_s\":{:.3},\"heads\":{{",
        median(&mut reads) / 1e9
    );
    for (i, &(name, bytes, requant_s)) in heads.iter().enumerate() {
        let s = median(&mut secs[i]);
        json.push_str(&format!(
            "{}\"{name}\":{{\"bytes\":{bytes},\"requantize_s\":{requant_s:.4},\"s_per_token\":{s:.6},\"gb_s\":{:.3},\"bandwidth_share\":{:.4}}}",
            if i > 0 { "," } else { "" },
            bytes as f64 / s / 1e9,
            median(&mut shares[i])
        ));
    }
    json.push_str("}}");
    println!("{json}");
}
