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
# Supply chain: the CLI is built from the wrapper module committed in tools/pulumi-cli/ with
# `-mod=readonly` after `go mod verify`, so a module whose content differs from the committed
# go.sum fails the build. Every cache directory (each part, and the assembled toolchain) records
# the sha256 of each binary it holds in its SHA256SUMS when it is written, and every reuse checks
# them first: a binary that changed since (or a cache without checksums) is never run, it is
# rebuilt, and the log says why.
#
#   bash tools/build-pulumi.sh                 # CLI, language host, all three plugins
#   bash tools/build-pulumi.sh command         # only the plugins named (here what the demo's
#                                              # stack needs: no docker or github)
#
# Each set of plugins is assembled into its own toolchain directory
# (<cache>/pulumi-<v>-python-<v>[-<plugin>-<version>...], the plugins in the order above), so
# asking for fewer plugins never builds the others, and asking for more later builds only the
# parts missing from <cache>/parts.
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
log() { printf '[toolchain] %s\n' "$*" >&2; }
die() { printf '[toolchain] ERROR: %s\n' "$*" >&2; exit 1; }

# name version: the resource plugins a toolchain can install, in the order of its cache key.
ALL_PLUGINS=(
  "command $COMMAND_PLUGIN_VERSION"
  "docker $DOCKER_PLUGIN_VERSION"
  "github $GITHUB_PLUGIN_VERSION"
)
# The plugins asked for (arguments; none: all of them), in ALL_PLUGINS' order.
PLUGINS=()
for plugin in "${ALL_PLUGINS[@]}"; do
  name=${plugin%% *}
  if [[ $# -eq 0 || " $* " == *" $name "* ]]; then PLUGINS+=("$plugin"); fi
done
for arg in "$@"; do
  case $arg in
    command | docker | github) ;;
    *) die "unknown plugin '$arg' (the plugins: command, docker, github)" ;;
  esac
done
toolchain_key=""
for plugin in "${PLUGINS[@]}"; do toolchain_key+="-${plugin/ /-}"; done
# The cache key names every version: the CLI's, the language host's, each plugin's.
toolchain_dir="$cache_root/pulumi-${PULUMI_VERSION}-python-${PULUMI_VERSION}${toolchain_key}"
bin_dir="$toolchain_dir/bin"
pulumi_home="$toolchain_dir/pulumi-home"
parts_dir="$cache_root/parts"
# The toolchain directory of the layout before the parts cache (CLI, language host and command
# plugin only; recognised by its plugin-src/): its binaries seed the parts cache instead of being
# rebuilt. (A command-only toolchain of today's layout has the same name, and no plugin-src/.)
previous_layout_dir="$cache_root/pulumi-${PULUMI_VERSION}-python-${PULUMI_VERSION}-command-${COMMAND_PLUGIN_VERSION}"

# The binaries of a part, relative to its cache directory.
part_files() {
  case $1 in
    cli) printf '%s\n' pulumi ;;
    language-python) printf '%s\n' pulumi-language-python pulumi-language-python-exec ;;
    *) printf '%s\n' "pulumi-resource-$1" ;;
  esac
}

# The binaries of the assembled toolchain, relative to its directory.
toolchain_files() {
  local plugin name version
  printf '%s\n' bin/pulumi bin/pulumi-language-python bin/pulumi-language-python-exec
  for plugin in "${PLUGINS[@]}"; do
    read -r name version <<<"$plugin"
    printf '%s\n' "pulumi-home/plugins/resource-$name-v$version/pulumi-resource-$name"
  done
}

# record_sums DIR FILE...: writes DIR/SHA256SUMS, the sha256 of each FILE (relative to DIR).
record_sums() {
  local dir=$1
  shift
  (cd "$dir" && sha256sum -- "$@" >SHA256SUMS.tmp && mv -f SHA256SUMS.tmp SHA256SUMS)
}

# recorded_sum DIR FILE: the sha256 DIR/SHA256SUMS records for FILE (empty when none).
recorded_sum() {
  [[ -f "$1/SHA256SUMS" ]] || return 0
  awk -v name="$2" '$2 == name { print $1; exit }' "$1/SHA256SUMS"
}

