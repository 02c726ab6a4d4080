"""A key or object field the key table does not know is refused, naming the closest known key.

Without this, `mcp:app.healthURL` was silently ignored and only led to "healthUrl is missing",
and a misspelt optional key (`mcp:paths.keepBackup`) to its default being used without a word.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
import yaml

from components import config_keys
from components.settings import ConfigError, MappingConfigSource, PulumiConfigSource, load_settings
from local.stack import target_config
from tests.unit.conftest import ROOT, SECRET_KEYS, ProgramRun, TestKeys, base_config
from tests.unit.test_settings import load, problems_for


def with_field(config: dict[str, Any], obj: str, field: str, value: Any) -> dict[str, Any]:
    changed = json.loads(json.dumps(config))
    changed[obj][field] = value
    return changed


@pytest.mark.parametrize(
    ("obj", "field", "meant"),
    [
        ("app", "healthURL", "app.healthUrl"),
        ("app", "helthUrl", "app.healthUrl"),
        ("app", "healthstatus", "app.healthStatus"),
        ("paths", "keepBackup", "paths.keepBackups"),
        ("server", "hostkey", "server.hostKey"),
        ("image", "repositry", "image.repository"),
        ("github", "reviewerUserId", "github.reviewerUserIds"),
    ],
)
def test_an_unknown_object_field_names_the_closest_field(
    test_keys: TestKeys, obj: str, field: str, meant: str
) -> None:
    problems = problems_for(with_field(base_config(test_keys), obj, field, "x"))
    (problem,) = [p for p in problems if p.startswith(f"mcp:{obj}.{field}: ")]
    assert f"is not a known key (a misspelling?); did you mean mcp:{meant}?" in problem
    assert problem.endswith(f"Example: {config_keys.key(meant).example}")
    assert problems[0] == problem, "the misspelling is reported first: it explains the rest"


def test_a_misspelt_required_field_is_reported_with_what_it_leaves_missing(
    test_keys: TestKeys,
) -> None:
    config = base_config(test_keys)
    config["app"]["healthURL"] = config["app"].pop("healthUrl")
    problems = problems_for(config)
    assert problems[0].startswith("mcp:app.healthURL: is not a known key")
    assert "mcp:app.healthUrl" in problems[0]
    assert any(p.startswith("mcp:app.healthUrl: is missing") for p in problems), problems


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("imagetag", "imageTag"),
        ("imageTags", "imageTag"),
        ("imagePinned", "imagePin"),
        ("sshPrivateKy", "sshPrivateKey"),
        ("slackWebhookURL", "slackWebhookUrl"),
        ("restoreBackups", "restoreBackup"),
        ("healthUrl", "app.healthUrl"),  # a field written as a key of its own
        ("relese", "release"),
    ],
)
def test_an_unknown_top_level_key_names_the_closest_key(
    test_keys: TestKeys, key: str, meant: str
) -> None:
    config = base_config(test_keys)
    config[key] = "x"
    problems = problems_for(config)
    (problem,) = [p for p in problems if p.startswith(f"mcp:{key}: ")]
    assert f"did you mean mcp:{meant}?" in problem, problem


def test_an_unknown_key_with_nothing_close_lists_the_known_ones(test_keys: TestKeys) -> None:
    config = with_field(base_config(test_keys), "paths", "zzz", 1)
    config["qqqqqqqq"] = "x"
    problems = problems_for(config)
    (field,) = [p for p in problems if p.startswith("mcp:paths.zzz: ")]
    assert "the known ones: mcp:paths.deployDir, mcp:paths.backupDir" in field
    (top,) = [p for p in problems if p.startswith("mcp:qqqqqqqq: ")]
    assert "mcp:imageTag" in top and "mcp:server" in top


def test_a_field_set_as_a_key_of_its_own_says_how_to_set_it(test_keys: TestKeys) -> None:
    """`pulumi config set mcp:app.healthStatus 302` (without --path) makes a key named
    `app.healthStatus`, which the program would never read."""
    config = base_config(test_keys)
    config["app.healthStatus"] = "302"
    (problem,) = [p for p in problems_for(config) if p.startswith("mcp:app.healthStatus: ")]
    assert "is a field of mcp:app, not a key of its own" in problem
    assert "pulumi config set --path 'mcp:app.healthStatus'" in problem


def test_every_known_key_and_field_loads(test_keys: TestKeys) -> None:
    """The check refuses nothing the table knows: every row set at once still loads."""
    config = base_config(test_keys)
    config["app"].update(
        composeFile="compose.yml",
        envFile=".env.production",
        healthStatus=204,
        lockTimeoutSeconds=60,
        composeProject="mcp",
        preBackupCommand="true",
        pauseDuringBackup=False,
        strategy="canary",
    )
    config["paths"].update(minFreeMb=50)
    config["server"].update(port=22)
    config["proxy"] = {
        "image": "ghcr.io/feustey/mcp-proxy:caddy-2.11.9",
        "listen": "127.0.0.1:8000",
        "colourPorts": [8001, 8002],
        "drainSeconds": 2,
    }
    config["canary"] = {
        "steps": [10, 50, 100],
        "holdSeconds": 30,
        "maxErrorPercent": 1,
        "maxLatencyMs": 1000,
    }
    config["image"].update(
        registry="ghcr.io", dockerfile="Dockerfile", prepare=["true"], pushUser="feustey"
    )
    config["registryPushPassword"] = "push-token-value"
    config["github"].update(
        environment="production",
        reviewerTeamIds=[7],
        pulumiBackendUrl="s3://mcp-pulumi-state/production",
        apiUrl="https://github.example.com/",
        legacySecrets=False,
        stagingEnvironment="staging",
    )
    config["release"] = {"author": "feustey", "message": "fix", "overrideFreeze": False}
    config["telegramBotToken"] = "123456:" + "A" * 35
    config["telegram"] = {"chatId": "-1001234567890", "apiUrl": "https://api.telegram.org"}
    set_names = set(config) | {
        f"{obj}.{field}" for obj, v in config.items() if isinstance(v, dict) for field in v
    }
    unset = {row.name for row in config_keys.KEYS} - set_names
    assert unset == {"imagePin", "restoreBackup", "image.context", "image.build"} - set_names
    assert load(config).app.health_status == 204


def stack_names(config: dict[str, Any]) -> set[str]:
    """The `mcp:*` keys of a stack file's `config:` and the fields of its objects."""
    names = set()
    for key, value in config.items():
        if not key.startswith("mcp:"):
            continue
        names.add(key.removeprefix("mcp:"))
        if isinstance(value, dict):
            names |= {f"{key.removeprefix('mcp:')}.{field}" for field in value}
    return names


