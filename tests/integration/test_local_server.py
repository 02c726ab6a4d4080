"""The local deploy target (local/server.sh) and the sample app (app/) really work.

Everything here runs against real daemons: sshd, dockerd and the registry started by
`local/server.sh up`. Nothing is skipped: a missing piece is a failure.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # fixtures come from conftest.py; imported for the annotations only
    from conftest import DeployTarget, HttpProbe, LocalServer


def _compose_up(server: LocalServer, target: DeployTarget, image: str) -> None:
    server.ssh(target.compose_command("up -d", image=image), timeout=180, check=True)


def test_env_describes_the_server(local_server: LocalServer) -> None:
    assert local_server.host == "127.0.0.1"
    assert local_server.private_key_path.is_file()
    assert local_server.private_key_path.stat().st_mode & 0o077 == 0, "private key must be 0600"
    assert local_server.host_public_key.startswith("ssh-ed25519 ")
    assert len(local_server.host_public_key.split()) == 2, "no host name or comment"
    known = local_server.known_hosts_path.read_text().split()
    assert known == [
        f"[127.0.0.1]:{local_server.ssh_port}",
        *local_server.host_public_key.split(),
    ]
    assert local_server.registry_password
    assert local_server.base_dir.is_dir()


def test_two_ups_at_once_both_succeed_and_no_daemon_keeps_the_lock(
    local_server: LocalServer,
) -> None:
    """`up` takes a lock (the two test workers that use the server may both call it); the
    daemons an `up` started must not inherit it, or every later `up` would wait forever."""
    server_sh = Path(__file__).resolve().parents[2] / "local" / "server.sh"
    ups = [
        subprocess.Popen(
            ["bash", str(server_sh), "up"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]  # fmt: skip
    for up in ups:
        _, stderr = up.communicate(timeout=300)
        assert up.returncode == 0, stderr
    state = Path(local_server.private_key_path).parent  # the deploy key lives in the state dir
    free = subprocess.run(
        ["flock", "-n", str(state / "up.lock"), "true"], capture_output=True, check=False
    )
    assert free.returncode == 0, "something still holds local/server.sh's up.lock"


def test_ssh_as_deploy_user_runs_docker(local_server: LocalServer) -> None:
    proc = local_server.ssh("id -un && docker info --format '{{.ServerVersion}}'", check=True)
    user, version = proc.stdout.split()
    assert user == local_server.user
    assert version


def test_deploy_user_has_the_tools_and_dirs(local_server: LocalServer) -> None:
    proc = local_server.ssh(
        "command -v curl flock tar gzip df docker >/dev/null && "
        f"test -w {shlex.quote(str(local_server.base_dir))} && "
        f"test -d {shlex.quote(str(local_server.base_dir / 'mcp'))} && "
        f"test -d {shlex.quote(str(local_server.base_dir / 'mcp-backups'))} && echo ok"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_sshd_refuses_a_wrong_key(local_server: LocalServer, tmp_path: Path) -> None:
    wrong_key = tmp_path / "wrong_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)], check=True
    )
    proc = local_server.ssh("echo logged-in", key=wrong_key, timeout=60)
    assert proc.returncode == 255
    assert "logged-in" not in proc.stdout
    assert "Permission denied" in proc.stderr


def test_sshd_refuses_an_unknown_host_key(local_server: LocalServer, tmp_path: Path) -> None:
    other_known_hosts = tmp_path / "known_hosts"
    other_known_hosts.write_text(
        f"[127.0.0.1]:{local_server.ssh_port} "
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    proc = local_server.ssh(
        "echo logged-in", options=("-o", f"UserKnownHostsFile={other_known_hosts}"), timeout=60
    )
    assert proc.returncode == 255
    assert "logged-in" not in proc.stdout
    assert "Host key verification failed" in proc.stderr


def test_stock_sshd_drops_client_environment(local_server: LocalServer) -> None:
    proc = local_server.ssh(
        "echo ${FOO:-unset} ${LC_MCP_TEST:-unset}",
        options=("-o", "SetEnv=FOO=bar LC_MCP_TEST=baz", "-o", "SendEnv=LC_MCP_TEST"),
        check=True,
    )
    assert proc.stdout.split() == ["unset", "unset"]


def test_registry_login_and_pull(local_server: LocalServer, sample_images: dict[str, str]) -> None:
    registry, user = local_server.registry, local_server.registry_user
    bad = local_server.ssh(
        f"docker login {registry} -u {user} --password-stdin",
        input="definitely-wrong\n",
        timeout=60,
    )
    assert bad.returncode != 0, "the registry must refuse a wrong password"
    try:
        login = local_server.ssh(
            f"docker login {registry} -u {user} --password-stdin",
            input=local_server.registry_password + "\n",
            timeout=60,
        )
        assert login.returncode == 0, login.stderr
        pull = local_server.ssh(f"docker pull {sample_images['v1']}", timeout=180)
        assert pull.returncode == 0, pull.stderr
        inspect = local_server.ssh(
            "docker image inspect --format '{{json .Config.Env}}' " + sample_images["v1"],
            check=True,
        )
        assert "APP_VERSION=v1" in json.loads(inspect.stdout)
    finally:
        local_server.ssh(f"docker logout {registry}", timeout=60)


def test_anonymous_pull_is_refused(
    local_server: LocalServer, sample_images: dict[str, str]
) -> None:
    registry = local_server.registry
    proc = local_server.ssh(
        f"docker logout {registry} >/dev/null 2>&1; docker pull {sample_images['v2']}",
        timeout=120,
    )
    assert proc.returncode != 0


@pytest.fixture
def logged_in(local_server: LocalServer, sample_images: dict[str, str]):
    local_server.ssh(
        f"docker login {local_server.registry} -u {local_server.registry_user} --password-stdin",
        input=local_server.registry_password + "\n",
        timeout=60,
        check=True,
    )
    yield sample_images
    local_server.ssh(f"docker logout {local_server.registry}", timeout=60)


def test_deploy_target_layout(local_server: LocalServer, make_deploy_target) -> None:
    target = make_deploy_target("layout")
    other = make_deploy_target(local_server, "layout")
    assert target.project != other.project
    assert target.http_port != other.http_port
    assert target.deploy_dir.parent.parent == local_server.base_dir
    assert target.deploy_dir.name == "mcp"
    assert (target.deploy_dir / ".env").read_text() == f"MCP_HTTP_PORT={target.http_port}\n"
    env_production = target.deploy_dir / ".env.production"
    assert env_production.read_text() == "APP_SECRET=not-a-real-secret\n"
    assert env_production.stat().st_mode & 0o777 == 0o600
    assert (target.deploy_dir / target.compose_file).is_file()
    assert target.backup_dir.is_dir()
    owner = local_server.ssh(
        f"stat -c %U {shlex.quote(str(target.deploy_dir))} "
        f"{shlex.quote(str(target.deploy_dir / 'data'))} {shlex.quote(str(target.backup_dir))}",
        check=True,
    )
    assert set(owner.stdout.split()) == {local_server.user}
    assert target.health_url == f"http://127.0.0.1:{target.http_port}/api/v1/health"


def test_v1_with_compose_is_healthy_and_stores_data(
    local_server: LocalServer, logged_in: dict[str, str], make_deploy_target, http: HttpProbe
) -> None:
    target = make_deploy_target("v1")
    _compose_up(local_server, target, logged_in["v1"])
    status, body = http.wait(target.health_url, expect=200)
    assert status == 200, body
    assert json.loads(body) == {"status": "ok", "version": "v1"}

    data_url = target.health_url.replace("/health", "/data")
    assert http.post(data_url, "first item")[0] == 201
    assert http.post(data_url, "second item\n")[0] == 201
    assert http.get(data_url) == (200, "first item\nsecond item\n")
    # bind-mounted data lives in the deploy dir, written as the deploy user
    items = target.deploy_dir / "data" / "items.txt"
    assert items.read_text() == "first item\nsecond item\n"
    owner = local_server.ssh(f"stat -c %U {shlex.quote(str(items))}", check=True)
    assert owner.stdout.strip() == local_server.user


def test_broken_500_answers_500(
    local_server: LocalServer, logged_in: dict[str, str], make_deploy_target, http: HttpProbe
) -> None:
    target = make_deploy_target("b500")
    _compose_up(local_server, target, logged_in["broken-500"])
    status, body = http.wait(target.health_url, expect=500)
    assert status == 500, body
    assert json.loads(body)["version"] == "broken-500"


def test_broken_slow_answers_503(
    local_server: LocalServer, logged_in: dict[str, str], make_deploy_target, http: HttpProbe
) -> None:
    target = make_deploy_target("slow")
    _compose_up(local_server, target, logged_in["broken-slow"])
    status, body = http.wait(target.health_url, expect=503)
    assert status == 503, body


def test_broken_crash_exits(local_server: LocalServer, logged_in: dict[str, str]) -> None:
    proc = local_server.ssh(f"docker run --rm {logged_in['broken-crash']}", timeout=120)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "crash" in proc.stderr


def test_broken_crash_never_answers_with_compose(
    local_server: LocalServer, logged_in: dict[str, str], make_deploy_target, http: HttpProbe
) -> None:
    target = make_deploy_target("crash")
    _compose_up(local_server, target, logged_in["broken-crash"])
    status, _ = http.wait(target.health_url, expect=200, deadline_s=5)
    assert status != 200
    # --all: compose v2's `ps` lists running containers only (v1's lists all), and a
    # crash-looping container is not running between two restarts.
    state = local_server.ssh(target.compose_command("ps --all -q"), check=True).stdout.split()
    assert state, "compose created no container"
    # restart: unless-stopped keeps restarting it; each run must end with exit code 1
    deadline = time.monotonic() + 30
    while True:
        inspect = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.ExitCode}} {{.RestartCount}}", state[0]],
            capture_output=True,
            text=True,
            check=True,
        )
        exit_code, restarts = inspect.stdout.split()
        if exit_code == "1" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert exit_code == "1", f"exit code {exit_code}, restarts {restarts}"
