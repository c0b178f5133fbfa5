//! Tensor formats: the ggml type table, and one file per format we read (and for ternary
//! formats, write). Every function here is the plain scalar reference for faster kernels.
//!
//! Each format file exposes `BLOCK` (values per block), `BLOCK_BYTES`, `dequantize(blocks, out)`
//! over whole blocks, and where we write the format, `quantize(values, blocks)`.

pub mod float;
pub mod i2_s;
pub mod q1_0;
pub mod q2_0;
pub mod q4_0;
pub mod q6_k;
pub mod q8_0;
pub mod q8_k;
pub mod tq1_0;
pub mod tq2_0;

use crate::error::{Error, Result};

/// A tensor type as stored in a GGUF file (ggml's `enum ggml_type`, plus Microsoft's I2_S).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    /// Microsoft bitnet.cpp's 2-bit ternary format (id 36): 128-value blocks of 32 bytes and
    /// one f32 scale per tensor in a 32-byte tail.
    I2_S,
    MXFP4,
    NVFP4,
    Q1_0,
    Q2_0,
}

/// (type, id, name, values per block, bytes per block). I2_S's size is per tensor (n/4 + 32);
/// its block entry describes only the packed part.
const TYPES: &[(GgmlType, u32, &str, u32, u32)] = &[
    (GgmlType::F32, 0, "F32", 1, 4),
    (GgmlType::F16, 1, "F16", 1, 2),
    (GgmlType::Q4_0, 2, "Q4_0", 32, 18),
    (GgmlType::Q4_1, 3, "Q4_1", 32, 20),
    (GgmlType::Q5_0, 6, "Q5_0", 32, 22),
    (GgmlType::Q5_1, 7, "Q5_1", 32, 24),
    (GgmlType::Q8_0, 8, "Q8_0", 32, 34),
    (GgmlType::Q8_1, 9, "Q8_1", 32, 36),
    (GgmlType::Q2_K, 10, "Q2_K", 256, 84),
    (GgmlType::Q3_K, 11, "Q3_K", 256, 110),
    (GgmlType::Q4_K, 12, "Q4_K", 256, 144),
    (GgmlType::Q5_K, 13, "Q5_K", 256, 176),
    (GgmlType::Q6_K, 14, "Q6_K", 256, 210),
    (GgmlType::Q8_K, 15, "Q8_K", 256, 292),
    (GgmlType::IQ2_XXS, 16, "IQ2_XXS", 256, 66),
    (GgmlType::IQ2_XS, 17, "IQ2_XS", 256, 74),
    (GgmlType::IQ3_XXS, 18, "IQ3_XXS", 256, 98),
    (GgmlType::IQ1_S, 19, "IQ1_S", 256, 50),
    (GgmlType::IQ4_NL, 20, "IQ4_NL", 32, 18),
    (GgmlType::IQ3_S, 21, "IQ3_S", 256, 110),
    (GgmlType::IQ2_S, 22, "IQ2_S", 256, 82),
    (GgmlType::IQ4_XS, 23, "IQ4_XS", 256, 136),
    (GgmlType::I8, 24, "I8", 1, 1),
    (GgmlType::I16, 25, "I16", 1, 2),
    (GgmlType::I32, 26, "I32", 1, 4),
    (GgmlType::I64, 27, "I64", 1, 8),
    (GgmlType::F64, 28, "F64", 1, 8),
    (GgmlType::IQ1_M, 29, "IQ1_M", 256, 56),
    (GgmlType::BF16, 30, "BF16", 1, 2),
    (GgmlType::TQ1_0, 34, "TQ1_0", 256, 54),
    (GgmlType::TQ2_0, 35, "TQ2_0", 256, 66),
    (GgmlType::I2_S, 36, "I2_S", 128, 32),
    (GgmlType::MXFP4, 39, "MXFP4", 32, 17),
    (GgmlType::NVFP4, 40, "NVFP4", 64, 36),
    (GgmlType::Q1_0, 41, "Q1_0", 128, 18),
    (GgmlType::Q2_0, 42, "Q2_0", 64, 18),
];

/// Bytes after the packed values of an I2_S tensor; the first 4 hold the f32 scale.
pub const I2_S_TAIL_BYTES: u64 = 32;

