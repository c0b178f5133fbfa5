#!/usr/bin/env bash
# Which ternary output type runs fastest in our engine, per architecture (the measurement behind
# `bitnet convert`'s default type, docs/convert.md): decode (tg) and prefill (pp) speed of the
# 2B-4T-shaped synthetic files, one per (arch, type) with the same weights, interleaved: each
# round runs `bitnet bench -r 3` on every file in turn (a new order each round), so all types see
# the same machine load. Prints every round, then the medians and the load average.
#
#   bash benches/out_types.sh [ROUNDS]     (default 5, 0: only make the files; env THREADS (2),
#                                          P (128), N (64), BITNET)
#   CPU_TIME=1 [FIRST=3] N=8 bash benches/out_types.sh [ROUNDS]
#                                          (CPU time per decoded token instead, see below;
#                                          FIRST=3: only the three `bitnet` files)
#
# Files: tests/models/prepare.sh --shape 2b4t writes bitnet-b1.58 I2_S / TQ2_0 and bitnet TQ2_0 /
# TQ1_0; the two it does not (bitnet-b1.58 TQ1_0, bitnet I2_S, about 2.3 GB) are made here once
# by the same generator with the same weights, into $BITNET_CACHE_DIR/models/2b4t-types.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}" threads="${THREADS:-2}" p="${P:-128}" n="${N:-64}"
bitnet="${BITNET:-${CARGO_TARGET_DIR:-target}/release/bitnet}"
[[ -x "$bitnet" ]] || { echo "no $bitnet: cargo build --release first" >&2; exit 1; }
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"

