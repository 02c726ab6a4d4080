#!/usr/bin/env bash
# Build (or reuse) the Pulumi toolchain this project runs on, for machines without internet.
#
# With internet, install Pulumi the usual way (https://www.pulumi.com/docs/install/) and its
# plugins are fetched on first use: this script is not needed. Without it, this script builds
#   - the `pulumi` CLI                  from the Go module proxy (github.com/pulumi/pulumi/pkg/v3)
#   - `pulumi-language-python` (+ shim) from ../shared/vendor/pulumi-language-python
#   - `pulumi-resource-command`         from ../shared/vendor/pulumi-command/provider
#   - `pulumi-resource-docker`          from ../shared/vendor/pulumi-docker (upstream patched first)
#   - `pulumi-resource-github`          from ../shared/vendor/pulumi-github
# Each part is built once into its own cache directory keyed by its version
# (<cache>/parts/<part>-<version>), so a version change rebuilds only that part. The parts are
# then assembled into a toolchain directory keyed by all the versions, with the plugins installed
# into its own PULUMI_HOME; it is reused while those versions stay the same. The script prints on
# stdout the directory to put first on PATH (progress goes to stderr).
#
#   bash tools/build-pulumi.sh          # build when missing, print the bin directory
#
# Callers use tools/pulumi-env.sh, which prefers a `pulumi` already on PATH and otherwise runs
# this script and exports its bin directory, PULUMI_HOME (where the plugins are installed) and the
# settings that keep the engine from reaching for the internet.
#
# Two runs at once (two test sessions on one machine) do not build twice: the second waits for
# the first (flock on <cache>/.build.lock) and then reuses what it built.
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
toolchain_dir="$cache_root/pulumi-${PULUMI_VERSION}-python-${PULUMI_VERSION}-command-${COMMAND_PLUGIN_VERSION}-docker-${DOCKER_PLUGIN_VERSION}-github-${GITHUB_PLUGIN_VERSION}"
bin_dir="$toolchain_dir/bin"
pulumi_home="$toolchain_dir/pulumi-home"
parts_dir="$cache_root/parts"
# The toolchain directory of the layout before the parts cache (CLI, language host and command
# plugin only): its binaries seed the parts cache instead of being rebuilt.
previous_layout_dir="$cache_root/pulumi-${PULUMI_VERSION}-python-${PULUMI_VERSION}-command-${COMMAND_PLUGIN_VERSION}"

# name version: the resource plugins this toolchain installs.
PLUGINS=(
  "command $COMMAND_PLUGIN_VERSION"
  "docker $DOCKER_PLUGIN_VERSION"
  "github $GITHUB_PLUGIN_VERSION"
)

