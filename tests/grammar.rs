//! The GBNF grammar sampler (src/sampling/grammar.rs) on small hand-made vocabularies and on
//! the reference's own grammars (grammars/*.gbnf read from the sdist at test time).

mod common;

use bitnet::sampling::grammar::{self, GrammarSampler, GrammarVocab};
use bitnet::sampling::{greedy, Candidates, Chain, Sampler, TokenData};

/// Token ids of a test vocabulary built from string pieces; the last id is the EOG token.
struct Vocab {
    pieces: Vec<Vec<u8>>,
    eog: i32,
}

impl Vocab {
    fn new(pieces: &[&[u8]]) -> Vocab {
        let mut p: Vec<Vec<u8>> = pieces.iter().map(|s| s.to_vec()).collect();
        p.push(b"</s>".to_vec());
        let eog = p.len() as i32 - 1;
        Vocab { pieces: p, eog }
    }

    fn grammar_vocab(&self) -> GrammarVocab {
        GrammarVocab::new(self.pieces.clone(), &[self.eog])
    }

    fn id(&self, text: &[u8]) -> i32 {
        self.pieces
            .iter()
            .position(|p| p == text)
            .unwrap_or_else(|| panic!("no token {:?}", String::from_utf8_lossy(text)))
            as i32
    }

    fn sampler(&self, text: &str) -> GrammarSampler {
        grammar::grammar(&self.grammar_vocab(), text, "root", None).unwrap()
    }
}

/// Ids whose logit stays finite after `apply` over the whole vocabulary.
fn allowed(s: &mut GrammarSampler, n_vocab: usize) -> Vec<i32> {
    let mut data: Vec<TokenData> = (0..n_vocab as i32)
        .map(|id| TokenData {
            id,
            logit: 0.0,
            p: 0.0,
        })
        .collect();
    let mut cur = Candidates::new(&mut data);
    s.apply(&mut cur);
    cur.live()
        .iter()
        .filter(|d| d.logit.is_finite())
        .map(|d| d.id)
        .collect()
}

fn is_allowed(s: &mut GrammarSampler, v: &Vocab, token: i32) -> bool {
    allowed(s, v.pieces.len()).contains(&token)
}

/// Accepts `text` one byte-token at a time, asserting each is allowed before it is accepted.
fn feed_bytes(s: &mut GrammarSampler, v: &Vocab, text: &[u8]) {
    for &b in text {
        let t = v.id(&[b]);
        assert!(
            is_allowed(s, v, t),
            "byte {:?} not allowed at this point",
            b as char
        );
        s.accept(t);
        assert!(s.failure().is_none());
    }
}

fn ascii_vocab(extra: &[&[u8]]) -> Vocab {
    let bytes: Vec<[u8; 1]> = (0x20u8..0x7f).chain([b'\n', b'\t']).map(|b| [b]).collect();
    let mut pieces: Vec<&[u8]> = bytes.iter().map(|b| &b[..]).collect();
    pieces.extend_from_slice(extra);
    Vocab::new(&pieces)
}

