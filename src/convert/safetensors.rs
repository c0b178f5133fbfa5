//! A zero-copy reader of the safetensors format over one read-only memory map, and of a
//! checkpoint's set of them (one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`).
//!
//! Our own parser rather than the `safetensors` crate: the format is an 8-byte little-endian
//! header length, a JSON object `{name: {dtype, shape, data_offsets: [begin, end]}, ...}` and the
//! data; serde_json (already built for `tokenizers`) parses the JSON, and every check that
//! hostile input needs is done here, where the messages can name the file and tensor: the header
//! length against the file size (and a 100 MB cap) before anything is allocated, dtype names,
//! shape products with overflow checks, offsets inside the data, byte sizes that match
//! dtype x shape, and no two tensors sharing bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::gguf::MappedFile;
use crate::{Error, Result};

/// A header larger than this is refused before it is read (real ones are well under 10 MB).
const MAX_HEADER_BYTES: u64 = 100 << 20;

/// The element types a checkpoint of ours may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    U8,
    I8,
    /// Any other dtype the format names (kept so a message can say which).
    Other(&'static str, usize),
}

impl Dtype {
    fn parse(name: &str) -> Option<Dtype> {
        Some(match name {
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "U8" => Dtype::U8,
            "I8" => Dtype::I8,
            "F64" => Dtype::Other("F64", 8),
            "I64" => Dtype::Other("I64", 8),
            "U64" => Dtype::Other("U64", 8),
            "I32" => Dtype::Other("I32", 4),
            "U32" => Dtype::Other("U32", 4),
            "I16" => Dtype::Other("I16", 2),
            "U16" => Dtype::Other("U16", 2),
            "BOOL" => Dtype::Other("BOOL", 1),
            "F8_E4M3" => Dtype::Other("F8_E4M3", 1),
            "F8_E5M2" => Dtype::Other("F8_E5M2", 1),
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::Other(_, n) => n,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::Other(name, _) => name,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F16 | Dtype::BF16)
    }
}

/// Where one tensor lies in its file.
#[derive(Clone, Debug)]
struct Entry {
    dtype: Dtype,
    /// Outermost dimension first, as in PyTorch.
    shape: Vec<usize>,
    /// Byte range inside the whole file.
    start: usize,
    end: usize,
}

/// One safetensors file: its map and its tensor table.
pub struct SafetensorsFile {
    map: MappedFile,
    entries: BTreeMap<String, Entry>,
}

/// A tensor borrowed from its file.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub name: &'a str,
    pub dtype: Dtype,
    /// Outermost dimension first.
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

impl TensorView<'_> {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values as f32 (F32, F16 and BF16 only).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        use crate::quant::float::{bf16_to_f32, f16_to_f32};
        let halves = || {
            self.data
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
        };
        Ok(match self.dtype {
            Dtype::F32 => self
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => halves().map(f16_to_f32).collect(),
            Dtype::BF16 => halves().map(bf16_to_f32).collect(),
            other => {
                return Err(Error::format(format!(
                    "tensor {} is {}, expected a float type (F32, F16, BF16)",
                    self.name,
                    other.name()
                )))
            }
        })
    }
}

fn header_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::format(format!(
        "{}: bad safetensors header: {what}",
        path.display()
    ))
}

impl SafetensorsFile {
    pub fn open(path: &Path) -> Result<SafetensorsFile> {
        let map = MappedFile::open(path)?;
        let entries = parse_header(path, map.bytes())?;
        Ok(SafetensorsFile { map, entries })
    }

    pub fn path(&self) -> &Path {
        self.map.path()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<TensorView<'_>> {
        let (name, e) = self.entries.get_key_value(name)?;
        Some(TensorView {
            name,
            dtype: e.dtype,
            shape: &e.shape,
            data: &self.map.bytes()[e.start..e.end],
        })
    }
}

