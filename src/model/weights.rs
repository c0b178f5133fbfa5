//! `Model`: the memory-mapped file, its hyperparameters and every layer's weights, checked for
//! presence, shape and type at load. Ternary matrices (I2_S, TQ1_0, TQ2_0) are repacked once
//! into the kernels' layout (`kernels::ternary::TernaryMat`) and their pages of the mapping are
//! dropped; so are Q2_0 / Q1_0 matrices (`kernels::lowbit::LowbitMat`, the head included);
//! every other matrix stays in the mapping (no copy). Norm vectors and projection scales, which
//! are tiny, are read into f32.

use std::ops::Range;
use std::path::Path;

use super::head_cache::{self, CacheSlot, HeadKey};
use super::hparams::{Arch, HParams};
use crate::error::{Error, Result};
use crate::gguf::{Gguf, MappedFile};
use crate::kernels::f16::Q8Head;
use crate::kernels::head::Q4Head;
use crate::kernels::head_q6_k::Q6Head;
use crate::kernels::lowbit::{LowAct, LowbitMat};
use crate::kernels::ternary::{ActBuf, ActMode, Layout, TernaryMat};
use crate::kernels::{self, pool, Activations, MatRef};
use crate::quant::float::f16_to_f32;
use crate::quant::{self, GgmlType};

/// Which output head `Model::load_with` builds. (The numbers are part of the head cache's
/// key: never reuse one.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeadType {
    /// The head as stored (F16 in BitNet files): the reference's numbers.
    #[default]
    AsStored = 0,
    /// An F16 head requantized to Q8_0 at load (like bitnet.cpp's --quant-embd): about half
    /// the bytes per decoded token, at a small accuracy cost (see `bitnet bench --head q8_0`).
    Q8_0 = 1,
    /// The head as Q4_0 (4-bit codes, an f16 scale per 32): requantized at load from any
    /// stored type we read (F16, BF16, F32, Q8_0, ...) or taken as stored when already Q4_0.
    /// A quarter of F16's bytes per token, at a larger accuracy cost (README: head quality).
    Q4_0 = 2,
    /// The head as Q6_K (6-bit codes, an int8 scale per 16, an f16 scale per 256: 0.82 bytes
    /// per weight), requantized at load by our own rule (`quant::q6_k::quantize`) from any
    /// stored type we read, or used as stored when already Q6_K.
    #[allow(non_camel_case_types)]
    Q6_K = 3,
}

impl HeadType {
    /// The names `--head` and `BITNET_HEAD` take: `f16` (the head as stored), `q8_0`, `q4_0`,
    /// `q6_k`.
    pub fn parse(name: &str) -> Option<HeadType> {
        match name {
            "f16" | "as-stored" => Some(HeadType::AsStored),
            "q8_0" => Some(HeadType::Q8_0),
            "q4_0" => Some(HeadType::Q4_0),
            "q6_k" => Some(HeadType::Q6_K),
            _ => None,
        }
    }

    /// The head `BITNET_HEAD` names (unset or empty: as stored); an unknown name is an error.
    pub fn from_env() -> Result<HeadType> {
        match crate::env::var(crate::env::HEAD) {
            None => Ok(HeadType::AsStored),
            Some(v) if v.is_empty() => Ok(HeadType::AsStored),
            Some(v) => HeadType::parse(&v).ok_or_else(|| {
                Error::bad_input(format!(
                    "{}={v:?}: want f16, q8_0, q4_0 or q6_k",
                    crate::env::HEAD
                ))
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HeadType::AsStored => "f16",
            HeadType::Q8_0 => "q8_0",
            HeadType::Q4_0 => "q4_0",
            HeadType::Q6_K => "q6_k",
        }
    }
}

/// How `Model::load_with` prepares the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    pub head: HeadType,
    /// Repack ternary matrices for the SIMD kernels (false: the scalar reference on the
    /// mapped bytes, for tests and comparisons).
    pub repack: bool,
    /// The repacked ternary matrices' layout (2 or 1.6 bits); None: as `BITNET_TERNARY` says.
    pub ternary: Option<Layout>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            head: HeadType::AsStored,
            repack: true,
            ternary: None,
        }
    }
}

