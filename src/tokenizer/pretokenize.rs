//! Byte-level BPE pre-tokenization: splitting text into words before merges, as llama.cpp's
//! `unicode_regex_split` does for each `tokenizer.ggml.pre` type.
//!
//! A pre-tokenizer is a list of patterns applied in turn, each one splitting the pieces the
//! previous one left (matches and the gaps between them both become pieces). llama.cpp runs the
//! most common patterns through hand-written splitters and the rest through `std::regex`; so do
//! we (`regex.rs` mirrors std::regex). Both see the text as codepoints decoded leniently (a bad
//! byte is U+FFFD); patterns with Unicode classes run over "collapsed" text, one symbol per
//! codepoint naming its category. The words are then re-encoded, byte-mapped to GPT-2's
//! printable alphabet when the vocabulary is byte-level.

use super::regex::{self, Regex, Scratch};
use super::unicode::{self, LETTER, NUMBER, WHITESPACE_FLAG};
use crate::error::{Error, Result};

/// What a `tokenizer.ggml.pre` value sets, as llama.cpp's vocabulary loader has it.
#[derive(Clone, Debug)]
pub struct PreSettings {
    /// The patterns, in order.
    pub patterns: &'static [&'static str],
    /// Words are mapped to GPT-2's byte alphabet (false for SentencePiece-style BPE).
    pub byte_encode: bool,
    /// Spaces become U+2581 before splitting.
    pub escape_whitespaces: bool,
    /// Detokenization tidies spaces before punctuation (`clean_up_tokenization_spaces`).
    pub clean_spaces: bool,
    /// A word that is a token as a whole is taken as is, without merges.
    pub ignore_merges: bool,
    /// The same for words made only of newlines (Gemma 4).
    pub newline_words_whole: bool,
    /// BOS is added by default (the GGUF's `add_bos_token` can still override it).
    pub add_bos: bool,
    /// The vocabulary has no BOS token, whatever the defaults say.
    pub no_bos: bool,
}

impl PreSettings {
    fn new(patterns: &'static [&'static str]) -> PreSettings {
        PreSettings {
            patterns,
            byte_encode: true,
            escape_whitespaces: false,
            clean_spaces: true,
            ignore_merges: false,
            newline_words_whole: false,
            add_bos: false,
            no_bos: false,
        }
    }
}

