//! Golden outputs of the engine: for each GGUF file given, a fingerprint of everything a
//! refactor must leave bit-identical, one line per check:
//! the logits of a prompt (every position), 32 greedy steps (each step's logits and token),
//! a 300-token prefill run in chunks (every 50th row), two sequences in one batch, pooled
//! embeddings, the state bytes, and the Q8_0 head. Each line is `file check fnv64`.
//!
//! `benches/golden.sh record|check` runs this once per instruction set the machine has
//! (`BITNET_ISA`), so every kernel path is covered; `check` diffs against the recording.
//!
//! ```sh
//! cargo run --release --example golden -- MODEL.gguf...
//! ```

use std::sync::Arc;

use bitnet::fixture;
use bitnet::model::weights::{HeadType, LoadOptions};
use bitnet::model::{Batch, Context, ContextParams, Model, Pooling, SeqSet};

/// FNV-1a over bytes.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn floats(&mut self, v: &[f32]) {
        for x in v {
            self.bytes(&x.to_bits().to_le_bytes());
        }
    }
}

fn argmax(x: &[f32]) -> u32 {
    fixture::argmax(x) as u32
}

/// Decodes `tokens` at positions pos0.. of sequence `seq`, logits for all or the last.
fn decode(c: &mut Context, tokens: &[u32], pos0: usize, seq: usize, all: bool) {
    fixture::decode(c, tokens, pos0 as i32, seq, all).expect("decode");
}

/// `n` token ids spread over the vocabulary, from a fixed formula.
fn tokens(n: usize, n_vocab: usize, salt: usize) -> Vec<u32> {
    (0..n)
        .map(|i| ((i * 7919 + salt * 104_729 + 13) % n_vocab) as u32)
        .collect()
}

fn run(path: &str, head: HeadType, tag: &str) {
    let opts = LoadOptions {
        head,
        ..LoadOptions::default()
    };
    let name = std::path::Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let model = match Model::load_with(path, &opts) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            println!("{name} {tag}load error {e}");
            return;
        }
    };
    let n_vocab = model.hparams().n_vocab;
    let line = |check: &str, h: &Fnv| println!("{name} {tag}{check} {:016x}", h.0);

    // A prompt with every position's logits, then 32 greedy steps.
    let mut params = ContextParams::new(512, 512);
    params.n_threads = 2;
    let mut c = Context::new(Arc::clone(&model), params).expect("context");
    let prompt = tokens(24, n_vocab, 1);
    decode(&mut c, &prompt, 0, 0, true);
    let mut h = Fnv::new();
    h.floats(c.all_logits());
    line("prompt", &h);
    let mut next = argmax(c.logits(prompt.len() - 1).unwrap());
    let mut steps = Fnv::new();
    let mut toks = Vec::new();
    for i in 0..32 {
        toks.push(next);
        decode(&mut c, &[next], prompt.len() + i, 0, true);
        let l = c.logits(0).unwrap();
        steps.floats(l);
        next = argmax(l);
    }
    line("greedy32", &steps);
    println!("{name} {tag}tokens {toks:?}");
    if tag.is_empty() {
        let mut s = Vec::new();
        c.state_write(None, &mut s);
        let mut h = Fnv::new();
        h.bytes(&s);
        line("state", &h);
        let mut s = Vec::new();
        c.state_write(Some(0), &mut s);
        let mut h = Fnv::new();
        h.bytes(&s);
        line("seq_state", &h);
    } else {
        return;
    }

    // A 300-token prefill (three chunks), every 50th row.
    c.clear();
    let long = tokens(300, n_vocab, 2);
    let positions: Vec<i32> = (0..300).collect();
    let seqs = vec![SeqSet::one(0); 300];
    let want: Vec<bool> = (0..300).map(|i| i % 50 == 49).collect();
    c.decode(&Batch {
        tokens: &long,
        positions: &positions,
        seqs: &seqs,
        want_logits: &want,
    })
    .expect("long decode");
    let mut h = Fnv::new();
    h.floats(c.all_logits());
    line("prefill300", &h);

    // Two sequences in one batch, after a shared prefix copied with seq_cp.
    let mut p2 = ContextParams::new(256, 64);
    p2.n_seq_max = 2;
    p2.n_threads = 2;
    let mut c2 = Context::new(Arc::clone(&model), p2).expect("context");
    decode(&mut c2, &prompt[..10], 0, 0, false);
    c2.seq_cp(0, 1, -1, -1);
    let (a, b) = (tokens(5, n_vocab, 3), tokens(5, n_vocab, 4));
    let mut all = a.clone();
    all.extend(&b);
    let positions: Vec<i32> = (10..15).chain(10..15).collect();
    let seqs: Vec<SeqSet> = (0..10).map(|i| SeqSet::one(i / 5)).collect();
    c2.decode(&Batch {
        tokens: &all,
        positions: &positions,
        seqs: &seqs,
        want_logits: &[true; 10],
    })
    .expect("two sequences");
    let mut h = Fnv::new();
    h.floats(c2.all_logits());
    line("two_seqs", &h);
    c2.seq_add(1, -1, -1, 3);
    decode(&mut c2, &[5], 18, 1, true);
    let mut h = Fnv::new();
    h.floats(c2.all_logits());
    line("seq_add", &h);

    // Mean-pooled embeddings.
    let mut pe = ContextParams::new(64, 64);
    pe.embeddings = true;
    pe.pooling = Pooling::Mean;
    pe.n_threads = 2;
    let mut ce = Context::new(Arc::clone(&model), pe).expect("context");
    decode(&mut ce, &prompt[..12], 0, 0, true);
    let mut h = Fnv::new();
    h.floats(ce.all_embeddings());
    h.floats(ce.embeddings_seq(0).unwrap());
    line("embeddings", &h);
}

fn main() {
    for path in std::env::args().skip(1) {
        run(&path, HeadType::AsStored, "");
        run(&path, HeadType::Q8_0, "q8_0_head/");
    }
}
