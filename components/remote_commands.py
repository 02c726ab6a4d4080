"""Builds the exact command lines that run the remote scripts; runs nothing itself.

Every value is shell-quoted, so a config value can never become shell syntax on the server.
Secrets are never part of a command line: they go on stdin (see `deploy_stdin`).
"""

from __future__ import annotations

import shlex
import warnings
from pathlib import Path

from components.settings import AppSettings, PathSettings

SCRIPTS_SOURCE_DIR = Path(__file__).resolve().parent.parent / "remote"
SCRIPT_NAMES = (
    "lib.sh",
    "bluegreen.sh",
    "backup.sh",
    "deploy.sh",
    "release.sh",
    "restore.sh",
    "healthcheck.sh",
)


def _command(paths: PathSettings, script: str, options: list[tuple[str, str | int | None]]) -> str:
    """`bash <script> --opt value ...`; a value of None makes a flag without a value."""
    words = ["bash", f"{paths.scripts_dir}/{script}"]
    for flag, value in options:
        words += [flag] if value is None else [flag, str(value)]
    return shlex.join(words)


def _app_options(paths: PathSettings, app: AppSettings) -> list[tuple[str, str | int | None]]:
    options: list[tuple[str, str | int | None]] = [
        ("--deploy-dir", paths.deploy_dir),
        ("--compose-file", app.compose_file),
        ("--service", app.service),
        ("--lock-timeout", app.lock_timeout_seconds),
    ]
    if app.compose_project is not None:
        options.append(("--project", app.compose_project))
    return options


def _health_options(app: AppSettings) -> list[tuple[str, str | int | None]]:
    return [
        ("--health-url", app.health_url),
        ("--attempts", app.health_attempts),
        ("--timeout", app.health_timeout_seconds),
    ]


def _strategy_options(app: AppSettings) -> list[tuple[str, str | int | None]]:
    """`--strategy blue-green` and the proxy options; nothing for `recreate` (the scripts'
    default), so that the command lines, and the steps' triggers, of existing stacks stay
    the same."""
    if app.strategy != "blue-green":
        return []
    if app.proxy is None:
        raise ValueError("app.strategy blue-green needs the mcp:proxy settings")
    options: list[tuple[str, str | int | None]] = [
        ("--strategy", "blue-green"),
        ("--proxy-image", app.proxy.image),
    ]
    if app.proxy.listen is not None:
        options.append(("--proxy-listen", app.proxy.listen))
    if app.proxy.colour_ports is not None:
        blue, green = app.proxy.colour_ports
        options.append(("--colour-ports", f"{blue},{green}"))
    options.append(("--drain-seconds", app.proxy.drain_seconds))
    return options


def _backup_options(paths: PathSettings) -> list[tuple[str, str | int | None]]:
    """Where backups go and how many are kept (backup.sh, and release.sh's own backup)."""
    return [
        ("--backup-dir", paths.backup_dir),
        ("--keep", paths.keep_backups),
        ("--min-free-mb", paths.min_free_mb),
    ]


def _consistency_options(app: AppSettings) -> list[tuple[str, str | int | None]]:
    """How a backup of a busy app is made consistent (every script that backs up); nothing
    when unset, so existing command lines stay the same."""
    options: list[tuple[str, str | int | None]] = []
    if app.pre_backup_command:
        options.append(("--pre-backup-command", app.pre_backup_command))
    if app.pause_during_backup:
        options.append(("--pause-during-backup", None))
    return options


def backup_command(paths: PathSettings, app: AppSettings) -> str:
    """A standalone backup (on call, by hand): archive the deploy dir with a manifest of the
    running image. The deploy itself needs no separate backup step: release.sh takes its own."""
    return _command(
        paths,
        "backup.sh",
        [*_app_options(paths, app), *_backup_options(paths), *_consistency_options(app)],
    )


def deploy_command(
    paths: PathSettings,
    app: AppSettings,
    image_ref: str,
    *,
    with_env_file: bool,
    registry: str | None,
    registry_user: str | None,
) -> str:
    """Step 2: stage compose + env, log in, pull. Never touches the running app."""
    options = [*_app_options(paths, app), ("--image", image_ref)]
    if with_env_file:
        options.append(("--env-file", app.env_file_name))
    if registry and registry_user:
        options += [("--registry", registry), ("--registry-user", registry_user)]
    return _command(paths, "deploy.sh", options)


def deploy_stdin(registry_password: str | None, env_file_content: str | None) -> str:
    """What deploy.sh reads on stdin: the registry password line, then the env file."""
    parts = []
    if registry_password is not None:
        parts.append(registry_password.strip("\n") + "\n")
    if env_file_content is not None:
        parts.append(
            env_file_content if env_file_content.endswith("\n") else env_file_content + "\n"
        )
    return "".join(parts)


def release_command(
    paths: PathSettings,
    app: AppSettings,
    legacy_backup_id: str | None = None,
    *,
    with_env_file: bool,
) -> str:
    """Step 3: back up the live release, switch to the staged one, check health, and roll back
    to the backup taken by this very attempt on failure (never to an older one).

    `legacy_backup_id` is ignored: it is accepted only so that callers written for the former
    separate backup step keep working (a stale id must never become the rollback target).
    """
    if legacy_backup_id is not None:
        warnings.warn(
            "release_command(): the backup id argument is ignored; release.sh takes its own "
            "backup at the start of every attempt (read backup_id from its result line)",
            DeprecationWarning,
            stacklevel=2,
        )
    options: list[tuple[str, str | int | None]] = [*_app_options(paths, app), *_health_options(app)]
    if with_env_file:
        options.append(("--env-file", app.env_file_name))
    options += _backup_options(paths) + _consistency_options(app)
    options += _strategy_options(app)
    return _command(paths, "release.sh", options)


def restore_command(paths: PathSettings, app: AppSettings, backup: str) -> str:
    """Manual rollback: restore a named backup (or `latest`) and check health."""
    return _command(
        paths,
        "restore.sh",
        [
            *_app_options(paths, app),
            *_health_options(app),
            ("--min-free-mb", paths.min_free_mb),  # for the backup of what it replaces
            *_consistency_options(app),
            ("--backup-dir", paths.backup_dir),
            ("--backup", backup),
            *_strategy_options(app),
        ],
    )


def script_source(name: str) -> Path:
    """The repo file that is installed as `<deploy-dir>/.deploy/bin/<name>`."""
    if name not in SCRIPT_NAMES:
        raise ValueError(f"unknown remote script {name!r}; known: {', '.join(SCRIPT_NAMES)}")
    return SCRIPTS_SOURCE_DIR / name
