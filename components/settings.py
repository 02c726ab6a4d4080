"""Reads the stack configuration once, validates all of it, and hands on typed settings.

This is the only module that touches `pulumi.Config`. Every problem found is reported at once,
naming the key, what was given and a valid example, before any resource is declared, so a bad
value fails `pulumi preview` and nothing reaches the server.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pulumi

NAMESPACE = "mcp"

# Every pattern is anchored with `\Z`, never `$` (which also matches before a trailing newline,
# so `v2\n` would pass), and every check uses `fullmatch`.
#
# The values below reach the remote scripts as arguments. Each rule mirrors, once, the check
# the scripts make (remote/lib.sh, function named in the comment) or is stricter, so that a value
# the server would refuse is refused here first, by `pulumi preview`, before anything runs.
IMAGE_TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")  # IMAGE_RE's tag
REPOSITORY_PATTERN = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+\Z"
)  # IMAGE_RE's path
REGISTRY_PATTERN = re.compile(r"^[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]{1,5})?\Z")  # check_registry
REGISTRY_USER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}\Z")  # check_user
HOSTNAME_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\Z")
USER_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
SERVICE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")  # check_name
COMPOSE_PROJECT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")  # check_project
# check_filename: no leading '-' (it would read as an option), no '..', not '.'.
FILE_NAME_PATTERN = re.compile(r"^(?!.*\.\.)(?!\.\Z)[A-Za-z0-9._][A-Za-z0-9._-]{0,254}\Z")
# Names the scripts use themselves in <deployDir> and its staging dir: .env holds MCP_IMAGE,
# .deploy/staged/IMAGE the staged image (deploy.sh and release.sh refuse them as --env-file).
RESERVED_FILE_NAMES = (".env", "IMAGE")
BACKUP_ID_PATTERN = re.compile(r"^(?:[0-9]{8}_[0-9]{6}|latest)\Z")  # check_backup_id
# check_dir (absolute, no '..') + "must not be /": here also no '//' and no '.' part, so that
# one directory has one spelling (backup.sh compares the two paths as strings).
ABSOLUTE_DIR_PATTERN = re.compile(r"^(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9._-]+)+/?\Z")
# check_url's characters, without the shell-special ones (; & ( ) are allowed by the scripts
# but not here), and a host name or [IPv6] address with an optional port.
URL_PATTERN = re.compile(
    r"^https?://(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:]+\])"
    r"(?::([0-9]{1,5}))?(?:[/?#][A-Za-z0-9._~:/?#@!*+,=%\[\]-]*)?\Z"
)
MAX_SCRIPT_INT = 999_999  # check_posint / check_nonneg_int accept up to six digits
# No user:password@ part: the value becomes a (non-secret) repository variable.
PULUMI_BACKEND_URL_PATTERN = re.compile(r"^(?:s3|azblob|gs|file)://[A-Za-z0-9._~/?=&%,+-]+\Z")
HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


class ConfigError(pulumi.RunError):
    """Raised when the stack configuration is missing or malformed; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"invalid stack configuration ({len(problems)} problem(s)); nothing was deployed:\n"
            f"{lines}"
        )


class ConfigSource(Protocol):
    """Where raw configuration values come from (the stack config, or a dict in tests)."""

    def get(self, key: str) -> str | None: ...

    def is_secret(self, key: str) -> bool: ...


class PulumiConfigSource:
    """Reads `mcp:*` keys from the current Pulumi stack."""

    def __init__(self, namespace: str = NAMESPACE) -> None:
        self._config = pulumi.Config(namespace)
        self._namespace = namespace

    def get(self, key: str) -> str | None:
        return self._config.get(key)

    def is_secret(self, key: str) -> bool:
        return pulumi.runtime.is_config_secret(f"{self._namespace}:{key}")


class MappingConfigSource:
    """`mcp:*` values from a mapping (objects as dicts), e.g. settings for a test's target."""

    def __init__(self, values: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> None:
        self._values = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in values.items()
        }
        self._secret_keys = frozenset(secret_keys)

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def is_secret(self, key: str) -> bool:
        return key in self._secret_keys


# --------------------------------------------------------------------------- typed settings


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    user: str
    host_key: str
    private_key: pulumi.Output[str]


@dataclass(frozen=True)
class PathSettings:
    deploy_dir: str
    backup_dir: str
    keep_backups: int
    min_free_mb: int

    @property
    def scripts_dir(self) -> str:
        return f"{self.deploy_dir}/.deploy/bin"

    @property
    def staged_dir(self) -> str:
        return f"{self.deploy_dir}/.deploy/staged"


