//! Reader tests: every value type round-trips through our writer, and hostile files fail with
//! a message naming the problem (never a panic, a hang or a huge allocation).

use super::writer::{GgufWriter, OwnedValue as V, TensorEntry};
use super::*;
use crate::rng::SplitMix64;

fn every_value_type() -> GgufWriter {
    let mut w = GgufWriter::default();
    w.kv("general.architecture", V::str("bitnet"))
        .kv("t.u8", V::U8(200))
        .kv("t.i8", V::I8(-100))
        .kv("t.u16", V::U16(60000))
        .kv("t.i16", V::I16(-30000))
        .kv("t.u32", V::U32(4_000_000_000))
        .kv("t.i32", V::I32(-2_000_000_000))
        .kv("t.f32", V::F32(1.5e-5))
        .kv("t.bool", V::Bool(true))
        .kv("t.string", V::String(b"h\xc3\xa9llo".to_vec()))
        .kv("t.u64", V::U64(u64::MAX))
        .kv("t.i64", V::I64(i64::MIN))
        .kv("t.f64", V::F64(-2.25))
        .kv(
            "t.arr.f32",
            V::Array(ValueType::F32, vec![V::F32(1.0), V::F32(-0.5)]),
        )
        .kv(
            "t.arr.str",
            V::Array(
                ValueType::String,
                vec![V::str("a"), V::str(""), V::str("ccc")],
            ),
        )
        .kv("t.arr.empty", V::Array(ValueType::I32, vec![]))
        .kv(
            "t.arr.nested",
            V::Array(
                ValueType::Array,
                vec![
                    V::Array(ValueType::U8, vec![V::U8(1), V::U8(2)]),
                    V::Array(ValueType::String, vec![V::str("x")]),
                ],
            ),
        );
    w.tensor_f32("norm.weight", &[4], &[1.0, 2.0, 3.0, 4.0])
        .unwrap();
    w.tensor("emb.weight", &[2, 3], GgmlType::F16, vec![0x3c; 12])
        .unwrap();
    w
}

#[test]
fn every_value_type_round_trips() {
    let bytes = every_value_type().to_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.get("t.u8"), Some(Value::U8(200)));
    assert_eq!(g.get("t.i8"), Some(Value::I8(-100)));
    assert_eq!(g.get("t.u16"), Some(Value::U16(60000)));
    assert_eq!(g.get("t.i16"), Some(Value::I16(-30000)));
    assert_eq!(g.get("t.u32"), Some(Value::U32(4_000_000_000)));
    assert_eq!(g.get("t.i32"), Some(Value::I32(-2_000_000_000)));
    assert_eq!(g.get("t.f32"), Some(Value::F32(1.5e-5)));
    assert_eq!(g.get("t.bool"), Some(Value::Bool(true)));
    assert_eq!(g.get_str("t.string").unwrap(), Some("héllo"));
    assert_eq!(g.get("t.u64"), Some(Value::U64(u64::MAX)));
    assert_eq!(g.get("t.i64"), Some(Value::I64(i64::MIN)));
    assert_eq!(g.get("t.f64"), Some(Value::F64(-2.25)));
    let a = g.get_array("t.arr.f32").unwrap().unwrap();
    assert_eq!(
        a.iter().collect::<Vec<_>>(),
        vec![Value::F32(1.0), Value::F32(-0.5)]
    );
    let s: Vec<&[u8]> = g
        .get_array("t.arr.str")
        .unwrap()
        .unwrap()
        .strings()
        .unwrap()
        .collect();
    assert_eq!(s, vec![&b"a"[..], b"", b"ccc"]);
    assert!(g.get_array("t.arr.empty").unwrap().unwrap().is_empty());
    let nested: Vec<Value> = g
        .get_array("t.arr.nested")
        .unwrap()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(nested.len(), 2);
    let inner: Vec<Value> = nested[0].as_array().unwrap().iter().collect();
    assert_eq!(inner, vec![Value::U8(1), Value::U8(2)]);
    assert_eq!(
        nested[1].as_array().unwrap().strings().unwrap().next(),
        Some(&b"x"[..])
    );

    // Typed accessors convert between integer widths, range-checked.
    assert_eq!(g.get_u32("t.u8").unwrap(), Some(200));
    assert!(g
        .get_u32("t.u64")
        .unwrap_err()
        .message
        .contains("does not fit in 32 bits"));
    assert!(g
        .get_u64("t.i8")
        .unwrap_err()
        .message
        .contains("non-negative"));
    assert!(g
        .get_str("t.u8")
        .unwrap_err()
        .message
        .contains("has type u8"));
    assert_eq!(g.get_u32("missing").unwrap(), None);

    let norm = g.tensor("norm.weight").unwrap();
    assert_eq!(
        (norm.ty, norm.n_elements, norm.n_bytes),
        (GgmlType::F32, 4, 16)
    );
    assert_eq!(
        norm.data,
        &[1f32, 2.0, 3.0, 4.0].map(f32::to_le_bytes).concat()[..]
    );
    let emb = g.tensor("emb.weight").unwrap();
    assert_eq!(
        (emb.dims.as_slice(), emb.n_rows(), emb.offset),
        (&[2, 3][..], 3, 32)
    );
    assert_eq!(g.data_offset % 32, 0);
    assert_eq!(emb.file_offset(&g), g.data_offset + 32);
}

