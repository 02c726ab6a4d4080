#!/usr/bin/env bash
# Step 2 ("stage"): stage the compose file and env file under <deploy-dir>/.deploy/staged/,
# log in to the registry, pull the image, validate the compose file. Never touches the
# running app.
set -euo pipefail
umask 077
STEP=deploy
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

USAGE="Usage: $SCRIPT_NAME --deploy-dir DIR --compose-file NAME --service NAME --image REF
                 [--env-file NAME] [--registry HOST --registry-user USER]
                 [--project NAME] [--lock-timeout SECONDS] [--override-freeze]

Stage a release in DIR/.deploy/staged/ (compose file, env file, IMAGE) and pull REF.
The running app is not touched; release.sh switches to the staged release.

  --deploy-dir DIR        absolute, existing deploy directory (e.g. /opt/mcp)
  --compose-file NAME     compose file name (e.g. docker-compose.production.yml); taken from
                          DIR/.deploy/staged/NAME if already uploaded there, else copied from DIR/NAME
  --service NAME          compose service of the app (e.g. mcp-api-prod)
  --image REF             image with a tag or digest (e.g. $IMAGE_EXAMPLE)
  --env-file NAME         stage an app env file under this name (e.g. .env.production);
                          its content is read from stdin (after the password line, if any)
  --registry HOST         docker login to this registry first (e.g. ghcr.io); the password
                          is line 1 of stdin (never an argument)
  --registry-user USER    registry user (required with --registry)
  --project NAME          compose project (default: base name of DIR)
  --lock-timeout SECONDS  wait this long for another deploy step (default 120)
$FREEZE_USAGE

