#!/usr/bin/env bash
# The app's logs: compose logs of the service in the release serving traffic (blue-green:
# the live colour's project), read-only.
set -euo pipefail
STEP=logs
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

USAGE="Usage: $SCRIPT_NAME --deploy-dir DIR --compose-file NAME --service NAME [--project NAME]
               [--lines N] [--since TIME] [--follow]

Prints the service's log lines on stdout (compose logs --no-color --timestamps), the newest
--lines N (default 100); --since takes what compose takes (e.g. 10m, 2h,
2026-12-01T10:00:00Z); --follow keeps streaming until interrupted.

  --deploy-dir DIR        absolute, existing deploy directory (e.g. /opt/mcp)
  --compose-file NAME     compose file name (e.g. docker-compose.production.yml)
  --service NAME          compose service of the app (e.g. mcp-api-prod)
  --project NAME          compose project (default: base name of DIR)

--check: validate the arguments only and exit 0 or 2, touching nothing; stdout {\"valid\": true}
Exit codes: 2 bad argument, 3 missing dir/file/tool."

DEPLOY_DIR="" COMPOSE_FILE="" SERVICE="" PROJECT="" LINES=100 SINCE=""
declare -A OPT_VARS=(
    [--deploy-dir]=DEPLOY_DIR [--compose-file]=COMPOSE_FILE [--service]=SERVICE
    [--project]=PROJECT [--lines]=LINES [--since]=SINCE
)
declare -A FLAG_VARS=([--follow]=FOLLOW)
FOLLOW=0
parse_opts "$@"

require --deploy-dir "$DEPLOY_DIR" /opt/mcp
check_compose_opts "$COMPOSE_FILE" "$SERVICE"
check_posint --lines "$LINES"
[[ -z $SINCE || $SINCE =~ ^[0-9A-Za-z:.+-]{1,40}$ ]] ||
    die "$E_ARG" "--since must be a duration or a time, got $(shown "$SINCE") (e.g. --since 10m or --since 2026-12-01T10:00:00Z)"
[[ -n $PROJECT ]] || PROJECT=$(default_project "$DEPLOY_DIR")
check_project --project "$PROJECT"
check_dir --deploy-dir "$DEPLOY_DIR" /opt/mcp
DEPLOY_DIR=${DEPLOY_DIR%/}
[[ -n $DEPLOY_DIR ]] || die "$E_ARG" "--deploy-dir must not be /"
need_tools docker
check_only_done

LIVE="$DEPLOY_DIR/$COMPOSE_FILE"
[[ -f $LIVE ]] || die "$E_MISSING" "no live compose file $LIVE: nothing was deployed here yet"
detect_compose
PROJECT=$(serving_project "$DEPLOY_DIR" "$PROJECT")
args=(logs --no-color --timestamps --tail "$LINES")
[[ -z $SINCE ]] || args+=(--since "$SINCE")
((!FOLLOW)) || args+=(--follow)
log "$(compose_hint "$LIVE") ${args[*]} $SERVICE"
MCP_IMAGE=$(env_image "$DEPLOY_DIR") compose_cmd "$LIVE" "${args[@]}" "$SERVICE" </dev/null
