"""Every `mcp:*` key as one row (type, default, example, doc): the one list of keys.

`components/settings.py` validates with these rows, the README's key table and the secrets in
`Pulumi.production.yaml`'s header are produced from them (`python -m components.config_keys`
rewrites both), and `tests/unit/test_config_keys.py` fails when a copy drifts.
"""

from __future__ import annotations

import base64
import difflib
import re
import shlex
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["object", "string", "int", "bool", "list", "secret"]
Check = re.Pattern[str] | Callable[[str], bool]

# --------------------------------------------------------------------------- value checks
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
# No user:password@ part: the value becomes a (non-secret) repository variable.
PULUMI_BACKEND_URL_PATTERN = re.compile(r"^(?:s3|azblob|gs|file)://[A-Za-z0-9._~/?=&%,+-]+\Z")
PROXY_IMAGE_PATTERN = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(?:@sha256:[a-f0-9]{64})?|@sha256:[a-f0-9]{64})\Z"
)  # check_image (valid_image): a tag or a digest is required
LISTEN_PATTERN = re.compile(r"^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3})?:([0-9]{1,5})\Z")
GITHUB_OWNER_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,39}\Z")
GITHUB_REPOSITORY_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,100}\Z")
GITHUB_ENVIRONMENT_PATTERN = re.compile(
    r"^[A-Za-z0-9._-](?:[A-Za-z0-9._ -]{0,253}[A-Za-z0-9._-])?\Z"
)
HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
STRATEGIES = ("recreate", "blue-green", "canary")
# The proxy blue-green and canary run by default: the official Caddy image, pinned by the digest
# of its multi-platform index (docker.io/library/caddy:2.11.4-alpine). This machine cannot reach
# Docker Hub: the digest is the one public deployments pin for that tag, not pulled here; a
# server that cannot pull it refuses the release before touching anything (remote/lib/proxy.sh).
STOCK_PROXY_IMAGE = (
    "docker.io/library/caddy:2.11.4-alpine"
    "@sha256:5f5c8640aae01df9654968d946d8f1a56c497f1dd5c5cda4cf95ab7c14d58648"
)
TELEGRAM_CHAT_PATTERN = re.compile(r"^(?:-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})\Z")
TELEGRAM_TOKEN_PATTERN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}\Z")


def valid_host_key(text: str) -> bool:
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


def valid_file_name(text: str) -> bool:
    return FILE_NAME_PATTERN.fullmatch(text) is not None and text not in RESERVED_FILE_NAMES


def valid_url(text: str) -> bool:
    match = URL_PATTERN.fullmatch(text)
    return match is not None and (match.group(1) is None or 1 <= int(match.group(1)) <= 65535)


def valid_github_api_url(text: str) -> bool:
    """An http(s) URL; plain http only on loopback (the admin token goes with every request)."""
    loopback = re.match(r"http://(?:127\.[0-9.]+|localhost|\[::1\])[:/]", text) is not None
    return valid_url(text) and (text.startswith("https://") or loopback)


def valid_pre_backup_command(text: str) -> bool:
    """What remote/lib.sh consistency_validate accepts: one line, words that split."""
    if not text.strip() or "\n" in text or len(text) > 2000:
        return False
    try:
        return bool(shlex.split(text))
    except ValueError:
        return False


def valid_listen(text: str) -> bool:
    match = LISTEN_PATTERN.fullmatch(text)
    return match is not None and 1 <= int(match.group(1)) <= 65535


FILE_NAME_RULE = (
    "must be a plain file name (letters, digits, '.', '_', '-'; not starting with '-', "
    f"no '..', not {' or '.join(RESERVED_FILE_NAMES)}: the deploy scripts use those)"
)
DIR_RULE = (
    "must be an absolute directory other than /, spelled without '//', '.' or '..' parts, "
    "spaces or shell characters"
)
REGISTRY_USER_RULE = "must be a registry user name (letters, digits, '.', '_', '@', '+', '-')"


@dataclass(frozen=True)
class Key:
    name: str  # "server.host": object "server", field "host"; "imageTag": a top-level key
    kind: Kind
    example: str  # a valid value, shown in every problem about this key
    doc: str
    default: Any = None  # None: no default (required unless `optional`)
    optional: bool = False
    low: int = 0  # int: the allowed range
    high: int = 0
    check: Check | None = None  # string: what a valid value matches (pattern or function)
    rule: str = ""  # string: what `check` wants, said in the problem ("must be ...")

    @property
    def object(self) -> str | None:
        return self.name.split(".", 1)[0] if "." in self.name else None