/// A weight matrix in the mapping: `rows` outputs x `cols` inputs.
#[derive(Clone, Debug)]
pub struct Matrix {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    bytes: Range<usize>,
    /// Index into `Model::packed` when the matrix was repacked at load.
    packed: Option<usize>,
    /// Index into `Model::lowbit` when the Q2_0 / Q1_0 matrix was repacked at load.
    lowbit: Option<usize>,
}

/// One projection: its matrix and the optional scalar that multiplies its output (`bitnet`'s
/// `blk.N.<proj>.scale`; 1 when absent).
#[derive(Clone, Debug)]
pub struct Proj {
    pub w: Matrix,
    pub scale: Option<f32>,
}

/// One decoder layer. n_q = n_head * head_dim (n_embd but in some qwen3 shapes), n_kv =
/// n_head_kv * head_dim. The BitNet architectures have the sub-norms and no q/k norms, qwen3
/// the other way round.
#[derive(Clone, Debug)]
pub struct Layer {
    pub attn_norm: Vec<f32>,             // [n_embd]
    pub wq: Proj,                        // [n_embd] -> [n_q]
    pub wk: Proj,                        // [n_embd] -> [n_kv]
    pub wv: Proj,                        // [n_embd] -> [n_kv]
    pub attn_q_norm: Option<Vec<f32>>,   // [head_dim], qwen3: every query head's RMSNorm
    pub attn_k_norm: Option<Vec<f32>>,   // [head_dim], qwen3: every key head's RMSNorm
    pub attn_sub_norm: Option<Vec<f32>>, // [n_q], BitNet only
    pub wo: Proj,                        // [n_q] -> [n_embd]
    pub ffn_norm: Vec<f32>,              // [n_embd]
    pub w_gate: Proj,                    // [n_embd] -> [n_ff]
    pub w_up: Proj,                      // [n_embd] -> [n_ff]
    pub ffn_sub_norm: Option<Vec<f32>>,  // [n_ff], BitNet only
    pub w_down: Proj,                    // [n_ff] -> [n_embd]
}

pub struct Model {
    file: MappedFile,
    hparams: HParams,
    pub token_embd: Matrix, // [n_vocab rows of n_embd]
    pub output_norm: Vec<f32>,
    /// The head: `output.weight` when the file has one, else the tied `token_embd`.
    pub output: Matrix,
    pub layers: Vec<Layer>,
    /// Repacked ternary matrices (see `Matrix::packed`).
    packed: Vec<TernaryMat>,
    /// Repacked Q2_0 / Q1_0 matrices (see `Matrix::lowbit`).
    lowbit: Vec<LowbitMat>,
    /// The int8 head when `HeadType::Q8_0` was asked for.
    head_q8: Option<Q8Head>,
    /// The Q4_0 head when `HeadType::Q4_0` was asked for.
    head_q4: Option<Q4Head>,
    /// The Q6_K head when `HeadType::Q6_K` was asked for and the stored head is not Q6_K.
    head_q6: Option<Q6Head>,
    /// The F16 embedding's pages were dropped (it is the requantized head): rows are read
    /// from the file instead of faulted in through the mapping.
    embd_by_read: bool,
}

thread_local! {
    /// One F16 embedding row read from the file (`Model::embedding_row`).
    static EMBD_ROW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Quantized activations for `Model::matmul` callers that do not bring their own.
    static ACT: std::cell::RefCell<ActBuf> = std::cell::RefCell::new(ActBuf::default());
    /// Q8_0 activations for the repacked Q2_0 / Q1_0 matrices.
    static LOW_ACT: std::cell::RefCell<LowAct> = std::cell::RefCell::new(LowAct::default());
}

const PAGE: usize = 4096;

/// MADV_POPULATE_READ: maps a slice of the file in one call instead of a fault per page (Linux
/// 5.14+; elsewhere, or on failure, the reads fault the pages in as before).
fn populate(bytes: &[u8]) {
    const MADV_POPULATE_READ: i32 = 22;
    let start = bytes.as_ptr() as usize / PAGE * PAGE;
    let end = (bytes.as_ptr() as usize + bytes.len()).div_ceil(PAGE) * PAGE;
    // SAFETY: the pages of [start, end) belong to the read-only file mapping that holds
    // `bytes`; populating only maps them, as reading them would.
    unsafe { kernels::madvise(start, end, MADV_POPULATE_READ) };
}

