# shellcheck shell=bash
# One job: the proxy shared by blue-green and canary (sourced, never run): its container and
# config, every change of where traffic goes (a switch from one colour to the other, a canary's
# split, its abort: each a swap of the slot files, lib/proxy-routes.sh), and the record of which
# colour is live, kept true across a kill, a reboot or a full disk at any point of a change. See remote/README.md "Strategies". The
# bg_* functions need bluegreen.sh's globals (BG_PORT, BG_PROXY_DIR...); live_intent_colour is
# what the read-only paths (live_colour in lib/compose.sh) use.
#
#   .deploy/live-colour       the colour serving traffic ("blue" or "green"); during a canary,
#                             the colour it started from (until the new one takes 100%)
#   .deploy/live-colour.next  a change is (or was, if a run was killed) under way:
#                             "<colour switched to> <blue port> <green port>", or for a canary
#                             step "<new colour> <blue port> <green port> <percent>"
#   .deploy/proxy/slots       where each share of the requests goes (lib/proxy-routes.sh)
#   .deploy/proxy/access.log  the proxy's JSON access log, one line per request with the
#                             upstream that answered it (the canary's gate reads it)
#
# A switch: write live-colour.next (atomically), point the proxy, check the public URL,
# write live-colour (atomically), remove live-colour.next. A canary step writes the intent,
# then splits the proxy (live-colour still names the old colour). Killed anywhere in between,
# the next run finds live-colour.next (or a live-colour that disagrees with the proxy) and takes
# the truth from what the proxy really routes to (bg_reconcile): one upstream is the live
# colour; a split is an interrupted canary, and all traffic goes back to the colour it started
# from. Until then live_colour resolves it the same way.

# write_atomic FILE TEXT: FILE holds TEXT (one line) or is left as it was (temp file + mv),
# never truncated (e.g. on a full disk).
write_atomic() {
    local file=$1 text=$2 tmp
    tmp=$(mktemp "$file.XXXXXX" 2>/dev/null) || return 1
    if printf '%s\n' "$text" >"$tmp" 2>/dev/null && mv -f -- "$tmp" "$file" 2>/dev/null; then
        return 0
    fi
    rm -f -- "$tmp"
    return 1
}

