#!/usr/bin/env bash
# Build a real kube-apiserver and etcd from the Go module proxy, the way envtest ships them, and
# cache them. A no-op when both binaries are already in the cache.
#
#   scripts/k8s_binaries.sh            # builds into $EVENTBRIDGE_K8S_DIR (printed on stdout)
#   scripts/k8s_binaries.sh --check    # prints the dir and exits 0 when both are built, else exits 1
#
# Environment:
#   EVENTBRIDGE_K8S_VERSION    Kubernetes release (default below); staging modules use v0.<minor>.<patch>
#   EVENTBRIDGE_ETCD_VERSION   go.etcd.io/etcd/server/v3 version (default below)
#   EVENTBRIDGE_K8S_CACHE      cache root (default ~/.cache/eventbridge/k8s)
#   EVENTBRIDGE_K8S_DIR        exact output dir (default $EVENTBRIDGE_K8S_CACHE/<k8s>-etcd<etcd>)
#   EVENTBRIDGE_BUILD_JOBS     `go build -p` (default 1: the machine has 2 shared cores)
#   GO                         go binary (default: go on PATH, else /usr/local/go/bin/go)
#
# Why a wrapper module: k8s.io/kubernetes requires its staging modules (k8s.io/api, ...) at v0.0.0,
# so `go install k8s.io/kubernetes/cmd/kube-apiserver@vX` fails; a module requiring it with
# `replace k8s.io/<staging> => k8s.io/<staging> v0.X.Y` for each one builds. etcd's own go.mod
# files use local replace directives, hence a tiny main package calling etcdmain.Main.
set -euo pipefail

K8S_VERSION="${EVENTBRIDGE_K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${EVENTBRIDGE_ETCD_VERSION:-v3.7.3}"
CACHE_ROOT="${EVENTBRIDGE_K8S_CACHE:-$HOME/.cache/eventbridge/k8s}"
OUT_DIR="${EVENTBRIDGE_K8S_DIR:-$CACHE_ROOT/${K8S_VERSION}-etcd${ETCD_VERSION}}"
JOBS="${EVENTBRIDGE_BUILD_JOBS:-1}"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

if [[ -x "$OUT_DIR/kube-apiserver" && -x "$OUT_DIR/etcd" ]]; then
    echo "$OUT_DIR"
    exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
    echo "kube-apiserver and etcd are not built in $OUT_DIR: run scripts/k8s_binaries.sh" >&2
    exit 1
fi
mkdir -p "$OUT_DIR"
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export CGO_ENABLED=0
log() { echo "k8s_binaries: $*" >&2; }

build_etcd() {
    [[ -x "$OUT_DIR/etcd" ]] && return 0
    local dir="$WORK/etcd"
    mkdir -p "$dir"
    cat >"$dir/main.go" <<'EOF'
// Command etcd: the etcd server, built from go.etcd.io/etcd/server/v3 for eventbridge's tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
    (cd "$dir" && "$GO" mod init eventbridge.local/etcd >/dev/null 2>&1 \
        && "$GO" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 \
        && "$GO" mod tidy >&2)
    local start=$SECONDS
    (cd "$dir" && nice -n 10 "$GO" build -p "$JOBS" -ldflags "-s -w" -o "$OUT_DIR/etcd.tmp" .)
    mv "$OUT_DIR/etcd.tmp" "$OUT_DIR/etcd"
    log "etcd $ETCD_VERSION built in $((SECONDS - start))s"
}

build_apiserver() {
    [[ -x "$OUT_DIR/kube-apiserver" ]] && return 0
    local dir="$WORK/apiserver"
    mkdir -p "$dir"
    # The staging modules are the ones k8s.io/kubernetes requires at v0.0.0.
    local modfile
    modfile="$("$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    local staging
    staging="$(awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$modfile" | sort -u)"
    [[ -n "$staging" ]] || { log "no staging modules found in $modfile"; return 1; }
    {
        echo "module eventbridge.local/kube-apiserver"
        echo
        grep -E '^go ' "$modfile"
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
        echo ")"
    } >"$dir/go.mod"
    cat >"$dir/tools.go" <<'EOF'
//go:build tools

// Package tools pins the kube-apiserver command so `go mod tidy` keeps its dependencies.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
EOF
    (cd "$dir" && "$GO" mod tidy >&2)
    local start=$SECONDS
    local minor="${K8S_VERSION#v1.}"
    minor="${minor%%.*}"
    local version_pkg=k8s.io/component-base/version
    local ldflags="-s -w -X $version_pkg.gitVersion=$K8S_VERSION -X $version_pkg.gitMajor=1"
    ldflags+=" -X $version_pkg.gitMinor=$minor -X $version_pkg.gitTreeState=clean"
    (cd "$dir" && nice -n 10 "$GO" build -p "$JOBS" -ldflags "$ldflags" \
        -o "$OUT_DIR/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
    mv "$OUT_DIR/kube-apiserver.tmp" "$OUT_DIR/kube-apiserver"
    log "kube-apiserver $K8S_VERSION built in $((SECONDS - start))s"
}

build_etcd
build_apiserver
echo "$OUT_DIR"
