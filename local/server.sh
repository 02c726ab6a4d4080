#!/usr/bin/env bash
# Disposable local deploy target: a Docker engine, an OpenSSH server on 127.0.0.1 with a
# dedicated deploy user, and a password-protected registry standing in for GHCR.
# Everything listens on loopback only. Run as root.
#
# Compose: the deploy user gets Compose v2 (the `docker compose` CLI plugin, built from its Go
# module and cached by version); a second deploy user (MCP_LOCAL_V1_USER, same key) has no
# plugin, so the remote scripts' detection gives it Debian's docker-compose v1: the compose v1
# tests run as that user (tests/integration/test_compose_versions.py).
#
#   local/server.sh install   apt-get install the Debian packages it needs (if missing), and
#                             build the Docker Compose v2 CLI plugin (once, cached by version)
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

# Docker Compose: the deploy user gets v2 (the CLI plugin `docker compose`, built from its Go
# module and installed in the user's own ~/.docker/cli-plugins); a second deploy user, V1_USER,
# has no plugin and so gets Debian's docker-compose v1 (1.29) through the scripts' detection.
COMPOSE_V2_VERSION=v2.40.3
COMPOSE_V2_MODULE=github.com/docker/compose/v2
TOOLS_CACHE="${MCP_TOOLS_CACHE:-${HOME:-/tmp}/.cache/mcp-deploy/tools}"
COMPOSE_V2_DIR="$TOOLS_CACHE/docker-compose-$COMPOSE_V2_VERSION"
COMPOSE_V2_BIN="$COMPOSE_V2_DIR/docker-compose"
V1_USER="${MCP_LOCAL_V1_USER:-mcpdeploy-v1}"
V1_BASE="${MCP_LOCAL_V1_BASE:-/opt/mcp-local-v1}"
BUILD_WORK="" BUILD_PID="" # the compose build in progress (cleaned up on exit)

# chromium: the deploy dashboard's e2e test opens the page in it (playwright, no browser download).
APT_PACKAGES=(docker.io docker-compose openssh-server openssh-client docker-registry
    shellcheck busybox-static apache2-utils curl util-linux tar gzip coreutils chromium)

