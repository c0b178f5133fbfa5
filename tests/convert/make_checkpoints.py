#!/usr/bin/env python3
"""Tiny Hugging Face checkpoints of every BitNet family `bitnet convert` handles, in each family's
on-disk layout, and their reference logits from the family's own way of running.

Run once by hand (NOT in CI) in a venv with torch, transformers, safetensors, sentencepiece,
tokenizers and numpy (see tests/convert/README.md); the outputs are committed:

    tests/convert/<name>/   config.json, generation_config.json, tokenizer files, safetensors
                            weights (sharded where the name says so), and
                            reference.json + logits.f32 + logits_perturbed.f32

Families (layouts from transformers' BitNet integration and modeling_bitnet.py, and 1bitLLM's
published config/modeling file; docs/convert.md):
- bitnet-2b4t:       microsoft/bitnet-b1.58-2B-4T: BitNetForCausalLM, relu2, packed uint8
                     [out/4, in] + bf16 weight_scale (inverse scale), bf16 embedding and norms,
                     tied head, Llama-3 byte-level BPE tokenizer.json. Reference: transformers
                     with its BitNet quantization (BitLinear: ternary weights, per-token int8
                     activations), in float32.
- bitnet-2b4t-bf16:  microsoft/bitnet-b1.58-2B-4T-bf16: the same model's bf16 masters (the packed
                     fixture above is exactly these masters made ternary), in two shards with
                     model.safetensors.index.json; quantization_config autobitlinear/online, so
                     transformers runs it the BitNet way (absmean ternary weights at run time,
                     per-token int8 activations), in float32.
- 1bitllm:           1bitLLM/bitnet_b1_58-large: BitnetForCausalLM (model_type llama), silu, fp16
                     masters, sub-norms inner_attn_ln / ffn_layernorm, tied head,
                     SentencePiece tokenizer.model + 2 added tokens, two shards. transformers has
                     no class for it: the reference is `OneBitLlm` below, a small torch
                     re-implementation of 1bitLLM's public modeling code (a Llama whose
                     projections are BitLinear: weight_quant absmean ternary, activation_quant
                     per-token int8; the head a plain float product with the embedding).

Every family gets two references, each run teacher-forced on the prompt (logits of every
position):
- plain: the family's own way of running, float32 throughout (logits.f32);
- f16: the same with our engine's f16 roundings emulated (logits_f16.f32): the query, the keys
  and the values rounded to f16 before the attention products and the softmax probabilities
  rounded to f16 before they weight the values (the engine's f16 KV cache and llama.cpp's
  non-flash CPU attention; src/kernels/attention.rs), the embedding stored as f16 and the head's
  input rounded to f16 (the converter's F16 embedding/head; an F16 head gets f16 input).
Each reference is also run under PERTURBATIONS (RMSNorm weights moved by 1e-6 relative, a few
float32 ulps, uniformly or with per-element random signs); the one that moves it furthest (worst
per-position cosine) is kept as logits[_f16]_perturbed.f32: the int8-activation noise floor
(docs/parity.md). Then 32 greedy steps of the plain reference with each step's top-1 - top-2
margin.
"""

import json
import math
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # BitLinear's @torch.compile: same math, eager

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
SEED = 1234
PROMPT = [5, 77, 160, 23, 201, 99, 140, 8, 250, 31, 64, 180]
N_GREEDY = 32
EPS_NORM = 1e-6
# (label, sign) uniform, or (label, seed): every element of every norm weight x (1 + s * EPS_NORM)
# with s = +1 / -1 uniformly, or drawn per element from a generator seeded with `seed`.
PERTURBATIONS = [("norms x (1 + 1e-6)", +1), ("norms x (1 - 1e-6)", -1)] + [
    (f"norms x (1 +- 1e-6), random signs, seed {k}", f"seed{k}") for k in range(1, 7)]

TEXT = (
    "BitNet b1.58 is a ternary language model: every weight is -1, 0 or +1. "
    "The quick brown fox jumps over the lazy dog. Hello world, hello there! "
    "Numbers 12345 and 67890; punctuation, quotes 'like' \"this\" and emoji-free text. "
    "It's a small vocabulary, but it's real: merges, byte fallback, special tokens.\n"
) * 20

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                   "<|end_header_id|>", "<|eot_id|>"]
CHAT_TEMPLATE_2B4T = (
    "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
    "{% if message['role'] == 'system' %}{{ 'System: ' + message['content'] + '<|eot_id|>' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '<|eot_id|>' }}"
    "{% else %}{{ 'Assistant: ' + message['content'] + '<|eot_id|>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"
)


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------- tokenizers

