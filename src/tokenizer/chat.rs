//! Chat templates: `llama_chat_apply_template`'s behaviour. The template is either a builtin
//! name ("chatml", "llama3", ...) or a model's Jinja template string, which is *not* run: it is
//! recognised by the same substring tests as the reference (llama-chat.cpp) and mapped to one
//! of the builtin formats. Output is byte-identical to the reference's for every builtin.
//!
//! One extension: BitNet b1.58 2B-4T's format, which the pinned reference does not know (it
//! returns -1 for the name "bitnet" and for the model's Jinja template): each message is
//! `Role: content<|eot_id|>` (role capitalised, content trimmed) and the generation prompt is
//! `Assistant: `, as the model's Hugging Face template renders it (without the BOS, which the
//! tokenizer adds). It is used for the name "bitnet" and for templates that the reference
//! leaves unrecognised and that look like that template or like the placeholder in
//! Microsoft's GGUF (`BITNETAssistant`); the builtin list stays the reference's.

use crate::error::{Error, Result};

/// One chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatMessage<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

/// The formats (llama-chat.h's `llm_chat_template`, plus BitNet's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    Chatml,
    Llama2,
    Llama2Sys,
    Llama2SysBos,
    Llama2SysStrip,
    MistralV1,
    MistralV3,
    MistralV3Tekken,
    MistralV7,
    MistralV7Tekken,
    Phi3,
    Phi4,
    Falcon3,
    Zephyr,
    Monarch,
    Gemma,
    Orion,
    Openchat,
    Vicuna,
    VicunaOrca,
    Deepseek,
    Deepseek2,
    Deepseek3,
    DeepseekOcr,
    CommandR,
    Llama3,
    Chatglm3,
    Chatglm4,
    Glmedge,
    Minicpm,
    Exaone3,
    Exaone4,
    ExaoneMoe,
    RwkvWorld,
    Granite3X,
    Granite40,
    Granite41,
    Gigachat,
    Megrez,
    Yandex,
    Bailing,
    BailingThink,
    Bailing2,
    Llama4,
    Smolvlm,
    Dots1,
    HunyuanMoe,
    OpenaiMoe,
    HunyuanDense,
    HunyuanVl,
    KimiK2,
    SeedOss,
    Grok2,
    PanguEmbed,
    SolarOpen,
    /// Not in the reference: BitNet b1.58 2B-4T.
    Bitnet,
}

/// The reference's builtin names, in its order (a `std::map`, so sorted bytewise).
const BUILTIN: &[(&str, Template)] = &[
    ("bailing", Template::Bailing),
    ("bailing-think", Template::BailingThink),
    ("bailing2", Template::Bailing2),
    ("chatglm3", Template::Chatglm3),
    ("chatglm4", Template::Chatglm4),
    ("chatml", Template::Chatml),
    ("command-r", Template::CommandR),
    ("deepseek", Template::Deepseek),
    ("deepseek-ocr", Template::DeepseekOcr),
    ("deepseek2", Template::Deepseek2),
    ("deepseek3", Template::Deepseek3),
    ("exaone-moe", Template::ExaoneMoe),
    ("exaone3", Template::Exaone3),
    ("exaone4", Template::Exaone4),
    ("falcon3", Template::Falcon3),
    ("gemma", Template::Gemma),
    ("gigachat", Template::Gigachat),
    ("glmedge", Template::Glmedge),
    ("gpt-oss", Template::OpenaiMoe),
    ("granite", Template::Granite3X),
    ("granite-4.0", Template::Granite40),
    ("granite-4.1", Template::Granite41),
    ("grok-2", Template::Grok2),
    ("hunyuan-dense", Template::HunyuanDense),
    ("hunyuan-moe", Template::HunyuanMoe),
    ("hunyuan-vl", Template::HunyuanVl),
    ("kimi-k2", Template::KimiK2),
    ("llama2", Template::Llama2),
    ("llama2-sys", Template::Llama2Sys),
    ("llama2-sys-bos", Template::Llama2SysBos),
    ("llama2-sys-strip", Template::Llama2SysStrip),
    ("llama3", Template::Llama3),
    ("llama4", Template::Llama4),
    ("megrez", Template::Megrez),
    ("minicpm", Template::Minicpm),
    ("mistral-v1", Template::MistralV1),
    ("mistral-v3", Template::MistralV3),
    ("mistral-v3-tekken", Template::MistralV3Tekken),
    ("mistral-v7", Template::MistralV7),
    ("mistral-v7-tekken", Template::MistralV7Tekken),
    ("monarch", Template::Monarch),
    ("openchat", Template::Openchat),
    ("orion", Template::Orion),
    ("pangu-embedded", Template::PanguEmbed),
    ("phi3", Template::Phi3),
    ("phi4", Template::Phi4),
    ("rwkv-world", Template::RwkvWorld),
    ("seed_oss", Template::SeedOss),
    ("smolvlm", Template::Smolvlm),
    ("solar-open", Template::SolarOpen),
    ("vicuna", Template::Vicuna),
    ("vicuna-orca", Template::VicunaOrca),
    ("yandex", Template::Yandex),
    ("zephyr", Template::Zephyr),
];

