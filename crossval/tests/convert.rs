//! `bitnet convert` against upstream llama.cpp's converter on the 1bitLLM fixture
//! (tests/convert/1bitllm): `tests/convert/upstream/1bitllm-tq2_0.gguf` is what the pinned
//! sdist's `convert_hf_to_gguf.py --outtype tq2_0` wrote for it (tests/convert/README.md says
//! how). Upstream folds each projection's scale into TQ2_0 block scales (rounded to f16); ours
//! writes block scales of 1 and an exact f32 `.scale` tensor, so the two files are not
//! byte-equal: run in the reference, their logits agree to the f16 rounding of the scales.

mod common;

use std::path::PathBuf;

use bitnet::convert::{convert, OutType};
use crossval::compare::TempDir;
use crossval::reference::{RefContext, RefCtxParams, RefModel};
use crossval::run::{greedy, teacher_forced};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn prompt() -> Vec<u32> {
    let j: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/convert/1bitllm/reference.json")).unwrap(),
    )
    .unwrap();
    j["prompt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn our_1bitllm_file_and_upstreams_give_the_same_logits_in_the_reference() {
    if !common::reference_available() {
        return;
    }
    let dir = TempDir::new("convert-upstream").unwrap();
    let ours = dir.0.join("1bitllm-tq2_0.gguf");
    convert(
        &repo().join("tests/convert/1bitllm"),
        &ours,
        Some(OutType::TQ2_0),
    )
    .unwrap();
    let theirs = repo().join("tests/convert/upstream/1bitllm-tq2_0.gguf");

    // the same vocabulary, token for token
    let (fo, ft) = (
        bitnet::gguf::MappedFile::open(&ours).unwrap(),
        bitnet::gguf::MappedFile::open(&theirs).unwrap(),
    );
    let (go, gt) = (fo.gguf().unwrap(), ft.gguf().unwrap());
    let tokens = |g: &bitnet::gguf::Gguf<'_>| -> Vec<Vec<u8>> {
        let a = g.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap();
        a.strings().unwrap().map(<[u8]>::to_vec).collect()
    };
    assert_eq!(tokens(&go), tokens(&gt));

    // both files in the reference: prompt and 32 greedy steps
    let prompt = prompt();
    let params = RefCtxParams {
        n_ctx: 64,
        n_batch: prompt.len() as u32,
        threads: crossval::reference::DEFAULT_THREADS,
        flash_attn: crossval::reference::DEFAULT_FLASH_ATTN,
    };
    let model_t = RefModel::load(&theirs).unwrap();
    let trace_t = greedy(
        &mut RefContext::new(&model_t, &params).unwrap(),
        &prompt,
        32,
    )
    .unwrap();
    let model_o = RefModel::load(&ours).unwrap();
    let mut ctx_o = RefContext::new(&model_o, &params).unwrap();
    let trace_o = greedy(&mut ctx_o, &prompt, 32).unwrap();
    let forced = teacher_forced(&mut ctx_o, &trace_t.tokens, prompt.len()).unwrap();
    let worst = forced
        .iter()
        .zip(&trace_t.logits)
        .map(|(a, b)| bitnet::fixture::cosine(a, b))
        .fold(1.0, f64::min);
    eprintln!(
        "1bitllm tq2_0 in the reference, ours vs upstream's converter: worst cosine {worst:.8} \
         over {} positions; greedy tokens equal: {}",
        forced.len(),
        trace_o.tokens == trace_t.tokens
    );
    assert!(worst >= 0.9999, "{worst}");
    assert_eq!(trace_o.tokens, trace_t.tokens);
}
