#!/usr/bin/env bash
# Builds (once) llama-server's web UI from the pinned sdist's tools/ui with npm and prints the
# directory to pass to `llama-server --path`. The hub download llama.cpp's CMake would do is not
# reachable; the npm registry is.
#
#   tests/server/ui_build.sh            -> stdout: dist=<dir>  ui_src=<dir with node_modules>
#
# Cache: ${BITNET_CACHE_DIR:-~/.cache/bitnet-rs}/ui/<key>/ (key: sdist tarball sha256, node
# major version); the npm download cache sits in .../ui/npm. Staged in a temporary directory
# and renamed into place when complete (a killed build is redone, never half-used); flock makes
# concurrent runs wait for one build.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${BITNET_CACHE_DIR:-$HOME/.cache/bitnet-rs}"

log() { echo "ui_build.sh: $*" >&2; }
die() { echo "ui_build.sh: error: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "node not found (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm not found (Debian: apt-get install npm)"

sdist="$(bash "$root/cpp_ref/fetch_sdist.sh")"
ui_src="$sdist/vendor/llama.cpp/tools/ui"
[[ -f "$ui_src/package-lock.json" ]] || die "$ui_src/package-lock.json missing"

node_major="$(node -p 'process.versions.node.split(".")[0]')"
tarball_sha="$(cat "$sdist/.bitnet-sdist.sha256")"
key="$(printf 'sdist=%s node=%s script=%s\n' "$tarball_sha" "$node_major" \
    "$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)" | sha256sum | cut -c1-16)"

base="$cache/ui"
final="$base/$key"
mkdir -p "$base"
exec 9>"$base/build.lock"
flock 9

print() {
    echo "dist=$final/src/dist"
    echo "ui_src=$final/src"
}

if [[ -f "$final/.bitnet-ui.stamp" ]]; then
    print
    exit 0
fi

stage="$(mktemp -d "$base/stage.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
log "building the web UI in $stage (npm ci + vite build; cached under $final)"
cp -r "$ui_src" "$stage/src"
cd "$stage/src"
export npm_config_cache="$base/npm"
t0=$SECONDS
npm ci --no-audit --no-fund --loglevel=error >&2
log "npm ci: $((SECONDS - t0)) s"
t0=$SECONDS
# build.json's version (the UI shows it); the sdist's llama.cpp has no git metadata.
LLAMA_BUILD_NUMBER=0 npm run build >&2
log "npm run build: $((SECONDS - t0)) s"
[[ -f dist/index.html ]] || die "the build wrote no dist/index.html"
date -u +%FT%TZ >"$stage/.bitnet-ui.stamp"
rm -rf "$final"
mv "$stage" "$final"
trap - EXIT
print
