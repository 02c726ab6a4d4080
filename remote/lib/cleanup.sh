# shellcheck shell=bash
# One job: temp files and signals (sourced, never run): what is removed on exit, and how a
# dropped SSH session, Ctrl-C or SIGTERM is handled.

TMP_PATHS=() # removed by the EXIT trap (remove_on_exit)

# cleanup: the EXIT trap: unpause the service if a backup paused it (lib/consistency.sh),
# remove the temp files, record the run's metrics (lib/metrics.sh), forget the lock holder
# (lib/lock.sh).
cleanup() {
    local rc=$? p
    unpause_service
    for p in "${TMP_PATHS[@]}"; do
        [[ -n $p && -e $p ]] && rm -rf -- "$p" 2>/dev/null
    done
    metrics_finish "$rc"
    release_lock_holder
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

# remove_on_exit PATH: delete PATH (file or dir) when the script exits, however it exits.
# Call it in the script's own shell, not in $(...) (the registration would be lost):
#   tmp=$(mktemp -d "$dir/x.XXXXXX") || die ...; remove_on_exit "$tmp"
remove_on_exit() {
    TMP_PATHS+=("$1")
}
