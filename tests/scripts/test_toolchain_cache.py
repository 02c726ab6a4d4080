"""tools/build-pulumi.sh reuses a cached binary only while it has the sha256 recorded when it was
built: a tampered binary is never run, it is rebuilt, and the log says why.

Each test gets its own cache (MCP_TOOLS_CACHE, the variable the script reads) filled with
stand-in parts: small shell scripts in the layout the script writes (`parts/<part>-<version>/`
with SHA256SUMS and .complete). The stand-in `pulumi` answers `version` and installs plugins
like the real one; every stand-in records each run in a file, so a test sees what was run.
No Go on PATH: a part that must be rebuilt stops the script at "'go' is not on PATH".
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tools" / "build-pulumi.sh"
VERSIONS = dict(
    re.findall(
        r"^([A-Z_]+)=(\S+)$",
        (ROOT / "tools" / "toolchain-versions.sh").read_text(),
        flags=re.MULTILINE,
    )
)
PULUMI = VERSIONS["PULUMI_VERSION"]
PLUGINS = {
    "command": VERSIONS["COMMAND_PLUGIN_VERSION"],
    "docker": VERSIONS["DOCKER_PLUGIN_VERSION"],
    "github": VERSIONS["GITHUB_PLUGIN_VERSION"],
}
TOOLCHAIN = (
    f"pulumi-{PULUMI}-python-{PULUMI}-command-{PLUGINS['command']}"
    f"-docker-{PLUGINS['docker']}-github-{PLUGINS['github']}"
)

FAKE_PULUMI = f"""#!/bin/bash
echo "pulumi $0 $*" >>"$RUNS"
case "$1" in
  version) echo v{PULUMI} ;;
  plugin)  # plugin install resource NAME VERSION --file FILE
    dir="$PULUMI_HOME/plugins/resource-$4-v$5"
    mkdir -p "$dir"
    install -m 0755 "$7" "$dir/pulumi-resource-$4" ;;
  *) exit 3 ;;
