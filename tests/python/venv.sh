#!/usr/bin/env bash
# Creates (once) the venv for the llama-cpp-python tests and prints its python's path.
#   venv:  ${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}/venv-py
#   input: tests/python/requirements.txt and the pinned sdist (cpp_ref/fetch_sdist.sh), the
#          package installed Python-only (CMAKE_ARGS switches its own llama.cpp build off), so
#          it runs on whatever LLAMA_CPP_LIB_PATH points at.
# Stdout: the venv's python path, nothing else.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
req="$here/requirements.txt"
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"
venv="$cache/venv-py"
py="$venv/bin/python"
stamp="$venv/.bitnet-requirements.sha256"

log() { echo "python/venv.sh: $*" >&2; }

mkdir -p "$cache"
exec 8>"$cache/venv-py.lock"
flock 8

bash "$root/cpp_ref/fetch_sdist.sh" >/dev/null
tarball="$cache/dl/llama_cpp_python-0.3.36.tar.gz"
[[ -f "$tarball" ]] || { log "error: $tarball missing after fetch_sdist.sh"; exit 1; }
want="$( (sha256sum "$req"; sha256sum "$tarball") | sha256sum | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$py" -c 'import importlib.util as u, fastapi; assert u.find_spec("llama_cpp")' >/dev/null 2>&1; then
    echo "$py"
    exit 0
fi

if ! "$py" -c 'import sys' >/dev/null 2>&1; then
    base="${BITNET_PYTHON:-python3}"
    log "creating $venv with $("$base" --version 2>&1)"
    rm -rf "$venv"
    "$base" -m venv "$venv" >&2
fi
rm -f "$stamp"
log "installing pinned requirements"
"$py" -m pip install --disable-pip-version-check --no-input -q -r "$req" >&2
log "installing llama-cpp-python 0.3.36 from $tarball (Python only: LLAMA_BUILD=OFF)"
CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" "$py" -m pip install --disable-pip-version-check \
    --no-input -q --no-deps --no-build-isolation --force-reinstall "$tarball" >&2
"$py" -c 'import importlib.util as u, fastapi; assert u.find_spec("llama_cpp")' >&2
echo "$want" >"$stamp"
echo "$py"
