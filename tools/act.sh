#!/usr/bin/env bash
# Runs this repository's GitHub workflows on this machine with `act`, offline:
#
#   bash tools/act.sh push -W .github/workflows/deploy-production.yml -e event.json \
#     --var PULUMI_STACK=... --secret-file secrets.env ...     # any act arguments follow
#
# What it adds to act's own arguments:
#   - the runner: act v${ACT_VERSION} and pulumi/actions built by tools/build-act.sh (cached);
#   - `-P ubuntu-latest=-self-hosted`: jobs run on this host, not in a container, as on a
#     self-hosted runner (the host's PATH and environment are the runner's);
#   - every action the workflows pin, taken from ../shared/vendor/actions at exactly the pinned
#     commit (`--local-repository owner/repo@<commit>=<folder>`, read from each folder's PINNED;
#     pulumi/actions from its build), with --action-offline-mode: nothing is fetched from GitHub;
#   - the runner's tool cache (~/.cache/act/tool_cache) seeded with this machine's Python and Go,
#     so actions/setup-python and actions/setup-go find them instead of downloading.
#
#   bash tools/act.sh --print-args   # prints the runner arguments (one per line) and exits
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tools/toolchain-versions.sh
source "$repo_root/tools/toolchain-versions.sh"

log() { printf '[act] %s\n' "$*" >&2; }
die() { printf '[act] ERROR: %s\n' "$*" >&2; exit 1; }

vendor_dir="${MCP_VENDOR_DIR:-}"
if [[ -z "$vendor_dir" ]]; then
  vendor_dir="$repo_root/../shared/vendor"
  origin=$(git -C "$repo_root" remote get-url origin 2>/dev/null || true)
  if [[ ! -d "$vendor_dir" && -d "$origin" ]]; then
    vendor_dir="$origin/../shared/vendor"
  fi
fi
[[ -d "$vendor_dir/actions" ]] || die "the vendored actions are not in $vendor_dir/actions (set MCP_VENDOR_DIR)"

built=$(bash "$repo_root/tools/build-act.sh")
act_bin=$(sed -n 's/^act=//p' <<<"$built")
pulumi_actions=$(sed -n 's/^pulumi_actions=//p' <<<"$built")
[[ -x $act_bin && -d $pulumi_actions ]] || die "tools/build-act.sh gave no usable runner: $built"

# The runner's tool cache on the host: what actions/setup-python and actions/setup-go look in.
tool_cache="${XDG_CACHE_HOME:-$HOME/.cache}/act/tool_cache"
seed_tool() {
  local name=$1 version=$2 dir=$3
  local entry="$tool_cache/$name/$version/x64"
  if [[ "$(readlink "$entry" 2>/dev/null)" != "$dir" || ! -f "$entry.complete" ]]; then
    mkdir -p "$(dirname "$entry")"
    rm -rf "$entry"
    ln -s "$dir" "$entry"
    touch "$entry.complete"
    log "tool cache: $name $version -> $dir"
  fi
}
python_bin=$(command -v python3) || die "python3 is not on PATH"
python_version=$("$python_bin" -c 'import platform; print(platform.python_version())')
python_prefix=$("$python_bin" -c 'import sys; print(sys.base_prefix)')
[[ -x "$python_prefix/bin/python3" ]] || die "no python3 in $python_prefix/bin (the tool cache needs a Python prefix)"
[[ -e "$python_prefix/bin/python" ]] || die "no 'python' in $python_prefix/bin: setup-python puts that directory first on PATH and the workflows run 'python'"
seed_tool Python "$python_version" "$python_prefix"
go_bin=$(command -v go) || die "go is not on PATH"
go_version=$("$go_bin" env GOVERSION)
go_version=${go_version#go}
[[ $go_version == "$GO_VERSION" ]] || die "this machine's Go is $go_version, the workflows pin $GO_VERSION (tools/toolchain-versions.sh)"
seed_tool go "$go_version" "$("$go_bin" env GOROOT)"

# act starts a cache server for actions/cache (and an artifact server when given a path) bound
# to this machine's outbound address unless told otherwise: loopback only, the jobs run here.
args=(-P ubuntu-latest=-self-hosted --action-offline-mode
  --cache-server-addr 127.0.0.1 --artifact-server-addr 127.0.0.1)
for pinned in "$vendor_dir"/actions/*/*/PINNED; do
  read -r repository _tag commit <"$pinned"
  folder=$(dirname "$pinned")
  if [[ $repository == pulumi/actions ]]; then
    [[ $commit == "$PULUMI_ACTIONS_COMMIT" ]] || die "$pinned names $commit, tools/toolchain-versions.sh $PULUMI_ACTIONS_COMMIT"
    folder=$pulumi_actions
  fi
  args+=(--local-repository "$repository@$commit=$folder")
done

if [[ ${1:-} == --print-args ]]; then
  printf '%s\n' "$act_bin" "${args[@]}"
  exit 0
fi
exec "$act_bin" "$@" "${args[@]}"
