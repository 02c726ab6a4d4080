"""live_colour (remote/lib/compose.sh) after an interrupted blue-green switch (issue 16, item 6).

A switch writes .deploy/live-colour.next before it points the proxy and removes it once
.deploy/live-colour names the new colour (remote/lib/proxy.sh). When a kill, a reboot or a full
disk leaves the intent behind, the read-only paths (backup.sh's running image, the pre-backup
command, healthcheck.sh) must take the colour the proxy really routes to: asked of the running
proxy (admin API on its unix socket), else read from its config file. Without an intent the
record is read as before, and nothing else is asked (it stays cheap).
"""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._helpers import REMOTE

ROUTES_PATH = "/config/apps/http/servers/mcp/routes"  # what proxy_routes asks


def live_colour(deploy: Path, env: dict[str, str] | None = None) -> str:
    """live_colour DEPLOY_DIR, with lib.sh sourced as the entry scripts do."""
    script = 'set -euo pipefail; STEP=test; source "$1/lib.sh"; live_colour "$2"'
    proc = subprocess.run(
        ["bash", "-c", script, "_", str(REMOTE), str(deploy)],
        input="",
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def caddy_json(port: int) -> str:
    """The part of bg_write_config's caddy.json that names the upstream."""
    return (
        '{"apps": {"http": {"servers": {"mcp": {"routes": [{"handle": [{\n'
        '  "handler": "reverse_proxy",\n'
        f'  "upstreams": [{{"dial": "127.0.0.1:{port}"}}],\n'
        '  "load_balancing": {"try_duration": "5s"}\n'
        "}]}]}}}}}\n"
    )


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    d = tmp_path / "mcp"
    (d / ".deploy" / "proxy").mkdir(parents=True)
    return d


class _AdminHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path == ROUTES_PATH
        port = self.server.port  # type: ignore[attr-defined]
        upstreams = [{"dial": f"127.0.0.1:{port}"}]
        routes = [{"handle": [{"handler": "reverse_proxy", "upstreams": upstreams}]}]
        body = json.dumps(routes, indent=1) + "\n" if ok else "not found"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def address_string(self) -> str:  # a unix socket has no client address
        return "unix"

    def log_message(self, *args: object) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def admin_socket() -> Iterator[tuple[Path, Callable[[int], None]]]:
    """A stand-in for Caddy's admin API on a unix socket, routing to a settable port."""
    short = Path(tempfile.mkdtemp(prefix="adm", dir="/tmp"))  # sun_path is 108 bytes at most
    sock = short / "admin.sock"
    server = _UnixHTTPServer(str(sock), _AdminHandler)
    server.port = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def route_to(port: int) -> None:
        server.port = port  # type: ignore[attr-defined]

    yield sock, route_to
    server.shutdown()
    server.server_close()
    sock.unlink(missing_ok=True)
    short.rmdir()


def test_without_intent_the_record_is_read_and_nothing_is_asked(
    deploy: Path, tmp_path: Path
) -> None:
    (deploy / ".deploy" / "live-colour").write_text("blue\n")
    (deploy / ".deploy" / "proxy" / "caddy.json").write_text(caddy_json(8002))
    calls = tmp_path / "calls"
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "curl").write_text(f'#!/bin/sh\necho "curl $*" >>{calls}\nexit 7\n')
    (stub / "curl").chmod(0o755)
    assert live_colour(deploy, {"PATH": f"{stub}:{os.environ['PATH']}"}) == "blue"
    assert not calls.exists()


@pytest.mark.parametrize(
    ("recorded", "routed", "expected"),
    [
        ("blue\n", 8002, "green"),  # killed after the switch, before the record
        ("blue\n", 8001, "blue"),  # killed before the switch took effect (or pointed back)
        ("", 8002, "green"),  # the record was never written
        ("green\n", 8002, "green"),  # killed after the record, before the intent was removed
    ],
)
def test_an_interrupted_switch_reads_the_proxy_config(
    deploy: Path, recorded: str, routed: int, expected: str
) -> None:
    if recorded:
        (deploy / ".deploy" / "live-colour").write_text(recorded)
    (deploy / ".deploy" / "live-colour.next").write_text("green 8001 8002\n")
    (deploy / ".deploy" / "proxy" / "caddy.json").write_text(caddy_json(routed))
    assert live_colour(deploy) == expected


