#!/usr/bin/env bash
# The OpenAPI document of SourceLoop's Authentication Service, exported by
# the npm package itself (issue 15): the contract SourceLoop's clients are
# generated from. Prints the document's path on its last line.
#
#   export.sh            -> ${CARGO_TARGET_DIR:-target}/sourceloop/<key>/openapi.json
#
# The result is cached under target/, keyed by the package version and the
# lock file below, so a rerun does nothing (0.1 s). Uncached it takes about
# 40 s on 2 cores with an empty npm cache, 17 s with npm's cache warm: npm ci
# of 729 packages, a C++ build of bcrypt (5 s), the export itself (2 s).
# The same lock gives the same document byte for byte.
#
# Obstacles met on the way, and what this script does about each:
# - The package ships dist/openapi-spec.js, which boots the LoopBack app and
#   writes the document; it needs no database, but it does load the whole
#   dependency tree, so the package's runtime dependencies must be installed.
# - The package ships no lock file, and its dependencies are caret ranges: a
#   later @sourceloop/core or @loopback/* release would change the document
#   under us (SuccessResponse, the error codes, ... come from those). The
#   tree resolved on the first export is pinned in package-lock.json beside
#   this script, and `npm ci` installs exactly that (integrity-checked).
#   Refresh it with `npm install --package-lock-only` in an unpacked package.
# - `npm install` runs install scripts: the package's own postinstall
#   (`node migration.js`) wants a database, and bcrypt's
#   (`node-pre-gyp install --fallback-to-build`) first downloads a prebuilt
#   binary from GitHub, which this machine cannot reach (and which must not
#   happen at test time anyway). So: --ignore-scripts.
# - Without its native binding, `require('bcrypt')` throws MODULE_NOT_FOUND
#   (lib/binding/napi-v3/bcrypt_lib.node) while the app boots. It is built
#   here from source with node-pre-gyp (`rebuild --build-from-source`), which
#   runs node-gyp: make, a C++ compiler and python3 are needed.
# - node-gyp downloads Node's headers from nodejs.org unless told where they
#   are: --nodedir points it at the running node's own prefix, whose
#   include/node/ holds them (NodeSource's nodejs ships them; with Debian's
#   nodejs they come from libnode-dev, which run.sh installs when missing).
# - dtrace-provider also has a binding.gyp; it is optional (loaded in a
#   try/catch by its users) and left unbuilt.
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=tests/interop/sourceloop
pkg="@sourceloop/authentication-service"
version="19.2.2"
lock="$here/package-lock.json"

die() { echo "sourceloop export: $*" >&2; exit 1; }

key="$version-$(sha256sum < "$lock" | cut -c1-12)"
root="${CARGO_TARGET_DIR:-target}/sourceloop"
out="$root/$key/openapi.json"
if [ -s "$out" ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))["paths"]' "$out" 2>/dev/null; then
    echo "sourceloop export: cached ($out)" >&2
    echo "$out"
    exit 0
fi

command -v node >/dev/null || die "node is missing"
command -v npm >/dev/null || die "npm is missing"
for tool in make g++ python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (node-gyp needs it to build bcrypt)"
done
# The running node's headers, so that node-gyp downloads nothing.
nodedir=$(node -p 'require("path").resolve(process.execPath, "..", "..")')
[ -f "$nodedir/include/node/node.h" ] && [ -f "$nodedir/include/node/common.gypi" ] \
    || die "no Node headers in $nodedir/include/node (Debian: apt-get install libnode-dev)"

build="$root/build-$key"
rm -rf "$build"
mkdir -p "$build" "$(dirname "$out")"
(
    cd "$build"
    npm pack --silent --loglevel=error "$pkg@$version" >/dev/null \
        || die "npm pack $pkg@$version failed"
    tar xzf sourceloop-authentication-service-"$version".tgz
) || exit 1
cp "$lock" "$build/package/package-lock.json"
(
    cd "$build/package"
    npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error \
        >/dev/null || die "npm ci in the unpacked package failed"
    [ -f node_modules/bcrypt/binding.gyp ] || die "bcrypt is not in the package's dependencies any more"
    # npm_config_nodedir too: node-pre-gyp passes its own flags to node-gyp.
    (cd node_modules/bcrypt && npm_config_nodedir="$nodedir" \
        ../.bin/node-pre-gyp rebuild --build-from-source --nodedir="$nodedir" \
        > ../../bcrypt-build.log 2>&1) \
        || { tail -n 30 bcrypt-build.log >&2; die "building bcrypt's binding failed"; }
    node -e 'require("bcrypt")' || die "bcrypt does not load after the build"
    timeout 120 node dist/openapi-spec.js openapi.json >/dev/null \
        || die "node dist/openapi-spec.js failed"
) || exit 1
python3 - "$build/package/openapi.json" <<'PY' || die "the exported document is not an OpenAPI document"
import json, sys
d = json.load(open(sys.argv[1]))
n = sum(len(ops) for ops in d["paths"].values())
assert d["openapi"].startswith("3.") and n > 0, (d.get("openapi"), n)
PY
mv "$build/package/openapi.json" "$out"
rm -rf "$build"
echo "sourceloop export: $pkg@$version -> $out ($(sha256sum < "$out" | cut -c1-16))" >&2
echo "$out"