stdin:  [registry password line] [env file content]
stdout: {\"staged_image\": \"REF\"}
--check: validate the arguments only (same rules as a run; not the server's dirs, tools or
stdin) and exit 0 or 2, touching nothing (no lock, no docker, no file); stdout {\"valid\": true}
Exit codes: 2 bad argument, 3 missing dir/file/tool, 4 locked, 7 registry login or pull
failed, 8 compose file does not validate, 14 deploys are frozen."

DEPLOY_DIR="" COMPOSE_FILE="" SERVICE="" IMAGE="" ENV_FILE="" REGISTRY="" REGISTRY_USER="" PROJECT="" LOCK_TIMEOUT=120
declare -A OPT_VARS=(
    [--deploy-dir]=DEPLOY_DIR [--compose-file]=COMPOSE_FILE [--service]=SERVICE [--image]=IMAGE
    [--env-file]=ENV_FILE [--registry]=REGISTRY [--registry-user]=REGISTRY_USER
    [--project]=PROJECT [--lock-timeout]=LOCK_TIMEOUT
)
declare -A FLAG_VARS=()
freeze_register_options
parse_opts "$@"

require --deploy-dir "$DEPLOY_DIR" /opt/mcp
check_compose_opts "$COMPOSE_FILE" "$SERVICE"
require --image "$IMAGE" "$IMAGE_EXAMPLE"
check_image --image "$IMAGE"
check_nonneg_int --lock-timeout "$LOCK_TIMEOUT"
if [[ -n $ENV_FILE ]]; then
    check_filename --env-file "$ENV_FILE" .env.production
    [[ $ENV_FILE != "$COMPOSE_FILE" && $ENV_FILE != .env && $ENV_FILE != IMAGE ]] ||
        die "$E_ARG" "--env-file must differ from --compose-file, .env and IMAGE (e.g. --env-file .env.production)"
fi
require_together --registry "$REGISTRY" ghcr.io --registry-user "$REGISTRY_USER" deploy-bot
if [[ -n $REGISTRY ]]; then
    check_registry --registry "$REGISTRY"
    check_user --registry-user "$REGISTRY_USER"
fi
[[ -n $PROJECT ]] || PROJECT=$(default_project "$DEPLOY_DIR")
check_project --project "$PROJECT"
check_dir --deploy-dir "$DEPLOY_DIR" /opt/mcp
DEPLOY_DIR=${DEPLOY_DIR%/}
[[ -n $DEPLOY_DIR ]] || die "$E_ARG" "--deploy-dir must not be /"
need_tools docker flock
check_only_done

# Secrets from stdin, before anything is touched (an empty password is refused).
REGISTRY_PASSWORD=""
ENV_CONTENT=""
if [[ -n $REGISTRY ]]; then
    IFS= read -r REGISTRY_PASSWORD || true
    REGISTRY_PASSWORD=${REGISTRY_PASSWORD%$'\r'}
    [[ -n $REGISTRY_PASSWORD ]] ||
        die "$E_ARG" "--registry $REGISTRY given but stdin line 1 (the registry password) is empty"
fi
if [[ -n $ENV_FILE ]]; then
    ENV_CONTENT=$(cat)
    [[ -n $ENV_CONTENT ]] ||
        die "$E_ARG" "--env-file $ENV_FILE given but no env file content on stdin (refusing to stage an empty env file)"
fi

setup_traps
acquire_lock "$DEPLOY_DIR" "$LOCK_TIMEOUT"
metrics_begin "$DEPLOY_DIR"
metrics_set image "$IMAGE"
freeze_check "$DEPLOY_DIR"
detect_compose

STAGED="$DEPLOY_DIR/.deploy/staged"
mkdir -p -- "$STAGED"

# 1. Compose file.
if [[ -f $STAGED/$COMPOSE_FILE ]]; then
    log "using the uploaded compose file $STAGED/$COMPOSE_FILE"
elif [[ -f $DEPLOY_DIR/$COMPOSE_FILE ]]; then
    log "no uploaded compose file in $STAGED: staging a copy of the live $DEPLOY_DIR/$COMPOSE_FILE"
    cp -- "$DEPLOY_DIR/$COMPOSE_FILE" "$STAGED/.$COMPOSE_FILE.tmp"
    mv -f -- "$STAGED/.$COMPOSE_FILE.tmp" "$STAGED/$COMPOSE_FILE"
else
    die "$E_MISSING" "no compose file: neither $STAGED/$COMPOSE_FILE (uploaded) nor $DEPLOY_DIR/$COMPOSE_FILE (live) exists"
fi

# 2. Env file (secret): 0600, written under a temp name then renamed.
if [[ -n $ENV_FILE ]]; then
    env_tmp=$(mktemp "$STAGED/.env-file.XXXXXX") || die "$E_MISSING" "cannot write in $STAGED"
    remove_on_exit "$env_tmp"
    printf '%s\n' "$ENV_CONTENT" >"$env_tmp"
    chmod 600 -- "$env_tmp"
    mv -f -- "$env_tmp" "$STAGED/$ENV_FILE"
    ENV_CONTENT=""
    log "staged the env file $STAGED/$ENV_FILE (mode 0600)"
fi
# A previous IMAGE is stale from now on: release.sh must not pick it up with new files.
rm -f -- "$STAGED/IMAGE"

# 3. Registry login (password on stdin, never echoed).
if [[ -n $REGISTRY ]]; then
    log "docker login $REGISTRY as $REGISTRY_USER"
    if ! printf '%s\n' "$REGISTRY_PASSWORD" |
        run_logged docker login "$REGISTRY" -u "$REGISTRY_USER" --password-stdin; then
        REGISTRY_PASSWORD=""
        die "$E_REGISTRY" "docker login to $REGISTRY as $REGISTRY_USER failed (wrong password or token?). Nothing was touched; the running app is unchanged."
    fi
    REGISTRY_PASSWORD=""
fi

# 4. Pull.
log "docker pull $IMAGE"
metrics_skip_phase
if ! run_logged docker pull "$IMAGE" </dev/null; then
    die "$E_REGISTRY" "docker pull $IMAGE failed (registry: ${REGISTRY:-${IMAGE%%/*}, no --registry login done}; missing tag or no access?). Nothing was touched; the running app is unchanged."
fi

metrics_phase pull

# 5. Validate the staged compose file with the new image.
if [[ -n $ENV_FILE ]]; then
    project_dir=$STAGED # the staged env file sits next to the staged compose file
else
    project_dir=$DEPLOY_DIR # the live env file will be used
fi
validate_args=(--project-directory "$project_dir")
if [[ -f $DEPLOY_DIR/.env ]]; then
    validate_args+=(--env-file "$DEPLOY_DIR/.env") # the compose variables of the live dir
fi
log "validating $STAGED/$COMPOSE_FILE with MCP_IMAGE=$IMAGE"
# One compose run validates and lists the services (compose v1 takes ~1 s to start).
config_err=$(mktemp "${TMPDIR:-/tmp}/mcp-config.XXXXXX") || die "$E_MISSING" "cannot create a temp file in ${TMPDIR:-/tmp}"
remove_on_exit "$config_err"
if ! services=$(MCP_IMAGE=$IMAGE compose_cmd "$STAGED/$COMPOSE_FILE" "${validate_args[@]}" config --services 2>"$config_err" </dev/null); then
    log_stream <"$config_err"
    die "$E_COMPOSE" "the staged compose file $STAGED/$COMPOSE_FILE does not validate with MCP_IMAGE=$IMAGE (see above); the running app is unchanged"
fi
if ! grep -qxF -- "$SERVICE" <<<"$services"; then
    die "$E_COMPOSE" "the staged compose file $STAGED/$COMPOSE_FILE has no service $SERVICE (services: $(tr '\n' ' ' <<<"$services"))"
fi

# 6. IMAGE last: its presence means "staged and complete".
printf '%s\n' "$IMAGE" >"$STAGED/.IMAGE.tmp"
mv -f -- "$STAGED/.IMAGE.tmp" "$STAGED/IMAGE"

log "done: staged $IMAGE in $STAGED (the running app was not touched)"
json_object staged_image "$IMAGE"
