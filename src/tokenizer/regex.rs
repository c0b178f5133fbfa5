//! A small backtracking regex engine with the semantics of the C++ `std::regex` (ECMAScript
//! grammar, libstdc++) that llama.cpp runs its pre-tokenizer patterns through, over a slice of
//! `u32` symbols rather than text.
//!
//! llama.cpp feeds std::regex one of two symbol streams (see `pretokenize.rs`): codepoints, or
//! "collapsed" text where every non-ASCII codepoint is replaced by one byte naming its category
//! (and patterns' `\p{L}`, `\p{N}`, ... become classes over those bytes plus the ASCII members).
//! `Regex::new` is told which one a pattern runs over.
//!
//! Supported: alternation, groups `(...)` `(?:...)`, lookahead `(?=...)` `(?!...)`, the
//! quantifiers `* + ? {n} {n,} {n,m}` (greedy or lazy), classes with ranges and negation, `.`,
//! `^ $ \b \B`, the escapes `\s \S \d \D \w \W \t \n \r \v \f \0 \xHH \uHHHH`, escaped
//! punctuation, and, in collapsed patterns, `\p{N} \p{L} \p{P} \p{M} \p{S} \p{Lu} \p{Ll} \p{Lt}
//! \p{Lm} \p{Lo}`. Also `\u{H..}` for any codepoint: not ECMAScript, but how our copies of
//! llama.cpp's patterns spell their non-ASCII characters (so the source stays ASCII). Anything
//! else is refused when the pattern is compiled, as std::regex would throw.
//!
//! Matching follows the ECMAScript rules: leftmost, alternatives in order, greedy loops longest
//! first. Backtracking uses an explicit stack, so long inputs cannot overflow the call stack;
//! like std::regex it can take quadratic time on patterns such as `\s+$` over long runs that
//! end in no match.

use crate::error::{Error, Result};

/// The collapsed symbol of each category llama.cpp maps non-ASCII codepoints to.
pub const COLLAPSED_NUMBER: u32 = 0xD1;
pub const COLLAPSED_LETTER: u32 = 0xD2;
pub const COLLAPSED_PUNCTUATION: u32 = 0xD3;
pub const COLLAPSED_ACCENT_MARK: u32 = 0xD4;
pub const COLLAPSED_SYMBOL: u32 = 0xD5;
/// Any other category.
pub const COLLAPSED_OTHER: u32 = 0xD0;
/// Non-ASCII whitespace (std::regex's `\s` only knows ASCII whitespace).
pub const COLLAPSED_WHITESPACE: u32 = 0x0B;

/// ASCII members of each `\p{..}` class in collapsed patterns.
const ASCII_NUMBER: &[(u32, u32)] = &[(0x30, 0x39)];
const ASCII_LETTER: &[(u32, u32)] = &[(0x41, 0x5A), (0x61, 0x7A)];
const ASCII_PUNCTUATION: &[(u32, u32)] = &[
    (0x21, 0x23),
    (0x25, 0x2A),
    (0x2C, 0x2F),
    (0x3A, 0x3B),
    (0x3F, 0x40),
    (0x5B, 0x5D),
    (0x5F, 0x5F),
    (0x7B, 0x7B),
    (0x7D, 0x7D),
];
const ASCII_SYMBOL: &[(u32, u32)] = &[
    (0x24, 0x24),
    (0x2B, 0x2B),
    (0x3C, 0x3E),
    (0x5E, 0x5E),
    (0x60, 0x60),
    (0x7C, 0x7C),
    (0x7E, 0x7E),
];
const SPACE: &[(u32, u32)] = &[(0x09, 0x0D), (0x20, 0x20)];
const DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
const WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];

fn in_ranges(ranges: &[(u32, u32)], c: u32) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

fn is_word(c: u32) -> bool {
    in_ranges(WORD, c)
}

/// A bracket expression (or a shorthand like `\s` outside one).
#[derive(Clone, Debug, Default)]
struct Class {
    negated: bool,
    ranges: Vec<(u32, u32)>,
    /// Members given as complements (`\S`, `\D`, `\W` inside brackets).
    complements: Vec<&'static [(u32, u32)]>,
    /// Membership of the 128 ASCII symbols, precomputed.
    ascii: u128,
}

