//! GBNF grammars: parse the grammar in the input (up to its first NUL), through
//! `llama_sampler_init_grammar` (or the lazy form with trigger patterns and tokens), then drive
//! the matcher with the token ids that follow: apply to the whole vocabulary of the tiny model,
//! then accept the token (allowed or not), with resets and clones on the way.
//!
//! Asserted: apply never allows a token after the grammar refused everything it could, and an
//! accepted token that apply had allowed leaves a sampler that still allows something or has
//! completed (checked through the end-of-generation token).

#![no_main]

use bitnet::capi::*;
use bitnet_fuzz::*;
use libfuzzer_sys::fuzz_target;

fn apply(smpl: *mut llama_sampler, n_vocab: i32) -> Vec<bool> {
    let mut data: Vec<llama_token_data> = (0..n_vocab)
        .map(|id| llama_token_data {
            id,
            logit: 0.0,
            p: 0.0,
        })
        .collect();
    let mut arr = llama_token_data_array {
        data: data.as_mut_ptr(),
        size: data.len(),
        selected: -1,
        sorted: false,
    };
    // SAFETY: arr points at n_vocab live entries; smpl is live.
    unsafe { llama_sampler_apply(smpl, &mut arr) };
    let mut allowed = vec![false; n_vocab as usize];
    for d in &data[..arr.size] {
        if d.logit != f32::NEG_INFINITY && (0..n_vocab).contains(&d.id) {
            allowed[d.id as usize] = true;
        }
    }
    allowed
}

fuzz_target!(init: quiet(), |data: &[u8]| {
    let model = tiny_model();
    let mut input = Input::new(data);
    let mode = input.u8();
    let grammar = input.c_str();
    // SAFETY: every handle comes from this library; strings are live C strings.
    unsafe {
        let vocab = llama_model_get_vocab(model);
        let n_vocab = llama_vocab_n_tokens(vocab);
        let smpl = if mode & 1 == 0 {
            llama_sampler_init_grammar(vocab, grammar.as_ptr(), c"root".as_ptr())
        } else {
            let pattern = c_string(input.chunk());
            let mut patterns = [pattern.as_ptr()];
            let tokens = [input.i32_near(n_vocab), input.i32_near(n_vocab)];
            llama_sampler_init_grammar_lazy_patterns(
                vocab,
                grammar.as_ptr(),
                c"root".as_ptr(),
                patterns.as_mut_ptr(),
                (mode >> 1) as usize % 2,
                tokens.as_ptr(),
                (mode >> 2) as usize % 3,
            )
        };
        if smpl.is_null() {
            return;
        }
        let mut cur = smpl;
        let mut copies = Vec::new();
        for _ in 0..64 {
            if input.is_empty() {
                break;
            }
            let op = input.u8();
            match op % 8 {
                0 => llama_sampler_reset(cur),
                1 => {
                    let c = llama_sampler_clone(cur);
                    assert!(!c.is_null(), "clone of a live grammar sampler failed");
                    copies.push(c);
                    cur = c;
                }
                _ => {
                    let allowed = apply(cur, n_vocab);
                    let pick = input.u16() as i32 % (n_vocab + 4) - 2;
                    let token = if op & 0x80 != 0 && pick >= 0 {
                        // An allowed token when there is one: walk from `pick` to the next.
                        (0..n_vocab)
                            .map(|k| (pick + k) % n_vocab)
                            .find(|&t| allowed[t as usize])
                            .unwrap_or(pick)
                    } else {
                        pick
                    };
                    llama_sampler_accept(cur, token);
                }
            }
        }
        for c in copies {
            llama_sampler_free(c);
        }
        llama_sampler_free(smpl);
    }
});