def llama3_tokenizer(out_dir):
    """A Llama-3-format byte-level BPE tokenizer.json, trained on TEXT: the byte alphabet, a
    few merges, the special tokens after them. Returns the vocabulary size."""
    from tokenizers import Tokenizer, Regex, models, pre_tokenizers, decoders, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([TEXT], trainer=trainer)
    tok.add_special_tokens(LLAMA3_SPECIALS)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    tok.save(str(out_dir / "tokenizer.json"))
    n = tok.get_vocab_size()
    decoder = {str(tok.token_to_id(s)): {"content": s, "special": True, "lstrip": False,
                                          "rstrip": False, "normalized": False, "single_word": False}
               for s in LLAMA3_SPECIALS}
    write_json(out_dir / "tokenizer_config.json", {
        "added_tokens_decoder": decoder,
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>",
        "chat_template": CHAT_TEMPLATE_2B4T,
        "clean_up_tokenization_spaces": True,
        "model_max_length": 128,
        "tokenizer_class": "PreTrainedTokenizerFast",
    })
    return n, bos, tok.token_to_id("<|end_of_text|>"), tok.token_to_id("<|eot_id|>")


def spm_tokenizer(out_dir):
    """A Llama-2-format SentencePiece BPE model (byte fallback, unk 0 / bos 1 / eos 2, identity
    normalization, dummy prefix, extra whitespace kept) trained
    on TEXT, plus two added tokens past it as in 1bitLLM's 32000 + 2. Returns (spm size, total)."""
    import sentencepiece as spm
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "corpus.txt").write_text(TEXT)
        cwd = os.getcwd()
        os.chdir(tmp)  # relative names: the trainer writes its input path into the model
        spm.SentencePieceTrainer.train(
            input="corpus.txt", model_prefix="m", vocab_size=320, model_type="bpe",
            byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
            add_dummy_prefix=True, split_digits=True, normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            minloglevel=2)
        os.chdir(cwd)
        model = (Path(tmp) / "m.model").read_bytes()
    (out_dir / "tokenizer.model").write_bytes(model)
    sp = spm.SentencePieceProcessor(model_proto=model)
    n = sp.get_piece_size()
    added = {str(n): {"content": "<pad>", "special": True, "lstrip": False, "rstrip": False,
                      "normalized": False, "single_word": False},
             str(n + 1): {"content": "<mask>", "special": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "single_word": False}}
    write_json(out_dir / "tokenizer_config.json", {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "legacy": False, "model_max_length": 2048, "tokenizer_class": "LlamaTokenizer",
    })
    return n, n + 2


# ---------------------------------------------------------------- weights

def masters(gen, rows, cols):
    return torch.randn(rows, cols, generator=gen) * 0.02


def norm_weight(gen, n):
    return 0.8 + 0.4 * torch.rand(n, generator=gen)


def absmean_ternary(w):
    """BitNet b1.58's absmean rule, float32: codes in {-1, 0, 1} and the scale m."""
    w = w.float()
    m = w.abs().mean().clamp(min=1e-5)
    inv = 1.0 / m
    return (w * inv).round().clamp(-1, 1), 1.0 / inv


def pack(codes):
    """transformers' packing: uint8 [rows/4, cols]; row r + j*R goes to bits 2j..2j+1 as code+1."""
    rows, cols = codes.shape
    r = rows // 4
    q = (codes + 1).to(torch.uint8)
    out = torch.zeros(r, cols, dtype=torch.uint8)
    for j in range(4):
        out |= q[j * r:(j + 1) * r] << (2 * j)
    return out


