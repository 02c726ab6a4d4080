#!/usr/bin/env bash
# retry-on-stack-lock.sh COMMAND [ARGS...]
#
# Runs COMMAND (a `pulumi up`, or `python rollback.py`, which runs one); when it fails only
# because another update holds the Pulumi stack lock, waits and runs it again, so that a deploy
# and a rollback never overlap and neither is dropped: whichever starts second waits for the
# first. Any other failure is returned at once. Gives up after MCP_LOCK_WAIT_SECONDS (default
# 1200) with the command's own exit code.
#
# The messages matched are the Pulumi CLI's own: Pulumi Cloud answers "[409] Conflict: Another
# update is currently in progress", a self-managed backend "the stack is currently locked".
set -uo pipefail

(($#)) || {
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
}
wait_seconds=${MCP_LOCK_WAIT_SECONDS:-1200}
interval=${MCP_LOCK_RETRY_SECONDS:-30}
output=$(mktemp)
trap 'rm -f -- "$output"' EXIT
deadline=$((SECONDS + wait_seconds))
attempt=1
while :; do
    "$@" 2>&1 | tee "$output"
    status=${PIPESTATUS[0]}
    if ((status == 0)); then
        exit 0
    fi
    if ! grep -qiE 'another update is currently in progress|the stack is currently locked' "$output"; then
        exit "$status"
    fi
    if ((SECONDS + interval >= deadline)); then
        echo "::error::the Pulumi stack is still locked by another update after ${wait_seconds}s; giving up (attempt ${attempt})"
        exit "$status"
    fi
    echo "::notice::the Pulumi stack is locked by another update (a deploy or a rollback); waiting ${interval}s, then trying again (attempt ${attempt})"
    sleep "$interval"
    attempt=$((attempt + 1))
done