def _k(name: str, kind: Kind, example: str, doc: str, **extra: Any) -> Key:
    return Key(name, kind, example, doc, **extra)


# One row per key, kept compact on purpose: a table, not code.
# fmt: off
KEYS: tuple[Key, ...] = (
    _k("server", "object", '{"host": "147.79.101.32", "port": 22, "user": "feustey", '
       '"hostKey": "ssh-ed25519 AAAA..."}', "the server to deploy to"),
    _k("server.host", "string", "147.79.101.32", "server address",
       check=HOSTNAME_PATTERN, rule="must be a host name or IP address"),
    _k("server.port", "int", "22", "SSH port", default=22, low=1, high=65535),
    _k("server.user", "string", "feustey", "SSH user (in the `docker` group)",
       check=USER_PATTERN, rule="must be a Unix user name"),
    _k("server.hostKey", "string", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...",
       "the server's host key, pinned: a different key refuses to connect "
       "(`ssh-keyscan -t ed25519 HOST | cut -d' ' -f2-`)",
       check=valid_host_key,
       rule="must be the server's public host key as '<type> <base64>' (pinned; see README)"),
    _k("sshPrivateKey", "secret", "pulumi config set --secret mcp:sshPrivateKey < "
       "~/.ssh/github-actions-mcp", "dedicated deploy key"),
    _k("paths", "object", '{"deployDir": "/opt/mcp", "backupDir": "/opt/mcp-backups", '
       '"keepBackups": 10}', "where things live on the server"),
    _k("paths.deployDir", "string", "/opt/mcp",
       "where the compose file, env file and data live (absolute, not `/`)",
       check=ABSOLUTE_DIR_PATTERN, rule=DIR_RULE),
    _k("paths.backupDir", "string", "/opt/mcp-backups", "where backups go (not inside the "
       "deploy dir: each backup would archive the previous ones)",
       check=ABSOLUTE_DIR_PATTERN, rule=DIR_RULE),
    _k("paths.keepBackups", "int", "10", "how many backups to keep", default=10, low=1,
       high=1000),
    _k("paths.minFreeMb", "int", "100", "free space to keep beyond the backup's size",
       default=100, low=1, high=999_999),
    _k("app", "object", '{"composeSource": "docker-compose.production.yml", "service": '
       '"mcp-api-prod", "healthUrl": "http://localhost:8000/api/v1/health", "publicUrl": '
       '"https://api.dazno.de"}', "the application"),
    _k("app.composeSource", "string", "docker-compose.production.yml", "compose file in this "
       "project, shipped to the server; it must use `image: ${MCP_IMAGE}`"),
    _k("app.composeFile", "string", "docker-compose.production.yml",
       "its name on the server (default: the source's name)", optional=True,
       check=valid_file_name, rule=FILE_NAME_RULE),
    _k("app.envFile", "string", ".env.production", "env file name on the server",
       default=".env.production",
       check=valid_file_name, rule=FILE_NAME_RULE),
    _k("envFileContent", "secret", "pulumi config set --secret mcp:envFileContent < "
       ".env.production", "env file content; when unset the server's own env file is kept",
       optional=True),
    _k("app.service", "string", "mcp-api-prod", "compose service to health-check",
       check=SERVICE_PATTERN, rule="must be a compose service name"),
    _k("app.healthUrl", "string", "http://localhost:8000/api/v1/health",
       "checked *from the server*",
       check=valid_url, rule="must be an http(s) URL reachable from the server"),
    _k("app.healthAttempts", "int", "30", "tries", default=30, low=1, high=1000),
    _k("app.healthTimeoutSeconds", "int", "120", "deadline for all tries", default=120, low=1,
       high=3600),
    _k("app.healthStatus", "int", "200", "the HTTP status of `app.healthUrl` that means "
       "healthy; redirects are not followed (a 302 to a login page is unhealthy)",
       default=200, low=100, high=599),
    _k("app.publicUrl", "string", "https://api.dazno.de",
       "public URL (output `url`, smoke test, notifications)",
       check=valid_url, rule="must be an http(s) URL"),
    _k("app.lockTimeoutSeconds", "int", "120",
       "how long a deploy waits for another one's lock", default=120, low=0, high=3600),
    _k("app.composeProject", "string", "mcp",
       "compose project name (default: the deploy dir's base name)", optional=True,
       check=COMPOSE_PROJECT_PATTERN,
       rule="must be a compose project name (lower-case letters, digits, '_', '-')"),
    _k("app.preBackupCommand", "string", "sh -c 'pg_dump -U mcp mcp > /data/dump.sql'",
       "run in the service container before every backup (e.g. a database dump into the "
       "data dir), for a consistent backup of a busy app; no shell unless you write `sh -c` "
       "([details](remote/README.md#consistent-backups-of-a-busy-app))", optional=True,
       check=valid_pre_backup_command,
       rule="must be one line of at most 2000 characters with balanced quotes, run in the "
       "service container (no shell: for redirections use sh -c '...')"),
    _k("app.pauseDuringBackup", "bool", "true", "pause the service container while the "
       "archive is written (requests wait); always unpaused", default=False),
    _k("app.strategy", "string", "blue-green", "`recreate` (stop the old container, start "
       "the new one in place), `blue-green` (zero downtime: a proxy switches traffic to the "
       "new version only once it is healthy; see below) or `canary` (as blue-green, then the "
       "traffic moves in gated steps, `mcp:canary`)", default="recreate",
       check=STRATEGIES.__contains__,
       rule=f"must be one of {', '.join(STRATEGIES)}"),
    _k("proxy", "object", '{"image": "ghcr.io/feustey/mcp-proxy:caddy-2.11.9"}',
       "blue-green and canary only: the proxy (all optional)", optional=True),
    _k("proxy.image", "string", "ghcr.io/feustey/mcp-proxy:caddy-2.11.9",
       "the proxy image: by default the official Caddy image pinned by digest (the server pulls "
       "it); where the server cannot pull it, one built from source by `proxy/build.sh IMAGE "
       "--push` (its launcher keeps the socket across a config reload)",
       default=STOCK_PROXY_IMAGE, check=PROXY_IMAGE_PATTERN,
       rule="must be an image reference with a tag or digest (the default, or one built with "
       "proxy/build.sh)"),
    _k("proxy.listen", "string", "127.0.0.1:8000", "where the proxy listens (default "
       "`127.0.0.1:` + the port of `app.healthUrl`)", optional=True,
       check=valid_listen, rule="must be [ADDRESS]:PORT where the proxy listens "
       "(default 127.0.0.1:<healthUrl port>)"),
    _k("proxy.colourPorts", "list", "[8001, 8002]", "loopback ports of the blue and green "
       "apps (default: health URL port + 1, + 2)", optional=True),
    _k("proxy.drainSeconds", "int", "2", "how long the old version keeps running after the "
       "switch", default=2, low=0, high=300),
    _k("canary", "object", '{"steps": [10, 50, 100], "holdSeconds": 30}',
       "canary only: the steps and their gate (all optional)", optional=True),
    _k("canary.steps", "list", "[10, 50, 100]", "the new version's share of requests (%) at "
       "each step, rising, the last 100; each held `holdSeconds`", optional=True),
    _k("canary.holdSeconds", "int", "30", "how long each step is held and watched",
       default=30, low=0, high=3600),
    _k("canary.maxErrorPercent", "int", "1", "the gate: the most of the new version's "
       "requests (%) the proxy may see fail (5xx or no answer) at a step; beyond it all traffic "
       "goes back to the old version", default=1, low=0, high=100),
    _k("canary.maxLatencyMs", "int", "1000", "the gate: the highest p95 latency (ms) of the "
       "new version's requests at a step", default=1000, low=1, high=600_000),
    _k("imageTag", "string", "3f2c1ab9e04d7c5b8a61f0e2d9c4b7a8e5f60123",
       "image tag: the full commit SHA (the workflow sets it); not needed in restore mode "
       "(`mcp:restoreBackup`), where the backup names the image",
       check=IMAGE_TAG_PATTERN,
       rule="must be a Docker tag (letters, digits, '_', '.', '-'; no spaces)"),
    _k("imagePin", "string", "3f2c1ab9e04d7c5b8a61f0e2d9c4b7a8e5f60123@sha256:<64 hex digits>",
       "set by `rollback.py`: the exact image a rollback went back to, "
       "`<tag>@sha256:<digest>` as it served; while set, nothing is built and "
       "`mcp:imageTag` must be its tag (to deploy a new version: `pulumi config rm "
       "mcp:imagePin`)", optional=True),
    _k("image", "object", '{"registry": "ghcr.io", "repository": "feustey/mcp", "build": '
       "true}", "the application image"),
    _k("image.registry", "string", "ghcr.io", "registry", default="ghcr.io",
       check=REGISTRY_PATTERN, rule="must be a registry host[:port]"),
    _k("image.repository", "string", "feustey/mcp", "`<owner>/<name>`",
       check=REPOSITORY_PATTERN,
       rule="must be a lower-case '<owner>/<name>' repository"),
    _k("image.build", "bool", "true",
       "build and push; `false` deploys an existing tag and builds nothing", default=False),
    _k("image.context", "string", ".", "build context", default="."),
    _k("image.dockerfile", "string", "Dockerfile", "Dockerfile in the context",
       default="Dockerfile"),
    _k("image.prepare", "list", '["bash", "app/build.sh", "--context", ".build/app-context"]',
       "a command run from the project directory before every build (`preview` too) that "
       "writes the build context; it must be reproducible or every `up` rebuilds",
       optional=True),
    _k("image.pullUser", "string", "feustey",
       "the server's registry login, with `mcp:registryPullPassword` (omit both for a public "
       "image)", optional=True,
       check=REGISTRY_USER_PATTERN, rule=REGISTRY_USER_RULE),
    _k("registryPullPassword", "secret", "pulumi config set --secret mcp:registryPullPassword "
       "<token with read:packages>", "the pull user's token", optional=True),
    _k("image.pushUser", "string", "feustey", "push user; unset to use an existing `docker "
       "login` (the workflow does)", optional=True,
       check=REGISTRY_USER_PATTERN, rule=REGISTRY_USER_RULE),
    _k("registryPushPassword", "secret", "pulumi config set --secret mcp:registryPushPassword "
       "<token with write:packages>", "push token; when set, `up` first checks it with a "
       "throwaway `docker login` and fails naming the registry before building anything",
       optional=True),
    _k("github", "object", '{"owner": "feustey", "repository": "mcp", "reviewerUserIds": '
       '[1234567], "waitTimerMinutes": 5}', "the repository managed by `GitHubSetup`: in a "
       "stack of its own, without `mcp:server` (`Pulumi.github.yaml`), so that GitHub is never "
       "in the way of a deploy or a rollback; omit it to manage nothing on GitHub",
       optional=True),
    _k("github.owner", "string", "feustey", "GitHub user or organisation",
       check=GITHUB_OWNER_PATTERN, rule="must be a GitHub user or organisation"),
    _k("github.repository", "string", "mcp", "repository name without owner",
       check=GITHUB_REPOSITORY_PATTERN,
       rule="must be a repository name without owner"),
    _k("github.environment", "string", "production", "environment name",
       default="production",
       check=GITHUB_ENVIRONMENT_PATTERN,
       rule="must be an environment name (no leading or trailing space)"),
    _k("github.stagingEnvironment", "string", "staging", "the environment of the staging "
       "deploys (main only, no reviewers), with the variable `PULUMI_STACK` set to its name "
       "like the production environment's", optional=True,
       check=GITHUB_ENVIRONMENT_PATTERN,
       rule="must be an environment name (no leading or trailing space)"),
    _k("github.reviewerUserIds", "list", "[1234567]",
       "required reviewers (`gh api users/NAME --jq .id`)", optional=True),
    _k("github.reviewerTeamIds", "list", "[1234567]", "required reviewing teams",
       optional=True),
    _k("github.waitTimerMinutes", "int", "5", "wait timer", default=0, low=0, high=43200),
    _k("github.pulumiBackendUrl", "string", "s3://mcp-pulumi-state/production", "declared as "
       "the repository variable `PULUMI_BACKEND_URL` the workflows read (no credentials in "
       "it)", optional=True,
       check=PULUMI_BACKEND_URL_PATTERN,
       rule="must be a Pulumi self-managed backend URL (s3://, azblob://, gs://, file://); it "
       "is stored as a repository variable, so it must hold no credentials"),
    _k("github.apiUrl", "string", "https://github.example.com/", "the GitHub API's base URL "
       "for GitHub Enterprise Server (default api.github.com)", optional=True,
       check=valid_github_api_url,
       rule="must be the https:// base URL of a GitHub API (http:// only on loopback: the "
       "admin token goes with every request; omit the key for api.github.com)"),
    _k("github.legacySecrets", "bool", "false", "`true` only while migrating from the "
       "original pipeline: also copies the deploy key, host, user and deploy dir into "
       "`HOSTINGER_*` repository secrets (turning it off deletes them)", default=False),
    _k("slackWebhookUrl", "secret", "pulumi config set --secret mcp:slackWebhookUrl "
       "https://hooks.slack.com/services/...", "Slack incoming webhook for `oncall.py notify` "
       "(the workflows call it once per run: success after the smoke test, every failure and "
       "rollback)", optional=True),
    _k("telegramBotToken", "secret", "pulumi config set --secret mcp:telegramBotToken "
       "<token from @BotFather>", "Telegram bot token for `oncall.py notify` (with "
       "`mcp:telegram.chatId`); sent only in the Bot API's URL path, never on a command line",
       optional=True),
    _k("telegram", "object", '{"chatId": "-1001234567890"}', "Telegram notifications "
       "(`oncall.py notify`, the same message as Slack), with `mcp:telegramBotToken`",
       optional=True),
    _k("telegram.chatId", "string", "-1001234567890", "the chat the bot posts to (a numeric "
       "id, negative for groups, or `@channelname`)",
       check=TELEGRAM_CHAT_PATTERN,
       rule="must be a numeric Telegram chat id (e.g. -1001234567890) or @channelname"),
    _k("telegram.apiUrl", "string", "https://api.telegram.org", "the Bot API's base URL "
       "(a self-hosted Bot API server; the tests' loopback stand-in)",
       default="https://api.telegram.org",
       check=valid_github_api_url,
       rule="must be the https:// base URL of a Telegram Bot API server (http:// only on "
       "loopback: the bot token is in every request's path)"),
    _k("release", "object", '{"author": "feustey", "message": "fix"}',
       "who and what a release is for (the workflow sets it)", optional=True),
    _k("release.author", "string", "feustey", "who deployed, recorded in the server's release "
       "ledger (`unknown`: the SSH user)", default="unknown",
       check=ACTOR_PATTERN,
       rule="must be 1-200 letters, digits, spaces or ._@+:/#()[]-, starting with a letter "
       "or digit (it is recorded on the server)"),
    _k("release.message", "string", "feat: ...", "the commit message", default=""),
    _k("release.overrideFreeze", "bool", "false", "set by `rollback.py --override-freeze` for "
       "one update only: deploy, release and restore run although deploys are frozen "
       "(`oncall.py lock acquire`), recorded in the release ledger", default=False),
    _k("restoreBackup", "string", "20251017_143025", "restore mode: restore this backup "
       "(`YYYYMMDD_HHMMSS` or `latest`) instead of deploying", optional=True,
       check=BACKUP_ID_PATTERN,
       rule="must be a backup timestamp YYYYMMDD_HHMMSS or 'latest'"),
)
# fmt: on