def bitnet_tensors(gen, cfg):
    """The masters of a BitNetForCausalLM: (name -> float tensor), in layer order."""
    e, f, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    kv = cfg["num_key_value_heads"] * e // cfg["num_attention_heads"]
    t = {"model.embed_tokens.weight": torch.randn(cfg["vocab_size"], e, generator=gen),
         "model.norm.weight": norm_weight(gen, e)}
    for l in range(L):
        p = f"model.layers.{l}."
        for name, rows, cols in [("self_attn.q_proj", e, e), ("self_attn.k_proj", kv, e),
                                 ("self_attn.v_proj", kv, e), ("self_attn.o_proj", e, e),
                                 ("mlp.gate_proj", f, e), ("mlp.up_proj", f, e),
                                 ("mlp.down_proj", e, f)]:
            t[p + name + ".weight"] = masters(gen, rows, cols)
        t[p + "input_layernorm.weight"] = norm_weight(gen, e)
        t[p + "post_attention_layernorm.weight"] = norm_weight(gen, e)
        t[p + cfg["_sub"][0] + ".weight"] = norm_weight(gen, e)
        t[p + cfg["_sub"][1] + ".weight"] = norm_weight(gen, f)
    return t


def is_projection(name):
    return any(name.endswith(f"{p}.weight") for p in
               ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


def save_sharded(out_dir, tensors, n_shards):
    names = list(tensors)
    if n_shards == 1:
        save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
        return
    per = math.ceil(len(names) / n_shards)
    weight_map, total = {}, 0
    for s in range(n_shards):
        part = {n: tensors[n] for n in names[s * per:(s + 1) * per]}
        fname = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
        save_file(part, str(out_dir / fname), metadata={"format": "pt"})
        for n, v in part.items():
            weight_map[n] = fname
            total += v.numel() * v.element_size()
    write_json(out_dir / "model.safetensors.index.json",
               {"metadata": {"total_size": total}, "weight_map": weight_map})


# ---------------------------------------------------------------- the engine's f16 roundings

def to_f16(x):
    """x rounded to f16 (nearest even), back in float32."""
    return x.half().float()


def f16_attention(q, k, v, scale, mask):
    """Attention as our engine (and llama.cpp's CPU backend without flash attention) computes
    it: keys and values come from an f16 cache, the query is rounded to f16 for the scores,
    softmax in f32, the probabilities rounded to f16 before they weight the values; products
    accumulated in f32. q: [heads, n, hd]; k, v: [heads, m, hd] (already repeated for GQA);
    mask: additive, broadcast to [heads, n, m]. Returns [heads, n, hd]."""
    scores = to_f16(q) @ to_f16(k).transpose(-1, -2) * scale + mask
    p = torch.softmax(scores, dim=-1, dtype=torch.float32)
    return to_f16(p) @ to_f16(v)


def transformers_f16_attention(module, query, key, value, attention_mask, scaling,
                               dropout=0.0, **kwargs):
    """`f16_attention` as a transformers attention implementation (eager's signature and
    mask; query/key/value [batch, heads, n, hd] after RoPE)."""
    from transformers.models.llama.modeling_llama import repeat_kv
    k = repeat_kv(key, module.num_key_value_groups)
    v = repeat_kv(value, module.num_key_value_groups)
    mask = attention_mask if attention_mask is not None else 0.0
    out = f16_attention(query, k, v, scaling, mask)
    return out.transpose(1, 2).contiguous(), None


# ---------------------------------------------------------------- 1bitLLM reference model

def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class OneBitLlm:
    """1bitLLM's BitnetForCausalLM forward, written from its public modeling code: Llama
    attention (rotate-half RoPE, no GQA), BitLinear projections (activation_quant: per-token
    int8 with 127 / max|x|; weight_quant: absmean ternary), inner_attn_ln before o_proj,
    ffn_layernorm before down_proj, SiLU FFN, a plain float head (the embedding when tied).
    float32 throughout; with `f16`, the engine's f16 roundings (see `f16_attention`)."""

    def __init__(self, cfg, t, f16=False):
        self.cfg, self.t, self.f16 = cfg, {k: v.float() for k, v in t.items()}, f16

    @staticmethod
    def activation_quant(x):
        s = 127.0 / x.abs().max(dim=-1, keepdim=True).values.clamp(min=1e-5)
        return (x * s).round().clamp(-128, 127) / s

    @staticmethod
    def weight_quant(w):
        s = 1.0 / w.abs().mean().clamp(min=1e-5)
        return (w * s).round().clamp(-1, 1) / s

    def bitlinear(self, x, name):
        return F.linear(self.activation_quant(x), self.weight_quant(self.t[name]))

    def __call__(self, ids):
        c, t = self.cfg, self.t
        e, nh = c["hidden_size"], c["num_attention_heads"]
        hd, eps, n = e // nh, c["rms_norm_eps"], len(ids)
        x = t["model.embed_tokens.weight"][torch.tensor(ids)]
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.outer(torch.arange(n).float(), inv)
        cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
        mask = torch.full((n, n), float("-inf")).triu(1)
        for l in range(c["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = rms_norm(x, t[p + "input_layernorm.weight"], eps)
            q = self.bitlinear(h, p + "self_attn.q_proj.weight").view(n, nh, hd).transpose(0, 1)
            k = self.bitlinear(h, p + "self_attn.k_proj.weight").view(n, nh, hd).transpose(0, 1)
            v = self.bitlinear(h, p + "self_attn.v_proj.weight").view(n, nh, hd).transpose(0, 1)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            if self.f16:
                a = f16_attention(q, k, v, 1 / math.sqrt(hd), mask)
            else:
                att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1)
                a = att @ v
            a = a.transpose(0, 1).reshape(n, e)
            a = rms_norm(a, t[p + "self_attn.inner_attn_ln.weight"], eps)
            x = x + self.bitlinear(a, p + "self_attn.o_proj.weight")
            h = rms_norm(x, t[p + "post_attention_layernorm.weight"], eps)
            g = F.silu(self.bitlinear(h, p + "mlp.gate_proj.weight"))
            u = self.bitlinear(h, p + "mlp.up_proj.weight")
            m = rms_norm(g * u, t[p + "mlp.ffn_layernorm.weight"], eps)
            x = x + self.bitlinear(m, p + "mlp.down_proj.weight")
        x = rms_norm(x, t["model.norm.weight"], eps)
        head = t.get("lm_head.weight", t["model.embed_tokens.weight"])  # tied when absent
        if self.f16:
            x, head = to_f16(x), to_f16(head)
        return x @ head.T


# ---------------------------------------------------------------- references

def is_norm(name):
    return "norm" in name or "_ln." in name or "layernorm" in name


def perturb(named, how):
    """Every norm weight in `named` ((name, float32 tensor) pairs, changed in place) times
    1 + s * EPS_NORM: s = `how` for +1 / -1, else per element +-1 from a generator seeded by the
    digits of `how`, drawn in the order given. In float32: a 16-bit copy would round it away."""
    gen = None if how in (1, -1) else torch.Generator().manual_seed(int(how[4:]))
    for name, v in named:
        if not is_norm(name):
            continue
        assert v.dtype == torch.float32, name
        s = how if gen is None else torch.randint(0, 2, v.shape, generator=gen).float() * 2 - 1
        v.mul_(1 + s * EPS_NORM)


def perturbed(tensors, how):
    """A float32 copy of `tensors` with `perturb` applied."""
    t = {k: v.float().clone() for k, v in tensors.items()}
    perturb(sorted(t.items()), how)
    return t


def greedy(run, ids):
    ids, out, margins = list(ids), [], []
    for _ in range(N_GREEDY):
        row = run(ids)[-1]
        top = torch.topk(row, 2).values
        nxt = int(torch.argmax(row))
        out.append(nxt)
        margins.append(float(top[0] - top[1]))
        ids.append(nxt)
    return out, margins


TOKENIZE = [
    "Hello world",
    " The quick brown fox jumps over the lazy dog.",
    "It's 12345 numbers, and 'quotes' \"here\"!",
    "  leading spaces\n\nand new lines\ttabs",
    "ünïcödé → 漢字 and bytes \u00ff",
]


def tokenized(out_dir):
    """The checkpoint's own tokenizer on TOKENIZE, without special tokens: sentencepiece for a
    tokenizer.model (transformers' non-legacy LlamaTokenizer drops a space of a leading run,
    which sentencepiece and llama.cpp keep), transformers for a tokenizer.json."""
    if (out_dir / "tokenizer.model").exists():
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=str(out_dir / "tokenizer.model"))
        return {t: sp.encode(t) for t in TOKENIZE}
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(out_dir))
    return {t: tok(t, add_special_tokens=False)["input_ids"] for t in TOKENIZE}


