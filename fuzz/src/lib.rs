//! What the fuzz targets share: a reader that turns the fuzz input into values, the tiny model
//! every C API target runs on (written once per process from a seed, no fixture needed), a
//! per-process scratch file for inputs that must be files, and the C API calls the targets
//! repeat (load, context, one decode).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bitnet::capi::*;
use bitnet::fixture::synthetic::{self, Projection, Shape, Vocab};
use bitnet::quant::{i2_s, GgmlType};
use bitnet::rng::SplitMix64;

/// Reads values off the front of the fuzz input; past the end every read gives zero, so a
/// short input is still a valid (short) program.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A small integer most of the time (0..=lim), any i32 now and then: out-of-range
    /// positions, sequence ids and sizes are part of what the targets must survive.
    pub fn i32_near(&mut self, lim: i32) -> i32 {
        let sel = self.u8();
        match sel % 16 {
            0 => self.u32() as i32,
            1 => -1 - (self.u8() as i32 % 4),
            _ => self.u8() as i32 % (lim + 1),
        }
    }

    /// An f32 from a small table of interesting values or raw bits.
    pub fn f32(&mut self) -> f32 {
        const TABLE: [f32; 12] = [
            0.0,
            -0.0,
            0.5,
            1.0,
            -1.0,
            0.95,
            2.0,
            1e-9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
        ];
        let sel = self.u8();
        if sel < 200 {
            TABLE[sel as usize % TABLE.len()]
        } else {
            f32::from_bits(self.u32())
        }
    }

    /// `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A length-prefixed byte string (one length byte).
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = self.u8() as usize;
        self.bytes(n)
    }

    /// The bytes up to the next NUL (consumed, NUL included) as a C string.
    pub fn c_str(&mut self) -> CString {
        let n = self
            .data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.data.len());
        let s = c_string(self.bytes(n));
        let _ = self.u8();
        s
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }
}

/// A C string from arbitrary bytes: cut at the first NUL.
pub fn c_string(bytes: &[u8]) -> CString {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).expect("no NUL left")
}

/// The tiny model's shape: one layer, n_embd 128 (I2_S rows hold whole 128-value blocks) in
/// 2 heads (1 KV head). A decode takes well under a millisecond.
pub const TINY_SHAPE: Shape = Shape {
    arch: "bitnet-b1.58",
    name: "bitnet-fuzz tiny",
    context_length: 64,
    n_embd: 128,
    n_ff: 128,
    n_layer: 1,
    n_head: 2,
    n_head_kv: 1,
    n_vocab: 0, // set from the vocabulary
    rope_theta: 10000.0,
};

/// The tiny model's vocabulary: `<unk>`, `<s>`, `</s>`, 256 byte tokens (when `bytes`),
/// printable ASCII, `▁` and a few words with their prefixes.
pub fn tiny_vocab(bytes: bool) -> Vocab {
    let (normal, unknown, control, byte) = (1, 2, 3, 6);
    let mut pieces = vec![
        (b"<unk>".to_vec(), 0.0, unknown),
        (b"<s>".to_vec(), 0.0, control),
        (b"</s>".to_vec(), 0.0, control),
    ];
    for b in (0..=255u8).filter(|_| bytes) {
        pieces.push((format!("<0x{b:02X}>").into_bytes(), 0.0, byte));
    }
    let mut words: Vec<String> = vec!["\u{2581}".into()];
    words.extend((b'!'..=b'~').map(|c| (c as char).to_string()));
    for w in ["the", "hello", "world", "true", "false", "null"] {
        let w: Vec<char> = format!("\u{2581}{w}").chars().collect();
        words.extend((2..=w.len()).map(|end| w[..end].iter().collect::<String>()));
    }
    let mut seen = std::collections::HashSet::new();
    for w in words {
        if seen.insert(w.clone()) {
            let score = -100.0 + w.chars().count() as f32;
            pieces.push((w.into_bytes(), score, normal));
        }
    }
    Vocab {
        pieces,
        add_bos_eos: Some((true, false)),
    }
}

