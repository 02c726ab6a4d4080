# shellcheck shell=bash
# One job: the blue-green proxy (sourced, never run): its container and config, the switch of
# traffic from one colour to the other, and the record of which colour is live, kept true
# across a kill, a reboot or a full disk at any point of a switch. See remote/README.md
# "Strategies". The bg_* functions need bluegreen.sh's globals (BG_PORT, BG_PROXY_DIR...);
# live_intent_colour is what the read-only paths (live_colour in lib/compose.sh) use.
#
#   .deploy/live-colour       the colour serving traffic ("blue" or "green")
#   .deploy/live-colour.next  a switch is (or was, if a run was killed) under way:
#                             "<colour switched to> <blue port> <green port>"
#
# A switch: write live-colour.next (atomically), point the proxy, check the public URL,
# write live-colour (atomically), remove live-colour.next. Killed anywhere in between, the
# next run finds live-colour.next (or a live-colour that disagrees with the proxy) and takes
# the truth from what the proxy really routes to (bg_reconcile); until then live_colour
# resolves it the same way.

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

# proxy_routed_dial DEPLOY_DIR: the upstream the proxy routes to (e.g. 127.0.0.1:8002): asked
# of the running proxy (admin API, unix socket), else read from its config file (what it
# loads when it starts). Fails when neither answers.
proxy_routed_dial() {
    local dir="$1/.deploy/proxy" dial=""
    if [[ -S $dir/admin.sock ]]; then
        dial=$(curl -fsS --max-time 5 --unix-socket "$dir/admin.sock" \
            http://localhost/config/apps/http/servers/mcp/routes/0/handle/0/upstreams/0/dial 2>/dev/null </dev/null || true)
    fi
    if [[ -z $dial && -f $dir/caddy.json ]]; then
        dial=$(sed -n 's/.*"dial": *"\([^"]*\)".*/\1/p' -- "$dir/caddy.json" 2>/dev/null | head -n 1 || true)
    fi
    dial=${dial//[$'"\r\n ']/}
    [[ $dial == *:* ]] || return 1
    printf '%s' "$dial"
}

# live_intent_colour DEPLOY_DIR RECORDED: with live-colour.next present (an interrupted switch),
# the colour the proxy really routes to; RECORDED when that cannot be told.
live_intent_colour() {
    local intent _target blue green dial
    intent=$(head -n 1 -- "$1/.deploy/live-colour.next" 2>/dev/null || true)
    read -r _target blue green <<<"$intent" || true
    if dial=$(proxy_routed_dial "$1"); then
        if [[ ${dial##*:} == "$blue" ]]; then printf blue && return 0; fi
        if [[ ${dial##*:} == "$green" ]]; then printf green && return 0; fi
    fi
    printf '%s' "$2"
}

# bg_record_intent COLOUR: live-colour.next, before the proxy is touched.
bg_record_intent() {
    mkdir -p -- "${BG_LIVE_FILE%/*}" && write_atomic "$BG_LIVE_FILE.next" "$1 ${BG_PORT[blue]} ${BG_PORT[green]}"
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

# bg_reconcile: at the start of a blue-green release or restore (under the deploy lock, before
# anything reads the live colour): make live-colour say what the proxy really routes to.
bg_reconcile() {
    [[ $STRATEGY == blue-green ]] || return 0
    bg_init
    local recorded intent="" state dial from colour="" c
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
    if [[ $state == true* ]] && dial=$(bg_admin /config/apps/http/servers/mcp/routes/0/handle/0/upstreams/0/dial 2>/dev/null); then
        from="the proxy routes to"
    elif dial=$(proxy_routed_dial "$DEPLOY_DIR"); then
        from="the proxy (not answering: $state) is configured for" # what it loads when it starts
    else
        log "WARNING: cannot tell where the proxy $BG_PROXY_NAME routes ($state; no $BG_PROXY_DIR/caddy.json): keeping .deploy/live-colour (${recorded:-empty})"
        return 0
    fi
    dial=${dial//[$'"\r\n ']/}
    for c in blue green; do
        if [[ ${dial##*:} == "${BG_PORT[$c]}" ]]; then colour=$c; fi
    done
    if [[ -z $colour ]]; then
        log "WARNING: $from $dial, which is neither colour port ($COLOUR_PORTS): keeping .deploy/live-colour (${recorded:-empty})"
        rm -f -- "$BG_LIVE_FILE.next"
        return 0
    fi
    [[ $colour != "$recorded" || -n $intent ]] || return 0
    if [[ $colour != "$recorded" ]]; then
        log "reconciled live colour: $from $colour ($dial) but .deploy/live-colour said ${recorded:-nothing}: a previous release was interrupted after the switch"
    else
        log "reconciled live colour: $from $colour ($dial), as .deploy/live-colour says: a previous release was interrupted during its switch (${BG_LIVE_FILE##*/}.next: $intent)"
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

# bg_write_config UPSTREAM_PORT: the proxy's whole config, written atomically. It listens on
# fd 3: the socket of --proxy-listen, bound once by the image's launcher (proxy/launcher), so
# that a reload never opens a second socket (no connection reset or refused during a switch).
bg_write_config() {
    local port=$1 tmp
    mkdir -p -- "$BG_PROXY_DIR" || return 1
    tmp=$(mktemp "$BG_PROXY_DIR/caddy.json.XXXXXX") || return 1
    cat >"$tmp" <<JSON
{
  "admin": {"listen": "unix//config/admin.sock"},
  "logging": {"logs": {"default": {"level": "WARN"}}},
  "apps": {
    "http": {
      "grace_period": "30s",
      "servers": {
        "mcp": {
          "listen": ["fd/3"],
          "automatic_https": {"disable": true},
          "routes": [{
            "handle": [{
              "handler": "reverse_proxy",
              "upstreams": [{"dial": "127.0.0.1:$port"}],
              "load_balancing": {"try_duration": "5s", "try_interval": "250ms"}
            }]
          }]
        }
      }
    }
  }
}
JSON
    chmod 600 -- "$tmp" && mv -f -- "$tmp" "$BG_PROXY_DIR/caddy.json"
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
    log "starting the proxy: docker run --name $BG_PROXY_NAME --network host $PROXY_IMAGE (listening on $PROXY_LISTEN)"
    if ! run_logged docker run -d --name "$BG_PROXY_NAME" --restart unless-stopped --network host \
        --user "$MCP_UID:$MCP_GID" --label "mcp.deploy.project=$BG_BASE_PROJECT" \
        --label "mcp.deploy.role=proxy" --label "mcp.proxy.listen=$PROXY_LISTEN" \
        -e "MCP_PROXY_LISTEN=$PROXY_LISTEN" -e XDG_CONFIG_HOME=/config -e XDG_DATA_HOME=/config \
        -v "$BG_PROXY_DIR:/config" "$PROXY_IMAGE" run --config /config/caddy.json </dev/null; then
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

# bg_point_proxy COLOUR: send all new requests to COLOUR. Graceful: Caddy keeps its listener
# and lets in-flight requests finish on the old upstream. Starts the proxy if needed (a
# different --proxy-image replaces the container: a sub-second gap). Sets BG_ERROR.
bg_point_proxy() {
    local colour=$1 state out
    BG_ERROR=""
    bg_write_config "${BG_PORT[$colour]}" || {
        BG_ERROR="cannot write $BG_PROXY_DIR/caddy.json"
        return 1
    }
    state=$(bg_proxy_state)
    if [[ $state == "true $PROXY_IMAGE $PROXY_LISTEN" ]]; then
        log "switching the proxy to $colour (127.0.0.1:${BG_PORT[$colour]}): POST /load to $BG_PROXY_DIR/admin.sock"
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
