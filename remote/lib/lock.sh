# shellcheck shell=bash
# One job: the deploy lock (sourced, never run): one flock on <deploy-dir>/.deploy/lock for
# the whole step, and lock.holder naming who holds it.

LOCK_HELD=0
HOLDER_FILE=""

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
    # shellcheck disable=SC2034 # read by log (lib/log.sh)
    LOG_FILE="$deploy_dir/.deploy/history.log"
    log "started by ${SSH_CLIENT:-local session} (pid $$): $SCRIPT_NAME"
}

# release_lock_holder: forget lock.holder (the flock itself goes with the process).
release_lock_holder() {
    if ((LOCK_HELD)) && [[ -n $HOLDER_FILE ]]; then
        rm -f -- "$HOLDER_FILE" 2>/dev/null
    fi
    return 0
}
