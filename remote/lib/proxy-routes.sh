# shellcheck shell=bash
# One job: the proxy's routes (sourced, never run), written and read: its config (the same for
# every route: bg_write_config) and its 100 slot files, which say where each share of the
# requests goes (bg_write_slots), and where a running or stopped proxy sends traffic
# (proxy_routes). Changing the routes safely (intent first, the record, reconciliation) is
# lib/proxy.sh's job; see remote/README.md "Strategies".
#
#   .deploy/proxy/caddy.json  the config: 100 upstream slots, each dialing
#                             127.0.0.1:{file./config/slots/NN}, taken in turn (round_robin)
#   .deploy/proxy/slots       -> slots.XXXXXX: 100 files, each the port one upstream slot of
#                             the proxy dials (a share of P% is P slots)

# proxy_routes DEPLOY_DIR: where the proxy sends traffic, "<from> PORT" (one upstream) or
# "<from> PORT:WEIGHT PORT:WEIGHT" (a canary's split); <from> is "running" (asked of the
# running proxy: admin API, unix socket) or "file" (its config file: what it loads when it
# starts). With the slots config (bg_write_config) the ports are those in the slot files (as
# with {file./config/upstream-port}, written by earlier versions). Fails when neither tells.
proxy_routes() {
    local dir="$1/.deploy/proxy" conf="" from=running ports=() weights=() out="" i port
    if [[ -S $dir/admin.sock ]]; then
        conf=$(curl -fsS --max-time 5 --unix-socket "$dir/admin.sock" \
            http://localhost/config/apps/http/servers/mcp/routes 2>/dev/null </dev/null || true)
    fi
    if [[ $conf != *'"dial"'* ]]; then
        conf=$(cat -- "$dir/caddy.json" 2>/dev/null || true) from=file
    fi
    if [[ $conf == *'{file./config/slots/'* ]]; then
        proxy_slot_routes "$dir/slots" "$from"
        return
    fi
    # Written by earlier versions of these scripts (one upstream read from a file).
    if [[ $conf == *'{file./config/upstream-port}'* ]]; then
        port=$(head -n 1 -- "$dir/upstream-port" 2>/dev/null || true)
        [[ $port =~ ^[0-9]+$ ]] || return 1
        conf=${conf//'{file./config/upstream-port}'/$port}
    fi
    mapfile -t ports < <(grep -oE '"dial": *"[^"]*:[0-9]+"' <<<"$conf" | grep -oE '[0-9]+"$' | tr -d '"' || true)
    mapfile -t weights < <(grep -oE '"weights": *\[[0-9, ]*\]' <<<"$conf" | grep -oE '[0-9]+' || true)
    ((${#ports[@]} >= 1)) || return 1
    if ((${#ports[@]} == 1)); then
        printf '%s %s' "$from" "${ports[0]}"
        return 0
    fi
    for i in "${!ports[@]}"; do out+=" ${ports[i]}:${weights[i]:-1}"; done
    printf '%s%s' "$from" "$out"
}

# proxy_slot_routes SLOTS_DIR FROM: proxy_routes for the slots config (bg_write_slots): "FROM
# PORT" when every slot dials PORT, else "FROM PORT:SLOTS PORT:SLOTS" (slots of 100: the
# percentage), the larger share first. Fails when a slot file is missing or not a port.
proxy_slot_routes() {
    local file port out="" count
    local -A slots=()
    for file in "$1"/*; do
        port=""
        read -r port <"$file" 2>/dev/null || true
        [[ $port =~ ^[0-9]+$ ]] || return 1
        slots[$port]=$((${slots[$port]:-0} + 1))
    done
    ((${#slots[@]} >= 1)) || return 1
    if ((${#slots[@]} == 1)); then
        printf '%s %s' "$2" "${!slots[@]}"
        return 0
    fi
    while read -r count port; do out+=" $port:$count"; done < <(
        for port in "${!slots[@]}"; do printf '%s %s\n' "${slots[$port]}" "$port"; done | sort -k1,1nr -k2,2n
    )
    printf '%s%s' "$2" "$out"
}

# The proxy's upstreams are BG_SLOTS slots, each dialing 127.0.0.1:{file./config/slots/NN}
# (Caddy reads that file for every request it sends through the slot), taken in turn (Caddy's
# round_robin): a percentage P of the requests goes to a colour by giving it P of the 100 slots,
# spread evenly (at 10%, one request in ten). caddy.json is then the same for every route (all
# traffic to one colour, or a canary's split): once the proxy runs it, a switch and a canary
# step are a rewrite of the slot files, never a reload (a reload drops requests: remote/README.md
# "Strategies").
readonly BG_SLOTS=100

# bg_slot_name VAR I: sets VAR to slot I's file name (00..99), in the slot directory and in
# caddy.json's dials alike.
bg_slot_name() { printf -v "$1" '%02d' "$2"; }

# bg_write_slots PORT [PORT2 PERCENT2]: every slot dials PORT, or PERCENT2 of them PORT2. The
# files are written in a new directory and swapped in by renaming the symlink
# $BG_PROXY_DIR/slots (atomic: a request sees the old split or the new one, never a mix), so a
# kill or a full disk leaves the previous split whole. The directory swapped out is kept until
# the next change (a request may be opening a file in it); older ones are removed.
bg_write_slots() {
    local port=$1 other=${2:-} percent=${3:-0} dir previous name i d
    dir=$(mktemp -d "$BG_PROXY_DIR/slots.XXXXXX") || return 1
    for ((i = 0; i < BG_SLOTS; i++)); do
        bg_slot_name name "$i"
        # Slot i goes to PORT2 when the running share i*P/100 crosses a whole number: spread evenly.
        if (((i + 1) * percent / BG_SLOTS > i * percent / BG_SLOTS)); then
            printf '%s\n' "$other" >"$dir/$name" || break
        else
            printf '%s\n' "$port" >"$dir/$name" || break
        fi
    done 2>/dev/null
    previous=$(readlink -- "$BG_PROXY_DIR/slots" 2>/dev/null || true)
    if ((i < BG_SLOTS)) || ! ln -s -- "${dir##*/}" "$dir.link" 2>/dev/null ||
        ! mv -fT -- "$dir.link" "$BG_PROXY_DIR/slots" 2>/dev/null; then
        rm -rf -- "$dir" "$dir.link"
        return 1
    fi
    for d in "$BG_PROXY_DIR"/slots.*; do
        if [[ -L $d ]]; then # slots.XXXXXX.link: a swap killed between ln and mv (never live)
            rm -f -- "$d"
            continue
        fi
        [[ -d $d && ${d##*/} != "${dir##*/}" && ${d##*/} != "$previous" ]] || continue
        rm -rf -- "$d"
    done
    return 0
}

# bg_write_config PORT [PORT2 PERCENT2]: the proxy's whole config, written atomically, then
# its routes: the slots (bg_write_slots). With proxy/build.sh's image it listens on fd 3: the
# socket of --proxy-listen, bound once by the image's launcher (proxy/launcher), so that a
# reload (the first change after an upgrade of these scripts) never opens a second socket;
# with a stock Caddy image on --proxy-listen itself (bg_proxy_kind). Every request is logged
# (JSON, access.log, rolled at 5 MB) with the upstream that answered it ("upstream":
# log_append). Sets BG_CONFIG_ID: the config's "@id" (a hash of it; GET /id/<it> answers only
# when the proxy runs this very config).
bg_write_config() {
    local tmp upstreams="" config listen=$PROXY_LISTEN i name
    [[ -n ${BG_PROXY_KIND:-} ]] || bg_proxy_kind || return 1
    [[ $BG_PROXY_KIND == stock ]] || listen=fd/3
    mkdir -p -- "$BG_PROXY_DIR" || return 1
    for ((i = 0; i < BG_SLOTS; i++)); do
        bg_slot_name name "$i"
        upstreams+="${upstreams:+, }{\"dial\": \"127.0.0.1:{file./config/slots/$name}\"}"
    done
    config=$(cat <<JSON
{
  "admin": {"listen": "unix//config/admin.sock"},
  "logging": {"logs": {
    "default": {"level": "WARN", "exclude": ["http.log.access.mcp"]},
    "access": {"level": "INFO", "include": ["http.log.access.mcp"], "encoder": {"format": "json"},
               "writer": {"output": "file", "filename": "/config/access.log", "roll_size_mb": 5, "roll_keep": 1}}
  }},
  "apps": {
    "http": {
      "grace_period": "30s",
      "servers": {
        "mcp": {
          "listen": ["$listen"],
          "automatic_https": {"disable": true},
          "logs": {"default_logger_name": "mcp"},
          "routes": [{
            "handle": [{
              "handler": "log_append", "key": "upstream", "value": "{http.reverse_proxy.upstream.hostport}"
            }, {
              "@id": "@ID@",
              "handler": "reverse_proxy",
              "upstreams": [$upstreams],
              "load_balancing": {"selection_policy": {"policy": "round_robin"}, "try_duration": "5s", "try_interval": "250ms"}
            }]
          }]
        }
      }
    }
  }
}
JSON
)
    BG_CONFIG_ID="mcp_$(printf '%s' "$config" | sha256sum | cut -c1-16)"
    tmp=$(mktemp "$BG_PROXY_DIR/caddy.json.XXXXXX") || return 1
    if ! printf '%s\n' "${config/@ID@/$BG_CONFIG_ID}" >"$tmp" || ! chmod 600 -- "$tmp" || ! mv -f -- "$tmp" "$BG_PROXY_DIR/caddy.json"; then
        rm -f -- "$tmp"
        return 1
    fi
    # Last: the config is the same for every route, so a proxy already running it is only
    # switched by this swap (and is untouched when anything before it failed).
    bg_write_slots "$@"
}
