//! A zero-copy view of a GGUF file (versions 2 and 3, little-endian).
//!
//! `MappedFile` owns one read-only memory map; `Gguf<'a>` parses the header, metadata and tensor
//! infos out of it once, borrowing every string, array and tensor's bytes from the map. Nothing
//! is copied and nothing is allocated in proportion to a count the file claims: every count is
//! checked against the bytes that remain before it is used.
//!
//! File layout:
//! ```text
//! "GGUF" u32:version u64:n_tensors u64:n_kv
//! n_kv x   { string:key u32:value_type value }
//! n_tensors x { string:name u32:n_dims u64[n_dims]:ne u32:type u64:offset }
//! padding to general.alignment (default 32)
//! tensor data, each tensor at data_offset + offset (a multiple of the alignment)
//! ```
//! A string is a u64 byte length and the bytes; an array is u32 element type, u64 count, elements.

pub mod writer;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::quant::GgmlType;

pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
pub const MAX_DIMS: usize = 4;
/// Arrays of arrays deeper than this are refused (no real file nests at all).
const MAX_ARRAY_DEPTH: usize = 8;

/// The type tag of a metadata value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    pub fn id(self) -> u32 {
        use ValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// Short name used in `bitnet inspect` (u8, i32, f32, bool, string, array, ...).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// Bytes of one value of a fixed-size type; None for strings and arrays.
    fn fixed_size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The fewest bytes one value of this type can take (a bound for claimed counts).
    fn min_size(self) -> u64 {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            t => t.fixed_size().unwrap_or(1),
        }
    }
}

/// One metadata value. Strings are raw bytes (GGUF does not promise UTF-8 for values).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(&'a [u8]),
    Array(Array<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl<'a> Value<'a> {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The value as a signed integer, if it is an integer of any width.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v as i128,
            Value::I8(v) => v as i128,
            Value::U16(v) => v as i128,
            Value::I16(v) => v as i128,
            Value::U32(v) => v as i128,
            Value::I32(v) => v as i128,
            Value::U64(v) => v as i128,
            Value::I64(v) => v as i128,
            _ => return None,
        })
    }

    /// The value as f64, if it is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i128().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::String(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<Array<'a>> {
        match *self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// An array value, still in its file bytes; elements are decoded as they are iterated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Array<'a> {
    pub elem_type: ValueType,
    pub len: u64,
    /// The encoded elements (already validated at parse time).
    raw: &'a [u8],
    depth: usize,
}

impl<'a> Array<'a> {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            array: *self,
            cursor: Cursor::new(self.raw),
            left: self.len,
        }
    }

    /// Elements that are strings, as bytes (None for other element types).
    pub fn strings(&self) -> Option<impl Iterator<Item = &'a [u8]>> {
        (self.elem_type == ValueType::String).then(|| {
            self.iter().map(|v| match v {
                Value::String(s) => s,
                _ => &[][..],
            })
        })
    }
}

pub struct ArrayIter<'a> {
    array: Array<'a>,
    cursor: Cursor<'a>,
    left: u64,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The bytes were validated when the file was parsed, so this cannot fail.
        read_value(&mut self.cursor, self.array.elem_type, self.array.depth + 1).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.left).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

/// One tensor's description and its bytes, borrowed from the map.
#[derive(Clone, Debug)]
pub struct TensorInfo<'a> {
    pub name: &'a str,
    /// ne0 (fastest, the row length) first; 1 to 4 entries.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset from the start of the data section, as stored.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
    pub data: &'a [u8],
}

impl TensorInfo<'_> {
    /// Absolute offset in the file.
    pub fn file_offset(&self, gguf: &Gguf<'_>) -> u64 {
        gguf.data_offset + self.offset
    }

    /// Rows of ne0 values (the product of the other dimensions).
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }

    pub fn shape_string(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        format!("[{}]", dims.join(", "))
    }
}

/// A parsed GGUF file, borrowing everything from `bytes`.
pub struct Gguf<'a> {
    pub version: u32,
    pub alignment: u64,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
    pub file_size: u64,
    metadata: Vec<(&'a str, Value<'a>)>,
    tensors: Vec<TensorInfo<'a>>,
}

/// A read-only memory map of a file: what `Gguf::parse` borrows from.
pub struct MappedFile {
    path: PathBuf,
    file: File,
    map: Option<memmap2::Mmap>,
}

