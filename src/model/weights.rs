//! `Model`: the memory-mapped file, its hyperparameters and every layer's weights, checked for
//! presence, shape and type at load. Matrices stay in the mapping (no copy); norm vectors and
//! projection scales, which are tiny, are read into f32.

use std::ops::Range;
use std::path::Path;

use super::hparams::HParams;
use crate::error::{Error, Result};
use crate::gguf::{Gguf, MappedFile};
use crate::kernels::{self, MatRef};
use crate::quant::{self, GgmlType};

/// A weight matrix in the mapping: `rows` outputs x `cols` inputs.
#[derive(Clone, Debug)]
pub struct Matrix {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    bytes: Range<usize>,
}

/// One projection: its matrix and the optional scalar that multiplies its output (`bitnet`'s
/// `blk.N.<proj>.scale`; 1 when absent).
#[derive(Clone, Debug)]
pub struct Proj {
    pub w: Matrix,
    pub scale: Option<f32>,
}

#[derive(Clone, Debug)]
pub struct Layer {
    pub attn_norm: Vec<f32>,     // [n_embd]
    pub wq: Proj,                // [n_embd] -> [n_embd]
    pub wk: Proj,                // [n_embd] -> [n_kv_dim]
    pub wv: Proj,                // [n_embd] -> [n_kv_dim]
    pub attn_sub_norm: Vec<f32>, // [n_embd]
    pub wo: Proj,                // [n_embd] -> [n_embd]
    pub ffn_norm: Vec<f32>,      // [n_embd]
    pub w_gate: Proj,            // [n_embd] -> [n_ff]
    pub w_up: Proj,              // [n_embd] -> [n_ff]
    pub ffn_sub_norm: Vec<f32>,  // [n_ff]
    pub w_down: Proj,            // [n_ff] -> [n_embd]
}

pub struct Model {
    file: MappedFile,
    hparams: HParams,
    pub token_embd: Matrix, // [n_vocab rows of n_embd]
    pub output_norm: Vec<f32>,
    /// The head: `output.weight` when the file has one, else the tied `token_embd`.
    pub output: Matrix,
    pub layers: Vec<Layer>,
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
    /// Maps and checks a BitNet GGUF file.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let file = MappedFile::open(path.as_ref())?;
        let loaded = {
            let gguf = file.gguf()?;
            Self::read(&gguf, file.bytes().as_ptr() as usize)
        };
        let (hparams, token_embd, output_norm, output, layers) =
            loaded.map_err(|e| e.context(path.as_ref().display()))?;
        Ok(Model {
            file,
            hparams,
            token_embd,
            output_norm,
            output,
            layers,
        })
    }

    #[allow(clippy::type_complexity)]
    fn read(
        gguf: &Gguf<'_>,
        base: usize,
    ) -> Result<(HParams, Matrix, Vec<f32>, Matrix, Vec<Layer>)> {
        let h = HParams::from_gguf(gguf)?;
        let ld = Loader { gguf, base };
        let (n_embd, n_ff, n_kv) = (h.n_embd, h.n_ff, h.n_head_kv * h.head_dim);
        let token_embd = ld.matrix("token_embd.weight", n_embd, h.n_vocab)?;
        let output_norm = ld.vector("output_norm.weight", n_embd)?;
        let output = match gguf.tensor("output.weight") {
            Some(_) => ld.matrix("output.weight", n_embd, h.n_vocab)?,
            None => token_embd.clone(),
        };
        let mut layers = Vec::with_capacity(h.n_layer);
        for i in 0..h.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                attn_norm: ld.vector(&p("attn_norm.weight"), n_embd)?,
                wq: ld.proj(&p("attn_q"), n_embd, n_embd)?,
                wk: ld.proj(&p("attn_k"), n_embd, n_kv)?,
                wv: ld.proj(&p("attn_v"), n_embd, n_kv)?,
                attn_sub_norm: ld.vector(&p("attn_sub_norm.weight"), n_embd)?,
                wo: ld.proj(&p("attn_output"), n_embd, n_embd)?,
                ffn_norm: ld.vector(&p("ffn_norm.weight"), n_embd)?,
                w_gate: ld.proj(&p("ffn_gate"), n_embd, n_ff)?,
                w_up: ld.proj(&p("ffn_up"), n_embd, n_ff)?,
                ffn_sub_norm: ld.vector(&p("ffn_sub_norm.weight"), n_ff)?,
                w_down: ld.proj(&p("ffn_down"), n_ff, n_embd)?,
            });
        }
        Ok((h, token_embd, output_norm, output, layers))
    }

    pub fn hparams(&self) -> &HParams {
        &self.hparams
    }

    /// A matrix's bytes, borrowed from the mapping.
    pub fn mat(&self, m: &Matrix) -> MatRef<'_> {
        MatRef {
            ty: m.ty,
            rows: m.rows,
            cols: m.cols,
            data: &self.file.bytes()[m.bytes.clone()],
        }
    }
}
