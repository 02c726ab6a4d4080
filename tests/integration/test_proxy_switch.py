"""Blue-green switches and canary splits through the real proxy image lose no request, under a
high-rate prober.

A switch used to be a Caddy `POST /load` of a whole new config: Caddy starts a new HTTP server
on the shared socket (fd 3) and shuts the old one down. Go's net/http drops, without a
response, a request it reads on a connection the old server had already accepted when
`Server.Shutdown` begins (`conn.serve`: `if c.server.shuttingDown() { return }` right after
`readRequest`), so about one request in 200 sent during a switch failed with "Remote end
closed connection without response"; a canary's weighted steps reloaded too. Now the proxy's
100 upstream slots dial `127.0.0.1:{file./config/slots/NN}`, which Caddy reads per request: a
switch or a canary step swaps the slot files, and the config never changes (no reload, no server
shutdown). Here remote/lib/proxy.sh's own bg_point_proxy moves a proxy container (started as
bg_proxy_start starts it) between two loopback backends 100 times, through canary splits (10%,
then 50% of the requests to the other colour) and whole switches, while a prober sends 200
requests per second, each on a new connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import ROOT, free_port

from local.prober import Prober

if TYPE_CHECKING:
    from conftest import LocalServer

SWITCHES = 100
RATE = 200.0
PROXY_LIBS = [ROOT / "remote" / "lib" / name for name in ("proxy-routes.sh", "proxy.sh")]

# Sources lib/proxy-routes.sh and lib/proxy.sh, starts the proxy as bg_proxy_start does, then
# moves it SWITCHES times with bg_point_proxy (the function a release and a canary step use):
# 10% to the other colour, 50%, all of it, and so on.
SWITCH_SCRIPT = r"""
set -euo pipefail
routes_lib=$1 proxy_lib=$2 PROXY_IMAGE=$3 PROXY_LISTEN=$4 BG_PROXY_DIR=$5 BG_PROXY_NAME=$6
switches=$7
declare -A BG_PORT=([blue]=$8 [green]=$9)
log() { printf '[switch] %s\n' "$*" >&2; }
# shellcheck source=/dev/null
source "$routes_lib"
# shellcheck source=/dev/null
source "$proxy_lib"
bg_write_config "${BG_PORT[blue]}"
docker run -d --name "$BG_PROXY_NAME" --network host --user "$(id -u):$(id -g)" \
    --label "mcp.proxy.listen=$PROXY_LISTEN" -e "MCP_PROXY_LISTEN=$PROXY_LISTEN" \
    -e XDG_CONFIG_HOME=/config -e XDG_DATA_HOME=/config -v "$BG_PROXY_DIR:/config" \
    "$PROXY_IMAGE" run --config /config/caddy.json >/dev/null
for ((i = 0; i < 100; i++)); do
    bg_admin /config/ -o /dev/null 2>/dev/null && break
    sleep 0.1
done
echo ready
read -r _go
live=blue other=green
for ((i = 1; i <= switches; i++)); do
    case $((i % 3)) in
        1) bg_point_proxy "$live" "$other" 10 ;;
        2) bg_point_proxy "$live" "$other" 50 ;;
        0) bg_point_proxy "$other" && read -r live other <<<"$other $live" ;;
    esac || { log "switch $i failed: $BG_ERROR"; exit 1; }
    sleep 0.05
done
"""


def backend(colour: str) -> ThreadingHTTPServer:
    """A loopback app answering {"version": colour} (the prober reads "version")."""
    body = json.dumps({"version": colour}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def backends() -> Iterator[tuple[ThreadingHTTPServer, ThreadingHTTPServer]]:
    blue, green = backend("blue"), backend("green")
    yield blue, green
    for server in (blue, green):
        server.shutdown()
        server.server_close()


def test_a_hundred_switches_and_splits_under_load_lose_no_request(
    local_server: LocalServer,
    proxy_image: str,
    backends: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
    tmp_path: Path,
) -> None:
    blue, green = (server.server_address[1] for server in backends)
    listen = f"127.0.0.1:{free_port()}"
    proxy_dir = tmp_path / "proxy"
    proxy_dir.mkdir()
    name = f"mcpt-proxy-switch-{uuid.uuid4().hex[:8]}"
    args = [*map(str, PROXY_LIBS), proxy_image, listen, str(proxy_dir), name, str(SWITCHES)]
    proc = subprocess.Popen(
        ["bash", "-c", SWITCH_SCRIPT, "switch", *args, str(blue), str(green)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready == "ready\n", f"the proxy did not start: {proc.communicate(timeout=30)}"
        prober = Prober(f"http://{listen}/", rate=RATE, workers=16).start()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        _, stderr = proc.communicate(timeout=300)
        report = prober.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)

    assert proc.returncode == 0, stderr
    assert stderr.count("(no reload: it runs this config") == SWITCHES, stderr
    steps = [i % 3 for i in range(1, SWITCHES + 1)]
    assert stderr.count("(10% to ") == steps.count(1), stderr
    assert stderr.count("(50% to ") == steps.count(2), stderr
    failed = report.failed
    assert not failed, (
        f"{len(failed)} of {report.sent} requests failed during {SWITCHES} switches: "
        f"{sorted({s.error for s in failed})}; {report.summary()}"
    )
    assert report.sent >= 500, report.summary()
    assert {"blue", "green"} <= set(report.versions), report.summary()
