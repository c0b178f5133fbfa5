//! Writes the seed inputs of every target into a directory per target (fuzz/run.sh merge then
//! minimizes them into fuzz/corpus/). Sources: the tiny models (written here), the fixture set's
//! formats.gguf, and from the pinned llama.cpp sdist its test vocabularies' inputs (.inp), its
//! GBNF grammars and its chat templates; for `convert` the config and tokenizer files of the
//! checkpoints in tests/convert/ with tiny weights written here (the fixtures' own weights are
//! 0.4 to 2 MB); for `hub` raw HTTP exchanges of a download (see `hub_seeds`).
//!
//!   make_seeds OUT_DIR SDIST_LLAMA_CPP_DIR FIXTURE_MODELS_DIR

use std::fs;
use std::path::{Path, PathBuf};

use bitnet::quant::GgmlType;
use bitnet::rng::SplitMix64;
use bitnet_fuzz::{write_tiny_model, CONVERT_FILE_SEP, HUB_COMMIT, HUB_SEP};
use serde_json::{json, Value as Json};
use sha1::Digest as _;
// Built with the fuzz targets' coverage flags, this program needs the sanitizer-coverage hooks that
// libFuzzer's runtime defines (it does not run libFuzzer).
use libfuzzer_sys as _;

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    v
}

fn random_bytes(rng: &mut SplitMix64, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.below(256) as u8).collect()
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [out, llama_cpp, models] = &args[..] else {
        panic!("usage: make_seeds OUT_DIR SDIST_LLAMA_CPP_DIR FIXTURE_MODELS_DIR");
    };
    let mut rng = SplitMix64(0x5EED);

    let gguf = out.join("gguf");
    fs::create_dir_all(&gguf).unwrap();
    write_tiny_model(&gguf.join("tiny-i2_s"), GgmlType::I2_S, false, None);
    write_tiny_model(&gguf.join("tiny-f16"), GgmlType::F16, false, Some(32));
    fs::copy(models.join("formats.gguf"), gguf.join("formats")).unwrap();

    // Tokenizer: [vocabulary, flags, text]; index 11 is tokenizer.json (see the target).
    let tok = out.join("tokenizer");
    let inps = files(&llama_cpp.join("models"), ".gguf.inp");
    for (k, inp) in inps.iter().enumerate() {
        let text = fs::read(inp).unwrap();
        for (j, case) in text
            .split(|&b| b == b'\n')
            .filter(|c| !c.is_empty())
            .take(6)
            .enumerate()
        {
            let mut seed = vec![(k % 11) as u8, (j * 5) as u8];
            seed.extend_from_slice(case);
            put(&tok, &format!("inp-{k}-{j}"), &seed);
        }
    }
    for (k, json) in [HF_BPE, HF_WORDLEVEL].iter().enumerate() {
        let text = b"hello world <s> ab";
        let mut seed = vec![11, 1, text.len() as u8];
        seed.extend_from_slice(text);
        seed.extend_from_slice(json.as_bytes());
        put(&tok, &format!("hf-{k}"), &seed);
    }

    // Grammar: [mode, grammar, NUL, token picks].
    let grammar = out.join("grammar");
    for (k, g) in files(&llama_cpp.join("grammars"), ".gbnf")
        .iter()
        .enumerate()
    {
        for mode in [0x80u8, 0x81, 0x05] {
            let mut seed = vec![mode];
            seed.extend_from_slice(&fs::read(g).unwrap());
            seed.push(0);
            if mode & 1 == 1 {
                seed.extend_from_slice(b"\x06\\{[^}]*");
            }
            for _ in 0..24 {
                seed.extend_from_slice(&[0x82, rng.below(256) as u8, rng.below(2) as u8]);
            }
            put(&grammar, &format!("g{k}-{mode:x}"), &seed);
        }
    }

    // Chat templates: builtin names by index, and the sdist's Jinja templates verbatim.
    let chat = out.join("chat_template");
    let messages = |seed: &mut Vec<u8>| {
        seed.extend_from_slice(&[1, 3]);
        for (role, content) in [
            (0u8, &b"You are terse."[..]),
            (1, b"Hi there"),
            (2, b"Hello!"),
        ] {
            seed.push(role);
            seed.push(content.len() as u8);
            seed.extend_from_slice(content);
        }
        seed.extend_from_slice(&[2, 40]);
    };
    for k in 0..48u8 {
        let mut seed = vec![1 + 4 * k];
        messages(&mut seed);
        put(&chat, &format!("builtin-{k}"), &seed);
    }
    for (k, t) in files(&llama_cpp.join("models/templates"), ".jinja")
        .iter()
        .enumerate()
    {
        let text = fs::read(t).unwrap();
        if text.len() >= 16384 {
            continue;
        }
        let mut seed = vec![3];
        seed.extend_from_slice(&(text.len() as u16).to_le_bytes());
        seed.extend_from_slice(&text);
        messages(&mut seed);
        put(&chat, &format!("jinja-{k}"), &seed);
    }

    // State: every mode, with a few patches or raw bytes.
    let state = out.join("state");
    for mode in 0..32u8 {
        let mut seed = vec![mode, 0, 0x40, 0];
        seed.extend(random_bytes(&mut rng, 12));
        put(&state, &format!("mode-{mode}"), &seed);
    }

    // The C API: random programs (the target reads any bytes as one).
    let capi = out.join("capi");
    for k in 0..32 {
        let n = 64 + rng.below(400) as usize;
        put(&capi, &format!("prog-{k}"), &random_bytes(&mut rng, n));
    }

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/convert");
    convert_seeds(&out.join("convert"), &fixtures, &mut rng);
    hub_seeds(&out.join("hub"), &mut rng);
}

