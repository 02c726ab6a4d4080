# shellcheck shell=bash
# Blue-green and canary releases behind a reverse proxy (Caddy). Sourced by release.sh and
# restore.sh after lib.sh, never run. See remote/README.md "Strategies".
#
#   proxy       container <project>-proxy (docker run, --network host, restart unless-stopped)
#               listening on --proxy-listen (the public port of the health URL); its config
#               is <deploy-dir>/.deploy/proxy/caddy.json, its admin API the unix socket
#               <deploy-dir>/.deploy/proxy/admin.sock (no TCP admin port).
#   colours     compose projects <project>-blue and <project>-green from the same compose file,
#               each publishing the app on 127.0.0.1:<colour port> (exported as MCP_HTTP_PORT,
#               which the compose file must use); ./data bind mounts are shared by both.
#   live colour <deploy-dir>/.deploy/live-colour (+ live-colour.next during a switch; lib/proxy.sh)
#
# A release: start the idle colour beside the live one -> health-check it directly on its own
# port -> only then point the proxy at it (Caddy's POST /load: graceful, the listener is kept,
# in-flight requests finish) -> record it as live -> wait --drain-seconds -> stop the old
# colour. A colour that fails its health check never receives traffic: it is stopped and the
# live colour keeps serving. A canary release (--strategy canary) moves the traffic in steps
# instead of at once, with a gate at each (lib/canary.sh).
# shellcheck source-path=SCRIPTDIR source=lib/canary.sh
source "$MCP_LIB_DIR/canary.sh"
# shellcheck source-path=SCRIPTDIR source=lib/colours-compose.sh
source "$MCP_LIB_DIR/colours-compose.sh"
# shellcheck source-path=SCRIPTDIR source=lib/bluegreen-restore.sh
source "$MCP_LIB_DIR/bluegreen-restore.sh"

# Options shared by release.sh and restore.sh (added to their OPT_VARS).
STRATEGY=recreate PROXY_IMAGE="" PROXY_LISTEN="" COLOUR_PORTS="" DRAIN_SECONDS=2
# shellcheck disable=SC2034 # read by the sourcing script's parse_opts
BG_OPT_VARS=(
    --strategy STRATEGY --proxy-image PROXY_IMAGE --proxy-listen PROXY_LISTEN
    --colour-ports COLOUR_PORTS --drain-seconds DRAIN_SECONDS
)
# shellcheck disable=SC2034 # appended to the sourcing script's USAGE
readonly BG_USAGE="  --strategy NAME         recreate (default: stop, then start, in place), blue-green
                          (start beside the live colour, switch the proxy once healthy) or
                          canary (as blue-green, then move the traffic in gated steps;
                          restore.sh: as blue-green)
  --proxy-image REF       blue-green: the proxy image (e.g. ghcr.io/owner/mcp-proxy:caddy-2.11.9)
  --proxy-listen ADDR     blue-green, required: where the proxy listens (e.g. 127.0.0.1:8000)
  --colour-ports B,G      blue-green, required: loopback ports of the blue and green apps,
                          exported as MCP_HTTP_PORT (e.g. 8001,8002)
  --drain-seconds N       blue-green: wait before stopping the old colour (default 2)
                          (every blue-green option goes with canary too)
$CANARY_USAGE"

BG_PATH="" BG_BASE_PROJECT="" BG_PROXY_NAME="" BG_PROXY_DIR="" BG_LIVE_FILE=""
BG_ERROR=""
declare -A BG_PORT=()
BG_INSTALLED=() BG_SAVED="" BG_OLD="" BG_STARTED_AT="" BG_MOVED=0

