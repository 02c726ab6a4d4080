"""Fixtures for end-to-end tests: the real Pulumi CLI runs this program against the local server.

* `pulumi_env` (session): the CLI found on PATH or built by tools/build-pulumi.sh, a file
  backend in a temporary directory, a random passphrase.
* `make_stack`: a fresh stack (`Pulumi.e2e-<name>-<hex>.yaml`, from local/stack-template.yaml
  like the demo's) aimed at a fresh deploy target on the local server; removed afterwards.

The local server, the sample images and the deploy targets are the integration tests' fixtures
(tests/integration/conftest.py). Nothing here skips: a missing part fails the test.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from conftest import (  # noqa: E402  (the shared local-server fixtures)
    DeployTarget,
    HttpProbe,
    LocalServer,
    http,
    local_server,
    make_deploy_target,
    proxy_image,
    sample_images,
    stock_layout_proxy_image,
)

from local.stack import MachineValues, PulumiStack, pulumi_environment, target_config  # noqa: E402

__all__ = [
    "http",
    "local_server",
    "make_deploy_target",
    "proxy_image",
    "sample_images",
    "stock_layout_proxy_image",
]

# Short health deadlines keep broken deploys quick; the scripts' pace is 1 try per second.
HEALTH_ATTEMPTS = 6
HEALTH_TIMEOUT_S = 8


@pytest.fixture(scope="session")
def pulumi_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Environment for the `pulumi` CLI: toolchain, a file backend, a random passphrase.

    The toolchain has the `command` plugin, plus those a test module of the session names in
    its PULUMI_PLUGINS (test_image_build: docker, test_github: github): a run without them
    never builds them."""
    plugins = {"command"}
    for item in request.session.items:
        plugins.update(getattr(item.module, "PULUMI_PLUGINS", ()))
    try:
        env = pulumi_environment(plugins=sorted(plugins))
    except RuntimeError as exc:
        pytest.fail(f"no usable Pulumi CLI: {exc}", pytrace=False)
    backend = tmp_path_factory.mktemp("pulumi-backend")
    env["PULUMI_BACKEND_URL"] = f"file://{backend}"
    env["PULUMI_CONFIG_PASSPHRASE"] = f"e2e-passphrase-{secrets.token_hex(8)}"
    env.pop("PULUMI_ACCESS_TOKEN", None)
    version = subprocess.run(
        ["pulumi", "version"], env=env, capture_output=True, text=True, check=False
    )
    if version.returncode != 0:
        pytest.fail(f"`pulumi version` failed: {version.stderr}", pytrace=False)
    return env


@dataclass
class E2EStack:
    """A stack of this program aimed at one deploy target, plus the secrets it was given."""

    stack: PulumiStack
    target: DeployTarget
    server: LocalServer
    secret_values: list[str] = field(default_factory=list)

    def up(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.stack.up(*extra, check=check)

    def set_tag(self, tag: str) -> None:
        self.stack.set_config("mcp:imageTag", tag)

    def history_log(self) -> str:
        """The audit log on the server (what the scripts ran), read over SSH."""
        path = self.target.deploy_dir / ".deploy" / "history.log"
        proc = self.server.ssh(f"cat {path} 2>/dev/null || true", check=True)
        return proc.stdout

    def served_version(self, http: HttpProbe) -> str:
        status, body = http.get(self.target.health_url)
        assert status == 200, f"health answered {status}: {body}"
        return str(json.loads(body)["version"])


def run_tool(
    e2e: E2EStack, script: str, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """One of the project's commands (rollback.py, promote.py, oncall.py) as a user runs it:
    with the stack's backend and passphrase, no terminal; its output joins the stack's log
    (checked for secrets)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=ROOT,
        env=e2e.stack.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    e2e.stack.log += [proc.stdout, proc.stderr]
    return proc


def stack_config(
    server: LocalServer, target: DeployTarget, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The stack config for `target`: the template's, with this target's dirs, port, project."""
    return target_config(
        ssh=(server.host, server.ssh_port, server.user),
        registry=server.registry,
        deploy_dir=str(target.deploy_dir),
        backup_dir=str(target.backup_dir),
        http_port=target.http_port,
        project=target.project,
        health=(HEALTH_ATTEMPTS, HEALTH_TIMEOUT_S),
        extra=extra,
    )


@pytest.fixture
def make_stack(
    pulumi_env: dict[str, str],
    local_server: LocalServer,
    make_deploy_target: Callable[..., DeployTarget],
    sample_images: dict[str, str],
) -> Iterator[Callable[..., E2EStack]]:
    """Factory: `make_stack(name, tag="v1", config={...})` -> a configured E2EStack."""
    made: list[E2EStack] = []

    def make(name: str, *, tag: str = "v1", config: dict[str, Any] | None = None) -> E2EStack:
        target = make_deploy_target(f"e2e-{name}")
        stack = PulumiStack(f"e2e-{name}-{secrets.token_hex(3)}", env=dict(pulumi_env))
        stack.create(stack_config(local_server, target, config))
        env_secret = f"APP_SECRET=e2e-{secrets.token_hex(12)}\n"
        values = MachineValues(
            host_key=local_server.host_public_key,
            ssh_private_key=local_server.private_key_path.read_text(),
            registry_user=local_server.registry_user,
            registry_password=local_server.registry_password,
            env_file_content=env_secret,
        )
        stack.set_machine_values(values, image_tag=tag)
        e2e = E2EStack(
            stack=stack,
            target=target,
            server=local_server,
            secret_values=[
                env_secret.strip(),
                local_server.registry_password,
                local_server.private_key_path.read_text().strip().splitlines()[1],
                pulumi_env["PULUMI_CONFIG_PASSPHRASE"],
            ],
        )
        made.append(e2e)
        return e2e

    yield make
    for e2e in made:
        e2e.stack.remove()
