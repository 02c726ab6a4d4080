"""What `__main__.py` declares, on Pulumi's mocks: resources, inputs, secrets and ordering."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.plan import tree_sha256
from components.remote_commands import SCRIPTS_SOURCE_DIR
from tests.unit.conftest import FAKE_DIGEST, ProgramRun, TestKeys, base_config

REMOTE_COMMAND = "command:remote:Command"
COPY = "command:remote:CopyToRemote"
SECRET_VALUES = (
    "pull-token-value",
    "db-password",
    "slack-secret-value",
)

Run = Callable[..., ProgramRun]


@pytest.fixture
def production(run_program: Run, test_keys: TestKeys) -> ProgramRun:
    return run_program(base_config(test_keys))


def rollback_config(test_keys: TestKeys) -> dict[str, Any]:
    config = base_config(test_keys)
    config["image"] = {**config["image"], "build": False}
    config["imageTag"] = "0ld7a9"
    return config


# GitHub: tests/unit/test_github_setup.py


# ---------------------------------------------------------------- image


def test_image_is_built_tagged_by_commit_and_latest_and_pushed(production: ProgramRun) -> None:
    (image,) = production.of_type("docker:index/image:Image")
    assert image.inputs["imageName"] == "ghcr.io/feustey/mcp:3f2c1ab"
    assert image.inputs["build"]["args"] == {"VERSION": "3f2c1ab"}
    assert image.inputs["build"]["dockerfile"].endswith("/Dockerfile")
    assert image.inputs["registry"]["server"] == "ghcr.io"
    (tag,) = production.of_type("docker:index/tag:Tag")
    assert tag.inputs["targetImage"] == "ghcr.io/feustey/mcp:latest"
    assert tag.inputs["sourceImage"] == f"ghcr.io/feustey/mcp@{FAKE_DIGEST}"
    # Production sets no push user: the workflow's `docker login` is the push credential, which
    # docker.RegistryImage cannot use (it reads no Docker config file): the CLI pushes `latest`.
    assert not production.of_type("docker:index/registryImage:RegistryImage")
    push = production.get("app-push-latest")
    assert push.type == "command:local:Command"
    script = "bash components/scripts/push-latest.sh"
    assert push.inputs["create"] == f"{script} ghcr.io/feustey/mcp:latest"
    assert push.inputs["triggers"] == [f"ghcr.io/feustey/mcp@{FAKE_DIGEST}"]
    assert production.depends_on("app-push-latest", "app-tag-latest")


def test_server_deploys_the_digest_pinned_reference(production: ProgramRun) -> None:
    deploy = production.get("server-deploy")
    assert f"--image ghcr.io/feustey/mcp:3f2c1ab@{FAKE_DIGEST}" in deploy.inputs["create"]
    assert f"ghcr.io/feustey/mcp:3f2c1ab@{FAKE_DIGEST}" in deploy.inputs["triggers"]


def test_rollback_to_an_existing_tag_builds_nothing(run_program: Run, test_keys: TestKeys) -> None:
    run = run_program(rollback_config(test_keys))
    assert not [r for r in run.registered.values() if r.type.startswith("docker:")]
    assert "--image ghcr.io/feustey/mcp:0ld7a9 " in run.get("server-deploy").inputs["create"]


def test_push_credentials_are_secret_when_configured(run_program: Run, test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    config["image"] = {**config["image"], "pushUser": "feustey"}
    config["registryPushPassword"] = "push-token-value"
    run = run_program(config)
    (image,) = run.of_type("docker:index/image:Image")
    assert "registry" in image.secret_paths()
    assert image.inputs["registry"]["password"] == "push-token-value"
    # With a push user, `latest` goes through pulumi-docker with the same credentials.
    (push,) = run.of_type("docker:index/registryImage:RegistryImage")
    assert push.inputs["name"] == "ghcr.io/feustey/mcp:latest"
    assert push.inputs["authConfig"]["username"] == "feustey"
    assert "authConfig" in push.secret_paths()
    assert not [c for c in run.of_type("command:local:Command") if c.name == "app-push-latest"]


# ---------------------------------------------------------------- server


def test_connection_pins_the_host_key_and_keeps_the_key_secret(
    production: ProgramRun, test_keys: TestKeys
) -> None:
    for step in production.of_type(REMOTE_COMMAND) + production.of_type(COPY):
        connection = step.inputs["connection"]
        assert connection["hostKey"] == test_keys.host_key, step.name
        assert connection["host"] == "147.79.101.32"
        assert connection["user"] == "feustey"
        assert "connection" in step.secret_paths(), step.name


def test_every_remote_script_is_installed_before_any_step(production: ProgramRun) -> None:
    copies = {r.inputs["remotePath"]: r for r in production.of_type(COPY)}
    # The remote/ folder, in one copy, to a directory of its own named by its hash: never into
    # .deploy/bin/, where scripts run (a running script must never read rewritten bytes).
    scripts = copies[f"/opt/mcp/.deploy/bin.upload/{tree_sha256(SCRIPTS_SOURCE_DIR)}"]
    source = scripts.inputs["source"]
    assert isinstance(source, pulumi.FileArchive) and source.path.endswith("/remote/")
    for script in ("lib.sh", "backup.sh", "deploy.sh", "release.sh", "restore.sh"):
        assert (Path(source.path) / script).is_file()
    install = production.get("server-scripts-install")  # switches .deploy/bin to the copy
    assert "/install-scripts.sh --deploy-dir /opt/mcp --version " in install.inputs["create"]
    assert production.depends_on("server-scripts-install", scripts.name)
    assert production.depends_on("server-compose", scripts.name)
    assert production.depends_on("server-deploy", "server-scripts-install")


def test_steps_run_in_order_deploy_then_release(production: ProgramRun) -> None:
    # No separate backup step: the release backs up at the start of every attempt.
    assert "server-backup" not in production.registered
    assert production.depends_on("server-deploy", "server-compose")
    assert production.depends_on("server-release", "server-deploy")
    assert not production.depends_on("server-deploy", "server-release")


def test_steps_run_the_repo_scripts_with_the_configured_values(production: ProgramRun) -> None:
    release = production.get("server-release").inputs["create"]
    assert release.startswith("bash /opt/mcp/.deploy/bin/release.sh ")
    assert "--health-url http://localhost:8000/api/v1/health --attempts 10 --timeout 60" in release
    # The release takes its own backup and rolls back to it: no backup id is passed, so a
    # retried `pulumi up` can never roll back to the backup of an earlier attempt.
    assert "--backup-dir /opt/mcp-backups --keep 7 --min-free-mb" in release
    assert "--backup-id" not in release
    compose = production.get("server-compose")
    assert compose.inputs["remotePath"] == "/opt/mcp/.deploy/staged/docker-compose.production.yml"


def test_secrets_go_on_stdin_never_in_commands_or_environment(production: ProgramRun) -> None:
    deploy = production.get("server-deploy")
    assert "stdin" in deploy.secret_paths()
    assert deploy.inputs["stdin"] == (
        "pull-token-value\nDATABASE_URL=postgres://u:db-password@db/mcp\n"
    )
    assert "--registry ghcr.io --registry-user feustey --" not in deploy.inputs["create"]
    for step in production.of_type(REMOTE_COMMAND) + production.of_type("command:local:Command"):
        assert "environment" not in step.inputs, step.name
        visible = json.dumps(
            {k: v for k, v in step.inputs.items() if k not in ("stdin", "connection")}
        )
        for secret in SECRET_VALUES:
            assert secret not in visible, (step.name, secret)


def test_steps_rerun_only_when_image_compose_or_env_change(
    run_program: Run, test_keys: TestKeys
) -> None:
    first = run_program(rollback_config(test_keys)).get("server-release").inputs["triggers"]
    again = run_program(rollback_config(test_keys)).get("server-release").inputs["triggers"]
    assert first == again
    config = rollback_config(test_keys)
    config["imageTag"] = "n3w7a9"
    assert run_program(config).get("server-release").inputs["triggers"] != first
    config = rollback_config(test_keys)
    config["envFileContent"] = "DATABASE_URL=changed\n"
    changed_env = run_program(config)
    assert changed_env.get("server-release").inputs["triggers"] != first
    assert "triggers" in changed_env.get("server-release").secret_paths()


def test_outputs_describe_what_the_server_reports(production: ProgramRun) -> None:
    # All three come from the release step's result line (FakeCloud: tests/unit/conftest.py).
    assert production.outputs == {
        "image": "ghcr.io/feustey/mcp:from-release",
        "backup_id": "20251017_143025",
        "previous_image": "ghcr.io/feustey/mcp:old",
    }


def test_restore_config_runs_only_the_restore_step(run_program: Run, test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    config["restoreBackup"] = "latest"
    run = run_program(config)
    commands = {r.name for r in run.of_type(REMOTE_COMMAND)}
    assert commands == {"server-scripts-install", "server-restore"}
    assert not [r for r in run.registered.values() if r.type.startswith("docker:")]
    restore = run.get("server-restore")
    assert restore.inputs["create"].endswith("--backup-dir /opt/mcp-backups --backup latest")
    assert run.outputs["backup_id"] == "20251017_143025"
    assert run.outputs["image"] == "ghcr.io/feustey/mcp:restored"


# ---------------------------------------------------------------- notification


def test_the_program_posts_no_notification_the_workflow_does_after_the_smoke_test(
    production: ProgramRun,
) -> None:
    """A success message from the program would go out before the workflow's smoke test: the
    program posts nothing; `oncall.py notify` does, once per run, at its end (ops/notify.py)."""
    local = production.of_type("command:local:Command")
    assert not [c for c in local if "curl" in str(c.inputs.get("create"))]
    assert not [r for r in production.registered.values() if "Notification" in r.type]


def test_bad_config_fails_before_any_resource_is_declared(
    run_program: Run, test_keys: TestKeys
) -> None:
    config = base_config(test_keys)
    config["server"] = {**config["server"], "port": "twenty-two"}
    with pytest.raises(Exception, match=r"mcp:server\.port: must be a whole number"):
        run_program(config)


def test_backup_consistency_settings_reach_the_release(
    run_program: Run, test_keys: TestKeys
) -> None:
    """mcp:app.preBackupCommand / mcp:app.pauseDuringBackup shape the release's own backup."""
    config = base_config(test_keys)
    dump = "sh -c 'pg_dump -U mcp mcp > /data/dump.sql'"
    config["app"] = {**config["app"], "preBackupCommand": dump, "pauseDuringBackup": True}
    release = shlex.split(run_program(config).get("server-release").inputs["create"])
    assert release[release.index("--pre-backup-command") + 1] == dump
    assert "--pause-during-backup" in release
    plain = run_program(base_config(test_keys)).get("server-release").inputs["create"]
    assert "--pre-backup-command" not in plain and "--pause-during-backup" not in plain


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("preBackupCommand", "sh -c 'unbalanced", "balanced quotes"),
        ("preBackupCommand", "line one\nline two", "one line"),
        ("pauseDuringBackup", "sometimes", "must be true or false"),
    ],
)
def test_bad_backup_consistency_settings_fail_before_any_resource(
    run_program: Run, test_keys: TestKeys, key: str, value: str, message: str
) -> None:
    config = base_config(test_keys)
    config["app"] = {**config["app"], key: value}
    with pytest.raises(Exception, match=rf"mcp:app\.{key}: .*{message}"):
        run_program(config)
