//! GBNF grammar sampler: `llama_sampler_init_grammar` and `llama_sampler_init_grammar_lazy*`,
//! what llama-cpp-python uses for `grammar=` and JSON-schema constrained output.
//!
//! Three parts, following the reference's behaviour (llama-grammar.cpp at the pinned version):
//! - `parse`: GBNF text -> a rule table. Each rule is a flat list of `Element`s: alternatives
//!   separated by `Alt`, ended by `End`. Groups and repetitions become generated rules, exactly
//!   as the reference rewrites them, so rule ids match the reference's.
//! - the matcher: a set of stacks, each a list of positions (rule, index) into the table, the
//!   top (last) always at a terminal (a char class or a token). Accepting a code point advances
//!   every stack whose top matches; stacks that do not match die. An empty stack means "the
//!   grammar may end here". Token text is decoded as UTF-8 with an incomplete sequence carried
//!   over to the next token (`PartialUtf8`).
//! - `GrammarSampler`: `apply` sets logit = -inf for every candidate whose text cannot continue
//!   any stack; `accept` advances the stacks over the chosen token's text.
//!
//! Where the reference aborts the process (accepting a token the grammar cannot take, or an
//! end-of-generation token where the grammar cannot end), we enter a *failed* state instead: the
//! stacks are cleared, `failure()` says why, and `apply` from then on rejects every candidate
//! except end-of-generation tokens, so a chain can only stop. `reset` leaves the failed state.
//!
//! Limits the reference lacks (bad input must not crash or allocate without bound): nesting of
//! parentheses is capped at `MAX_NESTING`, the rule table at `MAX_ELEMENTS` elements, and `{m,n}`
//! with n < m is an error (the reference loops ~2^64 times on it).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::sampling::{Candidates, Sampler};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// The reference's `MAX_REPETITION_THRESHOLD`.
const MAX_REPETITION: u64 = 2000;
/// Deepest `( ... )` nesting accepted (ours; the reference recurses without bound).
pub const MAX_NESTING: usize = 128;
/// Most elements in the whole rule table (ours; about 64 MiB of elements).
pub const MAX_ELEMENTS: usize = 1 << 23;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementKind {
    /// End of a rule definition.
    End,
    /// Start of another alternative of the rule.
    Alt,
    /// Reference to rule `value`.
    RuleRef,
    /// A code point; starts a char class.
    Char,
    /// Starts a negated char class (`[^...]`), `value` is its first char.
    CharNot,
    /// Makes the preceding Char/CharAlt an inclusive range up to `value`.
    CharRngUpper,
    /// Another char (or range start) in the same class.
    CharAlt,
    /// Any code point (`.`).
    CharAny,
    /// Token id `value` (`<[id]>`).
    Token,
    /// Any token but `value` (`!<[id]>`).
    TokenNot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Element {
    pub kind: ElementKind,
    pub value: u32,
}

const fn el(kind: ElementKind, value: u32) -> Element {
    Element { kind, value }
}

/// rules[id] = elements of rule `id`, alternatives separated by Alt, ended by End.
pub type Rules = Vec<Vec<Element>>;

/// A parsed grammar: the rule table and the name -> id map.
#[derive(Clone, Debug)]
pub struct ParsedGrammar {
    pub rules: Rules,
    pub symbol_ids: HashMap<String, u32>,
}

/// Turns a token name like `<|eot_id|>` into token ids (the vocab's tokenize with
/// add_special = false, parse_special = true); only needed for `<name>` token references.
pub type TokenizeFn<'a> = &'a dyn Fn(&[u8]) -> Vec<i32>;

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

fn err_at(what: &str, src: &[u8], pos: usize) -> Error {
    let rest = &src[pos.min(src.len())..];
    let shown = String::from_utf8_lossy(&rest[..rest.len().min(40)]).into_owned();
    Error::bad_input(format!("grammar: {what} at byte {pos}: '{shown}'"))
}

/// One code point from grammar text (the reference's lenient decoder: the length comes from the
/// first byte, continuation bytes are not checked, the input end stops it).
fn decode_one(src: &[u8], pos: usize) -> (u32, usize) {
    const LEN: [usize; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    let first = src[pos];
    let len = LEN[(first >> 4) as usize];
    let mask = (1u32 << (8 - len)) - 1;
    let mut value = first as u32 & mask;
    let end = pos + len;
    let mut p = pos + 1;
    while p < end && p < src.len() && src[p] != 0 {
        value = (value << 6) + (src[p] as u32 & 0x3F);
        p += 1;
    }
    (value, p)
}

struct Parser<'a> {
    src: &'a [u8],
    tokenize: Option<TokenizeFn<'a>>,
    symbol_ids: HashMap<String, u32>,
    rules: Rules,
    /// Elements created so far (copies included); capped at MAX_ELEMENTS.
    n_elements: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn at(&self, pos: usize) -> u8 {
        // The end of input reads as NUL, like the reference's C string.
        self.src.get(pos).copied().unwrap_or(0)
    }

    fn charge(&mut self, n: usize) -> Result<()> {
        self.n_elements = self.n_elements.saturating_add(n);
        if self.n_elements > MAX_ELEMENTS {
            return Err(Error::bad_input(format!(
                "grammar: more than {MAX_ELEMENTS} elements after expanding repetitions"
            )));
        }
        Ok(())
    }

    fn push(&mut self, rule: &mut Vec<Element>, e: Element) -> Result<()> {
        self.charge(1)?;
        rule.push(e);
        Ok(())
    }

    fn space(&self, mut pos: usize, newline_ok: bool) -> usize {
        loop {
            let c = self.at(pos);
            if c == b'#' {
                while !matches!(self.at(pos), 0 | b'\r' | b'\n') {
                    pos += 1;
                }
            } else if c == b' ' || c == b'\t' || (newline_ok && (c == b'\r' || c == b'\n')) {
                pos += 1;
            } else {
                return pos;
            }
        }
    }

    fn name_end(&self, pos: usize) -> Result<usize> {
        let mut p = pos;
        while is_word_char(self.at(p)) {
            p += 1;
        }
        if p == pos {
            return Err(err_at("expecting name", self.src, pos));
        }
        Ok(p)
    }

    /// Digits at `pos` -> (value, end); error when none or when the value overflows u64.
    fn int(&self, pos: usize) -> Result<(u64, usize)> {
        let mut p = pos;
        let mut value: u64 = 0;
        while is_digit(self.at(p)) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add((self.at(p) - b'0') as u64))
                .ok_or_else(|| err_at("integer too large", self.src, pos))?;
            p += 1;
        }
        if p == pos {
            return Err(err_at("expecting integer", self.src, pos));
        }
        Ok((value, p))
    }

    fn hex(&self, pos: usize, size: usize) -> Result<(u32, usize)> {
        let mut value: u32 = 0;
        let mut p = pos;
        while p < pos + size {
            let Some(d) = (self.at(p) as char).to_digit(16) else {
                break;
            };
            value = (value << 4) + d;
            p += 1;
        }
        if p != pos + size {
            return Err(err_at(
                &format!("expecting {size} hex chars"),
                self.src,
                pos,
            ));
        }
        Ok((value, p))
    }

    /// One literal char (escape or UTF-8) -> (code point, end).
    fn char(&self, pos: usize) -> Result<(u32, usize)> {
        let c = self.at(pos);
        if c == b'\\' {
            return match self.at(pos + 1) {
                b'x' => self.hex(pos + 2, 2),
                b'u' => self.hex(pos + 2, 4),
                b'U' => self.hex(pos + 2, 8),
                b't' => Ok(('\t' as u32, pos + 2)),
                b'r' => Ok(('\r' as u32, pos + 2)),
                b'n' => Ok(('\n' as u32, pos + 2)),
                c @ (b'\\' | b'"' | b'[' | b']' | b'-') => Ok((c as u32, pos + 2)),
                _ => Err(err_at("unknown escape", self.src, pos)),
            };
        }
        if c != 0 {
            return Ok(decode_one(self.src, pos));
        }
        Err(err_at("unexpected end of input", self.src, pos))
    }

    /// `<[id]>` or `<name>` at `pos` -> (token id, end).
    fn token(&self, pos: usize) -> Result<(u32, usize)> {
        let start = pos;
        if self.at(pos) != b'<' {
            return Err(err_at("expecting '<'", self.src, pos));
        }
        let mut p = pos + 1;
        if self.at(p) == b'[' {
            p += 1;
            let (id, end) = self.int(p)?;
            let id = u32::try_from(id).map_err(|_| err_at("token id too big", self.src, p))?;
            p = end;
            if self.at(p) != b']' {
                return Err(err_at("expecting ']'", self.src, p));
            }
            p += 1;
            if self.at(p) != b'>' {
                return Err(err_at("expecting '>'", self.src, p));
            }
            return Ok((id, p + 1));
        }
        let Some(tokenize) = self.tokenize else {
            return Err(err_at("no vocab to parse token", self.src, start));
        };
        while !matches!(self.at(p), 0 | b'>') {
            p += 1;
        }
        if self.at(p) != b'>' {
            return Err(err_at("expecting '>'", self.src, p));
        }
        p += 1;
        let ids = tokenize(&self.src[start..p]);
        match ids.as_slice() {
            [id] if *id >= 0 => Ok((*id as u32, p)),
            _ => Err(err_at(
                "token text is not exactly one token",
                self.src,
                start,
            )),
        }
    }

    fn symbol_id(&mut self, name: &str) -> u32 {
        let next = self.symbol_ids.len() as u32;
        *self.symbol_ids.entry(name.to_string()).or_insert(next)
    }

    fn generate_symbol_id(&mut self, base: &str) -> u32 {
        let next = self.symbol_ids.len() as u32;
        self.symbol_ids.insert(format!("{base}_{next}"), next);
        next
    }

    fn add_rule(&mut self, id: u32, rule: Vec<Element>) {
        let id = id as usize;
        if self.rules.len() <= id {
            self.rules.resize(id + 1, Vec::new());
        }
        self.rules[id] = rule;
    }

    fn alternates(&mut self, pos: usize, name: &str, id: u32, nested: bool) -> Result<usize> {
        let mut rule = Vec::new();
        let mut pos = self.sequence(pos, name, &mut rule, nested)?;
        while self.at(pos) == b'|' {
            self.push(&mut rule, el(ElementKind::Alt, 0))?;
            pos = self.space(pos + 1, true);
            pos = self.sequence(pos, name, &mut rule, nested)?;
        }
        self.push(&mut rule, el(ElementKind::End, 0))?;
        self.add_rule(id, rule);
        Ok(pos)
    }

    /// Rewrites the last item `rule[last_start..]` as repeated min..=max times (max None = no
    /// limit), the reference's way: m copies inline, then a chain of generated optional rules.
    fn repeat(
        &mut self,
        rule: &mut Vec<Element>,
        last_start: usize,
        n_prev_rules: &mut u64,
        name: &str,
        (min, max): (u64, Option<u64>),
        pos: usize,
    ) -> Result<()> {
        if last_start == rule.len() {
            return Err(err_at("expecting preceding item to */+/?/{", self.src, pos));
        }
        if let Some(max) = max {
            if max < min {
                return Err(err_at(
                    "repetition maximum below its minimum",
                    self.src,
                    pos,
                ));
            }
        }
        let prev: Vec<Element> = rule[last_start..].to_vec();
        let total_rules = match max {
            Some(max) if max > 0 => max,
            _ => min.max(1),
        };
        if n_prev_rules.saturating_mul(total_rules) > MAX_REPETITION {
            return Err(err_at(
                "repetition count times rule complexity exceeds 2000",
                self.src,
                pos,
            ));
        }
        if min == 0 {
            rule.truncate(last_start);
        } else {
            let copies = (min - 1) as usize;
            self.charge(copies.saturating_mul(prev.len()))?;
            for _ in 1..min {
                rule.extend_from_slice(&prev);
            }
        }
        let n_opt = match max {
            None => 1,
            Some(max) => max - min,
        };
        self.charge((n_opt as usize).saturating_mul(prev.len() + 3))?;
        let mut last_rec_id = 0u32;
        for i in 0..n_opt {
            let mut rec_rule = prev.clone();
            let rec_id = self.generate_symbol_id(name);
            if i > 0 || max.is_none() {
                let target = if max.is_none() { rec_id } else { last_rec_id };
                rec_rule.push(el(ElementKind::RuleRef, target));
            }
            rec_rule.push(el(ElementKind::Alt, 0));
            rec_rule.push(el(ElementKind::End, 0));
            self.add_rule(rec_id, rec_rule);
            last_rec_id = rec_id;
        }
        if n_opt > 0 {
            self.push(rule, el(ElementKind::RuleRef, last_rec_id))?;
        }
        *n_prev_rules = n_prev_rules.saturating_mul(total_rules).max(1);
        Ok(())
    }

    fn sequence(
        &mut self,
        mut pos: usize,
        name: &str,
        rule: &mut Vec<Element>,
        nested: bool,
    ) -> Result<usize> {
        let mut last_start = rule.len();
        let mut n_prev_rules: u64 = 1;
        loop {
            let c = self.at(pos);
            if c == 0 {
                break;
            }
            if c == b'"' {
                pos += 1;
                last_start = rule.len();
                n_prev_rules = 1;
                while self.at(pos) != b'"' {
                    if self.at(pos) == 0 {
                        return Err(err_at("unexpected end of input", self.src, pos));
                    }
                    let (chr, end) = self.char(pos)?;
                    pos = end;
                    self.push(rule, el(ElementKind::Char, chr))?;
                }
                pos = self.space(pos + 1, nested);
            } else if c == b'[' {
                pos += 1;
                let mut start_kind = ElementKind::Char;
                if self.at(pos) == b'^' {
                    pos += 1;
                    start_kind = ElementKind::CharNot;
                }
                last_start = rule.len();
                n_prev_rules = 1;
                while self.at(pos) != b']' {
                    if self.at(pos) == 0 {
                        return Err(err_at("unexpected end of input", self.src, pos));
                    }
                    let (chr, end) = self.char(pos)?;
                    pos = end;
                    let kind = if last_start < rule.len() {
                        ElementKind::CharAlt
                    } else {
                        start_kind
                    };
                    self.push(rule, el(kind, chr))?;
                    if self.at(pos) == b'-' && self.at(pos + 1) != b']' {
                        if self.at(pos + 1) == 0 {
                            return Err(err_at("unexpected end of input", self.src, pos));
                        }
                        let (upper, end) = self.char(pos + 1)?;
                        pos = end;
                        self.push(rule, el(ElementKind::CharRngUpper, upper))?;
                    }
                }
                pos = self.space(pos + 1, nested);
            } else if c == b'<' || c == b'!' {
                let mut kind = ElementKind::Token;
                if c == b'!' {
                    kind = ElementKind::TokenNot;
                    pos += 1;
                }
                let (id, end) = self.token(pos)?;
                last_start = rule.len();
                n_prev_rules = 1;
                self.push(rule, el(kind, id))?;
                pos = self.space(end, nested);
            } else if is_word_char(c) {
                let end = self.name_end(pos)?;
                let ref_name = String::from_utf8_lossy(&self.src[pos..end]).into_owned();
                let id = self.symbol_id(&ref_name);
                pos = self.space(end, nested);
                last_start = rule.len();
                n_prev_rules = 1;
                self.push(rule, el(ElementKind::RuleRef, id))?;
            } else if c == b'(' {
                if self.depth >= MAX_NESTING {
                    return Err(err_at(
                        &format!("parentheses nested deeper than {MAX_NESTING}"),
                        self.src,
                        pos,
                    ));
                }
                pos = self.space(pos + 1, true);
                let n_before = self.symbol_ids.len();
                let sub_id = self.generate_symbol_id(name);
                self.depth += 1;
                pos = self.alternates(pos, name, sub_id, true)?;
                self.depth -= 1;
                n_prev_rules = (self.symbol_ids.len().saturating_sub(n_before) as u64).max(1);
                last_start = rule.len();
                self.push(rule, el(ElementKind::RuleRef, sub_id))?;
                if self.at(pos) != b')' {
                    return Err(err_at("expecting ')'", self.src, pos));
                }
                pos = self.space(pos + 1, nested);
            } else if c == b'.' {
                last_start = rule.len();
                n_prev_rules = 1;
                self.push(rule, el(ElementKind::CharAny, 0))?;
                pos = self.space(pos + 1, nested);
            } else if c == b'*' || c == b'+' || c == b'?' {
                let at = pos;
                pos = self.space(pos + 1, nested);
                let (min, max) = match c {
                    b'*' => (0, None),
                    b'+' => (1, None),
                    _ => (0, Some(1)),
                };
                self.repeat(rule, last_start, &mut n_prev_rules, name, (min, max), at)?;
            } else if c == b'{' {
                let at = pos;
                pos = self.space(pos + 1, nested);
                if !is_digit(self.at(pos)) {
                    return Err(err_at("expecting an int", self.src, pos));
                }
                let (min, end) = self.int(pos)?;
                pos = self.space(end, nested);
                let mut max = None;
                if self.at(pos) == b'}' {
                    max = Some(min);
                    pos = self.space(pos + 1, nested);
                } else if self.at(pos) == b',' {
                    pos = self.space(pos + 1, nested);
                    if is_digit(self.at(pos)) {
                        let (m, end) = self.int(pos)?;
                        max = Some(m);
                        pos = self.space(end, nested);
                    }
                    if self.at(pos) != b'}' {
                        return Err(err_at("expecting '}'", self.src, pos));
                    }
                    pos = self.space(pos + 1, nested);
                } else {
                    return Err(err_at("expecting ','", self.src, pos));
                }
                if min > MAX_REPETITION {
                    return Err(err_at("number of repetitions exceeds 2000", self.src, at));
                }
                // As the reference: a maximum above the threshold means "no maximum".
                if max.is_some_and(|m| m > MAX_REPETITION) {
                    max = None;
                }
                self.repeat(rule, last_start, &mut n_prev_rules, name, (min, max), at)?;
            } else {
                break;
            }
        }
        Ok(pos)
    }

    fn rule(&mut self, pos: usize) -> Result<usize> {
        let name_end = self.name_end(pos)?;
        let after = self.space(name_end, false);
        let name = String::from_utf8_lossy(&self.src[pos..name_end]).into_owned();
        let id = self.symbol_id(&name);
        if !(self.at(after) == b':' && self.at(after + 1) == b':' && self.at(after + 2) == b'=') {
            return Err(err_at("expecting ::=", self.src, after));
        }
        let body = self.space(after + 3, true);
        let mut pos = self.alternates(body, &name, id, false)?;
        match self.at(pos) {
            b'\r' => pos += if self.at(pos + 1) == b'\n' { 2 } else { 1 },
            b'\n' => pos += 1,
            0 => {}
            _ => return Err(err_at("expecting newline or end", self.src, pos)),
        }
        Ok(self.space(pos, true))
    }
}

