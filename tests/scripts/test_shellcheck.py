"""Every remote script must be shellcheck clean (following `source`d files)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from components import remote_commands

from ._helpers import REMOTE, REPO

SCRIPTS = sorted(REMOTE.rglob("*.sh"))  # remote/lib/*.sh too


def name(script) -> str:
    """The script's path under remote/, e.g. `lib/health.sh`."""
    return str(script.relative_to(REMOTE))


def test_every_script_the_program_installs_is_checked() -> None:
    assert set(remote_commands.SCRIPT_NAMES) <= {name(p) for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=name)
def test_shellcheck_clean(script) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (apt-get install shellcheck): it is required"
    result = subprocess.run(
        [shellcheck, "-x", "--severity=style", str(script.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Libraries: sourced by the scripts, never run (lib.sh loads lib/*.sh, one concern each).
SOURCED = {"lib.sh", "bluegreen.sh"} | {name(p) for p in SCRIPTS if name(p).startswith("lib/")}


@pytest.mark.parametrize("script", [p for p in SCRIPTS if name(p) in SOURCED], ids=name)
def test_sourced_library_header(script) -> None:
    text = script.read_text()
    assert text.startswith("# shellcheck shell=bash\n")
    if name(script).startswith("lib/"):
        # Line 2 says the file's one job (remote/README.md "Files and their one job").
        assert text.splitlines()[1].startswith("# One job: "), name(script)


def test_every_library_is_loaded() -> None:
    """By lib.sh (every script), or by bluegreen.sh (the strategy's own parts)."""
    loaders = (REMOTE / "lib.sh").read_text() + (REMOTE / "bluegreen.sh").read_text()
    for lib in sorted(SOURCED - {"lib.sh", "bluegreen.sh"}):
        assert f'source "$MCP_LIB_DIR/{lib.removeprefix("lib/")}"' in loaders, lib


@pytest.mark.parametrize("script", [p for p in SCRIPTS if name(p) not in SOURCED], ids=name)
def test_script_header(script) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert 'source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"' in text
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"


MAX_LINES = 400  # issue 20: one concern per file; a script past this is doing two jobs


@pytest.mark.parametrize("script", SCRIPTS, ids=name)
def test_no_script_over_400_lines(script) -> None:
    lines = len(script.read_text().splitlines())
    assert lines <= MAX_LINES, f"{name(script)} has {lines} lines: split a concern out of it"
