"""The config layer: valid config becomes typed settings; every bad value is named with a fix."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from components import config_keys
from components import settings as settings_module
from components.settings import ConfigError, ProxySettings, Settings, load_settings
from rollback import RollbackError, choose_target
from tests.unit.conftest import ROOT, SECRET_KEYS, ProgramRun, TestKeys, base_config


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

    def names(self) -> list[str]:
        return list(self.values)


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


# ---------------------------------------------------------------- what the scripts would refuse

PROXY_IMAGE = "ghcr.io/feustey/mcp-proxy:caddy-2.11.9"
LIB_SH = ROOT / "remote" / "lib.sh"


def with_value(config: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """`config` with `key` ("imageTag" or "paths.deployDir") set to `value`."""
    changed = json.loads(json.dumps(config))
    if "." in key:
        top, name = key.split(".", 1)
        changed.setdefault(top, {})[name] = value
    else:
        changed[key] = value
    return changed


def blue_green(keys: TestKeys, **proxy: Any) -> dict[str, Any]:
    config = base_config(keys)
    config["app"] = {**config["app"], "strategy": "blue-green"}
    config["proxy"] = {"image": PROXY_IMAGE, **proxy}
    return config


def problems_naming(config: dict[str, Any], key: str) -> list[str]:
    """The problems reported for `mcp:<key>`; fails when the config loads."""
    problems = problems_for(config)
    return [problem for problem in problems if problem.startswith(f"mcp:{key}: ")]


def refused(config: dict[str, Any], key: str) -> bool:
    try:
        load(config)
    except ConfigError as error:
        return any(problem.startswith(f"mcp:{key}: ") for problem in error.problems)
    return False


# Every string the settings hand to the scripts (or to SSH, or to GitHub), with a valid value.
STRING_KEYS = [
    ("imageTag", "3f2c1ab"),
    ("restoreBackup", "20251017_143025"),
    ("server.host", "147.79.101.32"),
    ("server.user", "feustey"),
    ("paths.deployDir", "/opt/mcp"),
    ("paths.backupDir", "/opt/mcp-backups"),
    ("app.composeFile", "docker-compose.production.yml"),
    ("app.envFile", ".env.production"),
    ("app.service", "mcp-api-prod"),
    ("app.healthUrl", "http://localhost:8000/api/v1/health"),
    ("app.publicUrl", "https://api.dazno.de"),
    ("app.composeProject", "mcp"),
    ("image.registry", "ghcr.io"),
    ("image.repository", "feustey/mcp"),
    ("image.pullUser", "feustey"),
    ("image.pushUser", "feustey"),
    ("github.owner", "feustey"),
    ("github.repository", "mcp"),
    ("github.environment", "production"),
    ("proxy.image", PROXY_IMAGE),
    ("proxy.listen", "127.0.0.1:8000"),
]


@pytest.mark.parametrize(("key", "valid"), STRING_KEYS, ids=[key for key, _ in STRING_KEYS])
@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\n-x"], ids=repr)
def test_a_trailing_newline_or_extra_text_is_refused(
    test_keys: TestKeys, key: str, valid: str, suffix: str
) -> None:
    """`$` matches before a trailing newline: `v2\\n` passed and reached the server."""
    config = blue_green(test_keys, colourPorts=[8001, 8002])
    config["image"]["pushUser"] = "feustey"
    config["registryPushPassword"] = "push-token-value"
    load(with_value(config, key, valid))  # the valid value loads
    (problem,) = problems_naming(with_value(config, key, valid + suffix), key)
    assert repr(valid + suffix) in problem, problem
    assert "Example: " in problem


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("paths.deployDir", "/", "must be an absolute directory other than /"),
        ("paths.deployDir", "//", "must be an absolute directory other than /"),
        ("paths.deployDir", "/opt//mcp", "spelled without '//'"),
        ("paths.deployDir", "/opt/./mcp", "'.' or '..' parts"),
        ("paths.deployDir", "/opt/mcp/..", "'.' or '..' parts"),
        ("paths.backupDir", "/", "must be an absolute directory other than /"),
        ("paths.backupDir", "//opt/mcp-backups", "spelled without '//'"),
        ("paths.backupDir", "/opt/mcp/backups", "must not be inside paths.deployDir '/opt/mcp'"),
        ("paths.backupDir", "/opt/mcp/.deploy/backups", "must not be inside paths.deployDir"),
        ("paths.backupDir", "/opt/mcp/", "must differ from paths.deployDir"),
        ("paths.minFreeMb", 0, "must be between 1 and 999999, got 0"),
        ("paths.minFreeMb", 1_000_000, "must be between 1 and 999999"),
        ("app.composeFile", "-x", "must be a plain file name"),
        ("app.composeFile", "..", "must be a plain file name"),
        ("app.composeFile", ".", "must be a plain file name"),
        ("app.composeFile", ".env", "must be a plain file name"),
        ("app.composeFile", "IMAGE", "must be a plain file name"),
        ("app.envFile", "-x", "must be a plain file name"),
        ("app.envFile", "..", "must be a plain file name"),
        ("app.envFile", "a..b", "must be a plain file name"),
        ("app.envFile", ".env", "not .env or IMAGE"),
        ("app.envFile", "IMAGE", "not .env or IMAGE"),
        ("app.envFile", "docker-compose.production.yml", "must differ from app.composeFile"),
        ("app.service", "x" * 129, "must be a compose service name"),
        ("app.healthUrl", "http://localhost:8000/a;b", "must be an http(s) URL"),
        ("app.healthUrl", "http://localhost:99999/", "must be an http(s) URL"),
        ("app.healthUrl", "http://x/{a}", "must be an http(s) URL"),
        ("image.pullUser", "-x", "must be a registry user name"),
        ("image.pullUser", "bot;id", "must be a registry user name"),
        ("image.pullUser", "a b", "must be a registry user name"),
        ("image.pullUser", "x" * 129, "must be a registry user name"),
    ],
    ids=repr,
)
def test_values_the_server_would_refuse_are_refused_by_the_settings(
    test_keys: TestKeys, key: str, value: Any, expected: str
) -> None:
    (problem,) = problems_naming(with_value(base_config(test_keys), key, value), key)
    assert expected in problem, problem
    assert "Example: " in problem


@pytest.mark.parametrize(
    ("health_url", "proxy", "key", "expected"),
    [
        # The colour ports equal to the proxy's listen port (explicit or defaulted).
        (
            None,
            {"listen": "127.0.0.1:8001", "colourPorts": [8001, 8002]},
            "proxy.colourPorts",
            "must differ from the port the proxy listens on, 8001",
        ),
        (
            None,
            {"colourPorts": [8000, 8002]},
            "proxy.colourPorts",
            "must differ from the port the proxy listens on, 8000",
        ),
        (
            None,
            {"listen": "127.0.0.1:8002"},
            "proxy.listen",
            "must differ from the port the proxy listens on, 8002",
        ),
        # Defaults past the last port: health URL port + 1, + 2.
        ("http://localhost:65535/health", {}, "proxy.listen", "each must be 1-65535"),
        # bg_validate wants /PATH right after the host and port.
        ("http://localhost:8000?check=1", {}, "app.healthUrl", "must be a plain http:// URL"),
    ],
    ids=repr,
)
def test_blue_green_ports_and_health_url_are_checked_as_the_proxy_would(
    test_keys: TestKeys, health_url: str | None, proxy: dict[str, Any], key: str, expected: str
) -> None:
    config = blue_green(test_keys, **proxy)
    if health_url is not None:
        config["app"]["healthUrl"] = health_url
    (problem,) = problems_naming(config, key)
    assert expected in problem, problem
    assert "Example: " in problem


def test_blue_green_default_ports_load(test_keys: TestKeys) -> None:
    assert load(blue_green(test_keys)).app.proxy == ProxySettings(image=PROXY_IMAGE)
    listen = load(blue_green(test_keys, listen="0.0.0.0:80")).app.proxy
    assert listen is not None and listen.listen == "0.0.0.0:80"


def test_a_trailing_slash_is_dropped_from_directories(test_keys: TestKeys) -> None:
    config = with_value(base_config(test_keys), "paths.deployDir", "/opt/mcp/")
    assert load(config).paths.deploy_dir == "/opt/mcp"


def script_refuses(function: str, value: str, *extra: str) -> bool:
    """Whether remote/lib.sh's FUNCTION refuses VALUE as an argument (exit 2, E_ARG)."""
    result = subprocess.run(
        [
            "bash",
            "-c",
            'STEP=test; source "$1"; shift; "$@"',
            "bash",
            str(LIB_SH),
            function,
            "--option",
            value,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode in (0, 2, 3), result.stderr  # 3: a directory that does not exist
    return result.returncode == 2


IMAGE_TAGS = ["3f2c1ab", "v1.2.3", "_x", "-x", ".x", "a b", "a:b", "v2\n", "x" * 129, "é"]
FILE_NAMES = [
    "docker-compose.production.yml",
    ".env.production",
    "-x",
    "..",
    ".",
    "a..b",
    "a/b",
    "a b",
    "x\n",
    "_x",
    "a" * 256,
    "a" * 255,
    "x;y",
]
DIFFERENTIAL = [
    # (settings key, lib.sh function, extra arguments, how the settings value becomes the
    #  script's argument, candidate values; the first one is valid for both)
    ("imageTag", "check_image", (), "ghcr.io/feustey/mcp:{}", IMAGE_TAGS),
    (
        "image.repository",
        "check_image",
        (),
        "ghcr.io/{}:v1",
        ["feustey/mcp", "Feustey/mcp", "feustey", "feustey//mcp", "feustey/mcp\n", "-f/m"],
    ),
    (
        "image.registry",
        "check_registry",
        (),
        "{}",
        ["ghcr.io", "127.0.0.1:5000", "-x", "a_b", "ghcr.io\n", "ghcr.io:", "a..b"],
    ),
    (
        "image.pullUser",
        "check_user",
        (),
        "{}",
        ["feustey", "-x", "a b", "a;b", "u\n", "bot@x+y", "x" * 129, ".u", "é"],
    ),
    ("app.composeFile", "check_filename", ("example",), "{}", FILE_NAMES),
    ("app.envFile", "check_filename", ("example",), "{}", [".env.production", *FILE_NAMES]),
    (
        "app.service",
        "check_name",
        ("example",),
        "{}",
        ["mcp-api-prod", "-x", "a b", "x" * 129, "a;b", "x\n", "_x", ".x"],
    ),
    (
        "app.composeProject",
        "check_project",
        (),
        "{}",
        ["mcp", "MCP", "-mcp", "a" * 64, "m\n", "m.c", "_m"],
    ),
    (
        "app.healthUrl",
        "check_url",
        (),
        "{}",
        [
            "http://localhost:8000/api/v1/health",
            "http://x/$(id)",
            "http://x/a b",
            "http://x/'",
            "ftp://x",
            "http://x/\n",
            "http://x/a\nb",
            "http://x/`id`",
            'http://x/"',
            "http://x/é",
        ],
    ),
    (
        "restoreBackup",
        "check_backup_id",
        ("1",),
        "{}",
        [
            "latest",
            "20251017_143025",
            "yesterday",
            "latest\n",
            "20251017_1430255",
            "2025101_143025",
        ],
    ),
    (
        "paths.deployDir",
        "check_dir",
        ("/opt/mcp",),
        "{}",
        ["/opt/mcp", "opt/mcp", "/opt/../etc", "/opt/mcp\n", "/opt/a b", "/opt/$x", "/.."],
    ),
    ("paths.keepBackups", "check_posint", (), "{}", [1, 0, -1, 1_000_000, 10]),
    ("paths.minFreeMb", "check_posint", (), "{}", [100, 0, -1, 1_000_000, 999_999]),
    ("app.healthAttempts", "check_posint", (), "{}", [10, 0, -3]),
    ("app.healthTimeoutSeconds", "check_posint", (), "{}", [60, 0, -3]),
    ("app.lockTimeoutSeconds", "check_nonneg_int", (), "{}", [120, 0, -1]),
    ("proxy.drainSeconds", "check_nonneg_int", (), "{}", [2, 0, -1, 1_000_000]),
    (
        "proxy.image",
        "check_image",
        (),
        "{}",
        [PROXY_IMAGE, "ghcr.io/feustey/mcp-proxy", "ghcr.io/feustey/mcp-proxy:", "x:1\n"],
    ),
]


@pytest.mark.parametrize(
    ("key", "function", "extra", "argument", "candidates"),
    DIFFERENTIAL,
    ids=[row[0] for row in DIFFERENTIAL],
)
def test_every_value_the_scripts_refuse_is_refused_by_the_settings_first(
    test_keys: TestKeys,
    key: str,
    function: str,
    extra: tuple[str, ...],
    argument: str,
    candidates: list[Any],
) -> None:
    """Runs the scripts' own argument checks (remote/lib.sh) next to the settings layer."""
    config = blue_green(test_keys)
    config["restoreBackup"] = "latest"
    if key != "restoreBackup":
        config.pop("restoreBackup")
    let_through = []
    for index, value in enumerate(candidates):
        by_script = script_refuses(function, argument.format(value), *extra)
        by_settings = refused(with_value(config, key, value), key)
        if index == 0:
            assert not by_script and not by_settings, f"{value!r} should be valid for both"
        if by_script and not by_settings:
            let_through.append(value)
    assert not let_through, f"mcp:{key}: the scripts refuse these, the settings let them pass"


def test_no_pattern_is_anchored_with_dollar() -> None:
    """`$` also matches before a trailing newline; every pattern ends with `\\Z`."""
    patterns = {
        name: value
        for module in (settings_module, config_keys)
        for name, value in vars(module).items()
        if isinstance(value, re.Pattern)
    }
    assert len(patterns) >= 10, sorted(patterns)
    for name, pattern in patterns.items():
        assert pattern.pattern.endswith("\\Z"), name
        assert "$" not in pattern.pattern.replace("\\$", ""), name


@pytest.mark.parametrize(
    ("image_tag", "backup"), [("v2\n", None), ("v2 ", None), (None, "latest\n"), (None, "latest ")]
)
def test_rollback_tool_refuses_what_the_settings_refuse(
    image_tag: str | None, backup: str | None
) -> None:
    with pytest.raises(RollbackError):
        choose_target([], last_good=False, image_tag=image_tag, backup=backup)


PIN_DIGEST = "sha256:" + "ab" * 32


def test_an_image_pin_deploys_its_exact_digest_and_builds_nothing(test_keys: TestKeys) -> None:
    """A rollback's pin (mcp:imagePin) names the image as it served: never rebuilt."""
    config = base_config(test_keys)
    config["image"] = {**config["image"], "build": True}
    config["imagePin"] = f"{config['imageTag']}@{PIN_DIGEST}"
    settings = load(config)
    assert settings.image.build is False
    assert settings.image.reference.endswith(f":{config['imageTag']}@{PIN_DIGEST}")


def test_an_image_pin_of_another_tag_is_refused_naming_the_fix(test_keys: TestKeys) -> None:
    """A new tag under an old pin is neither the rollback's image nor an explicit new version."""
    config = base_config(test_keys)
    config["imagePin"] = f"v1@{PIN_DIGEST}"
    config["imageTag"] = "c0ffee"
    with pytest.raises(ConfigError) as error:
        load(config)
    assert "pins tag 'v1'" in str(error.value)
    assert "pulumi config rm mcp:imagePin" in str(error.value)


@pytest.mark.parametrize(
    "pin", ["v1", "v1@sha256:abc", "v1@" + PIN_DIGEST + "\n", "@" + PIN_DIGEST]
)
def test_a_malformed_image_pin_is_refused(test_keys: TestKeys, pin: str) -> None:
    config = base_config(test_keys)
    config["imageTag"] = "v1"
    config["imagePin"] = pin
    with pytest.raises(ConfigError, match="mcp:imagePin: must be <tag>@sha256"):
        load(config)


@pytest.mark.parametrize("author", ["-x", "a\nb", "x" * 201, "a;rm -rf /"])
def test_release_author_is_refused_where_the_ledger_would_refuse_it(
    test_keys: TestKeys, author: str
) -> None:
    config = base_config(test_keys)
    config["release"] = {"author": author}
    with pytest.raises(ConfigError, match=r"mcp:release\.author"):
        load(config)


# ---------------------------------------------------------------- restore mode (no image tag)


def test_restore_mode_needs_no_image_tag(test_keys: TestKeys) -> None:
    """`rollback.py --backup` sets only mcp:restoreBackup; the stack file holds no tag."""
    config = base_config(test_keys)
    config.pop("imageTag")
    config["restoreBackup"] = "latest"
    # A restore builds nothing: a build context missing on the runner does not matter.
    config["image"] = {**config["image"], "context": "/nonexistent", "pushUser": "feustey"}
    settings = load(config)
    assert settings.is_restore and settings.restore_backup == "latest"
    assert settings.image.tag == ""
    with pytest.raises(ValueError, match="restore mode"):
        _ = settings.image.reference


def test_a_deploy_still_needs_the_image_tag(test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    config.pop("imageTag")
    (problem,) = problems_naming(config, "imageTag")
    assert "is missing" in problem and "mcp:restoreBackup" in problem
    assert "Example: pulumi up -c mcp:imageTag=" in problem
    config["restoreBackup"] = ""  # an emptied restore key is not restore mode
    assert problems_naming(config, "imageTag")


def test_restore_without_image_tag_runs_the_restore_step(
    run_program: Callable[..., ProgramRun], test_keys: TestKeys
) -> None:
    config = base_config(test_keys)
    config.pop("imageTag")
    config["restoreBackup"] = "20251017_143025"
    run = run_program(config)
    commands = {r.name for r in run.of_type("command:remote:Command")}
    assert commands == {"server-scripts-install", "server-restore"}
    assert not [r for r in run.registered.values() if r.type.startswith("docker:")]
