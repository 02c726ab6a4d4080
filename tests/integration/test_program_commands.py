"""The Pulumi program's own command lines, run for real over SSH.

The unit tests prove what the program declares; this proves that those exact command lines
(built by components.remote_commands from typed settings), with the exact stdin the program
sends, work against the scripts on a real server, and that the outputs the program reads
(`components.server.script_result`) are what the scripts print.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from components import remote_commands
from components.server import script_result
from components.settings import AppSettings, PathSettings

if TYPE_CHECKING:
    from conftest import DeployTarget, HttpProbe, LocalServer

ENV_CONTENT = "APP_SECRET=from-program-test\n"
REPO = Path(__file__).resolve().parents[2]
SAMPLE_COMPOSE = REPO / "app" / "docker-compose.production.yml"


@dataclass
class ProgramSteps:
    """Runs the steps the way ServerDeployment declares them."""

    server: LocalServer
    target: DeployTarget
    paths: PathSettings
    app: AppSettings

    def ssh(self, command: str, stdin: str = "") -> tuple[int, dict[str, str], str]:
        proc = self.server.ssh(command, input=stdin, timeout=300)
        return proc.returncode, script_result(proc.stdout), proc.stderr

    def install(self) -> None:
        """What the CopyToRemote resources do: scripts to .deploy/bin, compose to staged/."""
        for name in remote_commands.SCRIPT_NAMES:
            directory = shlex.quote(self.paths.scripts_dir)
            destination = shlex.quote(f"{self.paths.scripts_dir}/{name}")
            self.server.ssh(
                f"mkdir -p {directory} && cat > {destination}",
                input=remote_commands.script_source(name).read_text(),
                check=True,
            )
        staged = f"{self.paths.staged_dir}/{self.app.compose_file}"
        self.server.ssh(
            f"mkdir -p {shlex.quote(self.paths.staged_dir)} && cat > {shlex.quote(staged)}",
            input=Path(self.app.compose_source).read_text(),
            check=True,
        )

    def deploy(self, image: str) -> tuple[dict[str, str], dict[str, str], int, str]:
        """backup -> deploy -> release; returns (backup result, release result, exit, stderr)."""
        code, backup, stderr = self.ssh(remote_commands.backup_command(self.paths, self.app))
        assert code == 0, stderr
        code, staged, stderr = self.ssh(
            remote_commands.deploy_command(
                self.paths,
                self.app,
                image,
                with_env_file=True,
                registry=self.server.registry,
                registry_user=self.server.registry_user,
            ),
            remote_commands.deploy_stdin(self.server.registry_password, ENV_CONTENT),
        )
        assert code == 0, stderr
        assert staged == {"staged_image": image}
        code, released, stderr = self.ssh(
            remote_commands.release_command(
                self.paths, self.app, backup["backup_id"], with_env_file=True
            )
        )
        return backup, released, code, stderr


def served_version(http: HttpProbe, url: str) -> str:
    status, body = http.get(url)
    assert status == 200, body
    return json.loads(body)["version"]


@pytest.fixture
def steps(
    local_server: LocalServer, make_deploy_target, sample_images: dict[str, str]
) -> ProgramSteps:
    target = make_deploy_target("program")
    paths = PathSettings(
        deploy_dir=str(target.deploy_dir),
        backup_dir=str(target.backup_dir),
        keep_backups=3,
        min_free_mb=1,
    )
    app = AppSettings(
        compose_source=str(SAMPLE_COMPOSE),
        compose_file=target.compose_file,
        env_file_name=target.env_file,
        service=target.service,
        health_url=target.health_url,
        health_attempts=6,
        health_timeout_seconds=15,
        public_url=f"http://127.0.0.1:{target.http_port}",
        lock_timeout_seconds=30,
        compose_project=target.project,
    )
    program = ProgramSteps(local_server, target, paths, app)
    program.install()
    return program


def test_program_commands_deploy_report_and_roll_back(
    steps: ProgramSteps, sample_images: dict[str, str], http: HttpProbe
) -> None:
    v1, v2 = sample_images["v1"], sample_images["v2"]

    backup, released, code, stderr = steps.deploy(v1)
    assert code == 0, stderr
    assert backup["previous_image"] == ""  # nothing ran before the first deploy
    assert released["image"] == v1
    assert '"version":"v1"' in released["health"].replace(" ", "")

    backup, released, code, stderr = steps.deploy(v2)
    assert code == 0, stderr
    assert backup["previous_image"] == v1  # the stack output `previous_image`
    assert released["image"] == v2
    good_backup = backup["backup_id"]

    backup, released, code, stderr = steps.deploy(sample_images["broken-500"])
    assert code == 10, stderr
    assert released == {}  # no result line: Pulumi records no output for a failed release
    assert "ROLLED BACK" in stderr and backup["backup_id"] in stderr
    assert served_version(http, steps.target.health_url) == "v2"

    code, restored, stderr = steps.ssh(
        remote_commands.restore_command(steps.paths, steps.app, good_backup)
    )
    assert code == 0, stderr
    assert restored == {"restored_backup": good_backup, "image": v1}
    assert served_version(http, steps.target.health_url) == "v1"


def test_rollback_works_when_docker_created_the_data_dir_as_root(
    steps: ProgramSteps, sample_images: dict[str, str], http: HttpProbe
) -> None:
    """Docker creates a missing bind-mount dir as root; the deploy user cannot move it to
    another directory, so the restore must rename it in place (found running the demo)."""
    _, _, code, stderr = steps.deploy(sample_images["v1"])
    assert code == 0, stderr
    data_dir = steps.target.deploy_dir / "data"
    os.chown(data_dir, 0, 0)  # as Docker leaves it when it creates ./data itself

    _, _, code, stderr = steps.deploy(sample_images["broken-crash"])
    assert code == 10, stderr
    assert "ROLLED BACK" in stderr
    assert served_version(http, steps.target.health_url) == "v1"
    assert not [p.name for p in steps.target.deploy_dir.iterdir() if p.name.startswith(".mcp-")]


def test_engine_less_runner_deploys_a_stack_file(
    local_server: LocalServer,
    make_deploy_target,
    sample_images: dict[str, str],
    http: HttpProbe,
    tmp_path: Path,
) -> None:
    """local/run_steps.py (the demo's --scripts-only mode) deploys from a stack file."""
    target = make_deploy_target("runner")
    stack_file = tmp_path / "Pulumi.runner.yaml"
    stack_file.write_text(
        json.dumps(  # JSON is YAML
            {
                "config": {
                    "mcp:server": {
                        "host": local_server.host,
                        "port": local_server.ssh_port,
                        "user": local_server.user,
                    },
                    "mcp:paths": {
                        "deployDir": str(target.deploy_dir),
                        "backupDir": str(target.backup_dir),
                        "minFreeMb": 1,
                    },
                    "mcp:app": {
                        "composeSource": str(SAMPLE_COMPOSE),
                        "service": target.service,
                        "healthUrl": target.health_url,
                        "healthAttempts": 6,
                        "healthTimeoutSeconds": 15,
                        "publicUrl": target.health_url,
                        "composeProject": target.project,
                    },
                    "mcp:image": {
                        "registry": local_server.registry,
                        "repository": "mcp/app",
                        "build": False,
                        "pullUser": local_server.registry_user,
                    },
                    "mcp:imageTag": "v2",
                }
            }
        )
    )
    password_file = tmp_path / "registry-password"
    password_file.write_text(local_server.registry_password)
    env_file = tmp_path / "env"
    env_file.write_text(ENV_CONTENT)
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "local" / "run_steps.py"),
            str(stack_file),
            "--set",
            f"mcp:server.hostKey={local_server.host_public_key}",
            "--set-from-file",
            f"mcp:sshPrivateKey={local_server.private_key_path}",
            "--set-from-file",
            f"mcp:registryPullPassword={password_file}",
            "--set-from-file",
            f"mcp:envFileContent={env_file}",
            "--ssh-option=-i",
            f"--ssh-option={local_server.private_key_path}",
            "--ssh-option=-oBatchMode=yes",
            "--ssh-option=-oStrictHostKeyChecking=yes",
            f"--ssh-option=-oUserKnownHostsFile={local_server.known_hosts_path}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert script_result(proc.stdout)["image"] == sample_images["v2"]
    assert served_version(http, target.health_url) == "v2"
    assert local_server.registry_password not in proc.stderr + proc.stdout
