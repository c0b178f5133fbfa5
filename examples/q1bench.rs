use bitnet::kernels::isa::Isa;
use bitnet::kernels::lowbit::{self, LowAct, LowbitMat};
use bitnet::quant::GgmlType;
use std::time::Instant;
fn main() {
    let (rows, cols) = (6912usize, 2560usize);
    let mut s = 12345u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut data = vec![0u8; GgmlType::Q1_0.tensor_bytes((rows * cols) as u64).unwrap() as usize];
    for b in data.chunks_exact_mut(18) {
        let d = half::f16::from_f32(0.02).to_bits();
        b[..2].copy_from_slice(&d.to_le_bytes());
        b[2..].iter_mut().for_each(|v| *v = next() as u8);
    }
    let m = LowbitMat::from_q1_0(&data, rows, cols);
    for n in [1usize, 8] {
        let x: Vec<f32> = (0..n * cols)
            .map(|_| (next() % 2000) as f32 / 1000.0 - 1.0)
            .collect();
        let mut act = LowAct::default();
        act.quantize(&x, n, cols, 1);
        let mut out = vec![0f32; n * rows];
        let mut want = vec![0f32; n * rows];
        lowbit::matmul_isa(Isa::Scalar, &m, &mut act, &mut want, rows, 1);
        let mut best = f64::MAX;
        for _ in 0..30 {
            let t = Instant::now();
            lowbit::matmul_isa(Isa::Avx2, &m, &mut act, &mut out, rows, 1);
            best = best.min(t.elapsed().as_secs_f64());
        }
        assert!(out
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        let w = (rows * cols * n) as f64;
        println!(
            "n={n} best {:.3} ms  {:.2} Gw/s  weight bytes/s {:.2} GB/s",
            best * 1e3,
            w / best / 1e9,
            m.bytes() as f64 / best / 1e9
        );
    }
}
