//! Op-level exact checks: our quantizers and dot products against ggml's CPU routines
//! (`ggml_get_type_traits_cpu`), bytes / f32 bits identical.

mod common;

use crossval::ops::{check_dot, check_quantizer, check_weight_format, OpResult};
use crossval::reference::types;

fn assert_exact(r: OpResult) {
    assert!(r.cases > 0, "{}: no cases ran", r.op);
    assert!(
        r.passed(),
        "{}: {} of {} cases differ from ggml:\n  {}",
        r.op,
        r.mismatches,
        r.cases,
        r.examples.join("\n  ")
    );
}

#[test]
fn quantize_q8_k_matches_ggml() {
    if common::reference_available() {
        assert_exact(check_quantizer(types::Q8_K, 11).unwrap());
    }
}

#[test]
fn quantize_q8_0_matches_ggml() {
    if common::reference_available() {
        assert_exact(check_quantizer(types::Q8_0, 12).unwrap());
    }
}

#[test]
fn dot_tq1_0_q8_k_matches_ggml() {
    if common::reference_available() {
        assert_exact(check_dot(types::TQ1_0, 13).unwrap());
    }
}

#[test]
fn dot_tq2_0_q8_k_matches_ggml() {
    if common::reference_available() {
        assert_exact(check_dot(types::TQ2_0, 14).unwrap());
    }
}

#[test]
fn dot_q6_k_q8_k_matches_ggml() {
    if common::reference_available() {
        assert_exact(check_dot(types::Q6_K, 15).unwrap());
    }
}

#[test]
fn dot_q8_0_q8_0_matches_ggml() {
    if common::reference_available() {
        assert_exact(check_dot(types::Q8_0, 16).unwrap());
    }
}

#[test]
fn q1_0_and_q2_0_formats_match_ggml() {
    if common::reference_available() {
        assert_exact(check_weight_format(types::Q1_0, 17).unwrap());
        assert_exact(check_weight_format(types::Q2_0, 18).unwrap());
    }
}

#[test]
fn dot_q1_0_q8_0_matches_ggml() {
    if common::reference_available() {
        assert_exact(check_dot(types::Q1_0, 19).unwrap());
    }
}

#[test]
fn dot_q2_0_q8_0_matches_ggml() {
    if common::reference_available() {
        assert_exact(check_dot(types::Q2_0, 20).unwrap());
    }
}

#[test]
fn q4_0_format_matches_ggml() {
    if common::reference_available() {
        assert_exact(check_weight_format(types::Q4_0, 23).unwrap());
    }
}

#[test]
fn dot_q4_0_q8_0_matches_ggml() {
    if common::reference_available() {
        assert_exact(check_dot(types::Q4_0, 24).unwrap());
    }
}
