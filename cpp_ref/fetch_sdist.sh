#!/usr/bin/env bash
# Downloads (once) the llama-cpp-python sdist whose vendor/llama.cpp is our C++ reference,
# checks its sha256, unpacks it, and prints the unpacked directory.
#   download: ${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}/dl/llama_cpp_python-0.3.36.tar.gz
#   unpacked: ${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}/sdist/llama_cpp_python-0.3.36/
# Needs cmake (pip prepares the sdist's metadata with scikit-build-core, which wants it).
# Stdout: the unpacked directory, nothing else. Everything else goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"

pkg="llama-cpp-python"
ver="0.3.36"
base="llama_cpp_python-$ver"
sha="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"

dl="$cache/dl"
tarball="$dl/$base.tar.gz"
sdist_root="$cache/sdist"
dest="$sdist_root/$base"
stamp="$dest/.bitnet-sdist.sha256"

log() { echo "fetch_sdist.sh: $*" >&2; }
die() { echo "fetch_sdist.sh: error: $*" >&2; exit 1; }

mkdir -p "$dl" "$sdist_root"
exec 7>"$cache/sdist.lock"
flock 7

if [[ -f "$stamp" && "$(cat "$stamp")" == "$sha" ]]; then
    echo "$dest"
    exit 0
fi

sha_ok() { [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$sha" ]]; }

if [[ -f "$tarball" ]] && ! sha_ok "$tarball"; then
    log "removing $tarball: sha256 mismatch (stale or partial download)"
    rm -f "$tarball"
fi

if [[ ! -f "$tarball" ]]; then
    command -v cmake >/dev/null 2>&1 || die "cmake not found: pip needs it to prepare the $pkg sdist's metadata (Debian: apt-get install cmake)"
    py="$("$repo/tests/models/venv.sh")"
    log "downloading $pkg==$ver sdist"
    "$py" -m pip download --disable-pip-version-check --no-input -q \
        --no-deps --no-binary "$pkg" --no-build-isolation \
        -d "$dl" "$pkg==$ver" >&2 || die "pip download of $pkg==$ver failed"
    [[ -f "$tarball" ]] || die "pip download did not produce $tarball"
    if ! sha_ok "$tarball"; then
        got="$(sha256sum "$tarball" | cut -d' ' -f1)"
        rm -f "$tarball"
        die "sha256 mismatch for $base.tar.gz: expected $sha, got $got (file deleted)"
    fi
fi

log "unpacking $base.tar.gz"
tmp="$(mktemp -d "$sdist_root/.unpack.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$tarball" -C "$tmp" --no-same-owner
[[ -d "$tmp/$base/vendor/llama.cpp" ]] || die "$base.tar.gz has no $base/vendor/llama.cpp"
echo "$sha" >"$tmp/$base/.bitnet-sdist.sha256"
if [[ -e "$dest" ]]; then
    # An older or unverified unpack: move it aside first so the swap is two renames.
    mv "$dest" "$tmp/old"
fi
mv "$tmp/$base" "$dest"
log "ready: $dest"
echo "$dest"
