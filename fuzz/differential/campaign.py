#!/usr/bin/env python3
"""Differential loading campaign: random mutations of fixture models, each loaded (and, when it
loads, decoded for two tokens) by our libllama and by the C++ reference, each in its own process
(probe.c), so a crash of either library ends one probe, never the campaign.

    python3 fuzz/differential/campaign.py --n 3000 [--seed 1] [--jobs 2] [--out DIR] [--models DIR]

Needs target/release/libllama.so (cargo build --release) and the reference
(cpp_ref/build.sh); the models default to the fixture set (tests/models/prepare.sh). Prints a
summary and writes DIR/summary.json; DIR/keep/ holds one input per class of disagreement or
crash (with the mutation that made it in DIR/keep/*.txt). Exits 1 when our library crashed or
hung on any input.
"""
import argparse
import collections
import concurrent.futures as cf
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("BITNET_CACHE_DIR") or os.path.expanduser("~/.cache/bitnet-rs")
# Small fixtures of each weight type the reference can read (it has no I2_S or bitnet-b1.58).
BASES = ["bitnet-spm-f16.gguf", "bitnet-spm-tq2_0.gguf", "bitnet-spm-tq1_0.gguf",
         "bitnet-spm-q8_0.gguf", "bitnet-spm-f32-noscale.gguf"]
INTERESTING = [0, 1, 2, 3, 7, 8, 31, 32, 255, 256, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 0xFFFFFFFE, 1 << 32, 1 << 40, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]


def header_len(data):
    """Bytes before the first tensor's data (the metadata and tensor infos, padded)."""
    pos = 4 + 4
    n_tensors, n_kv = struct.unpack_from("<QQ", data, pos)
    pos += 16

    def string(p):
        (n,) = struct.unpack_from("<Q", data, p)
        return p + 8 + n

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def value(p, ty):
        if ty == 8:
            return string(p)
        if ty == 9:
            sub, n = struct.unpack_from("<IQ", data, p)
            p += 12
            for _ in range(n):
                p = value(p, sub)
            return p
        return p + sizes[ty]

    for _ in range(n_kv):
        pos = string(pos)
        (ty,) = struct.unpack_from("<I", data, pos)
        pos = value(pos + 4, ty)
    for _ in range(n_tensors):
        pos = string(pos)
        (n_dims,) = struct.unpack_from("<I", data, pos)
        pos += 4 + 8 * n_dims + 4 + 8
    return (pos + 31) // 32 * 32


def mutate(rng, data, head):
    """1 to 3 random edits, mostly inside the header; returns (bytes, description)."""
    data = bytearray(data)
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        limit = head if rng.random() < 0.7 else len(data)
        off = rng.randrange(min(limit, len(data)))
        kind = rng.choice(["flip", "byte", "int32", "int64", "truncate", "delete", "insert"])
        if kind == "flip":
            data[off] ^= 1 << rng.randrange(8)
        elif kind == "byte":
            data[off] = rng.randrange(256)
        elif kind in ("int32", "int64"):
            width = 4 if kind == "int32" else 8
            v = rng.choice(INTERESTING) & ((1 << (8 * width)) - 1)
            data[off:off + width] = v.to_bytes(width, "little")
        elif kind == "truncate":
            del data[off:]
        elif kind == "delete":
            del data[off:off + rng.randint(1, 16)]
        else:
            data[off:off] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        done.append(f"{kind}@{off}")
        if not data:
            break
    return bytes(data), " ".join(done)


