#!/usr/bin/env bash
# Decode with the 2-bit and the 1.6-bit ternary layouts (BITNET_TERNARY=q2 / q16, the same
# binary), each with the F16 and the Q4_0 head, interleaved: each round runs `bitnet bench -p 0
# -n N -r 2 --json` for every file, layout and head in turn; prints each run and, per file,
# layout and head, the medians of tg tok/s and bandwidth share, the bytes per token, peak RSS,
# and the speed-up over the 2-bit layout with the F16 head (median of the per-round ratios).
# Writes the runs as JSON lines to $OUT when set.
#
#   bash benches/ternary_rounds.sh [ROUNDS] [FILE...]
#       (default: 3 rounds of the 2B-4T-shaped TQ2_0 and TQ1_0 files; N = $N_GEN or 32)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
shift || true
dir="$HOME/.cache/bitnet-rs/models/2b4t"
files=("$@")
[[ ${#files[@]} -gt 0 ]] || files=("$dir/bitnet-bpe-tq2_0.gguf" "$dir/bitnet-bpe-tq1_0.gguf")
threads="${THREADS:-2}" n="${N_GEN:-32}"
bitnet="${BITNET:-${CARGO_TARGET_DIR:-target}/release/bitnet}"
[[ -x "$bitnet" ]] || { echo "no $bitnet: cargo build --release first" >&2; exit 1; }
for f in "${files[@]}"; do
    [[ -f "$f" ]] || { echo "no $f: bash tests/models/prepare.sh --shape 2b4t" >&2; exit 1; }
done
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
for r in $(seq 1 "$rounds"); do
    for f in "${files[@]}"; do
        for t in q2 q16; do
            for h in f16 q4_0; do
                line=$(BITNET_TERNARY=$t "$bitnet" bench -m "$f" -t "$threads" -p 0 -n "$n" -r 2 \
                    --head "$h" --json)
                echo "$line" >>"$runs"
                echo "round $r $(basename "$f") $t $h: $line"
            done
        done
    done
done
[[ -n "${OUT:-}" ]] && cp "$runs" "$OUT"
python3 - "$runs" "$n" <<'PY'
import json, os, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
tg = f"tg{sys.argv[2]}_tok_s"
by = {}
for r in runs:
    by.setdefault((r["model"], r["ternary"], r["head"]), []).append(r)
print(f"| file | ternary | head | {tg} | vs q2 + F16 head | bytes/token | bandwidth share | peak RSS (file) |")
print("|---|---|---|---|---|---|---|---|")
for (model, t, h), rs in by.items():
    base = by[(model, "q2", "f16")]
    med = lambda k: statistics.median(r[k] for r in rs)
    ratio = statistics.median(r[tg] / b[tg] for r, b in zip(rs, base))
    print(f"| {os.path.basename(model)} | {t} | {h} | {med(tg):.2f} | {ratio:.2f}x "
          f"| {rs[0]['bytes_per_token'] / 1e6:.0f} MB | {med('bandwidth_share'):.2f} "
          f"| {med('peak_rss_bytes') / 1e6:.0f} MB ({rs[0]['model_bytes'] / 1e6:.0f} MB) |")
PY