STRATEGIES = ("recreate", "blue-green")
PROXY_IMAGE_PATTERN = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(?:@sha256:[a-f0-9]{64})?|@sha256:[a-f0-9]{64})\Z"
)  # check_image (valid_image): a tag or a digest is required
LISTEN_PATTERN = re.compile(r"^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3})?:([0-9]{1,5})\Z")
# bg_validate's health URL: plain http, a host, an optional port, then nothing or a /path.
BLUE_GREEN_HEALTH_URL_PATTERN = re.compile(
    r"^http://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::([0-9]{1,5}))?(?:/\S*)?\Z"
)


@dataclass(frozen=True)
class ProxySettings:
    """The reverse proxy of the blue-green strategy (see remote/bluegreen.sh)."""

    image: str
    listen: str | None = None  # default on the server: 127.0.0.1:<healthUrl port>
    colour_ports: tuple[int, int] | None = None  # default: healthUrl port + 1, + 2
    drain_seconds: int = 2


@dataclass(frozen=True)
class AppSettings:
    compose_source: str
    compose_file: str
    env_file_name: str
    service: str
    health_url: str
    health_attempts: int
    health_timeout_seconds: int
    public_url: str
    lock_timeout_seconds: int
    compose_project: str | None = None
    strategy: str = "recreate"
    proxy: ProxySettings | None = None
    pre_backup_command: str | None = None  # run in the service container before a backup
    pause_during_backup: bool = False  # docker pause the service while the archive is written