impl GgmlType {
    fn entry(self) -> &'static (GgmlType, u32, &'static str, u32, u32) {
        TYPES
            .iter()
            .find(|e| e.0 == self)
            .expect("every GgmlType has a table entry")
    }

    /// The type stored under `id`. In a BitNet file (bitnet.cpp's ggml), ids 37, 38 and 39 are
    /// I8_S and the TL1/TL2 lookup-table formats, which we do not read; elsewhere 39 is MXFP4.
    /// The error says which type it was, for a message naming the tensor.
    pub fn from_id(id: u32, bitnet_file: bool) -> Result<GgmlType, String> {
        match id {
            37 if bitnet_file => Err(format!("unsupported tensor type I8_S (id {id})")),
            38 if bitnet_file => Err(format!("unsupported tensor type TL1 (id {id})")),
            39 if bitnet_file => Err(format!("unsupported tensor type TL2 (id {id})")),
            _ => TYPES
                .iter()
                .find(|e| e.1 == id)
                .map(|e| e.0)
                .ok_or_else(|| format!("unknown tensor type id {id}")),
        }
    }

    pub fn id(self) -> u32 {
        self.entry().1
    }

    pub fn name(self) -> &'static str {
        self.entry().2
    }

    /// Values per block: a row's length (ne0) must be a multiple of it.
    pub fn block_size(self) -> u64 {
        self.entry().3 as u64
    }

    /// Bytes per block (for I2_S, the packed part only).
    pub fn block_bytes(self) -> u64 {
        self.entry().4 as u64
    }

    /// Bytes a tensor of `n_elements` values (a multiple of the block size) takes on disk,
    /// or None on overflow.
    pub fn tensor_bytes(self, n_elements: u64) -> Option<u64> {
        let packed = (n_elements / self.block_size()).checked_mul(self.block_bytes())?;
        match self {
            GgmlType::I2_S => packed.checked_add(I2_S_TAIL_BYTES),
            _ => Some(packed),
        }
    }

    /// Whether `dequantize` reads this type.
    pub fn can_dequantize(self) -> bool {
        matches!(
            self,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::Q8_0
                | GgmlType::Q4_0
                | GgmlType::Q6_K
                | GgmlType::Q8_K
                | GgmlType::TQ1_0
                | GgmlType::TQ2_0
                | GgmlType::I2_S
                | GgmlType::Q1_0
                | GgmlType::Q2_0
        )
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Each whole block of `data` (`block_bytes` long) beside the slots of its `block` values in
/// `out`: the loop of every block format's `dequantize`.
fn blocks_out<'a>(
    data: &'a [u8],
    block_bytes: usize,
    out: &'a mut [f32],
    block: usize,
) -> impl Iterator<Item = (&'a [u8], &'a mut [f32])> {
    debug_assert_eq!(data.len() / block_bytes * block, out.len());
    data.chunks_exact(block_bytes)
        .zip(out.chunks_exact_mut(block))
}

/// The little-endian f16 at `block[at..at + 2]` as f32: most formats' block scale.
fn f16_at(block: &[u8], at: usize) -> f32 {
    float::f16_to_f32(u16::from_le_bytes([block[at], block[at + 1]]))
}

