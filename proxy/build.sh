#!/usr/bin/env bash
# Build the blue-green proxy image (Caddy, static, FROM scratch) without pulling any image.
#
#   proxy/build.sh IMAGE_REF [--push]
#   proxy/build.sh IMAGE_REF --stock-layout [--push]
#   proxy/build.sh --source-hash
#
# Caddy is built from its Go module (github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION)
# with CGO_ENABLED=0; the binary is cached in ${XDG_CACHE_HOME:-~/.cache}/mcp-deploy/.
# Every image carries the label mcp.proxy.source-sha256 (hash of this dir + the version) so
# callers can tell whether a pushed tag is up to date.
set -euo pipefail

CADDY_VERSION="${CADDY_VERSION:-v2.11.9}"
PROXY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/mcp-deploy"

log() { printf '[proxy-build] %s\n' "$*" >&2; }
die() { printf '[proxy-build] error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<USAGE
usage: $(basename "$0") IMAGE_REF [--stock-layout] [--push]
       $(basename "$0") --source-hash

Build the blue-green proxy image (Caddy $CADDY_VERSION, static, FROM scratch) as IMAGE_REF.
  IMAGE_REF      image reference (e.g. 127.0.0.1:5000/mcp/proxy:caddy-2.11.9)
  --stock-layout a stand-in for the official caddy image where it cannot be pulled (the
                 tests, here): caddy at /usr/bin/caddy, the official image's command, no
                 launcher and no mcp.proxy.caddy-version label, so the deploy scripts run it
                 as they run a stock image
  --push         docker push IMAGE_REF after the build
  --source-hash  print the sha256 of the sources (image label mcp.proxy.source-sha256)
Environment: CADDY_VERSION (default v2.11.9).
USAGE
}

source_hash() {
    { (cd "$PROXY_DIR" && sha256sum Dockerfile build.sh launcher/main.go launcher/go.mod); printf '%s\n' "$CADDY_VERSION"; } |
        sha256sum | cut -d' ' -f1
}

if [[ $# -ge 1 && ( "$1" == "-h" || "$1" == "--help" ) ]]; then
    usage
    exit 0
fi
if [[ $# -eq 1 && "$1" == "--source-hash" ]]; then
    source_hash
    exit 0
fi
if [[ $# -lt 1 || $# -gt 3 ]]; then
    usage >&2
    exit 2
fi
IMAGE_REF="$1"
shift
PUSH=0 STOCK_LAYOUT=0
for option in "$@"; do
    case $option in
        --push) PUSH=1 ;;
        --stock-layout) STOCK_LAYOUT=1 ;;
        *) usage >&2; die "unknown option '$option' (--push and --stock-layout are accepted)" ;;
    esac
done
[[ "$IMAGE_REF" =~ ^[a-z0-9][A-Za-z0-9._:/@-]*$ ]] \
    || die "invalid IMAGE_REF '$IMAGE_REF' (e.g. 127.0.0.1:5000/mcp/proxy:caddy-2.11.9)"
[[ "$CADDY_VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "invalid CADDY_VERSION '$CADDY_VERSION' (e.g. v2.11.9)"

command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null 2>&1 || die "go not found: install Go or put it on PATH"
command -v docker >/dev/null 2>&1 || die "docker not found: run 'local/server.sh install'"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker engine: run 'local/server.sh up'"

BIN="$CACHE_DIR/caddy-$CADDY_VERSION-static"
if [[ ! -x "$BIN" ]]; then
    mkdir -p "$CACHE_DIR"
    gobin="$(mktemp -d "$CACHE_DIR/gobin.XXXXXX")"
    log "building caddy $CADDY_VERSION from its Go module (CGO_ENABLED=0; takes a few minutes once)"
    CGO_ENABLED=0 GOOS=linux GOTOOLCHAIN=local GOBIN="$gobin" \
        go install -trimpath -ldflags='-s -w' "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION" \
        || { rm -rf "$gobin"; die "go install of caddy $CADDY_VERSION failed (see above)"; }
    mv -f "$gobin/caddy" "$BIN"
    rm -rf "$gobin"
fi
"$BIN" version >&2 || die "$BIN does not run"

CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
cp "$BIN" "$CONTEXT/caddy"
if [[ $STOCK_LAYOUT -eq 1 ]]; then
    # The official image's shape (library/caddy): no entrypoint, caddy on PATH, its command.
    cat >"$CONTEXT/Dockerfile" <<'DOCKERFILE'
FROM scratch
ENV PATH=/usr/bin XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
COPY caddy /usr/bin/caddy
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
DOCKERFILE
else
    log "building the launcher (proxy/launcher, stdlib only)"
    (
        cd "$PROXY_DIR/launcher"
        CGO_ENABLED=0 GOOS=linux GOTOOLCHAIN=local go build -trimpath -ldflags='-s -w' -o "$CONTEXT/mcp-proxy-launch" .
    ) || die "go build of proxy/launcher failed"
    cp "$PROXY_DIR/Dockerfile" "$CONTEXT/Dockerfile"
fi
log "building image $IMAGE_REF"
docker build --quiet \
    --build-arg "CADDY_VERSION=$CADDY_VERSION" \
    --label "mcp.proxy.source-sha256=$(source_hash)" \
    --tag "$IMAGE_REF" \
    "$CONTEXT" >/dev/null || die "docker build failed for $IMAGE_REF"
if [[ "$PUSH" -eq 1 ]]; then
    log "pushing $IMAGE_REF"
    docker push "$IMAGE_REF" >/dev/null || die "docker push $IMAGE_REF failed: docker login <registry> first"
fi
log "done: $IMAGE_REF"
printf '%s\n' "$IMAGE_REF"
