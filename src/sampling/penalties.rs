//! Samplers that adjust logits from outside knowledge: repetition penalties over the recent
//! tokens, DRY ("don't repeat yourself") over repeated sequences, and a fixed logit bias.

use std::collections::{HashMap, VecDeque};

use super::{empty, Candidates, Sampler};

/// The last `capacity` accepted tokens, oldest first.
#[derive(Clone, Debug)]
struct Recent {
    capacity: usize,
    tokens: VecDeque<i32>,
}

impl Recent {
    fn new(capacity: usize) -> Recent {
        Recent {
            capacity,
            tokens: VecDeque::with_capacity(capacity.min(1 << 16)),
        }
    }
    fn push(&mut self, token: i32) {
        if self.capacity == 0 {
            return;
        }
        if self.tokens.len() == self.capacity {
            self.tokens.pop_front();
        }
        self.tokens.push_back(token);
    }
    /// The i-th most recent token (0 = the last one).
    fn rat(&self, i: usize) -> i32 {
        self.tokens[self.tokens.len() - 1 - i]
    }
    fn len(&self) -> usize {
        self.tokens.len()
    }
}

// --- penalties ---

#[derive(Clone, Debug)]
pub struct Penalties {
    last_n: usize,
    repeat: f32,
    freq: f32,
    present: f32,
    recent: Recent,
    count: HashMap<i32, i32>,
}

fn penalties_disabled(last_n: i32, repeat: f32, freq: f32, present: f32) -> bool {
    last_n == 0 || (repeat == 1.0 && freq == 0.0 && present == 0.0)
}

/// `llama_sampler_init_penalties(n_vocab, last_n, repeat, freq, present)`: for each token seen
/// c > 0 times among the last `last_n` accepted, logit is divided by `repeat` (multiplied when
/// <= 0), then lowered by c * freq + present. `last_n` < 0 counts as 0; disabled settings give
/// a no-op ("?penalties"). `n_vocab` is unused, as in the reference.
pub fn penalties(
    _n_vocab: i32,
    last_n: i32,
    repeat: f32,
    freq: f32,
    present: f32,
) -> Box<dyn Sampler> {
    let last_n = last_n.max(0);
    if penalties_disabled(last_n, repeat, freq, present) {
        return empty("?penalties");
    }
    Box::new(Penalties {
        last_n: last_n as usize,
        repeat,
        freq,
        present,
        recent: Recent::new(last_n as usize),
        count: HashMap::new(),
    })
}