/// The name of BitNet's format (an extension: not in `builtin_templates`).
pub const BITNET_TEMPLATE_NAME: &str = "bitnet";

/// `llama_chat_builtin_templates`: the same names in the same order.
pub fn builtin_templates() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| BUILTIN.iter().map(|(name, _)| *name).collect())
}

/// `llm_chat_detect_template`, then the BitNet extension: the format a name or Jinja template
/// stands for, or None (the reference's -1).
pub fn detect_template(tmpl: &[u8]) -> Option<Template> {
    if let Some(t) = detect_reference(tmpl) {
        return Some(t);
    }
    if tmpl == BITNET_TEMPLATE_NAME.as_bytes() || looks_like_bitnet(tmpl) {
        return Some(Template::Bitnet);
    }
    None
}

/// 2B-4T's Hugging Face template (`message['role'] | capitalize + ': ' + ... + '<|eot_id|>'`
/// and a generation prompt of `'Assistant: '`), or the placeholder Microsoft's GGUF conversion
/// embeds in `ggml-model-i2_s.gguf` (`Human: ... BITNETAssistant: `), which is not the format
/// the model was trained on: both get the Hugging Face format.
fn looks_like_bitnet(tmpl: &[u8]) -> bool {
    let has = |s: &str| contains(tmpl, s);
    (has("<|eot_id|>") && has("capitalize") && has("'Assistant: '")) || has("BITNETAssistant")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The reference's detection, test for test and in its order.
fn detect_reference(tmpl: &[u8]) -> Option<Template> {
    use Template::*;
    if let Some((_, t)) = BUILTIN.iter().find(|(name, _)| name.as_bytes() == tmpl) {
        return Some(*t);
    }
    let has = |s: &str| contains(tmpl, s);
    let t = if has("<|im_start|>") {
        if has("<|im_sep|>") {
            Phi4
        } else if has("<end_of_utterance>") {
            Smolvlm
        } else {
            Chatml
        }
    } else if tmpl.starts_with(b"mistral") || has("[INST]") {
        if has("[SYSTEM_PROMPT]") {
            MistralV7
        } else if has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]") {
            if has(" [INST]") {
                MistralV1
            } else if has("\"[INST]\"") {
                MistralV3Tekken
            } else {
                MistralV3
            }
        } else if has("content.strip()") {
            Llama2SysStrip
        } else if has("bos_token + '[INST]") {
            Llama2SysBos
        } else if has("<<SYS>>") {
            Llama2Sys
        } else {
            Llama2
        }
    } else if has("<|assistant|>") && has("<|end|>") {
        Phi3
    } else if has("[gMASK]<sop>") {
        Chatglm4
    } else if has("<|assistant|>") && has("<|user|>") {
        if has("<|tool_declare|>") {
            ExaoneMoe
        } else if has("</s>") {
            Falcon3
        } else {
            Glmedge
        }
    } else if has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>") {
        Glmedge
    } else if has("<|user|>") && has("<|endoftext|>") {
        Zephyr
    } else if has("bos_token + message['role']") {
        Monarch
    } else if has("<start_of_turn>") {
        Gemma
    } else if has("'\\n\\nAssistant: ' + eos_token") {
        Orion
    } else if has("GPT4 Correct ") {
        Openchat
    } else if has("USER: ") && has("ASSISTANT: ") {
        if has("SYSTEM: ") {
            VicunaOrca
        } else {
            Vicuna
        }
    } else if has("### Instruction:") && has("<|EOT|>") {
        Deepseek
    } else if has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>") {
        CommandR
    } else if has("<|start_header_id|>") && has("<|end_header_id|>") {
        Llama3
    } else if has("[gMASK]sop") {
        Chatglm3
    } else if has("<用户>") {
        Minicpm
    } else if has("'Assistant: ' + message['content'] + eos_token") {
        Deepseek2
    } else if has("<｜Assistant｜>") && has("<｜User｜>") && has("<｜end▁of▁sentence｜>") {
        Deepseek3
    } else if has("[|system|]") && has("[|assistant|]") && has("[|endofturn|]") {
        if has("[|tool|]") {
            Exaone4
        } else {
            Exaone3
        }
    } else if has("rwkv-world") || has("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}") {
        RwkvWorld
    } else if has("<|start_of_role|>") {
        if has("<tool_call>") || has("<tools>") {
            if has("g4_default_system_message") {
                Granite40
            } else {
                Granite41
            }
        } else {
            Granite3X
        }
    } else if has(
        "message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]",
    ) {
        Gigachat
    } else if has("<|role_start|>") {
        Megrez
    } else if has(" Ассистент:") {
        Yandex
    } else if has("<role>ASSISTANT</role>") && has("'HUMAN'") {
        Bailing
    } else if has("<role>ASSISTANT</role>") && has("\"HUMAN\"") && has("<think>") {
        BailingThink
    } else if has("<role>ASSISTANT</role>") && has("<role>HUMAN</role>") && has("<|role_end|>") {
        Bailing2
    } else if has("<|header_start|>") && has("<|header_end|>") {
        Llama4
    } else if has("<|endofuserprompt|>") {
        Dots1
    } else if has("<|extra_0|>") && has("<|extra_4|>") {
        HunyuanMoe
    } else if has("<|start|>") && has("<|channel|>") {
        OpenaiMoe
    } else if has("<｜hy_Assistant｜>") && has("<｜hy_begin▁of▁sentence｜>") {
        HunyuanVl
    } else if has("<｜hy_Assistant｜>") && has("<｜hy_place▁holder▁no▁3｜>") {
        HunyuanDense
    } else if has("<|im_assistant|>assistant<|im_middle|>") {
        KimiK2
    } else if has("<seed:bos>") {
        SeedOss
    } else if has("'Assistant: '  + message['content'] + '<|separator|>") {
        Grok2
    } else if has("[unused9]系统：[unused10]") {
        PanguEmbed
    } else if has("<|begin|>") && has("<|end|>") && has("<|content|>") {
        SolarOpen
    } else {
        return None;
    };
    Some(t)
}

