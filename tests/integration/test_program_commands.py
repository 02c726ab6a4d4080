"""The Pulumi program's own command lines, run for real over SSH.

The unit tests prove what the program declares; this proves that those exact command lines
(built by components.remote_commands from typed settings), with the exact stdin the program
sends, work against the scripts on a real server, and that the outputs the program reads
(`components.server.script_result`) are what the scripts print.
"""

from __future__ import annotations

import json
import os
import re
import shlex
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

    def deploy(self, image: str) -> tuple[dict[str, str], int, str]:
        """deploy -> release (which backs up first); returns (release result, exit, stderr)."""
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
            remote_commands.release_command(self.paths, self.app, with_env_file=True)
        )
        return released, code, stderr


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

    released, code, stderr = steps.deploy(v1)
    assert code == 0, stderr
    assert released["previous_image"] == ""  # nothing ran before the first deploy
    assert released["image"] == v1
    assert '"version":"v1"' in released["health"].replace(" ", "")
    first_backup = released["backup_id"]
    assert (steps.target.backup_dir / f"mcp-backup-{first_backup}.tar.gz").is_file()

    released, code, stderr = steps.deploy(v2)
    assert code == 0, stderr
    # The stack outputs `previous_image` and `backup_id` come from the release's result line.
    assert released["previous_image"] == v1
    assert released["image"] == v2
    good_backup = released["backup_id"]
    assert good_backup != first_backup

    released, code, stderr = steps.deploy(sample_images["broken-500"])
    assert code == 10, stderr
    assert released == {}  # no result line: Pulumi records no output for a failed release
    rollback_backup = re.search(r"from backup ([0-9]{8}_[0-9]{6})", stderr)
    assert "ROLLED BACK" in stderr and rollback_backup, stderr
    assert rollback_backup.group(1) not in (first_backup, good_backup)  # taken by this attempt
    assert served_version(http, steps.target.health_url) == "v2"

    code, restored, stderr = steps.ssh(
        remote_commands.restore_command(steps.paths, steps.app, good_backup)
    )
    assert code == 0, stderr
    undo = restored.pop("replaced_backup")
    assert restored == {"restored_backup": good_backup, "image": v1}
    assert (steps.target.backup_dir / f"mcp-backup-{undo}.tar.gz").is_file()
    assert served_version(http, steps.target.health_url) == "v1"


def test_rollback_works_when_docker_created_the_data_dir_as_root(
    steps: ProgramSteps, sample_images: dict[str, str], http: HttpProbe
) -> None:
    """Docker creates a missing bind-mount dir as root; the deploy user cannot move it to
    another directory, so the restore must rename it in place (found running the demo)."""
    _, code, stderr = steps.deploy(sample_images["v1"])
    assert code == 0, stderr
    data_dir = steps.target.deploy_dir / "data"
    os.chown(data_dir, 0, 0)  # as Docker leaves it when it creates ./data itself

    _, code, stderr = steps.deploy(sample_images["broken-crash"])
    assert code == 10, stderr
    assert "ROLLED BACK" in stderr
    assert served_version(http, steps.target.health_url) == "v1"
    assert not [p.name for p in steps.target.deploy_dir.iterdir() if p.name.startswith(".mcp-")]
