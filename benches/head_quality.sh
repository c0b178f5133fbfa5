#!/usr/bin/env bash
# What the lower-byte heads cost in accuracy: `bitnet bench --head H --quality N` for H in q8_0
# q4_0 and q6_k against each file's stored head, over N fixed teacher-forced positions (the same
# tokens for both heads): mean KL(P_stored || P_head) in nats, top-1 agreement, mean logit
# cosine. Files: the tiny fixtures (`tests/models/prepare.sh`), the three tests/convert
# checkpoints converted by `bitnet convert` (real tensor layouts), and with --2b4t the
# 2B-4T-shaped TQ2_0 file. Prints a Markdown table.
#
#   bash benches/head_quality.sh [N] [--2b4t]          (default N 64; THREADS, BITNET)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-64}" big="${2:-}" threads="${THREADS:-2}"
bitnet="${BITNET:-${CARGO_TARGET_DIR:-target}/release/bitnet}"
[[ -x "$bitnet" ]] || { echo "no $bitnet: cargo build --release first" >&2; exit 1; }
models=$(bash tests/models/prepare.sh | sed -n 's/^models=//p')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
files=("$models/bitnet-b1.58-i2_s.gguf" "$models/bitnet-bpe-tq2_0.gguf" "$models/bitnet-spm-f16.gguf")
for ck in bitnet-2b4t bitnet-2b4t-bf16 1bitllm; do
    "$bitnet" convert "tests/convert/$ck" -o "$tmp/$ck.gguf" >/dev/null
    files+=("$tmp/$ck.gguf")
done
if [[ "$big" == "--2b4t" ]]; then
    files+=("$(dirname "$models")/2b4t/bitnet-bpe-tq2_0.gguf")
fi
for f in "${files[@]}"; do
    for h in q8_0 q4_0 q6_k; do
        "$bitnet" bench -m "$f" -t "$threads" --head "$h" --quality "$n" --json >>"$tmp/runs"
    done
done
python3 - "$tmp/runs" "$n" <<'PY'
import json, os, sys
print(f"| file ({sys.argv[2]} positions) | head | mean KL (nats) | top-1 agreement | mean logit cosine |")
print("|---|---|---|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"| {os.path.basename(r['model'])} | {r['head']} | {r['head_kl_vs_f16']:.2e} "
          f"| {100 * r['head_top1_vs_f16']:.1f}% | {r['head_cosine_vs_f16']:.6f} |")
PY
