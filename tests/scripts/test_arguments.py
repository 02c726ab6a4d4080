"""Argument validation of every remote script: bad arguments exit 2 (or 3 for a missing
directory), name the option on stderr, print nothing on stdout and touch nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._helpers import SCRIPTS, run_script

COMPOSE = "docker-compose.production.yml"
URL = "http://127.0.0.1:8000/api/v1/health"
IMAGE = "127.0.0.1:5000/mcp:v1"

# Valid argument sets; {D} and {B} are replaced by the temp deploy and backup dirs.
VALID: dict[str, dict[str, str]] = {
    "backup.sh": {
        "--deploy-dir": "{D}",
        "--backup-dir": "{B}",
        "--keep": "3",
        "--service": "mcp-api-prod",
        "--compose-file": COMPOSE,
    },
    "deploy.sh": {
        "--deploy-dir": "{D}",
        "--compose-file": COMPOSE,
        "--service": "mcp-api-prod",
        "--image": IMAGE,
    },
    "release.sh": {
        "--deploy-dir": "{D}",
        "--compose-file": COMPOSE,
        "--service": "mcp-api-prod",
        "--health-url": URL,
        "--attempts": "3",
        "--timeout": "10",
        "--backup-dir": "{B}",
        "--keep": "3",
    },
    "restore.sh": {
        "--deploy-dir": "{D}",
        "--backup-dir": "{B}",
        "--backup": "latest",
        "--compose-file": COMPOSE,
        "--service": "mcp-api-prod",
        "--health-url": URL,
        "--attempts": "3",
        "--timeout": "10",
    },
    "healthcheck.sh": {"--url": URL, "--attempts": "3", "--timeout": "10"},
    "install-scripts.sh": {"--deploy-dir": "{D}", "--version": "a" * 64},
}

# Options without which the script must refuse to run.
REQUIRED: dict[str, list[str]] = {
    "backup.sh": ["--deploy-dir", "--backup-dir", "--keep", "--service", "--compose-file"],
    "deploy.sh": ["--deploy-dir", "--compose-file", "--service", "--image"],
    "release.sh": [
        "--deploy-dir",
        "--compose-file",
        "--service",
        "--health-url",
        "--attempts",
        "--timeout",
    ],
    "restore.sh": [
        "--deploy-dir",
        "--backup-dir",
        "--backup",
        "--compose-file",
        "--service",
        "--health-url",
        "--attempts",
        "--timeout",
    ],
    "healthcheck.sh": ["--url", "--attempts", "--timeout"],
    "install-scripts.sh": ["--deploy-dir", "--version"],
}

BAD_IMAGES = [
    "127.0.0.1:5000/mcp:",  # empty tag
    "repo:",  # empty tag, no registry
    "127.0.0.1:5000/mcp",  # neither tag nor digest
    "127.0.0.1:5000/mcp:v 1",  # space
    "127.0.0.1:5000/mcp:v1;rm -rf /",
    ";rm -rf /",
    "127.0.0.1:5000/mcp:$(id)",
    "127.0.0.1:5000/mcp:`id`",
    "127.0.0.1:5000/MCP:v1",  # upper case repository
    "127.0.0.1:5000/mcp:-v1",  # tag must not start with '-'
    "127.0.0.1:5000/mcp@sha256:1234",  # short digest
    "--image",
]
BAD_NUMBERS = ["abc", "0", "-1", "1e3", "5 ", "1;id", "$(id)", ""]
BAD_DIRS_RELATIVE = ["opt/mcp", "./x", "~/mcp", "/opt/../etc", "/opt/m cp", "/opt/$(id)"]
BAD_FILENAMES = ["../docker-compose.yml", "a/b.yml", "/etc/passwd", "x;id", "..", "`id`.yml"]
BAD_NAMES = [";id", "a b", "$(id)", "-x", ""]
BAD_URLS = ["localhost:8000/health", "ftp://x/y", "http://x/$(id)", "http://a b/", "http://x/`id`"]
BAD_BACKUP_IDS = ["2025-10-17", "20251017_14302", "../20251017_143025", "20251017_143025;id", "x"]


def _cases() -> list[tuple[str, str, str | None, tuple[int, ...]]]:
    """(script, option, value or None = remove it, allowed exit codes)."""
    cases: list[tuple[str, str, str | None, tuple[int, ...]]] = []
    for script, required in REQUIRED.items():
        cases += [(script, opt, None, (2,)) for opt in required]
    for script, opts in VALID.items():
        for opt in opts:
            if opt in ("--deploy-dir", "--backup-dir"):
                cases += [(script, opt, v, (2,)) for v in BAD_DIRS_RELATIVE]
                cases.append((script, opt, "/nonexistent/mcp-test-dir", (3,)))
            elif opt in ("--keep", "--attempts", "--timeout"):
                cases += [(script, opt, v, (2,)) for v in BAD_NUMBERS]
            elif opt == "--compose-file":
                cases += [(script, opt, v, (2,)) for v in BAD_FILENAMES]
            elif opt == "--service":
                cases += [(script, opt, v, (2,)) for v in BAD_NAMES]
            elif opt in ("--health-url", "--url"):
                cases += [(script, opt, v, (2,)) for v in BAD_URLS]
            elif opt == "--image":
                cases += [(script, opt, v, (2,)) for v in BAD_IMAGES]
            elif opt == "--backup-id":
                cases += [(script, opt, v, (2,)) for v in [*BAD_BACKUP_IDS, "latest"]]
            elif opt == "--backup":
                cases += [(script, opt, v, (2,)) for v in BAD_BACKUP_IDS]
    # Optional options with bad values.
    for script in ("backup.sh", "deploy.sh", "release.sh", "restore.sh"):
        cases.append((script, "--lock-timeout", "soon", (2,)))
        cases.append((script, "--project", "My Project", (2,)))
    cases.append(("backup.sh", "--min-free-mb", "lots", (2,)))
    cases.append(("release.sh", "--min-free-mb", "lots", (2,)))
    for script in ("deploy.sh", "release.sh"):
        cases += [(script, "--env-file", v, (2,)) for v in ("../.env.production", "a/b", ".env")]
    cases.append(("deploy.sh", "--registry", "ghcr.io;id", (2,)))
    cases.append(("deploy.sh", "--registry-user", "me", (2,)))  # without --registry
    cases.append(("healthcheck.sh", "--deploy-dir", "relative/dir", (2,)))
    cases.append(("healthcheck.sh", "--service", "mcp-api-prod", (2,)))  # needs --deploy-dir
    # install-scripts.sh: the uploaded copy's sha256, nothing that could name another path.
    bad_versions = ("abc", "A" * 64, "a" * 63, "a" * 64 + " ", "../" + "a" * 61, "a" * 65)
    cases += [("install-scripts.sh", "--version", v, (2,)) for v in bad_versions]
    # release.sh takes its own backup: an (old, stale) backup id is refused outright.
    cases.append(("release.sh", "--backup-id", "20251017_143025", (2,)))
    return cases


CASES = _cases()


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    deploy = tmp_path / "deploy"
    backups = tmp_path / "backups"
    deploy.mkdir()
    backups.mkdir()
    (deploy / COMPOSE).write_text("services: {}\n")
    return deploy, backups


def _snapshot(*roots: Path) -> set[str]:
    return {str(p) for root in roots for p in root.rglob("*")}


def _argv(script: str, deploy: Path, backups: Path, overrides: dict[str, str | None]) -> list[str]:
    opts: dict[str, str | None] = {**VALID[script], **overrides}
    argv: list[str] = []
    for opt, value in opts.items():
        if value is None:
            continue
        argv += [opt, value.replace("{D}", str(deploy)).replace("{B}", str(backups))]
    return argv


@pytest.mark.parametrize(
    ("script", "option", "value", "codes"),
    CASES,
    ids=[f"{s}-{o}-{'MISSING' if v is None else repr(v)}" for s, o, v, _ in CASES],
)
def test_bad_argument_is_refused(
    dirs: tuple[Path, Path], script: str, option: str, value: str | None, codes: tuple[int, ...]
) -> None:
    deploy, backups = dirs
    before = _snapshot(deploy, backups)
    result = run_script(script, *_argv(script, deploy, backups, {option: value}))
    assert result.returncode in codes, (result.returncode, result.stderr)
    assert option in result.stderr, result.stderr
    assert result.stdout == ""
    # Messages are "[step] ERROR: ..." lines that show a valid example (or name the dir).
    assert "ERROR:" in result.stderr
    if result.returncode == 2 and value not in (None, ""):
        assert "e.g." in result.stderr, result.stderr
    assert _snapshot(deploy, backups) == before, "a refused run must not create anything"


@pytest.mark.parametrize("script", SCRIPTS)
def test_unknown_option(dirs: tuple[Path, Path], script: str) -> None:
    deploy, backups = dirs
    result = run_script(script, *_argv(script, deploy, backups, {}), "--bogus", "x")
    assert result.returncode == 2
    assert "--bogus" in result.stderr
    assert not (deploy / ".deploy").exists()


@pytest.mark.parametrize("script", SCRIPTS)
def test_positional_argument_and_missing_value(dirs: tuple[Path, Path], script: str) -> None:
    deploy, backups = dirs
    result = run_script(script, *_argv(script, deploy, backups, {}), "oops")
    assert result.returncode == 2
    assert "oops" in result.stderr
    last_opt = next(iter(VALID[script]))
    argv = [*_argv(script, deploy, backups, {last_opt: None}), last_opt]
    result = run_script(script, *argv)
    assert result.returncode == 2
    assert last_opt in result.stderr
    assert not (deploy / ".deploy").exists()


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(script: str, flag: str) -> None:
    result = run_script(script, flag)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: ")
    assert "Exit codes" in result.stdout
    assert result.stderr == ""
    for opt in REQUIRED[script]:
        assert opt in result.stdout


def test_equals_form_is_accepted_and_validated(dirs: tuple[Path, Path]) -> None:
    deploy, _backups = dirs
    result = run_script(
        "deploy.sh",
        f"--deploy-dir={deploy}",
        f"--compose-file={COMPOSE}",
        "--service=mcp-api-prod",
        "--image=repo:",
    )
    assert result.returncode == 2
    assert "--image" in result.stderr
    assert "empty tag" in result.stderr


def test_deploy_registry_needs_password_on_stdin(dirs: tuple[Path, Path]) -> None:
    deploy, backups = dirs
    argv = _argv(
        "deploy.sh", deploy, backups, {"--registry": "127.0.0.1:5000", "--registry-user": "deploy"}
    )
    result = run_script("deploy.sh", *argv, input="")
    assert result.returncode == 2
    assert "--registry" in result.stderr and "password" in result.stderr
    assert not (deploy / ".deploy").exists()


def test_deploy_env_file_needs_content_on_stdin(dirs: tuple[Path, Path]) -> None:
    deploy, backups = dirs
    argv = _argv("deploy.sh", deploy, backups, {"--env-file": ".env.production"})
    result = run_script("deploy.sh", *argv, input="")
    assert result.returncode == 2
    assert "--env-file .env.production given but no env file content on stdin" in result.stderr
    assert not (deploy / ".deploy").exists()


def test_release_refuses_a_backup_id(dirs: tuple[Path, Path]) -> None:
    """A stale backup must never become the rollback target: --backup-id is refused, naming
    the options to use instead, before anything is created."""
    deploy, backups = dirs
    argv = _argv("release.sh", deploy, backups, {"--backup-id": "20251017_143025"})
    result = run_script("release.sh", *argv)
    assert result.returncode == 2
    assert "--backup-id is no longer accepted" in result.stderr
    assert "--backup-dir" in result.stderr and "--keep" in result.stderr
    assert not (deploy / ".deploy").exists()


def test_release_keep_needs_backup_dir(dirs: tuple[Path, Path]) -> None:
    deploy, backups = dirs
    result = run_script("release.sh", *_argv("release.sh", deploy, backups, {"--backup-dir": None}))
    assert result.returncode == 2
    assert "--backup-dir" in result.stderr and "--keep" in result.stderr


def test_backup_dir_inside_deploy_dir_is_refused(dirs: tuple[Path, Path]) -> None:
    deploy, _ = dirs
    inner = deploy / "backups"
    inner.mkdir()
    result = run_script("backup.sh", *_argv("backup.sh", deploy, inner, {}))
    assert result.returncode == 2
    assert "--backup-dir" in result.stderr
    assert not (deploy / ".deploy").exists()
