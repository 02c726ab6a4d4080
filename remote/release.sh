#!/usr/bin/env bash
# Step 3: back up the live release, switch to the one staged by deploy.sh, check health, and
# roll back to that backup on failure.
set -euo pipefail
umask 077
STEP=release
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=bluegreen.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/bluegreen.sh"

USAGE="Usage: $SCRIPT_NAME --deploy-dir DIR --compose-file NAME --service NAME --health-url URL
                  --attempts N --timeout SECONDS [--health-status CODE] [--env-file NAME]
                  [--backup-dir DIR --keep N [--min-free-mb MB]
                   [--pre-backup-command CMD] [--pause-during-backup]]
                  [--project NAME] [--lock-timeout SECONDS]
                  [--strategy recreate|blue-green|canary --proxy-image REF --proxy-listen ADDR
                   --colour-ports B,G [--drain-seconds N]] [--override-freeze]

With --backup-dir, first take a fresh backup of DIR (as backup.sh does: archive, verify,
keep the newest N), then install the staged release (DIR/.deploy/staged/: compose file, env
file, IMAGE) into DIR, 'compose up -d --remove-orphans', and check URL. If unhealthy, restore
the backup taken by this very run (files + previous image) and check it again: a rollback
never restores data older than the start of this attempt. Staged files are kept, so
re-running this script alone retries the release (with a new backup).

  --deploy-dir DIR        absolute, existing deploy directory (e.g. /opt/mcp)
  --compose-file NAME     compose file name (e.g. docker-compose.production.yml)
  --service NAME          compose service of the app (e.g. mcp-api-prod)
  --health-url URL        e.g. http://localhost:8000/api/v1/health
  --attempts N            health check tries (e.g. 10)
  --timeout SECONDS       overall health check deadline (e.g. 60)
$HEALTH_USAGE
  --env-file NAME         install the staged env file of this name (e.g. .env.production)
  --backup-dir DIR        back up to this directory first, roll back to it on failure
                          (e.g. /opt/mcp-backups); without it a failure is not rolled back
  --keep N                with --backup-dir: archives to keep (e.g. 10; beyond it, the
                          newest archive of each image that served healthy is kept too)
  --min-free-mb MB        with --backup-dir: free space to leave on top of the archive
                          size (default 100)
  --project NAME          compose project (default: base name of DIR)
  --lock-timeout SECONDS  wait this long for another deploy step (default 120)
With --backup-dir (as backup.sh):
$CONSISTENCY_USAGE
$BG_USAGE
$LEDGER_USAGE
$FREEZE_USAGE

With --strategy blue-green the release starts in the idle colour beside the live one and
the proxy moves traffic only once it is healthy; a failed colour is stopped, never switched
to, and the live colour keeps serving (exit 10, with or without --backup-dir).

