//! Byte-level BPE (`tokenizer.ggml.model = gpt2`), as llama.cpp does it: pre-tokenize into
//! words, then within each word start from single UTF-8 characters and repeatedly apply the
//! lowest-ranked merge among adjacent pairs (leftmost first on ties). llama.cpp merges texts;
//! merging ids instead is the same because every text a merge takes or makes has an id, past
//! the last token where it is no token (`Vocab::merge_id`), and a symbol's id names its text.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::unicode;
use super::vocab::Vocab;

const NONE: usize = usize::MAX;

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    /// The id this symbol's text is merged under (`Vocab::merge_id`), if any.
    id: Option<u32>,
    prev: usize,
    next: usize,
}

#[derive(PartialEq, Eq)]
struct Bigram {
    rank: u32,
    left: usize,
    right: usize,
    /// The tokens the pair was made of when queued (a stale pair no longer matches).
    ids: (u32, u32),
    result: u32,
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Lowest rank first, then the leftmost pair (reversed for the max-heap).
    fn cmp(&self, other: &Self) -> Ordering {
        other.rank.cmp(&self.rank).then(other.left.cmp(&self.left))
    }
}

/// Tokenizes `text` (one fragment between special tokens) and appends the ids to `out`.
pub fn tokenize(vocab: &Vocab, text: &[u8], out: &mut Vec<u32>) {
    let Some(pre) = &vocab.pre else {
        return;
    };
    let words = pre.split(text);
    let mut symbols = vec![];
    let mut queue = BinaryHeap::new();
    for word in words.iter() {
        merge_word(vocab, word, &mut symbols, &mut queue, out);
    }
}

fn merge_word(
    vocab: &Vocab,
    word: &[u8],
    symbols: &mut Vec<Symbol>,
    queue: &mut BinaryHeap<Bigram>,
    out: &mut Vec<u32>,
) {
    if word.is_empty() {
        return;
    }
    let whole =
        vocab.ignore_merges || (vocab.newline_words_whole && word.iter().all(|&b| b == b'\n'));
    if whole {
        if let Some(id) = vocab.id(word) {
            out.push(id);
            return;
        }
    }
    symbols.clear();
    queue.clear();
    let mut offset = 0;
    while offset < word.len() {
        let len = unicode::utf8_len(word[offset]).min(word.len() - offset);
        let index = symbols.len();
        symbols.push(Symbol {
            start: offset,
            len,
            id: vocab.merge_id(&word[offset..offset + len]),
            prev: if index == 0 { NONE } else { index - 1 },
            next: if offset + len == word.len() {
                NONE
            } else {
                index + 1
            },
        });
        offset += len;
    }

    let try_add =
        |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left: usize, right: usize| {
            if left == NONE || right == NONE {
                return;
            }
            let (Some(l), Some(r)) = (symbols[left].id, symbols[right].id) else {
                return;
            };
            if let Some(m) = vocab.merges.get(&(l, r)) {
                queue.push(Bigram {
                    rank: m.rank,
                    left,
                    right,
                    ids: (l, r),
                    result: m.result,
                });
            }
        };
    for i in 1..symbols.len() {
        try_add(queue, symbols, i - 1, i);
    }
    while let Some(b) = queue.pop() {
        let (l, r) = (symbols[b.left], symbols[b.right]);
        if l.len == 0 || r.len == 0 || (l.id, r.id) != (Some(b.ids.0), Some(b.ids.1)) {
            continue;
        }
        let s = &mut symbols[b.left];
        s.len += r.len;
        s.id = Some(b.result);
        s.next = r.next;
        symbols[b.right].len = 0;
        if r.next != NONE {
            symbols[r.next].prev = b.left;
        }
        let prev = symbols[b.left].prev;
        try_add(queue, symbols, prev, b.left);
        let next = symbols[b.left].next;
        try_add(queue, symbols, b.left, next);
    }

    let mut i = 0;
    while i != NONE {
        let s = symbols[i];
        match s.id.filter(|&id| (id as usize) < vocab.n_tokens()) {
            Some(id) => out.push(id),
            // A text that is no token (a character, or what a damaged merge made): its bytes,
            // each if it is a token by itself (`<0xNN>` for SentencePiece-style BPE), else
            // dropped, as llama.cpp does.
            None => {
                for &b in &word[s.start..s.start + s.len] {
                    let id = if vocab.byte_encode {
                        vocab.id(&[b])
                    } else {
                        vocab.id(format!("<0x{b:02X}>").as_bytes())
                    };
                    out.extend(id);
                }
            }
        }
        i = s.next;
    }
}
