#!/usr/bin/env bash
# The CUDA backend's device check (issues 8 and 19), in two halves.
#
# Here (a machine with Rust, no GPU needed), build and stage the binaries:
#   bash benches/gpu_check.sh --prepare
# It builds `bitnet` and the tests/gpu.rs test binary in release with --features cuda, strips
# them into .gpu_check/ (git-ignored through the repository's info/exclude), packs the pinned reference's
# source (vendor/llama.cpp of the llama-cpp-python 0.3.36 sdist, cpp_ref/fetch_sdist.sh; without
# models/ and docs/, about 7 MB) as .gpu_check/llama-src.tar.xz, and prints the `run` calls.
#
# On the GPU machine (no Rust, no network there), from the repository root, carrying .gpu_check:
#   bash benches/gpu_check.sh            (results in $OUT, default /tmp/gpu_check; ~6-8 min)
# 1. nvidia-smi, and NVRTC located (BITNET_NVRTC_LIB / LD_LIBRARY_PATH) if ld.so cannot see it;
# 2. tests/gpu.rs with BITNET_GPU_REQUIRE=1: GPU vs CPU logits on models of every weight type,
#    prefill == decode bit for bit, llama-server's mixed batches at 4 and 16 sequences (each
#    equal to its sequence decoded alone), the Q8_0 head, out of memory and no driver as error
#    values, the C API's n_gpu_layers, NVRTC compiling the kernels;
# 3. the 2B-4T-shaped models written on the device (I2_S b1.58 and TQ2_0 bitnet, 1.2 GB each);
# 4. `bitnet bench --gpu --json` on each, F16 head and Q8_0 head: pp512 and tg128 at batch 1
#    (3 repetitions, medians). `bitnet bench` measures one sequence only: aggregate decode at
#    4 / 16 sequences is not something it can express yet (the parity of such batches is
#    checked in step 2, their speed is not measured).
#
# The llama.cpp CUDA anchor is a SEPARATE, OPTIONAL call, because building ggml-cuda from source
# (nvcc, one architecture, 16 cores) takes several minutes and does not fit in the same 10
# minutes as the check above:
#   bash benches/gpu_check.sh --ref      (results in $OUT; needs nvcc and cmake on the device)
# R1. the pinned source unpacked and built with -DGGML_CUDA=ON for the device's architecture
#     (llama-bench and llama-quantize only);
# R2. the TQ2_0 2B-4T-shaped model (written as in step 3 unless it is still there) requantized
#     to Q4_0 by llama-quantize (tokenizer.ggml.model overridden to "none": our synthetic
#     files have no tokenizer), then `llama-bench -ngl 99 -p 512 -n 128 -o json` on it.
# Without nvcc or cmake it says so and stops; nothing of the main check depends on it.
# Each step has its own timeout; a failed step is reported and the next one still runs. The exit
# status is that of the first failed step. The table of results is `summary.txt` in $OUT
# (made with python3 when the device has it; the JSON files are there either way).
set -uo pipefail
cd "$(dirname "$0")/.."
stage=.gpu_check