@dataclass(frozen=True)
class ImageSettings:
    registry: str
    repository: str
    tag: str  # "" in restore mode, where mcp:imageTag is not needed
    build: bool
    context: str
    dockerfile: str
    pull_user: str | None
    pull_password: pulumi.Output[str] | None
    push_user: str | None
    push_password: pulumi.Output[str] | None
    # A command (argv, run from the project directory) that writes the build context before the
    # build, e.g. compiling a static binary for a FROM-scratch Dockerfile; () when not needed.
    prepare: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The image name without tag, e.g. `ghcr.io/feustey/mcp`."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """The tagged reference, e.g. `ghcr.io/feustey/mcp:3f2c1ab`."""
        if not self.tag:
            raise ValueError("no image tag (restore mode): the backup's manifest names the image")
        return f"{self.name}:{self.tag}"


@dataclass(frozen=True)
class GitHubSettings:
    owner: str
    repository: str
    environment: str
    reviewer_user_ids: tuple[int, ...]
    reviewer_team_ids: tuple[int, ...]
    wait_timer_minutes: int
    # Repository variable PULUMI_BACKEND_URL, read by the workflows (self-managed backend).
    pulumi_backend_url: str | None = None
    # Migration from the original pipeline only: copy the deploy key, host, user and deploy
    # dir into HOSTINGER_* repository secrets, which no workflow of this project reads.
    legacy_secrets: bool = False
    # The GitHub REST API's base URL; None for api.github.com (GitHub Enterprise Server, or the
    # loopback test double of the e2e tests).
    api_url: str | None = None


@dataclass(frozen=True)
class ReleaseInfo:
    """Who and what a deploy is for; shown in notifications."""

    author: str
    message: str


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    paths: PathSettings
    app: AppSettings
    image: ImageSettings
    github: GitHubSettings | None
    env_file_content: pulumi.Output[str] | None
    slack_webhook_url: pulumi.Output[str] | None
    restore_backup: str | None
    release: ReleaseInfo

    @property
    def is_restore(self) -> bool:
        return self.restore_backup is not None


# --------------------------------------------------------------------------- validation helpers


class _Reader:
    """Collects problems while reading keys, so that all of them are reported together."""

    def __init__(self, source: ConfigSource) -> None:
        self.source = source
        self.problems: list[str] = []
        self._objects: dict[str, Mapping[str, Any] | None] = {}

    def problem(self, key: str, message: str, example: str) -> None:
        self.problems.append(f"{NAMESPACE}:{key}: {message}. Example: {example}")

    def object(self, key: str, example: str, *, required: bool = True) -> Mapping[str, Any] | None:
        if key in self._objects:
            return self._objects[key]
        raw = self.source.get(key)
        value: Mapping[str, Any] | None = None
        if raw is None:
            if required:
                self.problem(key, "is missing", example)
        else:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                value = parsed
            else:
                self.problem(key, f"must be an object, got {raw!r}", example)
        self._objects[key] = value
        return value

    def field(
        self,
        obj: Mapping[str, Any] | None,
        key: str,
        name: str,
        example: str,
        *,
        default: Any = None,
        required: bool = True,
    ) -> Any:
        if obj is None:
            return default
        if name not in obj or obj[name] in (None, ""):
            if required and default is None:
                self.problem(f"{key}.{name}", "is missing", example)
            return default
        return obj[name]

    def string(
        self,
        value: Any,
        key: str,
        pattern: re.Pattern[str] | Callable[[str], bool],
        expected: str,
        example: str,
    ) -> str:
        if value is None:
            return ""
        text = str(value)
        if isinstance(pattern, re.Pattern):
            ok = pattern.fullmatch(text) is not None
        else:
            ok = pattern(text)
        if not ok:
            self.problem(key, f"{expected}, got {text!r}", example)
        return text

    def integer(self, value: Any, key: str, low: int, high: int, example: str) -> int:
        if value is None:
            return low
        try:
            number = int(str(value), 10)
        except ValueError:
            self.problem(key, f"must be a whole number, got {value!r}", example)
            return low
        if not low <= number <= high:
            self.problem(key, f"must be between {low} and {high}, got {number}", example)
        return number

    def boolean(self, value: Any, key: str, example: str) -> bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        self.problem(key, f"must be true or false, got {value!r}", example)
        return False

    def secret(self, key: str, example: str, *, required: bool) -> pulumi.Output[str] | None:
        raw = self.source.get(key)
        if raw is None or raw == "":
            if required:
                self.problem(key, "is missing", example)
            return None
        if not self.source.is_secret(key):
            self.problems.append(
                f"{NAMESPACE}:{key}: is stored in plain text; it holds a secret. Fix: "
                f"pulumi config rm {NAMESPACE}:{key} && pulumi config set --secret "
                f"{NAMESPACE}:{key} ...  ({example})"
            )
        return pulumi.Output.secret(raw)


def _valid_host_key(text: str) -> bool:
    parts = text.split()
    if len(parts) != 2 or parts[0] not in HOST_KEY_TYPES:
        return False
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        return False
    # The key blob starts with its own type name, length-prefixed.
    name_length = int.from_bytes(blob[:4], "big")
    return blob[4 : 4 + name_length].decode("ascii", "replace") == parts[0]


def _valid_private_key(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith("-----BEGIN ") and "PRIVATE KEY-----" in stripped.splitlines()[0]


FILE_NAME_RULE = (
    "must be a plain file name (letters, digits, '.', '_', '-'; not starting with '-', "
    f"no '..', not {' or '.join(RESERVED_FILE_NAMES)}: the deploy scripts use those)"
)


def _file_name(text: str) -> bool:
    return FILE_NAME_PATTERN.fullmatch(text) is not None and text not in RESERVED_FILE_NAMES


def _url(text: str) -> bool:
    match = URL_PATTERN.fullmatch(text)
    return match is not None and (match.group(1) is None or 1 <= int(match.group(1)) <= 65535)


# --------------------------------------------------------------------------- loading


def load_settings(source: ConfigSource | None = None) -> Settings:
    """Reads and validates every `mcp:*` key; raises ConfigError listing all problems."""
    reader = _Reader(source or PulumiConfigSource())

    server = _read_server(reader)
    paths = _read_paths(reader)
    app = _read_app(reader)
    image = _read_image(reader, restore=bool(reader.source.get("restoreBackup")))
    github = _read_github(reader)

    env_file_content = reader.secret(
        "envFileContent",
        "pulumi config set --secret mcp:envFileContent < .env.production",
        required=False,
    )
    slack_webhook_url = reader.secret(
        "slackWebhookUrl",
        "pulumi config set --secret mcp:slackWebhookUrl https://hooks.slack.com/services/...",
        required=False,
    )
    if slack_webhook_url is not None:
        raw = reader.source.get("slackWebhookUrl") or ""
        if not raw.startswith("https://"):
            reader.problem(
                "slackWebhookUrl",
                "must be an https:// Slack incoming-webhook URL (value not shown: it is secret)",
                "https://hooks.slack.com/services/<team>/<channel>/<token>",
            )

    restore_raw = reader.source.get("restoreBackup")
    restore_backup = None
    if restore_raw:
        restore_backup = reader.string(
            restore_raw,
            "restoreBackup",
            BACKUP_ID_PATTERN,
            "must be a backup timestamp YYYYMMDD_HHMMSS or 'latest'",
            "20251017_143025",
        )

    release_obj = reader.object(
        "release", '{"author": "feustey", "message": "fix"}', required=False
    )
    release = ReleaseInfo(
        author=str((release_obj or {}).get("author") or "unknown"),
        message=str((release_obj or {}).get("message") or ""),
    )

    if reader.problems:
        raise ConfigError(reader.problems)
    assert server.private_key is not None
    return Settings(
        server=server,
        paths=paths,
        app=app,
        image=image,
        github=github,
        env_file_content=env_file_content,
        slack_webhook_url=slack_webhook_url,
        restore_backup=restore_backup,
        release=release,
    )


def _read_server(reader: _Reader) -> ServerSettings:
    example = (
        '{"host": "147.79.101.32", "port": 22, "user": "feustey", "hostKey": "ssh-ed25519 AAAA..."}'
    )
    obj = reader.object("server", example)
    host = reader.string(
        reader.field(obj, "server", "host", "147.79.101.32"),
        "server.host",
        HOSTNAME_PATTERN,
        "must be a host name or IP address",
        "147.79.101.32",
    )
    port = reader.integer(
        reader.field(obj, "server", "port", "22", default=22), "server.port", 1, 65535, "22"
    )
    user = reader.string(
        reader.field(obj, "server", "user", "feustey"),
        "server.user",
        USER_PATTERN,
        "must be a Unix user name",
        "feustey",
    )
    host_key = reader.string(
        reader.field(
            obj, "server", "hostKey", "the output of: ssh-keyscan -t ed25519 HOST | cut -d' ' -f2-"
        ),
        "server.hostKey",
        _valid_host_key,
        "must be the server's public host key as '<type> <base64>' (pinned; see README)",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...",
    )
    private_key = reader.secret(
        "sshPrivateKey",
        "pulumi config set --secret mcp:sshPrivateKey < ~/.ssh/github-actions-mcp",
        required=True,
    )
    raw_key = reader.source.get("sshPrivateKey")
    if raw_key and not _valid_private_key(raw_key):
        reader.problem(
            "sshPrivateKey",
            "is not a PEM/OpenSSH private key (value not shown: it is secret)",
            "pulumi config set --secret mcp:sshPrivateKey < ~/.ssh/github-actions-mcp",
        )
    return ServerSettings(
        host=host,
        port=port,
        user=user,
        host_key=host_key,
        private_key=private_key,  # type: ignore[arg-type]
    )


def _read_paths(reader: _Reader) -> PathSettings:
    example = '{"deployDir": "/opt/mcp", "backupDir": "/opt/mcp-backups", "keepBackups": 10}'
    obj = reader.object("paths", example)

    def directory(name: str, example_value: str) -> str:
        return reader.string(
            reader.field(obj, "paths", name, example_value),
            f"paths.{name}",
            ABSOLUTE_DIR_PATTERN,
            "must be an absolute directory other than /, spelled without '//', '.' or '..' "
            "parts, spaces or shell characters",
            example_value,
        ).removesuffix("/")

    deploy_dir = directory("deployDir", "/opt/mcp")
    backup_dir = directory("backupDir", "/opt/mcp-backups")
    if deploy_dir and deploy_dir == backup_dir:
        reader.problem("paths.backupDir", "must differ from paths.deployDir", "/opt/mcp-backups")
    elif deploy_dir and backup_dir.startswith(f"{deploy_dir}/"):
        # backup.sh refuses it: each archive would hold the previous ones.
        reader.problem(
            "paths.backupDir",
            f"must not be inside paths.deployDir {deploy_dir!r} (each backup would archive the "
            f"previous ones), got {backup_dir!r}",
            "/opt/mcp-backups",
        )
    keep = reader.integer(
        reader.field(obj, "paths", "keepBackups", "10", default=10),
        "paths.keepBackups",
        1,
        1000,
        "10",
    )
    min_free = reader.integer(
        reader.field(obj, "paths", "minFreeMb", "100", default=100),
        "paths.minFreeMb",
        1,  # backup.sh: check_posint
        MAX_SCRIPT_INT,
        "100",
    )
    return PathSettings(deploy_dir, backup_dir, keep, min_free)


def _read_app(reader: _Reader) -> AppSettings:
    example = (
        '{"composeSource": "docker-compose.production.yml", "service": "mcp-api-prod", '
        '"healthUrl": "http://localhost:8000/api/v1/health", "publicUrl": "https://api.dazno.de"}'
    )
    obj = reader.object("app", example)
    compose_source = str(
        reader.field(obj, "app", "composeSource", "docker-compose.production.yml") or ""
    )
    compose_file = reader.string(
        reader.field(
            obj,
            "app",
            "composeFile",
            "docker-compose.production.yml",
            default=compose_source.rsplit("/", 1)[-1] or None,
        ),
        "app.composeFile",
        _file_name,
        FILE_NAME_RULE,
        "docker-compose.production.yml",
    )
    if compose_source and not Path(compose_source).is_file():
        reader.problem(
            "app.composeSource",
            f"file {compose_source!r} does not exist (relative to the Pulumi project)",
            "docker-compose.production.yml",
        )
    env_file_name = reader.string(
        reader.field(obj, "app", "envFile", ".env.production", default=".env.production"),
        "app.envFile",
        _file_name,
        FILE_NAME_RULE,
        ".env.production",
    )
    if env_file_name and env_file_name == compose_file:
        reader.problem(
            "app.envFile",
            f"must differ from app.composeFile, got {env_file_name!r} for both",
            ".env.production",
        )
    service = reader.string(
        reader.field(obj, "app", "service", "mcp-api-prod"),
        "app.service",
        SERVICE_PATTERN,
        "must be a compose service name",
        "mcp-api-prod",
    )
    health_url = reader.string(
        reader.field(obj, "app", "healthUrl", "http://localhost:8000/api/v1/health"),
        "app.healthUrl",
        _url,
        "must be an http(s) URL reachable from the server",
        "http://localhost:8000/api/v1/health",
    )
    attempts = reader.integer(
        reader.field(obj, "app", "healthAttempts", "30", default=30),
        "app.healthAttempts",
        1,
        1000,
        "30",
    )
    timeout = reader.integer(
        reader.field(obj, "app", "healthTimeoutSeconds", "120", default=120),
        "app.healthTimeoutSeconds",
        1,
        3600,
        "120",
    )
    public_url = reader.string(
        reader.field(obj, "app", "publicUrl", "https://api.dazno.de"),
        "app.publicUrl",
        _url,
        "must be an http(s) URL",
        "https://api.dazno.de",
    ).rstrip("/")
    lock_timeout = reader.integer(
        reader.field(obj, "app", "lockTimeoutSeconds", "120", default=120),
        "app.lockTimeoutSeconds",
        0,
        3600,
        "120",
    )
    compose_project = reader.field(obj, "app", "composeProject", "mcp", required=False)
    if compose_project is not None:
        compose_project = reader.string(
            compose_project,
            "app.composeProject",
            COMPOSE_PROJECT_PATTERN,
            "must be a compose project name (lower-case letters, digits, '_', '-')",
            "mcp",
        )
    strategy = str(reader.field(obj, "app", "strategy", "blue-green", default="recreate"))
    if strategy not in STRATEGIES:
        reader.problem(
            "app.strategy",
            f"must be one of {', '.join(STRATEGIES)}, got {strategy!r}",
            "blue-green",
        )
    proxy = _read_proxy(reader, required=strategy == "blue-green")
    if strategy == "blue-green" and _url(health_url):  # else already reported
        health_match = BLUE_GREEN_HEALTH_URL_PATTERN.fullmatch(health_url)
        if health_match is None:
            reader.problem(
                "app.healthUrl",
                "must be a plain http:// URL, http://HOST[:PORT][/PATH], with app.strategy "
                "blue-green (the proxy serves HTTP on its port; put TLS in front of it), "
                f"got {health_url!r}",
                "http://localhost:8000/api/v1/health",
            )
        elif proxy is not None:
            _check_proxy_ports(reader, health_url, proxy)
    pre_backup_command = reader.field(
        obj, "app", "preBackupCommand", PRE_BACKUP_COMMAND_EXAMPLE, required=False
    )
    if pre_backup_command is not None:
        pre_backup_command = reader.string(
            pre_backup_command,
            "app.preBackupCommand",
            _pre_backup_command,
            "must be one line of at most 2000 characters with balanced quotes, run in the "
            "service container (no shell: for redirections use sh -c '...')",
            PRE_BACKUP_COMMAND_EXAMPLE,
        )
    pause_during_backup = reader.boolean(
        reader.field(obj, "app", "pauseDuringBackup", "true", default=False),
        "app.pauseDuringBackup",
        "true",
    )
    return AppSettings(
        compose_source=compose_source,
        compose_file=compose_file,
        env_file_name=env_file_name,
        service=service,
        health_url=health_url,
        health_attempts=attempts,
        health_timeout_seconds=timeout,
        public_url=public_url,
        lock_timeout_seconds=lock_timeout,
        compose_project=compose_project,
        strategy=strategy,
        proxy=proxy,
        pre_backup_command=pre_backup_command or None,
        pause_during_backup=pause_during_backup,
    )


PRE_BACKUP_COMMAND_EXAMPLE = "sh -c 'pg_dump -U mcp mcp > /data/dump.sql'"


def _pre_backup_command(text: str) -> bool:
    """What remote/lib.sh consistency_validate accepts: one line, words that split."""
    if not text.strip() or "\n" in text or len(text) > 2000:
        return False
    try:
        return bool(shlex.split(text))
    except ValueError:
        return False


@dataclass(frozen=True)
class BlueGreenAddresses:
    """Where the blue-green proxy listens and the colours' ports, defaults applied."""

    listen: str
    listen_port: int
    colour_ports: tuple[int, int]


