//! Our GBNF grammar sampler (`bitnet::sampling::grammar`) against the reference's
//! `llama_sampler_init_grammar` on real vocabularies (the sdist's vocab-only
//! `ggml-vocab-llama-spm.gguf` and `ggml-vocab-llama-bpe.gguf`) and the sdist's own grammars:
//! both samplers walk the same token sequence (at each step a token both allow, chosen by a
//! seeded pseudo-random order) and after every `apply` over the whole vocabulary the two arrays
//! must be identical (same tokens set to -inf, other logits untouched). A `reset` at the end
//! must bring both back to the same first step.

mod common;

use std::ffi::CString;
use std::path::Path;
use std::time::{Duration, Instant};

use bitnet::gguf::MappedFile;
use bitnet::rng::SplitMix64;
use bitnet::sampling::grammar::{self, GrammarVocab};
use bitnet::sampling::{Candidates, Sampler, TokenData};
use bitnet::tokenizer::Tokenizer;
use crossval::reference::{ffi, load_library, RefLib};

/// One of the sdist's vocabularies on both sides: our tokenizer and grammar pieces, and the
/// reference's vocab-only model (`model`, to free once) and its vocab.
struct BothVocabs {
    tok: Tokenizer,
    gv: GrammarVocab,
    model: *mut ffi::llama_model,
    vocab: *const ffi::llama_vocab,
}

fn both_vocabs(lib: &RefLib, path: &Path) -> BothVocabs {
    let file = MappedFile::open(path).unwrap();
    let tok = Tokenizer::from_gguf(&file.gguf().unwrap()).unwrap();
    let gv = GrammarVocab::from_tokenizer(&tok);
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: default params are plain data; vocab_only loads no tensors.
    let model = unsafe {
        let mut mp = lib.api.llama_model_default_params();
        mp.vocab_only = true;
        lib.api.llama_model_load_from_file(cpath.as_ptr(), mp)
    };
    assert!(
        !model.is_null(),
        "the reference cannot load {}",
        path.display()
    );
    // SAFETY: live model.
    let vocab = unsafe { lib.api.llama_model_get_vocab(model) };
    BothVocabs {
        tok,
        gv,
        model,
        vocab,
    }
}

/// One reference sampler, freed on drop.
struct RefSampler {
    lib: &'static RefLib,
    ptr: *mut ffi::llama_sampler,
}

impl Drop for RefSampler {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from llama_sampler_init_grammar and is freed once, here.
        unsafe { self.lib.api.llama_sampler_free(self.ptr) };
    }
}

impl RefSampler {
    fn apply(&self, data: &mut [TokenData]) {
        let mut arr = ffi::llama_token_data_array {
            // TokenData is #[repr(C)] {i32, f32, f32}, the layout of llama_token_data.
            data: data.as_mut_ptr().cast::<ffi::llama_token_data>(),
            size: data.len(),
            selected: -1,
            sorted: false,
        };
        // SAFETY: `arr` describes `data`, alive and exclusively borrowed for the call.
        unsafe { self.lib.api.llama_sampler_apply(self.ptr, &mut arr) };
    }

    fn accept(&self, token: i32) {
        // SAFETY: live sampler; callers only accept tokens the grammar allowed (the reference
        // aborts on others).
        unsafe { self.lib.api.llama_sampler_accept(self.ptr, token) };
    }

    fn reset(&self) {
        // SAFETY: live sampler.
        unsafe { self.lib.api.llama_sampler_reset(self.ptr) };
    }
}

/// Logits of one step: seeded random values, so "untouched" is checked as well as "-inf".
fn candidates(rng: &mut SplitMix64, n_vocab: usize) -> Vec<TokenData> {
    (0..n_vocab as i32)
        .map(|id| TokenData {
            id,
            logit: (rng.below(2001) as f32 - 1000.0) / 100.0,
            p: 0.0,
        })
        .collect()
}