/// Parses GBNF text into a rule table. Text after a NUL byte is ignored (as a C string).
/// `tokenize` resolves `<name>` token references; without it they are an error.
pub fn parse(text: &str, tokenize: Option<TokenizeFn<'_>>) -> Result<ParsedGrammar> {
    let bytes = text.as_bytes();
    let src = &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())];
    let mut p = Parser {
        src,
        tokenize,
        symbol_ids: HashMap::new(),
        rules: Vec::new(),
        n_elements: 0,
        depth: 0,
    };
    let mut pos = p.space(0, true);
    while p.at(pos) != 0 {
        pos = p.rule(pos)?;
    }
    let name_of = |id: u32, ids: &HashMap<String, u32>| {
        ids.iter()
            .find(|(_, &v)| v == id)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| format!("#{id}"))
    };
    for (id, rule) in p.rules.iter().enumerate() {
        if rule.is_empty() {
            return Err(Error::bad_input(format!(
                "grammar: undefined rule '{}'",
                name_of(id as u32, &p.symbol_ids)
            )));
        }
        for e in rule {
            if e.kind == ElementKind::RuleRef
                && p.rules.get(e.value as usize).is_none_or(|r| r.is_empty())
            {
                return Err(Error::bad_input(format!(
                    "grammar: undefined rule '{}'",
                    name_of(e.value, &p.symbol_ids)
                )));
            }
        }
    }
    if p.rules.is_empty() {
        return Err(Error::bad_input("grammar: no rules"));
    }
    Ok(ParsedGrammar {
        rules: p.rules,
        symbol_ids: p.symbol_ids,
    })
}

