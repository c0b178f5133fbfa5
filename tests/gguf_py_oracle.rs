//! Our reader, dequantizers and quantizers against gguf-py (llama.cpp's own Python GGUF code) on
//! the generated models: `bitnet inspect --json` agrees key by key and tensor by tensor, every
//! tensor gguf-py can dequantize comes out bit-identical, and our TQ1_0/TQ2_0/Q8_0 writers
//! produce gguf-py's bytes.

mod common;

use bitnet::gguf::MappedFile;
use bitnet::quant::{self, GgmlType};
use common::*;

/// The generated models gguf-py can read: the pinned gguf-py (0.19) has no Q1_0 / Q2_0 type
/// ids (41, 42) and refuses a whole file holding one (the qwen3 fixtures; those are checked
/// against the reference itself by crossval instead).
fn gguf_py_models() -> Vec<std::path::PathBuf> {
    let v: Vec<_> = models()
        .into_iter()
        .filter(|m| {
            let file = MappedFile::open(m).unwrap();
            let g = file.gguf().unwrap();
            g.tensors()
                .iter()
                .all(|t| !matches!(t.ty, GgmlType::Q1_0 | GgmlType::Q2_0))
        })
        .collect();
    assert!(
        v.len() >= 10,
        "expected the generated model set, found {v:?}"
    );
    v
}

#[test]
fn inspect_json_agrees_with_gguf_py_on_every_model() {
    let dir = scratch("inspect_json");
    for model in gguf_py_models() {
        let name = model.file_name().unwrap().to_string_lossy().into_owned();
        let json = assert_ok(
            &name,
            &bitnet(&["inspect", model.to_str().unwrap(), "--json"]),
        );
        let json_path = dir.join(format!("{name}.json"));
        std::fs::write(&json_path, json).unwrap();
        let out = oracle(&[
            "check-inspect",
            model.to_str().unwrap(),
            json_path.to_str().unwrap(),
        ]);
        let said = assert_ok(&format!("check-inspect {name}"), &out);
        assert!(said.starts_with("ok:"), "{name}: {said}");
    }
}

#[test]
fn dequantized_tensors_are_bit_identical_to_gguf_py() {
    for model in gguf_py_models() {
        let name = model.file_name().unwrap().to_string_lossy().into_owned();
        let dir = scratch(&format!("dequant_{name}"));
        let file = MappedFile::open(&model).unwrap();
        let g = file.gguf().unwrap();
        let mut written = 0;
        for t in g.tensors() {
            let out = dir.join(format!("{}.f32", t.name));
            let args = [
                "inspect",
                model.to_str().unwrap(),
                "--dequant",
                t.name,
                "--out",
            ];
            let run = bitnet(&[&args[..], &[out.to_str().unwrap()]].concat());
            if t.ty.can_dequantize() {
                assert_ok(&format!("{name} --dequant {}", t.name), &run);
                written += 1;
            } else {
                // Types we do not read are refused with the documented one-line error.
                assert!(!run.status.success());
                let err = String::from_utf8_lossy(&run.stderr);
                let expected = format!("unsupported tensor type {} (id {})", t.ty, t.ty.id());
                assert!(err.contains(&expected), "{name} {}: {err}", t.name);
                assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            }
        }
        assert!(written > 0, "{name}: no tensor dequantized");
        let out = oracle(&[
            "check-dequant",
            model.to_str().unwrap(),
            dir.to_str().unwrap(),
        ]);
        let said = assert_ok(&format!("check-dequant {name}"), &out);
        assert!(said.starts_with("ok:"), "{name}: {said}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The I2_S model and the F32 model hold the same ternary weights (the generator writes both
/// from the same codes and per-tensor scales, independently of our code): our I2_S reader must
/// reproduce the F32 values exactly.
#[test]
fn i2_s_weights_equal_the_f32_copy() {
    let i2s_file = MappedFile::open(model("bitnet-b1.58-i2_s.gguf")).unwrap();
    let f32_file = MappedFile::open(model("bitnet-b1.58-f32.gguf")).unwrap();
    let (i2s, f32g) = (i2s_file.gguf().unwrap(), f32_file.gguf().unwrap());
    let mut compared = 0;
    for t in i2s.tensors().iter().filter(|t| t.ty == GgmlType::I2_S) {
        let f = f32g.tensor(t.name).expect("same tensor names");
        assert_eq!((f.ty, &f.dims), (GgmlType::F32, &t.dims), "{}", t.name);
        let mut ours = vec![0f32; t.n_elements as usize];
        quant::dequantize(t.ty, t.data, &mut ours).unwrap();
        let mut reference = vec![0f32; f.n_elements as usize];
        quant::dequantize(f.ty, f.data, &mut reference).unwrap();
        assert!(
            ours.iter()
                .zip(&reference)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{}: I2_S differs from the F32 copy",
            t.name
        );
        compared += 1;
    }
    assert!(compared >= 7, "only {compared} I2_S tensors");
}

fn test_vectors() -> Vec<(String, Vec<f32>)> {
    let mut rng = SplitMix64(0x7e57);
    let n = 256 * 8;
    let mut cases = vec![
        ("zeros".to_string(), vec![0.0; n]),
        ("all -1".to_string(), vec![-1.0; n]),
        ("all +1".to_string(), vec![1.0; n]),
        (
            "big".to_string(),
            (0..n).map(|i| (i as f32 - 1000.0) * 3.0e4).collect(),
        ),
        (
            "tiny".to_string(),
            (0..n).map(|i| (i as f32 - 1000.0) * 1e-30).collect(),
        ),
    ];
    let ternary: Vec<f32> = (0..n)
        .map(|_| (rng.below(3) as f32 - 1.0) * 0.0731)
        .collect();
    cases.push(("ternary".into(), ternary));
    cases.push(("normal".into(), (0..n).map(|_| rng.normal()).collect()));
    // Values exactly halfway between quantization steps exercise the rounding rule.
    cases.push((
        "halves".into(),
        (0..n)
            .map(|i| [0.5, -0.5, 1.0, 0.25, -1.0][i % 5])
            .collect(),
    ));
    let mut mixed: Vec<f32> = (0..n).map(|_| rng.normal() * 0.01).collect();
    mixed[..256].fill(0.0);
    mixed[300] = -7.0;
    cases.push(("mixed blocks".into(), mixed));
    cases
}

#[test]
fn quantizers_write_gguf_py_bytes() {
    let dir = scratch("quantize");
    for ty in [GgmlType::TQ1_0, GgmlType::TQ2_0, GgmlType::Q8_0] {
        for (case, values) in test_vectors() {
            let input = dir.join("in.f32");
            let theirs_path = dir.join("out.bin");
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(&input, bytes).unwrap();
            let args = [
                ty.name(),
                input.to_str().unwrap(),
                theirs_path.to_str().unwrap(),
            ];
            assert_ok(
                "oracle quantize",
                &oracle(&[&["quantize"][..], &args[..]].concat()),
            );
            let theirs = std::fs::read(&theirs_path).unwrap();
            let mut ours = vec![0u8; ty.tensor_bytes(values.len() as u64).unwrap() as usize];
            quant::quantize(ty, &values, &mut ours).unwrap();
            assert_eq!(ours.len(), theirs.len(), "{ty} {case}");
            let first = ours.iter().zip(&theirs).position(|(a, b)| a != b);
            assert!(
                first.is_none(),
                "{ty} {case}: bytes differ from gguf-py at {first:?}"
            );
        }
    }
}
