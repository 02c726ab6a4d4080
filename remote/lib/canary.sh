# shellcheck shell=bash
# One job: the canary release (sourced by bluegreen.sh, never run). The new colour, healthy on
# its own port, takes a growing share of the real traffic in steps (--canary-steps, default
# 10,50,100), each held --canary-hold-seconds while a gate watches what the proxy sees for it
# (its access log: the share of answers that are 5xx or no answer, and the p95 latency). A
# failed gate sends all traffic back to the old colour at once and the release fails (exit 10).
# Every weight change goes through lib/proxy.sh (intent first; a kill leaves a split that the
# next run's bg_reconcile sends back to the old colour). See remote/README.md "Strategies".

CANARY_STEPS="" CANARY_HOLD_SECONDS="" CANARY_MAX_ERROR_PERCENT="" CANARY_MAX_LATENCY_MS=""
# shellcheck disable=SC2034 # registered by bg_register_options
CANARY_OPT_VARS=(
    --canary-steps CANARY_STEPS --canary-hold-seconds CANARY_HOLD_SECONDS
    --canary-max-error-percent CANARY_MAX_ERROR_PERCENT --canary-max-latency-ms CANARY_MAX_LATENCY_MS
)
# shellcheck disable=SC2034 # appended to BG_USAGE
readonly CANARY_USAGE="  --canary-steps P,P,..   canary: the new colour's share of requests at each step, rising,
                          the last 100 (default 10,50,100)
  --canary-hold-seconds N canary: how long each step is held and watched (default 30)
  --canary-max-error-percent N
                          canary: the gate: at most N% of the new colour's requests may fail
                          (5xx or no answer) (default 1)
  --canary-max-latency-ms N
                          canary: the gate: the new colour's p95 latency at most N ms
                          (default 1000)"
CANARY_MIN_EARLY=10 # requests seen before a step may be aborted early (else: at its end)
CANARY_DONE=""      # the steps passed, for the result line ("10% 50% 100%")

