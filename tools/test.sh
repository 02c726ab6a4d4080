#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian 12 machine, then runs all of it:
# unit tests on Pulumi's mocks, shell-script tests, workflow validation, integration tests
# against a real local deploy target (sshd + Docker + registry on 127.0.0.1), and end-to-end
# tests that run `pulumi preview` / `pulumi up` / `rollback.py` through the real Pulumi engine
# (a `pulumi` on PATH, or the toolchain built from source once by tools/build-pulumi.sh).
#
#   bash tools/test.sh            # everything
#   bash tools/test.sh -k backup  # extra arguments go to pytest
#
# Needs root (it installs Debian packages and starts dockerd/sshd). Nothing is skipped: a part
# of the suite that cannot run makes the run fail.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

say() { printf '[test] %s\n' "$*" >&2; }
die() { printf '[test] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root: the integration tests install Debian packages and start dockerd and sshd"

say "installing system packages (Debian)"
bash local/server.sh install

python_bin=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv with $python_bin"
  "$python_bin" -m venv .venv
fi
say "installing pinned Python dependencies into .venv"
# pip itself at the version CI pins (PIP_VERSION): the Pulumi language host runs
# `python -m pip --version` and `python -m pip list` before every program run, and pip 26.3
# answers both in about half the time of the pip a fresh venv starts with (issue 21).
# shellcheck source=tools/toolchain-versions.sh
source tools/toolchain-versions.sh
.venv/bin/python -m pip install --quiet --disable-pip-version-check "pip==${PIP_VERSION}"
# playwright drives Debian's chromium (local/server.sh install): never download a browser.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

say "the Pulumi CLI and its command, docker and github plugins for the end-to-end tests (tools/pulumi-env.sh; cold build ~15-20 min on 2 cores, seconds when cached)"
eval "$(bash tools/pulumi-env.sh)"
pulumi version >/dev/null || die "the Pulumi CLI does not run: see the toolchain output above"
say "using $(command -v pulumi) $(pulumi version)"

say "the workflow runner for tests/workflows/act: act and pulumi/actions (tools/build-act.sh, from the Go module proxy and npm; cold ~5 min, seconds when cached)"
bash tools/build-act.sh >/dev/null

say "starting the local deploy target (local/server.sh up)"
bash local/server.sh up

say "lint: ruff check and ruff format --check (shellcheck runs inside the suite, one test per shell file: tests/scripts/test_shellcheck.py)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

# Three workers (pytest-xdist): the tests that use the local server run in groups, each in order
# in one worker, three groups at a time (tests/conftest.py: the workflows under act, then each
# integration and end-to-end module); the others come last, on all of them. Three on this 2-core
# machine because much of a server test is waiting (on sshd, dockerd, a health deadline): the
# suite took 19 min 13 s with three, 22 min 11 s with two (issue 21; the CPU was ~94% busy).
workers=${MCP_TEST_WORKERS:-3}
say "running pytest ($workers workers; the server-bound tests in groups, each in order)"
# --durations: the slowest tests, where the suite's time goes (issue 21).
.venv/bin/python -m pytest tests -p no:cacheprovider -n "$workers" --dist loadgroup --durations=25 "$@"