/// Tells the kernel the mapped range will not be read again, so its pages leave the working
/// set (the file stays mapped; a later read would fault them back in from the page cache).
fn drop_pages(bytes: &[u8]) {
    const MADV_DONTNEED: i32 = 4;
    let start = (bytes.as_ptr() as usize).div_ceil(PAGE) * PAGE;
    let end = (bytes.as_ptr() as usize + bytes.len()) / PAGE * PAGE;
    // SAFETY: [start, end) lies inside a private read-only file mapping that we own;
    // MADV_DONTNEED on such a mapping only discards resident pages, and any later read
    // refaults the unchanged file contents. Failure is harmless (pages stay resident).
    unsafe { kernels::madvise(start, end, MADV_DONTNEED) };
}

/// Reads tensors out of a parsed file, checking shape and type.
struct Loader<'g, 'a> {
    gguf: &'g Gguf<'a>,
    base: usize,
}

impl Loader<'_, '_> {
    fn find(&self, name: &str) -> Result<&crate::gguf::TensorInfo<'_>> {
        self.gguf
            .tensor(name)
            .ok_or_else(|| Error::format(format!("missing tensor {name}")))
    }

    fn check_shape(name: &str, dims: &[u64], want: &[usize]) -> Result<()> {
        let trimmed: Vec<u64> = {
            let mut d = dims.to_vec();
            while d.len() > want.len() && d.last() == Some(&1) {
                d.pop();
            }
            d
        };
        if trimmed.len() != want.len() || trimmed.iter().zip(want).any(|(&a, &b)| a != b as u64) {
            return Err(Error::format(format!(
                "tensor {name} has shape {dims:?}, expected {want:?}"
            )));
        }
        Ok(())
    }

    fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<Matrix> {
        let t = self.find(name)?;
        Self::check_shape(name, &t.dims, &[cols, rows])?;
        if !kernels::supports(t.ty) {
            return Err(Error::unsupported(format!(
                "unsupported tensor type {} (id {}) in tensor {name}",
                t.ty,
                t.ty.id()
            )));
        }
        let start = t.data.as_ptr() as usize - self.base;
        Ok(Matrix {
            name: name.to_string(),
            ty: t.ty,
            rows,
            cols,
            bytes: start..start + t.data.len(),
            packed: None,
            lowbit: None,
        })
    }

    fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>> {
        let t = self.find(name)?;
        Self::check_shape(name, &t.dims, &[n])?;
        let mut v = vec![0f32; n];
        quant::dequantize(t.ty, t.data, &mut v).map_err(|e| e.context(format!("tensor {name}")))?;
        Ok(v)
    }

    fn proj(&self, prefix: &str, cols: usize, rows: usize) -> Result<Proj> {
        let w = self.matrix(&format!("{prefix}.weight"), cols, rows)?;
        let scale_name = format!("{prefix}.scale");
        let scale = match self.gguf.tensor(&scale_name) {
            None => None,
            Some(_) => Some(self.vector(&scale_name, 1)?[0]),
        };
        Ok(Proj { w, scale })
    }
}