/// `llama_chat_apply_template(tmpl, msgs, add_assistant)`: the formatted prompt, or an error
/// for a template that is neither a known name nor recognised (the C API's -1).
pub fn apply_template(tmpl: &str, msgs: &[ChatMessage], add_assistant: bool) -> Result<String> {
    let msgs: Vec<(&[u8], &[u8])> = msgs
        .iter()
        .map(|m| (m.role.as_bytes(), m.content.as_bytes()))
        .collect();
    let out = apply_template_bytes(tmpl.as_bytes(), &msgs, add_assistant)?;
    // Every transformation is ASCII-only, so UTF-8 in gives UTF-8 out.
    String::from_utf8(out).map_err(|e| Error::bad_input(format!("chat template output: {e}")))
}

/// `apply_template` over raw bytes (roles and contents as (role, content) pairs), for callers
/// holding C strings that need not be UTF-8.
pub fn apply_template_bytes(
    tmpl: &[u8],
    msgs: &[(&[u8], &[u8])],
    add_assistant: bool,
) -> Result<Vec<u8>> {
    let t = detect_template(tmpl).ok_or_else(|| {
        let shown = String::from_utf8_lossy(&tmpl[..tmpl.len().min(60)]).into_owned();
        Error::unsupported(format!("unknown chat template {shown:?}"))
    })?;
    Ok(format(t, msgs, add_assistant))
}

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The reference's `trim`: C whitespace off both ends.
fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_c_space(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| !is_c_space(b))
        .map_or(start, |i| i + 1);
    &s[start..end.max(start)]
}

/// The rendered conversation, appended to in pieces.
struct Out(Vec<u8>);

impl Out {
    fn put(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.0.extend_from_slice(p);
        }
    }
}

/// A string literal (or a `&str`) as bytes, for `Out::put`'s lists.
macro_rules! s {
    ($e:expr) => {
        AsRef::<[u8]>::as_ref($e)
    };
}

/// The plain tagged formats: every message as `open role sep content close`, then `generation`
/// when the assistant's turn is asked for.
fn tagged(
    out: &mut Out,
    msgs: &[(&[u8], &[u8])],
    add_ass: bool,
    [open, sep, close]: [&str; 3],
    generation: &str,
) {
    for &(role, content) in msgs {
        out.put(&[s!(open), role, s!(sep), content, s!(close)]);
    }
    if add_ass {
        out.put(&[s!(generation)]);
    }
}

/// Renders the messages in one format: one function per family below.
pub fn format(t: Template, msgs: &[(&[u8], &[u8])], add_ass: bool) -> Vec<u8> {
    use Template::*;
    let mut out = Out(Vec::new());
    match t {
        Chatml => chatml(&mut out, msgs, add_ass),
        MistralV7 | MistralV7Tekken => mistral_v7(t, &mut out, msgs),
        MistralV1 | MistralV3 | MistralV3Tekken => mistral_v1_v3(t, &mut out, msgs),
        Llama2 | Llama2Sys | Llama2SysBos | Llama2SysStrip => llama2(t, &mut out, msgs),
        Phi3 => phi3(&mut out, msgs, add_ass),
        Phi4 => phi4(&mut out, msgs, add_ass),
        Falcon3 => falcon3(&mut out, msgs, add_ass),
        Zephyr => zephyr(&mut out, msgs, add_ass),
        Monarch => monarch(&mut out, msgs, add_ass),
        Gemma => gemma(&mut out, msgs, add_ass),
        Orion => orion(&mut out, msgs),
        Openchat => openchat(&mut out, msgs, add_ass),
        Vicuna | VicunaOrca => vicuna(t, &mut out, msgs, add_ass),
        Deepseek => deepseek(&mut out, msgs, add_ass),
        CommandR => command_r(&mut out, msgs, add_ass),
        Llama3 => llama3(&mut out, msgs, add_ass),
        Chatglm3 => chatglm3(&mut out, msgs, add_ass),
        Chatglm4 => chatglm4(&mut out, msgs, add_ass),
        Glmedge => glmedge(&mut out, msgs, add_ass),
        Minicpm => minicpm(&mut out, msgs),
        Deepseek2 => deepseek2(&mut out, msgs, add_ass),
        Deepseek3 => deepseek3(&mut out, msgs, add_ass),
        DeepseekOcr => deepseek_ocr(&mut out, msgs),
        Exaone3 | Exaone4 => exaone(t, &mut out, msgs, add_ass),
        ExaoneMoe => exaone_moe(&mut out, msgs, add_ass),
        RwkvWorld => rwkv_world(&mut out, msgs),
        Granite3X => granite3x(&mut out, msgs, add_ass),
        Granite40 | Granite41 => granite4(&mut out, msgs, add_ass),
        Gigachat => gigachat(&mut out, msgs, add_ass),
        Megrez => megrez(&mut out, msgs, add_ass),
        Yandex => yandex(&mut out, msgs, add_ass),
        Bailing | BailingThink | Bailing2 => bailing(t, &mut out, msgs, add_ass),
        Llama4 => llama4(&mut out, msgs, add_ass),
        Smolvlm => smolvlm(&mut out, msgs, add_ass),
        Dots1 => dots1(&mut out, msgs, add_ass),
        HunyuanMoe => hunyuan_moe(&mut out, msgs),
        OpenaiMoe => openai_moe(&mut out, msgs, add_ass),
        HunyuanDense => hunyuan_dense(&mut out, msgs),
        HunyuanVl => hunyuan_vl(&mut out, msgs),
        KimiK2 => kimi_k2(&mut out, msgs, add_ass),
        SeedOss => seed_oss(&mut out, msgs, add_ass),
        Grok2 => grok2(&mut out, msgs, add_ass),
        PanguEmbed => pangu_embed(&mut out, msgs, add_ass),
        SolarOpen => solar_open(&mut out, msgs, add_ass),
        Bitnet => bitnet(&mut out, msgs, add_ass),
    }
    out.0
}