impl MappedFile {
    pub fn open(path: impl AsRef<Path>) -> Result<MappedFile> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path)
            .map_err(|e| Error::io(format!("cannot open {}: {e}", path.display())))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat {}: {e}", path.display())))?
            .len();
        if len == 0 {
            return Ok(MappedFile {
                path,
                file,
                map: None,
            });
        }
        // SAFETY: the map is read-only and private to this process; the bytes are only ever read
        // through `bytes()`. As with any mapped model loader (llama.cpp included), another process
        // truncating the file while it is mapped is outside the contract.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| Error::io(format!("cannot map {}: {e}", path.display())))?;
        Ok(MappedFile {
            path,
            file,
            map: Some(map),
        })
    }

    /// The open file's metadata (the file that is mapped, even if the path was replaced since).
    pub fn metadata(&self) -> std::io::Result<std::fs::Metadata> {
        self.file.metadata()
    }

    /// Copies the file bytes of `range` (a part of `bytes()`) with a read call instead of
    /// touching the mapping: for lookups in regions whose pages were dropped, where a fault
    /// would map a whole large page-cache folio back in.
    pub fn read_range(&self, range: std::ops::Range<usize>, out: &mut [u8]) -> Result<()> {
        if range.end > self.bytes().len() || out.len() != range.len() {
            return Err(Error::bad_input(format!(
                "read of {range:?} outside the {} mapped bytes",
                self.bytes().len()
            )));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file
                .read_exact_at(out, range.start as u64)
                .map_err(|e| Error::io(format!("cannot read {}: {e}", self.path.display())))
        }
        #[cfg(not(unix))]
        {
            out.copy_from_slice(&self.bytes()[range]);
            Ok(())
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Parses the mapped bytes as GGUF; errors name the file.
    pub fn gguf(&self) -> Result<Gguf<'_>> {
        Gguf::parse(self.bytes()).map_err(|e| e.context(self.path.display()))
    }
}

/// A bounds-checked reader over the file bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &dyn fmt::Display) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::format(format!(
                "truncated: {what} needs {n} bytes at offset {}, only {} left",
                self.pos,
                self.remaining()
            )));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &dyn fmt::Display) -> Result<[u8; N]> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn fmt::Display) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn fmt::Display) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &dyn fmt::Display) -> Result<&'a [u8]> {
        let len = self.u64(what)?;
        if len > self.remaining() {
            return Err(Error::format(format!(
                "{what}: string length {len} at offset {} runs past the end of the file",
                self.pos - 8
            )));
        }
        self.take(len, what)
    }
}