fn is_end_of_sequence(e: Element) -> bool {
    matches!(e.kind, ElementKind::End | ElementKind::Alt)
}

/// The reference's left-recursion check (a rule reachable from itself through leftmost
/// references), iterative so a long chain of rules cannot overflow the stack. Returns the first
/// offending rule. It looks past every rule that can match empty text, also through other
/// rules (`ws ::= [ ]*` is `ws ::= ws_1`, `ws_1 ::= [ ] ws_1 |`): the reference looks past
/// directly empty rules only, so it accepts `t ::= "("* ws e`, `e ::= t` and then recurses
/// without end when it expands the stacks (found by fuzz/grammar; ours took minutes and GBs).
fn find_left_recursion(rules: &Rules) -> Option<usize> {
    let n = rules.len();
    let mut visited = vec![false; n];
    let mut in_progress = vec![false; n];
    let mut may_be_empty = vec![false; n];

    // A rule may be empty when one alternative holds only references to rules that may be
    // empty (none at all included): to a fixed point.
    loop {
        let mut changed = false;
        for (i, rule) in rules.iter().enumerate() {
            if may_be_empty[i] {
                continue;
            }
            let mut all_empty = true;
            for &e in rule {
                if is_end_of_sequence(e) {
                    if all_empty {
                        may_be_empty[i] = true;
                        changed = true;
                        break;
                    }
                    all_empty = true;
                } else if e.kind != ElementKind::RuleRef
                    || !may_be_empty.get(e.value as usize).copied().unwrap_or(false)
                {
                    all_empty = false;
                }
            }
        }
        if !changed {
            break;
        }
    }

    for start in 0..n {
        if visited[start] {
            continue;
        }
        // Frames: (rule, next element index, "still at a leftmost position").
        let mut frames: Vec<(usize, usize, bool)> = vec![(start, 0, true)];
        in_progress[start] = true;
        while let Some(frame) = frames.last_mut() {
            let (rule, idx, recurse) = *frame;
            let Some(&e) = rules[rule].get(idx) else {
                in_progress[rule] = false;
                visited[rule] = true;
                frames.pop();
                if let Some(parent) = frames.last_mut() {
                    // Finish the parent's RuleRef element whose child just returned.
                    let child = rule;
                    if !may_be_empty[child] {
                        parent.2 = false;
                    }
                    parent.1 += 1;
                }
                continue;
            };
            if e.kind == ElementKind::RuleRef && recurse {
                let child = e.value as usize;
                if in_progress[child] {
                    return Some(child);
                }
                if visited[child] {
                    if !may_be_empty[child] {
                        frame.2 = false;
                    }
                    frame.1 += 1;
                } else {
                    in_progress[child] = true;
                    frames.push((child, 0, true));
                }
            } else {
                frame.2 = is_end_of_sequence(e);
                frame.1 += 1;
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Matcher
// ---------------------------------------------------------------------------------------------

/// A position in the rule table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pos {
    pub rule: u32,
    pub idx: u32,
}

/// A pushdown stack of positions; the last is the next terminal to match.
pub type Stack = Vec<Pos>;

fn at(rules: &Rules, p: Pos) -> Element {
    rules[p.rule as usize][p.idx as usize]
}

fn next(p: Pos) -> Pos {
    Pos {
        rule: p.rule,
        idx: p.idx + 1,
    }
}

/// Incomplete UTF-8 sequence carried between tokens: the bits so far and how many continuation
/// bytes are still due; n_remain = -1 marks an invalid sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartialUtf8 {
    pub value: u32,
    pub n_remain: i32,
}

/// Decodes `bytes` (up to the first NUL) continuing `partial`, as the reference: code points
/// decoded, and the partial sequence left at the end. An invalid sequence gives no code points
/// and n_remain = -1.
pub fn decode_utf8(bytes: &[u8], partial: PartialUtf8) -> (Vec<u32>, PartialUtf8) {
    const LEN: [i32; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 3, 4];
    let bytes = &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())];
    let mut cps = Vec::with_capacity(bytes.len());
    let mut value = partial.value;
    let mut n_remain = partial.n_remain;
    let mut pos = 0;
    while pos < bytes.len() && n_remain > 0 {
        let b = bytes[pos];
        if b >> 6 != 2 {
            return (
                Vec::new(),
                PartialUtf8 {
                    value: 0,
                    n_remain: -1,
                },
            );
        }
        value = (value << 6) + (b as u32 & 0x3F);
        pos += 1;
        n_remain -= 1;
    }
    if partial.n_remain > 0 && n_remain == 0 {
        cps.push(value);
    }
    while pos < bytes.len() {
        let first = bytes[pos];
        n_remain = LEN[(first >> 4) as usize] - 1;
        if n_remain < 0 {
            return (Vec::new(), PartialUtf8 { value: 0, n_remain });
        }
        let mask = (1u32 << (7 - n_remain)) - 1;
        value = first as u32 & mask;
        pos += 1;
        while pos < bytes.len() && n_remain > 0 {
            value = (value << 6) + (bytes[pos] as u32 & 0x3F);
            pos += 1;
            n_remain -= 1;
        }
        if n_remain == 0 {
            cps.push(value);
        }
    }
    (cps, PartialUtf8 { value, n_remain })
}

