# shellcheck shell=bash
# One job: the deploy freeze (sourced, never run): <deploy-dir>/.deploy/freeze, written by
# freeze.sh --acquire (oncall.py lock acquire), holds who froze deploys, when and why, as
# key=value lines (by=, at=, reason=). deploy.sh, release.sh and restore.sh call freeze_check
# under the deploy lock: while the file exists they stop with E_FROZEN naming who and why,
# unless given --override-freeze (an emergency rollback), which is logged and recorded in the
# release ledger (field freeze_overridden).

readonly FREEZE_NAME='freeze'
OVERRIDE_FREEZE=0     # --override-freeze
# shellcheck disable=SC2034 # read by lib/ledger.sh and lib/metrics.sh
FREEZE_OVERRIDDEN=""  # set by freeze_check when this run passed a freeze: what it passed (ledger)
# shellcheck disable=SC2034 # appended to the sourcing script's USAGE
readonly FREEZE_USAGE="  --override-freeze       run even while deploys are frozen (.deploy/$FREEZE_NAME, oncall.py lock
                          acquire): an emergency rollback; logged and recorded in the release ledger"

# freeze_file DEPLOY_DIR
freeze_file() {
    printf '%s/.deploy/%s' "$1" "$FREEZE_NAME"
}

# freeze_register_options: add --override-freeze to the caller's FLAG_VARS.
freeze_register_options() {
    # shellcheck disable=SC2034 # FLAG_VARS is the caller's associative array
    FLAG_VARS["--override-freeze"]=OVERRIDE_FREEZE
}

# freeze_value DEPLOY_DIR KEY: one field of the freeze record ("" when unset).
freeze_value() {
    local file
    file=$(freeze_file "$1")
    [[ -f $file ]] || return 0
    sed -n "s/^$2=//p" -- "$file" 2>/dev/null | head -n 1
}

# freeze_describe DEPLOY_DIR: "frozen by WHO since AT: REASON" ("" when not frozen).
freeze_describe() {
    [[ -f $(freeze_file "$1") ]] || return 0
    printf 'frozen by %s since %s: %s' "$(freeze_value "$1" by)" "$(freeze_value "$1" at)" "$(freeze_value "$1" reason)"
}

# freeze_check DEPLOY_DIR: return when deploys are not frozen, or when --override-freeze was
# given (logged; FREEZE_OVERRIDDEN says what was passed); else exit E_FROZEN naming who and why.
freeze_check() {
    local what
    what=$(freeze_describe "$1")
    [[ -n $what ]] || return 0
    if ((OVERRIDE_FREEZE)); then
        # shellcheck disable=SC2034 # read by lib/ledger.sh and lib/metrics.sh
        FREEZE_OVERRIDDEN=$what
        log "FREEZE OVERRIDDEN (--override-freeze, an emergency): deploys are $what"
        return 0
    fi
    die "$E_FROZEN" "deploys are FROZEN on this server: $what. Nothing was touched. Wait until it is lifted (python oncall.py --stack STACK lock release, or $(freeze_file "$1") removed), or, for an emergency rollback, pass --override-freeze (python rollback.py ... --override-freeze)."
}
