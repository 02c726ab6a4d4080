# shellcheck shell=bash
# One job: consistent backups of a busy app (sourced, never run): --pre-backup-command (a dump
# by the app itself, run in its container) and --pause-during-backup (docker pause while tar
# reads; the EXIT trap always unpauses).

# Options of every script that backs up (backup.sh, release.sh, restore.sh).
# shellcheck disable=SC2034 # PAUSE_DURING_BACKUP is set by parse_opts, read by take_backup
PRE_BACKUP_COMMAND="" PAUSE_DURING_BACKUP=0
readonly PRE_BACKUP_TIMEOUT=600
# shellcheck disable=SC2034 # appended to the sourcing script's USAGE
readonly CONSISTENCY_USAGE="  --pre-backup-command CMD
                          run CMD in the running service container before archiving (e.g. a
                          database dump into the data dir). Split into words like a shell
                          would (quotes honoured) and run without a shell: for redirections
                          write sh -c '...'. Fails the backup (exit 6) if it fails or takes
                          over ${PRE_BACKUP_TIMEOUT}s
  --pause-during-backup   pause the service container (docker pause) while the archive is
                          written, so no file changes under tar; it is always unpaused, on
                          any exit (requests wait meanwhile)"
PRE_BACKUP_WORDS=()
PAUSED_CONTAINER=""

# consistency_register_options: add --pre-backup-command / --pause-during-backup to the
# caller's OPT_VARS / FLAG_VARS.
consistency_register_options() {
    # shellcheck disable=SC2034 # the caller's associative arrays
    OPT_VARS["--pre-backup-command"]=PRE_BACKUP_COMMAND
    # shellcheck disable=SC2034
    FLAG_VARS["--pause-during-backup"]=PAUSE_DURING_BACKUP
}

# consistency_validate: parse --pre-backup-command into PRE_BACKUP_WORDS (exit 2 if it
# cannot be split, e.g. an unmatched quote).
consistency_validate() {
    local example="--pre-backup-command \"sh -c 'pg_dump -U mcp mcp > /data/dump.sql'\""
    [[ -n $PRE_BACKUP_COMMAND ]] || return 0
    [[ $PRE_BACKUP_COMMAND != *$'\n'* && ${#PRE_BACKUP_COMMAND} -le 2000 ]] ||
        die "$E_ARG" "--pre-backup-command must be one line of at most 2000 characters (e.g. $example)"
    PRE_BACKUP_WORDS=()
    if ! mapfile -d '' -t PRE_BACKUP_WORDS < <(printf '%s\n' "$PRE_BACKUP_COMMAND" | xargs printf '%s\0' 2>/dev/null) ||
        ((${#PRE_BACKUP_WORDS[@]} == 0)) ||
        ! printf '%s\n' "$PRE_BACKUP_COMMAND" | xargs true 2>/dev/null; then
        die "$E_ARG" "--pre-backup-command cannot be split into words (unmatched quote?): $(shown "$PRE_BACKUP_COMMAND") (e.g. $example)"
    fi
}

# live_service_container: id of the *running* service container of the live release (the
# live colour's project with blue-green), "" if none.
live_service_container() {
    local colour cid running
    colour=$(live_colour "$DEPLOY_DIR")
    local PROJECT=${PROJECT}${colour:+-$colour}
    local MCP_IMAGE
    # shellcheck disable=SC2034 # read by compose_cmd (lib/compose.sh)
    MCP_IMAGE=$(env_image "$DEPLOY_DIR")
    cid=$(service_container "$DEPLOY_DIR/$COMPOSE_FILE")
    [[ -n $cid ]] || return 0
    running=$(docker inspect -f '{{.State.Running}}' "$cid" 2>/dev/null || true)
    [[ $running == true ]] && printf '%s' "$cid"
    return 0
}

# run_pre_backup_command CID: PRE_BACKUP_WORDS in the container (dies 6 on failure).
run_pre_backup_command() {
    local cid=$1 status=0
    log "pre-backup command in the $SERVICE container ${cid:0:12}: ${PRE_BACKUP_WORDS[*]}"
    run_logged timeout --kill-after=10 "$PRE_BACKUP_TIMEOUT" docker exec "$cid" "${PRE_BACKUP_WORDS[@]}" </dev/null || status=$?
    if ((status == 124 || status == 137)); then
        die "$E_BACKUP" "the pre-backup command took over ${PRE_BACKUP_TIMEOUT}s and was stopped: $(shown "$PRE_BACKUP_COMMAND"). Nothing was archived; the app was not touched${BACKUP_FAILURE_NOTE:+; $BACKUP_FAILURE_NOTE}"
    elif ((status != 0)); then
        die "$E_BACKUP" "the pre-backup command failed (exit $status, output above): $(shown "$PRE_BACKUP_COMMAND"). Nothing was archived; the app was not touched${BACKUP_FAILURE_NOTE:+; $BACKUP_FAILURE_NOTE}. Fix it (mcp:app.preBackupCommand / --pre-backup-command), or run it by hand: docker exec ${cid:0:12} ${PRE_BACKUP_WORDS[*]}"
    fi
    log "pre-backup command done"
}

# pause_service CID: docker pause; the EXIT trap (cleanup) always unpauses.
pause_service() {
    local cid=$1
    log "pausing the $SERVICE container ${cid:0:12} while the archive is written (requests wait)"
    PAUSED_CONTAINER=$cid
    if ! run_logged docker pause "$cid" </dev/null; then
        PAUSED_CONTAINER=""
        die "$E_BACKUP" "docker pause ${cid:0:12} failed (see above); nothing was archived${BACKUP_FAILURE_NOTE:+; $BACKUP_FAILURE_NOTE}"
    fi
}

# unpause_service: undo pause_service (never fails; called again by the EXIT trap).
unpause_service() {
    local cid=$PAUSED_CONTAINER
    [[ -n $cid ]] || return 0
    PAUSED_CONTAINER=""
    if docker unpause "$cid" >/dev/null 2>&1 </dev/null; then
        log "unpaused the $SERVICE container ${cid:0:12}"
    else
        log "WARNING: could not unpause the $SERVICE container ${cid:0:12}: run docker unpause $cid NOW"
    fi
    return 0
}