# bg_register_options: add the strategy options to the caller's OPT_VARS.
bg_register_options() {
    local i
    for ((i = 0; i < ${#BG_OPT_VARS[@]}; i += 2)); do
        # shellcheck disable=SC2034 # OPT_VARS is the caller's associative array
        OPT_VARS["${BG_OPT_VARS[i]}"]=${BG_OPT_VARS[i + 1]}
    done
    for ((i = 0; i < ${#CANARY_OPT_VARS[@]}; i += 2)); do
        # shellcheck disable=SC2034 # OPT_VARS is the caller's associative array
        OPT_VARS["${CANARY_OPT_VARS[i]}"]=${CANARY_OPT_VARS[i + 1]}
    done
}

# bg_validate: check the strategy options (after parse_opts, before anything is touched).
# Needs HEALTH_URL.
bg_validate() {
    local port blue green listen_port
    case $STRATEGY in
        recreate)
            local opt
            for opt in PROXY_IMAGE PROXY_LISTEN COLOUR_PORTS; do
                [[ -z ${!opt} ]] ||
                    die "$E_ARG" "--proxy-image, --proxy-listen and --colour-ports go with --strategy blue-green only (e.g. --strategy blue-green --proxy-image $IMAGE_EXAMPLE)"
            done
            check_nonneg_int --drain-seconds "$DRAIN_SECONDS"
            canary_validate
            return 0
            ;;
        blue-green | canary) canary_validate ;;
        *) die "$E_ARG" "--strategy must be recreate, blue-green or canary, got $(shown "$STRATEGY") (e.g. --strategy blue-green)" ;;
    esac
    require --proxy-image "$PROXY_IMAGE" "ghcr.io/owner/mcp-proxy:caddy-2.11.9"
    check_image --proxy-image "$PROXY_IMAGE"
    check_nonneg_int --drain-seconds "$DRAIN_SECONDS"
    if [[ ! $HEALTH_URL =~ ^http://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(:([0-9]{1,5}))?(/[^[:space:]]*)?$ ]]; then
        die "$E_ARG" "--strategy blue-green needs a plain http:// --health-url with a host name or address (the proxy serves HTTP; put TLS in front of it), got $(shown "$HEALTH_URL") (e.g. --health-url http://localhost:8000/api/v1/health)"
    fi
    BG_PATH=${BASH_REMATCH[4]:-/}
    # No defaults here: the deploy plan (Python) derives them once and always passes both.
    require --proxy-listen "$PROXY_LISTEN" "127.0.0.1:8000 (with --strategy blue-green)"
    require --colour-ports "$COLOUR_PORTS" "8001,8002 (with --strategy blue-green)"
    [[ $PROXY_LISTEN =~ ^([0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9A-Fa-f:]+\])?:([0-9]{1,5})$ ]] ||
        die "$E_ARG" "--proxy-listen must be [ADDRESS]:PORT, got $(shown "$PROXY_LISTEN") (e.g. --proxy-listen 127.0.0.1:8000)"
    listen_port=${BASH_REMATCH[3]}
    [[ $COLOUR_PORTS =~ ^([0-9]{1,5}),([0-9]{1,5})$ ]] ||
        die "$E_ARG" "--colour-ports must be two ports BLUE,GREEN, got $(shown "$COLOUR_PORTS") (e.g. --colour-ports 8001,8002)"
    blue=${BASH_REMATCH[1]} green=${BASH_REMATCH[2]}
    for port in "$blue" "$green" "$listen_port"; do
        ((port >= 1 && port <= 65535)) ||
            die "$E_ARG" "port $port is out of range 1-65535 (e.g. --colour-ports 8001,8002 --proxy-listen 127.0.0.1:8000)"
    done
    if ((blue == green || blue == listen_port || green == listen_port)); then
        die "$E_ARG" "--colour-ports $COLOUR_PORTS must be two different ports, both unlike the proxy's $PROXY_LISTEN (e.g. --colour-ports 8001,8002)"
    fi
    BG_PORT[blue]=$blue
    BG_PORT[green]=$green
}

# bg_init: names derived from DEPLOY_DIR and PROJECT (after both are final).
bg_init() {
    BG_BASE_PROJECT=$PROJECT
    BG_PROXY_NAME="$PROJECT-proxy"
    BG_PROXY_DIR="$DEPLOY_DIR/.deploy/proxy"
    # shellcheck disable=SC2034 # used by lib/proxy.sh
    BG_LIVE_FILE="$DEPLOY_DIR/.deploy/live-colour"
}

bg_other() {
    if [[ $1 == blue ]]; then printf green; else printf blue; fi
}

# bg_colour_url COLOUR: the health URL of that colour, straight to its port (no proxy).
bg_colour_url() {
    printf 'http://127.0.0.1:%s%s' "${BG_PORT[$1]}" "$BG_PATH"
}

# bg_in_colour COLOUR CMD...: run CMD (e.g. compose_cmd, health_check) on that colour's
# compose project, with MCP_HTTP_PORT set to its port.
bg_in_colour() {
    local colour=$1
    shift
    local PROJECT="$BG_BASE_PROJECT-$colour"
    local MCP_HTTP_PORT=${BG_PORT[$colour]:-0}
    export MCP_HTTP_PORT
    "$@"
}

# The proxy (container, config, switch, canary split, live-colour record): lib/proxy.sh;
# the compose file check: lib/colours-compose.sh; the canary steps: lib/canary.sh; the
# blue-green restore: lib/bluegreen-restore.sh.

# bg_stop_colour COLOUR FILE: compose down that colour (volumes kept). Never fatal.
bg_stop_colour() {
    local colour=$1 file=$2
    [[ -n $colour ]] || return 0
    log "stopping colour $colour: $(bg_in_colour "$colour" compose_hint "$file") down --remove-orphans --timeout 10"
    MCP_IMAGE=${MCP_IMAGE:-mcp-image-not-set:none} bg_in_colour "$colour" run_logged compose_cmd "$file" down --remove-orphans --timeout 10 </dev/null ||
        log "WARNING: compose down of colour $colour failed; it receives no traffic, stop it by hand"
}

# bg_detach WHAT CMD...: run CMD in a detached background job and return at once. The job
# keeps the deploy lock (fd 9) until CMD is done, so the next step waits for it; it logs to
# .deploy/history.log only (the SSH session is not kept open by it).
bg_detach() {
    local what=$1
    shift
    (
        exec </dev/null >/dev/null 2>&1
        printf 'script=%s (background job: %s) pid=%s started=%s\n' \
            "$SCRIPT_NAME" "$what" "$BASHPID" "$(date '+%Y-%m-%dT%H:%M:%S%z')" >"$HOLDER_FILE" || true
        "$@"
        log "$what: done (background job $BASHPID)"
        rm -f -- "$HOLDER_FILE"
    ) &
    log "$what: in background job $! (it holds the deploy lock until done; see $LOG_FILE)"
    disown
}

# bg_drain_and_stop OLD FILE: let OLD drain --drain-seconds, then stop it.
bg_drain_and_stop() {
    if ((DRAIN_SECONDS > 0)); then
        log "draining colour $1 for ${DRAIN_SECONDS}s"
        sleep "$DRAIN_SECONDS"
    fi
    bg_stop_colour "$1" "$2"
}

# bg_retire OLD FILE [background]: after a switch, drain and stop OLD (in a background job
# with "background": the release is complete once traffic moved).
bg_retire() {
    local old=$1 file=$2 mode=${3:-}
    [[ -n $old ]] || return 0
    if [[ $mode == background ]]; then
        bg_detach "stopping colour $old after ${DRAIN_SECONDS}s of draining" bg_drain_and_stop "$old" "$file"
    else
        bg_drain_and_stop "$old" "$file"
    fi
}

# bg_teardown [force]: leave blue-green (for --strategy recreate after blue-green): stop the
# proxy and both colours, forget the live colour. The app is down until the caller starts
# it. Does nothing when no colour is live, unless "force" is given.
bg_teardown() {
    local colour file="$DEPLOY_DIR/$COMPOSE_FILE"
    [[ -n $(live_colour "$DEPLOY_DIR") || ${1:-} == force ]] || docker inspect "$PROJECT-proxy" >/dev/null 2>&1 || return 0
    log "switching from --strategy blue-green to recreate: stopping the proxy and both colours (short gap)"
    docker rm -f "$PROJECT-proxy" >/dev/null 2>&1 || true
    for colour in blue green; do
        if [[ -f $file ]]; then
            MCP_IMAGE=${MCP_IMAGE:-mcp-image-not-set:none} PROJECT="$PROJECT-$colour" run_logged compose_cmd "$file" down --remove-orphans --timeout 10 </dev/null || true
        fi
    done
    rm -f -- "$DEPLOY_DIR/.deploy/live-colour" "$DEPLOY_DIR/.deploy/live-colour.next"
}

# ---------------------------------------------------------------- release

# bg_release: release.sh with --strategy blue-green (exits). Needs release.sh's globals.
# shellcheck disable=SC2153 # IMAGE, LIVE, STAGED... are release.sh's globals
bg_release() {
    local live new saved f url
    live=$(live_colour "$DEPLOY_DIR")
    new=$(bg_other "$live")
    bg_ensure_proxy_image ||
        die "$E_REGISTRY" "could not pull the proxy image $PROXY_IMAGE (nothing was touched; is the registry login of deploy.sh valid for it?)"

    # Keep the live files, to put them back if the new colour fails.
    saved=$(mktemp -d "$DEPLOY_DIR/.deploy/previous.XXXXXX") || die "$E_MISSING" "cannot create a temp dir in $DEPLOY_DIR/.deploy"
    remove_on_exit "$saved"
    BG_INSTALLED=("$COMPOSE_FILE")
    [[ -z $ENV_FILE ]] || BG_INSTALLED+=("$ENV_FILE")
    for f in "${BG_INSTALLED[@]}"; do
        if [[ -f $DEPLOY_DIR/$f ]]; then cp -p -- "$DEPLOY_DIR/$f" "$saved/$f"; fi
    done
    BG_SAVED=$saved

    install_file "$STAGED/$COMPOSE_FILE" "$LIVE" || die "$E_MISSING" "could not install $LIVE"
    if [[ -n $ENV_FILE ]]; then
        install_file "$STAGED/$ENV_FILE" "$DEPLOY_DIR/$ENV_FILE" || die "$E_MISSING" "could not install $DEPLOY_DIR/$ENV_FILE"
    fi
    log "installed $LIVE${ENV_FILE:+ and $DEPLOY_DIR/$ENV_FILE} from $STAGED"

    if ! MCP_IMAGE=$IMAGE bg_in_colour "$new" bg_check_compose "$LIVE"; then
        bg_release_failed "$live" "$new" "$BG_ERROR"
    fi
    log "starting $IMAGE as colour $new ($(MCP_IMAGE=$IMAGE bg_in_colour "$new" compose_hint "$LIVE") up -d, MCP_HTTP_PORT=${BG_PORT[$new]}) beside ${live:-nothing}"
    BG_STARTED_AT=$(date +%s)
    metrics_skip_phase
    if ! MCP_IMAGE=$IMAGE bg_in_colour "$new" run_logged compose_cmd "$LIVE" up -d --remove-orphans </dev/null; then
        MCP_IMAGE=$IMAGE bg_in_colour "$new" show_service_logs "$LIVE"
        bg_release_failed "$live" "$new" "compose up failed"
    fi
    metrics_phase up
    url=$(bg_colour_url "$new")
    log "checking colour $new directly at $url (up to $ATTEMPTS attempts within ${TIMEOUT}s); no traffic moves before it is healthy"
    local body
    if ! body=$(MCP_IMAGE=$IMAGE bg_in_colour "$new" health_check "$url" "$ATTEMPTS" "$TIMEOUT" "$LIVE"); then
        bg_release_failed "$live" "$new" "$body"
    fi
    metrics_phase healthy
    if [[ $STRATEGY == canary && -n $live ]]; then
        canary_run "$live" "$new" # every step passed, or it exits (the abort: exit 10)
    else
        [[ $STRATEGY != canary ]] || log "canary: nothing serves behind the proxy yet, so there is nothing to compare with: switching at once"
        bg_switch "$new" || bg_switch_failed "$live" "$new" "$?"
    fi
    bg_record_live "$new" || true # on failure the intent stays: the next run reconciles
    set_env_image "$DEPLOY_DIR" "$IMAGE" || log "WARNING: could not update $DEPLOY_DIR/.env"
    log "traffic moved to colour $new ($IMAGE)"
    rm -rf -- "$saved"
    bg_retire "$live" "$LIVE" background
    ledger_append "$DEPLOY_DIR" served "$IMAGE" release "healthy ($STRATEGY, colour $new${CANARY_DONE:+, canary steps $CANARY_DONE passed}): ${body:0:200}" "$BACKUP_ID"
    log "done: $IMAGE is released and healthy ($STRATEGY, colour $new${CANARY_DONE:+; canary steps passed: $CANARY_DONE})"
    if [[ $STRATEGY == canary ]]; then
        json_object image "$IMAGE" health "$body" colour "$new" backup_id "$BACKUP_ID" previous_image "$PREVIOUS_IMAGE" canary "${CANARY_DONE:-switched at once}"
    else
        json_object image "$IMAGE" health "$body" colour "$new" backup_id "$BACKUP_ID" previous_image "$PREVIOUS_IMAGE"
    fi
    exit 0
}

# bg_put_back_files: restore the files bg_release replaced (or remove them if new).
bg_put_back_files() {
    local f
    for f in "${BG_INSTALLED[@]}"; do
        if [[ -f $BG_SAVED/$f ]]; then
            mv -f -- "$BG_SAVED/$f" "$DEPLOY_DIR/$f" || log "WARNING: could not put back $DEPLOY_DIR/$f"
        else
            rm -f -- "${DEPLOY_DIR:?}/$f"
        fi
    done
}

# bg_release_failed LIVE NEW REASON: the new colour failed; stop it, put the previous files
# back, exit 10. Its writes to the shared data are kept (remote/README.md "Strategies"): then
# the last line says so instead of "ROLLED BACK", and names the backup holding the data as it was.
bg_release_failed() {
    local live=$1 new=$2 reason=$3 note head traffic
    log "FAILED: $IMAGE (colour $new) is unhealthy ($reason)$( ((BG_MOVED)) || printf '; it never received traffic')"
    ledger_append "$DEPLOY_DIR" failed "$IMAGE" release "$reason" "$BACKUP_ID"
    bg_put_back_files
    # Before it is stopped: which data it had mounted (docker inspect).
    if note=$(bg_data_note "$new"); then head="ROLLED BACK${live:+ without downtime}"; else head="No downtime, but the DATA is NOT rolled back"; fi
    # It receives no new request; when it took some (a canary's abort), those in flight finish
    # first (--drain-seconds). In the background: the answer need not wait.
    if ((BG_MOVED)); then
        MCP_IMAGE=$IMAGE bg_detach "stopping the failed colour $new after ${DRAIN_SECONDS}s of draining" bg_drain_and_stop "$new" "$STAGED/$COMPOSE_FILE"
    else
        MCP_IMAGE=$IMAGE bg_detach "stopping the failed colour $new" bg_stop_colour "$new" "$STAGED/$COMPOSE_FILE"
    fi
    traffic="the previous version ${PREVIOUS_IMAGE:-?} (colour $live) kept serving; no traffic moved"
    if ((BG_MOVED)); then
        head=${head/No downtime,/Traffic restored,} head=${head/ without downtime/}
        traffic="the proxy was pointed back at the previous version ${PREVIOUS_IMAGE:-?} (colour $live), which serves again (requests went to colour $new until then)"
    fi
    [[ -n $live ]] || traffic="nothing was serving in blue-green before this release, and nothing was switched; no traffic moved${PREVIOUS_IMAGE:+; the previous version $PREVIOUS_IMAGE kept serving}"
    log "FAILED: $IMAGE was unhealthy ($reason). $head: $traffic; $note. The failed colour $new is being stopped. Investigate: the log lines above, or docker run --rm $IMAGE"
    exit "$E_ROLLED_BACK"
}

# bg_data_note NEW: what the failed colour NEW may have changed in the shared data (its
# read-write mounts, files changed since it started) and which backup holds the data as it
# was. Fails (status 1) when it may have written there.
# shellcheck disable=SC2153 # BACKUP_DIR, ATTEMPTS... are release.sh's globals
bg_data_note() {
    local cids="" mounts type src dest list="" changed="" secs
    [[ -z $BG_STARTED_AT ]] || cids=$(docker ps -aq --filter "label=com.docker.compose.project=$BG_BASE_PROJECT-$1" 2>/dev/null </dev/null) || true
    if [[ -z ${cids:-} ]]; then
        printf 'the data was not touched: the failed colour %s never started' "$1"
        return 0
    fi
    # shellcheck disable=SC2086 # one container id per word
    mounts=$(docker inspect -f '{{range .Mounts}}{{if .RW}}{{.Type}}|{{if .Name}}{{.Name}}{{else}}{{.Source}}{{end}}|{{.Destination}}{{println}}{{end}}{{end}}' $cids 2>/dev/null </dev/null | sort -u)
    while IFS='|' read -r type src dest; do
        [[ -n $type ]] || continue
        if [[ $type == bind ]]; then
            changed+=$(timeout 5 find "$src" -xdev -type f -newermt "@$BG_STARTED_AT" 2>/dev/null </dev/null | head -n 5 | sed "s|^$DEPLOY_DIR/|./|" | tr '\n' ' ')
            [[ $src != "$DEPLOY_DIR"/* ]] || src=./${src#"$DEPLOY_DIR"/}
        fi
        list+="${list:+, }$type $src -> $dest"
    done <<<"$mounts"
    [[ -n $list ]] || { printf 'the data was not touched: the failed colour %s had no writable mount' "$1" && return 0; }
    secs=$(($(date +%s) - BG_STARTED_AT))
    printf 'but the failed colour %s ran for %ss with the shared data mounted read-write (%s) and whatever it wrote there is KEPT%s. ' \
        "$1" "$secs" "$list" "${changed:+ (files changed since it started, by either colour: ${changed% })}"
    if [[ -z $BACKUP_ID ]]; then
        printf 'No backup holds the data as it was: this release took none (no --backup-dir)'
        return 1
    fi
    printf 'Backup %s, taken right before it started, holds the data as it was; restoring it also drops what the live colour wrote since: %s' "$BACKUP_ID" \
        "$DEPLOY_DIR/.deploy/bin/restore.sh --deploy-dir $DEPLOY_DIR --backup-dir $BACKUP_DIR --backup $BACKUP_ID --compose-file $COMPOSE_FILE --service $SERVICE --project $PROJECT --health-url $HEALTH_URL --attempts $ATTEMPTS --timeout $TIMEOUT${HEALTH_STATUS:+ --health-status $HEALTH_STATUS} --strategy blue-green --proxy-image $PROXY_IMAGE --proxy-listen $PROXY_LISTEN --colour-ports $COLOUR_PORTS (or: python rollback.py --stack <stack> --backup $BACKUP_ID)"
    return 1
}

# bg_switch_failed LIVE NEW STATUS: the proxy could not be switched to NEW (bg_switch's
# STATUS: 2 = the proxy was not touched); point it back at LIVE.
bg_switch_failed() {
    local live=$1 new=$2 why=$BG_ERROR
    log "the switch to colour $new failed: $why"
    [[ $3 == 2 ]] || BG_MOVED=1
    if [[ -z $live || $3 == 2 ]] || bg_point_back "$live"; then
        bg_release_failed "$live" "$new" "switch failed: $why"
    fi
    log "ACT NOW: the switch to colour $new ($IMAGE) failed ($why) AND pointing the proxy back at colour $live failed: $BG_ERROR. Check: docker logs $BG_PROXY_NAME; $BG_PROXY_DIR/caddy.json"
    exit "$E_ROLLBACK_FAILED"
}
