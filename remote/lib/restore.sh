# shellcheck shell=bash
# One job: restoring an archive into the deploy dir (sourced, never run): the one swap of the
# deploy dir's files used by every restore (swap_in, put_back, drop_replaced) and the
# recreate restore (restore_archive; bluegreen.sh has the blue-green one).

# ---------------------------------------------------------------- swapping the deploy dir
# One swap for every restore (recreate: restore_archive; blue-green: bg_restore). OLD is the
# prefix the replaced entries are renamed to, inside the deploy dir itself (renaming within
# the parent needs no write permission on the entry, so a data dir Docker made as root moves
# too): DIR/OLD.<name>. .deploy/ (the scripts, the lock, the staged release) is never swapped,
# on either side, nor are earlier .mcp-replaced-* leftovers. The state of a swap is on disk
# (DIR/OLD.*), so these functions need no globals.

# replaced_prefix: a new OLD prefix.
replaced_prefix() {
    printf '.mcp-replaced-%s-%s' "$(date -u +%Y%m%d%H%M%S)" "$$"
}

# swappable DIR: the entries of DIR a swap moves (all but .deploy and .mcp-replaced-*).
swappable() {
    local entry name
    shopt -s dotglob nullglob
    for entry in "$1"/*; do
        name=${entry##*/}
        [[ $name == .deploy || $name == .mcp-replaced-* ]] || printf '%s\n' "$name"
    done
    shopt -u dotglob nullglob
}

# swap_in DIR FILES OLD: rename DIR's swappable entries to DIR/OLD.<name>, then move FILES's
# swappable entries into DIR. On failure, undoes itself (the replaced entries go back),
# prints what failed and returns 1.
swap_in() {
    local dir=$1 files=$2 old=$3 name names=()
    mapfile -t names < <(swappable "$dir")
    for name in "${names[@]}"; do
        if ! mv -- "$dir/$name" "$dir/$old.$name"; then
            printf 'could not move %s aside' "$dir/$name"
            unswap_replaced "$dir" "$old" || true
            return 1
        fi
    done
    mapfile -t names < <(swappable "$files")
    for name in "${names[@]}"; do
        if ! mv -- "$files/$name" "$dir/"; then
            printf 'could not move %s into %s' "$name" "$dir"
            put_back "$dir" "$old" >/dev/null
            return 1
        fi
    done
    return 0
}

# unswap_replaced DIR OLD: rename DIR/OLD.<name> back to DIR/<name>; returns 1 (WARNINGs
# logged) when one cannot be.
unswap_replaced() {
    local dir=$1 old=$2 entry status=0
    shopt -s dotglob nullglob
    for entry in "$dir/$old".*; do
        mv -- "$entry" "$dir/${entry#"$dir/$old."}" 2>/dev/null || {
            log "WARNING: could not put back $dir/${entry#"$dir/$old."}: it is still at $entry"
            status=1
        }
    done
    shopt -u dotglob nullglob
    return "$status"
}

# put_back DIR OLD: undo a complete swap_in: what it moved in is renamed to
# DIR/OLD-restored.<name> and deleted, and DIR/OLD.<name> go back in place. Returns 1
# (WARNINGs logged) when not all are back.
put_back() {
    local dir=$1 old=$2 name status=0 entry names=()
    log "putting the replaced files back in $dir"
    mapfile -t names < <(swappable "$dir")
    for name in "${names[@]}"; do
        mv -- "$dir/$name" "$dir/$old-restored.$name" 2>/dev/null || {
            log "WARNING: could not move the restored $dir/$name aside"
            status=1
        }
    done
    unswap_replaced "$dir" "$old" || status=1
    shopt -s dotglob nullglob
    for entry in "$dir/$old-restored".*; do
        rm -rf -- "$entry" 2>/dev/null ||
            log "WARNING: could not delete $entry (a copy of the backup); delete it by hand"
    done
    shopt -u dotglob nullglob
    ((status)) || log "the replaced files are back in place: nothing that was live was lost"
    return "$status"
}

# drop_replaced DIR OLD: the restored version is healthy: delete DIR/OLD.*.
drop_replaced() {
    local dir=$1 old=$2 entry
    shopt -s dotglob nullglob
    for entry in "$dir/$old".*; do
        rm -rf -- "$entry" 2>/dev/null ||
            log "WARNING: could not delete the replaced $entry (files owned by root?); delete it by hand (sudo rm -rf)"
    done
    shopt -u dotglob nullglob
    return 0
}