#[test]
fn version_2_and_custom_alignment() {
    let mut w = every_value_type();
    w.version = 2;
    w.alignment = 64;
    w.kv("general.alignment", V::U32(64));
    let bytes = w.to_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!((g.version, g.alignment), (2, 64));
    assert_eq!(g.data_offset % 64, 0);
    assert_eq!(g.tensor("emb.weight").unwrap().offset, 64);
}

fn err(bytes: &[u8]) -> String {
    match Gguf::parse(bytes) {
        Ok(_) => panic!("a bad file parsed"),
        Err(e) => {
            assert!(!e.message.contains('\n'), "multi-line error: {}", e.message);
            e.message
        }
    }
}

fn with_tensor(dims: &[u64], type_id: u32, data_len: usize, offset: Option<u64>) -> Vec<u8> {
    let mut w = GgufWriter::default();
    w.kv("general.architecture", V::str("llama"));
    w.tensors.push(TensorEntry {
        name: "t".into(),
        dims: dims.to_vec(),
        type_id,
        data: vec![0; data_len],
        offset_override: offset,
    });
    w.to_bytes()
}

#[test]
fn truncated_at_every_byte() {
    let bytes = every_value_type().to_bytes();
    for len in 0..bytes.len() {
        let r = Gguf::parse(&bytes[..len]);
        // Cutting into the padding after the last tensor's data can still leave a valid file.
        if let Ok(g) = r {
            let last = g
                .tensors()
                .iter()
                .map(|t| t.file_offset(&g) + t.n_bytes)
                .max()
                .unwrap();
            assert!(len as u64 >= last, "truncated to {len} bytes yet parsed");
        }
    }
    assert!(err(&bytes[..3]).contains("truncated"));
    assert!(err(&bytes[..30]).contains("metadata count 17 is impossible"));
    assert!(err(&bytes[..bytes.len() - 40]).contains("runs past the end"));
}

#[test]
fn bad_magic_and_versions() {
    let mut bytes = every_value_type().to_bytes();
    bytes[0] = b'X';
    assert!(err(&bytes).contains("not a GGUF file"));
    for v in [0u32, 1, 4, u32::MAX] {
        let mut bytes = every_value_type().to_bytes();
        bytes[4..8].copy_from_slice(&v.to_le_bytes());
        assert!(err(&bytes).contains(&format!("GGUF version {v} is not supported")));
    }
}

#[test]
fn impossible_counts() {
    for (at, what) in [(8, "tensor count"), (16, "metadata count")] {
        for n in [1u64 << 63, u64::MAX, 1 << 40] {
            let mut bytes = every_value_type().to_bytes();
            bytes[at..at + 8].copy_from_slice(&n.to_le_bytes());
            assert!(err(&bytes).contains(&format!("{what} {n} is impossible")));
        }
    }
}

