//! The C API as a program: the input is a sequence of calls on contexts of the tiny model
//! (batches built with llama_batch_init and decoded, llama_batch_get_one, memory seq_* calls,
//! sampler chains sampling from the last logits, embeddings and logits getters, state
//! round trips, contexts made and freed), with positions, sequence ids, sizes and output
//! indices out of range included.
//!
//! Asserted: every successful decode has finite logits for each entry that asked for them;
//! a sampled token is in the vocabulary; pos_min <= pos_max for a sequence with cells; a
//! state read back right after it was written is accepted whole.

#![no_main]

use bitnet::capi::*;
use bitnet_fuzz::*;
use libfuzzer_sys::fuzz_target;

struct Ctx {
    ptr: *mut llama_context,
    n_seq_max: i32,
    n_batch: i32,
    /// The batch indices of the last successful decode that asked for logits.
    outputs: Vec<i32>,
}

fn new_context(model: *mut llama_model, input: &mut Input<'_>) -> Option<Ctx> {
    let n_ctx = [0u32, 1, 8, 16, 64, 100][input.u8() as usize % 6];
    let n_batch = [1u32, 4, 8, 32][input.u8() as usize % 4];
    let n_seq_max = [1u32, 2, 4, 0, 300][input.u8() as usize % 5];
    let mut p = small_context_params(n_ctx, n_batch, n_seq_max);
    p.embeddings = input.u8() % 4 == 0;
    p.pooling_type = input.u8() as i32 % 5 - 1;
    // SAFETY: a live model and plain params.
    let ptr = unsafe { llama_init_from_model(model, p) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: ptr is live.
    let (n_seq_max, n_batch) = unsafe { (llama_n_seq_max(ptr) as i32, llama_n_batch(ptr) as i32) };
    Some(Ctx {
        ptr,
        n_seq_max,
        n_batch,
        outputs: Vec::new(),
    })
}

/// A batch from llama_batch_init with `n` entries, each with 1..=2 sequence ids.
unsafe fn decode_batch(c: &mut Ctx, n_vocab: i32, input: &mut Input<'_>) {
    let n = input.u8() as i32 % (c.n_batch + 3);
    let n_seq = 2;
    // SAFETY: the batch holds n tokens of n_seq sequence ids each; every write is inside it.
    unsafe {
        let batch = llama_batch_init(n.max(1), 0, n_seq);
        let mut want = Vec::new();
        for i in 0..n as usize {
            *batch.token.add(i) = input.i32_near(n_vocab + 1);
            *batch.pos.add(i) = input.i32_near(70);
            let k = 1 + input.u8() as i32 % n_seq;
            *batch.n_seq_id.add(i) = k;
            for j in 0..k as usize {
                *(*batch.seq_id.add(i)).add(j) = input.i32_near(c.n_seq_max);
            }
            let out = input.u8() % 3 == 0 || i + 1 == n as usize;
            *batch.logits.add(i) = out as i8;
            if out {
                want.push(i as i32);
            }
        }
        let mut b = batch;
        b.n_tokens = n;
        if input.u8() % 8 == 0 {
            b.logits = std::ptr::null_mut(); // only the last entry's logits
            want = if n > 0 { vec![n - 1] } else { vec![] };
        }
        if llama_decode(c.ptr, b) == 0 {
            c.outputs = want;
            check_outputs(c, n_vocab);
        }
        llama_batch_free(batch);
    }
}

unsafe fn check_outputs(c: &Ctx, n_vocab: i32) {
    for &i in &c.outputs {
        // SAFETY: a live context; a non-NULL row has n_vocab floats.
        unsafe {
            let row = llama_get_logits_ith(c.ptr, i);
            if row.is_null() {
                continue; // embeddings-only contexts have no logits
            }
            let row = std::slice::from_raw_parts(row, n_vocab as usize);
            assert!(
                row.iter().all(|v| v.is_finite()),
                "non-finite logits at output {i}"
            );
        }
    }
}

unsafe fn sample(c: &Ctx, vocab: *const llama_vocab, n_vocab: i32, input: &mut Input<'_>) {
    // SAFETY: every handle comes from this library; the chain owns what is added to it.
    unsafe {
        let chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
        for _ in 0..input.u8() % 5 {
            let s = match input.u8() % 14 {
                0 => llama_sampler_init_top_k(input.i32_near(50)),
                1 => llama_sampler_init_top_p(input.f32(), input.u8() as usize),
                2 => llama_sampler_init_min_p(input.f32(), input.u8() as usize),
                3 => llama_sampler_init_temp(input.f32()),
                4 => llama_sampler_init_typical(input.f32(), input.u8() as usize),
                5 => llama_sampler_init_xtc(
                    input.f32(),
                    input.f32(),
                    input.u8() as usize,
                    input.u32(),
                ),
                6 => llama_sampler_init_top_n_sigma(input.f32()),
                7 => llama_sampler_init_penalties(
                    n_vocab,
                    input.i32_near(64),
                    input.f32(),
                    input.f32(),
                    input.f32(),
                ),
                8 => llama_sampler_init_mirostat(
                    n_vocab,
                    input.u32(),
                    input.f32(),
                    input.f32(),
                    input.i32_near(100),
                ),
                9 => llama_sampler_init_mirostat_v2(input.u32(), input.f32(), input.f32()),
                10 => llama_sampler_init_temp_ext(input.f32(), input.f32(), input.f32()),
                11 => {
                    let bias: Vec<llama_logit_bias> = (0..input.u8() % 4)
                        .map(|_| llama_logit_bias {
                            token: input.i32_near(n_vocab + 1),
                            bias: input.f32(),
                        })
                        .collect();
                    llama_sampler_init_logit_bias(n_vocab, bias.len() as i32, bias.as_ptr())
                }
                12 => {
                    let breaker = c_string(input.chunk());
                    let mut breakers = [breaker.as_ptr()];
                    llama_sampler_init_dry(
                        vocab,
                        input.f32(),
                        input.f32(),
                        input.i32_near(8),
                        input.i32_near(64),
                        breakers.as_mut_ptr(),
                        1,
                    )
                }
                _ => llama_sampler_init_greedy(),
            };
            if !s.is_null() {
                llama_sampler_chain_add(chain, s);
            }
        }
        if input.bool() {
            llama_sampler_chain_add(chain, llama_sampler_init_dist(input.u32()));
        }
        let idx = match input.u8() % 4 {
            0 => input.i32_near(40),
            _ => -1,
        };
        let t = llama_sampler_sample(chain, c.ptr, idx);
        assert!(
            t == -1 || (0..n_vocab).contains(&t),
            "sampled token {t} outside the vocabulary"
        );
        if input.bool() {
            let copy = llama_sampler_clone(chain);
            llama_sampler_free(copy);
        }
        llama_sampler_free(chain);
    }
}

unsafe fn state_round_trip(c: &Ctx, input: &mut Input<'_>) {
    // SAFETY: a live context; buffers sized as asked.
    unsafe {
        let seq = input.i32_near(c.n_seq_max);
        if input.bool() {
            let size = llama_state_get_size(c.ptr);
            let mut buf = vec![0u8; size];
            assert_eq!(llama_state_get_data(c.ptr, buf.as_mut_ptr(), size), size);
            assert_eq!(
                llama_state_set_data(c.ptr, buf.as_ptr(), size),
                size,
                "own state refused"
            );
        } else {
            let size = llama_state_seq_get_size(c.ptr, seq);
            let mut buf = vec![0u8; size];
            let n = llama_state_seq_get_data(c.ptr, buf.as_mut_ptr(), size, seq);
            if n > 0 {
                let dst = input.i32_near(c.n_seq_max);
                let _ = llama_state_seq_set_data(c.ptr, buf.as_ptr(), n, dst);
            }
        }
    }
}

fuzz_target!(init: quiet(), |data: &[u8]| {
    let model = tiny_model();
    let mut input = Input::new(data);
    // SAFETY: every handle comes from this library and is used only while live.
    unsafe {
        let vocab = llama_model_get_vocab(model);
        let n_vocab = llama_vocab_n_tokens(vocab);
        let Some(mut c) = new_context(model, &mut input) else { return };
        for _ in 0..48 {
            if input.is_empty() {
                break;
            }
            let mem = llama_get_memory(c.ptr);
            let seq = input.i32_near(c.n_seq_max);
            match input.u8() % 16 {
                0..=2 => decode_batch(&mut c, n_vocab, &mut input),
                3 => {
                    let mut toks: Vec<i32> = (0..input.u8() % 6).map(|_| input.i32_near(n_vocab)).collect();
                    if llama_decode(c.ptr, llama_batch_get_one(toks.as_mut_ptr(), toks.len() as i32)) == 0 {
                        c.outputs = vec![toks.len() as i32 - 1];
                        check_outputs(&c, n_vocab);
                    }
                }
                4 => llama_memory_clear(mem, input.bool()),
                5 => {
                    let _ = llama_memory_seq_rm(mem, seq, input.i32_near(70), input.i32_near(70));
                }
                6 => llama_memory_seq_cp(mem, seq, input.i32_near(c.n_seq_max), input.i32_near(70), input.i32_near(70)),
                7 => llama_memory_seq_keep(mem, seq),
                8 => llama_memory_seq_add(mem, seq, input.i32_near(70), input.i32_near(70), input.i32_near(70).wrapping_sub(35)),
                9 => llama_memory_seq_div(mem, seq, input.i32_near(70), input.i32_near(70), input.i32_near(4)),
                10 => {
                    let (lo, hi) = (llama_memory_seq_pos_min(mem, seq), llama_memory_seq_pos_max(mem, seq));
                    assert!((lo == -1) == (hi == -1) && lo <= hi, "seq {seq}: pos_min {lo} pos_max {hi}");
                }
                11 => sample(&c, vocab, n_vocab, &mut input),
                12 => {
                    let i = input.i32_near(40);
                    let _ = (llama_get_logits_ith(c.ptr, i), llama_get_embeddings_ith(c.ptr, i));
                    let _ = (llama_get_embeddings_seq(c.ptr, seq), llama_get_logits(c.ptr), llama_get_embeddings(c.ptr));
                }
                13 => state_round_trip(&c, &mut input),
                14 => llama_set_embeddings(c.ptr, input.bool()),
                _ => {
                    // A fresh context; the old one freed (contexts come and go on a shared model).
                    if let Some(fresh) = new_context(model, &mut input) {
                        llama_free(c.ptr);
                        c = fresh;
                    }
                }
            }
        }
        llama_free(c.ptr);
    }
});
