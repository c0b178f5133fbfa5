//! Ternary projection weights out of a checkpoint: Microsoft's packed uint8 layout, or float
//! masters made ternary with BitNet's absmean rule. Either way the result is one code in
//! {-1, 0, +1} per weight, row-major [rows = outputs][cols = inputs], and one f32 scale per
//! tensor: the real weight is `code * scale`.

use super::safetensors::{Dtype, TensorView};
use crate::{Error, Result};

/// A ternary matrix: `codes[r * cols + c]` in {-1, 0, 1}; weight = code * scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Ternary {
    pub rows: usize,
    pub cols: usize,
    pub codes: Vec<i8>,
    pub scale: f32,
}

/// Microsoft's packing (transformers' BitNet integration): a uint8 tensor [rows/4, cols]; byte
/// (r, c) holds output rows r, r + R, r + 2R, r + 3R (R = rows/4) of column c in bits 0-1, 2-3,
/// 4-5, 6-7, each as code + 1 (0, 1, 2; 3 is invalid). `weight_scale` (one value) is the
/// inverse of the real scale: transformers divides the product by it.
pub fn unpack(
    weight: &TensorView<'_>,
    weight_scale: &TensorView<'_>,
    rows: usize,
    cols: usize,
) -> Result<Ternary> {
    let name = weight.name;
    if weight.dtype != Dtype::U8 {
        return Err(Error::format(format!(
            "tensor {name} is {}, expected U8 (packed ternary)",
            weight.dtype.name()
        )));
    }
    if !rows.is_multiple_of(4) || weight.shape != [rows / 4, cols] {
        return Err(Error::format(format!(
            "tensor {name} has shape {:?}, expected [{}, {cols}] (packed {rows} x {cols})",
            weight.shape,
            rows / 4
        )));
    }
    if weight_scale.n_elements() != 1 {
        return Err(Error::format(format!(
            "tensor {} has shape {:?}, expected one value",
            weight_scale.name, weight_scale.shape
        )));
    }
    let inverse = weight_scale.to_f32()?[0];
    if !(inverse.is_finite() && inverse > 0.0) {
        return Err(Error::format(format!(
            "tensor {} is {inverse}, not a positive finite scale",
            weight_scale.name
        )));
    }
    let quarter = rows / 4;
    let mut codes = vec![0i8; rows * cols];
    for (r, packed_row) in weight.data.chunks_exact(cols).enumerate() {
        for (c, &byte) in packed_row.iter().enumerate() {
            for j in 0..4 {
                let code = (byte >> (2 * j)) & 3;
                if code == 3 {
                    return Err(Error::format(format!(
                        "tensor {name}: byte ({r}, {c}) holds the unused code 3"
                    )));
                }
                codes[(r + j * quarter) * cols + c] = code as i8 - 1;
            }
        }
    }
    Ok(Ternary {
        rows,
        cols,
        codes,
        scale: 1.0 / inverse,
    })
}

/// The absmean rule of BitNet b1.58 (the paper; transformers' online `AutoBitLinear`;
/// 1bitLLM's `weight_quant`): m = max(mean |W|, 1e-5), code = clamp(round(W / m), -1, 1)
/// with round half to even, weight = code * m. The mean is summed in f64 and rounded to f32;
/// `W * (1/m)` is computed in f32, as the float32 reference does.
pub fn absmean(weight: &TensorView<'_>, rows: usize, cols: usize) -> Result<Ternary> {
    if !weight.dtype.is_float() || weight.shape != [rows, cols] {
        return Err(Error::format(format!(
            "tensor {} is {} {:?}, expected a float [{rows}, {cols}]",
            weight.name,
            weight.dtype.name(),
            weight.shape
        )));
    }
    let w = weight.to_f32()?;
    if let Some(bad) = w.iter().position(|v| !v.is_finite()) {
        return Err(Error::format(format!(
            "tensor {} holds a non-finite value at {bad}",
            weight.name
        )));
    }
    let mean = (w.iter().map(|v| v.abs() as f64).sum::<f64>() / w.len() as f64) as f32;
    let m = mean.max(1e-5);
    let inv = 1.0 / m;
    let codes = w
        .iter()
        .map(|&v| (v * inv).round_ties_even().clamp(-1.0, 1.0) as i8)
        .collect();
    Ok(Ternary {
        rows,
        cols,
        codes,
        scale: 1.0 / inv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(dtype: Dtype, shape: &'a [usize], data: &'a [u8]) -> TensorView<'a> {
        TensorView {
            name: "t",
            dtype,
            shape,
            data,
        }
    }

    #[test]
    fn unpack_places_rows_by_quarter() {
        // rows 4, cols 2: byte (0, c) holds rows 0..4 of column c
        // column 0: rows -1, 0, 1, 0 -> codes 0, 1, 2, 1 -> 0b01_10_01_00
        // column 1: rows 1, 1, -1, -1 -> codes 2, 2, 0, 0 -> 0b00_00_10_10
        let data = [0b01_10_01_00u8, 0b00_00_10_10];
        let scale = 2.0f32.to_le_bytes();
        let t = unpack(
            &view(Dtype::U8, &[1, 2], &data),
            &view(Dtype::F32, &[1], &scale),
            4,
            2,
        )
        .unwrap();
        assert_eq!(t.codes, vec![-1, 1, 0, 1, 1, -1, 0, -1]);
        assert_eq!(t.scale, 0.5);
        let bad = [0b11u8, 0];
        let err = unpack(
            &view(Dtype::U8, &[1, 2], &bad),
            &view(Dtype::F32, &[1], &scale),
            4,
            2,
        )
        .unwrap_err();
        assert!(err.message.contains("unused code 3"), "{}", err.message);
    }

    #[test]
    fn absmean_rounds_half_to_even() {
        // mean |w| = 1: 0.5 -> 0, 1.5 -> 1 (clamped 2), -0.5 -> 0, -1.5 -> -1 (clamped -2)
        let w: Vec<u8> = [0.5f32, 1.5, -0.5, -1.5, 1.0, -1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let t = absmean(&view(Dtype::F32, &[2, 3], &w), 2, 3).unwrap();
        assert_eq!(t.codes, vec![0, 1, 0, -1, 1, -1]);
        assert_eq!(t.scale, 1.0);
        let zeros = [0u8; 24];
        let t = absmean(&view(Dtype::F32, &[2, 3], &zeros), 2, 3).unwrap();
        assert!(t.codes.iter().all(|&c| c == 0));
    }
}
