//! GGUF: parse the input as a file, read every metadata value every way there is, every tensor
//! (dequantized when small), build the tokenizer and hyperparameters from it; when it parses,
//! load it as a model through the C API (all tensor checks), read its metadata back through
//! `llama_model_meta_*`, and run one decode on a small context.

#![no_main]

use bitnet::capi::*;
use bitnet::gguf::{short_value, Gguf, Value};
use bitnet::model::HParams;
use bitnet::quant;
use bitnet::tokenizer::Tokenizer;
use bitnet_fuzz::*;
use libfuzzer_sys::fuzz_target;

fn walk(v: &Value<'_>, depth: usize) {
    let _ = (
        v.value_type().name(),
        v.as_i128(),
        v.as_f64(),
        v.as_str(),
        v.as_bool(),
    );
    let _ = short_value(v);
    if let Some(a) = v.as_array() {
        let _ = a.is_empty();
        if let Some(strings) = a.strings() {
            for s in strings.take(64) {
                let _ = s.len();
            }
        }
        if depth < 4 {
            for item in a.iter().take(64) {
                walk(&item, depth + 1);
            }
        }
    }
}

fn read_all(g: &Gguf<'_>) {
    let _ = g.architecture();
    for (key, value) in g.metadata() {
        walk(value, 0);
        let _ = (
            g.get_str(key),
            g.get_u64(key),
            g.get_u32(key),
            g.get_f32(key),
        );
        let _ = (
            g.get_bool(key),
            g.get_array(key).map(|a| a.map(|a| a.iter().count())),
        );
    }
    for t in g.tensors() {
        let _ = (
            t.file_offset(g),
            t.n_rows(),
            t.shape_string(),
            g.tensor(t.name).is_some(),
        );
        if t.n_elements <= 1 << 16 {
            let mut out = vec![0f32; t.n_elements as usize];
            let _ = quant::dequantize(t.ty, t.data, &mut out);
        }
    }
    let _ = HParams::from_gguf(g);
    if let Ok(tok) = Tokenizer::from_gguf(g) {
        for parse_special in [false, true] {
            let ids = tok.tokenize("Hello world <s> \u{e9}\u{1F600}", true, parse_special);
            let _ = tok.detokenize(&ids, false, parse_special);
            for &id in ids.iter().take(8) {
                let _ = tok.token_to_piece(id, 0, parse_special);
            }
        }
    }
}

fn load(data: &[u8]) {
    let path = scratch_dir().join("input.gguf");
    std::fs::write(&path, data).expect("cannot write the scratch file");
    let cpath = c_string(path.to_str().unwrap().as_bytes());
    let mp = llama_model_default_params();
    // SAFETY: valid path and params; every handle below comes from this library and is freed once.
    unsafe {
        let model = llama_model_load_from_file(cpath.as_ptr(), mp);
        if model.is_null() {
            return;
        }
        let mut buf = [0i8; 256];
        let n = llama_model_meta_count(model);
        for i in 0..n.min(256) {
            llama_model_meta_key_by_index(model, i, buf.as_mut_ptr(), buf.len());
            llama_model_meta_val_str_by_index(model, i, buf.as_mut_ptr(), buf.len());
        }
        llama_model_desc(model, buf.as_mut_ptr(), buf.len());
        let _ = (llama_model_size(model), llama_model_n_params(model));
        let _ = llama_model_chat_template(model, std::ptr::null());
        let vocab = llama_model_get_vocab(model);
        let n_vocab = llama_vocab_n_tokens(vocab);
        let ctx = llama_init_from_model(model, small_context_params(16, 8, 1));
        if !ctx.is_null() {
            let mut tokens = [llama_vocab_bos(vocab).max(0), (n_vocab - 1).max(0)];
            let batch = llama_batch_get_one(tokens.as_mut_ptr(), 2);
            if llama_decode(ctx, batch) == 0 {
                let logits = llama_get_logits_ith(ctx, -1);
                assert!(!logits.is_null(), "a decode that succeeded has logits");
            }
            llama_free(ctx);
        }
        llama_model_free(model);
    }
}

fuzz_target!(init: quiet(), |data: &[u8]| {
    let Ok(g) = Gguf::parse(data) else { return };
    read_all(&g);
    load(data);
});
