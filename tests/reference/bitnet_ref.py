#!/usr/bin/env python3
"""An independent numpy implementation of BitNet inference: the oracle for arch `bitnet-b1.58`
(Microsoft's I2_S files, which upstream llama.cpp cannot load), and a sanity oracle for arch
`bitnet`. Written from docs/formats.md and docs/architectures.md only. Run it with the fixtures'
venv python (tests/models/prepare.sh prints `venv_python=...`): it needs numpy and gguf==0.19.0,
and reuses tests/models/oracle.py's GGUFReader subclass (which also reads I2_S, type 36).

  bitnet_ref.py logits MODEL --tokens 1,2,3 --out OUT.f32 [--mode exact|float] [--kv f16|f32]
      Logits of every position of one causal sequence starting at position 0:
      n_tokens x n_vocab, raw little-endian f32, row-major.
  bitnet_ref.py generate MODEL --tokens 1,2,3 [--n 32] [--mode ...] [--kv ...] [--logits OUT.f32]
      Greedy (argmax, lowest id on ties) continuation; prints the generated ids, comma-separated,
      on stdout. --logits writes the logits of every prompt and generated position as above
      (n_prompt + n - 1 rows: the last generated token is not fed back).
  bitnet_ref.py i2s-dot MODEL TENSOR X.f32 OUT_PREFIX
  bitnet_ref.py i2s-dot --raw W.bin --rows M --cols K X.f32 OUT_PREFIX
      One I2_S matmul, op-exact, for a Rust test to compare against. The weight is tensor TENSOR
      of MODEL (type 36, GGUF dims [K, M]) or a raw I2_S byte string (M*K/4 packed bytes then the
      32-byte tail, docs/formats.md). X.f32 holds N tokens' inputs: N x K raw LE f32. Writes:
        OUT_PREFIX.q.i8       N x K int8   per-token quantized activations q
        OUT_PREFIX.scale.f32  N     f32    per-token activation scale s = f32(127 / max)
        OUT_PREFIX.qsum.i32   N     int32  sum_k q[k]
        OUT_PREFIX.dot.i32    N x M int32  sum_k code[m,k] * q[k]          (codes 0, 1, 2)
        OUT_PREFIX.isum.i32   N x M int32  dot - qsum = sum_k (code[m,k] - 1) * q[k]
        OUT_PREFIX.y.f32      N x M f32    f32(f32(isum) / s) * weight_scale
      all raw little-endian, row-major, and prints `N M K weight_scale` on stdout.

Exit status 0 on success, 1 on errors, 2 on usage errors.

Modes
-----
`float`: the ideal model. No activation quantization, float64 everywhere (weights dequantized
exactly, KV cache float64); --kv is ignored.

`exact` (default): what bitnet.cpp does, to the precision stated here.
  * Activation quantization of every projection (q k v o gate up down, not the head) when the
    arch is bitnet-b1.58 / bitnet-25, whatever the weight type (I2_S, or the TQ2_0/F32 copies of
    the same weights), per token (per row of N x K):
        max = max(1e-5, max_k |x_k|)            (compared in float64; max|x| is an f32 value)
        s   = f32(127 / max)                    (correctly rounded; equals 127.0f / max in f32)
        q_k = clamp(rint(f32(x_k * s)), -128, 127)   rint = round half to even
    I.e. the docs' `x * 127/max` is read as x * (127/max): the per-token scale 127/max is one
    number, computed once, the one the output formula divides by. The output of an I2_S matmul:
        isum_m = sum_k (code_mk - 1) * q_k      exact integer (int64; = dot - qsum)
        y_m    = f32( f32( f32(isum_m) / s ) * weight_scale )
    i.e. the docs' `(sum(code*q) - sum(q)) * max/127 * scale` with max/127 applied as a
    division by s. For other weight types under the same rule: acc_m = sum_k W_mk * q_k in
    float64 (exact for ternary x bf16-precision scales), y_m = f32( f32(acc_m) / s ).
  * Arch `bitnet` (upstream llama.cpp): activations converted to the weight type's partner
    format before an exactly accumulated dot product, rounded to f32 once: TQ1_0/TQ2_0/Q*_K ->
    Q8_K (256 per block, iscale = -127/signed_max, q = min(127, rint(iscale*x)), d = 1/iscale);
    Q8_0 -> Q8_0 (32 per block, d = amax/127 stored f16, q = round half away(x/d)); F16 -> f16;
    BF16 -> bf16 (round to nearest even); F32 -> f32. `blk.N.<proj>.scale` multiplies the f32
    output (both archs, if present).
  * Storage is float32 (residual stream, norms, RoPE, attention, FFN activations). Every f32
    reduction (rmsnorm sum of squares, q.k, softmax sum, p.v) is accumulated in float64 and
    rounded to f32 once, so results do not depend on BLAS summation order (prefill and
    token-by-token decode give the same bits).
        rmsnorm: ss = sum f64(f32(x*x)); mean = f32(ss / n); r = f32(1 / f32(sqrt(f32(mean + eps))));
                 y = f32(f32(x * r) * w)
        RoPE (NEOX, pairs (i, i + n_rot/2)): theta_i = pos * base^(-2i/n_rot) in float64, cos/sin
                 rounded to f32; a' = a*c - b*s, b' = a*s + b*c in f32.
        KV cache: K (after RoPE) and V rounded to f16 (--kv f16, default) or kept f32.
        scores = f32(q.k) * f32(1/sqrt(head_dim)); causal; softmax: e = exp(f32(s - max)),
                 p = e * f32(1 / sum f64(e)); out = f32(sum f64(p * v)). GQA: query head h reads
                 kv head h // (n_head / n_head_kv). Q and the probabilities stay f32.
        Mode `llama` is `exact` with llama.cpp's (non-flash) attention and RoPE rounding: q and
        the probabilities rounded to f16 before meeting the f16 cache, RoPE angles stepped by
        repeated f32 multiplication.
        FFN: relu(g)^2 * u (bitnet-b1.58 / bitnet-25) or silu(g) * u (bitnet), in f32.
  * The head: logits = f32(E . h) computed in float64 from the dequantized token_embd (F16, or
    Q6_K via gguf-py), or output.weight if present, and the f32 final hidden state.

Memory: unpacked projection weights are cached (int8 codes for I2_S, f32 otherwise), about one
byte per I2_S weight; fine for the tiny fixtures, ~2 GB for the 2B-4T shape.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))
import oracle  # noqa: E402  (tests/models/oracle.py: Reader subclass that knows I2_S)

import gguf  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402

I2_S = oracle.I2_S
F32 = np.float32
F64 = np.float64
PROJS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
B158_ARCHS = ("bitnet-b1.58", "bitnet-25")
Q8K_TYPES = {int(QT.TQ1_0), int(QT.TQ2_0), int(QT.Q2_K), int(QT.Q3_K), int(QT.Q4_K), int(QT.Q5_K),
             int(QT.Q6_K)}
Q80_TYPES = {int(QT.Q4_0), int(QT.Q5_0), int(QT.Q8_0)}


class UsageError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# I2_S (docs/formats.md)


def i2s_codes(raw: np.ndarray, m: int, k: int) -> tuple[np.ndarray, np.float32]:
    """Unpack an I2_S byte string to codes (uint8 0..2, shape (M, K)) and the f32 tensor scale."""
    n = m * k
    if k % 128 or n % 128:
        raise ValueError(f"I2_S needs K % 128 == 0 (K = {k})")
    raw = np.asarray(raw, dtype=np.uint8).reshape(-1)
    if raw.size != n // 4 + 32:
        raise ValueError(f"I2_S tensor of {m}x{k} needs {n // 4 + 32} bytes, got {raw.size}")
    blocks = raw[:n // 4].reshape(-1, 32)  # 128 values per 32-byte block
    # byte b: element b in bits 7:6, b+32 in 5:4, b+64 in 3:2, b+96 in 1:0
    codes = np.empty((blocks.shape[0], 4, 32), dtype=np.uint8)
    for j, shift in enumerate((6, 4, 2, 0)):
        codes[:, j, :] = (blocks >> shift) & 3
    if np.any(codes == 3):
        raise ValueError("I2_S tensor holds the unused code 3")
    scale = raw[n // 4:n // 4 + 4].copy().view("<f4")[0]
    return codes.reshape(m, k), F32(scale)


def quant_act_i8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """bitnet-b1.58 per-token activation quantization. x: (N, K) f32. Returns q (N, K) int8 and
    s (N,) f32 with s = f32(127 / max(1e-5, max|x|))."""
    x = np.asarray(x, dtype=F32)
    amax = np.maximum(np.abs(x).max(axis=1).astype(F64), 1e-5)
    s = (127.0 / amax).astype(F32)
    t = x * s[:, None]  # f32 x f32 -> f32, correctly rounded
    q = np.clip(np.rint(t), -128, 127).astype(np.int8)
    return q, s


def i2s_matmul_exact(codes: np.ndarray, wscale: np.float32, x: np.ndarray) -> dict:
    """The op-exact I2_S matmul. codes (M, K) uint8 0..2; x (N, K) f32."""
    q, s = quant_act_i8(x)
    qf = q.astype(F64)
    # float64 products/sums of small integers are exact (|sum| < 2^53)
    dot = (qf @ codes.astype(F64).T).astype(np.int64)
    qsum = q.astype(np.int64).sum(axis=1)
    isum = dot - qsum[:, None]
    y = (isum.astype(F32) / s[:, None]) * F32(wscale)
    return dict(q=q, s=s, qsum=qsum, dot=dot, isum=isum, y=y.astype(F32))


# ---------------------------------------------------------------------------------------------
# Partner-format activation rounding for arch `bitnet` (upstream llama.cpp's choice of formats)


def round_bf16(x: np.ndarray) -> np.ndarray:
    b = np.ascontiguousarray(x, dtype=F32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16 << 16
    return b.astype(np.uint32).view(F32)


def act_q8_k(x: np.ndarray) -> np.ndarray:
    """Q8_K round trip of x (N, K), K a multiple of 256: returns the values d*q as float64."""
    n, k = x.shape
    xb = np.asarray(x, dtype=F32).reshape(n, k // 256, 256)
    idx = np.abs(xb).argmax(axis=2)  # first occurrence of the largest |x|
    mx = np.take_along_axis(xb, idx[..., None], axis=2)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = np.where(mx != 0, F32(-127) / mx, F32(0)).astype(F32)
        d = np.where(iscale != 0, F32(1) / iscale, F32(0)).astype(F32)
    q = np.minimum(127, np.rint(xb * iscale[..., None]))
    return (q.astype(F64) * d[..., None].astype(F64)).reshape(n, k)


def act_q8_0(x: np.ndarray) -> np.ndarray:
    n, k = x.shape
    xb = np.asarray(x, dtype=F32).reshape(n, k // 32, 32)
    d = (np.abs(xb).max(axis=2) / F32(127)).astype(F32)
    with np.errstate(divide="ignore"):
        idd = np.where(d != 0, F32(1) / d, F32(0)).astype(F32)
    t = xb * idd[..., None]
    q = np.sign(t) * np.floor(np.abs(t) + F32(0.5))  # roundf: half away from zero
    dh = d.astype(np.float16).astype(F64)
    return (q.astype(F64) * dh[..., None]).reshape(n, k)


# ---------------------------------------------------------------------------------------------
# The model


def _rows_cols(t) -> tuple[int, int]:
    dims = [int(v) for v in t.shape]
    if len(dims) == 1:
        return 1, dims[0]
    if len(dims) != 2:
        raise ValueError(f"{t.name}: expected a 2-D tensor, got dims {dims}")
    return dims[1], dims[0]  # GGUF dims are [ne0 = K, ne1 = M]


def dequant(t) -> np.ndarray:
    """Dequantized tensor as f32 (M, K) (or (K,) for 1-D), with gguf-py where it can."""
    m, k = _rows_cols(t)
    tid = int(t.tensor_type)
    if tid == I2_S:
        codes, sc = i2s_codes(t.data, m, k)
        return (codes.astype(F32) - F32(1)) * sc
    if tid == int(QT.F32):
        a = np.asarray(t.data, dtype=F32)
    elif tid == int(QT.F16):
        a = np.asarray(t.data, dtype=np.float16).astype(F32)
    else:
        a = np.asarray(gguf.quants.dequantize(t.data, QT(tid)), dtype=F32)
    a = a.reshape(-1)
    if a.size != m * k:
        raise ValueError(f"{t.name}: {a.size} values, expected {m}x{k}")
    return a.reshape(m, k) if len(t.shape) == 2 else a


class Proj:
    """One projection: y = W x (+ optional per-tensor output scale)."""

    def __init__(self, t, out_scale: np.float32 | None):
        self.name = t.name
        self.tid = int(t.tensor_type)
        self.m, self.k = _rows_cols(t)
        self.out_scale = out_scale
        if self.tid == I2_S:
            self.codes, self.wscale = i2s_codes(t.data, self.m, self.k)
            self.w = None
        else:
            self.codes = None
            self.w = dequant(t)
        self._w64 = None

    def w64(self) -> np.ndarray:
        if self._w64 is None:
            if self.codes is not None:
                self._w64 = (self.codes.astype(F64) - 1.0) * F64(self.wscale)
            else:
                self._w64 = self.w.astype(F64)
        return self._w64

    def __call__(self, x: np.ndarray, mode: str, b158: bool) -> np.ndarray:
        if mode == "float":
            y = np.asarray(x, dtype=F64) @ self.w64().T
            if self.out_scale is not None:
                y = y * F64(self.out_scale)
            return y
        x = np.asarray(x, dtype=F32)
        if self.codes is not None:
            # I2_S: per-token int8 activations whatever the arch (bitnet.cpp's 1bitLLM files are
            # arch `bitnet` with I2_S weights: the activation follows the weight type).
            y = i2s_matmul_exact(self.codes, self.wscale, x)["y"]
        elif b158:
            q, s = quant_act_i8(x)
            acc = q.astype(F64) @ self.w64().T
            y = (acc.astype(F32) / s[:, None]).astype(F32)
        else:
            if self.tid in Q8K_TYPES:
                xa = act_q8_k(x)
            elif self.tid in Q80_TYPES:
                xa = act_q8_0(x)
            elif self.tid == int(QT.F16):
                xa = x.astype(np.float16).astype(F64)
            elif self.tid == int(QT.BF16):
                xa = round_bf16(x).astype(F64)
            else:
                xa = x.astype(F64)
            y = (xa @ self.w64().T).astype(F32)
        if self.out_scale is not None:
            y = (y * F32(self.out_scale)).astype(F32)
        return y


class Model:
    def __init__(self, path: str):
        r = oracle.Reader(path)
        self.path = path
        f = r.fields
        self.arch = str(bytes(f["general.architecture"].parts[-1]), "utf-8")
        if self.arch not in B158_ARCHS + ("bitnet",):
            raise ValueError(f"{path}: arch {self.arch!r} is not bitnet / bitnet-b1.58 / bitnet-25")
        self.b158 = self.arch in B158_ARCHS

        def kv(key, default=None):
            fld = f.get(f"{self.arch}.{key}")
            if fld is None:
                if default is None:
                    raise ValueError(f"{path}: missing {self.arch}.{key}")
                return default
            return fld.parts[-1][0]

        self.n_embd = int(kv("embedding_length"))
        self.n_layer = int(kv("block_count"))
        self.n_ff = int(kv("feed_forward_length"))
        self.n_head = int(kv("attention.head_count"))
        self.n_head_kv = int(kv("attention.head_count_kv", self.n_head))
        self.eps = F32(kv("attention.layer_norm_rms_epsilon"))
        self.rope_base = float(F32(kv("rope.freq_base", 10000.0)))
        self.head_dim = self.n_embd // self.n_head
        self.n_rot = int(kv("rope.dimension_count", self.head_dim))
        if self.n_head % self.n_head_kv or self.n_rot % 2 or self.n_rot > self.head_dim:
            raise ValueError(f"{path}: unsupported head layout")

        tens = {t.name: t for t in r.tensors}
        self.embd = dequant(tens["token_embd.weight"])  # (n_vocab, n_embd) f32
        out = tens.get("output.weight")
        self.head = dequant(out) if out is not None else self.embd
        self.n_vocab = self.head.shape[0]

        def norm(name):
            return dequant(tens[name]).reshape(-1).astype(F32)

        self.output_norm = norm("output_norm.weight")
        self.layers = []
        for il in range(self.n_layer):
            b = f"blk.{il}"
            L = {n: norm(f"{b}.{n}.weight") for n in ("attn_norm", "attn_sub_norm", "ffn_norm",
                                                      "ffn_sub_norm")}
            for p in PROJS:
                st = tens.get(f"{b}.{p}.scale")
                sc = None
                if st is not None:
                    sc = F32(dequant(st).reshape(-1)[0])
                L[p] = Proj(tens[f"{b}.{p}.weight"], sc)
            self.layers.append(L)

    # -- ops --------------------------------------------------------------------------------------

    def rmsnorm(self, x, w, mode):
        if mode == "float":
            x = np.asarray(x, dtype=F64)
            return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + F64(self.eps)) * w.astype(F64)
        x = np.asarray(x, dtype=F32)
        ss = (x * x).astype(F64).sum(axis=-1, keepdims=True)
        mean = (ss / x.shape[-1]).astype(F32)
        r = (F32(1) / np.sqrt((mean + self.eps).astype(F32))).astype(F32)
        return ((x * r) * w).astype(F32)

    def rope(self, x, pos, mode):
        """x: (T, H, head_dim); pos: (T,) absolute positions. NEOX pairs (i, i + n_rot/2)."""
        half = self.n_rot // 2
        if mode == "llama":
            # llama.cpp's way: theta_scale = powf(base, -2/n_rot) in f32, and the angle stepped
            # by repeated f32 multiplication from theta_0 = pos.
            theta_scale = np.power(F32(self.rope_base), F32(-2.0) / F32(self.n_rot), dtype=F32)
            theta = np.empty((pos.shape[0], half), dtype=F32)
            theta[:, 0] = pos.astype(F32)
            for j in range(1, half):
                theta[:, j] = theta[:, j - 1] * theta_scale
        else:
            i = np.arange(half, dtype=F64)
            theta = pos.astype(F64)[:, None] * self.rope_base ** (-2.0 * i / self.n_rot)[None, :]
        dt = F64 if mode == "float" else F32
        c = np.cos(theta).astype(dt)[:, None, :]
        s = np.sin(theta).astype(dt)[:, None, :]
        a = x[..., :half]
        b = x[..., half:self.n_rot]
        out = x.copy()
        out[..., :half] = a * c - b * s
        out[..., half:self.n_rot] = a * s + b * c
        return out

    # -- forward ----------------------------------------------------------------------------------

    def new_cache(self):
        return [{"k": None, "v": None} for _ in range(self.n_layer)]

    def forward(self, tokens, cache, mode="exact", kv="f16"):
        """Feed tokens (list of ids) after the cache's positions; return logits (T, n_vocab) f32."""
        if any(not 0 <= t < self.embd.shape[0] for t in tokens):
            raise ValueError(f"token id out of range [0, {self.embd.shape[0]})")
        exact = mode != "float"
        dt = F32 if exact else F64
        T = len(tokens)
        start = 0 if cache[0]["k"] is None else cache[0]["k"].shape[0]
        pos = np.arange(start, start + T)
        H, Hkv, hd = self.n_head, self.n_head_kv, self.head_dim
        group = H // Hkv
        kq_scale = F32(1) / F32(math.sqrt(hd)) if exact else 1.0 / math.sqrt(hd)
        # mask[t, j]: key j visible to query t
        total = start + T
        mask = np.arange(total)[None, :] <= pos[:, None]

        x = self.embd[np.asarray(tokens)].astype(dt)
        for L, C in zip(self.layers, cache):
            h = self.rmsnorm(x, L["attn_norm"], mode)
            q = L["attn_q"](h, mode, self.b158).reshape(T, H, hd)
            k = L["attn_k"](h, mode, self.b158).reshape(T, Hkv, hd)
            v = L["attn_v"](h, mode, self.b158).reshape(T, Hkv, hd)
            q = self.rope(q, pos, mode)
            k = self.rope(k, pos, mode)
            if exact and kv == "f16":
                k = k.astype(np.float16)
                v = v.astype(np.float16)
            C["k"] = k if C["k"] is None else np.concatenate([C["k"], k])
            C["v"] = v if C["v"] is None else np.concatenate([C["v"], v])
            K = C["k"].astype(F64)  # (total, Hkv, hd)
            V = C["v"].astype(F64)
            kh = np.repeat(np.arange(Hkv), group)  # kv head of each query head
            Kq = K[:, kh, :]  # (total, H, hd)
            Vq = V[:, kh, :]
            # mode "llama": like llama.cpp's non-flash attention, q meets the f16 keys rounded
            # to f16, and the probabilities meet the f16 values rounded to f16.
            qd = q.astype(np.float16) if mode == "llama" else q
            sc = np.einsum("thd,jhd->htj", qd.astype(F64), Kq)  # (H, T, total)
            if exact:
                sc = sc.astype(F32) * kq_scale
                sc = np.where(mask[None], sc, F32(-np.inf))
                e = np.exp((sc - sc.max(axis=-1, keepdims=True)).astype(F32)).astype(F32)
                inv = (1.0 / e.astype(F64).sum(axis=-1, keepdims=True)).astype(F32)
                p = (e * inv).astype(F32)
                if mode == "llama":
                    p = p.astype(np.float16)
                att = np.einsum("htj,jhd->thd", p.astype(F64), Vq).astype(F32)
            else:
                sc = sc * kq_scale
                sc = np.where(mask[None], sc, -np.inf)
                e = np.exp(sc - sc.max(axis=-1, keepdims=True))
                p = e / e.sum(axis=-1, keepdims=True)
                att = np.einsum("htj,jhd->thd", p, Vq)
            att = att.reshape(T, H * hd)
            att = self.rmsnorm(att, L["attn_sub_norm"], mode)
            o = L["attn_output"](att, mode, self.b158)
            x = (x + o).astype(dt)

            h = self.rmsnorm(x, L["ffn_norm"], mode)
            g = L["ffn_gate"](h, mode, self.b158)
            u = L["ffn_up"](h, mode, self.b158)
            if self.b158:
                r = np.maximum(g, dt(0))
                a = (r * r * u).astype(dt)
            else:
                with np.errstate(over="ignore"):  # exp(-g) = inf for very negative g: silu -> -0
                    a = (g / (dt(1) + np.exp(-g)) * u).astype(dt)
            a = self.rmsnorm(a, L["ffn_sub_norm"], mode)
            d = L["ffn_down"](a, mode, self.b158)
            x = (x + d).astype(dt)

        h = self.rmsnorm(x, self.output_norm, mode).astype(F64)
        logits = np.empty((T, self.n_vocab), dtype=F32)
        chunk = 1 << 15
        for i in range(0, self.n_vocab, chunk):
            logits[:, i:i + chunk] = (h @ self.head[i:i + chunk].astype(F64).T).astype(F32)
        return logits


