# shellcheck shell=bash
# One job: Docker Compose (sourced, never run): which compose runs (v2 or v1), the compose
# command of a project, the deploy dir's MCP_IMAGE=, and what runs in the serving release.

COMPOSE=()         # the command that runs compose
COMPOSE_NAME=""    # what an engineer types for it: "docker compose" or "docker-compose"

# The directories where the docker CLI looks for its plugins: the user's, then the system's;
# MCP_COMPOSE_PLUGIN_DIRS (colon-separated, may be empty) replaces them.
compose_plugin_dirs() {
    if [[ -n ${MCP_COMPOSE_PLUGIN_DIRS+x} ]]; then
        tr ':' '\n' <<<"$MCP_COMPOSE_PLUGIN_DIRS"
        return 0
    fi
    printf '%s\n' "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins" /usr/local/lib/docker/cli-plugins \
        /usr/local/libexec/docker/cli-plugins /usr/lib/docker/cli-plugins /usr/libexec/docker/cli-plugins
}

# detect_compose: docker compose (v2) if present, else docker-compose (v1). Compose v2 is a
# docker CLI plugin: found where the CLI looks for it, it is run directly, the same program
# without the CLI's own start in front of it (~30 ms per compose command; a deploy runs several).
# Anywhere else (e.g. the config's cliPluginsExtraDirs) it runs as `docker compose`.
detect_compose() {
    need_tools docker
    local version dir direct=""
    while read -r dir; do
        if [[ -x $dir/docker-compose ]] &&
            version=$("$dir/docker-compose" version --short 2>/dev/null </dev/null) &&
            [[ $version == 2.* || $version == v2.* ]]; then
            direct=$dir/docker-compose
            break
        fi
    done < <(compose_plugin_dirs)
    if [[ -n $direct ]]; then
        COMPOSE=("$direct") COMPOSE_NAME="docker compose"
    elif version=$(docker compose version --short 2>/dev/null </dev/null); then
        COMPOSE=(docker compose) COMPOSE_NAME="docker compose"
    elif command -v docker-compose >/dev/null 2>&1; then
        COMPOSE=(docker-compose) COMPOSE_NAME=docker-compose
        version=$(docker-compose version --short 2>/dev/null </dev/null || true)
    else
        die "$E_MISSING" "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed"
    fi
    # Which compose ran is in every step's log (and history.log): v1 and v2 differ in details.
    log "compose: $COMPOSE_NAME ${version:-(version unknown)}${direct:+ (plugin run directly: $direct)}"
    MCP_UID=$(id -u)
    MCP_GID=$(id -g)
    export MCP_UID MCP_GID
}

# compose_cmd FILE ARGS...: run compose on FILE with the project name, exporting MCP_IMAGE
# (set by the caller, e.g. `MCP_IMAGE=ref compose_cmd ...`), MCP_UID and MCP_GID.
compose_cmd() {
    local file=$1
    shift
    # ps/logs/down must interpolate the file even when no image is known: a placeholder.
    MCP_IMAGE="${MCP_IMAGE:-mcp-image-not-set:none}" MCP_UID="$MCP_UID" MCP_GID="$MCP_GID" \
        "${COMPOSE[@]}" -p "$PROJECT" -f "$file" "$@"
}

# compose_hint FILE: the command an engineer would type.
compose_hint() {
    printf '%s -p %s -f %s' "$COMPOSE_NAME" "$PROJECT" "$1"
}

