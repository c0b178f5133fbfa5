#!/usr/bin/env bash
# Creates (once) the venv for llama-server's pytest suite and our server drivers and prints its
# python's path.
#   venv:  ${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}/venv-srv
#   input: tests/server/requirements.txt (reinstalled whenever its hash changes)
# Stdout: the venv's python path, nothing else.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"
venv="$cache/venv-srv"
py="$venv/bin/python"
stamp="$venv/.bitnet-requirements.sha256"
check='import pytest, requests, aiohttp, openai, wget, prometheus_client'

mkdir -p "$cache"
exec 8>"$cache/venv-srv.lock"
flock 8

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$py" -c "$check" >/dev/null 2>&1; then
    echo "$py"
    exit 0
fi
if ! "$py" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$venv"
    "${BITNET_PYTHON:-python3}" -m venv "$venv" >&2
fi
rm -f "$stamp"
echo "server/venv.sh: installing the pinned requirements into $venv" >&2
"$py" -m pip install --disable-pip-version-check --no-input -q -r "$req" >&2
"$py" -c "$check" >&2
echo "$want" >"$stamp"
echo "$py"