/// The settings for `tokenizer.ggml.pre` (None when the key is missing: llama.cpp then uses its
/// "default" patterns, which the caller should warn about).
pub fn settings(pre: Option<&str>) -> Result<PreSettings> {
    let Some(name) = pre else {
        return Ok(PreSettings::new(DEFAULT));
    };
    let mut s = match name {
        "default" => PreSettings::new(DEFAULT),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreSettings {
            ignore_merges: true,
            add_bos: true,
            ..PreSettings::new(LLAMA3)
        },
        "minicpm5" => PreSettings {
            ignore_merges: true,
            ..PreSettings::new(MINICPM5)
        },
        "deepseek-llm" => PreSettings::new(DEEPSEEK_LLM),
        "deepseek-coder" => PreSettings::new(DEEPSEEK_CODER),
        "deepseek-v3" | "hunyuan-dense" | "hy_v4" | "joyai-llm" => PreSettings::new(DEEPSEEK3),
        "spark2_5" => PreSettings::new(SPARK2_5),
        "youtu" => PreSettings {
            ignore_merges: true,
            ..PreSettings::new(YOUTU)
        },
        "falcon" => PreSettings::new(FALCON),
        "mpt" | "olmo" | "jais" | "trillion" | "granite-docling" | "exaone4" => {
            PreSettings::new(GPT2)
        }
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" => {
            PreSettings::new(GPT2)
        }
        "jais-2" => PreSettings::new(JAIS2),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b"
        | "mellum2" => PreSettings::new(STARCODER),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2" | "hunyuan"
        | "solar-open" | "grok-2" => PreSettings::new(QWEN2),
        "qwen35" => PreSettings::new(QWEN35),
        "dbrx" | "smaug-bpe" => PreSettings::new(LLAMA3),
        "poro-chat" | "bloom" | "gpt3-finnish" => PreSettings::new(BLOOM),
        "chatglm-bpe" => PreSettings {
            no_bos: true,
            ..PreSettings::new(LLAMA3)
        },
        "glm4" | "glm5" => PreSettings {
            no_bos: true,
            ignore_merges: true,
            ..PreSettings::new(LLAMA3)
        },
        "viking" => PreSettings::new(VIKING),
        "tekken" => PreSettings {
            ignore_merges: true,
            add_bos: true,
            ..PreSettings::new(TEKKEN)
        },
        "chameleon" => PreSettings {
            add_bos: true,
            ..PreSettings::new(CHAMELEON)
        },
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => PreSettings::new(GPT4O),
        "granite-embed-multi-97m" => PreSettings {
            ignore_merges: true,
            ..PreSettings::new(GRANITE_EMB_MULTI)
        },
        "tiny_aya" | "cohere2moe" => PreSettings::new(TINY_AYA),
        "superbpe" => PreSettings::new(SUPERBPE),
        "bailingmoe" | "bailingmoe2" | "llada-moe" => PreSettings::new(BAILINGMOE),
        "seed-coder" => PreSettings::new(SEED_CODER),
        "ufakzeka" => PreSettings::new(UFAKZEKA),
        "afmoe" => PreSettings::new(AFMOE),
        "laguna" => PreSettings::new(LAGUNA),
        "exaone-moe" => PreSettings::new(EXAONE_MOE),
        "gemma4" | "granite-embed-multi-311m" => PreSettings {
            byte_encode: false,
            escape_whitespaces: true,
            newline_words_whole: true,
            ..PreSettings::new(NEWLINES)
        },
        "sarvam-moe" => PreSettings {
            byte_encode: false,
            escape_whitespaces: true,
            ..PreSettings::new(NEWLINES)
        },
        "kimi-k2" | "whitespace" => {
            return Err(Error::unsupported(format!(
                "tokenizer.ggml.pre = {name:?} is not supported yet"
            )))
        }
        _ => {
            return Err(Error::unsupported(format!(
                "unknown pre-tokenizer type tokenizer.ggml.pre = {name:?}"
            )))
        }
    };
    // The pre-tokenizers whose detokenization keeps spaces as they are.
    s.clean_spaces = !matches!(
        name,
        "deepseek-llm"
            | "deepseek-coder"
            | "deepseek-v3"
            | "spark2_5"
            | "youtu"
            | "sarvam-moe"
            | "command-r"
            | "qwen2"
            | "deepseek-r1-qwen"
            | "kormo"
            | "f2llmv2"
            | "qwen35"
            | "poro-chat"
            | "viking"
            | "tekken"
            | "smollm"
            | "chameleon"
            | "gpt-4o"
            | "llama4"
            | "kanana2"
            | "talkie"
            | "granite-embed-multi-97m"
            | "tiny_aya"
            | "cohere2moe"
            | "superbpe"
            | "trillion"
            | "granite-docling"
            | "bailingmoe"
            | "bailingmoe2"
            | "llada-moe"
            | "seed-coder"
            | "hunyuan"
            | "hunyuan-dense"
            | "hy_v4"
            | "joyai-llm"
            | "ufakzeka"
            | "grok-2"
            | "afmoe"
            | "laguna"
            | "minimax-m2"
            | "solar-open"
    );
    Ok(s)
}

// The patterns, from llama.cpp's `llm_tokenizer_bpe` (most of them from the models' own
// tokenizer.json, with `(?i:...)` spelled out since std::regex has no inline flags).

const GPT2_PATTERN: &str =
    r#"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"#;
const LLAMA3_PATTERN: &str = r#"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#;
const QWEN2_PATTERN: &str = r#"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#;
const QWEN35_PATTERN: &str = r#"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#;
const NEWLINES_PATTERN: &str = r#"[^\n]+|[\n]+"#;
const DIGIT_GROUPS_PATTERN: &str = r#"\d{1,3}(?=(?:\d{3})*\b)"#;
const AFMOE_DIGITS_PATTERN: &str = r#"\p{AFMoE_digits}"#;

