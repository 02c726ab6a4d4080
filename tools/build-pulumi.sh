#!/usr/bin/env bash
# Build (or reuse) the Pulumi toolchain this project runs on, for machines without internet.
#
# With internet, install Pulumi the usual way (https://www.pulumi.com/docs/install/) and its
# plugins are fetched on first use: this script is not needed. Without it, this script builds
#   - the `pulumi` CLI                  from the Go module proxy (github.com/pulumi/pulumi/pkg/v3)
#   - `pulumi-language-python` (+ shim) from ../shared/vendor/pulumi-language-python
#   - `pulumi-resource-command`         from ../shared/vendor/pulumi-command/provider
# once into a cache directory keyed by their versions, reuses it while those versions stay the
# same, and prints on stdout the directory to put first on PATH (progress goes to stderr).
#
#   bash tools/build-pulumi.sh          # build when missing, print the bin directory
#
# Callers use tools/pulumi-env.sh, which prefers a `pulumi` already on PATH and otherwise runs
# this script and exports its bin directory, PULUMI_HOME (where the plugin is installed) and the
# settings that keep the engine from reaching for the internet.
#
# Environment:
#   MCP_TOOLS_CACHE   cache root (default: $HOME/.cache/mcp-deploy/tools)
#   MCP_VENDOR_DIR    the vendored sources (default: <repo>/../shared/vendor, or that folder
#                     beside the repository this one was cloned from)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tools/toolchain-versions.sh
source "$repo_root/tools/toolchain-versions.sh"

cache_root="${MCP_TOOLS_CACHE:-${HOME:-/tmp}/.cache/mcp-deploy/tools}"
# The vendored sources sit beside this checkout (../shared/vendor), or, for a clone of it, beside
# the repository it was cloned from.
vendor_dir="${MCP_VENDOR_DIR:-}"
if [[ -z "$vendor_dir" ]]; then
  vendor_dir="$repo_root/../shared/vendor"
  origin=$(git -C "$repo_root" remote get-url origin 2>/dev/null || true)
  if [[ ! -d "$vendor_dir" && -d "$origin" ]]; then
    vendor_dir="$origin/../shared/vendor"
  fi
fi
toolchain_dir="$cache_root/pulumi-${PULUMI_VERSION}-python-${PULUMI_VERSION}-command-${COMMAND_PLUGIN_VERSION}"
bin_dir="$toolchain_dir/bin"
pulumi_home="$toolchain_dir/pulumi-home"