fn is_positive_class(kind: ElementKind) -> bool {
    matches!(kind, ElementKind::Char | ElementKind::CharAny)
}

/// Does `chr` satisfy the char class starting at `p`? Also returns the position after the class.
fn match_char(rules: &Rules, p: Pos, chr: u32) -> (bool, Pos) {
    let rule = &rules[p.rule as usize];
    let mut i = p.idx as usize;
    let positive = is_positive_class(rule[i].kind);
    let mut found = false;
    loop {
        if rule[i + 1].kind == ElementKind::CharRngUpper {
            found = found || (rule[i].value <= chr && chr <= rule[i + 1].value);
            i += 2;
        } else if rule[i].kind == ElementKind::CharAny {
            found = true;
            i += 1;
        } else {
            found = found || rule[i].value == chr;
            i += 1;
        }
        if rule[i].kind != ElementKind::CharAlt {
            break;
        }
    }
    (
        found == positive,
        Pos {
            rule: p.rule,
            idx: i as u32,
        },
    )
}

/// Could some completion of the partial UTF-8 sequence satisfy the char class at `p`?
fn match_partial_char(rules: &Rules, p: Pos, partial: PartialUtf8) -> bool {
    let rule = &rules[p.rule as usize];
    let mut i = p.idx as usize;
    let positive = is_positive_class(rule[i].kind);
    let n_remain = partial.n_remain;
    // Invalid sequence, or a 7-bit char split over 2 bytes (overlong).
    if n_remain < 0 || (n_remain == 1 && partial.value < 2) {
        return false;
    }
    let shift = (n_remain * 6) as u32;
    let mut low = partial.value.checked_shl(shift).unwrap_or(0);
    let high = low | ((1u32 << shift) - 1);
    if low == 0 {
        if n_remain == 2 {
            low = 1 << 11;
        } else if n_remain == 3 {
            low = 1 << 16;
        }
    }
    loop {
        if rule[i + 1].kind == ElementKind::CharRngUpper {
            if rule[i].value <= high && low <= rule[i + 1].value {
                return positive;
            }
            i += 2;
        } else if rule[i].kind == ElementKind::CharAny {
            return true;
        } else {
            if low <= rule[i].value && rule[i].value <= high {
                return positive;
            }
            i += 1;
        }
        if rule[i].kind != ElementKind::CharAlt {
            break;
        }
    }
    !positive
}

