#!/usr/bin/env bash
# Prints `export KEY=VALUE` lines that make the Pulumi CLI usable here, for `eval`:
#
#   eval "$(bash tools/pulumi-env.sh)"            # with the plugins command, docker, github
#   eval "$(bash tools/pulumi-env.sh command)"    # only those named (the demo's stack: command)
#
# A `pulumi` already on PATH (installed the usual way, with internet) is used as it is.
# Otherwise the toolchain is built from source, or reused from its cache, by
# tools/build-pulumi.sh (progress on stderr; it builds only the plugins named), and its bin
# directory and PULUMI_HOME are exported. A `pulumi` on PATH that is such a toolchain (an earlier
# `eval` of this script) is used only when its PULUMI_HOME has every plugin named.
# Either way the engine is told not to check for updates.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tools/toolchain-versions.sh
source "$repo_root/tools/toolchain-versions.sh"

# has_plugins PLUGIN...: $PULUMI_HOME holds each plugin at its pinned version (none named: all).
has_plugins() {
  local name version
  (($#)) || set -- command docker github
  for name in "$@"; do
    case $name in
      command) version=$COMMAND_PLUGIN_VERSION ;;
      docker) version=$DOCKER_PLUGIN_VERSION ;;
      github) version=$GITHUB_PLUGIN_VERSION ;;
      *) return 1 ;;  # build-pulumi.sh names the problem
    esac
    [[ -x "${PULUMI_HOME:-/nonexistent}/plugins/resource-$name-v$version/pulumi-resource-$name" ]] || return 1
  done
}

cache_root="${MCP_TOOLS_CACHE:-${HOME:-/tmp}/.cache/mcp-deploy/tools}"
if [[ -z "${MCP_BUILD_PULUMI:-}" ]] && existing=$(command -v pulumi 2>/dev/null) \
  && { [[ $existing != "$cache_root"/* ]] || has_plugins "$@"; }; then
  printf '[toolchain] using %s (%s) from PATH\n' "$existing" "$("$existing" version 2>/dev/null || echo 'version unknown')" >&2
  printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
  exit 0
fi
printf '[toolchain] no pulumi on PATH with the plugins %s: building it from source (or reusing the cache)\n' "${*:-command docker github}" >&2
bin_dir=$(bash "$repo_root/tools/build-pulumi.sh" "$@")
toolchain_dir=$(dirname "$bin_dir")
printf 'export PATH=%q\n' "$bin_dir:$PATH"
printf 'export PULUMI_HOME=%q\n' "$toolchain_dir/pulumi-home"
printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
