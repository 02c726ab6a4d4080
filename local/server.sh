#!/usr/bin/env bash
# Disposable local deploy target: a Docker engine, an OpenSSH server on 127.0.0.1 with a
# dedicated deploy user, and a password-protected registry standing in for GHCR.
# Everything listens on loopback only. Run as root.
#
#   local/server.sh install   apt-get install the Debian packages it needs (if missing)
#   local/server.sh up        start / verify everything (idempotent)
#   local/server.sh down      stop what 'up' started
#   local/server.sh status    report each part (exit 0 only when all are up)
#   local/server.sh env       print KEY=VALUE lines describing the target (--shell: export lines)
set -euo pipefail

STATE="${MCP_LOCAL_STATE:-/var/lib/mcp-local}"
SSH_PORT="${MCP_LOCAL_SSH_PORT:-2222}"
DEPLOY_USER="${MCP_LOCAL_USER:-mcpdeploy}"
REGISTRY_PORT="${MCP_LOCAL_REGISTRY_PORT:-5000}"
REGISTRY_USER="${MCP_LOCAL_REGISTRY_USER:-mcp-ci}"
BASE="${MCP_LOCAL_BASE:-/opt/mcp-local}"
HOST=127.0.0.1
REGISTRY="$HOST:$REGISTRY_PORT"

DOCKERD_PID="$STATE/dockerd.pid"
DOCKERD_LOG="$STATE/dockerd.log"
DOCKERD_OURS="$STATE/dockerd.started-by-local-server"
SSHD_DIR="$STATE/sshd"
SSHD_CONFIG="$STATE/sshd_config"
SSHD_PID="$STATE/sshd.pid"
SSHD_LOG="$STATE/sshd.log"
HOST_KEY="$SSHD_DIR/ssh_host_ed25519_key"
DEPLOY_KEY="$STATE/deploy_key"
KNOWN_HOSTS="$STATE/known_hosts"
REGISTRY_CONFIG="$STATE/registry.yml"
REGISTRY_DIR="$STATE/registry"
REGISTRY_HTPASSWD="$REGISTRY_DIR/htpasswd"
REGISTRY_PASSWORD_FILE="$STATE/registry-password"
REGISTRY_PID="$STATE/registry.pid"
REGISTRY_LOG="$STATE/registry.log"

APT_PACKAGES=(docker.io docker-compose openssh-server openssh-client docker-registry
    shellcheck busybox-static apache2-utils curl util-linux tar gzip coreutils)

log() { printf '[local-server] %s\n' "$*" >&2; }
say() { printf '%s\n' "$*"; }
die() { printf '[local-server] error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<USAGE
usage: $(basename "$0") install|up|down|status|env [--shell]

Disposable local deploy target (loopback only, run as root).
  install  apt-get install the Debian packages needed (only the missing ones)
  up       start or verify: dockerd, sshd on $HOST:$SSH_PORT, registry on $REGISTRY,
           deploy user '$DEPLOY_USER', directories under $BASE (idempotent)
  down     stop sshd and the registry, and dockerd if 'up' started it
  status   report each part; exit 0 only when everything is up
  env      print KEY=VALUE lines for tests (env --shell prints 'export KEY=...' lines)

Settings (environment): MCP_LOCAL_STATE ($STATE), MCP_LOCAL_SSH_PORT ($SSH_PORT),
MCP_LOCAL_USER ($DEPLOY_USER), MCP_LOCAL_REGISTRY_PORT ($REGISTRY_PORT),
MCP_LOCAL_REGISTRY_USER ($REGISTRY_USER), MCP_LOCAL_BASE ($BASE).
USAGE
}

need_root() {
    [[ "$(id -u)" -eq 0 ]] || die "'$1' must run as root: sudo $0 $1"
}

need_cmd() {
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 \
            || die "'$cmd' not found: run '$0 install' (apt-get install ${APT_PACKAGES[*]})"
    done
}

# pid_alive PIDFILE: the pid in PIDFILE is a running process of the expected program
# (a stale pid file after a reboot may name an unrelated process)
pid_alive() {
    local pid expected="" cmdline
    [[ -s "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    case "$1" in
        "$DOCKERD_PID") expected=dockerd ;;
        "$SSHD_PID") expected=sshd ;;
        "$REGISTRY_PID") expected=docker-registry ;;
    esac
    [[ -n "$expected" ]] || return 0
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"$expected"* ]]
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# stop_pidfile NAME PIDFILE [SECONDS]: TERM the process, wait, then KILL it
stop_pidfile() {
    local name="$1" pidfile="$2" wait_s="${3:-20}" pid i
    if ! pid_alive "$pidfile"; then
        log "$name is not running"
        rm -f "$pidfile"
        return 0
    fi
    pid="$(cat "$pidfile")"
    log "stopping $name (pid $pid)..."
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < wait_s * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop within ${wait_s}s, sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidfile"
    log "$name stopped"
}

