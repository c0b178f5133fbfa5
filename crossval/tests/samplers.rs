//! Our samplers (`bitnet::sampling`) against the reference's `llama_sampler_*` on the same
//! random candidate arrays: after every apply, the same `selected`, `size`, `sorted`, the same
//! start of the array (XTC moves it) and bit-identical candidates (id, logit, p), over many
//! seeds, sizes and logit shapes (ties, -inf, all equal, beyond the bucket-sort range).
//! Stateful samplers (dist, XTC, mirostat, penalties, DRY, chains) are compared step after
//! step with the same accepted tokens.

mod common;

use std::ffi::{CStr, CString};

use bitnet::gguf::MappedFile;
use bitnet::rng::SplitMix64;
use bitnet::sampling::{self, Candidates, Chain, Sampler, TokenData, DEFAULT_SEED};
use bitnet::tokenizer::Tokenizer;
use crossval::reference::{ffi, load_library, RefLib};

/// One reference sampler, freed on drop.
struct RefSampler {
    lib: &'static RefLib,
    ptr: *mut ffi::llama_sampler,
}

impl Drop for RefSampler {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from a llama_sampler_init_* call and is freed once, here.
        unsafe { self.lib.api.llama_sampler_free(self.ptr) };
    }
}

/// What an apply left besides the array contents.
#[derive(Debug, PartialEq)]
struct Outcome {
    offset: usize,
    size: usize,
    selected: i64,
    sorted: bool,
}

impl RefSampler {
    fn new(lib: &'static RefLib, ptr: *mut ffi::llama_sampler) -> RefSampler {
        assert!(!ptr.is_null(), "reference returned no sampler");
        RefSampler { lib, ptr }
    }

    fn apply(&self, data: &mut [TokenData], sorted: bool) -> Outcome {
        let base = data.as_mut_ptr();
        let mut arr = ffi::llama_token_data_array {
            // TokenData is #[repr(C)] {i32, f32, f32}, the layout of llama_token_data.
            data: base.cast::<ffi::llama_token_data>(),
            size: data.len(),
            selected: -1,
            sorted,
        };
        // SAFETY: `arr` describes `data`, alive and exclusively borrowed for the call.
        unsafe { self.lib.api.llama_sampler_apply(self.ptr, &mut arr) };
        let offset = (arr.data as usize - base as usize) / std::mem::size_of::<TokenData>();
        Outcome {
            offset,
            size: arr.size,
            selected: arr.selected,
            sorted: arr.sorted,
        }
    }

    fn accept(&self, token: i32) {
        // SAFETY: live sampler.
        unsafe { self.lib.api.llama_sampler_accept(self.ptr, token) };
    }

    fn reset(&self) {
        // SAFETY: live sampler.
        unsafe { self.lib.api.llama_sampler_reset(self.ptr) };
    }

    fn name(&self) -> String {
        // SAFETY: live sampler; the name is a NUL-terminated string it owns.
        unsafe { CStr::from_ptr(self.lib.api.llama_sampler_name(self.ptr)) }
            .to_string_lossy()
            .into_owned()
    }

    fn seed(&self) -> u32 {
        // SAFETY: live sampler.
        unsafe { self.lib.api.llama_sampler_get_seed(self.ptr) }
    }
}

fn ours_apply(s: &mut dyn Sampler, data: &mut [TokenData], sorted: bool) -> Outcome {
    let base = data.as_ptr() as usize;
    let size = data.len();
    let mut cur = Candidates {
        data,
        size,
        selected: -1,
        sorted,
    };
    s.apply(&mut cur);
    Outcome {
        offset: (cur.data.as_ptr() as usize - base) / std::mem::size_of::<TokenData>(),
        size: cur.size,
        selected: cur.selected,
        sorted: cur.sorted,
    }
}

fn bits(d: &[TokenData]) -> Vec<(i32, u32, u32)> {
    d.iter()
        .map(|t| (t.id, t.logit.to_bits(), t.p.to_bits()))
        .collect()
}