stdout: {\"image\": \"REF\", \"health\": \"<body>\", \"backup_id\": \"ID\", \"previous_image\": \"REF\"}
(blue-green adds \"colour\"; backup_id is \"\" without --backup-dir)
--check: validate the arguments only (same rules as a run; not the server's dirs, tools or
stdin) and exit 0 or 2, touching nothing (no lock, no docker, no file); stdout {\"valid\": true}
Exit codes: 2 bad argument, 3 missing dir/file/tool (or nothing staged), 4 locked,
5 not enough disk space for the backup or for its rollback, 6 backup could not be written or
verified (nothing was switched), 8 compose failed to start (no rollback requested), 10 unhealthy and ROLLED BACK,
11 unhealthy and the rollback failed too (act now), 13 unhealthy, no rollback requested,
14 deploys are frozen (nothing was touched)."

DEPLOY_DIR="" COMPOSE_FILE="" SERVICE="" HEALTH_URL="" ATTEMPTS="" TIMEOUT="" ENV_FILE=""
BACKUP_DIR="" KEEP="" MIN_FREE_MB=100 REMOVED_BACKUP_ID="" PROJECT="" LOCK_TIMEOUT=120
declare -A OPT_VARS=(
    [--deploy-dir]=DEPLOY_DIR [--compose-file]=COMPOSE_FILE [--service]=SERVICE
    [--health-url]=HEALTH_URL [--attempts]=ATTEMPTS [--timeout]=TIMEOUT [--env-file]=ENV_FILE
    [--backup-dir]=BACKUP_DIR [--keep]=KEEP [--min-free-mb]=MIN_FREE_MB
    [--backup-id]=REMOVED_BACKUP_ID [--project]=PROJECT
    [--lock-timeout]=LOCK_TIMEOUT
)
declare -A FLAG_VARS=()
consistency_register_options
bg_register_options
ledger_register_options
health_register_options
freeze_register_options
parse_opts "$@"

require --deploy-dir "$DEPLOY_DIR" /opt/mcp
check_compose_opts "$COMPOSE_FILE" "$SERVICE"
check_health_opts "$HEALTH_URL" "$ATTEMPTS" "$TIMEOUT"
check_nonneg_int --lock-timeout "$LOCK_TIMEOUT"
consistency_validate
bg_validate
ledger_validate
if [[ -n $ENV_FILE ]]; then
    check_filename --env-file "$ENV_FILE" .env.production
    [[ $ENV_FILE != "$COMPOSE_FILE" && $ENV_FILE != .env && $ENV_FILE != IMAGE ]] ||
        die "$E_ARG" "--env-file must differ from --compose-file, .env and IMAGE (e.g. --env-file .env.production)"
fi
[[ -z $REMOVED_BACKUP_ID ]] ||
    die "$E_ARG" "--backup-id is no longer accepted: release.sh takes a fresh backup itself at the start of every attempt and rolls back to that one (an older backup would drop the writes made since). Pass --backup-dir DIR --keep N instead (e.g. --backup-dir /opt/mcp-backups --keep 10)"
require_together --backup-dir "$BACKUP_DIR" /opt/mcp-backups --keep "$KEEP" 10
[[ -z $KEEP ]] || check_posint --keep "$KEEP"
if [[ -z $BACKUP_DIR ]] && [[ -n $PRE_BACKUP_COMMAND || $PAUSE_DURING_BACKUP == 1 ]]; then
    die "$E_ARG" "--pre-backup-command and --pause-during-backup go with --backup-dir (they shape the backup release.sh takes; e.g. --backup-dir /opt/mcp-backups --keep 10 --pause-during-backup)"
fi
check_posint --min-free-mb "$MIN_FREE_MB"
[[ -n $PROJECT ]] || PROJECT=$(default_project "$DEPLOY_DIR")
check_project --project "$PROJECT"
check_dir --deploy-dir "$DEPLOY_DIR" /opt/mcp
DEPLOY_DIR=${DEPLOY_DIR%/}
[[ -n $DEPLOY_DIR ]] || die "$E_ARG" "--deploy-dir must not be /"
ARCHIVE="" BACKUP_ID=""
[[ -z $BACKUP_DIR ]] || check_backup_dir
need_tools docker curl flock tar gzip df du
[[ -z $PRE_BACKUP_COMMAND ]] || need_tools timeout xargs
check_only_done

setup_traps
acquire_lock "$DEPLOY_DIR" "$LOCK_TIMEOUT"
metrics_begin "$DEPLOY_DIR"
freeze_check "$DEPLOY_DIR"
detect_compose
bg_reconcile # blue-green: .deploy/live-colour := what the proxy routes to (an interrupted switch)

STAGED="$DEPLOY_DIR/.deploy/staged"
LIVE="$DEPLOY_DIR/$COMPOSE_FILE"
[[ -f $STAGED/IMAGE ]] || die "$E_MISSING" "nothing staged: $STAGED/IMAGE does not exist (run deploy.sh first)"
IMAGE=$(head -n 1 -- "$STAGED/IMAGE")
valid_image "$IMAGE" || die "$E_MISSING" "$STAGED/IMAGE holds an invalid image reference: $(shown "$IMAGE") (run deploy.sh again)"
[[ -f $STAGED/$COMPOSE_FILE ]] || die "$E_MISSING" "nothing staged: $STAGED/$COMPOSE_FILE does not exist (run deploy.sh first)"
if [[ -n $ENV_FILE && ! -f $STAGED/$ENV_FILE ]]; then
    die "$E_MISSING" "nothing staged: $STAGED/$ENV_FILE does not exist (run deploy.sh with --env-file $ENV_FILE first)"
fi
metrics_set image "$IMAGE"

# The backup this attempt rolls back to: taken now, never an older one.
if [[ -n $BACKUP_DIR ]]; then
    log "backing up the live release before switching (the rollback target of this attempt)"
    BACKUP_FAILURE_NOTE="refusing to switch to $IMAGE without a rollback it can restore: nothing was changed, the current version still runs"
    take_backup "$KEEP"
    ARCHIVE=$BACKUP_FILE
    PREVIOUS_IMAGE=$BACKUP_PREVIOUS_IMAGE
    if ! verify_error=$(verify_archive "$ARCHIVE"); then
        rm -f -- "$ARCHIVE"
        die "$E_BACKUP" "the backup $ARCHIVE is corrupt ($verify_error): refusing to switch to $IMAGE without a rollback it can restore. Nothing was changed: ${PREVIOUS_IMAGE:-nothing} still runs. Check the disk ($BACKUP_DIR), then retry."
    fi
    log "backup $BACKUP_ID verified: a failure of this release rolls back to it"
    metrics_phase backup
    # The recreate rollback extracts the archive under DIR/.deploy/ (DIR's file system, not
    # the backup dir's): refuse now, before anything is switched, when it could not fit.
    if [[ $STRATEGY == recreate ]] && ! space_error=$(restore_space_check "$ARCHIVE"); then
        die "$E_SPACE" "not enough disk space for a rollback: $space_error. Refusing to switch to $IMAGE: if it failed, its rollback (extracting backup $BACKUP_ID under $DEPLOY_DIR/.deploy/) could not be written. Nothing was changed: ${PREVIOUS_IMAGE:-nothing} still runs (backup $BACKUP_ID is kept). Free space on the file system of $DEPLOY_DIR (e.g. docker image prune, or large files in $DEPLOY_DIR), then retry."
    fi
else
    PREVIOUS_IMAGE=$(running_image "$DEPLOY_DIR" "$LIVE")
    log "no --backup-dir: this release takes no backup, and a failure will not be rolled back"
fi
log "releasing $IMAGE (replacing ${PREVIOUS_IMAGE:-nothing}; strategy $STRATEGY)"
metrics_set previous_image "$PREVIOUS_IMAGE"
metrics_set backup_id "$BACKUP_ID"
bg_init

# install_file SRC DEST: copy via a temp name in DEST's dir, then rename (atomic).
install_file() {
    local src=$1 dest=$2
    cp -- "$src" "$dest.release-tmp" && chmod 600 -- "$dest.release-tmp" && mv -f -- "$dest.release-tmp" "$dest"
}

# rollback REASON: restore the backup and exit 10 / 11 (or 13 without --backup-dir, 8 if
# compose itself failed).
rollback() {
    local reason=$1 no_rollback_code=$2 hint
    hint="$(compose_hint "$LIVE") logs $SERVICE"
    ledger_append "$DEPLOY_DIR" failed "$IMAGE" release "$reason" "$BACKUP_ID"
    if [[ -z $ARCHIVE ]]; then
        die "$no_rollback_code" "FAILED: $IMAGE was unhealthy ($reason). NOT rolled back (no --backup-dir given): the failed release is still in place. Investigate: $hint; roll back with: $DEPLOY_DIR/.deploy/bin/restore.sh --backup latest ..."
    fi
    log "FAILED: $IMAGE is unhealthy ($reason). Rolling back to backup $BACKUP_ID ($ARCHIVE)"
    if restore_archive "$ARCHIVE"; then
        [[ -z $RESTORE_IMAGE ]] ||
            ledger_append "$DEPLOY_DIR" served "$RESTORE_IMAGE" auto-rollback "healthy again after $IMAGE failed" "$BACKUP_ID"
        if [[ -z $RESTORE_IMAGE ]]; then
            log "FAILED: $IMAGE was unhealthy ($reason). ROLLED BACK to backup $BACKUP_ID ($ARCHIVE): nothing was running before this release, so the broken release was stopped and nothing is serving now. Investigate: the log lines above, or docker run --rm $IMAGE"
        else
            log "FAILED: $IMAGE was unhealthy ($reason). ROLLED BACK to $RESTORE_IMAGE from backup $BACKUP_ID ($ARCHIVE); previous version is healthy again. Investigate: the log lines above of the failed release, $hint"
        fi
        exit "$E_ROLLED_BACK"
    fi
    if ((RESTORE_PUT_BACK)); then
        log "ACT NOW: $IMAGE was unhealthy ($reason) AND the rollback to ${RESTORE_IMAGE:-${PREVIOUS_IMAGE:-the previous version}} from backup $BACKUP_ID ($ARCHIVE) FAILED: $RESTORE_ERROR. The app is DOWN; no data was lost: the files of this release (data included) are back in $DEPLOY_DIR."
    else
        log "ACT NOW: $IMAGE was unhealthy ($reason) AND the rollback to ${RESTORE_IMAGE:-${PREVIOUS_IMAGE:-the previous version}} from backup $BACKUP_ID ($ARCHIVE) FAILED: $RESTORE_ERROR. The app is probably DOWN; check $DEPLOY_DIR for .mcp-replaced-* files."
    fi
    log "ACT NOW: check $hint; retry the rollback with: $DEPLOY_DIR/.deploy/bin/restore.sh --deploy-dir $DEPLOY_DIR --backup-dir $BACKUP_DIR --backup $BACKUP_ID --compose-file $COMPOSE_FILE --service $SERVICE --project $PROJECT --health-url $HEALTH_URL --attempts $ATTEMPTS --timeout $TIMEOUT --health-status $HEALTH_STATUS"
    exit "$E_ROLLBACK_FAILED"
}

if [[ $STRATEGY != recreate ]]; then # blue-green or canary
    bg_release # exits
fi
bg_teardown # only when leaving blue-green for recreate

# 1. Install the staged files (kept in staged/ so a retry can re-run this script alone).
install_file "$STAGED/$COMPOSE_FILE" "$LIVE" || die "$E_MISSING" "could not install $LIVE"
log "installed $LIVE from $STAGED"
if [[ -n $ENV_FILE ]]; then
    install_file "$STAGED/$ENV_FILE" "$DEPLOY_DIR/$ENV_FILE" || die "$E_MISSING" "could not install $DEPLOY_DIR/$ENV_FILE"
    log "installed $DEPLOY_DIR/$ENV_FILE (mode 0600)"
fi
set_env_image "$DEPLOY_DIR" "$IMAGE" || die "$E_MISSING" "could not update $DEPLOY_DIR/.env"
log "set MCP_IMAGE=$IMAGE in $DEPLOY_DIR/.env"

# 2. Start it.
log "$(compose_hint "$LIVE") up -d --remove-orphans"
metrics_skip_phase
if ! MCP_IMAGE=$IMAGE run_logged compose_cmd "$LIVE" up -d --remove-orphans </dev/null; then
    MCP_IMAGE=$IMAGE show_service_logs "$LIVE"
    rollback "compose up failed" "$E_COMPOSE"
fi
metrics_phase up

# 3. Health.
log "checking $HEALTH_URL (up to $ATTEMPTS attempts within ${TIMEOUT}s)"
if ! health=$(MCP_IMAGE=$IMAGE health_check "$HEALTH_URL" "$ATTEMPTS" "$TIMEOUT" "$LIVE"); then
    rollback "$health" "$E_UNHEALTHY" # health: why it is unhealthy
fi
metrics_phase healthy

ledger_append "$DEPLOY_DIR" served "$IMAGE" release "healthy: ${health:0:200}" "$BACKUP_ID"
log "done: $IMAGE is released and healthy"
json_object image "$IMAGE" health "$health" backup_id "$BACKUP_ID" previous_image "$PREVIOUS_IMAGE"
