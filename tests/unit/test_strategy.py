"""The deploy strategy (mcp:app.strategy, mcp:proxy): config validation, command lines, and
what the program declares with it."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components import remote_commands
from components.config_keys import STOCK_PROXY_IMAGE
from components.plan import deploy_plan
from components.settings import ProxySettings
from tests.unit.conftest import ProgramRun, TestKeys, base_config
from tests.unit.test_settings import load, problems_for

PROXY_IMAGE = "ghcr.io/feustey/mcp-proxy:caddy-2.11.9"


def blue_green_config(keys: TestKeys, **proxy: Any) -> dict[str, Any]:
    config = base_config(keys)
    config["app"] = {**config["app"], "strategy": "blue-green"}
    config["proxy"] = {"image": PROXY_IMAGE, **proxy}
    return config


# ---------------------------------------------------------------- config


def test_recreate_is_the_default(test_keys: TestKeys) -> None:
    settings = load(base_config(test_keys))
    assert settings.app.strategy == "recreate"
    assert settings.app.proxy is None


def test_blue_green_with_defaults(test_keys: TestKeys) -> None:
    settings = load(blue_green_config(test_keys))
    assert settings.app.strategy == "blue-green"
    assert settings.app.proxy == ProxySettings(image=PROXY_IMAGE)
    assert settings.app.proxy.drain_seconds == 2


def test_blue_green_with_every_proxy_key(test_keys: TestKeys) -> None:
    config = blue_green_config(
        test_keys, listen="0.0.0.0:8000", colourPorts=[9001, 9002], drainSeconds=0
    )
    proxy = load(config).app.proxy
    assert proxy == ProxySettings(PROXY_IMAGE, "0.0.0.0:8000", (9001, 9002), 0)


def test_unknown_strategy_names_the_key_and_shows_an_example(test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    config["app"] = {**config["app"], "strategy": "rolling"}
    (problem,) = problems_for(config)
    assert problem.startswith("mcp:app.strategy: must be one of recreate, blue-green")
    assert "'rolling'" in problem and problem.endswith("Example: blue-green")


@pytest.mark.parametrize("strategy", ["blue-green", "canary"])
def test_blue_green_and_canary_get_the_stock_proxy_pinned_by_digest(
    test_keys: TestKeys, strategy: str
) -> None:
    """Zero downtime needs no proxy key: the official Caddy image, pinned by digest, is the
    default, and it reaches the scripts' command line as it is."""
    config = base_config(test_keys)
    config["app"] = {**config["app"], "strategy": strategy}
    settings = load(config)
    assert settings.app.proxy is not None
    assert settings.app.proxy.image == STOCK_PROXY_IMAGE
    assert "@sha256:" in STOCK_PROXY_IMAGE and STOCK_PROXY_IMAGE.startswith(
        "docker.io/library/caddy:"
    )
    release = deploy_plan(settings).step("release")
    assert f"--proxy-image {STOCK_PROXY_IMAGE}" in release.command({"image": "reg/app:v1"})
    config["proxy"] = {"listen": "127.0.0.1:8000"}
    assert load(config).app.proxy.image == STOCK_PROXY_IMAGE  # type: ignore[union-attr]
    config["app"] = {**config["app"], "strategy": "recreate"}
    del config["proxy"]
    assert load(config).app.proxy is None


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("image", "caddy", "mcp:proxy.image: must be an image reference with a tag or digest"),
        ("image", "ghcr.io/x/proxy:", "mcp:proxy.image: must be an image reference"),
        ("image", "ghcr.io/x/p:v1;id", "mcp:proxy.image: must be an image reference"),
        ("listen", "localhost:8000", "mcp:proxy.listen: must be [ADDRESS]:PORT"),
        ("listen", "127.0.0.1:99999", "mcp:proxy.listen: must be [ADDRESS]:PORT"),
        ("colourPorts", [8001], "mcp:proxy.colourPorts: must be two different ports"),
        ("colourPorts", [8001, 8001], "mcp:proxy.colourPorts: must be two different ports"),
        ("colourPorts", ["8001", 8002], "mcp:proxy.colourPorts: must be two different ports"),
        ("drainSeconds", 1000, "mcp:proxy.drainSeconds: must be between 0 and 300"),
    ],
)
def test_bad_proxy_value_names_the_key_and_shows_an_example(
    test_keys: TestKeys, field: str, value: Any, expected: str
) -> None:
    problems = problems_for(blue_green_config(test_keys, **{field: value}))
    matching = [p for p in problems if p.startswith(expected)]
    assert matching, problems
    assert "Example: " in matching[0]


