#!/usr/bin/env bash
# Build the sample app image (stands in for the MCP API) without pulling any base image.
#
#   app/build.sh VERSION MODE IMAGE_REF [--push]
#
# VERSION   reported by GET /api/v1/health, e.g. v1
# MODE      ok | crash | error500 | slow | writer | flaky500 | gated | laggy
# IMAGE_REF tag to give the image, e.g. 127.0.0.1:5000/mcp/app:v1
# --push    push IMAGE_REF afterwards (log in to the registry first)
#
#   app/build.sh --source-hash
#
# prints the sha256 of the app sources; every image carries it as the label
# mcp.sample.source-sha256 so callers can tell whether a pushed tag is up to date.
#
#   app/build.sh --context DIR
#
# only writes the Docker build context into DIR (the static binary and the Dockerfile), for a
# builder other than this script: the Pulumi program's `mcp:image.prepare` step, before
# pulumi-docker builds and pushes the image. The binary is reproducible (-trimpath, same Go):
# unchanged sources give a byte-identical context, so Pulumi sees no change and builds nothing.
set -euo pipefail

APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '[app-build] %s\n' "$*" >&2; }
die() { printf '[app-build] error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<USAGE
usage: $(basename "$0") VERSION MODE IMAGE_REF [--push]
       $(basename "$0") --source-hash
       $(basename "$0") --context DIR

Build the sample app (Go, static, FROM scratch) as IMAGE_REF.
  VERSION    version reported by /api/v1/health (e.g. v1)
  MODE       ok | crash | error500 | slow | writer | flaky500 | gated | laggy
  IMAGE_REF  image reference (e.g. 127.0.0.1:5000/mcp/app:v1)
  --push     docker push IMAGE_REF after the build
  --source-hash  print the sha256 of the sources (image label mcp.sample.source-sha256)
  --context DIR  only write the build context (binary + Dockerfile) into DIR, build no image

Example: $(basename "$0") v1 ok 127.0.0.1:5000/mcp/app:v1 --push
USAGE
}

# Files that make up the image; their combined hash labels the image.
SOURCES=(main.go go.mod Dockerfile build.sh)

source_hash() {
    (cd "$APP_DIR" && sha256sum "${SOURCES[@]}") | sha256sum | cut -d' ' -f1
}

if [[ $# -ge 1 && ( "$1" == "-h" || "$1" == "--help" ) ]]; then
    usage
    exit 0
fi
if [[ $# -eq 1 && "$1" == "--source-hash" ]]; then
    source_hash
    exit 0
fi
need_go() {
    command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
    command -v go >/dev/null 2>&1 || die "go not found: install Go (https://go.dev/dl/) or put it on PATH"
}

# compile_into DIR: the static binary the Dockerfile copies (mcp-sample-app), and the Dockerfile.
compile_into() {
    log "compiling static binary (go $(go env GOVERSION))"
    (
        cd "$APP_DIR"
        CGO_ENABLED=0 GOOS=linux GOFLAGS=-mod=mod GOTOOLCHAIN=local \
            go build -trimpath -ldflags='-s -w' -o "$1/mcp-sample-app" .
    ) || die "go build failed (see the compiler output above)"
    install -m 0644 "$APP_DIR/Dockerfile" "$1/Dockerfile"
}

if [[ $# -ge 1 && "$1" == "--context" ]]; then
    [[ $# -eq 2 && -n "$2" ]] || { usage >&2; die "--context needs one directory, e.g. --context .build/app-context"; }
    need_go
    target=$(realpath -m -- "$2")  # absolute: the compiler runs in $APP_DIR
    staging="$target.tmp.$$"
    rm -rf "$staging"
    mkdir -p "$staging"
    trap 'rm -rf "$staging"' EXIT
    compile_into "$staging"
    rm -rf "$target"
    mv "$staging" "$target"
    log "build context ready in $target"
    exit 0
fi

if [[ $# -lt 3 || $# -gt 4 ]]; then
    usage >&2
    exit 2
fi

VERSION="$1"
MODE="$2"
IMAGE_REF="$3"
PUSH=0
if [[ $# -eq 4 ]]; then
    [[ "$4" == "--push" ]] || { usage >&2; die "unknown option '$4' (only --push is accepted)"; }
    PUSH=1
fi

[[ "$VERSION" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] \
    || die "invalid VERSION '$VERSION': use letters, digits, '.', '_' or '-' (e.g. v1)"
case "$MODE" in
    ok | crash | error500 | slow | writer | flaky500 | gated | laggy) ;;
    *) die "invalid MODE '$MODE': use one of ok, crash, error500, slow, writer, flaky500, gated, laggy" ;;
esac
[[ "$IMAGE_REF" =~ ^[a-z0-9][A-Za-z0-9._:/@-]*$ ]] \
    || die "invalid IMAGE_REF '$IMAGE_REF' (e.g. 127.0.0.1:5000/mcp/app:v1)"

need_go
command -v docker >/dev/null 2>&1 || die "docker not found: run 'local/server.sh install'"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker engine: run 'local/server.sh up' (or start dockerd)"

CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT

compile_into "$CONTEXT"

log "building image $IMAGE_REF (version=$VERSION mode=$MODE)"
docker build --quiet \
    --build-arg "VERSION=$VERSION" \
    --build-arg "MODE=$MODE" \
    --label "mcp.sample.source-sha256=$(source_hash)" \
    --tag "$IMAGE_REF" \
    "$CONTEXT" >/dev/null || die "docker build failed for $IMAGE_REF (see the output above)"

if [[ "$PUSH" -eq 1 ]]; then
    log "pushing $IMAGE_REF"
    docker push "$IMAGE_REF" >/dev/null \
        || die "docker push $IMAGE_REF failed: log in first (docker login <registry>) and check the registry is up ('local/server.sh status')"
fi
log "done: $IMAGE_REF"
printf '%s\n' "$IMAGE_REF"