impl Class {
    fn contains_slow(&self, c: u32) -> bool {
        let member =
            in_ranges(&self.ranges, c) || self.complements.iter().any(|r| !in_ranges(r, c));
        member != self.negated
    }

    fn finish(mut self) -> Class {
        self.ascii = (0..128u32)
            .filter(|&c| self.contains_slow(c))
            .fold(0u128, |m, c| m | 1 << c);
        self
    }

    fn contains(&self, c: u32) -> bool {
        if c < 128 {
            self.ascii >> c & 1 != 0
        } else {
            self.contains_slow(c)
        }
    }
}

/// What one symbol-consuming step accepts.
#[derive(Clone, Debug)]
enum Matcher {
    Symbol(u32),
    /// `.`: anything but a line terminator.
    Any,
    Class(usize),
}

#[derive(Clone, Debug)]
enum Node {
    Empty,
    One(Matcher),
    LineStart,
    LineEnd,
    WordBoundary {
        negated: bool,
    },
    Concat(Vec<Node>),
    Alternation(Vec<Node>),
    Lookahead {
        node: Box<Node>,
        negated: bool,
    },
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
        greedy: bool,
    },
}

impl Node {
    /// Whether the node can match without consuming anything.
    fn nullable(&self) -> bool {
        match self {
            Node::Empty | Node::LineStart | Node::LineEnd | Node::WordBoundary { .. } => true,
            Node::Lookahead { .. } => true,
            Node::One(_) => false,
            Node::Concat(v) => v.iter().all(Node::nullable),
            Node::Alternation(v) => v.iter().any(Node::nullable),
            Node::Repeat { node, min, .. } => *min == 0 || node.nullable(),
        }
    }
}

/// Counted repetitions are unrolled; this bounds the program a pattern can make.
const MAX_PROGRAM: usize = 1 << 16;
const MAX_NESTING: usize = 64;

