//! `bitnet convert` on the committed tiny checkpoints of tests/convert/ (one per family, in its
//! exact Hugging Face layout, made by tests/convert/make_checkpoints.py with reference logits
//! from transformers / a torch re-implementation of 1bitLLM's model): the converted files run in
//! our engine and match those logits; every output type agrees where the architecture defines
//! them identically; hostile checkpoints get one clear error and leave no file behind.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitnet::convert::{convert, OutType};
use bitnet::fixture::{argmax, cosine, decode, decode_rows};
use bitnet::model::{Context, ContextParams, Model};
use common::{repo, scratch};

fn checkpoint(name: &str) -> PathBuf {
    repo().join("tests/convert").join(name)
}

struct Reference {
    prompt: Vec<u32>,
    n_vocab: usize,
    logits: Vec<Vec<f32>>,
    perturbed: Vec<Vec<f32>>,
    greedy: Vec<u32>,
    margins: Vec<f32>,
}

fn rows(path: &Path, n_vocab: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    v.chunks(n_vocab).map(<[f32]>::to_vec).collect()
}

fn reference(name: &str) -> Reference {
    let dir = checkpoint(name);
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    let ids = |k: &str| -> Vec<u32> {
        j[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect()
    };
    let n_vocab = j["n_vocab"].as_u64().unwrap() as usize;
    Reference {
        prompt: ids("prompt"),
        n_vocab,
        logits: rows(&dir.join("logits.f32"), n_vocab),
        perturbed: rows(&dir.join("logits_perturbed.f32"), n_vocab),
        greedy: ids("greedy"),
        margins: j["greedy_margins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect(),
    }
}

/// Converts `name` into a scratch folder and loads the result.
fn converted(name: &str, ty: Option<OutType>) -> (PathBuf, Arc<Model>) {
    let dir = scratch(&format!(
        "convert-{name}-{}",
        ty.map(OutType::name).unwrap_or("default")
    ));
    let out = dir.join("model.gguf");
    convert(&checkpoint(name), &out, ty).unwrap();
    let model = Arc::new(Model::load(&out).unwrap());
    (out, model)
}

fn context(m: &Arc<Model>) -> Context {
    Context::new(m.clone(), ContextParams::new(128, 64)).unwrap()
}

/// Our logits of the reference prompt, every position.
fn prompt_logits(m: &Arc<Model>, prompt: &[u32]) -> Vec<Vec<f32>> {
    decode_rows(&mut context(m), prompt, 0, 0).unwrap()
}

/// Worst per-position cosine of two sets of rows.
fn worst_cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| cosine(x, y))
        .fold(1.0, f64::min)
}

/// Our greedy continuation of the prompt, one token at a time.
fn greedy(m: &Arc<Model>, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut c = context(m);
    decode(&mut c, prompt, 0, 0, false).unwrap();
    let mut last = prompt.len() - 1; // batch index of the logits row
    let mut out = vec![];
    for step in 0..n {
        let next = argmax(c.logits(last).unwrap()) as u32;
        last = 0;
        out.push(next);
        decode(&mut c, &[next], (prompt.len() + step) as i32, 0, false).unwrap();
    }
    out
}

/// The acceptance check of one family: logits against the reference no further apart than the
/// reference is from itself with its norm weights scaled by 1 + 1e-6 (the int8 noise floor,
/// as crossval measures it) or closer than `min_cosine`, whichever is looser; then 32 greedy
/// steps with the same tokens, up to the first step where the reference's top-1 - top-2
/// margin is within 4x the largest logit difference seen on the prompt (there either token is
/// a faithful answer, and the two continuations part).
fn check_family(name: &str, min_cosine: f64) {
    let r = reference(name);
    let (_, m) = converted(name, None);
    assert_eq!(m.hparams().n_vocab, r.n_vocab, "{name}: vocabulary size");
    let ours = prompt_logits(&m, &r.prompt);
    let cos = worst_cosine(&ours, &r.logits);
    let floor = worst_cosine(&r.perturbed, &r.logits);
    let max_diff = ours
        .iter()
        .flatten()
        .zip(r.logits.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let tokens = greedy(&m, &r.prompt, r.greedy.len());
    let decided = r
        .margins
        .iter()
        .position(|&m| m <= 4.0 * max_diff)
        .unwrap_or(r.margins.len());
    let same = tokens
        .iter()
        .zip(&r.greedy)
        .take_while(|(a, b)| a == b)
        .count();
    eprintln!(
        "{name}: worst cosine vs reference {cos:.7} (reference vs itself, norms x (1 + 1e-6): \
         {floor:.7}), largest logit difference {max_diff:.5}; greedy: {same} of {} tokens equal, \
         the first {decided} steps have a reference margin above 4x that (margins: {:?})",
        r.greedy.len(),
        r.margins
            .iter()
            .map(|m| (m * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    assert!(
        cos >= min_cosine.min(floor),
        "{name}: worst cosine {cos} below {min_cosine} and below the noise floor {floor}"
    );
    assert!(
        same >= decided,
        "{name}: greedy tokens part at step {same}, where the reference margin is {}",
        r.margins[same]
    );
}

#[test]
fn bitnet_2b4t_packed_matches_transformers() {
    check_family("bitnet-2b4t", 0.9999);
}

#[test]
fn bitnet_2b4t_bf16_masters_match_transformers() {
    check_family("bitnet-2b4t-bf16", 0.9999);
}

#[test]
fn onebitllm_matches_its_modeling_code() {
    check_family("1bitllm", 0.9999);
}