@pytest.mark.parametrize(
    "path",
    [
        "local/stack-template.yaml",
        "local/staging-overrides.yaml",
        "Pulumi.production.yaml",
        "Pulumi.staging.yaml",
    ],
    ids=str,
)
def test_the_committed_stack_files_use_only_known_keys(path: str) -> None:
    config = yaml.safe_load((ROOT / path).read_text())["config"]
    names = stack_names(config)
    assert names and names <= set(config_keys.BY_NAME), names - set(config_keys.BY_NAME)


def test_the_e2e_and_bench_target_config_uses_only_known_keys() -> None:
    config = target_config(
        ssh=("127.0.0.1", 2222, "mcpdeploy"),
        registry="127.0.0.1:5000",
        deploy_dir="/opt/mcp-local/x/mcp",
        backup_dir="/opt/mcp-local/x/mcp-backups",
        http_port=8100,
        project="mcpt-x",
        health=(20, 30),
    )
    names = stack_names(config)
    assert names and names <= set(config_keys.BY_NAME), names - set(config_keys.BY_NAME)


def test_the_program_refuses_an_unknown_key_before_declaring_anything(
    test_keys: TestKeys, run_program: Any
) -> None:
    """Through `__main__.py` and pulumi.Config (the keys the engine hands the program)."""
    config = with_field(base_config(test_keys), "app", "healthURL", "http://localhost:8000/")
    with pytest.raises(Exception, match=r"mcp:app\.healthURL: is not a known key") as raised:
        run: ProgramRun = run_program(config)
        assert not run.registered
    assert "did you mean mcp:app.healthUrl?" in str(raised.value)


def test_the_pulumi_source_lists_the_mcp_keys_only() -> None:
    pulumi.runtime.set_all_config({"mcp:imageTag": "v1", "docker:host": "x", "mcp:app": "{}"})
    try:
        assert sorted(PulumiConfigSource().names()) == ["app", "imageTag"]
    finally:
        pulumi.runtime.set_all_config({})


def test_a_mapping_source_refuses_unknown_keys_too(test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    config["imagetag"] = "v1"
    with pytest.raises(ConfigError, match=r"mcp:imagetag: .*did you mean mcp:imageTag\?"):
        load_settings(MappingConfigSource(config, SECRET_KEYS))