fn is_token_element(e: Element) -> bool {
    matches!(e.kind, ElementKind::Token | ElementKind::TokenNot)
}

fn match_token(e: Element, token: i32) -> bool {
    match e.kind {
        ElementKind::Token => e.value == token as u32,
        ElementKind::TokenNot => e.value != token as u32,
        _ => false,
    }
}

/// Expands `stack` until every resulting stack is empty or has a terminal on top, adding the
/// new ones (without duplicates) to `out`.
fn advance_stack(rules: &Rules, stack: Stack, out: &mut Vec<Stack>, out_set: &mut HashSet<Stack>) {
    let mut todo = vec![stack];
    let mut seen: HashSet<Stack> = HashSet::new();
    while let Some(cur) = todo.pop() {
        if !seen.insert(cur.clone()) {
            continue;
        }
        let Some(&top) = cur.last() else {
            if out_set.insert(cur.clone()) {
                out.push(cur);
            }
            continue;
        };
        let e = at(rules, top);
        match e.kind {
            ElementKind::RuleRef => {
                let sub = &rules[e.value as usize];
                let mut i = 0usize;
                loop {
                    let mut next_stack: Stack = cur[..cur.len() - 1].to_vec();
                    if !is_end_of_sequence(at(rules, next(top))) {
                        next_stack.push(next(top));
                    }
                    if !is_end_of_sequence(sub[i]) {
                        next_stack.push(Pos {
                            rule: e.value,
                            idx: i as u32,
                        });
                    }
                    todo.push(next_stack);
                    while !is_end_of_sequence(sub[i]) {
                        i += 1;
                    }
                    if sub[i].kind == ElementKind::Alt {
                        i += 1;
                    } else {
                        break;
                    }
                }
            }
            ElementKind::Char
            | ElementKind::CharNot
            | ElementKind::CharAny
            | ElementKind::Token
            | ElementKind::TokenNot => {
                if out_set.insert(cur.clone()) {
                    out.push(cur);
                }
            }
            // Never on top of a stack: the parser and advance keep positions at the start of a
            // terminal or rule reference.
            ElementKind::End
            | ElementKind::Alt
            | ElementKind::CharRngUpper
            | ElementKind::CharAlt => {}
        }
    }
}

/// Stacks at the start of the root rule.
fn initial_stacks(rules: &Rules, root: u32) -> Vec<Stack> {
    let mut out = Vec::new();
    let mut set = HashSet::new();
    let rule = &rules[root as usize];
    let mut i = 0usize;
    loop {
        let mut stack = Stack::new();
        if !is_end_of_sequence(rule[i]) {
            stack.push(Pos {
                rule: root,
                idx: i as u32,
            });
        }
        advance_stack(rules, stack, &mut out, &mut set);
        while !is_end_of_sequence(rule[i]) {
            i += 1;
        }
        if rule[i].kind == ElementKind::Alt {
            i += 1;
        } else {
            break;
        }
    }
    out
}