/// [`Template::Chatml`].
fn chatml(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    tagged(
        out,
        msgs,
        add_ass,
        ["<|im_start|>", "\n", "<|im_end|>\n"],
        "<|im_start|>assistant\n",
    );
}

/// [`Template::MistralV7`], [`Template::MistralV7Tekken`].
fn mistral_v7(t: Template, out: &mut Out, msgs: &[(&[u8], &[u8])]) {
    use Template::*;
    let space = s!(if t == MistralV7 { " " } else { "" });
    for &(role, content) in msgs {
        match role {
            b"system" => out.put(&[
                s!("[SYSTEM_PROMPT]"),
                space,
                content,
                s!("[/SYSTEM_PROMPT]"),
            ]),
            b"user" => out.put(&[s!("[INST]"), space, content, s!("[/INST]")]),
            _ => out.put(&[space, content, s!("</s>")]),
        }
    }
}

/// [`Template::MistralV1`], [`Template::MistralV3`], [`Template::MistralV3Tekken`].
fn mistral_v1_v3(t: Template, out: &mut Out, msgs: &[(&[u8], &[u8])]) {
    use Template::*;
    let leading = s!(if t == MistralV1 { " " } else { "" });
    let trailing = s!(if t == MistralV3Tekken { "" } else { " " });
    let trim_assistant = t == MistralV3;
    let mut inside_turn = false;
    for &(role, content) in msgs {
        if !inside_turn {
            out.put(&[leading, s!("[INST]"), trailing]);
            inside_turn = true;
        }
        match role {
            b"system" => out.put(&[content, s!("\n\n")]),
            b"user" => out.put(&[content, leading, s!("[/INST]")]),
            _ => {
                let c = if trim_assistant {
                    trim(content)
                } else {
                    content
                };
                out.put(&[trailing, c, s!("</s>")]);
                inside_turn = false;
            }
        }
    }
}

/// [`Template::Llama2`], [`Template::Llama2Sys`], [`Template::Llama2SysBos`],
/// [`Template::Llama2SysStrip`].
fn llama2(t: Template, out: &mut Out, msgs: &[(&[u8], &[u8])]) {
    use Template::*;
    let support_system = t != Llama2;
    let bos_inside_history = t == Llama2SysBos;
    let strip = t == Llama2SysStrip;
    let mut inside_turn = true;
    out.put(&[s!("[INST] ")]);
    for &(role, content) in msgs {
        let content = if strip { trim(content) } else { content };
        if !inside_turn {
            inside_turn = true;
            out.put(&[s!(if bos_inside_history {
                "<s>[INST] "
            } else {
                "[INST] "
            })]);
        }
        match role {
            b"system" if support_system => {
                out.put(&[s!("<<SYS>>\n"), content, s!("\n<</SYS>>\n\n")])
            }
            b"system" => out.put(&[content, s!("\n")]),
            b"user" => out.put(&[content, s!(" [/INST]")]),
            _ => {
                out.put(&[content, s!("</s>")]);
                inside_turn = false;
            }
        }
    }
}

/// [`Template::Phi3`].
fn phi3(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    tagged(
        out,
        msgs,
        add_ass,
        ["<|", "|>\n", "<|end|>\n"],
        "<|assistant|>\n",
    );
}

/// [`Template::Phi4`].
fn phi4(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    tagged(
        out,
        msgs,
        add_ass,
        ["<|im_start|>", "<|im_sep|>", "<|im_end|>"],
        "<|im_start|>assistant<|im_sep|>",
    );
}

