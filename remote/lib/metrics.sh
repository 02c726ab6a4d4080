# shellcheck shell=bash
# One job: deploy metrics (sourced, never run): one JSON line per run of deploy.sh, release.sh
# or restore.sh in <deploy-dir>/.deploy/metrics.jsonl, beside history.log, appended when the
# script exits (the EXIT trap: whatever the outcome) and bounded to the newest
# METRICS_MAX_LINES lines:
#
#   {"at": "<UTC end>", "script": "release", "outcome": "success", "exit_code": 0,
#    "reason": "", "image": "REF", "previous_image": "REF", "backup_id": "ID", "by": "WHO",
#    "backup_s": "1.204", "up_s": "0.912", "healthy_s": "2.310", "pull_s": "", "total_s": "5.101",
#    "freeze_overridden": ""}
#
# Times are seconds with millisecond precision, as strings ("" when the run did not get there).
# backup_s: the backup; pull_s: the pull (deploy.sh); up_s: compose up of the new version;
# healthy_s: from compose up to its first healthy answer; total_s: the whole run.
# outcome: success | rolled-back (10) | rollback-failed (11) | frozen (14) | failed (other);
# reason: the last progress line of a run that did not succeed.

readonly METRICS_NAME='metrics.jsonl'
readonly METRICS_MAX_LINES=1000
METRICS_FILE="" METRICS_PID="" METRICS_START="" METRICS_LAST=""
declare -A METRICS_VALUES=()

# metrics_now: seconds since the epoch, microseconds (bash 5's EPOCHREALTIME).
metrics_now() {
    printf '%s' "${EPOCHREALTIME/,/.}"
}

# metrics_begin DEPLOY_DIR: start timing this run (after the lock is held).
metrics_begin() {
    METRICS_FILE="$1/.deploy/$METRICS_NAME"
    METRICS_PID=$BASHPID
    METRICS_START=$(metrics_now)
    METRICS_LAST=$METRICS_START
}

# metrics_set KEY VALUE: a fact of this run (image, previous_image, backup_id).
metrics_set() {
    METRICS_VALUES[$1]=$2
}

# metrics_phase NAME: NAME_s := seconds since the previous phase ended (or the run began).
metrics_phase() {
    [[ -n $METRICS_START ]] || return 0
    local now
    now=$(metrics_now)
    METRICS_VALUES[$1_s]=$(awk -v a="$METRICS_LAST" -v b="$now" 'BEGIN { printf "%.3f", b - a }')
    METRICS_LAST=$now
}

# metrics_skip_phase: the time since the previous phase belongs to none (e.g. installing files).
metrics_skip_phase() {
    [[ -n $METRICS_START ]] || return 0
    METRICS_LAST=$(metrics_now)
}

# metrics_finish EXIT_CODE: append this run's line (from the EXIT trap; only in the process
# that began it, never in a background job). Never fails the caller.
metrics_finish() {
    local rc=$1 outcome reason="" total line tmp count k
    [[ -n $METRICS_FILE && $BASHPID == "$METRICS_PID" ]] || return 0
    case $rc in
        0) outcome=success ;;
        "$E_ROLLED_BACK") outcome=rolled-back ;;
        "$E_ROLLBACK_FAILED") outcome=rollback-failed ;;
        "$E_FROZEN") outcome=frozen ;;
        *) outcome=failed ;;
    esac
    ((rc == 0)) || reason=${LAST_LOG_LINE:0:500}
    total=$(awk -v a="$METRICS_START" -v b="$(metrics_now)" 'BEGIN { printf "%.3f", b - a }')
    local -a fields=(at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" script "$STEP" outcome "$outcome" "=exit_code" "$rc"
        reason "$reason" by "$(ledger_actor)")
    for k in image previous_image backup_id backup_s pull_s up_s healthy_s; do
        fields+=("$k" "${METRICS_VALUES[$k]:-}")
    done
    fields+=(total_s "$total" freeze_overridden "$FREEZE_OVERRIDDEN")
    line=$(json_object "${fields[@]}") || return 0
    printf '%s\n' "$line" >>"$METRICS_FILE" 2>/dev/null || return 0
    count=$(wc -l <"$METRICS_FILE" 2>/dev/null || printf 0)
    if ((count > METRICS_MAX_LINES)) && tmp=$(mktemp "$METRICS_FILE.XXXXXX" 2>/dev/null); then
        { tail -n "$METRICS_MAX_LINES" -- "$METRICS_FILE" >"$tmp" && mv -f -- "$tmp" "$METRICS_FILE"; } 2>/dev/null ||
            rm -f -- "$tmp" 2>/dev/null
    fi
    return 0
}
