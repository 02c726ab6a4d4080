# shellcheck shell=bash
# One job: output and exit codes (sourced, never run). "[step] message" progress lines on
# stderr (and in .deploy/history.log once the lock is held), one JSON result line on stdout,
# die CODE MESSAGE with one of remote/README.md's exit codes.
# The sourcing script sets STEP (e.g. "backup") before sourcing.

: "${STEP:=mcp}"
# shellcheck disable=SC2034 # read by the other libraries and the scripts
SCRIPT_NAME=${0##*/}

# Exit codes (README "Exit codes"); used by the sourcing scripts.
# shellcheck disable=SC2034
readonly E_ARG=2 E_MISSING=3 E_LOCK=4 E_SPACE=5 E_BACKUP=6 E_REGISTRY=7 E_COMPOSE=8
# shellcheck disable=SC2034
readonly E_ROLLED_BACK=10 E_ROLLBACK_FAILED=11 E_RESTORE=12 E_UNHEALTHY=13 E_FROZEN=14

LOG_FILE="" # set by acquire_lock (lib/lock.sh): <deploy-dir>/.deploy/history.log
# shellcheck disable=SC2034 # read by lib/metrics.sh
LAST_LOG_LINE="" # the last message logged (lib/metrics.sh: why a run failed)

# log MESSAGE...: one progress line on stderr (and in the history log).
# Never fails: if the SSH session that started us is gone, stderr is a broken pipe and we
# must carry on (a half-finished release is worse than an unseen log line).
log() {
    local line
    line="[$STEP] $*"
    # shellcheck disable=SC2034 # read by lib/metrics.sh
    LAST_LOG_LINE=$*
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