prep="$(bash tests/models/prepare.sh --shape 2b4t)"
py="$(sed -n 's/^venv_python=//p' <<<"$prep")"
sdist="$(sed -n 's/^sdist=//p' <<<"$prep")"
models="$(sed -n 's/^models=//p' <<<"$prep")"
extra="$cache/models/2b4t-types"
mkdir -p "$extra"
# Keyed like prepare.sh's models: regenerated when the generator changes.
key="$(sha256sum tests/models/gen_models.py | cut -d' ' -f1)"
if [[ "$(cat "$extra/.key" 2>/dev/null)" != "$key" ]]; then
    rm -f "$extra"/*.gguf "$extra/.key"
    PYTHONPATH=tests/models "$py" - "$sdist" "$extra" <<'PY'
import sys
from pathlib import Path
import gen_models as g

sdist, out = Path(sys.argv[1]), Path(sys.argv[2])
hp = dict(g.SHAPES["2b4t"], rope_freq_base_b158=500000.0, rope_freq_base_bitnet=500000.0)
emb = g.EmbCache()
for name, arch, group, wt in [("bitnet-b1.58-tq1_0", "bitnet-b1.58", "bitnet-b1.58", "TQ1_0"),
                              ("bitnet-bpe-i2_s", "bitnet", "bitnet-bpe", "I2_S")]:
    spec = dict(name=name, kind="model", arch=arch, group=group, vocab="llama-bpe",
                weight_type=wt, token_embd_type="F16", has_scale_tensors=False)
    tmp = out / ".tmp"
    tmp.mkdir(exist_ok=True)
    g.gen_model(spec, hp, 1234, sdist, tmp, emb, verify=False)
    (tmp / f"{name}.gguf").rename(out / f"{name}.gguf")
    g.log(f"{name}.gguf written")
PY
    echo "$key" >"$extra/.key"
fi
[[ "$rounds" -gt 0 ]] || exit 0  # 0 rounds: only make the files

files=(
    "$models/bitnet-b1.58-i2_s.gguf" "$models/bitnet-b1.58-tq2_0.gguf" "$extra/bitnet-b1.58-tq1_0.gguf"
    "$extra/bitnet-bpe-i2_s.gguf" "$models/bitnet-bpe-tq2_0.gguf" "$models/bitnet-bpe-tq1_0.gguf"
)
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

if [[ -n "${CPU_TIME:-}" ]]; then
    # On a machine too loaded for wall-clock speeds: the CPU time one decoded token costs, one
    # thread, from two runs that differ only in the number of tokens (-n N vs -n 5N, -p 0), so
    # loading and repacking cancel out. Contention changes it far less than it changes tok/s.
    files=("${files[@]:${FIRST:-0}}")
    cpu() { /usr/bin/time -f "%U %S" "$bitnet" bench -m "$1" -t 1 -p 0 -n "$2" -r 1 --json 2>&1 >/dev/null |
        tail -1 | python3 -c 'import sys; u, s = sys.stdin.read().split(); print(f"{float(u) + float(s):.2f}")'; }
    for r in $(seq 1 "$rounds"); do
        for i in $(seq 0 $((${#files[@]} - 1))); do
            f="${files[$(((i + r) % ${#files[@]}))]}"
            a="$(cpu "$f" "$n")" b="$(cpu "$f" $((5 * n)))" load="$(cut -d' ' -f1 /proc/loadavg)"
            ms="$(python3 -c "print(f'{($b - $a) / (4 * $n) * 1000:.1f}')")"
            echo "$r $(basename "$f" .gguf) $load $ms" >>"$out"
            echo "round $r: $(basename "$f" .gguf): $ms ms CPU per decoded token (runs: $a s, $b s), load $load"
        done
    done
    python3 - "$out" <<'PY'
import statistics, sys
from collections import defaultdict
ms, loads = defaultdict(list), []
for line in open(sys.argv[1]):
    r, name, load, v = line.split()
    ms[name].append(float(v)); loads.append(float(load))
print(f"medians (load average: median {statistics.median(loads):.2f}, min {min(loads):.2f}, max {max(loads):.2f}):")
for name, v in ms.items():
    print(f"  {name:20s} {statistics.median(v):6.1f} ms CPU per decoded token ({min(v):.1f}-{max(v):.1f})")
PY
    exit 0
fi
for r in $(seq 1 "$rounds"); do
    # a rotated order each round, so no type always runs first or after the same neighbour
    for i in $(seq 0 $((${#files[@]} - 1))); do
        f="${files[$(((i + r) % ${#files[@]}))]}"
        j="$("$bitnet" bench -m "$f" -t "$threads" -p "$p" -n "$n" -r 3 --json)"
        load="$(cut -d' ' -f1 /proc/loadavg)"
        echo "$r $(basename "$f" .gguf) $load $j" >>"$out"
        echo "round $r: $(basename "$f" .gguf): $(python3 -c "import json,sys; j=json.loads(sys.argv[1]); print(f\"pp$p {j['pp${p}_tok_s']:.2f} tok/s, tg$n {j['tg${n}_tok_s']:.2f} tok/s\")" "$j"), load $load"
    done
done
python3 - "$out" "$p" "$n" <<'PY'
import json, statistics, sys
from collections import defaultdict
path, p, n = sys.argv[1], sys.argv[2], sys.argv[3]
pp, tg, loads = defaultdict(list), defaultdict(list), []
for line in open(path):
    r, name, load, j = line.split(" ", 3)
    j = json.loads(j)
    pp[name].append(j[f"pp{p}_tok_s"]); tg[name].append(j[f"tg{n}_tok_s"]); loads.append(float(load))
print(f"medians over {len(next(iter(pp.values())))} rounds (load average while measuring: "
      f"median {statistics.median(loads):.2f}, min {min(loads):.2f}, max {max(loads):.2f}):")
for name in pp:
    a, b = pp[name], tg[name]
    print(f"  {name:20s} pp{p} {statistics.median(a):7.2f} tok/s ({min(a):.2f}-{max(a):.2f})   "
          f"tg{n} {statistics.median(b):6.2f} tok/s ({min(b):.2f}-{max(b):.2f})")
PY