/// [`Template::Falcon3`].
fn falcon3(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    tagged(out, msgs, add_ass, ["<|", "|>\n", "\n"], "<|assistant|>\n");
}

/// [`Template::Zephyr`].
fn zephyr(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    tagged(
        out,
        msgs,
        add_ass,
        ["<|", "|>\n", "<|endoftext|>\n"],
        "<|assistant|>\n",
    );
}

/// [`Template::Monarch`].
fn monarch(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for (i, &(role, content)) in msgs.iter().enumerate() {
        let bos = s!(if i == 0 { "" } else { "<s>" });
        out.put(&[bos, role, s!("\n"), content, s!("</s>\n")]);
    }
    if add_ass {
        out.put(&[s!("<s>assistant\n")]);
    }
}

/// [`Template::Gemma`].
fn gemma(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    let mut system_prompt: Vec<u8> = Vec::new();
    for &(role, content) in msgs {
        if role == b"system" {
            system_prompt.extend_from_slice(trim(content));
            continue;
        }
        let role = if role == b"assistant" {
            s!("model")
        } else {
            role
        };
        out.put(&[s!("<start_of_turn>"), role, s!("\n")]);
        if !system_prompt.is_empty() && role != b"model" {
            out.put(&[&system_prompt, s!("\n\n")]);
            system_prompt.clear();
        }
        out.put(&[trim(content), s!("<end_of_turn>\n")]);
    }
    if add_ass {
        out.put(&[s!("<start_of_turn>model\n")]);
    }
}

/// [`Template::Orion`].
fn orion(out: &mut Out, msgs: &[(&[u8], &[u8])]) {
    let mut system_prompt: Vec<u8> = Vec::new();
    for &(role, content) in msgs {
        match role {
            b"system" => system_prompt.extend_from_slice(content),
            b"user" => {
                out.put(&[s!("Human: ")]);
                if !system_prompt.is_empty() {
                    out.put(&[&system_prompt, s!("\n\n")]);
                    system_prompt.clear();
                }
                out.put(&[content, s!("\n\nAssistant: </s>")]);
            }
            _ => out.put(&[content, s!("</s>")]),
        }
    }
}

/// [`Template::Openchat`].
fn openchat(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        if role == b"system" {
            out.put(&[content, s!("<|end_of_turn|>")]);
        } else {
            let mut role = role.to_vec();
            if let Some(first) = role.first_mut() {
                *first = first.to_ascii_uppercase();
            }
            out.put(&[
                s!("GPT4 Correct "),
                &role,
                s!(": "),
                content,
                s!("<|end_of_turn|>"),
            ]);
        }
    }
    if add_ass {
        out.put(&[s!("GPT4 Correct Assistant:")]);
    }
}

/// [`Template::Vicuna`], [`Template::VicunaOrca`].
fn vicuna(t: Template, out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    use Template::*;
    for &(role, content) in msgs {
        match role {
            b"system" if t == VicunaOrca => out.put(&[s!("SYSTEM: "), content, s!("\n")]),
            b"system" => out.put(&[content, s!("\n\n")]),
            b"user" => out.put(&[s!("USER: "), content, s!("\n")]),
            b"assistant" => out.put(&[s!("ASSISTANT: "), content, s!("</s>\n")]),
            _ => {}
        }
    }
    if add_ass {
        out.put(&[s!("ASSISTANT:")]);
    }
}

/// [`Template::Deepseek`].
fn deepseek(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        match role {
            b"system" => out.put(&[content]),
            b"user" => out.put(&[s!("### Instruction:\n"), content, s!("\n")]),
            b"assistant" => out.put(&[s!("### Response:\n"), content, s!("\n<|EOT|>\n")]),
            _ => {}
        }
    }
    if add_ass {
        out.put(&[s!("### Response:\n")]);
    }
}

/// [`Template::CommandR`].
fn command_r(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        let head = match role {
            b"system" => "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>",
            b"user" => "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>",
            b"assistant" => "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
            _ => continue,
        };
        out.put(&[s!(head), trim(content), s!("<|END_OF_TURN_TOKEN|>")]);
    }
    if add_ass {
        out.put(&[s!("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>")]);
    }
}

/// [`Template::Llama3`].
fn llama3(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        out.put(&[
            s!("<|start_header_id|>"),
            role,
            s!("<|end_header_id|>\n\n"),
            trim(content),
            s!("<|eot_id|>"),
        ]);
    }
    if add_ass {
        out.put(&[s!("<|start_header_id|>assistant<|end_header_id|>\n\n")]);
    }
}

/// [`Template::Chatglm3`].
fn chatglm3(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    out.put(&[s!("[gMASK]sop")]);
    for &(role, content) in msgs {
        out.put(&[s!("<|"), role, s!("|>\n "), content]);
    }
    if add_ass {
        out.put(&[s!("<|assistant|>")]);
    }
}

/// [`Template::Chatglm4`].
fn chatglm4(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    out.put(&[s!("[gMASK]<sop>")]);
    for &(role, content) in msgs {
        out.put(&[s!("<|"), role, s!("|>\n"), content]);
    }
    if add_ass {
        out.put(&[s!("<|assistant|>\n")]);
    }
}

