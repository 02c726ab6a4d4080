#!/usr/bin/env bash
# What serves now on this server, in one JSON line: the running image, the live colour, the
# health answer now, the deploy freeze and the deploy lock's holder (read-only: no lock).
set -euo pipefail
STEP=status
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

USAGE="Usage: $SCRIPT_NAME --deploy-dir DIR --compose-file NAME --service NAME --health-url URL
                 [--health-status CODE] [--project NAME]

stdout: {\"running_image\": \"REF\", \"colour\": \"blue|green|\", \"project\": \"NAME\",
 \"container_state\": \"running\", \"healthy\": true, \"health\": \"<body or why not>\",
 \"frozen\": false, \"frozen_by\": \"\", \"frozen_at\": \"\", \"frozen_reason\": \"\",
 \"lock_holder\": \"\"}
The health answer is one try (5 s) of URL now; the image is what the serving release's
container runs (blue-green: the live colour's project), else MCP_IMAGE= of DIR/.env.

  --deploy-dir DIR        absolute, existing deploy directory (e.g. /opt/mcp)
  --compose-file NAME     compose file name (e.g. docker-compose.production.yml)
  --service NAME          compose service of the app (e.g. mcp-api-prod)
  --health-url URL        e.g. http://localhost:8000/api/v1/health
$HEALTH_USAGE
  --project NAME          compose project (default: base name of DIR)

--check: validate the arguments only and exit 0 or 2, touching nothing; stdout {\"valid\": true}
Exit codes: 2 bad argument, 3 missing dir/tool."

DEPLOY_DIR="" COMPOSE_FILE="" SERVICE="" HEALTH_URL="" PROJECT=""
declare -A OPT_VARS=(
    [--deploy-dir]=DEPLOY_DIR [--compose-file]=COMPOSE_FILE [--service]=SERVICE
    [--health-url]=HEALTH_URL [--project]=PROJECT
)
health_register_options
parse_opts "$@"

require --deploy-dir "$DEPLOY_DIR" /opt/mcp
check_compose_opts "$COMPOSE_FILE" "$SERVICE"
require --health-url "$HEALTH_URL" http://localhost:8000/api/v1/health
check_url --health-url "$HEALTH_URL"
health_validate
[[ -n $PROJECT ]] || PROJECT=$(default_project "$DEPLOY_DIR")
check_project --project "$PROJECT"
check_dir --deploy-dir "$DEPLOY_DIR" /opt/mcp
DEPLOY_DIR=${DEPLOY_DIR%/}
[[ -n $DEPLOY_DIR ]] || die "$E_ARG" "--deploy-dir must not be /"
need_tools docker curl
check_only_done

detect_compose 2>/dev/null
LIVE="$DEPLOY_DIR/$COMPOSE_FILE"
image=$(running_image "$DEPLOY_DIR" "$LIVE" 2>/dev/null)
colour=$(live_colour "$DEPLOY_DIR")
serving=$(serving_project "$DEPLOY_DIR" "$PROJECT")
state=""
if [[ -f $LIVE ]]; then
    cid=$(PROJECT=$serving service_container "$LIVE")
    [[ -z $cid ]] || state=$(docker inspect -f '{{.State.Status}}' "$cid" 2>/dev/null </dev/null || true)
fi
healthy=false
if health=$(health_check "$HEALTH_URL" 1 5 2>/dev/null); then healthy=true; fi
frozen=false
[[ ! -f $(freeze_file "$DEPLOY_DIR") ]] || frozen=true
holder=$(cat -- "$DEPLOY_DIR/.deploy/lock.holder" 2>/dev/null || true)
json_object running_image "$image" colour "$colour" project "$serving" container_state "$state" \
    "=healthy" "$healthy" health "${health:0:500}" "=frozen" "$frozen" frozen_by "$(freeze_value "$DEPLOY_DIR" by)" \
    frozen_at "$(freeze_value "$DEPLOY_DIR" at)" frozen_reason "$(freeze_value "$DEPLOY_DIR" reason)" \
    lock_holder "$holder"