esac
"""


def stand_in(name: str) -> str:
    return f'#!/bin/bash\necho "{name} $0 $*" >>"$RUNS"\n'


@dataclass
class Cache:
    root: Path
    runs: Path

    @property
    def toolchain(self) -> Path:
        return self.root / TOOLCHAIN

    def part(self, part: str) -> Path:
        version = PLUGINS.get(part, PULUMI)
        return self.root / "parts" / f"{part}-{version}"

    def build(self, *plugins: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(BUILD), *plugins],
            env={
                "PATH": "/usr/bin:/bin",  # no Go: a rebuild stops at need_go
                "HOME": str(self.root.parent),
                "MCP_TOOLS_CACHE": str(self.root),
                "MCP_VENDOR_DIR": str(self.root.parent / "no-vendor"),
                "RUNS": str(self.runs),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def write_part(directory: Path, files: dict[str, str]) -> None:
    """A part as store_part leaves it: the binaries, SHA256SUMS, .complete."""
    directory.mkdir(parents=True)
    sums = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        path.chmod(0o755)
        sums.append(f"{hashlib.sha256(text.encode()).hexdigest()}  {name}\n")
    (directory / "SHA256SUMS").write_text("".join(sums))
    (directory / ".complete").touch()


def make_cache(tmp_path: Path, plugins: tuple[str, ...] = tuple(PLUGINS)) -> Cache:
    cache = Cache(tmp_path / "tools-cache", tmp_path / "runs.log")
    write_part(cache.part("cli"), {"pulumi": FAKE_PULUMI})
    write_part(
        cache.part("language-python"),
        {
            "pulumi-language-python": stand_in("language-python"),
            "pulumi-language-python-exec": stand_in("language-python-exec"),
        },
    )
    for name in plugins:
        write_part(cache.part(name), {f"pulumi-resource-{name}": stand_in(name)})
    return cache


def tamper(path: Path) -> None:
    """Still a working stand-in, one that says so when it runs."""
    with path.open("a") as file:
        file.write('echo "TAMPERED $0" >>"$RUNS"\n')


def test_the_toolchain_records_checksums_and_reuses_itself_while_they_match(
    tmp_path: Path,
) -> None:
    cache = make_cache(tmp_path)
    first = cache.build()
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == str(cache.toolchain / "bin")
    assert first.stderr.count("(checksums verified)") == 5, first.stderr  # each cached part
    recorded = (cache.toolchain / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split("  ", 1)[1] for line in recorded) == sorted(
        [
            "bin/pulumi",
            "bin/pulumi-language-python",
            "bin/pulumi-language-python-exec",
            *(
                f"pulumi-home/plugins/resource-{n}-v{v}/pulumi-resource-{n}"
                for n, v in PLUGINS.items()
            ),
        ]
    )
    again = cache.build()
    assert again.returncode == 0, again.stderr
    assert f"reusing the toolchain in {cache.toolchain} (checksums verified)" in again.stderr


def test_a_tampered_toolchain_binary_is_never_run_and_is_rebuilt(tmp_path: Path) -> None:
    cache = make_cache(tmp_path)
    assert cache.build().returncode == 0
    docker = f"resource-docker-v{PLUGINS['docker']}/pulumi-resource-docker"
    for file, original in (
        (cache.toolchain / "bin" / "pulumi", cache.part("cli") / "pulumi"),
        (
            cache.toolchain / "pulumi-home" / "plugins" / docker,
            cache.part("docker") / "pulumi-resource-docker",
        ),
    ):
        tamper(file)
        cache.runs.write_text("")
        result = cache.build()
        assert result.returncode == 0, result.stderr
        assert f"not reusing the cached toolchain: checksum mismatch: {file} has sha256" in (
            result.stderr
        )
        assert "rebuilding it" in result.stderr
        assert "TAMPERED" not in cache.runs.read_text()  # checked before anything ran
        assert file.read_bytes() == original.read_bytes()  # assembled again from the part
        assert result.stdout.strip() == str(cache.toolchain / "bin")
        reused = cache.build()
        assert "reusing the toolchain" in reused.stderr and "(checksums verified)" in reused.stderr


def test_a_tampered_cached_part_is_rebuilt_not_assembled(tmp_path: Path) -> None:
    cache = make_cache(tmp_path)
    assert cache.build().returncode == 0
    tamper(cache.part("cli") / "pulumi")
    tamper(cache.toolchain / "bin" / "pulumi")
    cache.runs.write_text("")
    result = cache.build()
    assert result.returncode != 0
    assert result.stdout == ""  # no toolchain handed out
    part_file = cache.part("cli") / "pulumi"
    assert (
        f"cli v{PULUMI}: not reusing the cached copy: checksum mismatch: {part_file} has sha256"
        in result.stderr
    ), result.stderr
    assert "'go' is not on PATH" in result.stderr  # it went on to rebuild the part
    assert "TAMPERED" not in cache.runs.read_text()


def test_a_cache_without_checksums_is_not_trusted(tmp_path: Path) -> None:
    """A cache written before checksums were recorded is rebuilt, not blessed as it is."""
    cache = make_cache(tmp_path)
    assert cache.build().returncode == 0
    (cache.toolchain / "SHA256SUMS").unlink()
    (cache.part("docker") / "SHA256SUMS").unlink()
    result = cache.build()
    assert result.returncode != 0 and result.stdout == ""
    assert "not reusing the cached toolchain: no checksums recorded" in result.stderr
    assert f"docker v{PLUGINS['docker']}: not reusing the cached copy: no checksums recorded" in (
        result.stderr
    )
    assert "'go' is not on PATH" in result.stderr


def test_a_toolchain_of_some_plugins_never_builds_the_others(tmp_path: Path) -> None:
    """The demo's stack needs only `command`: with no docker or github part in the cache (and
    no Go to build one), asking for `command` assembles a toolchain of its own without them."""
    cache = make_cache(tmp_path, plugins=("command",))
    result = cache.build("command")
    assert result.returncode == 0, result.stderr
    toolchain = cache.root / f"pulumi-{PULUMI}-python-{PULUMI}-command-{PLUGINS['command']}"
    assert result.stdout.strip() == str(toolchain / "bin")
    assert result.stderr.count("(checksums verified)") == 3, result.stderr  # cli, language, command
    assert "docker" not in result.stderr and "github" not in result.stderr
    installed = sorted(p.name for p in (toolchain / "pulumi-home" / "plugins").iterdir())
    assert installed == [f"resource-command-v{PLUGINS['command']}"]
    assert "pulumi-resource-command" in (toolchain / "SHA256SUMS").read_text()
    again = cache.build("command")
    assert f"reusing the toolchain in {toolchain} (checksums verified)" in again.stderr
    # Asking for docker too builds only the missing part (here: no Go, so it stops there).
    more = cache.build("command", "docker")
    assert more.returncode != 0 and more.stdout == ""
    assert f"building pulumi-resource-docker v{PLUGINS['docker']}" in more.stderr
    assert "'go' is not on PATH" in more.stderr and "github" not in more.stderr


def test_a_command_only_toolchain_never_seeds_the_parts_cache(tmp_path: Path) -> None:
    """The command-only toolchain has the name of the layout before the parts cache, whose
    binaries seeded it; only a directory of that old layout (with plugin-src/) still does."""
    cache = make_cache(tmp_path, plugins=("command",))
    assert cache.build("command").returncode == 0
    shutil.rmtree(cache.part("cli"))
    toolchain = cache.root / f"pulumi-{PULUMI}-python-{PULUMI}-command-{PLUGINS['command']}"
    (toolchain / ".complete").unlink()  # assembled again, from the parts
    result = cache.build("command")
    assert result.returncode != 0
    assert "reused from" not in result.stderr and "'go' is not on PATH" in result.stderr


def test_an_unknown_plugin_is_refused(tmp_path: Path) -> None:
    result = make_cache(tmp_path).build("dokcer")
    assert result.returncode != 0 and result.stdout == ""
    assert "unknown plugin 'dokcer' (the plugins: command, docker, github)" in result.stderr