log_tail() {
    if [[ -f "$1" ]]; then
        printf '[local-server] --- last lines of %s ---\n' "$1" >&2
        tail -n 25 "$1" >&2 || true
        printf '[local-server] ---\n' >&2
    fi
}

# ---------------------------------------------------------------- install

cmd_install() {
    need_root install
    command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script supports Debian/Ubuntu only"
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
            missing+=("$pkg")
        fi
    done
    if [[ -x /usr/local/go/bin/go ]] || command -v go >/dev/null 2>&1; then
        :
    else
        missing+=(golang-go)
    fi
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "all packages already installed"
        return 0
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || die "apt-get update failed: check the network / apt sources"
    apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || die "apt-get install failed for: ${missing[*]}"
    log "install done"
}

# ---------------------------------------------------------------- up: parts

ensure_state_dir() {
    install -d -m 0700 "$STATE" "$SSHD_DIR" "$REGISTRY_DIR"
}

ensure_dockerd() {
    if docker info >/dev/null 2>&1; then
        if [[ -f "$DOCKERD_OURS" ]] && pid_alive "$DOCKERD_PID"; then
            log "dockerd already running (started by local-server, pid $(cat "$DOCKERD_PID"))"
        else
            rm -f "$DOCKERD_OURS"
            log "dockerd already running (not started by local-server: 'down' leaves it alone)"
        fi
        return 0
    fi
    need_cmd dockerd
    if pid_alive "$DOCKERD_PID"; then
        log "dockerd (pid $(cat "$DOCKERD_PID")) is running but not answering yet"
    else
        log "starting dockerd..."
        setsid dockerd --pidfile "$DOCKERD_PID" --group docker \
            </dev/null >>"$DOCKERD_LOG" 2>&1 &
        touch "$DOCKERD_OURS"
    fi
    local i
    for ((i = 0; i < 60; i++)); do
        if docker info >/dev/null 2>&1; then
            log "dockerd ready"
            return 0
        fi
        sleep 1
    done
    log_tail "$DOCKERD_LOG"
    die "dockerd not ready after 60s: see $DOCKERD_LOG (another dockerd running? stale /var/run/docker.pid?)"
}

ensure_deploy_user() {
    getent group docker >/dev/null || { log "creating group docker"; groupadd --system docker; }
    if ! id "$DEPLOY_USER" >/dev/null 2>&1; then
        log "creating deploy user $DEPLOY_USER"
        useradd -m -s /bin/bash "$DEPLOY_USER"
    fi
    # A fresh useradd account is locked ('!'); sshd (without PAM) refuses locked accounts
    # even for public key logins. '*' = no password login possible, but not locked.
    if [[ "$(getent shadow "$DEPLOY_USER" | cut -d: -f2)" != "*" ]]; then
        usermod -p '*' "$DEPLOY_USER"
    fi
    if [[ " $(id -nG "$DEPLOY_USER") " != *" docker "* ]]; then
        log "adding $DEPLOY_USER to the docker group"
        usermod -aG docker "$DEPLOY_USER"
    fi

    if [[ ! -s "$DEPLOY_KEY" ]]; then
        log "generating deploy key $DEPLOY_KEY"
        rm -f "$DEPLOY_KEY" "$DEPLOY_KEY.pub"
        ssh-keygen -q -t ed25519 -N '' -C "mcp-local-deploy" -f "$DEPLOY_KEY"
    fi
    chmod 0600 "$DEPLOY_KEY"

    local home ssh_dir
    home="$(getent passwd "$DEPLOY_USER" | cut -d: -f6)"
    [[ -d "$home" ]] || die "home directory '$home' of $DEPLOY_USER is missing: userdel $DEPLOY_USER and run up again"
    ssh_dir="$home/.ssh"
    install -d -m 0700 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$ssh_dir"
    if ! cmp -s "$DEPLOY_KEY.pub" "$ssh_dir/authorized_keys" 2>/dev/null; then
        log "installing authorized_keys for $DEPLOY_USER"
        install -m 0600 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$DEPLOY_KEY.pub" "$ssh_dir/authorized_keys"
    fi
}