def blue_green_addresses(health_url: str, proxy: ProxySettings) -> BlueGreenAddresses | None:
    """proxy.listen (default `127.0.0.1:<health URL port>`) and proxy.colourPorts (default: that
    port + 1, + 2); None when the health URL or proxy.listen is not one blue-green accepts. The
    one place these defaults live: the settings check them, the deploy plan passes them."""
    health = BLUE_GREEN_HEALTH_URL_PATTERN.fullmatch(health_url)
    if health is None:
        return None
    health_port = int(health.group(1) or 80)
    listen = proxy.listen if proxy.listen is not None else f"127.0.0.1:{health_port}"
    match = LISTEN_PATTERN.fullmatch(listen)
    if match is None:
        return None
    colours = proxy.colour_ports or (health_port + 1, health_port + 2)
    return BlueGreenAddresses(listen, int(match.group(1)), colours)


def _check_proxy_ports(reader: _Reader, health_url: str, proxy: ProxySettings) -> None:
    """The ports the proxy and the colours will use, defaults applied, must be valid and all
    different (what bg_validate in remote/bluegreen.sh checks)."""
    addresses = blue_green_addresses(health_url, proxy)
    if addresses is None:
        return  # already reported
    listen_port = addresses.listen_port
    blue, green = addresses.colour_ports
    key = "proxy.colourPorts" if proxy.colour_ports is not None else "proxy.listen"
    if not all(1 <= port <= 65535 for port in (blue, green, listen_port)):
        reader.problem(
            key,
            f"the ports in use would be {blue}, {green} (colours) and {listen_port} (proxy); "
            "each must be 1-65535 (the colour ports default to the app.healthUrl port + 1, + 2)",
            "[8001, 8002]",
        )
    elif listen_port in (blue, green):
        reader.problem(
            key,
            f"the colour ports {[blue, green]} must differ from the port the proxy listens on, "
            f"{listen_port} (proxy.listen, default: the port of app.healthUrl)",
            '{"listen": "127.0.0.1:8000", "colourPorts": [8001, 8002]}',
        )