/// Dequantizes a whole tensor of `ty` held in `data` into `out` (one f32 per value, in storage
/// order: ne0 fastest). `data` must be exactly `ty.tensor_bytes(out.len())` long.
pub fn dequantize(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<()> {
    let n = out.len() as u64;
    if !n.is_multiple_of(ty.block_size()) {
        return Err(Error::bad_input(format!(
            "{ty}: {n} values is not a multiple of the block size {}",
            ty.block_size()
        )));
    }
    if ty.tensor_bytes(n) != Some(data.len() as u64) {
        return Err(Error::bad_input(format!(
            "{ty}: {} bytes do not hold {n} values",
            data.len()
        )));
    }
    match ty {
        GgmlType::F32 => float::dequantize_f32(data, out),
        GgmlType::F16 => float::dequantize_f16(data, out),
        GgmlType::BF16 => float::dequantize_bf16(data, out),
        GgmlType::Q8_0 => q8_0::dequantize(data, out),
        GgmlType::Q4_0 => q4_0::dequantize(data, out),
        GgmlType::Q6_K => q6_k::dequantize(data, out),
        GgmlType::Q8_K => q8_k::dequantize(data, out),
        GgmlType::TQ1_0 => tq1_0::dequantize(data, out),
        GgmlType::TQ2_0 => tq2_0::dequantize(data, out),
        GgmlType::I2_S => i2_s::dequantize(data, out),
        GgmlType::Q1_0 => q1_0::dequantize(data, out),
        GgmlType::Q2_0 => q2_0::dequantize(data, out),
        _ => {
            return Err(Error::unsupported(format!(
                "unsupported tensor type {ty} (id {})",
                ty.id()
            )))
        }
    }
    Ok(())
}

/// Writes `values` in `ty`'s format into `out` (exactly `ty.tensor_bytes(values.len())` bytes).
/// Writers exist for the ternary formats, Q1_0/Q2_0 and Q8_0/Q8_K; other types are refused.
pub fn quantize(ty: GgmlType, values: &[f32], out: &mut [u8]) -> Result<()> {
    let n = values.len() as u64;
    if !n.is_multiple_of(ty.block_size()) || ty.tensor_bytes(n) != Some(out.len() as u64) {
        return Err(Error::bad_input(format!(
            "{ty}: cannot write {n} values into {} bytes",
            out.len()
        )));
    }
    match ty {
        GgmlType::TQ1_0 => tq1_0::quantize(values, out),
        GgmlType::TQ2_0 => tq2_0::quantize(values, out),
        GgmlType::I2_S => i2_s::quantize(values, out),
        GgmlType::Q8_0 => q8_0::quantize(values, out),
        GgmlType::Q4_0 => q4_0::quantize(values, out),
        GgmlType::Q8_K => q8_k::quantize(values, out),
        GgmlType::Q1_0 => q1_0::quantize(values, out),
        GgmlType::Q2_0 => q2_0::quantize(values, out),
        _ => {
            return Err(Error::unsupported(format!(
                "no writer for tensor type {ty} (id {})",
                ty.id()
            )))
        }
    }
    Ok(())
}

/// Test helpers shared by the format files: whole tensors through `quantize` / `dequantize`
/// into fresh buffers.
#[cfg(test)]
pub(crate) mod testing {
    use super::{dequantize, quantize, GgmlType, I2_S_TAIL_BYTES};

    /// `values` written in `ty`'s format.
    pub fn quantize_vec(ty: GgmlType, values: &[f32]) -> Vec<u8> {
        let bytes = ty.tensor_bytes(values.len() as u64).unwrap();
        let mut out = vec![0u8; bytes as usize];
        quantize(ty, values, &mut out).unwrap();
        out
    }

    /// Every value `data` holds in `ty`'s format (whole blocks; I2_S with its scale tail).
    pub fn dequantize_vec(ty: GgmlType, data: &[u8]) -> Vec<f32> {
        let n = match ty {
            GgmlType::I2_S => (data.len() - I2_S_TAIL_BYTES as usize) * 4,
            _ => data.len() / ty.block_bytes() as usize * ty.block_size() as usize,
        };
        let mut out = vec![0f32; n];
        dequantize(ty, data, &mut out).unwrap();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        for e in TYPES {
            assert_eq!(GgmlType::from_id(e.1, false), Ok(e.0));
            assert_eq!(e.0.id(), e.1);
            assert_eq!(TYPES.iter().filter(|o| o.1 == e.1).count(), 1);
        }
    }

    #[test]
    fn bitnet_files_read_38_39_as_tl1_tl2() {
        assert_eq!(GgmlType::from_id(39, false), Ok(GgmlType::MXFP4));
        assert!(GgmlType::from_id(39, true)
            .unwrap_err()
            .contains("TL2 (id 39)"));
        assert!(GgmlType::from_id(38, true)
            .unwrap_err()
            .contains("TL1 (id 38)"));
        assert!(GgmlType::from_id(38, false)
            .unwrap_err()
            .contains("unknown"));
        assert!(GgmlType::from_id(4, false).is_err());
        assert!(GgmlType::from_id(u32::MAX, true).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(GgmlType::TQ2_0.tensor_bytes(512), Some(132));
        assert_eq!(GgmlType::TQ1_0.tensor_bytes(256), Some(54));
        assert_eq!(GgmlType::I2_S.tensor_bytes(256 * 128), Some(256 * 32 + 32));
        assert_eq!(GgmlType::F32.tensor_bytes(u64::MAX), None);
        assert_eq!(GgmlType::Q1_0.tensor_bytes(128 * 3), Some(54));
        assert_eq!(GgmlType::Q2_0.tensor_bytes(64 * 3), Some(54));
        assert_eq!(GgmlType::from_id(41, true), Ok(GgmlType::Q1_0));
        assert_eq!(GgmlType::from_id(42, false).map(|t| t.name()), Ok("Q2_0"));
    }

    #[test]
    fn unsupported_types_are_refused_not_misread() {
        let mut out = [0f32; 32];
        let err = dequantize(GgmlType::Q5_0, &[0u8; 22], &mut out).unwrap_err();
        assert_eq!(err.message, "unsupported tensor type Q5_0 (id 6)");
        assert!(dequantize(GgmlType::Q8_0, &[0u8; 33], &mut out).is_err());
        // Q1_0 / Q2_0: wrong byte counts and partial blocks, one error each
        let mut out = [0f32; 128];
        let err = dequantize(GgmlType::Q1_0, &[0u8; 17], &mut out).unwrap_err();
        assert_eq!(err.message, "Q1_0: 17 bytes do not hold 128 values");
        let err = dequantize(GgmlType::Q2_0, &[0u8; 18], &mut out).unwrap_err();
        assert_eq!(err.message, "Q2_0: 18 bytes do not hold 128 values");
        let err = dequantize(GgmlType::Q2_0, &[0u8; 18], &mut out[..96]).unwrap_err();
        assert_eq!(
            err.message,
            "Q2_0: 96 values is not a multiple of the block size 64"
        );
        let err = quantize(GgmlType::Q1_0, &[0f32; 64], &mut [0u8; 9]).unwrap_err();
        assert_eq!(err.message, "Q1_0: cannot write 64 values into 9 bytes");
    }
}