/// Parses and checks the header of a file of `bytes.len()` bytes.
fn parse_header(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Entry>> {
    let bad = |what: String| header_error(path, what);
    if bytes.len() < 8 {
        return Err(bad(format!(
            "the file has {} bytes, fewer than the 8-byte header length",
            bytes.len()
        )));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let left = bytes.len() as u64 - 8;
    if n > left {
        return Err(bad(format!(
            "header length {n} runs past the end of the file ({left} bytes follow it)"
        )));
    }
    if n > MAX_HEADER_BYTES {
        return Err(bad(format!("header length {n} is over {MAX_HEADER_BYTES}")));
    }
    let header_end = 8 + n as usize;
    let json: Json = serde_json::from_slice(&bytes[8..header_end])
        .map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let Json::Object(table) = json else {
        return Err(bad("the header is not a JSON object".into()));
    };
    let data_len = bytes.len() - header_end;
    let mut entries = BTreeMap::new();
    for (name, info) in table {
        if name == "__metadata__" {
            continue;
        }
        let field = |key: &str| {
            info.get(key)
                .ok_or_else(|| bad(format!("tensor {name}: no {key}")))
        };
        let dtype_name = field("dtype")?
            .as_str()
            .ok_or_else(|| bad(format!("tensor {name}: dtype is not a string")))?;
        let dtype = Dtype::parse(dtype_name)
            .ok_or_else(|| bad(format!("tensor {name}: unknown dtype {dtype_name:?}")))?;
        let dims = |key: &str| -> Result<Vec<usize>> {
            field(key)?
                .as_array()
                .ok_or_else(|| bad(format!("tensor {name}: {key} is not an array")))?
                .iter()
                .map(|d| {
                    d.as_u64()
                        .and_then(|d| usize::try_from(d).ok())
                        .ok_or_else(|| bad(format!("tensor {name}: {key} holds {d}")))
                })
                .collect()
        };
        let shape = dims("shape")?;
        let offsets = dims("data_offsets")?;
        let [begin, end] = offsets[..] else {
            return Err(bad(format!(
                "tensor {name}: data_offsets is not [begin, end]"
            )));
        };
        if begin > end || end > data_len {
            return Err(bad(format!(
                "tensor {name}: data_offsets [{begin}, {end}] outside the {data_len} data bytes"
            )));
        }
        let n_bytes = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad(format!("tensor {name}: shape {shape:?} overflows")))?;
        if n_bytes != end - begin {
            return Err(bad(format!(
                "tensor {name}: {} x {shape:?} needs {n_bytes} bytes, data_offsets give {}",
                dtype.name(),
                end - begin
            )));
        }
        entries.insert(
            name,
            Entry {
                dtype,
                shape,
                start: header_end + begin,
                end: header_end + end,
            },
        );
    }
    let mut ranges: Vec<(usize, usize, &str)> = entries
        .iter()
        .filter(|(_, e)| e.start < e.end)
        .map(|(name, e)| (e.start, e.end, name.as_str()))
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(bad(format!(
                "tensors {} and {} share bytes",
                pair[0].2, pair[1].2
            )));
        }
    }
    Ok(entries)
}

/// A checkpoint's weights: every tensor name mapped to the file that holds it.
pub struct Checkpoint {
    files: Vec<SafetensorsFile>,
    /// Tensor name -> index into `files`.
    index: BTreeMap<String, usize>,
}

