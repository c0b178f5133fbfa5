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