/// One safetensors file: (name, dtype, shape, bytes) in order.
type Tensor = (String, &'static str, Vec<usize>, Vec<u8>);

fn safetensors(tensors: &[Tensor]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut at = 0;
    for (name, dtype, shape, bytes) in tensors {
        let offsets = [at, at + bytes.len()];
        header.insert(
            name.clone(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": offsets}),
        );
        at += bytes.len();
    }
    let header = serde_json::to_vec(&Json::Object(header)).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    for (_, _, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    out
}

/// The tensors of a checkpoint of `config`'s shape and family: floats in `float` (F16 or
/// BF16), projections packed (U8 + weight_scale) or as float masters.
fn checkpoint(
    config: &Json,
    float: &'static str,
    packed: bool,
    rng: &mut SplitMix64,
) -> Vec<Tensor> {
    let n = |k: &str| config[k].as_u64().unwrap() as usize;
    let (e, f, v) = (n("hidden_size"), n("intermediate_size"), n("vocab_size"));
    let kv = n("num_key_value_heads") * e / n("num_attention_heads");
    let one_bit_llm = config["architectures"][0] == "BitnetForCausalLM";
    let floats = |count: usize, rng: &mut SplitMix64| -> Vec<u8> {
        (0..count)
            .flat_map(|_| {
                let x = (rng.below(2001) as f32 - 1000.0) / 1000.0;
                match float {
                    "BF16" => ((x.to_bits() >> 16) as u16).to_le_bytes(),
                    _ => half::f16::from_f32(x).to_le_bytes(),
                }
            })
            .collect()
    };
    let mut t = vec![(
        "model.embed_tokens.weight".to_string(),
        float,
        vec![v, e],
        floats(v * e, rng),
    )];
    t.push(("model.norm.weight".into(), float, vec![e], floats(e, rng)));
    let (attn_sub, ffn_sub) = if one_bit_llm {
        ("self_attn.inner_attn_ln", "mlp.ffn_layernorm")
    } else {
        ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm")
    };
    for l in 0..n("num_hidden_layers") {
        let name = |x: &str| format!("model.layers.{l}.{x}");
        for (module, rows, cols) in [
            ("self_attn.q_proj", e, e),
            ("self_attn.k_proj", kv, e),
            ("self_attn.v_proj", kv, e),
            ("self_attn.o_proj", e, e),
            ("mlp.gate_proj", f, e),
            ("mlp.up_proj", f, e),
            ("mlp.down_proj", e, f),
        ] {
            if packed {
                let bytes = (0..rows / 4 * cols)
                    .map(|_| (0..4).map(|j| (rng.below(3) as u8) << (2 * j)).sum())
                    .collect();
                t.push((
                    name(&format!("{module}.weight")),
                    "U8",
                    vec![rows / 4, cols],
                    bytes,
                ));
                // weight_scale holds the inverse of the scale: 2.0 in the float type
                let inverse = match float {
                    "BF16" => ((2.0f32.to_bits() >> 16) as u16).to_le_bytes().to_vec(),
                    _ => half::f16::from_f32(2.0).to_le_bytes().to_vec(),
                };
                t.push((
                    name(&format!("{module}.weight_scale")),
                    float,
                    vec![1],
                    inverse,
                ));
            } else {
                t.push((
                    name(&format!("{module}.weight")),
                    float,
                    vec![rows, cols],
                    floats(rows * cols, rng),
                ));
            }
        }
        for (norm, len) in [
            ("input_layernorm", e),
            (attn_sub, e),
            ("post_attention_layernorm", e),
            (ffn_sub, f),
        ] {
            t.push((
                name(&format!("{norm}.weight")),
                float,
                vec![len],
                floats(len, rng),
            ));
        }
    }
    t
}

/// A convert input: the type selector, then each file after CONVERT_FILE_SEP.
fn convert_input(selector: u8, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut seed = vec![selector];
    for (name, bytes) in files {
        seed.extend_from_slice(CONVERT_FILE_SEP);
        seed.extend_from_slice(name.as_bytes());
        seed.push(b'\n');
        seed.extend_from_slice(bytes);
    }
    seed
}

/// Tiny checkpoints of the three fixture families (config and tokenizer files from
/// tests/convert/, shapes shrunk), single-file and sharded, packed and masters; selector 0 is
/// the default type, 1..=6 OutType::ALL (I2_S, TQ1_0, TQ2_0, F16, BF16, F32).
fn convert_seeds(dir: &Path, fixtures: &Path, rng: &mut SplitMix64) {
    let read = |d: &str, f: &str| fs::read(fixtures.join(d).join(f)).unwrap();
    let shrink = |d: &str, e: u64, f: u64, heads: u64, kv: u64| {
        let mut c: Json = serde_json::from_slice(&read(d, "config.json")).unwrap();
        c["hidden_size"] = e.into();
        c["intermediate_size"] = f.into();
        c["num_hidden_layers"] = 1.into();
        c["num_attention_heads"] = heads.into();
        c["num_key_value_heads"] = kv.into();
        c
    };
    let json_bytes = |j: &Json| serde_json::to_vec_pretty(j).unwrap();

    // Microsoft 2B-4T layout, packed weights, byte-level BPE tokenizer.json.
    let c = shrink("bitnet-2b4t", 8, 16, 2, 1);
    let tensors = checkpoint(&c, "BF16", true, rng);
    let files = vec![
        ("config.json", json_bytes(&c)),
        (
            "generation_config.json",
            read("bitnet-2b4t", "generation_config.json"),
        ),
        ("model.safetensors", safetensors(&tensors)),
        ("tokenizer.json", read("bitnet-2b4t", "tokenizer.json")),
        (
            "tokenizer_config.json",
            read("bitnet-2b4t", "tokenizer_config.json"),
        ),
    ];
    for sel in [0, 4] {
        put(
            dir,
            &format!("ms-packed-{sel}"),
            &convert_input(sel, &files),
        );
    }

    // Its bf16 masters, sharded in two with an index.
    let c = shrink("bitnet-2b4t-bf16", 8, 16, 2, 1);
    let tensors = checkpoint(&c, "BF16", false, rng);
    let (first, second) = tensors.split_at(tensors.len() / 2);
    let shard_names = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ];
    let mut map = serde_json::Map::new();
    for (k, part) in [first, second].iter().enumerate() {
        for (name, ..) in part.iter() {
            map.insert(name.clone(), shard_names[k].into());
        }
    }
    let index = json!({"metadata": {"total_size": 0}, "weight_map": map});
    let files = vec![
        ("config.json", json_bytes(&c)),
        ("model.safetensors.index.json", json_bytes(&index)),
        (shard_names[0], safetensors(first)),
        (shard_names[1], safetensors(second)),
        ("tokenizer.json", read("bitnet-2b4t-bf16", "tokenizer.json")),
        (
            "tokenizer_config.json",
            read("bitnet-2b4t-bf16", "tokenizer_config.json"),
        ),
    ];
    for sel in [5, 6] {
        put(
            dir,
            &format!("ms-bf16-sharded-{sel}"),
            &convert_input(sel, &files),
        );
    }

    // 1bitLLM: fp16 masters, a SentencePiece tokenizer.model.
    let c = shrink("1bitllm", 8, 16, 2, 2);
    let tensors = checkpoint(&c, "F16", false, rng);
    let files = vec![
        ("config.json", json_bytes(&c)),
        (
            "generation_config.json",
            read("1bitllm", "generation_config.json"),
        ),
        ("model.safetensors", safetensors(&tensors)),
        ("tokenizer.model", read("1bitllm", "tokenizer.model")),
        (
            "tokenizer_config.json",
            read("1bitllm", "tokenizer_config.json"),
        ),
    ];
    for sel in [0, 6] {
        put(dir, &format!("1bitllm-{sel}"), &convert_input(sel, &files));
    }

    // I2_S needs rows of whole 128-value blocks: n_embd 128, with the BPE vocabulary cut to
    // its first 48 tokens (and the merges among them) to keep the input small.
    let mut c = shrink("bitnet-2b4t", 128, 128, 2, 1);
    c["vocab_size"] = 48.into();
    c["bos_token_id"] = Json::Null;
    c["eos_token_id"] = Json::Null;
    let mut tok: Json = serde_json::from_slice(&read("bitnet-2b4t", "tokenizer.json")).unwrap();
    let vocab = tok["model"]["vocab"].as_object().unwrap().clone();
    let kept: serde_json::Map<String, Json> = vocab
        .into_iter()
        .filter(|(_, id)| id.as_u64().unwrap() < 48)
        .collect();
    let merges: Vec<Json> = tok["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            let parts: Vec<String> = match m {
                Json::String(s) => s.split(' ').map(str::to_string).collect(),
                Json::Array(a) => a.iter().map(|p| p.as_str().unwrap().to_string()).collect(),
                _ => vec![],
            };
            parts.len() == 2
                && parts.iter().all(|p| kept.contains_key(p))
                && kept.contains_key(&parts.concat())
        })
        .cloned()
        .collect();
    tok["model"]["vocab"] = Json::Object(kept);
    tok["model"]["merges"] = Json::Array(merges);
    tok["added_tokens"] = json!([]);
    let tensors = checkpoint(&c, "BF16", true, rng);
    let files = vec![
        ("config.json", json_bytes(&c)),
        ("model.safetensors", safetensors(&tensors)),
        ("tokenizer.json", json_bytes(&tok)),
    ];
    for sel in [1, 3] {
        put(
            dir,
            &format!("ms-packed-i2s-{sel}"),
            &convert_input(sel, &files),
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A raw HTTP/1.1 response; `{A}` / `{B}` in headers are the fuzz servers' URLs.
fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += "\r\n";
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn hub_input(op: u8, flags: u8, partial: &[u8], responses: &[Vec<u8>]) -> Vec<u8> {
    let mut seed = vec![op, flags];
    seed.extend_from_slice(partial);
    for r in responses {
        seed.extend_from_slice(HUB_SEP);
        seed.extend_from_slice(r);
    }
    seed
}

/// Hub exchanges: a small file (git sha1 ETag) from the hub, an LFS file (sha256) through a
/// redirect to the other origin, resumes (206, 416, Range ignored), chunked and truncated
/// bodies, 503 then success, same-origin redirect chains, error codes, wrong bytes, the file
/// list for `-hf REPO:QUANT` and for a snapshot.
fn hub_seeds(dir: &Path, rng: &mut SplitMix64) {
    let body = random_bytes(rng, 300);
    let n = body.len();
    let sha256 = hex(&sha2::Sha256::digest(&body));
    let git_sha1 = {
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {n}\0").as_bytes());
        h.update(&body);
        hex(&h.finalize())
    };
    let len = |n: usize| ("Content-Length", n.to_string());
    let commit = ("X-Repo-Commit", HUB_COMMIT.to_string());
    let head_small = response(
        "200 OK",
        &[commit.clone(), ("ETag", format!("\"{git_sha1}\"")), len(n)],
        b"",
    );
    let head_lfs_cdn = response(
        "302 Found",
        &[
            ("Location", "{B}/cdn/blob?sig=1".into()),
            commit.clone(),
            ("X-Linked-Etag", format!("\"{sha256}\"")),
            ("X-Linked-Size", n.to_string()),
            len(0),
        ],
        b"",
    );
    let head_lfs_here = response(
        "200 OK",
        &[
            commit.clone(),
            ("X-Linked-Etag", format!("W/\"{sha256}\"")),
            ("X-Linked-Size", n.to_string()),
        ],
        b"",
    );
    let get_full = response("200 OK", &[len(n)], &body);
    let half = n / 2;
    let get_rest = response(
        "206 Partial Content",
        &[
            ("Content-Range", format!("bytes {half}-{}/{n}", n - 1)),
            len(n - half),
        ],
        &body[half..],
    );
    let get_cut = response("200 OK", &[len(n)], &body[..half]);
    let mut chunked = format!("{:x}\r\n", half).into_bytes();
    chunked.extend_from_slice(&body[..half]);
    chunked.extend_from_slice(format!("\r\n{:x}\r\n", n - half).as_bytes());
    chunked.extend_from_slice(&body[half..]);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let get_chunked = response(
        "200 OK",
        &[("Transfer-Encoding", "chunked".into())],
        &chunked,
    );
    let mut wrong = body.clone();
    wrong[7] ^= 1;
    let get_wrong = response("200 OK", &[len(n)], &wrong);
    let partial_lfs = [format!("{sha256}\n").as_bytes(), &body[..half]].concat();
    let list = |files: &[&str]| {
        let siblings: Vec<Json> = files.iter().map(|f| json!({"rfilename": f})).collect();
        let text = serde_json::to_vec(&json!({"sha": HUB_COMMIT, "siblings": siblings})).unwrap();
        response(
            "200 OK",
            &[len(text.len()), ("Content-Type", "application/json".into())],
            &text,
        )
    };
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        (
            "small",
            hub_input(0, 1, b"", &[head_small.clone(), get_full.clone()]),
        ),
        (
            "lfs-cdn",
            hub_input(0, 1, b"", &[head_lfs_cdn.clone(), get_full.clone()]),
        ),
        (
            "resume-206",
            hub_input(
                0,
                1,
                &partial_lfs,
                &[head_lfs_cdn.clone(), get_rest.clone()],
            ),
        ),
        (
            "resume-416",
            hub_input(
                0,
                0,
                &partial_lfs,
                &[
                    head_lfs_here.clone(),
                    response("416 Range Not Satisfiable", &[len(0)], b""),
                    get_full.clone(),
                ],
            ),
        ),
        (
            "range-ignored",
            hub_input(
                0,
                1,
                &partial_lfs,
                &[head_lfs_here.clone(), get_full.clone()],
            ),
        ),
        (
            "chunked",
            hub_input(0, 0, b"", &[head_small.clone(), get_chunked]),
        ),
        (
            "503-cut-resume",
            hub_input(
                0,
                1,
                b"",
                &[
                    response("503 Service Unavailable", &[len(0)], b""),
                    head_lfs_here.clone(),
                    get_cut,
                    get_rest.clone(),
                ],
            ),
        ),
        (
            "redirects",
            hub_input(
                1,
                1,
                b"",
                &[
                    response(
                        "307 Temporary Redirect",
                        &[
                            (
                                "Location",
                                format!("/org/name/resolve/{HUB_COMMIT}/sub/dir/other"),
                            ),
                            len(0),
                        ],
                        b"",
                    ),
                    head_small.clone(),
                    response("302 Found", &[("Location", "{B}/x".into()), len(0)], b""),
                    get_full.clone(),
                ],
            ),
        ),
        (
            "wrong-bytes",
            hub_input(0, 1, b"", &[head_lfs_cdn.clone(), get_wrong]),
        ),
        (
            "not-found",
            hub_input(
                0,
                1,
                b"",
                &[response(
                    "404 Not Found",
                    &[("X-Error-Code", "EntryNotFound".into()), len(0)],
                    b"",
                )],
            ),
        ),
        (
            "gated",
            hub_input(
                3,
                0,
                b"",
                &[response(
                    "401 Unauthorized",
                    &[("X-Error-Code", "GatedRepo".into()), len(0)],
                    b"",
                )],
            ),
        ),
        (
            "list",
            hub_input(2, 1, b"", &[list(&["config.json", "model-Q2_K.gguf"])]),
        ),
        (
            "model-quant",
            hub_input(
                3,
                1,
                b"",
                &[
                    list(&["README.md", "model-Q2_K.gguf", "model-Q4_0.gguf"]),
                    head_lfs_cdn.clone(),
                    get_full.clone(),
                ],
            ),
        ),
        (
            "snapshot",
            hub_input(
                4,
                1,
                b"",
                &[
                    list(&["README.md", "config.json", "model.safetensors"]),
                    head_small,
                    get_full.clone(),
                    head_lfs_cdn,
                    get_full,
                ],
            ),
        ),
    ];
    for (name, seed) in seeds {
        put(dir, name, &seed);
    }
}

/// A byte-level BPE tokenizer.json: bytes as printable characters (space is U+0120 `Ġ`),
/// a few merges, one added special token.
const HF_BPE: &str = r#"{"version":"1.0","truncation":null,"padding":null,
"added_tokens":[{"id":9,"content":"<s>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],
"normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
"post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},
"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,
"fuse_unk":false,"byte_fallback":false,
"vocab":{"a":0,"b":1,"Ġ":2,"ab":3,"Ġa":4,"Ġab":5,"h":6,"i":7,"hi":8,"<s>":9},
"merges":["a b","Ġ a","Ġa b","h i"]}}"#;

/// A word-level tokenizer.json with a whitespace pre-tokenizer and an unknown token.
const HF_WORDLEVEL: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
"normalizer":{"type":"Lowercase"},"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
"model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1,"world":2,"ab":3},"unk_token":"[UNK]"}}"#;