/// Applies both samplers to copies of `data`; asserts identical results; returns the ids left
/// finite.
fn compare_step(
    label: &str,
    ours: &mut dyn Sampler,
    theirs: &RefSampler,
    data: &[TokenData],
    tok: &Tokenizer,
    times: &mut [Duration; 2],
) -> Vec<i32> {
    let mut a = data.to_vec();
    let mut b = data.to_vec();
    let t0 = Instant::now();
    ours.apply(&mut Candidates::new(&mut a));
    let t1 = Instant::now();
    theirs.apply(&mut b);
    times[0] += t1 - t0;
    times[1] += t1.elapsed();
    let diff: Vec<String> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.id != y.id || x.logit.to_bits() != y.logit.to_bits())
        .take(8)
        .map(|(x, y)| {
            let piece = tok.token_to_piece(x.id as u32, 0, true).unwrap_or_default();
            format!(
                "id {} {:?}: ours {} reference {}",
                x.id,
                String::from_utf8_lossy(&piece),
                x.logit,
                y.logit
            )
        })
        .collect();
    assert!(
        diff.is_empty(),
        "{label}: arrays differ:\n{}",
        diff.join("\n")
    );
    a.iter()
        .filter(|d| d.logit.is_finite())
        .map(|d| d.id)
        .collect()
}

#[test]
fn grammar_sampler_matches_the_reference() {
    if !common::reference_available() {
        return;
    }
    let lib = load_library().expect("load the reference");
    let api = &lib.api;
    let root = common::llama_cpp_dir();
    let mut files: Vec<(String, String)> = [
        "json.gbnf",
        "json_arr.gbnf",
        "arithmetic.gbnf",
        "list.gbnf",
        "chess.gbnf",
        "english.gbnf",
        "japanese.gbnf",
        "c.gbnf",
    ]
    .iter()
    .map(|name| {
        let path = root.join("grammars").join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (name.to_string(), text)
    })
    .collect();
    // Ours: repetition bounds, negated classes, multi-byte ranges, `.`.
    files.push((
        "bounds".into(),
        "root ::= \"<\" [a-c]{2,4} \">\" ([^a-z<>\\n]{1,3} | \"é\"? [\\u3040-\\u30ff]+) .{0,2} \"\\n\"\n"
            .into(),
    ));

    let mut steps_compared = 0usize;
    let mut times = [Duration::ZERO; 2];
    let mut partial_utf8_steps = 0usize;
    for vocab_name in ["llama-spm", "llama-bpe"] {
        let path = root
            .join("models")
            .join(format!("ggml-vocab-{vocab_name}.gguf"));
        let BothVocabs {
            tok,
            gv,
            model,
            vocab,
        } = both_vocabs(lib, &path);
        let n_vocab = tok.n_vocab();
        // SAFETY: live vocab.
        assert_eq!(unsafe { api.llama_vocab_n_tokens(vocab) } as usize, n_vocab);
        let names = |text: &[u8]| -> Vec<i32> {
            tok.tokenize_bytes(text, false, true)
                .into_iter()
                .map(|t| t as i32)
                .collect()
        };

        for (gi, (name, text)) in files.iter().enumerate() {
            let label = format!("{vocab_name} {name}");
            let mut ours = grammar::grammar(&gv, text, "root", Some(&names))
                .unwrap_or_else(|e| panic!("{label}: {}", e.message));
            let cgrammar = CString::new(text.as_str()).unwrap();
            let croot = CString::new("root").unwrap();
            // SAFETY: live vocab, NUL-terminated strings alive for the call.
            let ptr =
                unsafe { api.llama_sampler_init_grammar(vocab, cgrammar.as_ptr(), croot.as_ptr()) };
            assert!(!ptr.is_null(), "{label}: reference refused the grammar");
            let theirs = RefSampler { lib, ptr };

            let mut rng = SplitMix64(0x6772_616d ^ ((gi as u64) << 8) ^ n_vocab as u64);
            let first = candidates(&mut rng, n_vocab);
            let first_allowed = compare_step(&label, &mut ours, &theirs, &first, &tok, &mut times);
            let mut allowed = first_allowed.clone();
            for step in 0..48 {
                let non_eog: Vec<i32> = allowed
                    .iter()
                    .copied()
                    .filter(|&t| !tok.is_eog(t as u32))
                    .collect();
                if non_eog.is_empty() {
                    break;
                }
                // Sometimes prefer a token that ends inside a UTF-8 sequence, to carry one.
                let partial: Vec<i32> = non_eog
                    .iter()
                    .copied()
                    .filter(|&t| {
                        let p = &gv.pieces[t as usize];
                        std::str::from_utf8(p).is_err()
                    })
                    .collect();
                let pool = if !partial.is_empty() && rng.below(3) == 0 {
                    &partial
                } else {
                    &non_eog
                };
                let token = pool[rng.below(pool.len() as u64) as usize];
                ours.accept(token);
                theirs.accept(token);
                assert!(
                    ours.failure().is_none(),
                    "{label}: we failed on an allowed token"
                );
                let data = candidates(&mut rng, n_vocab);
                allowed = compare_step(
                    &format!("{label} step {step}"),
                    &mut ours,
                    &theirs,
                    &data,
                    &tok,
                    &mut times,
                );
                steps_compared += 1;
                if std::str::from_utf8(&gv.pieces[token as usize]).is_err() {
                    partial_utf8_steps += 1;
                }
            }
            ours.reset();
            theirs.reset();
            let again = compare_step(
                &format!("{label} after reset"),
                &mut ours,
                &theirs,
                &first,
                &tok,
                &mut times,
            );
            assert_eq!(again, first_allowed, "{label}: reset");
        }
        // SAFETY: the samplers built from this vocab are gone; free the model once.
        unsafe { api.llama_model_free(model) };
    }
    eprintln!(
        "compared {steps_compared} steps ({partial_utf8_steps} after a partial UTF-8 token); \
         apply over the whole vocabulary took {:.1} s ours, {:.1} s reference",
        times[0].as_secs_f64(),
        times[1].as_secs_f64()
    );
    assert!(steps_compared > 500, "only {steps_compared} steps compared");
    assert!(
        partial_utf8_steps > 0,
        "no partial UTF-8 token was exercised"
    );
}

