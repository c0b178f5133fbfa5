#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of fuzz/ with the stable toolchain (see README.md).
#
#   fuzz/run.sh build                      build every target (cached, incremental)
#   fuzz/run.sh TARGET SECONDS [ARGS...]   fuzz TARGET for SECONDS on its committed corpus plus a
#                                          work corpus outside the repo; extra libFuzzer ARGS
#   fuzz/run.sh smoke SECONDS              every target for SECONDS each (what CI runs)
#   fuzz/run.sh merge TARGET               minimize the work corpus into fuzz/corpus/TARGET
#
# FUZZ_SANITIZER=address builds with AddressSanitizer (RUSTC_BOOTSTRAP=1 -Zsanitizer=address, in
# its own target dir). The build and the work corpora live under
# ${BITNET_CACHE_DIR:-~/.cache/bitnet-rs}/fuzz; a crash leaves its input in
# .../fuzz/artifacts/TARGET/ and exits non-zero. FUZZ_TARGET_DIR overrides the build directory
# (default .../fuzz/target-SANITIZER) and FUZZ_WORK_DIR the work corpora's (.../fuzz/corpus), so
# a second checkout can build and fuzz beside a running campaign without touching its files.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}/fuzz"
targets=(gguf tokenizer grammar chat_template state capi convert hub)
triple="x86_64-unknown-linux-gnu"
sanitizer="${FUZZ_SANITIZER:-none}"

# What cargo-fuzz passes for `-s none` (sanitizer coverage: 8-bit counters, PC table,
# comparison tracing), all stable -C flags; debug assertions and overflow checks on.
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
target_dir="${FUZZ_TARGET_DIR:-$cache/target-$sanitizer}"
case "$sanitizer" in
    none) ;;
    address)
        # -Z flags need a nightly compiler; RUSTC_BOOTSTRAP=1 lets the stable one take them.
        export RUSTC_BOOTSTRAP=1
        flags+=" -Zsanitizer=address -Cunsafe-allow-abi-mismatch=sanitizer" ;;
    *) echo "run.sh: FUZZ_SANITIZER must be none or address" >&2; exit 2 ;;
esac

build() {
    echo "run.sh: building the fuzz targets (sanitizer $sanitizer) in $target_dir" >&2
    (cd "$here" && RUSTFLAGS="$flags" CARGO_TARGET_DIR="$target_dir" \
        cargo build --release --target "$triple" --bins)
}

# The tokenizer target reads llama.cpp's test vocabularies from the pinned sdist.
vocabs() {
    if [[ -z "${BITNET_FUZZ_VOCABS:-}" ]]; then
        local sdist
        sdist="$(bash "$repo/tests/models/prepare.sh" | sed -n 's/^sdist=//p')"
        export BITNET_FUZZ_VOCABS="$sdist/vendor/llama.cpp/models"
    fi
}

max_len() {
    case "$1" in
        gguf|convert) echo 65536 ;;
        hub) echo 16384 ;;
        tokenizer) echo 8192 ;;
        chat_template) echo 20000 ;;
        *) echo 4096 ;;
    esac
}

run() {
    local t="$1" secs="$2"; shift 2
    local bin="$target_dir/$triple/release/$t"
    [[ -x "$bin" ]] || { echo "run.sh: $bin not built (fuzz/run.sh build)" >&2; exit 1; }
    [[ "$t" == tokenizer ]] && vocabs
    # The smoke starts from the committed corpus alone (a fresh work dir each time).
    local work="${FUZZ_WORK_DIR:-$cache/corpus}/$t" art="$cache/artifacts/$t"
    mkdir -p "$work" "$art" "$repo/fuzz/corpus/$t"
    echo "run.sh: $t for ${secs}s" >&2
    "$bin" -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=30 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$art/" "$@" "$work" "$repo/fuzz/corpus/$t"
}

case "${1:-}" in
    build) build ;;
    smoke)
        secs="${2:?usage: run.sh smoke SECONDS}"
        build
        FUZZ_WORK_DIR="$(mktemp -d)"
        trap 'rm -rf "$FUZZ_WORK_DIR"' EXIT
        for t in "${targets[@]}"; do run "$t" "$secs"; done ;;
    merge)
        t="${2:?usage: run.sh merge TARGET}"
        bin="$target_dir/$triple/release/$t"
        [[ "$t" == tokenizer ]] && vocabs
        tmp="$(mktemp -d)"
        "$bin" -merge=1 -max_len="$(max_len "$t")" "$tmp" "$repo/fuzz/corpus/$t" "${FUZZ_WORK_DIR:-$cache/corpus}/$t"
        rm -rf "$repo/fuzz/corpus/$t" && mv "$tmp" "$repo/fuzz/corpus/$t" ;;
    ""|-h|--help) sed -n '2,16p' "$0"; exit 2 ;;
    *)
        t="$1"; secs="${2:?usage: run.sh TARGET SECONDS}"; shift 2
        [[ " ${targets[*]} " == *" $t "* ]] || { echo "run.sh: unknown target $t (${targets[*]})" >&2; exit 2; }
        run "$t" "$secs" "$@" ;;
esac
