"""Every workflow validates against the GitHub workflow JSON schema bundled in check-jsonschema.

`--builtin-schema` uses the copy vendored inside the check-jsonschema package: no network.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from workflow_support import WORKFLOW_FILES

CHECK = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_matches_schema(path: Path) -> None:
    result = subprocess.run(
        [*CHECK, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_rejects_an_invalid_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    result = subprocess.run(
        [*CHECK, str(bad)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