struct Parser<'p> {
    chars: Vec<char>,
    pos: usize,
    collapsed: bool,
    classes: Vec<Class>,
    pattern: &'p str,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> Error {
        Error::unsupported(format!(
            "pre-tokenizer regex {:?}: {what} at character {}",
            self.pattern, self.pos
        ))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn alternation(&mut self) -> Result<Node> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error("groups nested too deeply"));
        }
        let mut branches = vec![self.sequence()?];
        while self.eat('|') {
            branches.push(self.sequence()?);
        }
        self.depth -= 1;
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alternation(branches)
        })
    }

    fn sequence(&mut self) -> Result<Node> {
        let mut items = vec![];
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Node::Concat(items))
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return None;
        }
        let s: String = self.chars[start..self.pos].iter().collect();
        s.parse().ok()
    }

    fn quantified(&mut self, atom: Node) -> Result<Node> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.pos += 1;
                let min = self
                    .number()
                    .ok_or_else(|| self.error("bad {} quantifier"))?;
                let max = if self.eat(',') {
                    if self.peek() == Some('}') {
                        None
                    } else {
                        Some(
                            self.number()
                                .ok_or_else(|| self.error("bad {} quantifier"))?,
                        )
                    }
                } else {
                    Some(min)
                };
                if self.peek() != Some('}') || max.is_some_and(|m| m < min) {
                    return Err(self.error("bad {} quantifier"));
                }
                (min, max)
            }
            _ => return Ok(atom),
        };
        self.pos += 1;
        if matches!(
            atom,
            Node::LineStart | Node::LineEnd | Node::WordBoundary { .. } | Node::Lookahead { .. }
        ) {
            return Err(self.error("quantified assertion"));
        }
        let greedy = !self.eat('?');
        if matches!(self.peek(), Some('*' | '+' | '?' | '{')) {
            return Err(self.error("nothing to repeat"));
        }
        Ok(Node::Repeat {
            node: Box::new(atom),
            min,
            max,
            greedy,
        })
    }

    fn atom(&mut self) -> Result<Node> {
        let c = self.peek().ok_or_else(|| self.error("unexpected end"))?;
        self.pos += 1;
        Ok(match c {
            '(' => {
                let look = if self.eat('?') {
                    if self.eat(':') {
                        None
                    } else if self.eat('=') {
                        Some(false)
                    } else if self.eat('!') {
                        Some(true)
                    } else {
                        return Err(self.error("unsupported group kind"));
                    }
                } else {
                    None
                };
                let inner = self.alternation()?;
                if !self.eat(')') {
                    return Err(self.error("missing )"));
                }
                match look {
                    Some(negated) => Node::Lookahead {
                        node: Box::new(inner),
                        negated,
                    },
                    None => inner,
                }
            }
            ')' => return Err(self.error("unmatched )")),
            '*' | '+' | '?' => return Err(self.error("nothing to repeat")),
            '{' => return Err(self.error("nothing to repeat")),
            '[' => {
                let class = self.bracket()?;
                self.classes.push(class);
                Node::One(Matcher::Class(self.classes.len() - 1))
            }
            '.' => Node::One(Matcher::Any),
            '^' => Node::LineStart,
            '$' => Node::LineEnd,
            '\\' => self.escape_atom()?,
            c => Node::One(Matcher::Symbol(c as u32)),
        })
    }

    fn class_node(&mut self, class: Class) -> Node {
        self.classes.push(class.finish());
        Node::One(Matcher::Class(self.classes.len() - 1))
    }

    fn escape_atom(&mut self) -> Result<Node> {
        match self.peek() {
            Some('b') => {
                self.pos += 1;
                Ok(Node::WordBoundary { negated: false })
            }
            Some('B') => {
                self.pos += 1;
                Ok(Node::WordBoundary { negated: true })
            }
            _ => {
                let mut class = Class::default();
                match self.class_escape(&mut class)? {
                    Some(c) => Ok(Node::One(Matcher::Symbol(c))),
                    None => Ok(self.class_node(class)),
                }
            }
        }
    }

    fn hex(&mut self, digits: usize) -> Result<u32> {
        let mut v = 0u32;
        for _ in 0..digits {
            let d = self
                .peek()
                .and_then(|c| c.to_digit(16))
                .ok_or_else(|| self.error("bad hex escape"))?;
            v = v * 16 + d;
            self.pos += 1;
        }
        Ok(v)
    }

    /// After a backslash: returns the one symbol it stands for, or adds a set to `class` and
    /// returns None.
    fn class_escape(&mut self, class: &mut Class) -> Result<Option<u32>> {
        let c = self
            .peek()
            .ok_or_else(|| self.error("trailing backslash"))?;
        self.pos += 1;
        let set = |class: &mut Class, r: &'static [(u32, u32)], complement: bool| {
            if complement {
                class.complements.push(r);
            } else {
                class.ranges.extend_from_slice(r);
            }
        };
        Ok(Some(match c {
            's' | 'S' => {
                set(class, SPACE, c == 'S');
                return Ok(None);
            }
            'd' | 'D' => {
                set(class, DIGIT, c == 'D');
                return Ok(None);
            }
            'w' | 'W' => {
                set(class, WORD, c == 'W');
                return Ok(None);
            }
            'p' => {
                self.category(class)?;
                return Ok(None);
            }
            't' => 0x09,
            'n' => 0x0A,
            'v' => 0x0B,
            'f' => 0x0C,
            'r' => 0x0D,
            '0' => 0,
            'x' => self.hex(2)?,
            'u' if self.eat('{') => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                    self.pos += 1;
                }
                let digits: String = self.chars[start..self.pos].iter().collect();
                match u32::from_str_radix(&digits, 16) {
                    Ok(v) if self.eat('}') && v <= 0x10FFFF => v,
                    _ => return Err(self.error("bad \\u{..} escape")),
                }
            }
            'u' => self.hex(4)?,
            c if c.is_ascii_alphanumeric() => return Err(self.error("unsupported escape")),
            c => c as u32,
        }))
    }

    /// `\p{..}` (the `\p` already read): only in collapsed patterns, as llama.cpp rewrites them.
    fn category(&mut self, class: &mut Class) -> Result<()> {
        if !self.eat('{') {
            return Err(self.error("bad \\p"));
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| c != '}') {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        if !self.eat('}') {
            return Err(self.error("bad \\p"));
        }
        let (symbol, ascii) = match name.as_str() {
            "N" => (COLLAPSED_NUMBER, ASCII_NUMBER),
            "L" | "Lu" | "Ll" | "Lt" | "Lm" | "Lo" => (COLLAPSED_LETTER, ASCII_LETTER),
            "P" => (COLLAPSED_PUNCTUATION, ASCII_PUNCTUATION),
            "M" => (COLLAPSED_ACCENT_MARK, &[][..]),
            "S" => (COLLAPSED_SYMBOL, ASCII_SYMBOL),
            _ => return Err(self.error("unsupported unicode category")),
        };
        if !self.collapsed {
            return Err(self.error("unicode category in a codepoint pattern"));
        }
        class.ranges.push((symbol, symbol));
        class.ranges.extend_from_slice(ascii);
        Ok(())
    }

    /// A bracket expression, `[` already read.
    fn bracket(&mut self) -> Result<Class> {
        let mut class = Class {
            negated: self.eat('^'),
            ..Class::default()
        };
        // In ECMAScript a ']' always closes the bracket, even first ("[]" matches nothing).
        loop {
            let c = self.peek().ok_or_else(|| self.error("missing ]"))?;
            self.pos += 1;
            if c == ']' {
                break;
            }
            let lo = if c == '\\' {
                match self.class_escape(&mut class)? {
                    Some(v) => v,
                    None => continue,
                }
            } else {
                c as u32
            };
            // A range `lo-hi`, unless the '-' is last.
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&c| c != ']') {
                self.pos += 1;
                let c = self.peek().ok_or_else(|| self.error("missing ]"))?;
                self.pos += 1;
                let hi = if c == '\\' {
                    self.class_escape(&mut class)?
                        .ok_or_else(|| self.error("class in a range"))?
                } else {
                    c as u32
                };
                if hi < lo {
                    return Err(self.error("range out of order"));
                }
                class.ranges.push((lo, hi));
            } else {
                class.ranges.push((lo, lo));
            }
        }
        Ok(class.finish())
    }
}

