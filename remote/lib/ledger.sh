# shellcheck shell=bash
# One job: the release ledger (sourced, never run): what really served on this server, what
# failed, and what was rolled back from. <deploy-dir>/.deploy/releases.jsonl, one JSON object
# per line, appended under the deploy lock, bounded to the newest LEDGER_MAX_LINES lines:
#
#   {"at": "2026-12-01T10:00:00Z", "event": "served", "image": "REF", "digest": "sha256:...",
#    "by": "WHO", "via": "release", "detail": "...", "backup_id": "ID"}
#
#   event  served            the image answered its health check and took the traffic
#          failed            the image was released and failed its health check (it was
#                            rolled back by the release itself, or not at all)
#          rolled-back-from  an operator (rollback.py, or a failed smoke test) moved away from
#                            the image: it served, but is not "good"
#   via    release | restore | rollback | smoke-test | manual
#   digest the registry digest of the image ("" when Docker does not know it)
#
# rollback.py reads it (ledger.sh --list) to find the last version that really served, and
# marks what it rolls back from (ledger.sh --mark). It is never pruned by a backup or a
# restore: it lives in .deploy/, which no swap touches.

readonly LEDGER_NAME='releases.jsonl'
readonly LEDGER_MAX_LINES=2000
LEDGER_ACTOR="" # --actor of the calling script ("" -> the SSH user)

# ledger_file DEPLOY_DIR
ledger_file() {
    printf '%s/.deploy/%s' "$1" "$LEDGER_NAME"
}

# image_digest REF: the registry digest (sha256:...) of REF: the one it is pinned to, else the
# repo digest Docker recorded when it pulled or pushed it; "" when unknown.
image_digest() {
    local ref=$1 repo digests d
    if [[ $ref == *@sha256:* ]]; then
        printf '%s' "${ref##*@}"
        return 0
    fi
    repo=${ref%:*}
    [[ $repo == */* ]] || repo=$ref
    digests=$(docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" 2>/dev/null </dev/null) || return 0
    while IFS= read -r d; do
        if [[ $d == "$repo@sha256:"* ]]; then
            printf '%s' "${d##*@}"
            return 0
        fi
    done <<<"$digests"
    return 0
}

# ledger_actor: who is acting: --actor, else the SSH user and client address.
ledger_actor() {
    if [[ -n $LEDGER_ACTOR ]]; then
        printf '%s' "$LEDGER_ACTOR"
    else
        local client=${SSH_CLIENT:-local}
        printf '%s@%s' "$(id -un)" "${client%% *}"
    fi
}

# ledger_append DEPLOY_DIR EVENT IMAGE VIA DETAIL [BACKUP_ID]: one line. Never fails the
# caller (a release that served must not be reported as failed because a log line could not
# be written); a write failure is logged as a WARNING.
ledger_append() {
    local dir=$1 event=$2 image=$3 via=$4 detail=$5 backup_id=${6:-} file line digest tmp count
    file=$(ledger_file "$dir")
    digest=$(image_digest "$image")
    local -a extra=()
    [[ -z ${FREEZE_OVERRIDDEN:-} ]] || extra=(freeze_overridden "$FREEZE_OVERRIDDEN") # lib/freeze.sh
    line=$(json_object at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" event "$event" image "$image" \
        digest "$digest" by "$(ledger_actor)" via "$via" detail "${detail:0:500}" backup_id "$backup_id" "${extra[@]}")
    if ! printf '%s\n' "$line" >>"$file" 2>/dev/null; then
        log "WARNING: could not record '$event $image' in $file (disk full?)"
        return 0
    fi
    count=$(wc -l <"$file" 2>/dev/null || printf 0)
    if ((count > LEDGER_MAX_LINES)); then
        if tmp=$(mktemp "$file.XXXXXX" 2>/dev/null); then
            if ! { tail -n "$LEDGER_MAX_LINES" -- "$file" >"$tmp" && mv -f -- "$tmp" "$file"; } 2>/dev/null; then
                rm -f -- "$tmp" 2>/dev/null
            fi
        fi
    fi
    return 0
}

# ledger_served DEPLOY_DIR IMAGE: 0 when IMAGE (by digest when known, else by reference) has a
# "served" line: it answered its health check and took the traffic at least once.
ledger_served() {
    local file digest key
    file=$(ledger_file "$1")
    [[ -f $file && -n $2 ]] || return 1
    digest=$(image_digest "$2")
    if [[ -n $digest ]]; then key="\"digest\": \"$digest\""; else key="\"image\": $(json_escape "$2")"; fi
    grep -F -- "$key" "$file" 2>/dev/null | grep -qF '"event": "served"'
}

# --actor NAME: who acts, recorded in the ledger (release.sh, restore.sh, ledger.sh).
readonly ACTOR_RE='^[A-Za-z0-9][][A-Za-z0-9 ._@+:/#()-]{0,199}$'
# shellcheck disable=SC2034 # appended to the sourcing script's USAGE
readonly LEDGER_USAGE="  --actor NAME            who deploys, recorded in .deploy/$LEDGER_NAME (e.g. 'octocat (run 42)';
                          default: the SSH user and client address)"

# ledger_register_options: add --actor to the caller's OPT_VARS.
ledger_register_options() {
    # shellcheck disable=SC2034 # OPT_VARS is the caller's associative array
    OPT_VARS[--actor]=LEDGER_ACTOR
}

# ledger_validate: check --actor (after parse_opts).
ledger_validate() {
    [[ -z $LEDGER_ACTOR || $LEDGER_ACTOR =~ $ACTOR_RE ]] ||
        die "$E_ARG" "--actor must be 1-200 characters of letters, digits, spaces and ._@+:/#()[]-, starting with a letter or digit, got $(shown "$LEDGER_ACTOR") (e.g. --actor 'octocat (run 42)')"
}