/// Grammars both sides must refuse (parse errors, left recursion, missing root).
#[test]
fn bad_grammars_are_refused_by_both() {
    if !common::reference_available() {
        return;
    }
    let lib = load_library().expect("load the reference");
    let api = &lib.api;
    let path = common::llama_cpp_dir().join("models/ggml-vocab-llama-spm.gguf");
    let BothVocabs {
        gv, model, vocab, ..
    } = both_vocabs(lib, &path);
    for (text, root) in [
        ("root ::= foo", "root"),
        ("root ::= (\"a\"", "root"),
        ("root ::= \"a\")", "root"),
        ("root ::= \"\\q\"", "root"),
        ("root ::= \"a\"{2001}", "root"),
        ("root ::= root \"a\" | \"a\"", "root"),
        ("start ::= \"a\"", "root"),
        ("root ::= <notatoken>", "root"),
        ("   \n", "root"),
    ] {
        let ours = grammar::grammar(&gv, text, root, None);
        let ctext = CString::new(text).unwrap();
        let croot = CString::new(root).unwrap();
        // SAFETY: live vocab, NUL-terminated strings alive for the call.
        let ptr = unsafe { api.llama_sampler_init_grammar(vocab, ctext.as_ptr(), croot.as_ptr()) };
        assert!(ptr.is_null(), "reference accepted {text:?}");
        assert!(ours.is_err(), "we accepted {text:?}");
    }
    // SAFETY: no sampler holds the vocab; free the model once.
    unsafe { api.llama_model_free(model) };
}

