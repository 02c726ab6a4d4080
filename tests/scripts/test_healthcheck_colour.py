"""healthcheck.sh on a blue-green server: the service runs in the live colour's compose
project (<project>-<colour>, from <deploy-dir>/.deploy/live-colour), not in <project>; the
check must look there, or it takes "no container" for a dead service and gives up after the
first failed attempt."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._helpers import run_script

COMPOSE = "docker-compose.production.yml"

# docker / docker-compose stubs: the service container exists only in project $STUB_PROJECT.
STUB_DOCKER = """#!/usr/bin/env bash
echo "docker $*" >>"$STUB_CALLS"
case "$1 ${2:-}" in "compose version") exit 1;; esac
if [[ $1 == ps ]]; then
  [[ " $* " == *" label=com.docker.compose.project=$STUB_PROJECT "* ]] && echo cid-live
  exit 0
fi
if [[ $1 == inspect ]]; then echo "running 0 0"; fi
exit 0
"""
STUB_COMPOSE = """#!/usr/bin/env bash
echo "docker-compose $*" >>"$STUB_CALLS"
if [[ " $* " == *" ps "* && " $* " == *" -p $STUB_PROJECT "* ]]; then echo cid-live; fi
exit 0
"""


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    """503 for the first request (the app still starting), 200 afterwards."""

    def do_GET(self) -> None:
        self.server.hits += 1  # type: ignore[attr-defined]
        ok = self.server.hits > 1  # type: ignore[attr-defined]
        self.send_response(200 if ok else 503)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}' if ok else b"starting")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_url() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _FlakyHandler)
    server.hits = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()


def _env(tmp_path: Path, project: str) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(parents=True)
    for name, text in (("docker", STUB_DOCKER), ("docker-compose", STUB_COMPOSE)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    return {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "STUB_CALLS": str(tmp_path / "calls.log"),
        "STUB_PROJECT": project,
        "MCP_COMPOSE_PLUGIN_DIRS": "",  # the stubs stand for every docker here
    }


@pytest.mark.parametrize("colour", ["blue", "green"])
def test_healthcheck_waits_for_the_live_colour(tmp_path: Path, flaky_url: str, colour) -> None:
    deploy = tmp_path / "mcp"
    (deploy / ".deploy").mkdir(parents=True)
    (deploy / COMPOSE).write_text("services: {}\n")
    (deploy / ".deploy" / "live-colour").write_text(f"{colour}\n")
    env = _env(tmp_path, f"mcp-{colour}")
    result = run_script(
        "healthcheck.sh",
        *("--url", flaky_url, "--attempts", "3", "--timeout", "20"),
        *("--deploy-dir", str(deploy), "--compose-file", COMPOSE, "--service", "mcp-api-prod"),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "no container is running" not in result.stderr
    assert "attempt 2/3" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("[health] done:")


def test_healthcheck_without_colour_uses_the_project(tmp_path: Path, flaky_url: str) -> None:
    """recreate (no live-colour file): the project itself, as before; a container that is
    gone in that project still stops the check at once."""
    deploy = tmp_path / "mcp"
    deploy.mkdir()
    (deploy / COMPOSE).write_text("services: {}\n")
    argv = [
        *("--url", flaky_url, "--attempts", "3", "--timeout", "20"),
        *("--deploy-dir", str(deploy), "--compose-file", COMPOSE, "--service", "mcp-api-prod"),
    ]
    result = run_script("healthcheck.sh", *argv, env=_env(tmp_path, "mcp"))
    assert result.returncode == 0, result.stderr
    (deploy / ".deploy").mkdir()
    (deploy / ".deploy" / "live-colour").write_text("blue\n")  # but nothing runs in mcp-blue
    argv[1] = "http://127.0.0.1:9/"
    result = run_script("healthcheck.sh", *argv, env=_env(tmp_path / "x", "mcp"))
    assert result.returncode == 13
    assert "no container is running for service mcp-api-prod" in result.stderr