impl Sampler for Penalties {
    fn name(&self) -> &'static str {
        "penalties"
    }
    fn accept(&mut self, token: i32) {
        if self.last_n == 0 {
            return;
        }
        *self.count.entry(token).or_insert(0) += 1;
        if self.recent.len() >= self.last_n {
            let old = self.recent.rat(self.recent.len() - 1);
            if let Some(c) = self.count.get_mut(&old) {
                *c -= 1;
                if *c == 0 {
                    self.count.remove(&old);
                }
            }
        }
        self.recent.push(token);
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        if penalties_disabled(self.last_n as i32, self.repeat, self.freq, self.present) {
            return;
        }
        for d in cur.live_mut() {
            let Some(&count) = self.count.get(&d.id) else {
                continue;
            };
            if d.logit <= 0.0 {
                d.logit *= self.repeat;
            } else {
                d.logit /= self.repeat;
            }
            d.logit -= count as f32 * self.freq + (count > 0) as i32 as f32 * self.present;
        }
        cur.sorted = false;
    }
    fn reset(&mut self) {
        self.recent.tokens.clear();
        self.count.clear();
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

// --- logit bias ---

#[derive(Clone, Debug)]
pub struct LogitBias {
    biases: Vec<(i32, f32)>,
}

/// `llama_sampler_init_logit_bias(n_vocab, biases)`: adds each bias to its token's logit (a
/// token listed twice gets both when the array is in id order, the first one otherwise, as in
/// the reference); no biases is a no-op ("?logit-bias").
pub fn logit_bias(_n_vocab: i32, biases: &[(i32, f32)]) -> Box<dyn Sampler> {
    if biases.is_empty() {
        return empty("?logit-bias");
    }
    Box::new(LogitBias {
        biases: biases.to_vec(),
    })
}

impl Sampler for LogitBias {
    fn name(&self) -> &'static str {
        "logit-bias"
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        let live = cur.live_mut();
        // Fast path: candidates still at their id's index.
        let mut to_search = Vec::new();
        for &(token, bias) in &self.biases {
            let at = usize::try_from(token).ok().filter(|&t| t < live.len());
            match at {
                Some(t) if live[t].id == token => live[t].logit += bias,
                _ => to_search.push((token, bias)),
            }
        }
        if to_search.is_empty() {
            return;
        }
        for d in live.iter_mut() {
            if let Some(&(_, bias)) = to_search.iter().find(|(t, _)| *t == d.id) {
                d.logit += bias;
            }
        }
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

// --- DRY ---

/// What DRY needs from a vocabulary to turn sequence-breaker strings into token sequences:
/// every token's text (as `llama_vocab::detokenize({id}, special = true)` gives it) and
/// tokenization of plain text (no BOS/EOS added, special tokens not parsed).
pub trait DryVocab {
    fn n_tokens(&self) -> usize;
    fn token_text(&self, id: i32) -> Vec<u8>;
    fn tokenize(&self, text: &[u8]) -> Vec<i32>;
}

impl DryVocab for crate::tokenizer::Tokenizer {
    fn n_tokens(&self) -> usize {
        self.n_vocab()
    }
    fn token_text(&self, id: i32) -> Vec<u8> {
        self.detokenize(&[id as u32], false, true)
            .unwrap_or_default()
    }
    fn tokenize(&self, text: &[u8]) -> Vec<i32> {
        self.tokenize_bytes(text, false, false)
            .into_iter()
            .map(|t| t as i32)
            .collect()
    }
}

/// Sequence breakers longer than this many bytes are cut (as in the reference).
const DRY_MAX_BREAKER_BYTES: usize = 40;
/// Tails of breaker tokenizations longer than this are cut.
const DRY_MAX_TAIL_TOKENS: usize = 20;

#[derive(Clone, Debug)]
pub struct Dry {
    multiplier: f32,
    base: f32,
    allowed_length: i32,
    penalty_last_n: i32,
    /// Head token -> the tails (token sequences after it) that complete a breaker; an empty
    /// tail means the head alone is one.
    breakers: HashMap<i32, Vec<Vec<i32>>>,
    recent: Recent,
}

fn dry_enabled(multiplier: f32, base: f32, penalty_last_n: i32) -> bool {
    multiplier != 0.0 && base >= 1.0 && penalty_last_n != 0
}

/// `llama_sampler_init_dry(vocab, multiplier, base, allowed_length, penalty_last_n,
/// seq_breakers)`: penalises tokens that would extend a sequence repeated from earlier in the
/// last `penalty_last_n` tokens by `multiplier * base^(length - allowed_length)`. Sequence
/// breakers (byte strings; empty ones skipped, longer than 40 bytes cut) reset the matching;
/// they are turned into token sequences through `vocab`: every token whose text contains the
/// breaker, or ends with a prefix of it (followed by the tokenization of the rest, at most 20
/// tokens). Disabled settings (multiplier 0, base < 1, last_n 0) give a no-op ("?dry");
/// `penalty_last_n` < 0 counts as 0.
pub fn dry(
    vocab: &dyn DryVocab,
    multiplier: f32,
    base: f32,
    allowed_length: i32,
    penalty_last_n: i32,
    seq_breakers: &[&[u8]],
) -> Box<dyn Sampler> {
    let penalty_last_n = penalty_last_n.max(0);
    if !dry_enabled(multiplier, base, penalty_last_n) {
        return empty("?dry");
    }
    let mut breakers: HashMap<i32, Vec<Vec<i32>>> = HashMap::new();
    for &breaker in seq_breakers {
        // A C string ends at its first NUL.
        let breaker = breaker.split(|&b| b == 0).next().unwrap_or(&[]);
        if breaker.is_empty() {
            continue;
        }
        let breaker = &breaker[..breaker.len().min(DRY_MAX_BREAKER_BYTES)];
        overlapping_token_sequences(vocab, breaker, &mut breakers);
    }
    Box::new(Dry {
        multiplier,
        base,
        allowed_length,
        penalty_last_n,
        breakers,
        recent: Recent::new(penalty_last_n as usize),
    })
}

/// DRY with breakers given directly as token sequences (head token first), as the reference's
/// `llama_sampler_init_dry_testing`; empty sequences are skipped.
pub fn dry_with_token_breakers(
    multiplier: f32,
    base: f32,
    allowed_length: i32,
    penalty_last_n: i32,
    seq_breakers: &[Vec<i32>],
) -> Box<dyn Sampler> {
    let penalty_last_n = penalty_last_n.max(0);
    if !dry_enabled(multiplier, base, penalty_last_n) {
        return empty("?dry");
    }
    let mut breakers: HashMap<i32, Vec<Vec<i32>>> = HashMap::new();
    for seq in seq_breakers {
        if let Some((&head, tail)) = seq.split_first() {
            breakers.entry(head).or_default().push(tail.to_vec());
        }
    }
    Box::new(Dry {
        multiplier,
        base,
        allowed_length,
        penalty_last_n,
        breakers,
        recent: Recent::new(penalty_last_n as usize),
    })
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// For every token: if its text contains `breaker`, the token alone breaks; otherwise for each
/// position where the text's tail is a prefix of `breaker`, the token followed by the
/// tokenization of the rest of `breaker` does (kept once per distinct tail).
fn overlapping_token_sequences(
    vocab: &dyn DryVocab,
    breaker: &[u8],
    out: &mut HashMap<i32, Vec<Vec<i32>>>,
) {
    for id in 0..vocab.n_tokens() as i32 {
        let word = vocab.token_text(id);
        if find_bytes(&word, breaker) {
            out.entry(id).or_default().push(Vec::new());
            continue;
        }
        for pos in 0..word.len() {
            if word[pos] != breaker[0] {
                continue;
            }
            // Compare the breaker against the rest of the word, as far as the word goes.
            let mut i = 1;
            let mut matched = true;
            while i < breaker.len() && pos + i < word.len() {
                if word[pos + i] != breaker[i] {
                    matched = false;
                    break;
                }
                i += 1;
            }
            if !matched {
                continue;
            }
            let mut tail = vocab.tokenize(&breaker[i..]);
            tail.truncate(DRY_MAX_TAIL_TOKENS);
            let tails = out.entry(id).or_default();
            if !tails.contains(&tail) {
                tails.push(tail);
            }
        }
    }
}

impl Sampler for Dry {
    fn name(&self) -> &'static str {
        "dry"
    }
    fn accept(&mut self, token: i32) {
        if !dry_enabled(self.multiplier, self.base, self.penalty_last_n) {
            return;
        }
        self.recent.push(token);
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        if !dry_enabled(self.multiplier, self.base, self.penalty_last_n) {
            return;
        }
        let last_n_repeat = (self.recent.len() as i64).min(self.penalty_last_n as i64) as i32;
        // Nothing seen yet: nothing repeats (a negative allowed_length gets past the first test).
        if last_n_repeat <= self.allowed_length || last_n_repeat == 0 {
            return;
        }
        let n = last_n_repeat as usize;
        let recent = &self.recent;

        // Step 1: the nearest breaker (longest match at that position) limits repetition.
        let mut rep_limit = last_n_repeat;
        for i in 0..n {
            let Some(tails) = self.breakers.get(&recent.rat(i)) else {
                continue;
            };
            let mut longest_match: i32 = -1;
            for tail in tails {
                let seq_len = tail.len() as i32;
                if seq_len > longest_match && seq_len <= i as i32 {
                    let matched = (0..tail.len()).all(|off| tail[off] == recent.rat(i - off - 1));
                    if matched {
                        longest_match = seq_len;
                    }
                }
            }
            if longest_match >= 0 {
                rep_limit = i as i32 - longest_match;
                break;
            }
        }
        if rep_limit < self.allowed_length {
            return;
        }

        // Step 2: for each position, how long a suffix of the context repeats ending there
        // (Z-algorithm over the reversed context), capped at rep_limit.
        let mut repeat_count = vec![0i32; n];
        let last = n - 1;
        let (mut lt, mut rt) = (0usize, 0usize);
        for k in 1..n {
            if k > rt {
                let mut len = 0usize;
                while len + k < n && recent.rat(len) == recent.rat(len + k) {
                    len += 1;
                }
                repeat_count[last - k] = (len as i32).min(rep_limit);
                if len > 0 {
                    lt = k;
                    rt = k + len - 1;
                }
            } else {
                let p = k - lt;
                let right_part_len = (rt - k + 1) as i32;
                if repeat_count[last - p] < right_part_len {
                    repeat_count[last - k] = repeat_count[last - p].min(rep_limit);
                } else {
                    let mut i = rt + 1;
                    while i < n && recent.rat(i) == recent.rat(i - k) {
                        i += 1;
                    }
                    repeat_count[last - k] = ((i - k) as i32).min(rep_limit);
                    lt = k;
                    rt = i - 1;
                }
            }
        }

        // Step 3: the longest repeat each next token would extend.
        let mut max_token_repeat: HashMap<i32, i32> = HashMap::new();
        for (i, &repeat_len) in repeat_count[..n - 1].iter().enumerate() {
            if repeat_len >= self.allowed_length {
                let token = recent.rat(n - 2 - i);
                let e = max_token_repeat.entry(token).or_insert(repeat_len);
                if *e < repeat_len {
                    *e = repeat_len;
                }
            }
        }

        // Step 4: penalise, capping the exponent so base^exp stays finite in float.
        const FLOAT_MAX_LOG: f32 = 88.722_84;
        let mut max_exponent = 0i32;
        if self.base > 1.000_001 {
            max_exponent = super::sort::c_float_to_int(FLOAT_MAX_LOG / self.base.ln());
        }
        for d in cur.live_mut() {
            let Some(&repeat) = max_token_repeat.get(&d.id) else {
                continue;
            };
            let single_token_breaker = self
                .breakers
                .get(&d.id)
                .is_some_and(|tails| tails.iter().any(|t| t.is_empty()));
            if single_token_breaker {
                continue;
            }
            let mut repeat_exp = repeat - self.allowed_length;
            if max_exponent > 0 && repeat_exp > max_exponent {
                repeat_exp = max_exponent;
            }
            // std::pow(float, int) computes in double.
            let penalty =
                (self.multiplier as f64 * (self.base as f64).powf(repeat_exp as f64)) as f32;
            d.logit -= penalty;
        }
        cur.sorted = false;
    }
    fn reset(&mut self) {
        self.recent.tokens.clear();
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}
