"""The exact command lines the server steps run (commands are data)."""

from __future__ import annotations

import shlex

import pytest

from components import remote_commands
from components.settings import AppSettings, PathSettings

PATHS = PathSettings("/opt/mcp", "/opt/mcp-backups", keep_backups=7, min_free_mb=100)
APP = AppSettings(
    compose_source="docker-compose.production.yml",
    compose_file="docker-compose.production.yml",
    env_file_name=".env.production",
    service="mcp-api-prod",
    health_url="http://localhost:8000/api/v1/health",
    health_attempts=30,
    health_timeout_seconds=120,
    public_url="https://api.dazno.de",
    lock_timeout_seconds=60,
)
COMMON = (
    "--deploy-dir /opt/mcp --compose-file docker-compose.production.yml "
    "--service mcp-api-prod --lock-timeout 60"
)
HEALTH = "--health-url http://localhost:8000/api/v1/health --attempts 30 --timeout 120"


def test_backup_command() -> None:
    assert remote_commands.backup_command(PATHS, APP) == (
        f"bash /opt/mcp/.deploy/bin/backup.sh {COMMON} "
        "--backup-dir /opt/mcp-backups --keep 7 --min-free-mb 100"
    )


def test_deploy_command_with_registry_and_env() -> None:
    command = remote_commands.deploy_command(
        PATHS,
        APP,
        "ghcr.io/feustey/mcp:3f2c1ab@sha256:" + "a" * 64,
        with_env_file=True,
        registry="ghcr.io",
        registry_user="feustey",
    )
    assert command == (
        f"bash /opt/mcp/.deploy/bin/deploy.sh {COMMON} "
        f"--image ghcr.io/feustey/mcp:3f2c1ab@sha256:{'a' * 64} --env-file .env.production "
        "--registry ghcr.io --registry-user feustey"
    )


def test_deploy_command_without_registry_login() -> None:
    command = remote_commands.deploy_command(
        PATHS, APP, "ghcr.io/feustey/mcp:v1", with_env_file=False, registry=None, registry_user=None
    )
    assert "--registry" not in command and "--env-file" not in command


def test_release_and_restore_commands() -> None:
    # The release takes its own backup (same dir, retention and space margin as backup.sh)
    # and rolls back to it: it is never handed an older backup id.
    assert remote_commands.release_command(PATHS, APP, with_env_file=True) == (
        f"bash /opt/mcp/.deploy/bin/release.sh {COMMON} {HEALTH} --env-file .env.production "
        "--backup-dir /opt/mcp-backups --keep 7 --min-free-mb 100"
    )
    assert remote_commands.restore_command(PATHS, APP, "latest") == (
        f"bash /opt/mcp/.deploy/bin/restore.sh {COMMON} {HEALTH} --min-free-mb 100 "
        "--backup-dir /opt/mcp-backups --backup latest"
    )


def test_every_value_is_shell_quoted() -> None:
    hostile = "x; touch /tmp/pwned"
    command = remote_commands.restore_command(PATHS, APP, hostile)
    assert shlex.split(command)[-1] == hostile


def test_deploy_stdin_puts_password_first_then_env_file() -> None:
    assert remote_commands.deploy_stdin("token\n", "A=1\nB=2") == "token\nA=1\nB=2\n"
    assert remote_commands.deploy_stdin(None, "A=1\n") == "A=1\n"
    assert remote_commands.deploy_stdin("token", None) == "token\n"
    assert remote_commands.deploy_stdin(None, None) == ""


def test_every_script_the_program_installs_exists_in_the_repo() -> None:
    for name in remote_commands.SCRIPT_NAMES:
        assert remote_commands.script_source(name).is_file(), name


def test_compose_project_is_passed_only_when_configured() -> None:
    assert "--project" not in remote_commands.backup_command(PATHS, APP)
    named = AppSettings(**{**APP.__dict__, "compose_project": "mcp-blue"})
    assert remote_commands.backup_command(PATHS, named).endswith(
        "--lock-timeout 60 --project mcp-blue "
        "--backup-dir /opt/mcp-backups --keep 7 --min-free-mb 100"
    )


def test_release_ignores_a_backup_id_from_older_callers() -> None:
    """A stale backup id must never become the rollback target, even if a caller passes one."""
    with pytest.warns(DeprecationWarning, match="ignored"):
        command = remote_commands.release_command(PATHS, APP, "20251017_143025", with_env_file=True)
    assert command == remote_commands.release_command(PATHS, APP, with_env_file=True)
    assert "--backup-id" not in command and "20251017_143025" not in command


def test_backup_consistency_options_reach_every_script_that_backs_up() -> None:
    """mcp:app.preBackupCommand / pauseDuringBackup: backup.sh, release.sh (its own backup)
    and restore.sh (the backup of what it replaces); absent when unset."""
    for command in (
        remote_commands.backup_command(PATHS, APP),
        remote_commands.release_command(PATHS, APP, with_env_file=False),
        remote_commands.restore_command(PATHS, APP, "latest"),
    ):
        assert "--pre-backup-command" not in command and "--pause-during-backup" not in command
    dump = "sh -c 'pg_dump -U mcp mcp > /data/dump.sql'"
    busy = AppSettings(**{**APP.__dict__, "pre_backup_command": dump, "pause_during_backup": True})
    for command in (
        remote_commands.backup_command(PATHS, busy),
        remote_commands.release_command(PATHS, busy, with_env_file=False),
        remote_commands.restore_command(PATHS, busy, "latest"),
    ):
        words = shlex.split(command)
        assert words[words.index("--pre-backup-command") + 1] == dump  # one quoted word
        assert "--pause-during-backup" in words
        flag_at = words.index("--pause-during-backup")
        assert flag_at + 1 == len(words) or words[flag_at + 1].startswith("--")  # no value
