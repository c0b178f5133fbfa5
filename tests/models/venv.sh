#!/usr/bin/env bash
# Creates (once) the Python venv used by the test fixtures and prints its python's path.
#   venv:  ${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}/venv
#   input: tests/models/requirements.txt (reinstalled whenever its hash changes)
#   env:   BITNET_PYTHON  interpreter that creates the venv (default: python3)
# Another pinned venv the same way (tests/server/venv.sh):
#   venv.sh --req FILE --name DIRNAME --check 'import x, y'
# Stdout: the venv's python path, nothing else. Everything else goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
name="venv"
check="import gguf, numpy"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --req) req="$2"; shift 2 ;;
        --name) name="$2"; shift 2 ;;
        --check) check="$2"; shift 2 ;;
        *) echo "usage: $0 [--req FILE --name DIRNAME --check PYTHON]" >&2; exit 2 ;;
    esac
done
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"
venv="$cache/$name"
py="$venv/bin/python"
stamp="$venv/.bitnet-requirements.sha256"

log() { echo "venv.sh: $*" >&2; }

mkdir -p "$cache"
exec 8>"$cache/$name.lock"
flock 8

want="$(sha256sum "$req" | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$py" -c "$check" >/dev/null 2>&1; then
    echo "$py"
    exit 0
fi

if ! "$py" -c 'import sys' >/dev/null 2>&1; then
    base="${BITNET_PYTHON:-python3}"
    command -v "$base" >/dev/null 2>&1 || { log "error: '$base' not found; install Python >= 3.11 or set BITNET_PYTHON"; exit 1; }
    log "creating $venv with $("$base" --version 2>&1)"
    rm -rf "$venv"
    "$base" -m venv "$venv" >&2
fi

rm -f "$stamp"
log "installing $(grep -v '^#' "$req" | grep -c .) pinned requirements"
"$py" -m pip install --disable-pip-version-check --no-input -q -r "$req" >&2
"$py" -c "$check" >&2
echo "$want" >"$stamp"
log "ready"
echo "$py"
