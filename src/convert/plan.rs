//! Which GGUF tensors a checkpoint becomes, checked against the checkpoint before a byte is
//! written: the per-family names (Hugging Face -> GGUF), every dtype and shape, nothing missing,
//! nothing unknown. Then each planned tensor's bytes, made one at a time.

use std::collections::BTreeSet;

use super::config::{Config, Family, Storage};
use super::safetensors::{Checkpoint, Dtype, TensorView};
use super::ternary::{self, Ternary};
use super::OutType;
use crate::quant::float::{f32_to_bf16, f32_to_f16};
use crate::quant::{self, GgmlType};
use crate::{Error, Result};

/// Where a GGUF tensor's values come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A float tensor copied (converted to the planned type).
    Float(String),
    /// A projection made ternary: its Hugging Face name, [rows = outputs, cols = inputs].
    Projection {
        hf: String,
        rows: usize,
        cols: usize,
    },
    /// The scale of the projection written just before it (`blk.N.<proj>.scale`).
    ScaleOfPrevious,
}

/// One tensor of the output file.
#[derive(Clone, Debug)]
pub struct Planned {
    pub name: String,
    /// ne0 first (GGUF order).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    pub source: Source,
}

/// The seven projections: (GGUF name, Hugging Face module, rows, cols).
fn projections(c: &Config) -> [(&'static str, &'static str, usize, usize); 7] {
    let kv = c.shape.n_head_kv * c.head_dim();
    [
        ("attn_q", "self_attn.q_proj", c.shape.n_embd, c.shape.n_embd),
        ("attn_k", "self_attn.k_proj", kv, c.shape.n_embd),
        ("attn_v", "self_attn.v_proj", kv, c.shape.n_embd),
        (
            "attn_output",
            "self_attn.o_proj",
            c.shape.n_embd,
            c.shape.n_embd,
        ),
        ("ffn_gate", "mlp.gate_proj", c.shape.n_ff, c.shape.n_embd),
        ("ffn_up", "mlp.up_proj", c.shape.n_ff, c.shape.n_embd),
        ("ffn_down", "mlp.down_proj", c.shape.n_embd, c.shape.n_ff),
    ]
}

/// The two sub-norms' Hugging Face names for a family.
fn sub_norms(f: Family) -> (&'static str, &'static str) {
    match f {
        Family::Microsoft => ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm"),
        Family::OneBitLlm => ("self_attn.inner_attn_ln", "mlp.ffn_layernorm"),
    }
}

/// Tensors a checkpoint may hold that the model does not use (RoPE tables saved as buffers).
fn ignorable(name: &str) -> bool {
    name.ends_with(".rotary_emb.inv_freq")
}

fn shape_error(t: &TensorView<'_>, want: &str) -> Error {
    Error::format(format!(
        "tensor {} is {} {:?}, expected {want} (config.json and the weights disagree)",
        t.name,
        t.dtype.name(),
        t.shape
    ))
}

/// Plans the output of `ckpt` as `out` and checks every tensor it will read.
pub fn plan(c: &Config, ckpt: &Checkpoint, out: OutType) -> Result<Vec<Planned>> {
    let mut used = BTreeSet::new();
    let mut get = |name: &str| -> Result<TensorView<'_>> {
        used.insert(name.to_string());
        ckpt.get(name)
            .ok_or_else(|| Error::format(format!("missing tensor {name}")))
    };
    let float_ty = out.float_type();
    let mut planned = vec![];
    let float = |planned: &mut Vec<Planned>,
                 t: TensorView<'_>,
                 name: &str,
                 shape: &[usize],
                 ty: GgmlType|
     -> Result<()> {
        if !t.dtype.is_float() || t.shape != shape {
            return Err(shape_error(&t, &format!("a float {shape:?}")));
        }
        planned.push(Planned {
            name: name.to_string(),
            dims: shape.iter().rev().map(|&d| d as u64).collect(),
            ty,
            source: Source::Float(t.name.to_string()),
        });
        Ok(())
    };
    let embd = get("model.embed_tokens.weight")?;
    float(
        &mut planned,
        embd,
        "token_embd.weight",
        &[c.shape.n_vocab, c.shape.n_embd],
        float_ty,
    )?;
    float(
        &mut planned,
        get("model.norm.weight")?,
        "output_norm.weight",
        &[c.shape.n_embd],
        GgmlType::F32,
    )?;
    let tied = c
        .tie_embeddings
        .unwrap_or(ckpt.get("lm_head.weight").is_none());
    if !tied {
        let head = get("lm_head.weight")?;
        float(
            &mut planned,
            head,
            "output.weight",
            &[c.shape.n_vocab, c.shape.n_embd],
            float_ty,
        )?;
    } else if ckpt.get("lm_head.weight").is_some() {
        // tied: transformers reads the embedding; a saved copy of the head is not used
        get("lm_head.weight")?;
    }
    let (attn_sub, ffn_sub) = sub_norms(c.family);
    for l in 0..c.shape.n_layer {
        let hf = |x: &str| format!("model.layers.{l}.{x}");
        let gg = |x: &str| format!("blk.{l}.{x}");
        for (gguf, module, rows, cols) in projections(c) {
            let w = get(&hf(&format!("{module}.weight")))?;
            match c.storage {
                Storage::Packed => {
                    if w.dtype != Dtype::U8
                        || w.shape != [rows / 4, cols]
                        || !rows.is_multiple_of(4)
                    {
                        return Err(shape_error(&w, &format!("U8 [{}, {cols}]", rows / 4)));
                    }
                    let s = get(&hf(&format!("{module}.weight_scale")))?;
                    if !s.dtype.is_float() || s.n_elements() != 1 {
                        return Err(shape_error(&s, "one float value"));
                    }
                }
                Storage::Masters => {
                    if !w.dtype.is_float() || w.shape != [rows, cols] {
                        return Err(shape_error(&w, &format!("a float [{rows}, {cols}]")));
                    }
                }
            }
            let ty = out.projection_type();
            if !(cols as u64).is_multiple_of(ty.block_size()) {
                return Err(Error::unsupported(format!(
                    "--type {} cannot hold {}: {cols} inputs is not a multiple of {} \
                     (types that can hold this model: {})",
                    out.name(),
                    w.name,
                    ty.block_size(),
                    OutType::holding(c).join(", ")
                )));
            }
            planned.push(Planned {
                name: gg(&format!("{gguf}.weight")),
                dims: vec![cols as u64, rows as u64],
                ty,
                source: Source::Projection {
                    hf: w.name.to_string(),
                    rows,
                    cols,
                },
            });
            if out != OutType::I2S {
                planned.push(Planned {
                    name: gg(&format!("{gguf}.scale")),
                    dims: vec![1],
                    ty: GgmlType::F32,
                    source: Source::ScaleOfPrevious,
                });
            }
        }
        for (gguf, hf_name, n) in [
            ("attn_norm", "input_layernorm", c.shape.n_embd),
            ("attn_sub_norm", attn_sub, c.shape.n_embd),
            ("ffn_norm", "post_attention_layernorm", c.shape.n_embd),
            ("ffn_sub_norm", ffn_sub, c.shape.n_ff),
        ] {
            let t = get(&hf(&format!("{hf_name}.weight")))?;
            float(
                &mut planned,
                t,
                &gg(&format!("{gguf}.weight")),
                &[n],
                GgmlType::F32,
            )?;
        }
    }
    if let Some(extra) = ckpt.names().find(|n| !used.contains(*n) && !ignorable(n)) {
        return Err(Error::unsupported(format!(
            "unknown tensor {extra} (not part of a {} checkpoint with {} layers)",
            c.family.arch(),
            c.shape.n_layer
        )));
    }
    Ok(planned)
}