/// Lazy grammars (`llama_sampler_init_grammar_lazy_patterns`): free text until a trigger
/// pattern matches, then the JSON grammar from the pattern's group on (the tokens overlapping
/// it replayed, the first one cut), compared step by step with the reference.
#[test]
fn lazy_grammar_matches_the_reference() {
    if !common::reference_available() {
        return;
    }
    let lib = load_library().expect("load the reference");
    let api = &lib.api;
    let root = common::llama_cpp_dir();
    let json = std::fs::read_to_string(root.join("grammars/json.gbnf")).unwrap();
    let mut times = [Duration::ZERO; 2];
    let mut constrained_steps = 0;
    for vocab_name in ["llama-spm", "llama-bpe"] {
        let path = root
            .join("models")
            .join(format!("ggml-vocab-{vocab_name}.gguf"));
        let BothVocabs {
            tok,
            gv,
            model,
            vocab,
        } = both_vocabs(lib, &path);
        let n_vocab = tok.n_vocab();
        for (pi, pattern) in [
            "[\\s\\S]*?(\\{)[\\s\\S]*",
            "^[\\s\\S]*?(<json>)?[\\s\\S]*?(\\{\"name)[\\s\\S]*$",
            &grammar::trigger_words_pattern(&["{\""]),
        ]
        .iter()
        .enumerate()
        {
            let label = format!("{vocab_name} lazy {pattern}");
            let mut ours = grammar::grammar_lazy(&gv, &json, "root", &[pattern], &[], None)
                .unwrap_or_else(|e| panic!("{label}: {}", e.message));
            let cgrammar = CString::new(json.as_str()).unwrap();
            let croot = CString::new("root").unwrap();
            let cpattern = CString::new(*pattern).unwrap();
            let mut cpatterns = [cpattern.as_ptr()];
            // SAFETY: live vocab; strings and the pattern array alive for the call.
            let ptr = unsafe {
                api.llama_sampler_init_grammar_lazy_patterns(
                    vocab,
                    cgrammar.as_ptr(),
                    croot.as_ptr(),
                    cpatterns.as_mut_ptr(),
                    1,
                    std::ptr::null(),
                    0,
                )
            };
            assert!(!ptr.is_null(), "{label}: reference refused");
            let theirs = RefSampler { lib, ptr };
            let mut rng = SplitMix64(0x6c617a79 + pi as u64);
            let prefix = tok.tokenize("Sure, here it is: {\"name\": \"caf\u{e9}", false, false);
            let mut triggered_at = None;
            for (i, &t) in prefix.iter().enumerate() {
                ours.accept(t as i32);
                theirs.accept(t as i32);
                if triggered_at.is_none() && !ours.is_awaiting_trigger() {
                    triggered_at = Some(i);
                }
                let data = candidates(&mut rng, n_vocab);
                compare_step(
                    &format!("{label} prefix {i}"),
                    &mut ours,
                    &theirs,
                    &data,
                    &tok,
                    &mut times,
                );
            }
            assert!(triggered_at.is_some(), "{label}: never triggered");
            assert!(ours.failure().is_none(), "{label}: {:?}", ours.failure());
            let mut allowed: Vec<i32> = Vec::new();
            for step in 0..16 {
                if step > 0 {
                    let non_eog: Vec<i32> = allowed
                        .iter()
                        .copied()
                        .filter(|&t| !tok.is_eog(t as u32))
                        .collect();
                    if non_eog.is_empty() {
                        break;
                    }
                    let token = non_eog[rng.below(non_eog.len() as u64) as usize];
                    ours.accept(token);
                    theirs.accept(token);
                }
                let data = candidates(&mut rng, n_vocab);
                allowed = compare_step(
                    &format!("{label} step {step}"),
                    &mut ours,
                    &theirs,
                    &data,
                    &tok,
                    &mut times,
                );
                assert!(allowed.len() < n_vocab, "{label}: not constrained");
                constrained_steps += 1;
            }
        }
        // SAFETY: the samplers built from this vocab are gone; free the model once.
        unsafe { api.llama_model_free(model) };
    }
    assert!(constrained_steps > 50, "only {constrained_steps} steps");
}