def worst_cosine(a, b):
    return float(F.cosine_similarity(a.double(), b.double(), dim=-1).min())


def save_logits(path, logits):
    logits.float().numpy().astype("<f4").tofile(path)


def reference_and_floor(out_dir, runner, f16):
    """Runs `runner(f16, how)` (how: None or a PERTURBATIONS key) on the prompt; writes the
    logits and the perturbed logits furthest from them. Returns (logits, {label: cosine})."""
    suffix = "_f16" if f16 else ""
    with torch.no_grad():
        logits = runner(f16, None)(PROMPT)
        floors = {}
        worst = None
        for label, how in PERTURBATIONS:
            lp = runner(f16, how)(PROMPT)
            floors[label] = worst_cosine(logits, lp)
            if worst is None or floors[label] < worst[0]:
                worst = (floors[label], lp)
    save_logits(out_dir / f"logits{suffix}.f32", logits)
    save_logits(out_dir / f"logits{suffix}_perturbed.f32", worst[1])
    return logits, floors


def write_reference(out_dir, runner, family_note):
    """`runner(f16, how)` -> a function from token ids to logits [n, n_vocab]: the reference,
    with the engine's f16 roundings or not, its norm weights perturbed by `how` or not."""
    logits, floors = reference_and_floor(out_dir, runner, False)
    logits16, floors16 = reference_and_floor(out_dir, runner, True)
    with torch.no_grad():
        tokens, margins = greedy(runner(False, None), PROMPT)
    write_json(out_dir / "reference.json", {
        "how": family_note,
        "prompt": PROMPT,
        "n_vocab": logits.shape[-1],
        "logits": "logits.f32 (little-endian f32, one row of n_vocab per prompt token), float32",
        "logits_f16": "logits_f16.f32: the same with the engine's f16 roundings (Q, K, V and "
                      "the attention probabilities; the embedding/head and the head's input)",
        "logits_perturbed": "of the perturbations, the one furthest from logits.f32 (worst "
                            "per-position cosine); logits_f16_perturbed.f32 the same for "
                            "logits_f16.f32",
        "noise_floor_worst_cosine": {"float32": floors, "f16": floors16},
        "f16_vs_float32_worst_cosine": worst_cosine(logits, logits16),
        "greedy": tokens,
        "greedy_margins": margins,
        "tokenized": tokenized(out_dir),
    })
    print(f"{out_dir.name}: noise floor (worst of {len(PERTURBATIONS)}) float32 "
          f"{min(floors.values()):.7f}, f16 {min(floors16.values()):.7f}; f16 vs float32 "
          f"{worst_cosine(logits, logits16):.7f}; smallest greedy margin {min(margins):.4f}")