log() { printf '[toolchain] %s\n' "$*" >&2; }
die() { printf '[toolchain] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 0 ]] || die "unexpected argument '$1' (this script takes none)"

print_result() { printf '%s\n' "$bin_dir"; }

# Everything present and answering with the right version: reuse it.
toolchain_ready() {
  [[ -x "$bin_dir/pulumi" && -x "$bin_dir/pulumi-language-python" \
     && -x "$bin_dir/pulumi-language-python-exec" && -f "$toolchain_dir/.complete" ]] || return 1
  [[ "$("$bin_dir/pulumi" version 2>/dev/null)" == "v${PULUMI_VERSION}" ]] || return 1
  [[ -x "$pulumi_home/plugins/resource-command-v${COMMAND_PLUGIN_VERSION}/pulumi-resource-command" ]]
}

if toolchain_ready; then
  log "reusing the toolchain in $toolchain_dir"
  print_result
  exit 0
fi

command -v go >/dev/null 2>&1 || die "'go' is not on PATH: install Go >= 1.25 to build the Pulumi toolchain (or install Pulumi the usual way)"
[[ -d "$vendor_dir/pulumi-language-python" && -d "$vendor_dir/pulumi-command/provider" ]] \
  || die "vendored sources not found in $vendor_dir (set MCP_VENDOR_DIR to the folder holding pulumi-language-python/ and pulumi-command/)"

mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/.pulumi-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0
started=$SECONDS

elapsed() { printf '%ds' "$((SECONDS - started))"; }

# A go build that prints a heartbeat every 30 s so a long cold build never looks hung.
go_build_with_progress() {
  local label=$1; shift
  "$@" >"$work/$label.log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do
      sleep 1
      kill -0 "$pid" 2>/dev/null || break
    done
    kill -0 "$pid" 2>/dev/null && log "  $label: still building ($(elapsed) so far)"
  done
  if ! wait "$pid"; then
    tail -n 40 "$work/$label.log" >&2
    die "building $label failed (full log above)"
  fi
}

# 1. The CLI, through a wrapper module that requires pkg/v3 at the pinned version.
log "1/3 building the pulumi CLI v${PULUMI_VERSION} from the Go module proxy (cold: ~6 min on 2 cores)"
mkdir -p "$work/cli"
cat >"$work/cli/go.mod" <<EOF
module mcp-deploy/pulumi-cli

go 1.25

require github.com/pulumi/pulumi/pkg/v3 v${PULUMI_VERSION}

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
EOF
cat >"$work/cli/tools.go" <<'EOF'
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
EOF
(cd "$work/cli" && go mod tidy >"$work/cli-tidy.log" 2>&1) || { tail -n 40 "$work/cli-tidy.log" >&2; die "resolving the CLI's modules failed"; }
go_build_with_progress pulumi-cli bash -c "cd '$work/cli' && go build -trimpath \
  -ldflags '-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_VERSION}' \
  -o '$work/bin/pulumi' github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
log "  pulumi CLI built ($(elapsed))"

# 2. The Python language host, from a writable copy of the vendored source.
log "2/3 building pulumi-language-python v${PULUMI_VERSION} from $vendor_dir (~1 min)"
cp -R "$vendor_dir/pulumi-language-python" "$work/language-python"
chmod -R u+w "$work/language-python"
(
  cd "$work/language-python"
  go mod edit -dropreplace=github.com/pulumi/pulumi/pkg/v3 -dropreplace=github.com/pulumi/pulumi/sdk/v3 \
    -require="github.com/pulumi/pulumi/pkg/v3@v${PULUMI_VERSION}" \
    -require="github.com/pulumi/pulumi/sdk/v3@v${PULUMI_VERSION}"
  go mod tidy
) >"$work/language-tidy.log" 2>&1 || { tail -n 40 "$work/language-tidy.log" >&2; die "resolving the language host's modules failed"; }
go_build_with_progress pulumi-language-python bash -c "cd '$work/language-python' && go build -trimpath \
  -ldflags '-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_VERSION}' \
  -o '$work/bin/pulumi-language-python' ."
install -m 0755 "$work/language-python/pulumi-language-python-exec" "$work/bin/pulumi-language-python-exec"
log "  language host built ($(elapsed))"

# 3. The command provider plugin.
log "3/3 building pulumi-resource-command v${COMMAND_PLUGIN_VERSION} from $vendor_dir (cold: ~3 min)"
cp -R "$vendor_dir/pulumi-command/provider" "$work/command"
chmod -R u+w "$work/command"
go_build_with_progress pulumi-resource-command bash -c "cd '$work/command' && go build -trimpath \
  -ldflags '-s -w -X github.com/pulumi/pulumi-command/provider/pkg/version.Version=${COMMAND_PLUGIN_VERSION}' \
  -o '$work/bin/pulumi-resource-command' ./cmd/pulumi-resource-command"
log "  command plugin built ($(elapsed))"

# Install: the binaries, then the plugin into this toolchain's own PULUMI_HOME.
rm -rf "$toolchain_dir"
mkdir -p "$bin_dir" "$pulumi_home"
install -m 0755 "$work/bin/pulumi" "$work/bin/pulumi-language-python" "$work/bin/pulumi-language-python-exec" "$bin_dir/"
mkdir -p "$toolchain_dir/plugin-src"
install -m 0755 "$work/bin/pulumi-resource-command" "$toolchain_dir/plugin-src/"
PULUMI_HOME="$pulumi_home" PULUMI_SKIP_UPDATE_CHECK=true \
  "$bin_dir/pulumi" plugin install resource command "$COMMAND_PLUGIN_VERSION" \
  --file "$toolchain_dir/plugin-src/pulumi-resource-command" >&2
[[ "$("$bin_dir/pulumi" version)" == "v${PULUMI_VERSION}" ]] || die "the built CLI does not report v${PULUMI_VERSION}"
touch "$toolchain_dir/.complete"
log "toolchain ready in $toolchain_dir ($(elapsed))"
print_result
