//! Modified copies of a GGUF model, made by copying the file and patching tensor bytes in place
//! (tensor data sits at known offsets, so no re-serialisation is needed):
//!
//! - `scaled_norm_copy`: every F32 `*_norm.weight` tensor times (1 + eps): the self-noise floor
//!   of the reference (reference vs reference on this copy).
//! - `negated_row_copy`: one weight row negated: the canary that crossval must flag.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use bitnet::gguf::MappedFile;
use bitnet::quant::GgmlType;

use crate::Result;

struct Patch {
    offset: u64,
    bytes: Vec<u8>,
}

fn apply(src: &Path, dst: &Path, patches: &[Patch]) -> Result<()> {
    std::fs::copy(src, dst)
        .map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), dst.display()))?;
    let mut f = OpenOptions::new()
        .write(true)
        .open(dst)
        .map_err(|e| format!("cannot open {}: {e}", dst.display()))?;
    for p in patches {
        f.seek(SeekFrom::Start(p.offset))?;
        f.write_all(&p.bytes)?;
    }
    f.sync_all()?;
    Ok(())
}

/// Copies `src` to `dst` with every F32 tensor named `*_norm.weight` multiplied by `factor`
/// (each product rounded to f32). Returns how many tensors were patched.
pub fn scaled_norm_copy(src: &Path, dst: &Path, factor: f64) -> Result<usize> {
    let map = MappedFile::open(src)?;
    let gguf = map.gguf()?;
    let mut patches = Vec::new();
    for t in gguf.tensors() {
        if !t.name.ends_with("_norm.weight") || t.ty != GgmlType::F32 {
            continue;
        }
        let bytes: Vec<u8> = t
            .data
            .chunks_exact(4)
            .flat_map(|c| {
                let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                (((v as f64) * factor) as f32).to_le_bytes()
            })
            .collect();
        patches.push(Patch {
            offset: t.file_offset(&gguf),
            bytes,
        });
    }
    if patches.is_empty() {
        return Err(format!("{}: no F32 *_norm.weight tensors to scale", src.display()).into());
    }
    let n = patches.len();
    drop(gguf);
    apply(src, dst, &patches)?;
    Ok(n)
}

/// Copies `src` to `dst` with row `row` of tensor `name` negated. F32/F16/BF16: every sign bit
/// of the row flipped. TQ1_0/TQ2_0/Q6_K/Q8_0: the f16 scale of every block of the row negated
/// (all those formats are `d * f(codes)`). I2_S (one scale per tensor): the row's codes mirrored
/// (0 <-> 2, i.e. -1 <-> +1).
pub fn negated_row_copy(src: &Path, dst: &Path, name: &str, row: u64) -> Result<()> {
    let map = MappedFile::open(src)?;
    let gguf = map.gguf()?;
    let t = gguf
        .tensor(name)
        .ok_or_else(|| format!("{}: no tensor {name}", src.display()))?;
    if row >= t.n_rows() {
        return Err(format!("{name}: row {row} out of range ({} rows)", t.n_rows()).into());
    }
    let ne0 = t.dims[0];
    let base = t.file_offset(&gguf);
    let patch = match t.ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            let width = if t.ty == GgmlType::F32 { 4 } else { 2 };
            let start = (row * ne0 * width) as usize;
            let mut bytes = t.data[start..start + (ne0 * width) as usize].to_vec();
            for v in bytes.chunks_exact_mut(width as usize) {
                *v.last_mut().unwrap() ^= 0x80; // little endian: the sign bit is in the last byte
            }
            Patch {
                offset: base + start as u64,
                bytes,
            }
        }
        GgmlType::TQ1_0 | GgmlType::TQ2_0 | GgmlType::Q6_K | GgmlType::Q8_0 => {
            let bs = t.ty.block_size();
            let bb = t.ty.block_bytes() as usize;
            if ne0 % bs != 0 {
                return Err(format!("{name}: row length {ne0} is not whole blocks").into());
            }
            let blocks = (ne0 / bs) as usize;
            let start = row as usize * blocks * bb;
            let mut bytes = t.data[start..start + blocks * bb].to_vec();
            // Q8_0 stores d first, the others last.
            let d_at = if t.ty == GgmlType::Q8_0 { 0 } else { bb - 2 };
            for b in bytes.chunks_exact_mut(bb) {
                b[d_at + 1] ^= 0x80;
            }
            Patch {
                offset: base + start as u64,
                bytes,
            }
        }
        GgmlType::I2_S => {
            // 128-value blocks of 32 bytes, 4 codes per byte; ne0 is a multiple of 128, so a
            // row is whole bytes: ne0 / 4 of them.
            let start = (row * ne0 / 4) as usize;
            let mut bytes = t.data[start..start + (ne0 / 4) as usize].to_vec();
            for b in bytes.iter_mut() {
                let mut out = 0u8;
                for shift in [0, 2, 4, 6] {
                    let c = (*b >> shift) & 3;
                    let m = if c <= 2 { 2 - c } else { c };
                    out |= m << shift;
                }
                *b = out;
            }
            Patch {
                offset: base + start as u64,
                bytes,
            }
        }
        other => return Err(format!("{name}: cannot negate a row of {other:?}").into()),
    };
    drop(gguf);
    apply(src, dst, &[patch])
}
