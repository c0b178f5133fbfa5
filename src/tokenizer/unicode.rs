//! The Unicode facts the tokenizers need, with llama.cpp's exact behaviour:
//!
//! - codepoint flags (general category, whitespace) from the same tables llama.cpp uses
//!   (`unicode_tables.rs`, generated from its `unicode-data.cpp`);
//! - its lenient UTF-8 decoder (surrogates and overlong forms decode; a bad byte becomes U+FFFD)
//!   and encoder;
//! - GPT-2's byte <-> printable-codepoint map used by byte-level BPE.

use super::unicode_tables::{CATEGORY_RANGES, WHITESPACE};

/// Category flags (one per codepoint) and the whitespace flag, as llama.cpp numbers them.
pub const UNDEFINED: u16 = 0x0001;
pub const NUMBER: u16 = 0x0002;
pub const LETTER: u16 = 0x0004;
pub const SEPARATOR: u16 = 0x0008;
pub const ACCENT_MARK: u16 = 0x0010;
pub const PUNCTUATION: u16 = 0x0020;
pub const SYMBOL: u16 = 0x0040;
pub const CONTROL: u16 = 0x0080;
pub const CATEGORIES: u16 = 0x00FF;
pub const WHITESPACE_FLAG: u16 = 0x0100;

/// One past the last codepoint the tables describe.
pub const MAX_CODEPOINT: u32 = 0x110000;
pub const REPLACEMENT: u32 = 0xFFFD;

const fn ascii_flags() -> [u16; 128] {
    let mut out = [0u16; 128];
    let mut i = 0;
    while i < CATEGORY_RANGES.len() {
        let (start, cat) = CATEGORY_RANGES[i];
        let end = if i + 1 < CATEGORY_RANGES.len() {
            CATEGORY_RANGES[i + 1].0
        } else {
            MAX_CODEPOINT
        };
        let mut c = start;
        while c < end && c < 128 {
            out[c as usize] = cat as u16;
            c += 1;
        }
        i += 1;
    }
    let mut w = 0;
    while w < WHITESPACE.len() {
        if WHITESPACE[w] < 128 {
            out[WHITESPACE[w] as usize] |= WHITESPACE_FLAG;
        }
        w += 1;
    }
    out
}

static ASCII_FLAGS: [u16; 128] = ascii_flags();

/// The flags of a codepoint (never 0: codepoints past the tables are UNDEFINED).
pub fn flags(cpt: u32) -> u16 {
    if cpt < 128 {
        return ASCII_FLAGS[cpt as usize];
    }
    if cpt >= MAX_CODEPOINT {
        return UNDEFINED;
    }
    // The last range starting at or before cpt.
    let i = CATEGORY_RANGES.partition_point(|&(start, _)| start <= cpt);
    let cat = CATEGORY_RANGES[i.saturating_sub(1)].1 as u16;
    if WHITESPACE.binary_search(&cpt).is_ok() {
        cat | WHITESPACE_FLAG
    } else {
        cat
    }
}

pub fn is_whitespace(cpt: u32) -> bool {
    flags(cpt) & WHITESPACE_FLAG != 0
}

/// The lowercase of an ASCII letter; every other codepoint is returned as is. (llama.cpp's full
/// table maps only two more codepoints to ASCII, U+0130 to 'i' and U+212A to 'k', neither of
/// which the contraction rules that use this ever compare against.)
pub fn to_lower_for_contractions(cpt: u32) -> u32 {
    if (b'A' as u32..=b'Z' as u32).contains(&cpt) {
        cpt + 32
    } else {
        cpt
    }
}

/// Bytes a UTF-8 sequence takes, judged from its first byte alone (continuation bytes count 1).
pub fn utf8_len(lead: u8) -> usize {
    match lead >> 4 {
        0xC | 0xD => 2,
        0xE => 3,
        0xF => 4,
        _ => 1,
    }
}

/// Decodes one codepoint at `*pos` the way llama.cpp does: the lead byte sets the length, the
/// continuation bytes are checked for their top bits only (so surrogates, overlong forms and
/// values up to 0x1FFFFF decode), and anything else yields None with `*pos` unchanged.
fn decode_one(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let b0 = bytes[*pos] as u32;
    let cont = |i: usize| {
        bytes
            .get(*pos + i)
            .filter(|&&b| b & 0xC0 == 0x80)
            .map(|&b| b as u32 & 0x3F)
    };
    let (cpt, n) = if b0 & 0x80 == 0 {
        (b0, 1)
    } else if b0 & 0x40 == 0 {
        return None;
    } else if b0 & 0x20 == 0 {
        ((b0 & 0x1F) << 6 | cont(1)?, 2)
    } else if b0 & 0x10 == 0 {
        ((b0 & 0x0F) << 12 | cont(1)? << 6 | cont(2)?, 3)
    } else if b0 & 0x08 == 0 {
        (
            (b0 & 0x07) << 18 | cont(1)? << 12 | cont(2)? << 6 | cont(3)?,
            4,
        )
    } else {
        return None;
    };
    *pos += n;
    Some(cpt)
}

/// llama.cpp's `unicode_cpts_from_utf8`: every undecodable byte becomes one U+FFFD.
pub fn decode_utf8(bytes: &[u8]) -> Vec<u32> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    while pos < bytes.len() {
        match decode_one(bytes, &mut pos) {
            Some(c) => out.push(c),
            None => {
                out.push(REPLACEMENT);
                pos += 1;
            }
        }
    }
    out
}

