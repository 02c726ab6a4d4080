"""Issue 16 item 10: healthy means the HTTP status the settings name (`--health-status`,
default 200), never "curl -f succeeded": a health route that answers 302 to a login page is
not healthy, and redirects are not followed.

A loopback HTTP server in the test answers what each test asks; the scripts' curl is real.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._helpers import run_script

COMPOSE = "docker-compose.production.yml"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = self.server
        server.paths.append(self.path)  # type: ignore[attr-defined]
        if self.path == "/login":  # where the redirect points: it would answer 200
            status, body, headers = 200, b"<html>login</html>", {}
        else:
            status = server.status  # type: ignore[attr-defined]
            body = b'{"status": "ok"}' if status < 300 else b"see elsewhere"
            headers = {"Location": "/login"} if 300 <= status < 400 else {}
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 204:
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def app() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    server.status = 200  # type: ignore[attr-defined]
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def url(server: http.server.HTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/api/v1/health"


def healthcheck(server: http.server.HTTPServer, *extra: str):
    return run_script(
        "healthcheck.sh", "--url", url(server), "--attempts", "2", "--timeout", "4", *extra
    )


def test_a_redirect_to_a_login_page_is_not_healthy(app) -> None:
    app.status = 302  # type: ignore[attr-defined]
    result = healthcheck(app)
    assert result.returncode == 13, result.stderr
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("[health] ERROR: UNHEALTHY: ")
    assert "HTTP 302" in last and "redirect" in last and "/login" in last
    assert "healthy is HTTP 200" in last
    assert "/login" not in app.paths, "the redirect was followed"  # type: ignore[attr-defined]


def test_200_is_healthy(app) -> None:
    result = healthcheck(app)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"healthy": True, "body": '{"status": "ok"}'}


def test_the_status_that_means_healthy_is_an_option(app) -> None:
    app.status = 204  # type: ignore[attr-defined]
    refused = healthcheck(app)
    assert refused.returncode == 13
    assert "HTTP 204 (healthy is HTTP 200)" in refused.stderr
    accepted = healthcheck(app, "--health-status", "204")
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout) == {"healthy": True, "body": ""}
    app.status = 200  # type: ignore[attr-defined]
    assert healthcheck(app, "--health-status", "204").returncode == 13


def test_a_release_whose_health_route_redirects_is_not_released(
    app, tmp_path: Path, stub_path: dict[str, str]
) -> None:
    """release.sh (no --backup-dir: no rollback to make) refuses a 302 as health: exit 13."""
    app.status = 302  # type: ignore[attr-defined]
    deploy = tmp_path / "mcp"
    staged = deploy / ".deploy" / "staged"
    staged.mkdir(parents=True)
    (deploy / COMPOSE).write_text("services: {}\n")
    (staged / COMPOSE).write_text("services: {}\n")
    (staged / "IMAGE").write_text("127.0.0.1:5000/mcp/app:v2\n")
    env = {**stub_path, "STUB_CID": "abc", "STUB_STATE": "running 0 0"}
    args = [
        "--deploy-dir",
        str(deploy),
        "--compose-file",
        COMPOSE,
        "--service",
        "mcp-api-prod",
        "--health-url",
        url(app),
        "--attempts",
        "2",
        "--timeout",
        "4",
    ]
    result = run_script("release.sh", *args, env=env)
    assert result.returncode == 13, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "FAILED: 127.0.0.1:5000/mcp/app:v2 was unhealthy" in last
    assert "HTTP 302" in last and "redirect" in last
    app.status = 200  # type: ignore[attr-defined]
    result = run_script("release.sh", *args, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["health"] == '{"status": "ok"}'


@pytest.mark.parametrize("script", ["healthcheck.sh", "release.sh", "restore.sh"])
@pytest.mark.parametrize("bad", ["99", "600", "2OO", "200 ", ""])
def test_health_status_must_be_an_http_status(script: str, bad: str, tmp_path: Path) -> None:
    deploy, backups = tmp_path / "mcp", tmp_path / "mcp-backups"
    common = ["--attempts", "2", "--timeout", "4", "--health-status", bad, "--check"]
    url_ = "http://127.0.0.1:8000/api/v1/health"
    args = {
        "healthcheck.sh": ["--url", url_],
        "release.sh": [
            "--deploy-dir",
            str(deploy),
            "--compose-file",
            COMPOSE,
            "--service",
            "mcp-api-prod",
            "--health-url",
            url_,
        ],
        "restore.sh": [
            "--deploy-dir",
            str(deploy),
            "--backup-dir",
            str(backups),
            "--backup",
            "latest",
            "--compose-file",
            COMPOSE,
            "--service",
            "mcp-api-prod",
            "--health-url",
            url_,
        ],
    }[script]
    result = run_script(script, *args, *common)
    assert result.returncode == 2, result.stderr
    assert "--health-status must be an HTTP status code 100-599" in result.stderr
    assert "e.g. --health-status 200" in result.stderr
    ok = run_script(script, *args, *common[:4], "--health-status", "204", "--check")
    assert ok.returncode == 0, ok.stderr
