#!/usr/bin/env bash
# Step 1: archive the deploy dir (without .deploy/) plus a manifest of the running image,
# verify the archive, prune old ones. Never touches the running app.
set -euo pipefail
umask 077
STEP=backup
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

USAGE="Usage: $SCRIPT_NAME --deploy-dir DIR --backup-dir DIR --keep N --service NAME --compose-file NAME
                 [--min-free-mb MB] [--project NAME] [--lock-timeout SECONDS]

Archive DIR (everything except DIR/.deploy/) to
BACKUP-DIR/${BACKUP_PREFIX}YYYYMMDD_HHMMSS.tar.gz (mode 0600) with a $MANIFEST_NAME
manifest naming the running image, verify it, keep the newest N archives.

  --deploy-dir DIR        absolute, existing deploy directory (e.g. /opt/mcp)
  --backup-dir DIR        absolute, existing backup directory (e.g. /opt/mcp-backups)
  --keep N                number of archives to keep (e.g. 10)
  --service NAME          compose service of the app (e.g. mcp-api-prod)
  --compose-file NAME     compose file name inside DIR (e.g. docker-compose.production.yml)
  --min-free-mb MB        free space to leave on top of the archive size (default 100)
  --project NAME          compose project (default: base name of DIR)
  --lock-timeout SECONDS  wait this long for another deploy step (default 120)

stdout: {\"backup_id\": \"...\", \"archive\": \"...\", \"previous_image\": \"...\"}
Exit codes: 2 bad argument, 3 missing dir/tool, 4 locked, 5 not enough disk space,
6 archive could not be written or verified."

DEPLOY_DIR="" BACKUP_DIR="" KEEP="" SERVICE="" COMPOSE_FILE="" MIN_FREE_MB=100 PROJECT="" LOCK_TIMEOUT=120
declare -A OPT_VARS=(
    [--deploy-dir]=DEPLOY_DIR [--backup-dir]=BACKUP_DIR [--keep]=KEEP [--service]=SERVICE
    [--compose-file]=COMPOSE_FILE [--min-free-mb]=MIN_FREE_MB [--project]=PROJECT
    [--lock-timeout]=LOCK_TIMEOUT
)
parse_opts "$@"

require --deploy-dir "$DEPLOY_DIR" /opt/mcp
require --backup-dir "$BACKUP_DIR" /opt/mcp-backups
require --keep "$KEEP" 10
require --service "$SERVICE" mcp-api-prod
require --compose-file "$COMPOSE_FILE" docker-compose.production.yml
check_posint --keep "$KEEP"
check_posint --min-free-mb "$MIN_FREE_MB"
check_nonneg_int --lock-timeout "$LOCK_TIMEOUT"
check_name --service "$SERVICE" mcp-api-prod
check_filename --compose-file "$COMPOSE_FILE" docker-compose.production.yml
[[ -n $PROJECT ]] || PROJECT=$(default_project "$DEPLOY_DIR")
check_project --project "$PROJECT"
check_dir --deploy-dir "$DEPLOY_DIR" /opt/mcp
check_dir --backup-dir "$BACKUP_DIR" /opt/mcp-backups
DEPLOY_DIR=${DEPLOY_DIR%/} BACKUP_DIR=${BACKUP_DIR%/}
[[ -n $DEPLOY_DIR && -n $BACKUP_DIR ]] || die "$E_ARG" "--deploy-dir and --backup-dir must not be /"
case "$BACKUP_DIR/" in
    "$DEPLOY_DIR/.deploy/"*) ;;
    "$DEPLOY_DIR/"*) die "$E_ARG" "--backup-dir $BACKUP_DIR is inside --deploy-dir $DEPLOY_DIR: the archives would archive themselves (e.g. --backup-dir /opt/mcp-backups)" ;;
esac
[[ -w $BACKUP_DIR ]] || die "$E_BACKUP" "--backup-dir $BACKUP_DIR is not writable by $(id -un)"
need_tools tar gzip flock df du date

setup_traps
acquire_lock "$DEPLOY_DIR" "$LOCK_TIMEOUT"