fn read_value<'a>(cur: &mut Cursor<'a>, ty: ValueType, depth: usize) -> Result<Value<'a>> {
    let what = &"metadata value";
    Ok(match ty {
        ValueType::U8 => Value::U8(cur.array::<1>(what)?[0]),
        ValueType::I8 => Value::I8(cur.array::<1>(what)?[0] as i8),
        ValueType::U16 => Value::U16(u16::from_le_bytes(cur.array(what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(cur.array(what)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(cur.array(what)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(cur.array(what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(cur.array(what)?)),
        ValueType::Bool => Value::Bool(cur.array::<1>(what)?[0] != 0),
        ValueType::String => Value::String(cur.string(what)?),
        ValueType::U64 => Value::U64(u64::from_le_bytes(cur.array(what)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(cur.array(what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(cur.array(what)?)),
        ValueType::Array => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(Error::format(format!(
                    "arrays nested deeper than {MAX_ARRAY_DEPTH} levels"
                )));
            }
            let elem_id = cur.u32(&"array element type")?;
            let elem_type = ValueType::from_id(elem_id)
                .ok_or_else(|| Error::format(format!("unknown array element type {elem_id}")))?;
            let len = cur.u64(&"array length")?;
            if len > cur.remaining() / elem_type.min_size() {
                return Err(Error::format(format!(
                    "array of {len} {} elements does not fit in the {} bytes left",
                    elem_type.name(),
                    cur.remaining()
                )));
            }
            let start = cur.pos;
            match elem_type.fixed_size() {
                // len * size fits: checked against the remaining bytes just above.
                Some(size) => {
                    cur.take(len * size, &"array elements")?;
                }
                None => {
                    for _ in 0..len {
                        read_value(cur, elem_type, depth + 1)?;
                    }
                }
            }
            Value::Array(Array {
                elem_type,
                len,
                raw: &cur.buf[start..cur.pos],
                depth,
            })
        }
    })
}

fn align_up(x: u64, alignment: u64) -> Option<u64> {
    Some(x.checked_add(alignment - 1)? / alignment * alignment)
}

/// Whether the file is a bitnet.cpp file, where type ids 38/39 mean TL1/TL2.
fn is_bitnet_file(metadata: &[(&str, Value<'_>)], raw_type_ids: &[u32]) -> bool {
    let get = |key: &str| metadata.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let arch_is_bitnet = get("general.architecture")
        .and_then(|v| v.as_str())
        .is_some_and(|a| a.starts_with("bitnet"));
    let ftype_i2_s = get("general.file_type").and_then(|v| v.as_i128()) == Some(40);
    let has_i2_s = raw_type_ids.contains(&GgmlType::I2_S.id());
    arch_is_bitnet || ftype_i2_s || has_i2_s
}

impl<'a> Gguf<'a> {
    /// Parses and validates a whole GGUF file held in `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Gguf<'a>> {
        let mut cur = Cursor::new(bytes);
        let file_size = bytes.len() as u64;
        let magic = cur.take(4, &"magic")?;
        if magic != MAGIC {
            return Err(Error::format(format!(
                "not a GGUF file (magic {:02x?}, expected \"GGUF\")",
                magic
            )));
        }
        let version = cur.u32(&"version")?;
        if version != 2 && version != 3 {
            return Err(Error::unsupported(format!(
                "GGUF version {version} is not supported (only 2 and 3)"
            )));
        }
        let n_tensors = cur.u64(&"tensor count")?;
        let n_kv = cur.u64(&"metadata count")?;
        // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info
        // at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset).
        if n_kv > cur.remaining() / 13 {
            return Err(Error::format(format!(
                "metadata count {n_kv} is impossible for a file of {file_size} bytes"
            )));
        }
        if n_tensors > cur.remaining() / 24 {
            return Err(Error::format(format!(
                "tensor count {n_tensors} is impossible for a file of {file_size} bytes"
            )));
        }

        // Capacities are capped: a claimed count is only trusted as far as the bytes go.
        let mut metadata: Vec<(&'a str, Value<'a>)> = Vec::with_capacity(n_kv.min(1024) as usize);
        for i in 0..n_kv {
            let key_bytes = cur.string(&format_args!("key of metadata entry {i}"))?;
            let key = std::str::from_utf8(key_bytes).map_err(|_| {
                Error::format(format!(
                    "metadata key {i} is not valid UTF-8: {:?}",
                    String::from_utf8_lossy(key_bytes)
                ))
            })?;
            let type_id = cur.u32(&format_args!("type of metadata key {key}"))?;
            let ty = ValueType::from_id(type_id).ok_or_else(|| {
                Error::format(format!("metadata key {key}: unknown value type {type_id}"))
            })?;
            let value = read_value(&mut cur, ty, 0)
                .map_err(|e| e.context(format_args!("metadata key {key}")))?;
            if metadata.iter().any(|(k, _)| *k == key) {
                return Err(Error::format(format!("duplicate metadata key {key}")));
            }
            metadata.push((key, value));
        }

        let alignment = match metadata.iter().find(|(k, _)| *k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, Value::U32(a))) if a.is_power_of_two() => *a as u64,
            Some((_, v)) => {
                return Err(Error::format(format!(
                    "general.alignment must be a power-of-two u32, got {v:?}"
                )))
            }
        };

        struct RawTensor<'a> {
            name: &'a str,
            dims: Vec<u64>,
            type_id: u32,
            offset: u64,
        }
        let mut raw = Vec::with_capacity(n_tensors.min(4096) as usize);
        for i in 0..n_tensors {
            let name_bytes = cur.string(&format_args!("name of tensor {i}"))?;
            let name = std::str::from_utf8(name_bytes).map_err(|_| {
                Error::format(format!(
                    "name of tensor {i} is not valid UTF-8: {:?}",
                    String::from_utf8_lossy(name_bytes)
                ))
            })?;
            let what = format!("tensor {name}");
            let n_dims = cur.u32(&what)?;
            if n_dims == 0 || n_dims as usize > MAX_DIMS {
                return Err(Error::format(format!(
                    "{what}: {n_dims} dimensions (must be 1 to {MAX_DIMS})"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(cur.u64(&what)?);
            }
            let type_id = cur.u32(&what)?;
            let offset = cur.u64(&what)?;
            raw.push(RawTensor {
                name,
                dims,
                type_id,
                offset,
            });
        }
        let header_end = cur.pos as u64;
        let data_offset = align_up(header_end, alignment)
            .ok_or_else(|| Error::format("data section offset overflows"))?;

        let type_ids: Vec<u32> = raw.iter().map(|t| t.type_id).collect();
        let bitnet_file = is_bitnet_file(&metadata, &type_ids);
        let mut tensors: Vec<TensorInfo<'a>> = Vec::with_capacity(raw.len());
        for t in raw {
            let name = t.name;
            let ty = GgmlType::from_id(t.type_id, bitnet_file)
                .map_err(|msg| Error::unsupported(format!("{msg} in tensor {name}")))?;
            if t.dims.iter().any(|&d| d > i64::MAX as u64) {
                return Err(Error::format(format!(
                    "tensor {name}: dimension out of range"
                )));
            }
            let n_elements = t
                .dims
                .iter()
                .try_fold(1u64, |acc, &d| {
                    acc.checked_mul(d).filter(|&n| n <= i64::MAX as u64)
                })
                .ok_or_else(|| {
                    Error::format(format!(
                        "tensor {name}: dimensions {:?} overflow the element count",
                        t.dims
                    ))
                })?;
            if t.dims[0] % ty.block_size() != 0 {
                return Err(Error::format(format!(
                    "tensor {name}: row length {} is not a multiple of {ty}'s block size {}",
                    t.dims[0],
                    ty.block_size()
                )));
            }
            let n_bytes = ty
                .tensor_bytes(n_elements)
                .ok_or_else(|| Error::format(format!("tensor {name}: byte size overflows")))?;
            if t.offset % alignment != 0 {
                return Err(Error::format(format!(
                    "tensor {name}: data offset {} is not a multiple of the alignment {alignment}",
                    t.offset
                )));
            }
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(n_bytes));
            let (start, end) = match (start, end) {
                (Some(s), Some(e)) if e <= file_size => (s, e),
                _ => {
                    return Err(Error::format(format!(
                        "tensor {name}: data ({n_bytes} bytes at offset {}) runs past the end \
                         of the file ({file_size} bytes)",
                        t.offset
                    )))
                }
            };
            if tensors.iter().any(|o| o.name == name) {
                return Err(Error::format(format!("duplicate tensor name {name}")));
            }
            tensors.push(TensorInfo {
                name,
                dims: t.dims,
                ty,
                offset: t.offset,
                n_elements,
                n_bytes,
                data: &bytes[start as usize..end as usize],
            });
        }

        let mut by_offset: Vec<&TensorInfo<'a>> =
            tensors.iter().filter(|t| t.n_bytes > 0).collect();
        by_offset.sort_by_key(|t| t.offset);
        for pair in by_offset.windows(2) {
            if pair[0].offset + pair[0].n_bytes > pair[1].offset {
                return Err(Error::format(format!(
                    "tensors {} and {} overlap",
                    pair[0].name, pair[1].name
                )));
            }
        }

        Ok(Gguf {
            version,
            alignment,
            data_offset,
            file_size,
            metadata,
            tensors,
        })
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[(&'a str, Value<'a>)] {
        &self.metadata
    }

    /// Tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo<'a>] {
        &self.tensors
    }

    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.metadata
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo<'a>> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// `general.architecture`, if present and a string.
    pub fn architecture(&self) -> Option<&'a str> {
        self.get("general.architecture").and_then(|v| v.as_str())
    }

    /// A string value; an error if present with another type or not UTF-8.
    pub fn get_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| wrong_type(key, &v, "a UTF-8 string")),
        }
    }

    /// An unsigned integer value of any integer type, range-checked into u64.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i128()
                .and_then(|i| u64::try_from(i).ok())
                .map(Some)
                .ok_or_else(|| wrong_type(key, &v, "a non-negative integer")),
        }
    }

    /// Like `get_u64`, range-checked into u32.
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>> {
        match self.get_u64(key)? {
            None => Ok(None),
            Some(v) => u32::try_from(v).map(Some).map_err(|_| {
                Error::format(format!("metadata key {key}: {v} does not fit in 32 bits"))
            }),
        }
    }

    /// A float (or integer) value as f32.
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|f| Some(f as f32))
                .ok_or_else(|| wrong_type(key, &v, "a number")),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| wrong_type(key, &v, "a bool")),
        }
    }

    pub fn get_array(&self, key: &str) -> Result<Option<Array<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_array()
                .map(Some)
                .ok_or_else(|| wrong_type(key, &v, "an array")),
        }
    }
}

fn wrong_type(key: &str, v: &Value<'_>, expected: &str) -> Error {
    Error::format(format!(
        "metadata key {key} has type {} (value {}), expected {expected}",
        v.value_type().name(),
        short_value(v)
    ))
}

/// A one-line rendering of a value for messages and `inspect` (arrays abbreviated).
pub fn short_value(v: &Value<'_>) -> String {
    match v {
        Value::String(s) => format!("{:?}", String::from_utf8_lossy(s)),
        Value::Array(a) => {
            let head: Vec<String> = a.iter().take(4).map(|e| short_value(&e)).collect();
            let more = if a.len > 4 { ", ..." } else { "" };
            format!(
                "[{}; {}] [{}{more}]",
                a.elem_type.name(),
                a.len,
                head.join(", ")
            )
        }
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Bool(x) => x.to_string(),
    }
}

#[cfg(test)]
mod tests;