/// Advances one stack over one code point (a stack with a token on top dies).
fn accept_chr(
    rules: &Rules,
    stack: &Stack,
    chr: u32,
    out: &mut Vec<Stack>,
    set: &mut HashSet<Stack>,
) {
    let Some(&top) = stack.last() else {
        return;
    };
    if is_token_element(at(rules, top)) {
        return;
    }
    let (ok, after) = match_char(rules, top, chr);
    if ok {
        let mut new_stack: Stack = stack[..stack.len() - 1].to_vec();
        if !is_end_of_sequence(at(rules, after)) {
            new_stack.push(after);
        }
        advance_stack(rules, new_stack, out, set);
    }
}

/// Stacks after accepting `token` with text `code_points` (the reference's accept_token).
fn accept_token_stacks(
    rules: &Rules,
    stacks: &[Stack],
    token: i32,
    code_points: &[u32],
) -> Vec<Stack> {
    let mut new_stacks = Vec::new();
    let mut new_set = HashSet::new();
    for stack in stacks {
        let Some(&top) = stack.last() else {
            continue;
        };
        let e = at(rules, top);
        if is_token_element(e) {
            if match_token(e, token) {
                let mut s: Stack = stack[..stack.len() - 1].to_vec();
                if !is_end_of_sequence(at(rules, next(top))) {
                    s.push(next(top));
                }
                advance_stack(rules, s, &mut new_stacks, &mut new_set);
            }
            continue;
        }
        let mut current = vec![stack.clone()];
        for &chr in code_points {
            let mut next_stacks = Vec::new();
            let mut next_set = HashSet::new();
            for s in &current {
                accept_chr(rules, s, chr, &mut next_stacks, &mut next_set);
            }
            current = next_stacks;
            if current.is_empty() {
                break;
            }
        }
        for s in current {
            if new_set.insert(s.clone()) {
                new_stacks.push(s);
            }
        }
    }
    new_stacks
}

/// One candidate's decoded text: code points `cps[start..end]` (ended early by a 0 code point,
/// which the reference reads as its terminator), the trailing partial sequence, its token id.
struct Decoded {
    token: i32,
    start: usize,
    end: usize,
    partial: PartialUtf8,
}

/// Which candidates can continue at least one stack. Iterative form of the reference's
/// recursive rejection (same result: a candidate is allowed iff some stack accepts it).
fn allowed_candidates(
    rules: &Rules,
    stacks: &[Stack],
    cps: &[u32],
    cands: &[Decoded],
) -> Vec<bool> {
    let mut allowed = vec![false; cands.len()];
    // Work items: a stack and the candidates still to check against it, with how many of each
    // one's code points are already consumed.
    let all: Vec<(u32, u32)> = (0..cands.len() as u32).map(|i| (i, 0)).collect();
    let mut work: Vec<(Stack, Vec<(u32, u32)>)> =
        stacks.iter().map(|s| (s.clone(), all.clone())).collect();
    while let Some((stack, mut items)) = work.pop() {
        items.retain(|&(c, _)| !allowed[c as usize]);
        if items.is_empty() {
            continue;
        }
        let chr_at = |c: u32, off: u32| -> Option<u32> {
            let d = &cands[c as usize];
            let i = d.start + off as usize;
            (i < d.end).then(|| cps[i])
        };
        let Some(&top) = stack.last() else {
            for &(c, off) in &items {
                if chr_at(c, off).is_none() && cands[c as usize].partial.n_remain == 0 {
                    allowed[c as usize] = true;
                }
            }
            continue;
        };
        let e = at(rules, top);
        if is_token_element(e) {
            for &(c, off) in &items {
                let d = &cands[c as usize];
                let ok = match chr_at(c, off) {
                    None => d.partial.n_remain == 0,
                    Some(_) => match_token(e, d.token),
                };
                if ok {
                    allowed[c as usize] = true;
                }
            }
            continue;
        }
        let mut moving = Vec::new();
        for &(c, off) in &items {
            let d = &cands[c as usize];
            match chr_at(c, off) {
                None => {
                    if d.partial.n_remain == 0 || match_partial_char(rules, top, d.partial) {
                        allowed[c as usize] = true;
                    }
                }
                Some(chr) => {
                    if match_char(rules, top, chr).0 {
                        moving.push((c, off + 1));
                    }
                }
            }
        }
        if moving.is_empty() {
            continue;
        }
        let after = match_char(rules, top, 0).1;
        let mut stack_after: Stack = stack[..stack.len() - 1].to_vec();
        if !is_end_of_sequence(at(rules, after)) {
            stack_after.push(after);
        }
        let mut next_stacks = Vec::new();
        advance_stack(rules, stack_after, &mut next_stacks, &mut HashSet::new());
        for s in next_stacks {
            work.push((s, moving.clone()));
        }
    }
    allowed
}

// ---------------------------------------------------------------------------------------------
// Sampler
// ---------------------------------------------------------------------------------------------

/// What the grammar sampler needs from a vocabulary: each token's text as the reference's
/// `token_to_piece` cache holds it (special tokens rendered, no lstrip), and which tokens end
/// generation. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct GrammarVocab {
    /// [n_vocab] token text bytes.
    pub pieces: Arc<Vec<Vec<u8>>>,
    /// [n_vocab] true for end-of-generation tokens.
    pub eog: Arc<Vec<bool>>,
}

impl GrammarVocab {
    pub fn new(pieces: Vec<Vec<u8>>, eog_tokens: &[i32]) -> GrammarVocab {
        let mut eog = vec![false; pieces.len()];
        for &t in eog_tokens {
            if let Some(slot) = usize::try_from(t).ok().and_then(|t| eog.get_mut(t)) {
                *slot = true;
            }
        }
        GrammarVocab {
            pieces: Arc::new(pieces),
            eog: Arc::new(eog),
        }
    }

