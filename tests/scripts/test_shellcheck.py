"""Every remote script must be shellcheck clean (following `source`d files)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from components import remote_commands

from ._helpers import REMOTE, REPO

SCRIPTS = sorted(REMOTE.glob("*.sh"))


def test_every_script_the_program_installs_is_checked() -> None:
    assert set(remote_commands.SCRIPT_NAMES) <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
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


SOURCED = ("lib.sh", "bluegreen.sh")  # libraries: sourced by the scripts, never run


@pytest.mark.parametrize("script", [p for p in SCRIPTS if p.name in SOURCED], ids=lambda p: p.name)
def test_sourced_library_header(script) -> None:
    assert script.read_text().startswith("# shellcheck shell=bash\n")


@pytest.mark.parametrize(
    "script", [p for p in SCRIPTS if p.name not in SOURCED], ids=lambda p: p.name
)
def test_script_header(script) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert 'source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"' in text
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
