#!/usr/bin/env bash
# Build the official `argo` CLI (github.com/argoproj/argo-workflows) from the Go module proxy at a
# pinned release and cache it. A no-op when the binary is already in the cache.
#
#   scripts/argo_cli.sh            # builds if needed; prints the binary's path on stdout
#   scripts/argo_cli.sh --check    # prints the path and exits 0 when built, else exits 1
#
# Environment:
#   EVENTBRIDGE_ARGO_VERSION   argo-workflows release (default below)
#   EVENTBRIDGE_ARGO_CACHE     cache root (default ~/.cache/eventbridge/argo)
#   EVENTBRIDGE_ARGO_BIN       exact output path (default $EVENTBRIDGE_ARGO_CACHE/<version>/argo);
#                              tests/server/test_server_argo_cli.py reads the same variables
#   EVENTBRIDGE_BUILD_JOBS     `go build -p` (default 1: the machine has 2 shared cores)
#   GO                         go binary (default: go on PATH, else /usr/local/go/bin/go)
#
# Why v4: the module proxy serves no github.com/argoproj/argo-workflows/v3 version (403); it serves
# .../v4 (v4.0.5), whose CLI speaks the same argo-server REST API. `go install ...@v4.0.5` fails
# (its ui package embeds files the module zip lacks, see below), hence a wrapper module that
# replaces the release with a patched copy of its served source and copies its replace directives.
set -euo pipefail

VERSION="${EVENTBRIDGE_ARGO_VERSION:-v4.0.5}"
CACHE_ROOT="${EVENTBRIDGE_ARGO_CACHE:-$HOME/.cache/eventbridge/argo}"
OUT="${EVENTBRIDGE_ARGO_BIN:-$CACHE_ROOT/$VERSION/argo}"
JOBS="${EVENTBRIDGE_BUILD_JOBS:-1}"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
MAJOR="${VERSION%%.*}"
MODULE="github.com/argoproj/argo-workflows/$MAJOR"

if [[ -x "$OUT" ]]; then
    echo "$OUT"
    exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
    echo "the argo CLI is not built at $OUT: run scripts/argo_cli.sh" >&2
    exit 1
fi
log() { echo "argo_cli: $*" >&2; }
mkdir -p "$(dirname "$OUT")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK" "$OUT.tmp.$$"' EXIT
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

info="$("$GO" mod download -json "$MODULE@$VERSION")"
modfile="$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' <<<"$info")"
srcdir="$(sed -n 's/.*"Dir": "\(.*\)".*/\1/p' <<<"$info")"
[[ -f "$modfile" && -d "$srcdir" ]] || { log "cannot download $MODULE@$VERSION from the module proxy"; exit 1; }
# The release's ui package embeds dist/app (the web UI, built by yarn in argo's own Makefile), which
# the module zip does not carry, so the package does not compile as served. The CLI never serves
# the UI: build from a writable copy of the served source with a one-file placeholder there.
# (-overlay cannot do it: Go refuses overlays of files in the module cache.)
cp -r "$srcdir" "$WORK/argo-workflows"
chmod -R u+w "$WORK/argo-workflows"
mkdir -p "$WORK/argo-workflows/ui/dist/app"
echo '<!doctype html><title>argo UI not bundled</title>' >"$WORK/argo-workflows/ui/dist/app/index.html"
{
    echo "module eventbridge.local/argo-cli"
    echo
    grep -E '^go ' "$modfile"
    echo
    echo "require $MODULE $VERSION"
    echo
    echo "replace $MODULE => ./argo-workflows"
    echo
    # Copy the release's own replace directives (single-line and block forms), if any, except
    # local-path ones, which cannot resolve outside its repository.
    awk '
        /^replace \($/ { inblock = 1; print; next }
        inblock && /^\)$/ { inblock = 0; print; next }
        inblock { if ($0 !~ /=> *\.\.?\//) print; next }
        /^replace / && $0 !~ /=> *\.\.?\// { print }
    ' "$modfile"
} >"$WORK/go.mod"
cat >"$WORK/tools.go" <<EOF
//go:build tools

// Package tools pins the argo command so \`go mod tidy\` keeps its dependencies.
package tools

import _ "$MODULE/cmd/argo"
EOF
(cd "$WORK" && "$GO" mod tidy >&2)
start=$SECONDS
(cd "$WORK" && nice -n 10 "$GO" build -p "$JOBS" \
    -ldflags "-s -w -X $MODULE.version=$VERSION" \
    -o "$OUT.tmp.$$" "$MODULE/cmd/argo")
mv "$OUT.tmp.$$" "$OUT"
log "argo $VERSION built in $((SECONDS - start))s"
echo "$OUT"
