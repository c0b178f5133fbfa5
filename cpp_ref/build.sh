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
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"
ref="${BITNET_CPP_REF_DIR:-$cache/cpp_ref}"

log() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }

command -v cmake >/dev/null 2>&1 || die "cmake not found (Debian: apt-get install cmake)"
command -v c++ >/dev/null 2>&1 || die "no C++ compiler (Debian: apt-get install g++)"

mkdir -p "$ref"
ref="$(cd "$ref" && pwd)"
dist="$ref/dist"
stamp_name=".bitnet-cpp-ref.stamp"

print_paths() {
    echo "include=$dist/include"
    echo "ggml_include=$dist/ggml/include"
    echo "lib=$dist/lib"
    echo "bin=$dist/bin"
}

native="${BITNET_CPP_REF_NATIVE:-1}"
case "$native" in
    1 | ON | on | true) native=ON ;;
    0 | OFF | off | false) native=OFF ;;
    *) die "BITNET_CPP_REF_NATIVE must be 0 or 1" ;;
esac

# The CMake flags (part of the key). RPATH $ORIGIN:$ORIGIN/../lib in every artifact, so the
# staged tree works wherever it lands.
cmake_flags=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=ON
    -DGGML_NATIVE="$native"
    -DGGML_CPU=ON
    -DGGML_BACKEND_DL=OFF
    -DGGML_OPENMP=ON
    -DGGML_CCACHE=OFF
    -DGGML_CUDA=OFF
    -DGGML_VULKAN=OFF
    -DGGML_METAL=OFF
    -DGGML_BLAS=OFF
    -DGGML_RPC=OFF
    -DLLAMA_CURL=OFF
    -DLLAMA_OPENSSL=OFF
    -DLLAMA_LLGUIDANCE=OFF
    -DLLAMA_BUILD_COMMON=ON
    -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_BUILD_SERVER=OFF
    -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_UI=OFF
    -DCMAKE_SKIP_BUILD_RPATH=OFF
    -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON
    '-DCMAKE_INSTALL_RPATH=$ORIGIN:$ORIGIN/../lib'
    # No AMX: these machines' CPUs advertise AMX, but the guest kernel does not grant the tile
    # state, and ggml's AMX kernels (used for Q8_0) die with SIGILL on the first tilezero.
    # Explicit -mno-* flags win over -march=native in GCC whatever their order.
    '-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'
    '-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'
)
targets=(llama ggml ggml-base ggml-cpu llama-bench)

# Only the sdist location goes to stdout of fetch_sdist.sh.
sdist="$("$here/fetch_sdist.sh")"
src="$sdist/vendor/llama.cpp"
[[ -f "$src/CMakeLists.txt" ]] || die "no llama.cpp source at $src"
sdist_sha="$(cat "$sdist/.bitnet-sdist.sha256")"

cpu_key="portable"
if [[ "$native" == ON ]]; then
    cpu_key="$( { grep -m1 '^model name' /proc/cpuinfo || true
                  grep -m1 -E '^(flags|Features)' /proc/cpuinfo || true
                  uname -m; } | sha256sum | cut -d' ' -f1)"
fi
compiler="$( { c++ --version | head -n1; cc --version | head -n1; } 2>/dev/null || true)"
key="$( { echo "layout=1"
          echo "sdist=$sdist_sha"
          printf '%s\n' "${cmake_flags[@]}" "${targets[@]}"
          echo "cpu=$cpu_key"
          echo "compiler=$compiler"; } | sha256sum | cut -d' ' -f1)"

exec 8>"$ref/build.lock"
if ! flock -n 8; then
    log "waiting for another build.sh ($ref/build.lock)"
    flock 8
fi

if [[ -f "$dist/$stamp_name" && "$(cat "$dist/$stamp_name")" == "$key" && -f "$dist/lib/libllama.so" ]]; then
    log "reference up to date: $dist"
    print_paths
    exit 0
fi

# Leftovers of killed runs (we hold the lock, nobody else is writing them). The build directory
# of the same key is kept: make resumes it incrementally.
rm -rf "$ref"/.dist.tmp.* "$ref"/.dist.old.*
for d in "$ref"/build-*; do
    [[ -e "$d" && "$d" != "$ref/build-$key" ]] && rm -rf "$d"
done

build="$ref/build-$key"
jobs="$(nproc 2>/dev/null || echo 2)"
start=$SECONDS
configure_and_build() {
    log "configuring llama.cpp ($src) in $build (GGML_NATIVE=$native)"
    cmake -S "$src" -B "$build" "${cmake_flags[@]}" >&2 || return 1
    log "building ${targets[*]} with -j$jobs (about 8 minutes on 2 cores)"
    cmake --build "$build" --config Release -j "$jobs" --target "${targets[@]}" >&2
}
if [[ -d "$build" ]]; then
    # A build of the same key that was interrupted: resume it. A process killed mid-write can
    # leave a truncated object file that looks up to date, so if the resumed build fails, start
    # over from an empty build directory once.
    log "resuming the interrupted build in $build"
    if ! configure_and_build; then
        log "resumed build failed; retrying from scratch"
        rm -rf "$build"
        configure_and_build || die "cmake build failed"
    fi
else
    configure_and_build || die "cmake build failed"
fi

tmp="$(mktemp -d "$ref/.dist.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/include" "$tmp/ggml/include" "$tmp/lib" "$tmp/bin"
cp "$src/include/"*.h "$tmp/include/"
cp "$src/ggml/include/"*.h "$tmp/ggml/include/"
shopt -s nullglob
libs=("$build"/bin/lib*.so* "$build"/lib/lib*.so* "$build"/src/lib*.so* "$build"/ggml/src/lib*.so*)
shopt -u nullglob
((${#libs[@]})) || die "no shared libraries found under $build"
cp -a "${libs[@]}" "$tmp/lib/"
for l in libllama.so libggml.so libggml-base.so libggml-cpu.so; do
    [[ -e "$tmp/lib/$l" ]] || die "build produced no $l"
done
bench="$(find "$build" -name llama-bench -type f -perm -u+x | head -n1)"
[[ -n "$bench" ]] || die "build produced no llama-bench"
cp "$bench" "$tmp/bin/"
echo "$key" >"$tmp/$stamp_name"
chmod u=rwx,go=rx "$tmp" # mktemp -d made it 0700

# Smoke check before publishing: the libraries resolve each other through their RPATH.
if command -v ldd >/dev/null 2>&1; then
    if ldd "$tmp/bin/llama-bench" | grep -q "not found"; then
        ldd "$tmp/bin/llama-bench" >&2
        die "llama-bench has unresolved libraries"
    fi
fi

if [[ -e "$dist" ]]; then
    old="$(mktemp -d "$ref/.dist.old.XXXXXX")"
    mv "$dist" "$old/"
    mv "$tmp" "$dist"
    rm -rf "$old"
else
    mv "$tmp" "$dist"
fi
trap - EXIT
rm -rf "$build"
log "built in $((SECONDS - start)) s: $dist"
print_paths
