#!/usr/bin/env bash
# Build (or reuse) the workflow runner that runs .github/workflows/ on this machine:
#   - `act` (nektos/act), from its Go module through the Go module proxy (cold: ~1.5 min)
#   - pulumi/actions at the commit the workflows pin, built with npm from a writable copy of
#     ../shared/vendor/actions/pulumi/actions (its released dist/ is not vendored; cold: ~3 min)
# Each is cached under ${MCP_TOOLS_CACHE:-~/.cache/mcp-deploy/tools} in a directory keyed by its
# version (act-v<version>/, pulumi-actions-v<version>-<commit>/), with the sha256 of what it
# holds recorded in SHA256SUMS when it is written and checked on every reuse: a file that changed
# (or a cache without checksums) is rebuilt, the log saying why. Two runs at once wait for each
# other (flock) instead of building twice.
#
#   bash tools/build-act.sh     # prints `act=<binary>` and `pulumi_actions=<action folder>`
#
# tools/act-env.sh calls this and turns its answer into the environment tests/workflows/ uses.
# The versions are pinned in tools/toolchain-versions.sh (ACT_VERSION, PULUMI_ACTIONS_*).
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
vendor_dir="${MCP_VENDOR_DIR:-}"
if [[ -z "$vendor_dir" ]]; then
  vendor_dir="$repo_root/../shared/vendor"
  origin=$(git -C "$repo_root" remote get-url origin 2>/dev/null || true)
  if [[ ! -d "$vendor_dir" && -d "$origin" ]]; then
    vendor_dir="$origin/../shared/vendor"
  fi
fi
act_dir="$cache_root/act-v${ACT_VERSION}"
actions_dir="$cache_root/pulumi-actions-v${PULUMI_ACTIONS_VERSION}-${PULUMI_ACTIONS_COMMIT}"
actions_source="$vendor_dir/actions/pulumi/actions"