    /// Pieces = `token_to_piece(id, 0, special = true)` (what the reference caches), EOG set from
    /// the tokenizer.
    pub fn from_tokenizer(tok: &Tokenizer) -> GrammarVocab {
        let pieces: Vec<Vec<u8>> = (0..tok.n_vocab() as u32)
            .map(|id| tok.token_to_piece(id, 0, true).unwrap_or_default())
            .collect();
        let eog: Vec<i32> = tok.eog_tokens().into_iter().map(|t| t as i32).collect();
        GrammarVocab::new(pieces, &eog)
    }

    fn piece(&self, token: i32) -> &[u8] {
        usize::try_from(token)
            .ok()
            .and_then(|t| self.pieces.get(t))
            .map_or(&[][..], |p| p.as_slice())
    }

    fn is_eog(&self, token: i32) -> bool {
        usize::try_from(token)
            .ok()
            .and_then(|t| self.eog.get(t).copied())
            .unwrap_or(false)
    }
}

/// One trigger regex of a lazy grammar.
#[derive(Clone, Debug)]
struct TriggerPattern {
    pattern: String,
    regex: regex::bytes::Regex,
}

impl TriggerPattern {
    /// Where the grammar starts in `input`: at the first non-empty capture group of the first
    /// match, else at the match; None without a match.
    fn find(&self, input: &[u8]) -> Option<usize> {
        let caps = self.regex.captures(input)?;
        let whole = caps.get(0)?;
        Some(
            caps.iter()
                .skip(1)
                .flatten()
                .find(|m| !m.is_empty())
                .map_or(whole.start(), |m| m.start()),
        )
    }
}

/// Lazy-grammar state: output is buffered until a trigger token or pattern shows up.
#[derive(Clone, Debug)]
struct Lazy {
    awaiting: bool,
    buffer: Vec<u8>,
    /// (token, start, end) of each buffered token's text in `buffer`.
    positions: Vec<(i32, usize, usize)>,
    trigger_tokens: Vec<i32>,
    patterns: Arc<Vec<TriggerPattern>>,
}

#[derive(Clone, Debug)]
struct Active {
    rules: Arc<Rules>,
    root: u32,
    stacks: Vec<Stack>,
    partial: PartialUtf8,
    failure: Option<String>,
    lazy: Option<Lazy>,
}

/// The grammar sampler (`llama_sampler_init_grammar*`). Built with an empty grammar string it
/// does nothing, like the reference.
#[derive(Clone, Debug)]
pub struct GrammarSampler {
    vocab: GrammarVocab,
    active: Option<Active>,
}

/// `llama_sampler_init_grammar(vocab, grammar_str, grammar_root)`. An empty `grammar_str` gives
/// a sampler that does nothing. Errors: parse errors, a missing root rule, left recursion.
/// `tokenize` resolves `<name>` token references (see `TokenizeFn`); None makes them an error.
pub fn grammar(
    vocab: &GrammarVocab,
    grammar_str: &str,
    root: &str,
    tokenize: Option<TokenizeFn<'_>>,
) -> Result<GrammarSampler> {
    build(vocab, grammar_str, root, tokenize, None)
}

/// `llama_sampler_init_grammar_lazy_patterns`: the grammar constrains nothing until a token in
/// `trigger_tokens` is accepted or the text generated so far matches one of `trigger_patterns`
/// (regexes; with `^...$` the whole text must match); the grammar is then fed the text from the
/// pattern's first non-empty capture group (else the match start) on, or from the trigger token
/// on. Patterns use Rust `regex` syntax over bytes, with ASCII classes (C++ std::regex's
/// ECMAScript dialect is close but not identical: no backreferences or lookaround here).
pub fn grammar_lazy(
    vocab: &GrammarVocab,
    grammar_str: &str,
    root: &str,
    trigger_patterns: &[&str],
    trigger_tokens: &[i32],
    tokenize: Option<TokenizeFn<'_>>,
) -> Result<GrammarSampler> {
    let mut patterns = Vec::with_capacity(trigger_patterns.len());
    for &p in trigger_patterns {
        let regex = regex::bytes::RegexBuilder::new(p)
            .unicode(false)
            .size_limit(1 << 24)
            .build()
            .or_else(|_| {
                regex::bytes::RegexBuilder::new(p)
                    .size_limit(1 << 24)
                    .build()
            })
            .map_err(|e| Error::bad_input(format!("grammar trigger pattern '{p}': {e}")))?;
        patterns.push(TriggerPattern {
            pattern: p.to_string(),
            regex,
        });
    }
    let lazy = Lazy {
        awaiting: true,
        buffer: Vec::new(),
        positions: Vec::new(),
        trigger_tokens: trigger_tokens.to_vec(),
        patterns: Arc::new(patterns),
    };
    build(vocab, grammar_str, root, tokenize, Some(lazy))
}

/// The pattern the deprecated `llama_sampler_init_grammar_lazy` builds from trigger words:
/// any text, then one of the words (regex-escaped), then any text.
pub fn trigger_words_pattern(words: &[&str]) -> String {
    let mut pattern = String::from("[\\s\\S]*?(");
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            pattern.push('|');
        }
        for ch in w.chars() {
            if ".^$|()*+?[]{}\\".contains(ch) {
                pattern.push('\\');
            }
            pattern.push(ch);
        }
    }
    pattern.push_str(")[\\s\\S]*");
    pattern
}

fn build(
    vocab: &GrammarVocab,
    grammar_str: &str,
    root: &str,
    tokenize: Option<TokenizeFn<'_>>,
    lazy: Option<Lazy>,
) -> Result<GrammarSampler> {
    if grammar_str.is_empty() || grammar_str.as_bytes()[0] == 0 {
        return Ok(GrammarSampler {
            vocab: vocab.clone(),
            active: None,
        });
    }
    let parsed = parse(grammar_str, tokenize)?;
    let root_id = *parsed
        .symbol_ids
        .get(root)
        .ok_or_else(|| Error::bad_input(format!("grammar does not contain a '{root}' symbol")))?;
    if let Some(i) = find_left_recursion(&parsed.rules) {
        return Err(Error::unsupported(format!(
            "grammar: left recursion detected for nonterminal at index {i}"
        )));
    }
    let rules = Arc::new(parsed.rules);
    let stacks = initial_stacks(&rules, root_id);
    Ok(GrammarSampler {
        vocab: vocab.clone(),
        active: Some(Active {
            rules,
            root: root_id,
            stacks,
            partial: PartialUtf8::default(),
            failure: None,
            lazy,
        }),
    })
}