/// Applies both to copies of `data`; asserts identical results; returns ours (for chaining).
fn check(
    label: &str,
    ours: &mut dyn Sampler,
    theirs: &RefSampler,
    data: &[TokenData],
    sorted: bool,
) -> (Outcome, Vec<TokenData>) {
    let mut a = data.to_vec();
    let mut b = data.to_vec();
    let oa = ours_apply(ours, &mut a, sorted);
    let ob = theirs.apply(&mut b, sorted);
    assert_eq!(oa, ob, "{label}: outcome differs (n = {})", data.len());
    if bits(&a) != bits(&b) {
        let first = (0..a.len())
            .find(|&i| bits(&a[i..=i]) != bits(&b[i..=i]))
            .unwrap();
        panic!(
            "{label}: candidates differ (n = {}) first at {first}: ours {:?} reference {:?}",
            data.len(),
            a[first],
            b[first]
        );
    }
    (oa, a)
}

/// Logit shapes: 0 normal(3), 1 normal(0.5), 2 integers (many ties), 3 normal(10) with 10%
/// -inf, 4 all equal, 5 normal(30) (beyond the bucket range), 6 tiny spread.
fn random_candidates(
    rng: &mut SplitMix64,
    n: usize,
    shape: u64,
    shuffle_ids: bool,
) -> Vec<TokenData> {
    let mut v: Vec<TokenData> = (0..n)
        .map(|i| {
            let x = rng.normal();
            let logit = match shape {
                0 => x * 3.0,
                1 => x * 0.5,
                2 => (x * 2.0).round(),
                3 => {
                    if rng.below(10) == 0 {
                        f32::NEG_INFINITY
                    } else {
                        x * 10.0
                    }
                }
                4 => 1.25,
                5 => x * 30.0,
                _ => 5.0 + x * 1e-4,
            };
            TokenData {
                id: i as i32,
                logit,
                p: 0.0,
            }
        })
        .collect();
    if shuffle_ids {
        for i in (1..v.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
    v
}

const SIZES: &[usize] = &[1, 2, 3, 10, 17, 64, 129, 300, 1025, 3000];
const SHAPES: u64 = 7;

fn lib() -> Option<&'static RefLib> {
    if !common::reference_available() {
        return None;
    }
    Some(load_library().expect("load the reference"))
}

/// Runs one stateless sampler configuration over every size and shape, a few seeds each.
fn sweep(
    lib: &'static RefLib,
    label: &str,
    make_ours: &dyn Fn() -> Box<dyn Sampler>,
    make_ref: &dyn Fn() -> *mut ffi::llama_sampler,
) {
    let mut ours = make_ours();
    let theirs = RefSampler::new(lib, make_ref());
    assert_eq!(ours.name(), theirs.name(), "{label}: name");
    let mut rng = SplitMix64(label.len() as u64 * 7919 + 1);
    for &n in SIZES {
        for shape in 0..SHAPES {
            for rep in 0..3 {
                let mut data = random_candidates(&mut rng, n, shape, rep == 2);
                check(
                    &format!("{label} shape {shape} rep {rep}"),
                    ours.as_mut(),
                    &theirs,
                    &data,
                    false,
                );
                // The same candidates already sorted (as after top-k), flagged so.
                data.sort_by(|a, b| b.logit.total_cmp(&a.logit));
                check(
                    &format!("{label} shape {shape} rep {rep} sorted"),
                    ours.as_mut(),
                    &theirs,
                    &data,
                    true,
                );
            }
        }
    }
}

#[test]
fn stateless_samplers_match_the_reference() {
    let Some(lib) = lib() else { return };
    let api = &lib.api;
    // SAFETY (all closures below): plain constructor calls with in-range arguments.
    sweep(lib, "greedy", &sampling::greedy, &|| unsafe {
        api.llama_sampler_init_greedy()
    });
    for k in [-1, 0, 1, 2, 5, 40, 128, 129, 200, 2999, 5000] {
        sweep(
            lib,
            &format!("top_k({k})"),
            &|| sampling::top_k(k),
            &|| unsafe { api.llama_sampler_init_top_k(k) },
        );
    }
    for p in [0.0f32, 0.1, 0.5, 0.9, 0.95, 0.999, 1.0] {
        for min_keep in [0usize, 1, 3, 50] {
            let l = format!("top_p({p}, {min_keep})");
            sweep(lib, &l, &|| sampling::top_p(p, min_keep), &|| unsafe {
                api.llama_sampler_init_top_p(p, min_keep)
            });
            let l = format!("min_p({p}, {min_keep})");
            sweep(lib, &l, &|| sampling::min_p(p, min_keep), &|| unsafe {
                api.llama_sampler_init_min_p(p, min_keep)
            });
            let l = format!("typical({p}, {min_keep})");
            sweep(lib, &l, &|| sampling::typical(p, min_keep), &|| unsafe {
                api.llama_sampler_init_typical(p, min_keep)
            });
        }
    }
    for t in [-1.0f32, 0.0, 0.3, 1.0, 1.7] {
        sweep(
            lib,
            &format!("temp({t})"),
            &|| sampling::temp(t),
            &|| unsafe { api.llama_sampler_init_temp(t) },
        );
    }
    for (t, d, e) in [
        (0.8f32, 0.5f32, 1.0f32),
        (1.0, 0.0, 1.0),
        (0.7, 0.0, 1.0),
        (1.2, 0.3, 2.0),
        (0.5, 1.0, 0.5),
    ] {
        let l = format!("temp_ext({t}, {d}, {e})");
        sweep(lib, &l, &|| sampling::temp_ext(t, d, e), &|| unsafe {
            api.llama_sampler_init_temp_ext(t, d, e)
        });
    }
    for n in [0.0f32, 0.5, 1.0, 2.0, 3.5] {
        sweep(
            lib,
            &format!("top_n_sigma({n})"),
            &|| sampling::top_n_sigma(n),
            &|| unsafe { api.llama_sampler_init_top_n_sigma(n) },
        );
    }
}

#[test]
fn logit_bias_matches_the_reference() {
    let Some(lib) = lib() else { return };
    let mut rng = SplitMix64(99);
    for case in 0..40 {
        let n_bias = [0usize, 1, 3, 10][case % 4];
        let biases: Vec<(i32, f32)> = (0..n_bias)
            .map(|_| (rng.below(3100) as i32 - 50, rng.normal() * 5.0))
            .collect();
        let cbias: Vec<ffi::llama_logit_bias> = biases
            .iter()
            .map(|&(token, bias)| ffi::llama_logit_bias { token, bias })
            .collect();
        let make_ref = || unsafe {
            // SAFETY: `cbias` holds n_bias entries.
            lib.api
                .llama_sampler_init_logit_bias(3000, n_bias as i32, cbias.as_ptr())
        };
        sweep(
            lib,
            &format!("logit_bias case {case}"),
            &|| sampling::logit_bias(3000, &biases),
            &make_ref,
        );
    }
}

/// Seeded samplers, step after step on one pair (the RNG state carries over).
#[test]
fn seeded_samplers_match_the_reference() {
    let Some(lib) = lib() else { return };
    let api = &lib.api;
    let mut xtc_moved = 0;
    for seed in [0u32, 1, 42, 1234, 0xdead_beef, 0xFFFF_FFFE] {
        let mut rng = SplitMix64(seed as u64 + 17);
        // dist
        let mut ours = sampling::dist(seed);
        // SAFETY: plain constructor.
        let theirs = RefSampler::new(lib, unsafe { api.llama_sampler_init_dist(seed) });
        assert_eq!(ours.get_seed(), theirs.seed());
        assert_eq!(ours.get_seed(), seed);
        for step in 0..200 {
            let n = SIZES[step % SIZES.len()];
            let data = random_candidates(&mut rng, n, step as u64 % SHAPES, step % 3 == 0);
            let (o, a) = check(
                &format!("dist({seed}) step {step}"),
                ours.as_mut(),
                &theirs,
                &data,
                false,
            );
            let token = a[o.selected as usize].id;
            ours.accept(token);
            theirs.accept(token);
        }
        ours.reset();
        theirs.reset();
        let data = random_candidates(&mut rng, 500, 0, false);
        check(
            &format!("dist({seed}) after reset"),
            ours.as_mut(),
            &theirs,
            &data,
            false,
        );

        // xtc
        for (p, t, min_keep) in [
            (0.5f32, 0.1f32, 1usize),
            (1.0, 0.05, 2),
            (0.7, 0.3, 0),
            (0.9, 0.6, 1),
        ] {
            let mut ours = sampling::xtc(p, t, min_keep, seed);
            // SAFETY: plain constructor.
            let theirs = RefSampler::new(lib, unsafe {
                api.llama_sampler_init_xtc(p, t, min_keep, seed)
            });
            assert_eq!(ours.name(), theirs.name());
            for step in 0..60 {
                let n = SIZES[step % SIZES.len()];
                let data = random_candidates(&mut rng, n, step as u64 % SHAPES, false);
                let (o, _) = check(
                    &format!("xtc({p}, {t}, {min_keep}, {seed}) step {step}"),
                    ours.as_mut(),
                    &theirs,
                    &data,
                    false,
                );
                xtc_moved += usize::from(o.offset > 0);
            }
        }

        // mirostat v1 and v2
        for (tau, eta, m) in [(5.0f32, 0.1f32, 100i32), (3.0, 0.5, 2), (8.0, 1.0, 1)] {
            let n_vocab = 3000;
            let mut ours = sampling::mirostat(n_vocab, seed, tau, eta, m);
            // SAFETY: plain constructor.
            let theirs = RefSampler::new(lib, unsafe {
                api.llama_sampler_init_mirostat(n_vocab, seed, tau, eta, m)
            });
            assert_eq!(ours.get_seed(), theirs.seed());
            let mut ours2 = sampling::mirostat_v2(seed, tau, eta);
            // SAFETY: plain constructor.
            let theirs2 = RefSampler::new(lib, unsafe {
                api.llama_sampler_init_mirostat_v2(seed, tau, eta)
            });
            assert_eq!(ours2.get_seed(), theirs2.seed());
            for step in 0..40 {
                let n = [3000usize, 1025, 300, 17, 2][step % 5];
                let shape = [0u64, 1, 2, 3, 5, 6][step % 6];
                let data = random_candidates(&mut rng, n, shape, false);
                check(
                    &format!("mirostat({tau}, {eta}, {m}, {seed}) step {step}"),
                    ours.as_mut(),
                    &theirs,
                    &data,
                    false,
                );
                check(
                    &format!("mirostat_v2({tau}, {eta}, {seed}) step {step}"),
                    ours2.as_mut(),
                    &theirs2,
                    &data,
                    false,
                );
            }
        }
    }
    // The comparisons covered XTC actually cutting.
    assert!(xtc_moved > 20, "XTC cut only {xtc_moved} times");
}

#[test]
fn penalties_match_the_reference() {
    let Some(lib) = lib() else { return };
    let mut rng = SplitMix64(5);
    for (last_n, repeat, freq, present) in [
        (64i32, 1.1f32, 0.0f32, 0.0f32),
        (16, 1.3, 0.2, 0.5),
        (3, 1.0, 0.5, 0.0),
        (0, 1.5, 0.1, 0.1),
        (-1, 1.5, 0.1, 0.1),
        (8, 1.0, 0.0, 0.0),
        (1, 0.8, -0.3, 0.7),
    ] {
        let mut ours = sampling::penalties(300, last_n, repeat, freq, present);
        // SAFETY: plain constructor.
        let theirs = RefSampler::new(lib, unsafe {
            lib.api
                .llama_sampler_init_penalties(300, last_n, repeat, freq, present)
        });
        assert_eq!(ours.name(), theirs.name());
        for step in 0..80 {
            let data = random_candidates(&mut rng, 300, step % 4, step % 2 == 0);
            check(
                &format!("penalties({last_n}, {repeat}, {freq}, {present}) step {step}"),
                ours.as_mut(),
                &theirs,
                &data,
                false,
            );
            // A small alphabet, so tokens repeat.
            let token = rng.below(20) as i32 * 3;
            ours.accept(token);
            theirs.accept(token);
            if step == 50 {
                ours.reset();
                theirs.reset();
            }
        }
    }
}

/// DRY with string sequence breakers, turned into token sequences through the vocabulary on
/// both sides (our tokenizer vs the reference's), then the same history and candidates.
#[test]
fn dry_matches_the_reference() {
    let Some(lib) = lib() else { return };
    let api = &lib.api;
    let mut dry_penalised = 0;
    for vocab_name in ["gpt-2", "llama-spm"] {
        let path = common::llama_cpp_dir()
            .join("models")
            .join(format!("ggml-vocab-{vocab_name}.gguf"));
        let file = MappedFile::open(&path).unwrap();
        let tok = Tokenizer::from_gguf(&file.gguf().unwrap()).unwrap();
        let cpath = CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: default params are plain data; vocab_only loads no tensors.
        let model = unsafe {
            let mut mp = api.llama_model_default_params();
            mp.vocab_only = true;
            api.llama_model_load_from_file(cpath.as_ptr(), mp)
        };
        assert!(!model.is_null());
        // SAFETY: live model.
        let vocab = unsafe { api.llama_model_get_vocab(model) };
        let n_vocab = tok.n_vocab();

        let breakers: [&str; 6] = [
            "\n",
            ":",
            "\"",
            "*",
            " the end",
            "a very long sequence breaker that is cut at forty bytes",
        ];
        let cbreakers: Vec<CString> = breakers.iter().map(|b| CString::new(*b).unwrap()).collect();
        let mut cptrs: Vec<*const std::os::raw::c_char> =
            cbreakers.iter().map(|c| c.as_ptr()).collect();
        let breaker_bytes: Vec<&[u8]> = breakers.iter().map(|b| b.as_bytes()).collect();
        // History alphabet: a few ordinary tokens plus the breakers' own tokens.
        let mut alphabet: Vec<i32> = (100..110).collect();
        for b in ["\n", ":", " the", " end", "*"] {
            alphabet.extend(tok.tokenize(b, false, false).into_iter().map(|t| t as i32));
        }

        for (multiplier, base, allowed, last_n) in [
            (0.8f32, 1.75f32, 2i32, 64i32),
            (1.0, 2.0, 1, -1),
            (0.5, 1.1, 3, 16),
            (0.0, 1.75, 2, 64),
            (2.0, 30.0, 0, 200),
        ] {
            let mut ours = sampling::dry(&tok, multiplier, base, allowed, last_n, &breaker_bytes);
            // SAFETY: vocab is live; cptrs holds breakers.len() C strings.
            let theirs = RefSampler::new(lib, unsafe {
                api.llama_sampler_init_dry(
                    vocab,
                    multiplier,
                    base,
                    allowed,
                    last_n,
                    cptrs.as_mut_ptr(),
                    cptrs.len(),
                )
            });
            assert_eq!(ours.name(), theirs.name());
            let mut rng = SplitMix64(base.to_bits() as u64);
            // Repetitive history: random phrases from the alphabet, replayed.
            let phrases: Vec<Vec<i32>> = (0..4)
                .map(|_| {
                    (0..1 + rng.below(6))
                        .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                        .collect()
                })
                .collect();
            for step in 0..120 {
                if step % 10 == 0 {
                    let data = random_candidates(&mut rng, n_vocab, 0, false);
                    let (_, after) = check(&format!("dry {vocab_name} ({multiplier}, {base}, {allowed}, {last_n}) step {step}"), ours.as_mut(), &theirs, &data, false);
                    dry_penalised += after
                        .iter()
                        .zip(&data)
                        .filter(|(a, d)| a.logit != d.logit)
                        .count();
                }
                let phrase = &phrases[rng.below(phrases.len() as u64) as usize];
                for &t in phrase {
                    ours.accept(t);
                    theirs.accept(t);
                }
            }
        }
        // SAFETY: the samplers built from this vocab are gone; free the model once.
        unsafe { api.llama_model_free(model) };
    }
    // The comparisons covered DRY actually penalising tokens.
    assert!(
        dry_penalised > 50,
        "DRY penalised only {dry_penalised} logits"
    );
}

/// Chains, as an application builds them, sampling token after token with accept.
#[test]
fn chains_match_the_reference() {
    let Some(lib) = lib() else { return };
    let api = &lib.api;
    type Stage = (Box<dyn Sampler>, *mut ffi::llama_sampler);
    type MakeStages<'a> = Box<dyn Fn() -> Vec<Stage> + 'a>;
    // SAFETY (all below): plain constructor calls.
    let configs: Vec<(&str, MakeStages)> = vec![
        (
            "top_k top_p temp dist",
            Box::new(|| unsafe {
                vec![
                    (sampling::top_k(40), api.llama_sampler_init_top_k(40)),
                    (
                        sampling::top_p(0.9, 1),
                        api.llama_sampler_init_top_p(0.9, 1),
                    ),
                    (sampling::temp(0.8), api.llama_sampler_init_temp(0.8)),
                    (sampling::dist(1234), api.llama_sampler_init_dist(1234)),
                ]
            }),
        ),
        (
            "penalties top_k typical min_p xtc temp_ext dist",
            Box::new(|| unsafe {
                vec![
                    (
                        sampling::penalties(4000, 32, 1.2, 0.1, 0.1),
                        api.llama_sampler_init_penalties(4000, 32, 1.2, 0.1, 0.1),
                    ),
                    (sampling::top_k(300), api.llama_sampler_init_top_k(300)),
                    (
                        sampling::typical(0.95, 1),
                        api.llama_sampler_init_typical(0.95, 1),
                    ),
                    (
                        sampling::min_p(0.05, 1),
                        api.llama_sampler_init_min_p(0.05, 1),
                    ),
                    (
                        sampling::xtc(0.5, 0.1, 1, 7),
                        api.llama_sampler_init_xtc(0.5, 0.1, 1, 7),
                    ),
                    (
                        sampling::temp_ext(0.9, 0.3, 1.0),
                        api.llama_sampler_init_temp_ext(0.9, 0.3, 1.0),
                    ),
                    (sampling::dist(99), api.llama_sampler_init_dist(99)),
                ]
            }),
        ),
        (
            "top_n_sigma temp mirostat_v2",
            Box::new(|| unsafe {
                vec![
                    (
                        sampling::top_n_sigma(1.5),
                        api.llama_sampler_init_top_n_sigma(1.5),
                    ),
                    (sampling::temp(0.7), api.llama_sampler_init_temp(0.7)),
                    (
                        sampling::mirostat_v2(5, 5.0, 0.1),
                        api.llama_sampler_init_mirostat_v2(5, 5.0, 0.1),
                    ),
                ]
            }),
        ),
        (
            "temp0 greedy",
            Box::new(|| unsafe {
                vec![
                    (sampling::temp(0.0), api.llama_sampler_init_temp(0.0)),
                    (sampling::greedy(), api.llama_sampler_init_greedy()),
                ]
            }),
        ),
    ];
    for (label, make) in configs {
        let mut ours = Chain::new();
        // SAFETY: default chain params are plain data.
        let chain =
            unsafe { api.llama_sampler_chain_init(api.llama_sampler_chain_default_params()) };
        let theirs = RefSampler::new(lib, chain);
        for (o, r) in make() {
            assert!(!r.is_null());
            ours.add(o);
            // SAFETY: the chain takes ownership of `r`.
            unsafe { api.llama_sampler_chain_add(chain, r) };
        }
        assert_eq!(ours.get_seed(), theirs.seed(), "{label}: seed");
        let mut rng = SplitMix64(label.len() as u64);
        for step in 0..150 {
            let n = [4000usize, 1500, 257][step % 3];
            let data = random_candidates(&mut rng, n, [0u64, 1, 2, 3, 5][step % 5], false);
            let (o, a) = check(
                &format!("chain {label} step {step}"),
                &mut ours,
                &theirs,
                &data,
                false,
            );
            let token = a[o.offset + o.selected as usize].id;
            ours.accept(token);
            theirs.accept(token);
        }
    }
}

/// Names of disabled samplers and `get_seed` conventions.
#[test]
fn names_and_seeds_match_the_reference() {
    let Some(lib) = lib() else { return };
    let api = &lib.api;
    // SAFETY (all below): plain constructor calls.
    let pairs: Vec<(Box<dyn Sampler>, *mut ffi::llama_sampler)> = unsafe {
        vec![
            (sampling::top_k(0), api.llama_sampler_init_top_k(0)),
            (
                sampling::top_p(1.0, 1),
                api.llama_sampler_init_top_p(1.0, 1),
            ),
            (
                sampling::min_p(0.0, 1),
                api.llama_sampler_init_min_p(0.0, 1),
            ),
            (
                sampling::typical(1.0, 1),
                api.llama_sampler_init_typical(1.0, 1),
            ),
            (sampling::temp(1.0), api.llama_sampler_init_temp(1.0)),
            (
                sampling::temp_ext(1.0, 0.0, 1.0),
                api.llama_sampler_init_temp_ext(1.0, 0.0, 1.0),
            ),
            (
                sampling::xtc(0.0, 0.1, 1, 1),
                api.llama_sampler_init_xtc(0.0, 0.1, 1, 1),
            ),
            (
                sampling::top_n_sigma(0.0),
                api.llama_sampler_init_top_n_sigma(0.0),
            ),
            (
                sampling::penalties(10, 0, 1.1, 0.0, 0.0),
                api.llama_sampler_init_penalties(10, 0, 1.1, 0.0, 0.0),
            ),
            (
                sampling::logit_bias(10, &[]),
                api.llama_sampler_init_logit_bias(10, 0, std::ptr::null()),
            ),
            (sampling::greedy(), api.llama_sampler_init_greedy()),
            (sampling::dist(3), api.llama_sampler_init_dist(3)),
            (
                sampling::mirostat(10, 4, 5.0, 0.1, 100),
                api.llama_sampler_init_mirostat(10, 4, 5.0, 0.1, 100),
            ),
            (
                sampling::mirostat_v2(6, 5.0, 0.1),
                api.llama_sampler_init_mirostat_v2(6, 5.0, 0.1),
            ),
            (
                sampling::xtc(0.5, 0.1, 1, 8),
                api.llama_sampler_init_xtc(0.5, 0.1, 1, 8),
            ),
        ]
    };
    for (o, r) in pairs {
        let r = RefSampler::new(lib, r);
        assert_eq!(o.name(), r.name());
        assert_eq!(o.get_seed(), r.seed(), "{}", o.name());
    }
    // A random seed is drawn (and reported) when DEFAULT_SEED is asked for.
    let d = sampling::dist(DEFAULT_SEED);
    let d2 = sampling::dist(DEFAULT_SEED);
    assert!(d.get_seed() != DEFAULT_SEED || d2.get_seed() != DEFAULT_SEED);
}