#[derive(Clone, Debug)]
enum Inst {
    One(Matcher),
    /// A greedy loop over one symbol matcher: takes as many as allowed, gives back one at a time.
    Star {
        matcher: Matcher,
        min: u32,
        max: Option<u32>,
    },
    /// Try the first target, then the second.
    Split(usize, usize),
    Jump(usize),
    LineStart,
    LineEnd,
    WordBoundary {
        negated: bool,
    },
    /// Runs the sub-program at `body` at the current position, then continues at `next`.
    Lookahead {
        body: usize,
        next: usize,
        negated: bool,
    },
    /// Loop-progress guard for loops whose body can match empty (an empty iteration fails).
    SavePosition(usize),
    RequireProgress(usize),
    Match,
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub struct Regex {
    program: Vec<Inst>,
    classes: Vec<Class>,
    registers: usize,
    collapsed: bool,
}

struct Compiler {
    program: Vec<Inst>,
    registers: usize,
}

impl Compiler {
    fn push(&mut self, inst: Inst) -> Result<usize> {
        if self.program.len() >= MAX_PROGRAM {
            return Err(Error::unsupported("pre-tokenizer regex: pattern too large"));
        }
        self.program.push(inst);
        Ok(self.program.len() - 1)
    }

    fn node(&mut self, node: &Node) -> Result<()> {
        match node {
            Node::Empty => {}
            Node::One(m) => {
                self.push(Inst::One(m.clone()))?;
            }
            Node::LineStart => {
                self.push(Inst::LineStart)?;
            }
            Node::LineEnd => {
                self.push(Inst::LineEnd)?;
            }
            Node::WordBoundary { negated } => {
                self.push(Inst::WordBoundary { negated: *negated })?;
            }
            Node::Concat(items) => {
                for n in items {
                    self.node(n)?;
                }
            }
            Node::Alternation(branches) => {
                let mut jumps = vec![];
                for (i, b) in branches.iter().enumerate() {
                    if i + 1 < branches.len() {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.node(b)?;
                        jumps.push(self.push(Inst::Jump(0))?);
                        let next = self.program.len();
                        self.program[split] = Inst::Split(split + 1, next);
                    } else {
                        self.node(b)?;
                    }
                }
                let end = self.program.len();
                for j in jumps {
                    self.program[j] = Inst::Jump(end);
                }
            }
            Node::Lookahead { node, negated } => {
                let at = self.push(Inst::Match)?;
                self.node(node)?;
                self.push(Inst::Match)?;
                self.program[at] = Inst::Lookahead {
                    body: at + 1,
                    next: self.program.len(),
                    negated: *negated,
                };
            }
            Node::Repeat {
                node,
                min,
                max,
                greedy,
            } => self.repeat(node, *min, *max, *greedy)?,
        }
        Ok(())
    }

