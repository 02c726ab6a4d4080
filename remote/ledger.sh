#!/usr/bin/env bash
# The release ledger: list what served, failed or was rolled back from on this server, or
# mark an image as rolled back from (rollback.py does, before it moves away from it).
set -euo pipefail
umask 077
STEP=ledger
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

USAGE="Usage: $SCRIPT_NAME --deploy-dir DIR --list
       $SCRIPT_NAME --deploy-dir DIR --mark EVENT --image REF --reason TEXT [--actor NAME]
                    [--via rollback|smoke-test|manual] [--lock-timeout SECONDS]

--list prints DIR/.deploy/$LEDGER_NAME, oldest first, one JSON object per line (nothing when
there is no ledger yet). --mark appends one line under the deploy lock: EVENT is
rolled-back-from (an operator moves away from REF: it is no longer a rollback target) or
failed (e.g. its smoke test failed).

  --deploy-dir DIR        absolute, existing deploy directory (e.g. /opt/mcp)
  --image REF             the image (e.g. ghcr.io/owner/mcp:3f2c1ab...@sha256:...)
  --reason TEXT           why, one line of at most 500 characters (e.g. 'smoke test failed')
  --via NAME              what marks it: rollback, smoke-test or manual (default manual)
  --lock-timeout SECONDS  wait this long for another deploy step (default 120)
$LEDGER_USAGE

stdout (--mark): {\"marked\": \"EVENT\", \"image\": \"REF\", \"digest\": \"sha256:...\"}
--check: validate the arguments only and exit 0 or 2, touching nothing; stdout {\"valid\": true}
Exit codes: 2 bad argument, 3 missing dir, 4 locked."

DEPLOY_DIR="" EVENT="" IMAGE="" REASON="" VIA=manual LOCK_TIMEOUT=120
declare -A OPT_VARS=(
    [--deploy-dir]=DEPLOY_DIR [--mark]=EVENT [--image]=IMAGE [--reason]=REASON [--via]=VIA
    [--lock-timeout]=LOCK_TIMEOUT
)
declare -A FLAG_VARS=([--list]=LIST)
LIST=0
ledger_register_options
parse_opts "$@"

require --deploy-dir "$DEPLOY_DIR" /opt/mcp
check_dir --deploy-dir "$DEPLOY_DIR" /opt/mcp
DEPLOY_DIR=${DEPLOY_DIR%/}
[[ -n $DEPLOY_DIR ]] || die "$E_ARG" "--deploy-dir must not be /"
check_nonneg_int --lock-timeout "$LOCK_TIMEOUT"
ledger_validate
if ((LIST)); then
    [[ -z $EVENT$IMAGE$REASON ]] || die "$E_ARG" "--list takes no --mark, --image or --reason (e.g. --deploy-dir /opt/mcp --list)"
else
    require --mark "$EVENT" rolled-back-from
    [[ $EVENT == rolled-back-from || $EVENT == failed ]] ||
        die "$E_ARG" "--mark must be rolled-back-from or failed, got $(shown "$EVENT") (e.g. --mark rolled-back-from)"
    require --image "$IMAGE" "ghcr.io/owner/mcp:3f2c1ab"
    check_image --image "$IMAGE"
    require --reason "$REASON" "'smoke test failed'"
    [[ $VIA == rollback || $VIA == smoke-test || $VIA == manual ]] ||
        die "$E_ARG" "--via must be rollback, smoke-test or manual, got $(shown "$VIA") (e.g. --via rollback)"
    [[ ${#REASON} -le 500 && $REASON != *$'\n'* ]] ||
        die "$E_ARG" "--reason must be one line of at most 500 characters (e.g. --reason 'smoke test failed')"
fi
check_only_done

file=$(ledger_file "$DEPLOY_DIR")
if ((LIST)); then
    [[ ! -f $file ]] || cat -- "$file"
    exit 0
fi
setup_traps
acquire_lock "$DEPLOY_DIR" "$LOCK_TIMEOUT"
ledger_append "$DEPLOY_DIR" "$EVENT" "$IMAGE" "$VIA" "$REASON"
log "recorded: $EVENT $IMAGE ($REASON) by $(ledger_actor)"
json_object marked "$EVENT" image "$IMAGE" digest "$(image_digest "$IMAGE")"
