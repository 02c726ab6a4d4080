"""Fixtures for the tests of remote/*.sh that need no server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ._helpers import STUB_COMPOSE, STUB_DOCKER


@pytest.fixture
def stub_path(tmp_path: Path) -> dict[str, str]:
    """Environment whose PATH starts with stub docker / docker-compose commands."""
    bindir = tmp_path / "stub-bin"
    bindir.mkdir()
    for name, text in (("docker", STUB_DOCKER), ("docker-compose", STUB_COMPOSE)):
        p = bindir / name
        p.write_text(text)
        p.chmod(0o755)
    return {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "STUB_CALLS": str(tmp_path / "stub-calls.log"),
        # The stubs stand for every docker here: never a compose plugin found on this machine.
        "MCP_COMPOSE_PLUGIN_DIRS": "",
    }