def hf_runner(model_dir):
    """`write_reference`'s runner for transformers: float32, eager attention or
    `transformers_f16_attention` (registered under its own name, with eager's mask)."""
    from transformers import AttentionInterface, AutoModelForCausalLM
    from transformers.masking_utils import AttentionMaskInterface, eager_mask
    AttentionInterface.register("bitnet_rs_f16", transformers_f16_attention)
    AttentionMaskInterface.register("bitnet_rs_f16", eager_mask)

    def runner(f16, how):
        model = AutoModelForCausalLM.from_pretrained(
            str(model_dir), dtype=torch.float32,
            attn_implementation="bitnet_rs_f16" if f16 else "eager")
        model.eval()
        with torch.no_grad():
            if how is not None:
                perturb([(n, p.data) for n, p in model.named_parameters()], how)
            if f16:
                emb = model.model.embed_tokens.weight
                emb.copy_(to_f16(emb))
                assert model.lm_head.weight.data_ptr() == emb.data_ptr()  # tied
                model.lm_head.register_forward_pre_hook(lambda m, args: (to_f16(args[0]),))
        return lambda ids: model(torch.tensor([ids])).logits[0]
    return runner


def bitnet_config(vocab, bos, eos, quant):
    cfg = {
        "architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2",
        "hidden_size": 256, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": vocab,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "tie_word_embeddings": True, "bos_token_id": bos, "eos_token_id": eos,
        "attention_bias": False, "attention_dropout": 0.0, "initializer_range": 0.02,
        "torch_dtype": "bfloat16", "use_cache": True, "transformers_version": "4.52.0.dev0",
    }
    if quant is not None:
        cfg["quantization_config"] = quant
    return cfg


