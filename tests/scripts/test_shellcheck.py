"""Every remote script must be shellcheck clean (following `source`d files)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ._helpers import REMOTE, REPO

SCRIPTS = sorted(REMOTE.glob("*.sh"))


def test_scripts_exist() -> None:
    names = {p.name for p in SCRIPTS}
    assert {
        "lib.sh",
        "backup.sh",
        "deploy.sh",
        "release.sh",
        "restore.sh",
        "healthcheck.sh",
    } <= names


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


@pytest.mark.parametrize("script", [p for p in SCRIPTS if p.name != "lib.sh"], ids=lambda p: p.name)
def test_script_header(script) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert 'source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"' in text
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
