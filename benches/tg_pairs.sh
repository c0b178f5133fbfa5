#!/usr/bin/env bash
# Decode speed of two files with our engine, interleaved: each round runs `bitnet bench -p 0
# -n 64 -r 3` on FILE_A then FILE_B; prints each pair and both medians. For "is A as fast as
# B" on a machine whose speed drifts (e.g. TQ1_0 against TQ2_0, which share the kernels).
#
#   bash benches/tg_pairs.sh FILE_A FILE_B [ROUNDS]        (default 6 rounds; THREADS, BITNET)
set -euo pipefail
cd "$(dirname "$0")/.."
a="$1" b="$2" rounds="${3:-6}" threads="${THREADS:-2}"
bitnet="${BITNET:-${CARGO_TARGET_DIR:-target}/release/bitnet}"
[[ -x "$bitnet" ]] || { echo "no $bitnet: cargo build --release first" >&2; exit 1; }
tg() { "$bitnet" bench -m "$1" -t "$threads" -p 0 -n 64 -r 3 --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["tg64_tok_s"])'; }
as=() bs=()
for r in $(seq 1 "$rounds"); do
    x=$(tg "$a") y=$(tg "$b")
    as+=("$x") bs+=("$y")
    echo "round $r: $(basename "$a") $x tok/s, $(basename "$b") $y tok/s"
done
python3 - "$rounds" "${as[@]}" "${bs[@]}" <<'PY'
import statistics, sys
n = int(sys.argv[1]); v = [float(x) for x in sys.argv[2:]]
a, b = v[:n], v[n:]
wins = sum(x > y for x, y in zip(a, b))
print(f"tg64 medians: A {statistics.median(a):.2f}, B {statistics.median(b):.2f} tok/s; A faster in {wins} of {n} rounds")
PY
