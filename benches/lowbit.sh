#!/usr/bin/env bash
# Q2_0 / Q1_0 (Bonsai types) speed: our `bitnet bench` against the reference's llama-bench on the
# same synthetic `bitnet`-architecture files (examples/lowbit_model.rs: Q2_0 or Q1_0 projections,
# F16 tied embedding/head, 32000-piece vocabulary) at BitNet 2B-4T's shape and at Qwen3-1.7B's
# and Qwen3-8B's matrix sizes. Interleaved rounds: each round runs, per file (a rotated order each round), ours
# then the reference (alternating which goes first), so both see the same machine load. Prints
# every run, then the medians: prefill pp$P and decode tg$N tok/s of each side, the median of the
# per-round ratios, and
# our decode's bandwidth share (bytes a decode step reads / the read bandwidth `bitnet bench`
# measures, times tok/s), with the load average while measuring.
#
#   bash benches/lowbit.sh [ROUNDS]     (default 3; 0: only make the files)
#   env: THREADS (2), P (128), N (32), SHAPES ("2b4t 1.7b 8b"), TYPES ("q2_0 q1_0"), BITNET,
#        FILES (space-separated GGUF paths to measure instead of the generated files, e.g. the
#        qwen3 files of `tests/models/prepare.sh --shape 1.7b` / `--shape 8b`)
#
# Files go to $BITNET_CACHE_DIR/models/lowbit (Q1_0 / Q2_0: 2b4t 0.5 / 0.8 GB, 1.7b 0.3 /
# 0.5 GB, 8b 1.3 / 2.3 GB), remade when the generator changes.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}" threads="${THREADS:-2}" p="${P:-128}" n="${N:-32}"
shapes="${SHAPES:-2b4t 1.7b 8b}" types="${TYPES:-q2_0 q1_0}"
bitnet="${BITNET:-${CARGO_TARGET_DIR:-target}/release/bitnet}"
gen="${CARGO_TARGET_DIR:-target}/release/examples/lowbit_model"
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"
ref="$cache/cpp_ref/dist"
[[ -x "$bitnet" ]] || { echo "no $bitnet: cargo build --release first" >&2; exit 1; }
[[ -x "$ref/bin/llama-bench" ]] || { echo "no $ref/bin/llama-bench: bash cpp_ref/build.sh" >&2; exit 1; }
cargo build --release --example lowbit_model >&2

dir="$cache/models/lowbit"
mkdir -p "$dir"
key="$(sha256sum examples/lowbit_model.rs | cut -d' ' -f1)"
if [[ "$(cat "$dir/.key" 2>/dev/null)" != "$key" ]]; then
    rm -f "$dir"/*.gguf "$dir/.key"
fi
files=()
[[ -n "${FILES:-}" ]] && { read -r -a files <<<"$FILES"; shapes=""; }
for s in $shapes; do
    for t in $types; do
        f="$dir/bitnet-$s-$t.gguf"
        [[ -s "$f" ]] || "$gen" "$f" --type "$t" --shape "$s" >&2
        files+=("$f")
    done
done
echo "$key" >"$dir/.key"
[[ "$rounds" -gt 0 ]] || exit 0

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
ours() {
    "$bitnet" bench -m "$1" -t "$threads" -p "$p" -n "$n" -r 1 --json
}
theirs() {
    LD_LIBRARY_PATH="$ref/lib" "$ref/bin/llama-bench" -m "$1" -t "$threads" -p "$p" -n "$n" -r 1 -o json 2>/dev/null |
        python3 -c 'import json, sys
rows = json.load(sys.stdin)
print(json.dumps({("pp%d" % r["n_prompt"]) if r["n_prompt"] else ("tg%d" % r["n_gen"]): r["avg_ts"] for r in rows}))'
}
for r in $(seq 1 "$rounds"); do
    for i in $(seq 0 $((${#files[@]} - 1))); do
        f="${files[$(((i + r) % ${#files[@]}))]}"
        name="$(basename "$f" .gguf)"
        [[ -z "${FILES:-}" ]] || name="$(basename "$(dirname "$f")")/$name"
        if ((r % 2)); then a="$(ours "$f")"; b="$(theirs "$f")"; else b="$(theirs "$f")"; a="$(ours "$f")"; fi
        load="$(cut -d' ' -f1 /proc/loadavg)"
        echo "$r $name $load $a" >>"$out.ours"
        echo "$r $name $load $b" >>"$out.ref"
        echo "round $r $name (load $load): ours $(python3 -c "import json,sys; j=json.loads(sys.argv[1]); print(f\"pp$p {j['pp${p}_tok_s']:.2f} tg$n {j['tg${n}_tok_s']:.2f} share {j['bandwidth_share']:.3f}\")" "$a"), reference $b"
    done
done
python3 - "$out" "$p" "$n" "$threads" <<'PY'
import json, statistics as st, sys
from collections import defaultdict
path, p, n, threads = sys.argv[1:5]
ours, ref, loads = defaultdict(list), defaultdict(list), []
for side, d in (("ours", ours), ("ref", ref)):
    for line in open(f"{path}.{side}"):
        r, name, load, j = line.split(" ", 3)
        d[name].append(json.loads(j)); loads.append(float(load))
med = lambda v: st.median(v)
print(f"medians over {len(next(iter(ours.values())))} rounds, {threads} threads (load average while measuring: "
      f"median {med(loads):.2f}, min {min(loads):.2f}, max {max(loads):.2f}):")
print(f"| file | ours pp{p} | ref pp{p} | pp ratio | ours tg{n} | ref tg{n} | tg ratio | our bandwidth share |")
print("|---|---|---|---|---|---|---|---|")
# Ratios: the median of the per-round ratios (each round runs both sides back to back, so
# they share the machine's state), not the ratio of the two medians.
for name in ours:
    opp = med([j[f"pp{p}_tok_s"] for j in ours[name]]); otg = med([j[f"tg{n}_tok_s"] for j in ours[name]])
    rpp = med([j[f"pp{p}"] for j in ref[name]]); rtg = med([j[f"tg{n}"] for j in ref[name]])
    ppr = med([a[f"pp{p}_tok_s"] / b[f"pp{p}"] for a, b in zip(ours[name], ref[name])])
    tgr = med([a[f"tg{n}_tok_s"] / b[f"tg{n}"] for a, b in zip(ours[name], ref[name])])
    share = med([j["bandwidth_share"] for j in ours[name]])
    print(f"| {name} | {opp:.2f} | {rpp:.2f} | {ppr:.2f}x | {otg:.2f} | {rtg:.2f} | {tgr:.2f}x | {share:.2f} |")
PY
rm -f "$out.ours" "$out.ref"
