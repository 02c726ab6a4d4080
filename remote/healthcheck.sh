#!/usr/bin/env bash
# Check the health URL with retries and a deadline (read-only).
set -euo pipefail
STEP=health
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

USAGE="Usage: $SCRIPT_NAME --url URL --attempts N --timeout SECONDS [--health-status CODE]
                      [--deploy-dir DIR --compose-file NAME --service NAME [--project NAME]]

Try URL (curl, 5 s per try) up to N times within SECONDS; healthy means it answers HTTP
CODE (redirects are not followed). With the compose options, stop early when the service
container has exited, and show its last 30 log lines on failure.

  --url URL           e.g. http://localhost:8000/api/v1/health
  --attempts N        e.g. 10
  --timeout SECONDS   e.g. 60
$HEALTH_USAGE
  --deploy-dir DIR    absolute, existing deploy directory (e.g. /opt/mcp)
  --compose-file NAME e.g. docker-compose.production.yml
  --service NAME      e.g. mcp-api-prod
  --project NAME      compose project (default: base name of DIR)

stdout: {\"healthy\": true, \"body\": \"...\"}
--check: validate the arguments only (same rules as a run; not the server's dirs, tools or
stdin) and exit 0 or 2, touching nothing (no lock, no docker, no file); stdout {\"valid\": true}
Exit codes: 2 bad argument, 3 missing dir/tool, 13 unhealthy."

URL="" ATTEMPTS="" TIMEOUT="" DEPLOY_DIR="" COMPOSE_FILE="" SERVICE="" PROJECT=""
declare -A OPT_VARS=(
    [--url]=URL [--attempts]=ATTEMPTS [--timeout]=TIMEOUT [--deploy-dir]=DEPLOY_DIR
    [--compose-file]=COMPOSE_FILE [--service]=SERVICE [--project]=PROJECT
)
health_register_options
parse_opts "$@"

require --url "$URL" http://localhost:8000/api/v1/health
require --attempts "$ATTEMPTS" 10
require --timeout "$TIMEOUT" 60
check_url --url "$URL"
check_posint --attempts "$ATTEMPTS"
check_posint --timeout "$TIMEOUT"
health_validate
compose_file_path=""
require_together --deploy-dir "$DEPLOY_DIR" /opt/mcp --compose-file "$COMPOSE_FILE" docker-compose.production.yml \
    --service "$SERVICE" mcp-api-prod
[[ -z $PROJECT || -n $DEPLOY_DIR ]] || die "$E_ARG" "--project needs --deploy-dir, --compose-file and --service (e.g. --deploy-dir /opt/mcp)"
if [[ -n $DEPLOY_DIR ]]; then
    check_filename --compose-file "$COMPOSE_FILE" docker-compose.production.yml
    check_name --service "$SERVICE" mcp-api-prod
    [[ -n $PROJECT ]] || PROJECT=$(default_project "$DEPLOY_DIR")
    check_project --project "$PROJECT"
    check_dir --deploy-dir "$DEPLOY_DIR" /opt/mcp
    DEPLOY_DIR=${DEPLOY_DIR%/}
    compose_file_path="$DEPLOY_DIR/$COMPOSE_FILE"
    ((CHECK_ONLY)) || [[ -f $compose_file_path ]] || die "$E_MISSING" "compose file not found: $compose_file_path"
fi
need_tools curl
check_only_done

setup_traps
if [[ -n $compose_file_path ]]; then
    detect_compose
    MCP_IMAGE=$(env_image "$DEPLOY_DIR")
    # Blue-green: the service runs in the live colour's compose project, <project>-<colour>.
    PROJECT=$(serving_project "$DEPLOY_DIR" "$PROJECT")
    log "checking service $SERVICE of compose project $PROJECT"
fi
if ! body=$(MCP_IMAGE=${MCP_IMAGE:-} health_check "$URL" "$ATTEMPTS" "$TIMEOUT" "$compose_file_path"); then
    die "$E_UNHEALTHY" "UNHEALTHY: $URL ($body)" # body: why it is unhealthy
fi
log "done: $URL is healthy"
json_object '=healthy' true body "$body"
