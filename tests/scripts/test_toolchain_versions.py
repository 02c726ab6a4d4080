"""The plugin versions tools/build-pulumi.sh builds match the SDK pins: a plugin serves only its
own SDK version, so a bump of one without the other breaks every `pulumi up`."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shell_assignments(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", path.read_text(), flags=re.MULTILINE))


def pip_pins(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([a-z0-9-]+)==(\S+)$", path.read_text(), flags=re.MULTILINE))


def test_each_plugin_the_toolchain_builds_matches_its_sdk_pin() -> None:
    versions = shell_assignments(ROOT / "tools" / "toolchain-versions.sh")
    pins = pip_pins(ROOT / "requirements.txt")
    assert pins["pulumi"] == versions["PULUMI_VERSION"]
    assert pins["pulumi-command"] == versions["COMMAND_PLUGIN_VERSION"]
    assert pins["pulumi-docker"] == versions["DOCKER_PLUGIN_VERSION"]
    assert pins["pulumi-github"] == versions["GITHUB_PLUGIN_VERSION"]


def test_the_toolchain_cache_key_names_every_version() -> None:
    script = (ROOT / "tools" / "build-pulumi.sh").read_text()
    (key,) = re.findall(r'^toolchain_dir="\$cache_root/(\S+)"$', script, flags=re.MULTILINE)
    for name in (
        "PULUMI_VERSION",
        "COMMAND_PLUGIN_VERSION",
        "DOCKER_PLUGIN_VERSION",
        "GITHUB_PLUGIN_VERSION",
    ):
        assert "${" + name + "}" in key, f"{name} is not in the toolchain's cache key {key}"
