"""Reads the stack configuration once, validates all of it, and hands on typed settings.

Every key is read through its row in `components/config_keys.py` (type, default, example).

This is the only module that touches `pulumi.Config`. Every problem found is reported at once,
naming the key, what was given and a valid example, before any resource is declared, so a bad
value fails `pulumi preview` and nothing reaches the server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pulumi

from components import config_keys
from components.compose_check import compose_problems

# The value checks live with the keys, in their rows (components/config_keys.py); the patterns
# rollback.py applies to its arguments are named here too.
from components.config_keys import ACTOR_PATTERN as ACTOR_PATTERN
from components.config_keys import BACKUP_ID_PATTERN as BACKUP_ID_PATTERN
from components.config_keys import DIGEST_PATTERN, IMAGE_TAG_PATTERN, LISTEN_PATTERN, valid_url

NAMESPACE = "mcp"


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

    def names(self) -> Iterable[str]:
        """Every key set (without the namespace), known or not: unknown ones are refused."""
        ...


class PulumiConfigSource:
    """Reads `mcp:*` keys from the current Pulumi stack."""

    def __init__(self, namespace: str = NAMESPACE) -> None:
        self._config = pulumi.Config(namespace)
        self._namespace = namespace

    def get(self, key: str) -> str | None:
        return self._config.get(key)

    def is_secret(self, key: str) -> bool:
        return pulumi.runtime.is_config_secret(f"{self._namespace}:{key}")

    def names(self) -> Iterable[str]:
        prefix = f"{self._namespace}:"
        config = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
        return [key.removeprefix(prefix) for key in config if key.startswith(prefix)]


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

    def names(self) -> Iterable[str]:
        return self._values.keys()


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
class CanarySettings:
    """The steps and gate of the canary strategy (see remote/lib/canary.sh)."""

    steps: tuple[int, ...] = (10, 50, 100)
    hold_seconds: int = 30
    max_error_percent: int = 1
    max_latency_ms: int = 1000


# The strategies that run behind the proxy (remote/bluegreen.sh).
PROXY_STRATEGIES = ("blue-green", "canary")


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
    canary: CanarySettings | None = None  # app.strategy canary only
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
    # The staging deploys' environment (main only, no reviewers); None: none is declared.
    staging_environment: str | None = None


@dataclass(frozen=True)
class ReleaseInfo:
    """Who and what a deploy is for; shown in notifications."""

    author: str
    message: str
    override_freeze: bool = False  # an emergency rollback passes a deploy freeze (rollback.py)


@dataclass(frozen=True)
class NotifySettings:
    """Where `oncall.py notify` posts (raw values: it runs outside the engine; the secrets
    are never printed, see ops/notify.py)."""

    slack_webhook_url: str | None
    telegram_bot_token: str | None
    telegram_chat_id: str | None
    telegram_api_url: str

    def __repr__(self) -> str:  # never print a secret
        channels = [
            name
            for name, on in (("slack", self.slack_webhook_url), ("telegram", self.telegram_chat_id))
            if on
        ]
        return f"NotifySettings(channels={channels}, telegram_api_url={self.telegram_api_url})"


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    paths: PathSettings
    app: AppSettings
    image: ImageSettings
    github: GitHubSettings | None
    env_file_content: pulumi.Output[str] | None
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

    def string(self, value: Any, key: str) -> str:
        """`value` as text ("" for None), checked by the row's check, refused with its rule."""
        if value is None:
            return ""
        text, row = str(value), self.row(key)
        if isinstance(row.check, re.Pattern):
            ok = row.check.fullmatch(text) is not None
        else:
            ok = row.check is None or row.check(text)
        if not ok:
            self.problem(key, f"{row.rule}, got {text!r}")
        return text

    def text(self, name: str, *, default: Any = _FROM_ROW) -> str:
        return self.string(self.read(name, default=default), name)

    def optional_text(self, name: str) -> str | None:
        value = self.read(name)
        return None if value is None else self.string(value, name)

    def top(self, key: str) -> str | None:
        """The raw value of a top-level (non-object) key."""
        self.row(key)
        return self.source.get(key)

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

    def unknown_keys(self) -> list[str]:
        """A problem for each key set, or field of an object read, that has no row: a misspelt
        key would otherwise be ignored (and its default used), naming the closest row."""
        problems = []
        for name in sorted(self.source.names()):
            row = config_keys.BY_NAME.get(name)
            if row is None:  # compared with the fields too: `healthUrl` means `app.healthUrl`
                top_level = [key.name for key in config_keys.KEYS if key.object is None]
                problems.append(_unknown(name, top_level, list(config_keys.BY_NAME)))
            elif row.object is not None:
                problems.append(
                    f"{NAMESPACE}:{name}: is a field of {NAMESPACE}:{row.object}, not a key of "
                    f"its own. Fix: pulumi config rm {NAMESPACE}:{name} && pulumi config set "
                    f"--path '{NAMESPACE}:{name}' ...  (Example: {row.example})"
                )
        for obj, value in self._objects.items():
            fields = [key.name.split(".", 1)[1] for key in config_keys.KEYS if key.object == obj]
            problems += [
                _unknown(field, fields, fields, obj) for field in value or {} if field not in fields
            ]
        return problems