def _read_proxy(reader: _Reader, *, required: bool) -> ProxySettings | None:
    example = '{"image": "ghcr.io/feustey/mcp-proxy:caddy-2.11.9"}'
    obj = reader.object(
        "proxy", f"{example} (needed by app.strategy blue-green)", required=required
    )
    if obj is None:
        return None
    image = reader.string(
        reader.field(obj, "proxy", "image", "ghcr.io/feustey/mcp-proxy:caddy-2.11.9"),
        "proxy.image",
        PROXY_IMAGE_PATTERN,
        "must be an image reference with a tag or digest (build it with proxy/build.sh)",
        "ghcr.io/feustey/mcp-proxy:caddy-2.11.9",
    )
    listen_raw = reader.field(obj, "proxy", "listen", "127.0.0.1:8000", required=False)
    listen = None
    if listen_raw is not None:
        listen = reader.string(
            listen_raw,
            "proxy.listen",
            lambda text: (
                (m := LISTEN_PATTERN.fullmatch(text)) is not None and 1 <= int(m.group(1)) <= 65535
            ),
            "must be [ADDRESS]:PORT where the proxy listens (default 127.0.0.1:<healthUrl port>)",
            "127.0.0.1:8000",
        )
    ports_raw = obj.get("colourPorts")
    colour_ports = None
    if ports_raw is not None:
        if (
            isinstance(ports_raw, list)
            and len(ports_raw) == 2
            and all(isinstance(p, int) and not isinstance(p, bool) for p in ports_raw)
            and all(1 <= p <= 65535 for p in ports_raw)
            and ports_raw[0] != ports_raw[1]
        ):
            colour_ports = (ports_raw[0], ports_raw[1])
        else:
            reader.problem(
                "proxy.colourPorts",
                f"must be two different ports [blue, green] on 127.0.0.1, got {ports_raw!r}",
                "[8001, 8002]",
            )
    drain = reader.integer(
        reader.field(obj, "proxy", "drainSeconds", "2", default=2),
        "proxy.drainSeconds",
        0,
        300,
        "2",
    )
    return ProxySettings(image=image, listen=listen, colour_ports=colour_ports, drain_seconds=drain)


