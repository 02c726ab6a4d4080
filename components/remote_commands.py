"""Builds the remote scripts' command lines from settings (commands are data); runs nothing.

A command line is a tuple of words: strings, and `Ref`s for the values known only while
deploying (the digest-pinned image reference). `command_line` quotes every word, so a config
value can never become shell syntax on the server. Secrets are never words: they go on stdin
(`stdin_text`). Which steps run, in which order, is `components/plan.py`'s business.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from components.settings import (
    PROXY_STRATEGIES,
    AppSettings,
    CanarySettings,
    PathSettings,
    ReleaseInfo,
    blue_green_addresses,
)

SCRIPTS_SOURCE_DIR = Path(__file__).resolve().parent.parent / "remote"
INSTALL_SCRIPT = "install-scripts.sh"  # installs an uploaded copy of SCRIPTS_SOURCE_DIR
# Every script the program installs: each `*.sh` under remote/, by its path relative to it.
SCRIPT_NAMES = tuple(
    str(path.relative_to(SCRIPTS_SOURCE_DIR)) for path in sorted(SCRIPTS_SOURCE_DIR.rglob("*.sh"))
)


@dataclass(frozen=True)
class Ref:
    """A value known only while deploying, by name: the image reference, or a secret input."""

    name: str
    secret: bool = False


IMAGE = Ref("image")
PULL_PASSWORD = Ref("registryPullPassword", secret=True)
ENV_FILE = Ref("envFileContent", secret=True)

Word = str | Ref
Option = tuple[str, str | int | Ref | None]  # a value of None: a flag without a value


def script_words(paths: PathSettings, script: str, options: list[Option]) -> tuple[Word, ...]:
    """`bash <deploy-dir>/.deploy/bin/<script> --opt value ...`."""
    words: list[Word] = ["bash", f"{paths.scripts_dir}/{script}"]
    for flag, value in options:
        words.append(flag)
        if value is not None:
            words.append(value if isinstance(value, Ref) else str(value))
    return tuple(words)


def scripts_upload_dir(paths: PathSettings, version: str) -> str:
    """Where one version of the remote/ folder is uploaded: `<deployDir>/.deploy/bin.upload/
    <sha256 of its files>`, never the directory scripts run from (`.deploy/bin`, a symlink that
    install-scripts.sh switches to a new copy)."""
    return f"{paths.deploy_dir}/.deploy/bin.upload/{version}"


def install_words(paths: PathSettings, version: str) -> tuple[Word, ...]:
    """`bash <upload dir>/install-scripts.sh --deploy-dir D --version <sha256>`."""
    return (
        "bash",
        f"{scripts_upload_dir(paths, version)}/{INSTALL_SCRIPT}",
        "--deploy-dir",
        paths.deploy_dir,
        "--version",
        version,
    )


def command_line(words: tuple[Word, ...], values: Mapping[str, str]) -> str:
    """The shell-quoted command line, each `Ref` replaced by its value (never a secret)."""
    plain: list[str] = []
    for word in words:
        if isinstance(word, Ref):
            if word.secret:
                raise ValueError(f"{word.name} is a secret: it goes on stdin, never in a command")
            plain.append(values[word.name])
        else:
            plain.append(word)
    return shlex.join(plain)


def stdin_text(parts: tuple[Ref, ...], values: Mapping[str, str]) -> str:
    """What a script reads on stdin: each part in order, the registry password as one line,
    a file's content ending with a newline."""
    text = []
    for part in parts:
        value = values[part.name]
        if part == PULL_PASSWORD:
            text.append(value.strip("\n") + "\n")
        else:
            text.append(value if value.endswith("\n") else value + "\n")
    return "".join(text)


def app_options(paths: PathSettings, app: AppSettings) -> list[Option]:
    options: list[Option] = [
        ("--deploy-dir", paths.deploy_dir),
        ("--compose-file", app.compose_file),
        ("--service", app.service),
        ("--lock-timeout", app.lock_timeout_seconds),
    ]
    if app.compose_project is not None:
        options.append(("--project", app.compose_project))
    return options


def health_options(app: AppSettings) -> list[Option]:
    """The health check; `--health-status` only when it is not the scripts' default, 200, so
    the command lines of existing stacks stay the same."""
    options: list[Option] = [
        ("--health-url", app.health_url),
        ("--attempts", app.health_attempts),
        ("--timeout", app.health_timeout_seconds),
    ]
    if app.health_status != 200:
        options.append(("--health-status", app.health_status))
    return options


def actor_options(release: ReleaseInfo) -> list[Option]:
    """Who deploys, for the server's release ledger; nothing for `unknown` (the scripts then
    record the SSH user)."""
    return [] if release.author == "unknown" else [("--actor", release.author)]


def freeze_options(release: ReleaseInfo) -> list[Option]:
    """`--override-freeze` for an emergency rollback (rollback.py sets it for one update);
    nothing otherwise, so the command lines of existing stacks stay the same."""
    return [("--override-freeze", None)] if release.override_freeze else []


def backup_options(paths: PathSettings) -> list[Option]:
    """Where release.sh's own backup goes and how many are kept."""
    return [
        ("--backup-dir", paths.backup_dir),
        ("--keep", paths.keep_backups),
        ("--min-free-mb", paths.min_free_mb),
    ]


def consistency_options(app: AppSettings) -> list[Option]:
    """How a backup of a busy app is made consistent; nothing when unset, so the command
    lines of existing stacks stay the same."""
    options: list[Option] = []
    if app.pre_backup_command:
        options.append(("--pre-backup-command", app.pre_backup_command))
    if app.pause_during_backup:
        options.append(("--pause-during-backup", None))
    return options


def strategy_options(app: AppSettings) -> list[Option]:
    """Nothing for `recreate` (the scripts' default: existing stacks' command lines stay the
    same); for `blue-green` and `canary`, every proxy option, defaults computed here and passed
    explicitly, and for `canary` every step and gate option."""
    if app.strategy not in PROXY_STRATEGIES:
        return []
    addresses = blue_green_addresses(app.health_url, app.proxy) if app.proxy else None
    if app.proxy is None or addresses is None:
        raise ValueError(f"app.strategy {app.strategy} needs valid mcp:proxy settings")
    blue, green = addresses.colour_ports
    options: list[Option] = [
        ("--strategy", app.strategy),
        ("--proxy-image", app.proxy.image),
        ("--proxy-listen", addresses.listen),
        ("--colour-ports", f"{blue},{green}"),
        ("--drain-seconds", app.proxy.drain_seconds),
    ]
    if app.strategy == "canary":
        canary = app.canary or CanarySettings()
        options += [
            ("--canary-steps", ",".join(str(step) for step in canary.steps)),
            ("--canary-hold-seconds", canary.hold_seconds),
            ("--canary-max-error-percent", canary.max_error_percent),
            ("--canary-max-latency-ms", canary.max_latency_ms),
        ]
    return options
