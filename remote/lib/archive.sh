# shellcheck shell=bash
# One job: backup archives (sourced, never run): naming, listing by age, writing one with its
# manifest (take_backup), verifying, retention, and the backup dir's own check.

readonly BACKUP_PREFIX='mcp-backup-'
readonly MANIFEST_NAME='.mcp-backup-manifest'

# backup_archive BACKUP_DIR ID: path of the archive for ID.
backup_archive() {
    printf '%s/%s%s.tar.gz' "$1" "$BACKUP_PREFIX" "$2"
}

# list_backup_ids BACKUP_DIR: ids, in name order (not necessarily the order they were made).
list_backup_ids() {
    local f name
    for f in "$1/$BACKUP_PREFIX"*.tar.gz; do
        [[ -f $f ]] || continue
        name=${f##*/}
        name=${name#"$BACKUP_PREFIX"}
        name=${name%.tar.gz}
        [[ $name =~ $BACKUP_ID_RE ]] && printf '%s\n' "$name"
    done | sort
}

# backup_created_at ARCHIVE: when the backup was made, UTC (YYYY-MM-DDTHH:MM:SSZ): the
# manifest's created_at=, else (an older or unreadable manifest) the archive's mtime.
backup_created_at() {
    local archive=$1 created=""
    created=$({ tar --occurrence=1 -xOzf "$archive" "./$MANIFEST_NAME" 2>/dev/null ||
        tar --occurrence=1 -xOzf "$archive" "$MANIFEST_NAME" 2>/dev/null; } |
        sed -n 's/^created_at=//p' | head -n 1) || true
    if [[ ! $created =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]]; then
        created=$(date -u -r "$archive" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || printf '0000-00-00T00:00:00Z')
    fi
    printf '%s' "$created"
}

# backup_image ARCHIVE: the image= of its manifest ("" when nothing ran, or unreadable).
backup_image() {
    { tar --occurrence=1 -xOzf "$1" "./$MANIFEST_NAME" 2>/dev/null ||
        tar --occurrence=1 -xOzf "$1" "$MANIFEST_NAME" 2>/dev/null; } |
        sed -n 's/^image=//p' | head -n 1 || true
}

# list_backups_by_time BACKUP_DIR: ids ordered by when they were made (backup_created_at),
# oldest first; ties in id order. Ids are UTC now, but older ones were local time, and a
# wrong clock can name an archive in the future: the name alone does not tell the order.
list_backups_by_time() {
    local id
    while IFS= read -r id; do
        printf '%s %s\n' "$(backup_created_at "$(backup_archive "$1" "$id")")" "$id"
    done < <(list_backup_ids "$1") | sort | cut -d' ' -f2
}

# check_backup_dir: BACKUP_DIR (absolute, existing) is not inside DEPLOY_DIR and writable.
# shellcheck disable=SC2153 # DEPLOY_DIR and BACKUP_DIR are the caller's globals
check_backup_dir() {
    check_dir --backup-dir "$BACKUP_DIR" /opt/mcp-backups
    BACKUP_DIR=${BACKUP_DIR%/}
    [[ -n $BACKUP_DIR ]] || die "$E_ARG" "--backup-dir must not be /"
    case "$BACKUP_DIR/" in
        "$DEPLOY_DIR/.deploy/"*) ;;
        "$DEPLOY_DIR/"*) die "$E_ARG" "--backup-dir $BACKUP_DIR is inside --deploy-dir $DEPLOY_DIR: the archives would archive themselves (e.g. --backup-dir /opt/mcp-backups)" ;;
    esac
    ((CHECK_ONLY)) || [[ -w $BACKUP_DIR ]] || die "$E_BACKUP" "--backup-dir $BACKUP_DIR is not writable by $(id -un) (e.g. sudo chown $(id -un): $BACKUP_DIR)"
}

