//! Damaged real-shaped files: the generated models truncated and bit-flipped must never make the
//! reader panic, and the CLI answers bad files with one error line and a non-zero exit.

mod common;

use bitnet::gguf::{short_value, Gguf, MappedFile};
use common::*;

/// Parses `bytes`; whatever parses must be safe to walk (metadata, arrays, tensor slices).
fn parse_and_walk(bytes: &[u8]) -> bool {
    match Gguf::parse(bytes) {
        Ok(g) => {
            for (_, v) in g.metadata() {
                let _ = short_value(v);
            }
            for t in g.tensors() {
                assert_eq!(t.data.len() as u64, t.n_bytes);
            }
            true
        }
        Err(e) => {
            assert!(!e.message.is_empty() && !e.message.contains('\n'));
            false
        }
    }
}

#[test]
fn truncated_and_bit_flipped_models_never_panic() {
    let mut rng = SplitMix64(2024);
    for name in [
        "bitnet-spm-tq1_0.gguf",
        "bitnet-b1.58-i2_s.gguf",
        "formats.gguf",
    ] {
        let clean = std::fs::read(model(name)).unwrap();
        let g = Gguf::parse(&clean).unwrap();
        let header = g.data_offset as usize;
        let data_end = g
            .tensors()
            .iter()
            .map(|t| t.file_offset(&g) + t.n_bytes)
            .max()
            .unwrap();
        drop(g);

        // Truncation: every byte of the first 4 KiB, every tensor boundary, random points.
        let mut cuts: Vec<usize> = (0..4096.min(clean.len())).collect();
        cuts.extend((0..300).map(|_| rng.below(clean.len() as u64) as usize));
        cuts.extend((0..300).map(|_| rng.below(header as u64) as usize));
        for cut in cuts {
            let parsed = parse_and_walk(&clean[..cut]);
            assert!(
                !parsed || cut as u64 >= data_end,
                "{name} cut at {cut} parsed"
            );
        }

        // Bit flips in the header (where they matter), a few at a time.
        let mut bytes = clean.clone();
        for _ in 0..1500 {
            let flips: Vec<usize> = (0..1 + rng.below(3))
                .map(|_| rng.below(header as u64) as usize)
                .collect();
            let bits: Vec<u8> = flips.iter().map(|_| 1 << rng.below(8)).collect();
            for (&i, &b) in flips.iter().zip(&bits) {
                bytes[i] ^= b;
            }
            parse_and_walk(&bytes);
            for (&i, &b) in flips.iter().zip(&bits) {
                bytes[i] ^= b;
            }
        }
        assert_eq!(bytes, clean);
    }
}

