#!/usr/bin/env bash
# The Rust side under sanitizers, on the stable toolchain (RUSTC_BOOTSTRAP=1 unlocks -Z flags):
#
#   fuzz/sanitize.sh asan   the GGUF view, the thread pool and the C guard's unit tests under
#                           AddressSanitizer (cargo test --lib gguf:: kernels::pool capi::guard)
#   fuzz/sanitize.sh tsan   tests/thread_stress.rs under ThreadSanitizer, with --nocapture: the
#                           test harness's output capture is a Vec behind std's Mutex, and with
#                           std uninstrumented TSan sees the Vec's memcpy/realloc from two
#                           threads' log lines but not the lock (a false positive in std);
#                           fuzz/tsan.supp silences libtest's result channel (the same, after
#                           the test); 10 s of stress unless BITNET_STRESS_SECS says otherwise
#
# Each builds in its own target dir under ${BITNET_CACHE_DIR:-~/.cache/bitnet-rs}/fuzz (the
# flags differ from every other build). --target keeps the flags off build scripts and proc
# macros. The standard library itself is not instrumented (that needs -Zbuild-std and the
# rust-src component, which this machine does not have): ASan still sees every heap access our
# code makes, since it replaces malloc/free for the whole process. The compiler (1.95 here)
# refuses to link instrumented crates against the uninstrumented std ("mixing -Zsanitizer will
# cause an ABI mismatch"); -Cunsafe-allow-abi-mismatch=sanitizer accepts exactly that mix.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}/fuzz"
triple="x86_64-unknown-linux-gnu"
export RUSTC_BOOTSTRAP=1
mismatch="-Cunsafe-allow-abi-mismatch=sanitizer"
case "${1:-}" in
    asan)
        RUSTFLAGS="-Zsanitizer=address $mismatch" CARGO_TARGET_DIR="$cache/target-asan-tests" \
            ASAN_OPTIONS="detect_leaks=1" \
            cargo test --target "$triple" --lib -- gguf:: kernels::pool capi::guard ;;
    tsan)
        RUSTFLAGS="-Zsanitizer=thread $mismatch" CARGO_TARGET_DIR="$cache/target-tsan-tests" \
            TSAN_OPTIONS="halt_on_error=1 suppressions=$here/tsan.supp" \
            BITNET_STRESS_SECS="${BITNET_STRESS_SECS:-10}" \
            cargo test --target "$triple" --test thread_stress -- --nocapture ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
esac
