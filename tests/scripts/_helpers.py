"""Shared helpers for the tests of remote/*.sh that need no server (real bash, local files)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REMOTE = REPO / "remote"
SCRIPTS = [
    "backup.sh",
    "deploy.sh",
    "release.sh",
    "restore.sh",
    "healthcheck.sh",
    "install-scripts.sh",
]


def run_script(
    name: str,
    *args: str,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run remote/<name> with bash, capturing stdout and stderr as text."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [str(REMOTE / name), *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


STUB_DOCKER = """#!/usr/bin/env bash
# Test stub of the docker CLI: no compose v2, containers described by STUB_* variables.
echo "docker $*" >>"${STUB_CALLS:-/dev/null}"
case "$1 ${2:-}" in
  "compose version") exit 1;;
esac
if [[ $1 == inspect ]]; then
  case "$3" in
    *State.Running*) echo "${STUB_RUNNING:-true}";;
    *Config.Image*) echo "${STUB_IMAGE:-}";;
    *State.Status*) echo "${STUB_STATE:-running 0 0}";;
  esac
  exit 0
fi
exit 0
"""

STUB_COMPOSE = """#!/usr/bin/env bash
# Test stub of docker-compose v1: `ps -q` prints STUB_CID (if set).
echo "docker-compose $*" >>"${STUB_CALLS:-/dev/null}"
for a; do
  if [[ $a == ps ]]; then
    [[ -n ${STUB_CID:-} ]] && echo "$STUB_CID"
    exit 0
  fi
done
exit 0
"""