if [[ "${1:-}" == "--prepare" ]]; then
    set -e
    target="${CARGO_TARGET_DIR:-target}"
    jobs=(-j "${JOBS:-2}")
    cargo build --release --features cuda "${jobs[@]}" --bin bitnet
    test_bin="$(cargo test --release --features cuda "${jobs[@]}" --test gpu --no-run 2>&1 |
        sed -n 's/.*Executable tests\/gpu.rs (\(.*\))$/\1/p' | tail -1)"
    [[ -x "$test_bin" ]] || { echo "gpu_check: no test binary found" >&2; exit 1; }
    mkdir -p "$stage"
    exclude="$(git rev-parse --git-path info/exclude)" # .git is a file in a worktree
    mkdir -p "$(dirname "$exclude")"
    grep -qx "/$stage/" "$exclude" 2>/dev/null || echo "/$stage/" >>"$exclude"
    cp "$target/release/bitnet" "$stage/bitnet"
    cp "$test_bin" "$stage/gpu"
    strip --strip-debug "$stage/bitnet" "$stage/gpu"
    # The pinned reference's source, for the optional --ref call.
    cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"
    src="$cache/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp"
    [[ -f "$src/CMakeLists.txt" ]] || bash cpp_ref/fetch_sdist.sh >&2
    if [[ ! -s "$stage/llama-src.tar.xz" || "$src/CMakeLists.txt" -nt "$stage/llama-src.tar.xz" ]]; then
        tar -C "$src" -cJf "$stage/llama-src.tar.xz" --exclude=./models --exclude=./docs \
            --exclude=./.git --exclude=./tools/ui --exclude=./benches .
    fi
    du -sh "$stage"/*
    total=$(du -sm "$stage" | cut -f1)
    ((total < 64)) || { echo "gpu_check: $stage is ${total} MB, over run's 64 MiB carry" >&2; exit 1; }
    echo "gpu_check: now, on the GPU machine: run(command='bash benches/gpu_check.sh', carry=['$stage'], timeout_s=540)"
    echo "gpu_check: optional, if device time is left: run(command='bash benches/gpu_check.sh --ref', carry=['$stage'], timeout_s=600)"
    exit 0
fi
mode="${1:-check}"

out="${OUT:-/tmp/gpu_check}"
mkdir -p "$out"
log="$out/check.log"
: >"$log"
say() { echo "gpu_check: $*" | tee -a "$log" >&2; }
status=0
step() { # name timeout_s command...
    local name="$1" limit="$2"
    shift 2
    local t0=$SECONDS
    say "== $name (limit ${limit}s)"
    timeout "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    say "== $name: exit $rc after $((SECONDS - t0)) s"
    if ((rc != 0 && status == 0)); then status=$rc; fi
    return $rc
}

[[ -x "$stage/gpu" && -x "$stage/bitnet" ]] ||
    { say "no $stage/gpu or $stage/bitnet: run 'bash benches/gpu_check.sh --prepare' first and carry $stage"; exit 1; }
chmod +x "$stage"/* 2>/dev/null

nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || say "nvidia-smi failed"
head -15 "$out/nvidia-smi.txt" >>"$log"

# The driver library, if ld.so does not see it (some images mount it under /usr/local/nvidia).
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
    cu="$(find /usr/local/nvidia /usr/lib /usr/lib64 /usr/local/cuda*/compat -name 'libcuda.so.1' 2>/dev/null | head -1)"
    [[ -n "$cu" ]] && export LD_LIBRARY_PATH="$(dirname "$cu")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" && say "libcuda: $cu"
fi

# NVRTC: the CUDA toolkit's, or the one pip installed for PyTorch/CuPy, if ld.so does not see one.
if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so\.1[23]'; then
    nv="$(find /usr/local/cuda*/ /usr/lib /opt -name 'libnvrtc.so.1[23]*' 2>/dev/null |
        grep -v builtins | sort -r | head -1)"
    if [[ -n "$nv" ]]; then
        export BITNET_NVRTC_LIB="$nv"
        export LD_LIBRARY_PATH="$(dirname "$nv")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        say "NVRTC: $nv"
    else
        say "no libnvrtc.so.13 / .12 found: the device cannot be opened"
    fi
fi

export BITNET_GPU_REQUIRE=1 RUST_BACKTRACE=1
models=/tmp/bitnet-gpu-models
mkdir -p "$models"
write_models() {
    [[ -s "$models/bitnet-tq2_0.gguf" && -s "$models/bitnet-b1.58-i2_s.gguf" ]] && return 0
    step "2B-4T-shaped models" 240 env BITNET_GPU_MODELS_DIR="$models" "$stage/gpu" --ignored write_2b4t_models --nocapture
}