ensure_docker_socket() {
    local sock=/var/run/docker.sock
    [[ -S "$sock" ]] || die "$sock not found: is dockerd using another socket? (DOCKER_HOST is not supported here)"
    if [[ "$(stat -c %G "$sock")" != docker ]]; then
        log "giving $sock to group docker"
        chgrp docker "$sock"
        chmod g+rw "$sock"
    fi
    runuser -u "$DEPLOY_USER" -- docker info >/dev/null 2>&1 \
        || die "$DEPLOY_USER cannot run 'docker info': check $sock is group docker (ls -l $sock) and the user is in it (id $DEPLOY_USER)"
    log "$DEPLOY_USER can use docker"
}

write_if_changed() { # write_if_changed FILE MODE (content on stdin); returns 0 if changed
    local file="$1" mode="$2" tmp
    tmp="$(mktemp "$file.XXXXXX")"
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if cmp -s "$tmp" "$file" 2>/dev/null; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$file"
    return 0
}

ensure_sshd() {
    need_cmd ssh-keygen
    local sshd_bin
    sshd_bin="$(command -v sshd || true)"
    [[ -n "$sshd_bin" ]] || sshd_bin=/usr/sbin/sshd
    [[ -x "$sshd_bin" ]] || die "sshd not found: run '$0 install' (openssh-server)"

    if [[ ! -s "$HOST_KEY" ]]; then
        log "generating sshd host key $HOST_KEY"
        rm -f "$HOST_KEY" "$HOST_KEY.pub"
        ssh-keygen -q -t ed25519 -N '' -C "mcp-local-host" -f "$HOST_KEY"
    fi
    chmod 0600 "$HOST_KEY"

    local host_key_line
    host_key_line="$(cut -d' ' -f1,2 "$HOST_KEY.pub")"
    printf '[%s]:%s %s\n' "$HOST" "$SSH_PORT" "$host_key_line" | write_if_changed "$KNOWN_HOSTS" 0644 || true

    local changed=0
    # Stock settings apart from where to listen and which keys to use: in particular no
    # AcceptEnv (a real server drops client environment variables) and no root logins.
    write_if_changed "$SSHD_CONFIG" 0644 <<CONFIG && changed=1
# Generated by local/server.sh: sshd for the local deploy target (loopback only).
Port $SSH_PORT
ListenAddress $HOST
HostKey $HOST_KEY
PidFile $SSHD_PID
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
AllowUsers $DEPLOY_USER
X11Forwarding no
PrintMotd no
Subsystem sftp /usr/lib/openssh/sftp-server
CONFIG
    install -d -m 0755 /run/sshd
    "$sshd_bin" -t -f "$SSHD_CONFIG" || die "invalid sshd config $SSHD_CONFIG (see the message above)"

    if pid_alive "$SSHD_PID"; then
        if [[ "$changed" -eq 1 ]]; then
            log "sshd config changed, restarting sshd"
            stop_pidfile sshd "$SSHD_PID"
        else
            log "sshd already running (pid $(cat "$SSHD_PID"))"
        fi
    fi
    if ! pid_alive "$SSHD_PID"; then
        if port_open "$SSH_PORT"; then
            die "port $HOST:$SSH_PORT is already in use by another program: stop it (ss -ltnp | grep :$SSH_PORT) or set MCP_LOCAL_SSH_PORT"
        fi
        log "starting sshd on $HOST:$SSH_PORT..."
        "$sshd_bin" -f "$SSHD_CONFIG" -E "$SSHD_LOG" </dev/null >/dev/null 2>&1 \
            || { log_tail "$SSHD_LOG"; die "sshd failed to start: see $SSHD_LOG"; }
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        port_open "$SSH_PORT" && pid_alive "$SSHD_PID" && break
        sleep 0.2
    done
    port_open "$SSH_PORT" || { log_tail "$SSHD_LOG"; die "sshd is not listening on $HOST:$SSH_PORT: see $SSHD_LOG"; }

    # End-to-end: log in exactly like the deploy will.
    local out
    if ! out="$(ssh -i "$DEPLOY_KEY" -p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=yes \
        -o UserKnownHostsFile="$KNOWN_HOSTS" -o ConnectTimeout=10 \
        "$DEPLOY_USER@$HOST" 'id -un' 2>&1)" || [[ "$out" != "$DEPLOY_USER" ]]; then
        printf '%s\n' "$out" >&2
        log_tail "$SSHD_LOG"
        die "ssh login as $DEPLOY_USER failed: see $SSHD_LOG"
    fi
    log "ssh $DEPLOY_USER@$HOST -p $SSH_PORT works"
}