/// The ternary codes and scale of a planned projection.
fn ternary_of(
    c: &Config,
    ckpt: &Checkpoint,
    hf: &str,
    rows: usize,
    cols: usize,
) -> Result<Ternary> {
    let w = ckpt
        .get(hf)
        .ok_or_else(|| Error::format(format!("missing tensor {hf}")))?;
    match c.storage {
        Storage::Packed => {
            let scale_name = format!("{}_scale", hf);
            let s = ckpt
                .get(&scale_name)
                .ok_or_else(|| Error::format(format!("missing tensor {scale_name}")))?;
            ternary::unpack(&w, &s, rows, cols)
        }
        Storage::Masters => ternary::absmean(&w, rows, cols),
    }
}

/// Floats in a float GGUF type.
fn float_bytes(values: &[f32], ty: GgmlType) -> Vec<u8> {
    match ty {
        GgmlType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => values
            .iter()
            .flat_map(|&v| f32_to_f16(v).to_le_bytes())
            .collect(),
        GgmlType::BF16 => values
            .iter()
            .flat_map(|&v| f32_to_bf16(v).to_le_bytes())
            .collect(),
        other => unreachable!("{other} is not a float type"),
    }
}

/// Makes the bytes of planned tensors in file order; `last_scale` carries a projection's scale
/// to the `.scale` tensor after it.
pub struct Producer<'a> {
    pub config: &'a Config,
    pub ckpt: &'a Checkpoint,
    last_scale: Option<f32>,
}

impl<'a> Producer<'a> {
    pub fn new(config: &'a Config, ckpt: &'a Checkpoint) -> Producer<'a> {
        Producer {
            config,
            ckpt,
            last_scale: None,
        }
    }

    pub fn bytes(&mut self, p: &Planned) -> Result<Vec<u8>> {
        match &p.source {
            Source::Float(hf) => {
                let t = self
                    .ckpt
                    .get(hf)
                    .ok_or_else(|| Error::format(format!("missing tensor {hf}")))?;
                Ok(float_bytes(&t.to_f32()?, p.ty))
            }
            Source::ScaleOfPrevious => {
                let s = self.last_scale.take().ok_or_else(|| {
                    Error::bad_input(format!("{}: no projection before it", p.name))
                })?;
                Ok(s.to_le_bytes().to_vec())
            }
            Source::Projection { hf, rows, cols } => {
                let t = ternary_of(self.config, self.ckpt, hf, *rows, *cols)?;
                let n = t.codes.len();
                let bytes = p.ty.tensor_bytes(n as u64).expect("checked in plan") as usize;
                let mut out = vec![0u8; bytes];
                if p.ty == GgmlType::I2_S {
                    // the one per-tensor scale lives in the I2_S tensor itself
                    let values: Vec<f32> = t.codes.iter().map(|&q| q as f32 * t.scale).collect();
                    quant::quantize(p.ty, &values, &mut out)?;
                    return Ok(out);
                }
                // exact codes (block scales 1, or plain floats) and the scale beside them
                self.last_scale = Some(t.scale);
                let codes: Vec<f32> = t.codes.iter().map(|&q| q as f32).collect();
                match p.ty {
                    GgmlType::TQ1_0 | GgmlType::TQ2_0 => quant::quantize(p.ty, &codes, &mut out)?,
                    ty => out = float_bytes(&codes, ty),
                }
                Ok(out)
            }
        }
    }
}
