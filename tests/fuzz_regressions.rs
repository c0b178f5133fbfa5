//! Inputs the fuzz targets of fuzz/ found crashing, each reduced to a plain test beside its
//! fix (fuzz/README.md lists them with the target that found them).

use bitnet::sampling::{self, Candidates, TokenData};

fn cands(n: usize) -> Vec<TokenData> {
    (0..n as i32)
        .map(|id| TokenData {
            id,
            logit: id as f32 * 0.5,
            p: 0.0,
        })
        .collect()
}

/// capi target: DRY with a negative allowed_length, applied before any token was accepted, took
/// `0 - 1` as the last index of its (empty) window (overflow panic; out-of-bounds with
/// overflow checks off). Nothing seen means nothing repeats: the candidates stay as they are.
#[test]
fn dry_with_negative_allowed_length_and_no_history() {
    for allowed in [-1, -4, i32::MIN] {
        let mut s = sampling::dry_with_token_breakers(0.8, 1.75, allowed, 16, &[vec![1]]);
        let mut data = cands(8);
        let before = data.clone();
        s.apply(&mut Candidates::new(&mut data));
        assert_eq!(
            data.iter().map(|d| d.logit.to_bits()).collect::<Vec<_>>(),
            before.iter().map(|d| d.logit.to_bits()).collect::<Vec<_>>(),
            "allowed_length {allowed}"
        );
        // With history the sampler works as usual.
        for t in [3, 4, 3, 4, 3] {
            s.accept(t);
        }
        s.apply(&mut Candidates::new(&mut data));
    }
}