const DEFAULT: &[&str] = &[
    r#"[\p{P}\$\+<=>\^~\|]+"#,
    GPT2_PATTERN,
    r#"\p{N}+"#,
    r#"[0-9][0-9][0-9]"#,
];
const GPT2: &[&str] = &[GPT2_PATTERN];
const LLAMA3: &[&str] = &[LLAMA3_PATTERN];
const QWEN2: &[&str] = &[QWEN2_PATTERN];
const QWEN35: &[&str] = &[QWEN35_PATTERN];
const NEWLINES: &[&str] = &[NEWLINES_PATTERN];
const STARCODER: &[&str] = &[r#"\p{N}"#, GPT2_PATTERN];
const FALCON: &[&str] = &[
    r#"[\p{P}\$\+<=>\^~\|`]+"#,
    GPT2_PATTERN,
    r#"[0-9][0-9][0-9]"#,
];
const JAIS2: &[&str] = &[
    r#"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}"#,
];
const DEEPSEEK_LLM: &[&str] = &[
    r#"[\r\n]"#,
    r#"\s?[A-Za-z\u{00B5}\u{00C0}-\u{00D6}\u{00D8}-\u{00F6}\u{00F8}-\u{01BA}\u{01BC}-\u{01BF}\u{01C4}-\u{0293}\u{0295}-\u{02AF}\u{0370}-\u{0373}\u{0376}\u{0377}\u{037B}-\u{037D}\u{037F}\u{0386}\u{0388}-\u{038A}\u{038C}\u{038E}-\u{03A1}\u{03A3}-\u{03F5}\u{03F7}-\u{0481}\u{048A}-\u{052F}\u{0531}-\u{0556}\u{10A0}-\u{10C5}\u{13A0}-\u{13F5}\u{13F8}-\u{13FD}\u{1C90}-\u{1CBA}\u{1CBD}-\u{1CBF}\u{1D00}-\u{1D2B}\u{1D6B}-\u{1D77}\u{1D79}-\u{1D9A}\u{1E00}-\u{1F15}\u{1F18}-\u{1F1D}\u{1F20}-\u{1F45}\u{1F48}-\u{1F4D}\u{1F50}-\u{1F57}\u{1F59}\u{1F5B}\u{1F5D}\u{1F5F}-\u{1F7D}\u{1F80}-\u{1FB4}\u{1FB6}-\u{1FBC}\u{1FBE}\u{1FC2}-\u{1FC4}\u{1FC6}-\u{1FCC}\u{1FD0}-\u{1FD3}\u{1FD6}-\u{1FDB}\u{1FE0}-\u{1FEC}\u{1FF2}-\u{1FF4}\u{1FF6}-\u{1FFC}\u{2102}\u{2107}\u{210A}-\u{2113}\u{2115}\u{2119}-\u{211D}\u{2124}\u{2126}\u{2128}\u{212A}-\u{212D}\u{212F}-\u{2134}\u{2139}\u{213C}-\u{213F}\u{2145}-\u{2149}\u{214E}\u{2183}\u{2184}\u{2C00}-\u{2C7B}\u{2C7E}-\u{2CE4}\u{2CEB}-\u{2CEE}\u{2CF2}\u{2CF3}\u{A640}-\u{A66D}\u{A680}-\u{A69B}\u{A722}-\u{A76F}\u{A771}-\u{A787}\u{A78B}-\u{A78E}\u{AB70}-\u{ABBF}\u{FB00}-\u{FB06}\u{FB13}-\u{FB17}\u{FF21}-\u{FF3A}\u{FF41}-\u{FF5A}\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+"#,
    r#"\s?[!-/:-~\u{FF01}-\u{FF0F}\u{FF1A}-\u{FF5E}\u{2018}-\u{201F}\u{3000}-\u{3002}]+"#,
    r#"\s+$"#,
    r#"[\u{4E00}-\u{9FA5}\u{0800}-\u{4E00}\u{AC00}-\u{D7FF}]+"#,
    r#"\p{N}+"#,
];
const DEEPSEEK_CODER: &[&str] = &[
    r#"[\r\n]"#,
    r#"\s?\p{L}+"#,
    r#"\s?\p{P}+"#,
    r#"[\u{4E00}-\u{9FA5}\u{0800}-\u{4E00}\u{AC00}-\u{D7FF}]+"#,
    r#"\p{N}"#,
];
const DEEPSEEK3: &[&str] = &[
    r#"\p{N}{1,3}"#,
    r#"[\u{4E00}-\u{9FA5}\u{3040}-\u{309F}\u{30A0}-\u{30FF}]+"#,
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const SPARK2_5: &[&str] = &[
    r#"\p{N}{1,3}"#,
    r#"[\u{4E00}-\u{9FA5}\u{3040}-\u{309F}\u{30A0}-\u{30FF}]+"#,
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+"##,
    r#"\p{N}"#,
];
const YOUTU: &[&str] = &[
    r#"[\u{AC00}-\u{D7A3}\u{3131}-\u{318E}]+|[\u{FF01}\u{2026}\u{201C}\u{201D}\u{2018}\u{2019}\u{2014}\u{FF1A}\u{FF1B}\u{FF0C}\u{3001}-\u{303F}\u{FE30}-\u{FE4F}]+|[\u{3105}-\u{312F}]+|[\u{4E00}-\u{9FA5}\u{3040}-\u{309F}\u{30A0}-\u{30FF}]+"#,
    r#"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
];
const BLOOM: &[&str] =
    &[r#" ?[^(\s|.,!?\u{2026}\u{3002}\u{FF0C}\u{3001}\u{0964}\u{06D4}\u{060C})]+"#];
const VIKING: &[&str] = &[
    r#" ?[^(\s|.,!?\u{2026}\u{3002}\u{FF0C}\u{3001}\u{0964}\u{06D4}\u{060C})]+"#,
    r#"\p{N}"#,
];
const TEKKEN: &[&str] = &[
    r#"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
];
const CHAMELEON: &[&str] = &[
    r#"<sentinel:[0-9]+>"#,
    r#"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z"#,
    r#"([\t\n]|    |  )"#,
    r#"\p{N}"#,
    r#"[\p{P}!-/:-@\[-`{-~]"#,
    GPT2_PATTERN,
];
const GPT4O: &[&str] = &[
    r#"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
];
const GRANITE_EMB_MULTI: &[&str] = &[
    r#"[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
];
const TINY_AYA: &[&str] = &[
    DIGIT_GROUPS_PATTERN,
    r#"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
];
const SUPERBPE: &[&str] = &[r#"\p{N}+"#, r#"(?=(\d{3})+(?!\d))"#];
const BAILINGMOE: &[&str] = &[
    r#"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"#,
];
const SEED_CODER: &[&str] = &[
    r#"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"#,
];
const UFAKZEKA: &[&str] =
    &[r#"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#];
const AFMOE: &[&str] = &[
    AFMOE_DIGITS_PATTERN,
    r#"[\u{4E00}-\u{9FFF}\u{3400}-\u{4DBF}\u{8C48}-\u{FAFF}\u{3040}-\u{309F}\u{30A0}-\u{30FF}\u{FF65}-\u{FF9F}\u{2F00}-\u{2FDF}\u{0E40}-\u{0E7F}\u{0E80}-\u{0EFF}\u{1780}-\u{17FF}\u{1000}-\u{109F}\u{AA60}-\u{AA7F}\u{A9E0}-\u{A9FF}\u{AC00}-\u{D7AF}\u{1100}-\u{11FF}]+"#,
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const LAGUNA: &[&str] = &[NEWLINES_PATTERN, QWEN2_PATTERN];
const EXAONE_MOE: &[&str] = &[
    r#"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+"#,
];
const MINICPM5: &[&str] = &[
    r#"\p{N}{1,3}"#,
    r#"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
];

/// The `\p{..}` names llama.cpp recognizes; a pattern using any runs over collapsed text.
const CATEGORY_NAMES: &[&str] = &[
    r"\p{N}", r"\p{L}", r"\p{P}", r"\p{M}", r"\p{S}", r"\p{Lu}", r"\p{Ll}", r"\p{Lt}", r"\p{Lm}",
    r"\p{Lo}",
];

/// The splitters llama.cpp has hand-written versions of, chosen by the exact pattern text.
/// (Behaviour, edge cases included, follows those versions, which is what llama.cpp runs, not
/// what the patterns would do in a regex engine.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Custom {
    Gpt2,
    Llama3,
    Qwen2,
    Qwen35,
    Newlines,
    DigitGroups,
}

#[derive(Clone, Debug)]
enum Splitter {
    Custom(Custom),
    Regex(Regex),
}

fn splitter(pattern: &str) -> Result<Splitter> {
    Ok(match pattern {
        GPT2_PATTERN => Splitter::Custom(Custom::Gpt2),
        LLAMA3_PATTERN => Splitter::Custom(Custom::Llama3),
        QWEN2_PATTERN => Splitter::Custom(Custom::Qwen2),
        QWEN35_PATTERN => Splitter::Custom(Custom::Qwen35),
        NEWLINES_PATTERN => Splitter::Custom(Custom::Newlines),
        DIGIT_GROUPS_PATTERN | AFMOE_DIGITS_PATTERN => Splitter::Custom(Custom::DigitGroups),
        _ => {
            let collapsed = CATEGORY_NAMES.iter().any(|c| pattern.contains(c));
            Splitter::Regex(Regex::new(pattern, collapsed)?)
        }
    })
}

/// A compiled pre-tokenizer.
#[derive(Clone, Debug)]
pub struct PreTokenizer {
    splitters: Vec<Splitter>,
    byte_encode: bool,
}

/// The words of a text: their bytes back to back, and where each ends.
#[derive(Clone, Debug, Default)]
pub struct Words {
    pub bytes: Vec<u8>,
    pub ends: Vec<usize>,
}

impl Words {
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let w = &self.bytes[start..end];
            start = end;
            w
        })
    }
}

/// The symbol streams std::regex sees, made on first use.
struct Symbols<'a> {
    cpts: &'a [u32],
    flags: &'a [u16],
    collapsed: Option<Vec<u32>>,
    codepoints: Option<Vec<u32>>,
}

impl Symbols<'_> {
    /// One symbol per codepoint: ASCII as is, non-ASCII whitespace as \v, everything else as
    /// its category's symbol.
    fn collapsed(&mut self) -> &[u32] {
        let (cpts, flags) = (self.cpts, self.flags);
        self.collapsed.get_or_insert_with(|| {
            cpts.iter()
                .zip(flags)
                .map(|(&c, &f)| {
                    if c < 128 {
                        c
                    } else if f & WHITESPACE_FLAG != 0 {
                        regex::COLLAPSED_WHITESPACE
                    } else {
                        match f & unicode::CATEGORIES {
                            NUMBER => regex::COLLAPSED_NUMBER,
                            LETTER => regex::COLLAPSED_LETTER,
                            unicode::PUNCTUATION => regex::COLLAPSED_PUNCTUATION,
                            unicode::ACCENT_MARK => regex::COLLAPSED_ACCENT_MARK,
                            unicode::SYMBOL => regex::COLLAPSED_SYMBOL,
                            _ => regex::COLLAPSED_OTHER,
                        }
                    }
                })
                .collect()
        })
    }

    /// The codepoints, non-ASCII whitespace replaced by \v.
    fn codepoints(&mut self) -> &[u32] {
        let (cpts, flags) = (self.cpts, self.flags);
        self.codepoints.get_or_insert_with(|| {
            cpts.iter()
                .zip(flags)
                .map(|(&c, &f)| {
                    if c >= 128 && f & WHITESPACE_FLAG != 0 {
                        regex::COLLAPSED_WHITESPACE
                    } else {
                        c
                    }
                })
                .collect()
        })
    }
}