# ---------------------------------------------------------------------------------------------
# CLI


def parse_tokens(s: str) -> list[int]:
    try:
        toks = [int(v) for v in s.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise UsageError(f"--tokens: not a comma-separated list of ids: {s!r}")
    if not toks:
        raise UsageError("--tokens: empty")
    return toks


def cmd_logits(a) -> int:
    toks = parse_tokens(a.tokens)
    m = Model(a.model)
    lg = m.forward(toks, m.new_cache(), a.mode, a.kv)
    lg.astype("<f4").tofile(a.out)
    print(f"{len(toks)} x {m.n_vocab} logits ({m.arch}, mode {a.mode}) -> {a.out}", file=sys.stderr)
    return 0


def greedy(m: Model, toks: list[int], n: int, mode: str, kv: str):
    cache = m.new_cache()
    lg = m.forward(toks, cache, mode, kv)
    rows = [lg]
    out = []
    for i in range(n):
        t = int(np.argmax(lg[-1]))
        out.append(t)
        if i + 1 < n:
            lg = m.forward([t], cache, mode, kv)
            rows.append(lg)
    return out, np.concatenate(rows)


def cmd_generate(a) -> int:
    toks = parse_tokens(a.tokens)
    m = Model(a.model)
    out, lg = greedy(m, toks, a.n, a.mode, a.kv)
    if a.logits:
        lg.astype("<f4").tofile(a.logits)
    print(",".join(map(str, out)))
    return 0


def cmd_i2s_dot(a) -> int:
    if a.raw:
        if a.rows is None or a.cols is None or len(a.args) != 2:
            raise UsageError("i2s-dot --raw W.bin --rows M --cols K X.f32 OUT_PREFIX")
        raw = np.fromfile(a.raw, dtype=np.uint8)
        m, k = a.rows, a.cols
        xfile, prefix = a.args
    else:
        if len(a.args) != 4:
            raise UsageError("i2s-dot MODEL TENSOR X.f32 OUT_PREFIX")
        model, name, xfile, prefix = a.args
        r = oracle.Reader(model)
        t = next((t for t in r.tensors if t.name == name), None)
        if t is None:
            print(f"{model}: no tensor named {name!r}", file=sys.stderr)
            return 1
        if int(t.tensor_type) != I2_S:
            print(f"{name}: type {oracle.type_name(int(t.tensor_type))}, not I2_S", file=sys.stderr)
            return 1
        m, k = _rows_cols(t)
        raw = t.data
    codes, wscale = i2s_codes(raw, m, k)
    x = np.fromfile(xfile, dtype="<f4")
    if x.size == 0 or x.size % k:
        print(f"{xfile}: {x.size} f32 values, not a positive multiple of K = {k}", file=sys.stderr)
        return 1
    res = i2s_matmul_exact(codes, wscale, x.reshape(-1, k))
    n = x.size // k
    for big in (res["dot"], res["isum"], res["qsum"]):
        assert np.abs(big).max(initial=0) < 2**31
    res["q"].astype(np.int8).tofile(prefix + ".q.i8")
    res["s"].astype("<f4").tofile(prefix + ".scale.f32")
    res["qsum"].astype("<i4").tofile(prefix + ".qsum.i32")
    res["dot"].astype("<i4").tofile(prefix + ".dot.i32")
    res["isum"].astype("<i4").tofile(prefix + ".isum.i32")
    res["y"].astype("<f4").tofile(prefix + ".y.f32")
    print(f"{n} {m} {k} {float(wscale)!r}")
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bitnet_ref.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("model")
        p.add_argument("--tokens", required=True, help="comma-separated token ids")
        p.add_argument("--mode", choices=("exact", "llama", "float"), default="exact")
        p.add_argument("--kv", choices=("f16", "f32"), default="f16")

    p = sub.add_parser("logits")
    common(p)
    p.add_argument("--out", required=True)
    p = sub.add_parser("generate")
    common(p)
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--logits")
    p = sub.add_parser("i2s-dot")
    p.add_argument("--raw")
    p.add_argument("--rows", type=int)
    p.add_argument("--cols", type=int)
    p.add_argument("args", nargs="*")
    try:
        a = ap.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    try:
        return {"logits": cmd_logits, "generate": cmd_generate, "i2s-dot": cmd_i2s_dot}[a.cmd](a)
    except UsageError as e:
        print(f"bitnet_ref.py: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError, KeyError) as e:
        print(f"bitnet_ref.py: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
