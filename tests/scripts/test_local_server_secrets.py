"""local/server.sh keeps the registry password off command lines (issue 16 item 14): htpasswd
gets it on stdin (`-i`), for writing the file and for the `-v` check, since every user on the
machine can read a process's argv (`ps`).

ensure_registry runs for real with stubs on PATH for what would start or reach a registry:
htpasswd is the real one behind a wrapper that records each call's argv.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from ._helpers import REPO

SERVER_SH = REPO / "local" / "server.sh"
PASSWORD = "s3cret-registry-password-value"

HTPASSWD_WRAPPER = """#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$HTPASSWD_CALLS"
exec {real} "$@"
"""
# The registry: a process whose command line names docker-registry (pid_alive checks it).
REGISTRY_STUB = "#!/usr/bin/env bash\nsleep 60\n"
CURL_STUB = "#!/usr/bin/env bash\nprintf 401\n"  # the registry's /v2/ asks for auth
DOCKER_STUB = "#!/usr/bin/env bash\ncat >/dev/null\n"  # docker login --password-stdin


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server_env(tmp_path: Path):
    real = subprocess.run(["bash", "-c", "command -v htpasswd"], capture_output=True, text=True)
    if real.returncode != 0:
        pytest.fail("htpasswd is not installed (apt-get install apache2-utils): it is required")
    bindir = tmp_path / "stub-bin"
    bindir.mkdir()
    for name, text in (
        ("htpasswd", HTPASSWD_WRAPPER.format(real=real.stdout.strip())),
        ("docker-registry", REGISTRY_STUB),
        ("curl", CURL_STUB),
        ("docker", DOCKER_STUB),
    ):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    state = tmp_path / "state"
    (state / "registry").mkdir(parents=True)  # made by `up` before ensure_registry
    (state / "registry-password").write_text(PASSWORD)
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "MCP_LOCAL_STATE": str(state),
        "MCP_LOCAL_REGISTRY_PORT": str(free_port()),
        "HTPASSWD_CALLS": str(tmp_path / "htpasswd-calls.log"),
    }
    yield env, state, tmp_path / "htpasswd-calls.log"
    pid_file = state / "registry.pid"
    if pid_file.exists():  # the stub registry this test started
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


def ensure_registry(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # `--help`: sourcing must not run a command (it only prints the usage, if anything).
    script = f"source {SERVER_SH} --help >/dev/null; ensure_registry"
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_the_registry_password_never_reaches_htpasswd_s_command_line(server_env) -> None:
    env, state, calls = server_env
    htpasswd_file = state / "registry" / "htpasswd"

    first = ensure_registry(env)
    assert first.returncode == 0, first.stderr
    assert "writing registry htpasswd" in first.stderr
    argvs = calls.read_text().splitlines()
    assert argvs, "htpasswd was not called"
    assert not [argv for argv in argvs if PASSWORD in argv], argvs
    # The file really holds the password (bcrypt), checked the same way: on stdin.
    check = subprocess.run(
        ["htpasswd", "-vi", str(htpasswd_file), "mcp-ci"],
        input=PASSWORD,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert htpasswd_file.read_text().startswith("mcp-ci:$2")

    # Already valid: only the -v check runs, and it too reads the password from stdin.
    calls.unlink()
    second = ensure_registry(env)
    assert second.returncode == 0, second.stderr
    assert "writing registry htpasswd" not in second.stderr
    argvs = calls.read_text().splitlines()
    assert len(argvs) == 1 and argvs[0].startswith("-v"), argvs
    assert PASSWORD not in argvs[0]
