#!/usr/bin/env bash
# Creates (once) the venv for llama-server's pytest suite and our server drivers and prints its
# python's path: ${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}/venv-srv, from
# tests/server/requirements.txt (reinstalled whenever its hash changes).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../models/venv.sh" --req "$here/requirements.txt" --name venv-srv \
    --check 'import pytest, requests, aiohttp, openai, wget, prometheus_client'
