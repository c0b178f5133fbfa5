//! Our chat templates (`bitnet::tokenizer::chat`) against the reference's
//! `llama_chat_apply_template`: the builtin list, every builtin name with several message lists
//! (byte-identical output), and template strings built from the markers its detection looks
//! for (same format chosen, or the same refusal). The BitNet format is our extension: the
//! reference refuses it, and the test checks that it does.

mod common;

use std::ffi::{CStr, CString};

use bitnet::rng::SplitMix64;
use bitnet::tokenizer::chat::{self, apply_template_bytes, builtin_templates, Template};
use crossval::reference::{ffi, load_library, RefLib};

/// The reference's output, or None for its -1.
fn reference_apply(
    lib: &RefLib,
    tmpl: &[u8],
    msgs: &[(&[u8], &[u8])],
    add_ass: bool,
) -> Option<Vec<u8>> {
    let tmpl = CString::new(tmpl).unwrap();
    let owned: Vec<(CString, CString)> = msgs
        .iter()
        .map(|(r, c)| (CString::new(*r).unwrap(), CString::new(*c).unwrap()))
        .collect();
    let cmsgs: Vec<ffi::llama_chat_message> = owned
        .iter()
        .map(|(r, c)| ffi::llama_chat_message {
            role: r.as_ptr(),
            content: c.as_ptr(),
        })
        .collect();
    let mut buf = vec![0u8; 64];
    loop {
        // SAFETY: tmpl and every message are NUL-terminated strings alive for the call; buf has
        // buf.len() writable bytes.
        let n = unsafe {
            lib.api.llama_chat_apply_template(
                tmpl.as_ptr(),
                cmsgs.as_ptr(),
                cmsgs.len(),
                add_ass,
                buf.as_mut_ptr().cast(),
                buf.len() as i32,
            )
        };
        if n < 0 {
            return None;
        }
        let n = n as usize;
        if n <= buf.len() {
            buf.truncate(n);
            return Some(buf);
        }
        buf = vec![0u8; n];
    }
}

fn reference_builtins(lib: &RefLib) -> Vec<String> {
    // SAFETY: a NULL output with len 0 only asks for the count.
    let n = unsafe {
        lib.api
            .llama_chat_builtin_templates(std::ptr::null_mut(), 0)
    };
    let mut out: Vec<*const std::os::raw::c_char> = vec![std::ptr::null(); n as usize];
    // SAFETY: `out` has room for n pointers.
    unsafe {
        lib.api
            .llama_chat_builtin_templates(out.as_mut_ptr(), out.len())
    };
    out.iter()
        // SAFETY: the reference fills in pointers to its static names.
        .map(|&p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        .collect()
}

/// Message lists: empty, one user turn, system + turns, padded/empty contents, unicode, and the
/// roles some formats special-case (tool, function, assistant_tool_call) or ignore.
fn conversations() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![],
        vec![("user", "Hello")],
        vec![
            ("system", "You are helpful."),
            ("user", "Hi there"),
            ("assistant", "Hello! How can I help?"),
            ("user", "Tell me a joke."),
        ],
        vec![
            ("user", "  padded question \n"),
            ("assistant", "\t padded answer  "),
            ("user", ""),
        ],
        vec![
            ("system", "  sys with spaces  "),
            ("system", "second system"),
            ("user", "q"),
        ],
        vec![
            ("assistant", "starts with assistant"),
            ("user", "then user"),
        ],
        vec![
            ("user", "日本語のテキスト 👍🏽"),
            ("assistant", "Ünïcödé réponse\r\n"),
        ],
        vec![
            ("system", "s"),
            ("user", "u1"),
            ("assistant", "a1"),
            ("tool", "{\"result\": 1}"),
            ("function", "f()"),
            ("assistant_tool_call", "[call]"),
            ("user", "u2"),
        ],
        vec![
            ("narrator", "unknown role"),
            ("", "empty role"),
            ("User", "capitalised role"),
        ],
        vec![
            ("user", "line1\nline2\n\n"),
            ("assistant", " a "),
            ("user", "b"),
            ("assistant", "c"),
            ("user", "d"),
        ],
    ]
}

#[test]
fn builtin_list_matches_the_reference() {
    if !common::reference_available() {
        return;
    }
    let lib = load_library().unwrap();
    let theirs = reference_builtins(lib);
    let ours: Vec<String> = builtin_templates().iter().map(|s| s.to_string()).collect();
    assert_eq!(ours, theirs);
}

