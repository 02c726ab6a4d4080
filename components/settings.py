"""Reads the stack configuration once, validates all of it, and hands on typed settings.

Every key is read through its row in `components/config_keys.py` (type, default, example).

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

from components import config_keys

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
DIGEST_PATTERN = re.compile(r"^sha256:[a-f0-9]{64}\Z")  # IMAGE_RE's digest
ACTOR_PATTERN = re.compile(r"^[A-Za-z0-9][\]\[A-Za-z0-9 ._@+:/#()-]{0,199}\Z")  # ACTOR_RE
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
    # None: the defaults, computed by blue_green_addresses (127.0.0.1:<healthUrl port>, and
    # that port + 1, + 2) and always passed to the scripts by the deploy plan.
    listen: str | None = None
    colour_ports: tuple[int, int] | None = None
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
    health_status: int = 200  # the HTTP status that means healthy (redirects not followed)


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
    # mcp:imagePin's digest: deploy exactly `<tag>@<digest>` (a rollback's target), build nothing.
    pinned_digest: str | None = None

    @property
    def name(self) -> str:
        """The image name without tag, e.g. `ghcr.io/feustey/mcp`."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """The tagged reference, e.g. `ghcr.io/feustey/mcp:3f2c1ab`."""
        if not self.tag:
            raise ValueError("no image tag (restore mode): the backup's manifest names the image")
        if self.pinned_digest:
            return f"{self.name}:{self.tag}@{self.pinned_digest}"
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

_FROM_ROW: Any = object()  # "use the row's default"


class _Reader:
    """Reads keys by their row (components/config_keys.py) and collects every problem, so that
    all of them are reported together, each with the key's example."""

    def __init__(self, source: ConfigSource) -> None:
        self.source = source
        self.problems: list[str] = []
        self.keys_read: set[str] = set()
        self._objects: dict[str, Mapping[str, Any] | None] = {}

    def row(self, name: str) -> config_keys.Key:
        self.keys_read.add(name)
        return config_keys.key(name)

    def problem(self, key: str, message: str, example: str | None = None) -> None:
        shown = config_keys.key(key).example if example is None else example
        self.problems.append(f"{NAMESPACE}:{key}: {message}. Example: {shown}")

    def object(
        self, key: str, *, required: bool | None = None, why: str = ""
    ) -> Mapping[str, Any] | None:
        row = self.row(key)
        if key in self._objects:
            return self._objects[key]
        raw = self.source.get(key)
        value: Mapping[str, Any] | None = None
        if raw is None:
            if not row.optional if required is None else required:
                self.problem(key, "is missing", f"{row.example} ({why})" if why else None)
        else:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                value = parsed
            else:
                self.problem(key, f"must be an object, got {raw!r}")
        self._objects[key] = value
        return value

    def read(self, name: str, *, default: Any = _FROM_ROW) -> Any:
        """The raw value of the object field `name`, its default when absent or empty (reported
        when the row requires it); the object must have been read."""
        row = self.row(name)
        default = row.default if default is _FROM_ROW else default
        obj = self._objects[row.object or name]
        field = name.split(".", 1)[1]
        if obj is None:
            return default
        if field not in obj or obj[field] in (None, ""):
            if default is None and not row.optional:
                self.problem(name, "is missing")
            return default
        return obj[field]

    def string(
        self, value: Any, key: str, pattern: re.Pattern[str] | Callable[[str], bool], expected: str
    ) -> str:
        if value is None:
            return ""
        text = str(value)
        if isinstance(pattern, re.Pattern):
            ok = pattern.fullmatch(text) is not None
        else:
            ok = pattern(text)
        if not ok:
            self.problem(key, f"{expected}, got {text!r}")
        return text

    def text(
        self, name: str, pattern: re.Pattern[str] | Callable[[str], bool], expected: str
    ) -> str:
        return self.string(self.read(name), name, pattern, expected)

    def optional_text(
        self, name: str, pattern: re.Pattern[str] | Callable[[str], bool], expected: str
    ) -> str | None:
        value = self.read(name)
        return None if value is None else self.string(value, name, pattern, expected)

    def integer(self, name: str) -> int:
        row, value = self.row(name), self.read(name)
        if value is None:
            return row.low
        try:
            number = int(str(value), 10)
        except ValueError:
            self.problem(name, f"must be a whole number, got {value!r}")
            return row.low
        if not row.low <= number <= row.high:
            self.problem(name, f"must be between {row.low} and {row.high}, got {number}")
        return number

    def boolean(self, name: str) -> bool:
        value = self.read(name)
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        self.problem(name, f"must be true or false, got {value!r}")
        return False

    def secret(self, key: str, *, required: bool | None = None) -> pulumi.Output[str] | None:
        row = self.row(key)
        raw = self.source.get(key)
        if raw is None or raw == "":
            if not row.optional if required is None else required:
                self.problem(key, "is missing")
            return None
        if not self.source.is_secret(key):
            self.problems.append(
                f"{NAMESPACE}:{key}: is stored in plain text; it holds a secret. Fix: "
                f"pulumi config rm {NAMESPACE}:{key} && pulumi config set --secret "
                f"{NAMESPACE}:{key} ...  ({row.example})"
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


# --------------------------------------------------------------------------- loading


def load_settings(source: ConfigSource | None = None) -> Settings:
    """Reads and validates every `mcp:*` key; raises ConfigError listing all problems."""
    reader = _Reader(source or PulumiConfigSource())

    server = _read_server(reader)
    paths = _read_paths(reader)
    app = _read_app(reader)
    image = _read_image(reader, restore=bool(reader.source.get("restoreBackup")))
    github = _read_github(reader)

    env_file_content = reader.secret("envFileContent")
    slack_webhook_url = reader.secret("slackWebhookUrl")
    if slack_webhook_url is not None:
        raw = reader.source.get("slackWebhookUrl") or ""
        if not raw.startswith("https://"):
            reader.problem(
                "slackWebhookUrl",
                "must be an https:// Slack incoming-webhook URL (value not shown: it is secret)",
                "https://hooks.slack.com/services/<team>/<channel>/<token>",
            )

    restore_raw = reader.source.get("restoreBackup")
    reader.row("restoreBackup")
    restore_backup = None
    if restore_raw:
        restore_backup = reader.string(
            restore_raw,
            "restoreBackup",
            BACKUP_ID_PATTERN,
            "must be a backup timestamp YYYYMMDD_HHMMSS or 'latest'",
        )

    reader.object("release")
    release = ReleaseInfo(
        author=reader.text(
            "release.author",
            ACTOR_PATTERN,
            "must be 1-200 letters, digits, spaces or ._@+:/#()[]-, starting with a letter or "
            "digit (it is recorded on the server)",
        ),
        message=str(reader.read("release.message")),
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


def load_server_settings(source: ConfigSource) -> tuple[ServerSettings, PathSettings]:
    """Only `mcp:server` and `mcp:paths`, validated as `load_settings` does: for tools that
    reach the server outside the program (rollback.py reading the release ledger)."""
    reader = _Reader(source)
    server, paths = _read_server(reader), _read_paths(reader)
    if reader.problems:
        raise ConfigError(reader.problems)
    return server, paths


def _read_server(reader: _Reader) -> ServerSettings:
    reader.object("server")
    host = reader.text("server.host", HOSTNAME_PATTERN, "must be a host name or IP address")
    port = reader.integer("server.port")
    user = reader.text("server.user", USER_PATTERN, "must be a Unix user name")
    host_key = reader.text(
        "server.hostKey",
        _valid_host_key,
        "must be the server's public host key as '<type> <base64>' (pinned; see README)",
    )
    private_key = reader.secret("sshPrivateKey")
    raw_key = reader.source.get("sshPrivateKey")
    if raw_key and not _valid_private_key(raw_key):
        reader.problem(
            "sshPrivateKey", "is not a PEM/OpenSSH private key (value not shown: it is secret)"
        )
    return ServerSettings(
        host=host,
        port=port,
        user=user,
        host_key=host_key,
        private_key=private_key,  # type: ignore[arg-type]
    )


def _read_paths(reader: _Reader) -> PathSettings:
    reader.object("paths")

    def directory(name: str) -> str:
        return reader.text(
            f"paths.{name}",
            ABSOLUTE_DIR_PATTERN,
            "must be an absolute directory other than /, spelled without '//', '.' or '..' "
            "parts, spaces or shell characters",
        ).removesuffix("/")

    deploy_dir = directory("deployDir")
    backup_dir = directory("backupDir")
    if deploy_dir and deploy_dir == backup_dir:
        reader.problem("paths.backupDir", "must differ from paths.deployDir")
    elif deploy_dir and backup_dir.startswith(f"{deploy_dir}/"):
        # backup.sh refuses it: each archive would hold the previous ones.
        reader.problem(
            "paths.backupDir",
            f"must not be inside paths.deployDir {deploy_dir!r} (each backup would archive the "
            f"previous ones), got {backup_dir!r}",
        )
    keep = reader.integer("paths.keepBackups")
    min_free = reader.integer("paths.minFreeMb")  # backup.sh: check_posint
    return PathSettings(deploy_dir, backup_dir, keep, min_free)


def _read_app(reader: _Reader) -> AppSettings:
    reader.object("app")
    compose_source = str(reader.read("app.composeSource") or "")
    compose_file = reader.string(
        reader.read("app.composeFile", default=compose_source.rsplit("/", 1)[-1] or None),
        "app.composeFile",
        _file_name,
        FILE_NAME_RULE,
    )
    if compose_source and not Path(compose_source).is_file():
        reader.problem(
            "app.composeSource",
            f"file {compose_source!r} does not exist (relative to the Pulumi project)",
        )
    env_file_name = reader.text("app.envFile", _file_name, FILE_NAME_RULE)
    if env_file_name and env_file_name == compose_file:
        reader.problem(
            "app.envFile", f"must differ from app.composeFile, got {env_file_name!r} for both"
        )
    service = reader.text("app.service", SERVICE_PATTERN, "must be a compose service name")
    health_url = reader.text(
        "app.healthUrl", _url, "must be an http(s) URL reachable from the server"
    )
    attempts = reader.integer("app.healthAttempts")
    timeout = reader.integer("app.healthTimeoutSeconds")
    health_status = reader.integer("app.healthStatus")  # health_validate: 100-599
    public_url = reader.text("app.publicUrl", _url, "must be an http(s) URL").rstrip("/")
    lock_timeout = reader.integer("app.lockTimeoutSeconds")
    compose_project = reader.optional_text(
        "app.composeProject",
        COMPOSE_PROJECT_PATTERN,
        "must be a compose project name (lower-case letters, digits, '_', '-')",
    )
    strategy = str(reader.read("app.strategy"))
    if strategy not in STRATEGIES:
        reader.problem("app.strategy", f"must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    proxy = _read_proxy(reader, required=strategy == "blue-green")
    if strategy == "blue-green" and _url(health_url):  # else already reported
        if BLUE_GREEN_HEALTH_URL_PATTERN.fullmatch(health_url) is None:
            reader.problem(
                "app.healthUrl",
                "must be a plain http:// URL, http://HOST[:PORT][/PATH], with app.strategy "
                "blue-green (the proxy serves HTTP on its port; put TLS in front of it), "
                f"got {health_url!r}",
            )
        elif proxy is not None:
            _check_proxy_ports(reader, health_url, proxy)
    pre_backup_command = reader.optional_text(
        "app.preBackupCommand",
        _pre_backup_command,
        "must be one line of at most 2000 characters with balanced quotes, run in the "
        "service container (no shell: for redirections use sh -c '...')",
    )
    pause_during_backup = reader.boolean("app.pauseDuringBackup")
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
        health_status=health_status,
    )


def _read_proxy(reader: _Reader, *, required: bool) -> ProxySettings | None:
    if reader.object("proxy", required=required, why="needed by app.strategy blue-green") is None:
        return None
    image = reader.text(
        "proxy.image",
        PROXY_IMAGE_PATTERN,
        "must be an image reference with a tag or digest (build it with proxy/build.sh)",
    )
    listen = reader.optional_text(
        "proxy.listen",
        lambda text: (
            (m := LISTEN_PATTERN.fullmatch(text)) is not None and 1 <= int(m.group(1)) <= 65535
        ),
        "must be [ADDRESS]:PORT where the proxy listens (default 127.0.0.1:<healthUrl port>)",
    )
    ports_raw = reader.read("proxy.colourPorts")
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
            )
    drain = reader.integer("proxy.drainSeconds")
    return ProxySettings(image=image, listen=listen, colour_ports=colour_ports, drain_seconds=drain)


def _read_image(reader: _Reader, *, restore: bool) -> ImageSettings:
    """The image to deploy. In restore mode (mcp:restoreBackup) nothing is built or pulled by
    tag: the backup's manifest names the image, so mcp:imageTag is not needed (`rollback.py
    --backup` sets only mcp:restoreBackup, and the stack file holds no tag)."""
    reader.object("image")
    registry = reader.text("image.registry", REGISTRY_PATTERN, "must be a registry host[:port]")
    repository = reader.text(
        "image.repository", REPOSITORY_PATTERN, "must be a lower-case '<owner>/<name>' repository"
    )
    raw_tag = reader.source.get("imageTag")
    reader.row("imageTag")
    if raw_tag is None and not restore:
        reader.problem(
            "imageTag",
            "is missing: a deploy needs the image tag to deploy (the deploy workflow sets it to "
            "the commit SHA; only a restore, mcp:restoreBackup, runs without it)",
            "pulumi up -c mcp:imageTag=$(git rev-parse HEAD)",
        )
    tag = reader.string(
        raw_tag,
        "imageTag",
        IMAGE_TAG_PATTERN,
        "must be a Docker tag (letters, digits, '_', '.', '-'; no spaces)",
    )
    pinned_digest = _read_pin(reader, tag, restore=restore)
    # A pinned image is deployed as it served: never rebuilt (nor pushed again under its tag).
    build = reader.boolean("image.build") and pinned_digest is None
    context = str(reader.read("image.context"))
    dockerfile = str(reader.read("image.dockerfile"))
    prepare_raw = reader.read("image.prepare")
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
            )
    if build and not restore and not prepare:  # a restore builds nothing; prepare makes context
        if not Path(context).is_dir():
            reader.problem("image.context", f"directory {context!r} does not exist", "app")
        elif not (Path(context) / dockerfile).is_file():
            reader.problem("image.dockerfile", f"{dockerfile!r} not found in {context!r}")
    user_rule = "must be a registry user name (letters, digits, '.', '_', '@', '+', '-')"
    pull_user = reader.optional_text("image.pullUser", REGISTRY_USER_PATTERN, user_rule)
    pull_password = reader.secret("registryPullPassword", required=pull_user is not None)
    push_user = reader.optional_text("image.pushUser", REGISTRY_USER_PATTERN, user_rule)
    push_password = reader.secret("registryPushPassword")
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
        pull_user=pull_user,
        pull_password=pull_password,
        push_user=push_user,
        push_password=push_password,
        prepare=prepare,
        pinned_digest=pinned_digest,
    )