/// [`Template::Glmedge`].
fn glmedge(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        out.put(&[s!("<|"), role, s!("|>\n"), content]);
    }
    if add_ass {
        out.put(&[s!("<|assistant|>")]);
    }
}

/// [`Template::Minicpm`].
fn minicpm(out: &mut Out, msgs: &[(&[u8], &[u8])]) {
    for &(role, content) in msgs {
        if role == b"user" {
            out.put(&[s!("<用户>"), trim(content), s!("<AI>")]);
        } else {
            out.put(&[trim(content)]);
        }
    }
}

/// [`Template::Deepseek2`].
fn deepseek2(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        match role {
            b"system" => out.put(&[content, s!("\n\n")]),
            b"user" => out.put(&[s!("User: "), content, s!("\n\n")]),
            b"assistant" => out.put(&[s!("Assistant: "), content, s!("<｜end▁of▁sentence｜>")]),
            _ => {}
        }
    }
    if add_ass {
        out.put(&[s!("Assistant:")]);
    }
}

/// [`Template::Deepseek3`].
fn deepseek3(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        match role {
            b"system" => out.put(&[content, s!("\n\n")]),
            b"user" => out.put(&[s!("<｜User｜>"), content]),
            b"assistant" => out.put(&[s!("<｜Assistant｜>"), content, s!("<｜end▁of▁sentence｜>")]),
            _ => {}
        }
    }
    if add_ass {
        out.put(&[s!("<｜Assistant｜>")]);
    }
}

/// [`Template::DeepseekOcr`].
fn deepseek_ocr(out: &mut Out, msgs: &[(&[u8], &[u8])]) {
    for &(_, content) in msgs {
        out.put(&[content]);
    }
}

/// [`Template::Exaone3`], [`Template::Exaone4`].
fn exaone(t: Template, out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    use Template::*;
    for &(role, content) in msgs {
        match role {
            b"system" => out.put(&[s!("[|system|]"), trim(content), s!("[|endofturn|]\n")]),
            b"user" => out.put(&[s!("[|user|]"), trim(content), s!("\n")]),
            b"assistant" => out.put(&[s!("[|assistant|]"), trim(content), s!("[|endofturn|]\n")]),
            b"tool" if t == Exaone4 => {
                out.put(&[s!("[|tool|]"), trim(content), s!("[|endofturn|]\n")])
            }
            _ => {}
        }
    }
    if add_ass {
        out.put(&[s!("[|assistant|]")]);
    }
}

/// [`Template::ExaoneMoe`].
fn exaone_moe(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        let head = match role {
            b"system" => "<|system|>\n",
            b"user" => "<|user|>\n",
            b"assistant" => "<|assistant|>\n",
            b"tool" => "<|tool|>\n",
            _ => continue,
        };
        out.put(&[s!(head), trim(content), s!("<|endofturn|>\n")]);
    }
    if add_ass {
        out.put(&[s!("<|assistant|>\n")]);
    }
}

/// [`Template::RwkvWorld`].
fn rwkv_world(out: &mut Out, msgs: &[(&[u8], &[u8])]) {
    for (i, &(role, content)) in msgs.iter().enumerate() {
        match role {
            b"system" => out.put(&[s!("System: "), trim(content), s!("\n\n")]),
            b"user" => {
                out.put(&[s!("User: "), trim(content), s!("\n\n")]);
                if i == msgs.len() - 1 {
                    out.put(&[s!("Assistant:")]);
                }
            }
            b"assistant" => out.put(&[s!("Assistant: "), trim(content), s!("\n\n")]),
            _ => {}
        }
    }
}

/// [`Template::Granite3X`].
fn granite3x(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        out.put(&[s!("<|start_of_role|>"), role, s!("<|end_of_role|>")]);
        if role == b"assistant_tool_call" {
            out.put(&[s!("<|tool_call|>")]);
        }
        out.put(&[content, s!("<|end_of_text|>\n")]);
    }
    if add_ass {
        out.put(&[s!("<|start_of_role|>assistant<|end_of_role|>")]);
    }
}

/// [`Template::Granite40`], [`Template::Granite41`].
fn granite4(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        if role == b"assistant_tool_call" {
            out.put(&[s!("<|start_of_role|>assistant<|end_of_role|><|tool_call|>")]);
        } else {
            out.put(&[s!("<|start_of_role|>"), role, s!("<|end_of_role|>")]);
        }
        out.put(&[content, s!("<|end_of_text|>\n")]);
    }
    if add_ass {
        out.put(&[s!("<|start_of_role|>assistant<|end_of_role|>")]);
    }
}

/// [`Template::Gigachat`].
fn gigachat(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    let has_system = msgs.first().is_some_and(|m| m.0 == b"system");
    if has_system {
        out.put(&[s!("<s>"), msgs[0].1, s!("<|message_sep|>")]);
    } else {
        out.put(&[s!("<s>")]);
    }
    for &(role, content) in &msgs[usize::from(has_system)..] {
        match role {
            b"user" => out.put(&[
                s!("user<|role_sep|>"),
                content,
                s!("<|message_sep|>available functions<|role_sep|>[]<|message_sep|>"),
            ]),
            b"assistant" => out.put(&[s!("assistant<|role_sep|>"), content, s!("<|message_sep|>")]),
            _ => {}
        }
    }
    if add_ass {
        out.put(&[s!("assistant<|role_sep|>")]);
    }
}

