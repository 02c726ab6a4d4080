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
                 [--pre-backup-command CMD] [--pause-during-backup]

Archive DIR (everything except DIR/.deploy/) to
BACKUP-DIR/${BACKUP_PREFIX}YYYYMMDD_HHMMSS.tar.gz (mode 0600) with a $MANIFEST_NAME
manifest naming the running image, verify it, keep the newest N archives.

  --deploy-dir DIR        absolute, existing deploy directory (e.g. /opt/mcp)
  --backup-dir DIR        absolute, existing backup directory (e.g. /opt/mcp-backups)
  --keep N                number of archives to keep (e.g. 10); beyond it, the newest archive
                          of each image that served healthy (release ledger) is kept too
  --service NAME          compose service of the app (e.g. mcp-api-prod)
  --compose-file NAME     compose file name inside DIR (e.g. docker-compose.production.yml)
  --min-free-mb MB        free space to leave on top of the archive size (default 100)
  --project NAME          compose project (default: base name of DIR)
  --lock-timeout SECONDS  wait this long for another deploy step (default 120)
$CONSISTENCY_USAGE

A file that changes while it is archived (a busy app) does not fail the backup: it is
reported as a WARNING naming these two options.

stdout: {\"backup_id\": \"...\", \"archive\": \"...\", \"previous_image\": \"...\"}
--check: validate the arguments only (same rules as a run; not the server's dirs, tools or
stdin) and exit 0 or 2, touching nothing (no lock, no docker, no file); stdout {\"valid\": true}
Exit codes: 2 bad argument, 3 missing dir/tool, 4 locked, 5 not enough disk space,
6 archive could not be written or verified (or the pre-backup command failed)."

DEPLOY_DIR="" BACKUP_DIR="" KEEP="" SERVICE="" COMPOSE_FILE="" MIN_FREE_MB=100 PROJECT="" LOCK_TIMEOUT=120
declare -A OPT_VARS=(
    [--deploy-dir]=DEPLOY_DIR [--backup-dir]=BACKUP_DIR [--keep]=KEEP [--service]=SERVICE
    [--compose-file]=COMPOSE_FILE [--min-free-mb]=MIN_FREE_MB [--project]=PROJECT
    [--lock-timeout]=LOCK_TIMEOUT
)
declare -A FLAG_VARS=()
consistency_register_options
parse_opts "$@"

require --deploy-dir "$DEPLOY_DIR" /opt/mcp
require --backup-dir "$BACKUP_DIR" /opt/mcp-backups
require --keep "$KEEP" 10
check_compose_opts "$COMPOSE_FILE" "$SERVICE"
check_posint --keep "$KEEP"
check_posint --min-free-mb "$MIN_FREE_MB"
check_nonneg_int --lock-timeout "$LOCK_TIMEOUT"
consistency_validate
[[ -n $PROJECT ]] || PROJECT=$(default_project "$DEPLOY_DIR")
check_project --project "$PROJECT"
check_dir --deploy-dir "$DEPLOY_DIR" /opt/mcp
DEPLOY_DIR=${DEPLOY_DIR%/}
[[ -n $DEPLOY_DIR ]] || die "$E_ARG" "--deploy-dir must not be /"
check_backup_dir
need_tools tar gzip flock df du date
[[ -z $PRE_BACKUP_COMMAND ]] || need_tools timeout xargs
check_only_done

setup_traps
acquire_lock "$DEPLOY_DIR" "$LOCK_TIMEOUT"

take_backup "$KEEP"

log "done: backup $BACKUP_ID of ${BACKUP_PREVIOUS_IMAGE:-<nothing running>} in $BACKUP_FILE"
json_object backup_id "$BACKUP_ID" archive "$BACKUP_FILE" previous_image "$BACKUP_PREVIOUS_IMAGE"
