//! State: arbitrary bytes (or a valid state with bytes overwritten) through
//! `llama_state_set_data`, `llama_state_seq_set_data` and `llama_state_load_file` on a
//! context of the tiny model that has decoded a few tokens. Refused bytes must leave a context
//! that still decodes; a state that was accepted must save again and decode.

#![no_main]

use bitnet::capi::*;
use bitnet_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: quiet(), |data: &[u8]| {
    let model = tiny_model();
    let mut input = Input::new(data);
    let mode = input.u8();
    let seq = input.i32_near(3);
    // SAFETY: every handle comes from this library; buffers hold the sizes passed.
    unsafe {
        let vocab = llama_model_get_vocab(model);
        let n_vocab = llama_vocab_n_tokens(vocab);
        let ctx = llama_init_from_model(model, small_context_params(32, 8, 2));
        assert!(!ctx.is_null());
        let mut tokens = [1, 100 % n_vocab, 200 % n_vocab];
        assert_eq!(llama_decode(ctx, llama_batch_get_one(tokens.as_mut_ptr(), 3)), 0);
        let whole = mode & 2 == 0;
        let bytes: Vec<u8> = if mode & 1 == 0 {
            input.rest().to_vec()
        } else {
            // A valid state of the same kind, then (offset, byte) patches from the input.
            let size = if whole { llama_state_get_size(ctx) } else { llama_state_seq_get_size(ctx, 0) };
            let mut buf = vec![0u8; size];
            let n = if whole {
                llama_state_get_data(ctx, buf.as_mut_ptr(), size)
            } else {
                llama_state_seq_get_data(ctx, buf.as_mut_ptr(), size, 0)
            };
            assert_eq!(n, size, "the state does not fit the size it announced");
            let cut = input.u16() as usize;
            if mode & 4 != 0 && cut < buf.len() {
                buf.truncate(cut);
            }
            while !input.is_empty() && !buf.is_empty() {
                let at = input.u16() as usize % buf.len();
                buf[at] = input.u8();
            }
            buf
        };
        let read = match mode >> 3 & 3 {
            0 | 1 if whole => llama_state_set_data(ctx, bytes.as_ptr(), bytes.len()),
            0 | 1 => llama_state_seq_set_data(ctx, bytes.as_ptr(), bytes.len(), seq),
            _ => {
                let path = scratch_dir().join("state.bin");
                std::fs::write(&path, &bytes).unwrap();
                let cpath = c_string(path.to_str().unwrap().as_bytes());
                let mut toks = [0i32; 16];
                let mut n = 0usize;
                let ok = llama_state_load_file(ctx, cpath.as_ptr(), toks.as_mut_ptr(), toks.len(), &mut n);
                assert!(n <= toks.len(), "more tokens reported than the buffer holds");
                usize::from(ok)
            }
        };
        assert!(read <= bytes.len().max(1), "read more bytes than given");
        if read > 0 {
            // What was accepted saves again.
            let size = llama_state_get_size(ctx);
            let mut again = vec![0u8; size];
            assert_eq!(llama_state_get_data(ctx, again.as_mut_ptr(), size), size);
        }
        // Whatever happened, the context still decodes a token at a position of its own choosing.
        let mem = llama_get_memory(ctx);
        let next = llama_memory_seq_pos_max(mem, 0) + 1;
        if next < 32 {
            let mut batch = llama_batch_init(1, 0, 1);
            *batch.token = 5;
            *batch.pos = next;
            *batch.n_seq_id = 1;
            **batch.seq_id = 0;
            *batch.logits = 1;
            batch.n_tokens = 1;
            let rc = llama_decode(ctx, batch);
            assert!(rc == 0 || rc == 1, "decode after a state load failed: {rc}");
            llama_batch_free(batch);
        }
        llama_free(ctx);
    }
});
