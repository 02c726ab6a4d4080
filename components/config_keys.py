"""Every `mcp:*` key as one row (type, default, example, doc): the one list of keys.

`components/settings.py` validates with these rows, the README's key table and the secrets in
`Pulumi.production.yaml`'s header are produced from them (`python -m components.config_keys`
rewrites both), and `tests/unit/test_config_keys.py` fails when a copy drifts.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["object", "string", "int", "bool", "list", "secret"]


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
    _k("server.host", "string", "147.79.101.32", "server address"),
    _k("server.port", "int", "22", "SSH port", default=22, low=1, high=65535),
    _k("server.user", "string", "feustey", "SSH user (in the `docker` group)"),
    _k("server.hostKey", "string", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...",
       "the server's host key, pinned: a different key refuses to connect "
       "(`ssh-keyscan -t ed25519 HOST | cut -d' ' -f2-`)"),
    _k("sshPrivateKey", "secret", "pulumi config set --secret mcp:sshPrivateKey < "
       "~/.ssh/github-actions-mcp", "dedicated deploy key"),
    _k("paths", "object", '{"deployDir": "/opt/mcp", "backupDir": "/opt/mcp-backups", '
       '"keepBackups": 10}', "where things live on the server"),
    _k("paths.deployDir", "string", "/opt/mcp",
       "where the compose file, env file and data live (absolute, not `/`)"),
    _k("paths.backupDir", "string", "/opt/mcp-backups", "where backups go (not inside the "
       "deploy dir: each backup would archive the previous ones)"),
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
       "its name on the server (default: the source's name)", optional=True),
    _k("app.envFile", "string", ".env.production", "env file name on the server",
       default=".env.production"),
    _k("envFileContent", "secret", "pulumi config set --secret mcp:envFileContent < "
       ".env.production", "env file content; when unset the server's own env file is kept",
       optional=True),
    _k("app.service", "string", "mcp-api-prod", "compose service to health-check"),
    _k("app.healthUrl", "string", "http://localhost:8000/api/v1/health",
       "checked *from the server*"),
    _k("app.healthAttempts", "int", "30", "tries", default=30, low=1, high=1000),
    _k("app.healthTimeoutSeconds", "int", "120", "deadline for all tries", default=120, low=1,
       high=3600),
    _k("app.healthStatus", "int", "200", "the HTTP status of `app.healthUrl` that means "
       "healthy; redirects are not followed (a 302 to a login page is unhealthy)",
       default=200, low=100, high=599),
    _k("app.publicUrl", "string", "https://api.dazno.de",
       "public URL (output `url`, smoke test, Slack)"),
    _k("app.lockTimeoutSeconds", "int", "120",
       "how long a deploy waits for another one's lock", default=120, low=0, high=3600),
    _k("app.composeProject", "string", "mcp",
       "compose project name (default: the deploy dir's base name)", optional=True),
    _k("app.preBackupCommand", "string", "sh -c 'pg_dump -U mcp mcp > /data/dump.sql'",
       "run in the service container before every backup (e.g. a database dump into the "
       "data dir), for a consistent backup of a busy app; no shell unless you write `sh -c` "
       "([details](remote/README.md#consistent-backups-of-a-busy-app))", optional=True),
    _k("app.pauseDuringBackup", "bool", "true", "pause the service container while the "
       "archive is written (requests wait); always unpaused", default=False),
    _k("app.strategy", "string", "blue-green", "`recreate` (stop the old container, start "
       "the new one in place) or `blue-green` (zero downtime: a proxy switches traffic to the "
       "new version only once it is healthy; see below)", default="recreate"),
    _k("proxy", "object", '{"image": "ghcr.io/feustey/mcp-proxy:caddy-2.11.9"}',
       "blue-green only, required: the proxy", optional=True),
    _k("proxy.image", "string", "ghcr.io/feustey/mcp-proxy:caddy-2.11.9",
       "the proxy image, built by `proxy/build.sh IMAGE --push`"),
    _k("proxy.listen", "string", "127.0.0.1:8000", "where the proxy listens (default "
       "`127.0.0.1:` + the port of `app.healthUrl`)", optional=True),
    _k("proxy.colourPorts", "list", "[8001, 8002]", "loopback ports of the blue and green "
       "apps (default: health URL port + 1, + 2)", optional=True),
    _k("proxy.drainSeconds", "int", "2", "how long the old version keeps running after the "
       "switch", default=2, low=0, high=300),
    _k("imageTag", "string", "3f2c1ab9e04d7c5b8a61f0e2d9c4b7a8e5f60123",
       "image tag: the full commit SHA (the workflow sets it); not needed in restore mode "
       "(`mcp:restoreBackup`), where the backup names the image"),
    _k("imagePin", "string", "3f2c1ab9e04d7c5b8a61f0e2d9c4b7a8e5f60123@sha256:<64 hex digits>",
       "set by `rollback.py`: the exact image a rollback went back to, "
       "`<tag>@sha256:<digest>` as it served; while set, nothing is built and "
       "`mcp:imageTag` must be its tag (to deploy a new version: `pulumi config rm "
       "mcp:imagePin`)", optional=True),
    _k("image", "object", '{"registry": "ghcr.io", "repository": "feustey/mcp", "build": '
       "true}", "the application image"),
    _k("image.registry", "string", "ghcr.io", "registry", default="ghcr.io"),
    _k("image.repository", "string", "feustey/mcp", "`<owner>/<name>`"),
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
       "image)", optional=True),
    _k("registryPullPassword", "secret", "pulumi config set --secret mcp:registryPullPassword "
       "<token with read:packages>", "the pull user's token", optional=True),
    _k("image.pushUser", "string", "feustey", "push user; unset to use an existing `docker "
       "login` (the workflow does)", optional=True),
    _k("registryPushPassword", "secret", "pulumi config set --secret mcp:registryPushPassword "
       "<token with write:packages>", "push token; when set, `up` first checks it with a "
       "throwaway `docker login` and fails naming the registry before building anything",
       optional=True),
    _k("github", "object", '{"owner": "feustey", "repository": "mcp", "reviewerUserIds": '
       '[1234567], "waitTimerMinutes": 5}', "the repository managed by `GitHubSetup` (omit "
       "it to manage nothing on GitHub)", optional=True),
    _k("github.owner", "string", "feustey", "GitHub user or organisation"),
    _k("github.repository", "string", "mcp", "repository name without owner"),
    _k("github.environment", "string", "production", "environment name",
       default="production"),
    _k("github.reviewerUserIds", "list", "[1234567]",
       "required reviewers (`gh api users/NAME --jq .id`)", optional=True),
    _k("github.reviewerTeamIds", "list", "[1234567]", "required reviewing teams",
       optional=True),
    _k("github.waitTimerMinutes", "int", "5", "wait timer", default=0, low=0, high=43200),
    _k("github.pulumiBackendUrl", "string", "s3://mcp-pulumi-state/production", "declared as "
       "the repository variable `PULUMI_BACKEND_URL` the workflows read (no credentials in "
       "it)", optional=True),
    _k("github.apiUrl", "string", "https://github.example.com/", "the GitHub API's base URL "
       "for GitHub Enterprise Server (default api.github.com)", optional=True),
    _k("github.legacySecrets", "bool", "false", "`true` only while migrating from the "
       "original pipeline: also copies the deploy key, host, user and deploy dir into "
       "`HOSTINGER_*` repository secrets (turning it off deletes them)", default=False),
    _k("slackWebhookUrl", "secret", "pulumi config set --secret mcp:slackWebhookUrl "
       "https://hooks.slack.com/services/...", "Slack message on success", optional=True),
    _k("release", "object", '{"author": "feustey", "message": "fix"}',
       "shown in the Slack message (the workflow sets it)", optional=True),
    _k("release.author", "string", "feustey", "who deployed, recorded in the server's release "
       "ledger (`unknown`: the SSH user)", default="unknown"),
    _k("release.message", "string", "feat: ...", "the commit message", default=""),
    _k("restoreBackup", "string", "20251017_143025", "restore mode: restore this backup "
       "(`YYYYMMDD_HHMMSS` or `latest`) instead of deploying", optional=True),
)
# fmt: on

BY_NAME = {key.name: key for key in KEYS}


def key(name: str) -> Key:
    return BY_NAME[name]


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
    """Rewrites the README's key table and the production stack's list of secrets."""
    for name, markers, body in (
        ("README.md", README_MARKERS, readme_table()),
        ("Pulumi.production.yaml", PRODUCTION_MARKERS, production_header_secrets()),
    ):
        path = root / name
        path.write_text(replace_between(path.read_text(), *markers, body))


if __name__ == "__main__":
    write_copies(Path(__file__).resolve().parent.parent)
    sys.exit(0)
