#!/usr/bin/env bash
# The one entry point for test fixtures: Python venv, C++ reference sdist, synthetic models.
#
#   tests/models/prepare.sh [--shape tiny|2b4t|1.7b|8b] [--seed N]
#
# tiny: every test model (incl. the qwen3 Q1_0/Q2_0 files and their float copies); 2b4t: BitNet
# 2B-4T-shaped files for speed; 1.7b / 8b: qwen3 Q1_0 and Q2_0 files at Qwen3-1.7B / Qwen3-8B
# shape for speed (about 0.9 GB / 3.5 GB of disk).
#
# Everything lives under ${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs} (never in the repo) and is
# reused while its inputs are unchanged: the models are regenerated only when gen_models.py,
# requirements.txt, the seed or the shape change. Safe to call concurrently (flock), and an
# interrupted run never leaves a half-written model set behind.
#
# Stdout is exactly three lines (everything else goes to stderr):
#   venv_python=/abs/path/venv/bin/python
#   sdist=/abs/path/sdist/llama_cpp_python-0.3.36
#   models=/abs/path/models/tiny            (holds *.gguf and manifest.json)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"

shape="tiny"
seed="1234"
usage() { echo "usage: $0 [--shape tiny|2b4t|1.7b|8b] [--seed N]" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --shape) [[ $# -ge 2 ]] || usage; shape="$2"; shift 2 ;;
        --shape=*) shape="${1#*=}"; shift ;;
        --seed) [[ $# -ge 2 ]] || usage; seed="$2"; shift 2 ;;
        --seed=*) seed="${1#*=}"; shift ;;
        -h|--help) usage ;;
        *) echo "prepare.sh: unknown argument: $1" >&2; usage ;;
    esac
done
case "$shape" in tiny|2b4t|1.7b|8b) ;; *) echo "prepare.sh: --shape must be tiny, 2b4t, 1.7b or 8b" >&2; exit 2 ;; esac
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "prepare.sh: --seed must be a non-negative integer" >&2; exit 2; }

log() { echo "prepare.sh: $*" >&2; }

mkdir -p "$cache/models"
cache="$(cd "$cache" && pwd)"
exec 9>"$cache/prepare.lock"
if ! flock -n 9; then
    log "waiting for another prepare.sh ($cache/prepare.lock)"
    flock 9
fi

py="$("$here/venv.sh")"
sdist="$("$repo/cpp_ref/fetch_sdist.sh")"

out="$cache/models/$shape"
stamp_name=".bitnet-models.stamp"
want="$( { sha256sum "$here/gen_models.py" "$here/requirements.txt" | cut -d' ' -f1
           echo "seed=$seed shape=$shape"; } | sha256sum | cut -d' ' -f1)"

if [[ -f "$out/$stamp_name" && "$(cat "$out/$stamp_name")" == "$want" && -f "$out/manifest.json" ]]; then
    log "models up to date: $out"
else
    # Leftovers of runs that were killed (we hold the lock, so nobody else is writing them).
    rm -rf "$cache/models/.$shape".tmp.* "$cache/models/.$shape".old.*
    tmp="$(mktemp -d "$cache/models/.$shape.tmp.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    log "generating $shape models (seed $seed) into $out"
    start=$SECONDS
    "$py" "$here/gen_models.py" --out "$tmp" --seed "$seed" --shape "$shape" --sdist "$sdist" >&2
    [[ -f "$tmp/manifest.json" ]] || { log "error: gen_models.py wrote no manifest.json"; exit 1; }
    echo "$want" >"$tmp/$stamp_name"
    chmod u=rwx,go=rx "$tmp"  # mktemp -d made it 0700
    if [[ -e "$out" ]]; then
        old="$(mktemp -d "$cache/models/.$shape.old.XXXXXX")"
        mv "$out" "$old/"
        mv "$tmp" "$out"
        rm -rf "$old"
    else
        mv "$tmp" "$out"
    fi
    trap - EXIT
    log "generated in $((SECONDS - start)) s"
fi

echo "venv_python=$py"
echo "sdist=$sdist"
echo "models=$out"
