"""What must never happen, through the real engine: talking to an unknown server, a secret in
plain text, two deploys of one stack at once."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

RETRY_ON_LOCK = (
    Path(__file__).resolve().parents[2] / ".github" / "scripts" / "retry-on-stack-lock.sh"
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.target import HttpProbe
    from tests.e2e.conftest import E2EStack


def test_a_wrong_pinned_host_key_fails_before_anything_runs_on_the_server(
    make_stack: Callable[..., E2EStack], tmp_path: Path
) -> None:
    e2e = make_stack("host-key")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
        check=True,
    )
    other_key = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    e2e.stack.set_config("mcp:server.hostKey", other_key)

    proc = e2e.up(check=False)

    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "host key" in output.lower(), output
    print(output)  # shown with -s: the message the on-call person gets
    assert not (e2e.target.deploy_dir / ".deploy").exists(), "a script was installed"
    assert list(e2e.target.backup_dir.iterdir()) == [], "a backup was taken"
    assert "server-release" not in e2e.stack.export()


def test_no_secret_in_plain_text_in_state_outputs_logs_or_backend(
    make_stack: Callable[..., E2EStack], pulumi_env: dict[str, str]
) -> None:
    e2e = make_stack("secrets")
    e2e.up()
    e2e.set_tag("broken-500")
    assert e2e.up(check=False).returncode != 0  # a failed deploy prints the most
    e2e.stack.run("stack", "output", "--json")
    e2e.stack.history()
    exported = e2e.stack.export()
    assert '"ciphertext"' in exported  # the secrets are in the state, encrypted

    backend = Path(pulumi_env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    backend_files = "\n".join(
        path.read_text(errors="replace") for path in backend.rglob("*") if path.is_file()
    )
    server_log = e2e.history_log()
    places = {
        "pulumi stack export": exported,
        "output of every pulumi command": "\n".join(e2e.stack.log),
        "the backend's files (state, history, backups)": backend_files,
        "the stack file": e2e.stack.stack_file.read_text(),
        "the server's audit log": server_log,
    }
    for secret in e2e.secret_values:
        assert len(secret) >= 12
        for place, text in places.items():
            assert secret not in text, f"a test secret appears in plain text in {place}"


def test_a_second_pulumi_up_at_once_is_refused_by_the_stack_lock(
    make_stack: Callable[..., E2EStack], pulumi_env: dict[str, str], http: HttpProbe
) -> None:
    e2e = make_stack("lock")
    e2e.up()
    e2e.set_tag("v2")
    backend = Path(pulumi_env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    locks = backend / ".pulumi" / "locks"

    first = subprocess.Popen(
        ["pulumi", "up", "--yes", "--non-interactive", "--stack", e2e.stack.name],
        cwd=e2e.stack.cwd,
        env=e2e.stack.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(locks.rglob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(locks.rglob("*.json")), "the first pulumi up never took the stack lock"

    # The workflows' wrapper waits for the lock instead (a deploy and a rollback queue up).
    waiting = subprocess.Popen(
        [
            "bash",
            str(RETRY_ON_LOCK),
            "pulumi",
            "up",
            "--yes",
            "--non-interactive",
            "--stack",
            e2e.stack.name,
        ],
        cwd=e2e.stack.cwd,
        env={**e2e.stack.env, "MCP_LOCK_RETRY_SECONDS": "1", "MCP_LOCK_WAIT_SECONDS": "300"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    second = e2e.up(check=False)
    first_output, _ = first.communicate(timeout=600)
    waited_output, _ = waiting.communicate(timeout=600)

    assert second.returncode != 0, second.stdout
    assert "the stack is currently locked" in second.stdout + second.stderr, second.stdout
    assert first.returncode == 0, first_output
    assert waiting.returncode == 0, waited_output
    assert "stack is locked by another update" in waited_output, waited_output
    assert e2e.served_version(http) == "v2"
    assert e2e.history_log().count("[release] started by") == 2  # v1, then only the first v2