# env_image DEPLOY_DIR: the MCP_IMAGE= value of <deploy-dir>/.env ("" if none).
env_image() {
    local f="$1/.env" v=""
    if [[ -f $f ]]; then
        v=$(sed -n 's/^MCP_IMAGE=//p' -- "$f" | tail -n 1)
        v=${v%\"}
        v=${v#\"}
        v=${v%\'}
        v=${v#\'}
    fi
    printf '%s' "$v"
}

# set_env_image DEPLOY_DIR IMAGE: rewrite the MCP_IMAGE= line of .env, keep the others.
set_env_image() {
    local dir=$1 image=$2 f="$1/.env" tmp
    tmp=$(mktemp "$dir/.env.XXXXXX") || return 1
    if [[ -f $f ]]; then
        grep -v '^MCP_IMAGE=' -- "$f" >"$tmp" || true
    fi
    printf 'MCP_IMAGE=%s\n' "$image" >>"$tmp"
    chmod 600 -- "$tmp"
    mv -f -- "$tmp" "$f"
}

# service_container FILE: id of the service's container ("" if none). Asks the docker CLI by
# compose labels first (fast), and compose itself when that finds nothing (slow: compose v1
# takes most of a second to start, and this runs several times per step).
service_container() {
    local file=$1 cid
    [[ -f $file ]] || return 0
    cid=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$SERVICE" \
        --filter "label=com.docker.compose.oneoff=False" 2>/dev/null </dev/null | head -n 1 || true)
    if [[ -n $cid ]]; then
        printf '%s\n' "$cid"
        return 0
    fi
    compose_cmd "$file" ps -q "$SERVICE" 2>/dev/null </dev/null | head -n 1 || true
}

# live_colour DEPLOY_DIR: the blue-green colour serving traffic, read from
# <deploy-dir>/.deploy/live-colour ("" when the deploy dir is not run blue-green). Cheap: only
# when a switch was interrupted (live-colour.next is left) is the proxy asked (lib/proxy.sh).
live_colour() {
    local colour=""
    if [[ -f $1/.deploy/live-colour ]]; then
        colour=$(head -n 1 -- "$1/.deploy/live-colour" 2>/dev/null || true)
    fi
    if [[ -f $1/.deploy/live-colour.next ]]; then
        colour=$(live_intent_colour "$1" "$colour")
    fi
    if [[ $colour == blue || $colour == green ]]; then
        printf '%s' "$colour"
    fi
    return 0
}

# serving_project DEPLOY_DIR PROJECT: the compose project of the release serving traffic:
# PROJECT, or PROJECT-<live colour> with blue-green.
serving_project() {
    local colour
    colour=$(live_colour "$1")
    printf '%s%s' "$2" "${colour:+-$colour}"
}

# running_image DEPLOY_DIR FILE: image of the running service container, else MCP_IMAGE of
# .env (logged), else "". Prints it.
running_image() {
    local dir=$1 file=$2 cid="" img="" running="" colour
    local MCP_IMAGE
    MCP_IMAGE=$(env_image "$dir")
    # Blue-green (remote/bluegreen.sh): the serving release is the live colour's project.
    colour=$(live_colour "$dir")
    local PROJECT=${PROJECT}${colour:+-$colour}
    if [[ -f $file ]]; then
        cid=$(service_container "$file")
    fi
    if [[ -n $cid ]]; then
        running=$(docker inspect -f '{{.State.Running}}' "$cid" 2>/dev/null || true)
        if [[ $running == true ]]; then
            img=$(docker inspect -f '{{.Config.Image}}' "$cid" 2>/dev/null || true)
        fi
    fi
    if [[ -n $img ]]; then
        log "running image of service $SERVICE: $img"
    elif [[ -n $MCP_IMAGE ]]; then
        img=$MCP_IMAGE
        log "no running container for service $SERVICE; using MCP_IMAGE from $dir/.env: $img"
    else
        log "no running container for service $SERVICE and no MCP_IMAGE in $dir/.env: nothing deployed yet"
    fi
    printf '%s' "$img"
}

# container_state FILE: "status exitcode restarts" of the service container, or "none".
container_state() {
    local cid
    cid=$(service_container "$1")
    if [[ -z $cid ]]; then
        printf 'none'
        return 0
    fi
    docker inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}' "$cid" 2>/dev/null ||
        printf 'none'
}

# show_service_logs FILE: last 30 log lines of the service, on stderr.
show_service_logs() {
    local file=$1
    [[ -f $file ]] || return 0
    log "last 30 log lines of $SERVICE:"
    run_logged compose_cmd "$file" logs --no-color --tail=30 "$SERVICE" </dev/null || true
}