def _unknown(name: str, listed: list[str], candidates: list[str], obj: str = "") -> str:
    """The problem of a key (or field of `obj`) that has no row, naming the closest candidate,
    or when none is close, listing the known ones."""
    prefix = f"{NAMESPACE}:{obj}." if obj else f"{NAMESPACE}:"
    meant = config_keys.closest(name, candidates)
    if meant is None:
        known = ", ".join(prefix + key for key in listed)
        return f"{prefix}{name}: is not a known key (a misspelling?); the known ones: {known}"
    example = config_keys.key(f"{obj}.{meant}" if obj else meant).example
    return (
        f"{prefix}{name}: is not a known key (a misspelling?); did you mean {prefix}{meant}? "
        f"Example: {example}"
    )


def _valid_private_key(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith("-----BEGIN ") and "PRIVATE KEY-----" in stripped.splitlines()[0]


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
    _read_notify(reader)  # validated with the rest; read by `oncall.py notify`, not the program

    restore_raw = reader.top("restoreBackup")
    restore_backup = reader.string(restore_raw, "restoreBackup") if restore_raw else None

    reader.object("release")
    release = ReleaseInfo(
        author=reader.text("release.author"),
        message=str(reader.read("release.message")),
        override_freeze=reader.boolean("release.overrideFreeze"),
    )

    problems = reader.unknown_keys() + reader.problems  # a misspelling first: it explains more
    if problems:
        raise ConfigError(problems)
    assert server.private_key is not None
    return Settings(
        server=server,
        paths=paths,
        app=app,
        image=image,
        github=github,
        env_file_content=env_file_content,
        restore_backup=restore_backup,
        release=release,
    )


def is_github_stack(source: ConfigSource | None = None) -> bool:
    """A stack with `mcp:github` and no `mcp:server`: it declares the GitHub side only."""
    source = source or PulumiConfigSource()
    return source.get("github") is not None and source.get("server") is None


def load_github_stack_settings(source: ConfigSource | None = None) -> GitHubSettings:
    """The GitHub stack's settings (`is_github_stack`): `mcp:github` and nothing else, so that
    no server key (and no server secret) lives in it."""
    reader = _Reader(source or PulumiConfigSource())
    github = _read_github(reader)
    assert github is not None
    others = sorted(
        f"{NAMESPACE}:{name}"
        for name in reader.source.names()
        if name != "github" and config_keys.BY_NAME.get(name) is not None
    )
    if others:
        reader.problem(
            "github",
            "is in a stack without mcp:server: that stack declares the GitHub side only, so "
            f"{', '.join(others)} belong in a server stack (Pulumi.production.yaml, "
            "Pulumi.staging.yaml); or add mcp:server to deploy from this stack too",
        )
    if github.legacy_secrets:
        reader.problem(
            "github.legacySecrets",
            "copies the server's deploy key into repository secrets, so it needs the server: "
            "set it in the production stack (with mcp:github) for the time of the migration",
        )
    problems = reader.unknown_keys() + reader.problems
    if problems:
        raise ConfigError(problems)
    return github


def load_server_settings(source: ConfigSource) -> tuple[ServerSettings, PathSettings]:
    """Only `mcp:server` and `mcp:paths`, validated as `load_settings` does: for tools that
    reach the server outside the program (rollback.py reading the release ledger)."""
    reader = _Reader(source)
    server, paths = _read_server(reader), _read_paths(reader)
    if reader.problems:
        raise ConfigError(reader.problems)
    return server, paths


def load_notify_settings(source: ConfigSource) -> NotifySettings:
    """Only the notification keys (`mcp:slackWebhookUrl`, `mcp:telegramBotToken`,
    `mcp:telegram`), validated as `load_settings` does: for `oncall.py notify`."""
    reader = _Reader(source)
    notify = _read_notify(reader)
    if reader.problems:
        raise ConfigError(reader.problems)
    return notify


def _read_notify(reader: _Reader) -> NotifySettings:
    slack = reader.secret("slackWebhookUrl")
    slack_raw = reader.source.get("slackWebhookUrl") or None
    if slack is not None and not (slack_raw or "").startswith("https://"):
        reader.problem(
            "slackWebhookUrl",
            "must be an https:// Slack incoming-webhook URL (value not shown: it is secret)",
            "https://hooks.slack.com/services/<team>/<channel>/<token>",
        )
    token = reader.secret("telegramBotToken")
    token_raw = reader.source.get("telegramBotToken") or None
    if token is not None and config_keys.TELEGRAM_TOKEN_PATTERN.fullmatch(token_raw or "") is None:
        reader.problem(
            "telegramBotToken",
            "is not a Telegram bot token, <digits>:<20+ letters, digits, '_' or '-'> (value not "
            "shown: it is secret; @BotFather gives it)",
        )
    telegram = reader.object("telegram")
    chat_id = reader.optional_text("telegram.chatId")
    api_url = reader.text("telegram.apiUrl").rstrip("/")
    if token is not None and telegram is not None and chat_id is None:
        reader.problem("telegram.chatId", "is missing (mcp:telegramBotToken is set)")
    elif token is not None and telegram is None:
        reader.problem("telegram", "is missing (mcp:telegramBotToken is set): name the chat")
    if chat_id is not None and token is None:
        reader.problem(
            "telegramBotToken",
            "is missing (mcp:telegram.chatId is set): "
            "pulumi config set --secret mcp:telegramBotToken <token from @BotFather>",
        )
    return NotifySettings(
        slack_webhook_url=slack_raw,
        telegram_bot_token=token_raw if chat_id else None,
        telegram_chat_id=chat_id if token_raw else None,
        telegram_api_url=api_url,
    )


def load_app_settings(source: ConfigSource) -> AppSettings:
    """Only `mcp:app`, validated as `load_settings` does: for oncall.py (status, logs), which
    needs the compose file, service, health URL and project the scripts are run with."""
    reader = _Reader(source)
    app = _read_app(reader)
    if reader.problems:
        raise ConfigError(reader.problems)
    return app


def _read_server(reader: _Reader) -> ServerSettings:
    reader.object("server")
    host = reader.text("server.host")
    port = reader.integer("server.port")
    user = reader.text("server.user")
    host_key = reader.text("server.hostKey")
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
    deploy_dir = reader.text("paths.deployDir").removesuffix("/")
    backup_dir = reader.text("paths.backupDir").removesuffix("/")
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
    compose_file = reader.text("app.composeFile", default=compose_source.rsplit("/", 1)[-1] or None)
    if compose_source and not Path(compose_source).is_file():
        reader.problem(
            "app.composeSource",
            f"file {compose_source!r} does not exist (relative to the Pulumi project)",
        )
    env_file_name = reader.text("app.envFile")
    if env_file_name and env_file_name == compose_file:
        reader.problem(
            "app.envFile", f"must differ from app.composeFile, got {env_file_name!r} for both"
        )
    service = reader.text("app.service")
    health_url = reader.text("app.healthUrl")
    attempts = reader.integer("app.healthAttempts")
    timeout = reader.integer("app.healthTimeoutSeconds")
    health_status = reader.integer("app.healthStatus")  # health_validate: 100-599
    public_url = reader.text("app.publicUrl").rstrip("/")
    lock_timeout = reader.integer("app.lockTimeoutSeconds")
    compose_project = reader.optional_text("app.composeProject")
    strategy = reader.text("app.strategy")
    proxy = _read_proxy(reader, needed=strategy in PROXY_STRATEGIES)
    canary = _read_canary(reader) if strategy == "canary" else None
    if strategy in PROXY_STRATEGIES and compose_source and Path(compose_source).is_file():
        # Both colours run from it: checked here, before anything touches the server.
        for problem in compose_problems(Path(compose_source)):
            reader.problem("app.composeSource", f"{problem} (with app.strategy {strategy})")
    if strategy in PROXY_STRATEGIES and valid_url(health_url):  # else already reported
        if BLUE_GREEN_HEALTH_URL_PATTERN.fullmatch(health_url) is None:
            reader.problem(
                "app.healthUrl",
                "must be a plain http:// URL, http://HOST[:PORT][/PATH], with app.strategy "
                f"{strategy} (the proxy serves HTTP on its port; put TLS in front of it), "
                f"got {health_url!r}",
            )
        elif proxy is not None:
            _check_proxy_ports(reader, health_url, proxy)
    pre_backup_command = reader.optional_text("app.preBackupCommand")
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
        canary=canary,
        pre_backup_command=pre_backup_command or None,
        pause_during_backup=pause_during_backup,
        health_status=health_status,
    )


