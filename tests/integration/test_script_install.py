"""A new upload of the scripts never changes the bytes of a script that is running
(issue 16 item 11).

Bash reads a script from its file as it runs. The scripts upload used to rewrite
<deploy-dir>/.deploy/bin/ in place (truncate, write), outside the server's lock, so a release
still running (e.g. of a killed CI job) could read the new file at its old offset. Here a
script is started from .deploy/bin/ over SSH, then a changed remote/ folder is uploaded and
installed exactly as the deploy plan declares it (its "scripts" upload, written file by file
like CopyToRemote's sftp, and the steps that install it), and the running script must finish
with its original bytes, while a new run gets the new version.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_remote_scripts import one_json_line, q
from test_zero_downtime import BlueGreen

from components import remote_commands as rc
from components.plan import DeployPlan, deploy_plan
from components.results import parse_result

if TYPE_CHECKING:
    from conftest import HttpProbe, LocalServer


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.hits += 1  # type: ignore[attr-defined]
        status = 200 if self.server.healthy.is_set() else 503  # type: ignore[attr-defined]
        body = b'{"status": "ok"}' if status == 200 else b"starting"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    """Unhealthy (503) until the test sets `healthy`: keeps healthcheck.sh running meanwhile."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    server.hits = 0  # type: ignore[attr-defined]
    server.healthy = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def target(
    local_server: LocalServer,
    sample_images: dict[str, str],
    make_deploy_target,
    http: HttpProbe,
    request: pytest.FixtureRequest,
) -> BlueGreen:
    t = make_deploy_target(request.node.name)
    return BlueGreen(local_server, t, sample_images, http, strategy="recreate")


def install_as_the_plan_declares(remote: BlueGreen, plan: DeployPlan) -> None:
    """The plan's scripts upload (file by file, `cat >` truncating and writing like sftp's
    Create) and the steps that install it, before any step that runs a release."""
    (upload,) = [u for u in plan.uploads if u.name == "scripts"]
    for source in sorted(p for p in upload.source.rglob("*") if p.is_file()):
        dest = f"{upload.remote_path}/{source.relative_to(upload.source)}"
        remote.server.ssh(
            f"mkdir -p {q(dest.rsplit('/', 1)[0])} && cat > {q(dest)}",
            input=source.read_text(),
            check=True,
            timeout=60,
        )
    for step in plan.steps:
        if step.name in ("deploy", "release", "restore"):
            break
        proc = remote.run(step.command({}))
        assert proc.returncode == 0, proc.stderr
        parse_result(step.name, proc.stdout, step.result_keys)


def changed_copy_of_remote(tmp_path: Path) -> Path:
    """remote/ with healthcheck.sh changed: a longer header (every later byte moves) and
    another final message."""
    copy = tmp_path / "remote"
    shutil.copytree(rc.SCRIPTS_SOURCE_DIR, copy)
    script = copy / "healthcheck.sh"
    text = script.read_text()
    shebang, rest = text.split("\n", 1)
    rest = rest.replace('log "done: $URL is healthy"', 'log "done (new scripts): $URL is healthy"')
    assert "new scripts" in rest
    script.write_text(f"{shebang}\n{'# a newer version of this script.' * 8}\n{rest}")
    return copy


def test_a_running_script_is_unaffected_by_a_new_upload(
    target: BlueGreen,
    health_server: http.server.HTTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote = target
    install_as_the_plan_declares(remote, deploy_plan(remote.settings()))
    url = f"http://127.0.0.1:{health_server.server_address[1]}/api/v1/health"
    bin_dir = remote.target.deploy_dir / ".deploy" / "bin"
    # As the plan runs every script: `bash <deploy-dir>/.deploy/bin/<script> ...`.
    command = f"bash {q(bin_dir / 'healthcheck.sh')} --url {q(url)} --attempts 60 --timeout 60"
    running = remote.server.ssh_popen(command, stdin=subprocess.DEVNULL)
    end = time.monotonic() + 30
    while health_server.hits < 2:  # type: ignore[attr-defined]
        assert time.monotonic() < end, "healthcheck.sh never asked"
        time.sleep(0.1)

    # A new version of remote/ is uploaded and installed while it runs.
    monkeypatch.setattr(rc, "SCRIPTS_SOURCE_DIR", changed_copy_of_remote(tmp_path))
    install_as_the_plan_declares(remote, deploy_plan(remote.settings()))
    health_server.healthy.set()  # type: ignore[attr-defined]

    out, err = running.communicate(timeout=120)
    assert running.returncode == 0, err
    assert "command not found" not in err and "syntax error" not in err, err
    assert err.strip().splitlines()[-1] == f"[health] done: {url} is healthy", err
    assert json.loads(out.strip().splitlines()[-1]) == {
        "healthy": True,
        "body": '{"status": "ok"}',
    }
    # A new run of the same path gets the new version.
    proc = remote.run(command)
    assert proc.returncode == 0, proc.stderr
    assert one_json_line(proc)["healthy"] is True
    assert proc.stderr.strip().splitlines()[-1] == f"[health] done (new scripts): {url} is healthy"
