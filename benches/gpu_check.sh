#!/usr/bin/env bash
# The CUDA backend's device check (issue 8), in two halves.
#
# Here (a machine with Rust, no GPU needed), build and stage the binaries:
#   bash benches/gpu_check.sh --prepare
# It builds `bitnet` and the tests/gpu.rs test binary in release with --features cuda, strips
# them into .gpu_check/ (git-ignored through .git/info/exclude) and prints the `run` call.
#
# On the GPU machine (no Rust there), from the repository root, carrying .gpu_check:
#   bash benches/gpu_check.sh            (results in $OUT, default /tmp/gpu_check)
# 1. nvidia-smi, and NVRTC located (BITNET_NVRTC_LIB / LD_LIBRARY_PATH) if ld.so cannot see it;
# 2. tests/gpu.rs with BITNET_GPU_REQUIRE=1: GPU vs CPU logits on models of every weight type,
#    prefill == decode bit for bit, out of memory as an error, the C API's n_gpu_layers, NVRTC;
# 3. the 2B-4T-shaped models written on the device (I2_S b1.58 and TQ2_0 bitnet, 1.2 GB each);
# 4. `bitnet bench --gpu --json` on each (pp128, pp512, tg128; 3 repetitions, medians).
# Each step has its own timeout; a failed step is reported and the next one still runs. The exit
# status is that of the first failed step.
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
    grep -qx "/$stage/" .git/info/exclude 2>/dev/null || echo "/$stage/" >>.git/info/exclude
    cp "$target/release/bitnet" "$stage/bitnet"
    cp "$test_bin" "$stage/gpu"
    strip --strip-debug "$stage/bitnet" "$stage/gpu"
    du -sh "$stage"/*
    echo "gpu_check: now, on the GPU machine: run(command='bash benches/gpu_check.sh', carry=['$stage'], timeout_s=480)"
    exit 0
fi

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
step "tests/gpu.rs" 240 "$stage/gpu" --test-threads 1 --nocapture
grep -E "^(test |skipped|.*cosine|.*bit-identical|out of memory|device|system info)" "$log" >"$out/gpu-tests.txt"

models=/tmp/bitnet-gpu-models
mkdir -p "$models"
if step "2B-4T-shaped models" 240 env BITNET_GPU_MODELS_DIR="$models" "$stage/gpu" --ignored write_2b4t_models --nocapture; then
    for m in bitnet-b1.58-i2_s bitnet-tq2_0; do
        step "bench $m" 200 sh -c "'$stage/bitnet' bench -m '$models/$m.gguf' -p 128,512 -n 128 -r 3 --json --gpu >'$out/bench-$m.json'"
        cat "$out/bench-$m.json" | tee -a "$log"
    done
fi
say "done (exit $status); results in $out"
exit "$status"