impl Checkpoint {
    /// Opens `dir/model.safetensors`, or the shards named by `dir/model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Checkpoint> {
        let index_path = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        if index_path.exists() {
            return Self::open_sharded(dir, &index_path);
        }
        if !single.exists() {
            return Err(Error::bad_input(format!(
                "{}: no model.safetensors and no model.safetensors.index.json \
                 (only safetensors checkpoints are converted)",
                dir.display()
            )));
        }
        let file = SafetensorsFile::open(&single)?;
        let index = file.names().map(|n| (n.to_string(), 0)).collect();
        Ok(Checkpoint {
            files: vec![file],
            index,
        })
    }

    fn open_sharded(dir: &Path, index_path: &Path) -> Result<Checkpoint> {
        let json = super::config::read_json(index_path)?;
        let bad = |what: String| Error::format(format!("{}: {what}", index_path.display()));
        let map = json
            .get("weight_map")
            .and_then(Json::as_object)
            .ok_or_else(|| bad("no weight_map object".into()))?;
        let mut shard_of: BTreeMap<String, usize> = BTreeMap::new();
        let mut shard_names: Vec<String> = vec![];
        let mut index = BTreeMap::new();
        for (tensor, file) in map {
            let file = file
                .as_str()
                .ok_or_else(|| bad(format!("weight_map[{tensor}] is not a file name")))?;
            if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                return Err(bad(format!(
                    "weight_map[{tensor}] = {file:?} is not a file of this folder"
                )));
            }
            let next = shard_names.len();
            let i = *shard_of.entry(file.to_string()).or_insert_with(|| {
                shard_names.push(file.to_string());
                next
            });
            index.insert(tensor.clone(), i);
        }
        let files = shard_names
            .iter()
            .map(|name| SafetensorsFile::open(&dir.join(name)))
            .collect::<Result<Vec<_>>>()?;
        for (tensor, &i) in &index {
            if files[i].get(tensor).is_none() {
                return Err(bad(format!(
                    "tensor {tensor} is listed in {} but that file does not hold it",
                    shard_names[i]
                )));
            }
        }
        for (i, file) in files.iter().enumerate() {
            if let Some(stray) = file.names().find(|n| index.get(*n) != Some(&i)) {
                return Err(bad(format!(
                    "{} holds tensor {stray}, which the index does not list for it",
                    shard_names[i]
                )));
            }
        }
        Ok(Checkpoint { files, index })
    }

    pub fn get(&self, name: &str) -> Option<TensorView<'_>> {
        self.files[*self.index.get(name)?].get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// The files read, for messages.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path().to_path_buf()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn parse(bytes: &[u8]) -> Result<BTreeMap<String, Entry>> {
        parse_header(Path::new("x.safetensors"), bytes)
    }

    #[test]
    fn reads_a_table() {
        let h = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"U8","shape":[4],"data_offsets":[12,16]}}"#;
        let e = parse(&file(h, &[0; 16])).unwrap();
        assert_eq!(e["a"].shape, vec![2, 3]);
        assert_eq!(e["b"].dtype, Dtype::U8);
        assert_eq!(e["b"].end - e["b"].start, 4);
    }

    #[test]
    fn refuses_bad_headers() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![1, 2, 3], "fewer than the 8-byte"),
            (
                {
                    let mut v = u64::MAX.to_le_bytes().to_vec();
                    v.extend_from_slice(b"{}");
                    v
                },
                "runs past the end",
            ),
            (file("{not json", &[]), "not valid JSON"),
            (file("[1]", &[]), "not a JSON object"),
            (
                file(
                    r#"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#,
                    &[0],
                ),
                "unknown dtype",
            ),
            (
                file(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
                    &[0; 4],
                ),
                "needs 8 bytes",
            ),
            (
                file(
                    r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                    &[0; 2],
                ),
                "outside the 2 data bytes",
            ),
            (
                file(
                    r#"{"a":{"dtype":"U8","shape":[18446744073709551615,3],"data_offsets":[0,1]}}"#,
                    &[0],
                ),
                "overflows",
            ),
            (
                file(
                    r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}"#,
                    &[0; 4],
                ),
                "share bytes",
            ),
            (
                file(
                    r#"{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#,
                    &[0],
                ),
                "shape holds -1",
            ),
        ];
        for (bytes, want) in cases {
            let err = parse(&bytes).unwrap_err();
            assert!(err.message.contains(want), "{} lacks {want}", err.message);
        }
    }
}