def _read_proxy(reader: _Reader, *, needed: bool) -> ProxySettings | None:
    """`mcp:proxy` for blue-green and canary; every field has a default (the stock image)."""
    if reader.object("proxy", required=False) is None and not needed:
        return None
    image = reader.text("proxy.image")
    listen = reader.optional_text("proxy.listen")
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


def _read_canary(reader: _Reader) -> CanarySettings:
    """`mcp:canary` (every field optional); the steps as canary_validate in
    remote/lib/canary.sh wants them: up to 10 whole percentages, rising, the last 100."""
    if reader.object("canary", required=False) is None:
        return CanarySettings()
    steps_raw = reader.read("canary.steps")
    steps = CanarySettings.steps
    if steps_raw is not None:
        if (
            isinstance(steps_raw, list)
            and 1 <= len(steps_raw) <= 10
            and all(isinstance(p, int) and not isinstance(p, bool) for p in steps_raw)
            and all(a < b for a, b in zip([0, *steps_raw], steps_raw, strict=False))
            and steps_raw[-1] == 100
        ):
            steps = tuple(steps_raw)
        else:
            reader.problem(
                "canary.steps",
                "must be up to 10 rising whole percentages of the requests, the last 100, "
                f"got {steps_raw!r}",
            )
    return CanarySettings(
        steps=steps,
        hold_seconds=reader.integer("canary.holdSeconds"),
        max_error_percent=reader.integer("canary.maxErrorPercent"),
        max_latency_ms=reader.integer("canary.maxLatencyMs"),
    )


