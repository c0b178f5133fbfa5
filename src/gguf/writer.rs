//! A small GGUF writer for our tools and tests: metadata of every type, tensors of any type
//! given as bytes, alignment padding. It can also write deliberately bad files (any type id,
//! any offset) for the hostile-input tests.

use std::path::Path;

use super::{Value, ValueType, DEFAULT_ALIGNMENT, MAGIC};
use crate::error::{Error, Result};
use crate::quant::GgmlType;

/// A metadata value owned by the writer.
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(Vec<u8>),
    /// Element type and elements (each must be of that type).
    Array(ValueType, Vec<OwnedValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl OwnedValue {
    pub fn str(s: &str) -> OwnedValue {
        OwnedValue::String(s.as_bytes().to_vec())
    }

    /// A copy of a value read from a file (to write an edited copy of its metadata).
    pub fn from_value(v: &Value<'_>) -> OwnedValue {
        match *v {
            Value::U8(x) => OwnedValue::U8(x),
            Value::I8(x) => OwnedValue::I8(x),
            Value::U16(x) => OwnedValue::U16(x),
            Value::I16(x) => OwnedValue::I16(x),
            Value::U32(x) => OwnedValue::U32(x),
            Value::I32(x) => OwnedValue::I32(x),
            Value::F32(x) => OwnedValue::F32(x),
            Value::Bool(x) => OwnedValue::Bool(x),
            Value::String(s) => OwnedValue::String(s.to_vec()),
            Value::Array(a) => OwnedValue::Array(
                a.elem_type,
                a.iter().map(|e| OwnedValue::from_value(&e)).collect(),
            ),
            Value::U64(x) => OwnedValue::U64(x),
            Value::I64(x) => OwnedValue::I64(x),
            Value::F64(x) => OwnedValue::F64(x),
        }
    }

    pub fn value_type(&self) -> ValueType {
        match self {
            OwnedValue::U8(_) => ValueType::U8,
            OwnedValue::I8(_) => ValueType::I8,
            OwnedValue::U16(_) => ValueType::U16,
            OwnedValue::I16(_) => ValueType::I16,
            OwnedValue::U32(_) => ValueType::U32,
            OwnedValue::I32(_) => ValueType::I32,
            OwnedValue::F32(_) => ValueType::F32,
            OwnedValue::Bool(_) => ValueType::Bool,
            OwnedValue::String(_) => ValueType::String,
            OwnedValue::Array(..) => ValueType::Array,
            OwnedValue::U64(_) => ValueType::U64,
            OwnedValue::I64(_) => ValueType::I64,
            OwnedValue::F64(_) => ValueType::F64,
        }
    }
}

/// One tensor to write: its dims (ne0 first), raw type id and bytes.
#[derive(Clone, Debug)]
pub struct TensorEntry {
    pub name: String,
    pub dims: Vec<u64>,
    pub type_id: u32,
    pub data: Vec<u8>,
    /// Write this offset instead of the computed one (for bad-file tests).
    pub offset_override: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct GgufWriter {
    pub version: u32,
    pub alignment: u64,
    pub metadata: Vec<(String, OwnedValue)>,
    pub tensors: Vec<TensorEntry>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            metadata: vec![],
            tensors: vec![],
        }
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

fn put_value(out: &mut Vec<u8>, v: &OwnedValue) {
    match v {
        OwnedValue::U8(x) => out.push(*x),
        OwnedValue::I8(x) => out.push(*x as u8),
        OwnedValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::Bool(x) => out.push(*x as u8),
        OwnedValue::String(s) => put_string(out, s),
        OwnedValue::Array(elem, items) => {
            out.extend_from_slice(&elem.id().to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
        OwnedValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

fn pad_to(out: &mut Vec<u8>, alignment: u64) {
    while !(out.len() as u64).is_multiple_of(alignment) {
        out.push(0);
    }
}

impl GgufWriter {
    pub fn kv(&mut self, key: &str, value: OwnedValue) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds a tensor of a known type; `data` must hold exactly its bytes.
    pub fn tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        data: Vec<u8>,
    ) -> Result<&mut Self> {
        let n: u64 = dims.iter().product();
        if dims.is_empty()
            || !dims[0].is_multiple_of(ty.block_size())
            || ty.tensor_bytes(n) != Some(data.len() as u64)
        {
            return Err(Error::bad_input(format!(
                "tensor {name}: {} bytes do not hold {ty} values of shape {dims:?}",
                data.len()
            )));
        }
        self.tensors.push(TensorEntry {
            name: name.to_string(),
            dims: dims.to_vec(),
            type_id: ty.id(),
            data,
            offset_override: None,
        });
        Ok(self)
    }

    /// Adds an f32 tensor from values.
    pub fn tensor_f32(&mut self, name: &str, dims: &[u64], values: &[f32]) -> Result<&mut Self> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, GgmlType::F32, data)
    }

    /// Everything before the tensor data (magic, metadata, tensor infos, padding) for tensors
    /// given as (name, dims, type id, byte length, offset override).
    fn header<'t>(
        &self,
        tensors: impl Iterator<Item = (&'t str, &'t [u64], u32, u64, Option<u64>)>,
        n_tensors: usize,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(n_tensors as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut out, key.as_bytes());
            out.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut out, value);
        }
        let mut offset = 0u64;
        for (name, dims, type_id, len, offset_override) in tensors {
            put_string(&mut out, name.as_bytes());
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&type_id.to_le_bytes());
            out.extend_from_slice(&offset_override.unwrap_or(offset).to_le_bytes());
            offset += len.div_ceil(self.alignment) * self.alignment;
        }
        pad_to(&mut out, self.alignment);
        out
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let infos = self.tensors.iter().map(|t| {
            let len = t.data.len() as u64;
            (
                t.name.as_str(),
                t.dims.as_slice(),
                t.type_id,
                len,
                t.offset_override,
            )
        });
        let mut out = self.header(infos, self.tensors.len());
        for t in &self.tensors {
            out.extend_from_slice(&t.data);
            pad_to(&mut out, self.alignment);
        }
        out
    }

    /// Writes this writer's metadata and then `tensors` (name, dims, type) to `out`, asking
    /// `data(i)` for tensor i's bytes only when its turn comes, so that a file larger than
    /// memory can be written. The writer's own `tensors` are not written.
    pub fn write_streaming(
        &self,
        out: &mut impl std::io::Write,
        tensors: &[(String, Vec<u64>, GgmlType)],
        mut data: impl FnMut(usize) -> Result<Vec<u8>>,
    ) -> Result<()> {
        let io = |e: std::io::Error| Error::io(format!("cannot write the GGUF file: {e}"));
        let mut sizes = Vec::with_capacity(tensors.len());
        for (name, dims, ty) in tensors {
            let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            let bytes = n
                .filter(|_| !dims.is_empty() && dims[0].is_multiple_of(ty.block_size()))
                .and_then(|n| ty.tensor_bytes(n))
                .ok_or_else(|| {
                    Error::bad_input(format!("tensor {name}: {ty} cannot hold shape {dims:?}"))
                })?;
            sizes.push(bytes);
        }
        let infos = tensors
            .iter()
            .zip(&sizes)
            .map(|((name, dims, ty), &len)| (name.as_str(), dims.as_slice(), ty.id(), len, None));
        out.write_all(&self.header(infos, tensors.len()))
            .map_err(io)?;
        let zeros = vec![0u8; self.alignment as usize];
        for (i, ((name, _, _), &len)) in tensors.iter().zip(&sizes).enumerate() {
            let bytes = data(i)?;
            if bytes.len() as u64 != len {
                return Err(Error::bad_input(format!(
                    "tensor {name}: {} bytes given, {len} planned",
                    bytes.len()
                )));
            }
            out.write_all(&bytes).map_err(io)?;
            let pad = (len.div_ceil(self.alignment) * self.alignment - len) as usize;
            out.write_all(&zeros[..pad]).map_err(io)?;
        }
        Ok(())
    }

    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes())
            .map_err(|e| Error::io(format!("cannot write {}: {e}", path.display())))
    }
}
