#!/usr/bin/env bash
# The deploy freeze: acquire it (deploy.sh, release.sh and restore.sh then refuse to run,
# exit 14, naming who froze deploys and why), release it, or show it.
set -euo pipefail
umask 077
STEP=freeze
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

USAGE="Usage: $SCRIPT_NAME --deploy-dir DIR --acquire --message TEXT [--actor NAME] [--lock-timeout SECONDS]
       $SCRIPT_NAME --deploy-dir DIR --release [--actor NAME] [--lock-timeout SECONDS]
       $SCRIPT_NAME --deploy-dir DIR --status

--acquire writes DIR/.deploy/$FREEZE_NAME (who, when, why) under the deploy lock (it waits
for a running deploy step to finish); from then on deploy.sh, release.sh and restore.sh exit
14 naming it, unless given --override-freeze (an emergency rollback). A freeze already held
is refused (exit 4), naming its holder. --release removes it (nothing to release: exit 0).
Both are logged in DIR/.deploy/history.log. --status only reads.

  --deploy-dir DIR        absolute, existing deploy directory (e.g. /opt/mcp)
  --message TEXT          why, one line of at most 500 characters (e.g. 'release freeze until Monday')
  --lock-timeout SECONDS  wait this long for a running deploy step (default 120)
$LEDGER_USAGE

stdout: {\"frozen\": true, \"by\": \"WHO\", \"at\": \"<UTC>\", \"reason\": \"TEXT\"} (after the change;
{\"frozen\": false, ...} with empty fields when deploys are not frozen)
--check: validate the arguments only and exit 0 or 2, touching nothing; stdout {\"valid\": true}
Exit codes: 2 bad argument, 3 missing dir, 4 locked (or already frozen)."

DEPLOY_DIR="" MESSAGE="" LOCK_TIMEOUT=120
declare -A OPT_VARS=([--deploy-dir]=DEPLOY_DIR [--message]=MESSAGE [--lock-timeout]=LOCK_TIMEOUT)
declare -A FLAG_VARS=([--acquire]=ACQUIRE [--release]=RELEASE [--status]=STATUS)
ACQUIRE=0 RELEASE=0 STATUS=0
ledger_register_options
parse_opts "$@"

require --deploy-dir "$DEPLOY_DIR" /opt/mcp
check_dir --deploy-dir "$DEPLOY_DIR" /opt/mcp
DEPLOY_DIR=${DEPLOY_DIR%/}
[[ -n $DEPLOY_DIR ]] || die "$E_ARG" "--deploy-dir must not be /"
check_nonneg_int --lock-timeout "$LOCK_TIMEOUT"
ledger_validate
((ACQUIRE + RELEASE + STATUS == 1)) ||
    die "$E_ARG" "give exactly one of --acquire, --release, --status (e.g. --deploy-dir /opt/mcp --status)"
if ((ACQUIRE)); then
    require --message "$MESSAGE" "'release freeze until Monday'"
    [[ ${#MESSAGE} -le 500 && $MESSAGE != *$'\n'* ]] ||
        die "$E_ARG" "--message must be one line of at most 500 characters (e.g. --message 'incident 42: no deploys')"
else
    [[ -z $MESSAGE ]] || die "$E_ARG" "--message goes with --acquire only"
fi
check_only_done

# print_status: the freeze as one JSON line.
print_status() {
    local frozen=false
    [[ ! -f $(freeze_file "$DEPLOY_DIR") ]] || frozen=true
    json_object "=frozen" "$frozen" by "$(freeze_value "$DEPLOY_DIR" by)" at "$(freeze_value "$DEPLOY_DIR" at)" \
        reason "$(freeze_value "$DEPLOY_DIR" reason)"
}

if ((STATUS)); then
    print_status
    exit 0
fi
setup_traps
acquire_lock "$DEPLOY_DIR" "$LOCK_TIMEOUT"
file=$(freeze_file "$DEPLOY_DIR")
if ((ACQUIRE)); then
    [[ ! -f $file ]] || die "$E_LOCK" "deploys are already $(freeze_describe "$DEPLOY_DIR"); release that freeze first"
    tmp=$(mktemp "$file.XXXXXX") || die "$E_MISSING" "cannot write in $DEPLOY_DIR/.deploy"
    remove_on_exit "$tmp"
    printf 'by=%s\nat=%s\nreason=%s\n' "$(ledger_actor)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$MESSAGE" >"$tmp"
    chmod 644 -- "$tmp"
    mv -f -- "$tmp" "$file"
    log "deploys FROZEN: $(freeze_describe "$DEPLOY_DIR")"
else
    if [[ -f $file ]]; then
        log "freeze released by $(ledger_actor) (it was $(freeze_describe "$DEPLOY_DIR"))"
        rm -f -- "$file"
    else
        log "deploys were not frozen: nothing to release"
    fi
fi
print_status