def _read_image(reader: _Reader, *, restore: bool) -> ImageSettings:
    """The image to deploy. In restore mode (mcp:restoreBackup) nothing is built or pulled by
    tag: the backup's manifest names the image, so mcp:imageTag is not needed (`rollback.py
    --backup` sets only mcp:restoreBackup, and the stack file holds no tag)."""
    example = '{"registry": "ghcr.io", "repository": "feustey/mcp", "build": true}'
    obj = reader.object("image", example)
    registry = reader.string(
        reader.field(obj, "image", "registry", "ghcr.io", default="ghcr.io"),
        "image.registry",
        REGISTRY_PATTERN,
        "must be a registry host[:port]",
        "ghcr.io",
    )
    repository = reader.string(
        reader.field(obj, "image", "repository", "feustey/mcp"),
        "image.repository",
        REPOSITORY_PATTERN,
        "must be a lower-case '<owner>/<name>' repository",
        "feustey/mcp",
    )
    raw_tag = reader.source.get("imageTag")
    if raw_tag is None and not restore:
        reader.problem(
            "imageTag",
            "is missing: a deploy needs the image tag to deploy (the deploy workflow sets it to "
            "the commit SHA; only a restore, mcp:restoreBackup, runs without it)",
            "pulumi up -c mcp:imageTag=$(git rev-parse --short HEAD)",
        )
    tag = reader.string(
        raw_tag,
        "imageTag",
        IMAGE_TAG_PATTERN,
        "must be a Docker tag (letters, digits, '_', '.', '-'; no spaces)",
        "3f2c1ab",
    )
    build = reader.boolean(
        reader.field(obj, "image", "build", "true", default=False), "image.build", "true"
    )
    context = str(reader.field(obj, "image", "context", ".", default="."))
    dockerfile = str(reader.field(obj, "image", "dockerfile", "Dockerfile", default="Dockerfile"))
    prepare_raw = (obj or {}).get("prepare")
    prepare: tuple[str, ...] = ()
    if prepare_raw is not None:
        if (
            isinstance(prepare_raw, list)
            and prepare_raw
            and all(isinstance(word, str) and word for word in prepare_raw)
        ):
            prepare = tuple(prepare_raw)
        else:
            reader.problem(
                "image.prepare",
                f"must be a command as a non-empty list of strings, got {prepare_raw!r}",
                '["bash", "app/build.sh", "--context", ".build/app-context"]',
            )
    if build and not restore and not prepare:  # a restore builds nothing; prepare makes context
        if not Path(context).is_dir():
            reader.problem("image.context", f"directory {context!r} does not exist", "app")
        elif not (Path(context) / dockerfile).is_file():
            reader.problem(
                "image.dockerfile", f"{dockerfile!r} not found in {context!r}", "Dockerfile"
            )
    pull_user = reader.field(obj, "image", "pullUser", "feustey", required=False)
    if pull_user is not None:
        pull_user = reader.string(
            pull_user,
            "image.pullUser",
            REGISTRY_USER_PATTERN,
            "must be a registry user name (letters, digits, '.', '_', '@', '+', '-')",
            "feustey",
        )
    pull_password = reader.secret(
        "registryPullPassword",
        "pulumi config set --secret mcp:registryPullPassword <token with read:packages>",
        required=pull_user is not None,
    )
    push_user = reader.field(obj, "image", "pushUser", "feustey", required=False)
    if push_user is not None:
        push_user = reader.string(
            push_user,
            "image.pushUser",
            REGISTRY_USER_PATTERN,
            "must be a registry user name (letters, digits, '.', '_', '@', '+', '-')",
            "feustey",
        )
    push_password = reader.secret(
        "registryPushPassword",
        "pulumi config set --secret mcp:registryPushPassword <token with write:packages>",
        required=False,
    )
    if push_user is not None and push_password is None and build and not restore:
        reader.problem(
            "registryPushPassword",
            "is missing while image.pushUser is set (unset image.pushUser to use `docker login`)",
            "pulumi config set --secret mcp:registryPushPassword <token>",
        )
    return ImageSettings(
        registry=registry,
        repository=repository,
        tag=tag,
        build=build,
        context=context,
        dockerfile=dockerfile,
        pull_user=str(pull_user) if pull_user is not None else None,
        pull_password=pull_password,
        push_user=str(push_user) if push_user is not None else None,
        push_password=push_password,
        prepare=prepare,
    )