# restore_space_check ARCHIVE: DEPLOY_DIR's file system can hold ARCHIVE extracted (what
# restore_archive writes under DEPLOY_DIR/.deploy/ before it swaps anything) with MIN_FREE_MB
# to spare. The backup's own check (take_backup) measures BACKUP_DIR, which may be another file
# system, and not the uncompressed copy. Returns 0, or prints why not (stdout) and returns 1:
#   if ! err=$(restore_space_check "$archive"); then ... "$err"; fi
# shellcheck disable=SC2153 # DEPLOY_DIR and MIN_FREE_MB are the caller's globals
restore_space_check() {
    local archive=$1 size_kb free_kb need_kb
    # Each member's size rounded up to a 4 KiB block, a block per directory (about what it
    # takes on disk); GNU tar -tv: "MODE OWNER/GROUP SIZE DATE TIME NAME".
    size_kb=$(tar -tvzf "$archive" 2>/dev/null |
        awk '{ kb += int(($3 + 4095) / 4096) * 4 } /^d/ { kb += 4 } END { print kb + 0 }') || size_kb=""
    free_kb=$(df -Pk -- "$DEPLOY_DIR/.deploy" 2>/dev/null | awk 'NR==2 {print $4}') || free_kb=""
    if [[ ! $size_kb =~ ^[0-9]+$ ]]; then
        printf 'could not measure the uncompressed size of %s (tar -tvzf failed)' "$archive"
        return 1
    fi
    if [[ ! $free_kb =~ ^[0-9]+$ ]]; then
        printf 'could not measure the free space in %s (df failed)' "$DEPLOY_DIR"
        return 1
    fi
    need_kb=$((size_kb + MIN_FREE_MB * 1024))
    if ((free_kb < need_kb)); then
        printf '%s MB free in %s, a rollback needs %s MB (the backup extracted: %s MB, + --min-free-mb %s)' \
            "$((free_kb / 1024))" "$DEPLOY_DIR" "$(((need_kb + 1023) / 1024))" "$(((size_kb + 1023) / 1024))" "$MIN_FREE_MB"
        return 1
    fi
    log "disk space ok for a rollback: $((free_kb / 1024)) MB free in $DEPLOY_DIR, need $(((need_kb + 1023) / 1024)) MB (the backup extracted + --min-free-mb $MIN_FREE_MB)"
}