def make_2b4t():
    packed_dir, bf16_dir = HERE / "bitnet-2b4t", HERE / "bitnet-2b4t-bf16"
    for d in (packed_dir, bf16_dir):
        d.mkdir(exist_ok=True)
        for f in d.iterdir():
            f.unlink()
    vocab, bos, eos, eot = llama3_tokenizer(packed_dir)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (bf16_dir / f).write_bytes((packed_dir / f).read_bytes())
    gen_cfg = {"bos_token_id": bos, "eos_token_id": [eos, eot], "do_sample": False}
    gen = torch.Generator().manual_seed(SEED)
    cfg = bitnet_config(vocab, bos, eos, None)
    cfg["_sub"] = ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm")
    m = {k: v.to(torch.bfloat16) for k, v in bitnet_tensors(gen, cfg).items()}
    del cfg["_sub"]

    # the masters, sharded, run by transformers' AutoBitLinear (online absmean + int8)
    online = {"quant_method": "bitnet", "linear_class": "autobitlinear",
              "quantization_mode": "online"}
    write_json(bf16_dir / "config.json", bitnet_config(vocab, bos, eos, online))
    write_json(bf16_dir / "generation_config.json", gen_cfg)
    save_sharded(bf16_dir, m, 2)

    # the same masters made ternary and packed, with bf16 inverse scales
    packed = {}
    for k, v in m.items():
        if is_projection(k):
            codes, scale = absmean_ternary(v)
            packed[k] = pack(codes)
            packed[k.replace(".weight", ".weight_scale")] = (1.0 / scale).reshape(1).to(torch.bfloat16)
        else:
            packed[k] = v
    offline = {"quant_method": "bitnet", "linear_class": "bitlinear",
               "quantization_mode": "offline"}
    write_json(packed_dir / "config.json", bitnet_config(vocab, bos, eos, offline))
    write_json(packed_dir / "generation_config.json", gen_cfg)
    save_sharded(packed_dir, packed, 1)

    note = ("transformers {} BitNetForCausalLM, dtype float32, eager attention, {}; "
            "teacher-forced prompt logits")
    import transformers
    for d, what in [(packed_dir, "BitLinear (packed ternary weights, per-token int8 activations)"),
                    (bf16_dir, "AutoBitLinear online (absmean ternary weights, per-token int8 activations)")]:
        write_reference(d, hf_runner(d), note.format(transformers.__version__, what))


def make_1bitllm():
    d = HERE / "1bitllm"
    d.mkdir(exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    spm_n, vocab = spm_tokenizer(d)
    cfg = {
        "architectures": ["BitnetForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": 256, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": vocab,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "rope_scaling": None, "tie_word_embeddings": True, "bos_token_id": 1,
        "eos_token_id": 2, "pad_token_id": spm_n, "attention_bias": False,
        "attention_dropout": 0.0, "initializer_range": 0.02, "input_bits": 8, "weight_bits": 1,
        "pretraining_tp": 1, "torch_dtype": "float16", "use_cache": True,
        "transformers_version": "4.39.0.dev0",
    }
    write_json(d / "config.json", cfg)
    write_json(d / "generation_config.json", {"bos_token_id": 1, "eos_token_id": 2,
                                              "pad_token_id": spm_n})
    gen = torch.Generator().manual_seed(SEED + 1)
    cfg["_sub"] = ("self_attn.inner_attn_ln", "mlp.ffn_layernorm")
    t = bitnet_tensors(gen, cfg)
    del cfg["_sub"]
    t = {k: v.to(torch.float16) for k, v in t.items()}
    save_sharded(d, t, 2)
    write_reference(d, lambda f16, how: OneBitLlm(cfg, t if how is None else perturbed(t, how), f16),
                    "OneBitLlm in tests/convert/make_checkpoints.py (1bitLLM's modeling code "
                    "re-implemented in torch), float32; teacher-forced prompt logits")


if __name__ == "__main__":
    torch.manual_seed(SEED)
    which = sys.argv[1:] or ["2b4t", "1bitllm"]
    if "2b4t" in which:
        make_2b4t()
    if "1bitllm" in which:
        make_1bitllm()