def _github_api_url(text: str) -> bool:
    """An http(s) URL; plain http only on loopback (the admin token goes with every request)."""
    loopback = re.match(r"http://(?:127\.[0-9.]+|localhost|\[::1\])[:/]", text) is not None
    return _url(text) and (text.startswith("https://") or loopback)


def _read_github(reader: _Reader) -> GitHubSettings | None:
    example = (
        '{"owner": "feustey", "repository": "mcp", "reviewerUserIds": [1234567], '
        '"waitTimerMinutes": 5}'
    )
    obj = reader.object("github", example, required=False)
    if obj is None:
        return None
    owner = reader.string(
        reader.field(obj, "github", "owner", "feustey"),
        "github.owner",
        re.compile(r"^[A-Za-z0-9-]{1,39}\Z"),
        "must be a GitHub user or organisation",
        "feustey",
    )
    repository = reader.string(
        reader.field(obj, "github", "repository", "mcp"),
        "github.repository",
        re.compile(r"^[A-Za-z0-9._-]{1,100}\Z"),
        "must be a repository name without owner",
        "mcp",
    )
    environment = reader.string(
        reader.field(obj, "github", "environment", "production", default="production"),
        "github.environment",
        re.compile(r"^[A-Za-z0-9._-](?:[A-Za-z0-9._ -]{0,253}[A-Za-z0-9._-])?\Z"),
        "must be an environment name (no leading or trailing space)",
        "production",
    )

    def ids(name: str) -> tuple[int, ...]:
        raw = obj.get(name) or []
        if not isinstance(raw, list) or not all(isinstance(item, int) and item > 0 for item in raw):
            reader.problem(
                f"github.{name}",
                f"must be a list of numeric ids, got {raw!r}",
                "[1234567] (gh api users/NAME --jq .id)",
            )
            return ()
        if len(raw) > 6:
            reader.problem(f"github.{name}", "GitHub allows at most 6 reviewers", "[1234567]")
        return tuple(raw)

    user_ids = ids("reviewerUserIds")
    team_ids = ids("reviewerTeamIds")
    wait = reader.integer(
        reader.field(obj, "github", "waitTimerMinutes", "0", default=0),
        "github.waitTimerMinutes",
        0,
        43200,
        "5",
    )
    backend_url = reader.field(obj, "github", "pulumiBackendUrl", "s3://...", required=False)
    if backend_url is not None:
        backend_url = reader.string(
            backend_url,
            "github.pulumiBackendUrl",
            PULUMI_BACKEND_URL_PATTERN,
            "must be a Pulumi self-managed backend URL (s3://, azblob://, gs://, file://); "
            "it is stored as a repository variable, so it must hold no credentials",
            "s3://mcp-pulumi-state/production",
        )
    legacy = reader.boolean(
        reader.field(obj, "github", "legacySecrets", "false", default=False),
        "github.legacySecrets",
        "false",
    )
    api_url = reader.field(obj, "github", "apiUrl", "https://github.example.com/", required=False)
    if api_url is not None:
        api_url = reader.string(
            api_url,
            "github.apiUrl",
            _github_api_url,
            "must be the https:// base URL of a GitHub API (http:// only on loopback: the admin "
            "token goes with every request; omit the key for api.github.com)",
            "https://github.example.com/",
        )
    return GitHubSettings(
        owner,
        repository,
        environment,
        user_ids,
        team_ids,
        wait,
        pulumi_backend_url=backend_url,
        legacy_secrets=legacy,
        api_url=api_url,
    )