def test_the_running_proxy_wins_over_its_config_file(deploy: Path, admin_socket) -> None:
    """caddy.json is written before POST /load: a kill in between leaves a file that names
    the new colour while the running proxy still routes to the old one."""
    sock, route_to = admin_socket
    (deploy / ".deploy" / "live-colour").write_text("blue\n")
    (deploy / ".deploy" / "live-colour.next").write_text("green 8001 8002\n")
    (deploy / ".deploy" / "proxy" / "caddy.json").write_text(caddy_json(8002))
    (deploy / ".deploy" / "proxy" / "admin.sock").symlink_to(sock)
    route_to(8001)
    assert live_colour(deploy) == "blue"
    route_to(8002)
    assert live_colour(deploy) == "green"


@pytest.mark.parametrize(("routed", "expected"), [(8002, "green"), (8001, "blue")])
def test_a_config_that_reads_upstream_port_is_resolved_through_that_file(
    deploy: Path, routed: int, expected: str
) -> None:
    """bg_write_config's one-upstream config dials 127.0.0.1:{file./config/upstream-port}
    (a switch rewrites that file, no reload): the port is the one in .deploy/proxy/upstream-port."""
    (deploy / ".deploy" / "live-colour").write_text("blue\n")
    (deploy / ".deploy" / "live-colour.next").write_text("green 8001 8002\n")
    config = caddy_json(0).replace("127.0.0.1:0", "127.0.0.1:{file./config/upstream-port}")
    (deploy / ".deploy" / "proxy" / "caddy.json").write_text(config)
    (deploy / ".deploy" / "proxy" / "upstream-port").write_text(f"{routed}\n")
    assert live_colour(deploy) == expected


def write_slots(deploy: Path, ports: list[int]) -> None:
    """The slots config (bg_write_config: every upstream dials {file./config/slots/NN}) and
    its slot files, as bg_write_slots leaves them: `slots` a symlink to a directory."""
    config = caddy_json(0).replace("127.0.0.1:0", "127.0.0.1:{file./config/slots/00}")
    proxy = deploy / ".deploy" / "proxy"
    (proxy / "caddy.json").write_text(config)
    (proxy / "slots.x1").mkdir()
    for i, port in enumerate(ports):
        (proxy / "slots.x1" / f"{i:02d}").write_text(f"{port}\n")
    (proxy / "slots").symlink_to("slots.x1")


@pytest.mark.parametrize(
    ("intent", "ports", "expected"),
    [
        ("green 8001 8002\n", [8002] * 100, "green"),  # killed after a switch's slot swap
        ("green 8001 8002\n", [8001] * 100, "blue"),  # killed before it
        # killed during a canary step to green (10%): the colour it started from
        ("green 8001 8002 10\n", [8002 if i % 10 == 9 else 8001 for i in range(100)], "blue"),
        # killed during a canary started from green: green, whatever the record says
        ("blue 8001 8002 50\n", [8001 if i % 2 else 8002 for i in range(100)], "green"),
    ],
)
def test_a_slots_config_is_resolved_through_its_slot_files(
    deploy: Path, intent: str, ports: list[int], expected: str
) -> None:
    (deploy / ".deploy" / "live-colour").write_text("blue\n")
    (deploy / ".deploy" / "live-colour.next").write_text(intent)
    write_slots(deploy, ports)
    assert live_colour(deploy) == expected


def test_an_unreadable_slot_leaves_the_record(deploy: Path) -> None:
    """A slot file that is not a port: where the proxy routes cannot be told, so the recorded
    colour stands (no guess)."""
    (deploy / ".deploy" / "live-colour").write_text("blue\n")
    (deploy / ".deploy" / "live-colour.next").write_text("green 8001 8002\n")
    write_slots(deploy, [8002] * 100)
    (deploy / ".deploy" / "proxy" / "slots.x1" / "07").write_text("")
    assert live_colour(deploy) == "blue"