log() { printf '[local-server] %s\n' "$*" >&2; }
say() { printf '%s\n' "$*"; }
die() { printf '[local-server] error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<USAGE
usage: $(basename "$0") install|up|down|status|env [--shell]

Disposable local deploy target (loopback only, run as root).
  install  apt-get install the Debian packages needed (only the missing ones) and build
           compose $COMPOSE_V2_VERSION from its Go module into $COMPOSE_V2_DIR
           (once; cold build: several minutes)
  up       start or verify: dockerd, sshd on $HOST:$SSH_PORT, registry on $REGISTRY,
           deploy user '$DEPLOY_USER' with compose $COMPOSE_V2_VERSION (docker compose),
           compose v1 user '$V1_USER' (docker-compose), directories under $BASE and
           $V1_BASE (idempotent)
  down     stop sshd and the registry, and dockerd if 'up' started it
  status   report each part; exit 0 only when everything is up
  env      print KEY=VALUE lines for tests (env --shell prints 'export KEY=...' lines)

Settings (environment): MCP_LOCAL_STATE ($STATE), MCP_LOCAL_SSH_PORT ($SSH_PORT),
MCP_LOCAL_USER ($DEPLOY_USER), MCP_LOCAL_REGISTRY_PORT ($REGISTRY_PORT),
MCP_LOCAL_REGISTRY_USER ($REGISTRY_USER), MCP_LOCAL_BASE ($BASE),
MCP_LOCAL_V1_USER ($V1_USER), MCP_LOCAL_V1_BASE ($V1_BASE), MCP_TOOLS_CACHE ($TOOLS_CACHE).
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

# ---------------------------------------------------------------- compose v2 plugin

# compose_v2_cached: the cached build exists, is complete and reports the pinned version.
compose_v2_cached() {
    [[ -x "$COMPOSE_V2_BIN" && -f "$COMPOSE_V2_DIR/.complete" ]] || return 1
    [[ "$("$COMPOSE_V2_BIN" version --short 2>/dev/null </dev/null)" == "${COMPOSE_V2_VERSION#v}" ]]
}

# find_go: print the go binary to use (PATH, else /usr/local/go/bin/go).
find_go() {
    if command -v go >/dev/null 2>&1; then
        command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then
        printf '%s\n' /usr/local/go/bin/go
    else
        return 1
    fi
}

# build_compose_v2: build the Compose v2 CLI plugin from its Go module (through the Go module
# proxy) into $COMPOSE_V2_DIR once; later calls reuse it while it reports the pinned version.
# Built in a temp dir beside the cache and moved into place, so an interrupted build never
# leaves a half-written binary that looks like a good one.
build_compose_v2() {
    if compose_v2_cached; then
        log "compose $COMPOSE_V2_VERSION: reusing $COMPOSE_V2_BIN"
        return 0
    fi
    local go_bin
    go_bin="$(find_go)" \
        || die "'go' not found: compose $COMPOSE_V2_VERSION is built from its Go module; install Go >= 1.24 (/usr/local/go) or run '$0 install' (golang-go)"
    mkdir -p "$TOOLS_CACHE"
    local work started=$SECONDS pid
    work="$(mktemp -d "$TOOLS_CACHE/.docker-compose-build.XXXXXX")"
    # Interrupted (Ctrl-C, die): stop the build (a background job ignores SIGINT) and drop it.
    BUILD_WORK=$work
    trap 'if [[ -n $BUILD_PID ]]; then kill "$BUILD_PID" 2>/dev/null || true; fi; rm -rf "$BUILD_WORK"' EXIT
    log "compose $COMPOSE_V2_VERSION: building $COMPOSE_V2_MODULE/cmd from the Go module proxy with $("$go_bin" version | cut -d' ' -f3) (cold: several minutes on 2 cores; log $work/build.log)"
    # Compose's go.mod has exclude directives, which `go install module@version` refuses:
    # fetch the module's source and build it as the main module, with its own go.mod/go.sum.
    local src
    src="$("$go_bin" mod download -json "$COMPOSE_V2_MODULE@$COMPOSE_V2_VERSION" 2>"$work/download.log" </dev/null \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')" || true
    if [[ -z "$src" || ! -f "$src/go.mod" ]]; then
        cat "$work/download.log" >&2 || true
        die "downloading $COMPOSE_V2_MODULE@$COMPOSE_V2_VERSION failed: check that the Go module proxy is reachable (go env GOPROXY)"
    fi
    cp -R "$src" "$work/src"
    chmod -R u+w "$work/src"
    (cd "$work/src" && export GOFLAGS="${GOFLAGS:-} -mod=mod" CGO_ENABLED=0 && exec \
        "$go_bin" build -trimpath \
        -ldflags "-s -w -X $COMPOSE_V2_MODULE/internal.Version=$COMPOSE_V2_VERSION" \
        -o "$work/bin/cmd" ./cmd) </dev/null >"$work/build.log" 2>&1 &
    pid=$!
    BUILD_PID=$pid
    while kill -0 "$pid" 2>/dev/null; do
        local i
        for ((i = 0; i < 30; i++)); do
            sleep 1
            kill -0 "$pid" 2>/dev/null || break
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "compose $COMPOSE_V2_VERSION: still building ($((SECONDS - started))s so far)"
        fi
    done
    if ! wait "$pid"; then
        BUILD_PID=""
        tail -n 40 "$work/build.log" >&2 || true
        die "building compose $COMPOSE_V2_VERSION failed (last lines above): check that the Go module proxy is reachable (go env GOPROXY) and Go is >= 1.24"
    fi
    local got
    BUILD_PID=""
    got="$("$work/bin/cmd" version --short 2>&1 </dev/null || true)"
    if [[ "$got" != "${COMPOSE_V2_VERSION#v}" ]]; then
        die "the compose binary built from $COMPOSE_V2_MODULE@$COMPOSE_V2_VERSION reports version '$got', not ${COMPOSE_V2_VERSION#v}"
    fi
    mkdir -p "$work/dir"
    mv "$work/bin/cmd" "$work/dir/docker-compose"
    touch "$work/dir/.complete"
    rm -rf "$COMPOSE_V2_DIR"
    mv "$work/dir" "$COMPOSE_V2_DIR"
    rm -rf "$work"
    trap - EXIT
    compose_v2_cached || die "compose $COMPOSE_V2_VERSION was built but $COMPOSE_V2_BIN does not answer 'version --short' with ${COMPOSE_V2_VERSION#v}"
    log "compose $COMPOSE_V2_VERSION: built into $COMPOSE_V2_DIR in $((SECONDS - started))s"
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
    # Node.js and npm build pulumi/actions and run it under act (tools/build-act.sh,
    # tests/workflows/act); a Node.js from elsewhere (e.g. NodeSource, npm included) is kept.
    command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "all packages already installed"
    else
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q || die "apt-get update failed: check the network / apt sources"
        apt-get install -y -q --no-install-recommends "${missing[@]}" \
            || die "apt-get install failed for: ${missing[*]}"
    fi
    build_compose_v2
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
            </dev/null >>"$DOCKERD_LOG" 2>&1 8>&- &
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

# ensure_login_user USER: USER exists, is in group docker and logs in with the deploy key only.
ensure_login_user() {
    local user=$1
    if ! id "$user" >/dev/null 2>&1; then
        log "creating deploy user $user"
        useradd -m -s /bin/bash "$user"
    fi
    # A fresh useradd account is locked ('!'); sshd (without PAM) refuses locked accounts
    # even for public key logins. '*' = no password login possible, but not locked.
    if [[ "$(getent shadow "$user" | cut -d: -f2)" != "*" ]]; then
        usermod -p '*' "$user"
    fi
    if [[ " $(id -nG "$user") " != *" docker "* ]]; then
        log "adding $user to the docker group"
        usermod -aG docker "$user"
    fi

    local home ssh_dir
    home="$(getent passwd "$user" | cut -d: -f6)"
    [[ -d "$home" ]] || die "home directory '$home' of $user is missing: userdel $user and run up again"
    ssh_dir="$home/.ssh"
    install -d -m 0700 -o "$user" -g "$user" "$ssh_dir"
    if ! cmp -s "$DEPLOY_KEY.pub" "$ssh_dir/authorized_keys" 2>/dev/null; then
        log "installing authorized_keys for $user"
        install -m 0600 -o "$user" -g "$user" "$DEPLOY_KEY.pub" "$ssh_dir/authorized_keys"
    fi
}

# ensure_deploy_user: the deploy key, the deploy user (compose v2) and V1_USER (compose v1),
# both logging in with the same key.
ensure_deploy_user() {
    getent group docker >/dev/null || { log "creating group docker"; groupadd --system docker; }
    [[ "$V1_USER" != "$DEPLOY_USER" ]] \
        || die "MCP_LOCAL_V1_USER must differ from the deploy user '$DEPLOY_USER' (it is the compose v1 user): unset it"
    if [[ ! -s "$DEPLOY_KEY" ]]; then
        log "generating deploy key $DEPLOY_KEY"
        rm -f "$DEPLOY_KEY" "$DEPLOY_KEY.pub"
        ssh-keygen -q -t ed25519 -N '' -C "mcp-local-deploy" -f "$DEPLOY_KEY"
    fi
    chmod 0600 "$DEPLOY_KEY"
    ensure_login_user "$DEPLOY_USER"
    ensure_login_user "$V1_USER"
}

# user_home USER: USER's home directory.
user_home() {
    getent passwd "$1" | cut -d: -f6
}

# ensure_compose_plugins: the deploy user gets the v2 build as its own Docker CLI plugin
# (~/.docker/cli-plugins/docker-compose: Docker's documented per-user plugin location), put in
# place with a single mv so that a concurrent `docker compose` sees the old file or the new
# one. V1_USER gets none, so the scripts' detection falls back to docker-compose v1 for it.
ensure_compose_plugins() {
    build_compose_v2
    local home dir target tmp
    home="$(user_home "$DEPLOY_USER")"
    dir="$home/.docker/cli-plugins"
    target="$dir/docker-compose"
    if cmp -s "$COMPOSE_V2_BIN" "$target"; then
        log "compose $COMPOSE_V2_VERSION already installed for $DEPLOY_USER ($target)"
    else
        [[ -d "$home/.docker" ]] || install -d -m 0700 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$home/.docker"
        [[ -d "$dir" ]] || install -d -m 0755 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$dir"
        tmp="$(mktemp "$dir/.docker-compose.XXXXXX")"
        cp "$COMPOSE_V2_BIN" "$tmp"
        chown "$DEPLOY_USER:$DEPLOY_USER" "$tmp"
        chmod 0755 "$tmp"
        mv -f "$tmp" "$target"
        log "installed compose $COMPOSE_V2_VERSION as the Docker CLI plugin of $DEPLOY_USER: $target"
    fi
    target="$(user_home "$V1_USER")/.docker/cli-plugins/docker-compose"
    if [[ -e "$target" || -L "$target" ]]; then
        log "removing $target: $V1_USER is the compose v1 user"
        rm -f "$target"
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
    local user
    for user in "$DEPLOY_USER" "$V1_USER"; do
        runuser -u "$user" -- docker info >/dev/null 2>&1 \
            || die "$user cannot run 'docker info': check $sock is group docker (ls -l $sock) and the user is in it (id $user)"
    done
    log "$DEPLOY_USER and $V1_USER can use docker"
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
AllowUsers $DEPLOY_USER $V1_USER
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
        "$sshd_bin" -f "$SSHD_CONFIG" -E "$SSHD_LOG" </dev/null >/dev/null 2>&1 8>&- \
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
    # The password goes to htpasswd on stdin (-i), never on its command line: any user on the
    # machine can read a process's argv (ps).
    if [[ ! -s "$REGISTRY_HTPASSWD" ]] \
        || ! htpasswd -vi "$REGISTRY_HTPASSWD" "$REGISTRY_USER" <"$REGISTRY_PASSWORD_FILE" >/dev/null 2>&1; then
        log "writing registry htpasswd (bcrypt) for $REGISTRY_USER"
        htpasswd -Bic "$REGISTRY_HTPASSWD" "$REGISTRY_USER" <"$REGISTRY_PASSWORD_FILE" >/dev/null 2>&1
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
        setsid docker-registry serve "$REGISTRY_CONFIG" </dev/null >>"$REGISTRY_LOG" 2>&1 8>&- &
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
    log "preparing $BASE (owned by $DEPLOY_USER) and $V1_BASE (owned by $V1_USER)"
    install -d -m 0755 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$BASE" "$BASE/mcp" "$BASE/mcp-backups"
    install -d -m 0755 -o "$V1_USER" -g "$V1_USER" "$V1_BASE"
}

# ssh_as USER COMMAND: run COMMAND over ssh exactly like a deploy does.
ssh_as() {
    ssh -i "$DEPLOY_KEY" -p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=yes \
        -o UserKnownHostsFile="$KNOWN_HOSTS" -o ConnectTimeout=10 -o LogLevel=ERROR \
        "$1@$HOST" "$2" </dev/null
}

# user_compose USER: which compose USER's deploy scripts get, as detected by remote/lib.sh
# (v2 first): "docker compose 2.40.3", "docker-compose 1.29.2" or "none". Run as root.
user_compose() {
    local v
    if v="$(runuser -u "$1" -- docker compose version --short 2>/dev/null </dev/null)"; then
        printf 'docker compose %s\n' "$v"
    elif v="$(runuser -u "$1" -- docker-compose version --short 2>/dev/null </dev/null)"; then
        printf 'docker-compose %s\n' "$v"
    else
        printf 'none\n'
    fi
}

check_user_tools() {
    local missing
    # shellcheck disable=SC2016 # expanded by the deploy user's shell
    missing="$(runuser -u "$DEPLOY_USER" -- bash -lc \
        'for t in curl flock tar gzip df docker; do command -v "$t" >/dev/null 2>&1 || printf "%s " "$t"; done')"
    [[ -z "$missing" ]] || die "tools missing for $DEPLOY_USER: $missing- run '$0 install'"
    # Over ssh, as a deploy sees it.
    local got
    got="$(ssh_as "$DEPLOY_USER" 'docker compose version --short' 2>&1)" || true
    [[ "$got" == "${COMPOSE_V2_VERSION#v}" ]] \
        || die "$DEPLOY_USER gets '$got' from 'docker compose version --short', not ${COMPOSE_V2_VERSION#v}: check $(user_home "$DEPLOY_USER")/.docker/cli-plugins/docker-compose (run '$0 up' again)"
    log "$DEPLOY_USER has curl, flock, tar, gzip, df, docker and compose $COMPOSE_V2_VERSION (docker compose)"
    # shellcheck disable=SC2016 # expanded by the v1 user's shell
    got="$(ssh_as "$V1_USER" 'if docker compose version >/dev/null 2>&1; then echo "docker compose $(docker compose version --short)"; else echo "docker-compose $(docker-compose version --short 2>&1)"; fi' 2>&1)" || true
    if [[ "$got" == "docker-compose 1."* ]]; then
        log "$V1_USER gets compose v1: $got"
    else
        log "WARNING: $V1_USER should get docker-compose v1 but gets '$got': the compose v1 tests will fail (a system-wide compose plugin in /usr/local/lib/docker/cli-plugins or /usr/libexec/docker/cli-plugins? apt-get install docker-compose for v1)"
    fi
}

cmd_up() {
    need_root up
    need_cmd docker ssh ssh-keygen runuser setsid curl flock
    ensure_state_dir
    # One `up` at a time on this machine (two terminals, or the two test workers that use the
    # server): the second waits, then finds everything up. The lock goes with this process: the
    # daemons it starts do not inherit it (8>&- on each).
    exec 8>"$STATE/up.lock"
    if ! flock -n 8; then
        log "another 'local/server.sh up' is running: waiting for it (flock $STATE/up.lock)"
        flock 8
    fi
    ensure_dockerd
    ensure_deploy_user
    ensure_docker_socket
    ensure_compose_plugins
    ensure_sshd
    ensure_registry
    ensure_dirs
    check_user_tools
    log "up: ssh -i $DEPLOY_KEY -p $SSH_PORT $DEPLOY_USER@$HOST (registry $REGISTRY, base $BASE, compose $COMPOSE_V2_VERSION)"
    log "    compose v1 user: ssh -i $DEPLOY_KEY -p $SSH_PORT $V1_USER@$HOST (base $V1_BASE)"
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
    if [[ "$(id -u)" -ne 0 ]]; then
        say "compose:  unknown (run status as root to see which compose each deploy user gets)"
    elif id "$DEPLOY_USER" >/dev/null 2>&1; then
        local got
        got="$(user_compose "$DEPLOY_USER")"
        if [[ "$got" == "docker compose ${COMPOSE_V2_VERSION#v}" ]]; then
            say "compose:  $DEPLOY_USER gets $got"
        else
            say "compose:  $DEPLOY_USER gets $got, NOT docker compose ${COMPOSE_V2_VERSION#v}"
            all=1
        fi
        if id "$V1_USER" >/dev/null 2>&1; then
            say "compose:  $V1_USER (compose v1 tests, base $V1_BASE) gets $(user_compose "$V1_USER")"
        else
            say "compose:  $V1_USER (compose v1 tests) MISSING"
            all=1
        fi
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
        "MCP_LOCAL_COMPOSE_V2_VERSION=$COMPOSE_V2_VERSION"
        "MCP_LOCAL_V1_USER=$V1_USER"
        "MCP_LOCAL_V1_BASE=$V1_BASE"
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

# Run a command unless sourced (a test sources this file to call one function with stub tools).
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