log() { printf '[act] %s\n' "$*" >&2; }
die() { printf '[act] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 0 ]] || die "unexpected argument '$1' (this script takes none)"

# record_sums DIR FILE...: writes DIR/SHA256SUMS, the sha256 of each FILE (relative to DIR).
record_sums() {
  local dir=$1
  shift
  (cd "$dir" && sha256sum -- "$@" >SHA256SUMS.tmp && mv -f SHA256SUMS.tmp SHA256SUMS)
}

# verify_sums DIR: every file DIR/SHA256SUMS lists still has its sha256 (prints the problem).
verify_sums() {
  local dir=$1 out
  [[ -f "$dir/.complete" ]] || { printf 'not complete (%s/.complete is missing)' "$dir"; return 1; }
  [[ -s "$dir/SHA256SUMS" ]] || { printf 'no checksums recorded (%s/SHA256SUMS is missing)' "$dir"; return 1; }
  if ! out=$(cd "$dir" && sha256sum --check --strict --quiet SHA256SUMS 2>&1); then
    printf 'checksum check failed in %s: %s' "$dir" "$(printf '%s' "$out" | tr '\n' ' ')"
    return 1
  fi
}

act_ready() {
  problem=""
  [[ -e "$act_dir" ]] || return 1
  problem=$(verify_sums "$act_dir") || return 1
  if [[ "$("$act_dir/act" --version 2>/dev/null)" != "act version ${ACT_VERSION}" ]]; then
    problem="$act_dir/act does not report version ${ACT_VERSION}"
    return 1
  fi
}

actions_ready() {
  problem=""
  [[ -e "$actions_dir" ]] || return 1
  problem=$(verify_sums "$actions_dir") || return 1
  grep -qxF "pulumi/actions v${PULUMI_ACTIONS_VERSION} ${PULUMI_ACTIONS_COMMIT}" "$actions_dir/PINNED" \
    || { problem="$actions_dir/PINNED does not name v${PULUMI_ACTIONS_VERSION} ${PULUMI_ACTIONS_COMMIT}"; return 1; }
}

print_result() {
  printf 'act=%s\n' "$act_dir/act"
  printf 'pulumi_actions=%s\n' "$actions_dir"
}

problem=""
if act_ready && actions_ready; then
  log "reusing act v${ACT_VERSION} and pulumi/actions v${PULUMI_ACTIONS_VERSION} (checksums verified)"
  print_result
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.act-build.lock"
if ! flock -n 9; then
  log "another build of the workflow runner is running: waiting for it (flock $cache_root/.act-build.lock)"
  flock 9
fi

work=$(mktemp -d "$cache_root/.act-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$SECONDS

# A long command with a heartbeat every 30 s; its output goes to $work/LABEL.log, shown on failure.
run_logged() {
  local label=$1; shift
  "$@" >"$work/$label.log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do
      sleep 1
      kill -0 "$pid" 2>/dev/null || break
    done
    kill -0 "$pid" 2>/dev/null && log "  $label: still building ($((SECONDS - started))s so far)"
  done
  if ! wait "$pid"; then
    tail -n 40 "$work/$label.log" >&2
    die "$label failed (log above)"
  fi
}

if act_ready; then
  log "act v${ACT_VERSION}: cached in $act_dir (checksums verified)"
else
  [[ -z $problem ]] || log "not reusing the cached act: $problem; rebuilding it"
  command -v go >/dev/null 2>&1 || die "'go' is not on PATH: install Go >= 1.24 to build act"
  log "building act v${ACT_VERSION} from the Go module proxy (github.com/nektos/act; cold ~1.5 min)"
  mkdir -p "$work/act"
  # -mod=mod guards against a global GOFLAGS=-mod=vendor; the module's go.sum and the checksum
  # database (no GONOSUMDB/GOPRIVATE/GOINSECURE exemption) verify every module fetched.
  run_logged act env -u GONOSUMDB -u GOPRIVATE -u GOINSECURE GOBIN="$work/act" GOFLAGS=-mod=mod CGO_ENABLED=0 \
    go install -trimpath -ldflags "-s -w -X main.version=${ACT_VERSION}" "github.com/nektos/act@v${ACT_VERSION}"
  [[ "$("$work/act/act" --version)" == "act version ${ACT_VERSION}" ]] \
    || die "the built act does not report version ${ACT_VERSION}: $("$work/act/act" --version 2>&1)"
  record_sums "$work/act" act
  touch "$work/act/.complete"
  rm -rf "$act_dir"
  mv "$work/act" "$act_dir"
  log "act v${ACT_VERSION} built ($((SECONDS - started))s)"
fi

if actions_ready; then
  log "pulumi/actions v${PULUMI_ACTIONS_VERSION}: cached in $actions_dir (checksums verified)"
else
  [[ -z $problem ]] || log "not reusing the cached pulumi/actions: $problem; rebuilding it"
  [[ -f "$actions_source/action.yml" ]] \
    || die "vendored pulumi/actions not found in $actions_source (set MCP_VENDOR_DIR to the folder holding actions/)"
  grep -qxF "pulumi/actions v${PULUMI_ACTIONS_VERSION} ${PULUMI_ACTIONS_COMMIT}" "$actions_source/PINNED" \
    || die "$actions_source/PINNED is not pulumi/actions v${PULUMI_ACTIONS_VERSION} ${PULUMI_ACTIONS_COMMIT} (tools/toolchain-versions.sh)"
  command -v npm >/dev/null 2>&1 || die "'npm' is not on PATH: install Node.js >= 20 and npm to build pulumi/actions"
  log "building pulumi/actions v${PULUMI_ACTIONS_VERSION} with npm from $actions_source (cold ~3 min)"
  # A writable copy: the vendored folder is read-only in CI and the build writes into the tree.
  cp -R "$actions_source" "$work/src"
  chmod -R u+w "$work/src"
  # yarn.lock's resolution, which plain npm refuses over a peer range: --legacy-peer-deps;
  # --ignore-scripts skips husky's git hook install (no .git here).
  run_logged npm-install bash -c "cd '$work/src' && npm install --ignore-scripts --no-audit --no-fund --legacy-peer-deps"
  # Upstream's `build` and `postbuild` scripts (package.json), without the source map.
  run_logged ncc bash -c "cd '$work/src' && npx --no-install ncc build src/main.ts -e typescript -o dist && node scripts/replace-ts.js"
  mkdir -p "$work/action"
  cp -R "$work/src/action.yml" "$work/src/LICENSE" "$work/src/PINNED" "$work/src/dist" "$work/action/"
  chmod -R u+w "$work/action"
  (cd "$work/action" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort >"$work/action-files")
  mapfile -t files <"$work/action-files"
  record_sums "$work/action" "${files[@]}"
  touch "$work/action/.complete"
  rm -rf "$actions_dir"
  mv "$work/action" "$actions_dir"
  log "pulumi/actions v${PULUMI_ACTIONS_VERSION} built ($((SECONDS - started))s)"
fi

act_ready || die "act in $act_dir is unusable: $problem"
actions_ready || die "pulumi/actions in $actions_dir is unusable: $problem"
print_result