summary() {
    command -v python3 >/dev/null 2>&1 || { say "no python3: see the JSON files in $out"; return 0; }
    python3 - "$out" <<'PY' | tee "$out/summary.txt" | tee -a "$log" >&2
import glob, json, os, sys
out = sys.argv[1]
print(f"{'run':34} {'pp512 tok/s':>12} {'tg128 tok/s':>12} {'bw share':>9} {'head cos':>9}")
for f in sorted(glob.glob(f"{out}/bench-*.json")):
    name = os.path.basename(f)[6:-5]
    try:
        j = json.load(open(f))
    except Exception as e:
        print(f"{name:34} unreadable: {e}")
        continue
    cos = j.get("head_cosine_vs_f16")
    print(f"{name:34} {j.get('pp512_tok_s', 0):12.1f} {j.get('tg128_tok_s', 0):12.1f} "
          f"{j.get('bandwidth_share', 0):9.3f} {'' if cos is None else f'{cos:.6f}':>9}")
ref = f"{out}/ref-llama-bench.json"
if os.path.exists(ref):
    for r in json.load(open(ref)):
        kind = f"pp{r['n_prompt']}" if r["n_prompt"] > 0 else f"tg{r['n_gen']}"
        print(f"llama.cpp CUDA Q4_0 {kind:14} {r['avg_ts']:12.1f}")
PY
}

if [[ "$mode" == "--ref" ]]; then
    nvcc="$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc 2>/dev/null | sort -r | head -1)"
    [[ -n "$nvcc" ]] || { say "no nvcc on this device: the llama.cpp CUDA anchor cannot be built here"; exit 1; }
    command -v cmake >/dev/null 2>&1 || { say "no cmake on this device: the llama.cpp CUDA anchor cannot be built here"; exit 1; }
    [[ -s "$stage/llama-src.tar.xz" ]] || { say "no $stage/llama-src.tar.xz: run --prepare first"; exit 1; }
    cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
    ref=/tmp/llama-ref
    if [[ ! -x "$ref/build/bin/llama-bench" ]]; then
        rm -rf "$ref" && mkdir -p "$ref/src"
        tar -C "$ref/src" -xJf "$stage/llama-src.tar.xz"
        step "llama.cpp CUDA configure" 120 cmake -S "$ref/src" -B "$ref/build" -DCMAKE_BUILD_TYPE=Release \
            -DGGML_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="${cc:-90}" \
            -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
            -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF
        step "llama.cpp CUDA build" 420 cmake --build "$ref/build" -j "$(nproc)" --target llama-bench llama-quantize
    fi
    write_models
    q4="$models/bitnet-q4_0.gguf"
    [[ -s "$q4" ]] || step "Q4_0 of the TQ2_0 model" 120 "$ref/build/bin/llama-quantize" --allow-requantize \
        --override-kv tokenizer.ggml.model=str:none "$models/bitnet-tq2_0.gguf" "$q4" Q4_0
    step "llama-bench CUDA Q4_0" 120 sh -c "'$ref/build/bin/llama-bench' -m '$q4' -ngl 99 -p 512 -n 128 -r 3 -o json >'$out/ref-llama-bench.json'"
    cat "$out/ref-llama-bench.json" >>"$log" 2>/dev/null
    summary
    say "done (exit $status); results in $out"
    exit "$status"
fi

step "tests/gpu.rs" 300 "$stage/gpu" --test-threads 1 --nocapture
grep -E "^(test |skipped|.*cosine|.*bit-identical|out of memory|device|system info|no device)" "$log" >"$out/gpu-tests.txt"

if write_models; then
    for m in bitnet-b1.58-i2_s bitnet-tq2_0; do
        for head in f16 q8_0; do
            step "bench $m head $head" 150 sh -c "'$stage/bitnet' bench -m '$models/$m.gguf' -p 512 -n 128 -r 3 --head $head --json --gpu >'$out/bench-$m-$head.json'"
            cat "$out/bench-$m-$head.json" >>"$log"
        done
    done
fi
summary
say "done (exit $status); results in $out"
exit "$status"