BY_NAME = {key.name: key for key in KEYS}


def key(name: str) -> Key:
    return BY_NAME[name]


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known key `name` most likely misspells (case aside; difflib), or None."""
    by_lower = {candidate.lower(): candidate for candidate in known}
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def _default(row: Key) -> str:
    if row.default is None:
        return "optional" if row.optional else "required"
    if isinstance(row.default, bool):
        return f"`{str(row.default).lower()}`"
    return f"`{row.default}`" if row.default != "" else '`""`'


def readme_table() -> str:
    """The README's key table (section "Configuration")."""
    lines = ["| key | type | default | example | meaning |", "|---|---|---|---|---|"]
    for row in KEYS:
        if row.kind == "object":
            continue
        example, doc = (text.replace("|", "\\|") for text in (row.example, row.doc))
        lines.append(f"| `mcp:{row.name}` | {row.kind} | {_default(row)} | `{example}` | {doc} |")
    return "\n".join(lines)


def production_header_secrets() -> str:
    """The secrets `Pulumi.production.yaml`'s header lists, one command each."""
    return "\n".join(
        f"#   {row.example}  # {'optional' if row.optional else 'required'}"
        for row in KEYS
        if row.kind == "secret"
    )


def replace_between(text: str, start: str, end: str, body: str) -> str:
    """`text` with the lines between the lines `start` and `end` replaced by `body`."""
    first = text.find(start + "\n")
    last = text.find("\n" + end, first)
    if first < 0 or last < 0:
        raise ValueError(f"markers {start!r} / {end!r} not found")
    return text[: first + len(start)] + "\n" + body + text[last:]


README_MARKERS = (
    "<!-- mcp-keys:start (made by python -m components.config_keys from "
    "components/config_keys.py) -->",
    "<!-- mcp-keys:end -->",
)
PRODUCTION_MARKERS = ("# <mcp-secrets>", "# </mcp-secrets>")


def write_copies(root: Path) -> None:
    """Rewrites the README's key table and the production and staging stacks' lists of
    secrets."""
    for name, markers, body in (
        ("README.md", README_MARKERS, readme_table()),
        ("Pulumi.production.yaml", PRODUCTION_MARKERS, production_header_secrets()),
        ("Pulumi.staging.yaml", PRODUCTION_MARKERS, production_header_secrets()),
    ):
        path = root / name
        path.write_text(replace_between(path.read_text(), *markers, body))


if __name__ == "__main__":
    write_copies(Path(__file__).resolve().parent.parent)
    sys.exit(0)
