"""install-scripts.sh (issue 16 item 11): an uploaded copy of remote/ becomes
<deploy-dir>/.deploy/bin.d/<sha256>/ (a new directory, never rewritten) and the symlink
.deploy/bin switches to it in one rename, so a script that is running keeps reading the bytes
it started with. Local files only; the same through the deploy plan over SSH is in
tests/integration/test_script_install.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ._helpers import REMOTE, run_script

PROBE = '#!/usr/bin/env bash\necho start\nsleep 2\necho "original end"\n'
# The same script rewritten: longer, so a reader at the old offset lands mid-line.
PROBE_V2 = (
    "#!/usr/bin/env bash\n# a new version, a few bytes longer than the first one.........\n"
    'echo start\nsleep 2\necho "new end"\n'
)


def upload(deploy: Path, version: str, probe: str = PROBE) -> Path:
    """What the plan's upload step leaves: remote/ in .deploy/bin.upload/<version>/."""
    target = deploy / ".deploy" / "bin.upload" / version
    shutil.copytree(REMOTE, target)
    (target / "probe.sh").write_text(probe)
    return target


def install(deploy: Path, version: str) -> subprocess.CompletedProcess[str]:
    script = deploy / ".deploy" / "bin.upload" / version / "install-scripts.sh"
    return subprocess.run(
        ["bash", str(script), "--deploy-dir", str(deploy), "--version", version],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    d = tmp_path / "mcp"
    (d / ".deploy").mkdir(parents=True)
    return d


V1, V2, V3 = "1" * 64, "2" * 64, "3" * 64


def test_first_install_makes_bin_a_symlink_to_a_new_directory(deploy: Path) -> None:
    upload(deploy, V1)
    result = install(deploy, V1)
    assert result.returncode == 0, result.stderr
    dot = deploy / ".deploy"
    assert json.loads(result.stdout) == {
        "version": V1,
        "scripts_dir": str(dot / "bin.d" / V1),
        "previous": "",
    }
    assert (dot / "bin").is_symlink() and (dot / "bin").readlink() == Path(f"bin.d/{V1}")
    for name in ("release.sh", "restore.sh", "lib.sh", "lib/health.sh", "install-scripts.sh"):
        assert (dot / "bin" / name).read_bytes() == (REMOTE / name).read_bytes(), name
    assert (dot / "bin" / "release.sh").stat().st_mode & 0o111, "entry scripts are executable"
    assert not (dot / "bin" / "lib.sh").stat().st_mode & 0o111
    assert "[install] done:" in result.stderr
    assert "switched" in (dot / "history.log").read_text()
    assert sorted(p.name for p in (dot / "bin.d").iterdir()) == [V1]  # no temp dir left
    # The installed scripts run through the path every command line names.
    help_ = subprocess.run([str(dot / "bin" / "release.sh"), "--help"], capture_output=True)
    assert help_.returncode == 0 and help_.stdout.startswith(b"Usage: release.sh")


def test_an_older_bin_directory_is_moved_aside_not_rewritten(deploy: Path) -> None:
    old = deploy / ".deploy" / "bin"
    old.mkdir()
    (old / "release.sh").write_text("echo old release\n")
    inode = (old / "release.sh").stat().st_ino
    upload(deploy, V1)
    result = install(deploy, V1)
    assert result.returncode == 0, result.stderr
    previous = Path(json.loads(result.stdout)["previous"])
    assert previous.parent == deploy / ".deploy" / "bin.d"
    assert previous.name.startswith("legacy-")
    assert (previous / "release.sh").read_text() == "echo old release\n"
    assert (previous / "release.sh").stat().st_ino == inode, "the old file was rewritten"
    assert (deploy / ".deploy" / "bin").readlink() == Path(f"bin.d/{V1}")


def test_new_versions_switch_the_link_and_older_ones_are_pruned(deploy: Path) -> None:
    dot = deploy / ".deploy"
    for version in (V1, V2):
        upload(deploy, version)
        assert install(deploy, version).returncode == 0
    assert sorted(p.name for p in (dot / "bin.d").iterdir()) == [V1, V2]  # V1: the previous
    upload(deploy, V3)
    result = install(deploy, V3)
    assert result.returncode == 0, result.stderr
    assert (dot / "bin").readlink() == Path(f"bin.d/{V3}")
    assert sorted(p.name for p in (dot / "bin.d").iterdir()) == [V2, V3]
    assert sorted(p.name for p in (dot / "bin.upload").iterdir()) == [V3]
    assert f"pruned old scripts {dot / 'bin.d' / V1}" in result.stderr
    # Installing the current version again rewrites nothing.
    inode = (dot / "bin.d" / V3 / "release.sh").stat().st_ino
    result = install(deploy, V3)
    assert result.returncode == 0, result.stderr
    assert "already in" in result.stderr and "already pointed" in result.stderr
    assert (dot / "bin.d" / V3 / "release.sh").stat().st_ino == inode


def test_nothing_is_pruned_while_a_deploy_step_holds_the_lock(deploy: Path) -> None:
    dot = deploy / ".deploy"
    for version in (V1, V2):
        upload(deploy, version)
        assert install(deploy, version).returncode == 0
    upload(deploy, V3)
    holder = subprocess.Popen(["flock", str(dot / "lock"), "sleep", "30"])
    try:
        time.sleep(0.3)
        result = install(deploy, V3)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 0, result.stderr
    assert (dot / "bin").readlink() == Path(f"bin.d/{V3}")  # the switch needs no lock
    assert sorted(p.name for p in (dot / "bin.d").iterdir()) == [V1, V2, V3]
    assert "a deploy step holds the lock" in result.stderr


def test_a_running_script_keeps_its_bytes_across_an_install(deploy: Path) -> None:
    upload(deploy, V1, PROBE)
    assert install(deploy, V1).returncode == 0
    running = subprocess.Popen(
        ["bash", str(deploy / ".deploy" / "bin" / "probe.sh")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert running.stdout is not None and running.stdout.readline() == "start\n"
    upload(deploy, V2, PROBE_V2)  # a new version uploaded and installed meanwhile
    result = install(deploy, V2)
    assert result.returncode == 0, result.stderr
    out, _ = running.communicate(timeout=30)
    assert running.returncode == 0 and out == "original end\n", out
    # New runs get the new version.
    again = subprocess.run(
        ["bash", str(deploy / ".deploy" / "bin" / "probe.sh")], capture_output=True, text=True
    )
    assert again.stdout == "start\nnew end\n"


def test_a_missing_upload_is_refused_naming_it(deploy: Path) -> None:
    result = run_script("install-scripts.sh", "--deploy-dir", str(deploy), "--version", V1)
    assert result.returncode == 3
    assert f"nothing uploaded: {deploy}/.deploy/bin.upload/{V1}/lib.sh does not exist" in (
        result.stderr
    )
    assert not (deploy / ".deploy" / "bin").exists()