def _read_pin(reader: _Reader, tag: str, *, restore: bool) -> str | None:
    """mcp:imagePin (`<tag>@sha256:<digest>`, set by rollback.py): its digest, when it pins the
    tag being deployed. A pin of another tag is an error: the deploy would be neither the
    rollback's image nor an explicit new version."""
    raw = reader.source.get("imagePin")
    reader.row("imagePin")
    if not raw or restore:
        return None
    pin_tag, _, digest = raw.partition("@")
    if not IMAGE_TAG_PATTERN.fullmatch(pin_tag) or not DIGEST_PATTERN.fullmatch(digest):
        reader.problem("imagePin", f"must be <tag>@sha256:<64 hex digits>, got {raw!r}")
        return None
    if tag and pin_tag != tag:
        reader.problem(
            "imagePin",
            f"pins tag {pin_tag!r} (a rollback went back to it) but mcp:imageTag is {tag!r}. "
            f"To deploy {tag!r} as a new version, remove the pin first",
            "pulumi config rm mcp:imagePin",
        )
        return None
    return digest


def _github_api_url(text: str) -> bool:
    """An http(s) URL; plain http only on loopback (the admin token goes with every request)."""
    loopback = re.match(r"http://(?:127\.[0-9.]+|localhost|\[::1\])[:/]", text) is not None
    return _url(text) and (text.startswith("https://") or loopback)