# verify_sums DIR FILE...: every FILE has the sha256 recorded for it in DIR/SHA256SUMS;
# otherwise prints what is wrong (one line) and returns 1. Runs none of the files.
verify_sums() {
  local dir=$1 file recorded actual
  shift
  if [[ ! -f "$dir/SHA256SUMS" ]]; then
    printf 'no checksums recorded (%s/SHA256SUMS is missing)' "$dir"
    return 1
  fi
  for file in "$@"; do
    recorded=$(recorded_sum "$dir" "$file")
    if [[ -z $recorded ]]; then
      printf 'no checksum recorded for %s' "$dir/$file"
      return 1
    fi
    if [[ ! -f "$dir/$file" ]]; then
      printf '%s is missing' "$dir/$file"
      return 1
    fi
    actual=$(sha256sum -- "$dir/$file")
    actual=${actual%% *}
    if [[ $actual != "$recorded" ]]; then
      printf 'checksum mismatch: %s has sha256 %s, recorded %s' "$dir/$file" "$actual" "$recorded"
      return 1
    fi
  done
}

print_result() { printf '%s\n' "$bin_dir"; }

# Everything present, with the checksums recorded when it was assembled, and answering with the
# right version: reuse it. Otherwise sets ready_problem when a cached toolchain is unusable.
ready_problem=""
toolchain_ready() {
  ready_problem=""
  [[ -x "$bin_dir/pulumi" && -x "$bin_dir/pulumi-language-python" \
     && -x "$bin_dir/pulumi-language-python-exec" && -f "$toolchain_dir/.complete" ]] || return 1
  local plugin name version files
  for plugin in "${PLUGINS[@]}"; do
    read -r name version <<<"$plugin"
    [[ -x "$pulumi_home/plugins/resource-$name-v$version/pulumi-resource-$name" ]] || return 1
  done
  mapfile -t files < <(toolchain_files)
  ready_problem=$(verify_sums "$toolchain_dir" "${files[@]}") || return 1
  if [[ "$("$bin_dir/pulumi" version 2>/dev/null)" != "v${PULUMI_VERSION}" ]]; then
    ready_problem="$bin_dir/pulumi does not report v${PULUMI_VERSION}"
    return 1
  fi
}

if toolchain_ready; then
  log "reusing the toolchain in $toolchain_dir (checksums verified)"
  print_result
  exit 0
fi
if [[ -n $ready_problem ]]; then
  log "not reusing the cached toolchain: $ready_problem; rebuilding it"
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

# Moves the binaries built into $work/out/PART into the parts cache, atomically, with the
# sha256 of each (SHA256SUMS), checked whenever the part is reused.
store_part() {
  local part=$1 version=$2 dest files
  dest=$(part_dir "$part" "$version")
  mapfile -t files < <(part_files "$part")
  record_sums "$work/out/$part" "${files[@]}"
  touch "$work/out/$part/.complete"
  rm -rf "$dest"
  mv "$work/out/$part" "$dest"
}

# Seeds a part from the previous layout's toolchain directory, when it holds that binary.
seed_part() {
  local part=$1 version=$2; shift 2
  local file
  [[ -f "$previous_layout_dir/.complete" && -d "$previous_layout_dir/plugin-src" ]] || return 1
  for file in "$@"; do [[ -x "$previous_layout_dir/$file" ]] || return 1; done
  mkdir -p "$work/out/$part"
  for file in "$@"; do install -m 0755 "$previous_layout_dir/$file" "$work/out/$part/"; done
  store_part "$part" "$version"
}