def test_blue_green_needs_a_plain_http_health_url(test_keys: TestKeys) -> None:
    config = blue_green_config(test_keys)
    config["app"] = {**config["app"], "healthUrl": "https://localhost:8443/health"}
    (problem,) = problems_for(config)
    assert problem.startswith("mcp:app.healthUrl: must be a plain http:// URL")


# ---------------------------------------------------------------- command lines


def test_recreate_command_lines_are_unchanged(test_keys: TestKeys) -> None:
    config = base_config(test_keys)
    release = deploy_plan(load(config)).step("release").command()
    config["restoreBackup"] = "latest"
    restore = deploy_plan(load(config)).step("restore").command()
    for command in (release, restore):
        assert "--strategy" not in command and "--proxy" not in command


def test_blue_green_defaults_are_computed_and_passed_explicitly(test_keys: TestKeys) -> None:
    """The proxy listens on 127.0.0.1:<health URL port>, the colours on that port + 1, + 2:
    computed here, never left to the scripts."""
    config = blue_green_config(test_keys, drainSeconds=3)
    strategy = (
        f"--strategy blue-green --proxy-image {PROXY_IMAGE} --proxy-listen 127.0.0.1:8000 "
        "--colour-ports 8001,8002 --drain-seconds 3"
    )
    plan = deploy_plan(load(config))
    release = plan.step("release").command()
    assert release.startswith("bash /opt/mcp/.deploy/bin/release.sh --deploy-dir /opt/mcp ")
    assert release.endswith(f"--min-free-mb 100 {strategy}")
    assert "--strategy" not in plan.step("deploy").command({"image": "i:1"})
    config["restoreBackup"] = "latest"
    assert (
        deploy_plan(load(config)).step("restore").command().endswith(f"--backup latest {strategy}")
    )
    config["app"]["healthUrl"] = "http://127.0.0.1/health"  # no port: 80
    assert "--proxy-listen 127.0.0.1:80 --colour-ports 81,82 " in (
        deploy_plan(load(config)).step("restore").command()
    )


def test_blue_green_configured_proxy_options_are_passed_quoted(test_keys: TestKeys) -> None:
    config = blue_green_config(
        test_keys, listen="0.0.0.0:8000", colourPorts=[9001, 9002], drainSeconds=0
    )
    words = shlex.split(deploy_plan(load(config)).step("release").command())
    tail = words[words.index("--strategy") :]
    assert tail == [
        "--strategy",
        "blue-green",
        "--proxy-image",
        PROXY_IMAGE,
        "--proxy-listen",
        "0.0.0.0:8000",
        "--colour-ports",
        "9001,9002",
        "--drain-seconds",
        "0",
    ]


def test_the_program_installs_the_blue_green_helpers() -> None:
    assert "bluegreen.sh" in remote_commands.SCRIPT_NAMES
    assert (remote_commands.SCRIPTS_SOURCE_DIR / "bluegreen.sh").is_file()


# ---------------------------------------------------------------- the program


def test_program_passes_the_strategy_to_release(
    run_program: Callable[..., ProgramRun], test_keys: TestKeys
) -> None:
    run = run_program(blue_green_config(test_keys, colourPorts=[8001, 8002]))
    release = run.get("server-release").inputs["create"]
    assert release.endswith(
        f"--strategy blue-green --proxy-image {PROXY_IMAGE} --proxy-listen 127.0.0.1:8000 "
        "--colour-ports 8001,8002 --drain-seconds 2"
    )
    assert "--strategy" not in run.get("server-deploy").inputs["create"]
    copies = {r.inputs["remotePath"]: r for r in run.of_type("command:remote:CopyToRemote")}
    (scripts,) = (c.inputs["source"] for c in copies.values() if c.name == "server-scripts")
    assert (Path(scripts.path) / "bluegreen.sh").is_file()
    assert run.depends_on("server-release", "server-deploy")


def test_program_passes_the_strategy_to_a_restore(
    run_program: Callable[..., ProgramRun], test_keys: TestKeys
) -> None:
    config = blue_green_config(test_keys)
    config["restoreBackup"] = "latest"
    run = run_program(config)
    restore = run.get("server-restore").inputs["create"]
    assert "--backup latest --strategy blue-green --proxy-image" in restore