/// gguf target: a file whose `block_count` says 2^32 - 1 made Model::load reserve room for that many
/// layers before reading the first one (an allocation failure, which aborts the process). Now
/// it is refused, naming the first missing layer tensor.
#[test]
fn huge_block_count_is_refused_without_allocating() {
    use bitnet::gguf::writer::{GgufWriter, OwnedValue};
    use bitnet::model::Model;

    let (n_embd, n_vocab) = (32u64, 8u64);
    let mut w = GgufWriter::default();
    let arch = "bitnet-b1.58";
    w.kv("general.architecture", OwnedValue::str(arch));
    for (key, v) in [
        ("vocab_size", n_vocab),
        ("context_length", 64),
        ("embedding_length", n_embd),
        ("block_count", u32::MAX as u64),
        ("feed_forward_length", n_embd),
        ("attention.head_count", 2),
        ("attention.head_count_kv", 1),
    ] {
        w.kv(&format!("{arch}.{key}"), OwnedValue::U64(v));
    }
    w.kv(
        &format!("{arch}.attention.layer_norm_rms_epsilon"),
        OwnedValue::F32(1e-5),
    );
    w.tensor_f32(
        "token_embd.weight",
        &[n_embd, n_vocab],
        &vec![0.5; (n_embd * n_vocab) as usize],
    )
    .unwrap();
    w.tensor_f32("output_norm.weight", &[n_embd], &vec![1.0; n_embd as usize])
        .unwrap();
    let dir = std::env::temp_dir().join(format!("bitnet-fuzz-regr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("huge_block_count.gguf");
    w.write(&path).unwrap();
    let err = Model::load(&path)
        .err()
        .expect("a file without layers loaded");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(err.to_string().contains("blk.0."), "{err}");
}

/// grammar target: left recursion behind rules that only match empty text indirectly
/// (`"("*` and `ws ::= [ \t\n]*` are generated rules with an empty alternative, one level
/// down) was not detected, and expanding the stacks took minutes and gigabytes. It is refused
/// now; a nullable prefix before a non-recursive reference is still fine.
#[test]
fn left_recursion_behind_indirectly_empty_rules_is_refused() {
    let bad = "root ::= (expr \"=\" ws term \"\\n\")+\nexpr ::= term ([-+*/] term)*\n\
               term ::= ident | num | \"(\"* ws expr \")\" ws\nident ::= [a-z] [a-z0-9_]* ws\n\
               num ::= [0-9]+ ws\nws ::= [ \\t\\n]*\n";
    use bitnet::sampling::grammar::{self, GrammarVocab};
    let vocab = GrammarVocab::new((b'a'..=b'z').map(|c| vec![c]).collect(), &[]);
    let e =
        grammar::grammar(&vocab, bad, "root", None).expect_err("left-recursive grammar accepted");
    assert!(e.to_string().contains("left recursion"), "{e}");
    let fine = "root ::= ws \"(\"* ws item\nitem ::= [a-z]+\nws ::= [ ]*\n";
    assert!(grammar::grammar(&vocab, fine, "root", None).is_ok());
}

/// convert target: a tokenizer.model with one byte changed (piece `<0xF5>` became `<0xF6>`, a
/// second `<0xF6>`) was converted, and the GGUF written did not load ("token ... duplicates
/// token ..."; llama.cpp asserts distinct tokens too). The converter now refuses a vocabulary
/// with two equal tokens before writing anything, also when the equal pair comes from
/// tokenizer_config.json's added tokens.
#[test]
fn convert_refuses_a_vocabulary_with_two_equal_tokens() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convert");
    let cases: [(&str, &str, &[u8], &[u8]); 2] = [
        ("1bitllm", "tokenizer.model", b"<0xF5>", b"<0xF6>"),
        (
            "bitnet-2b4t",
            "tokenizer_config.json",
            b"\"<|start_header_id|>\"",
            b"\"<|begin_of_text|>\"",
        ),
    ];
    for (family, file, from, to) in cases {
        let dir = std::env::temp_dir().join(format!(
            "bitnet-fuzz-regr-dup-{family}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(fixtures.join(family)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let at = bytes
            .windows(from.len())
            .position(|w| w == from)
            .expect("the fixture holds the piece");
        let changed = [&bytes[..at], to, &bytes[at + from.len()..]].concat();
        std::fs::write(dir.join(file), changed).unwrap();
        let out = dir.join("out").join("model.gguf");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let err = bitnet::convert::convert(&dir, &out, None).expect_err("converted");
        let left = std::fs::read_dir(out.parent().unwrap()).unwrap().count();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            err.message.contains("same text as token"),
            "{family}: {err}"
        );
        assert_eq!(left, 0, "{family}: a failed conversion left files");
    }
}

/// convert target: a tokenizer.model whose BYTE piece `<0xAB>` was cut to `<0` (the piece's
/// and its message's lengths changed with it) was converted, and the GGUF written did not load
/// ("byte token ... is not of the form <0xNN>"; llama.cpp throws at load on it too). The
/// converter now refuses a BYTE piece it cannot read a byte from.
#[test]
fn convert_refuses_a_byte_piece_without_its_byte() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convert/1bitllm");
    let dir = std::env::temp_dir().join(format!("bitnet-fuzz-regr-byte-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("out")).unwrap();
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let bytes = std::fs::read(dir.join("tokenizer.model")).unwrap();
    // [0x0A, len, 0x0A, 0x06, "<0xAB>", ...]: field 1 (a piece message) whose field 1 is the text.
    let piece = b"\x0a\x06<0xAB>";
    let at = bytes
        .windows(piece.len())
        .position(|w| w == piece)
        .expect("the fixture holds the piece");
    assert_eq!(bytes[at - 2], 0x0a, "a piece message before the text");
    let mut changed = bytes[..at - 1].to_vec();
    changed.push(bytes[at - 1] - 4);
    changed.extend_from_slice(b"\x0a\x02<0");
    changed.extend_from_slice(&bytes[at + piece.len()..]);
    std::fs::write(dir.join("tokenizer.model"), changed).unwrap();
    let out = dir.join("out").join("model.gguf");
    let err = bitnet::convert::convert(&dir, &out, None).expect_err("converted");
    let left = std::fs::read_dir(dir.join("out")).unwrap().count();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(err.message.contains("BYTE type"), "{err}");
    assert_eq!(left, 0, "a failed conversion left files");
}