impl PreTokenizer {
    pub fn new(patterns: &[&str], byte_encode: bool) -> Result<PreTokenizer> {
        Ok(PreTokenizer {
            splitters: patterns
                .iter()
                .map(|p| splitter(p))
                .collect::<Result<_>>()?,
            byte_encode,
        })
    }

    /// Splits `text` into words.
    pub fn split(&self, text: &[u8]) -> Words {
        let cpts = unicode::decode_utf8(text);
        let flags: Vec<u16> = cpts.iter().map(|&c| unicode::flags(c)).collect();
        let mut symbols = Symbols {
            cpts: &cpts,
            flags: &flags,
            collapsed: None,
            codepoints: None,
        };
        let mut scratch = Scratch::default();
        // Piece lengths in codepoints, covering the text.
        let mut pieces = vec![cpts.len()];
        for s in &self.splitters {
            pieces = match s {
                Splitter::Custom(kind) => {
                    let mut out = Vec::with_capacity(pieces.len());
                    let mut start = 0;
                    for &len in &pieces {
                        let chunk = Chunk {
                            cpts: &cpts[start..start + len],
                            flags: &flags[start..start + len],
                        };
                        chunk.split(*kind, &mut out);
                        start += len;
                    }
                    out
                }
                Splitter::Regex(re) => {
                    let stream = if re.is_collapsed() {
                        symbols.collapsed()
                    } else {
                        symbols.codepoints()
                    };
                    regex_split(re, stream, &pieces, &mut scratch)
                }
            };
        }
        self.words(&cpts, &pieces)
    }