impl Active {
    fn can_end(&self) -> bool {
        self.stacks.iter().any(|s| s.is_empty())
    }

    fn fail(&mut self, why: String) {
        self.stacks.clear();
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }

    /// Advances the stacks over `token` whose text is `piece` (the reference's accept_token).
    fn accept_piece(&mut self, token: i32, piece: &[u8]) {
        if self.failure.is_some() {
            return;
        }
        let (cps, partial) = decode_utf8(piece, self.partial);
        let stacks = accept_token_stacks(&self.rules, &self.stacks, token, &cps);
        self.partial = partial;
        if stacks.is_empty() {
            self.fail(format!(
                "token {token} ('{}') cannot continue the grammar",
                String::from_utf8_lossy(piece)
            ));
        } else {
            self.stacks = stacks;
        }
    }
}

impl GrammarSampler {
    /// True when built from an empty grammar string (does nothing).
    pub fn is_empty(&self) -> bool {
        self.active.is_none()
    }

    /// Why the grammar failed (a token it could not take was accepted), if it did.
    pub fn failure(&self) -> Option<&str> {
        self.active.as_ref()?.failure.as_deref()
    }

    /// True when the text accepted so far is a complete sentence of the grammar.
    pub fn is_complete(&self) -> bool {
        self.active.as_ref().is_some_and(|a| a.can_end())
    }

    /// True while a lazy grammar waits for its trigger.
    pub fn is_awaiting_trigger(&self) -> bool {
        self.active
            .as_ref()
            .and_then(|a| a.lazy.as_ref())
            .is_some_and(|l| l.awaiting)
    }

    /// The current stacks (for tests and debugging).
    pub fn stacks(&self) -> &[Stack] {
        self.active.as_ref().map_or(&[], |a| &a.stacks)
    }

    /// The trigger patterns of a lazy grammar, as given.
    pub fn trigger_patterns(&self) -> Vec<String> {
        self.active
            .as_ref()
            .and_then(|a| a.lazy.as_ref())
            .map_or_else(Vec::new, |l| {
                l.patterns.iter().map(|p| p.pattern.clone()).collect()
            })
    }
}

impl Sampler for GrammarSampler {
    fn name(&self) -> &'static str {
        "grammar"
    }

    fn apply(&mut self, cur: &mut Candidates<'_>) {
        let Some(active) = &self.active else {
            return;
        };
        if active.lazy.as_ref().is_some_and(|l| l.awaiting) {
            return;
        }
        let allow_eog = active.can_end() || active.failure.is_some();
        let mut cps: Vec<u32> = Vec::new();
        let mut decoded: Vec<Decoded> = Vec::new();
        let mut index: Vec<usize> = Vec::new();
        for (i, cand) in cur.live_mut().iter_mut().enumerate() {
            let piece = self.vocab.piece(cand.id);
            if self.vocab.is_eog(cand.id) {
                if !allow_eog {
                    cand.logit = f32::NEG_INFINITY;
                }
            } else if piece.first().is_none_or(|&b| b == 0) || active.failure.is_some() {
                cand.logit = f32::NEG_INFINITY;
            } else {
                let (c, partial) = decode_utf8(piece, active.partial);
                let start = cps.len();
                // A 0 code point (overlong NUL) ends the text, as the reference's terminator.
                let n = c.iter().position(|&x| x == 0).unwrap_or(c.len());
                cps.extend_from_slice(&c[..n]);
                decoded.push(Decoded {
                    token: cand.id,
                    start,
                    end: start + n,
                    partial,
                });
                index.push(i);
            }
        }
        if decoded.is_empty() {
            return;
        }
        let allowed = allowed_candidates(&active.rules, &active.stacks, &cps, &decoded);
        let live = cur.live_mut();
        for (k, ok) in allowed.into_iter().enumerate() {
            if !ok {
                live[index[k]].logit = f32::NEG_INFINITY;
            }
        }
    }

    /// Advances over `token`. A lazy grammar still waiting buffers the text and checks its
    /// triggers. An end-of-generation token is accepted (state unchanged) when the grammar can
    /// end here; otherwise, and for any token the grammar cannot take, the sampler enters its
    /// failed state (see the module docs) instead of aborting like the reference.
    fn accept(&mut self, token: i32) {
        let vocab = &self.vocab;
        let Some(active) = &mut self.active else {
            return;
        };
        let piece = vocab.piece(token).to_vec();
        if let Some(lazy) = &mut active.lazy {
            if lazy.awaiting {
                if lazy.trigger_tokens.contains(&token) {
                    lazy.awaiting = false;
                    lazy.buffer.clear();
                    active.accept_piece(token, &piece);
                    return;
                }
                let start = lazy.buffer.len();
                lazy.buffer.extend_from_slice(&piece);
                lazy.positions.push((token, start, lazy.buffer.len()));
                let found = lazy.patterns.iter().find_map(|p| p.find(&lazy.buffer));
                let Some(from) = found else {
                    return;
                };
                lazy.awaiting = false;
                let buffer = std::mem::take(&mut lazy.buffer);
                let positions = std::mem::take(&mut lazy.positions);
                for (tok, tok_start, tok_end) in positions {
                    if tok_end <= from {
                        continue;
                    }
                    let piece_start = tok_start.max(from);
                    active.accept_piece(tok, &buffer[piece_start..tok_end]);
                }
                return;
            }
        }
        if vocab.is_eog(token) {
            if !active.can_end() {
                active.fail(format!(
                    "end-of-generation token {token} accepted where the grammar cannot end"
                ));
            }
            return;
        }
        active.accept_piece(token, &piece);
    }

    fn reset(&mut self) {
        if let Some(active) = &mut self.active {
            active.stacks = initial_stacks(&active.rules, active.root);
            active.partial = PartialUtf8::default();
            active.failure = None;
            if let Some(lazy) = &mut active.lazy {
                lazy.awaiting = true;
                lazy.buffer.clear();
                lazy.positions.clear();
            }
        }
    }

    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}