ensure_registry() {
    need_cmd docker-registry htpasswd curl
    if [[ ! -s "$REGISTRY_PASSWORD_FILE" ]]; then
        log "generating registry password"
        (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$REGISTRY_PASSWORD_FILE")
    fi
    chmod 0600 "$REGISTRY_PASSWORD_FILE"
    local password
    password="$(cat "$REGISTRY_PASSWORD_FILE")"
    if [[ ! -s "$REGISTRY_HTPASSWD" ]] \
        || ! htpasswd -vb "$REGISTRY_HTPASSWD" "$REGISTRY_USER" "$password" >/dev/null 2>&1; then
        log "writing registry htpasswd (bcrypt) for $REGISTRY_USER"
        htpasswd -Bbc "$REGISTRY_HTPASSWD" "$REGISTRY_USER" "$password" >/dev/null 2>&1
        chmod 0600 "$REGISTRY_HTPASSWD"
        pid_alive "$REGISTRY_PID" && stop_pidfile registry "$REGISTRY_PID"
    fi
    install -d -m 0700 "$REGISTRY_DIR/storage"
    if [[ ! -s "$STATE/registry-http-secret" ]]; then
        (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$STATE/registry-http-secret")
    fi

    local changed=0
    write_if_changed "$REGISTRY_CONFIG" 0600 <<CONFIG && changed=1
# Generated by local/server.sh: registry standing in for GHCR (loopback only).
version: 0.1
log:
  level: info
  fields:
    service: mcp-local-registry
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/storage
  delete:
    enabled: true
http:
  addr: $REGISTRY
  secret: $(cat "$STATE/registry-http-secret")
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: mcp-local-registry
    path: $REGISTRY_HTPASSWD
CONFIG

    if pid_alive "$REGISTRY_PID"; then
        if [[ "$changed" -eq 1 ]]; then
            log "registry config changed, restarting the registry"
            stop_pidfile registry "$REGISTRY_PID"
        else
            log "registry already running (pid $(cat "$REGISTRY_PID"))"
        fi
    fi
    if ! pid_alive "$REGISTRY_PID"; then
        if port_open "$REGISTRY_PORT"; then
            die "port $REGISTRY is already in use by another program (the Debian docker-registry service?): stop it (ss -ltnp | grep :$REGISTRY_PORT) or set MCP_LOCAL_REGISTRY_PORT"
        fi
        log "starting registry on $REGISTRY..."
        setsid docker-registry serve "$REGISTRY_CONFIG" </dev/null >>"$REGISTRY_LOG" 2>&1 &
        echo "$!" >"$REGISTRY_PID"
    fi
    local i code=""
    for ((i = 0; i < 50; i++)); do
        code="$(curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY/v2/" 2>/dev/null || true)"
        [[ "$code" == 401 ]] && break
        pid_alive "$REGISTRY_PID" || break
        sleep 0.2
    done
    if [[ "$code" != 401 ]]; then
        log_tail "$REGISTRY_LOG"
        die "registry on $REGISTRY not answering with 401 (got '${code:-nothing}'): see $REGISTRY_LOG"
    fi

    if ! printf '%s' "$password" | docker login "$REGISTRY" -u "$REGISTRY_USER" --password-stdin >/dev/null 2>&1; then
        log_tail "$REGISTRY_LOG"
        die "docker login $REGISTRY failed: see $REGISTRY_LOG"
    fi
    log "registry $REGISTRY up, docker login works"
}

ensure_dirs() {
    log "preparing $BASE (owned by $DEPLOY_USER)"
    install -d -m 0755 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$BASE" "$BASE/mcp" "$BASE/mcp-backups"
}

check_user_tools() {
    local missing
    # shellcheck disable=SC2016 # expanded by the deploy user's shell
    missing="$(runuser -u "$DEPLOY_USER" -- bash -lc \
        'for t in curl flock tar gzip df docker; do command -v "$t" >/dev/null 2>&1 || printf "%s " "$t"; done')"
    [[ -z "$missing" ]] || die "tools missing for $DEPLOY_USER: $missing- run '$0 install'"
    runuser -u "$DEPLOY_USER" -- bash -lc 'command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1' \
        || die "neither 'docker compose' nor 'docker-compose' works for $DEPLOY_USER: run '$0 install'"
    log "$DEPLOY_USER has curl, flock, tar, gzip, df, docker and compose"
}

cmd_up() {
    need_root up
    need_cmd docker ssh ssh-keygen runuser setsid curl
    ensure_state_dir
    ensure_dockerd
    ensure_deploy_user
    ensure_docker_socket
    ensure_sshd
    ensure_registry
    ensure_dirs
    check_user_tools
    log "up: ssh -i $DEPLOY_KEY -p $SSH_PORT $DEPLOY_USER@$HOST (registry $REGISTRY, base $BASE)"
}

# ---------------------------------------------------------------- down / status / env

cmd_down() {
    need_root down
    stop_pidfile sshd "$SSHD_PID"
    stop_pidfile registry "$REGISTRY_PID"
    if [[ -f "$DOCKERD_OURS" ]]; then
        stop_pidfile dockerd "$DOCKERD_PID" 60
        rm -f "$DOCKERD_OURS"
    else
        log "dockerd was not started by local-server: leaving it alone"
    fi
    log "down"
}

cmd_status() {
    local all=0 code
    if docker info >/dev/null 2>&1; then
        if [[ -f "$DOCKERD_OURS" ]] && pid_alive "$DOCKERD_PID"; then
            say "dockerd:  running (started by local-server, pid $(cat "$DOCKERD_PID"))"
        else
            say "dockerd:  running (not started by local-server)"
        fi
    else
        say "dockerd:  DOWN"
        all=1
    fi
    if pid_alive "$SSHD_PID" && port_open "$SSH_PORT"; then
        say "sshd:     running on $HOST:$SSH_PORT (pid $(cat "$SSHD_PID"))"
    else
        say "sshd:     DOWN"
        all=1
    fi
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY/v2/" 2>/dev/null || true)"
    if pid_alive "$REGISTRY_PID" && [[ "$code" == 401 ]]; then
        say "registry: running on $REGISTRY (pid $(cat "$REGISTRY_PID"))"
    else
        say "registry: DOWN"
        all=1
    fi
    if id "$DEPLOY_USER" >/dev/null 2>&1; then
        say "user:     $DEPLOY_USER ($(id "$DEPLOY_USER"))"
    else
        say "user:     $DEPLOY_USER MISSING"
        all=1
    fi
    if [[ -d "$BASE" ]]; then
        say "base:     $BASE (owner $(stat -c %U "$BASE"))"
    else
        say "base:     $BASE MISSING"
        all=1
    fi
    if [[ "$all" -eq 0 ]]; then
        say "status: up"
    else
        say "status: not (fully) up - run '$0 up'"
    fi
    return "$all"
}

cmd_env() {
    local shell_fmt=0
    case "${1:-}" in
        "") ;;
        --shell) shell_fmt=1 ;;
        *) usage >&2; die "unknown option for env: '$1' (only --shell)" ;;
    esac
    [[ -s "$HOST_KEY.pub" && -s "$DEPLOY_KEY" ]] || die "no local server state in $STATE: run '$0 up' first"
    local -a pairs=(
        "MCP_LOCAL_HOST=$HOST"
        "MCP_LOCAL_SSH_PORT=$SSH_PORT"
        "MCP_LOCAL_USER=$DEPLOY_USER"
        "MCP_LOCAL_KEY=$DEPLOY_KEY"
        "MCP_LOCAL_HOST_KEY=$(cut -d' ' -f1,2 "$HOST_KEY.pub")"
        "MCP_LOCAL_KNOWN_HOSTS=$KNOWN_HOSTS"
        "MCP_LOCAL_REGISTRY=$REGISTRY"
        "MCP_LOCAL_REGISTRY_USER=$REGISTRY_USER"
        "MCP_LOCAL_REGISTRY_PASSWORD_FILE=$REGISTRY_PASSWORD_FILE"
        "MCP_LOCAL_BASE=$BASE"
    )
    local pair
    for pair in "${pairs[@]}"; do
        if [[ "$shell_fmt" -eq 1 ]]; then
            printf 'export %s=%q\n' "${pair%%=*}" "${pair#*=}"
        else
            printf '%s\n' "$pair"
        fi
    done
}

main() {
    [[ $# -ge 1 ]] || { usage >&2; exit 2; }
    local cmd="$1"
    shift
    case "$cmd" in
        install) [[ $# -eq 0 ]] || die "install takes no arguments"; cmd_install ;;
        up) [[ $# -eq 0 ]] || die "up takes no arguments"; cmd_up ;;
        down) [[ $# -eq 0 ]] || die "down takes no arguments"; cmd_down ;;
        status) [[ $# -eq 0 ]] || die "status takes no arguments"; cmd_status ;;
        env) cmd_env "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; die "unknown command '$cmd' (use install, up, down, status or env)" ;;
    esac
}

main "$@"