# 1. Disk space, before anything else.
used_kb=$(cd -- "$DEPLOY_DIR" && du -sk --exclude=./.deploy . 2>/dev/null | awk 'NR==1 {print $1}') || true
free_kb=$(df -Pk -- "$BACKUP_DIR" | awk 'NR==2 {print $4}') || true
[[ $used_kb =~ ^[0-9]+$ ]] || die "$E_BACKUP" "could not measure the size of $DEPLOY_DIR (du failed)"
[[ $free_kb =~ ^[0-9]+$ ]] || die "$E_BACKUP" "could not measure the free space in $BACKUP_DIR (df failed)"
need_kb=$((used_kb + MIN_FREE_MB * 1024))
if ((free_kb < need_kb)); then
    die "$E_SPACE" "not enough disk space in $BACKUP_DIR: $((free_kb / 1024)) MB free, need $(((need_kb + 1023) / 1024)) MB ($DEPLOY_DIR is $(((used_kb + 1023) / 1024)) MB + --min-free-mb $MIN_FREE_MB). Nothing was touched; free some space or prune old backups."
fi
log "disk space ok: $((free_kb / 1024)) MB free in $BACKUP_DIR, need $(((need_kb + 1023) / 1024)) MB"

# 2. What is running now.
detect_compose
previous_image=$(running_image "$DEPLOY_DIR" "$DEPLOY_DIR/$COMPOSE_FILE")

# 3. Archive name (one per second).
backup_id=$(date +%Y%m%d_%H%M%S)
archive=$(backup_archive "$BACKUP_DIR" "$backup_id")
while [[ -e $archive ]]; do
    sleep 1
    backup_id=$(date +%Y%m%d_%H%M%S)
    archive=$(backup_archive "$BACKUP_DIR" "$backup_id")
done

# 4. Manifest + archive, written under a temp name then renamed.
mktemp_in "$DEPLOY_DIR/.deploy" manifest.XXXXXX -d || die "$E_BACKUP" "cannot create a temp dir in $DEPLOY_DIR/.deploy"
manifest_dir=$MKTEMP_PATH
{
    printf 'image=%s\n' "$previous_image"
    printf 'created_at=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'compose_file=%s\n' "$COMPOSE_FILE"
    printf 'service=%s\n' "$SERVICE"
    printf 'host=%s\n' "$(hostname 2>/dev/null || uname -n)"
    printf 'deploy_dir=%s\n' "$DEPLOY_DIR"
} >"$manifest_dir/$MANIFEST_NAME"

mktemp_in "$BACKUP_DIR" ".${BACKUP_PREFIX}${backup_id}.XXXXXX.tmp" || die "$E_BACKUP" "cannot create a temp file in $BACKUP_DIR"
tmp_archive=$MKTEMP_PATH
log "archiving $DEPLOY_DIR (without .deploy/) to $archive"
if ! run_logged tar -czf "$tmp_archive" \
    --exclude=./.deploy --exclude='./.mcp-replaced-*' -C "$DEPLOY_DIR" . \
    -C "$manifest_dir" "./$MANIFEST_NAME"; then
    die "$E_BACKUP" "tar failed while writing $archive (see the tar lines above: files in $DEPLOY_DIR must be readable by $(id -un), e.g. sudo chown -R $(id -un): $DEPLOY_DIR; or the disk is full); nothing was kept and the running app was not touched"
fi
chmod 600 -- "$tmp_archive"
if ! verify_archive "$tmp_archive"; then
    die "$E_BACKUP" "backup verification failed: $VERIFY_ERROR; the bad file was deleted"
fi
mv -f -- "$tmp_archive" "$archive" || die "$E_BACKUP" "could not rename the archive to $archive"
# Re-check the final file (rename across the same dir should not change it, but be sure).
if ! verify_archive "$archive"; then
    rm -f -- "$archive"
    die "$E_BACKUP" "backup verification failed: $VERIFY_ERROR; the bad file was deleted"
fi
size_kb=$(du -k -- "$archive" | awk '{print $1}')
log "archive verified (gzip -t, tar -tzf lists $MANIFEST_NAME): $archive (${size_kb} KB)"

# 5. Retention: keep the newest --keep archives.
mapfile -t ids < <(list_backup_ids "$BACKUP_DIR")
excess=$((${#ids[@]} - KEEP))
for ((i = 0; i < excess; i++)); do
    old=$(backup_archive "$BACKUP_DIR" "${ids[i]}")
    if rm -f -- "$old"; then
        log "pruned old backup $old (keeping the newest $KEEP)"
    else
        log "WARNING: could not prune $old"
    fi
done

log "done: backup $backup_id of ${previous_image:-<nothing running>} in $archive"
json_object backup_id "$backup_id" archive "$archive" previous_image "$previous_image"