/// [`Template::Megrez`].
fn megrez(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    tagged(
        out,
        msgs,
        add_ass,
        ["<|role_start|>", "<|role_end|>", "<|turn_end|>"],
        "<|role_start|>assistant<|role_end|>",
    );
}

/// [`Template::Yandex`].
fn yandex(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        match role {
            b"user" => out.put(&[s!(" Пользователь: "), content, s!("\n\n")]),
            b"assistant" => out.put(&[s!(" Ассистент: "), content, s!("\n\n")]),
            _ => {}
        }
    }
    if add_ass {
        out.put(&[s!(" Ассистент:[SEP]")]);
    }
}

/// [`Template::Bailing`], [`Template::BailingThink`], [`Template::Bailing2`].
fn bailing(t: Template, out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    use Template::*;
    let has_system = msgs.first().is_some_and(|m| m.0 == b"system");
    if t == Bailing2 && !has_system {
        out.put(&[s!("<role>SYSTEM</role>detailed thinking off<|role_end|>")]);
    }
    for &(role, content) in msgs {
        let role = if role == b"user" {
            b"HUMAN".to_vec()
        } else {
            role.to_ascii_uppercase()
        };
        out.put(&[s!("<role>"), &role, s!("</role>"), content]);
        if t == Bailing2 {
            out.put(&[s!("<|role_end|>")]);
        }
    }
    if add_ass {
        out.put(&[s!("<role>ASSISTANT</role>")]);
        if t == BailingThink {
            out.put(&[s!("<think>")]);
        }
    }
}

/// [`Template::Llama4`].
fn llama4(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        out.put(&[
            s!("<|header_start|>"),
            role,
            s!("<|header_end|>\n\n"),
            trim(content),
            s!("<|eot|>"),
        ]);
    }
    if add_ass {
        out.put(&[s!("<|header_start|>assistant<|header_end|>\n\n")]);
    }
}

/// [`Template::Smolvlm`].
fn smolvlm(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    out.put(&[s!("<|im_start|>")]);
    for &(role, content) in msgs {
        match role {
            b"system" => out.put(&[content, s!("\n\n")]),
            b"user" => out.put(&[s!("User: "), content, s!("<end_of_utterance>\n")]),
            _ => out.put(&[s!("Assistant: "), content, s!("<end_of_utterance>\n")]),
        }
    }
    if add_ass {
        out.put(&[s!("Assistant:")]);
    }
}

/// [`Template::Dots1`].
fn dots1(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        match role {
            b"system" => out.put(&[s!("<|system|>"), content, s!("<|endofsystem|>")]),
            b"user" => out.put(&[s!("<|userprompt|>"), content, s!("<|endofuserprompt|>")]),
            _ => out.put(&[s!("<|response|>"), content, s!("<|endofresponse|>")]),
        }
    }
    if add_ass {
        out.put(&[s!("<|response|>")]);
    }
}

/// [`Template::HunyuanMoe`].
fn hunyuan_moe(out: &mut Out, msgs: &[(&[u8], &[u8])]) {
    for &(role, content) in msgs {
        match role {
            b"system" => out.put(&[s!("<|startoftext|>"), content, s!("<|extra_4|>")]),
            b"assistant" => out.put(&[content, s!("<|eos|>")]),
            _ => out.put(&[s!("<|startoftext|>"), content, s!("<|extra_0|>")]),
        }
    }
}

/// [`Template::OpenaiMoe`].
fn openai_moe(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        out.put(&[s!("<|start|>"), role, s!("<|message|>"), content]);
        out.put(&[s!(if role == b"assistant" {
            "<|return|>"
        } else {
            "<|end|>"
        })]);
    }
    if add_ass {
        out.put(&[s!("<|start|>assistant")]);
    }
}

/// [`Template::HunyuanDense`].
fn hunyuan_dense(out: &mut Out, msgs: &[(&[u8], &[u8])]) {
    for (i, &(role, content)) in msgs.iter().enumerate() {
        if i == 0 && role == b"system" {
            out.put(&[content, s!("<｜hy_place▁holder▁no▁3｜>")]);
        }
        match role {
            b"assistant" => out.put(&[
                s!("<｜hy_Assistant｜>"),
                content,
                s!("<｜hy_place▁holder▁no▁2｜>"),
            ]),
            b"user" => out.put(&[s!("<｜hy_User｜>"), content, s!("<｜hy_Assistant｜>")]),
            _ => {}
        }
    }
}

/// [`Template::HunyuanVl`].
fn hunyuan_vl(out: &mut Out, msgs: &[(&[u8], &[u8])]) {
    out.put(&[s!("<｜hy_begin▁of▁sentence｜>")]);
    for (i, &(role, content)) in msgs.iter().enumerate() {
        if i == 0 && role == b"system" {
            out.put(&[content, s!("<｜hy_place▁holder▁no▁3｜>")]);
            continue;
        }
        match role {
            b"user" => out.put(&[content, s!("<｜hy_User｜>")]),
            b"assistant" => out.put(&[content, s!("<｜hy_Assistant｜>")]),
            _ => {}
        }
    }
}

