#!/usr/bin/env bash
# Prefill ratio against the reference in paired rounds: each round runs llama-bench and then our
# `bitnet bench` on the same file (-p P -n 0 -r 3, medians), so both see the same machine load;
# prints each round's ratio and the median ratio. On a VM whose speed drifts between minutes,
# the paired median is steadier than one compare_reference.sh run.
#
#   bash benches/paired_rounds.sh [ROUNDS] [FILE] [P]     (defaults: 6, the 2B-4T TQ2_0 file, 128)
#
# Env: BITNET (our binary, default target/release/bitnet), BITNET_CACHE_DIR, THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"
rounds="${1:-6}"
file="${2:-$cache/models/2b4t/bitnet-bpe-tq2_0.gguf}"
p="${3:-128}"
threads="${THREADS:-2}"
ref="$cache/cpp_ref/dist"
bitnet="${BITNET:-${CARGO_TARGET_DIR:-target}/release/bitnet}"
[[ -x "$bitnet" ]] || { echo "no $bitnet: cargo build --release first" >&2; exit 1; }
[[ -x "$ref/bin/llama-bench" ]] || { echo "no $ref/bin/llama-bench: bash cpp_ref/build.sh" >&2; exit 1; }
[[ -f "$file" ]] || { echo "no $file: bash tests/models/prepare.sh --shape 2b4t" >&2; exit 1; }

ratios=()
for r in $(seq 1 "$rounds"); do
    l=$(LD_LIBRARY_PATH="$ref/lib" "$ref/bin/llama-bench" -m "$file" -t "$threads" -p "$p" -n 0 -r 3 -o json 2>/dev/null |
        python3 -c 'import json,sys,statistics; print(statistics.median(json.load(sys.stdin)[0]["samples_ts"]))')
    o=$("$bitnet" bench -m "$file" -t "$threads" -p "$p" -n 0 -r 3 --json |
        python3 -c "import json,sys; print(json.load(sys.stdin)['pp${p}_tok_s'])")
    ratio=$(python3 -c "print(f'{$o / $l:.2f}')")
    ratios+=("$ratio")
    echo "round $r: llama.cpp pp$p $l tok/s, ours $o tok/s, ratio $ratio"
done
python3 -c "import statistics,sys; r=[float(x) for x in sys.argv[1:]]; print(f'median ratio over {len(r)} rounds: {statistics.median(r):.2f} (min {min(r):.2f}, max {max(r):.2f})')" "${ratios[@]}"