#[test]
fn cli_reports_bad_files_in_one_line() {
    let dir = scratch("cli_bad_files");
    let clean = std::fs::read(model("bitnet-spm-tq2_0.gguf")).unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            clean[..clean.len() / 2].to_vec(),
            "runs past the end",
        ),
        ("empty", vec![], "truncated"),
        ("magic", [b"GGUX", &clean[4..]].concat(), "not a GGUF file"),
    ];
    let mut v4 = clean.clone();
    v4[4..8].copy_from_slice(&4u32.to_le_bytes());
    cases.push(("version4", v4, "GGUF version 4 is not supported"));
    let mut count = clean.clone();
    count[8..16].copy_from_slice(&(1u64 << 63).to_le_bytes());
    cases.push((
        "count",
        count,
        "tensor count 9223372036854775808 is impossible",
    ));

    for (case, bytes, expected) in cases {
        let path = dir.join(format!("{case}.gguf"));
        std::fs::write(&path, bytes).unwrap();
        for json in [false, true] {
            let mut args = vec!["inspect", path.to_str().unwrap()];
            if json {
                args.push("--json");
            }
            let out = bitnet(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{case}: {err}");
            assert!(out.stdout.is_empty(), "{case}: wrote to stdout");
            assert_eq!(err.lines().count(), 1, "{case}: {err}");
            assert!(err.starts_with("bitnet: error: "), "{case}: {err}");
            assert!(err.contains(expected), "{case}: {err}");
            assert!(
                err.contains(path.to_str().unwrap()),
                "{case}: error does not name the file"
            );
        }
    }

    let missing = bitnet(&["inspect", "/nonexistent/model.gguf"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot open /nonexistent"));

    let model = model("bitnet-spm-tq2_0.gguf");
    let no_tensor = bitnet(&[
        "inspect",
        model.to_str().unwrap(),
        "--dequant",
        "nope",
        "--out",
        "/dev/null",
    ]);
    assert!(String::from_utf8_lossy(&no_tensor.stderr).contains("no tensor named \"nope\""));
}

#[test]
fn inspect_text_lists_every_tensor() {
    let path = model("bitnet-b1.58-i2_s.gguf");
    let text = assert_ok("inspect", &bitnet(&["inspect", path.to_str().unwrap()]));
    let file = MappedFile::open(&path).unwrap();
    let g = file.gguf().unwrap();
    assert!(text.contains("architecture: bitnet-b1.58"));
    assert!(
        text.contains("no tokenizer.ggml.pre (llama.cpp falls back to 'default')"),
        "{text}"
    );
    assert!(text.contains("hyperparameters: bitnet-b1.58 (BitnetB158): 2 layers, n_embd 256"));
    for t in g.tensors() {
        let row = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(t.name));
        let row = row.unwrap_or_else(|| panic!("{} not listed", t.name));
        assert!(
            row.contains(t.ty.name()) && row.contains(&t.n_bytes.to_string()),
            "{row}"
        );
    }
}

/// A copy of `src` with `edit` applied to its metadata (key, value) list and tensors for
/// which `keep` is true.
fn edited_copy(
    src: &std::path::Path,
    dst: &std::path::Path,
    edit: &dyn Fn(&str) -> Option<bitnet::gguf::writer::OwnedValue>,
    keep: &dyn Fn(&str) -> bool,
) {
    use bitnet::gguf::writer::{GgufWriter, OwnedValue};
    let map = MappedFile::open(src).unwrap();
    let g = map.gguf().unwrap();
    let mut w = GgufWriter::default();
    for (k, v) in g.metadata() {
        w.kv(k, edit(k).unwrap_or_else(|| OwnedValue::from_value(v)));
    }
    for t in g.tensors().iter().filter(|t| keep(t.name)) {
        w.tensor(t.name, &t.dims, t.ty, t.data.to_vec()).unwrap();
    }
    w.write(dst).unwrap();
}

/// `qwen3.attention.key_length` or `value_length`.
fn head_dim_key(k: &str) -> bool {
    k.ends_with(".attention.key_length") || k.ends_with(".attention.value_length")
}

#[test]
fn hostile_qwen3_files_get_one_clear_error_each() {
    use bitnet::gguf::writer::OwnedValue;
    let dir = scratch("hostile_qwen3");
    let src = model("qwen3-q1_0.gguf");
    let none = |_: &str| None;
    let all = |_: &str| true;
    // (case, metadata edit, tensors kept, expected error)
    type Edit = Box<dyn Fn(&str) -> Option<OwnedValue>>;
    type Keep = Box<dyn Fn(&str) -> bool>;
    let cases: Vec<(&str, Edit, Keep, &str)> = vec![
        (
            "no_q_norm",
            Box::new(none),
            Box::new(|n: &str| n != "blk.1.attn_q_norm.weight"),
            "missing tensor blk.1.attn_q_norm.weight",
        ),
        (
            "head_dim_64",
            Box::new(|k: &str| {
                k.ends_with(".attention.key_length")
                    .then_some(OwnedValue::U32(64))
            }),
            Box::new(all),
            "qwen3.attention.value_length = 128 differs from qwen3.attention.key_length = 64",
        ),
        (
            "head_dim_64_both",
            Box::new(|k: &str| head_dim_key(k).then_some(OwnedValue::U32(64))),
            Box::new(all),
            "tensor blk.0.attn_q.weight has shape [256, 512], expected [256, 256]",
        ),
        (
            "head_dim_odd",
            Box::new(|k: &str| head_dim_key(k).then_some(OwnedValue::U32(127))),
            Box::new(all),
            "qwen3.attention.key_length = 127 must be even and positive",
        ),
    ];
    for (case, edit, keep, expected) in cases {
        let path = dir.join(format!("{case}.gguf"));
        edited_copy(&src, &path, &*edit, &*keep);
        let err = bitnet::model::Model::load(&path)
            .err()
            .unwrap_or_else(|| panic!("{case}: loaded"));
        assert!(err.message.contains(expected), "{case}: {}", err.message);
        assert!(!err.message.contains('\n'), "{case}: {}", err.message);
        let out = bitnet(&["run", "-m", path.to_str().unwrap(), "-p", "hi", "-n", "1"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        assert!(stderr.contains(expected), "{case}: {stderr}");
    }
}
