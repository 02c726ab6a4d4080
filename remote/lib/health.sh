# shellcheck shell=bash
# One job: the health check (sourced, never run): curl with retries and a deadline, stopping
# early when the service container is gone, has exited or is crash-looping.

# health_check URL ATTEMPTS TIMEOUT [COMPOSE_FILE]: up to ATTEMPTS tries of curl within a
# TIMEOUT-second deadline. With COMPOSE_FILE, a service container that has exited stops the
# check early. Healthy: prints the body (at most 2000 characters) on stdout, returns 0.
# Unhealthy: prints the reason on stdout, returns 1. Progress goes to the log (stderr).
#   if body=$(health_check ...); then ...; else reason=$body; fi
health_check() {
    local url=$1 attempts=$2 timeout=$3 file=${4:-}
    local deadline now remaining max_time interval try=0 errf state status code restarts
    local body reason="no attempt made"
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
        if body=$(curl -fsS --max-time "$max_time" "$url" 2>"$errf" </dev/null); then
            rm -f -- "$errf"
            log "healthy ($url, attempt $try/$attempts): ${body:0:200}"
            printf '%s' "${body:0:2000}"
            return 0
        fi
        reason=$(tr '\n' ' ' <"$errf")
        reason=${reason% }
        [[ -n $reason ]] || reason="curl failed"
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