    /// One optional iteration: `Split(body, exit)` (or reversed when lazy), the body with a
    /// progress guard when it can match empty. Returns the split's index.
    fn optional_iteration(&mut self, node: &Node) -> Result<usize> {
        let split = self.push(Inst::Split(0, 0))?;
        let guard = node.nullable().then(|| {
            self.registers += 1;
            self.registers - 1
        });
        if let Some(r) = guard {
            self.push(Inst::SavePosition(r))?;
        }
        self.node(node)?;
        if let Some(r) = guard {
            self.push(Inst::RequireProgress(r))?;
        }
        Ok(split)
    }

    fn set_split(&mut self, split: usize, exit: usize, greedy: bool) {
        self.program[split] = if greedy {
            Inst::Split(split + 1, exit)
        } else {
            Inst::Split(exit, split + 1)
        };
    }

    fn repeat(&mut self, node: &Node, min: u32, max: Option<u32>, greedy: bool) -> Result<()> {
        if let (Node::One(m), true) = (node, greedy) {
            self.push(Inst::Star {
                matcher: m.clone(),
                min,
                max,
            })?;
            return Ok(());
        }
        for _ in 0..min {
            self.node(node)?;
        }
        match max {
            None => {
                let split = self.optional_iteration(node)?;
                self.push(Inst::Jump(split))?;
                let exit = self.program.len();
                self.set_split(split, exit, greedy);
            }
            Some(max) => {
                // Nested: once an optional iteration is skipped, the rest are too.
                let mut splits = vec![];
                for _ in min..max {
                    splits.push(self.optional_iteration(node)?);
                }
                let exit = self.program.len();
                for s in splits {
                    self.set_split(s, exit, greedy);
                }
            }
        }
        Ok(())
    }
}

/// Backtracking work: a thread to resume, or a register to restore on the way back.
enum Job {
    Resume {
        pc: usize,
        pos: usize,
    },
    /// A greedy one-symbol loop that can still give back symbols down to `min_pos`.
    GiveBack {
        next: usize,
        min_pos: usize,
        pos: usize,
    },
    Restore {
        register: usize,
        value: usize,
    },
}

/// Memory a search reuses from one call to the next.
#[derive(Default)]
pub struct Scratch {
    stack: Vec<Job>,
    registers: Vec<usize>,
}

/// Where a search runs: the symbols of one chunk, and what std::regex knows about them.
struct Input<'a> {
    symbols: &'a [u32],
    /// `^` can match at position 0 (false once a previous match exists: `match_prev_avail`).
    at_begin: bool,
}

