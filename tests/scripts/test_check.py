"""`--check`, the contract between the Python deploy plan and the scripts: every entry script
validates its arguments with the rules of a real run and exits 0 (one `{"valid": true}` line)
or 2, before the lock, stdin, docker or any file is touched, on a machine that is not the
server (no deploy dir, no docker)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ._helpers import SCRIPTS, run_script
from .test_arguments import CASES, VALID

PROXY_IMAGE = "127.0.0.1:5000/mcp/proxy:caddy-2.11.9"
BLUE_GREEN = [
    "--strategy",
    "blue-green",
    "--proxy-image",
    PROXY_IMAGE,
    "--proxy-listen",
    "127.0.0.1:8000",
    "--colour-ports",
    "8001,8002",
    "--drain-seconds",
    "2",
]
STEPS = {"healthcheck.sh": "health", "install-scripts.sh": "install"}  # their log prefixes
# What a check must never run: each of these stubs records its call.
TRAPPED = ("docker", "docker-compose", "flock", "curl", "tar", "mkdir", "mktemp")


@pytest.fixture
def no_server(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose PATH traps the server's tools, and a deploy dir that does not
    exist (nor does its parent)."""
    bindir = tmp_path / "trap-bin"
    bindir.mkdir()
    calls = tmp_path / "calls.log"
    for name in TRAPPED:
        stub = bindir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >>{calls}\nexit 99\n')
        stub.chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "MCP_TEST_CALLS": str(calls)}
    return env, tmp_path / "absent" / "opt" / "mcp"


def _argv(script: str, deploy: Path, overrides: dict[str, str | None] | None = None) -> list[str]:
    opts: dict[str, str | None] = {**VALID[script], **(overrides or {})}
    backups = deploy.parent.parent / "mcp-backups"
    argv: list[str] = []
    for opt, value in opts.items():
        if value is not None:
            argv += [opt, value.replace("{D}", str(deploy)).replace("{B}", str(backups))]
    return argv


def _assert_touched_nothing(env: dict[str, str], deploy: Path) -> None:
    calls = Path(env["MCP_TEST_CALLS"])
    assert not calls.exists(), f"--check ran: {calls.read_text()}"
    assert not deploy.parent.parent.exists(), "--check created a directory"


@pytest.mark.parametrize("script", SCRIPTS)
def test_check_accepts_valid_arguments_without_a_server(no_server, script: str) -> None:
    env, deploy = no_server
    result = run_script(script, *_argv(script, deploy), "--check", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['{"valid": true}']
    assert json.loads(result.stdout) == {"valid": True}
    assert result.stderr.splitlines() == [
        f"[{STEPS.get(script, script.removesuffix('.sh'))}] check: "
        "the arguments are valid (--check: nothing was run, nothing was touched)"
    ]
    _assert_touched_nothing(env, deploy)


@pytest.mark.parametrize("script", ["release.sh", "restore.sh"])
def test_check_accepts_blue_green(no_server, script: str) -> None:
    env, deploy = no_server
    result = run_script(script, *_argv(script, deploy), *BLUE_GREEN, "--check", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"valid": True}
    _assert_touched_nothing(env, deploy)


def test_check_accepts_every_optional_option(no_server) -> None:
    """The options the plan adds beyond the required ones, all at once, in `--opt=value`
    form for some, with --check first."""
    env, deploy = no_server
    argv = [
        *_argv("release.sh", deploy),
        "--env-file=.env.production",
        "--min-free-mb",
        "100",
        "--pre-backup-command",
        "sh -c 'pg_dump -U mcp mcp > /data/dump.sql'",
        "--pause-during-backup",
        "--project",
        "mcp",
        "--lock-timeout=0",
        *BLUE_GREEN,
    ]
    result = run_script("release.sh", "--check", *argv, env=env)
    assert result.returncode == 0, result.stderr
    deploy_argv = [
        *_argv("deploy.sh", deploy),
        "--env-file",
        ".env.production",
        "--registry",
        "ghcr.io",
        "--registry-user",
        "deploy-bot",
    ]
    # No password nor env file on stdin: --check reads no stdin (it is not an argument).
    result = run_script("deploy.sh", *deploy_argv, "--check", input="", env=env)
    assert result.returncode == 0, result.stderr
    health = ["--deploy-dir", str(deploy), "--compose-file", "c.yml", "--service", "app"]
    result = run_script("healthcheck.sh", *_argv("healthcheck.sh", deploy), *health, "--check")
    assert result.returncode == 0, result.stderr
    _assert_touched_nothing(env, deploy)


@pytest.mark.parametrize(
    ("script", "option", "value"),
    [(s, o, v) for s, o, v, codes in CASES if codes == (2,)],
    ids=[f"{s}-{o}-{'MISSING' if v is None else repr(v)}" for s, o, v, c in CASES if c == (2,)],
)
def test_check_refuses_what_a_run_refuses(
    no_server, script: str, option: str, value: str | None
) -> None:
    env, deploy = no_server
    result = run_script(script, *_argv(script, deploy, {option: value}), "--check", env=env)
    assert result.returncode == 2, result.stderr
    assert option in result.stderr and "ERROR:" in result.stderr
    assert result.stdout == ""
    _assert_touched_nothing(env, deploy)


@pytest.mark.parametrize(
    ("script", "extra", "named"),
    [
        ("release.sh", ["--strategy", "blue-green"], "--proxy-image"),
        ("release.sh", ["--strategy", "purple"], "--strategy"),
        # The plan derives them (once, in Python): the scripts have no defaults of their own.
        ("release.sh", [*BLUE_GREEN[:4], "--colour-ports", "8001,8002"], "--proxy-listen"),
        ("restore.sh", [*BLUE_GREEN[:4], "--proxy-listen", "127.0.0.1:8000"], "--colour-ports"),
        ("restore.sh", ["--colour-ports", "8001,8002"], "--colour-ports"),
        ("release.sh", [*BLUE_GREEN, "--colour-ports", "8001,8001"], "--colour-ports"),
        ("release.sh", [*BLUE_GREEN, "--proxy-listen", "127.0.0.1:8001"], "--colour-ports"),
        ("release.sh", ["--pre-backup-command", "sh -c 'x", "--backup-dir", "/x"], "--pre-"),
        ("backup.sh", ["--backup-dir", "{D}/backups"], "--backup-dir"),
        ("deploy.sh", ["--env-file", ".env"], "--env-file"),
        ("deploy.sh", ["--registry", "ghcr.io"], "--registry-user"),
    ],
)
def test_check_refuses_combinations(no_server, script: str, extra: list[str], named: str) -> None:
    env, deploy = no_server
    extra = [e.replace("{D}", str(deploy)) for e in extra]
    result = run_script(script, *_argv(script, deploy), *extra, "--check", env=env)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    _assert_touched_nothing(env, deploy)