/// Writes the tiny model to `path`, with its projections in `ty` (I2_S or F16) and a vocabulary
/// with or without byte tokens; `n_embd` None keeps TINY_SHAPE's (F16 takes any multiple of 2
/// heads: the seed files use 32 to stay small).
pub fn write_tiny_model(path: &Path, ty: GgmlType, bytes: bool, n_embd: Option<usize>) {
    let vocab = tiny_vocab(bytes);
    let n_embd = n_embd.unwrap_or(TINY_SHAPE.n_embd);
    let shape = Shape {
        n_vocab: vocab.pieces.len(),
        n_embd,
        n_ff: n_embd,
        ..TINY_SHAPE
    };
    let embedding = |rng: &mut SplitMix64| {
        (0..shape.n_vocab * shape.n_embd)
            .flat_map(|_| {
                half::f16::from_f32((rng.below(2001) as f32 - 1000.0) / 1000.0).to_le_bytes()
            })
            .collect()
    };
    let projection = |rng: &mut SplitMix64, rows: usize, cols: usize| {
        let x: Vec<f32> = (0..rows * cols)
            .map(|_| (rng.below(3) as f32 - 1.0) * 0.1)
            .collect();
        let data = match ty {
            GgmlType::I2_S => {
                let mut out = vec![0u8; x.len() / 4 + i2_s::TAIL_BYTES];
                i2_s::quantize(&x, &mut out);
                out
            }
            _ => x
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        };
        Projection {
            ty,
            data,
            scale: None,
        }
    };
    synthetic::write(
        path,
        &shape,
        Some(&vocab),
        &mut SplitMix64(0xF022),
        embedding,
        projection,
    )
    .expect("cannot write the tiny model");
}

/// This process's scratch directory (removed by nobody: it lives under the system temp dir).
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("bitnet-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("cannot make the scratch dir");
        d
    })
}

/// This process's folder for `target` on tmpfs (`/dev/shm`, where there is one: the convert
/// and hub targets write, sync and delete files on every input), else under `scratch_dir`.
/// The folders of processes that are gone are removed first (a fuzzer never exits cleanly).
pub fn fast_dir(target: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        return scratch_dir().join(target);
    }
    let prefix = format!("bitnet-fuzz-{target}-");
    for entry in std::fs::read_dir(shm).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(&prefix) {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    shm.join(format!("{prefix}{}", std::process::id()))
}

/// The tiny I2_S model, written once per process.
pub fn tiny_model_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let p = scratch_dir().join("tiny-i2_s.gguf");
        write_tiny_model(&p, GgmlType::I2_S, true, None);
        p
    })
}

/// Silences the library's log lines (every refused call logs one).
pub fn quiet() {
    unsafe extern "C" fn drop_line(
        _level: enum_ggml_log_level,
        _text: *const std::ffi::c_char,
        _user: *mut std::ffi::c_void,
    ) {
    }
    if std::env::var_os("BITNET_FUZZ_VERBOSE").is_none() {
        // SAFETY: a valid callback with no user data.
        unsafe { llama_log_set(Some(drop_line), std::ptr::null_mut()) };
    }
}

/// A model handle shared by every run of a target (loaded once; never freed).
pub struct SharedModel(pub *mut llama_model);
// SAFETY: the model is read-only after load; llama.h allows sharing it between contexts.
unsafe impl Send for SharedModel {}
// SAFETY: as above.
unsafe impl Sync for SharedModel {}

/// The tiny model loaded through the C API, once per process.
pub fn tiny_model() -> *mut llama_model {
    static MODEL: OnceLock<SharedModel> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            quiet();
            let path = c_string(tiny_model_path().to_str().unwrap().as_bytes());
            // SAFETY: a valid path string and default params.
            let m =
                unsafe { llama_model_load_from_file(path.as_ptr(), llama_model_default_params()) };
            assert!(!m.is_null(), "the tiny model does not load");
            SharedModel(m)
        })
        .0
}

/// Context parameters for fuzzing: one thread, a small cache.
pub fn small_context_params(n_ctx: u32, n_batch: u32, n_seq_max: u32) -> llama_context_params {
    let mut p = llama_context_default_params();
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_ubatch = n_batch;
    p.n_seq_max = n_seq_max;
    p.n_threads = 1;
    p.n_threads_batch = 1;
    p
}

/// What starts each file of a `convert` input: `CONVERT_FILE_SEP name '\n' bytes`.
pub const CONVERT_FILE_SEP: &[u8] = b"\0\0FILE:";

/// What separates the sections (a partial download, then raw HTTP responses) of a `hub` input.
pub const HUB_SEP: &[u8] = b"\n=====\n";

/// The commit the `hub` seeds' responses name (40 lowercase hex digits, as the hub's).
pub const HUB_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
