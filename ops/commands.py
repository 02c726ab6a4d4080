"""The on-call command lines run on the server (commands are data): each is the word list of
one script in `<deployDir>/.deploy/bin/` (remote/README.md), built from the stack's settings."""

from __future__ import annotations

from components.server_access import ServerAccess
from components.settings import AppSettings


def _script(server: ServerAccess, name: str, *words: str) -> list[str]:
    return ["bash", f"{server.scripts_dir}/{name}", *words]


def _app_words(server: ServerAccess, app: AppSettings) -> list[str]:
    words = ["--deploy-dir", server.deploy_dir, "--compose-file", app.compose_file]
    words += ["--service", app.service]
    if app.compose_project:
        words += ["--project", app.compose_project]
    return words


def status(server: ServerAccess, app: AppSettings) -> list[str]:
    words = _script(server, "status.sh", *_app_words(server, app), "--health-url", app.health_url)
    if app.health_status != 200:
        words += ["--health-status", str(app.health_status)]
    return words


def logs(
    server: ServerAccess, app: AppSettings, *, lines: int, since: str | None, follow: bool
) -> list[str]:
    words = _script(server, "logs.sh", *_app_words(server, app), "--lines", str(lines))
    if since:
        words += ["--since", since]
    if follow:
        words.append("--follow")
    return words


def freeze(
    server: ServerAccess, action: str, *, actor: str, message: str | None = None
) -> list[str]:
    """`action`: acquire, release or status."""
    words = _script(server, "freeze.sh", "--deploy-dir", server.deploy_dir, f"--{action}")
    if action != "status":
        words += ["--actor", actor]
    if message is not None:
        words += ["--message", message]
    return words


def backups(server: ServerAccess, backup_dir: str, *, verify: bool = True) -> list[str]:
    return _script(
        server, "backups.sh", "--backup-dir", backup_dir, *(() if verify else ("--no-verify",))
    )


def ledger(server: ServerAccess) -> list[str]:
    return _script(server, "ledger.sh", "--deploy-dir", server.deploy_dir, "--list")


def read_file(path: str, *, only: str | None = None) -> list[str]:
    """Prints a file of `.deploy/` (nothing when it does not exist yet); with `only`, its lines
    holding that text."""
    if only is None:
        return ["sh", "-c", 'cat -- "$1" 2>/dev/null || true', "sh", path]
    return ["sh", "-c", 'grep -hF -- "$2" "$1" 2>/dev/null || true', "sh", path, only]


def metrics_path(server: ServerAccess) -> str:
    return f"{server.deploy_dir}/.deploy/metrics.jsonl"


def history_path(server: ServerAccess) -> str:
    return f"{server.deploy_dir}/.deploy/history.log"
