#!/usr/bin/env bash
# Build the MinIO server (github.com/minio/minio) from the Go module proxy at a pinned version and
# cache it. A no-op when the binary is already in the cache. tests/servers/realservers.py's
# `minio_server` fixture runs it (on loopback, a temporary data directory and free ports) to test
# the minio event source against the real ListenBucketNotification API.
#
#   scripts/minio.sh            # builds if needed; prints the binary's path on stdout
#   scripts/minio.sh --check    # prints the path and exits 0 when built, else exits 1
#
# Environment:
#   EVENTBRIDGE_MINIO_VERSION  module version of github.com/minio/minio (default below)
#   EVENTBRIDGE_MINIO_CACHE    cache root (default ~/.cache/eventbridge/minio)
#   EVENTBRIDGE_MINIO_BIN      exact output path (default $EVENTBRIDGE_MINIO_CACHE/<version>-<patch>/minio);
#                              tests/servers/realservers.py reads the same variables
#   EVENTBRIDGE_BUILD_JOBS     `go build -p` (default 1: the machine has 2 shared cores)
#   GO                         go binary (default: go on PATH, else /usr/local/go/bin/go)
#
# MinIO tags its releases RELEASE.<date>, which are not semantic versions, so the module proxy
# serves its commits as pseudo-versions; here it serves only the newest one (older pseudo-versions
# and RELEASE tags are refused with 403 "This module version is not available"), hence the pin.
#
# The patch: in that version every S3 handler's ResponseWriter is wrapped in a
# trackingResponseWriter (minio commit 52eee5a, 2025-10-23) that does not implement http.Flusher,
# so the streaming ListenBucketNotification answer (what the minio event source and Argo's
# minio-go client read) is held in a 4 KiB buffer instead of being flushed per event: events
# arrive in batches, seconds late, and keep-alive pings never arrive. The build adds one file to
# a writable copy of the served source giving that type a Flush method that forwards to the
# wrapped writer, which is what MinIO releases up to RELEASE.2025-10-15 did in effect.
#
# MinIO is a separate AGPL program: it is built and run only as a test server, never linked in.
set -euo pipefail

VERSION="${EVENTBRIDGE_MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
CACHE_ROOT="${EVENTBRIDGE_MINIO_CACHE:-$HOME/.cache/eventbridge/minio}"
PATCH="flush1"  # bump when the patch below changes, so a cached binary is rebuilt
OUT="${EVENTBRIDGE_MINIO_BIN:-$CACHE_ROOT/$VERSION-$PATCH/minio}"
JOBS="${EVENTBRIDGE_BUILD_JOBS:-1}"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
MODULE="github.com/minio/minio"

if [[ -x "$OUT" ]]; then
    echo "$OUT"
    exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
    echo "minio is not built at $OUT: run scripts/minio.sh" >&2
    exit 1
fi
log() { echo "minio: $*" >&2; }
mkdir -p "$(dirname "$OUT")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK" "$OUT.tmp.$$"' EXIT
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

info="$("$GO" mod download -json "$MODULE@$VERSION")"
srcdir="$(sed -n 's/.*"Dir": "\(.*\)".*/\1/p' <<<"$info")"
[[ -d "$srcdir" && -f "$srcdir/go.sum" ]] || { log "cannot download $MODULE@$VERSION from the module proxy"; exit 1; }
cp -r "$srcdir" "$WORK/minio"
chmod -R u+w "$WORK/minio"
grep -q '^type trackingResponseWriter struct' "$WORK/minio/cmd/api-response.go" || {
    log "cmd/api-response.go has no trackingResponseWriter: review the patch for $VERSION"
    exit 1
}
cat >"$WORK/minio/cmd/eventbridge_flush.go" <<'GO'
package cmd

import "net/http"

// Flush forwards to the wrapped writer so streaming answers (ListenBucketNotification) reach the
// client as they are written. Added by eventbridge's scripts/minio.sh.
func (w *trackingResponseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
GO
start=$SECONDS
(cd "$WORK/minio" && nice -n 10 "$GO" build -p "$JOBS" -ldflags "-s -w" -o "$OUT.tmp.$$" .)
mv "$OUT.tmp.$$" "$OUT"
log "minio $VERSION (+$PATCH) built in $((SECONDS - start))s"
echo "$OUT"