    fn words(&self, cpts: &[u32], pieces: &[usize]) -> Words {
        let mut words = Words {
            bytes: Vec::with_capacity(cpts.len() * 2),
            ends: Vec::with_capacity(pieces.len()),
        };
        let mut utf8 = vec![];
        let mut start = 0;
        for &len in pieces {
            for &c in &cpts[start..start + len] {
                if self.byte_encode {
                    utf8.clear();
                    unicode::push_utf8(&mut utf8, c);
                    for &b in &utf8 {
                        unicode::push_utf8(&mut words.bytes, unicode::byte_to_codepoint(b));
                    }
                } else {
                    unicode::push_utf8(&mut words.bytes, c);
                }
            }
            start += len;
            words.ends.push(words.bytes.len());
        }
        words
    }
}

/// std::regex_iterator over each piece: matches and the gaps before them become pieces.
fn regex_split(re: &Regex, symbols: &[u32], pieces: &[usize], scratch: &mut Scratch) -> Vec<usize> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut start = 0;
    for &len in pieces {
        let mut done = 0;
        for (s, e) in re.find_all(&symbols[start..start + len], scratch) {
            if s > done {
                out.push(s - done);
            }
            out.push(e - s);
            done = e;
        }
        if done < len {
            out.push(len - done);
        }
        start += len;
    }
    out
}