#[test]
fn every_builtin_template_matches_the_reference() {
    if !common::reference_available() {
        return;
    }
    let lib = load_library().unwrap();
    let mut compared = 0;
    for name in reference_builtins(lib) {
        for conv in conversations() {
            let msgs: Vec<(&[u8], &[u8])> = conv
                .iter()
                .map(|(r, c)| (r.as_bytes(), c.as_bytes()))
                .collect();
            for add_ass in [false, true] {
                let theirs = reference_apply(lib, name.as_bytes(), &msgs, add_ass);
                let ours = apply_template_bytes(name.as_bytes(), &msgs, add_ass).ok();
                assert_eq!(
                    ours.as_deref().map(String::from_utf8_lossy),
                    theirs.as_deref().map(String::from_utf8_lossy),
                    "template {name}, add_ass {add_ass}, messages {conv:?}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 54 * 20, "{compared}");
}

/// The substrings the reference's detection tests, and a few Jinja fragments around them.
const MARKERS: &[&str] = &[
    "<|im_start|>", "<|im_sep|>", "<end_of_utterance>", "mistral", "[INST]", "[SYSTEM_PROMPT]",
    "' [INST] ' + system_message", "[AVAILABLE_TOOLS]", " [INST]", "\"[INST]\"", "<<SYS>>",
    "bos_token + '[INST]", "content.strip()", "<|assistant|>", "<|end|>", "[gMASK]<sop>",
    "<|user|>", "<|tool_declare|>", "</s>", "<|{{ item['role'] }}|>", "<|begin_of_image|>",
    "<|endoftext|>", "bos_token + message['role']", "<start_of_turn>",
    "'\\n\\nAssistant: ' + eos_token", "GPT4 Correct ", "USER: ", "ASSISTANT: ", "SYSTEM: ",
    "### Instruction:", "<|EOT|>", "<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>",
    "<|start_header_id|>", "<|end_header_id|>", "[gMASK]sop", "<用户>",
    "'Assistant: ' + message['content'] + eos_token", "<｜Assistant｜>", "<｜User｜>",
    "<｜end▁of▁sentence｜>", "[|system|]", "[|assistant|]", "[|endofturn|]", "[|tool|]",
    "rwkv-world", "{{- 'User: ' + message['content']|trim + '\\n\\n' -}}", "<|start_of_role|>",
    "<tool_call>", "<tools>", "g4_default_system_message",
    "message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]",
    "<|role_start|>", " Ассистент:", "<role>ASSISTANT</role>", "'HUMAN'", "\"HUMAN\"", "<think>",
    "<role>HUMAN</role>", "<|role_end|>", "<|header_start|>", "<|header_end|>",
    "<|endofuserprompt|>", "<|extra_0|>", "<|extra_4|>", "<|start|>", "<|channel|>",
    "<｜hy_Assistant｜>", "<｜hy_begin▁of▁sentence｜>", "<｜hy_place▁holder▁no▁3｜>",
    "<|im_assistant|>assistant<|im_middle|>", "<seed:bos>",
    "'Assistant: '  + message['content'] + '<|separator|>", "[unused9]系统：[unused10]",
    "<|begin|>", "<|content|>", "{% for message in messages %}", "{{ bos_token }}",
    "{% if add_generation_prompt %}", "<|eot_id|>", "chatml", "llama3",
];

#[test]
fn detection_matches_the_reference() {
    if !common::reference_available() {
        return;
    }
    let lib = load_library().unwrap();
    let msgs: Vec<(&[u8], &[u8])> = vec![
        (b"system", b" You are a bot. "),
        (b"user", b"Hi"),
        (b"assistant", b"Hello"),
        (b"user", b"Bye "),
    ];
    let mut rng = SplitMix64(0xc4a7);
    let mut templates: Vec<String> = MARKERS.iter().map(|m| m.to_string()).collect();
    // Single markers, pairs and random mixes in random order.
    for _ in 0..4000 {
        let k = 1 + rng.below(4);
        let mut t = String::new();
        for _ in 0..k {
            if rng.below(3) == 0 {
                t.push_str("{{ message['content'] }} ");
            }
            t.push_str(MARKERS[rng.below(MARKERS.len() as u64) as usize]);
        }
        templates.push(t);
    }
    let mut bitnet_only = 0;
    for t in &templates {
        for add_ass in [false, true] {
            let theirs = reference_apply(lib, t.as_bytes(), &msgs, add_ass);
            let ours = apply_template_bytes(t.as_bytes(), &msgs, add_ass).ok();
            if theirs.is_none() && chat::detect_template(t.as_bytes()) == Some(Template::Bitnet) {
                // Our extension: only where the reference knows nothing.
                bitnet_only += 1;
                continue;
            }
            assert_eq!(
                ours.as_deref().map(String::from_utf8_lossy),
                theirs.as_deref().map(String::from_utf8_lossy),
                "template {t:?}, add_ass {add_ass}"
            );
        }
    }
    eprintln!(
        "{} templates compared ({bitnet_only} BitNet-only cases skipped)",
        templates.len()
    );
}

/// BitNet 2B-4T's format is not in the pinned reference: it refuses the name, the model's
/// Hugging Face template and the placeholder in Microsoft's GGUF; we produce
/// `Role: content<|eot_id|>...Assistant: ` for all three.
#[test]
fn bitnet_is_an_extension_the_reference_refuses() {
    if !common::reference_available() {
        return;
    }
    let lib = load_library().unwrap();
    let msgs: Vec<(&[u8], &[u8])> = vec![(b"system", b"Be brief."), (b"user", b"Hello")];
    let hf = "{% for message in messages %}{{ message['role'] | capitalize + ': ' + \
              message['content'] | trim + '<|eot_id|>' }}{% endfor %}\
              {% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";
    // The placeholder Microsoft's conversion script writes into ggml-model-i2_s.gguf.
    let gguf = "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}\
                {% if message['role'] == 'user' %}{{ 'Human: ' + message['content'] + \
                '\\n\\nBITNETAssistant: ' + eos_token }}{% elif message['role'] == 'assistant' %}\
                {{ message['content'] + eos_token }}{% endif %}{% endfor %}";
    for tmpl in ["bitnet", hf, gguf] {
        assert_eq!(
            reference_apply(lib, tmpl.as_bytes(), &msgs, true),
            None,
            "{tmpl}"
        );
        assert_eq!(
            apply_template_bytes(tmpl.as_bytes(), &msgs, true).unwrap(),
            b"System: Be brief.<|eot_id|>User: Hello<|eot_id|>Assistant: "
        );
    }
}