GITHUB_OWNER_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,39}\Z")
GITHUB_REPOSITORY_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,100}\Z")
GITHUB_ENVIRONMENT_PATTERN = re.compile(
    r"^[A-Za-z0-9._-](?:[A-Za-z0-9._ -]{0,253}[A-Za-z0-9._-])?\Z"
)


def _read_github(reader: _Reader) -> GitHubSettings | None:
    if reader.object("github") is None:
        return None
    owner = reader.text(
        "github.owner", GITHUB_OWNER_PATTERN, "must be a GitHub user or organisation"
    )
    repository = reader.text(
        "github.repository", GITHUB_REPOSITORY_PATTERN, "must be a repository name without owner"
    )
    environment = reader.text(
        "github.environment",
        GITHUB_ENVIRONMENT_PATTERN,
        "must be an environment name (no leading or trailing space)",
    )

    def ids(name: str) -> tuple[int, ...]:
        raw = reader.read(f"github.{name}") or []
        if not isinstance(raw, list) or not all(isinstance(item, int) and item > 0 for item in raw):
            reader.problem(
                f"github.{name}",
                f"must be a list of numeric ids, got {raw!r}",
                "[1234567] (gh api users/NAME --jq .id)",
            )
            return ()
        if len(raw) > 6:
            reader.problem(f"github.{name}", "GitHub allows at most 6 reviewers")
        return tuple(raw)

    user_ids = ids("reviewerUserIds")
    team_ids = ids("reviewerTeamIds")
    wait = reader.integer("github.waitTimerMinutes")
    backend_url = reader.optional_text(
        "github.pulumiBackendUrl",
        PULUMI_BACKEND_URL_PATTERN,
        "must be a Pulumi self-managed backend URL (s3://, azblob://, gs://, file://); "
        "it is stored as a repository variable, so it must hold no credentials",
    )
    legacy = reader.boolean("github.legacySecrets")
    api_url = reader.optional_text(
        "github.apiUrl",
        _github_api_url,
        "must be the https:// base URL of a GitHub API (http:// only on loopback: the admin "
        "token goes with every request; omit the key for api.github.com)",
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
