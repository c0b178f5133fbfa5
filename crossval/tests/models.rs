//! End to end on the tiny fixtures: a float-weight model within the float threshold, an
//! int8-activation model within the reference's self-noise floor, and the divergence canary
//! (ours on a copy with one ffn_down row negated must be reported divergent).

mod common;

use crossval::compare::{self, Class, Input, Options};
use crossval::suite::{self, SuiteOptions};

const N_PREDICT: usize = 32;

fn options(model: &str) -> Options {
    Options {
        model: common::models_dir().join(model),
        ref_model: None,
        input: Input::Prompt(suite::SUITE_PROMPT.to_string()),
        n_predict: N_PREDICT,
        threads: crossval::reference::DEFAULT_THREADS,
        flash_attn: crossval::reference::DEFAULT_FLASH_ATTN,
        floor_eps: compare::FLOOR_EPS,
        table: false,
    }
}

fn suite_options() -> SuiteOptions {
    SuiteOptions {
        models_dir: Some(common::models_dir()),
        threads: crossval::reference::DEFAULT_THREADS,
        flash_attn: crossval::reference::DEFAULT_FLASH_ATTN,
        n_predict: N_PREDICT,
        json: None,
    }
}

#[test]
fn float_model_matches_reference() {
    if !common::reference_available() {
        return;
    }
    let rep = compare::run(&options("bitnet-spm-f32.gguf")).unwrap();
    assert_eq!(rep.kind.class, Class::Float);
    assert!(rep.passed(), "{}", rep.summary_text());
}

#[test]
fn int8_model_within_noise_floor() {
    if !common::reference_available() {
        return;
    }
    let rep = compare::run(&options("bitnet-spm-tq2_0.gguf")).unwrap();
    assert_eq!(rep.kind.class, Class::Int8);
    let floor = rep.floor.as_ref().expect("int8 models get a noise floor");
    // The floor itself must be a small, nonzero perturbation.
    assert!(floor.summary.mean_kl > 0.0 && floor.summary.worst_cosine > 0.99);
    assert!(rep.passed(), "{}", rep.summary_text());
}

#[test]
fn canary_negated_row_is_divergent_float() {
    if !common::reference_available() {
        return;
    }
    let orig = common::models_dir().join("bitnet-spm-f32.gguf");
    let (rep, class) = suite::canary(&orig, &suite_options()).unwrap();
    assert_eq!(class, Class::Float);
    assert!(
        !rep.passed(),
        "negated row not detected:\n{}",
        rep.summary_text()
    );
}

#[test]
fn canary_negated_row_is_divergent_int8() {
    if !common::reference_available() {
        return;
    }
    let orig = common::models_dir().join("bitnet-spm-tq2_0.gguf");
    let (rep, class) = suite::canary(&orig, &suite_options()).unwrap();
    assert_eq!(class, Class::Int8);
    assert!(
        !rep.passed(),
        "negated row not detected:\n{}",
        rep.summary_text()
    );
}

#[test]
fn canary_change_is_visible_to_the_reference_too() {
    // The patched copy really differs: the reference on it vs on the original.
    if !common::reference_available() {
        return;
    }
    let orig = common::models_dir().join("bitnet-spm-f32.gguf");
    let tmp = compare::TempDir::new("test-canary").unwrap();
    let copy = tmp.0.join("negated.gguf");
    crossval::patch::negated_row_copy(&orig, &copy, suite::CANARY_TENSOR, 0).unwrap();
    let m = crossval::reference::RefModel::load(&orig).unwrap();
    let prompt = m.tokenize(suite::SUITE_PROMPT).unwrap();
    drop(m);
    let o = options("bitnet-spm-f32.gguf");
    let c = compare::ref_vs_ref(&orig, &copy, &prompt, 16, &o).unwrap();
    assert!(c.summary.worst_cosine < 0.999, "{:?}", c.summary);
}
