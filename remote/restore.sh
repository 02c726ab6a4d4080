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
                  [--project NAME] [--lock-timeout SECONDS]
                  [--strategy recreate|blue-green --proxy-image REF [--proxy-listen ADDR]
                   [--colour-ports B,G] [--drain-seconds N]]

Restore BACKUP-DIR/${BACKUP_PREFIX}ID.tar.gz: stop the current release (volumes kept),
replace the contents of DIR (except DIR/.deploy/) with the archive's, start the image named
in its manifest and check URL.

  --deploy-dir DIR        absolute, existing deploy directory (e.g. /opt/mcp)
  --backup-dir DIR        absolute, existing backup directory (e.g. /opt/mcp-backups)
  --backup ID|latest      backup id YYYYMMDD_HHMMSS (e.g. 20251017_143025) or latest
  --compose-file NAME     compose file name (e.g. docker-compose.production.yml)
  --service NAME          compose service of the app (e.g. mcp-api-prod)
  --health-url URL        e.g. http://localhost:8000/api/v1/health
  --attempts N            health check tries (e.g. 10)
  --timeout SECONDS       overall health check deadline (e.g. 60)
  --project NAME          compose project (default: base name of DIR)
  --lock-timeout SECONDS  wait this long for another deploy step (default 120)
$BG_USAGE

With --strategy blue-green the backup's files are swapped in while the live colour keeps
serving, its image starts in the idle colour, and the proxy switches once it is healthy;
if it is not, the files are put back and the live colour never stopped serving (exit 12).

List the backups: ls $BACKUP_PREFIX* in the backup dir.
stdout: {\"restored_backup\": \"ID\", \"image\": \"REF\"}
Exit codes: 2 bad argument, 3 missing dir/tool, 4 locked, 12 restore failed (unknown
backup, unreadable archive, unhealthy after restore)."

DEPLOY_DIR="" BACKUP_DIR="" BACKUP="" COMPOSE_FILE="" SERVICE="" HEALTH_URL="" ATTEMPTS="" TIMEOUT=""
PROJECT="" LOCK_TIMEOUT=120
declare -A OPT_VARS=(
    [--deploy-dir]=DEPLOY_DIR [--backup-dir]=BACKUP_DIR [--backup]=BACKUP
    [--compose-file]=COMPOSE_FILE [--service]=SERVICE [--health-url]=HEALTH_URL
    [--attempts]=ATTEMPTS [--timeout]=TIMEOUT [--project]=PROJECT [--lock-timeout]=LOCK_TIMEOUT
)
bg_register_options
parse_opts "$@"

require --deploy-dir "$DEPLOY_DIR" /opt/mcp
require --backup-dir "$BACKUP_DIR" /opt/mcp-backups
require --backup "$BACKUP" "20251017_143025 (or latest)"
require --compose-file "$COMPOSE_FILE" docker-compose.production.yml
require --service "$SERVICE" mcp-api-prod
require --health-url "$HEALTH_URL" http://localhost:8000/api/v1/health
require --attempts "$ATTEMPTS" 10
require --timeout "$TIMEOUT" 60
check_backup_id --backup "$BACKUP" 1
check_filename --compose-file "$COMPOSE_FILE" docker-compose.production.yml
check_name --service "$SERVICE" mcp-api-prod
check_url --health-url "$HEALTH_URL"
check_posint --attempts "$ATTEMPTS"
check_posint --timeout "$TIMEOUT"
check_nonneg_int --lock-timeout "$LOCK_TIMEOUT"
bg_validate
[[ -n $PROJECT ]] || PROJECT=$(default_project "$DEPLOY_DIR")
check_project --project "$PROJECT"
check_dir --deploy-dir "$DEPLOY_DIR" /opt/mcp
check_dir --backup-dir "$BACKUP_DIR" /opt/mcp-backups
DEPLOY_DIR=${DEPLOY_DIR%/} BACKUP_DIR=${BACKUP_DIR%/}
[[ -n $DEPLOY_DIR && -n $BACKUP_DIR ]] || die "$E_ARG" "--deploy-dir and --backup-dir must not be /"
need_tools docker curl flock tar gzip

setup_traps
acquire_lock "$DEPLOY_DIR" "$LOCK_TIMEOUT"
detect_compose

mapfile -t ids < <(list_backup_ids "$BACKUP_DIR")
if [[ $BACKUP == latest ]]; then
    ((${#ids[@]})) || die "$E_RESTORE" "no backups in $BACKUP_DIR (nothing matches ${BACKUP_PREFIX}YYYYMMDD_HHMMSS.tar.gz)"
    BACKUP_ID=${ids[-1]}
    log "latest backup is $BACKUP_ID"
else
    BACKUP_ID=$BACKUP
    found=0
    for id in "${ids[@]}"; do [[ $id == "$BACKUP_ID" ]] && found=1; done
    if ((!found)); then
        die "$E_RESTORE" "unknown backup $BACKUP_ID in $BACKUP_DIR; available: ${ids[*]:-none}"
    fi
fi
ARCHIVE=$(backup_archive "$BACKUP_DIR" "$BACKUP_ID")

PREVIOUS_IMAGE=$(running_image "$DEPLOY_DIR" "$DEPLOY_DIR/$COMPOSE_FILE")
log "restoring backup $BACKUP_ID ($ARCHIVE), replacing ${PREVIOUS_IMAGE:-nothing} (strategy $STRATEGY)"
bg_init
if [[ $STRATEGY == blue-green ]]; then
    bg_restore "$ARCHIVE" "$BACKUP_ID" # exits
fi
bg_teardown # only when leaving blue-green for recreate
if ! restore_archive "$ARCHIVE"; then
    die "$E_RESTORE" "restore of backup $BACKUP_ID ($ARCHIVE) FAILED: $RESTORE_ERROR. Check: $(compose_hint "$DEPLOY_DIR/$COMPOSE_FILE") ps; logs $SERVICE"
fi
if [[ -z $RESTORE_IMAGE ]]; then
    log "done: restored backup $BACKUP_ID ($ARCHIVE); it was taken before anything was deployed, so nothing is running now"
else
    log "done: restored backup $BACKUP_ID ($ARCHIVE); $RESTORE_IMAGE is running and healthy"
fi
json_object restored_backup "$BACKUP_ID" image "$RESTORE_IMAGE"
