"""actionlint (pinned, built from source by tools/build-actionlint.sh) accepts every workflow.

actionlint also runs shellcheck on `run:` blocks when shellcheck is on PATH. A missing Go
toolchain or a failed build is a test failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from workflow_support import ROOT, WORKFLOW_FILES

BUILD_SCRIPT = ROOT / "tools" / "build-actionlint.sh"


@pytest.fixture(scope="session")
def actionlint() -> Path:
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"could not build actionlint (exit {result.returncode}):\n{result.stderr}",
            pytrace=False,
        )
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file() and os.access(path, os.X_OK), f"not an executable: {path}"
    return path


def test_build_script_prints_the_same_binary_twice(actionlint: Path) -> None:
    again = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert Path(again.stdout.strip()) == actionlint
    version = subprocess.run(
        [str(actionlint), "-version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.splitlines()[0] == "v1.7.12"


def test_shellcheck_is_available_for_actionlint() -> None:
    assert shutil.which("shellcheck"), "shellcheck must be on PATH so actionlint checks run: blocks"


def test_actionlint_accepts_all_workflows(actionlint: Path) -> None:
    result = subprocess.run(
        [str(actionlint), "-no-color", *map(str, WORKFLOW_FILES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"actionlint found problems:\n{result.stdout}{result.stderr}"


def test_actionlint_rejects_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    """Guards against a linter that silently accepts everything."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.event.issue.title }} $UNQUOTED\n"
        "        if: ${{ steps.nope.outputs.x }}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [str(actionlint), "-no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