# restore_archive ARCHIVE: the shared restore (used by release.sh and restore.sh).
# Needs DEPLOY_DIR, COMPOSE_FILE, SERVICE, PROJECT, COMPOSE, HEALTH_URL, ATTEMPTS, TIMEOUT.
#   verify archive -> extract to a temp dir under <deploy-dir>/.deploy -> compose down the
#   current release (volumes kept) -> rename the deploy dir contents (except .deploy/) aside
#   and move the archive's in -> up -d the manifest's image -> health check -> only then
#   delete what was renamed aside. If the restored version cannot start or is unhealthy, it
#   is stopped and the renamed files are put back: nothing that was live is lost.
# Sets RESTORE_IMAGE (manifest image, "" = nothing was running), RESTORE_ERROR,
# RESTORE_STOPPED (1 once the current release was stopped) and RESTORE_PUT_BACK (1 when the
# previous files were put back after a failure). Returns 0 healthy (or nothing to start),
# 1 failed.
RESTORE_IMAGE=""
RESTORE_ERROR=""
# shellcheck disable=SC2034 # read by release.sh and restore.sh
RESTORE_STOPPED=0 RESTORE_PUT_BACK=0
RESTORE_OLD=""
# shellcheck disable=SC2153,SC2034 # reads the caller's DEPLOY_DIR, ATTEMPTS...; sets RESTORE_* for it
restore_archive() {
    local archive=$1 work manifest file restored_file health
    RESTORE_IMAGE="" RESTORE_ERROR="" RESTORE_STOPPED=0 RESTORE_PUT_BACK=0
    if ! RESTORE_ERROR=$(verify_archive "$archive"); then
        return 1
    fi
    work=$(mktemp -d "$DEPLOY_DIR/.deploy/restore.XXXXXX") || {
        RESTORE_ERROR="cannot create a temp dir in $DEPLOY_DIR/.deploy"
        return 1
    }
    remove_on_exit "$work"
    log "extracting $archive"
    if ! run_logged tar -xpzf "$archive" -C "$work"; then
        RESTORE_ERROR="could not extract $archive"
        return 1
    fi
    manifest="$work/$MANIFEST_NAME"
    if [[ ! -f $manifest ]]; then
        RESTORE_ERROR="$archive has no $MANIFEST_NAME"
        return 1
    fi
    RESTORE_IMAGE=$(manifest_value "$manifest" image)
    if [[ -n $RESTORE_IMAGE ]] && ! valid_image "$RESTORE_IMAGE"; then
        RESTORE_ERROR="manifest of $archive names an invalid image: $(shown "$RESTORE_IMAGE")"
        return 1
    fi
    restored_file=$(manifest_value "$manifest" compose_file)
    if [[ ! $restored_file =~ ^[A-Za-z0-9_][A-Za-z0-9._-]*$ ]]; then
        restored_file=$COMPOSE_FILE
    fi
    rm -f -- "$manifest"
    if [[ -n $RESTORE_IMAGE && ! -f $work/$restored_file ]]; then
        RESTORE_ERROR="the backup has no compose file $restored_file (nothing was changed)"
        return 1
    fi

    # Stop the current release (whatever it is), keeping volumes.
    file="$DEPLOY_DIR/$COMPOSE_FILE"
    if [[ -f $file ]]; then
        log "stopping the current release: $(compose_hint "$file") down --remove-orphans (volumes kept)"
        # shellcheck disable=SC2034 # read by restore.sh
        RESTORE_STOPPED=1
        if ! MCP_IMAGE=${MCP_IMAGE:-$(env_image "$DEPLOY_DIR")} run_logged compose_cmd "$file" down --remove-orphans </dev/null; then
            RESTORE_ERROR="compose down failed for $file"
            return 1
        fi
    else
        log "no $file: nothing to stop"
    fi

    # Swap the contents; what was renamed aside is kept until the restored version is healthy.
    RESTORE_OLD=$(replaced_prefix)
    if ! RESTORE_ERROR=$(swap_in "$DEPLOY_DIR" "$work" "$RESTORE_OLD"); then
        RESTORE_PUT_BACK=1
        return 1
    fi
    log "restored the files of $DEPLOY_DIR from $archive (the replaced ones are kept as $DEPLOY_DIR/$RESTORE_OLD.* until the restored version is healthy)"

    if [[ -z $RESTORE_IMAGE ]]; then
        log "the backup was taken when nothing was deployed: not starting anything"
        drop_replaced "$DEPLOY_DIR" "$RESTORE_OLD"
        return 0
    fi
    file="$DEPLOY_DIR/$restored_file"
    set_env_image "$DEPLOY_DIR" "$RESTORE_IMAGE" || log "WARNING: could not update $DEPLOY_DIR/.env"
    log "starting $RESTORE_IMAGE: $(compose_hint "$file") up -d --remove-orphans"
    if ! MCP_IMAGE=$RESTORE_IMAGE run_logged compose_cmd "$file" up -d --remove-orphans </dev/null; then
        RESTORE_ERROR="compose up of $RESTORE_IMAGE failed"
        MCP_IMAGE=$RESTORE_IMAGE show_service_logs "$file"
        restore_stop_restored "$file"
        put_back "$DEPLOY_DIR" "$RESTORE_OLD" && RESTORE_PUT_BACK=1
        return 1
    fi
    log "checking health of the restored version at $HEALTH_URL"
    if ! health=$(MCP_IMAGE=$RESTORE_IMAGE health_check "$HEALTH_URL" "$ATTEMPTS" "$TIMEOUT" "$file"); then
        RESTORE_ERROR="restored version $RESTORE_IMAGE is unhealthy too: $health"
        restore_stop_restored "$file"
        put_back "$DEPLOY_DIR" "$RESTORE_OLD" && RESTORE_PUT_BACK=1
        return 1
    fi
    drop_replaced "$DEPLOY_DIR" "$RESTORE_OLD"
    return 0
}

# restore_stop_restored FILE: compose down the restored version that failed (volumes kept).
restore_stop_restored() {
    log "stopping the restored version $RESTORE_IMAGE: $(compose_hint "$1") down --remove-orphans"
    MCP_IMAGE=$RESTORE_IMAGE run_logged compose_cmd "$1" down --remove-orphans </dev/null ||
        log "WARNING: compose down of the restored version failed; stop it by hand: $(compose_hint "$1") down"
}
