"""One contract between Python and the scripts: every command line of the deploy plan, for
every strategy and mode, is accepted by the real scripts' `--check`, and values the settings
refuse are refused by `--check` too (run locally: `bash remote/<script> ... --check`)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shlex
import subprocess
from typing import Any

import pytest

from components.plan import DeployPlan, deploy_plan
from components.settings import Settings
from tests.unit.conftest import ROOT, TestKeys, base_config
from tests.unit.test_settings import load, problems_naming, with_value

REMOTE = ROOT / "remote"
PROXY_IMAGE = "ghcr.io/feustey/mcp-proxy:caddy-2.11.9"
IMAGE_REF = "ghcr.io/feustey/mcp:3f2c1ab@sha256:" + "a" * 64
OPTIONS = ("env_file", "registry_login", "pre_backup", "pause")
VARIANTS = [
    (strategy, mode, dict(zip(OPTIONS, flags, strict=True)))
    for strategy in ("recreate", "blue-green", "canary")
    for mode in ("deploy", "restore")
    for flags in itertools.product((False, True), repeat=len(OPTIONS))
]


def config_for(keys: TestKeys, strategy: str, mode: str, **on: bool) -> dict[str, Any]:
    config = base_config(keys)
    app = dict(config["app"])
    if strategy in ("blue-green", "canary"):
        app["strategy"] = strategy
        config["proxy"] = {"image": PROXY_IMAGE}
    if strategy == "canary":
        config["canary"] = {"steps": [5, 25, 100], "holdSeconds": 10, "maxLatencyMs": 800}
    if on["pre_backup"]:
        app["preBackupCommand"] = "sh -c 'pg_dump -U mcp mcp > /data/dump.sql'"
    if on["pause"]:
        app["pauseDuringBackup"] = True
    config["app"] = app
    if not on["env_file"]:
        config.pop("envFileContent")
    if not on["registry_login"]:
        config.pop("registryPullPassword")
        config["image"] = {k: v for k, v in config["image"].items() if k != "pullUser"}
    if mode == "restore":
        config["restoreBackup"] = "latest"
    return config


def check(plan: DeployPlan, step_name: str, image: str = IMAGE_REF) -> subprocess.CompletedProcess:
    """The step's exact command line, with the repo's script in place of the installed copy."""
    step = plan.step(step_name)
    words = shlex.split(step.command({"image": image}))
    # Every step runs the installed scripts, `.deploy/bin/` (a symlink); the install step runs
    # from the copy it installs, uploaded to `.deploy/bin.upload/<sha256 of remote/>`.
    upload = next(u.remote_path for u in plan.uploads if u.name == "scripts")
    installed_at = upload if step.name == "scripts-install" else "/opt/mcp/.deploy/bin"
    assert words[:2] == ["bash", f"{installed_at}/{step.script}"], words
    return subprocess.run(
        ["bash", str(REMOTE / step.script), *words[2:], "--check"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("strategy", "mode", "on"),
    VARIANTS,
    ids=[f"{s}-{m}-" + "+".join(k for k, v in on.items() if v) for s, m, on in VARIANTS],
)
def test_every_command_line_of_the_plan_is_accepted_by_the_scripts(
    test_keys: TestKeys, strategy: str, mode: str, on: dict[str, bool]
) -> None:
    plan = deploy_plan(load(config_for(test_keys, strategy, mode, **on)))
    assert plan.mode == mode
    assert [step.name for step in plan.steps] == (
        ["scripts-install", "deploy", "release"]
        if mode == "deploy"
        else ["scripts-install", "restore"]
    )
    for step in plan.steps:
        proc = check(plan, step.name)
        assert proc.returncode == 0, f"{step.name}: {proc.stderr}"
        assert json.loads(proc.stdout) == {"valid": True}, proc.stdout


def refused_by_check(settings: Settings, step: str, image: str = IMAGE_REF) -> str:
    proc = check(deploy_plan(settings), step, image)
    assert proc.returncode == 2, f"--check accepted it: {proc.stdout}{proc.stderr}"
    return proc.stderr


def blue_green(keys: TestKeys) -> dict[str, Any]:
    return config_for(
        keys,
        "blue-green",
        "deploy",
        env_file=True,
        registry_login=True,
        pre_backup=False,
        pause=False,
    )


@pytest.mark.parametrize(
    ("key", "value", "step", "change"),
    [
        ("paths.keepBackups", 0, "release", lambda s: {"paths": {"keep_backups": 0}}),
        ("app.envFile", "-x", "deploy", lambda s: {"app": {"env_file_name": "-x"}}),
        ("app.service", "a b", "release", lambda s: {"app": {"service": "a b"}}),
        ("app.lockTimeoutSeconds", -1, "deploy", lambda s: {"app": {"lock_timeout_seconds": -1}}),
        (
            "proxy.colourPorts",
            [8000, 8002],  # the proxy's own port (the health URL's)
            "release",
            lambda s: {
                "app": {"proxy": dataclasses.replace(s.app.proxy, colour_ports=(8000, 8002))}
            },
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_what_the_settings_refuse_the_scripts_refuse_too(
    test_keys: TestKeys, key: str, value: Any, step: str, change: Any
) -> None:
    config = blue_green(test_keys)
    assert problems_naming(with_value(config, key, value), key)  # the settings refuse it
    valid = load(config)
    assert check(deploy_plan(valid), step).returncode == 0
    parts = {
        part: dataclasses.replace(getattr(valid, part), **fields)
        for part, fields in change(valid).items()
    }
    refused_by_check(dataclasses.replace(valid, **parts), step)


def test_a_bad_image_tag_and_backup_id_are_refused_by_both(test_keys: TestKeys) -> None:
    config = blue_green(test_keys)
    assert problems_naming(with_value(config, "imageTag", "v2 "), "imageTag")
    refused_by_check(load(config), "deploy", image="ghcr.io/feustey/mcp:v2 ")
    config["restoreBackup"] = "yesterday"
    assert problems_naming(config, "restoreBackup")
    config["restoreBackup"] = "latest"
    valid = load(config)
    refused_by_check(dataclasses.replace(valid, restore_backup="yesterday"), "restore")
