# Shared by cpp_ref/build.sh (the reference libraries + llama-bench) and cpp_ref/build_tools.sh
# (llama.cpp's command-line tools and llama-server). Sourced, not run. Each caller sets, before
# calling these functions:
#   me      its name, for messages
#   ref     the cache directory it owns (holds build.lock, build-<key>/, dist/)
#   stamp_name  the stamp file written into dist/
# and reads back `sdist`, `src`, `key`, `dist`, `build`, `tmp` as documented per function.

log() { echo "$me: $*" >&2; }
die() { echo "$me: error: $*" >&2; exit 1; }

cpp_ref_need_tools() {
    command -v cmake >/dev/null 2>&1 || die "cmake not found (Debian: apt-get install cmake)"
    command -v c++ >/dev/null 2>&1 || die "no C++ compiler (Debian: apt-get install g++)"
}

# BITNET_CPP_REF_NATIVE (default 1) as ON/OFF, in $native.
cpp_ref_native() {
    native="${BITNET_CPP_REF_NATIVE:-1}"
    case "$native" in
        1 | ON | on | true) native=ON ;;
        0 | OFF | off | false) native=OFF ;;
        *) die "BITNET_CPP_REF_NATIVE must be 0 or 1" ;;
    esac
}

# The CMake flags both builds share, in $cmake_flags (an array). $1 = ON/OFF for the server, the
# CLI and the examples (llama-embedding). Their order is part of build.sh's key: keep it.
cpp_ref_cmake_flags() {
    local tools_on="$1"
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
        -DLLAMA_BUILD_EXAMPLES="$tools_on"
        -DLLAMA_BUILD_SERVER="$tools_on"
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
    if [[ "$tools_on" == ON ]]; then
        # The server's web UI: not built with npm and not downloaded (no network in CI builds);
        # llama-server then embeds no assets and serves a UI only from `--path DIR`.
        cmake_flags+=(-DLLAMA_USE_PREBUILT_UI=OFF)
    fi
}

# Fetches the pinned sdist; sets $sdist, $src (its llama.cpp) and $sdist_sha.
cpp_ref_source() {
    sdist="$("$here/fetch_sdist.sh")"
    src="$sdist/vendor/llama.cpp"
    [[ -f "$src/CMakeLists.txt" ]] || die "no llama.cpp source at $src"
    sdist_sha="$(cat "$sdist/.bitnet-sdist.sha256")"
}

# The build key in $key: $1 = layout version, then the targets; reads $cmake_flags, $native.
cpp_ref_key() {
    local layout="$1"
    shift
    local cpu_key="portable"
    if [[ "$native" == ON ]]; then
        cpu_key="$( { grep -m1 '^model name' /proc/cpuinfo || true
                      grep -m1 -E '^(flags|Features)' /proc/cpuinfo || true
                      uname -m; } | sha256sum | cut -d' ' -f1)"
    fi
    local compiler
    compiler="$( { c++ --version | head -n1; cc --version | head -n1; } 2>/dev/null || true)"
    key="$( { echo "layout=$layout"
              echo "sdist=$sdist_sha"
              printf '%s\n' "${cmake_flags[@]}" "$@"
              echo "cpu=$cpu_key"
              echo "compiler=$compiler"; } | sha256sum | cut -d' ' -f1)"
}

# Takes $ref/build.lock (held until the caller exits). Sets $dist.
cpp_ref_lock() {
    mkdir -p "$ref"
    ref="$(cd "$ref" && pwd)"
    dist="$ref/dist"
    exec 8>"$ref/build.lock"
    if ! flock -n 8; then
        log "waiting for another $me ($ref/build.lock)"
        flock 8
    fi
}

# True when $dist holds a finished tree of $key that contains $1.
cpp_ref_up_to_date() {
    [[ -f "$dist/$stamp_name" && "$(cat "$dist/$stamp_name")" == "$key" && -e "$dist/$1" ]]
}

# Configures and builds the targets given as arguments in $ref/build-$key (resuming an
# interrupted build of the same key); sets $build. $build_minutes: the estimate for the log.
cpp_ref_cmake_build() {
    # Leftovers of killed runs (we hold the lock, nobody else is writing them). The build
    # directory of the same key is kept: make resumes it incrementally.
    rm -rf "$ref"/.dist.tmp.* "$ref"/.dist.old.*
    local d
    for d in "$ref"/build-*; do
        [[ -e "$d" && "$d" != "$ref/build-$key" ]] && rm -rf "$d"
    done
    build="$ref/build-$key"
    local jobs
    jobs="$(nproc 2>/dev/null || echo 2)"
    local targets=("$@")
    configure_and_build() {
        log "configuring llama.cpp ($src) in $build (GGML_NATIVE=$native)"
        cmake -S "$src" -B "$build" "${cmake_flags[@]}" >&2 || return 1
        log "building ${targets[*]} with -j$jobs (${build_minutes:-several} minutes on 2 cores)"
        cmake --build "$build" --config Release -j "$jobs" --target "${targets[@]}" >&2
    }
    if [[ -d "$build" ]]; then
        # A process killed mid-write can leave a truncated object file that looks up to date, so
        # if the resumed build fails, start over from an empty build directory once.
        log "resuming the interrupted build in $build"
        if ! configure_and_build; then
            log "resumed build failed; retrying from scratch"
            rm -rf "$build"
            configure_and_build || die "cmake build failed"
        fi
    else
        configure_and_build || die "cmake build failed"
    fi
}

# A staging tree $tmp (removed on exit unless published) with include/, ggml/include/, lib/ (every
# shared library of the build) and an empty bin/.
cpp_ref_stage() {
    tmp="$(mktemp -d "$ref/.dist.tmp.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/include" "$tmp/ggml/include" "$tmp/lib" "$tmp/bin"
    cp "$src/include/"*.h "$tmp/include/"
    cp "$src/ggml/include/"*.h "$tmp/ggml/include/"
    shopt -s nullglob
    local libs=("$build"/bin/lib*.so* "$build"/lib/lib*.so* "$build"/src/lib*.so* "$build"/ggml/src/lib*.so*)
    shopt -u nullglob
    ((${#libs[@]})) || die "no shared libraries found under $build"
    cp -a "${libs[@]}" "$tmp/lib/"
    local l
    for l in libllama.so libggml.so libggml-base.so libggml-cpu.so; do
        [[ -e "$tmp/lib/$l" ]] || die "build produced no $l"
    done
}

# Copies the executables named as arguments from $build into $tmp/bin and checks that they
# resolve their libraries through the RPATH.
cpp_ref_stage_bins() {
    local name exe
    for name in "$@"; do
        exe="$(find "$build" -name "$name" -type f -perm -u+x | head -n1)"
        [[ -n "$exe" ]] || die "build produced no $name"
        cp "$exe" "$tmp/bin/"
        if command -v ldd >/dev/null 2>&1 && ldd "$tmp/bin/$name" | grep -q "not found"; then
            ldd "$tmp/bin/$name" >&2
            die "$name has unresolved libraries"
        fi
    done
}

# Stamps $tmp with $key and renames it to $dist atomically; removes the build directory.
cpp_ref_publish() {
    echo "$key" >"$tmp/$stamp_name"
    chmod u=rwx,go=rx "$tmp" # mktemp -d made it 0700
    if [[ -e "$dist" ]]; then
        local old
        old="$(mktemp -d "$ref/.dist.old.XXXXXX")"
        mv "$dist" "$old/"
        mv "$tmp" "$dist"
        rm -rf "$old"
    else
        mv "$tmp" "$dist"
    fi
    trap - EXIT
    rm -rf "$build"
}
