"""The deploy plan (components/plan.py): uploads, exact command lines, stdin, triggers, order."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from components import remote_commands as rc
from components.plan import Digest, deploy_plan, file_sha256, tree_sha256
from components.remote_commands import ENV_FILE, IMAGE, PULL_PASSWORD
from components.settings import Settings
from tests.unit.conftest import TestKeys, base_config
from tests.unit.test_settings import load

REF = "ghcr.io/feustey/mcp:3f2c1ab@sha256:" + "a" * 64
COMMON = (
    "--deploy-dir /opt/mcp --compose-file docker-compose.production.yml "
    "--service mcp-api-prod --lock-timeout 120"
)
HEALTH = "--health-url http://localhost:8000/api/v1/health --attempts 10 --timeout 60"
BIN = "/opt/mcp/.deploy/bin"


def settings(keys: TestKeys, **app: Any) -> Settings:
    config = base_config(keys)
    config["app"] = {**config["app"], **app}
    return load(config)


def test_deploy_step_with_registry_login_and_env_file(test_keys: TestKeys) -> None:
    deploy = deploy_plan(settings(test_keys)).step("deploy")
    assert deploy.command({"image": REF}) == (
        f"bash {BIN}/deploy.sh {COMMON} --image {REF} --env-file .env.production "
        "--registry ghcr.io --registry-user feustey"
    )
    assert deploy.stdin == (PULL_PASSWORD, ENV_FILE)  # names, never values
    assert deploy.triggers[0] == IMAGE and deploy.triggers[2] == Digest(ENV_FILE)
    assert deploy.after == ("scripts-install", "compose")
    assert deploy.result_keys == ("staged_image",)


def test_deploy_step_without_registry_login_or_env_file(test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    config.pop("envFileContent")
    config.pop("registryPullPassword")
    config["image"] = {k: v for k, v in config["image"].items() if k != "pullUser"}
    plan = deploy_plan(load(config))
    deploy = plan.step("deploy")
    command = deploy.command({"image": REF})
    assert "--registry" not in command and "--env-file" not in command
    assert deploy.stdin == ()  # an empty stdin, as before: the resource's inputs stay the same
    assert len(deploy.triggers) == 2  # image, compose file
    assert "--env-file" not in plan.step("release").command()


def test_release_and_restore_command_lines_stay_those_of_existing_stacks(
    test_keys: TestKeys,
) -> None:
    release = deploy_plan(settings(test_keys)).step("release")
    assert release.command() == (
        f"bash {BIN}/release.sh {COMMON} {HEALTH} --env-file .env.production "
        "--backup-dir /opt/mcp-backups --keep 7 --min-free-mb 100"
    )
    assert release.after == ("deploy",) and release.stdin is None
    assert "--backup-id" not in release.command()  # it backs up itself, every attempt
    config = base_config(test_keys)
    config["restoreBackup"] = "latest"
    plan = deploy_plan(load(config))
    assert [step.name for step in plan.steps] == ["scripts-install", "restore"]
    assert plan.step("restore").after == ("scripts-install",)
    assert plan.step("restore").command() == (
        f"bash {BIN}/restore.sh {COMMON} {HEALTH} --min-free-mb 100 "
        "--backup-dir /opt/mcp-backups --backup latest"
    )
    assert plan.step("restore").triggers == ("latest",)
    assert {(r.output, r.step, r.key) for r in plan.outputs} == {
        ("image", "restore", "image"),
        ("backup_id", "restore", "restored_backup"),
        ("previous_image", None, None),
    }
    assert "compose" not in {upload.name for upload in plan.uploads}


def test_uploads_are_the_remote_folder_in_one_copy_and_the_compose_file(
    test_keys: TestKeys,
) -> None:
    plan = deploy_plan(settings(test_keys))
    uploads = {upload.name: upload for upload in plan.uploads}
    assert set(uploads) == {"scripts", "compose"}
    scripts = uploads["scripts"]
    version = tree_sha256(rc.SCRIPTS_SOURCE_DIR)
    # Never into .deploy/bin/, where scripts run: a directory of its own, installed by a step.
    assert scripts.source == rc.SCRIPTS_SOURCE_DIR
    assert scripts.remote_path == f"/opt/mcp/.deploy/bin.upload/{version}"
    install = plan.step("scripts-install")
    assert install.command() == (
        f"bash /opt/mcp/.deploy/bin.upload/{version}/install-scripts.sh "
        f"--deploy-dir /opt/mcp --version {version}"
    )
    assert install.after == ("scripts",) and install.triggers == (version,)
    assert install.stdin is None and install.result_keys == ("version", "scripts_dir")
    assert uploads["compose"].after == ("scripts",)
    assert len(list(rc.SCRIPTS_SOURCE_DIR.rglob("*.sh"))) >= 7  # every script rides along
    assert uploads["compose"].remote_path == "/opt/mcp/.deploy/staged/docker-compose.production.yml"


def test_the_scripts_are_copied_again_when_any_file_under_remote_changes(
    test_keys: TestKeys, tmp_path: Path
) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "a.sh").write_text("echo a\n")
    (tmp_path / "lib" / "b.sh").write_text("echo b\n")
    before = tree_sha256(tmp_path)
    (tmp_path / "lib" / "b.sh").write_text("echo B\n")
    assert tree_sha256(tmp_path) != before
    assert deploy_plan(settings(test_keys)).uploads[0].triggers == (
        tree_sha256(rc.SCRIPTS_SOURCE_DIR),
    )


def test_every_value_is_shell_quoted_and_secrets_never_reach_a_command_line() -> None:
    words = ("bash", "x.sh", "--image", IMAGE)
    hostile = "x; touch /tmp/pwned"
    assert shlex.split(rc.command_line(words, {"image": hostile}))[-1] == hostile
    with pytest.raises(ValueError, match="secret"):
        rc.command_line((*words, PULL_PASSWORD), {"image": "i", PULL_PASSWORD.name: "t"})


def test_stdin_puts_password_line_first_then_the_env_file() -> None:
    both = (PULL_PASSWORD, ENV_FILE)
    values = {PULL_PASSWORD.name: "token\n", ENV_FILE.name: "A=1\nB=2"}
    assert rc.stdin_text(both, values) == "token\nA=1\nB=2\n"
    assert rc.stdin_text((ENV_FILE,), {ENV_FILE.name: "A=1\n"}) == "A=1\n"
    assert rc.stdin_text((PULL_PASSWORD,), {PULL_PASSWORD.name: "token"}) == "token\n"
    assert rc.stdin_text((), {}) == ""


def test_compose_project_is_passed_only_when_configured(test_keys: TestKeys) -> None:
    assert "--project" not in deploy_plan(settings(test_keys)).step("release").command()
    named = deploy_plan(settings(test_keys, composeProject="mcp-blue")).step("release")
    assert f"--lock-timeout 120 --project mcp-blue {HEALTH}" in named.command()


def test_backup_consistency_options_reach_every_step_that_backs_up(test_keys: TestKeys) -> None:
    dump = "sh -c 'pg_dump -U mcp mcp > /data/dump.sql'"
    for app in ({}, {"preBackupCommand": dump, "pauseDuringBackup": True}):
        config = base_config(test_keys)
        config["app"] = {**config["app"], **app}
        release = deploy_plan(load(config)).step("release").command()
        config["restoreBackup"] = "latest"
        restore = deploy_plan(load(config)).step("restore").command()
        for command in (release, restore):
            words = shlex.split(command)
            if not app:
                assert "--pre-backup-command" not in words and "--pause-during-backup" not in words
                continue
            assert words[words.index("--pre-backup-command") + 1] == dump  # one quoted word
            flag_at = words.index("--pause-during-backup")
            assert flag_at + 1 == len(words) or words[flag_at + 1].startswith("--")  # no value


def test_a_new_tag_uploads_nothing_only_a_changed_compose_file_is_copied_again(
    test_keys: TestKeys,
) -> None:
    compose = next(u for u in deploy_plan(settings(test_keys)).uploads if u.name == "compose")
    # Triggers hold no image reference and no env file: a new tag or env leaves the copy alone.
    assert IMAGE not in compose.triggers and Digest(ENV_FILE) not in compose.triggers
    assert compose.triggers == (file_sha256(compose.source),)
