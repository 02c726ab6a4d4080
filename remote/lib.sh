# shellcheck shell=bash
# Shared functions for the MCP remote scripts. Sourced, never run.
#
# Conventions (see remote/README.md, which is the contract):
#   - progress and errors go to stderr as "[step] message" lines;
#   - stdout carries only the single JSON result line (json_object);
#   - die CODE MESSAGE exits with one of the README's exit codes.
#
# The sourcing script sets STEP (e.g. "backup") before sourcing.

: "${STEP:=mcp}"
SCRIPT_NAME=${0##*/}

# Exit codes (README "Exit codes"); used by the sourcing scripts.
# shellcheck disable=SC2034
readonly E_ARG=2 E_MISSING=3 E_LOCK=4 E_SPACE=5 E_BACKUP=6 E_REGISTRY=7 E_COMPOSE=8
# shellcheck disable=SC2034
readonly E_ROLLED_BACK=10 E_ROLLBACK_FAILED=11 E_RESTORE=12 E_UNHEALTHY=13

readonly IMAGE_EXAMPLE='ghcr.io/owner/mcp:v1.2.3 (or ghcr.io/owner/mcp@sha256:<64 hex digits>)'
# registry[:port]/path[:tag][@sha256:digest]; a tag or a digest is required (checked separately).
readonly IMAGE_RE='^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$'
readonly URL_RE='^https?://[][A-Za-z0-9._~:/?#@!&()*+,;=%-]+$'
readonly BACKUP_ID_RE='^[0-9]{8}_[0-9]{6}$'
readonly BACKUP_PREFIX='mcp-backup-'
readonly MANIFEST_NAME='.mcp-backup-manifest'

LOG_FILE=""       # set once the lock is held: <deploy-dir>/.deploy/history.log
TMP_PATHS=()      # removed by the EXIT trap
LOCK_HELD=0
HOLDER_FILE=""
CHECK_ONLY=0      # --check: validate the arguments, touch nothing (check_only_done)

# ---------------------------------------------------------------- output

# log MESSAGE...: one progress line on stderr (and in the history log).
# Never fails: if the SSH session that started us is gone, stderr is a broken pipe and we
# must carry on (a half-finished release is worse than an unseen log line).
log() {
    local line
    line="[$STEP] $*"
    printf '%s\n' "$line" >&2 2>/dev/null || true
    if [[ -n $LOG_FILE ]]; then
        printf '%s %s\n' "$(date '+%Y-%m-%dT%H:%M:%S%z')" "$line" >>"$LOG_FILE" 2>/dev/null || true
    fi
}

# die CODE MESSAGE...: log the message as an error and exit with CODE.
die() {
    local code=$1
    shift
    log "ERROR: $*"
    exit "$code"
}

# log_stream: copy stdin to the log, indented (used for docker/compose output).
log_stream() {
    local line
    while IFS= read -r line || [[ -n $line ]]; do
        log "  $line"
    done
}

# run_logged CMD...: run CMD with stdout+stderr sent to the log; returns CMD's status.
run_logged() {
    "$@" 2>&1 | log_stream
    return "${PIPESTATUS[0]}"
}

# json_escape STRING: print STRING as a JSON string literal (with the quotes).
json_escape() {
    local s=$1 i c hex
    # shellcheck disable=SC1003 # the quotes make the replacement a literal backslash pair
    s=${s//\\/'\\'}
    s=${s//\"/'\"'}
    s=${s//$'\n'/'\n'}
    s=${s//$'\r'/'\r'}
    s=${s//$'\t'/'\t'}
    s=${s//$'\b'/'\b'}
    s=${s//$'\f'/'\f'}
    # Remaining control characters 0x01-0x1f and DEL as \u00XX.
    for i in {1..31} 127; do
        printf -v hex '%02x' "$i"
        printf -v c '%b' "\\x$hex"
        if [[ $s == *"$c"* ]]; then
            s=${s//"$c"/"\\u00$hex"}
        fi
    done
    printf '"%s"' "$s"
}

# json_object KEY VALUE [KEY VALUE...]: print one JSON object line on stdout.
# A key written "=KEY" takes a raw JSON value (true, false, null or an integer).
json_object() {
    local out="{" sep="" key val
    while (($# >= 2)); do
        key=$1 val=$2
        shift 2
        if [[ $key == =* && $val =~ ^(true|false|null|[0-9]+)$ ]]; then
            out+="$sep$(json_escape "${key#=}"): $val"
        else
            out+="$sep$(json_escape "$key"): $(json_escape "$val")"
        fi
        sep=", "
    done
    printf '%s}\n' "$out"
}

# ---------------------------------------------------------------- cleanup / signals

cleanup() {
    local p
    unpause_service
    for p in "${TMP_PATHS[@]}"; do
        [[ -n $p && -e $p ]] && rm -rf -- "$p" 2>/dev/null
    done
    if ((LOCK_HELD)) && [[ -n $HOLDER_FILE ]]; then
        rm -f -- "$HOLDER_FILE" 2>/dev/null
    fi
    return 0
}

# setup_traps: clean temp files on exit; survive the SSH session going away.
# SIGHUP and SIGPIPE are ignored so that a dropped connection does not kill a release
# half-way (its outcome is still written to <deploy-dir>/.deploy/history.log).
# SIGINT/SIGTERM (Ctrl-C, kill) still stop the script, through the EXIT trap.
setup_traps() {
    trap cleanup EXIT
    trap '' HUP PIPE
    trap 'log "interrupted"; exit 130' INT
    trap 'log "terminated"; exit 143' TERM
}

# mktemp_in DIR TEMPLATE [-d]: mktemp registered for cleanup; prints the path.
# (Call as: var=$(mktemp_in ...) would lose the registration in the subshell, so this sets
# the global MKTEMP_PATH instead.)
MKTEMP_PATH=""
mktemp_in() {
    local dir=$1 template=$2 kind=${3:-}
    if [[ $kind == -d ]]; then
        MKTEMP_PATH=$(mktemp -d "$dir/$template") || return 1
    else
        MKTEMP_PATH=$(mktemp "$dir/$template") || return 1
    fi
    TMP_PATHS+=("$MKTEMP_PATH")
}

# ---------------------------------------------------------------- arguments

# usage: print $USAGE (set by the script) on stdout.
usage() {
    printf '%s\n' "$USAGE"
}

# parse_opts "$@": generic long-option parser driven by the associative array OPT_VARS
# (option -> variable name). Accepts "--opt value" and "--opt=value"; --help/-h prints usage.
# Options in the associative array FLAG_VARS (if the script declares it) take no value and
# set their variable to 1.
parse_opts() {
    local opt val
    while (($#)); do
        if [[ $1 == --check ]]; then
            CHECK_ONLY=1
            shift
            continue
        fi
        if declare -p FLAG_VARS >/dev/null 2>&1 && [[ -n ${FLAG_VARS[$1]+x} ]]; then
            printf -v "${FLAG_VARS[$1]}" '%s' 1
            shift
            continue
        fi
        case $1 in
            -h | --help)
                usage
                exit 0
                ;;
            --*=*)
                opt=${1%%=*}
                val=${1#*=}
                shift
                ;;
            --*)
                opt=$1
                if [[ -z ${OPT_VARS[$opt]+x} ]]; then
                    die "$E_ARG" "unknown option: $opt (see $SCRIPT_NAME --help)"
                fi
                if (($# < 2)); then
                    die "$E_ARG" "option $opt needs a value (see $SCRIPT_NAME --help)"
                fi
                val=$2
                shift 2
                ;;
            *)
                die "$E_ARG" "unexpected argument: $(printf '%q' "$1") (options are long options, see $SCRIPT_NAME --help)"
                ;;
        esac
        if [[ -z ${OPT_VARS[$opt]+x} ]]; then
            die "$E_ARG" "unknown option: $opt (see $SCRIPT_NAME --help)"
        fi
        printf -v "${OPT_VARS[$opt]}" '%s' "$val"
    done
}

# check_only_done: with --check, the arguments were all validated (same rules as a real run):
# say so and exit 0, before the lock, stdin, docker or any file is touched.
check_only_done() {
    ((CHECK_ONLY)) || return 0
    log "check: the arguments are valid (--check: nothing was run, nothing was touched)"
    json_object '=valid' true
    exit 0
}

# shown OPT VALUE: how to quote a user value in a message.
shown() { printf '%q' "$1"; }

# require OPT VALUE EXAMPLE
require() {
    [[ -n $2 ]] || die "$E_ARG" "$1 is required (e.g. $1 $3)"
}

# require_together OPT VALUE EXAMPLE [OPT VALUE EXAMPLE...]: if any is given, all are needed.
require_together() {
    local args=("$@") i any=0 names=() missing=() examples=()
    for ((i = 0; i < ${#args[@]}; i += 3)); do
        names+=("${args[i]}")
        examples+=("${args[i]} ${args[i + 2]}")
        if [[ -n ${args[i + 1]} ]]; then any=1; else missing+=("${args[i]}"); fi
    done
    if ((any)) && ((${#missing[@]})); then
        die "$E_ARG" "options ${names[*]} go together; missing: ${missing[*]} (e.g. ${examples[*]})"
    fi
}

# check_posint OPT VALUE: positive integer (1..999999).
check_posint() {
    [[ $2 =~ ^[1-9][0-9]{0,5}$ ]] ||
        die "$E_ARG" "$1 must be a positive integer, got $(shown "$2") (e.g. $1 10)"
}

# check_nonneg_int OPT VALUE: 0..999999.
check_nonneg_int() {
    [[ $2 =~ ^(0|[1-9][0-9]{0,5})$ ]] ||
        die "$E_ARG" "$1 must be a whole number of seconds >= 0, got $(shown "$2") (e.g. $1 120)"
}

# check_dir OPT VALUE EXAMPLE: absolute, no "..", existing directory.
check_dir() {
    local opt=$1 dir=$2 example=$3
    [[ $dir == /* ]] ||
        die "$E_ARG" "$opt must be an absolute path, got $(shown "$dir") (e.g. $opt $example)"
    [[ $dir =~ ^/[A-Za-z0-9._/@+-]*$ ]] ||
        die "$E_ARG" "$opt contains unsupported characters: $(shown "$dir") (e.g. $opt $example)"
    [[ /$dir/ != */../* ]] ||
        die "$E_ARG" "$opt must not contain '..': $(shown "$dir") (e.g. $opt $example)"
    ((CHECK_ONLY)) || [[ -d $dir ]] || die "$E_MISSING" "$opt directory does not exist: $dir"
}

# check_filename OPT VALUE EXAMPLE: a plain file name, no slash.
check_filename() {
    local opt=$1 name=$2 example=$3
    [[ $name =~ ^[A-Za-z0-9._][A-Za-z0-9._-]{0,254}$ && $name != *..* && $name != . ]] ||
        die "$E_ARG" "$opt must be a plain file name (letters, digits, . _ -; no slash), got $(shown "$name") (e.g. $opt $example)"
}

# check_name OPT VALUE EXAMPLE: compose service name.
check_name() {
    [[ $2 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ ]] ||
        die "$E_ARG" "$1 must be letters, digits, . _ - , got $(shown "$2") (e.g. $1 $3)"
}

# check_project OPT VALUE: compose project name.
check_project() {
    [[ $2 =~ ^[a-z0-9][a-z0-9_-]{0,62}$ ]] ||
        die "$E_ARG" "$1 must be lower-case letters, digits, _ - , got $(shown "$2") (e.g. $1 mcp)"
}

# valid_image REF: 0 if REF is a strict image reference with a tag or a digest.
valid_image() {
    local ref=$1 last
    [[ $ref =~ $IMAGE_RE ]] || return 1
    last=${ref##*/}
    [[ $last == *:* || $last == *@sha256:* ]]
}

# check_image OPT VALUE
check_image() {
    local opt=$1 ref=$2
    if [[ $ref == *: ]]; then
        die "$E_ARG" "$opt has an empty tag: $(shown "$ref") (e.g. $opt $IMAGE_EXAMPLE)"
    fi
    valid_image "$ref" ||
        die "$E_ARG" "$opt is not a valid image reference with a tag or digest: $(shown "$ref") (e.g. $opt $IMAGE_EXAMPLE)"
}

# check_backup_id OPT VALUE ALLOW_LATEST(0|1)
check_backup_id() {
    local opt=$1 id=$2 allow_latest=${3:-0}
    if ((allow_latest)) && [[ $id == latest ]]; then
        return 0
    fi
    [[ $id =~ $BACKUP_ID_RE ]] ||
        die "$E_ARG" "$opt must be a backup id YYYYMMDD_HHMMSS$( ((allow_latest)) && printf ' or latest'), got $(shown "$id") (e.g. $opt 20251017_143025)"
}

# check_url OPT VALUE
check_url() {
    [[ $2 =~ $URL_RE ]] ||
        die "$E_ARG" "$1 must be an http(s) URL without spaces or quotes, got $(shown "$2") (e.g. $1 http://localhost:8000/api/v1/health)"
}

# check_registry OPT VALUE: host[:port]
check_registry() {
    [[ $2 =~ ^[A-Za-z0-9]+([.-][A-Za-z0-9]+)*(:[0-9]{1,5})?$ ]] ||
        die "$E_ARG" "$1 must be a registry host[:port], got $(shown "$2") (e.g. $1 ghcr.io)"
}

# check_user OPT VALUE
check_user() {
    [[ $2 =~ ^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$ ]] ||
        die "$E_ARG" "$1 must be a user name (letters, digits, . _ @ + -), got $(shown "$2") (e.g. $1 deploy-bot)"
}

# default_project DIR: compose's own normalisation of the directory's base name.
default_project() {
    local name=${1%/}
    name=${name##*/}
    name=${name,,}
    name=${name//[^a-z0-9_-]/}
    [[ -n $name ]] || name=mcp
    printf '%s' "$name"
}

# need_tools TOOL...: exit 3 naming the first missing tool (nothing to do with --check: the
# tools are the server's, not the arguments).
need_tools() {
    local t
    ((!CHECK_ONLY)) || return 0
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || die "$E_MISSING" "required tool not found on this server: $t"
    done
}

# ---------------------------------------------------------------- lock

# acquire_lock DEPLOY_DIR TIMEOUT: flock <deploy-dir>/.deploy/lock for the rest of the
# script (fd 9). On timeout: exit 4, naming the holder.
acquire_lock() {
    local deploy_dir=$1 timeout=$2 lock holder
    mkdir -p -- "$deploy_dir/.deploy" || die "$E_MISSING" "cannot create $deploy_dir/.deploy"
    lock="$deploy_dir/.deploy/lock"
    HOLDER_FILE="$deploy_dir/.deploy/lock.holder"
    exec 9>>"$lock" || die "$E_MISSING" "cannot open lock file $lock"
    if ! flock -n 9; then
        holder=$(cat -- "$HOLDER_FILE" 2>/dev/null || true)
        log "waiting up to ${timeout}s for the deploy lock $lock, held by: ${holder:-unknown}"
        if ! flock -w "$timeout" 9; then
            holder=$(cat -- "$HOLDER_FILE" 2>/dev/null || true)
            die "$E_LOCK" "another deploy holds the lock $lock (held by: ${holder:-unknown}); gave up after ${timeout}s. Wait for it to finish, or raise --lock-timeout."
        fi
    fi
    LOCK_HELD=1
    printf 'script=%s pid=%s started=%s ssh_client=%s\n' \
        "$SCRIPT_NAME" "$$" "$(date '+%Y-%m-%dT%H:%M:%S%z')" "${SSH_CLIENT:-local}" \
        >"$HOLDER_FILE" 2>/dev/null || true
    LOG_FILE="$deploy_dir/.deploy/history.log"
    log "started by ${SSH_CLIENT:-local session} (pid $$): $SCRIPT_NAME"
}

# ---------------------------------------------------------------- compose

COMPOSE=()

# detect_compose: docker compose (v2) if present, else docker-compose (v1).
detect_compose() {
    need_tools docker
    local version
    if version=$(docker compose version --short 2>/dev/null </dev/null); then
        COMPOSE=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        COMPOSE=(docker-compose)
        version=$(docker-compose version --short 2>/dev/null </dev/null || true)
    else
        die "$E_MISSING" "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed"
    fi
    # Which compose ran is in every step's log (and history.log): v1 and v2 differ in details.
    log "compose: ${COMPOSE[*]} ${version:-(version unknown)}"
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
    printf '%s -p %s -f %s' "${COMPOSE[*]}" "$PROJECT" "$1"
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
# <deploy-dir>/.deploy/live-colour ("" when the deploy dir is not run blue-green).
live_colour() {
    local colour=""
    if [[ -f $1/.deploy/live-colour ]]; then
        colour=$(head -n 1 -- "$1/.deploy/live-colour" 2>/dev/null || true)
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

# ---------------------------------------------------------------- health check

HEALTH_BODY=""
HEALTH_REASON=""

# health_check URL ATTEMPTS TIMEOUT [COMPOSE_FILE]: up to ATTEMPTS tries of curl within a
# TIMEOUT-second deadline. With COMPOSE_FILE, a service container that has exited stops the
# check early. Sets HEALTH_BODY / HEALTH_REASON; returns 0 when healthy.
health_check() {
    local url=$1 attempts=$2 timeout=$3 file=${4:-}
    local deadline now remaining max_time interval try=0 errf state status code restarts
    HEALTH_BODY="" HEALTH_REASON="no attempt made"
    deadline=$(($(date +%s) + timeout))
    interval=$((timeout / attempts))
    ((interval >= 1)) || interval=1
    mktemp_in "${TMPDIR:-/tmp}" mcp-health.XXXXXX || return 1
    errf=$MKTEMP_PATH
    while ((try < attempts)); do
        now=$(date +%s)
        remaining=$((deadline - now))
        if ((remaining <= 0)); then
            HEALTH_REASON="deadline of ${timeout}s reached after $try attempt(s); last error: $HEALTH_REASON"
            break
        fi
        try=$((try + 1))
        max_time=$((remaining < 5 ? remaining : 5))
        if HEALTH_BODY=$(curl -fsS --max-time "$max_time" "$url" 2>"$errf" </dev/null); then
            log "healthy ($url, attempt $try/$attempts): ${HEALTH_BODY:0:200}"
            HEALTH_BODY=${HEALTH_BODY:0:2000}
            return 0
        fi
        HEALTH_REASON=$(tr '\n' ' ' <"$errf")
        HEALTH_REASON=${HEALTH_REASON% }
        [[ -n $HEALTH_REASON ]] || HEALTH_REASON="curl failed"
        log "not healthy yet ($url, attempt $try/$attempts): $HEALTH_REASON"
        if [[ -n $file ]]; then
            state=$(container_state "$file")
            read -r status code restarts <<<"$state"
            case $status in
                none)
                    HEALTH_REASON="no container is running for service $SERVICE"
                    log "$HEALTH_REASON"
                    break
                    ;;
                exited | dead)
                    HEALTH_REASON="container of $SERVICE exited with code $code"
                    log "$HEALTH_REASON; not waiting any longer"
                    break
                    ;;
                restarting)
                    HEALTH_REASON="container of $SERVICE is crash-looping (restarted ${restarts}x, last exit code $code)"
                    log "$HEALTH_REASON; not waiting any longer"
                    break
                    ;;
            esac
        fi
        if ((try >= attempts)); then
            HEALTH_REASON="$attempts attempt(s) failed; last error: $HEALTH_REASON"
            break
        fi
        now=$(date +%s)
        remaining=$((deadline - now))
        if ((remaining <= 0)); then
            HEALTH_REASON="deadline of ${timeout}s reached after $try attempt(s); last error: $HEALTH_REASON"
            break
        fi
        sleep "$((remaining < interval ? remaining : interval))"
    done
    HEALTH_BODY=""
    if [[ -n $file ]]; then
        show_service_logs "$file"
    fi
    return 1
}

# ---------------------------------------------------------------- backups

# backup_archive BACKUP_DIR ID: path of the archive for ID.
backup_archive() {
    printf '%s/%s%s.tar.gz' "$1" "$BACKUP_PREFIX" "$2"
}

# list_backup_ids BACKUP_DIR: ids, in name order (not necessarily the order they were made).
list_backup_ids() {
    local f name
    for f in "$1/$BACKUP_PREFIX"*.tar.gz; do
        [[ -f $f ]] || continue
        name=${f##*/}
        name=${name#"$BACKUP_PREFIX"}
        name=${name%.tar.gz}
        [[ $name =~ $BACKUP_ID_RE ]] && printf '%s\n' "$name"
    done | sort
}

# backup_created_at ARCHIVE: when the backup was made, UTC (YYYY-MM-DDTHH:MM:SSZ): the
# manifest's created_at=, else (an older or unreadable manifest) the archive's mtime.
backup_created_at() {
    local archive=$1 created=""
    created=$({ tar --occurrence=1 -xOzf "$archive" "./$MANIFEST_NAME" 2>/dev/null ||
        tar --occurrence=1 -xOzf "$archive" "$MANIFEST_NAME" 2>/dev/null; } |
        sed -n 's/^created_at=//p' | head -n 1) || true
    if [[ ! $created =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]]; then
        created=$(date -u -r "$archive" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || printf '0000-00-00T00:00:00Z')
    fi
    printf '%s' "$created"
}

# list_backups_by_time BACKUP_DIR: ids ordered by when they were made (backup_created_at),
# oldest first; ties in id order. Ids are UTC now, but older ones were local time, and a
# wrong clock can name an archive in the future: the name alone does not tell the order.
list_backups_by_time() {
    local id
    while IFS= read -r id; do
        printf '%s %s\n' "$(backup_created_at "$(backup_archive "$1" "$id")")" "$id"
    done < <(list_backup_ids "$1") | sort | cut -d' ' -f2
}

# check_backup_dir: BACKUP_DIR (absolute, existing) is not inside DEPLOY_DIR and writable.
# shellcheck disable=SC2153 # DEPLOY_DIR and BACKUP_DIR are the caller's globals
check_backup_dir() {
    check_dir --backup-dir "$BACKUP_DIR" /opt/mcp-backups
    BACKUP_DIR=${BACKUP_DIR%/}
    [[ -n $BACKUP_DIR ]] || die "$E_ARG" "--backup-dir must not be /"
    case "$BACKUP_DIR/" in
        "$DEPLOY_DIR/.deploy/"*) ;;
        "$DEPLOY_DIR/"*) die "$E_ARG" "--backup-dir $BACKUP_DIR is inside --deploy-dir $DEPLOY_DIR: the archives would archive themselves (e.g. --backup-dir /opt/mcp-backups)" ;;
    esac
    ((CHECK_ONLY)) || [[ -w $BACKUP_DIR ]] || die "$E_BACKUP" "--backup-dir $BACKUP_DIR is not writable by $(id -un) (e.g. sudo chown $(id -un): $BACKUP_DIR)"
}

# ---------------------------------------------------------------- backup consistency

# Options of every script that backs up (backup.sh, release.sh, restore.sh).
PRE_BACKUP_COMMAND="" PAUSE_DURING_BACKUP=0
readonly PRE_BACKUP_TIMEOUT=600
# shellcheck disable=SC2034 # appended to the sourcing script's USAGE
readonly CONSISTENCY_USAGE="  --pre-backup-command CMD
                          run CMD in the running service container before archiving (e.g. a
                          database dump into the data dir). Split into words like a shell
                          would (quotes honoured) and run without a shell: for redirections
                          write sh -c '...'. Fails the backup (exit 6) if it fails or takes
                          over ${PRE_BACKUP_TIMEOUT}s
  --pause-during-backup   pause the service container (docker pause) while the archive is
                          written, so no file changes under tar; it is always unpaused, on
                          any exit (requests wait meanwhile)"
PRE_BACKUP_WORDS=()
PAUSED_CONTAINER=""

# consistency_register_options: add --pre-backup-command / --pause-during-backup to the
# caller's OPT_VARS / FLAG_VARS.
consistency_register_options() {
    # shellcheck disable=SC2034 # the caller's associative arrays
    OPT_VARS["--pre-backup-command"]=PRE_BACKUP_COMMAND
    # shellcheck disable=SC2034
    FLAG_VARS["--pause-during-backup"]=PAUSE_DURING_BACKUP
}

# consistency_validate: parse --pre-backup-command into PRE_BACKUP_WORDS (exit 2 if it
# cannot be split, e.g. an unmatched quote).
consistency_validate() {
    local example="--pre-backup-command \"sh -c 'pg_dump -U mcp mcp > /data/dump.sql'\""
    [[ -n $PRE_BACKUP_COMMAND ]] || return 0
    [[ $PRE_BACKUP_COMMAND != *$'\n'* && ${#PRE_BACKUP_COMMAND} -le 2000 ]] ||
        die "$E_ARG" "--pre-backup-command must be one line of at most 2000 characters (e.g. $example)"
    PRE_BACKUP_WORDS=()
    if ! mapfile -d '' -t PRE_BACKUP_WORDS < <(printf '%s\n' "$PRE_BACKUP_COMMAND" | xargs printf '%s\0' 2>/dev/null) ||
        ((${#PRE_BACKUP_WORDS[@]} == 0)) ||
        ! printf '%s\n' "$PRE_BACKUP_COMMAND" | xargs true 2>/dev/null; then
        die "$E_ARG" "--pre-backup-command cannot be split into words (unmatched quote?): $(shown "$PRE_BACKUP_COMMAND") (e.g. $example)"
    fi
}

# live_service_container: id of the *running* service container of the live release (the
# live colour's project with blue-green), "" if none.
live_service_container() {
    local colour cid running
    colour=$(live_colour "$DEPLOY_DIR")
    local PROJECT=${PROJECT}${colour:+-$colour}
    local MCP_IMAGE
    MCP_IMAGE=$(env_image "$DEPLOY_DIR")
    cid=$(service_container "$DEPLOY_DIR/$COMPOSE_FILE")
    [[ -n $cid ]] || return 0
    running=$(docker inspect -f '{{.State.Running}}' "$cid" 2>/dev/null || true)
    [[ $running == true ]] && printf '%s' "$cid"
    return 0
}

# run_pre_backup_command CID: PRE_BACKUP_WORDS in the container (dies 6 on failure).
run_pre_backup_command() {
    local cid=$1 status=0
    log "pre-backup command in the $SERVICE container ${cid:0:12}: ${PRE_BACKUP_WORDS[*]}"
    run_logged timeout --kill-after=10 "$PRE_BACKUP_TIMEOUT" docker exec "$cid" "${PRE_BACKUP_WORDS[@]}" </dev/null || status=$?
    if ((status == 124 || status == 137)); then
        die "$E_BACKUP" "the pre-backup command took over ${PRE_BACKUP_TIMEOUT}s and was stopped: $(shown "$PRE_BACKUP_COMMAND"). Nothing was archived; the app was not touched${BACKUP_FAILURE_NOTE:+; $BACKUP_FAILURE_NOTE}"
    elif ((status != 0)); then
        die "$E_BACKUP" "the pre-backup command failed (exit $status, output above): $(shown "$PRE_BACKUP_COMMAND"). Nothing was archived; the app was not touched${BACKUP_FAILURE_NOTE:+; $BACKUP_FAILURE_NOTE}. Fix it (mcp:app.preBackupCommand / --pre-backup-command), or run it by hand: docker exec ${cid:0:12} ${PRE_BACKUP_WORDS[*]}"
    fi
    log "pre-backup command done"
}

# pause_service CID: docker pause; the EXIT trap (cleanup) always unpauses.
pause_service() {
    local cid=$1
    log "pausing the $SERVICE container ${cid:0:12} while the archive is written (requests wait)"
    PAUSED_CONTAINER=$cid
    if ! run_logged docker pause "$cid" </dev/null; then
        PAUSED_CONTAINER=""
        die "$E_BACKUP" "docker pause ${cid:0:12} failed (see above); nothing was archived${BACKUP_FAILURE_NOTE:+; $BACKUP_FAILURE_NOTE}"
    fi
}

# unpause_service: undo pause_service (never fails; called again by the EXIT trap).
unpause_service() {
    local cid=$PAUSED_CONTAINER
    [[ -n $cid ]] || return 0
    PAUSED_CONTAINER=""
    if docker unpause "$cid" >/dev/null 2>&1 </dev/null; then
        log "unpaused the $SERVICE container ${cid:0:12}"
    else
        log "WARNING: could not unpause the $SERVICE container ${cid:0:12}: run docker unpause $cid NOW"
    fi
    return 0
}

# take_backup KEEP: archive DEPLOY_DIR (without .deploy/) + a manifest of the running image
# into BACKUP_DIR, verify it, then keep the newest KEEP archives (0: prune nothing). The
# archive just written is never pruned. Needs DEPLOY_DIR, BACKUP_DIR, MIN_FREE_MB,
# COMPOSE_FILE, SERVICE, PROJECT and the lock. Sets BACKUP_ID, BACKUP_FILE and
# BACKUP_PREVIOUS_IMAGE. Dies (exit 5 or 6) when it cannot: nothing was touched then.
BACKUP_ID="" BACKUP_FILE="" BACKUP_PREVIOUS_IMAGE=""
BACKUP_FAILURE_NOTE="" # appended to take_backup's errors by callers (e.g. "nothing was switched")
# shellcheck disable=SC2153 # DEPLOY_DIR, BACKUP_DIR, MIN_FREE_MB... are the caller's globals
take_backup() {
    local keep=$1 used_kb free_kb need_kb manifest_dir tmp_archive size_kb cid tar_status
    # 1. Disk space, before anything else.
    used_kb=$(cd -- "$DEPLOY_DIR" && du -sk --exclude=./.deploy . 2>/dev/null | awk 'NR==1 {print $1}') || true
    free_kb=$(df -Pk -- "$BACKUP_DIR" | awk 'NR==2 {print $4}') || true
    [[ $used_kb =~ ^[0-9]+$ ]] || die "$E_BACKUP" "could not measure the size of $DEPLOY_DIR (du failed)"
    [[ $free_kb =~ ^[0-9]+$ ]] || die "$E_BACKUP" "could not measure the free space in $BACKUP_DIR (df failed)"
    need_kb=$((used_kb + MIN_FREE_MB * 1024))
    if ((free_kb < need_kb)); then
        die "$E_SPACE" "not enough disk space in $BACKUP_DIR: $((free_kb / 1024)) MB free, need $(((need_kb + 1023) / 1024)) MB ($DEPLOY_DIR is $(((used_kb + 1023) / 1024)) MB + --min-free-mb $MIN_FREE_MB). Nothing was touched; free some space or prune old backups.${BACKUP_FAILURE_NOTE:+ $BACKUP_FAILURE_NOTE}"
    fi
    log "disk space ok: $((free_kb / 1024)) MB free in $BACKUP_DIR, need $(((need_kb + 1023) / 1024)) MB"

    # 2. What is running now.
    ((${#COMPOSE[@]})) || detect_compose
    BACKUP_PREVIOUS_IMAGE=$(running_image "$DEPLOY_DIR" "$DEPLOY_DIR/$COMPOSE_FILE")

    # 3. Archive name (one per second).
    BACKUP_ID=$(date -u +%Y%m%d_%H%M%S)
    BACKUP_FILE=$(backup_archive "$BACKUP_DIR" "$BACKUP_ID")
    while [[ -e $BACKUP_FILE ]]; do
        sleep 1
        BACKUP_ID=$(date -u +%Y%m%d_%H%M%S)
        BACKUP_FILE=$(backup_archive "$BACKUP_DIR" "$BACKUP_ID")
    done

    # 4. Manifest + archive, written under a temp name then renamed.
    mktemp_in "$DEPLOY_DIR/.deploy" manifest.XXXXXX -d || die "$E_BACKUP" "cannot create a temp dir in $DEPLOY_DIR/.deploy"
    manifest_dir=$MKTEMP_PATH
    {
        printf 'image=%s\n' "$BACKUP_PREVIOUS_IMAGE"
        printf 'created_at=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        printf 'compose_file=%s\n' "$COMPOSE_FILE"
        printf 'service=%s\n' "$SERVICE"
        printf 'host=%s\n' "$(hostname 2>/dev/null || uname -n)"
        printf 'deploy_dir=%s\n' "$DEPLOY_DIR"
    } >"$manifest_dir/$MANIFEST_NAME"

    mktemp_in "$BACKUP_DIR" ".${BACKUP_PREFIX}${BACKUP_ID}.XXXXXX.tmp" || die "$E_BACKUP" "cannot create a temp file in $BACKUP_DIR"
    tmp_archive=$MKTEMP_PATH
    # Consistency: a dump by the app itself, and/or no writes while tar reads.
    if [[ -n $PRE_BACKUP_COMMAND || $PAUSE_DURING_BACKUP == 1 ]]; then
        cid=$(live_service_container)
        if [[ -z $cid ]]; then
            log "no running $SERVICE container: nothing writes, so no pre-backup command and no pause"
        else
            ((${#PRE_BACKUP_WORDS[@]} == 0)) || run_pre_backup_command "$cid"
            [[ $PAUSE_DURING_BACKUP != 1 ]] || pause_service "$cid"
        fi
    fi
    log "archiving $DEPLOY_DIR (without .deploy/) to $BACKUP_FILE"
    # The manifest goes first: reading it back (latest, retention) stops after one member.
    tar_status=0
    run_logged tar -czf "$tmp_archive" -C "$manifest_dir" "./$MANIFEST_NAME" \
        --exclude=./.deploy --exclude='./.mcp-replaced-*' -C "$DEPLOY_DIR" . || tar_status=$?
    unpause_service
    if ((tar_status == 1)); then
        # GNU tar: "file changed as we read it" (or shrank/vanished); the archive is complete.
        log "WARNING: files changed while they were archived (see the tar lines above): this backup may hold a half-written file. The deploy goes on; for consistent backups of a busy app use --pre-backup-command (e.g. a database dump into the data dir; mcp:app.preBackupCommand) or --pause-during-backup (mcp:app.pauseDuringBackup)"
    elif ((tar_status != 0)); then
        die "$E_BACKUP" "tar failed while writing $BACKUP_FILE (see the tar lines above: files in $DEPLOY_DIR must be readable by $(id -un), e.g. sudo chown -R $(id -un): $DEPLOY_DIR; or the disk is full); nothing was kept and the running app was not touched${BACKUP_FAILURE_NOTE:+; $BACKUP_FAILURE_NOTE}"
    fi
    chmod 600 -- "$tmp_archive"
    if ! verify_archive "$tmp_archive"; then
        die "$E_BACKUP" "backup verification failed: $VERIFY_ERROR; the bad file was deleted${BACKUP_FAILURE_NOTE:+; $BACKUP_FAILURE_NOTE}"
    fi
    mv -f -- "$tmp_archive" "$BACKUP_FILE" || die "$E_BACKUP" "could not rename the archive to $BACKUP_FILE${BACKUP_FAILURE_NOTE:+; $BACKUP_FAILURE_NOTE}"
    size_kb=$(du -k -- "$BACKUP_FILE" | awk '{print $1}')
    log "archive verified (gzip -t, tar -tzf, $MANIFEST_NAME): $BACKUP_FILE (${size_kb} KB)"

    # 5. Retention.
    prune_backups "$keep" "$BACKUP_ID"
}

# prune_backups KEEP NEWEST_ID: keep the newest KEEP archives of BACKUP_DIR (by when they
# were made, see list_backups_by_time), NEWEST_ID (the one just written) always among them,
# whatever the other archives are named. 0 prunes nothing.
prune_backups() {
    local keep=$1 newest=$2 ids=() id old excess i
    ((keep > 0)) || return 0
    mapfile -t ids < <(list_backups_by_time "$BACKUP_DIR")
    excess=$((${#ids[@]} - keep))
    for ((i = 0; i < ${#ids[@]} && excess > 0; i++)); do
        id=${ids[i]}
        [[ $id == "$newest" ]] && continue
        old=$(backup_archive "$BACKUP_DIR" "$id")
        if rm -f -- "$old"; then
            log "pruned old backup $old (keeping the newest $keep)"
        else
            log "WARNING: could not prune $old"
        fi
        excess=$((excess - 1))
    done
}

# verify_archive ARCHIVE: the whole gzip stream is intact (gzip -t: CRC and length), the tar
# inside lists to its end (tar -tzf), and it holds a manifest naming a valid image (or "",
# nothing deployed). Sets VERIFY_ERROR.
VERIFY_ERROR=""
verify_archive() {
    local archive=$1 listing manifest image
    if [[ ! -r $archive ]]; then
        VERIFY_ERROR="cannot read $archive"
        return 1
    fi
    if ! gzip -t -- "$archive" 2>/dev/null; then
        VERIFY_ERROR="$archive is not a valid gzip file (gzip -t failed: truncated or damaged)"
        return 1
    fi
    if ! listing=$(tar -tzf "$archive" 2>/dev/null); then
        VERIFY_ERROR="$archive is not a readable tar archive (tar -tzf failed)"
        return 1
    fi
    if ! grep -qxE "(\./)?\\$MANIFEST_NAME" <<<"$listing"; then
        VERIFY_ERROR="$archive has no $MANIFEST_NAME manifest"
        return 1
    fi
    # The manifest is the first member of archives written by take_backup (older ones have it
    # last): --occurrence=1 stops reading there.
    manifest=$(tar --occurrence=1 -xOzf "$archive" "./$MANIFEST_NAME" 2>/dev/null ||
        tar --occurrence=1 -xOzf "$archive" "$MANIFEST_NAME" 2>/dev/null) || true
    if ! grep -q '^image=' <<<"$manifest"; then
        VERIFY_ERROR="the $MANIFEST_NAME of $archive has no image= line (damaged manifest)"
        return 1
    fi
    image=$(sed -n 's/^image=//p' <<<"$manifest" | head -n 1)
    if [[ -n $image ]] && ! valid_image "$image"; then
        VERIFY_ERROR="the $MANIFEST_NAME of $archive names an invalid image: $(shown "$image")"
        return 1
    fi
    return 0
}

# manifest_value FILE KEY
manifest_value() {
    sed -n "s/^$2=//p" -- "$1" | head -n 1
}

# ---------------------------------------------------------------- swapping the deploy dir
# One swap for every restore (recreate: restore_archive; blue-green: bg_restore). OLD is the
# prefix the replaced entries are renamed to, inside the deploy dir itself (renaming within
# the parent needs no write permission on the entry, so a data dir Docker made as root moves
# too): DIR/OLD.<name>. .deploy/ (the scripts, the lock, the staged release) is never swapped,
# on either side, nor are earlier .mcp-replaced-* leftovers. The state of a swap is on disk
# (DIR/OLD.*), so these functions need no globals.

# replaced_prefix: a new OLD prefix.
replaced_prefix() {
    printf '.mcp-replaced-%s-%s' "$(date -u +%Y%m%d%H%M%S)" "$$"
}

# swappable DIR: the entries of DIR a swap moves (all but .deploy and .mcp-replaced-*).
swappable() {
    local entry name
    shopt -s dotglob nullglob
    for entry in "$1"/*; do
        name=${entry##*/}
        [[ $name == .deploy || $name == .mcp-replaced-* ]] || printf '%s\n' "$name"
    done
    shopt -u dotglob nullglob
}

# swap_in DIR FILES OLD: rename DIR's swappable entries to DIR/OLD.<name>, then move FILES's
# swappable entries into DIR. On failure, undoes itself (the replaced entries go back),
# prints what failed and returns 1.
swap_in() {
    local dir=$1 files=$2 old=$3 name names=()
    mapfile -t names < <(swappable "$dir")
    for name in "${names[@]}"; do
        if ! mv -- "$dir/$name" "$dir/$old.$name"; then
            printf 'could not move %s aside' "$dir/$name"
            unswap_replaced "$dir" "$old" || true
            return 1
        fi
    done
    mapfile -t names < <(swappable "$files")
    for name in "${names[@]}"; do
        if ! mv -- "$files/$name" "$dir/"; then
            printf 'could not move %s into %s' "$name" "$dir"
            put_back "$dir" "$old" >/dev/null
            return 1
        fi
    done
    return 0
}

# unswap_replaced DIR OLD: rename DIR/OLD.<name> back to DIR/<name>; returns 1 (WARNINGs
# logged) when one cannot be.
unswap_replaced() {
    local dir=$1 old=$2 entry status=0
    shopt -s dotglob nullglob
    for entry in "$dir/$old".*; do
        mv -- "$entry" "$dir/${entry#"$dir/$old."}" 2>/dev/null || {
            log "WARNING: could not put back $dir/${entry#"$dir/$old."}: it is still at $entry"
            status=1
        }
    done
    shopt -u dotglob nullglob
    return "$status"
}

# put_back DIR OLD: undo a complete swap_in: what it moved in is renamed to
# DIR/OLD-restored.<name> and deleted, and DIR/OLD.<name> go back in place. Returns 1
# (WARNINGs logged) when not all are back.
put_back() {
    local dir=$1 old=$2 name status=0 entry names=()
    log "putting the replaced files back in $dir"
    mapfile -t names < <(swappable "$dir")
    for name in "${names[@]}"; do
        mv -- "$dir/$name" "$dir/$old-restored.$name" 2>/dev/null || {
            log "WARNING: could not move the restored $dir/$name aside"
            status=1
        }
    done
    unswap_replaced "$dir" "$old" || status=1
    shopt -s dotglob nullglob
    for entry in "$dir/$old-restored".*; do
        rm -rf -- "$entry" 2>/dev/null ||
            log "WARNING: could not delete $entry (a copy of the backup); delete it by hand"
    done
    shopt -u dotglob nullglob
    ((status)) || log "the replaced files are back in place: nothing that was live was lost"
    return "$status"
}

# drop_replaced DIR OLD: the restored version is healthy: delete DIR/OLD.*.
drop_replaced() {
    local dir=$1 old=$2 entry
    shopt -s dotglob nullglob
    for entry in "$dir/$old".*; do
        rm -rf -- "$entry" 2>/dev/null ||
            log "WARNING: could not delete the replaced $entry (files owned by root?); delete it by hand (sudo rm -rf)"
    done
    shopt -u dotglob nullglob
    return 0
}

# restore_archive ARCHIVE: the shared restore (used by release.sh and restore.sh).
# Needs DEPLOY_DIR, COMPOSE_FILE, SERVICE, PROJECT, COMPOSE, HEALTH_URL, ATTEMPTS, TIMEOUT.
#   verify archive -> extract to a temp dir under <deploy-dir>/.deploy -> compose down the
#   current release (volumes kept) -> rename the deploy dir contents (except .deploy/) aside
#   and move the archive's in -> up -d the manifest's image -> health check -> only then
#   delete what was renamed aside. If the restored version cannot start or is unhealthy, it
#   is stopped and the renamed files are put back: nothing that was live is lost.
# Sets RESTORE_IMAGE (manifest image, "" = nothing was running), RESTORE_ERROR,
# RESTORE_STOPPED (1 once the current release was stopped) and RESTORE_PUT_BACK (1 when the
# previous files were put back after a failure). Returns 0 healthy (or nothing to start),
# 1 failed.
RESTORE_IMAGE=""
RESTORE_ERROR=""
# shellcheck disable=SC2034 # read by release.sh and restore.sh
RESTORE_STOPPED=0 RESTORE_PUT_BACK=0
RESTORE_OLD=""
# shellcheck disable=SC2153,SC2034 # reads the caller's DEPLOY_DIR, ATTEMPTS...; sets RESTORE_* for it
restore_archive() {
    local archive=$1 work manifest file restored_file
    RESTORE_IMAGE="" RESTORE_ERROR="" RESTORE_STOPPED=0 RESTORE_PUT_BACK=0
    if ! verify_archive "$archive"; then
        RESTORE_ERROR=$VERIFY_ERROR
        return 1
    fi
    mktemp_in "$DEPLOY_DIR/.deploy" restore.XXXXXX -d || {
        RESTORE_ERROR="cannot create a temp dir in $DEPLOY_DIR/.deploy"
        return 1
    }
    work=$MKTEMP_PATH
    log "extracting $archive"
    if ! run_logged tar -xpzf "$archive" -C "$work"; then
        RESTORE_ERROR="could not extract $archive"
        return 1
    fi
    manifest="$work/$MANIFEST_NAME"
    if [[ ! -f $manifest ]]; then
        RESTORE_ERROR="$archive has no $MANIFEST_NAME"
        return 1
    fi
    RESTORE_IMAGE=$(manifest_value "$manifest" image)
    if [[ -n $RESTORE_IMAGE ]] && ! valid_image "$RESTORE_IMAGE"; then
        RESTORE_ERROR="manifest of $archive names an invalid image: $(shown "$RESTORE_IMAGE")"
        return 1
    fi
    restored_file=$(manifest_value "$manifest" compose_file)
    if [[ ! $restored_file =~ ^[A-Za-z0-9_][A-Za-z0-9._-]*$ ]]; then
        restored_file=$COMPOSE_FILE
    fi
    rm -f -- "$manifest"
    if [[ -n $RESTORE_IMAGE && ! -f $work/$restored_file ]]; then
        RESTORE_ERROR="the backup has no compose file $restored_file (nothing was changed)"
        return 1
    fi

    # Stop the current release (whatever it is), keeping volumes.
    file="$DEPLOY_DIR/$COMPOSE_FILE"
    if [[ -f $file ]]; then
        log "stopping the current release: $(compose_hint "$file") down --remove-orphans (volumes kept)"
        # shellcheck disable=SC2034 # read by restore.sh
        RESTORE_STOPPED=1
        if ! MCP_IMAGE=${MCP_IMAGE:-$(env_image "$DEPLOY_DIR")} run_logged compose_cmd "$file" down --remove-orphans </dev/null; then
            RESTORE_ERROR="compose down failed for $file"
            return 1
        fi
    else
        log "no $file: nothing to stop"
    fi

    # Swap the contents; what was renamed aside is kept until the restored version is healthy.
    RESTORE_OLD=$(replaced_prefix)
    if ! RESTORE_ERROR=$(swap_in "$DEPLOY_DIR" "$work" "$RESTORE_OLD"); then
        RESTORE_PUT_BACK=1
        return 1
    fi
    log "restored the files of $DEPLOY_DIR from $archive (the replaced ones are kept as $DEPLOY_DIR/$RESTORE_OLD.* until the restored version is healthy)"

    if [[ -z $RESTORE_IMAGE ]]; then
        log "the backup was taken when nothing was deployed: not starting anything"
        drop_replaced "$DEPLOY_DIR" "$RESTORE_OLD"
        return 0
    fi
    file="$DEPLOY_DIR/$restored_file"
    set_env_image "$DEPLOY_DIR" "$RESTORE_IMAGE" || log "WARNING: could not update $DEPLOY_DIR/.env"
    log "starting $RESTORE_IMAGE: $(compose_hint "$file") up -d --remove-orphans"
    if ! MCP_IMAGE=$RESTORE_IMAGE run_logged compose_cmd "$file" up -d --remove-orphans </dev/null; then
        RESTORE_ERROR="compose up of $RESTORE_IMAGE failed"
        MCP_IMAGE=$RESTORE_IMAGE show_service_logs "$file"
        restore_stop_restored "$file"
        put_back "$DEPLOY_DIR" "$RESTORE_OLD" && RESTORE_PUT_BACK=1
        return 1
    fi
    log "checking health of the restored version at $HEALTH_URL"
    if ! MCP_IMAGE=$RESTORE_IMAGE health_check "$HEALTH_URL" "$ATTEMPTS" "$TIMEOUT" "$file"; then
        RESTORE_ERROR="restored version $RESTORE_IMAGE is unhealthy too: $HEALTH_REASON"
        restore_stop_restored "$file"
        put_back "$DEPLOY_DIR" "$RESTORE_OLD" && RESTORE_PUT_BACK=1
        return 1
    fi
    drop_replaced "$DEPLOY_DIR" "$RESTORE_OLD"
    return 0
}

# restore_stop_restored FILE: compose down the restored version that failed (volumes kept).
restore_stop_restored() {
    log "stopping the restored version $RESTORE_IMAGE: $(compose_hint "$1") down --remove-orphans"
    MCP_IMAGE=$RESTORE_IMAGE run_logged compose_cmd "$1" down --remove-orphans </dev/null ||
        log "WARNING: compose down of the restored version failed; stop it by hand: $(compose_hint "$1") down"
}
