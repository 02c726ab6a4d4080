#!/usr/bin/env bash
# Prints `export KEY=VALUE` lines that make the Pulumi CLI usable here, for `eval`:
#
#   eval "$(bash tools/pulumi-env.sh)"
#
# A `pulumi` already on PATH (installed the usual way, with internet) is used as it is.
# Otherwise the toolchain is built from source, or reused from its cache, by
# tools/build-pulumi.sh (progress on stderr), and its bin directory and PULUMI_HOME are exported.
# Either way the engine is told not to check for updates.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ -z "${MCP_BUILD_PULUMI:-}" ]] && existing=$(command -v pulumi 2>/dev/null); then
  printf '[toolchain] using %s (%s) from PATH\n' "$existing" "$("$existing" version 2>/dev/null || echo 'version unknown')" >&2
  printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
  exit 0
fi
printf '[toolchain] no pulumi on PATH: building it from source (or reusing the cache)\n' >&2
bin_dir=$(bash "$repo_root/tools/build-pulumi.sh")
toolchain_dir=$(dirname "$bin_dir")
printf 'export PATH=%q\n' "$bin_dir:$PATH"
printf 'export PULUMI_HOME=%q\n' "$toolchain_dir/pulumi-home"
printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
