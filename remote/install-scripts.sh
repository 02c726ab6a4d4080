#!/usr/bin/env bash
# Step 0: install an uploaded copy of these scripts so that a running script never reads
# changed bytes: copy it into a new directory, then switch the .deploy/bin symlink to it.
set -euo pipefail
umask 022
STEP=install
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

USAGE="Usage: $SCRIPT_NAME --deploy-dir DIR --version SHA256

Install the scripts uploaded to DIR/.deploy/bin.upload/SHA256/ (the upload step copies the
remote/ folder there; SHA256 is the hash of its files) as DIR/.deploy/bin.d/SHA256/: copied
into a temp dir then renamed, and never written again. Then switch the symlink
DIR/.deploy/bin -> bin.d/SHA256 in one rename. Bash reads a running script from its file as it
goes, so rewriting the files in place would corrupt a release still running (e.g. of a killed
CI job); here a running script keeps the files it started with, and every path naming
DIR/.deploy/bin/ runs the new ones from then on. A DIR/.deploy/bin left by older versions (a
directory) is moved to bin.d/legacy-<UTC time> first. Older versions are deleted, the one
just replaced excepted, only when no deploy step holds the lock (otherwise at a later install).

  --deploy-dir DIR        absolute, existing deploy directory (e.g. /opt/mcp)
  --version SHA256        the uploaded copy's hash: 64 lower-case hex digits

stdout: {\"version\": \"SHA256\", \"scripts_dir\": \"DIR/.deploy/bin.d/SHA256\", \"previous\": \"...\"}
(previous: the directory bin pointed to before, \"\" on a first install)
--check: validate the arguments only (same rules as a run; not the server's dirs, tools or
stdin) and exit 0 or 2, touching nothing (no lock, no file); stdout {\"valid\": true}
Exit codes: 2 bad argument, 3 missing dir or upload, or the scripts could not be installed."

DEPLOY_DIR="" VERSION=""
declare -A OPT_VARS=([--deploy-dir]=DEPLOY_DIR [--version]=VERSION)
parse_opts "$@"

require --deploy-dir "$DEPLOY_DIR" /opt/mcp
require --version "$VERSION" "$(printf '0%.0s' {1..64})"
[[ $VERSION =~ ^[0-9a-f]{64}$ ]] ||
    die "$E_ARG" "--version must be the sha256 of the uploaded scripts, 64 lower-case hex digits, got $(shown "$VERSION") (e.g. --version $(printf 'a%.0s' {1..64}))"
check_dir --deploy-dir "$DEPLOY_DIR" /opt/mcp
DEPLOY_DIR=${DEPLOY_DIR%/}
[[ -n $DEPLOY_DIR ]] || die "$E_ARG" "--deploy-dir must not be /"
need_tools cp mv ln flock readlink
check_only_done

setup_traps
DOT="$DEPLOY_DIR/.deploy"
UPLOAD="$DOT/bin.upload/$VERSION"
STORE="$DOT/bin.d"
DEST="$STORE/$VERSION"
LINK="$DOT/bin"
# shellcheck disable=SC2034 # read by log (lib/log.sh): the install is in the history too
LOG_FILE="$DOT/history.log"

for f in lib.sh release.sh "$SCRIPT_NAME"; do
    [[ -f $UPLOAD/$f ]] || die "$E_MISSING" "nothing uploaded: $UPLOAD/$f does not exist (the scripts upload copies the remote/ folder to $UPLOAD first; run pulumi up again)"
done
mkdir -p -- "$STORE" || die "$E_MISSING" "cannot create $STORE"

# 1. The new version's own directory, complete before anything can run from it.
if [[ -d $DEST ]]; then
    log "version $VERSION is already in $DEST (installed once, never rewritten)"
else
    tmp=$(mktemp -d "$STORE/.$VERSION.XXXXXX") || die "$E_MISSING" "cannot create a temp dir in $STORE"
    remove_on_exit "$tmp"
    cp -R -- "$UPLOAD/." "$tmp/" || die "$E_MISSING" "could not copy $UPLOAD to $tmp (disk full?); nothing was switched"
    chmod -R u+rwX,go+rX,go-w -- "$tmp"
    for f in "$tmp"/*.sh; do
        case ${f##*/} in lib.sh | bluegreen.sh) ;; *) chmod 0755 -- "$f" ;; esac
    done
    chmod 0755 -- "$tmp"
    if ! mv -T -- "$tmp" "$DEST" 2>/dev/null; then
        [[ -d $DEST ]] || die "$E_MISSING" "could not rename $tmp to $DEST; nothing was switched"
        log "version $VERSION appeared in $DEST meanwhile: using it"
    fi
    log "installed version $VERSION in $DEST"
fi

# 2. Switch bin -> bin.d/VERSION in one rename (a relative link: the deploy dir may move).
previous=""
if [[ -L $LINK ]]; then
    previous=$(readlink -- "$LINK")
    previous=${previous#"$DOT/"}
elif [[ -d $LINK ]]; then
    previous="bin.d/legacy-$(date -u +%Y%m%d%H%M%S)"
    # A running script keeps its open file; only a path looked up during this instant fails.
    mv -T -- "$LINK" "$DOT/$previous" || die "$E_MISSING" "could not move the old scripts directory $LINK aside to $DOT/$previous"
    log "moved the scripts directory of an older install to $DOT/$previous"
elif [[ -e $LINK ]]; then
    die "$E_MISSING" "$LINK is neither a directory nor a symlink: move it away (e.g. mv $LINK $LINK.old), then run pulumi up again"
fi
new_link="$DOT/.bin.$$.new"
remove_on_exit "$new_link"
ln -s -- "bin.d/$VERSION" "$new_link" || die "$E_MISSING" "could not create the symlink $new_link"
mv -T -- "$new_link" "$LINK" || die "$E_MISSING" "could not switch $LINK to bin.d/$VERSION"
if [[ $previous == "bin.d/$VERSION" ]]; then
    log "$LINK already pointed to bin.d/$VERSION"
else
    log "switched $LINK -> bin.d/$VERSION (was: ${previous:-nothing})"
fi

# 3. Prune older versions, only while no deploy step runs (all of them hold the lock for
# their whole run; an unlinked file still reads to its end for a script that has it open).
exec 8>>"$DOT/lock" || die "$E_MISSING" "cannot open the lock file $DOT/lock"
if flock -n 8; then
    shopt -s nullglob dotglob
    for dir in "$STORE"/*; do
        name=${dir##*/}
        [[ $name == "$VERSION" || "bin.d/$name" == "$previous" ]] && continue
        rm -rf -- "$dir" && log "pruned old scripts $dir"
    done
    for dir in "$DOT/bin.upload"/*; do
        [[ ${dir##*/} == "$VERSION" ]] || rm -rf -- "$dir"
    done
    shopt -u nullglob dotglob
    flock -u 8
else
    log "a deploy step holds the lock: older script versions in $STORE are kept until the next install"
fi
exec 8>&-

log "done: $LINK -> bin.d/$VERSION"
json_object version "$VERSION" scripts_dir "$DEST" previous "${previous:+$DOT/$previous}"
