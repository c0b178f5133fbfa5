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

Every reference runs the prompt teacher-forced (logits of every position) and the same model
with every RMSNorm weight scaled by 1 + 1e-6 (the int8 noise floor, as crossval measures it),
then 32 greedy steps with each step's top-1 - top-2 margin.
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
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text(TEXT)
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(Path(tmp) / "m"), vocab_size=320, model_type="bpe",
            byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
            add_dummy_prefix=True, split_digits=True, normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            minloglevel=2)
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
    float32 throughout."""

    def __init__(self, cfg, t):
        self.cfg, self.t = cfg, {k: v.float() for k, v in t.items()}

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
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1)
            a = (att @ v).transpose(0, 1).reshape(n, e)
            a = rms_norm(a, t[p + "self_attn.inner_attn_ln.weight"], eps)
            x = x + self.bitlinear(a, p + "self_attn.o_proj.weight")
            h = rms_norm(x, t[p + "post_attention_layernorm.weight"], eps)
            g = F.silu(self.bitlinear(h, p + "mlp.gate_proj.weight"))
            u = self.bitlinear(h, p + "mlp.up_proj.weight")
            m = rms_norm(g * u, t[p + "mlp.ffn_layernorm.weight"], eps)
            x = x + self.bitlinear(m, p + "mlp.down_proj.weight")
        x = rms_norm(x, t["model.norm.weight"], eps)
        head = t.get("lm_head.weight", t["model.embed_tokens.weight"])  # tied when absent
        return x @ head.T


# ---------------------------------------------------------------- references

def is_norm(name):
    return "norm" in name or "_ln." in name or "layernorm" in name


def perturbed(tensors):
    """The same weights with every RMSNorm weight scaled by 1 + EPS_NORM, in float32 (a
    16-bit copy would round the change away)."""
    return {k: v.float() * (1 + EPS_NORM) if is_norm(k) else v for k, v in tensors.items()}


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


def write_reference(out_dir, run, run_perturbed, family_note):
    with torch.no_grad():
        logits = run(PROMPT)
        logits_p = run_perturbed(PROMPT)
        tokens, margins = greedy(run, PROMPT)
    logits.float().numpy().astype("<f4").tofile(out_dir / "logits.f32")
    logits_p.float().numpy().astype("<f4").tofile(out_dir / "logits_perturbed.f32")
    cos = F.cosine_similarity(logits.double(), logits_p.double(), dim=-1)
    write_json(out_dir / "reference.json", {
        "how": family_note,
        "prompt": PROMPT,
        "n_vocab": logits.shape[-1],
        "logits": "logits.f32 (little-endian f32, one row of n_vocab per prompt token)",
        "logits_perturbed": f"the same with every RMSNorm weight x (1 + {EPS_NORM})",
        "noise_floor_worst_cosine": float(cos.min()),
        "greedy": tokens,
        "greedy_margins": margins,
        "tokenized": tokenized(out_dir),
    })
    print(f"{out_dir.name}: noise floor worst cosine {float(cos.min()):.7f}, "
          f"smallest greedy margin {min(margins):.4f}")


def hf_runner(model_dir, perturb=False):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.eval()
    if perturb:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if is_norm(name):
                    p.mul_(1 + EPS_NORM)
    return lambda ids: model(torch.tensor([ids])).logits[0]


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

    note = ("transformers {} BitNetForCausalLM, dtype float32, {}; teacher-forced prompt logits")
    import transformers
    for d, what in [(packed_dir, "BitLinear (packed ternary weights, per-token int8 activations)"),
                    (bf16_dir, "AutoBitLinear online (absmean ternary weights, per-token int8 activations)")]:
        run, run_p = hf_runner(d), hf_runner(d, perturb=True)
        write_reference(d, run, run_p, note.format(transformers.__version__, what))


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
    write_reference(d, OneBitLlm(cfg, t), OneBitLlm(cfg, perturbed(t)),
                    "OneBitLlm in tests/convert/make_checkpoints.py (1bitLLM's modeling code "
                    "re-implemented in torch), float32; teacher-forced prompt logits")


if __name__ == "__main__":
    torch.manual_seed(SEED)
    which = sys.argv[1:] or ["2b4t", "1bitllm"]
    if "2b4t" in which:
        make_2b4t()
    if "1bitllm" in which:
        make_1bitllm()
