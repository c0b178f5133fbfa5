#!/usr/bin/env bash
# Decode with every head on one file, interleaved: each round runs `bitnet bench -p 0 -n 64
# -r 2 --json` with --head f16, q8_0, q4_0 and q6_k in turn; prints each run and, per head, the
# medians of tg64 tok/s, bandwidth share, load to first token and peak RSS, the bytes per token,
# and the speed-up over the F16 head (median of the per-round ratios). Writes the runs as JSON
# lines to $OUT when set.
#
# HEADS (default "f16 q8_0 q4_0 q6_k"), NGEN (64) and REPS (2) change the heads and the decode run;
# NGEN=8 REPS=0 is enough for the load figures.
#
#   bash benches/head_rounds.sh [FILE] [ROUNDS]     (default: the 2B-4T-shaped TQ2_0 file, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
file="${1:-$HOME/.cache/bitnet-rs/models/2b4t/bitnet-bpe-tq2_0.gguf}" rounds="${2:-3}"
threads="${THREADS:-2}"
bitnet="${BITNET:-${CARGO_TARGET_DIR:-target}/release/bitnet}"
[[ -x "$bitnet" ]] || { echo "no $bitnet: cargo build --release first" >&2; exit 1; }
[[ -f "$file" ]] || { echo "no $file: bash tests/models/prepare.sh --shape 2b4t" >&2; exit 1; }
heads="${HEADS:-f16 q8_0 q4_0 q6_k}" n_gen="${NGEN:-64}" reps="${REPS:-2}"
cache="${CACHE:-warm}"
runs=$(mktemp) cold=$(mktemp -d)
trap 'rm -rf "$runs" "$cold"' EXIT
case "$cache" in
warm) for h in $heads; do "$bitnet" bench -m "$file" -t "$threads" -p 0 -n 1 -r 0 --head "$h" --json >/dev/null; done ;;
off) export BITNET_HEAD_CACHE=0 ;;
cold) ;;
*) echo "CACHE=$cache: want warm, cold or off" >&2; exit 1 ;;
esac
for r in $(seq 1 "$rounds"); do
    for h in $heads; do
        [[ "$cache" == cold ]] && { rm -rf "$cold/heads"; export BITNET_CACHE_DIR="$cold"; }
        line=$("$bitnet" bench -m "$file" -t "$threads" -p 0 -n "$n_gen" -r "$reps" --head "$h" --json)
        echo "$line" >>"$runs"
        echo "round $r $h: $line"
    done
done
[[ -n "${OUT:-}" ]] && cp "$runs" "$OUT"
python3 - "$runs" "$n_gen" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
tg = f"tg{sys.argv[2]}"
by = {}
for r in runs:
    by.setdefault(r["head"], []).append(r)
f16 = by["f16"]
print(f"| head | {tg} tok/s | vs F16 head | bytes/token | bandwidth share | load to 1st token | peak RSS (file) |")
print("|---|---|---|---|---|---|---|")
for h in by:
    rs = by[h]
    med = lambda k: statistics.median(r[k] for r in rs)
    ratio = statistics.median(r[tg + '_tok_s'] / f[tg + '_tok_s'] for r, f in zip(rs, f16))
    print(f"| {h} | {med(tg + '_tok_s'):.2f} | {ratio:.2f}x | {rs[0]['bytes_per_token'] / 1e6:.0f} MB "
          f"| {med('bandwidth_share'):.2f} | {med('load_to_first_token_s'):.2f} s "
          f"| {med('peak_rss_bytes') / 1e6:.0f} MB ({rs[0]['model_bytes'] / 1e6:.0f} MB) |")
PY