log() { printf '[toolchain] %s\n' "$*" >&2; }
die() { printf '[toolchain] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 0 ]] || die "unexpected argument '$1' (this script takes none)"

print_result() { printf '%s\n' "$bin_dir"; }

# Everything present and answering with the right version: reuse it.
toolchain_ready() {
  [[ -x "$bin_dir/pulumi" && -x "$bin_dir/pulumi-language-python" \
     && -x "$bin_dir/pulumi-language-python-exec" && -f "$toolchain_dir/.complete" ]] || return 1
  [[ "$("$bin_dir/pulumi" version 2>/dev/null)" == "v${PULUMI_VERSION}" ]] || return 1
  local plugin name version
  for plugin in "${PLUGINS[@]}"; do
    read -r name version <<<"$plugin"
    [[ -x "$pulumi_home/plugins/resource-$name-v$version/pulumi-resource-$name" ]] || return 1
  done
}

if toolchain_ready; then
  log "reusing the toolchain in $toolchain_dir"
  print_result
  exit 0
fi

mkdir -p "$parts_dir"
exec 9>"$cache_root/.build.lock"
if ! flock -n 9; then
  log "another build of the toolchain is running: waiting for it (flock $cache_root/.build.lock)"
  flock 9
fi
if toolchain_ready; then
  log "reusing the toolchain in $toolchain_dir (built by the run we waited for)"
  print_result
  exit 0
fi

work=$(mktemp -d "$cache_root/.pulumi-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0
started=$SECONDS

elapsed() { printf '%ds' "$((SECONDS - started))"; }

need_go() {
  command -v go >/dev/null 2>&1 || die "'go' is not on PATH: install Go >= 1.25 to build the Pulumi toolchain (or install Pulumi the usual way)"
}

need_vendor() {
  [[ -d "$vendor_dir/$1" ]] \
    || die "vendored source $1 not found in $vendor_dir (set MCP_VENDOR_DIR to the folder holding pulumi-language-python/, pulumi-command/, pulumi-docker/ and pulumi-github/)"
}

# A writable copy of a vendored folder: the builds write into the tree (go.mod, generated
# schema, patches), and CI gets the vendor folder read-only.
vendor_copy() {
  local source=$1 dest=$2
  need_vendor "$source"
  cp -R "$vendor_dir/$source" "$dest"
  chmod -R u+w "$dest"
}

# A command (a build, or `go generate` of a schema) that prints a heartbeat every 30 s so a long
# cold build never looks hung; its output goes to $work/LABEL.log, shown when it fails.
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

# part_dir PART VERSION: where a built part lives in the cache.
part_dir() { printf '%s/%s-%s' "$parts_dir" "$1" "$2"; }

# Moves the binaries built into $work/out/PART into the parts cache, atomically.
store_part() {
  local part=$1 version=$2 dest
  dest=$(part_dir "$part" "$version")
  touch "$work/out/$part/.complete"
  rm -rf "$dest"
  mv "$work/out/$part" "$dest"
}

# Seeds a part from the previous layout's toolchain directory, when it holds that binary.
seed_part() {
  local part=$1 version=$2; shift 2
  local file
  [[ -f "$previous_layout_dir/.complete" ]] || return 1
  for file in "$@"; do [[ -x "$previous_layout_dir/$file" ]] || return 1; done
  mkdir -p "$work/out/$part"
  for file in "$@"; do install -m 0755 "$previous_layout_dir/$file" "$work/out/$part/"; done
  store_part "$part" "$version"
}

# 1. The CLI, through a wrapper module that requires pkg/v3 at the pinned version.
build_cli() {
  need_go
  mkdir -p "$work/cli" "$work/out/cli"
  cat >"$work/cli/go.mod" <<GOMOD
module mcp-deploy/pulumi-cli

go 1.25

require github.com/pulumi/pulumi/pkg/v3 v${PULUMI_VERSION}

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
GOMOD
  cat >"$work/cli/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
GO
  (cd "$work/cli" && go mod tidy >"$work/cli-tidy.log" 2>&1) || { tail -n 40 "$work/cli-tidy.log" >&2; die "resolving the CLI's modules failed"; }
  go_build_with_progress pulumi-cli bash -c "cd '$work/cli' && go build -trimpath \
    -ldflags '-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_VERSION}' \
    -o '$work/out/cli/pulumi' github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
  [[ "$("$work/out/cli/pulumi" version)" == "v${PULUMI_VERSION}" ]] || die "the built CLI does not report v${PULUMI_VERSION}"
}

# 2. The Python language host, from a writable copy of the vendored source.
build_language_python() {
  need_go
  mkdir -p "$work/out/language-python"
  vendor_copy pulumi-language-python "$work/language-python"
  (
    cd "$work/language-python"
    go mod edit -dropreplace=github.com/pulumi/pulumi/pkg/v3 -dropreplace=github.com/pulumi/pulumi/sdk/v3 \
      -require="github.com/pulumi/pulumi/pkg/v3@v${PULUMI_VERSION}" \
      -require="github.com/pulumi/pulumi/sdk/v3@v${PULUMI_VERSION}"
    go mod tidy
  ) >"$work/language-tidy.log" 2>&1 || { tail -n 40 "$work/language-tidy.log" >&2; die "resolving the language host's modules failed"; }
  go_build_with_progress pulumi-language-python bash -c "cd '$work/language-python' && go build -trimpath \
    -ldflags '-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_VERSION}' \
    -o '$work/out/language-python/pulumi-language-python' ."
  install -m 0755 "$work/language-python/pulumi-language-python-exec" "$work/out/language-python/"
}

# 3. The command provider plugin.
build_command() {
  need_go
  mkdir -p "$work/out/command"
  vendor_copy pulumi-command/provider "$work/command"
  go_build_with_progress pulumi-resource-command bash -c "cd '$work/command' && go build -trimpath \
    -ldflags '-s -w -X github.com/pulumi/pulumi-command/provider/pkg/version.Version=${COMMAND_PLUGIN_VERSION}' \
    -o '$work/out/command/pulumi-resource-command' ./cmd/pulumi-resource-command"
}

# 4. The docker provider plugin: upstream patched first, the schema embedded by `go generate`
#    (it replaces ../upstream, so the copy keeps provider/, upstream/ and patches/ side by side).
build_docker() {
  need_go
  mkdir -p "$work/out/docker" "$work/docker"
  vendor_copy pulumi-docker/provider "$work/docker/provider"
  vendor_copy pulumi-docker/upstream "$work/docker/upstream"
  vendor_copy pulumi-docker/patches "$work/docker/patches"
  local patch_file
  for patch_file in "$work"/docker/patches/*.patch; do
    patch -d "$work/docker/upstream" -p1 --forward --quiet <"$patch_file" >"$work/docker-patch.log" 2>&1 \
      || { cat "$work/docker-patch.log" >&2; die "applying $(basename "$patch_file") to the docker provider's upstream failed"; }
  done
  go_build_with_progress docker-schema bash -c "cd '$work/docker/provider' \
    && VERSION='$DOCKER_PLUGIN_VERSION' go generate ./cmd/pulumi-resource-docker/main.go"
  go_build_with_progress pulumi-resource-docker bash -c "cd '$work/docker/provider' && go build -trimpath -tags no_compose \
    -ldflags '-s -w -X github.com/pulumi/pulumi-docker/provider/v5/pkg/version.Version=${DOCKER_PLUGIN_VERSION}' \
    -o '$work/out/docker/pulumi-resource-docker' ./cmd/pulumi-resource-docker"
}

# 5. The github provider plugin (it replaces ../upstream, so provider/ and upstream/ stay side by side).
build_github() {
  need_go
  mkdir -p "$work/out/github" "$work/github"
  vendor_copy pulumi-github/provider "$work/github/provider"
  vendor_copy pulumi-github/upstream "$work/github/upstream"
  go_build_with_progress github-schema bash -c "cd '$work/github/provider' \
    && VERSION='$GITHUB_PLUGIN_VERSION' go generate ./cmd/pulumi-resource-github/main.go"
  go_build_with_progress pulumi-resource-github bash -c "cd '$work/github/provider' && go build -trimpath \
    -ldflags '-s -w -X github.com/pulumi/pulumi-github/provider/v6/pkg/version.Version=${GITHUB_PLUGIN_VERSION}' \
    -o '$work/out/github/pulumi-resource-github' ./cmd/pulumi-resource-github"
}

# PART VERSION BUILDER LABEL NOTE FILES-to-seed-from-the-previous-layout|-   ('~' is a space)
PARTS=(
  "cli $PULUMI_VERSION build_cli the~pulumi~CLI (from~the~Go~module~proxy;~cold:~6~min) bin/pulumi"
  "language-python $PULUMI_VERSION build_language_python pulumi-language-python (~1~min) bin/pulumi-language-python bin/pulumi-language-python-exec"
  "command $COMMAND_PLUGIN_VERSION build_command pulumi-resource-command (cold:~3~min) plugin-src/pulumi-resource-command"
  "docker $DOCKER_PLUGIN_VERSION build_docker pulumi-resource-docker (cold:~5.5~min,~1.4~GB~peak~memory) -"
  "github $GITHUB_PLUGIN_VERSION build_github pulumi-resource-github (cold:~2-4~min) -"
)

step=0
for entry in "${PARTS[@]}"; do
  read -r part version builder label note seed_files <<<"$entry"
  step=$((step + 1))
  label=${label//\~/ }
  note=${note//\~/ }
  if [[ -f "$(part_dir "$part" "$version")/.complete" ]]; then
    log "$step/${#PARTS[@]} $part v$version: cached in $(part_dir "$part" "$version")"
    continue
  fi
  # shellcheck disable=SC2086  # seed_files is a list of file names without spaces
  if [[ "$seed_files" != "-" ]] && seed_part "$part" "$version" $seed_files; then
    log "$step/${#PARTS[@]} $part v$version: reused from $previous_layout_dir"
    continue
  fi
  log "$step/${#PARTS[@]} building $label v$version $note"
  "$builder"
  store_part "$part" "$version"
  log "  $part v$version built ($(elapsed))"
done

# Assemble: the binaries, then each plugin into this toolchain's own PULUMI_HOME.
log "assembling the toolchain in $toolchain_dir"
rm -rf "$toolchain_dir"
mkdir -p "$bin_dir" "$pulumi_home"
install -m 0755 "$(part_dir cli "$PULUMI_VERSION")/pulumi" "$bin_dir/"
install -m 0755 "$(part_dir language-python "$PULUMI_VERSION")"/pulumi-language-python* "$bin_dir/"
for plugin in "${PLUGINS[@]}"; do
  read -r name version <<<"$plugin"
  PULUMI_HOME="$pulumi_home" PULUMI_SKIP_UPDATE_CHECK=true \
    "$bin_dir/pulumi" plugin install resource "$name" "$version" \
    --file "$(part_dir "$name" "$version")/pulumi-resource-$name" >&2 \
    || die "pulumi plugin install resource $name $version failed"
done
[[ "$("$bin_dir/pulumi" version)" == "v${PULUMI_VERSION}" ]] || die "the built CLI does not report v${PULUMI_VERSION}"
touch "$toolchain_dir/.complete"
toolchain_ready || die "the assembled toolchain in $toolchain_dir is incomplete"
log "toolchain ready in $toolchain_dir ($(elapsed))"
print_result
