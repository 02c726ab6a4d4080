#!/usr/bin/env bash
# Manual rollback: restore a named backup (or the newest one) and check health.
set -euo pipefail
umask 077
STEP=restore
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=bluegreen.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/bluegreen.sh"

USAGE="Usage: $SCRIPT_NAME --deploy-dir DIR --backup-dir DIR --backup ID|latest --compose-file NAME
                  --service NAME --health-url URL --attempts N --timeout SECONDS
                  [--health-status CODE] [--min-free-mb MB]
                  [--pre-backup-command CMD] [--pause-during-backup]
                  [--project NAME] [--lock-timeout SECONDS]
                  [--strategy recreate|blue-green|canary --proxy-image REF --proxy-listen ADDR
                   --colour-ports B,G [--drain-seconds N]]

Restore BACKUP-DIR/${BACKUP_PREFIX}ID.tar.gz: first back up what it replaces (a normal
archive in BACKUP-DIR, printed as replaced_backup: restoring it undoes this restore), stop
the current release (volumes kept), replace the contents of DIR (except DIR/.deploy/) with
the archive's, start the image named in its manifest and check URL. If the restored version
cannot start or is unhealthy, the replaced files are put back and the previous version is
started again: nothing that was live is deleted before the restored version is healthy.

  --deploy-dir DIR        absolute, existing deploy directory (e.g. /opt/mcp)
  --backup-dir DIR        absolute, existing backup directory (e.g. /opt/mcp-backups)
  --backup ID|latest      backup id YYYYMMDD_HHMMSS (e.g. 20251017_143025) or latest
  --compose-file NAME     compose file name (e.g. docker-compose.production.yml)
  --service NAME          compose service of the app (e.g. mcp-api-prod)
  --health-url URL        e.g. http://localhost:8000/api/v1/health
  --attempts N            health check tries (e.g. 10)
  --timeout SECONDS       overall health check deadline (e.g. 60)
$HEALTH_USAGE
  --min-free-mb MB        free space to leave on top of the backup of what is replaced
                          (default 100)
  --project NAME          compose project (default: base name of DIR)
  --lock-timeout SECONDS  wait this long for another deploy step (default 120)
For the backup of what is replaced (as backup.sh):
$CONSISTENCY_USAGE
$BG_USAGE
$LEDGER_USAGE
$FREEZE_USAGE

With --strategy blue-green the backup's files are swapped in while the live colour keeps
serving, its image starts in the idle colour, and the proxy switches once it is healthy;
if it is not, the files are put back and the live colour never stopped serving (exit 12).

