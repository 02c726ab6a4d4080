"""The plugin versions tools/build-pulumi.sh builds match the SDK pins: a plugin serves only its
own SDK version, so a bump of one without the other breaks every `pulumi up`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
    """The key is the CLI's and language host's version, then `-<plugin>-<version>` for each
    plugin asked for (tests/scripts/test_toolchain_cache.py runs it for a subset)."""
    script = (ROOT / "tools" / "build-pulumi.sh").read_text()
    (key,) = re.findall(r'^toolchain_dir="\$cache_root/(\S+)"$', script, flags=re.MULTILINE)
    assert key == "pulumi-${PULUMI_VERSION}-python-${PULUMI_VERSION}${toolchain_key}"
    assert 'for plugin in "${PLUGINS[@]}"; do toolchain_key+="-${plugin/ /-}"; done' in script
    start = script.index("ALL_PLUGINS=(")
    plugins = script[start : script.index(")", start)]
    for name in ("COMMAND_PLUGIN_VERSION", "DOCKER_PLUGIN_VERSION", "GITHUB_PLUGIN_VERSION"):
        assert "$" + name in plugins, f"{name} is not in ALL_PLUGINS, part of the cache key"


# --- the CLI's wrapper module: committed, read-only ---------------------------------------------

CLI_MODULE = ROOT / "tools" / "pulumi-cli"


def test_the_cli_wrapper_module_is_committed_with_its_go_sum() -> None:
    version = shell_assignments(ROOT / "tools" / "toolchain-versions.sh")["PULUMI_VERSION"]
    go_mod = (CLI_MODULE / "go.mod").read_text()
    assert f"\nrequire github.com/pulumi/pulumi/pkg/v3 v{version}\n" in go_mod
    go_sum = (CLI_MODULE / "go.sum").read_text()
    for line in (
        f"github.com/pulumi/pulumi/pkg/v3 v{version} h1:",
        f"github.com/pulumi/pulumi/pkg/v3 v{version}/go.mod h1:",
    ):
        assert re.search(rf"^{re.escape(line)}[A-Za-z0-9+/]{{43}}=$", go_sum, re.MULTILINE), line
    assert len(go_sum.splitlines()) > 100  # every module of the build, not just the top one
    assert (
        'import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"'
        in (CLI_MODULE / "tools.go").read_text()
    )


def test_the_cli_is_built_from_the_committed_module_read_only() -> None:
    script = (ROOT / "tools" / "build-pulumi.sh").read_text()
    build_cli = script[
        script.index("build_cli() {") : script.index("\n}\n", script.index("build_cli() {"))
    ]
    assert 'cp "$cli_module_dir/go.mod" "$cli_module_dir/go.sum"' in build_cli
    assert 'cli_module_dir="$repo_root/tools/pulumi-cli"' in script
    commands = "\n".join(line for line in build_cli.splitlines() if "die " not in line)
    assert "go mod tidy" not in commands and "GOMOD" not in commands  # nothing re-resolved
    assert "go build -mod=readonly" in build_cli
    assert build_cli.count("env -u GONOSUMDB -u GOPRIVATE -u GOINSECURE GOFLAGS=-mod=readonly") == 2
    assert "go mod verify" in build_cli


@pytest.mark.parametrize("change", ["altered hash", "missing entry"])
def test_a_module_that_is_not_what_go_sum_says_fails_the_cli_build(
    tmp_path: Path, change: str
) -> None:
    """The real build script, on a copy of tools/ whose go.sum was changed: the CLI build stops
    (before compiling) instead of fetching the module and recording a new checksum."""
    assert shutil.which("go"), "Go builds the toolchain: it must be on PATH"
    version = shell_assignments(ROOT / "tools" / "toolchain-versions.sh")["PULUMI_VERSION"]
    tools = tmp_path / "repo" / "tools"
    shutil.copytree(ROOT / "tools", tools)
    go_sum = tools / "pulumi-cli" / "go.sum"
    line = re.compile(rf"^github\.com/pulumi/pulumi/pkg/v3 v{re.escape(version)} h1:(\S+)$", re.M)
    original = line.search(go_sum.read_text())
    assert original
    if change == "altered hash":
        forged = "AAAA" + original.group(1)[4:]
        go_sum.write_text(
            line.sub(lambda m: m.group(0).replace(original.group(1), forged), go_sum.read_text())
        )
    else:
        go_sum.write_text(line.sub("", go_sum.read_text()))
    result = subprocess.run(
        ["bash", str(tools / "build-pulumi.sh")],
        env={
            **os.environ,
            "MCP_TOOLS_CACHE": str(tmp_path / "cache"),
            "MCP_VENDOR_DIR": str(tmp_path / "no-vendor"),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode != 0, result.stderr
    assert result.stdout == ""
    assert "building the pulumi CLI" in result.stderr
    expected = "SECURITY ERROR" if change == "altered hash" else "missing go.sum entry"
    assert expected in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "cache" / "parts" / f"cli-{version}").exists()
