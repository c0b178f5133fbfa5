#!/usr/bin/env python3
"""Generate small synthetic BitNet GGUF models (and a tensor-format zoo) for the tests.

Run with the fixtures' venv (tests/models/venv.sh), usually through tests/models/prepare.sh:

    gen_models.py --out DIR --sdist SDIR [--seed 1234] [--shape tiny|2b4t] [--only NAME ...]

Everything is a pure function of (seed, shape, this file, the pinned gguf/numpy versions and the
vocabulary files of the pinned llama-cpp-python sdist): the same inputs give byte-identical files.
Each tensor draws from its own random stream, keyed by (seed, weights group, tensor name), so
`--only` produces the same bytes as a full run, and all files of one weights group hold the same
model (same ternary codes, scales, norms and embedding), only stored differently:

  * bitnet-spm-*     arch `bitnet` (upstream llama.cpp), llama-spm vocab; with `.scale` tensors the
                     weights are exactly {-1,0,+1} and `blk.N.<proj>.scale` holds the scale; the
                     `-noscale` files fold the scale into the weights ({-s,0,+s}).
  * bitnet-bpe-*     arch `bitnet`, llama-bpe vocab, `.scale` tensors.
  * bitnet-b1.58-*   arch `bitnet-b1.58` (Microsoft bitnet.cpp), llama-bpe vocab without
                     `tokenizer.ggml.pre`, scale folded (one scale per tensor, as I2_S stores it).
  * qwen3-q1_0*      arch `qwen3` (PrismML's 1-bit Bonsai layout), qwen2 byte-level BPE vocab:
                     every matrix +-d with an f16 scale per 128 weights; Q1_0 with a tied Q1_0
                     head, and the same values in F16 (`-f16`).
  * qwen3-q2_0*      arch `qwen3` (ternary Bonsai layout): projections (-1, 0, +1, rarely +2) * d
                     with an f16 scale per 64 weights, an untied head in the same type, an F16
                     embedding; Q2_0, and the same values in F32 (`-f32`).
  Shapes `1.7b` and `8b` hold only the qwen3 Q1_0 / Q2_0 files at Qwen3-1.7B / Qwen3-8B size.

Every per-tensor scale is rounded to bfloat16 precision, so codes * scale is exact in f32, f16,
bf16, TQ1_0/TQ2_0 (f16 block scale) and I2_S (f32 tensor scale): all files of a group dequantize
to bit-identical weights.

`formats.gguf` is not a model: random blocks of each tensor type the oracle can dequantize (in
1-D, 2-D and 3-D shapes), an I2_S and a Q4_0 tensor, and metadata keys of every GGUF value type.

DIR/manifest.json describes every file written.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT
from gguf import LlamaFileType as FT

I2_S = 36  # Microsoft bitnet.cpp's type id; not in gguf-py's enum
FTYPE_MOSTLY_I2_S = 40  # bitnet.cpp's llama_ftype for I2_S (upstream now uses 40 for Q1_0)

SHAPES = {
    "tiny": dict(n_embd=256, n_ff=512, n_layer=2, n_head=4, n_head_kv=2, head_dim=64, n_ctx=512),
    "2b4t": dict(n_embd=2560, n_ff=6912, n_layer=30, n_head=20, n_head_kv=5, head_dim=128, n_ctx=4096),
    "1.7b": dict(n_embd=2048, n_ff=6144, n_layer=28, n_head=16, n_head_kv=8, head_dim=128, n_ctx=40960),
    "8b": dict(n_embd=4096, n_ff=12288, n_layer=36, n_head=32, n_head_kv=8, head_dim=128, n_ctx=40960),
}
# qwen3 files of the tiny set: heads of 128 (Qwen3's), so n_head * head_dim (512) != n_embd
# (256) and q / attn_output are not square, as in Qwen3-4B.
QWEN3_TINY = dict(n_embd=256, n_ff=512, n_layer=2, n_head=4, n_head_kv=2, head_dim=128, n_ctx=512)
QWEN3_ROPE_BASE = 1000000.0
Q1_0, Q2_0 = 41, 42  # upstream ggml's Bonsai types; gguf-py 0.19 has no (de)quantizer for them
RMS_EPS = 1e-5

VOCAB_FILES = {
    "llama-spm": "vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf",
    "llama-bpe": "vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf",
    "qwen2": "vendor/llama.cpp/models/ggml-vocab-qwen2.gguf",
}

VERIFY_FULL = 1 << 20  # tensors up to this many values are checked whole, bigger ones on a row sample

PROJS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")

WEIGHT_FTYPE = {
    "F32": int(FT.ALL_F32),
    "F16": int(FT.MOSTLY_F16),
    "BF16": int(FT.MOSTLY_BF16),
    "TQ1_0": int(FT.MOSTLY_TQ1_0),
    "TQ2_0": int(FT.MOSTLY_TQ2_0),
    "Q8_0": int(FT.MOSTLY_Q8_0),
    "I2_S": FTYPE_MOSTLY_I2_S,
    "Q1_0": 40,  # LLAMA_FTYPE_MOSTLY_Q1_0 in the pinned llama.h
    "Q2_0": 41,  # LLAMA_FTYPE_MOSTLY_Q2_0
}


def log(msg: str) -> None:
    print(f"gen_models: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Model list


def model_specs(shape: str) -> list[dict]:
    def m(name, arch, group, vocab, wtype, embd="F16", scales=True):
        return dict(name=name, kind="model", arch=arch, group=group, vocab=vocab,
                    weight_type=wtype, token_embd_type=embd, has_scale_tensors=scales)

    if shape == "tiny":
        specs = []
        for wt in ("F32", "F16", "BF16", "TQ1_0", "TQ2_0", "Q8_0"):
            specs.append(m(f"bitnet-spm-{wt.lower()}", "bitnet", "bitnet-spm", "llama-spm", wt))
        specs += [
            # bitnet.cpp's 2024 files for 1bitLLM models: arch bitnet, I2_S weights.
            m("bitnet-spm-i2_s", "bitnet", "bitnet-spm", "llama-spm", "I2_S", scales=False),
            m("bitnet-spm-tq2_0-noscale", "bitnet", "bitnet-spm", "llama-spm", "TQ2_0", scales=False),
            m("bitnet-spm-f32-noscale", "bitnet", "bitnet-spm", "llama-spm", "F32", scales=False),
            m("bitnet-bpe-tq2_0", "bitnet", "bitnet-bpe", "llama-bpe", "TQ2_0"),
            m("bitnet-b1.58-i2_s", "bitnet-b1.58", "bitnet-b1.58", "llama-bpe", "I2_S", scales=False),
            m("bitnet-b1.58-i2_s-q6k", "bitnet-b1.58", "bitnet-b1.58", "llama-bpe", "I2_S", embd="Q6_K", scales=False),
            m("bitnet-b1.58-tq2_0", "bitnet-b1.58", "bitnet-b1.58", "llama-bpe", "TQ2_0", scales=False),
            m("bitnet-b1.58-f32", "bitnet-b1.58", "bitnet-b1.58", "llama-bpe", "F32", scales=False),
            dict(name="formats", kind="formats", arch="bitnet"),
        ]
        return specs + qwen3_specs(with_float_copies=True)
    if shape in ("1.7b", "8b"):
        return qwen3_specs(with_float_copies=False)
    if shape == "2b4t":
        return [
            m("bitnet-bpe-tq2_0", "bitnet", "bitnet-bpe", "llama-bpe", "TQ2_0"),
            m("bitnet-bpe-tq1_0", "bitnet", "bitnet-bpe", "llama-bpe", "TQ1_0"),
            m("bitnet-b1.58-i2_s", "bitnet-b1.58", "bitnet-b1.58", "llama-bpe", "I2_S", scales=False),
            m("bitnet-b1.58-i2_s-q6k", "bitnet-b1.58", "bitnet-b1.58", "llama-bpe", "I2_S", embd="Q6_K", scales=False),
            m("bitnet-b1.58-tq2_0", "bitnet-b1.58", "bitnet-b1.58", "llama-bpe", "TQ2_0", scales=False),
        ]
    raise ValueError(shape)


def qwen3_specs(with_float_copies: bool) -> list[dict]:
    """Bonsai-like qwen3 files: (name, weights group, matrix type, embedding type, tied head)."""
    def q(name, group, wt, embd, head):
        return dict(name=name, kind="qwen3", arch="qwen3", group=group, vocab="qwen2",
                    weight_type=wt, token_embd_type=embd, tied=head is None, output_type=head)
    specs = [q("qwen3-q1_0", "qwen3-q1", "Q1_0", "Q1_0", None),
             q("qwen3-q2_0", "qwen3-q2", "Q2_0", "F16", "Q2_0")]
    if with_float_copies:  # the F32 copy's head in F16 (the same values, half the bytes)
        specs += [q("qwen3-q1_0-f16", "qwen3-q1", "F16", "F16", None),
                  q("qwen3-q2_0-f32", "qwen3-q2", "F32", "F16", "F16")]
    return specs


# --------------------------------------------------------------------------------------------
# Random streams


def rng_for(seed: int, group: str, name: str) -> np.random.Generator:
    """An independent, order-free random stream per (seed, weights group, tensor name)."""
    return np.random.default_rng([seed, zlib.crc32(group.encode()), zlib.crc32(name.encode())])


def round_to_bf16(x: float) -> float:
    """Round to bfloat16 precision (8 significant bits): exact in f32, f16 and bf16 for 0.05..0.15."""
    b = np.array([x], dtype=np.float32).view(np.uint32)
    b = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    v = float(b.view(np.float32)[0])
    assert float(np.float16(v)) == v, v
    return v


def proj_codes_and_scale(seed: int, group: str, name: str, m: int, k: int) -> tuple[np.ndarray, float]:
    """Ternary codes int8 in {-1,0,1}, shape (M rows, K cols), and one per-tensor scale."""
    rng = rng_for(seed, group, name)
    scale = round_to_bf16(rng.uniform(0.05, 0.15))
    codes = rng.integers(-1, 2, size=(m, k), dtype=np.int8)
    return codes, scale


def norm_weight(seed: int, group: str, name: str, n: int) -> np.ndarray:
    rng = rng_for(seed, group, name)
    return (1.0 + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)


def embedding(seed: int, group: str, n_vocab: int, n_embd: int) -> np.ndarray:
    rng = rng_for(seed, group, "token_embd.weight")
    out = np.empty((n_vocab, n_embd), dtype=np.float32)
    step = max(1, (1 << 24) // n_embd)
    for r in range(0, n_vocab, step):  # row chunks keep the peak memory low for big vocabularies
        rows = min(step, n_vocab - r)
        out[r:r + rows] = rng.standard_normal((rows, n_embd), dtype=np.float32) * np.float32(0.3)
    return out


# --------------------------------------------------------------------------------------------
# Packers (verified against gguf-py's dequantizers in verify_* below)


def pack_tq2_0(codes: np.ndarray, d: float) -> np.ndarray:
    """TQ2_0 blocks of 256: 64 bytes of 2-bit codes (q+1), then f16 d. Returns uint8 (rows, bytes)."""
    m, k = codes.shape
    nb = m * k // 256
    q = (codes.reshape(nb, 2, 4, 32).astype(np.uint8) + np.uint8(1))
    qs = q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)  # (nb, 2, 32)
    dd = np.full((nb, 1), d, dtype=np.float16).view(np.uint8)
    return np.concatenate([qs.reshape(nb, 64), dd], axis=1).reshape(m, k // 256 * 66)


def pack_tq1_0(codes: np.ndarray, d: float) -> np.ndarray:
    """TQ1_0 blocks of 256: 48 bytes of 5 base-3 digits, 4 bytes of 4 digits, then f16 d."""
    m, k = codes.shape
    nb = m * k // 256
    q = (codes.reshape(nb, 256).astype(np.uint16) + np.uint16(1))
    p5 = np.array([81, 27, 9, 3, 1], dtype=np.uint16)
    qs0 = (q[:, :160].reshape(nb, 5, 32) * p5[None, :, None]).sum(axis=1, dtype=np.uint16)
    qs1 = (q[:, 160:240].reshape(nb, 5, 16) * p5[None, :, None]).sum(axis=1, dtype=np.uint16)
    qh = (q[:, 240:].reshape(nb, 4, 4) * p5[None, :4, None]).sum(axis=1, dtype=np.uint16)
    packed = np.concatenate([qs0, qs1, qh], axis=1)  # values 0..242
    packed = ((packed * np.uint16(256) + np.uint16(242)) // np.uint16(243)).astype(np.uint8)
    dd = np.full((nb, 1), d, dtype=np.float16).view(np.uint8)
    return np.concatenate([packed, dd], axis=1).reshape(m, k // 256 * 54)


def pack_i2_s(codes: np.ndarray, scale: float) -> np.ndarray:
    """I2_S: row-major blocks of 128 values -> 32 bytes (element b at bits 7:6, b+32 at 5:4,
    b+64 at 3:2, b+96 at 1:0; code = value+1), then a 32-byte tail holding the f32 scale."""
    m, k = codes.shape
    assert k % 128 == 0
    c = (codes.reshape(-1, 4, 32).astype(np.uint8) + np.uint8(1))
    body = (c[:, 0] << 6) | (c[:, 1] << 4) | (c[:, 2] << 2) | c[:, 3]
    tail = np.zeros(32, dtype=np.uint8)
    tail[:4] = np.frombuffer(struct.pack("<f", scale), dtype=np.uint8)
    return np.concatenate([body.reshape(-1), tail])


def unpack_i2_s(raw: np.ndarray, m: int, k: int) -> np.ndarray:
    """Element-by-element decode of I2_S (independent of pack_i2_s's vectorization)."""
    raw = raw.view(np.uint8)
    n = m * k
    assert raw.size == n // 4 + 32
    scale = np.frombuffer(raw[n // 4:n // 4 + 4].tobytes(), dtype="<f4")[0]
    idx = np.arange(n)
    blk, pos = idx // 128, idx % 128
    byte = raw[blk * 32 + pos % 32]
    shift = 6 - 2 * (pos // 32)
    code = (byte >> shift.astype(np.uint8)) & 3
    return ((code.astype(np.float32) - np.float32(1)) * scale).reshape(m, k)


def quantize_q6_k(x: np.ndarray) -> np.ndarray:
    """A simple Q6_K quantizer (not llama.cpp's iterative search): per 16-value group an int8
    scale, per 256-value block an f16 d; 6-bit q = ql (low 4 bits) | qh (high 2 bits) << 4,
    stored q+32. Block layout (210 bytes): ql[128], qh[64], scales[16] (int8), d (f16)."""
    rows, k = x.shape
    assert k % 256 == 0
    out = np.empty((rows, k // 256 * 210), dtype=np.uint8)
    step = max(1, (1 << 20) // k)
    for r in range(0, rows, step):
        xb = x[r:r + step].astype(np.float32).reshape(-1, 16, 16)
        nb = xb.shape[0]
        gmax = np.abs(xb).max(axis=2)  # (nb, 16)
        gscale = gmax / np.float32(31)
        d = (gscale.max(axis=1) / np.float32(127)).astype(np.float16)  # (nb,)
        df = d.astype(np.float32)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            sc = np.where(df > 0, np.rint(gscale / df), 0)
        sc = np.clip(sc, 0, 127).astype(np.int8)
        eff = (df * sc.astype(np.float32))[:, :, None]  # same product the dequantizer forms
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(eff > 0, np.rint(xb / eff), 0)
        q = (np.clip(q, -32, 31) + 32).astype(np.uint8).reshape(nb, 2, 4, 32)  # (half, quarter, l)
        ql = (q[:, :, 0:2] & 0x0F) | ((q[:, :, 2:4] & 0x0F) << 4)  # (nb, 2, 2, 32)
        qh = (q[:, :, 0] >> 4) | ((q[:, :, 1] >> 4) << 2) | ((q[:, :, 2] >> 4) << 4) | ((q[:, :, 3] >> 4) << 6)
        blocks = np.concatenate([ql.reshape(nb, 128), qh.reshape(nb, 64), sc.view(np.uint8),
                                 d.reshape(nb, 1).view(np.uint8)], axis=1)
        n_rows = min(step, rows - r)
        out[r:r + n_rows] = blocks.reshape(n_rows, -1)
    return out


# --------------------------------------------------------------------------------------------
# Verification of the packers against gguf-py (the independent oracle)


def verify_ternary(qtype: QT, packed: np.ndarray, codes: np.ndarray, d: float) -> None:
    want = codes.astype(np.float32) * np.float32(d)
    got = gguf.quants.dequantize(packed, qtype).reshape(codes.shape)
    if not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
        raise AssertionError(f"{qtype.name} packer disagrees with gguf-py's dequantizer")
    # Also byte-identical to gguf-py's own quantizer (it picks d = max|w| per block, which is the
    # tensor scale unless a whole block is zero).
    if codes.size <= VERIFY_FULL and np.all(np.any(codes.reshape(-1, 256) != 0, axis=1)):
        ref = gguf.quants.quantize(want, qtype)
        if not np.array_equal(ref, packed):
            raise AssertionError(f"{qtype.name} packer bytes differ from gguf-py's quantizer")


def verify_q6_k(packed: np.ndarray, x: np.ndarray) -> None:
    got = gguf.quants.dequantize(packed, QT.Q6_K).reshape(x.shape)
    g = np.abs(x.reshape(-1, 16)).max(axis=1, keepdims=True)
    err = np.abs(got - x).reshape(-1, 16)
    if not np.all(err <= g / 31 + 1e-6):
        raise AssertionError(f"Q6_K quantizer error too large: max {float((err / np.maximum(g, 1e-30)).max())} of group max")


# --------------------------------------------------------------------------------------------
# Tokenizer metadata: copied with exact types from the sdist's vocab files


def read_gguf_kv(path: Path) -> list[tuple[str, VT, object, VT | None]]:
    """A minimal fast GGUF metadata parser (gguf-py's reader takes ~13 s on llama-bpe).
    Strings are kept as raw bytes so they are copied byte for byte."""
    buf = path.read_bytes()
    magic, version, _n_tensors, n_kv = struct.unpack_from("<IIQQ", buf, 0)
    if magic != 0x46554747 or version not in (2, 3):
        raise ValueError(f"{path}: not a GGUF v2/v3 file")
    off = 24
    scalar = {VT.UINT8: "B", VT.INT8: "b", VT.UINT16: "H", VT.INT16: "h", VT.UINT32: "I",
              VT.INT32: "i", VT.FLOAT32: "f", VT.UINT64: "Q", VT.INT64: "q", VT.FLOAT64: "d",
              VT.BOOL: "?"}

    def rd_str() -> bytes:
        nonlocal off
        (n,) = struct.unpack_from("<Q", buf, off)
        s = buf[off + 8:off + 8 + n]
        off += 8 + n
        return s

    def rd_val(t: VT):
        nonlocal off
        if t == VT.STRING:
            return rd_str(), None
        if t in scalar:
            fmt = "<" + scalar[t]
            (v,) = struct.unpack_from(fmt, buf, off)
            off += struct.calcsize(fmt)
            return v, None
        if t == VT.ARRAY:
            it, n = struct.unpack_from("<IQ", buf, off)
            off += 12
            it = VT(it)
            if it in scalar:
                fmt = "<" + scalar[it]
                sz = struct.calcsize(fmt)
                vals = list(struct.unpack_from("<" + scalar[it] * n, buf, off))
                off += sz * n
                return vals, it
            return [rd_val(it)[0] for _ in range(n)], it
        raise ValueError(f"unknown GGUF value type {t}")

    out = []
    for _ in range(n_kv):
        key = rd_str().decode("utf-8")
        (t,) = struct.unpack_from("<I", buf, off)
        off += 4
        t = VT(t)
        v, sub = rd_val(t)
        out.append((key, t, v, sub))
    return out


_vocab_cache: dict[str, list] = {}


def tokenizer_kv(sdist: Path, vocab: str) -> list[tuple[str, VT, object, VT | None]]:
    if vocab not in _vocab_cache:
        kv = read_gguf_kv(sdist / VOCAB_FILES[vocab])
        _vocab_cache[vocab] = [e for e in kv if e[0].startswith("tokenizer.")]
    return _vocab_cache[vocab]


def vocab_size(kv) -> int:
    for key, _t, v, _s in kv:
        if key == "tokenizer.ggml.tokens":
            return len(v)
    raise ValueError("vocab has no tokenizer.ggml.tokens")


# --------------------------------------------------------------------------------------------
# Writers


def write_gguf(w: gguf.GGUFWriter, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    w.write_header_to_file(tmp)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)


class EmbCache:
    """Keeps the last weights group's f32 embedding (and its encodings) between files."""

    def __init__(self):
        self.key = None
        self.enc: dict[str, np.ndarray] = {}

    def get(self, seed, group, n_vocab, n_embd, etype, verify):
        key = (seed, group, n_vocab, n_embd)
        if self.key != key:
            self.key, self.enc = key, {"F32": embedding(seed, group, n_vocab, n_embd)}
        if etype not in self.enc:
            x = self.enc["F32"]
            if etype == "F16":
                self.enc[etype] = x.astype(np.float16)
            elif etype == "Q6_K":
                q = quantize_q6_k(x)
                if verify:  # rows quantize independently: a row sample keeps this cheap
                    r = max(1, 4 * VERIFY_FULL // x.shape[1])
                    verify_q6_k(q[:r], x[:r])
                self.enc[etype] = q
            else:
                raise ValueError(etype)
        return self.enc[etype]


def add_projection(w, spec, seed, name, m, k, verify) -> None:
    group, wt = spec["group"], spec["weight_type"]
    codes, s = proj_codes_and_scale(seed, group, name + ".weight", m, k)
    scale_tensor = spec["has_scale_tensors"]
    d = 1.0 if scale_tensor else s  # with .scale tensors the weights are exactly {-1,0,1}
    if wt in ("F32", "F16", "BF16", "Q8_0"):
        vals = codes.astype(np.float32) * np.float32(d)
        if wt == "Q8_0":
            b = gguf.quants.quantize(vals, QT.Q8_0)
            w.add_tensor(name + ".weight", b, raw_dtype=QT.Q8_0)
        elif wt == "F32":
            w.add_tensor(name + ".weight", vals)
        elif wt == "F16":
            w.add_tensor(name + ".weight", vals.astype(np.float16))
        else:
            b = gguf.quants.quantize(vals, QT.BF16)
            w.add_tensor(name + ".weight", b, raw_dtype=QT.BF16)
    elif wt in ("TQ1_0", "TQ2_0"):
        qt = QT[wt]
        packed = pack_tq1_0(codes, d) if wt == "TQ1_0" else pack_tq2_0(codes, d)
        if verify:  # rows pack independently: a row sample checks big tensors
            r = m if m * k <= VERIFY_FULL else max(1, VERIFY_FULL // k)
            verify_ternary(qt, packed[:r], codes[:r], d)
        w.add_tensor(name + ".weight", packed, raw_dtype=qt)
    elif wt == "I2_S":
        raw = pack_i2_s(codes, d)
        if verify:  # the first r rows are the first r*k/128 blocks: check those and the tail
            r = m if m * k <= VERIFY_FULL else max(1, VERIFY_FULL // k)
            sub = raw if r == m else np.concatenate([raw[:r * k // 4], raw[-32:]])
            got = unpack_i2_s(sub, r, k)
            if not np.array_equal(got, codes[:r].astype(np.float32) * np.float32(d)):
                raise AssertionError("I2_S packer disagrees with the element-wise decoder")
        # gguf-py has no I2_S: raw int8 bytes, explicit (M, K) shape and the type id as an int.
        w.add_tensor(name + ".weight", raw.view(np.int8), raw_shape=(m, k), raw_dtype=I2_S)
    else:
        raise ValueError(wt)
    if scale_tensor:
        w.add_tensor(name + ".scale", np.array([s], dtype=np.float32))


def gen_model(spec: dict, hp: dict, seed: int, sdist: Path, out: Path, emb: EmbCache, verify: bool) -> dict:
    arch, group, wt = spec["arch"], spec["group"], spec["weight_type"]
    path = out / (spec["name"] + ".gguf")
    n_embd, n_ff, n_layer = hp["n_embd"], hp["n_ff"], hp["n_layer"]
    n_head, n_head_kv, head_dim = hp["n_head"], hp["n_head_kv"], hp["head_dim"]
    n_embd_gqa = n_head_kv * head_dim
    assert n_head * head_dim == n_embd
    tok_kv = tokenizer_kv(sdist, spec["vocab"])
    if arch == "bitnet-b1.58":
        tok_kv = [e for e in tok_kv if e[0] != "tokenizer.ggml.pre"]
    n_vocab = vocab_size(tok_kv)
    rope_base = hp["rope_freq_base_" + ("b158" if arch == "bitnet-b1.58" else "bitnet")]

    w = gguf.GGUFWriter(None, arch)
    w.add_string("general.name", spec["name"])
    w.add_uint32("general.file_type", WEIGHT_FTYPE[wt])
    if wt not in ("F32", "F16", "BF16"):
        w.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)
    w.add_uint32(f"{arch}.vocab_size", n_vocab)
    w.add_uint32(f"{arch}.context_length", hp["n_ctx"])
    w.add_uint32(f"{arch}.embedding_length", n_embd)
    w.add_uint32(f"{arch}.block_count", n_layer)
    w.add_uint32(f"{arch}.feed_forward_length", n_ff)
    w.add_uint32(f"{arch}.attention.head_count", n_head)
    w.add_uint32(f"{arch}.attention.head_count_kv", n_head_kv)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", RMS_EPS)
    w.add_float32(f"{arch}.rope.freq_base", rope_base)
    w.add_uint32(f"{arch}.rope.dimension_count", head_dim)
    for key, t, v, sub in tok_kv:
        w.add_key_value(key, v, t, sub)

    e = emb.get(seed, group, n_vocab, n_embd, spec["token_embd_type"], verify)
    if spec["token_embd_type"] == "F16":
        w.add_tensor("token_embd.weight", e)
    else:
        w.add_tensor("token_embd.weight", e, raw_dtype=QT[spec["token_embd_type"]])

    # (name, M rows = outputs, K cols = inputs); GGUF dims are [K, M]
    shapes = {"attn_q": (n_embd, n_embd), "attn_k": (n_embd_gqa, n_embd), "attn_v": (n_embd_gqa, n_embd),
              "attn_output": (n_embd, n_embd), "ffn_gate": (n_ff, n_embd), "ffn_up": (n_ff, n_embd),
              "ffn_down": (n_embd, n_ff)}
    for il in range(n_layer):
        b = f"blk.{il}"
        w.add_tensor(f"{b}.attn_norm.weight", norm_weight(seed, group, f"{b}.attn_norm.weight", n_embd))
        for p in ("attn_q", "attn_k", "attn_v"):
            add_projection(w, spec, seed, f"{b}.{p}", *shapes[p], verify)
        w.add_tensor(f"{b}.attn_sub_norm.weight", norm_weight(seed, group, f"{b}.attn_sub_norm.weight", n_embd))
        add_projection(w, spec, seed, f"{b}.attn_output", *shapes["attn_output"], verify)
        w.add_tensor(f"{b}.ffn_norm.weight", norm_weight(seed, group, f"{b}.ffn_norm.weight", n_embd))
        for p in ("ffn_gate", "ffn_up"):
            add_projection(w, spec, seed, f"{b}.{p}", *shapes[p], verify)
        w.add_tensor(f"{b}.ffn_sub_norm.weight", norm_weight(seed, group, f"{b}.ffn_sub_norm.weight", n_ff))
        add_projection(w, spec, seed, f"{b}.ffn_down", *shapes["ffn_down"], verify)
    w.add_tensor("output_norm.weight", norm_weight(seed, group, "output_norm.weight", n_embd))
    write_gguf(w, path)

    return dict(
        file=path.name, name=spec["name"], kind="model", arch=arch, weights_group=group,
        weight_type=wt, weight_type_id=I2_S if wt == "I2_S" else int(QT[wt]),
        token_embd_type=spec["token_embd_type"], vocab=spec["vocab"],
        vocab_has_pre=any(e[0] == "tokenizer.ggml.pre" for e in tok_kv),
        has_scale_tensors=spec["has_scale_tensors"], file_type=WEIGHT_FTYPE[wt],
        hparams=dict(n_vocab=n_vocab, n_embd=n_embd, n_ff=n_ff, n_layer=n_layer, n_head=n_head,
                     n_head_kv=n_head_kv, head_dim=head_dim, n_ctx=hp["n_ctx"],
                     rope_freq_base=rope_base, rms_eps=RMS_EPS),
    )


# --------------------------------------------------------------------------------------------
# qwen3 (Bonsai-like) files: Q1_0 / Q2_0 and float copies of the same values


def round_to_bf16_array(x: np.ndarray) -> np.ndarray:
    """round_to_bf16 element-wise (f32 in, f32 out, every value exact in f16 for 2^-14..65504)."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    b = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    out = b.view(np.float32)
    assert np.array_equal(out.astype(np.float16).astype(np.float32), out)
    return out


def block_codes_and_scales(seed: int, group: str, name: str, m: int, k: int, wt: str,
                           scale_mean: float) -> tuple[np.ndarray, np.ndarray]:
    """Codes int8 (M, K) and one f16-exact scale per block (M, K / block) of a Q1_0 (+-1) or
    Q2_0 (-1, 0, +1 and, in 2 % of the values, the legal but unusual +2) matrix."""
    rng = rng_for(seed, group, name)
    block = 128 if wt == "Q1_0" else 64
    assert k % block == 0, (name, k, block)
    scales = round_to_bf16_array(rng.uniform(0.5, 1.5, size=(m, k // block)).astype(np.float32)
                                 * np.float32(scale_mean))
    if wt == "Q1_0":
        codes = (rng.integers(0, 2, size=(m, k), dtype=np.int8) * np.int8(2) - np.int8(1))
    else:
        u = rng.integers(0, 100, size=(m, k), dtype=np.int8)
        codes = np.where(u < 32, -1, np.where(u < 66, 0, np.where(u < 98, 1, 2))).astype(np.int8)
    return codes, scales


def block_values(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The f32 values codes * scale (exact: small integers times f16-exact scales)."""
    m, k = codes.shape
    block = k // scales.shape[1]
    v = codes.reshape(m, -1, block).astype(np.float32) * scales[:, :, None]
    return v.reshape(m, k)


def pack_q1_0(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Q1_0 blocks of 128: f16 d, then 16 bytes of sign bits (value j: byte j/8, bit j%8, set = +d)."""
    m, k = codes.shape
    nb = m * k // 128
    bits = np.packbits((codes > 0).reshape(nb, 128), axis=1, bitorder="little")
    d = scales.reshape(nb, 1).astype(np.float16).view(np.uint8)
    return np.concatenate([d, bits], axis=1).reshape(m, k // 128 * 18)


def pack_q2_0(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Q2_0 blocks of 64: f16 d, then 16 bytes of 2-bit codes q+1, four consecutive values a
    byte, the first in the low bits."""
    m, k = codes.shape
    nb = m * k // 64
    q = (codes.reshape(nb, 16, 4) + np.int8(1)).astype(np.uint8)
    qs = q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)
    d = scales.reshape(nb, 1).astype(np.float16).view(np.uint8)
    return np.concatenate([d, qs], axis=1).reshape(m, k // 64 * 18)


def decode_q1_q2(packed: np.ndarray, wt: str, m: int, k: int) -> np.ndarray:
    """An element-wise decoder written from the layout (value by value, not by the packers'
    reshapes), to check them; gguf-py 0.19 has no Q1_0/Q2_0 dequantizer."""
    block = 128 if wt == "Q1_0" else 64
    raw = packed.reshape(-1, 18)
    d = raw[:, :2].copy().view(np.float16).astype(np.float32)[:, 0]
    j = np.arange(block)
    if wt == "Q1_0":
        bit = (raw[:, 2 + j // 8] >> (j % 8).astype(np.uint8)) & 1
        v = np.where(bit == 1, 1.0, -1.0).astype(np.float32)
    else:
        code = (raw[:, 2 + j // 4] >> (2 * (j % 4)).astype(np.uint8)) & 3
        v = code.astype(np.float32) - np.float32(1)
    return (v * d[:, None]).reshape(m, k)


def qwen3_tensor(w, name: str, wt: str, codes: np.ndarray, scales: np.ndarray, verify: bool) -> None:
    """Adds matrix `name` (M rows of K) stored as `wt` (Q1_0, Q2_0, F16 or F32)."""
    m, k = codes.shape
    if wt in ("Q1_0", "Q2_0"):
        packed = pack_q1_0(codes, scales) if wt == "Q1_0" else pack_q2_0(codes, scales)
        if verify:  # rows pack independently: a row sample checks big tensors
            r = m if m * k <= VERIFY_FULL else max(1, VERIFY_FULL // k)
            got = decode_q1_q2(packed[:r], wt, r, k)
            if not np.array_equal(got, block_values(codes[:r], scales[:r])):
                raise AssertionError(f"{wt} packer disagrees with the element-wise decoder ({name})")
        # gguf-py knows neither type's block size: raw int8 bytes, explicit (M, K) shape.
        w.add_tensor(name, packed.view(np.int8), raw_shape=(m, k), raw_dtype=Q1_0 if wt == "Q1_0" else Q2_0)
    elif wt == "F16":
        w.add_tensor(name, block_values(codes, scales).astype(np.float16))
    elif wt == "F32":
        w.add_tensor(name, block_values(codes, scales))
    else:
        raise ValueError(wt)


def gen_qwen3(spec: dict, hp: dict, seed: int, sdist: Path, out: Path, verify: bool) -> dict:
    group, wt, et = spec["group"], spec["weight_type"], spec["token_embd_type"]
    # The values come from the Q1_0 group ("qwen3-q1": +-d) or the Q2_0 group ("qwen3-q2").
    vt = "Q1_0" if group == "qwen3-q1" else "Q2_0"
    path = out / (spec["name"] + ".gguf")
    n_embd, n_ff, n_layer = hp["n_embd"], hp["n_ff"], hp["n_layer"]
    n_head, n_head_kv, hd = hp["n_head"], hp["n_head_kv"], hp["head_dim"]
    n_q, n_kv = n_head * hd, n_head_kv * hd
    tok_kv = tokenizer_kv(sdist, spec["vocab"])
    n_vocab = vocab_size(tok_kv)
    arch = "qwen3"

    w = gguf.GGUFWriter(None, arch)
    w.add_string("general.name", spec["name"])
    w.add_uint32("general.file_type", WEIGHT_FTYPE[wt])
    if wt not in ("F32", "F16"):
        w.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)
    w.add_uint32(f"{arch}.context_length", hp["n_ctx"])
    w.add_uint32(f"{arch}.embedding_length", n_embd)
    w.add_uint32(f"{arch}.block_count", n_layer)
    w.add_uint32(f"{arch}.feed_forward_length", n_ff)
    w.add_uint32(f"{arch}.attention.head_count", n_head)
    w.add_uint32(f"{arch}.attention.head_count_kv", n_head_kv)
    w.add_uint32(f"{arch}.attention.key_length", hd)
    w.add_uint32(f"{arch}.attention.value_length", hd)
    w.add_float32(f"{arch}.rope.freq_base", QWEN3_ROPE_BASE)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    for key, t, v, sub in tok_kv:
        w.add_key_value(key, v, t, sub)

    def matrix(name: str, m: int, k: int, wtype: str, scale_mean: float) -> None:
        codes, scales = block_codes_and_scales(seed, group, name, m, k, vt, scale_mean)
        qwen3_tensor(w, name, wtype, codes, scales, verify)

    # Matrices: mean scale ~ 1.6 / sqrt(K) keeps each output's spread near 1 for every shape.
    def proj_scale(k: int) -> float:
        return 1.6 / float(np.sqrt(k))

    if vt == "Q1_0":  # the 1-bit Bonsai layout: Q1_0 embedding that is also the head
        matrix("token_embd.weight", n_vocab, n_embd, et, 0.25)
    else:
        w.add_tensor("token_embd.weight", embedding(seed, group, n_vocab, n_embd).astype(np.float16))
    w.add_tensor("output_norm.weight", norm_weight(seed, group, "output_norm.weight", n_embd))
    if not spec["tied"]:
        matrix("output.weight", n_vocab, n_embd, spec["output_type"], proj_scale(n_embd))
    shapes = {"attn_q": (n_q, n_embd), "attn_k": (n_kv, n_embd), "attn_v": (n_kv, n_embd),
              "attn_output": (n_embd, n_q), "ffn_gate": (n_ff, n_embd), "ffn_up": (n_ff, n_embd),
              "ffn_down": (n_embd, n_ff)}
    for il in range(n_layer):
        b = f"blk.{il}"
        for nm, n in (("attn_norm", n_embd), ("attn_q_norm", hd), ("attn_k_norm", hd), ("ffn_norm", n_embd)):
            w.add_tensor(f"{b}.{nm}.weight", norm_weight(seed, group, f"{b}.{nm}.weight", n))
        for p, (m, k) in shapes.items():
            matrix(f"{b}.{p}.weight", m, k, wt, proj_scale(k))
    write_gguf(w, path)

    return dict(
        file=path.name, name=spec["name"], kind="qwen3", arch=arch, weights_group=group,
        weight_type=wt, weight_type_id=int(Q1_0 if wt == "Q1_0" else Q2_0 if wt == "Q2_0" else QT[wt]),
        token_embd_type=et, vocab=spec["vocab"], vocab_has_pre=True, tied_head=spec["tied"],
        output_type=spec["output_type"] or et,
        has_scale_tensors=False, file_type=WEIGHT_FTYPE[wt],
        hparams=dict(n_vocab=n_vocab, n_embd=n_embd, n_ff=n_ff, n_layer=n_layer, n_head=n_head,
                     n_head_kv=n_head_kv, head_dim=hd, n_ctx=hp["n_ctx"],
                     rope_freq_base=QWEN3_ROPE_BASE, rms_eps=1e-6),
    )


# --------------------------------------------------------------------------------------------
# formats.gguf


def random_float_bits(rng, n: int, kind: str) -> np.ndarray:
    """Finite random bit patterns for kind f32, f16 or bf16, with subnormals, +-0 and the
    extremes of the range mixed in."""
    if kind == "f32":
        dt, exp_mask, mant_mask, sign = np.uint32, 0x7F800000, 0x007FFFFF, 0x80000000
        specials = [0x00000000, 0x80000000, 0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF,
                    0x80000001, 0x807FFFFF, 0xFF7FFFFF, 0x3F800000, 0xBF800000]
        u = rng.integers(0, 1 << 32, size=n, dtype=np.uint64).astype(dt)
    else:
        dt = np.uint16
        if kind == "f16":
            exp_mask, mant_mask, sign = 0x7C00, 0x03FF, 0x8000
            specials = [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x8001, 0x83FF, 0xFBFF, 0x3C00, 0xBC00]
        else:
            assert kind == "bf16"
            exp_mask, mant_mask, sign = 0x7F80, 0x007F, 0x8000
            specials = [0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x7F7F, 0x8001, 0x807F, 0xFF7F, 0x3F80, 0xBF80]
        u = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(dt)
    # non-finite (exponent all ones) -> clear the top exponent bit
    top = dt(exp_mask & ~(exp_mask >> 1))
    u = np.where((u & dt(exp_mask)) == dt(exp_mask), u ^ top, u).astype(dt)
    # ~1/8 subnormals (exponent zero)
    sub = rng.random(n) < 0.125
    u = np.where(sub, u & dt(sign | mant_mask), u).astype(dt)
    k = min(len(specials), n)
    u[:k] = np.array(specials[:k], dtype=dt)
    return u


def random_f16_scales(rng, n: int) -> np.ndarray:
    """Block scales: half realistic (normal, both signs), half arbitrary finite f16 bit patterns
    (tiny, subnormal, huge, negative, zero)."""
    real = (rng.standard_normal(n) * 0.05).astype(np.float16).view(np.uint16)
    wild = random_float_bits(rng, n, "f16")
    pick = rng.random(n) < 0.5
    return np.where(pick, real, wild).astype(np.uint16)


def random_blocks(rng, qtype: QT, n_blocks: int) -> np.ndarray:
    _bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, size=(n_blocks, ts), dtype=np.uint16).astype(np.uint8)
    d = random_f16_scales(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    if qtype in (QT.Q8_0, QT.Q4_0):
        b[:, 0:2] = d  # d first
    elif qtype in (QT.Q6_K, QT.TQ1_0, QT.TQ2_0):
        b[:, ts - 2:ts] = d  # d last
    else:
        raise ValueError(qtype)
    return b


FORMAT_SHAPES = {"1d": [256], "2d": [512, 3], "3d": [256, 2, 2]}  # GGUF ne order


def metadata_zoo(w: gguf.GGUFWriter) -> int:
    """Keys of every GGUF value type, with edge values. Returns the number of keys added."""
    nan, inf = float("nan"), float("inf")
    entries = [
        ("test.u8", 200, VT.UINT8, None),
        ("test.i8", -100, VT.INT8, None),
        ("test.u16", 60000, VT.UINT16, None),
        ("test.i16", -30000, VT.INT16, None),
        ("test.u32", 4000000000, VT.UINT32, None),
        ("test.i32", -2000000000, VT.INT32, None),
        ("test.u64", (1 << 64) - 1, VT.UINT64, None),
        ("test.i64", -(1 << 63), VT.INT64, None),
        ("test.f32", 0.1, VT.FLOAT32, None),
        ("test.f32_neg_zero", -0.0, VT.FLOAT32, None),
        ("test.f32_subnormal", 1e-45, VT.FLOAT32, None),
        ("test.f32_max", 3.4028234663852886e38, VT.FLOAT32, None),
        ("test.f32_nan", nan, VT.FLOAT32, None),
        ("test.f32_inf", inf, VT.FLOAT32, None),
        ("test.f32_neg_inf", -inf, VT.FLOAT32, None),
        ("test.f64", 0.1, VT.FLOAT64, None),
        ("test.f64_tiny", 5e-324, VT.FLOAT64, None),
        ("test.f64_nan", nan, VT.FLOAT64, None),
        ("test.f64_neg_inf", -inf, VT.FLOAT64, None),
        ("test.bool_true", True, VT.BOOL, None),
        ("test.bool_false", False, VT.BOOL, None),
        ("test.string", "h\u00e9llo \u2713 \U0001F600", VT.STRING, None),
        ("test.string_empty", "", VT.STRING, None),
        ("test.string_bad_utf8", b"ab\xffcd", VT.STRING, None),
        ("test.arr_u8", [0, 1, 255], VT.ARRAY, VT.UINT8),
        ("test.arr_i16", [-32768, 0, 32767], VT.ARRAY, VT.INT16),
        ("test.arr_u32", [0, 4294967295], VT.ARRAY, VT.UINT32),
        ("test.arr_i64", [-(1 << 63), (1 << 63) - 1], VT.ARRAY, VT.INT64),
        ("test.arr_u64", [(1 << 64) - 1, 0], VT.ARRAY, VT.UINT64),
        ("test.arr_f32", [1.5, -0.0, nan, inf, -inf, 1e-40], VT.ARRAY, VT.FLOAT32),
        ("test.arr_f64", [0.1, nan, -inf], VT.ARRAY, VT.FLOAT64),
        ("test.arr_bool", [True, False, True], VT.ARRAY, VT.BOOL),
        ("test.arr_string", ["a", "", "\u00fc\u00f1\u00ee", b"x\xfey"], VT.ARRAY, VT.STRING),
        ("test.arr_nested_i32", [[1, 2, 3], [-4], [5, 6]], VT.ARRAY, VT.ARRAY),
        ("test.arr_nested_string", [["a", "b"], ["c"]], VT.ARRAY, VT.ARRAY),
    ]
    for key, v, t, sub in entries:
        w.add_key_value(key, v, t, sub)
    return len(entries)


def gen_formats(seed: int, out: Path) -> dict:
    path = out / "formats.gguf"
    w = gguf.GGUFWriter(None, "bitnet")
    w.add_string("general.name", "formats")
    w.add_custom_alignment(64)  # exercise general.alignment (GGUF default is 32)
    n_meta = metadata_zoo(w)
    tensors = []

    def add(name, arr, qtype, ne, raw_shape=None):
        if raw_shape is not None:
            w.add_tensor(name, arr, raw_shape=raw_shape, raw_dtype=qtype)
        elif qtype in (QT.F32, QT.F16):
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, arr, raw_dtype=qtype)
        tensors.append(dict(name=name, type=qtype.name if isinstance(qtype, QT) else "I2_S",
                            type_id=int(qtype), shape=ne))

    for tname, qtype in (("f32", QT.F32), ("f16", QT.F16), ("bf16", QT.BF16), ("q8_0", QT.Q8_0),
                         ("q6_k", QT.Q6_K), ("tq1_0", QT.TQ1_0), ("tq2_0", QT.TQ2_0)):
        shapes = dict(FORMAT_SHAPES)
        if qtype in (QT.F32, QT.F16, QT.BF16):
            shapes["odd"] = [5, 3]  # byte sizes that are not a multiple of the alignment
        for sname, ne in shapes.items():
            name = f"{tname}.{sname}"
            rng = rng_for(seed, "formats", name)
            np_shape = tuple(reversed(ne))
            n = int(np.prod(ne))
            if qtype == QT.F32:
                add(name, random_float_bits(rng, n, "f32").view(np.float32).reshape(np_shape), qtype, ne)
            elif qtype == QT.F16:
                add(name, random_float_bits(rng, n, "f16").view(np.float16).reshape(np_shape), qtype, ne)
            elif qtype == QT.BF16:
                raw = random_float_bits(rng, n, "bf16").view(np.uint8)
                add(name, raw.reshape(*np_shape[:-1], np_shape[-1] * 2), qtype, ne)
            else:
                bs, ts = gguf.GGML_QUANT_SIZES[qtype]
                blocks = random_blocks(rng, qtype, n // bs)
                add(name, blocks.reshape(*np_shape[:-1], np_shape[-1] // bs * ts), qtype, ne)

    # I2_S: valid codes (0..2) and an f32 scale that is not f16-exact
    rng = rng_for(seed, "formats", "i2_s.2d")
    k, m = 256, 4
    codes = rng.integers(-1, 2, size=(m, k), dtype=np.int8)
    raw = pack_i2_s(codes, 0.0123456789)
    add("i2_s.2d", raw.view(np.int8), I2_S, [k, m], raw_shape=(m, k))
    # Q4_0: random bytes; engines must refuse to dequantize it with a clear error
    rng = rng_for(seed, "formats", "q4_0.2d")
    add("q4_0.2d", random_blocks(rng, QT.Q4_0, 4).reshape(2, 36), QT.Q4_0, [64, 2])

    write_gguf(w, path)
    return dict(file=path.name, name="formats", kind="formats", arch="bitnet", alignment=64,
                n_test_metadata_keys=n_meta, tensors=tensors)


# --------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output directory (created)")
    ap.add_argument("--sdist", required=True, type=Path, help="unpacked llama-cpp-python sdist (vocab files)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="generate only these (file name, with or without .gguf)")
    ap.add_argument("--no-verify", action="store_true", help="skip checking the packers against gguf-py")
    args = ap.parse_args()

    specs = model_specs(args.shape)
    if args.only:
        want = {n[:-5] if n.endswith(".gguf") else n for n in args.only}
        unknown = want - {s["name"] for s in specs}
        if unknown:
            ap.error(f"unknown model(s) for shape {args.shape}: {sorted(unknown)}; "
                     f"known: {[s['name'] for s in specs]}")
        specs = [s for s in specs if s["name"] in want]
    for v in VOCAB_FILES.values():
        if not (args.sdist / v).is_file():
            ap.error(f"--sdist {args.sdist}: missing {v}")

    hp = dict(SHAPES[args.shape])
    hp["rope_freq_base_b158"] = 500000.0
    hp["rope_freq_base_bitnet"] = 500000.0 if args.shape == "2b4t" else 10000.0
    verify = not args.no_verify

    args.out.mkdir(parents=True, exist_ok=True)
    emb = EmbCache()
    entries = []
    t_all = time.time()
    for spec in specs:
        t0 = time.time()
        if spec["kind"] == "formats":
            entry = gen_formats(args.seed, args.out)
        elif spec["kind"] == "qwen3":
            entry = gen_qwen3(spec, QWEN3_TINY if args.shape == "tiny" else hp, args.seed, args.sdist,
                              args.out, verify)
        else:
            entry = gen_model(spec, hp, args.seed, args.sdist, args.out, emb, verify)
        p = args.out / entry["file"]
        entry["size"] = p.stat().st_size
        entry["sha256"] = sha256_file(p)
        entries.append(entry)
        log(f"{entry['file']}: {entry['size'] / 1e6:.1f} MB in {time.time() - t0:.1f} s")

    manifest = dict(
        generator="tests/models/gen_models.py", seed=args.seed, shape=args.shape,
        gguf_py=getattr(gguf, "__version__", None) or _pkg_version("gguf"), numpy=np.__version__,
        models=entries,
    )
    tmp = args.out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, args.out / "manifest.json")
    log(f"{len(entries)} file(s) in {time.time() - t_all:.1f} s -> {args.out}")
    return 0


def _pkg_version(name: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
