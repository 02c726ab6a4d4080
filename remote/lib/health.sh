# shellcheck shell=bash
# One job: the health check (sourced, never run): curl with retries and a deadline, stopping
# early when the service container is gone, has exited or is crash-looping.

# Option of every script that health-checks (release.sh, restore.sh, healthcheck.sh): the HTTP
# status that means healthy. Redirects are never followed: a health route that answers 302 to
# a login page is not healthy (the code is 302, not 200).
HEALTH_STATUS=200
# shellcheck disable=SC2034 # appended to the sourcing script's USAGE
readonly HEALTH_USAGE="  --health-status CODE    the HTTP status that means healthy (default 200); redirects are
                          not followed: a 302 to a login page is unhealthy"

# health_register_options: add --health-status to the caller's OPT_VARS.
health_register_options() {
    # shellcheck disable=SC2034 # OPT_VARS is the caller's associative array
    OPT_VARS["--health-status"]=HEALTH_STATUS
}

# health_validate: --health-status is an HTTP status code (100-599).
health_validate() {
    [[ $HEALTH_STATUS =~ ^[1-5][0-9][0-9]$ ]] ||
        die "$E_ARG" "--health-status must be an HTTP status code 100-599, got $(shown "$HEALTH_STATUS") (e.g. --health-status 200)"
}

# health_check URL ATTEMPTS TIMEOUT [COMPOSE_FILE]: up to ATTEMPTS tries of curl within a
# TIMEOUT-second deadline. Healthy: URL answers exactly HEALTH_STATUS (redirects are not
# followed). With COMPOSE_FILE, a service container that has exited stops the
# check early. Healthy: prints the body (at most 2000 characters) on stdout, returns 0.
# Unhealthy: prints the reason on stdout, returns 1. Progress goes to the log (stderr).
#   if body=$(health_check ...); then ...; else reason=$body; fi
health_check() {
    local url=$1 attempts=$2 timeout=$3 file=${4:-}
    local deadline now remaining max_time interval try=0 errf state status code restarts
    local out http_code location body reason="no attempt made"
    deadline=$(($(date +%s) + timeout))
    interval=$((timeout / attempts))
    ((interval >= 1)) || interval=1
    # Removed here, not by the EXIT trap: this runs in $(...), where a registration is lost.
    errf=$(mktemp "${TMPDIR:-/tmp}/mcp-health.XXXXXX") || {
        printf '%s' "$reason"
        return 1
    }
    while ((try < attempts)); do
        now=$(date +%s)
        remaining=$((deadline - now))
        if ((remaining <= 0)); then
            reason="deadline of ${timeout}s reached after $try attempt(s); last error: $reason"
            break
        fi
        try=$((try + 1))
        max_time=$((remaining < 5 ? remaining : 5))
        # No -f and no -L: the status is checked here, and a redirect is an answer, not health.
        if out=$(curl -sS --max-time "$max_time" -w '\n%{http_code} %{redirect_url}' "$url" 2>"$errf" </dev/null); then
            body=${out%$'\n'*}
            while [[ $body == *$'\n' ]]; do body=${body%$'\n'}; done
            read -r http_code location <<<"${out##*$'\n'}"
            if [[ $http_code == "$HEALTH_STATUS" ]]; then
                rm -f -- "$errf"
                log "healthy ($url, attempt $try/$attempts, HTTP $http_code): ${body:0:200}"
                printf '%s' "${body:0:2000}"
                return 0
            fi
            if [[ $http_code == 3[0-9][0-9] ]]; then
                reason="the requested URL answered HTTP $http_code, a redirect${location:+ to $location} (not followed; healthy is HTTP $HEALTH_STATUS: point --health-url at the health route itself)"
            elif [[ $http_code =~ ^[45] ]]; then
                reason="the requested URL returned error: $http_code (healthy is HTTP $HEALTH_STATUS)"
            else
                reason="the requested URL answered HTTP $http_code (healthy is HTTP $HEALTH_STATUS)"
            fi
        else
            reason=$(tr '\n' ' ' <"$errf")
            reason=${reason% }
            [[ -n $reason ]] || reason="curl failed"
        fi
        log "not healthy yet ($url, attempt $try/$attempts): $reason"
        if [[ -n $file ]]; then
            state=$(container_state "$file")
            read -r status code restarts <<<"$state"
            case $status in
                none)
                    reason="no container is running for service $SERVICE"
                    log "$reason"
                    break
                    ;;
                exited | dead)
                    reason="container of $SERVICE exited with code $code"
                    log "$reason; not waiting any longer"
                    break
                    ;;
                restarting)
                    reason="container of $SERVICE is crash-looping (restarted ${restarts}x, last exit code $code)"
                    log "$reason; not waiting any longer"
                    break
                    ;;
            esac
        fi
        if ((try >= attempts)); then
            reason="$attempts attempt(s) failed; last error: $reason"
            break
        fi
        now=$(date +%s)
        remaining=$((deadline - now))
        if ((remaining <= 0)); then
            reason="deadline of ${timeout}s reached after $try attempt(s); last error: $reason"
            break
        fi
        sleep "$((remaining < interval ? remaining : interval))"
    done
    rm -f -- "$errf"
    if [[ -n $file ]]; then
        show_service_logs "$file"
    fi
    printf '%s' "$reason"
    return 1
}
