#!/usr/bin/env bash
# Parallel-sequence throughput: llama.cpp's own llama-batched-bench (cpp_ref/build_tools.sh),
# unchanged, run on the reference libllama and on ours (only libllama.so.0 swapped, through
# LD_LIBRARY_PATH) in alternating order, ROUNDS rounds per file; medians per sequence count.
#
#   bash benches/batched_bench.sh [--rounds N] [--out FILE.json] [--npl 1,2,4,8] [FILE.gguf ...]
#
# Default files: the 2B-4T-shaped fixtures (tests/models/prepare.sh --shape 2b4t) the reference
# can load (bitnet-bpe-tq2_0, bitnet-bpe-tq1_0), plus bitnet-b1.58-i2_s on ours alone (the
# reference refuses that architecture). Each run:
#   llama-batched-bench -m FILE -c 2048 -b 2048 -ub 512 -npp 128 -ntg 64 -npl 1,2,4,8 -t 2
# Writes the JSON (every run's rows, the medians, the ratios) to --out (default
# target/batched_bench.json) and prints a Markdown table of the medians: aggregate decode speed
# S_TG (tokens/s summed over the sequences), ours/reference, and ours at N sequences over ours at 1.
#
# Env: BITNET_CACHE_DIR, THREADS (2), NPP (128), NTG (64), LLAMA_BATCHED_BENCH (the binary;
# default: cpp_ref/build_tools.sh's). Needs `cargo build --release` (our
# target/release/libllama.so.0) and cpp_ref/build_tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"
rounds=3
out="${CARGO_TARGET_DIR:-target}/batched_bench.json"
npl="1,2,4,8"
files=()
while (($#)); do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --npl) npl="$2"; shift 2 ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        *) files+=("$1"); shift ;;
    esac
done
threads="${THREADS:-2}"
npp="${NPP:-128}"
ntg="${NTG:-64}"
if ((${#files[@]} == 0)); then
    m="$cache/models/2b4t"
    files=("$m/bitnet-bpe-tq2_0.gguf" "$m/bitnet-bpe-tq1_0.gguf" "$m/bitnet-b1.58-i2_s.gguf")
fi

ours="$(cd "${CARGO_TARGET_DIR:-target}/release" 2>/dev/null && pwd)" ||
    { echo "no target/release: cargo build --release first" >&2; exit 1; }
[[ -e "$ours/libllama.so.0" ]] || { echo "no $ours/libllama.so.0: cargo build --release first" >&2; exit 1; }
bench="${LLAMA_BATCHED_BENCH:-}"
if [[ -z "$bench" ]]; then
    bench="$(bash cpp_ref/build_tools.sh | sed -n 's/^bin=//p')/llama-batched-bench"
fi
for f in "${files[@]}"; do
    [[ -f "$f" ]] || { echo "no $f: bash tests/models/prepare.sh --shape 2b4t" >&2; exit 1; }
done

raw="$(mktemp)"
trap 'rm -f "$raw"' EXIT
# One run: prints its JSON lines tagged with the file and the library, or a "refused" line when
# the library cannot load the file (the reference and bitnet-b1.58).
run_one() {
    local file="$1" lib="$2" log
    log="$(mktemp)"
    local env=(env -u LD_LIBRARY_PATH)
    [[ "$lib" == ours ]] && env=(env "LD_LIBRARY_PATH=$ours")
    if "${env[@]}" "$bench" -m "$file" -c 2048 -b 2048 -ub 512 -npp "$npp" -ntg "$ntg" -npl "$npl" \
        -t "$threads" --output-format jsonl >"$log" 2>"$log.err"; then
        grep '^{' "$log" | python3 -c '
import json, sys
for line in sys.stdin:
    row = json.loads(line)
    row["file"], row["lib"] = sys.argv[1], sys.argv[2]
    print(json.dumps(row))' "$(basename "$file")" "$lib" >>"$raw"
        echo "  $lib: $(grep -c '^{' "$log") rows" >&2
    else
        echo "{\"file\": \"$(basename "$file")\", \"lib\": \"$lib\", \"refused\": true}" >>"$raw"
        echo "  $lib: failed: $(tail -n 2 "$log.err" | tr '\n' ' ')" >&2
    fi
    rm -f "$log" "$log.err"
}

for r in $(seq 1 "$rounds"); do
    for f in "${files[@]}"; do
        echo "round $r/$rounds: $(basename "$f")" >&2
        if ((r % 2)); then order=(reference ours); else order=(ours reference); fi
        for lib in "${order[@]}"; do
            run_one "$f" "$lib"
        done
    done
done

mkdir -p "$(dirname "$out")"
python3 - "$raw" "$out" "$rounds" "$threads" "$npp" "$ntg" "$npl" <<'EOF'
import json, statistics, sys
raw, out, rounds, threads, npp, ntg, npl = sys.argv[1:]
rows = [json.loads(l) for l in open(raw)]
runs = [r for r in rows if not r.get("refused")]
refused = sorted({(r["file"], r["lib"]) for r in rows if r.get("refused")})
files = list(dict.fromkeys(r["file"] for r in rows))
pls = sorted({r["pl"] for r in runs})
def med(file, lib, pl, key):
    v = [r[key] for r in runs if r["file"] == file and r["lib"] == lib and r["pl"] == pl]
    return statistics.median(v) if v else None
summary = []
for f in files:
    for pl in pls:
        o, ref = med(f, "ours", pl, "speed_tg"), med(f, "reference", pl, "speed_tg")
        o1 = med(f, "ours", 1, "speed_tg")
        summary.append({
            "file": f, "pl": pl,
            "ours_tg": o, "reference_tg": ref,
            "ours_pp": med(f, "ours", pl, "speed_pp"), "reference_pp": med(f, "reference", pl, "speed_pp"),
            "ours_over_reference_tg": (o / ref) if o and ref else None,
            "ours_tg_over_ours_1": (o / o1) if o and o1 else None,
        })
doc = {
    "command": f"llama-batched-bench -m FILE -c 2048 -b 2048 -ub 512 -npp {npp} -ntg {ntg} -npl {npl} -t {threads}",
    "rounds": int(rounds), "refused": [list(x) for x in refused], "summary": summary, "runs": runs,
}
json.dump(doc, open(out, "w"), indent=1)
fmt = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"
print(f"medians of {rounds} rounds, {doc['command']}\n")
print("| file | seqs | ours S_TG t/s | reference S_TG t/s | ours / reference | ours / ours at 1 | ours S_PP t/s | reference S_PP t/s |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for s in summary:
    print(f"| {s['file']} | {s['pl']} | {fmt(s['ours_tg'])} | {fmt(s['reference_tg'])} | "
          f"{fmt(s['ours_over_reference_tg'])} | {fmt(s['ours_tg_over_ours_1'])} | "
          f"{fmt(s['ours_pp'])} | {fmt(s['reference_pp'])} |")
for f, lib in refused:
    print(f"\n{lib} could not run {f}")
print(f"\nJSON: {out}")
EOF
