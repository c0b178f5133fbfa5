#!/usr/bin/env bash
# Builds (once) llama.cpp's own command-line tools and llama-server from the pinned sdist, the
# programs that issue 20 runs unchanged on bitnet-rs's libllama.so:
#
#   cpp_ref/build_tools.sh
#
# Output tree: ${BITNET_CPP_TOOLS_DIR:-${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}/cpp_tools}/dist
#   bin/   llama-server llama-cli llama-perplexity llama-batched-bench llama-bench
#          llama-tokenize llama-embedding (RUNPATH $ORIGIN:$ORIGIN/../lib, so
#          LD_LIBRARY_PATH=DIR puts another libllama.so.0 in front of the one in lib/)
#   lib/   the reference libllama.so + libggml*.so + the tools' own libraries
#          (libllama-common.so, libmtmd.so, lib<tool>-impl.so, ...)
#   include/, ggml/include/   the headers
#
# Same rules as cpp_ref/build.sh (see cpp_ref/lib.sh): keyed by the sdist, the CMake flags, the
# targets, the compiler and the CPU; flock'ed; staged and renamed atomically; an interrupted build
# is resumed. It is a separate tree from build.sh's so that build.sh's key (and every cache of the
# reference) stays as it was.
#
# The web UI: the sdist ships the UI's sources (tools/ui, npm) but no built assets, so this build
# embeds none (LLAMA_BUILD_UI=OFF, LLAMA_USE_PREBUILT_UI=OFF: no npm, no download). llama-server
# then answers the API and serves a UI only with `--path DIR` (a built tools/ui/dist).
#
# Stdout is exactly two lines (everything else goes to stderr):
#   bin=<dir with the tools>
#   lib=<dir with the reference libllama.so.0 and the tools' libraries>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
me=build_tools.sh
stamp_name=".bitnet-cpp-tools.stamp"
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"
ref="${BITNET_CPP_TOOLS_DIR:-$cache/cpp_tools}"
# shellcheck source=cpp_ref/lib.sh
source "$here/lib.sh"

tools=(llama-server llama-cli llama-perplexity llama-batched-bench llama-bench llama-tokenize
       llama-embedding)

cpp_ref_need_tools
cpp_ref_native
cpp_ref_cmake_flags ON
cpp_ref_source
cpp_ref_key 1 "${tools[@]}"
cpp_ref_lock

print_paths() {
    echo "bin=$dist/bin"
    echo "lib=$dist/lib"
}

if cpp_ref_up_to_date bin/llama-server; then
    log "tools up to date: $dist"
    print_paths
    exit 0
fi

start=$SECONDS
build_minutes="about 30"
cpp_ref_cmake_build "${tools[@]}"
cpp_ref_stage
cpp_ref_stage_bins "${tools[@]}"
cpp_ref_publish
log "built in $((SECONDS - start)) s: $dist"
print_paths
