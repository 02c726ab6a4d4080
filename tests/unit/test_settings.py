"""The config layer: valid config becomes typed settings; every bad value is named with a fix."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from components.settings import ConfigError, Settings, load_settings
from tests.unit.conftest import SECRET_KEYS, TestKeys, base_config


class DictSource:
    def __init__(self, config: dict[str, Any], secret_keys: set[str] | None = None) -> None:
        self.values = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in config.items()
        }
        self.secret_keys = SECRET_KEYS if secret_keys is None else secret_keys

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def is_secret(self, key: str) -> bool:
        return key in self.secret_keys


def load(config: dict[str, Any], secret_keys: set[str] | None = None) -> Settings:
    return load_settings(DictSource(config, secret_keys))


def problems_for(config: dict[str, Any], secret_keys: set[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(config, secret_keys)
    return raised.value.problems


def with_field(config: dict[str, Any], key: str, name: str, value: Any) -> dict[str, Any]:
    changed = json.loads(json.dumps({k: v for k, v in config.items()}))
    if value is None:
        changed[key].pop(name)
    else:
        changed[key][name] = value
    return changed


def test_valid_config_becomes_typed_settings(test_keys: TestKeys) -> None:
    settings = load(base_config(test_keys))
    assert settings.server.host == "147.79.101.32"
    assert settings.server.port == 22
    assert settings.server.host_key == test_keys.host_key
    assert isinstance(settings.server.private_key, pulumi.Output)
    assert settings.paths.keep_backups == 7
    assert settings.paths.scripts_dir == "/opt/mcp/.deploy/bin"
    assert settings.app.compose_file == "docker-compose.production.yml"
    assert settings.app.health_attempts == 10
    assert settings.image.reference == "ghcr.io/feustey/mcp:3f2c1ab"
    assert settings.image.build is True
    assert settings.github is not None and settings.github.reviewer_user_ids == (1234567,)
    assert settings.restore_backup is None and not settings.is_restore


def test_defaults_apply_when_optional_keys_are_absent(test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    for key in ("github", "slackWebhookUrl", "envFileContent"):
        config.pop(key)
    config["paths"] = {"deployDir": "/opt/mcp", "backupDir": "/opt/mcp-backups"}
    settings = load(config)
    assert settings.github is None
    assert settings.slack_webhook_url is None
    assert settings.env_file_content is None
    assert settings.paths.keep_backups == 10
    assert settings.app.env_file_name == ".env.production"


@pytest.mark.parametrize(
    ("key", "name", "value", "expected"),
    [
        ("server", "port", "ssh", "mcp:server.port: must be a whole number"),
        ("server", "port", 70000, "mcp:server.port: must be between 1 and 65535"),
        ("server", "host", "bad host;rm", "mcp:server.host: must be a host name"),
        ("server", "user", None, "mcp:server.user: is missing"),
        (
            "server",
            "hostKey",
            "ssh-ed25519 not-base64!",
            "mcp:server.hostKey: must be the server's",
        ),
        ("server", "hostKey", None, "mcp:server.hostKey: is missing"),
        ("paths", "deployDir", "opt/mcp", "mcp:paths.deployDir: must be an absolute"),
        ("paths", "backupDir", "/opt/mcp", "mcp:paths.backupDir: must differ"),
        ("paths", "keepBackups", 0, "mcp:paths.keepBackups: must be between 1 and 1000"),
        ("app", "healthUrl", "http://x/$(id)", "mcp:app.healthUrl: must be an http(s) URL"),
        ("app", "healthAttempts", "many", "mcp:app.healthAttempts: must be a whole number"),
        ("app", "service", "bad service", "mcp:app.service: must be a compose service name"),
        ("app", "composeSource", "missing.yml", "mcp:app.composeSource: file 'missing.yml'"),
        ("image", "repository", "Feustey/MCP", "mcp:image.repository: must be a lower-case"),
        ("image", "build", "maybe", "mcp:image.build: must be true or false"),
        ("github", "reviewerUserIds", ["alice"], "mcp:github.reviewerUserIds: must be a list"),
    ],
)
def test_bad_value_names_the_key_and_shows_an_example(
    test_keys: TestKeys, key: str, name: str, value: Any, expected: str
) -> None:
    problems = problems_for(with_field(base_config(test_keys), key, name, value))
    matching = [problem for problem in problems if problem.startswith(expected)]
    assert matching, problems
    assert "Example: " in matching[0]


@pytest.mark.parametrize("tag", ["", "has space", "v1;rm -rf /", "$(id)", "`id`", "-leading"])
def test_bad_image_tag_is_refused(test_keys: TestKeys, tag: str) -> None:
    config = base_config(test_keys)
    config["imageTag"] = tag
    problems = problems_for(config)
    assert any(problem.startswith("mcp:imageTag:") for problem in problems), problems


def test_missing_objects_are_all_reported_at_once(test_keys: TestKeys) -> None:
    problems = problems_for({"sshPrivateKey": test_keys.private_key})
    for key in ("mcp:server:", "mcp:paths:", "mcp:app:", "mcp:image:", "mcp:imageTag:"):
        assert any(problem.startswith(key) for problem in problems), (key, problems)


def test_secret_stored_in_plain_text_is_refused_without_showing_it(test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    problems = problems_for(config, secret_keys=SECRET_KEYS - {"registryPullPassword"})
    message = "\n".join(problems)
    assert "mcp:registryPullPassword: is stored in plain text" in message
    assert "pulumi config set --secret mcp:registryPullPassword" in message
    assert "pull-token-value" not in message


def test_private_key_that_is_not_a_key_is_refused_without_showing_it(test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    config["sshPrivateKey"] = "hunter2"
    with pytest.raises(ConfigError) as raised:
        load(config)
    message = str(raised.value)
    assert "mcp:sshPrivateKey: is not a PEM/OpenSSH private key" in message
    assert "hunter2" not in message


def test_restore_backup_accepts_timestamp_or_latest_only(test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    config["restoreBackup"] = "latest"
    assert load(config).restore_backup == "latest"
    config["restoreBackup"] = "20251017_143025"
    assert load(config).is_restore
    config["restoreBackup"] = "yesterday"
    assert any(p.startswith("mcp:restoreBackup:") for p in problems_for(config))


def test_config_error_is_a_clean_pulumi_error(test_keys: TestKeys) -> None:
    error = ConfigError(["mcp:x: is missing. Example: 1"])
    assert isinstance(error, pulumi.RunError)
    assert "nothing was deployed" in str(error)