def probe(probe_bin, lib_dir, path):
    env = dict(os.environ, LD_LIBRARY_PATH=lib_dir)
    try:
        p = subprocess.run([probe_bin, path], env=env, capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return {"state": "hang", "err": ""}
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        return {"state": f"crash({p.returncode})", "err": err[-2000:]}
    out = p.stdout.decode().strip()
    if out == "load=fail":
        state = "refused"
    elif out == "load=ok ctx=fail":
        state = "no-context"
    elif out == "load=ok ctx=ok decode=0 finite=1":
        state = "runs"
    else:
        state = "decode-failed"
    return {"state": state, "err": err[-2000:], "out": out}


def error_class(err):
    """Our refusal's reason with numbers and quoted names blanked: one class per kind of damage."""
    lines = [l for l in err.splitlines() if l.strip()]
    line = lines[-1] if lines else "(no message)"
    for l in lines:
        if "llama_model_load_from_file" in l:
            line = l
            break
    line = re.sub(r"/\S+", "FILE", line)
    line = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", line)
    return re.sub(r"-?\d+(\.\d+)?", "N", line)[:200]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(CACHE, "differential"))
    ap.add_argument("--models", default=os.path.join(CACHE, "models/tiny"))
    args = ap.parse_args()

    ours = os.path.join(REPO, "target/release")
    ref = os.path.join(CACHE, "cpp_ref/dist/lib")
    for lib in (ours, ref):
        if not os.path.exists(os.path.join(lib, "libllama.so.0")):
            sys.exit(f"campaign: {lib}/libllama.so.0 missing (cargo build --release; cpp_ref/build.sh)")
    os.makedirs(args.out, exist_ok=True)
    keep = os.path.join(args.out, "keep")
    shutil.rmtree(keep, ignore_errors=True)
    os.makedirs(keep)
    probe_bin = os.path.join(args.out, "probe")
    subprocess.run(["cc", "-O1", "-Wall", "-o", probe_bin, os.path.join(REPO, "fuzz/differential/probe.c"),
                    "-I", os.path.join(REPO, "include"), "-L", ours, "-lllama", "-lm"], check=True)

    bases = []
    for name in BASES:
        with open(os.path.join(args.models, name), "rb") as f:
            data = f.read()
        bases.append((name, data, header_len(data)))
    scratch = tempfile.mkdtemp(prefix="bitnet-diff-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)

    def one(i):
        rng = random.Random(args.seed * 1_000_003 + i)
        name, data, head = bases[rng.randrange(len(bases))]
        mutated, how = mutate(rng, data, head)
        path = os.path.join(scratch, f"m{i}.gguf")
        with open(path, "wb") as f:
            f.write(mutated)
        a, b = probe(probe_bin, ours, path), probe(probe_bin, ref, path)
        return i, name, how, path, a, b

    pairs = collections.Counter()
    classes = collections.defaultdict(list)
    crashes_ours, crashes_ref = [], []
    kept = set()

    def keep_file(tag, i, name, how, path, a, b):
        if tag in kept:
            return
        kept.add(tag)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", tag)[:60]
        shutil.copy(path, os.path.join(keep, f"{slug}.gguf"))
        with open(os.path.join(keep, f"{slug}.txt"), "w") as f:
            f.write(f"input {i}: {name} {how}\nours: {a}\nreference: {b}\n")

    with cf.ThreadPoolExecutor(args.jobs) as pool:
        for n_done, (i, name, how, path, a, b) in enumerate(pool.map(one, range(args.n)), 1):
            pairs[(a["state"], b["state"])] += 1
            if a["state"].startswith(("crash", "hang")):
                crashes_ours.append((i, name, how, a))
                keep_file(f"ours-{a['state']}-{i}", i, name, how, path, a, b)
            if b["state"].startswith(("crash", "hang")):
                crashes_ref.append((i, name, how))
            if b["state"] == "runs" and a["state"] != "runs":
                c = error_class(a["err"])
                classes[c].append(f"{i}: {name} {how}")
                keep_file(c, i, name, how, path, a, b)
            os.unlink(path)
            if n_done % 100 == 0:
                print(f"campaign: {n_done}/{args.n}", file=sys.stderr, flush=True)
    shutil.rmtree(scratch, ignore_errors=True)

    summary = {
        "n": args.n,
        "seed": args.seed,
        "bases": BASES,
        "outcomes (ours, reference)": {f"{a} / {b}": n for (a, b), n in sorted(pairs.items())},
        "crashes_ours": [f"{i}: {n} {h}: {a['state']}" for i, n, h, a in crashes_ours],
        "crashes_reference": len(crashes_ref),
        "reference_runs_ours_not": {c: {"count": len(v), "examples": v[:3]} for c, v in classes.items()},
    }
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))
    sys.exit(1 if crashes_ours else 0)


if __name__ == "__main__":
    main()