# routes_old_colour ROUTES INTENT RECORDED: for a split (an interrupted canary), the colour it
# started from: the other colour than the intent's canary, else RECORDED, else the upstream
# with the larger weight. Needs BLUE GREEN ports as $4 $5.
routes_old_colour() {
    local routes=$1 target=${2%% *} recorded=$3 blue=$4 green=$5 a b
    if [[ $target == blue ]]; then printf green && return 0; fi
    if [[ $target == green ]]; then printf blue && return 0; fi
    if [[ $recorded == blue || $recorded == green ]]; then printf '%s' "$recorded" && return 0; fi
    read -r a b <<<"$routes"
    [[ ${a#*:} -ge ${b#*:} ]] || a=$b
    if [[ ${a%%:*} == "$blue" ]]; then printf blue; elif [[ ${a%%:*} == "$green" ]]; then printf green; fi
}

# live_intent_colour DEPLOY_DIR RECORDED: with live-colour.next present (an interrupted change),
# the colour the proxy really routes to (for a canary's split: the colour it started from);
# RECORDED when that cannot be told.
live_intent_colour() {
    local intent _target blue green routes
    intent=$(head -n 1 -- "$1/.deploy/live-colour.next" 2>/dev/null || true)
    read -r _target blue green _ <<<"$intent" || true
    if routes=$(proxy_routes "$1"); then
        routes=${routes#* }
        if [[ $routes == "$blue" ]]; then printf blue && return 0; fi
        if [[ $routes == "$green" ]]; then printf green && return 0; fi
        if [[ $routes == *' '* ]]; then
            routes_old_colour "$routes" "$intent" "$2" "$blue" "$green"
            return 0
        fi
    fi
    printf '%s' "$2"
}

# bg_record_intent COLOUR [PERCENT]: live-colour.next, before the proxy is touched (PERCENT:
# a canary step sending that share to COLOUR).
bg_record_intent() {
    mkdir -p -- "${BG_LIVE_FILE%/*}" && write_atomic "$BG_LIVE_FILE.next" "$1 ${BG_PORT[blue]} ${BG_PORT[green]}${2:+ $2}"
}

# bg_record_live COLOUR: live-colour, then drop live-colour.next. On failure (disk full) the
# intent stays, so the next run reconciles; a WARNING says so.
bg_record_live() {
    if write_atomic "$BG_LIVE_FILE" "$1"; then
        rm -f -- "$BG_LIVE_FILE.next"
        return 0
    fi
    log "WARNING: could not write $BG_LIVE_FILE (disk full?); $BG_LIVE_FILE.next says a switch to $1 was under way, so the next release or restore takes the live colour from the proxy"
    return 1
}

# bg_point_back COLOUR: after a failed switch, point the proxy at COLOUR again (the record
# already names it) and drop the intent. Sets BG_ERROR.
bg_point_back() {
    bg_point_proxy "$1" || return 1
    rm -f -- "$BG_LIVE_FILE.next"
}

# bg_reconcile: at the start of a blue-green or canary release or restore (under the deploy
# lock, before anything reads the live colour): make live-colour say what the proxy really
# routes to; a split left by an interrupted canary sends all traffic back to the colour that
# canary started from (through the same intent-first switch).
bg_reconcile() {
    [[ $STRATEGY != recreate ]] || return 0
    bg_init
    local recorded intent="" state routes from colour="" c old
    recorded=$(head -n 1 -- "$BG_LIVE_FILE" 2>/dev/null || true)
    [[ $recorded == blue || $recorded == green ]] || recorded=""
    [[ ! -f $BG_LIVE_FILE.next ]] || intent=$(head -n 1 -- "$BG_LIVE_FILE.next" 2>/dev/null || printf '?')
    state=$(bg_proxy_state)
    if [[ $state == absent* ]]; then
        # No proxy: nothing is routed; the next switch starts one.
        [[ -z $intent ]] || log "no proxy container $BG_PROXY_NAME: removing the leftover $BG_LIVE_FILE.next ($intent) of an interrupted switch"
        rm -f -- "$BG_LIVE_FILE.next"
        return 0
    fi
    if ! routes=$(proxy_routes "$DEPLOY_DIR"); then
        log "WARNING: cannot tell where the proxy $BG_PROXY_NAME routes ($state; no $BG_PROXY_DIR/caddy.json): keeping .deploy/live-colour (${recorded:-empty})"
        return 0
    fi
    from="the proxy routes to"
    # Not answering: what it loads when it starts.
    [[ $routes == running* ]] || from="the proxy (not answering: $state) is configured for"
    routes=${routes#* }
    if [[ $routes == *' '* ]]; then
        old=$(routes_old_colour "$routes" "$intent" "$recorded" "${BG_PORT[blue]}" "${BG_PORT[green]}")
        [[ -n $old ]] || die "$E_ROLLBACK_FAILED" "ACT NOW: $from a split ($routes) that is neither colour's ($COLOUR_PORTS); check $BG_PROXY_DIR/caddy.json"
        log "reconciled: $from a canary split (port:weight $routes) left by an interrupted canary release (${BG_LIVE_FILE##*/}.next: ${intent:-none}): sending all traffic back to colour $old, the one it started from"
        bg_record_intent "$old" || die "$E_MISSING" "cannot write $BG_LIVE_FILE.next (disk full?): the proxy still splits traffic ($routes); free some space and retry"
        bg_point_proxy "$old" || die "$E_ROLLBACK_FAILED" "ACT NOW: the proxy still splits traffic ($routes) and pointing it back at colour $old failed: $BG_ERROR"
        bg_record_live "$old" ||
            die "$E_MISSING" "cannot record the live colour $old in $BG_LIVE_FILE (disk full?): colour $old serves all traffic; free some space and retry"
        return 0
    fi
    for c in blue green; do
        if [[ $routes == "${BG_PORT[$c]}" ]]; then colour=$c; fi
    done
    if [[ -z $colour ]]; then
        log "WARNING: $from 127.0.0.1:$routes, which is neither colour port ($COLOUR_PORTS): keeping .deploy/live-colour (${recorded:-empty})"
        rm -f -- "$BG_LIVE_FILE.next"
        return 0
    fi
    [[ $colour != "$recorded" || -n $intent ]] || return 0
    if [[ $colour != "$recorded" ]]; then
        log "reconciled live colour: $from $colour (127.0.0.1:$routes) but .deploy/live-colour said ${recorded:-nothing}: a previous release was interrupted after the switch"
    else
        log "reconciled live colour: $from $colour (127.0.0.1:$routes), as .deploy/live-colour says: a previous release was interrupted during its switch (${BG_LIVE_FILE##*/}.next: $intent)"
    fi
    bg_record_live "$colour" ||
        die "$E_MISSING" "cannot record the live colour $colour in $BG_LIVE_FILE (disk full?): nothing was changed, colour $colour keeps serving; free some space and retry"
}

# bg_ensure_proxy_image: pull --proxy-image unless present (uses deploy.sh's registry login).
bg_ensure_proxy_image() {
    if docker image inspect "$PROXY_IMAGE" >/dev/null 2>&1; then
        return 0
    fi
    log "pulling the proxy image $PROXY_IMAGE"
    run_logged docker pull "$PROXY_IMAGE" </dev/null
}

# bg_proxy_kind: sets BG_PROXY_KIND to "launcher" for proxy/build.sh's image (label
# mcp.proxy.caddy-version: its launcher binds --proxy-listen once and Caddy listens on that fd 3,
# so a config reload reuses the socket) or "stock" (e.g. the official caddy image, the
# default: Caddy binds --proxy-listen itself). Pulls the image if absent. Sets BG_ERROR.
bg_proxy_kind() {
    local label
    if ! bg_ensure_proxy_image || ! label=$(docker image inspect -f '{{index .Config.Labels "mcp.proxy.caddy-version"}}' "$PROXY_IMAGE" 2>/dev/null </dev/null); then
        BG_ERROR="could not pull or inspect the proxy image $PROXY_IMAGE"
        return 1
    fi
    BG_PROXY_KIND=stock
    [[ -z $label || $label == "<no value>" ]] || BG_PROXY_KIND=launcher
}

# bg_admin PATH [CURL ARGS...]: a request to the proxy's admin API (unix socket).
bg_admin() {
    local path=$1
    shift
    curl -fsS --max-time 60 --unix-socket "$BG_PROXY_DIR/admin.sock" "$@" "http://localhost$path" </dev/null
}

bg_proxy_state() {
    docker inspect -f '{{.State.Running}} {{.Config.Image}} {{index .Config.Labels "mcp.proxy.listen"}}' "$BG_PROXY_NAME" 2>/dev/null ||
        printf 'absent - -'
}

# bg_proxy_start: (re)create the proxy container from caddy.json and wait until it answers.
# When the project still runs with --strategy recreate (it holds the public port), it is
# stopped first: the one switch from recreate to blue-green has a gap of a few seconds.
bg_proxy_start() {
    local cids i
    # --all: v2's `ps` lists running containers only, and a stopped one is still the
    # project's (with `restart: always` it comes back on a daemon restart, on the public port).
    cids=$(MCP_IMAGE=${MCP_IMAGE:-$(env_image "$DEPLOY_DIR")} compose_cmd "$DEPLOY_DIR/$COMPOSE_FILE" ps --all -q 2>/dev/null </dev/null || true)
    if [[ -n $cids ]]; then
        log "switching from --strategy recreate: stopping project $PROJECT, which holds the public port (short gap)"
        MCP_IMAGE=${MCP_IMAGE:-$(env_image "$DEPLOY_DIR")} run_logged compose_cmd "$DEPLOY_DIR/$COMPOSE_FILE" down --remove-orphans </dev/null ||
            log "WARNING: compose down of $PROJECT failed"
    fi
    docker rm -f "$BG_PROXY_NAME" >/dev/null 2>&1 || true
    rm -f -- "$BG_PROXY_DIR/admin.sock"
    local entrypoint=()  # a stock image: its `caddy` with our arguments, not its own command
    [[ ${BG_PROXY_KIND:-} == launcher ]] || entrypoint=(--entrypoint caddy)
    log "starting the proxy: docker run --name $BG_PROXY_NAME --network host $PROXY_IMAGE (${BG_PROXY_KIND:-stock} image, listening on $PROXY_LISTEN)"
    if ! run_logged docker run -d --name "$BG_PROXY_NAME" --restart unless-stopped --network host \
        --user "$MCP_UID:$MCP_GID" --label "mcp.deploy.project=$BG_BASE_PROJECT" \
        --label "mcp.deploy.role=proxy" --label "mcp.proxy.listen=$PROXY_LISTEN" \
        -e "MCP_PROXY_LISTEN=$PROXY_LISTEN" -e XDG_CONFIG_HOME=/config -e XDG_DATA_HOME=/config \
        -v "$BG_PROXY_DIR:/config" "${entrypoint[@]}" "$PROXY_IMAGE" run --config /config/caddy.json </dev/null; then
        BG_ERROR="docker run of the proxy $PROXY_IMAGE failed"
        return 1
    fi
    for ((i = 0; i < 100; i++)); do
        if bg_admin /config/ -o /dev/null 2>/dev/null; then
            return 0
        fi
        if [[ $(bg_proxy_state) != true* ]]; then
            break
        fi
        sleep 0.2
    done
    BG_ERROR="the proxy did not come up (docker logs $BG_PROXY_NAME)"
    run_logged docker logs --tail 20 "$BG_PROXY_NAME" </dev/null || true
    return 1
}

# bg_point_proxy COLOUR [OTHER PERCENT]: send all new requests to COLOUR (or PERCENT of them to
# OTHER: a canary step). A proxy already running this config is switched by its slot files
# alone (bg_write_slots): no reload, which could drop a request (remote/README.md
# "Strategies"); in-flight requests finish on the upstream they went to. Otherwise (the first
# switch, a new version of these scripts) the config is loaded (POST /load), or the proxy is
# started (a different --proxy-image replaces the container: a sub-second gap). Sets BG_ERROR.
bg_point_proxy() {
    local colour=$1 state out what handler
    BG_ERROR=""
    if [[ -n ${2:-} ]]; then
        bg_write_config "${BG_PORT[$colour]}" "${BG_PORT[$2]}" "$3"
        what="$colour and $2 ($3% to $2)"
    else
        bg_write_config "${BG_PORT[$colour]}"
        what="$colour (127.0.0.1:${BG_PORT[$colour]})"
    fi || {
        BG_ERROR=${BG_ERROR:-cannot write $BG_PROXY_DIR/slots or caddy.json (disk full?): the proxy was not touched}
        return 1
    }
    state=$(bg_proxy_state)
    if [[ $state == "true $PROXY_IMAGE $PROXY_LISTEN" ]]; then
        # It runs this very config (its @id, and its handler reads the slots: not a config made
        # by hand from it): the slots, just swapped in, switched it without a reload.
        if handler=$(bg_admin "/id/$BG_CONFIG_ID" 2>/dev/null) && [[ $handler == *'{file./config/slots/'* ]]; then
            log "switched the proxy to $what: $BG_PROXY_DIR/slots (no reload: it runs this config, $BG_CONFIG_ID)"
            return 0
        fi
        log "switching the proxy to $what: POST /load to $BG_PROXY_DIR/admin.sock"
        if ! out=$(bg_admin /load -H 'Content-Type: application/json' --data-binary "@$BG_PROXY_DIR/caddy.json" 2>&1); then
            BG_ERROR="the proxy refused the new config: ${out:0:500}"
            return 1
        fi
        return 0
    fi
    [[ $state == absent* ]] || log "the proxy container is not running $PROXY_IMAGE on $PROXY_LISTEN (running image listen: $state): replacing it"
    bg_proxy_start
}

# bg_switch COLOUR: record the intent, point the proxy at COLOUR, check the public health URL
# through it. Returns 2 when nothing was touched (the intent could not be written), 1 when the
# proxy may have moved.
bg_switch() {
    local colour=$1 reason
    if ! bg_record_intent "$colour"; then
        BG_ERROR="cannot write $BG_LIVE_FILE.next (disk full?): the proxy was not touched"
        return 2
    fi
    bg_point_proxy "$colour" || return 1
    if ! reason=$(health_check "$HEALTH_URL" 5 15); then
        # shellcheck disable=SC2034 # read by bluegreen.sh
        BG_ERROR="the public URL $HEALTH_URL is unhealthy through the proxy: $reason"
        return 1
    fi
    return 0
}

# bg_split NEW OLD PERCENT: a canary step: record the intent (NEW, PERCENT), then send PERCENT
# of the requests to NEW and the rest to OLD (weights reduced: 10% is 1 in 9+1, 50% every
# other request), and check the public health URL through the proxy. live-colour keeps
# naming OLD. Returns 2 when nothing was touched (the intent could not be written), 1 when
# the proxy may have moved. Sets BG_ERROR.
bg_split() {
    local new=$1 old=$2 percent=$3 reason
    if ! bg_record_intent "$new" "$percent"; then
        BG_ERROR="cannot write $BG_LIVE_FILE.next (disk full?): the proxy was not touched"
        return 2
    fi
    bg_point_proxy "$old" "$new" "$percent" || return 1
    if ! reason=$(health_check "$HEALTH_URL" 5 15); then
        BG_ERROR="the public URL $HEALTH_URL is unhealthy through the proxy: $reason"
        return 1
    fi
    return 0
}
