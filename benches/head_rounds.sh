#!/usr/bin/env bash
# Decode with every head on one file, interleaved: each round runs `bitnet bench -p 0 -n 64
# -r 2 --json` with --head f16, q8_0 and q4_0 in turn; prints each run and, per head, the
# medians of tg64 tok/s, bandwidth share, load to first token and peak RSS, the bytes per token,
# and the speed-up over the F16 head (median of the per-round ratios). Writes the runs as JSON
# lines to $OUT when set.
#
#   bash benches/head_rounds.sh [FILE] [ROUNDS]     (default: the 2B-4T-shaped TQ2_0 file, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
file="${1:-$HOME/.cache/bitnet-rs/models/2b4t/bitnet-bpe-tq2_0.gguf}" rounds="${2:-3}"
threads="${THREADS:-2}"
bitnet="${BITNET:-${CARGO_TARGET_DIR:-target}/release/bitnet}"
[[ -x "$bitnet" ]] || { echo "no $bitnet: cargo build --release first" >&2; exit 1; }
[[ -f "$file" ]] || { echo "no $file: bash tests/models/prepare.sh --shape 2b4t" >&2; exit 1; }
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
for r in $(seq 1 "$rounds"); do
    for h in f16 q8_0 q4_0; do
        line=$("$bitnet" bench -m "$file" -t "$threads" -p 0 -n 64 -r 2 --head "$h" --json)
        echo "$line" >>"$runs"
        echo "round $r $h: $line"
    done
done
[[ -n "${OUT:-}" ]] && cp "$runs" "$OUT"
python3 - "$runs" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in runs:
    by.setdefault(r["head"], []).append(r)
f16 = by["f16"]
print("| head | tg64 tok/s | vs F16 head | bytes/token | bandwidth share | load to 1st token | peak RSS (file) |")
print("|---|---|---|---|---|---|---|")
for h in ["f16", "q8_0", "q4_0"]:
    rs = by[h]
    med = lambda k: statistics.median(r[k] for r in rs)
    ratio = statistics.median(r["tg64_tok_s"] / f["tg64_tok_s"] for r, f in zip(rs, f16))
    print(f"| {h} | {med('tg64_tok_s'):.2f} | {ratio:.2f}x | {rs[0]['bytes_per_token'] / 1e6:.0f} MB "
          f"| {med('bandwidth_share'):.2f} | {med('load_to_first_token_s'):.2f} s "
          f"| {med('peak_rss_bytes') / 1e6:.0f} MB ({rs[0]['model_bytes'] / 1e6:.0f} MB) |")
PY
