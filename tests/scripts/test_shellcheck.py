"""Every shell script in the repository must be shellcheck clean (following `source`d files).

This is the suite's only shellcheck run (tools/test.sh used to run it once more, serially, before
pytest: ~30 s of the suite's wall time): one test per file, spread over the xdist workers."""

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


def tracked_shell_files() -> list[str]:
    """The repository's shell files outside remote/ (checked above), as git lists them:
    tools/, local/, .ci/run, the workflows' scripts, the build scripts."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "*.sh", ".ci/run"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return sorted(name for name in listed if not name.startswith("remote/"))


OTHER_SHELL_FILES = tracked_shell_files()


def test_the_other_shell_files_are_found() -> None:
    assert {"tools/test.sh", "local/server.sh", ".ci/run"} <= set(OTHER_SHELL_FILES)


@pytest.mark.parametrize("path", OTHER_SHELL_FILES)
def test_other_shell_file_is_shellcheck_clean(path: str) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (apt-get install shellcheck): it is required"
    result = subprocess.run(
        [shellcheck, "-x", path], cwd=REPO, capture_output=True, text=True, check=False
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
