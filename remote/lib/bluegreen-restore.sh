# shellcheck shell=bash
# One job: restore.sh with --strategy blue-green or canary (sourced by bluegreen.sh, never run):
# the backup's files swapped in beside the live colour, its image started in the idle colour,
# traffic moved at once (no canary steps: a restore goes back to a version that served) once it
# is healthy. See remote/README.md "Strategies".

# bg_restore ARCHIVE BACKUP_ID: restore.sh with --strategy blue-green (exits). The backup's
# files are swapped in while the live colour keeps serving, the backup's image starts in the
# idle colour, and traffic moves once it is healthy; if it is not, the files are swapped back
# and the live colour never stops serving.
# shellcheck disable=SC2153 # DEPLOY_DIR, ATTEMPTS, TIMEOUT... are restore.sh's globals
bg_restore() {
    local archive=$1 backup_id=$2 work manifest image file restored_file old
    local live new url err="" reason
    err=$(verify_archive "$archive") || die "$E_RESTORE" "backup $backup_id: $err"
    work=$(mktemp -d "$DEPLOY_DIR/.deploy/restore.XXXXXX") || die "$E_RESTORE" "cannot create a temp dir in $DEPLOY_DIR/.deploy"
    remove_on_exit "$work"
    log "extracting $archive"
    run_logged tar -xpzf "$archive" -C "$work" || die "$E_RESTORE" "could not extract $archive"
    manifest="$work/$MANIFEST_NAME"
    [[ -f $manifest ]] || die "$E_RESTORE" "$archive has no $MANIFEST_NAME"
    image=$(manifest_value "$manifest" image)
    if [[ -n $image ]] && ! valid_image "$image"; then
        die "$E_RESTORE" "manifest of $archive names an invalid image: $(shown "$image")"
    fi
    restored_file=$(manifest_value "$manifest" compose_file)
    [[ $restored_file =~ ^[A-Za-z0-9_][A-Za-z0-9._-]*$ ]] || restored_file=$COMPOSE_FILE
    rm -f -- "$manifest"
    if [[ -z $image ]]; then
        log "the backup was taken when nothing was deployed: stopping everything, starting nothing"
        bg_teardown force
    else
        bg_ensure_proxy_image || die "$E_RESTORE" "could not pull the proxy image $PROXY_IMAGE (nothing was touched)"
    fi
    live=$(live_colour "$DEPLOY_DIR")
    new=$(bg_other "$live")

    # Swap the files while the live colour keeps serving (its bind mounts follow the moved
    # directories until it stops; writes it makes from now on are lost, as with any restore).
    # The same swap as restore_archive (lib.sh): .deploy/ is never swapped.
    old=$(replaced_prefix)
    err=$(swap_in "$DEPLOY_DIR" "$work" "$old") || die "$E_RESTORE" "restore of backup $backup_id ($archive) FAILED: $err; the replaced files were put back. ${live:+The current version (colour $live) kept serving; no traffic moved.}"
    BG_OLD=$old
    log "restored the files of $DEPLOY_DIR from $archive"

    if [[ -n $image ]]; then
        file="$DEPLOY_DIR/$restored_file"
        [[ -f $file ]] || bg_restore_failed "$backup_id" "$archive" "$live" "" "the backup has no compose file $restored_file"
        MCP_IMAGE=$image bg_in_colour "$new" bg_check_compose "$file" ||
            bg_restore_failed "$backup_id" "$archive" "$live" "" "$BG_ERROR"
        log "starting $image as colour $new beside ${live:-nothing}"
        if ! MCP_IMAGE=$image bg_in_colour "$new" run_logged compose_cmd "$file" up -d --remove-orphans </dev/null; then
            MCP_IMAGE=$image bg_in_colour "$new" show_service_logs "$file"
            bg_restore_failed "$backup_id" "$archive" "$live" "$new" "compose up of $image failed"
        fi
        url=$(bg_colour_url "$new")
        log "checking colour $new directly at $url; no traffic moves before it is healthy"
        reason=$(MCP_IMAGE=$image bg_in_colour "$new" health_check "$url" "$ATTEMPTS" "$TIMEOUT" "$file") ||
            bg_restore_failed "$backup_id" "$archive" "$live" "$new" "restored version $image is unhealthy: $reason"
        if ! bg_switch "$new"; then
            err=$BG_ERROR
            if [[ -n $live ]] && ! bg_point_back "$live"; then
                die "$E_ROLLBACK_FAILED" "ACT NOW: restore of $backup_id: the switch to colour $new failed ($err) AND pointing the proxy back at colour $live failed: $BG_ERROR"
            fi
            bg_restore_failed "$backup_id" "$archive" "$live" "$new" "switch failed: $err"
        fi
        bg_record_live "$new" || true # on failure the intent stays: the next run reconciles
        set_env_image "$DEPLOY_DIR" "$image" || log "WARNING: could not update $DEPLOY_DIR/.env"
        log "traffic moved to colour $new ($image)"
        bg_retire "$live" "$file"
    fi
    drop_replaced "$DEPLOY_DIR" "$old"
    if [[ -z $image ]]; then
        log "done: restored backup $backup_id ($archive); it was taken before anything was deployed, so nothing is running now"
    else
        ledger_append "$DEPLOY_DIR" served "$image" restore "restored backup $backup_id (blue-green, colour $new)" "$backup_id"
        log "done: restored backup $backup_id ($archive); $image is serving from colour $new; ${UNDO_HINT:-}"
    fi
    json_object restored_backup "$backup_id" image "$image" replaced_backup "${REPLACED_BACKUP:-}"
    exit 0
}

# bg_restore_failed ID ARCHIVE LIVE NEW REASON: put the previous files back, stop NEW, exit 12.
bg_restore_failed() {
    local backup_id=$1 archive=$2 live=$3 new=$4 reason=$5
    log "restore failed ($reason); putting the previous files back"
    if [[ -n $new ]]; then
        MCP_IMAGE=${MCP_IMAGE:-mcp-image-not-set:none} bg_stop_colour "$new" "$DEPLOY_DIR/$COMPOSE_FILE"
    fi
    put_back "$DEPLOY_DIR" "$BG_OLD" || true
    die "$E_RESTORE" "restore of backup $backup_id ($archive) FAILED: $reason. ${live:+The current version (colour $live) kept serving; no traffic moved.}"
}