#[test]
fn lengths_past_the_end() {
    // The first key's length sits right after the 24-byte header.
    let mut bytes = every_value_type().to_bytes();
    bytes[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(err(&bytes).contains("runs past the end"));

    let mut w = GgufWriter::default();
    w.kv("k", V::str("value"));
    let mut bytes = w.to_bytes();
    let at = 24 + 8 + 1 + 4; // header, key length, "k", value type
    bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(err(&bytes).contains("metadata key k: metadata value: string length"));

    let mut w = GgufWriter::default();
    w.kv("a", V::Array(ValueType::U64, vec![V::U64(1)]));
    let mut bytes = w.to_bytes();
    let at = 24 + 8 + 1 + 4 + 4; // ... value type, element type
    bytes[at..at + 8].copy_from_slice(&(1u64 << 61).to_le_bytes());
    assert!(err(&bytes).contains("does not fit"));
    for n in [1u64 << 61, u64::MAX] {
        let mut w = GgufWriter::default();
        w.kv("a", V::Array(ValueType::String, vec![V::str("x")]));
        let mut bytes = w.to_bytes();
        bytes[at..at + 8].copy_from_slice(&n.to_le_bytes());
        assert!(err(&bytes).contains("does not fit"));
    }
}

#[test]
fn deep_nesting_is_refused() {
    let mut v = V::U8(1);
    for _ in 0..20 {
        v = V::Array(v.value_type(), vec![v]);
    }
    let mut w = GgufWriter::default();
    w.kv("deep", v);
    assert!(err(&w.to_bytes()).contains("nested deeper"));
}

#[test]
fn unknown_types() {
    let mut w = GgufWriter::default();
    w.kv("k", V::U8(1));
    let mut bytes = w.to_bytes();
    bytes[24 + 8 + 1..24 + 8 + 1 + 4].copy_from_slice(&13u32.to_le_bytes());
    assert!(err(&bytes).contains("metadata key k: unknown value type 13"));

    assert!(
        err(&with_tensor(&[32], 100, 32, None)).contains("unknown tensor type id 100 in tensor t")
    );
    assert!(err(&with_tensor(&[32], 37, 32, None)).contains("unknown tensor type id 37"));
    // 39 is MXFP4 upstream, but TL2 in a BitNet file.
    assert!(Gguf::parse(&with_tensor(&[32], 39, 17, None)).is_ok());
    let mut w = GgufWriter::default();
    w.kv("general.architecture", V::str("bitnet-b1.58"));
    w.tensors.push(TensorEntry {
        name: "blk.0.attn_q.weight".into(),
        dims: vec![128, 4],
        type_id: 39,
        data: vec![0; 64],
        offset_override: None,
    });
    assert!(err(&w.to_bytes())
        .ends_with("unsupported tensor type TL2 (id 39) in tensor blk.0.attn_q.weight"));
}

#[test]
fn bad_tensor_geometry() {
    assert!(err(&with_tensor(&[1 << 32, 1 << 32], 0, 4, None)).contains("overflow"));
    assert!(err(&with_tensor(&[u64::MAX], 0, 4, None)).contains("out of range"));
    assert!(err(&with_tensor(&[1 << 40], 0, 4, None)).contains("runs past the end"));
    assert!(
        err(&with_tensor(&[100], 8, 4, None)).contains("not a multiple of Q8_0's block size 32")
    );
    assert!(err(&with_tensor(&[64], 36, 48, None)).contains("block size 128"));
    assert!(err(&with_tensor(&[8], 0, 32, Some(8))).contains("not a multiple of the alignment"));
    assert!(err(&with_tensor(&[8], 0, 32, Some(1 << 62))).contains("runs past the end"));
    assert!(err(&with_tensor(&[8], 0, 32, Some(u64::MAX - 31))).contains("runs past the end"));
    assert!(err(&with_tensor(&[], 0, 0, None)).contains("0 dimensions"));
    assert!(err(&with_tensor(&[1, 1, 1, 1, 1], 0, 4, None)).contains("5 dimensions"));

    let mut w = GgufWriter::default();
    for (name, offset) in [("a", 0), ("b", 32)] {
        w.tensors.push(TensorEntry {
            name: name.into(),
            dims: vec![16],
            type_id: 0,
            data: vec![0; 64],
            offset_override: Some(offset),
        });
    }
    assert!(err(&w.to_bytes()).contains("tensors a and b overlap"));
    w.tensors[1].name = "a".into();
    w.tensors[1].offset_override = Some(64);
    assert!(err(&w.to_bytes()).contains("duplicate tensor name a"));
}

#[test]
fn bad_keys_and_alignment() {
    let mut w = GgufWriter::default();
    w.kv("k", V::U8(1)).kv("k", V::U8(2));
    assert!(err(&w.to_bytes()).contains("duplicate metadata key k"));

    let mut w = GgufWriter::default();
    w.kv("\u{e9}", V::U8(1));
    let mut bytes = w.to_bytes();
    bytes[24 + 8] = 0xff; // first byte of the 2-byte key
    assert!(err(&bytes).contains("metadata key 0 is not valid UTF-8"));

    for a in [V::U32(0), V::U32(48), V::U64(32), V::str("32")] {
        let mut w = GgufWriter::default();
        w.kv("general.alignment", a);
        assert!(err(&w.to_bytes()).contains("general.alignment must be a power-of-two u32"));
    }
}

#[test]
fn empty_and_tensorless_files() {
    assert!(err(&[]).contains("truncated"));
    let bytes = GgufWriter::default().to_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    assert!(g.tensors().is_empty() && g.metadata().is_empty());
}

#[test]
fn bit_flips_never_panic() {
    let clean = every_value_type().to_bytes();
    let mut rng = SplitMix64(7);
    for _ in 0..20_000 {
        let mut bytes = clean.clone();
        for _ in 0..1 + rng.below(4) {
            let i = (rng.below(bytes.len() as u64)) as usize;
            bytes[i] ^= 1 << rng.below(8);
        }
        if let Ok(g) = Gguf::parse(&bytes) {
            // Whatever parses must be safe to walk.
            for (_, v) in g.metadata() {
                let _ = short_value(v);
            }
            for t in g.tensors() {
                assert_eq!(t.data.len() as u64, t.n_bytes);
            }
        }
    }
}

#[test]
fn q1_0_and_q2_0_tensors() {
    // Well-formed: 2 rows of 128 (Q1_0: 2 blocks of 18 bytes; Q2_0: 4 blocks of 18 bytes).
    for (id, name, bytes) in [(41u32, "Q1_0", 36usize), (42, "Q2_0", 72)] {
        let file = with_tensor(&[128, 2], id, bytes, None);
        let g = Gguf::parse(&file).unwrap();
        let t = &g.tensors()[0];
        assert_eq!((t.ty.name(), t.n_bytes), (name, bytes as u64));
        // The same file cut one block short of its data: the byte count does not fit.
        let cut = g.data_offset as usize + bytes - 18;
        let e = err(&file[..cut]);
        assert!(e.contains("runs past the end"), "{name}: {e}");
    }
    // Rows that are not whole blocks: one clear error each.
    assert!(err(&with_tensor(&[64, 2], 41, 18, None))
        .ends_with("tensor t: row length 64 is not a multiple of Q1_0's block size 128"));
    assert!(err(&with_tensor(&[96], 42, 18, None))
        .ends_with("tensor t: row length 96 is not a multiple of Q2_0's block size 64"));
}

#[test]
fn q1_0_and_q2_0_tensors_written_and_read_back() {
    use crate::quant::{self, GgmlType};
    let mut rng = SplitMix64(41);
    let values: Vec<f32> = (0..128 * 3).map(|_| rng.normal()).collect();
    let mut w = GgufWriter::default();
    w.kv("general.architecture", V::str("llama"));
    let mut blobs = Vec::new();
    for (name, ty) in [("a", GgmlType::Q1_0), ("b", GgmlType::Q2_0)] {
        let mut data = vec![0u8; ty.tensor_bytes(values.len() as u64).unwrap() as usize];
        quant::quantize(ty, &values, &mut data).unwrap();
        w.tensor(name, &[128, 3], ty, data.clone()).unwrap();
        blobs.push(data);
    }
    // The writer refuses bytes that do not fit the shape, and rows of partial blocks.
    assert!(w
        .tensor("c", &[128, 3], GgmlType::Q2_0, vec![0; 18])
        .is_err());
    assert!(w.tensor("c", &[96], GgmlType::Q1_0, vec![0; 18]).is_err());
    let bytes = w.to_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    for (t, blob) in g.tensors().iter().zip(&blobs) {
        assert_eq!(t.data, &blob[..]);
        let mut back = vec![0f32; values.len()];
        quant::dequantize(t.ty, t.data, &mut back).unwrap();
        let again = crate::quant::testing::quantize_vec(t.ty, &back);
        // Dequantized values are a fixed point of the writer for Q2_0; Q1_0 keeps every sign.
        if t.ty == GgmlType::Q2_0 {
            assert_eq!(&again, blob);
        }
        for (x, y) in values.iter().zip(&back) {
            let same_sign = x.is_sign_negative() == y.is_sign_negative();
            assert!(
                same_sign || (t.ty == GgmlType::Q2_0 && *y == 0.0),
                "{}",
                t.name
            );
        }
    }
}