def _read_image(reader: _Reader, *, restore: bool) -> ImageSettings:
    """The image to deploy. In restore mode (mcp:restoreBackup) nothing is built or pulled by
    tag: the backup's manifest names the image, so mcp:imageTag is not needed (`rollback.py
    --backup` sets only mcp:restoreBackup, and the stack file holds no tag)."""
    reader.object("image")
    registry = reader.text("image.registry")
    repository = reader.text("image.repository")
    raw_tag = reader.top("imageTag")
    if raw_tag is None and not restore:
        reader.problem(
            "imageTag",
            "is missing: a deploy needs the image tag to deploy (the deploy workflow sets it to "
            "the commit SHA; only a restore, mcp:restoreBackup, runs without it)",
            "pulumi up -c mcp:imageTag=$(git rev-parse HEAD)",
        )
    tag = reader.string(raw_tag, "imageTag")
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
    pull_user = reader.optional_text("image.pullUser")
    pull_password = reader.secret("registryPullPassword", required=pull_user is not None)
    push_user = reader.optional_text("image.pushUser")
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
    raw = reader.top("imagePin")
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


def _read_github(reader: _Reader) -> GitHubSettings | None:
    if reader.object("github") is None:
        return None
    owner = reader.text("github.owner")
    repository = reader.text("github.repository")
    environment = reader.text("github.environment")

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
    backend_url = reader.optional_text("github.pulumiBackendUrl")
    legacy = reader.boolean("github.legacySecrets")
    api_url = reader.optional_text("github.apiUrl")
    staging = reader.optional_text("github.stagingEnvironment")
    if staging is not None and staging == environment:
        reader.problem(
            "github.stagingEnvironment", f"must differ from github.environment ({environment!r})"
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
        staging_environment=staging,
    )
