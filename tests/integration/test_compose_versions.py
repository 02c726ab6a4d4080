"""The remote scripts on both Docker Compose versions they support.

The local server (local/server.sh) gives its deploy user Compose v2 (the `docker compose` CLI
plugin, built from its Go module, in ~/.docker/cli-plugins) and a second deploy user,
MCP_LOCAL_V1_USER, no plugin: for that user the scripts' own detection (v2 first) falls back to
Debian's `docker-compose` v1. Nothing in the scripts is switched for the tests: the same files
run as one user or the other, and each run's log line `[step] compose: ...` says which compose
ran; the container names (`project-service-1` for v2, `project_service_1` for v1) confirm it.

Everything else in tests/integration and tests/e2e runs as the deploy user, so on v2.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import (
    SAMPLE_COMPOSE,
    SERVER_SH,
    create_deploy_target,
    destroy_deploy_target,
    free_port,
    parse_env_lines,
)
from test_remote_scripts import Remote, one_json_line, q

from local.target import remove_blue_green

if TYPE_CHECKING:  # fixtures come from conftest.py; imported for the annotations only
    from collections.abc import Iterator

    from conftest import HttpProbe, LocalServer


@dataclasses.dataclass(frozen=True)
class ComposeUser:
    """A deploy user of the local server and the compose its scripts must detect."""

    server: LocalServer  # ssh as this user, targets under its base dir
    log_pattern: str  # regex for the version part of the scripts' "compose: ..." log line
    separator: str  # between project, service and index in the container name


@pytest.fixture(scope="session")
def server_env(local_server: LocalServer) -> dict[str, str]:
    proc = subprocess.run(
        ["bash", str(SERVER_SH), "env"], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return parse_env_lines(proc.stdout)


def _compose_user(local_server: LocalServer, env: dict[str, str], which: str) -> ComposeUser:
    if which == "v2":
        version = env["MCP_LOCAL_COMPOSE_V2_VERSION"].removeprefix("v")
        # v2: the plugin run directly, from where the docker CLI finds it (the user's own).
        direct = r" \(plugin run directly: /home/[^/]+/\.docker/cli-plugins/docker-compose\)"
        return ComposeUser(local_server, rf"docker compose {re.escape(version)}{direct}", "-")
    v1_server = dataclasses.replace(
        local_server, user=env["MCP_LOCAL_V1_USER"], base_dir=Path(env["MCP_LOCAL_V1_BASE"])
    )
    return ComposeUser(v1_server, r"docker-compose 1\.\d+\.\d+", "_")


def _compose_lines(stderr: str, step: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"[{step}] compose: ")]


def assert_ran_on(user: ComposeUser, proc: subprocess.CompletedProcess[str], step: str) -> None:
    """The step logged the compose the user must get, and no other."""
    lines = _compose_lines(proc.stderr, step)
    assert lines, f"no '[{step}] compose: ...' line in:\n{proc.stderr}"
    for line in lines:
        assert re.fullmatch(rf"\[{step}\] compose: {user.log_pattern}", line), line


def test_deploy_user_gets_v2_and_the_v1_user_gets_v1(
    local_server: LocalServer, server_env: dict[str, str]
) -> None:
    """Over ssh, as a deploy sees it: the plugin for the deploy user, v1 for the other."""
    v2 = server_env["MCP_LOCAL_COMPOSE_V2_VERSION"]
    proc = local_server.ssh("docker compose version", check=True)
    assert proc.stdout.strip() == f"Docker Compose version {v2}"
    v1_server = _compose_user(local_server, server_env, "v1").server
    proc = v1_server.ssh(
        "id -un; docker compose version >/dev/null 2>&1; echo $?; docker-compose version --short",
        check=True,
    )
    user, v2_status, v1_version = proc.stdout.split()
    assert user == server_env["MCP_LOCAL_V1_USER"]
    assert v2_status != "0", "the v1 user must not see the compose v2 plugin"
    assert re.fullmatch(r"1\.\d+\.\d+", v1_version), proc.stdout


def test_status_reports_each_users_compose(server_env: dict[str, str]) -> None:
    proc = subprocess.run(
        ["bash", str(SERVER_SH), "status"], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = server_env["MCP_LOCAL_COMPOSE_V2_VERSION"].removeprefix("v")
    assert f"compose:  {server_env['MCP_LOCAL_USER']} gets docker compose {version}\n" in (
        proc.stdout
    )
    assert re.search(
        rf"compose:  {server_env['MCP_LOCAL_V1_USER']} .* gets docker-compose 1\.\d+\.\d+\n",
        proc.stdout,
    ), proc.stdout


def test_install_reuses_the_cached_v2_build(server_env: dict[str, str]) -> None:
    """The plugin is built once per version: a second install only checks the cache."""
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(SERVER_SH), "install"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    version = server_env["MCP_LOCAL_COMPOSE_V2_VERSION"]
    assert f"compose {version}: reusing " in proc.stderr, proc.stderr
    assert time.monotonic() - started < 60


@pytest.fixture(params=["v2", "v1"])
def compose_remote(
    request: pytest.FixtureRequest,
    local_server: LocalServer,
    server_env: dict[str, str],
    sample_images: dict[str, str],
    http: HttpProbe,
) -> Iterator[tuple[ComposeUser, Remote]]:
    """A fresh deploy target owned by the user that gets compose `request.param`."""
    user = _compose_user(local_server, server_env, request.param)
    target = create_deploy_target(user.server, f"compose-{request.param}")
    try:
        remote = Remote(user.server, target, sample_images, http)
        remote.install_scripts()
        yield user, remote
    finally:
        destroy_deploy_target(user.server, target)


def test_deploy_rollback_restore(compose_remote: tuple[ComposeUser, Remote]) -> None:
    """deploy -> automatic rollback of a crashing image -> upgrade -> manual restore, on the
    compose the user gets, each step saying which compose it ran."""
    user, remote = compose_remote
    t = remote.target

    deploy = remote.deploy(remote.images["v1"])
    assert deploy.returncode == 0, deploy.stderr
    assert_ran_on(user, deploy, "deploy")
    release = remote.release()
    assert release.returncode == 0, release.stderr
    assert_ran_on(user, release, "release")
    assert remote.version() == "v1"
    cid, _ = remote.container()
    name = subprocess.run(
        ["docker", "inspect", "-f", "{{.Name}}", cid], capture_output=True, text=True, check=True
    ).stdout.strip()
    s = user.separator
    assert name == f"/{t.project}{s}{t.service}{s}1", "container not named by this compose"
    remote.post("kept")

    # Automatic rollback: the crashing image is replaced by v1 again, data kept.
    assert remote.deploy(remote.images["broken-crash"]).returncode == 0
    failed = remote.release()
    assert failed.returncode == 10, failed.stderr
    assert_ran_on(user, failed, "release")
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("[release] FAILED: ") and remote.images["broken-crash"] in last
    assert f"ROLLED BACK to {remote.images['v1']}" in last
    assert remote.version() == "v1"
    assert remote.data() == "kept\n"

    # Upgrade, then a manual restore of the backup taken before it (v1, data "kept").
    assert remote.pipeline("v2").returncode == 0
    before_v2 = remote.last_backup
    remote.post("only in v2")
    assert remote.version() == "v2"
    restore = remote.restore(before_v2)
    assert restore.returncode == 0, restore.stderr
    assert_ran_on(user, restore, "restore")
    result = one_json_line(restore)
    assert result["restored_backup"] == before_v2 and result["image"] == remote.images["v1"]
    assert remote.version() == "v1"
    assert remote.data() == "kept\n"
    assert remote.leftovers() == []


@dataclasses.dataclass
class BlueGreen(Remote):
    """release.sh with `--strategy blue-green` (or recreate), run directly over ssh."""

    proxy_image: str = ""
    colour_ports: tuple[int, int] = (0, 0)
    strategy: str = "blue-green"

    def release(self, extra: str = "", *, keep: int = 5) -> subprocess.CompletedProcess[str]:
        options = ""
        if self.strategy == "blue-green":
            blue, green = self.colour_ports
            port = urllib.parse.urlsplit(self.target.health_url).port
            options = (
                f"--strategy blue-green --proxy-image {q(self.proxy_image)} "
                f"--proxy-listen 127.0.0.1:{port} --colour-ports {blue},{green} --drain-seconds 1"
            )
        return super().release(f"{options} {extra}", keep=keep)

    def live_colour(self) -> str:
        path = self.target.deploy_dir / ".deploy" / "live-colour"
        return path.read_text().strip() if path.exists() else ""


def _docker_ids(*filters: str) -> list[str]:
    argv = ["docker", "ps", "-aq"]
    for f in filters:
        argv += ["--filter", f]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()


@pytest.fixture(params=["v2", "v1"])
def compose_bg(
    request: pytest.FixtureRequest,
    local_server: LocalServer,
    server_env: dict[str, str],
    sample_images: dict[str, str],
    proxy_image: str,
    http: HttpProbe,
) -> Iterator[tuple[ComposeUser, BlueGreen]]:
    """A fresh blue-green deploy target owned by the user that gets compose `request.param`."""
    user = _compose_user(local_server, server_env, request.param)
    target = create_deploy_target(user.server, f"compose-bg-{request.param}")
    try:
        remote = BlueGreen(
            user.server,
            target,
            sample_images,
            http,
            proxy_image=proxy_image,
            colour_ports=(free_port(), free_port()),
        )
        remote.install_scripts()
        yield user, remote
    finally:
        remove_blue_green(target.project)
        destroy_deploy_target(user.server, target)


def _with_volume(volume_spec: str) -> str:
    """The sample compose file plus a named volume `cache` declared as `volume_spec`."""
    text = SAMPLE_COMPOSE.read_text().replace(
        "      - ./data:/data\n", "      - ./data:/data\n      - cache:/cache\n"
    )
    assert "cache:/cache" in text
    return f"{text}\nvolumes:\n  cache:{volume_spec}\n"


def test_blue_green_refuses_a_volume_without_a_name(
    compose_bg: tuple[ComposeUser, BlueGreen],
) -> None:
    """Each colour is its own compose project: a named volume without `name:` would be one
    empty volume per colour. v2's `config` prints an implicit name for every volume (v1 none):
    the check must still see that it is implicit, and accept an explicit one."""
    user, bg = compose_bg
    t = bg.target
    compose = t.deploy_dir / t.compose_file

    bg.server.ssh(f"cat > {q(compose)}", input=_with_volume(""), check=True)
    assert bg.deploy(bg.images["v1"]).returncode == 0
    refused = bg.release()
    assert refused.returncode == 10, refused.stderr
    assert_ran_on(user, refused, "release")
    assert "named volume(s) cache in " in refused.stderr
    assert "have no explicit 'name:'" in refused.stderr
    for colour in ("blue", "green"):
        assert _docker_ids(f"label=com.docker.compose.project={t.project}-{colour}") == []

    shared = f"{t.project}_cache"
    try:
        bg.server.ssh(
            f"rm -f {q(t.deploy_dir / '.deploy' / 'staged' / t.compose_file)} && "
            f"cat > {q(compose)}",
            input=_with_volume(f"\n    name: {shared}"),
            check=True,
        )
        assert bg.deploy(bg.images["v1"]).returncode == 0
        accepted = bg.release()
        assert accepted.returncode == 0, accepted.stderr
        assert_ran_on(user, accepted, "release")
        assert bg.version() == "v1" and bg.live_colour() == "blue"
        mounts = subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", f"name={t.project}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert mounts == [shared], "only the explicitly named volume, none per colour"
    finally:
        remove_blue_green(t.project)
        subprocess.run(["docker", "volume", "rm", "-f", shared], capture_output=True, check=False)


def test_blue_green_removes_a_stopped_recreate_container(
    compose_bg: tuple[ComposeUser, BlueGreen],
) -> None:
    """Switching from recreate: the project's container is removed even when it is stopped
    (v2's `ps` lists running containers only; with `restart: always` a stopped container
    comes back on the next daemon restart and takes the public port from the proxy)."""
    user, bg = compose_bg
    t = bg.target
    bg.strategy = "recreate"
    assert bg.pipeline("v1").returncode == 0
    label = f"label=com.docker.compose.project={t.project}"
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(left) == 1
    subprocess.run(["docker", "stop", "-t", "2", *left], capture_output=True, check=True)

    bg.strategy = "blue-green"
    assert bg.deploy(bg.images["v2"]).returncode == 0
    switched = bg.release()
    assert switched.returncode == 0, switched.stderr
    assert_ran_on(user, switched, "release")
    assert "switching from --strategy recreate" in switched.stderr
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True, check=True
    ).stdout.split()
    assert left == [], "the recreate project's stopped container survived the switch"
    assert bg.version() == "v2" and bg.live_colour() == "blue"