fn sdist_grammar(name: &str) -> String {
    let path = common::fixtures()
        .sdist
        .join("vendor/llama.cpp/grammars")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_err(text: &str) -> String {
    let v = ascii_vocab(&[]);
    match grammar::grammar(&v.grammar_vocab(), text, "root", None) {
        Ok(_) => panic!("grammar {text:?} parsed"),
        Err(e) => e.message,
    }
}

#[test]
fn parse_errors_are_values() {
    assert!(parse_err("root ::= foo").contains("undefined rule 'foo'"));
    assert!(parse_err("root ::= (\"a\"").contains("expecting ')'"));
    assert!(parse_err("root ::= \"a\")").contains("expecting newline or end"));
    assert!(parse_err("root ::= \"\\q\"").contains("unknown escape"));
    assert!(parse_err("root ::= \"\\x4\"").contains("hex"));
    assert!(parse_err("root ::= \"abc").contains("end of input"));
    assert!(parse_err("root ::= [a-").contains("end of input"));
    assert!(parse_err("root = \"a\"").contains("::="));
    assert!(parse_err("root ::= *").contains("preceding item"));
    assert!(parse_err("root ::= \"a\"{2001}").contains("2000"));
    assert!(parse_err("root ::= \"a\"{3,1}").contains("below its minimum"));
    assert!(parse_err("root ::= \"a\"{99999999999999999999999}").contains("too large"));
    assert!(parse_err("root ::= (\"a\"{0,100}){0,100}").contains("2000"));
    assert!(parse_err("root ::= <foo>").contains("no vocab"));
    assert!(parse_err("root ::= <[99999999999]>").contains("too big"));
    assert!(parse_err("   # only a comment\n").contains("no rules"));
    // Left recursion, direct and through a rule with an empty alternative.
    assert!(parse_err("root ::= root \"a\" | \"a\"").contains("left recursion"));
    assert!(parse_err("root ::= e root \"x\" | \"a\"\ne ::= \"b\" | ").contains("left recursion"));
    // Missing root.
    let v = ascii_vocab(&[]);
    let e = grammar::grammar(&v.grammar_vocab(), "start ::= \"a\"", "root", None).unwrap_err();
    assert!(e.message.contains("'root'"), "{}", e.message);
    assert!(grammar::grammar(&v.grammar_vocab(), "start ::= \"a\"", "start", None).is_ok());
}

#[test]
fn bad_grammars_neither_crash_nor_blow_up() {
    // Deep nesting: an error, not a stack overflow.
    let deep = format!(
        "root ::= {}\"a\"{}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    assert!(parse_err(&deep).contains("nested deeper"));
    // A long chain of rules is fine (left-recursion check is iterative).
    let mut chain = String::from("root ::= r0\n");
    for i in 0..50_000 {
        chain += &format!("r{i} ::= r{} | \"x\"\n", i + 1);
    }
    chain += "r50000 ::= \"y\"\n";
    let v = ascii_vocab(&[]);
    assert!(grammar::grammar(&v.grammar_vocab(), &chain, "root", None).is_ok());
    // Element cap: a long literal repeated 2000 times, many times over.
    let lit = "a".repeat(5000);
    let big = format!("root ::= (\"{lit}\"{{2000}}) (\"{lit}\"{{2000}})\n");
    assert!(parse_err(&big).contains("elements"));
    // Random GBNF-flavoured bytes: every one is Ok or Err, none panics.
    let alphabet: &[u8] = b"root ::=\"\\[]^-()|*+?{},.<>!#x0123\n\tab";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..3000 {
        let mut text = String::from("root ::= ");
        for _ in 0..24 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(alphabet[(state % alphabet.len() as u64) as usize] as char);
        }
        if let Ok(mut s) = grammar::grammar(&v.grammar_vocab(), &text, "root", None) {
            let t = v.id(b"a");
            allowed(&mut s, v.pieces.len());
            s.accept(t);
            allowed(&mut s, v.pieces.len());
        }
    }
}

#[test]
fn empty_grammar_constrains_nothing() {
    let v = ascii_vocab(&[]);
    let mut s = grammar::grammar(&v.grammar_vocab(), "", "root", None).unwrap();
    assert!(s.is_empty());
    assert_eq!(allowed(&mut s, v.pieces.len()).len(), v.pieces.len());
    s.accept(3);
    assert_eq!(allowed(&mut s, v.pieces.len()).len(), v.pieces.len());
}

#[test]
fn arithmetic_grammar_from_the_sdist() {
    // root ::= (expr "=" ws term "\n")+ ; terms are identifiers, numbers, parenthesised exprs.
    let v = ascii_vocab(&[b"12", b"+(", b"1+", b"", b"\x00x", b"=7\n"]);
    let mut s = v.sampler(&sdist_grammar("arithmetic.gbnf"));
    let first = allowed(&mut s, v.pieces.len());
    for ok in [&b"1"[..], b"9", b"(", b"12", b"1+", b"x"] {
        assert!(
            first.contains(&v.id(ok)),
            "{:?}",
            String::from_utf8_lossy(ok)
        );
    }
    for bad in [&b"+"[..], b")", b"=", b"X", b"_", b"", b"\x00x", b"+("] {
        assert!(
            !first.contains(&v.id(bad)),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(!first.contains(&v.eog));
    s.accept(v.id(b"12"));
    assert!(!is_allowed(&mut s, &v, v.eog), "needs '= term'");
    s.accept(v.id(b"+("));
    feed_bytes(&mut s, &v, b"x_1*4 -5");
    assert!(!is_allowed(&mut s, &v, v.id(b"=")), "open paren");
    feed_bytes(&mut s, &v, b")");
    assert!(!is_allowed(&mut s, &v, v.id(b")")), "parens balanced");
    assert!(is_allowed(&mut s, &v, v.id(b"=7\n")));
    s.accept(v.id(b"=7\n"));
    assert!(is_allowed(&mut s, &v, v.eog));
    assert!(
        is_allowed(&mut s, &v, v.id(b"y")),
        "another line may follow"
    );
    s.accept(v.eog);
    assert!(s.failure().is_none());
}

#[test]
fn json_grammar_from_the_sdist() {
    let v = ascii_vocab(&[b"{\"", b"\":", b"\"}", b"true", b"nul", b"\xc3\xa9"]);
    let mut s = v.sampler(&sdist_grammar("json.gbnf"));
    let first = allowed(&mut s, v.pieces.len());
    assert!(first.contains(&v.id(b"{")) && first.contains(&v.id(b"{\"")));
    assert!(!first.contains(&v.id(b"[")), "root is an object");
    assert!(!first.contains(&v.id(b"true")));
    s.accept(v.id(b"{\""));
    feed_bytes(&mut s, &v, b"k");
    s.accept(v.id(b"\xc3\xa9")); // é inside a string
    s.accept(v.id(b"\":"));
    feed_bytes(&mut s, &v, b" [1.5e3, ");
    assert!(is_allowed(&mut s, &v, v.id(b"true")));
    assert!(is_allowed(&mut s, &v, v.id(b"nul")));
    assert!(!is_allowed(&mut s, &v, v.id(b"]")), "no trailing comma");
    s.accept(v.id(b"nul"));
    let after_nul = allowed(&mut s, v.pieces.len());
    assert_eq!(after_nul, vec![v.id(b"l")], "only 'l' completes null");
    feed_bytes(&mut s, &v, b"l], \"s\": \"a\\n\\u00e9\"");
    assert!(!is_allowed(&mut s, &v, v.eog));
    feed_bytes(&mut s, &v, b"}");
    assert!(is_allowed(&mut s, &v, v.eog));
    assert!(s.is_complete());
}

#[test]
fn repetition_bounds() {
    let v = ascii_vocab(&[b"aa"]);
    let a = v.id(b"a");
    for (text, min, max) in [
        ("root ::= \"a\"{2,4}", 2, Some(4)),
        ("root ::= \"a\"{3}", 3, Some(3)),
        ("root ::= \"a\"{2,}", 2, None),
        ("root ::= \"a\"?", 0, Some(1)),
        ("root ::= \"a\"*", 0, None),
        ("root ::= \"a\"+", 1, None),
        ("root ::= [a]{0,2}", 0, Some(2)),
        ("root ::= (\"a\"){1,3}", 1, Some(3)),
    ] {
        let mut s = v.sampler(text);
        for n in 0..7 {
            let eog_ok = n >= min && max.is_none_or(|m| n <= m);
            assert_eq!(
                is_allowed(&mut s, &v, v.eog),
                eog_ok,
                "{text}: EOG after {n}"
            );
            let more_ok = max.is_none_or(|m| n < m);
            assert_eq!(is_allowed(&mut s, &v, a), more_ok, "{text}: 'a' after {n}");
            assert_eq!(
                is_allowed(&mut s, &v, v.id(b"aa")),
                max.is_none_or(|m| n + 2 <= m),
                "{text}: 'aa' after {n}"
            );
            if !more_ok {
                break;
            }
            s.accept(a);
        }
    }
}

#[test]
fn utf8_split_across_tokens() {
    // é = C3 A9; ア = E3 82 A2, ン = E3 83 B3; 中 = E4 B8 AD.
    let v = ascii_vocab(&[
        b"\xc3",
        b"\xa9",
        b"\xaa",
        b"\xe3",
        b"\xe3\x82",
        b"\xa2",
        b"\xe4",
        b"\xc3\xa9",
        b"\x82\xa2",
        b"\xff",
    ]);
    let mut s = v.sampler("root ::= \"é\" [ア-ン]+");
    let first = allowed(&mut s, v.pieces.len());
    assert!(first.contains(&v.id(b"\xc3")), "lead byte of é");
    assert!(first.contains(&v.id(b"\xc3\xa9")));
    for bad in [&b"\xe3"[..], b"\xa9", b"\xe4", b"\xff", b"e"] {
        assert!(!first.contains(&v.id(bad)), "{bad:x?}");
    }
    s.accept(v.id(b"\xc3"));
    let mid = allowed(&mut s, v.pieces.len());
    assert!(mid.contains(&v.id(b"\xa9")));
    assert!(!mid.contains(&v.id(b"\xaa")), "C3 AA is ê, not é");
    assert!(
        !mid.contains(&v.id(b"a")),
        "a partial sequence must continue"
    );
    s.accept(v.id(b"\xa9"));
    assert!(!is_allowed(&mut s, &v, v.eog), "one katakana at least");
    assert!(is_allowed(&mut s, &v, v.id(b"\xe3")));
    assert!(is_allowed(&mut s, &v, v.id(b"\xe3\x82")));
    assert!(
        !is_allowed(&mut s, &v, v.id(b"\xe4")),
        "U+4000.. is outside ア-ン"
    );
    s.accept(v.id(b"\xe3"));
    assert!(is_allowed(&mut s, &v, v.id(b"\x82\xa2")));
    s.accept(v.id(b"\x82\xa2"));
    assert!(is_allowed(&mut s, &v, v.eog));
    assert!(s.failure().is_none());
}

#[test]
fn eog_only_when_complete_and_impossible_tokens_fail_cleanly() {
    let v = ascii_vocab(&[b"yes", b"no"]);
    let mut s = v.sampler("root ::= \"yes\" | \"no\"");
    assert_eq!(
        allowed(&mut s, v.pieces.len()),
        vec![v.id(b"n"), v.id(b"y"), v.id(b"yes"), v.id(b"no")]
    );
    let mut done = s.clone();
    done.accept(v.id(b"no"));
    assert_eq!(allowed(&mut done, v.pieces.len()), vec![v.eog]);
    done.accept(v.eog);
    assert!(done.failure().is_none(), "EOG where the grammar may end");

    // Accepting a token the grammar cannot take: failed state, only EOG allowed, reset recovers.
    s.accept(v.id(b"x"));
    assert!(s.failure().unwrap().contains("cannot continue"));
    assert_eq!(allowed(&mut s, v.pieces.len()), vec![v.eog]);
    s.reset();
    assert!(s.failure().is_none());
    assert!(is_allowed(&mut s, &v, v.id(b"yes")));
    // EOG before the grammar can end: also the failed state (the reference aborts).
    s.accept(v.eog);
    assert!(s.failure().unwrap().contains("end-of-generation"));
}

#[test]
fn token_references() {
    let v = ascii_vocab(&[b"<tool>", b"<end>"]);
    let tool = v.id(b"<tool>");
    let end = v.id(b"<end>");
    let text = format!("root ::= <[{tool}]> [a-z]+ !<[{end}]> <[{end}]>");
    let mut s = v.sampler(&text);
    assert_eq!(allowed(&mut s, v.pieces.len()), vec![tool]);
    s.accept(tool);
    feed_bytes(&mut s, &v, b"a");
    // [a-z]+ may continue, or any token but <end> (here: '1') for the !<[end]> element.
    assert!(is_allowed(&mut s, &v, v.id(b"1")));
    assert!(!is_allowed(&mut s, &v, end));
    s.accept(v.id(b"1"));
    assert_eq!(allowed(&mut s, v.pieces.len()), vec![end]);
    s.accept(end);
    assert!(s.is_complete());

    // <name> references resolve through the caller's tokenizer.
    let names = |text: &[u8]| -> Vec<i32> {
        if text == b"<tool>" {
            vec![tool]
        } else {
            vec![1, 2]
        }
    };
    let gv = v.grammar_vocab();
    let mut s = grammar::grammar(&gv, "root ::= <tool> \"x\"", "root", Some(&names)).unwrap();
    assert_eq!(allowed(&mut s, v.pieces.len()), vec![tool]);
    let e = grammar::grammar(&gv, "root ::= <other>", "root", Some(&names)).unwrap_err();
    assert!(e.message.contains("exactly one token"));
}

#[test]
fn lazy_grammar_waits_for_its_trigger() {
    let v = ascii_vocab(&[b"<tool>", b"{\"", b"hello "]);
    let gv = v.grammar_vocab();
    let g = "root ::= \"<tool>\" [0-9]+";
    // Pattern trigger: free text until "<tool>" appears, then constrained from the group on.
    let mut s =
        grammar::grammar_lazy(&gv, g, "root", &["[\\s\\S]*?(<tool>)[\\s\\S]*"], &[], None).unwrap();
    assert!(s.is_awaiting_trigger());
    assert_eq!(allowed(&mut s, v.pieces.len()).len(), v.pieces.len());
    s.accept(v.id(b"hello "));
    s.accept(v.id(b"<"));
    feed_lazy(&mut s, &v, b"tool");
    assert!(s.is_awaiting_trigger());
    s.accept(v.id(b">"));
    assert!(!s.is_awaiting_trigger(), "triggered");
    assert!(s.failure().is_none(), "{:?}", s.failure());
    assert!(is_allowed(&mut s, &v, v.id(b"7")));
    assert!(!is_allowed(&mut s, &v, v.id(b"x")));
    s.reset();
    assert!(s.is_awaiting_trigger());

    // Token trigger: the trigger token itself is fed to the grammar.
    let tool = v.id(b"<tool>");
    let mut s = grammar::grammar_lazy(&gv, g, "root", &[], &[tool], None).unwrap();
    s.accept(v.id(b"x"));
    assert!(s.is_awaiting_trigger());
    s.accept(tool);
    assert!(!s.is_awaiting_trigger());
    assert!(is_allowed(&mut s, &v, v.id(b"3")));
    assert!(!is_allowed(&mut s, &v, v.eog));

    // The deprecated trigger-words form.
    let p = grammar::trigger_words_pattern(&["<tool>", "a.b"]);
    assert_eq!(p, "[\\s\\S]*?(<tool>|a\\.b)[\\s\\S]*");
    assert!(grammar::grammar_lazy(&gv, g, "root", &["(unclosed"], &[], None).is_err());
}

fn feed_lazy(s: &mut GrammarSampler, v: &Vocab, text: &[u8]) {
    for &b in text {
        s.accept(v.id(&[b]));
    }
}

#[test]
fn in_a_chain_the_grammar_decides_greedy() {
    let v = ascii_vocab(&[b"yes", b"no"]);
    let s = v.sampler("root ::= \"yes\" | \"no\"");
    let mut chain = Chain::new().with(Box::new(s)).with(greedy());
    let mut logits = vec![0.0f32; v.pieces.len()];
    logits[v.id(b"x") as usize] = 10.0; // most likely but forbidden
    logits[v.id(b"no") as usize] = 5.0;
    logits[v.id(b"yes") as usize] = 4.0;
    assert_eq!(chain.sample(&logits), Some(v.id(b"no")));
    logits[v.eog as usize] = 1.0;
    assert_eq!(chain.sample(&logits), Some(v.eog));
    // clone_box gives an independent copy.
    let copy = chain.clone();
    chain.reset();
    let mut copy = copy;
    assert_eq!(copy.sample(&logits), Some(v.eog));
    assert_eq!(chain.sample(&logits), Some(v.id(b"no")));
}

/// A real vocabulary (the sdist's llama-spm test vocab): the tokens of a JSON document are
/// each allowed in turn, end-of-generation only at the end, and multi-token pieces with a
/// leading space ("▁{" rendered " {") are refused where the grammar has no room for a space.
#[test]
fn json_on_a_real_vocabulary() {
    use bitnet::gguf::MappedFile;
    use bitnet::tokenizer::Tokenizer;
    let file = MappedFile::open(common::sdist_vocab("llama-spm")).unwrap();
    let tok = Tokenizer::from_gguf(&file.gguf().unwrap()).unwrap();
    let gv = GrammarVocab::from_tokenizer(&tok);
    let n_vocab = tok.n_vocab();
    let eos = tok.eos().unwrap() as i32;
    let mut s = grammar::grammar(&gv, &sdist_grammar("json.gbnf"), "root", None).unwrap();
    let first = allowed(&mut s, n_vocab);
    assert!(!first.contains(&eos));
    assert!(
        first
            .iter()
            .all(|&t| gv.pieces[t as usize].first() == Some(&b'{')),
        "an object must start with '{{'"
    );
    let doc = "{\"name\": \"caf\u{e9} \u{65e5}\u{672c}\", \"n\": [1, 2.5e3, true, null]}";
    // The SPM tokenizer adds a leading space; take the document's tokens without it.
    let ids: Vec<i32> = tok
        .tokenize_bytes(doc.as_bytes(), false, false)
        .into_iter()
        .map(|t| t as i32)
        .collect();
    let text: Vec<u8> = ids
        .iter()
        .flat_map(|&t| gv.pieces[t as usize].clone())
        .collect();
    let skip = usize::from(text.first() == Some(&b' '));
    assert_eq!(&text[skip..], doc.as_bytes());
    let mut ids = ids;
    if skip == 1 {
        // Replace the first token (" {..." here) by the token of the same text without the
        // space, so the document starts as the grammar wants.
        let want = &gv.pieces[ids[0] as usize][1..];
        assert_eq!(want.first(), Some(&b'{'));
        ids[0] = gv.pieces.iter().position(|p| p == want).unwrap() as i32;
    }
    for &t in &ids {
        let now = allowed(&mut s, n_vocab);
        assert!(
            now.contains(&t),
            "token {t} {:?} refused",
            String::from_utf8_lossy(&gv.pieces[t as usize])
        );
        assert!(!now.contains(&eos));
        s.accept(t);
    }
    assert!(allowed(&mut s, n_vocab).contains(&eos));
    assert!(s.is_complete());
}