impl Model {
    /// Maps and checks a BitNet GGUF file, repacking its ternary matrices (F16 head).
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// `load` with a choice of head and repacking; a requantized head comes from the head
    /// cache when it holds a valid one (`model::head_cache`).
    pub fn load_with(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Model> {
        Self::load_with_head_cache(path, opts, head_cache::default_dir().as_deref())
    }

    /// `load_with`, with the head cache in `cache_dir` (None: no cache).
    pub fn load_with_head_cache(
        path: impl AsRef<Path>,
        opts: &LoadOptions,
        cache_dir: Option<&Path>,
    ) -> Result<Model> {
        let file = MappedFile::open(path.as_ref())?;
        let loaded = {
            let gguf = file.gguf()?;
            Self::read(&gguf, file.bytes().as_ptr() as usize)
        };
        let (hparams, token_embd, output_norm, output, layers) =
            loaded.map_err(|e| e.context(path.as_ref().display()))?;
        let mut model = Model {
            file,
            hparams,
            token_embd,
            output_norm,
            output,
            layers,
            packed: Vec::new(),
            lowbit: Vec::new(),
            head_q8: None,
            head_q4: None,
            head_q6: None,
            embd_by_read: false,
        };
        if opts.repack {
            let layout = match opts.ternary {
                Some(l) => l,
                None => Layout::from_env()?,
            };
            model.repack(layout);
        }
        let slot = cache_dir.and_then(|d| model.head_slot(d, path.as_ref(), opts.head));
        let (rows, cols) = (model.output.rows, model.output.cols);
        match opts.head {
            HeadType::AsStored => {}
            HeadType::Q8_0 => {
                let head = model.mat(&model.output);
                if head.ty != GgmlType::F16 || !head.cols.is_multiple_of(32) {
                    return Err(Error::unsupported(format!(
                        "a Q8_0 head is made from an F16 head with a multiple of 32 columns, not {} x {}",
                        head.ty, head.cols
                    )));
                }
                let q8 =
                    head_cache::load_or_make(slot.as_ref(), rows, cols, || Ok(model.q8_head()))?;
                model.head_q8 = Some(q8);
            }
            HeadType::Q4_0 => {
                // A head stored as Q4_0 is only split: not worth a cache file.
                let slot = slot.filter(|_| model.output.ty != GgmlType::Q4_0);
                let q4 = head_cache::load_or_make(slot.as_ref(), rows, cols, || model.q4_head())?;
                model.head_q4 = Some(q4);
            }
            // A head stored as Q6_K is used as stored (`kernels::matmul` has its fast path).
            HeadType::Q6_K if model.output.ty == GgmlType::Q6_K => {}
            HeadType::Q6_K => {
                let q6 = head_cache::load_or_make(slot.as_ref(), rows, cols, || model.q6_head())?;
                model.head_q6 = Some(q6);
            }
        }
        // A tied embedding lost its pages with the requantized head (or never had them): look
        // its rows up with reads, since a fault maps a whole page-cache folio (up to 2 MiB) and
        // a prefill of random tokens would bring hundreds of MB of the F16 head back.
        model.embd_by_read =
            (model.head_q8.is_some() || model.head_q4.is_some() || model.head_q6.is_some())
                && model.token_embd.bytes == model.output.bytes;
        Ok(model)
    }

    /// The head cache slot for `head` made from this model's head (None for the head as
    /// stored, or when the file's metadata cannot be read).
    fn head_slot(&self, dir: &Path, path: &Path, head: HeadType) -> Option<CacheSlot> {
        if head == HeadType::AsStored {
            return None;
        }
        let meta = self.file.metadata().ok()?;
        let m = &self.output;
        let key = HeadKey {
            offset: m.bytes.start as u64,
            len: m.bytes.len() as u64,
            stored_type: m.ty.id(),
            rows: m.rows as u64,
            cols: m.cols as u64,
            head: head as u32,
        };
        Some(CacheSlot::new(dir, path, &meta, key))
    }

    /// The F16 head requantized to Q8_0 in slices, each slice's F16 pages dropped once
    /// requantized, so the F16 and the Q8_0 copies of the head are never both resident
    /// (embedding lookups read the few rows they need: `embd_by_read`).
    fn q8_head(&self) -> Q8Head {
        let mut q8 = Q8Head::new(self.output.cols);
        q8.reserve(self.output.rows);
        self.head_in_slices(|slice| q8.append_f16(slice.data, slice.rows));
        q8
    }

    /// `take(slice)` on the stored head in slices of 4096 rows, in order: each slice's mapped
    /// pages populated before and dropped after, so that the stored head and a copy made from
    /// it are never both resident.
    fn head_in_slices(&self, mut take: impl FnMut(&MatRef<'_>)) {
        let head = self.mat(&self.output);
        let row_bytes = head.data.len() / head.rows.max(1);
        let slice_rows = 4096;
        for r0 in (0..head.rows).step_by(slice_rows) {
            let rows = slice_rows.min(head.rows - r0);
            let bytes = &head.data[r0 * row_bytes..(r0 + rows) * row_bytes];
            populate(bytes);
            take(&MatRef {
                rows,
                data: bytes,
                ..head
            });
            drop_pages(bytes);
        }
    }

    /// The head as Q4_0: copied when stored so, else requantized in slices of rows, each
    /// slice's mapped pages dropped once done (so the stored and the Q4_0 copies are never
    /// both resident).
    fn q4_head(&self) -> Result<Q4Head> {
        let head = self.mat(&self.output);
        if head.ty == GgmlType::Q4_0 {
            let h = Q4Head::from_blocks(head.data, head.rows, head.cols);
            drop_pages(head.data);
            return Ok(h);
        }
        if !head.cols.is_multiple_of(32) || head.ty == GgmlType::I2_S {
            return Err(Error::unsupported(format!(
                "a Q4_0 head is made from a float or block-quantized head with a multiple of 32 columns, not {} x {}",
                head.ty, head.cols
            )));
        }
        let mut q4 = Q4Head::new(head.cols);
        q4.reserve(head.rows);
        self.head_in_slices(|slice| {
            if slice.ty == GgmlType::F16 {
                q4.append_f16(slice.data, slice.rows);
            } else {
                q4.append_rows(slice.rows, &|r, out| {
                    kernels::row_to_f32(slice, r, out).expect("a whole row of a supported type")
                });
            }
        });
        Ok(q4)
    }

    /// The head requantized to Q6_K in slices of rows, each slice's mapped pages dropped once
    /// done (so the stored and the Q6_K copies are never both resident).
    fn q6_head(&self) -> Result<Q6Head> {
        let head = self.mat(&self.output);
        if !head.cols.is_multiple_of(256) || head.ty == GgmlType::I2_S {
            return Err(Error::unsupported(format!(
                "a Q6_K head is made from a float or block-quantized head with a multiple of 256 columns, not {} x {}",
                head.ty, head.cols
            )));
        }
        let mut q6 = Q6Head::new(head.cols, head.rows);
        self.head_in_slices(|slice| {
            q6.append_rows(slice.rows, &|r, out| match slice.ty {
                GgmlType::F16 => kernels::f16_bytes_to_f32(slice.row(r), out),
                _ => kernels::row_to_f32(slice, r, out).expect("a whole row of a supported type"),
            });
        });
        Ok(q6)
    }

    /// Repacks every ternary projection once (in `layout`) and drops its mapped pages.
    fn repack(&mut self, layout: Layout) {
        let mut packed = Vec::new();
        let bytes = self.file.bytes();
        let mut layers = std::mem::take(&mut self.layers);
        for layer in &mut layers {
            for m in projections_mut(layer) {
                if !TernaryMat::can_pack(m.ty, m.cols) {
                    continue;
                }
                let data = &bytes[m.bytes.clone()];
                let mat = match m.ty {
                    GgmlType::I2_S => TernaryMat::from_i2_s(data, m.rows, m.cols),
                    GgmlType::TQ2_0 => TernaryMat::from_tq2_0(data, m.rows, m.cols),
                    _ => TernaryMat::from_tq1_0(data, m.rows, m.cols),
                };
                packed.push(match layout {
                    Layout::Bits2 => mat,
                    Layout::Base3 => mat.into_base3(),
                });
                m.packed = Some(packed.len() - 1);
                drop_pages(data);
            }
        }
        self.layers = layers;
        self.packed = packed;
        self.repack_lowbit();
    }

    /// Repacks every Q2_0 / Q1_0 projection and the head (`kernels::lowbit`) and drops their
    /// mapped pages (a tied embedding's rows fault back in when looked up).
    fn repack_lowbit(&mut self) {
        let bytes = self.file.bytes();
        let mut lowbit = Vec::new();
        let mut layers = std::mem::take(&mut self.layers);
        let mut mats: Vec<&mut Matrix> = Vec::new();
        for layer in &mut layers {
            mats.extend(projections_mut(layer));
        }
        mats.push(&mut self.output);
        for m in mats {
            if !LowbitMat::can_pack(m.ty, m.cols) {
                continue;
            }
            let data = &bytes[m.bytes.clone()];
            lowbit.push(match m.ty {
                GgmlType::Q2_0 => LowbitMat::from_q2_0(data, m.rows, m.cols),
                _ => LowbitMat::from_q1_0(data, m.rows, m.cols),
            });
            m.lowbit = Some(lowbit.len() - 1);
            drop_pages(data);
        }
        self.layers = layers;
        self.lowbit = lowbit;
    }

    /// Bytes a decode step reads from weights: every projection (repacked or mapped) and the
    /// head in use (norms and the KV cache not counted).
    pub fn decode_weight_bytes(&self) -> usize {
        let mut total = 0;
        for l in &self.layers {
            for p in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
                total += self.matrix_bytes(&p.w);
            }
        }
        total
            + match (&self.head_q8, &self.head_q4, &self.head_q6) {
                (Some(h), _, _) => h.bytes(),
                (_, Some(h), _) => h.bytes(),
                (_, _, Some(h)) => h.bytes(),
                _ => self.matrix_bytes(&self.output),
            }
    }

    /// Bytes a product with `m` reads: its repacked copy's, or its mapped bytes.
    fn matrix_bytes(&self, m: &Matrix) -> usize {
        match (m.packed, m.lowbit) {
            (Some(i), _) => self.packed[i].bytes(),
            (_, Some(i)) => self.lowbit[i].bytes(),
            _ => m.bytes.len(),
        }
    }

    /// The activation format a matmul with `m` under `mode` uses on the packed path.
    fn act_mode(m: &Matrix, mode: Activations) -> ActMode {
        match (mode, m.ty) {
            (Activations::PerTokenInt8, _) | (_, GgmlType::I2_S) => ActMode::PerToken,
            _ => ActMode::Q8K,
        }
    }

    /// Quantizes `n` rows of `x` into `act` as a matmul with `m` under `mode` wants them; `act`
    /// can then serve every matrix with the same input and format (`matmul_quantized`).
    /// Returns false when `m` is not repacked (use `matmul`).
    pub fn quantize_for(
        &self,
        m: &Matrix,
        mode: Activations,
        x: &[f32],
        n: usize,
        act: &mut ActBuf,
        threads: usize,
    ) -> bool {
        if m.packed.is_none() {
            return false;
        }
        act.quantize(
            Self::act_mode(m, mode),
            &x[..n * m.cols],
            n,
            m.cols,
            threads,
        );
        true
    }

    /// Whether `act` (from `quantize_for`) fits matrix `m` under `mode`.
    pub fn act_fits(m: &Matrix, mode: Activations, act: &ActBuf) -> bool {
        m.packed.is_some() && act.cols == m.cols && act.mode == Some(Self::act_mode(m, mode))
    }

    /// out[t * m.rows + r] for the tokens quantized in `act` (which must fit: `act_fits`).
    pub fn matmul_quantized(&self, m: &Matrix, act: &ActBuf, out: &mut [f32], threads: usize) {
        let p = &self.packed[m.packed.expect("a repacked matrix")];
        kernels::ternary::matmul(p, act, &mut out[..act.n * m.rows], m.rows, threads);
    }

    /// Whether `m` runs the repacked Q2_0 / Q1_0 kernels under `mode` (`matmul_lowbit_many`).
    pub fn is_lowbit(m: &Matrix, mode: Activations) -> bool {
        m.packed.is_none() && m.lowbit.is_some() && mode == Activations::ByWeightType
    }

    /// `matmul` of several Q2_0 / Q1_0 matrices (each `is_lowbit`) reading the same `n` rows
    /// of `x`: one Q8_0 quantization and one pool hand-off for all of them
    /// (`kernels::lowbit::matmul_many`). `out` of each: [n, rows].
    pub fn matmul_lowbit_many(
        &self,
        mats: &mut [(&Matrix, &mut [f32])],
        x: &[f32],
        n: usize,
        threads: usize,
    ) {
        let Some((first, _)) = mats.first() else {
            return;
        };
        let cols = first.cols;
        let mut lows: Vec<(&LowbitMat, &mut [f32], usize)> = mats
            .iter_mut()
            .map(|(m, out)| {
                assert_eq!(m.cols, cols);
                let i = m.lowbit.expect("a repacked Q2_0 / Q1_0 matrix");
                (&self.lowbit[i], &mut out[..n * m.rows], m.rows)
            })
            .collect();
        LOW_ACT.with(|a| {
            let mut act = a.borrow_mut();
            act.quantize(&x[..n * cols], n, cols, threads);
            kernels::lowbit::matmul_many(&mut lows, &mut act, threads);
        });
    }

    /// `out[t][r] = m.row(r) . x[t]` for `n` rows of `x`: the repacked SIMD kernels when `m`
    /// was repacked (ternary, or Q2_0 / Q1_0 under `ByWeightType`), else `kernels::matmul` on
    /// the mapped bytes. `threads` 0: all cores.
    pub fn matmul(
        &self,
        m: &Matrix,
        mode: Activations,
        x: &[f32],
        n: usize,
        out: &mut [f32],
        threads: usize,
    ) -> Result<()> {
        let threads = if threads == 0 {
            pool::default_threads()
        } else {
            threads
        };
        if m.packed.is_some() {
            ACT.with(|a| {
                let mut act = a.borrow_mut();
                self.quantize_for(m, mode, x, n, &mut act, threads);
                self.matmul_quantized(m, &act, out, threads);
            });
            return Ok(());
        }
        if let (Some(i), Activations::ByWeightType) = (m.lowbit, mode) {
            LOW_ACT.with(|a| {
                let mut act = a.borrow_mut();
                act.quantize(&x[..n * m.cols], n, m.cols, threads);
                kernels::lowbit::matmul(
                    &self.lowbit[i],
                    &mut act,
                    &mut out[..n * m.rows],
                    m.rows,
                    threads,
                );
            });
            return Ok(());
        }
        kernels::matmul_threads(
            &self.mat(m),
            mode,
            &x[..n * m.cols],
            n,
            &mut out[..n * m.rows],
            threads,
        )
    }

    /// The Q8_0 head when the model was loaded with `HeadType::Q8_0`.
    pub fn head_q8(&self) -> Option<&Q8Head> {
        self.head_q8.as_ref()
    }

    /// The Q4_0 head when the model was loaded with `HeadType::Q4_0`.
    pub fn head_q4(&self) -> Option<&Q4Head> {
        self.head_q4.as_ref()
    }

    /// The Q6_K head when the model was loaded with `HeadType::Q6_K` (None when the stored
    /// head is Q6_K: it is used as stored).
    pub fn head_q6(&self) -> Option<&Q6Head> {
        self.head_q6.as_ref()
    }

    /// Logits for `n` final hidden rows: the requantized head when loaded with one, else
    /// `output`.
    pub fn head_matmul(&self, x: &[f32], n: usize, out: &mut [f32], threads: usize) -> Result<()> {
        let threads = if threads == 0 {
            pool::default_threads()
        } else {
            threads
        };
        match (&self.head_q8, &self.head_q4, &self.head_q6) {
            (Some(h), _, _) => {
                h.matmul(&x[..n * h.cols], n, &mut out[..n * h.rows], h.rows, threads);
                Ok(())
            }
            (_, Some(h), _) => {
                h.matmul(&x[..n * h.cols], n, &mut out[..n * h.rows], h.rows, threads);
                Ok(())
            }
            (_, _, Some(h)) => {
                h.matmul(&x[..n * h.cols], n, &mut out[..n * h.rows], h.rows, threads);
                Ok(())
            }
            _ => self.matmul(&self.output, Activations::ByWeightType, x, n, out, threads),
        }
    }

    #[allow(clippy::type_complexity)]
    fn read(
        gguf: &Gguf<'_>,
        base: usize,
    ) -> Result<(HParams, Matrix, Vec<f32>, Matrix, Vec<Layer>)> {
        let h = HParams::from_gguf(gguf)?;
        let ld = Loader { gguf, base };
        let (n_embd, n_ff, n_q, n_kv, hd) = (h.n_embd, h.n_ff, h.n_q(), h.n_kv(), h.head_dim);
        let token_embd = ld.matrix("token_embd.weight", n_embd, h.n_vocab)?;
        let output_norm = ld.vector("output_norm.weight", n_embd)?;
        let output = match gguf.tensor("output.weight") {
            Some(_) => ld.matrix("output.weight", n_embd, h.n_vocab)?,
            None => token_embd.clone(),
        };
        let qwen3 = h.arch == Arch::Qwen3;
        // block_count comes from the file: reserve no more layers than it has tensors for (each
        // layer has 11), the loop below stops at the first missing one with its name.
        let mut layers = Vec::with_capacity(h.n_layer.min(gguf.tensors().len() / 11));
        for i in 0..h.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}");
            // The norms only one family has: read where the arch has them, else absent.
            let norm_if = |has: bool, name: &str, n: usize| -> Result<Option<Vec<f32>>> {
                has.then(|| ld.vector(&p(name), n)).transpose()
            };
            layers.push(Layer {
                attn_norm: ld.vector(&p("attn_norm.weight"), n_embd)?,
                wq: ld.proj(&p("attn_q"), n_embd, n_q)?,
                wk: ld.proj(&p("attn_k"), n_embd, n_kv)?,
                wv: ld.proj(&p("attn_v"), n_embd, n_kv)?,
                attn_q_norm: norm_if(qwen3, "attn_q_norm.weight", hd)?,
                attn_k_norm: norm_if(qwen3, "attn_k_norm.weight", hd)?,
                attn_sub_norm: norm_if(!qwen3, "attn_sub_norm.weight", n_q)?,
                wo: ld.proj(&p("attn_output"), n_q, n_embd)?,
                ffn_norm: ld.vector(&p("ffn_norm.weight"), n_embd)?,
                w_gate: ld.proj(&p("ffn_gate"), n_embd, n_ff)?,
                w_up: ld.proj(&p("ffn_up"), n_embd, n_ff)?,
                ffn_sub_norm: norm_if(!qwen3, "ffn_sub_norm.weight", n_ff)?,
                w_down: ld.proj(&p("ffn_down"), n_ff, n_embd)?,
            });
        }
        Ok((h, token_embd, output_norm, output, layers))
    }

    /// Token `tok`'s embedding row as f32.
    pub fn embedding_row(&self, tok: usize, out: &mut [f32]) -> Result<()> {
        let m = &self.token_embd;
        if !self.embd_by_read || m.ty != GgmlType::F16 {
            return kernels::row_to_f32(&self.mat(m), tok, out);
        }
        if tok >= m.rows || out.len() != m.cols {
            return Err(Error::bad_input(format!(
                "no embedding row {tok} of {}",
                m.rows
            )));
        }
        let row_bytes = m.cols * 2;
        let start = m.bytes.start + tok * row_bytes;
        EMBD_ROW.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.resize(row_bytes, 0);
            self.file.read_range(start..start + row_bytes, &mut buf)?;
            for (o, b) in out.iter_mut().zip(buf.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
            Ok(())
        })
    }

    pub fn hparams(&self) -> &HParams {
        &self.hparams
    }

    /// A matrix's bytes, borrowed from the mapping (for a repacked matrix these pages were
    /// dropped at load; reading them faults them back in from the file).
    pub fn mat(&self, m: &Matrix) -> MatRef<'_> {
        MatRef {
            ty: m.ty,
            rows: m.rows,
            cols: m.cols,
            data: &self.file.bytes()[m.bytes.clone()],
        }
    }
}

/// The seven projection matrices of a layer (q, k, v, output, gate, up, down).
fn projections_mut(layer: &mut Layer) -> [&mut Matrix; 7] {
    [
        &mut layer.wq.w,
        &mut layer.wk.w,
        &mut layer.wv.w,
        &mut layer.wo.w,
        &mut layer.w_gate.w,
        &mut layer.w_up.w,
        &mut layer.w_down.w,
    ]
}
