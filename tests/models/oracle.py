#!/usr/bin/env python3
"""gguf-py (llama.cpp's own Python GGUF code) as an independent oracle for our reader and
dequantizers. Run with the fixtures' venv (tests/models/venv.sh).

  oracle.py check-inspect MODEL OURS_JSON     compare `bitnet inspect --json` with GGUFReader
  oracle.py check-dequant MODEL DIR [--with-i2s]
                                              compare DIR/<tensor>.f32 with gguf-py's dequantize,
                                              bit for bit
  oracle.py quantize TYPE IN_F32 OUT_BIN      quantize raw f32 (rows of 256) with gguf-py
  oracle.py dequant MODEL TENSOR OUT_F32      write gguf-py's dequantization of one tensor
  oracle.py dump-json MODEL                   gguf-py's view of MODEL in our inspect JSON schema

Exit status 0 on agreement, 1 on differences, 2 on usage errors.

gguf-py does not know I2_S (type 36, Microsoft bitnet.cpp): the reader here is a subclass that
reads such tensors as raw bytes of size n/4 + 32 (a local hack, gguf-py itself is untouched).
gguf-py cannot dequantize I2_S, so check-dequant skips it unless --with-i2s asks for this
file's own numpy decoder of the layout in docs/formats.md.
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT
from gguf.gguf_reader import GGUFReader, ReaderTensor

I2_S = 36

# Types whose dequantization the oracle vouches for (gguf-py's numpy code).
DEQUANT_TYPES = (QT.F32, QT.F16, QT.BF16, QT.Q8_0, QT.Q6_K, QT.TQ1_0, QT.TQ2_0)
QUANTIZE_TYPES = ("TQ1_0", "TQ2_0", "Q8_0", "BF16")

TYPE_NAMES = {
    VT.UINT8: "u8", VT.INT8: "i8", VT.UINT16: "u16", VT.INT16: "i16", VT.UINT32: "u32",
    VT.INT32: "i32", VT.UINT64: "u64", VT.INT64: "i64", VT.FLOAT32: "f32", VT.FLOAT64: "f64",
    VT.BOOL: "bool", VT.STRING: "string", VT.ARRAY: "array",
}

MAX_REPORT = 40


class Reader(GGUFReader):
    """GGUFReader that also accepts I2_S tensors (type 36): n_bytes = n_elements/4 + 32.

    It also slices a plain ndarray view of the file's memmap instead of the memmap itself (the
    same bytes; np.memmap's per-slice overhead makes gguf-py take ~15 s on llama-bpe's 408k
    vocabulary strings)."""

    _dtypes: dict = {}

    def _get(self, offset, dtype, count=1, override_order=None):
        plain = self.__dict__.get("_plain")
        if plain is None:
            plain = self.__dict__["_plain"] = self.data.view(np.ndarray)
        order = self.byte_order if override_order is None else override_order
        dt = self._dtypes.get((dtype, order))
        if dt is None:
            dt = self._dtypes[(dtype, order)] = np.dtype(dtype).newbyteorder(order)
        count = int(count)
        return plain[offset:offset + dt.itemsize * count].view(dt)[:count]

    def _build_tensors(self, start_offs, fields):
        tensors, names = [], set()
        for field in fields:
            _nlen, name_data, _ndims, dims, raw_dtype, offset_tensor = field.parts
            name = str(bytes(name_data), encoding="utf-8")
            if name in names:
                raise ValueError(f"Found duplicated tensor with name {name}")
            names.add(name)
            if int(raw_dtype[0]) == I2_S:
                n_elems = int(np.prod(dims))
                n_bytes = n_elems // 4 + 32
                offs = int(start_offs + offset_tensor[0])
                tensors.append(ReaderTensor(
                    name=name, tensor_type=I2_S, shape=dims, n_elements=n_elems, n_bytes=n_bytes,
                    data_offset=offs, data=self._get(offs, np.uint8, n_bytes), field=field))
            else:
                super()._build_tensors(start_offs, [field])
                tensors.append(self.tensors[0])
        self.tensors = tensors



def report(header: str, items: list) -> None:
    """The header and the first MAX_REPORT items on stderr."""
    print(header, file=sys.stderr)
    for item in items[:MAX_REPORT]:
        print(f"  {item}", file=sys.stderr)
    if len(items) > MAX_REPORT:
        print(f"  ... and {len(items) - MAX_REPORT} more", file=sys.stderr)

def type_name(type_id: int) -> str:
    if type_id == I2_S:
        return "I2_S"
    try:
        return QT(type_id).name
    except ValueError:
        return f"TYPE_{type_id}"


# --------------------------------------------------------------------------------------------
# Metadata values from the reader's raw parts (strings as bytes, nested arrays kept nested)


def _parse_parts(parts, i: int, t: VT):
    if t == VT.STRING:
        return bytes(parts[i + 1]), i + 2
    if t == VT.ARRAY:
        it = VT(int(parts[i][0]))
        n = int(parts[i + 1][0])
        i += 2
        items = []
        if it not in (VT.STRING, VT.ARRAY):
            # n consecutive one-element parts
            items = [p[0] for p in parts[i:i + n]]
            return (it, items), i + n
        for _ in range(n):
            v, i = _parse_parts(parts, i, it)
            items.append(v)
        return (it, items), i
    return parts[i][0], i + 1


def file_metadata(reader: GGUFReader) -> list[tuple[str, VT, object]]:
    """[(key, type, value)] in file order. Arrays are (elem_type, [values]); strings bytes;
    numbers numpy scalars."""
    out = []
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        t = VT(int(field.parts[2][0]))
        v, end = _parse_parts(field.parts, 3, t)
        assert end == len(field.parts), key
        out.append((key, t, v))
    return out


def _json_float(x: float):
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _to_json(t: VT, v):
    if t == VT.STRING:
        return v.decode("utf-8", errors="replace")
    if t == VT.ARRAY:
        it, items = v
        return [_to_json(it, x) for x in items]
    if t in (VT.FLOAT32, VT.FLOAT64):
        return _json_float(float(v))
    if t == VT.BOOL:
        return bool(v)
    return int(v)


# --------------------------------------------------------------------------------------------
# Comparison of our values with the file's


def _as_float(v):
    if isinstance(v, str):
        return {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}.get(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def value_diff(t: VT, want, got, where: str) -> str | None:
    """None if `got` (our JSON) matches `want` (file value of type t), else a description."""
    if t == VT.STRING:
        s = want.decode("utf-8", errors="replace")
        if got != s:
            return f"{where}: string {got!r} != file {s!r}"
        return None
    if t == VT.BOOL:
        if not isinstance(got, bool) or got != bool(want):
            return f"{where}: bool {got!r} != file {bool(want)!r}"
        return None
    if t in (VT.FLOAT32, VT.FLOAT64):
        f = _as_float(got)
        if f is None:
            return f"{where}: {got!r} is not a float"
        if t == VT.FLOAT32:
            a = np.array([f]).astype(np.float32)
            b = np.array([want], dtype=np.float32)
        else:
            a = np.array([f], dtype=np.float64)
            b = np.array([want], dtype=np.float64)
        if np.isnan(b[0]) and np.isnan(a[0]):
            return None
        ib = a.view(np.uint32 if t == VT.FLOAT32 else np.uint64)
        fb = b.view(np.uint32 if t == VT.FLOAT32 else np.uint64)
        if ib[0] != fb[0]:
            return f"{where}: {TYPE_NAMES[t]} {got!r} != file {_json_float(float(want))!r}"
        return None
    if t == VT.ARRAY:
        it, items = want
        if not isinstance(got, list):
            return f"{where}: expected a list, got {type(got).__name__}"
        if len(got) != len(items):
            return f"{where}: array length {len(got)} != file {len(items)}"
        for i, (w, g) in enumerate(zip(items, got)):
            d = value_diff(it, w, g, f"{where}[{i}]")
            if d:
                return d
        return None
    # integers
    if isinstance(got, bool) or not isinstance(got, int) or got != int(want):
        return f"{where}: {TYPE_NAMES[t]} {got!r} != file {int(want)}"
    return None


def check_inspect(model: str, ours_json: str) -> int:
    with open(ours_json, "rb") as f:
        ours = json.load(f)
    r = Reader(model)
    diffs: list[str] = []

    def diff(msg):
        diffs.append(msg)

    # header
    version = int(r.fields["GGUF.version"].parts[0][0])
    for k, want in (("version", version), ("alignment", int(r.alignment)),
                    ("data_offset", int(r.data_offset)), ("file_size", os.path.getsize(model))):
        if ours.get(k) != want:
            diff(f"{k}: ours {ours.get(k)!r} != file {want}")

    # metadata: every key, in order, with its type and value
    meta = file_metadata(r)
    om = ours.get("metadata")
    if not isinstance(om, list):
        diff("metadata: missing or not a list")
        om = []
    if len(om) != len(meta):
        diff(f"metadata: ours has {len(om)} keys, file has {len(meta)}")
    for i, ((key, t, v), o) in enumerate(zip(meta, om)):
        if o.get("key") != key:
            diff(f"metadata[{i}]: key {o.get('key')!r} != file {key!r}")
            continue
        if o.get("type") != TYPE_NAMES[t]:
            diff(f"{key}: type {o.get('type')!r} != file {TYPE_NAMES[t]!r}")
            continue
        if t == VT.ARRAY and o.get("elem_type") != TYPE_NAMES[v[0]]:
            diff(f"{key}: elem_type {o.get('elem_type')!r} != file {TYPE_NAMES[v[0]]!r}")
            continue
        d = value_diff(t, v, o.get("value"), key)
        if d:
            diff(d)

    # tensors: count, order, and per tensor name, type, shape, offsets, sizes
    ot = ours.get("tensors")
    if not isinstance(ot, list):
        diff("tensors: missing or not a list")
        ot = []
    if len(ot) != len(r.tensors):
        diff(f"tensors: ours has {len(ot)}, file has {len(r.tensors)}")
    names_file = [t.name for t in r.tensors]
    names_ours = [t.get("name") for t in ot]
    if names_ours != names_file and sorted(map(str, names_ours)) == sorted(names_file):
        diff("tensors: same names but not in file order")
    by_name = {t.get("name"): t for t in ot}
    for t in r.tensors:
        o = by_name.get(t.name)
        if o is None:
            diff(f"tensor {t.name}: missing from ours")
            continue
        tid = int(t.tensor_type)
        want = {
            "type_id": tid,
            "type": type_name(tid),
            "shape": [int(x) for x in t.shape],
            "n_elements": int(t.n_elements),
            "n_bytes": int(t.n_bytes),
            "file_offset": int(t.data_offset),
            "offset": int(t.data_offset) - int(r.data_offset),
        }
        for k, w in want.items():
            if o.get(k) != w:
                diff(f"tensor {t.name}: {k} ours {o.get(k)!r} != file {w!r}")
    for n in names_ours:
        if n not in set(names_file):
            diff(f"tensor {n}: in ours but not in the file")

    if diffs:
        report(f"{model}: {len(diffs)} difference(s) between {ours_json} and gguf-py:", diffs)
        return 1
    print(f"ok: {len(meta)} keys, {len(r.tensors)} tensors")
    return 0


# --------------------------------------------------------------------------------------------
# Dequantization


def dequant_i2_s(t) -> np.ndarray:
    """I2_S per docs/formats.md: blocks of 128 values in 32 bytes; byte b holds elements
    b, b+32, b+64, b+96 in bits 7:6, 5:4, 3:2, 1:0; code c -> (c - 1) * scale; the f32 scale is
    the first 4 bytes of the 32-byte tail."""
    n = int(t.n_elements)
    raw = np.asarray(t.data, dtype=np.uint8).reshape(-1)
    body = raw[:n // 4].reshape(-1, 32)
    scale = raw[n // 4:n // 4 + 4].copy().view("<f4")[0]
    parts = [(body >> np.uint8(s)) & np.uint8(3) for s in (6, 4, 2, 0)]
    codes = np.stack(parts, axis=1).reshape(-1)  # per block: 32 of each quarter, in order
    return (codes.astype(np.float32) - np.float32(1)) * np.float32(scale)


def oracle_dequant(t) -> np.ndarray:
    if int(t.tensor_type) == I2_S:
        return dequant_i2_s(t)
    return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(-1)


def check_dequant(model: str, outdir: str, with_i2s: bool) -> int:
    r = Reader(model)
    ok, skipped, errors = 0, [], []
    for t in r.tensors:
        tid = int(t.tensor_type)
        if not (tid in [int(x) for x in DEQUANT_TYPES] or (with_i2s and tid == I2_S)):
            skipped.append(f"{t.name} ({type_name(tid)})")
            continue
        path = Path(outdir) / (t.name + ".f32")
        if not path.is_file():
            errors.append(f"{t.name} ({type_name(tid)}): missing {path}")
            continue
        got = np.fromfile(path, dtype="<u4")
        want = np.ascontiguousarray(oracle_dequant(t).astype("<f4", copy=False)).view("<u4")
        if got.size != want.size:
            errors.append(f"{t.name} ({type_name(tid)}): {got.size} values in {path.name}, expected {want.size}")
            continue
        bad = np.nonzero(got != want)[0]
        if bad.size:
            i = int(bad[0])
            g, w = got[i:i + 1].view("<f4")[0], want[i:i + 1].view("<f4")[0]
            errors.append(f"{t.name} ({type_name(tid)}): {bad.size}/{want.size} values differ; "
                          f"first at {i}: ours {float(g)!r} (0x{int(got[i]):08x}) != oracle {float(w)!r} (0x{int(want[i]):08x})")
            continue
        ok += 1
    sk = ", ".join(skipped) if skipped else "none"
    if errors:
        report(f"{model}: {len(errors)} tensor(s) differ from gguf-py ({ok} bit-identical):", errors)
        print(f"  (skipped: {sk})", file=sys.stderr)
        return 1
    print(f"ok: {ok} tensors bit-identical (skipped: {sk})")
    return 0


def dequant_one(model: str, name: str, out: str) -> int:
    r = Reader(model)
    for t in r.tensors:
        if t.name == name:
            tid = int(t.tensor_type)
            if tid not in [int(x) for x in DEQUANT_TYPES] + [I2_S]:
                print(f"{name}: the oracle does not dequantize {type_name(tid)}", file=sys.stderr)
                return 1
            oracle_dequant(t).astype("<f4").tofile(out)
            return 0
    print(f"{model}: no tensor named {name!r}", file=sys.stderr)
    return 1


def quantize(tname: str, inp: str, out: str) -> int:
    tname = tname.upper()
    if tname not in QUANTIZE_TYPES:
        print(f"quantize: TYPE must be one of {', '.join(QUANTIZE_TYPES)}", file=sys.stderr)
        return 2
    x = np.fromfile(inp, dtype="<f4")
    if x.size == 0 or x.size % 256:
        print(f"quantize: {inp} holds {x.size} f32 values, not a positive multiple of 256", file=sys.stderr)
        return 1
    q = gguf.quants.quantize(x.reshape(-1, 256).astype(np.float32), QT[tname])
    np.ascontiguousarray(q).view(np.uint8).tofile(out)
    return 0


def dump_json(model: str) -> int:
    r = Reader(model)
    meta = []
    for key, t, v in file_metadata(r):
        e = {"key": key, "type": TYPE_NAMES[t], "value": _to_json(t, v)}
        if t == VT.ARRAY:
            e["elem_type"] = TYPE_NAMES[v[0]]
        meta.append(e)
    doc = {
        "file": model, "version": int(r.fields["GGUF.version"].parts[0][0]),
        "alignment": int(r.alignment), "data_offset": int(r.data_offset),
        "file_size": os.path.getsize(model), "metadata": meta,
        "tensors": [{
            "name": t.name, "type": type_name(int(t.tensor_type)), "type_id": int(t.tensor_type),
            "shape": [int(x) for x in t.shape], "n_elements": int(t.n_elements),
            "offset": int(t.data_offset) - int(r.data_offset), "file_offset": int(t.data_offset),
            "n_bytes": int(t.n_bytes)} for t in r.tensors],
    }
    json.dump(doc, sys.stdout, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")
    return 0


USAGE = __doc__.split("\n\n")[1]


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print(USAGE, file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "check-inspect" and len(rest) == 2:
        return check_inspect(*rest)
    if cmd == "check-dequant" and len(rest) in (2, 3):
        with_i2s = "--with-i2s" in rest
        rest = [a for a in rest if a != "--with-i2s"]
        if len(rest) == 2:
            return check_dequant(rest[0], rest[1], with_i2s)
    if cmd == "quantize" and len(rest) == 3:
        return quantize(*rest)
    if cmd == "dequant" and len(rest) == 3:
        return dequant_one(*rest)
    if cmd == "dump-json" and len(rest) == 1:
        return dump_json(rest[0])
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