# 1. The CLI, through the wrapper module committed in tools/pulumi-cli/ (go.mod requires pkg/v3 at
#    the pinned version, go.sum pins every module): `go mod verify`, then a `-mod=readonly`
#    build, with no GONOSUMDB/GOPRIVATE/GOINSECURE exemption: a module that is not what go.sum
#    says, or that go.sum lacks, fails the build instead of being fetched and recorded.
cli_module_dir="$repo_root/tools/pulumi-cli"
build_cli() {
  need_go
  grep -qxF "require github.com/pulumi/pulumi/pkg/v3 v${PULUMI_VERSION}" "$cli_module_dir/go.mod" \
    || die "tools/pulumi-cli/go.mod does not require github.com/pulumi/pulumi/pkg/v3 v${PULUMI_VERSION} (tools/toolchain-versions.sh): run (cd tools/pulumi-cli && go mod edit -require=github.com/pulumi/pulumi/pkg/v3@v${PULUMI_VERSION} && go mod tidy), review go.mod and go.sum, and commit both"
  mkdir -p "$work/cli" "$work/out/cli"
  cp "$cli_module_dir/go.mod" "$cli_module_dir/go.sum" "$cli_module_dir/tools.go" "$work/cli/"
  (cd "$work/cli" && env -u GONOSUMDB -u GOPRIVATE -u GOINSECURE GOFLAGS=-mod=readonly \
    go mod verify >"$work/cli-verify.log" 2>&1) \
    || { tail -n 40 "$work/cli-verify.log" >&2; die "the CLI's modules do not match tools/pulumi-cli/go.sum"; }
  go_build_with_progress pulumi-cli env -u GONOSUMDB -u GOPRIVATE -u GOINSECURE GOFLAGS=-mod=readonly \
    bash -c "cd '$work/cli' && go build -mod=readonly -trimpath \
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

# Only the parts this toolchain needs: the CLI, the language host and the plugins asked for.
wanted=()
for entry in "${PARTS[@]}"; do
  part=${entry%% *}
  if [[ $part == cli || $part == language-python || " ${PLUGINS[*]} " == *" $part "* ]]; then
    wanted+=("$entry")
  fi
done
step=0
for entry in "${wanted[@]}"; do
  read -r part version builder label note seed_files <<<"$entry"
  step=$((step + 1))
  label=${label//\~/ }
  note=${note//\~/ }
  problem=""
  if [[ -f "$(part_dir "$part" "$version")/.complete" ]]; then
    mapfile -t files < <(part_files "$part")
    if problem=$(verify_sums "$(part_dir "$part" "$version")" "${files[@]}"); then
      log "$step/${#wanted[@]} $part v$version: cached in $(part_dir "$part" "$version") (checksums verified)"
      continue
    fi
    log "$step/${#wanted[@]} $part v$version: not reusing the cached copy: $problem; rebuilding it"
  fi
  # A part whose cached copy failed its check is rebuilt, never seeded again from old files.
  # shellcheck disable=SC2086  # seed_files is a list of file names without spaces
  if [[ -z $problem && "$seed_files" != "-" ]] && seed_part "$part" "$version" $seed_files; then
    log "$step/${#wanted[@]} $part v$version: reused from $previous_layout_dir"
    continue
  fi
  log "$step/${#wanted[@]} building $label v$version $note"
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
# The toolchain's checksums, each checked against the one its part recorded when it was built.
mapfile -t files < <(toolchain_files)
record_sums "$toolchain_dir" "${files[@]}"
for file in "${files[@]}"; do
  case $file in
    bin/pulumi) part=cli version=$PULUMI_VERSION ;;
    bin/*) part=language-python version=$PULUMI_VERSION ;;
    *) name=${file##*/pulumi-resource-} part=$name version=${file#*/resource-"$name"-v} version=${version%%/*} ;;
  esac
  [[ "$(recorded_sum "$toolchain_dir" "$file")" == "$(recorded_sum "$(part_dir "$part" "$version")" "${file##*/}")" ]] \
    || die "$toolchain_dir/$file is not the binary of part $part v$version (sha256 differs)"
done
touch "$toolchain_dir/.complete"
toolchain_ready || die "the assembled toolchain in $toolchain_dir is incomplete: ${ready_problem:-a file is missing}"
log "toolchain ready in $toolchain_dir ($(elapsed))"
print_result
