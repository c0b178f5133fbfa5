#!/usr/bin/env bash
# Golden outputs for a change that must not change behaviour (a refactor): fingerprints of the
# logits, greedy tokens, state bytes and embeddings of every fixture model (examples/golden.rs),
# once per instruction-set path this machine has (BITNET_ISA), plus crossval's --all report.
#
#   bash benches/golden.sh record DIR   # before the change
#   bash benches/golden.sh check DIR    # after it: exits 1 on any difference
#
# DIR holds the recording (keep it outside the repo). crossval needs the reference built
# (cpp_ref/build.sh); BITNET_GOLDEN_NO_CROSSVAL=1 leaves it out.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: golden.sh record|check DIR}
dir=${2:?usage: golden.sh record|check DIR}
mkdir -p "$dir"
models="$(bash tests/models/prepare.sh | sed -n 's/^models=//p')"
cargo build --release --example golden -q
bin=target/release/examples/golden
out="$dir/$mode"
mkdir -p "$out"
mapfile -t files < <(ls "$models"/*.gguf | sort)
for isa in scalar avx2 avx512 native; do
    echo "golden: BITNET_ISA=$isa (${#files[@]} models)" >&2
    if [ "$isa" = native ]; then
        "$bin" "${files[@]}" > "$out/engine-$isa.txt"
    else
        BITNET_ISA=$isa "$bin" "${files[@]}" > "$out/engine-$isa.txt"
    fi
    # Paths are printed by file name only, so the same models elsewhere compare equal.
done
if [ -z "${BITNET_GOLDEN_NO_CROSSVAL:-}" ]; then
    echo "golden: crossval --all" >&2
    cargo run -q -p crossval --release -- --all 2>/dev/null | sed -E 's/0x[0-9a-f]+/0xADDR/g; s/[0-9]+(\.[0-9]+)? ?(ms|s)\b/T/g' > "$out/crossval.txt"
fi
if [ "$mode" = check ]; then
    status=0
    for f in "$dir"/record/*.txt; do
        g="$out/$(basename "$f")"
        if [ ! -e "$g" ]; then
            echo "golden: not run this time $(basename "$f")"
            continue
        fi
        if ! diff -u "$f" "$g" > "$out/$(basename "$f").diff"; then
            echo "golden: DIFFERS $(basename "$f") (see $out/$(basename "$f").diff)"
            status=1
        else
            echo "golden: same $(basename "$f") ($(wc -l < "$f") lines)"
        fi
    done
    exit $status
fi
echo "golden: recorded in $out"