# take_backup KEEP: archive DEPLOY_DIR (without .deploy/) + a manifest of the running image
# into BACKUP_DIR, verify it, then keep the newest KEEP archives (0: prune nothing). The
# archive just written is never pruned. Needs DEPLOY_DIR, BACKUP_DIR, MIN_FREE_MB,
# COMPOSE_FILE, SERVICE, PROJECT and the lock. Sets BACKUP_ID, BACKUP_FILE and
# BACKUP_PREVIOUS_IMAGE. Dies (exit 5 or 6) when it cannot: nothing was touched then.
BACKUP_ID="" BACKUP_FILE="" BACKUP_PREVIOUS_IMAGE=""
BACKUP_FAILURE_NOTE="" # appended to take_backup's errors by callers (e.g. "nothing was switched")
# shellcheck disable=SC2153 # DEPLOY_DIR, BACKUP_DIR, MIN_FREE_MB... are the caller's globals
take_backup() {
    local keep=$1 used_kb free_kb need_kb manifest_dir tmp_archive size_kb cid tar_status err
    # 1. Disk space, before anything else.
    used_kb=$(cd -- "$DEPLOY_DIR" && du -sk --exclude=./.deploy . 2>/dev/null | awk 'NR==1 {print $1}') || true
    free_kb=$(df -Pk -- "$BACKUP_DIR" | awk 'NR==2 {print $4}') || true
    [[ $used_kb =~ ^[0-9]+$ ]] || die "$E_BACKUP" "could not measure the size of $DEPLOY_DIR (du failed)"
    [[ $free_kb =~ ^[0-9]+$ ]] || die "$E_BACKUP" "could not measure the free space in $BACKUP_DIR (df failed)"
    need_kb=$((used_kb + MIN_FREE_MB * 1024))
    if ((free_kb < need_kb)); then
        die "$E_SPACE" "not enough disk space in $BACKUP_DIR: $((free_kb / 1024)) MB free, need $(((need_kb + 1023) / 1024)) MB ($DEPLOY_DIR is $(((used_kb + 1023) / 1024)) MB + --min-free-mb $MIN_FREE_MB). Nothing was touched; free some space or prune old backups.${BACKUP_FAILURE_NOTE:+ $BACKUP_FAILURE_NOTE}"
    fi
    log "disk space ok: $((free_kb / 1024)) MB free in $BACKUP_DIR, need $(((need_kb + 1023) / 1024)) MB"

    # 2. What is running now.
    ((${#COMPOSE[@]})) || detect_compose
    BACKUP_PREVIOUS_IMAGE=$(running_image "$DEPLOY_DIR" "$DEPLOY_DIR/$COMPOSE_FILE")

    # 3. Archive name (one per second).
    BACKUP_ID=$(date -u +%Y%m%d_%H%M%S)
    BACKUP_FILE=$(backup_archive "$BACKUP_DIR" "$BACKUP_ID")
    while [[ -e $BACKUP_FILE ]]; do
        sleep 1
        BACKUP_ID=$(date -u +%Y%m%d_%H%M%S)
        BACKUP_FILE=$(backup_archive "$BACKUP_DIR" "$BACKUP_ID")
    done

    # 4. Manifest + archive, written under a temp name then renamed.
    manifest_dir=$(mktemp -d "$DEPLOY_DIR/.deploy/manifest.XXXXXX") || die "$E_BACKUP" "cannot create a temp dir in $DEPLOY_DIR/.deploy"
    remove_on_exit "$manifest_dir"
    {
        printf 'image=%s\n' "$BACKUP_PREVIOUS_IMAGE"
        printf 'created_at=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        printf 'compose_file=%s\n' "$COMPOSE_FILE"
        printf 'service=%s\n' "$SERVICE"
        printf 'host=%s\n' "$(hostname 2>/dev/null || uname -n)"
        printf 'deploy_dir=%s\n' "$DEPLOY_DIR"
    } >"$manifest_dir/$MANIFEST_NAME"

    tmp_archive=$(mktemp "$BACKUP_DIR/.${BACKUP_PREFIX}${BACKUP_ID}.XXXXXX.tmp") || die "$E_BACKUP" "cannot create a temp file in $BACKUP_DIR"
    remove_on_exit "$tmp_archive"
    # Consistency: a dump by the app itself, and/or no writes while tar reads.
    if [[ -n $PRE_BACKUP_COMMAND || $PAUSE_DURING_BACKUP == 1 ]]; then
        cid=$(live_service_container)
        if [[ -z $cid ]]; then
            log "no running $SERVICE container: nothing writes, so no pre-backup command and no pause"
        else
            ((${#PRE_BACKUP_WORDS[@]} == 0)) || run_pre_backup_command "$cid"
            [[ $PAUSE_DURING_BACKUP != 1 ]] || pause_service "$cid"
        fi
    fi
    log "archiving $DEPLOY_DIR (without .deploy/) to $BACKUP_FILE"
    # The manifest goes first: reading it back (latest, retention) stops after one member.
    tar_status=0
    run_logged tar -czf "$tmp_archive" -C "$manifest_dir" "./$MANIFEST_NAME" \
        --exclude=./.deploy --exclude='./.mcp-replaced-*' -C "$DEPLOY_DIR" . || tar_status=$?
    unpause_service
    if ((tar_status == 1)); then
        # GNU tar: "file changed as we read it" (or shrank/vanished); the archive is complete.
        log "WARNING: files changed while they were archived (see the tar lines above): this backup may hold a half-written file. The deploy goes on; for consistent backups of a busy app use --pre-backup-command (e.g. a database dump into the data dir; mcp:app.preBackupCommand) or --pause-during-backup (mcp:app.pauseDuringBackup)"
    elif ((tar_status != 0)); then
        die "$E_BACKUP" "tar failed while writing $BACKUP_FILE (see the tar lines above: files in $DEPLOY_DIR must be readable by $(id -un), e.g. sudo chown -R $(id -un): $DEPLOY_DIR; or the disk is full); nothing was kept and the running app was not touched${BACKUP_FAILURE_NOTE:+; $BACKUP_FAILURE_NOTE}"
    fi
    chmod 600 -- "$tmp_archive"
    if ! err=$(verify_archive "$tmp_archive"); then
        die "$E_BACKUP" "backup verification failed: $err; the bad file was deleted${BACKUP_FAILURE_NOTE:+; $BACKUP_FAILURE_NOTE}"
    fi
    mv -f -- "$tmp_archive" "$BACKUP_FILE" || die "$E_BACKUP" "could not rename the archive to $BACKUP_FILE${BACKUP_FAILURE_NOTE:+; $BACKUP_FAILURE_NOTE}"
    size_kb=$(du -k -- "$BACKUP_FILE" | awk '{print $1}')
    log "archive verified (gzip -t, tar -tzf, $MANIFEST_NAME): $BACKUP_FILE (${size_kb} KB)"

    # 5. Retention.
    prune_backups "$keep" "$BACKUP_ID"
}

# prune_backups KEEP NEWEST_ID: keep the newest KEEP archives of BACKUP_DIR (by when they
# were made, see list_backups_by_time), NEWEST_ID (the one just written) always among them,
# whatever the other archives are named. 0 prunes nothing. Never pruned, even beyond KEEP:
# the newest archive of each image that served healthy (a "served" line in the release
# ledger, ledger_served), so that retries of a broken release, each backing up the broken
# state, cannot prune away every backup of a version that worked.
# shellcheck disable=SC2153 # DEPLOY_DIR and BACKUP_DIR are the caller's globals
prune_backups() {
    local keep=$1 newest=$2 ids=() id old excess i image
    local -A seen=() served_newest=()
    ((keep > 0)) || return 0
    mapfile -t ids < <(list_backups_by_time "$BACKUP_DIR")
    excess=$((${#ids[@]} - keep))
    ((excess > 0)) || return 0
    # Newest first: the first archive met of an image is its newest.
    for ((i = ${#ids[@]} - 1; i >= 0; i--)); do
        image=$(backup_image "$(backup_archive "$BACKUP_DIR" "${ids[i]}")")
        [[ -n $image && -z ${seen[$image]+x} ]] || continue
        seen[$image]=1
        if ledger_served "$DEPLOY_DIR" "$image"; then
            served_newest[${ids[i]}]=$image
        fi
    done
    for ((i = 0; i < ${#ids[@]} && excess > 0; i++)); do
        id=${ids[i]}
        [[ $id == "$newest" ]] && continue
        old=$(backup_archive "$BACKUP_DIR" "$id")
        if [[ -n ${served_newest[$id]+x} ]]; then
            log "kept $old beyond --keep $keep: the newest backup of ${served_newest[$id]}, which served healthy ($(ledger_file "$DEPLOY_DIR"))"
            continue
        fi
        if rm -f -- "$old"; then
            log "pruned old backup $old (keeping the newest $keep)"
        else
            log "WARNING: could not prune $old"
        fi
        excess=$((excess - 1))
    done
}

# verify_archive ARCHIVE: the whole gzip stream is intact (gzip -t: CRC and length), the tar
# inside lists to its end (tar -tzf), and it holds a manifest naming a valid image (or "",
# nothing deployed). Returns 0, or prints what is wrong (stdout) and returns 1:
#   if ! err=$(verify_archive "$archive"); then ... "$err"; fi
verify_archive() {
    local archive=$1 listing manifest image
    if [[ ! -r $archive ]]; then
        printf '%s' "cannot read $archive"
        return 1
    fi
    if ! gzip -t -- "$archive" 2>/dev/null; then
        printf '%s' "$archive is not a valid gzip file (gzip -t failed: truncated or damaged)"
        return 1
    fi
    if ! listing=$(tar -tzf "$archive" 2>/dev/null); then
        printf '%s' "$archive is not a readable tar archive (tar -tzf failed)"
        return 1
    fi
    if ! grep -qxE "(\./)?\\$MANIFEST_NAME" <<<"$listing"; then
        printf '%s' "$archive has no $MANIFEST_NAME manifest"
        return 1
    fi
    # The manifest is the first member of archives written by take_backup (older ones have it
    # last): --occurrence=1 stops reading there.
    manifest=$(tar --occurrence=1 -xOzf "$archive" "./$MANIFEST_NAME" 2>/dev/null ||
        tar --occurrence=1 -xOzf "$archive" "$MANIFEST_NAME" 2>/dev/null) || true
    if ! grep -q '^image=' <<<"$manifest"; then
        printf '%s' "the $MANIFEST_NAME of $archive has no image= line (damaged manifest)"
        return 1
    fi
    image=$(sed -n 's/^image=//p' <<<"$manifest" | head -n 1)
    if [[ -n $image ]] && ! valid_image "$image"; then
        printf '%s' "the $MANIFEST_NAME of $archive names an invalid image: $(shown "$image")"
        return 1
    fi
    return 0
}

# manifest_value FILE KEY
manifest_value() {
    sed -n "s/^$2=//p" -- "$1" | head -n 1
}
