#!/usr/bin/env bash
# Builds the C++ reference (llama.cpp as vendored in the pinned llama-cpp-python sdist) once and
# reuses it afterwards.
#
#   cpp_ref/build.sh
#
# Output tree: ${BITNET_CPP_REF_DIR:-${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}/cpp_ref}/dist
#   include/        llama.h (+ llama-cpp.h)
#   ggml/include/   ggml.h, ggml-cpu.h, ggml-backend.h, gguf.h, ...
#   lib/            libllama.so, libggml.so, libggml-base.so, libggml-cpu.so (+ soname links)
#   bin/            llama-bench (RPATH $ORIGIN/../lib, so the tree can be moved)
#   .bitnet-cpp-ref.stamp
#
# The build is reused while its key is unchanged: the sdist's sha256, the CMake flags below, the
# compiler, and (with GGML_NATIVE=ON, the default) the CPU model and feature flags, because a
# -march=native build restored from a cache on another CPU could die with SIGILL.
# The reference is built the way a user would build it on this machine (GGML_NATIVE=ON, Release,
# CPU backend only): that is the fair baseline for benchmarks, and CI runs on the same kind of
# machine. BITNET_CPP_REF_NATIVE=0 builds a portable (GGML_NATIVE=OFF) reference instead.
#
# Safe to run concurrently (flock) and atomic: the tree is staged in a temporary directory and
# renamed into place only when complete, so a killed build is redone, never half-used.
#
# Stdout is exactly four lines (everything else goes to stderr):
#   include=<dir with llama.h>
#   ggml_include=<dir with ggml.h>
#   lib=<dir with libllama.so>
#   bin=<dir with llama-bench>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
me=build.sh
stamp_name=".bitnet-cpp-ref.stamp"
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"
ref="${BITNET_CPP_REF_DIR:-$cache/cpp_ref}"
# shellcheck source=cpp_ref/lib.sh
source "$here/lib.sh"

# The CMake flags (part of the key, see cpp_ref/lib.sh): the libraries and llama-bench only, no
# server/CLI/examples (cpp_ref/build_tools.sh builds those in a tree of their own).
targets=(llama ggml ggml-base ggml-cpu llama-bench)

cpp_ref_need_tools
cpp_ref_native
cpp_ref_cmake_flags OFF
cpp_ref_source
cpp_ref_key 1 "${targets[@]}"
cpp_ref_lock

print_paths() {
    echo "include=$dist/include"
    echo "ggml_include=$dist/ggml/include"
    echo "lib=$dist/lib"
    echo "bin=$dist/bin"
}

if cpp_ref_up_to_date lib/libllama.so; then
    log "reference up to date: $dist"
    print_paths
    exit 0
fi

start=$SECONDS
build_minutes="about 8"
cpp_ref_cmake_build "${targets[@]}"
cpp_ref_stage
cpp_ref_stage_bins llama-bench
cpp_ref_publish
log "built in $((SECONDS - start)) s: $dist"
print_paths
