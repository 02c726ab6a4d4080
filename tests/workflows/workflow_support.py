"""Helpers shared by the GitHub Actions workflow tests (a plain module, not a conftest)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")])
TOOLCHAIN_VERSIONS = ROOT / "tools" / "toolchain-versions.sh"


def toolchain_versions() -> dict[str, str]:
    """The `NAME=value` pins of tools/toolchain-versions.sh (the one place versions are set)."""
    text = TOOLCHAIN_VERSIONS.read_text(encoding="utf-8")
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", text, flags=re.MULTILINE))


def load_workflow(path: Path) -> dict[str, Any]:
    """Parse a workflow; PyYAML (YAML 1.1) reads the key `on` as True: put it back as "on"."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    if True in data:
        data["on"] = data.pop(True)
    return data


def run_blocks(workflow: dict[str, Any]) -> list[tuple[str, str]]:
    """(job id, script) for every `run:` step."""
    return [
        (job_id, step["run"])
        for job_id, job in workflow.get("jobs", {}).items()
        for step in job.get("steps", [])
        if "run" in step
    ]