List the backups: ls $BACKUP_PREFIX* in the backup dir.
stdout: {\"restored_backup\": \"ID\", \"image\": \"REF\", \"replaced_backup\": \"ID\"}
--check: validate the arguments only (same rules as a run; not the server's dirs, tools or
stdin) and exit 0 or 2, touching nothing (no lock, no docker, no file); stdout {\"valid\": true}
Exit codes: 2 bad argument, 3 missing dir/tool, 4 locked, 5 not enough disk space for the
backup of what is replaced, 6 that backup failed (nothing was touched), 12 restore failed
(unknown backup, unreadable archive, unhealthy after restore: the previous files are back),
14 deploys are frozen (nothing was touched; an emergency rollback passes --override-freeze)."

DEPLOY_DIR="" BACKUP_DIR="" BACKUP="" COMPOSE_FILE="" SERVICE="" HEALTH_URL="" ATTEMPTS="" TIMEOUT=""
PROJECT="" LOCK_TIMEOUT=120 MIN_FREE_MB=100
declare -A OPT_VARS=(
    [--deploy-dir]=DEPLOY_DIR [--backup-dir]=BACKUP_DIR [--backup]=BACKUP
    [--compose-file]=COMPOSE_FILE [--service]=SERVICE [--health-url]=HEALTH_URL
    [--attempts]=ATTEMPTS [--timeout]=TIMEOUT [--project]=PROJECT [--lock-timeout]=LOCK_TIMEOUT
    [--min-free-mb]=MIN_FREE_MB
)
declare -A FLAG_VARS=()
consistency_register_options
bg_register_options
ledger_register_options
health_register_options
freeze_register_options
parse_opts "$@"

require --deploy-dir "$DEPLOY_DIR" /opt/mcp
require --backup-dir "$BACKUP_DIR" /opt/mcp-backups
require --backup "$BACKUP" "20251017_143025 (or latest)"
check_compose_opts "$COMPOSE_FILE" "$SERVICE"
check_health_opts "$HEALTH_URL" "$ATTEMPTS" "$TIMEOUT"
check_backup_id --backup "$BACKUP" 1
check_nonneg_int --lock-timeout "$LOCK_TIMEOUT"
consistency_validate
check_posint --min-free-mb "$MIN_FREE_MB"
bg_validate
ledger_validate
[[ -n $PROJECT ]] || PROJECT=$(default_project "$DEPLOY_DIR")
check_project --project "$PROJECT"
check_dir --deploy-dir "$DEPLOY_DIR" /opt/mcp
DEPLOY_DIR=${DEPLOY_DIR%/}
[[ -n $DEPLOY_DIR ]] || die "$E_ARG" "--deploy-dir must not be /"
check_backup_dir
need_tools docker curl flock tar gzip df du
[[ -z $PRE_BACKUP_COMMAND ]] || need_tools timeout xargs
check_only_done

setup_traps
acquire_lock "$DEPLOY_DIR" "$LOCK_TIMEOUT"
metrics_begin "$DEPLOY_DIR"
freeze_check "$DEPLOY_DIR"
detect_compose
bg_reconcile # blue-green: .deploy/live-colour := what the proxy routes to (an interrupted switch)

mapfile -t ids < <(list_backup_ids "$BACKUP_DIR")
if [[ $BACKUP == latest ]]; then
    ((${#ids[@]})) || die "$E_RESTORE" "no backups in $BACKUP_DIR (nothing matches ${BACKUP_PREFIX}YYYYMMDD_HHMMSS.tar.gz)"
    mapfile -t by_time < <(list_backups_by_time "$BACKUP_DIR")
    RESTORE_ID=${by_time[-1]}
    log "latest backup is $RESTORE_ID (the newest by the created_at of its manifest: $(backup_created_at "$(backup_archive "$BACKUP_DIR" "$RESTORE_ID")"))"
else
    RESTORE_ID=$BACKUP
    found=0
    for id in "${ids[@]}"; do [[ $id == "$RESTORE_ID" ]] && found=1; done
    if ((!found)); then
        die "$E_RESTORE" "unknown backup $RESTORE_ID in $BACKUP_DIR; available: ${ids[*]:-none}"
    fi
fi
ARCHIVE=$(backup_archive "$BACKUP_DIR" "$RESTORE_ID")

verify_error=$(verify_archive "$ARCHIVE") ||
    die "$E_RESTORE" "backup $RESTORE_ID cannot be restored: $verify_error. Nothing was changed; pick another one: ${ids[*]}"
metrics_set image "$(backup_image "$ARCHIVE")"
metrics_set backup_id "$RESTORE_ID"

# Make this restore undoable: back up what it replaces (never pruned here).
log "backing up what this restore replaces (restoring that backup undoes this restore)"
take_backup 0
REPLACED_BACKUP=$BACKUP_ID REPLACED_ARCHIVE=$BACKUP_FILE
BACKUP_ID=$RESTORE_ID
PREVIOUS_IMAGE=$BACKUP_PREVIOUS_IMAGE
UNDO_HINT="undo with: $DEPLOY_DIR/.deploy/bin/restore.sh --backup $REPLACED_BACKUP (same options)"
log "backup $REPLACED_BACKUP ($REPLACED_ARCHIVE) holds what is replaced; $UNDO_HINT"
metrics_phase backup
metrics_set previous_image "$PREVIOUS_IMAGE"

log "restoring backup $BACKUP_ID ($ARCHIVE), replacing ${PREVIOUS_IMAGE:-nothing} (strategy $STRATEGY)"
bg_init
if [[ $STRATEGY != recreate ]]; then # blue-green or canary
    bg_restore "$ARCHIVE" "$BACKUP_ID" # exits
fi
bg_teardown # only when leaving blue-green for recreate
if ! restore_archive "$ARCHIVE"; then
    hint="Check: $(compose_hint "$DEPLOY_DIR/$COMPOSE_FILE") ps; logs $SERVICE"
    if ((!RESTORE_STOPPED)); then
        die "$E_RESTORE" "restore of backup $BACKUP_ID ($ARCHIVE) FAILED: $RESTORE_ERROR. Nothing was changed: ${PREVIOUS_IMAGE:-nothing} still runs."
    fi
    if ((!RESTORE_PUT_BACK)); then
        die "$E_RESTORE" "ACT NOW: restore of backup $BACKUP_ID ($ARCHIVE) FAILED: $RESTORE_ERROR, and the replaced files could not all be put back (see the WARNING lines; they are in $DEPLOY_DIR/.mcp-replaced-*, and in backup $REPLACED_BACKUP). $hint"
    fi
    if [[ -z $PREVIOUS_IMAGE ]]; then
        die "$E_RESTORE" "restore of backup $BACKUP_ID ($ARCHIVE) FAILED: $RESTORE_ERROR. The replaced files are back in place; nothing was running before, so nothing runs now."
    fi
    log "restore failed ($RESTORE_ERROR); starting the previous version $PREVIOUS_IMAGE again"
    reason="compose up failed"
    if MCP_IMAGE=$PREVIOUS_IMAGE run_logged compose_cmd "$DEPLOY_DIR/$COMPOSE_FILE" up -d --remove-orphans </dev/null &&
        reason=$(MCP_IMAGE=$PREVIOUS_IMAGE health_check "$HEALTH_URL" "$ATTEMPTS" "$TIMEOUT" "$DEPLOY_DIR/$COMPOSE_FILE"); then
        die "$E_RESTORE" "restore of backup $BACKUP_ID ($ARCHIVE) FAILED: $RESTORE_ERROR. The replaced files are back in place and the previous version $PREVIOUS_IMAGE is running and healthy again; no data was lost."
    fi
    die "$E_RESTORE" "ACT NOW: restore of backup $BACKUP_ID ($ARCHIVE) FAILED: $RESTORE_ERROR. The replaced files are back in place (no data was lost) but the previous version $PREVIOUS_IMAGE did not come back healthy: $reason. $hint"
fi
if [[ -z $RESTORE_IMAGE ]]; then
    log "done: restored backup $BACKUP_ID ($ARCHIVE); it was taken before anything was deployed, so nothing is running now; $UNDO_HINT"
else
    ledger_append "$DEPLOY_DIR" served "$RESTORE_IMAGE" restore "restored backup $BACKUP_ID" "$BACKUP_ID"
    log "done: restored backup $BACKUP_ID ($ARCHIVE); $RESTORE_IMAGE is running and healthy; $UNDO_HINT"
fi
json_object restored_backup "$BACKUP_ID" image "$RESTORE_IMAGE" replaced_backup "$REPLACED_BACKUP"