/// [`Template::KimiK2`].
fn kimi_k2(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        let head = match role {
            b"system" => "<|im_system|>system<|im_middle|>",
            b"user" => "<|im_user|>user<|im_middle|>",
            b"assistant" => "<|im_assistant|>assistant<|im_middle|>",
            b"tool" => "<|im_system|>tool<|im_middle|>",
            _ => "",
        };
        out.put(&[s!(head), content, s!("<|im_end|>")]);
    }
    if add_ass {
        out.put(&[s!("<|im_assistant|>assistant<|im_middle|>")]);
    }
}

/// [`Template::SeedOss`].
fn seed_oss(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        let c = if role == b"assistant" {
            trim(content)
        } else {
            content
        };
        out.put(&[s!("<seed:bos>"), role, s!("\n"), c, s!("<seed:eos>")]);
    }
    if add_ass {
        out.put(&[s!("<seed:bos>assistant\n")]);
    }
}

/// [`Template::Grok2`].
fn grok2(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        match role {
            b"system" => out.put(&[s!("System: "), trim(content), s!("<|separator|>\n\n")]),
            b"user" => out.put(&[s!("Human: "), trim(content), s!("<|separator|>\n\n")]),
            b"assistant" => out.put(&[s!("Assistant: "), content, s!("<|separator|>\n\n")]),
            _ => {}
        }
    }
    if add_ass {
        out.put(&[s!("Assistant:")]);
    }
}

/// [`Template::PanguEmbed`].
fn pangu_embed(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for (i, &(role, content)) in msgs.iter().enumerate() {
        if i == 0 && role != b"system" {
            out.put(&[s!("[unused9]系统：[unused10]")]);
        }
        let head = match role {
            b"system" => "[unused9]系统：",
            b"user" => "[unused9]用户：",
            b"assistant" => "[unused9]助手：",
            b"tool" => "[unused9]工具：",
            b"function" => "[unused9]方法：",
            _ => continue,
        };
        out.put(&[s!(head), content, s!("[unused10]")]);
    }
    if add_ass {
        out.put(&[s!("[unused9]助手：")]);
    }
}

/// [`Template::SolarOpen`].
fn solar_open(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    tagged(
        out,
        msgs,
        add_ass,
        ["<|begin|>", "<|content|>", "<|end|>"],
        "<|begin|>assistant",
    );
}

/// [`Template::Bitnet`].
fn bitnet(out: &mut Out, msgs: &[(&[u8], &[u8])], add_ass: bool) {
    for &(role, content) in msgs {
        // Jinja's `capitalize`: first letter upper, the rest lower (ASCII here).
        let mut role = role.to_ascii_lowercase();
        if let Some(first) = role.first_mut() {
            *first = first.to_ascii_uppercase();
        }
        out.put(&[&role, s!(": "), trim(content), s!("<|eot_id|>")]);
    }
    if add_ass {
        out.put(&[s!("Assistant: ")]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_are_sorted_like_a_std_map() {
        let names = builtin_templates();
        assert_eq!(names.len(), 54);
        for w in names.windows(2) {
            assert!(w[0].as_bytes() < w[1].as_bytes(), "{} !< {}", w[0], w[1]);
        }
        assert!(!names.contains(&BITNET_TEMPLATE_NAME));
    }

    #[test]
    fn every_builtin_name_detects_and_formats() {
        let msgs = [ChatMessage {
            role: "user",
            content: "hi",
        }];
        for name in builtin_templates() {
            let out = apply_template(name, &msgs, true).unwrap();
            assert!(out.contains("hi"), "{name}: {out:?}");
        }
    }

    #[test]
    fn bitnet_format() {
        let msgs = [
            ChatMessage {
                role: "system",
                content: "Be brief.",
            },
            ChatMessage {
                role: "user",
                content: "  Hello \n",
            },
        ];
        assert_eq!(
            apply_template("bitnet", &msgs, true).unwrap(),
            "System: Be brief.<|eot_id|>User: Hello<|eot_id|>Assistant: "
        );
        let hf = "{% for message in messages %}{{ message['role'] | capitalize + ': ' + \
                  message['content'] | trim + '<|eot_id|>' }}{% endfor %}\
                  {% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";
        assert_eq!(detect_template(hf.as_bytes()), Some(Template::Bitnet));
        let gguf_placeholder = "{% for message in messages %}{% if message['role'] == 'user' %}\
                                {{ 'Human: ' + message['content'] + '\\n\\nBITNETAssistant: ' }}\
                                {% endif %}{% endfor %}";
        assert_eq!(
            detect_template(gguf_placeholder.as_bytes()),
            Some(Template::Bitnet)
        );
    }

    #[test]
    fn unknown_template_is_an_error() {
        let msgs = [ChatMessage {
            role: "user",
            content: "hi",
        }];
        assert!(apply_template("no-such-template", &msgs, true).is_err());
        assert!(apply_template("", &msgs, true).is_err());
    }

    #[test]
    fn trim_is_c_isspace() {
        assert_eq!(trim(b" \t\x0b\x0cab c\r\n"), b"ab c");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(trim(b"\xc2\xa0x"), b"\xc2\xa0x");
    }
}
