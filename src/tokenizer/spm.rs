//! SentencePiece-style tokenization (`tokenizer.ggml.model = llama`), as llama.cpp does it:
//! start from single UTF-8 characters, repeatedly merge the adjacent pair whose concatenation
//! is the highest-scoring token (leftmost first on ties), and spell anything left that is not a
//! token with byte tokens `<0xNN>`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::unicode;
use super::vocab::Vocab;

const NONE: usize = usize::MAX;

/// A run of the text: symbols only ever grow by absorbing their right neighbour, so each is a
/// contiguous slice.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: usize,
    next: usize,
}

/// Kept small (16 bytes): the queue holds about one per character.
struct Bigram {
    score: f32,
    left: u32,
    right: u32,
    /// Bytes of the pair when queued; a pair whose symbols have changed since is stale.
    size: u32,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Higher score first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then(other.left.cmp(&self.left))
    }
}

/// The escaped space.
const SPACE: &[u8] = "\u{2581}".as_bytes();

/// Tokenizes `text` (spaces already escaped to U+2581) and appends the ids to `out`.
///
/// When the vocabulary allows it (`Vocab::spm_words_independent`), the text is cut before
/// each "▁" that follows another character, and the pieces are merged one at a time: no token
/// can span such a cut, so this gives the same tokens as merging the whole text at once, with
/// a small queue instead of one the size of the text.
pub fn tokenize(vocab: &Vocab, text: &[u8], out: &mut Vec<u32>) {
    // Characters as llama.cpp cuts them: the lead byte gives the length.
    let mut chars = Vec::with_capacity(text.len());
    let mut offset = 0;
    while offset < text.len() {
        let len = unicode::utf8_len(text[offset]).min(text.len() - offset);
        chars.push((offset, len));
        offset += len;
    }
    let mut symbols = vec![];
    let mut queue = BinaryHeap::new();
    let is_space = |&(start, len): &(usize, usize)| &text[start..start + len] == SPACE;
    let mut segment_start = 0;
    for i in 1..=chars.len() {
        let cut = i == chars.len()
            || (vocab.spm_words_independent
                && is_space(&chars[i])
                && !is_space(&chars[i - 1])
                && i - segment_start < u32::MAX as usize);
        if cut || i - segment_start >= u32::MAX as usize {
            merge(
                vocab,
                text,
                &chars[segment_start..i],
                &mut symbols,
                &mut queue,
                out,
            );
            segment_start = i;
        }
    }
}

/// Merges one run of characters and appends its tokens.
fn merge(
    vocab: &Vocab,
    text: &[u8],
    chars: &[(usize, usize)],
    symbols: &mut Vec<Symbol>,
    queue: &mut BinaryHeap<Bigram>,
    out: &mut Vec<u32>,
) {
    symbols.clear();
    queue.clear();
    symbols.extend(chars.iter().enumerate().map(|(i, &(start, len))| Symbol {
        start,
        len,
        prev: if i == 0 { NONE } else { i - 1 },
        next: if i + 1 == chars.len() { NONE } else { i + 1 },
    }));
    let try_add =
        |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left: usize, right: usize| {
            if left == NONE || right == NONE {
                return;
            }
            let (l, r) = (symbols[left], symbols[right]);
            let pair = &text[l.start..l.start + l.len + r.len];
            if let Some(id) = vocab.id(pair) {
                queue.push(Bigram {
                    score: vocab.score(id).unwrap_or(0.0),
                    left: left as u32,
                    right: right as u32,
                    size: pair.len() as u32,
                });
            }
        };
    for i in 1..symbols.len() {
        try_add(queue, symbols, i - 1, i);
    }
    while let Some(b) = queue.pop() {
        let (left, right) = (b.left as usize, b.right as usize);
        let (l, r) = (symbols[left], symbols[right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size as usize {
            continue;
        }
        symbols[left].len += r.len;
        symbols[right].len = 0;
        symbols[left].next = r.next;
        if r.next != NONE {
            symbols[r.next].prev = left;
        }
        let prev = symbols[left].prev;
        try_add(queue, symbols, prev, left);
        let next = symbols[left].next;
        try_add(queue, symbols, left, next);
    }

    let mut i = if symbols.is_empty() { NONE } else { 0 };
    while i != NONE {
        let s = symbols[i];
        let piece = &text[s.start..s.start + s.len];
        match vocab.id(piece) {
            Some(id) => out.push(id),
            // Only single characters can fail to be tokens (merges always make tokens); they
            // are spelled in bytes. A byte with no token at all is dropped (llama.cpp throws).
            None => out.extend(piece.iter().filter_map(|&b| vocab.byte_token(b))),
        }
        i = s.next;
    }
}