impl Regex {
    /// Compiles `pattern`. `collapsed` patterns may use `\p{..}` and must be ASCII otherwise, as
    /// llama.cpp requires; codepoint patterns may use any characters but no `\p{..}`.
    pub fn new(pattern: &str, collapsed: bool) -> Result<Regex> {
        if collapsed && !pattern.is_ascii() {
            return Err(Error::unsupported(format!(
                "pre-tokenizer regex {pattern:?}: unicode categories and non-ASCII characters together"
            )));
        }
        let mut parser = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
            collapsed,
            classes: vec![],
            pattern,
            depth: 0,
        };
        let ast = parser.alternation()?;
        if parser.pos != parser.chars.len() {
            return Err(parser.error("unmatched )"));
        }
        let mut compiler = Compiler {
            program: vec![],
            registers: 0,
        };
        compiler.node(&ast)?;
        compiler.push(Inst::Match)?;
        Ok(Regex {
            program: compiler.program,
            classes: parser.classes,
            registers: compiler.registers,
            collapsed,
        })
    }

    /// Whether the pattern runs over collapsed symbols (it uses `\p{..}`).
    pub fn is_collapsed(&self) -> bool {
        self.collapsed
    }

    fn accepts(&self, m: &Matcher, c: u32) -> bool {
        match *m {
            Matcher::Symbol(s) => s == c,
            Matcher::Any => !matches!(c, 0x0A | 0x0D | 0x2028 | 0x2029),
            Matcher::Class(i) => self.classes[i].contains(c),
        }
    }

    /// Runs the program from `pc` anchored at `start`; the end of the first match found.
    fn run(
        &self,
        input: &Input<'_>,
        pc: usize,
        start: usize,
        not_empty: bool,
        scratch: &mut Scratch,
    ) -> Option<usize> {
        let mut stack = std::mem::take(&mut scratch.stack);
        stack.clear();
        stack.push(Job::Resume { pc, pos: start });
        let found = self.run_jobs(input, start, not_empty, scratch, &mut stack);
        scratch.stack = stack;
        found
    }

    fn run_jobs(
        &self,
        input: &Input<'_>,
        start: usize,
        not_empty: bool,
        scratch: &mut Scratch,
        stack: &mut Vec<Job>,
    ) -> Option<usize> {
        let symbols = input.symbols;
        while let Some(job) = stack.pop() {
            let (mut pc, mut pos) = match job {
                Job::Resume { pc, pos } => (pc, pos),
                Job::GiveBack { next, min_pos, pos } => {
                    if pos > min_pos {
                        stack.push(Job::GiveBack {
                            next,
                            min_pos,
                            pos: pos - 1,
                        });
                    }
                    (next, pos)
                }
                Job::Restore { register, value } => {
                    scratch.registers[register] = value;
                    continue;
                }
            };
            loop {
                match &self.program[pc] {
                    Inst::One(m) => {
                        if pos < symbols.len() && self.accepts(m, symbols[pos]) {
                            pos += 1;
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::Star { matcher, min, max } => {
                        let limit = match max {
                            Some(m) => symbols.len().min(pos.saturating_add(*m as usize)),
                            None => symbols.len(),
                        };
                        let mut end = pos;
                        while end < limit && self.accepts(matcher, symbols[end]) {
                            end += 1;
                        }
                        let min_pos = pos.saturating_add(*min as usize);
                        if end < min_pos {
                            break;
                        }
                        if end > min_pos {
                            stack.push(Job::GiveBack {
                                next: pc + 1,
                                min_pos,
                                pos: end - 1,
                            });
                        }
                        pos = end;
                        pc += 1;
                    }
                    Inst::Split(a, b) => {
                        stack.push(Job::Resume { pc: *b, pos });
                        pc = *a;
                    }
                    Inst::Jump(a) => pc = *a,
                    Inst::LineStart => {
                        if pos == 0 && input.at_begin {
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::LineEnd => {
                        if pos == symbols.len() {
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::WordBoundary { negated } => {
                        let left = pos > 0 && is_word(symbols[pos - 1]);
                        let right = pos < symbols.len() && is_word(symbols[pos]);
                        if (left != right) != *negated {
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::Lookahead {
                        body,
                        next,
                        negated,
                    } => {
                        // The lookahead runs on a stack of its own (its depth is bounded
                        // by the pattern's nesting).
                        let mut inner = Scratch {
                            stack: vec![],
                            registers: std::mem::take(&mut scratch.registers),
                        };
                        let found = self.run(input, *body, pos, false, &mut inner).is_some();
                        scratch.registers = inner.registers;
                        if found != *negated {
                            pc = *next;
                        } else {
                            break;
                        }
                    }
                    Inst::SavePosition(r) => {
                        stack.push(Job::Restore {
                            register: *r,
                            value: scratch.registers[*r],
                        });
                        scratch.registers[*r] = pos;
                        pc += 1;
                    }
                    Inst::RequireProgress(r) => {
                        if scratch.registers[*r] != pos {
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::Match => {
                        if not_empty && pos == start {
                            break;
                        }
                        return Some(pos);
                    }
                }
            }
        }
        None
    }

    /// The leftmost match starting at or after `from`: (start, end).
    fn search(
        &self,
        input: &Input<'_>,
        from: usize,
        scratch: &mut Scratch,
    ) -> Option<(usize, usize)> {
        (from..=input.symbols.len())
            .find_map(|s| self.run(input, 0, s, false, scratch).map(|e| (s, e)))
    }

    /// The matches std::regex_iterator visits over `symbols`, in order, as (start, end) pairs
    /// (possibly empty): after an empty match it first looks for a non-empty one at the same
    /// place, then searches on from the next symbol.
    pub fn find_all(&self, symbols: &[u32], scratch: &mut Scratch) -> Vec<(usize, usize)> {
        scratch.registers.clear();
        scratch.registers.resize(self.registers, 0);
        let mut out = vec![];
        let mut input = Input {
            symbols,
            at_begin: true,
        };
        let mut next = self.search(&input, 0, scratch);
        input.at_begin = false;
        while let Some((s, e)) = next {
            out.push((s, e));
            let mut from = e;
            if s == e {
                if e == symbols.len() {
                    break;
                }
                if let Some(end) = self.run(&input, 0, e, true, scratch) {
                    next = Some((e, end));
                    continue;
                }
                from = e + 1;
            }
            next = self.search(&input, from, scratch);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syms(s: &str) -> Vec<u32> {
        s.chars().map(|c| c as u32).collect()
    }

    fn matches(pattern: &str, text: &str) -> Vec<String> {
        let re = Regex::new(pattern, pattern.contains("\\p{")).unwrap();
        let chars: Vec<char> = text.chars().collect();
        re.find_all(&syms(text), &mut Scratch::default())
            .into_iter()
            .map(|(s, e)| chars[s..e].iter().collect())
            .collect()
    }

    #[test]
    fn ecmascript_matching_rules() {
        assert_eq!(matches("a|ab", "ab"), ["a"]);
        assert_eq!(matches("ab|a", "ab"), ["ab"]);
        assert_eq!(matches("[0-9][0-9][0-9]", "12345678"), ["123", "456"]);
        assert_eq!(matches("\\s+(?!\\S)", "a   b  "), ["  ", "  "]);
        assert_eq!(matches("\\s+$", "a  b  "), ["  "]);
        assert_eq!(matches("x{2,3}", "xxxxxxx"), ["xxx", "xxx"]);
        assert_eq!(matches("x{2}?", "xxx"), ["xx"]);
        assert_eq!(matches("a*?b", "aab"), ["aab"]);
        assert_eq!(matches("(?:ab)+", "ababa"), ["abab"]);
        assert_eq!(matches("[^a-c]+", "xxabyy"), ["xx", "yy"]);
        assert_eq!(matches("[\\]\\\\]+", "a]\\]b"), ["]\\]"]);
        assert_eq!(matches("[-a]+", "-a-b"), ["-a-"]);
        assert_eq!(
            matches("\\d{1,3}(?=(?:\\d{3})*\\b)", "1234567"),
            ["1", "234", "567"]
        );
        assert_eq!(matches("^a", "aaa"), ["a"]);
    }

    #[test]
    fn empty_matches_follow_regex_iterator() {
        // Empty matches are reported; the iterator then moves one symbol on.
        assert_eq!(matches("x*", "axxb"), ["", "xx", "", ""]);
        assert_eq!(matches("(?=(\\d{3})+(?!\\d))", "1234567"), ["", ""]);
        // An empty iteration of a loop fails rather than spinning.
        assert_eq!(matches("(?:a|)*b", "aab"), ["aab"]);
    }

    #[test]
    fn collapsed_categories() {
        let re = Regex::new("\\p{N}+|[^\\s\\p{L}\\p{N}]+", true).unwrap();
        let input = [
            0x31,
            COLLAPSED_NUMBER,
            0x20,
            COLLAPSED_LETTER,
            0x21,
            COLLAPSED_SYMBOL,
        ];
        assert_eq!(
            re.find_all(&input, &mut Scratch::default()),
            [(0, 2), (4, 6)]
        );
    }

    #[test]
    fn refused_patterns() {
        for p in [
            "(?i:a)", "a{2", "\\p{Han}", "*", "(a", "a)", "[a", "\\q", "a{3,1}",
        ] {
            assert!(Regex::new(p, true).is_err(), "{p}");
        }
        assert!(Regex::new("\\p{L}", false).is_err());
        assert!(Regex::new("é\\p{L}", true).is_err());
    }

    #[test]
    fn long_inputs_do_not_recurse() {
        let re = Regex::new("(?:[a-z]|[0-9])+", false).unwrap();
        let input = vec![b'a' as u32; 1_000_000];
        assert_eq!(
            re.find_all(&input, &mut Scratch::default()),
            [(0, 1_000_000)]
        );
    }
}