# canary_validate: check the canary options (after parse_opts); defaults applied.
canary_validate() {
    if [[ $STRATEGY != canary ]]; then
        [[ -z $CANARY_STEPS$CANARY_HOLD_SECONDS$CANARY_MAX_ERROR_PERCENT$CANARY_MAX_LATENCY_MS ]] ||
            die "$E_ARG" "--canary-* options go with --strategy canary only (e.g. --strategy canary --canary-steps 10,50,100)"
        return 0
    fi
    : "${CANARY_STEPS:=10,50,100}" "${CANARY_HOLD_SECONDS:=30}" "${CANARY_MAX_ERROR_PERCENT:=1}" "${CANARY_MAX_LATENCY_MS:=1000}"
    local step prev=0 steps=()
    [[ $CANARY_STEPS =~ ^[0-9]{1,3}(,[0-9]{1,3}){0,9}$ ]] ||
        die "$E_ARG" "--canary-steps must be up to 10 percentages separated by commas, got $(shown "$CANARY_STEPS") (e.g. --canary-steps 10,50,100)"
    IFS=, read -r -a steps <<<"$CANARY_STEPS"
    for step in "${steps[@]}"; do
        step=$((10#$step))
        ((step > prev && step <= 100)) ||
            die "$E_ARG" "--canary-steps must rise from 1 to 100, got $(shown "$CANARY_STEPS") (e.g. --canary-steps 10,50,100)"
        prev=$step
    done
    ((prev == 100)) || die "$E_ARG" "--canary-steps must end with 100, got $(shown "$CANARY_STEPS") (e.g. --canary-steps 10,50,100)"
    check_nonneg_int --canary-hold-seconds "$CANARY_HOLD_SECONDS"
    [[ $CANARY_MAX_ERROR_PERCENT =~ ^(0|[1-9][0-9]?|100)$ ]] ||
        die "$E_ARG" "--canary-max-error-percent must be a whole percentage 0-100, got $(shown "$CANARY_MAX_ERROR_PERCENT") (e.g. --canary-max-error-percent 1)"
    check_posint --canary-max-latency-ms "$CANARY_MAX_LATENCY_MS"
}

# canary_log_size: the access log's size now (where a step's lines start).
canary_log_size() {
    stat -c %s -- "$BG_PROXY_DIR/access.log" 2>/dev/null || printf 0
}

# canary_stats PORT OFFSET: "REQUESTS ERRORS P95_MS" of the access log lines from byte OFFSET
# on that 127.0.0.1:PORT answered (an error: status 5xx, or 0 when nothing answered). A log
# rolled since OFFSET is read from its start.
canary_stats() {
    local port=$1 offset=$2 file="$BG_PROXY_DIR/access.log"
    (($(canary_log_size) >= offset)) || offset=0
    { tail -c +$((offset + 1)) -- "$file" 2>/dev/null || true; } |
        awk -v up="\"upstream\":\"127.0.0.1:$port\"" '
            index($0, up) {
                s = 0; d = 0
                if (match($0, /"status":[0-9]+/)) s = substr($0, RSTART + 9, RLENGTH - 9) + 0
                if (match($0, /"duration":[0-9.eE+-]+/)) d = substr($0, RSTART + 11, RLENGTH - 11) * 1000
                printf "%.3f %d\n", d, s
            }' | sort -n | awk '
            { n++; d[n] = $1; if ($2 == 0 || $2 >= 500) e++ }
            END { i = int((n * 95 + 99) / 100); printf "%d %d %d\n", n, e, (n ? d[i] + 0.5 : 0) }'
}

# canary_verdict REQUESTS ERRORS P95_MS: fails (status 1), printing why, when the gate is not met.
canary_verdict() {
    local n=$1 e=$2 p95=$3
    if ((n > 0 && e * 100 > CANARY_MAX_ERROR_PERCENT * n)); then
        printf '%s of %s requests to the new colour failed (%s%% > --canary-max-error-percent %s)' \
            "$e" "$n" "$(awk -v e="$e" -v n="$n" 'BEGIN { printf "%.1f", e * 100 / n }')" "$CANARY_MAX_ERROR_PERCENT"
        return 1
    fi
    if ((p95 > CANARY_MAX_LATENCY_MS)); then
        printf 'its p95 latency is %s ms (> --canary-max-latency-ms %s) over %s requests' "$p95" "$CANARY_MAX_LATENCY_MS" "$n"
        return 1
    fi
}

# canary_hold NEW LABEL: hold the current step --canary-hold-seconds, checking the gate every
# second (an early abort once CANARY_MIN_EARLY requests reached NEW). Fails, with CANARY_WHY,
# when the gate is not met.
canary_hold() {
    local new=$1 label=$2 port=${BG_PORT[$1]} offset start now n e p95 why next_note
    offset=$(canary_log_size) start=$(date +%s) next_note=$((start + 10))
    while :; do
        now=$(date +%s)
        read -r n e p95 < <(canary_stats "$port" "$offset")
        if ! why=$(canary_verdict "$n" "$e" "$p95") && { ((n >= CANARY_MIN_EARLY)) || ((now - start >= CANARY_HOLD_SECONDS)); }; then
            CANARY_WHY="$why"
            return 1
        fi
        ((now - start < CANARY_HOLD_SECONDS)) || break
        if ((now >= next_note)); then
            log "canary $label: $((now - start))s of ${CANARY_HOLD_SECONDS}s, colour $new so far: $n requests, $e failed, p95 $p95 ms"
            next_note=$((now + 10))
        fi
        sleep 1
    done
    CANARY_WHY="$n requests, $e failed, p95 $p95 ms"
    ((n > 0)) || CANARY_WHY="no request reached it during the hold (nothing to judge: passed)"
}

# canary_abort LIVE NEW REASON: all traffic back to LIVE (intent first), then fail the release
# (bg_release_failed: exit 10); exit 11 when the proxy cannot be pointed back.
canary_abort() {
    local live=$1 new=$2 reason=$3
    log "canary ABORTED: $reason; sending all traffic back to colour $live"
    # shellcheck disable=SC2034 # read by bg_release_failed
    BG_MOVED=1
    bg_record_intent "$live" ||
        log "WARNING: could not write $BG_LIVE_FILE.next (disk full?); pointing the proxy back at colour $live anyway (the next run reconciles from the proxy)"
    if ! bg_point_back "$live"; then
        log "ACT NOW: the canary of $IMAGE failed ($reason) AND pointing the proxy back at colour $live failed: $BG_ERROR. Check: docker logs $BG_PROXY_NAME; $BG_PROXY_DIR/caddy.json"
        exit "$E_ROLLBACK_FAILED"
    fi
    bg_release_failed "$live" "$new" "$reason"
}

# canary_run LIVE NEW: the steps, from LIVE to NEW. Returns once NEW takes all traffic and
# passed every gate (the caller records NEW as live); exits through canary_abort otherwise.
canary_run() {
    local live=$1 new=$2 steps=() i step label status rest
    IFS=, read -r -a steps <<<"$CANARY_STEPS"
    for i in "${!steps[@]}"; do
        step=$((10#${steps[i]}))
        label="step $((i + 1))/${#steps[@]} (${step}%)"
        rest=" (colour $live keeps the rest)"
        ((step < 100)) || rest=" (colour $live stays up, idle, until this step passed)"
        log "canary $label: ${step}% of requests to colour $new ($IMAGE)$rest, held ${CANARY_HOLD_SECONDS}s; from t=$(date +%s.%3N)"
        if ((step < 100)); then
            bg_split "$new" "$live" "$step" && status=0 || status=$?
        else
            bg_switch "$new" && status=0 || status=$?
        fi
        if ((status == 2 && i == 0)); then
            bg_release_failed "$live" "$new" "canary stopped before $label: $BG_ERROR"
        elif ((status != 0)); then
            canary_abort "$live" "$new" "canary stopped at $label: the switch failed: $BG_ERROR"
        fi
        if ! canary_hold "$new" "$label"; then
            log "canary $label FAILED at t=$(date +%s.%3N): $CANARY_WHY"
            canary_abort "$live" "$new" "canary stopped at $label: $CANARY_WHY${CANARY_DONE:+ (passed: $CANARY_DONE)}"
        fi
        log "canary $label passed at t=$(date +%s.%3N): colour $new: $CANARY_WHY"
        CANARY_DONE+="${CANARY_DONE:+ }${step}%"
    done
}
