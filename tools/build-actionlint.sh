#!/usr/bin/env bash
# Build (or reuse) a pinned actionlint binary and print its absolute path.
#
# actionlint is built from source through the Go module proxy with `go install`,
# so no prebuilt binary has to be downloaded. The binary is cached per version in
#   ${MCP_TOOLS_CACHE:-$HOME/.cache/mcp-deploy/tools}/actionlint-<version>/actionlint
# and reused on later runs. Only the binary path is printed on stdout; progress
# and errors go to stderr.
#
# Environment:
#   MCP_TOOLS_CACHE     cache directory (default: $HOME/.cache/mcp-deploy/tools)
#   ACTIONLINT_VERSION  version to build (default: v1.7.12)
set -euo pipefail

version="${ACTIONLINT_VERSION:-v1.7.12}"
module="github.com/rhysd/actionlint/cmd/actionlint"
cache_root="${MCP_TOOLS_CACHE:-${HOME:-/tmp}/.cache/mcp-deploy/tools}"
bin_dir="${cache_root}/actionlint-${version}"
bin="${bin_dir}/actionlint"

log() { printf 'build-actionlint: %s\n' "$*" >&2; }

# Reuse an existing binary only if it reports the expected version.
if [[ -x "${bin}" ]]; then
  if "${bin}" -version 2>/dev/null | head -n 1 | grep -qxF "${version}"; then
    printf '%s\n' "${bin}"
    exit 0
  fi
  log "cached binary at ${bin} is not ${version}; rebuilding"
fi

if ! command -v go >/dev/null 2>&1; then
  log "error: 'go' is not on PATH; install Go >= 1.24 to build actionlint"
  exit 1
fi

mkdir -p "${bin_dir}"
log "building ${module}@${version} into ${bin_dir}"
# Build into a temporary dir first so a failed/interrupted build never leaves
# a half-written binary that would later be mistaken for a good one.
tmp_dir="$(mktemp -d "${cache_root}/.actionlint-build.XXXXXX")"
trap 'rm -rf "${tmp_dir}"' EXIT
# -mod=mod guards against a global GOFLAGS=-mod=vendor, which `go install pkg@version` rejects.
GOBIN="${tmp_dir}" GOFLAGS="${GOFLAGS:--mod=mod}" CGO_ENABLED=0 \
  go install "${module}@${version}" >&2
mv -f "${tmp_dir}/actionlint" "${bin}"

if ! "${bin}" -version | head -n 1 | grep -qxF "${version}"; then
  log "error: built binary does not report version ${version}"
  exit 1
fi
printf '%s\n' "${bin}"
