#!/usr/bin/env bash
# Our `bitnet bench` against the reference's llama-bench on the same 2B-4T-shaped files, in one
# go, same thread count, and the ratios (medians of REPS repetitions each).
#
#   bash benches/compare_reference.sh [THREADS] [REPS]      (defaults: 2 threads, 3 reps)
#
# Env: BITNET (our binary, default target/release/bitnet), BITNET_CACHE_DIR (models and the
# reference build, default ~/.cache/bitnet-rs), OUT (write the combined JSON there too),
# RESULTS (keep each run's JSON in this folder; runs whose JSON is already there are reused).
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
reps="${2:-3}"
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"
models="$cache/models/2b4t"
ref="$cache/cpp_ref/dist"
bitnet="${BITNET:-${CARGO_TARGET_DIR:-target}/release/bitnet}"
[[ -x "$bitnet" ]] || { echo "no $bitnet: cargo build --release first" >&2; exit 1; }
[[ -x "$ref/bin/llama-bench" ]] || { echo "no $ref/bin/llama-bench: bash cpp_ref/build.sh" >&2; exit 1; }

if [[ -n "${RESULTS:-}" ]]; then
    tmp="$RESULTS"
    mkdir -p "$tmp"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
fi

ref_bench() { # name file
    [[ -s "$tmp/ref-$1.json" ]] && return 0
    LD_LIBRARY_PATH="$ref/lib" "$ref/bin/llama-bench" -m "$2" -t "$threads" -p 128,512 -n 64 \
        -r "$reps" -o json >"$tmp/ref-$1.json" 2>"$tmp/ref-$1.log" ||
        { cat "$tmp/ref-$1.log" >&2; exit 1; }
}
our_bench() { # name file [args]
    local name="$1" file="$2"
    shift 2
    [[ -s "$tmp/our-$name.json" ]] && return 0
    "$bitnet" bench -m "$file" -t "$threads" -p 128,512 -n 64 -r "$reps" --json "$@" >"$tmp/our-$name.json"
}

echo "compare: llama-bench and bitnet bench, $threads threads, $reps reps" >&2
ref_bench tq2_0 "$models/bitnet-bpe-tq2_0.gguf"
ref_bench tq1_0 "$models/bitnet-bpe-tq1_0.gguf"
our_bench tq2_0 "$models/bitnet-bpe-tq2_0.gguf"
our_bench tq2_0-q8head "$models/bitnet-bpe-tq2_0.gguf" --head q8_0
our_bench tq1_0 "$models/bitnet-bpe-tq1_0.gguf"
our_bench i2_s "$models/bitnet-b1.58-i2_s.gguf"

python3 - "$tmp" "$threads" "${OUT:-}" <<'EOF'
import json, statistics, sys
tmp, threads, out = sys.argv[1], sys.argv[2], sys.argv[3]

def ref(name):
    rows = json.load(open(f"{tmp}/ref-{name}.json"))
    got = {}
    for r in rows:
        key = f"pp{r['n_prompt']}" if r["n_prompt"] > 0 else "tg64"
        got[key] = statistics.median(r.get("samples_ts") or [r["avg_ts"]])
    return got

def ours(name):
    return json.load(open(f"{tmp}/our-{name}.json"))

r2, r1 = ref("tq2_0"), ref("tq1_0")
rows = []
for name, label in [("tq2_0", "TQ2_0, F16 head"), ("tq2_0-q8head", "TQ2_0, Q8_0 head"),
                    ("tq1_0", "TQ1_0, F16 head"), ("i2_s", "I2_S (b1.58), F16 head")]:
    o = ours(name)
    rows.append((label, o))
print(f"| {threads} threads | pp128 tok/s | pp512 tok/s | tg64 tok/s | pp128 / llama TQ2_0 | pp512 / llama TQ2_0 | tg64 / llama TQ2_0 | tg64 / llama TQ1_0 | load to 1st token s | peak RSS MB | bw share |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
print(f"| llama.cpp TQ2_0 | {r2['pp128']:.2f} | {r2['pp512']:.2f} | {r2['tg64']:.2f} | 1.00 | 1.00 | 1.00 | | | | |")
print(f"| llama.cpp TQ1_0 | {r1['pp128']:.2f} | {r1['pp512']:.2f} | {r1['tg64']:.2f} | {r1['pp128']/r2['pp128']:.2f} | "
      f"{r1['pp512']/r2['pp512']:.2f} | {r1['tg64']/r2['tg64']:.2f} | 1.00 | | | |")
for label, o in rows:
    pp, pp5, tg = o["pp128_tok_s"], o["pp512_tok_s"], o["tg64_tok_s"]
    print(f"| ours {label} | {pp:.2f} | {pp5:.2f} | {tg:.2f} | {pp/r2['pp128']:.2f} | {pp5/r2['pp512']:.2f} | "
          f"{tg/r2['tg64']:.2f} | {tg/r1['tg64']:.2f} | {o['load_to_first_token_s']:.2f} | "
          f"{o['peak_rss_bytes']/1e6:.0f} | {o['bandwidth_share']:.2f} |")
extra = [o for l, o in rows if "head_cosine_vs_f16" in o]
for o in extra:
    print(f"\nQ8_0 head vs F16 head: mean cosine {o['head_cosine_vs_f16']}, top-1 agreement {o['head_top1_vs_f16']}")
print(f"\nread bandwidth measured by bitnet bench: {rows[0][1]['read_bandwidth_gb_s']} GB/s")
if out:
    json.dump({"threads": int(threads), "llama_tq2_0": r2, "llama_tq1_0": r1,
               "ours": {l: o for l, o in rows}}, open(out, "w"), indent=1)
EOF