/// One piece seen by a hand-written splitter: positions outside it read as "no codepoint"
/// (flags 0), as llama.cpp's `_get_cpt`/`_get_flags` do.
struct Chunk<'a> {
    cpts: &'a [u32],
    flags: &'a [u16],
}

const NONE: u32 = u32::MAX;

impl Chunk<'_> {
    fn cpt(&self, pos: usize) -> u32 {
        self.cpts.get(pos).copied().unwrap_or(NONE)
    }

    fn flags(&self, pos: usize) -> u16 {
        self.flags.get(pos).copied().unwrap_or(0)
    }

    fn has(&self, pos: usize, flag: u16) -> bool {
        self.flags(pos) & flag != 0
    }

    fn len(&self) -> usize {
        self.cpts.len()
    }

    fn split(&self, kind: Custom, out: &mut Vec<usize>) {
        match kind {
            Custom::Gpt2 => self.split_gpt2(out),
            Custom::Llama3 => self.split_llama3_like(out, NumberRun::UpToThree, false),
            Custom::Qwen2 => self.split_llama3_like(out, NumberRun::One, false),
            Custom::Qwen35 => self.split_llama3_like(out, NumberRun::One, true),
            Custom::Newlines => self.split_newlines(out),
            Custom::DigitGroups => self.split_digit_groups(out),
        }
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` (lowercase only, or either case) at `pos`: its length.
    fn contraction(&self, pos: usize, any_case: bool) -> Option<usize> {
        if self.cpt(pos) != '\'' as u32 || pos + 1 >= self.len() {
            return None;
        }
        let lower = |c: u32| {
            if any_case {
                unicode::to_lower_for_contractions(c)
            } else {
                c
            }
        };
        let is = |c: u32, ch: char| c == ch as u32;
        let next = lower(self.cpt(pos + 1));
        if ['s', 't', 'm', 'd'].iter().any(|&ch| is(next, ch)) {
            return Some(2);
        }
        if pos + 2 < self.len() {
            let next2 = lower(self.cpt(pos + 2));
            if (is(next, 'r') && is(next2, 'e'))
                || (is(next, 'v') && is(next2, 'e'))
                || (is(next, 'l') && is(next2, 'l'))
            {
                return Some(3);
            }
        }
        None
    }

    /// Whitespace at `pos`: (length of the run, end of its last \r or \n if any).
    fn whitespace_run(&self, pos: usize) -> (usize, Option<usize>) {
        let mut n = 0;
        let mut last_newline_end = None;
        while self.has(pos + n, WHITESPACE_FLAG) {
            if matches!(self.cpt(pos + n), 0x0A | 0x0D) {
                last_newline_end = Some(pos + n + 1);
            }
            n += 1;
        }
        (n, last_newline_end)
    }

    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
    fn split_gpt2(&self, out: &mut Vec<usize>) {
        let mut pos = 0;
        let mut emit = |from: usize, to: usize| {
            if to > from {
                out.push(to - from);
            }
        };
        while pos < self.len() {
            let start = pos;
            if let Some(n) = self.contraction(pos, false) {
                pos += n;
                emit(start, pos);
                continue;
            }
            let space = self.cpt(pos) == ' ' as u32;
            let first = if space {
                self.flags(pos + 1)
            } else {
                self.flags(pos)
            };
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`, the class chosen by the first
            // codepoint after the optional space.
            fn letter(f: u16) -> bool {
                f & LETTER != 0
            }
            fn number(f: u16) -> bool {
                f & NUMBER != 0
            }
            fn other(f: u16) -> bool {
                f & (WHITESPACE_FLAG | LETTER | NUMBER) == 0 && f != 0
            }
            let class: Option<fn(u16) -> bool> = [letter, number, other]
                .into_iter()
                .find(|class| class(first));
            if let Some(in_class) = class {
                pos += space as usize;
                while in_class(self.flags(pos)) {
                    pos += 1;
                }
                emit(start, pos);
                continue;
            }
            let (n, _) = self.whitespace_run(pos);
            if n > 1 && pos + n < self.len() {
                // \s+(?!\S): leave the last space to the word after it.
                pos += n - 1;
            } else if n > 0 {
                pos += n;
            } else {
                pos += 1;
            }
            emit(start, pos);
        }
    }

    /// Llama 3 and the Qwen family:
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    ///  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`, with `\p{N}` single for Qwen and
    /// letters extended with marks (`\p{M}`) for Qwen 3.5.
    fn split_llama3_like(&self, out: &mut Vec<usize>, numbers: NumberRun, with_marks: bool) {
        let word_flags = if with_marks {
            LETTER | unicode::ACCENT_MARK
        } else {
            LETTER
        };
        let mut pos = 0;
        let mut emit = |from: usize, to: usize| {
            if to > from {
                out.push(to - from);
            }
        };
        while pos < self.len() {
            let start = pos;
            let c = self.cpt(pos);
            let f = self.flags(pos);
            if let Some(n) = self.contraction(pos, true) {
                pos += n;
                emit(start, pos);
                continue;
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(c == 0x0A || c == 0x0D || f & NUMBER != 0)
                && (f & word_flags != 0 || self.flags(pos + 1) & word_flags != 0)
            {
                pos += 1;
                while self.has(pos, word_flags) {
                    pos += 1;
                }
                emit(start, pos);
                continue;
            }
            if f & NUMBER != 0 {
                match numbers {
                    NumberRun::One => {
                        pos += 1;
                        emit(start, pos);
                    }
                    NumberRun::UpToThree => {
                        let mut group = pos;
                        while self.has(pos, NUMBER) {
                            pos += 1;
                            if pos - group >= 3 {
                                emit(group, pos);
                                group = pos;
                            }
                        }
                        emit(group, pos);
                    }
                }
                continue;
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`; the first test looks past a space, the second at
            // the codepoint itself (so a space ending the piece is taken here, alone).
            let space = c == ' ' as u32;
            let excluded = WHITESPACE_FLAG | word_flags | NUMBER;
            let first = if space { self.flags(pos + 1) } else { f };
            if first & excluded == 0 && f != 0 {
                pos += space as usize;
                while self.flags(pos) & excluded == 0 && self.flags(pos) != 0 {
                    pos += 1;
                }
                while matches!(self.cpt(pos), 0x0A | 0x0D) {
                    pos += 1;
                }
                emit(start, pos);
                continue;
            }
            let (n, last_newline_end) = self.whitespace_run(pos);
            if let Some(end) = last_newline_end {
                // \s*[\r\n]+
                pos = end;
            } else if n > 1 && pos + n < self.len() {
                pos += n - 1;
            } else if n > 0 {
                pos += n;
            } else {
                pos += 1;
            }
            emit(start, pos);
        }
    }

    /// `[^\n]+|[\n]+`.
    fn split_newlines(&self, out: &mut Vec<usize>) {
        let mut pos = 0;
        while pos < self.len() {
            let newline = self.cpts[pos] == 0x0A;
            let start = pos;
            while pos < self.len() && (self.cpts[pos] == 0x0A) == newline {
                pos += 1;
            }
            out.push(pos - start);
        }
    }

    /// Digit runs grouped by three from the right; as in llama.cpp the text before a run joins
    /// the run's first group.
    fn split_digit_groups(&self, out: &mut Vec<usize>) {
        let mut done = 0;
        let mut emit = |to: usize| {
            if to > done {
                out.push(to - done);
            }
            done = to;
        };
        let mut pos = 0;
        while pos < self.len() {
            if !self.has(pos, NUMBER) {
                pos += 1;
                continue;
            }
            let start = pos;
            while self.has(pos, NUMBER) {
                pos += 1;
            }
            let mut at = start + (pos - start) % 3;
            if at > start {
                emit(at);
            }
            while at < pos {
                at += 3;
                emit(at);
            }
        }
        emit(self.len());
    }
}

#[derive(Clone, Copy, Debug)]
enum NumberRun {
    One,
    UpToThree,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(patterns: &[&str], text: &str) -> Vec<String> {
        let pre = PreTokenizer::new(patterns, false).unwrap();
        let words = pre.split(text.as_bytes());
        words
            .iter()
            .map(|w| String::from_utf8(w.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            split(GPT2, "Hello world's  end 123!!\n"),
            ["Hello", " world", "'s", " ", " end", " 123", "!!", "\n"]
        );
    }

    #[test]
    fn llama3_words() {
        assert_eq!(
            split(LLAMA3, "I'M here  12345 ok!\n\n x"),
            ["I", "'M", " here", " ", " ", "123", "45", " ok", "!\n\n", " x"]
        );
    }

    #[test]
    fn default_words() {
        assert_eq!(
            split(DEFAULT, "a+b=1234567, ok"),
            ["a", "+", "b", "=", "123", "456", "7", ",", " ok"]
        );
    }

    #[test]
    fn byte_encoding_maps_spaces_and_bytes() {
        let pre = PreTokenizer::new(GPT2, true).unwrap();
        let words = pre.split(" é\n".as_bytes());
        let got: Vec<String> = words
            .iter()
            .map(|w| String::from_utf8(w.to_vec()).unwrap())
            .collect();
        assert_eq!(got, ["ĠÃ©", "Ċ"]);
    }

    #[test]
    fn every_pattern_compiles() {
        for name in [
            "default",
            "llama-bpe",
            "minicpm5",
            "deepseek-llm",
            "deepseek-coder",
            "deepseek-v3",
            "spark2_5",
            "youtu",
            "falcon",
            "mpt",
            "gpt-2",
            "jais-2",
            "starcoder",
            "qwen2",
            "qwen35",
            "dbrx",
            "bloom",
            "chatglm-bpe",
            "viking",
            "tekken",
            "chameleon",
            "gpt-4o",
            "granite-embed-multi-97m",
            "tiny_aya",
            "superbpe",
            "bailingmoe",
            "seed-coder",
            "ufakzeka",
            "afmoe",
            "laguna",
            "exaone-moe",
            "gemma4",
        ] {
            let s = settings(Some(name)).unwrap();
            PreTokenizer::new(s.patterns, s.byte_encode).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(settings(Some("no-such")).is_err());
        assert!(settings(Some("kimi-k2")).is_err());
    }
}