/// Appends the UTF-8 form of `cpt` (surrogates included, as llama.cpp writes them). Values past
/// U+10FFFF, which llama.cpp's decoder can produce but its encoder throws on, are written as
/// U+FFFD.
pub fn push_utf8(out: &mut Vec<u8>, cpt: u32) {
    match cpt {
        0..=0x7F => out.push(cpt as u8),
        0x80..=0x7FF => {
            out.extend_from_slice(&[0xC0 | (cpt >> 6) as u8, 0x80 | (cpt & 0x3F) as u8])
        }
        0x800..=0xFFFF => out.extend_from_slice(&[
            0xE0 | (cpt >> 12) as u8,
            0x80 | ((cpt >> 6) & 0x3F) as u8,
            0x80 | (cpt & 0x3F) as u8,
        ]),
        0x10000..=0x10FFFF => out.extend_from_slice(&[
            0xF0 | (cpt >> 18) as u8,
            0x80 | ((cpt >> 12) & 0x3F) as u8,
            0x80 | ((cpt >> 6) & 0x3F) as u8,
            0x80 | (cpt & 0x3F) as u8,
        ]),
        _ => push_utf8(out, REPLACEMENT),
    }
}

/// GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the other 68 bytes
/// for U+0100.. in byte order. Returns the codepoint standing for `byte`.
pub fn byte_to_codepoint(byte: u8) -> u32 {
    BYTE_TO_CODEPOINT[byte as usize]
}

/// The inverse of `byte_to_codepoint`.
pub fn codepoint_to_byte(cpt: u32) -> Option<u8> {
    match cpt {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => Some(cpt as u8),
        0x100..=0x143 => Some(CODEPOINT_TO_BYTE_HIGH[(cpt - 0x100) as usize]),
        _ => None,
    }
}

const fn is_printable_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF)
}

const fn byte_map() -> ([u32; 256], [u8; 68]) {
    let mut to_cpt = [0u32; 256];
    let mut high = [0u8; 68];
    let mut next = 0usize;
    let mut b = 0usize;
    while b < 256 {
        if is_printable_byte(b as u8) {
            to_cpt[b] = b as u32;
        } else {
            to_cpt[b] = 0x100 + next as u32;
            high[next] = b as u8;
            next += 1;
        }
        b += 1;
    }
    (to_cpt, high)
}

static BYTE_TO_CODEPOINT: [u32; 256] = byte_map().0;
static CODEPOINT_TO_BYTE_HIGH: [u8; 68] = byte_map().1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_matches_llama_cpp_leniency() {
        assert_eq!(decode_utf8(b"a\xC3\xA9"), vec![0x61, 0xE9]);
        // Lone continuation byte, truncated sequence, bad continuation: one U+FFFD per byte.
        assert_eq!(decode_utf8(b"\x80"), vec![REPLACEMENT]);
        assert_eq!(decode_utf8(b"\xE2\x82"), vec![REPLACEMENT, REPLACEMENT]);
        assert_eq!(decode_utf8(b"\xC3A"), vec![REPLACEMENT, 0x41]);
        // Surrogates and overlong forms decode; 0xF8.. never does.
        assert_eq!(decode_utf8(b"\xED\xA0\x80"), vec![0xD800]);
        assert_eq!(decode_utf8(b"\xC0\x80"), vec![0]);
        assert_eq!(decode_utf8(b"\xF7\xBF\xBF\xBF"), vec![0x1FFFFF]);
        assert_eq!(decode_utf8(b"\xF8"), vec![REPLACEMENT]);
        let mut out = vec![];
        push_utf8(&mut out, 0xD800);
        push_utf8(&mut out, 0x1F600);
        push_utf8(&mut out, 0x110000);
        assert_eq!(out, b"\xED\xA0\x80\xF0\x9F\x98\x80\xEF\xBF\xBD");
    }

    #[test]
    fn byte_map_is_a_bijection() {
        assert_eq!(byte_to_codepoint(b' '), 0x120); // 'Ġ'
        assert_eq!(byte_to_codepoint(b'\n'), 0x10A); // 'Ċ'
        assert_eq!(byte_to_codepoint(b'a'), b'a' as u32);
        for b in 0..=255u8 {
            assert_eq!(codepoint_to_byte(byte_to_codepoint(b)), Some(b));
        }
        assert_eq!(codepoint_to_byte(0x20), None);
        assert_eq!(codepoint_to_byte(0x144), None);
    }

    #[test]
    fn flags_of_common_codepoints() {
        assert_eq!(flags(b'a' as u32), LETTER);
        assert_eq!(flags(b'7' as u32), NUMBER);
        assert_eq!(flags(b' ' as u32), SEPARATOR | WHITESPACE_FLAG);
        assert_eq!(flags(b'\n' as u32), CONTROL | WHITESPACE_FLAG);
        assert_eq!(flags(0x4E2D), LETTER); // 中
        assert_eq!(flags(0x3000) & WHITESPACE_FLAG, WHITESPACE_FLAG);
        assert_eq!(flags(0x110000), UNDEFINED);
        assert_eq!(flags(0x1F600), SYMBOL);
    }
}
